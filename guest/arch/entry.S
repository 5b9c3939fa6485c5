/* SPDX-License-Identifier: MIT */
/*
 * Guest entry (64-bit, CPL3, set up directly by the remus micro-VMM):
 * RDI = boot info gpa, RSI = vCPU index, RSP = 0.  Pick this vCPU's
 * stack from .bss and call guest_main(bootinfo, vcpu); if it returns,
 * halt through the hypercall.
 */
#define STACK_SIZE 65536
#define MAX_VCPUS 8

    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cmp     $MAX_VCPUS, %rsi
    jae     1f
    lea     stacks(%rip), %rsp
    mov     %rsi, %rax
    inc     %rax
    shl     $16, %rax               /* (vcpu + 1) * STACK_SIZE */
    add     %rax, %rsp
    and     $-16, %rsp
    xor     %rbp, %rbp
    call    guest_main
1:  mov     %eax, %ecx
    lea     halt_args(%rip), %rdi
    movslq  %ecx, %rcx
    mov     %rcx, (%rdi)
    movabs  $0x100000030, %rdx      /* RM_HC_MMIO_BASE + 8 * RM_HC_HALT */
    movl    %edi, (%rdx)
2:  jmp     2b

    .section .bss
    .align 4096
stacks:
    .space  STACK_SIZE * MAX_VCPUS
    .align 8
halt_args:
    .space  8
    .section .note.GNU-stack, "", @progbits
