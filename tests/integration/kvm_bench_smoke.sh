#!/usr/bin/env bash
# bench/kvm_bench (make bench, #21) does not rot: its smoke run
# (REMUS_BENCH_SMOKE=1: pause rows at 1 and 1,000 dirty pages, the disk
# rows with a 64 MiB resync, the COLO table's three drills) measures every
# row it prints (no NOT MEASURED, exit 0), and its tables are there.  Its
# negative control: a kvm_bench whose build has no guest image fails.
# Nothing here judges a figure: performance is measured by `make bench`,
# not asserted.
. "$ROOT/tests/lib/kvm.sh"
bench() {  # bench MODE: a smoke run of REMUS_BENCH_ONLY=MODE into $TMP/MODE.md
    REMUS_BENCH_SMOKE=1 REMUS_BENCH_ONLY=$1 "$BUILD/bench/kvm_bench" "$TMP/data-$1" \
        > "$TMP/$1.md" 2> "$TMP/$1.err" ||
        { cat "$TMP/$1.md" "$TMP/$1.err"; echo "kvm_bench ($1) failed"; exit 1; }
    if grep -q "NOT MEASURED" "$TMP/$1.md"; then cat "$TMP/$1.md"; echo "a $1 row was not measured"; exit 1; fi
    grep -q "^SMOKE RUN" "$TMP/$1.md" || { echo "the $1 run does not say it is a smoke run"; exit 1; }
}
has() {  # has MODE REGEX WHAT
    grep -Eq "$2" "$TMP/$1.md" || { cat "$TMP/$1.md"; echo "the $1 rows lack $3"; exit 1; }
}
mkdir -p "$TMP/data-pause" "$TMP/data-colo" "$TMP/data-disk"
bench pause
has pause '^\| 1 \| [0-9]+ \| [0-9.]+ \|' "the row of 1 page"
has pause '^\| 1000 \| [0-9]+ \| [0-9.]+ \|' "the row of 1,000 pages"
has pause 'The fixed cost of a pause' "the fixed cost"
bench disk
for i in 10 25 100; do has disk "^\| $i \| [0-9.]+ \| [0-9]+ \|" "the $i ms row"; done
has disk '^\| hash-based, dense, 1% changed \| [0-9]+ \|' "the dense resync"
has disk '^\| full copy \| [0-9]+ \|' "the full copy"
has disk 'Resync of a 64 MiB image' "a 64 MiB resync"
bench colo
has colo '^\| COLO \| [0-9.]+ / [0-9.]+ \|' "the COLO row"
has colo '^\| Remus, 25 ms \|' "the Remus row"
head -20 "$TMP/pause.md"
# Negative control: a build without the guest image.
mkdir -p "$TMP/nobuild/bench" "$TMP/nobuild/guest"
cp "$BUILD/bench/kvm_bench" "$TMP/nobuild/bench/"
must_fail "kvm_bench without a guest image" \
    env REMUS_BENCH_SMOKE=1 REMUS_BENCH_ONLY=pause "$TMP/nobuild/bench/kvm_bench"
echo ok
