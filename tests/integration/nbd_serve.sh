#!/usr/bin/env bash
# `remus disk serve`: NBD conformance against independent clients from
# Debian (libnbd's nbdinfo/nbdcopy and python3-libnbd, qemu-io), with
# nbdkit's memory plugin as the oracle for 400 random requests; hostile
# and clumsy clients (tests/support/nbd_bad.py) get error replies or a
# clean close, never a crash, and the server serves the next client; a
# read-only export refuses writes; the socket is 0600, a live server's is
# not taken over, a stale one is; SIGTERM ends it cleanly.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
TMP=$(mktemp -d /tmp/remus-nbd.XXXXXX)
PIDS=()
RAMFS=
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -z "$RAMFS" ] || umount "$RAMFS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
PY=/usr/bin/python3       # Debian's, with python3-libnbd
uri() { echo "nbd+unix:///?socket=$1"; }
SRV=
# serve IMAGE SOCKET [OPTIONS...]: start a server, wait until it answers.
serve() {
    local img=$1 sock=$2
    shift 2
    "$REMUS" disk serve "$img" --socket "$sock" "$@" >> "$TMP/serve.log" 2>&1 & SRV=$!; PIDS+=($SRV)
    wait_until 10 "the server on $sock" nbdinfo --size "$(uri "$sock")" > /dev/null 2>&1
}
server_alive() { alive "$SRV" || { echo "the server died"; cat "$TMP/serve.log"; exit 1; }; }

scenario "usage and image errors name what is wrong"
truncate -s 16M "$TMP/d.img"
rc=0; "$REMUS" disk serve "$TMP/d.img" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "give one of --socket PATH and --device" "$TMP/o" || { cat "$TMP/o"; echo "no --socket: exit $rc"; exit 1; }
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/s" --device /dev/nbd15 > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "give one of --socket PATH and --device" "$TMP/o" || { cat "$TMP/o"; echo "both --socket and --device: exit $rc"; exit 1; }
rc=0; "$REMUS" disk serve "$TMP/none.img" --socket "$TMP/s" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "none.img" "$TMP/o" || { cat "$TMP/o"; echo "a missing image: exit $rc"; exit 1; }
truncate -s 1000 "$TMP/odd.img"
rc=0; "$REMUS" disk serve "$TMP/odd.img" --socket "$TMP/s" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "1000 bytes: it must be a non-zero multiple of 512" "$TMP/o" ||
    { cat "$TMP/o"; echo "an image of 1000 bytes: exit $rc"; exit 1; }
rc=0; "$REMUS" disk frob > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] || { cat "$TMP/o"; echo "an unknown subcommand: exit $rc"; exit 1; }

scenario "400 random requests agree with nbdkit's memory plugin"
serve "$TMP/d.img" "$TMP/s"
[ "$(stat -c %a "$TMP/s")" = 600 ] || { echo "the socket is mode $(stat -c %a "$TMP/s"), not 600"; exit 1; }
nbdkit -f -U "$TMP/oracle.sock" memory 16M > "$TMP/nbdkit.log" 2>&1 & PIDS+=($!)
wait_until 10 "nbdkit" nbdinfo --size "$(uri "$TMP/oracle.sock")" > /dev/null 2>&1
$PY "$ROOT/tests/support/nbd_oracle.py" "$(uri "$TMP/s")" "$(uri "$TMP/oracle.sock")" 400 1
# write-through: the image file itself holds what the clients read
nbdcopy "$(uri "$TMP/s")" "$TMP/copy.img"
cmp "$TMP/copy.img" "$TMP/d.img" || { echo "the image differs from what the server serves"; exit 1; }
# negative control: one byte that differs, where no request goes, is seen
qemu-io -f raw "$(uri "$TMP/oracle.sock")" -c "write -P 0x01 16773120 512" > /dev/null
must_fail "the oracle with one sector changed beforehand" \
    $PY "$ROOT/tests/support/nbd_oracle.py" "$(uri "$TMP/s")" "$(uri "$TMP/oracle.sock")" 5 2

# the 400 requests above, aligned and not, went through O_DIRECT and the
# page cache both (auto, on this file system)
grep -q "bytes, O_DIRECT) on $TMP/s" "$TMP/serve.log" || { cat "$TMP/serve.log"; echo "the oracle's server did not use O_DIRECT"; exit 1; }

scenario "qemu-io: patterns written, read back, discarded, zeroed, FUA"
# qio CMD...: qemu-io's commands on the export; fails on an error or a
# pattern that does not verify
qio() {
    local args=() c
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f raw "$(uri "$TMP/s")" "${args[@]}" > "$TMP/qio" 2>&1 || { cat "$TMP/qio"; return 1; }
    if grep -q "Pattern verification failed" "$TMP/qio"; then cat "$TMP/qio"; return 1; fi
}
qio "write -P 0xab 4096 65536" "read -P 0xab 4096 65536" "flush" "discard 0 8192" \
    "read -P 0 0 8192" "write -z 1M 64k" "read -P 0 1M 64k" "write -f -P 0xcd 2M 4k" \
    "read -P 0xcd 2M 4k"
