#!/usr/bin/env bash
# Streams remus writes for an x86-HVM-typed domain pass Xen's own
# verify-stream-v2; a corrupted one does not; remus stream-info agrees.
set -euo pipefail
. "$ROOT/tests/lib/xen-utils.sh"
xen_utils_fetch
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for mode in nonlive live checkpointed verify; do
    "$BUILD/tests/mkstream" "$mode" hvm "$tmp/$mode.stream"
    xen_verify_stream "$tmp/$mode.stream" > "$tmp/$mode.log" 2>&1 || {
        cat "$tmp/$mode.log"; echo "verify-stream-v2 rejected the $mode stream"; exit 1; }
    "$REMUS" stream-info --quiet "$tmp/$mode.stream" > "$tmp/$mode.info"
    grep -q "valid and complete" "$tmp/$mode.info"
    echo "$mode: Xen's verify-stream-v2 and remus stream-info accept it"
done

grep -q "4 checkpoints" "$tmp/checkpointed.info"

# The checker must be able to fail: flip the page-shift byte and a padding
# byte; both tools must refuse.
cp "$tmp/nonlive.stream" "$tmp/bad1.stream"
printf '\x0d' | dd of="$tmp/bad1.stream" bs=1 seek=28 conv=notrunc status=none
if xen_verify_stream "$tmp/bad1.stream" >/dev/null 2>&1; then
    echo "verify-stream-v2 accepted a stream with page shift 13"; exit 1
fi
if "$REMUS" stream-info "$tmp/bad1.stream" >/dev/null 2>"$tmp/err1"; then
    echo "stream-info accepted a stream with page shift 13"; exit 1
fi
grep -q "byte 28: page shift 13" "$tmp/err1"
echo "corrupted stream refused by both: $(cat "$tmp/err1")"
