/* unit_compat.c - the snapshot-versus-host check: on hardware KVM only KVM's supported CPUID counts; on KVM-PVM the CPU's own bits count too. */
#include <criterion/criterion.h>
#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>

#include "runtime/compat.h"
#include "tests/common_capture.h"

/* A one-leaf CPUID table: leaf 1 with the given edx. */
static struct kvm_cpuid2 *uc_leaf1(uint32_t edx)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(c->entries[0]));

	cr_assert_not_null(c);
	c->nent = 1;
	c->entries[0].function = 1;
	c->entries[0].edx = edx;
	return c;
}

static int uc_check_ecx(bool pvm, uint32_t want, uint32_t have, uint32_t want_ecx);

/* The check for a snapshot whose guest saw leaf 1 edx = want, on a host whose KVM supports `have`. */
static int uc_check(bool pvm, uint32_t want, uint32_t have)
{
	return uc_check_ecx(pvm, want, have, 0);
}

/* The same with leaf 1's ecx as the guest saw it (the host's ecx is 0). */
static int uc_check_ecx(bool pvm, uint32_t want, uint32_t have, uint32_t want_ecx)
{
	struct kvmsys sys = { .fd = -1, .is_pvm = pvm, .cpuid = uc_leaf1(have) };
	struct snapconf conf = { .mem_bytes = 256ull << 20, .vcpus = 1, .backend = pvm ? 1 : 0 };
	struct vcpu_state_host host = { .cpuid = uc_leaf1(want) };
	int ret;

	host.cpuid->entries[0].ecx = want_ecx;
	ret = compat_check(&sys, &conf, &host);

	free(sys.cpuid);
	free(host.cpuid);
	return ret;
}

Test(compat, hardware_kvm_trusts_only_its_supported_cpuid, .init = tests_quiet_stderr)
{
	unsigned a, b, c, d;

	cr_assert(__get_cpuid(1, &a, &b, &c, &d));
	cr_assert(d & (1u << 26), "this CPU has no SSE2?");
	/* The guest saw SSE2; this host's CPU has it, but KVM does not offer it. */
	cr_assert_eq(uc_check(false, 1u << 26, 0), -ENOTSUP,
		     "hardware KVM must not count the CPU's own bits as supported");
	cr_assert_eq(uc_check(false, 1u << 26, 1u << 26), 0);
}

Test(compat, pvm_counts_the_cpus_own_bits, .init = tests_quiet_stderr)
{
	/* KVM-PVM's supported set is small; the CPU's bits are what guests get. */
	cr_assert_eq(uc_check(true, 1u << 26, 0), 0);
	cr_assert_eq(uc_check(true, 1u << 30 /* reserved in leaf 1 edx */, 0), -ENOTSUP);
}

/*
 * KVM reports CPUID 1.ecx OSXSAVE as the guest's CR4.OSXSAVE, and the
 * supported set never has it: a Linux guest's snapshot (it enables XSAVE)
 * must still restore. Found in the lab once L0 offered XSAVE to L1.
 */
Test(compat, os_controlled_bits_are_not_host_features, .init = tests_quiet_stderr)
{
	cr_assert_eq(uc_check_ecx(false, 0, 0, 1u << 27), 0, "OSXSAVE taken for a CPU feature");
	cr_assert_eq(uc_check_ecx(false, 0, 0, 1u << 31), 0, "the hypervisor bit is ours");
	cr_assert_eq(uc_check_ecx(false, 0, 0, 1u << 28 /* AVX */), -ENOTSUP);
}