must_fail "qemu-io reading a pattern that is not there" qio "read -P 0x11 2M 4k"

scenario "--cache: direct leaves nothing in the page cache, page does; unaligned requests agree"
# resident IMAGE: how many bytes of IMAGE the page cache holds
resident() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }
declare -A res
kill -TERM "$SRV"; wait "$SRV"   # the server of the scenarios above
for mode in direct page; do
    truncate -s 16M "$TMP/pc-$mode.img"
    serve "$TMP/pc-$mode.img" "$TMP/s" --cache $mode
    grep -q "pc-$mode.img' (16777216 bytes, $([ $mode = direct ] && echo O_DIRECT || echo page cache))" "$TMP/serve.log" ||
        { cat "$TMP/serve.log"; echo "--cache $mode: not said in the log"; exit 1; }
    qio "write -P 0x5a 0 8M" "read -P 0x5a 0 8M" "flush"
    res[$mode]=$(resident "$TMP/pc-$mode.img")
    if [ $mode = direct ]; then
        # a write not aligned to 4 KiB goes through the page cache; a
        # whole copy (aligned, O_DIRECT) then sees it
        qio "write -P 0x11 4608 512"
        nbdcopy "$(uri "$TMP/s")" "$TMP/pc-copy.img"
        cmp "$TMP/pc-copy.img" "$TMP/pc-direct.img" || { echo "--cache direct: the export differs from its image"; exit 1; }
        [ "$(od -An -v -tx1 -j 4608 -N 512 "$TMP/pc-copy.img" | tr -d ' \n')" = "$(printf '11%.0s' $(seq 512))" ] ||
            { echo "--cache direct: an unaligned write is not read back by an aligned read"; exit 1; }
    fi
    kill -TERM "$SRV"; wait "$SRV"
done
echo "    8 MiB written and read: ${res[direct]} bytes of the image in the page cache with --cache direct, ${res[page]} with page"
[ "${res[direct]}" = 0 ] || { echo "--cache direct left ${res[direct]} bytes of the image in the page cache"; exit 1; }
# negative control: the same through the page cache is seen there
[ "${res[page]}" -ge $((8 << 20)) ] || { echo "negative control: --cache page left only ${res[page]} bytes in the page cache"; exit 1; }
# a file system that refuses O_DIRECT (ramfs; tmpfs takes it since Linux 6.6)
mkdir -p "$TMP/ramfs"; mount -t ramfs ramfs "$TMP/ramfs"
RAMFS="$TMP/ramfs"
truncate -s 1M "$RAMFS/r.img"
rc=0; timeout 10 "$REMUS" disk serve "$RAMFS/r.img" --socket "$TMP/s" --cache direct > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "cannot open the image '$RAMFS/r.img' O_DIRECT (its file system refuses it" "$TMP/o" ||
    { cat "$TMP/o"; echo "--cache direct on ramfs: exit $rc"; exit 1; }
serve "$RAMFS/r.img" "$TMP/s"
grep -q "its file system refuses O_DIRECT: served through the page cache" "$TMP/serve.log" ||
    { cat "$TMP/serve.log"; echo "--cache auto on ramfs: no warning"; exit 1; }
qio "write -P 0x33 0 64k" "read -P 0x33 0 64k"
kill -TERM "$SRV"; wait "$SRV"
umount "$RAMFS"; RAMFS=
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/s" --cache none > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "expected auto, direct or page" "$TMP/o" || { cat "$TMP/o"; echo "--cache none: exit $rc"; exit 1; }
serve "$TMP/d.img" "$TMP/s"

scenario "--hold-while FILE: requests wait while FILE exists, then are served"
kill -TERM "$SRV"; wait "$SRV"
truncate -s 16M "$TMP/hold.img"
touch "$TMP/hold"
serve "$TMP/hold.img" "$TMP/s" --hold-while "$TMP/hold"
qemu-io -f raw "$(uri "$TMP/s")" -c "write -P 0x77 0 64k" > "$TMP/hold.qio" 2>&1 & QIO=$!; PIDS+=($QIO)
sleep 1
kill -0 $QIO 2>/dev/null || { cat "$TMP/hold.qio"; echo "a write was answered while the hold file exists"; exit 1; }
[ "$(od -An -v -tx1 -N 1 "$TMP/hold.img" | tr -d ' ')" = 00 ] || { echo "a held write reached the image"; exit 1; }
grep -q "requests held while '$TMP/hold' exists" "$TMP/serve.log" || { cat "$TMP/serve.log"; echo "the hold is not logged"; exit 1; }
rm "$TMP/hold"
wait_until 10 "the held write answered" sh -c "! kill -0 $QIO 2>/dev/null"
wait $QIO || { cat "$TMP/hold.qio"; echo "the held write failed"; exit 1; }
[ "$(od -An -v -tx1 -N 1 "$TMP/hold.img" | tr -d ' ')" = 77 ] || { echo "the held write is not in the image after the hold"; exit 1; }
kill -TERM "$SRV"; wait "$SRV"
serve "$TMP/d.img" "$TMP/s"

