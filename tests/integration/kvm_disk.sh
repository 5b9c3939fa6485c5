#!/usr/bin/env bash
# The micro-VMM's disk and the guest's key-value log on it: every
# acknowledged SET survives a cold boot from the image, DISKCHECK agrees
# with the index, a garbage tail is ignored, a full disk refuses without
# losing data, the VMM's checks of the guest's requests answer errors (no
# crash), and bad disk configs are refused with the path named.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tap0
VM=
# boot_vm NAME CFG: `remus run` of CFG in the namespace, console
# $TMP/NAME.console; VM is its pid.  Waits for the guest to answer.
boot_vm() {
    ip netns exec "$NS" "$REMUS" run --config "$2" --console "$TMP/$1.console" \
        > "$TMP/$1.log" 2>&1 & VM=$!; PIDS+=($VM)
    kv 99 1 STATS > /dev/null || { echo "$1: the guest does not answer"; cat "$TMP/$1.log" "$TMP/$1.console"; exit 1; }
}
stop_vm() { kill -TERM "$VM"; wait "$VM" || { echo "remus run did not stop cleanly"; exit 1; }; }
# disk_cfg FILE IMAGE [cmdline]
disk_cfg() { guest_cfg "$1" tap0 "${3:-}"; echo "disk = $2" >> "$1"; }
# check_keys CLIENT EXPECTED: GET every "key value" line of EXPECTED, in
# one client session; every value must match.
check_keys() {
    local cmds=() want=() out i=0 k v
    while read -r k v; do cmds+=("GET $k"); want+=("$v"); done < "$2"
    out=$(kv "$1" 1 "${cmds[@]}") || { echo "GETs unanswered"; return 1; }
    while read -r req ok val rest; do
        [ "$ok $val" = "OK ${want[$i]}" ] || { echo "GET ${cmds[$i]#GET }: '$req $ok $val $rest', want ${want[$i]}"; return 1; }
        i=$((i + 1))
    done <<< "$out"
    [ "$i" = "${#want[@]}" ] || { echo "$i replies for ${#want[@]} GETs"; return 1; }
}
# diskcheck CLIENT RECORDS: DISKCHECK answers OK with RECORDS records.
diskcheck() {
    local r
    r=$(kv "$1" 1 DISKCHECK) || { echo "DISKCHECK unanswered"; return 1; }
    grep -q "^1 OK disk=ok records=$2 seq=" <<< "$r" || { echo "DISKCHECK: '$r', want records=$2"; return 1; }
}

scenario "SETs are on the disk and survive a cold boot"
truncate -s 1M "$TMP/d.img"
disk_cfg "$TMP/g.cfg" "$TMP/d.img" "disk_probe=1"
boot_vm b1 "$TMP/g.cfg"
cmds=(); : > "$TMP/want"
for i in $(seq 0 99); do cmds+=("SET k$i $((i * 7 + 3))"); echo "k$i $((i * 7 + 3))" >> "$TMP/want"; done
for i in $(seq 1 20); do cmds+=("INCR k0"); done
sed -i 's/^k0 .*/k0 23/' "$TMP/want"
out=$(kv 1 1 "${cmds[@]}")
n=$(echo "$out" | grep -c " OK ")
[ "$n" = 120 ] || { echo "only $n of 120 writes acknowledged"; echo "$out" | grep -v " OK " | head; exit 1; }
diskcheck 2 120
check_keys 3 "$TMP/want"
st=$(kv 4 1 STATS)
grep -q " disk_recs=120 disk_free=1927 disk_err=0" <<< "$st" || { echo "STATS lacks the disk counters: $st"; exit 1; }
grep -q "formatted, 0 records replayed" "$TMP/b1.console" || { echo "the zeroed image was not formatted"; cat "$TMP/b1.console"; exit 1; }
echo "STATS: $st"

