/* vm.c - KVM VM creation, arch setup and memory slots. */
#include "kvm/kvmcall.h"
#include "kvm/vm.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "proto/layout.h"

int vm_init(struct vm *vm, struct kvmsys *sys)
{
	vm->sys = sys;
	atomic_init(&vm->irq_levels, 0);
	vm->fd = kvmcall(sys->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		int ret = -errno;

		log_msg("snapbox: KVM_CREATE_VM: %s\n", strerror(-ret));
		return ret;
	}
	return 0;
}

void vm_fini(struct vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

static int vm_ioctl(struct vm *vm, unsigned long req, unsigned long arg, const char *what)
{
	if (kvmcall(vm->fd, req, arg) < 0) {
		int ret = -errno;

		log_msg("snapbox: %s: %s\n", what, strerror(-ret));
		return ret;
	}
	return 0;
}

int vm_arch_setup(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = LAYOUT_IDMAP_ADDR;
	int ret;

	/* TSS and identity map live in the MMIO hole, above all guest RAM. */
	ret = vm_ioctl(vm, KVM_SET_TSS_ADDR, LAYOUT_TSS_ADDR, "KVM_SET_TSS_ADDR");
	if (ret)
		return ret;
	ret = vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, (unsigned long)&idmap,
		       "KVM_SET_IDENTITY_MAP_ADDR");
	if (ret)
		return ret;
	/* The irqchip must exist before vCPUs are created, so each gets a LAPIC. */
	ret = vm_ioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
	if (ret)
		return ret;
	/* PIT2 after the irqchip: the PIT delivers through the PIC/IOAPIC. */
	return vm_ioctl(vm, KVM_CREATE_PIT2, (unsigned long)&pit, "KVM_CREATE_PIT2");
}

int vm_set_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, (unsigned long)&r,
			"KVM_SET_USER_MEMORY_REGION");
}

int vm_irq_line(struct vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = level };
	unsigned bit = irq < 32 ? 1u << irq : 0, old;
	int ret;

	if (bit) {
		old = level ? atomic_fetch_or(&vm->irq_levels, bit) : atomic_fetch_and(&vm->irq_levels, ~bit);
		if (!!(old & bit) == !!level)
			return 0;
	}
	ret = vm_ioctl(vm, KVM_IRQ_LINE, (unsigned long)&l, "KVM_IRQ_LINE");
	/* Failed: KVM's level is unknown, so the next call must not be skipped. */
	if (ret && bit)
		atomic_fetch_xor(&vm->irq_levels, bit);
	return ret;
}

int vm_irqfd(struct vm *vm, unsigned gsi)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int ret;

	if (efd < 0) {
		ret = -errno;
		log_msg("snapbox: eventfd for GSI %u: %s\n", gsi, strerror(-ret));
		return ret;
	}
	struct kvm_irqfd irqfd = { .fd = (uint32_t)efd, .gsi = gsi };
	ret = vm_ioctl(vm, KVM_IRQFD, (unsigned long)&irqfd, "KVM_IRQFD");
	if (ret) {
		close(efd);
		return ret;
	}
	return efd;
}
