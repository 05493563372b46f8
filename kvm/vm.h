/* vm.h - a KVM virtual machine: creation, x86 arch setup (TSS, irqchip, PIT2), memory slots, IRQ lines. */
#ifndef SNAPBOX_KVM_VM_H
#define SNAPBOX_KVM_VM_H

#include <stdatomic.h>
#include <stdint.h>

#include "kvm/kvmsys.h"

struct vm {
	int fd;
	struct kvmsys *sys;
	atomic_uint irq_levels;     /* the level KVM holds for our source on GSIs 0..31 */
};

/* KVM_CREATE_VM. Returns 0 or -errno with a message. */
int vm_init(struct vm *vm, struct kvmsys *sys);
void vm_fini(struct vm *vm);

/*
 * x86 setup that must precede vCPU creation: TSS and identity-map addresses,
 * the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT2 with a dummy speaker.
 */
int vm_arch_setup(struct vm *vm);

/* Map host memory [host, host+size) at gpa as memory slot `slot`. */
int vm_set_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host);

/*
 * Set a GSI's level through KVM_IRQ_LINE, unless KVM already holds that
 * level for it (a new VM holds 0 on every line): a device restore that
 * re-states a low line costs no ioctl. Returns 0 or -errno.
 */
int vm_irq_line(struct vm *vm, unsigned irq, int level);

/*
 * An eventfd wired to GSI `gsi` by KVM_IRQFD: each write of a count sends
 * one edge (raised and lowered inside KVM), with no ioctl and no exit on
 * the writer's side. Returns the eventfd (the caller closes it after the
 * VM) or -errno with a message.
 */
int vm_irqfd(struct vm *vm, unsigned gsi);

#endif
