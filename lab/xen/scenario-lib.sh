# shellcheck shell=sh
# Helpers for lab scenarios (sourced in dom0 from /payload/scenario-lib.sh;
# tests/once/xen_lab_checks.sh sources it on the host with fixture
# logs).  The lab guest prints "guest: counter N boot ID" on its console
# every half second (ID: its kernel's boot id, new at each boot);
# xenconsoled logs it to /var/log/xen/console/guest-NAME.log.

# The last counter value in console log $1 (empty when none yet).
counter() { grep -o "counter [0-9]*" "$1" 2>/dev/null | tail -1 | awk '{print $2}'; }

# The guest's state in console log $1 as "N@ID@LINES@LOG" (its last
# counter, its boot id, how many lines the log has, the log), to hand to
# counts_on after an operation.  Fails when the log has no counter line.
mark() {
    _lines=$(wc -l < "$1" 2>/dev/null)
    _m=$(head -n "${_lines:-0}" "$1" 2>/dev/null | grep -ao "counter [0-9]* boot [0-9a-f-]*" |
        awk 'length($4) == 36 {m = $2 "@" $4} END {print m}')
    [ -n "$_m" ] || { echo "no 'counter N boot ID' line in $1" >&2; return 1; }
    echo "$_m@$_lines@$1"
}

