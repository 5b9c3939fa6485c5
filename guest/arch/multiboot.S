/* SPDX-License-Identifier: MIT */
/*
 * Multiboot entry (QEMU -kernel): the same guest, booted by a multiboot
 * loader instead of the remus VMM.  32-bit protected mode on entry
 * (EAX = 0x2BADB002, EBX = multiboot info).  Builds identity page tables
 * (4 GiB of 2 MiB user pages), a GDT with user segments and a TSS, an
 * IDT, enters long mode, then IRETs to CPL3 -- on PVM-based KVM only CPL3
 * code runs at native speed -- and calls mb_main(mbi).
 *
 * Port I/O from CPL3: TCG honours IOPL 3, but PVM-based KVM ignores IOPL
 * for guest user mode (an `in` at CPL3 with IOPL 3 raises #GP there), and
 * it neither delivers `int n` from user mode (#UD) nor enters CPL0
 * reliably on `syscall` (all measured).  Exception delivery does work, so
 * the #GP handler (CPL0, emulated by PVM: slow, but it is only the console,
 * the TSC calibration and the NIC's PCI probe) performs the faulting
 * `in`/`out` itself (opcodes EC, EE, E4 ib, E6 ib; ED, EF: 32-bit through
 * DX, for PCI configuration mechanism #1) and returns past it.
 * CPU exceptions 0-31 print "remus-guest: CPU exception N" on COM1 and
 * stop, instead of a silent triple fault.
 * The header uses the a.out kludge, so the loader needs no ELF support.
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010002          /* mem info + address fields */

    .section .multiboot, "a"
    .align 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header                  /* header_addr */
    .long __mb_load_start            /* load_addr */
    .long __mb_load_end              /* load_end_addr */
    .long __mb_bss_end               /* bss_end_addr */
    .long mb_start32                 /* entry_addr */

    .section .text.mb32, "ax"
    .code32
    .globl mb_start32
mb_start32:
    cli
    mov     %ebx, mb_info
    mov     $mb_stack_top, %esp
    /* page tables: PML4[0] -> PDPT, PDPT[0..3] -> PD0..PD3 (2 MiB pages) */
    mov     $mb_pdpt, %eax
    or      $7, %eax
    mov     %eax, mb_pml4
    xor     %ecx, %ecx
1:  mov     %ecx, %eax
    shl     $12, %eax
    add     $mb_pd, %eax
    or      $7, %eax
    mov     %eax, mb_pdpt(,%ecx,8)
    inc     %ecx
    cmp     $4, %ecx
    jb      1b
    xor     %ecx, %ecx
2:  mov     %ecx, %eax                /* entry i maps i * 2 MiB */
    shl     $21, %eax
    or      $0x87, %eax               /* P RW US PS */
    mov     %eax, mb_pd(,%ecx,8)
    mov     %ecx, %eax
    shr     $11, %eax                 /* high dword: (i * 2 MiB) >> 32 */
    mov     %eax, mb_pd+4(,%ecx,8)
    inc     %ecx
    cmp     $2048, %ecx
    jb      2b
    /* TSS descriptor base */
    mov     $mb_tss, %eax
    mov     %ax, mb_gdt+0x28+2
    shr     $16, %eax
    mov     %al, mb_gdt+0x28+4
    mov     %ah, mb_gdt+0x28+7
    lgdt    mb_gdtr
    mov     %cr4, %eax
    or      $0x620, %eax              /* PAE OSFXSR OSXMMEXCPT */
    mov     %eax, %cr4
    mov     $mb_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx         /* EFER.LME */
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     %cr0, %eax
    or      $0x80010001, %eax         /* PG WP PE */
    mov     %eax, %cr0
    ljmp    $0x08, $mb_start64

    .code64
mb_start64:
    mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x28, %ax
    ltr     %ax
    /* TSS.RSP0: the gate's stack */
    lea     mb_stack_top(%rip), %rax
    mov     %rax, mb_tss+4(%rip)
    /* IDT: vectors 0-31 -> mb_fault_N stubs, 13 (#GP) -> mb_gp */
    xor     %ecx, %ecx
4:  lea     mb_fault_stubs(%rip), %rax
    mov     %ecx, %edx
    shl     $4, %edx                  /* stubs are 16 bytes apart */
    add     %rdx, %rax
    mov     $0x8e, %esi               /* P, DPL 0, interrupt gate */
    call    mb_set_gate
    inc     %ecx
    cmp     $32, %ecx
    jb      4b
    mov     $13, %ecx
    lea     mb_gp(%rip), %rax
    call    mb_set_gate
    lidt    mb_idtr(%rip)
    /* to CPL3, IOPL 3 (honoured by TCG, not by PVM), interrupts off */
    mov     mb_info(%rip), %edi
    pushq   $0x1b                     /* ss */
    lea     mb_user_stack_top(%rip), %rax
    pushq   %rax                      /* rsp */
    pushq   $0x3002                   /* rflags: IOPL 3 */
    pushq   $0x23                     /* cs */
    lea     mb_user(%rip), %rax
    pushq   %rax
    iretq
mb_user:
    mov     $0x1b, %ax
    mov     %ax, %ds
    mov     %ax, %es
    call    mb_main
3:  jmp     3b