scenario "the VMM answers bad requests with errors and keeps running"
grep -q "disk probe: badbuf=-14 misaligned=-22 beyond=-34 toolong=-22 nodisk=-19 badflags=-22 good=0" "$TMP/b1.console" \
    || { echo "the probe's results are not the expected errors"; grep probe "$TMP/b1.console"; exit 1; }
kv 5 1 "GET k1" | grep -q "^1 OK 10 " || { echo "the guest stopped answering after the probe"; exit 1; }
stop_vm

scenario "a cold boot from the image finds every acknowledged key"
boot_vm b2 "$TMP/g.cfg"
grep -q "log found, 120 records replayed (100 keys)" "$TMP/b2.console" || { echo "the replay is wrong"; cat "$TMP/b2.console"; exit 1; }
check_keys 1 "$TMP/want"
diskcheck 2 120
must_fail "a key's value differs" check_keys 3 <(sed 's/^k5 .*/k5 999/' "$TMP/want")
must_fail "a key is missing" check_keys 4 <(echo "k100 5"; cat "$TMP/want")
must_fail "DISKCHECK with another record count" diskcheck 5 119

scenario "DISKCHECK sees a log changed underneath the guest"
cp "$TMP/d.img" "$TMP/d.bak"
printf 'X' | dd of="$TMP/d.img" bs=1 seek=$((50 * 512 + 30)) conv=notrunc status=none
r=$(kv 6 1 DISKCHECK)
grep -q "ERR disk-mismatch expected=120 records=49 seq=" <<< "$r" || { echo "DISKCHECK missed a damaged record: $r"; exit 1; }
echo "damaged record 50: $r"
# Record 7 (SET k6 45) rewritten with another value and a valid checksum.
cp "$TMP/d.bak" "$TMP/d.img"
python3 - "$TMP/d.img" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b"); f.seek(7 * 512); rec = bytearray(f.read(56))
assert rec[32:34] == b"k6", rec
rec[24:32] = struct.pack("<Q", 46)
h = 0xcbf29ce484222325
for b in rec[:48]: h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
rec[48:56] = struct.pack("<Q", h); f.seek(7 * 512); f.write(rec)
PY
r=$(kv 7 1 DISKCHECK)
grep -q "ERR disk-mismatch key=k6 disk=46 records=120 seq=" <<< "$r" || { echo "DISKCHECK missed a changed value: $r"; exit 1; }
echo "changed value: $r"
cp "$TMP/d.bak" "$TMP/d.img"
diskcheck 8 120
stop_vm

scenario "a garbage tail is ignored at boot and overwritten"
dd if=/dev/urandom of="$TMP/d.img" bs=512 seek=121 count=16 conv=notrunc status=none
boot_vm b3 "$TMP/g.cfg"
grep -q "log found, 120 records replayed" "$TMP/b3.console" || { echo "the garbage tail was not ignored"; cat "$TMP/b3.console"; exit 1; }
check_keys 1 "$TMP/want"
diskcheck 2 120
kv 3 1 "SET tail 42" | grep -q "^1 OK 42 " || { echo "SET after the garbage tail failed"; exit 1; }
echo "tail 42" >> "$TMP/want"
diskcheck 4 121
stop_vm
# The record just written, torn (one byte off): the replay ends before it.
printf 'Z' | dd of="$TMP/d.img" bs=1 seek=$((121 * 512 + 40)) conv=notrunc status=none
boot_vm b4 "$TMP/g.cfg"
grep -q "log found, 120 records replayed" "$TMP/b4.console" || { echo "a torn last record was replayed"; cat "$TMP/b4.console"; exit 1; }
kv 1 1 "GET tail" | grep -q "^1 OK 0 " || { echo "the torn record's key is there"; exit 1; }
stop_vm

