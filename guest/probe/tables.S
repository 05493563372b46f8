/* tables.S - the probe's page tables, GDT, TSS, IDT, iretq frames and stacks, all built at link time. */

#include "guest/probe/probe.h"

	.section .data.tables, "aw"

/*
 * Identity map of 0..4 GiB with 2 MiB pages, user bit set everywhere so ring
 * 3 can reach RAM, the zero page, the probe's own tables and the MMIO hole.
 * PML4 -> PDPT -> 4 page directories. Page aligned (section starts aligned).
 */
	.balign 4096
	.globl probe_pml4
probe_pml4:
	.quad probe_pdpt + PTE_P + PTE_RW + PTE_US
	.fill 511, 8, 0

	.balign 4096
probe_pdpt:
	.quad probe_pd + 0x0000 + PTE_P + PTE_RW + PTE_US
	.quad probe_pd + 0x1000 + PTE_P + PTE_RW + PTE_US
	.quad probe_pd + 0x2000 + PTE_P + PTE_RW + PTE_US
	.quad probe_pd + 0x3000 + PTE_P + PTE_RW + PTE_US
	.fill 508, 8, 0

	.balign 4096
probe_pd:
	.set probe_pde_i, 0
	.rept 4 * 512
	.quad (probe_pde_i << 21) + PTE_P + PTE_RW + PTE_US + PTE_PS
	.set probe_pde_i, probe_pde_i + 1
	.endr

/*
 * IDT: 256 gates, all absent except #GP (the ring-0 trampoline, entry.S)
 * and the PIC IRQ range. Every other exception has no gate on purpose: it
 * escalates to a triple fault, the guest's shutdown (PROTO_FAULT_TRIPLE).
 * Gate offsets are split by the linker (probe.ld); handlers sit below
 * 4 GiB so bits 63:32 are 0.
 */
.macro GATE lo, hi, attr
	.word \lo
	.word PROBE_SEL_KCODE
	.byte 0                        /* IST */
	.byte \attr
	.word \hi
	.long 0
	.long 0
.endm

	.balign 4096
	.globl probe_idt
probe_idt:
	.fill PROBE_VEC_GP * 16, 1, 0
	GATE PROBE_GP_LO, PROBE_GP_HI, IDT_INTGATE_DPL0            /* 0x0d #GP */
	.fill (PROBE_VEC_IRQ_BASE - PROBE_VEC_GP - 1) * 16, 1, 0
	.rept 16                       /* 0x20-0x2f: master + slave PIC */
	GATE PROBE_IRQ_LO, PROBE_IRQ_HI, IDT_INTGATE_DPL0
	.endr
	.fill (256 - PROBE_VEC_IRQ_BASE - 16) * 16, 1, 0
probe_idt_end:

/*
 * GDT. Accessed bits are preset so the CPU (or PVM's emulator) never has to
 * write them back. The TSS descriptor's base is split by the linker.
 */
	.balign 16
probe_gdt:
	.quad 0                        /* 0x00 null */
	.quad 0x00af9b000000ffff       /* 0x08 kernel code, 64-bit, DPL 0 */
	.quad 0x00cf93000000ffff       /* 0x10 kernel data, DPL 0 */
	.quad 0x00cff3000000ffff       /* 0x18 user data, DPL 3 */
	.quad 0x00affb000000ffff       /* 0x20 user code, 64-bit, DPL 3 */
	.word PROBE_TSS_SIZE - 1       /* 0x28 64-bit TSS (available), 16 bytes */
	.word PROBE_TSS_B15_0
	.byte PROBE_TSS_B23_16
	.byte 0x89
	.byte 0
	.byte PROBE_TSS_B31_24
	.long 0
	.long 0
probe_gdt_end:

/* Pseudo-descriptors: 2-byte limit + 8-byte base (32-bit lgdt uses 4 of them). */
	.balign 16
	.word 0, 0, 0
	.globl probe_gdt_ptr
probe_gdt_ptr:
	.word probe_gdt_end - probe_gdt - 1
	.quad probe_gdt

	.balign 16
	.word 0, 0, 0
	.globl probe_idt_ptr
probe_idt_ptr:
	.word probe_idt_end - probe_idt - 1
	.quad probe_idt

	/* limit 0: any event after probe_die's lidt is a triple fault */
	.balign 16
	.word 0, 0, 0
	.globl probe_null_idt_ptr
probe_null_idt_ptr:
	.word 0
	.quad 0

	.globl probe_tss_sel
probe_tss_sel:
	.word PROBE_SEL_TSS

/* 64-bit TSS: only RSP0 matters; no IST, no I/O bitmap (IOPL 3 covers ports). */
	.balign 16
	.globl probe_tss
probe_tss:
	.long 0
	.quad probe_kstack_top         /* RSP0 */
	.quad 0, 0                     /* RSP1, RSP2 */
	.quad 0                        /* reserved */
	.quad 0, 0, 0, 0, 0, 0, 0      /* IST1-7 */
	.quad 0                        /* reserved */
	.word 0
	.word PROBE_TSS_SIZE           /* I/O map base beyond the limit: no bitmap */
	.if . - probe_tss - PROBE_TSS_SIZE
	.error "TSS size"
	.endif

/* iretq frames (RIP, CS, RFLAGS, RSP, SS): IOPL 3 so ring 3 owns the ports, IF 0. */
	.balign 16
	.globl probe_iret_linux
probe_iret_linux:
	.quad probe_user_linux, PROBE_SEL_UCODE, PROBE_USER_RFLAGS, probe_ustack_top, PROBE_SEL_UDATA
	.globl probe_iret_pvh
probe_iret_pvh:
	.quad probe_user_pvh, PROBE_SEL_UCODE, PROBE_USER_RFLAGS, probe_ustack_top, PROBE_SEL_UDATA

/* Stacks. The ring-0 one only ever holds interrupt frames. */
	.section .bss
	.balign 4096
probe_kstack:
	.skip PROBE_KSTACK_SIZE
	.globl probe_kstack_top
probe_kstack_top:
probe_ustack:
	.skip PROBE_USTACK_SIZE
	.globl probe_ustack_top
probe_ustack_top:

	.section .note.GNU-stack, "", @progbits
