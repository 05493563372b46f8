/* compat.c - snapshot-versus-host compatibility check with a message listing every difference. */
#include "runtime/compat.h"
#include "kvm/log.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/layout.h"

struct compat_reg {
	uint32_t function, index;
	int reg;                  /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore;          /* bits snapbox sets itself (vcpu_set_cpuid), and bits that
				     mirror the guest OS's own CR4, which KVM folds into the
				     CPUID it reports (absent from the supported set) */
	const char *name;
};

/* The feature leaves; a bit the guest saw must be one the host can give. */
static const struct compat_reg compat_regs[] = {
	/* hypervisor bit: ours; OSXSAVE (27): CR4.OSXSAVE, set by any guest that uses XSAVE */
	{ 0x1, 0, 2, 1u << 31 | 1u << 27, "1.ecx" },
	{ 0x1, 0, 3, 0, "1.edx" },
	{ 0x7, 0, 1, 0, "7.0.ebx" },
	{ 0x7, 0, 2, 1u << 4, "7.0.ecx" },  /* OSPKE (4): CR4.PKE */
	{ 0x7, 0, 3, 0, "7.0.edx" },
	{ 0xd, 1, 0, 0, "0xd.1.eax" },
	{ 0x80000001, 0, 2, 0, "0x80000001.ecx" },
	{ 0x80000001, 0, 3, 0, "0x80000001.edx" },
};

static const struct kvm_cpuid_entry2 *compat_find(const struct kvm_cpuid2 *c, uint32_t fn,
						  uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		bool indexed = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

		if (e->function == fn && (!indexed || e->index == idx))
			return e;
	}
	return NULL;
}

static uint32_t compat_reg(const struct kvm_cpuid_entry2 *e, int reg)
{
	if (!e)
		return 0;
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

static void compat_add(char *msg, size_t cap, const char *what)
{
	size_t n = strlen(msg);

	snprintf(msg + n, cap - n, "%s%s", n ? "; " : "", what);
}

/* The host CPU's own register for a leaf (0 when the leaf does not exist). */
static uint32_t compat_host_cpu(uint32_t fn, uint32_t idx, int reg)
{
	unsigned int r[4] = { 0, 0, 0, 0 };

	if (!__get_cpuid_count(fn, idx, &r[0], &r[1], &r[2], &r[3]))
		return 0;
	return r[reg];
}

int compat_check(struct kvmsys *sys, const struct snapconf *conf, const struct vcpu_state_host *host)
{
	const struct kvm_cpuid2 *hc = kvmsys_supported_cpuid(sys);
	char msg[1024] = "", item[160];
	size_t i;

	if (!hc)
		return -ENODEV;
	if (conf->backend != (sys->is_pvm ? 1 : 0)) {
		snprintf(item, sizeof(item), "snapshot taken on %s KVM, this host has %s KVM",
			 conf->backend ? "PVM" : "hardware", kvmsys_backend_name(sys));
		compat_add(msg, sizeof(msg), item);
	}
	if (conf->vcpus != 1) {
		snprintf(item, sizeof(item), "%u vCPUs (this build restores 1)", conf->vcpus);
		compat_add(msg, sizeof(msg), item);
	}
	if (conf->mem_bytes < LAYOUT_MEM_MIN || conf->mem_bytes > LAYOUT_MEM_MAX) {
		snprintf(item, sizeof(item), "%llu MiB of memory (supported: %llu-%llu MiB)",
			 (unsigned long long)(conf->mem_bytes >> 20), LAYOUT_MEM_MIN >> 20,
			 LAYOUT_MEM_MAX >> 20);
		compat_add(msg, sizeof(msg), item);
	}
	for (i = 0; host->cpuid && i < sizeof(compat_regs) / sizeof(compat_regs[0]); i++) {
		const struct compat_reg *r = &compat_regs[i];
		uint32_t want = compat_reg(compat_find(host->cpuid, r->function, r->index), r->reg);
		/*
		 * What this host can give: KVM's supported CPUID, which includes
		 * what KVM emulates (x2APIC, TSC deadline). On KVM-PVM only, plus
		 * the CPU's own bits: PVM hands guests the host CPUID filtered at
		 * KVM_SET_CPUID2 and reports a much smaller "supported" set.
		 * Hardware KVM's supported set is the whole truth there.
		 */
		uint32_t have = compat_reg(compat_find(hc, r->function, r->index), r->reg) |
				(sys->is_pvm ? compat_host_cpu(r->function, r->index, r->reg) : 0);
		uint32_t missing = want & ~have & ~r->ignore;

		if (missing) {
			snprintf(item, sizeof(item), "CPUID %s bits 0x%08x missing on this host",
				 r->name, missing);
			compat_add(msg, sizeof(msg), item);
		}
	}
	if (msg[0]) {
		log_msg("snapbox: this host cannot restore the snapshot: %s\n", msg);
		return -ENOTSUP;
	}
	return 0;
}