# continuity LOG N@ID@LINES@MARKED-LOG: is the guest of LOG the one
# marked, going on from where it was?  After the mark (in the marked log,
# after its first LINES lines; in another log, such as a restored or
# failed-over guest's new console, all of it):
#  - every counter line is from boot ID (a guest that rebooted prints a
#    new one, and its restarted counter would soon pass N too);
#  - no counter is below N (the guest went back to an older state);
#  - the last counter is past N + 3.
# 0: all three; 1: one of the first two broken, said why; 2: not yet past.
continuity() {
    _n=${2%%@*}; _r=${2#*@}; _boot=${_r%%@*}; _r=${_r#*@}
    _skip=${_r%%@*}; _from=${_r#*@}
    [ "$1" = "$_from" ] || _skip=0
    tail -n +"$((_skip + 1))" "$1" 2>/dev/null | grep -ao "counter [0-9]* boot [0-9a-f-]*" |
    awk -v n="$_n" -v b="$_boot" -v f="$1" '
        length($4) != 36 { next }
        $4 != b { print "the guest rebooted: \"" $0 "\" in " f " is not boot " b; bad = 1; exit }
        $2 < n { print "the guest went back: counter " $2 " in " f " after the mark at " n; bad = 1; exit }
        { last = $2 }
        END { if (bad) exit 1; if (last > n + 3) exit 0; exit 2 }'
}

# Wait (at most $3 s, default 90) until the guest of log $1 has counted to $2.
wait_counter() {
    for _i in $(seq 1 "${3:-90}"); do
        if grep -q "guest: counter $2 " "$1" 2>/dev/null; then return 0; fi
        sleep 1
    done
    tail -5 "$1" 2>/dev/null; echo "the guest of $1 did not count to $2"
    return 1
}

# Start the lab guest as a 64-bit PV domain "labpv" (its config written to
# /tmp/pv.cfg, its console log /var/log/xen/console/guest-labpv.log),
# announce it as the guest under test and wait until it has counted to 4.
start_pv_guest() {
    sed -e 's/^type = .*/type = "pv"/' -e 's/^name = .*/name = "labpv"/' \
        /payload/guest.cfg > /tmp/pv.cfg
    create_guest /tmp/pv.cfg labpv
    wait_counter /var/log/xen/console/guest-labpv.log 4
}

# counts_on LOG MARK WHAT: wait (at most 40 s, or $COUNTS_ON_WAIT) until
# the guest of LOG goes on from MARK (from `mark`: see continuity) past its
# counter + 3; WHAT says after what.  Fails at once if the guest rebooted
# or went back.
counts_on() {
    _rc=2
    for _i in $(seq 1 "${COUNTS_ON_WAIT:-40}"); do
        _rc=0; _why=$(continuity "$1" "$2") || _rc=$?
        [ $_rc = 2 ] || break
        sleep 1
    done
    echo "counter before $3: $(echo "$2" | cut -d@ -f1,2); after: $(counter "$1")${_why:+ ($_why)}"
    if [ $_rc = 0 ]; then return 0; fi
    tail -5 "$1"; echo "the guest does not count on after $3"
    return 1
}

# Markers in Xen's serial log, which lab/xen/guest-died.sh reads to tell a
# guest that died on its own from one our operation may have killed.  They
# are written to dom0's console, which is Xen's console: a marker lands in
# serial.log in order with Xen's own messages (and so between the Xen
# timestamps around it).  $LAB_CONSOLE (default /dev/console) for tests.
lab_mark() {
    printf '\nlab-mark: %s\n' "$*" >> "${LAB_CONSOLE:-/dev/console}"
    printf '%s\n' "$*" >> "${LAB_MARKS:-/tmp/lab-marks}"   # for guest-watch.sh
}

# disk_records LOG: "N TOKEN" for each "guest: disk N TOKEN" line of a
# lab guest's console log (CRLF or not).  A kernel message the console
# put on the same line ("...4989[   30.799163] Restarting tasks ... done."
# after a takeover, CI 2026-12-04) is cut off the token: a token is a
# UUID and never holds '['.
disk_records() {
    tr -d '\r' < "$1" | grep -a "guest: disk [0-9]" | awk '{t = $4; sub(/\[.*/, "", t); print $3, t}'
}

# xen_death_line DOMID: Xen's last word in `xl dmesg` of that domain's
# death (a triple fault, an unexpected or unhandled nested vmexit, a
# crash), empty when there is none; guest-died.sh judges the same messages
# in the serial log.  For guest-watch.sh and warmup.sh.
xen_death_line() {
    xl dmesg 2>/dev/null | grep -E "d${1}v[0-9]+ (Triple fault|Unexpected vmexit|Unhandled nested vmexit|Unhandled: vec)|Domain $1 (\(vcpu#[0-9]+\) crashed on cpu#|reported crashed by domain)" | tail -1
}

# set_tsc_mode CFG MODE: the xl config CFG with tsc_mode MODE instead of
# its own (guest.cfg's is "native": lab/xen/README.md says why); for the
# tools that compare the modes (bootchurn.sh, suspchurn.sh).
set_tsc_mode() {
    sed -i '/^tsc_mode = /d' "$1"
    echo "tsc_mode = \"$2\"" >> "$1"
}

# lab_guest NAME: the domain NAME (just created by the scenario) is a
# guest under test.  Only such a guest's death can be retried.
lab_guest() {
    _d=$(xl domid "$1") || { echo "lab_guest: no domain $1"; return 1; }
    lab_mark "guest $_d $1"
}

# create_guest CFG NAME: create the domain of CFG (named NAME) paused,
# announce it as a guest under test, then let it run.  Announced before
# its first instruction: a guest that dies in its first second of boot is
# still one under test (created and then announced, such a death could
# reach Xen's log before the announcement, and was judged "not a guest
# under test": stop 30's CI, xenfailback).  Exit status: xl create's, or
# 1 when the announcement or the unpause failed.
create_guest() {
    xl create -p "$1" || return $?
    lab_guest "$2" || return 1
    xl unpause "$2" || { echo "create_guest: xl unpause $2 failed"; return 1; }
}

# op_begin WHAT DOMID... / op_end WHAT DOMID...: an operation of ours on
# these domains begins / has ended ("all": it may touch any domain; "new":
# only domains it creates itself, which are never guests under test).  A
# guest that dies after an operation on it began is never retried: the
# death may be ours.
op_begin() { _w=$1; shift; lab_mark "begin $* : $_w"; }
op_end() { _w=$1; shift; lab_mark "end $* : $_w"; }

# ours DOMIDS CMD [ARG...]: run CMD, an operation of ours on the domains
# DOMIDS (comma-separated, or all, or new), between op_begin and op_end.
# Its exit status is CMD's; its output, CMD's alone (markers go to the
# console).
ours() {
    _ids=$(echo "$1" | tr , ' '); shift
    _what="$*"
    # shellcheck disable=SC2086  # the ids are words
    op_begin "$_what" $_ids
    _orc=0; "$@" || _orc=$?
    # shellcheck disable=SC2086
    op_end "$_what" $_ids
    return $_orc
}

# wait_listen PORT PID: until something listens on TCP PORT (at most 90 s,
# a replica domain is built first under TCG); 1 when PID ended or time ran
# out.
wait_listen() {
    for _i in $(seq 1 90); do
        if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}

# wait_acked STATS N SECS PID: until the stats file STATS (--stats-file:
# a line per acknowledged checkpoint) has N lines, at most SECS s; 1 when
# PID (the protect) ended first or time ran out.
wait_acked() {
    for _i in $(seq 1 "$3"); do
        if [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]; then return 0; fi
        kill -0 "$4" 2>/dev/null || break
        sleep 1
    done
    [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]
}

# disk_serve IMG DEV LOG [OPTS]: `remus -v disk serve IMG --device DEV
# OPTS` in the background (its log appended to LOG) until DEV has a size,
# at most 10 s; its pid in $SRV.  1, the reason on stdout, when it ended
# or DEV got no size.
disk_serve() {
    # shellcheck disable=SC2086  # OPTS are words
    /payload/remus -v disk serve "$1" --device "$2" $4 >> "$3" 2>&1 &
    SRV=$!
    for _i in $(seq 1 50); do
        if [ "$(cat "/sys/block/${2#/dev/}/size")" != 0 ]; then return 0; fi
        kill -0 "$SRV" 2>/dev/null || { echo "disk serve of $1 ended: $(tail -1 "$3")"; return 1; }
        sleep 0.2
    done
    echo "$2 has no size after 10 s"
    return 1
}
