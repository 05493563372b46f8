/* kvm_vmshell.c - the VM-shell builder on real KVM: a hook's own errno reaches the caller, and only what was built is unwound. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "kvm/gmem.h"
#include "runtime/vmshell.h"
#include "tests/common_capture.h"
#include "tests/common_kvm.h"

static int kvs_map_calls;

static int kvs_refuse(struct snapbox *sb, void *arg)
{
	(void)sb;
	return *(int *)arg;
}

static int kvs_map_fail(struct snapbox *sb, void *arg)
{
	(void)sb;
	(void)arg;
	kvs_map_calls++;
	return -ENOMEM;
}

static int kvs_map_ok(struct snapbox *sb, void *arg)
{
	(void)arg;
	kvs_map_calls++;
	return gmem_init(&sb->mem, 16u << 20);
}

static struct snapbox *kvs_new(void)
{
	struct snapbox *sb = calloc(1, sizeof(*sb));

	cr_assert_not_null(sb);
	sb->console_fd = -1;
	return sb;
}

/* A refused compatibility check is the snapshot's fault (-ENOTSUP), not KVM's; no VM is made. */
Test(vmshell_kvm, check_refusal_keeps_its_errno_before_any_vm)
{
	const struct vmshell_ops ops = { .check = kvs_refuse, .map_memory = kvs_map_ok };
	int refusal = -ENOTSUP;
	struct snapbox *sb;
	struct vmshell_times tm;

	TESTS_REQUIRE_KVM();
	tests_quiet_stderr();
	sb = kvs_new();
	kvs_map_calls = 0;
	cr_assert_eq(vmshell_build(sb, &ops, &refusal, &tm), -ENOTSUP);
	cr_assert(sb->have_sys);
	cr_assert(!sb->have_vm, "refusing must cost no VM");
	cr_assert_eq(kvs_map_calls, 0);
	sandbox_free(sb);
}

/* Out of memory stays -ENOMEM (the CLI used to print "KVM unusable"); the VM made so far is unwound. */
Test(vmshell_kvm, memory_failure_keeps_enomem)
{
	const struct vmshell_ops ops = { .map_memory = kvs_map_fail };
	struct snapbox *sb;
	struct vmshell_times tm;

	TESTS_REQUIRE_KVM();
	tests_quiet_stderr();
	sb = kvs_new();
	kvs_map_calls = 0;
	cr_assert_eq(vmshell_build(sb, &ops, NULL, &tm), -ENOMEM);
	cr_assert_eq(kvs_map_calls, 1);
	cr_assert(sb->have_vm && !sb->have_mem && !sb->have_vcpu);
	sandbox_free(sb);
}

/* The whole shell: every step marks what it built, and devices are wired. */
Test(vmshell_kvm, full_shell_builds_every_part)
{
	const struct vmshell_ops ops = { .map_memory = kvs_map_ok };
	struct snapbox *sb;
	struct vmshell_times tm;

	TESTS_REQUIRE_KVM();
	sb = kvs_new();
	cr_assert_eq(vmshell_build(sb, &ops, NULL, &tm), 0);
	cr_assert(sb->have_sys && sb->have_vm && sb->have_mem && sb->have_vcpu && sb->have_dev);
	cr_assert_eq(sb->mem.size, 16u << 20);
	cr_assert_gt(tm.kvm_create_vm, 0);
	sandbox_free(sb);
}
