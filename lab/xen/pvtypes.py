#!/usr/bin/env python3
# pvtypes.py FILE[:xl] [FILE2[:xl]]: page types of a PV libxc stream (or of
# the libxc stream inside an xl save file); with two files, the pfns whose
# type differs and the page tables whose entries differ: a lab diagnostic.
import struct, sys

def load(arg):
    name, _, kind = arg.partition(':')
    data = open(name, 'rb').read()
    off = 0
    if kind == 'xl':
        optlen = struct.unpack_from('<I', data, 44)[0]
        off = 48 + optlen + 16 + 8
    off += 24 + 16
    types, pages, vcpu = {}, {}, None
    while off + 8 <= len(data):
        rtype, rlen = struct.unpack_from('<II', data, off)
        body = off + 8
        if rtype == 0:
            break
        if rtype == 1:
            count = struct.unpack_from('<I', data, body)[0]
            pfns = struct.unpack_from('<%dQ' % count, data, body + 8)
            p = body + 8 + 8 * count
            for e in pfns:
                t, pfn = e >> 60, e & ((1 << 52) - 1)
                types[pfn] = t
                if t in (0, 1, 2, 3, 4, 9, 10, 11, 12):
                    if t & 7:
                        pages[pfn] = struct.unpack_from('<512Q', data, p)
                    p += 4096
        elif rtype == 4:
            vcpu = data[body + 8: body + rlen]
        off = body + ((rlen + 7) & ~7)
    return types, pages, vcpu

names = {0: 'NOTAB', 1: 'L1', 2: 'L2', 3: 'L3', 4: 'L4', 9: 'L1pin', 10: 'L2pin',
         11: 'L3pin', 12: 'L4pin', 13: 'BROKEN', 14: 'XALLOC', 15: 'XTAB'}
a = load(sys.argv[1])
counts = {}
for t in a[0].values():
    counts[t] = counts.get(t, 0) + 1
print('%s: %s' % (sys.argv[1], ', '.join('%s %d' % (names.get(k, hex(k)), v) for k, v in sorted(counts.items()))))
if len(sys.argv) > 2:
    b = load(sys.argv[2])
    counts = {}
    for t in b[0].values():
        counts[t] = counts.get(t, 0) + 1
    print('%s: %s' % (sys.argv[2], ', '.join('%s %d' % (names.get(k, hex(k)), v) for k, v in sorted(counts.items()))))
    diff = [(p, names.get(a[0].get(p)), names.get(b[0].get(p))) for p in sorted(set(a[0]) | set(b[0])) if a[0].get(p) != b[0].get(p)]
    print('pfns whose type differs: %d %s' % (len(diff), diff[:10]))
    n = 0
    for p in sorted(set(a[1]) & set(b[1])):
        if a[1][p] != b[1][p]:
            d = [(i, hex(x), hex(y)) for i, (x, y) in enumerate(zip(a[1][p], b[1][p])) if x != y]
            if n < 6:
                print('pfn %#x (%s): %d entries differ: %s' % (p, names.get(a[0][p]), len(d), d[:4]))
            n += 1
    print('page tables with different entries: %d of %d' % (n, len(set(a[1]) & set(b[1]))))
    if a[2] and b[2]:
        va, vb = struct.unpack('<%dQ' % (len(a[2]) // 8), a[2]), struct.unpack('<%dQ' % (len(b[2]) // 8), b[2])
        print('vcpu0 context words that differ: %s' % [(i, hex(x), hex(y)) for i, (x, y) in enumerate(zip(va, vb)) if x != y][:20])
