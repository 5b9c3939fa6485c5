# Helpers for lab scenarios (sourced in dom0 from /payload/scenario-lib.sh).
# The lab guest prints "guest: counter N" on its console every half second;
# xenconsoled logs it to /var/log/xen/console/guest-NAME.log.

# The last counter value in console log $1 (empty when none yet).
counter() { grep -o "counter [0-9]*" "$1" 2>/dev/null | tail -1 | awk '{print $2}'; }

# Wait (at most $3 s, default 90) until the guest of log $1 has counted to $2.
wait_counter() {
    for _i in $(seq 1 "${3:-90}"); do
        grep -q "guest: counter $2" "$1" 2>/dev/null && return 0
        sleep 1
    done
    tail -5 "$1" 2>/dev/null; echo "the guest of $1 did not count to $2"
    return 1
}

# Start the lab guest as a 64-bit PV domain "labpv" (its config written to
# /tmp/pv.cfg, its console log /var/log/xen/console/guest-labpv.log) and
# wait until it has counted to 4.
start_pv_guest() {
    sed -e 's/^type = .*/type = "pv"/' -e 's/^name = .*/name = "labpv"/' \
        /payload/guest.cfg > /tmp/pv.cfg
    xl create /tmp/pv.cfg
    wait_counter /var/log/xen/console/guest-labpv.log 4
}

# Wait (at most 40 s) until the guest of log $1 counts past $2 + 3; $3 says
# after what.  Prints the two values.
counts_on() {
    _last=""
    for _i in $(seq 1 40); do
        _last=$(counter "$1")
        [ "${_last:-0}" -gt "$(($2 + 3))" ] && break
        sleep 1
    done
    echo "counter before $3: $2; after: ${_last:-none}"
    [ "${_last:-0}" -gt "$(($2 + 3))" ] && return 0
    tail -5 "$1"; echo "the guest does not count on after $3"
    return 1
}
