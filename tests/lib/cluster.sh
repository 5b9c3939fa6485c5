# tests/lib/cluster.sh: a three-host corosync cluster in network
# namespaces for the quorum tests (sourced after tests/lib/kvm.sh).
#
#   cluster_up DIR          namespaces ${CL}p ${CL}s ${CL}a joined by a
#                           bridge in ${CL}w ("the switch"), 10.78.0.1 (the
#                           primary's host, corosync node 1), .2 (the
#                           secondary's, node 2), .3 (the arbiter: qnetd);
#                           corosync + corosync-qdevice on p and s, qnetd
#                           on a (the qdevices started once both corosyncs
#                           are one membership); waits until both nodes are
#                           quorate with the qdevice's vote
#   cluster_cut A B         drop all traffic between hosts A and B (p s a)
#   cluster_cut_replication A B   drop only the replication addresses
#                           (10.79.0.N, which corosync does not use)
#   cluster_isolate A       drop all traffic between A and the other two
#   cluster_arbiter_down    stop qnetd
#   cluster_heal            undo every cut, wait for one quorate partition
#   cluster_quorate H       0 if host H's corosync says it is quorate
#   cluster_down            stop everything, delete the namespaces
# CL_TOKEN: corosync's token timeout in ms (default 1000; the qdevice's
# timeouts scale with it); CL_FORM_SECS: how long the cluster may take to
# form or heal (default 30).  Also sourced in the Xen lab's dom0
# (lab/xen/scenarios/xenquorum.sh).
# Every wait here is bounded by the clock (wait_clock: under TCG one
# corosync-quorumtool or crm_mon takes seconds), and one for the cluster
# ends at once when a daemon it started has exited (corosync has aborted
# as a cluster formed), saying which, with the end of its log.
# All daemons run as root from Debian's corosync, corosync-qdevice and
# corosync-qnetd packages, with their files under DIR (nothing in /etc or
# /var is touched): corosync -c with a private /run (its lock file),
# qdevice/qnetd -S lock_file,local_socket_file.
CL=rq$$
CL_PIDS=()
declare -A CL_DAEMON=()   # "HOST/LOG" -> pid of the daemon logging there, for cl_dead
cl_ip() { case $1 in p) echo 10.78.0.1;; s) echo 10.78.0.2;; a) echo 10.78.0.3;; esac; }
# A second address per host, for the replication stream only (corosync
# does not use it): cutting it cuts replication, not the cluster.
cl_rip() { case $1 in p) echo 10.79.0.1;; s) echo 10.79.0.2;; a) echo 10.79.0.3;; esac; }

cl_conf() {  # cl_conf HOST
    local h=$1 d=$CLDIR/$1
    mkdir -p "$d/state"
    cat > "$d/corosync.conf" <<EOC
totem {
    version: 2
    cluster_name: remus-test
    transport: knet
    token: ${CL_TOKEN:-1000}
    join: 50
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        ring0_addr: 10.78.0.1
        nodeid: 1
        name: hostp
    }
    node {
        ring0_addr: 10.78.0.2
        nodeid: 2
        name: hosts
    }
}
quorum {
    provider: corosync_votequorum
    device {
        votes: 1
        model: net
        timeout: $(( ${CL_TOKEN:-1000} * 2 ))
        sync_timeout: $(( ${CL_TOKEN:-1000} * 4 ))
        net {
            tls: off
            host: 10.78.0.3
            algorithm: ffsplit
            tie_breaker: lowest
        }
    }
}
logging {
    to_logfile: yes
    logfile: $d/corosync.log
    to_syslog: no
    to_stderr: no
    timestamp: on
}
system {
    state_dir: $d/state
}
EOC
}

