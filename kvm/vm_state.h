/* vm_state.h - the VM-wide KVM state (kvmclock, PIC x2, IOAPIC, PIT): capture, restore, explicit encoding. */
#ifndef SNAPBOX_KVM_VM_STATE_H
#define SNAPBOX_KVM_VM_STATE_H

#include <linux/kvm.h>

#include "kvm/sbuf.h"
#include "kvm/vm.h"

/* Versions of the 'CLCK', 'IRQC' and 'PIT2' payloads (docs/snapshot-sections.md). */
#define VM_STATE_CLOCK_VERSION    1u
#define VM_STATE_IRQCHIP_VERSION  1u
#define VM_STATE_PIT_VERSION      1u

struct vm_state {
	struct kvm_clock_data clock;      /* KVM_GET_CLOCK */
	struct kvm_pic_state pic[2];      /* KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE */
	struct kvm_ioapic_state ioapic;   /* KVM_IRQCHIP_IOAPIC */
	struct kvm_pit_state2 pit;        /* KVM_GET_PIT2 */
};

/*
 * Read the VM state in the order CLOCK, PIC master, PIC slave, IOAPIC, PIT2
 * (5 VM ioctls). Every vCPU must be paused first, so the clock read is at
 * or after the last kvmclock value the guest saw. st is fully overwritten.
 * Returns 0 or -errno (logged once).
 */
int vm_state_capture(struct vm *vm, struct vm_state *st);

/*
 * Write st into vm in the order PIC master, PIC slave, IOAPIC, PIT2, CLOCK
 * (reasons at the definition). The VM needs its irqchip and PIT2
 * (vm_arch_setup). Call it before vcpu_state_restore and with no vCPU
 * running: the guest's kvmclock resumes at st->clock.clock from the moment
 * of KVM_SET_CLOCK. Returns 0 or -errno (logged once).
 */
int vm_state_restore(struct vm *vm, const struct vm_state *st);

/*
 * One section each; encode appends (errors sticky in out->err), decode
 * fills its part of st and rejects a wrong version, truncation or a bad
 * table size with -EPROTO (logged once).
 */
void vm_state_clock_encode(const struct vm_state *st, struct sbuf *out);
int vm_state_clock_decode(struct sbuf_reader *in, struct vm_state *st);
void vm_state_irqchip_encode(const struct vm_state *st, struct sbuf *out);
int vm_state_irqchip_decode(struct sbuf_reader *in, struct vm_state *st);
void vm_state_pit_encode(const struct vm_state *st, struct sbuf *out);
int vm_state_pit_decode(struct sbuf_reader *in, struct vm_state *st);

#endif
