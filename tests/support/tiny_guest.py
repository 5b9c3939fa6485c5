#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write a tiny guest image for the remus KVM micro-VMM (tests only).

usage: tiny_guest.py OUT.elf HALT_CODE WAIT_MS FLOOD_WRITES

The guest (one vCPU, backends/kvm/guest_abi.h) writes a console line full
of terminal escape sequences and control characters, then FLOOD_WRITES
console writes of 4096 bytes each, sleeps WAIT_MS (the POLL hypercall),
and halts with HALT_CODE.  It lets tests check what the VMM does with a
hostile guest's console and exit code without building a real guest.
"""
import struct
import sys

LOAD = 0x100000
MMIO = 0x100000000
HC_PUTS, HC_CLOCK, HC_POLL, HC_HALT = 0, 1, 5, 6
CODE_OFF = 0x100
DATA_OFF = 0x400
LINE = b"tiny-guest: \x1b[2J\x1b]0;owned\x07 bell\x07 nul\x00 cr\r end\n"
FLOOD = b"F" * 4095 + b"\n"


def main():
    out, code, wait_ms, flood = sys.argv[1], int(sys.argv[2]), \
        int(sys.argv[3]), int(sys.argv[4])
    # data: puts{line}, puts{flood}, poll{deadline}, halt{code}, clock, bytes
    line_gpa = LOAD + DATA_OFF + 0x100
    flood_gpa = line_gpa + 0x100
    data = struct.pack("<QQ", line_gpa, len(LINE))           # +0x00
    data += struct.pack("<QQ", flood_gpa, len(FLOOD))        # +0x10
    data += struct.pack("<QII", 0, 0, 0)                     # +0x20
    data += struct.pack("<q", code)                          # +0x30
    data = data.ljust(0x40, b"\0") + struct.pack("<QQ", 0, wait_ms * 1000000)
    data = data.ljust(0x100, b"\0") + LINE.ljust(0x100, b"\0") + FLOOD
    d = LOAD + DATA_OFF

    def hc(call, arg):  # movabs $MMIO+8*call,%rbx; mov $arg,%eax; mov %eax,(%rbx)
        return (b"\x48\xbb" + struct.pack("<Q", MMIO + 8 * call) +
                b"\xb8" + struct.pack("<I", arg) + b"\x89\x03")
    code_b = hc(HC_PUTS, d)
    code_b += b"\xb9" + struct.pack("<I", flood)             # mov $n,%ecx
    code_b += b"\x85\xc9"                                    # test %ecx,%ecx
    body = hc(HC_PUTS, d + 0x10) + b"\xff\xc9"               # ...; dec %ecx
    code_b += b"\x74" + bytes([len(body) + 2])               # jz past loop
    code_b += body + b"\x75" + bytes([(-(len(body) + 2)) & 0xff])  # jnz
    # deadline (+0x20) = CLOCK now + WAIT_MS (+0x48): the guest clock is
    # not zero at boot
    code_b += hc(HC_CLOCK, d + 0x40)
    code_b += b"\x48\x8b\x04\x25" + struct.pack("<I", d + 0x40)  # mov rax
    code_b += b"\x48\x03\x04\x25" + struct.pack("<I", d + 0x48)  # add rax
    code_b += b"\x48\x89\x04\x25" + struct.pack("<I", d + 0x20)  # mov ->
    # sleep: POLL until the CLOCK says the deadline passed (a POLL also
    # ends early, e.g. when the VMM pauses the vCPU for a save)
    sleep = hc(HC_POLL, d + 0x20) + hc(HC_CLOCK, d + 0x40)
    sleep += b"\x48\x8b\x04\x25" + struct.pack("<I", d + 0x40)  # mov rax
    sleep += b"\x48\x8b\x14\x25" + struct.pack("<I", d + 0x20)  # mov rdx
    sleep += b"\x48\x39\xd0"                             # cmp %rdx,%rax
    code_b += sleep + b"\x72" + bytes([(-(len(sleep) + 2)) & 0xff])  # jb
    code_b += hc(HC_HALT, d + 0x30)
    code_b += b"\xeb\xfe"                                    # jmp .
    img = bytearray(DATA_OFF + len(data))
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0,
                       0, b"\0" * 7, 2, 62, 1, LOAD + CODE_OFF, 64, 0, 0,
                       64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, LOAD, LOAD, len(img),
                       len(img), 0x1000)
    img[0:len(ehdr)] = ehdr
    img[64:64 + len(phdr)] = phdr
    img[CODE_OFF:CODE_OFF + len(code_b)] = code_b
    img[DATA_OFF:] = data
    with open(out, "wb") as f:
        f.write(img)


main()