scenario "a full disk refuses without losing data"
truncate -s 4K "$TMP/s.img"    # the header + 7 records
disk_cfg "$TMP/s.cfg" "$TMP/s.img"
boot_vm f1 "$TMP/s.cfg"
out=$(kv 1 1 "SET a 1" "SET b 2" "SET c 3" "SET d 4" "SET e 5" "SET f 6" "SET a 7" "SET g 8" "SET b 9")
echo "$out" | sed -n 8p | grep -q "^8 ERR disk-full " || { echo "no disk-full: $out"; exit 1; }
echo "$out" | sed -n 9p | grep -q "^9 ERR disk-full " || { echo "an overwrite on a full disk: $out"; exit 1; }
printf 'a 7\nb 2\nc 3\nd 4\ne 5\nf 6\ng 0\n' > "$TMP/want.s"
check_keys 2 "$TMP/want.s"
diskcheck 3 7
stop_vm
boot_vm f2 "$TMP/s.cfg"
check_keys 1 "$TMP/want.s"
diskcheck 2 7

stop_vm
scenario "DISKLOAD writes its scratch area, STATS counts, the log is untouched"
# stat_field TEXT NAME: the value of NAME=<n> in a STATS reply.
stat_field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# counting CLIENT: disk_w grows over half a second, without errors.
counting() {
    local a b
    a=$(kv "$1" 1 STATS); sleep 0.5; b=$(kv "$1" 2 STATS)
    [ -n "$(stat_field "$a" disk_w)" ] || { echo "STATS has no disk_w: $a"; return 1; }
    [ "$(stat_field "$b" disk_w)" -gt "$(stat_field "$a" disk_w)" ] || { echo "disk_w does not grow: $a / $b"; return 1; }
    [ "$(stat_field "$b" disk_w_ns)" -gt "$(stat_field "$a" disk_w_ns)" ] || { echo "disk_w_ns does not grow: $a / $b"; return 1; }
    [ "$(stat_field "$b" disk_w_err)" = 0 ] || { echo "failed disk writes: $b"; return 1; }
}
# scratch_written IMAGE: the last quarter (from 768 KiB of 1 MiB) holds data.
scratch_written() {
    [ "$(tail -c 262144 "$1" | tr -d '\0' | wc -c)" -gt 0 ] || { echo "nothing written at the end of $1"; return 1; }
}
truncate -s 1M "$TMP/w.img"
must_fail "the scratch check on an unwritten image" scratch_written "$TMP/w.img"
disk_cfg "$TMP/w.cfg" "$TMP/w.img"
boot_vm w1 "$TMP/w.cfg"
st=$(kv 1 1 "SET a 1" STATS "DISKLOAD x" "DISKLOAD 5 sync")
if echo "$st" | sed -n 2p | grep -q "disk_w"; then echo "STATS shows disk_w before any DISKLOAD: $st"; exit 1; fi
echo "$st" | sed -n 3p | grep -q "^3 ERR bad-request " || { echo "DISKLOAD x was accepted: $st"; exit 1; }
echo "$st" | sed -n 4p | grep -q "^4 ERR bad-request " || { echo "DISKLOAD 5 sync was accepted: $st"; exit 1; }
r=$(kv 2 1 "DISKLOAD 2000")
grep -q "^1 OK rate=2000 fua=0 area=786432+262144 seq=" <<< "$r" || { echo "DISKLOAD 2000: $r"; exit 1; }
counting 3
scratch_written "$TMP/w.img"
st=$(kv 4 1 STATS)
grep -q " disk_recs=1 disk_free=1534 disk_err=0 disk_w=" <<< "$st" || { echo "the log's room is not below the scratch area: $st"; exit 1; }
kv 5 1 "SET b 2" | grep -q "^1 OK 2 " || { echo "SET during DISKLOAD failed"; exit 1; }
kv 6 1 "DISKLOAD 0" | grep -q "^1 OK rate=0 fua=0 " || { echo "DISKLOAD 0 refused"; exit 1; }
must_fail "disk_w grows with the workload stopped" counting 7
diskcheck 8 2
# The log area (sectors 3 .. 1535) is untouched: zeros.
[ "$(head -c 786432 "$TMP/w.img" | tail -c +1537 | tr -d '\0' | wc -c)" = 0 ] || { echo "DISKLOAD wrote into the log's area"; exit 1; }
stop_vm
boot_vm w2 "$TMP/w.cfg"
grep -q "log found, 2 records replayed" "$TMP/w2.console" || { echo "the log after DISKLOAD does not replay"; cat "$TMP/w2.console"; exit 1; }
stop_vm
# Two vCPUs (vCPU 1 runs the workload), with FUA; a 4 KiB disk is too small.
guest_cfg "$TMP/w2.cfg" tap0 "" 2; echo "disk = $TMP/w.img" >> "$TMP/w2.cfg"
boot_vm w3 "$TMP/w2.cfg"
kv 1 1 "DISKLOAD 4000 fua" | grep -q "^1 OK rate=4000 fua=1 " || { echo "DISKLOAD 4000 fua refused"; exit 1; }
counting 2
stop_vm
boot_vm w4 "$TMP/s.cfg"
kv 1 1 "DISKLOAD 100" | grep -q "^1 ERR disk-small " || { echo "DISKLOAD on a 4 KiB disk was not refused"; exit 1; }
stop_vm
# 256 KiB: the scratch area is its last 64 KiB, the log keeps to 383
# records before it; a log that already holds 384 refuses DISKLOAD.
truncate -s 256K "$TMP/b.img"
disk_cfg "$TMP/b.cfg" "$TMP/b.img"
boot_vm w5 "$TMP/b.cfg"
cmds=(); for i in $(seq 1 383); do cmds+=("SET a $i"); done
[ "$(kv 1 1 "${cmds[@]}" | grep -c " OK ")" = 383 ] || { echo "383 SETs on a 256 KiB disk not all acknowledged"; exit 1; }
r=$(kv 2 1 "DISKLOAD 100" "SET a 0" "DISKLOAD 0")
echo "$r" | sed -n 1p | grep -q "^1 OK rate=100 fua=0 area=196608+65536 " || { echo "DISKLOAD with 383 records: $r"; exit 1; }
echo "$r" | sed -n 2p | grep -q "^2 ERR disk-full " || { echo "the log wrote into the scratch area: $r"; exit 1; }
stop_vm
disk_cfg "$TMP/b.cfg" "$TMP/b.img" "disk_format=1"
boot_vm w6 "$TMP/b.cfg"
cmds+=("SET a 384")
[ "$(kv 1 1 "${cmds[@]}" | grep -c " OK ")" = 384 ] || { echo "384 SETs on a 256 KiB disk not all acknowledged"; exit 1; }
kv 2 1 "DISKLOAD 100" | grep -q "^1 ERR disk-busy " || { echo "DISKLOAD over the log's records was not refused"; exit 1; }
stop_vm

