/* kvmcall.c - the counting KVM ioctl wrapper: which ioctls a restore, a boot or a snapshot made, on its own thread. */
#include "kvm/kvmcall.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

/* The requests snapbox makes, in the order snapbox_counts reports them. */
static const struct {
	unsigned long req;
	const char *name;
} kvmcall_table[] = {
	{ KVM_GET_API_VERSION, "KVM_GET_API_VERSION" },
	{ KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION" },
	{ KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE" },
	{ KVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID" },
	{ KVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST" },
	{ KVM_GET_MSR_FEATURE_INDEX_LIST, "KVM_GET_MSR_FEATURE_INDEX_LIST" },
	{ KVM_CREATE_VM, "KVM_CREATE_VM" },
	{ KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR" },
	{ KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP" },
	{ KVM_CREATE_PIT2, "KVM_CREATE_PIT2" },
	{ KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION" },
	{ KVM_CREATE_VCPU, "KVM_CREATE_VCPU" },
	{ KVM_SET_CPUID2, "KVM_SET_CPUID2" },
	{ KVM_GET_CPUID2, "KVM_GET_CPUID2" },
	{ KVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ" },
	{ KVM_SET_TSC_KHZ, "KVM_SET_TSC_KHZ" },
	{ KVM_GET_MP_STATE, "KVM_GET_MP_STATE" },
	{ KVM_SET_MP_STATE, "KVM_SET_MP_STATE" },
	{ KVM_GET_REGS, "KVM_GET_REGS" },
	{ KVM_SET_REGS, "KVM_SET_REGS" },
	{ KVM_GET_SREGS, "KVM_GET_SREGS" },
	{ KVM_SET_SREGS, "KVM_SET_SREGS" },
	{ KVM_GET_XSAVE, "KVM_GET_XSAVE" },
	{ KVM_GET_XSAVE2, "KVM_GET_XSAVE2" },
	{ KVM_SET_XSAVE, "KVM_SET_XSAVE" },
	{ KVM_GET_XCRS, "KVM_GET_XCRS" },
	{ KVM_SET_XCRS, "KVM_SET_XCRS" },
	{ KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS" },
	{ KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS" },
	{ KVM_GET_LAPIC, "KVM_GET_LAPIC" },
	{ KVM_SET_LAPIC, "KVM_SET_LAPIC" },
	{ KVM_SET_FPU, "KVM_SET_FPU" },
	{ KVM_GET_MSRS, "KVM_GET_MSRS" },
	{ KVM_SET_MSRS, "KVM_SET_MSRS" },
	{ KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS" },
	{ KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS" },
	{ KVM_HAS_DEVICE_ATTR, "KVM_HAS_DEVICE_ATTR" },
	{ KVM_GET_DEVICE_ATTR, "KVM_GET_DEVICE_ATTR" },
	{ KVM_SET_DEVICE_ATTR, "KVM_SET_DEVICE_ATTR" },
	{ KVM_GET_CLOCK, "KVM_GET_CLOCK" },
	{ KVM_SET_CLOCK, "KVM_SET_CLOCK" },
	{ KVM_GET_IRQCHIP, "KVM_GET_IRQCHIP" },
	{ KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP" },
	{ KVM_GET_PIT2, "KVM_GET_PIT2" },
	{ KVM_SET_PIT2, "KVM_SET_PIT2" },
	{ KVM_IRQ_LINE, "KVM_IRQ_LINE" },
	{ KVM_RUN, "KVM_RUN" },
	{ KVM_IRQFD, "KVM_IRQFD" },
};

#define KVMCALL_N (sizeof(kvmcall_table) / sizeof(kvmcall_table[0]))
_Static_assert(KVMCALL_N < SNAPBOX_KVM_IOCTL_KINDS, "snapbox_counts has a slot per request and one for others");

static __thread struct kvmcall_counts kvmcall_tls;

int kvmcall_ul(int fd, unsigned long req, unsigned long arg)
{
	unsigned i;

	for (i = 0; i < KVMCALL_N && kvmcall_table[i].req != req; i++)
		;
	kvmcall_tls.n[i < KVMCALL_N ? i : SNAPBOX_KVM_IOCTL_KINDS - 1]++;
	return ioctl(fd, req, arg);
}

void kvmcall_get(struct kvmcall_counts *out)
{
	*out = kvmcall_tls;
}

void kvmcall_delta(const struct kvmcall_counts *before, uint32_t *out, uint32_t *total)
{
	*total = 0;
	for (unsigned i = 0; i < SNAPBOX_KVM_IOCTL_KINDS; i++) {
		out[i] = kvmcall_tls.n[i] - before->n[i];
		*total += out[i];
	}
}

const char *snapbox_kvm_ioctl_name(unsigned i)
{
	if (i < KVMCALL_N)
		return kvmcall_table[i].name;
	return i == SNAPBOX_KVM_IOCTL_KINDS - 1 ? "other" : NULL;
}
