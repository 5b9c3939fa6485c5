#!/usr/bin/env bash
# A demonstration of the foundation (until `remus drill` lands): write a
# checkpointed stream through the engines, inspect it with stream-info, cut
# it in the middle of a checkpoint, and show that the cut is named.
set -euo pipefail
B=${BUILD:-build}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$B/tests/mkstream" checkpointed kvm "$tmp/s"
"$B/remus" stream-info "$tmp/s"
size=$(stat -c %s "$tmp/s")
cut=$(( size - 4000 ))
head -c "$cut" "$tmp/s" > "$tmp/cut"
echo; echo "== the same stream cut at byte $cut:"
"$B/remus" stream-info --quiet "$tmp/cut" || echo "(exit $?: refused, as it must be)"
