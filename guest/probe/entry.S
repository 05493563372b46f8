/* entry.S - probe entry points (Linux 64-bit boot, PVH), the #GP ring-0 trampoline and its privileged-op wrappers. */

#include "guest/probe/probe.h"

/*
 * Under KVM-PVM every ring-0 instruction is emulated (~2.5 us each), so the
 * ring-0 code below is straight-line and minimal: no loops (bar the
 * deliberate HLT_CLI one), no calls; its only stack use is iretq frames,
 * static (tables.S) at boot, built in ring 3 for each privileged op.
 * Everything else (GDT, IDT, TSS, page tables) is finished at link time.
 *
 * Ring-0 instruction counts:
 *   Linux 64-bit entry to ring 3:   8  (rdtsc lgdt mov mov-cr3 ltr lidt mov iretq)
 *   PVH 32-bit entry to ring 3:    18
 *   each privileged op from ring 3: 8 + body (see RING0), e.g. inb = 9,
 *   rep outsb of a whole frame = 9, sleep for an IRQ = 12 + 1 per IRQ taken
 *   (exits are separate: KVM exits once per byte for rep outsb)
 */

/* ---- Xen PVH entry note (QEMU -M microvm / pc boot the ELF through it) ---- */
	.section .note.Xen, "a"
	.balign 4
	.long 4                        /* namesz: "Xen\0" */
	.long 8                        /* descsz: a pointer-sized address, as Linux does */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.quad probe_entry32            /* QEMU reads 8 bytes for an ELF64 note */

	.section .text.entry, "ax"

/*
 * Linux 64-bit boot protocol: long mode, ring 0, the VMM's identity map (no
 * user bit), CS=0x10 DS=0x18, RSI = boot_params, interrupts off.
 * RSI is passed through to ring 3 untouched; EDX:EAX carries the entry TSC.
 */
	.code64
	.globl probe_entry64
	.type probe_entry64, @function
probe_entry64:
	rdtsc                          /* init_entry timestamp, first thing */
	lgdt probe_gdt_ptr
	mov $probe_pml4, %ecx          /* own tables: same identity map + user bit */
	mov %rcx, %cr3
	ltr probe_tss_sel
	lidt probe_idt_ptr
	mov $probe_iret_linux, %esp    /* static frame: RIP CS RFLAGS RSP SS */
	iretq                          /* -> probe_user_linux, CPL 3, IOPL 3, IF 0 */
	.size probe_entry64, . - probe_entry64

/*
 * PVH: 32-bit protected mode, paging off, EBX = hvm_start_info.
 * Enable PAE + LME + paging on our own tables, then join 64-bit code.
 */
	.code32
	.globl probe_entry32
	.type probe_entry32, @function
probe_entry32:
	mov %ebx, %esi                 /* start info -> RSI, as for the Linux entry */
	mov $X86_CR4_PAE, %eax
	mov %eax, %cr4
	mov $probe_pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	mov $EFER_LME, %eax
	xor %edx, %edx
	wrmsr
	mov $(X86_CR0_PG | X86_CR0_ET | X86_CR0_PE), %eax
	mov %eax, %cr0
	lgdt probe_gdt_ptr
	ljmp $PROBE_SEL_KCODE, $probe_pvh64
	.size probe_entry32, . - probe_entry32

	.code64
probe_pvh64:
	rdtsc
	ltr probe_tss_sel
	lidt probe_idt_ptr
	mov $probe_iret_pvh, %esp
	iretq                          /* -> probe_user_pvh */

/* ---- ring-0 handlers, reached from ring 3 through the static IDT ---- */

/*
 * IRQ vectors 0x20-0x2f (the master and slave PIC ranges). The PIC runs in
 * auto-EOI mode (serial.c), so there is nothing to acknowledge: return. IRQs
 * are only ever taken inside probe_io_wait, the one place IF is 1.
 */
	.globl probe_irq_handler
	.type probe_irq_handler, @function
probe_irq_handler:
	iretq
	.size probe_irq_handler, . - probe_irq_handler

/*
 * #GP (vector 13): the only way into ring 0 that works on KVM-PVM.
 * Measured there: iretq to ring 3 drops IOPL to 0 (so in/out fault), an
 * `int n` from ring 3 is never delivered to its DPL-3 gate (triple fault),
 * and `syscall` does not leave CPL 3; but exceptions raised in ring 3 ARE
 * delivered through this IDT with a ring-0 stack from the TSS.
 *
 * So a ring-3 wrapper (RING0 below) pushes an iretq frame back to itself
 * and executes `mov %cr0`, which #GPs at CPL 3 on every platform. This
 * handler rewrites the saved CS/SS to ring 0 and returns to the faulting
 * instruction, which now runs at CPL 0 on the caller's stack; the wrapper
 * does its privileged work and leaves by iretq through the frame it built.
 * A #GP raised in ring 0 is a real fault: kill the guest (triple fault).
 */
	.globl probe_gp_handler
	.type probe_gp_handler, @function
probe_gp_handler:
	testb $3, 16(%rsp)             /* saved CS: from ring 3? */
	jz probe_die
	add $8, %rsp                   /* drop the error code */
	movq $PROBE_SEL_KCODE, 8(%rsp) /* return to CPL 0 ... */
	movq $PROBE_SEL_KDATA, 32(%rsp)
	iretq                          /* ... re-executing mov %cr0 */
	.size probe_gp_handler, . - probe_gp_handler

/* Empty IDT, then #UD: no handler for anything -> triple fault (shutdown). */
	.globl probe_die
