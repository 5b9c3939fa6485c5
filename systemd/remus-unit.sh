#!/bin/sh
# remus-unit protect|receive NAME: the command line of remus-protect@NAME
# and remus-receive@NAME, composed from the variables of
# /etc/remus/NAME.conf (the units' EnvironmentFile=; see remus.conf(5)),
# then exec'd: the unit's main process is remus itself, so its exit status
# (3 took over, 4 quorum or fencing said no) is what systemd sees.
# Installed with @SBINDIR@ replaced by the directory of remus.
set -eu
REMUS=${REMUS_BIN:-@SBINDIR@/remus}
die() { echo "remus-unit: $*" >&2; exit 2; }
[ $# = 2 ] || die "usage: remus-unit protect|receive NAME"
side=$1 name=$2
conf="@SYSCONFDIR@/remus/$name.conf"
need() {   # need VAR WHAT: VAR must be set by the unit's configuration
    eval "v=\${$1:-}"
    [ -n "$v" ] || die "$side $name: $1 ($2) is not set in $conf"
}
set --
[ -z "${REMUS_KEY_FILE:-}" ] || set -- "$@" --key-file "$REMUS_KEY_FILE"
[ -z "${REMUS_HEARTBEAT:-}" ] || set -- "$@" --heartbeat "$REMUS_HEARTBEAT"
[ -z "${REMUS_HEARTBEAT_TIMEOUT:-}" ] ||
    set -- "$@" --heartbeat-timeout "$REMUS_HEARTBEAT_TIMEOUT"
[ -z "${REMUS_QUORUM:-}" ] || set -- "$@" --quorum "$REMUS_QUORUM"
case $side in
protect)
    need REMUS_PEER "the secondary's HOST:PORT"
    [ -z "${REMUS_INTERVAL:-}" ] || set -- "$@" -i "$REMUS_INTERVAL"
    # Word splitting is meant: extra options, one word each.
    # shellcheck disable=SC2086
    set -- "$@" ${REMUS_PROTECT_OPTS:-}
    if [ -n "${REMUS_XEN_DOMAIN:-}" ]; then
        set -- "$@" --xen "$REMUS_XEN_DOMAIN"
    else
        need REMUS_VM "the VM description, or REMUS_XEN_DOMAIN"
        set -- "$@" "$REMUS_VM"
    fi
    exec "$REMUS" protect "$@" "$REMUS_PEER"
    ;;
receive)
    need REMUS_LISTEN "the ADDR:PORT the secondary listens on"
    set -- "$@" --listen "$REMUS_LISTEN" --name "${REMUS_NAME:-$name}"
    if [ -n "${REMUS_FENCE_CMD:-}" ]; then
        set -- "$@" --fence-cmd "$REMUS_FENCE_CMD"
    fi
    if [ -n "${REMUS_XEN_DOMAIN:-}" ]; then
        need REMUS_XEN_CONFIG "the Xen domain's xl config"
        set -- "$@" --xen --config "$REMUS_XEN_CONFIG"
    elif [ -n "${REMUS_VM:-}" ]; then
        set -- "$@" --config "$REMUS_VM"
    fi
    # shellcheck disable=SC2086
    set -- "$@" ${REMUS_RECEIVE_OPTS:-}
    exec "$REMUS" receive "$@"
    ;;
*)
    die "'$side' is neither protect nor receive"
    ;;
esac
