/* unit_vmshell.c - the VM-shell builder's error policy: an unusable /dev/kvm is -ENODEV, a host shortage keeps its own errno, nothing past the failure is built. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime/vmshell.h"
#include "tests/common_capture.h"

static int vs_hook_calls;

static int vs_map(struct snapbox *sb, void *arg)
{
	(void)sb;
	(void)arg;
	vs_hook_calls++;
	return -ENOMEM;
}

static struct snapbox *vs_new(void)
{
	struct snapbox *sb = calloc(1, sizeof(*sb));

	cr_assert_not_null(sb);
	sb->console_fd = -1;
	return sb;
}

Test(vmshell, missing_kvm_device_is_enodev_and_builds_nothing)
{
	const struct vmshell_ops ops = { .kvm_path = "/nonexistent/kvm", .map_memory = vs_map };
	struct snapbox *sb = vs_new();
	struct vmshell_times tm;

	tests_quiet_stderr();
	vs_hook_calls = 0;
	cr_assert_eq(vmshell_build(sb, &ops, NULL, &tm), -ENODEV);
	cr_assert_eq(vs_hook_calls, 0, "no hook runs once KVM is unusable");
	cr_assert(!sb->have_sys && !sb->have_vm && !sb->have_mem && !sb->have_vcpu && !sb->have_dev);
	sandbox_free(sb);
}

/* A full fd table is the host's shortage, not "KVM unusable": the CLI must say EMFILE. */
Test(vmshell, full_fd_table_keeps_emfile)
{
	const struct vmshell_ops ops = { .kvm_path = "/dev/null", .map_memory = vs_map };
	struct rlimit rl = { .rlim_cur = 64, .rlim_max = 64 };
	struct snapbox *sb = vs_new();
	struct vmshell_times tm;

	tests_quiet_stderr();
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (open("/dev/null", O_RDONLY) >= 0)
		;
	cr_assert_eq(errno, EMFILE);
	vs_hook_calls = 0;
	cr_assert_eq(vmshell_build(sb, &ops, NULL, &tm), -EMFILE);
	cr_assert_eq(vs_hook_calls, 0);
	cr_assert(!sb->have_sys);
	sandbox_free(sb);
}

/* A file that is not KVM (no KVM API behind its ioctls) is unusable KVM, whatever its errno. */
Test(vmshell, not_a_kvm_device_is_enodev)
{
	const struct vmshell_ops ops = { .kvm_path = "/dev/null", .map_memory = vs_map };
	struct snapbox *sb = vs_new();
	struct vmshell_times tm;

	tests_quiet_stderr();
	vs_hook_calls = 0;
	cr_assert_eq(vmshell_build(sb, &ops, NULL, &tm), -ENODEV);
	cr_assert_eq(vs_hook_calls, 0);
	sandbox_free(sb);
}

Test(vmshell, kvm_refusals_map_to_enodev_and_host_errnos_stay)
{
	cr_assert_eq(sandbox_kvm_err(-EINVAL), -ENODEV);
	cr_assert_eq(sandbox_kvm_err(-ENOTTY), -ENODEV);
	cr_assert_eq(sandbox_kvm_err(-ENOMEM), -ENOMEM);
	cr_assert_eq(sandbox_kvm_err(-EMFILE), -EMFILE);
	cr_assert_eq(sandbox_kvm_err(-EBUSY), -EBUSY);
}