scenario "a header that is not ours: writes refused, disk_format=1 formats"
head -c 4096 /dev/urandom > "$TMP/h.img"; cp "$TMP/h.img" "$TMP/h.bak"
disk_cfg "$TMP/h.cfg" "$TMP/h.img"
boot_vm h1 "$TMP/h.cfg"
grep -q "disk unusable: no valid header" "$TMP/h1.console" || { echo "a foreign header was accepted"; cat "$TMP/h1.console"; exit 1; }
cmp -s "$TMP/h.img" "$TMP/h.bak" || { echo "the foreign disk was written to"; exit 1; }
kv 1 1 "SET a 1" | grep -q "^1 ERR disk-bad " || { echo "a SET on a foreign disk was not refused"; exit 1; }
stop_vm
disk_cfg "$TMP/h.cfg" "$TMP/h.img" "disk_format=1"
boot_vm h2 "$TMP/h.cfg"
grep -q "formatted" "$TMP/h2.console" || { echo "disk_format=1 did not format"; exit 1; }
kv 1 1 "SET a 1" | grep -q "^1 OK 1 " || { echo "SET after the format failed"; exit 1; }
stop_vm

scenario "without a disk the guest is as before"
guest_cfg "$TMP/n.cfg" tap0 ""
boot_vm n1 "$TMP/n.cfg"
st=$(kv 1 1 STATS "SET a 5" "GET a" DISKCHECK)
if echo "$st" | head -1 | grep -q "disk_"; then echo "STATS without a disk shows disk counters: $st"; exit 1; fi
echo "$st" | sed -n 3p | grep -q "^3 OK 5 " || { echo "SET/GET without a disk: $st"; exit 1; }
echo "$st" | sed -n 4p | grep -q "^4 ERR no-disk " || { echo "DISKCHECK without a disk: $st"; exit 1; }
kv 2 1 "DISKLOAD 100" | grep -q "^1 ERR no-disk " || { echo "DISKLOAD without a disk was not refused"; exit 1; }
stop_vm