scenario "hostile and clumsy clients: error replies or a clean close"
truncate -s 0 "$TMP/h.img"; truncate -s 16M "$TMP/h.img"
kill -TERM "$SRV"; wait "$SRV" || true
serve "$TMP/h.img" "$TMP/s" --timeout 1000
for c in unknown-client-flags option-bad-magic option-too-long unknown-export \
         bad-requests write-too-long request-bad-magic vanish-mid-write stall-mid-request \
         reads-nothing; do
    $PY "$ROOT/tests/support/nbd_bad.py" "$TMP/s" "$c" | sed 's/^/    /'
    server_alive
done
# nothing of the write cut short (nor of the refused ones) reached the image
cmp -n 65536 "$TMP/h.img" /dev/zero || { echo "a write that never arrived whole changed the image"; exit 1; }
nbdinfo --size "$(uri "$TMP/s")" > /dev/null || { echo "no client served after the hostile ones"; exit 1; }
grep -q "the client sent 8 of the 28 bytes of a request and then nothing for 1000 ms" "$TMP/serve.log" ||
    { cat "$TMP/serve.log"; echo "the stalled client's end is not named"; exit 1; }
grep -q "the client read nothing for 1000 ms" "$TMP/serve.log" ||
    { cat "$TMP/serve.log"; echo "the end of the client that read nothing is not named"; exit 1; }

scenario "a second server on a live socket is refused; SIGTERM ends one cleanly; a stale socket is replaced"
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/s" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "already answers" "$TMP/o" || { cat "$TMP/o"; echo "a second server on a live socket: exit $rc"; exit 1; }
kill -TERM "$SRV"; rc=0; wait "$SRV" || rc=$?
[ $rc = 0 ] || { echo "SIGTERM: exit $rc"; exit 1; }
[ ! -e "$TMP/s" ] || { echo "the socket file is left after SIGTERM"; exit 1; }
serve "$TMP/d.img" "$TMP/s"
kill -KILL "$SRV"; wait "$SRV" 2>/dev/null || true
[ -S "$TMP/s" ] || { echo "no stale socket to replace"; exit 1; }
serve "$TMP/d.img" "$TMP/s"
touch "$TMP/plain"
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/plain" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "is not a socket" "$TMP/o" || { cat "$TMP/o"; echo "a plain file as the socket: exit $rc"; exit 1; }
kill -TERM "$SRV"; wait "$SRV"

scenario "a read-only export refuses writes (EPERM) and is still read"
serve "$TMP/d.img" "$TMP/ro" --read-only
$PY "$ROOT/tests/support/nbd_bad.py" "$TMP/ro" read-only-write | sed 's/^/    /'
nbdcopy "$(uri "$TMP/ro")" "$TMP/ro-copy.img"
cmp "$TMP/ro-copy.img" "$TMP/d.img" || { echo "the read-only export reads other data"; exit 1; }
kill -TERM "$SRV"; wait "$SRV"
scenario "the control socket a protection attaches through"
export REMUS_RUN_DIR="$TMP/run"
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/ro" --read-only --control disk-x > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "a read-only disk has nothing to replicate" "$TMP/o" || { cat "$TMP/o"; echo "--control with --read-only: exit $rc"; exit 1; }
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/c" --control disk-x --no-control > "$TMP/o" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "exclude each other" "$TMP/o" || { cat "$TMP/o"; echo "--control with --no-control: exit $rc"; exit 1; }
rc=0; "$REMUS" disk serve "$TMP/d.img" --socket "$TMP/c" --control "bad/name" > "$TMP/o" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "use letters, digits" "$TMP/o" || { cat "$TMP/o"; echo "a control name with a slash: exit $rc"; exit 1; }
serve "$TMP/d.img" "$TMP/c" --control disk-x
[ -S "$REMUS_RUN_DIR/disk-x.sock" ] || { echo "no control socket $REMUS_RUN_DIR/disk-x.sock"; exit 1; }
[ "$(stat -c %a "$REMUS_RUN_DIR/disk-x.sock")" = 600 ] || { echo "the control socket is not 0600"; exit 1; }
grep -q "protections attach at disk-x" "$TMP/serve.log" || { cat "$TMP/serve.log"; echo "the server does not say where protections attach"; exit 1; }
kill -TERM "$SRV"; wait "$SRV"
[ ! -e "$REMUS_RUN_DIR/disk-x.sock" ] || { echo "the control socket is left after SIGTERM"; exit 1; }
unset REMUS_RUN_DIR
echo "nbd_serve: conformance with nbdkit as the oracle, qemu-io, hostile clients, read-only, the socket's life, the control socket"
