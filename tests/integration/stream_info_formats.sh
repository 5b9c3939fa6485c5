#!/usr/bin/env bash
# remus stream-info --format libxl|xl on wrappers built here around a
# stream we write (the Xen lab checks a real `xl save` file): accepted
# whole; refused with the byte offset when a wrapper field is wrong.
set -euo pipefail
TMP=$(mktemp -d /tmp/remus-fmt.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
"$BUILD/tests/mkstream" nonlive hvm "$TMP/libxc" > /dev/null
python3 - "$TMP" <<'PY'
import struct, sys
d = sys.argv[1]
libxc = open(d + "/libxc", "rb").read()
rec = lambda t, body=b"": struct.pack("<II", t, len(body)) + body + b"\0" * (-len(body) % 8)
libxl = struct.pack(">QII", 0x4c6962786c466d74, 2, 0) + rec(1) + libxc + rec(2, b"xenstore data") + rec(0)
open(d + "/libxl", "wb").write(libxl)
cfg = b'{"c_info": {"name": "g"}}'
xl = b"Xen saved domain, xl format\n \0 \r" + struct.pack("<IIII", 0x01020304, 3, 0, len(cfg)) + cfg + libxl
open(d + "/xl", "wb").write(xl)
open(d + "/xl-badflag", "wb").write(xl[:36] + struct.pack("<I", 7) + xl[40:])
open(d + "/libxl-noxc", "wb").write(struct.pack(">QII", 0x4c6962786c466d74, 2, 0) + rec(0))
open(d + "/libxl-cut", "wb").write(libxl[:-8])
PY
"$REMUS" stream-info --format libxl "$TMP/libxl" | tail -1
"$REMUS" stream-info --format xl --quiet "$TMP/xl"
"$REMUS" stream-info --quiet "$TMP/libxc" > /dev/null
check_refused() {  # FORMAT FILE PATTERN
    if "$REMUS" stream-info --format "$1" --quiet "$2" 2> "$TMP/err"; then echo "$2 accepted"; exit 1; fi
    grep -q "$3" "$TMP/err" || { echo "unexpected message for $2:"; cat "$TMP/err"; exit 1; }
    cat "$TMP/err"
}
check_refused xl "$TMP/xl-badflag" "unknown mandatory xl flags 0x4"
check_refused libxl "$TMP/libxl-noxc" "has no LIBXC_CONTEXT"
check_refused libxl "$TMP/libxl-cut" "ends without its END record"
check_refused xl "$TMP/libxl" "not an xl save file"
check_refused libxl "$TMP/libxc" "not a libxl stream"
if "$REMUS" stream-info --format qcow2 "$TMP/xl" 2> "$TMP/err"; then exit 1; fi
grep -q "format qcow2: libxc, libxl or xl" "$TMP/err"