scenario "bad disk configs are refused, naming the path"
# refused CFG PATTERN: remus run exits non-zero and says PATTERN.
refused() {
    if "$REMUS" run --config "$1" --timeout 2 > "$TMP/r.out" 2>&1; then echo "accepted: $1"; return 1; fi
    grep -q -- "$2" "$TMP/r.out" || { echo "refused without '$2':"; cat "$TMP/r.out"; return 1; }
    echo "refused: $(grep error "$TMP/r.out" | head -1)"
}
printf 'image = %s\ndisk = %s\n' "$BUILD/guest/remus-guest.elf" "$TMP/none.img" > "$TMP/bad1.cfg"
refused "$TMP/bad1.cfg" "cannot open disk '$TMP/none.img': No such file"
truncate -s 1000 "$TMP/odd.img"
printf 'image = %s\ndisk = %s\n' "$BUILD/guest/remus-guest.elf" "$TMP/odd.img" > "$TMP/bad2.cfg"
refused "$TMP/bad2.cfg" "disk '$TMP/odd.img': its size of 1000 bytes is not"
: > "$TMP/empty.img"
printf 'image = %s\ndisk = %s\n' "$BUILD/guest/remus-guest.elf" "$TMP/empty.img" > "$TMP/bad3.cfg"
refused "$TMP/bad3.cfg" "disk '$TMP/empty.img': its size of 0 bytes"
printf 'image = %s\ndisk = /dev/null\n' "$BUILD/guest/remus-guest.elf" > "$TMP/bad4.cfg"
refused "$TMP/bad4.cfg" "disk '/dev/null' is neither a regular file nor a block device"
# Read-only: a read-only bind mount, in a mount namespace of our own (as
# root, a 0444 mode would not stop O_RDWR).
mkdir -p "$TMP/ro"; truncate -s 64K "$TMP/ro/r.img"
printf 'image = %s\ndisk = %s\n' "$BUILD/guest/remus-guest.elf" "$TMP/ro/r.img" > "$TMP/bad5.cfg"
unshare -m bash -c "mount --bind '$TMP/ro' '$TMP/ro' && mount -o remount,ro,bind '$TMP/ro' &&
    if '$REMUS' run --config '$TMP/bad5.cfg' --timeout 2 > '$TMP/r.out' 2>&1; then exit 1; fi" \
    || { echo "a read-only image was accepted"; cat "$TMP/r.out"; exit 1; }
grep -q "disk '$TMP/ro/r.img' cannot be opened read-write (read-only?): Read-only file system" "$TMP/r.out" \
    || { echo "the read-only refusal does not say so:"; cat "$TMP/r.out"; exit 1; }
echo "refused: $(grep error "$TMP/r.out" | head -1)"
printf 'image = %s\ndisk = %s\n' "$BUILD/guest/remus-guest.elf" "$TMP/s.img" > "$TMP/good.cfg"
must_fail "a good image is not refused" refused "$TMP/good.cfg" "disk"
echo "kvm_disk: ok"