cluster_up() {
    CLDIR=$1; mkdir -p "$CLDIR"
    local h
    ip netns add "${CL}w"
    ip -n "${CL}w" link add br0 type bridge
    ip -n "${CL}w" link set br0 up
    for h in p s a; do
        ip netns add "$CL$h"
        ip -n "$CL$h" link set lo up
        ip link add "cl$h$$" netns "$CL$h" type veth peer name "sw$h" netns "${CL}w"
        ip -n "${CL}w" link set "sw$h" master br0 up
        ip -n "$CL$h" addr add "$(cl_ip $h)/24" dev "cl$h$$"
        ip -n "$CL$h" addr add "$(cl_rip $h)/24" dev "cl$h$$"
        ip -n "$CL$h" link set "cl$h$$" up
    done
    mkdir -p "$CLDIR/a"
    ip netns exec "${CL}a" corosync-qnetd -f -s off -l 10.78.0.3 \
        -S "lock_file=$CLDIR/a/qnetd.pid,local_socket_file=$CLDIR/a/qnetd.sock" \
        > "$CLDIR/a/qnetd.log" 2>&1 & CL_PIDS+=($!); CL_QNETD=$!
    CL_DAEMON[a/qnetd.log]=$CL_QNETD
    for h in p s; do
        cl_conf $h
        # A private /run: corosync's lock is /var/run/corosync.pid.
        ip netns exec "$CL$h" sh -c 'mount -t tmpfs tmpfs /run &&
            exec corosync -f -c "$1"' sh "$CLDIR/$h/corosync.conf" \
            > "$CLDIR/$h/corosync.out" 2>&1 & CL_PIDS+=($!)
        CL_DAEMON[$h/corosync.out]=$!
    done
    # qdevice needs corosync's IPC up (slow to come under TCG in the lab).
    for h in p s; do
        if ! cl_wait "corosync on host $h" cl_corosync_ipc $h; then
            echo "corosync did not start on $h:"; tail -n 8 "$CLDIR/$h/corosync.out"; return 1
        fi
    done
    # ... and both corosyncs in one membership, each counting the
    # other's vote: a qdevice's nodeinfo reaching a corosync that does not
    # know its sender yet aborts it (votequorum.c:2123, "Assertion
    # `sender_node != NULL'", corosync/corosync#63; seen as the cluster
    # formed in the nested lab).
    if ! cl_wait "both corosyncs one membership of 2" both_members; then
        echo "the corosyncs did not join (logs in $CLDIR)"; cl_show p; cl_show s; return 1
    fi
    for h in p s; do
        ip netns exec "$CL$h" corosync-qdevice -f -d \
            -S "lock_file=$CLDIR/$h/qdevice.pid,local_socket_file=$CLDIR/$h/qdevice.sock" \
            > "$CLDIR/$h/qdevice.log" 2>&1 & CL_PIDS+=($!)
        CL_DAEMON[$h/qdevice.log]=$!
    done
    if cl_wait "both hosts quorate with 3 votes" both_quorate; then return 0; fi
    echo "the cluster did not form (logs in $CLDIR)"
    cl_show p; cl_show s
    for h in p s; do
        for f in corosync.out qdevice.log; do
            echo "-- $h/$f"; tail -n 8 "$CLDIR/$h/$f" 2>/dev/null || true
        done
    done
    return 1
}
cl_show() { ip netns exec "$CL$1" corosync-quorumtool -s 2>&1 | sed "s/^/  [$1] /"; }
# cl_votes HOST N: host's partition is quorate with N total votes.
cl_votes() {
    local out
    out=$(ip netns exec "$CL$1" corosync-quorumtool -s 2>/dev/null) || return 1
    grep -Eq "^Quorate: +Yes" <<< "$out" &&
        grep -Eq "^Total votes: +$2\$" <<< "$out"
}
both_quorate() { cl_votes p 3 && cl_votes s 3; }
both_members() { cl_votes p 2 && cl_votes s 2; }
cl_corosync_ipc() { ip netns exec "$CL$1" sh -c 'corosync-cmapctl -g totem.cluster_name > /dev/null 2>&1'; }
# cl_dead [-v]: 0 when a daemon cluster_up started has exited (-v: says
# which, each with the end of its log); cluster_arbiter_down's qnetd aside.
cl_dead() {
    local k dead=1
    for k in $(printf '%s\n' "${!CL_DAEMON[@]}" | sort); do
        if ! kill -0 "${CL_DAEMON[$k]}" 2>/dev/null; then
            dead=0
            if [ "${1:-}" != -v ]; then break; fi
            echo "host ${k%%/*}: the daemon that logs to ${k#*/} has exited:"
            tail -n 8 "$CLDIR/$k" 2>/dev/null | sed 's/^/    /' || true
        fi
    done
    return $dead
}
# cl_wait WHAT CMD [ARG...]: wait (by the clock, CL_FORM_SECS) until CMD
# succeeds; 1 at once when a daemon cluster_up started has exited (says
# which, cl_dead -v).
cl_wait() {
    local what=$1
    shift
    cl_cmd_or_dead() { cl_dead || "$@"; }
    wait_clock "${CL_FORM_SECS:-30}" "$what" cl_cmd_or_dead "$@" && ! cl_dead -v
}
cluster_quorate() {
    ip netns exec "$CL$1" corosync-quorumtool -s 2>/dev/null | grep -Eq "^Quorate: +Yes"
}
cl_drop() {  # cl_drop FROM TO: FROM sends nothing to TO any more
    ip -n "$CL$1" route add blackhole "$(cl_ip $2)/32"
}
cluster_cut() { cl_drop "$1" "$2"; cl_drop "$2" "$1"; }
# cluster_cut_replication A B: only the stream addresses between A and B.
cluster_cut_replication() {
    ip -n "$CL$1" route add blackhole "$(cl_rip $2)/32"
    ip -n "$CL$2" route add blackhole "$(cl_rip $1)/32"
}
cluster_isolate() {
    local h
    for h in p s a; do [ "$h" = "$1" ] || cluster_cut "$1" "$h"; done
}
# Undo every cut; wait until both nodes are one quorate partition again.
cluster_heal() {
    local h r
    for h in p s a; do
        for r in $(ip -n "$CL$h" route show type blackhole 2>/dev/null | awk '{print $2}'); do
            ip -n "$CL$h" route del blackhole "$r" 2>/dev/null || true
        done
    done
    if cl_wait "both hosts quorate with 3 votes (healed)" both_quorate; then return 0; fi
    echo "the cluster did not heal"; cl_show p; cl_show s
    return 1
}
# cluster_pacemaker_up: Pacemaker on both nodes (p, s), each with its own
# /var/lib/pacemaker, /var/log/pacemaker and /run (with the host's
# /run/netns inside) in a mount namespace of its own (files under DIR/HOST/pcmk); waits until both are online in the
# CIB.  Run commands on a node with `cl_pcmk HOST CMD...`.
# OCF agents: the system's, plus ocf/remus as provider "remus" (a
# resource.d of our own bound over the system's, in that namespace only).
cl_pcmk() {
    local h=$1; shift
    ip netns exec "$CL$h" sh -c 'mount --bind "$1/lib" /var/lib/pacemaker &&
        mount --bind "$1/log" /var/log/pacemaker && mkdir -p "$1/run/netns" &&
        mount --rbind /run/netns "$1/run/netns" && mount --rbind "$1/run" /run &&
        mount --bind "$1/resource.d" /usr/lib/ocf/resource.d &&
        shift && exec "$@"' sh "$CLDIR/$h/pcmk" "$@"
}
cluster_pacemaker_up() {
    local h d i
    for h in p s; do
        d=$CLDIR/$h/pcmk
        mkdir -p "$d/lib/cib" "$d/lib/pengine" "$d/lib/blackbox" \
            "$d/lib/cores" "$d/log" "$d/run/crm"
        chown -R hacluster:haclient "$d/lib" "$d/log" "$d/run/crm"
        chmod 750 "$d/lib/cib" "$d/lib/pengine"
        mkdir -p "$d/resource.d/remus"
        for i in /usr/lib/ocf/resource.d/*; do ln -sfn "$i" "$d/resource.d/"; done
        cp "$ROOT/ocf/remus" "$d/resource.d/remus/remus"
        PCMK_logfile="$d/log/pacemaker.log" cl_pcmk $h pacemakerd \
            > "$d/pacemakerd.out" 2>&1 & CL_PIDS+=($!)
    done
    both_online() { cl_pcmk p crm_mon -1 2>/dev/null | grep -Eq "Online: \[ host[ps] host[ps] \]"; }
    if wait_clock 60 "both Pacemaker nodes online" both_online; then return 0; fi
    echo "Pacemaker did not come up (logs in $CLDIR/*/pcmk)"
    cl_pcmk p crm_mon -1 2>&1 | head -20
    return 1
}
cluster_arbiter_down() {
    unset 'CL_DAEMON[a/qnetd.log]'
    kill "$CL_QNETD" 2>/dev/null || true; wait "$CL_QNETD" 2>/dev/null || true
}
cluster_down() {
    local p h
    # corosync cut off from its peer can take long over a SIGTERM: give
    # every daemon 3 s, then SIGKILL whatever still runs in the namespaces.
    for p in "${CL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in $(seq 1 30); do
        if [ -z "$(for h in p s a; do ip netns pids "$CL$h" 2>/dev/null; done)" ]; then break; fi
        sleep 0.1
    done
    for h in p s a w; do
        ip netns pids "$CL$h" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    for p in "${CL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for h in p s a w; do ip netns del "$CL$h" 2>/dev/null || true; done
    CL_PIDS=()
    CL_DAEMON=()
}