probe_die:
	lidt probe_null_idt_ptr
	ud2

/* ---- ring-3 callable wrappers around privileged instructions ---- */

/*
 * RING0: build the iretq frame (RIP=\ret CS=0x23 RFLAGS RSP SS=0x1b) in ring
 * 3, natively, then trip probe_gp_handler. Everything after it up to the
 * iretq runs at CPL 0 (emulated under PVM: keep it to a few instructions).
 * RFLAGS is the constant PROBE_USER_RFLAGS (IF=0), never pushfq: under PVM
 * ring 3 runs on the real CPU, where pushfq shows IF=1, and returning with
 * IF=1 lets the firmware's still-unmasked timer IRQ in (measured: triple
 * fault on QEMU -M pc). Flags are dead across a call anyway; DF stays 0.
 * Ring-0 cost per call: 6 (#GP handler) + 1 (mov %cr0) + body + 1 (iretq).
 * Clobbers r11 only, besides the wrapper's own registers.
 */
.macro RING0 ret
	mov %rsp, %r11
	push $PROBE_SEL_UDATA
	push %r11
	push $PROBE_USER_RFLAGS
	push $PROBE_SEL_UCODE
	push $\ret
	mov %cr0, %r11
.endm

.macro WRAPPER name
	.globl \name
	.type \name, @function
\name:
.endm

/* void probe_io_outb(uint16_t port, uint8_t v) */
WRAPPER probe_io_outb
	mov %edi, %edx
	mov %esi, %eax
	RING0 1f
	outb %al, (%dx)
	iretq
1:	ret

/* uint8_t probe_io_inb(uint16_t port) */
WRAPPER probe_io_inb
	mov %edi, %edx
	xor %eax, %eax
	RING0 1f
	inb (%dx), %al
	iretq
1:	ret

/* void probe_io_outl(uint16_t port, uint32_t v) */
WRAPPER probe_io_outl
	mov %edi, %edx
	mov %esi, %eax
	RING0 1f
	outl %eax, (%dx)
	iretq
1:	ret

/* uint32_t probe_io_inl(uint16_t port) */
WRAPPER probe_io_inl
	mov %edi, %edx
	RING0 1f
	inl (%dx), %eax
	iretq
1:	ret

/* void probe_io_outsb(uint16_t port, const void *buf, size_t n): one rep outsb */
WRAPPER probe_io_outsb
	mov %rdx, %rcx
	mov %edi, %edx
	RING0 1f
	rep outsb
	iretq
1:	ret

/* void probe_io_insb(uint16_t port, void *buf, size_t n): one rep insb */
WRAPPER probe_io_insb
	mov %rdx, %rcx
	mov %edi, %edx
	mov %rsi, %rdi
	RING0 1f
	rep insb
	iretq
1:	ret

/*
 * uint8_t probe_io_wait(uint16_t lsr_port, uint8_t mask): read the port;
 * if (value & mask) == 0, sleep until an interrupt (sti; hlt: the sti
 * shadow covers the hlt, so an IRQ already pending wakes it at once).
 * Returns the value read before sleeping; the caller reads again.
 */
WRAPPER probe_io_wait
	mov %edi, %edx
	mov %esi, %ecx
	xor %eax, %eax
	RING0 1f
	inb (%dx), %al
	test %cl, %al
	jnz 2f
	sti
	hlt
2:	iretq
1:	ret

/*
 * void probe_io_wait_mem(const volatile uint16_t *a, uint16_t va,
 *                        const volatile uint16_t *b, uint16_t vb):
 * with interrupts still off, sleep (sti; hlt) unless *a != va or *b != vb,
 * so a virtqueue's used index that moved after the caller looked is never
 * slept through. Ring-0 cost: 5 instructions, plus 2 when it sleeps.
 */
WRAPPER probe_io_wait_mem
	RING0 1f
	cmpw %si, (%rdi)
	jne 2f
	cmpw %cx, (%rdx)
	jne 2f
	sti
	hlt
2:	iretq
1:	ret

/* void probe_io_wrmsr(uint32_t msr, uint64_t v) */
WRAPPER probe_io_wrmsr
	mov %edi, %ecx
	mov %esi, %eax
	mov %rsi, %rdx
	shr $32, %rdx
	RING0 1f
	wrmsr
	iretq
1:	ret

/* void probe_io_hlt_cli(void): halt with interrupts off, forever (FAULT_HLT_CLI) */
WRAPPER probe_io_hlt_cli
	RING0 1f
	cli
2:	hlt
	jmp 2b                         /* only an NMI could wake it; halt again */
1:	ret

/* void probe_io_triple_fault(void) (FAULT_TRIPLE) */
WRAPPER probe_io_triple_fault
	RING0 1f
	jmp probe_die
1:	ret

/* ---- ring 3 from here on: native speed under PVM ---- */

/*
 * RSI = boot info, EDX:EAX = entry TSC, RSP = top of the user stack
 * (16-byte aligned, so the call leaves the ABI's alignment).
 */
	.globl probe_user_linux
	.type probe_user_linux, @function
probe_user_linux:
	mov $PROBE_BOOT_LINUX, %edi
	jmp 1f
	.globl probe_user_pvh
probe_user_pvh:
	mov $PROBE_BOOT_PVH, %edi
1:	shl $32, %rdx
	or %rax, %rdx                  /* probe_main(proto, info, tsc0) */
	xor %ebp, %ebp
	call probe_main
	ud2                            /* probe_main never returns */
	.size probe_user_linux, . - probe_user_linux

	.section .note.GNU-stack, "", @progbits
