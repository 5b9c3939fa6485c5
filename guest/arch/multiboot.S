/* SPDX-License-Identifier: MIT */
/*
 * Multiboot entry (QEMU -kernel): the same guest, booted by a multiboot
 * loader instead of the remus VMM.  32-bit protected mode on entry
 * (EAX = 0x2BADB002, EBX = multiboot info).  Builds identity page tables
 * (4 GiB of 2 MiB user pages), a GDT with user segments and a TSS, enters
 * long mode, then IRETs to CPL3 with IOPL 3 -- on PVM-based KVM only CPL3
 * code runs at native speed -- and calls mb_main(mbi).
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
    /* to CPL3, IOPL 3, interrupts off */
    mov     mb_info(%rip), %edi
    pushq   $0x23                     /* ss */
    lea     mb_user_stack_top(%rip), %rax
    pushq   %rax                      /* rsp */
    pushq   $0x3002                   /* rflags: IOPL 3 */
    pushq   $0x1b                     /* cs */
    lea     mb_user(%rip), %rax
    pushq   %rax
    iretq
mb_user:
    mov     $0x23, %ax
    mov     %ax, %ds
    mov     %ax, %es
    call    mb_main
3:  jmp     3b

    .section .data.mb, "aw"
    .align 16
mb_gdt:
    .quad 0
    .quad 0x00af9a000000ffff          /* 0x08 kernel code 64 */
    .quad 0x00cf92000000ffff          /* 0x10 kernel data */
    .quad 0x00affa000000ffff          /* 0x18 user code 64, DPL 3 */
    .quad 0x00cff2000000ffff          /* 0x20 user data, DPL 3 */
    .quad 0x0000890000000067          /* 0x28 TSS (base filled in) */
    .quad 0
mb_gdt_end:
mb_gdtr:
    .word mb_gdt_end - mb_gdt - 1
    .long mb_gdt
mb_info:
    .long 0

    .section .bss.mb, "aw", @nobits
    .align 4096
mb_pml4: .space 4096
mb_pdpt: .space 4096
mb_pd:   .space 4096 * 4
mb_tss:  .space 104
    .align 16
    .space 16384
mb_stack_top:
    .space 65536
mb_user_stack_top:
    .section .note.GNU-stack, "", @progbits