/* mb_set_gate: IDT entry ecx := 64-bit gate to rax, type/attributes esi */
mb_set_gate:
    lea     mb_idt(%rip), %rdi
    mov     %ecx, %edx
    shl     $4, %edx
    add     %rdx, %rdi
    mov     %ax, (%rdi)               /* offset 15:0 */
    movw    $0x08, 2(%rdi)            /* kernel code selector */
    movb    $0, 4(%rdi)               /* IST 0 */
    mov     %sil, 5(%rdi)             /* type, DPL, P */
    mov     %rax, %rdx
    shr     $16, %rdx
    mov     %dx, 6(%rdi)              /* offset 31:16 */
    shr     $16, %rdx
    mov     %edx, 8(%rdi)             /* offset 63:32 */
    movl    $0, 12(%rdi)
    ret

/*
 * #GP (vector 13): emulate a port access from CPL3, or report the fault.
 * Frame: error code, rip, cs, rflags, rsp, ss.
 */
mb_gp:
    push    %rsi
    push    %rdx
    mov     24(%rsp), %rsi            /* faulting rip */
    cmpb    $0xec, (%rsi)
    je      11f
    cmpb    $0xee, (%rsi)
    je      12f
    cmpb    $0xe4, (%rsi)
    je      13f
    cmpb    $0xe6, (%rsi)
    je      14f
    cmpb    $0xed, (%rsi)
    je      16f
    cmpb    $0xef, (%rsi)
    je      17f
    pop     %rdx
    pop     %rsi
    mov     $13, %ebx
    jmp     mb_fault
11: inb     %dx, %al                  /* in al, dx */
    jmp     15f
12: outb    %al, %dx                  /* out dx, al */
    jmp     15f
13: movzbl  1(%rsi), %edx             /* in al, imm8 */
    inb     %dx, %al
    incq    24(%rsp)
    jmp     15f
14: movzbl  1(%rsi), %edx             /* out imm8, al */
    outb    %al, %dx
    incq    24(%rsp)
    jmp     15f
16: inl     %dx, %eax                 /* in eax, dx (PCI config, i440fx) */
    jmp     15f
17: outl    %eax, %dx                 /* out dx, eax */
15: incq    24(%rsp)
    incq    mb_port_emulations(%rip)
    pop     %rdx
    pop     %rsi
    add     $8, %rsp                  /* error code */
    iretq

/* CPU exception: say which on COM1, then stop */
    .align 16
mb_fault_stubs:
    .set vec, 0
    .rept 32
    .align 16
    mov     $vec, %ebx
    jmp     mb_fault
    .set vec, vec + 1
    .endr
mb_fault:
    lea     mb_fault_msg(%rip), %rsi
5:  lodsb
    test    %al, %al
    jz      6f
    call    mb_com1_putc
    jmp     5b
6:  mov     %ebx, %eax                /* vector, two decimal digits */
    xor     %edx, %edx
    mov     $10, %ecx
    div     %ecx
    add     $'0', %al
    push    %rdx
    call    mb_com1_putc
    pop     %rax
    add     $'0', %al
    call    mb_com1_putc
    mov     $' ', %al                 /* then the frame: [rsp], [rsp+8] */
    call    mb_com1_putc
    mov     (%rsp), %rbx
    call    mb_com1_hex
    mov     $' ', %al
    call    mb_com1_putc
    mov     8(%rsp), %rbx
    call    mb_com1_hex
    mov     $' ', %al
    call    mb_com1_putc
    mov     16(%rsp), %rbx
    call    mb_com1_hex
    mov     $' ', %al
    call    mb_com1_putc
    mov     24(%rsp), %rbx
    call    mb_com1_hex
    mov     $' ', %al
    call    mb_com1_putc
    mov     mb_port_emulations(%rip), %rbx
    call    mb_com1_hex
    mov     $'\n', %al
    call    mb_com1_putc
    mov     $0xf4, %dx                /* isa-debug-exit, if present */
    mov     $0x7f, %al
    outb    %al, %dx
7:  cli
    hlt
    jmp     7b
mb_com1_hex:                          /* rbx as 16 hex digits */
    mov     $16, %r8d
9:  rol     $4, %rbx
    mov     %bl, %al
    and     $0xf, %al
    add     $'0', %al
    cmp     $'9', %al
    jbe     10f
    add     $7, %al
10: call    mb_com1_putc
    dec     %r8d
    jnz     9b
    ret
mb_com1_putc:
    mov     %al, %ah
    mov     $0x3fd, %dx
8:  inb     %dx, %al
    test    $0x20, %al
    jz      8b
    mov     $0x3f8, %dx
    mov     %ah, %al
    outb    %al, %dx
    ret

    .section .data.mb, "aw"
    .align 16
mb_gdt:
    .quad 0
    .quad 0x00af9a000000ffff          /* 0x08 kernel code 64 */
    .quad 0x00cf92000000ffff          /* 0x10 kernel data */
    .quad 0x00cff2000000ffff          /* 0x18 user data, DPL 3 */
    .quad 0x00affa000000ffff          /* 0x20 user code 64, DPL 3 */
    .quad 0x0000890000000067          /* 0x28 TSS (base filled in) */
    .quad 0
mb_gdt_end:
mb_gdtr:
    .word mb_gdt_end - mb_gdt - 1
    .long mb_gdt
mb_info:
    .long 0
    .align 8
mb_port_emulations:
    .quad 0
mb_idtr:
    .word 256 * 16 - 1
    .quad mb_idt
mb_fault_msg:
    .asciz "remus-guest: CPU exception "

    .section .bss.mb, "aw", @nobits
    .align 4096
mb_pml4: .space 4096
mb_pdpt: .space 4096
mb_pd:   .space 4096 * 4
mb_idt:  .space 256 * 16
mb_tss:  .space 104
    .align 16
    .space 16384
mb_stack_top:
    .space 65536
mb_user_stack_top:
    .section .note.GNU-stack, "", @progbits
