/* vmshell.c - the one builder of a VM shell, with one error policy, for boot, restore and the pool. */
#include "runtime/vmshell.h"

#include <errno.h>
#include <string.h>

#include "kvm/mono.h"

int sandbox_kvm_err(int ret)
{
	switch (ret) {
	case -EINVAL:
	case -ENOTTY:
	case -ENXIO:
	case -ENOSYS:
	case -ENODEV:
		return -ENODEV;   /* KVM refused or lacks what we asked: "KVM unusable" */
	default:
		return ret;       /* -ENOMEM, -EMFILE, -EBUSY, ...: the host's own errno */
	}
}

/* /dev/kvm that cannot be opened or lacks the API is "KVM unusable"; a full fd table is not. */
static int vmshell_open_err(int ret)
{
	switch (ret) {
	case -EMFILE:
	case -ENFILE:
	case -ENOMEM:
		return ret;
	default:
		return -ENODEV;
	}
}

/* Run an optional hook; its time is its own, so the next step's lap starts after it. */
static int vmshell_hook(int (*fn)(struct snapbox *, void *), struct snapbox *sb, void *arg,
			uint64_t *t)
{
	int ret = fn ? fn(sb, arg) : 0;

	*t = mono_now_ns();
	return ret;
}

int vmshell_build(struct snapbox *sb, const struct vmshell_ops *ops, void *arg,
		  struct vmshell_times *tm)
{
	uint64_t t = mono_now_ns();
	int ret;

	memset(tm, 0, sizeof(*tm));
	ret = kvmsys_init(&sb->sys, ops->kvm_path);
	tm->kvm_fd_open = mono_lap(&t);
	if (ret)
		return vmshell_open_err(ret);
	sb->have_sys = true;
	ret = vmshell_hook(ops->check, sb, arg, &t);
	if (ret)
		return ret;
	ret = vm_init(&sb->vm, &sb->sys);
	tm->kvm_create_vm = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	sb->have_vm = true;
	ret = vm_arch_setup(&sb->vm);
	tm->vm_arch_setup = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	ret = ops->map_memory(sb, arg);
	tm->guest_memory_mmap = mono_lap(&t);
	if (ret)
		return ret;
	sb->have_mem = true;
	/* Filled before the slot exists: KVM never maps a half-written image. */
	ret = vmshell_hook(ops->fill_memory, sb, arg, &t);
	if (ret)
		return ret;
	ret = vm_set_memory(&sb->vm, 0, 0, sb->mem.size, sb->mem.host);
	tm->set_memory = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	ret = vcpu_init(&sb->vcpu, &sb->vm, 0);
	tm->vcpu_creation = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	sb->have_vcpu = true;
	ret = vmshell_hook(ops->setup_vcpu, sb, arg, &t);
	if (ret)
		return ret;
	ret = sandbox_setup_devices(sb);
	tm->devices = mono_lap(&t);
	return ret;
}
