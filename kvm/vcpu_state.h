/* vcpu_state.h - one vCPU's complete KVM state: capture, restore, and its explicit on-disk encoding. */
#ifndef SNAPBOX_KVM_VCPU_STATE_H
#define SNAPBOX_KVM_VCPU_STATE_H

#include <stdint.h>
#include <linux/kvm.h>

#include "kvm/sbuf.h"
#include "kvm/vcpu.h"

/* Version of the 'VCPU' payload (docs/snapshot-sections.md). */
#define VCPU_STATE_VERSION       1u
/* Version of the 'HOST' payload. */
#define VCPU_STATE_HOST_VERSION  1u

/* Decode caps: checked before anything is allocated. */
#define VCPU_STATE_MAX_MSRS      4096u
#define VCPU_STATE_MAX_CPUID     1024u
#define VCPU_STATE_MAX_XSAVE     (1u << 20)
#define VCPU_STATE_MIN_XSAVE     4096u   /* struct kvm_xsave: KVM never gives less */
#define VCPU_STATE_LAPIC_SIZE    1024u   /* KVM_APIC_REG_SIZE: the architectural register page */
#define VCPU_STATE_IRQ_BITMAP    32u     /* 256 vectors, one bit each */

/*
 * Everything KVM holds for one vCPU, in the kernel's own structs so capture
 * and restore are plain ioctls; the encoding (vcpu_state_codec.c) writes
 * each field explicitly and never these structs' raw bytes.
 * The three pointers are owned (malloc'd) by the state.
 */
struct vcpu_state {
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xsave;          /* xsave_size bytes (>= 4096) */
	uint32_t xsave_size;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	uint32_t tsc_khz;                 /* KVM_GET_TSC_KHZ */
	struct kvm_cpuid2 *cpuid;         /* header + cpuid->nent entries */
	struct kvm_msrs *msrs;            /* header + msrs->nmsrs entries, ascending index */
	struct kvm_vcpu_events events;
};

/* What a snapshot needs from the host it is restored on (the 'HOST' section). */
struct vcpu_state_host {
	uint32_t tsc_khz;
	struct kvm_cpuid2 *cpuid;         /* the guest CPUID (as set on the vCPU), owned */
	uint32_t *msr_index;              /* the host's MSR set at capture, ascending, owned */
	uint32_t nmsrs;
};

/* An empty state: no allocations, safe to fini or to decode into. */
void vcpu_state_init(struct vcpu_state *st);
/* Free what the state owns and make it empty again. */
void vcpu_state_fini(struct vcpu_state *st);

/*
 * Read every piece of v's state in the save order MP_STATE, REGS, SREGS,
 * XSAVE, XCRS, DEBUGREGS, LAPIC, TSC_KHZ, CPUID, MSRs, VCPU_EVENTS (11
 * ioctls; 2 more only when an exception with a CR2/DR6 payload is pending).
 * v must not be running guest code: paused (vcpu_pause) or never started.
 * The MSR set is kvmsys_probe_msrs()'s. st must be empty (init or fini'd);
 * on failure it is left empty. Returns 0 or -errno (logged once).
 */
int vcpu_state_capture(struct vcpu *v, struct vcpu_state *st);

/*
 * Write st into v in the restore order: [TSC_KHZ if the rate differs],
 * CPUID, MP_STATE, REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, MSRs
 * (IA32_TSC first, IA32_TSC_DEADLINE last), VCPU_EVENTS. v may be freshly
 * created and never run (the fast path) or paused. Equivalent to
 * vcpu_state_restore_cpuid followed by vcpu_state_restore_regs. Returns 0
 * or -errno (logged once, naming the ioctl or the MSR KVM refused).
 */
int vcpu_state_restore(struct vcpu *v, const struct vcpu_state *st);

/*
 * The first half of vcpu_state_restore: the TSC rate (only when it differs
 * from the host's default) and KVM_SET_CPUID2. Separate so RestoreProfile
 * can time cpuid_config on its own. Kernels since 5.16 refuse a CPUID
 * *change* on a vCPU that has run (identical CPUID is accepted, 6.x).
 */
int vcpu_state_restore_cpuid(struct vcpu *v, const struct vcpu_state *st);

/* The second half: MP_STATE through VCPU_EVENTS. Needs the CPUID already set. */
int vcpu_state_restore_regs(struct vcpu *v, const struct vcpu_state *st);

/* KVM_GET_CPUID2 into st->cpuid (allocated; freed by vcpu_state_fini). Returns 0 or -errno. */
int vcpu_state_read_cpuid(struct vcpu *v, struct vcpu_state *st);

/*
 * For a vCPU that has run, which KVM refuses a different CPUID: 0 when want
 * equals the vCPU's CPUID outside the bits KVM updates at run time (the
 * caller then skips KVM_SET_CPUID2), -EBUSY after a message naming the first
 * leaf that differs, or -errno when the CPUID cannot be read.
 */
int vcpu_state_cpuid_on_run_vcpu(struct vcpu *v, const struct kvm_cpuid2 *want);

/*
 * Set the guest TSC to exactly tsc through the vCPU's TSC offset attribute
 * (KVM_VCPU_TSC_CTRL). Returns 0, 1 when this KVM lacks the attribute (the
 * caller writes IA32_TSC instead), or -errno.
 */
int vcpu_state_set_tsc(struct vcpu *v, uint64_t tsc);

/*
 * The host's default TSC rate: v->vm->sys->tsc_khz when known (the MSR probe
 * or an earlier ask), else KVM_GET_TSC_KHZ on v, remembered there. Call it
 * before any KVM_SET_TSC_KHZ on v. Returns 0 or -errno (logged).
 */
int vcpu_state_host_tsc_khz(struct vcpu *v, uint32_t *khz);

/*
 * What a restore asks of KVM that does not depend on the snapshot, asked
 * once when the VM shell is built (off a pooled request's path): the host's
 * default TSC rate (into v->vm->sys->tsc_khz), whether the vCPU has the TSC
 * offset attribute, and its current offset (fixed until it is set). Returns
 * 0 or -errno.
 */
int vcpu_state_prepare_restore(struct vcpu *v);

/*
 * Append the 'VCPU' payload (version VCPU_STATE_VERSION, every field little-
 * endian and fixed-width, blobs as u32 size + bytes). Errors are left in
 * out->err, as sbuf does.
 */
void vcpu_state_encode(const struct vcpu_state *st, struct sbuf *out);

/*
 * Parse one 'VCPU' payload into the empty st. Rejects a version other than
 * VCPU_STATE_VERSION, any truncation, counts above the caps (before
 * allocating), bad blob sizes, and MSR indices that are not strictly
 * ascending, all with -EPROTO; -ENOMEM. On failure st stays empty.
 */
int vcpu_state_decode(struct sbuf_reader *in, struct vcpu_state *st);

/* The compatibility facts from a captured state and the host's MSR set. */
void vcpu_state_host_encode(const struct vcpu_state *st, const uint32_t *msr_index,
			    uint32_t nmsrs, struct sbuf *out);

/* Parse a 'HOST' payload into the zeroed h, as vcpu_state_decode. */
int vcpu_state_host_decode(struct sbuf_reader *in, struct vcpu_state_host *h);

/* Free what h owns and zero it. */
void vcpu_state_host_fini(struct vcpu_state_host *h);

#endif
