# Source me after tests/lib/kvm.sh.  Helpers for the disk tests: images,
# the guest's key-value SETs, DISKCHECK.
# fresh IMAGE: a zeroed image of $MIB MiB (and no dirty mark beside it).
fresh() { rm -f "$1" "$1.remus-dirty"; truncate -s "${MIB}M" "$1"; }
# listening PORT: something listens on 127.0.0.1:PORT in the namespace.
listening() { [ -n "$(NSX ss -ltnH "sport = :$1")" ]; }
# sets CLIENT N PREFIX: N SETs (PREFIX0 .. PREFIX<N-1>) in one session;
# all must be acknowledged.
sets() {
    local cmds=() i out
    for i in $(seq 0 $(($2 - 1))); do cmds+=("SET $3$i $((i * 3 + 1))"); done
    out=$(kv "$1" 1 "${cmds[@]}")
    [ "$(echo "$out" | grep -c " OK ")" = "$2" ] || { echo "$out"; echo "not all of $2 SETs acknowledged"; return 1; }
}
# check_sets CLIENT N PREFIX: every SET of sets() is there.
check_sets() {
    local cmds=() i out
    for i in $(seq 0 $(($2 - 1))); do cmds+=("GET $3$i"); done
    out=$(kv "$1" 1 "${cmds[@]}") || { echo "GETs unanswered"; return 1; }
    i=0
    while read -r _ ok val _; do
        [ "$ok $val" = "OK $((i * 3 + 1))" ] || { echo "GET $3$i: $ok $val, want $((i * 3 + 1))"; return 1; }
        i=$((i + 1))
    done <<< "$out"
    [ "$i" = "$2" ] || { echo "$i answers for $2 GETs"; return 1; }
}
# diskcheck CLIENT: DISKCHECK answers OK; DISK_RECORDS gets its record
# count.
diskcheck() {
    local r
    r=$(kv "$1" 1 DISKCHECK) || { echo "DISKCHECK unanswered"; return 1; }
    case "$r" in "1 OK disk=ok records="*) ;; *) echo "DISKCHECK: $r"; return 1;; esac
    DISK_RECORDS=$(echo "$r" | sed 's/.*records=\([0-9]*\).*/\1/')
}
