/* vcpu_state_live.c - the parts of a vCPU restore that real KVM treats differently once a vCPU has run or a TSC is written: CPUID equality and an exact guest TSC. */
#include "kvm/kvmcall.h"
#include "kvm/vcpu_state.h"
#include "kvm/log.h"

#include <errno.h>
#include <x86intrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define VCPU_LIVE_MSR_TSC 0x00000010u

/*
 * CPUID bits KVM rewrites at run time from the vCPU's registers (it calls
 * this its "runtime update"): they follow CR4, XCR0 and the APIC ID, which
 * the rest of the restore sets, so they carry no CPUID of their own.
 */
static void vcpu_live_mask_runtime(struct kvm_cpuid_entry2 *e)
{
	if (e->function == 1) {
		e->ebx &= 0x00ffffffu;          /* initial APIC ID */
		e->ecx &= ~(1u << 27);          /* OSXSAVE = CR4.OSXSAVE */
	} else if (e->function == 7 && e->index == 0) {
		e->ecx &= ~(1u << 4);           /* OSPKE = CR4.PKE */
	} else if (e->function == 0xd && (e->index == 0 || e->index == 1)) {
		e->ebx = 0;                     /* XSAVE size for the enabled XCR0/XSS */
	}
}

/*
 * 0 when a and b agree entry by entry outside the runtime bits; else -1 with
 * the first entry that differs. Compared in place, not looked up by leaf:
 * KVM keeps the table as it was set, duplicates (a zeroed entry is leaf 0.0)
 * included.
 */
static int vcpu_live_cpuid_diff(const struct kvm_cpuid2 *a, const struct kvm_cpuid2 *b,
				uint32_t *fn, uint32_t *idx)
{
	uint32_t i;

	if (a->nent != b->nent) {
		*fn = *idx = 0xffffffffu;
		return -1;
	}
	for (i = 0; i < a->nent; i++) {
		struct kvm_cpuid_entry2 x = a->entries[i], y = b->entries[i];

		*fn = x.function;
		*idx = x.index;
		vcpu_live_mask_runtime(&x);
		vcpu_live_mask_runtime(&y);
		if (x.function != y.function || x.index != y.index || x.flags != y.flags ||
		    x.eax != y.eax || x.ebx != y.ebx || x.ecx != y.ecx || x.edx != y.edx)
			return -1;
	}
	return 0;
}

int vcpu_state_cpuid_on_run_vcpu(struct vcpu *v, const struct kvm_cpuid2 *want)
{
	struct vcpu_state cur;
	uint32_t fn = 0, idx = 0;
	int ret;

	vcpu_state_init(&cur);
	ret = vcpu_state_read_cpuid(v, &cur);
	if (ret)
		return ret;
	if (vcpu_live_cpuid_diff(want, cur.cpuid, &fn, &idx) == 0) {
		ret = 0;
	} else if (fn == 0xffffffffu) {
		log_msg("snapbox: vCPU %d has run with %u CPUID leaves, the state has %u; KVM takes "
			"no new CPUID once a vCPU has run (restore into a new vCPU)\n", v->id,
			cur.cpuid->nent, want->nent);
		ret = -EBUSY;
	} else {
		log_msg("snapbox: vCPU %d has run with another CPUID leaf 0x%x.%u than the "
			"state's; KVM takes no new CPUID once a vCPU has run (restore into a new vCPU)\n",
			v->id, fn, idx);
		ret = -EBUSY;
	}
	vcpu_state_fini(&cur);
	return ret;
}

/* One MSR of this vCPU through KVM_GET_MSRS (host-initiated). */
static int vcpu_live_get_msr(struct vcpu *v, uint32_t index, uint64_t *val)
{
	/* kvm_msrs ends in a flexible array: room for one entry behind it. */
	union {
		struct kvm_msrs h;
		uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m;

	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 1;
	m.h.entries[0].index = index;
	if (kvmcall(v->fd, KVM_GET_MSRS, &m) != 1) {
		log_msg("snapbox: vCPU %d KVM_GET_MSRS 0x%x failed\n", v->id, index);
		return -EIO;
	}
	*val = m.h.entries[0].data;
	return 0;
}

/* Probe (once per vCPU) the TSC offset attribute and read the current offset. */
static int vcpu_live_tsc_probe(struct vcpu *v)
{
#ifdef KVM_VCPU_TSC_CTRL
	uint64_t off = 0;
	struct kvm_device_attr a = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)&off,
	};
	int ret;

	if (v->tsc_ctrl >= 0)
		return 0;
	if (kvmcall(v->fd, KVM_HAS_DEVICE_ATTR, &a) < 0) {
		v->tsc_ctrl = 0;
		return 0;
	}
	if (kvmcall(v->fd, KVM_GET_DEVICE_ATTR, &a) < 0) {
		ret = -errno;
		log_msg("snapbox: vCPU %d: reading the TSC offset: %s\n", v->id, strerror(-ret));
		return ret;
	}
	v->tsc_offset = off;
	v->tsc_ctrl = 1;
	return 0;
#else
	v->tsc_ctrl = 0;
	return 0;
#endif
}

int vcpu_state_prepare_restore(struct vcpu *v)
{
	/* The kvm_run page is mapped, not yet faulted in: the state load writes it. */
	(void)*(volatile uint8_t *)v->run;
	uint32_t khz;
	int ret = vcpu_state_host_tsc_khz(v, &khz);

	return ret ? ret : vcpu_live_tsc_probe(v);
}

int vcpu_state_set_tsc(struct vcpu *v, uint64_t tsc)
{
#ifdef KVM_VCPU_TSC_CTRL
	uint64_t off, now = 0;
	struct kvm_device_attr a = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)&off,
	};
	int ret;

	/*
	 * Why not a write of IA32_TSC: KVM reads a host write that lands within
	 * a second of the TSC it expects (a new vCPU starts at 0) as an attempt
	 * to synchronise vCPUs, and keeps its own offset instead. A snapshot
	 * taken in the guest's first second would then restore with its TSC set
	 * back. The offset attribute (Linux 5.16+) is taken as given:
	 * guest TSC = scaled host TSC + offset, so moving the offset by
	 * (wanted - current) lands the guest TSC on the wanted value. The
	 * current offset is only ever changed here, so it is read once
	 * (vcpu_live_tsc_probe, at shell build) and remembered.
	 */
	ret = vcpu_live_tsc_probe(v);
	if (ret)
		return ret;
	if (!v->tsc_ctrl)
		return 1;
	if (!v->tsc_scaled) {
		/* At the host's own rate guest TSC = host TSC + offset, and this
		 * process reads the host TSC itself: no ioctl needed to learn it. */
		off = tsc - __rdtsc();
	} else {
		ret = vcpu_live_get_msr(v, VCPU_LIVE_MSR_TSC, &now);
		if (ret)
			return ret;
		off = v->tsc_offset + (tsc - now);
	}
	if (kvmcall(v->fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
		ret = -errno;
		log_msg("snapbox: vCPU %d: setting the TSC offset: %s\n", v->id, strerror(-ret));
		return ret;
	}
	v->tsc_offset = off;
	return 0;
#else
	(void)v;
	(void)tsc;
	return 1;
#endif
}
