#!/usr/bin/env python3
"""xl save files and the libxc stream inside them (the lab's scenarios).

  xlfile.py wrap LIBXC XLSAVE     a libxc stream (remus save --xen) as an
                                  xl save file: xl header, mandatory flag 2
                                  (a libxl v2 stream), no JSON (the config
                                  comes from xl restore's command line),
                                  libxl header, LIBXC_CONTEXT, the stream,
                                  END
  xlfile.py extract XLSAVE LIBXC  the libxc stream of an xl save file whose
                                  first libxl record is LIBXC_CONTEXT (what
                                  xl save writes)
"""
import struct
import sys

XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"


def wrap(src, dst):
    body = open(src, 'rb').read()
    with open(dst, 'wb') as out:
        out.write(XL_MAGIC)
        out.write(struct.pack('<IIII', 0x01020304, 2, 0, 0))
        out.write(b"LibxlFmt" + struct.pack('>II', 2, 0))
        out.write(struct.pack('<II', 1, 0))        # LIBXC_CONTEXT
        out.write(body)
        out.write(struct.pack('<II', 0, 0))        # END


def extract(src, dst):
    d = open(src, 'rb').read()
    if not d.startswith(XL_MAGIC):
        sys.exit(f"{src}: not an xl save file")
    optlen = struct.unpack_from('<I', d, 44)[0]
    off = 48 + optlen + 16          # xl header and options, libxl header
    rtype, _ = struct.unpack_from('<II', d, off)
    if rtype != 1:
        sys.exit(f"{src}: the first libxl record is {rtype}, not "
                 "LIBXC_CONTEXT")
    open(dst, 'wb').write(d[off + 8:])


if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] not in ('wrap', 'extract'):
        sys.exit(__doc__)
    (wrap if sys.argv[1] == 'wrap' else extract)(sys.argv[2], sys.argv[3])
