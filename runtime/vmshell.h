/* vmshell.h - the one builder of a VM shell (KVM, VM, memory, vCPU, devices) for boot, restore and the pool. */
#ifndef SNAPBOX_RUNTIME_VMSHELL_H
#define SNAPBOX_RUNTIME_VMSHELL_H

#include <stdint.h>

#include "runtime/sandbox_internal.h"

/* Nanoseconds spent in each of the builder's own steps (hooks time themselves). */
struct vmshell_times {
	uint64_t kvm_fd_open;
	uint64_t kvm_create_vm;
	uint64_t vm_arch_setup;
	uint64_t guest_memory_mmap;
	uint64_t set_memory;
	uint64_t vcpu_creation;
	uint64_t devices;
};

/*
 * What differs between a cold boot and a restore. Every hook gets `arg`,
 * returns 0 or -errno, and logs its own failure; NULL hooks are skipped.
 */
struct vmshell_ops {
	const char *kvm_path;   /* NULL: /dev/kvm */
	/* After /dev/kvm opens, before the VM exists, so that refusing costs no VM. */
	int (*check)(struct snapbox *sb, void *arg);
	/* Required: give sb->mem its guest RAM (fresh, or a view of a template). */
	int (*map_memory)(struct snapbox *sb, void *arg);
	/* Before the memory slot is registered: write what the guest boots from. */
	int (*fill_memory)(struct snapbox *sb, void *arg);
	/* After the vCPU exists, before the devices: its CPUID and registers. */
	int (*setup_vcpu)(struct snapbox *sb, void *arg);
};

/*
 * Build sb's shell: open KVM, check, create the VM and its irqchip and PIT,
 * map and fill guest memory, register it, create vCPU 0, set it up, and wire
 * the devices. The vCPU thread is not started. Every step marks sb's have_*
 * flag as it succeeds, so sandbox_free unwinds exactly what was built.
 *
 * One error policy: KVM's refusals (-EINVAL, -ENOTTY, -ENXIO, -ENOSYS) and an
 * unopenable /dev/kvm become -ENODEV ("KVM unusable"); every other errno
 * (-ENOMEM, -EMFILE, -EBUSY, a hook's own) is returned as it was.
 */
int vmshell_build(struct snapbox *sb, const struct vmshell_ops *ops, void *arg,
		  struct vmshell_times *t);

#endif
