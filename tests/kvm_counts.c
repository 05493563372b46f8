/* kvm_counts.c - exact per-restore costs on the probe: the pooled cow restore's KVM ioctls equal the documented floor (docs/benchmarks.md, "Costs"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/common_kvm.h"
#include "tests/common_snap.h"
#include "proto/wire.h"
#include "runtime/sandbox_internal.h"

/*
 * The pooled cow restore's KVM ioctls on the request's thread, as the
 * "Costs" table in docs/benchmarks.md argues them. A change that adds one
 * must update that table and this number, and say why.
 */
#define TC_POOLED_COW_KVM_IOCTLS 16

static char *tc_dir, *tc_snap, *tc_cache;

static void tc_teardown(void)
{
	if (tc_dir)
		tests_rm_rf(tc_dir);
	free(tc_dir);
	free(tc_snap);
	free(tc_cache);
	tc_dir = tc_snap = tc_cache = NULL;
}

static void tc_print(const char *what, const struct snapbox_counts *c)
{
	fprintf(stderr, "counts | %s: %u KVM ioctls:", what, c->kvm_ioctls);
	for (unsigned i = 0; i < SNAPBOX_KVM_IOCTL_KINDS; i++)
		if (c->kvm_ioctl[i])
			fprintf(stderr, " %s=%u", snapbox_kvm_ioctl_name(i), c->kvm_ioctl[i]);
	fprintf(stderr, "; minflt before run %llu, thread %llu\n",
		(unsigned long long)c->minflt_before_run, (unsigned long long)c->minflt_thread);
}

static unsigned tc_named(const struct snapbox_counts *c, const char *name)
{
	for (unsigned i = 0; i < SNAPBOX_KVM_IOCTL_KINDS; i++)
		if (snapbox_kvm_ioctl_name(i) && !strcmp(snapbox_kvm_ioctl_name(i), name))
			return c->kvm_ioctl[i];
	cr_assert_fail("no ioctl named %s", name);
	return 0;
}

Test(kvm_counts, pooled_cow_restore_makes_the_documented_ioctls, .fini = tc_teardown)
{
	/* Cold shells: the state's restore is what is counted (a warm hit makes
	 * no KVM ioctl at all: kvm_pool_warm). */
	struct snapbox_pool_opts po = { .size = 1, .mode = SNAPBOX_RESTORE_COW, .no_warm = true };
	struct snapbox_restore_opts ro = { .resume = true, .ping = true, .console_fd = -1 };
	struct snapbox_pool_stats st;
	struct snapbox_pool *pool;

	TESTS_REQUIRE_KVM();
	tc_dir = tests_mkdtemp("counts");
	tc_snap = tests_path("%s/snap", tc_dir);
	tc_cache = tests_path("%s/cache", tc_dir);
	cr_assert_eq(mkdir(tc_cache, 0700), 0);
	tests_make_snapshot(tc_snap);
	po.cache_dir = tc_cache;
	cr_assert_eq(snapbox_pool_create(tc_snap, &po, &pool), 0);
	for (int i = 0; i < 3; i++) {
		struct snapbox_restore_profile p;
		struct snapbox *sb;

		/* Each request on a shell the pool made ready beforehand. */
		for (unsigned w = 0; w < tests_ms(20000) / 10; w++) {
			snapbox_pool_get_stats(pool, &st);
			if (st.ready)
				break;
			usleep(10000);
		}
		cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), 0);
		cr_assert(p.pooled);
		tc_print("pooled cow", &p.counts);
		cr_assert_eq(p.counts.kvm_ioctls, TC_POOLED_COW_KVM_IOCTLS,
			     "request %d: %u KVM ioctls, the documented floor is %u", i, p.counts.kvm_ioctls,
			     TC_POOLED_COW_KVM_IOCTLS);
		/* The shell was built off the request's path: no VM, memslot or vCPU is made here. */
		cr_assert_eq(tc_named(&p.counts, "KVM_CREATE_VM"), 0);
		cr_assert_eq(tc_named(&p.counts, "KVM_SET_USER_MEMORY_REGION"), 0);
		cr_assert_eq(tc_named(&p.counts, "KVM_CREATE_VCPU"), 0);
		cr_assert_eq(tc_named(&p.counts, "KVM_SET_CPUID2"), 1);
		cr_assert_eq(p.counts.bytes_decompressed + p.counts.bytes_copied, 0,
			     "a pooled cow restore copies no guest memory");
		/* The kvm_run page and the kvmclock pages KVM maps were faulted in
		 * with the shell. Not under ASan: its shadow memory and quarantine
		 * fault pages in on every thread (5 here), so the count is the
		 * sanitizer's, not snapbox's. */
#ifndef __SANITIZE_ADDRESS__
		/* In the nested lab (kvm-amd) the first request has taken one since
		 * the vsock device joined the machine; natively none. Not yet
		 * explained (docs/benchmarks.md, Costs): allowed there, and only there. */
		unsigned allowed = snapbox_host_emulated() && i == 0 ? 1 : 0;
		cr_assert_leq(p.counts.minflt_before_run, allowed,
			      "request %d: %llu page faults on the restoring thread before KVM_RUN", i,
			      (unsigned long long)p.counts.minflt_before_run);
#endif
		snapbox_destroy(sb);
	}
	snapbox_pool_destroy(pool);
}

/* The one-shot restore pays the shell too: exactly the pool's count plus the shell's ioctls. */
Test(kvm_counts, one_shot_restores_count_their_shell_and_memory, .fini = tc_teardown)
{
	struct snapbox_restore_opts ro = { .resume = true, .ping = true, .console_fd = -1 };
	struct snapbox_restore_profile p;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	tc_dir = tests_mkdtemp("counts");
	tc_snap = tests_path("%s/snap", tc_dir);
	tests_make_snapshot(tc_snap);
	ro.mode = SNAPBOX_RESTORE_EAGER;
	cr_assert_eq(snapbox_restore(tc_snap, &ro, &sb, &p), 0);
	tc_print("eager", &p.counts);
	cr_assert_eq(tc_named(&p.counts, "KVM_CREATE_VM"), 1);
	cr_assert_eq(tc_named(&p.counts, "KVM_CREATE_VCPU"), 1);
	cr_assert_eq(tc_named(&p.counts, "KVM_SET_USER_MEMORY_REGION"), 1);
	cr_assert_gt(p.counts.chunks_touched, 0, "eager decodes the non-zero chunks");
	cr_assert_gt(p.counts.bytes_decompressed + p.counts.bytes_copied, 0);
	snapbox_destroy(sb);
}

/*
 * vCPU exits to userspace per request on a booted probe; *all gets every
 * exit per request as KVM counts them (in-kernel ones too), or -1.
 */
static double tc_exits_per(struct snapbox *sb, uint16_t type, uint32_t len, int n, double *all)
{
	static uint8_t buf[PROTO_PROBE_MAX_PAYLOAD];
	uint64_t e0 = atomic_load(&sb->vcpu.exits), k0 = vcpu_kvm_exits(&sb->vcpu);

	for (int i = 0; i < n; i++) {
		void *r = NULL;
		uint32_t rl = 0;
		cr_assert_eq(snapbox_request(sb, type, buf, len, &r, &rl, tests_ms(5000)), 0);
		cr_assert_eq(rl, type == PROTO_T_ECHO ? len : 0);
		free(r);
	}
	uint64_t k1 = vcpu_kvm_exits(&sb->vcpu);
	*all = k0 == UINT64_MAX || k1 == UINT64_MAX ? -1 : (double)(k1 - k0) / n;
	return (double)(atomic_load(&sb->vcpu.exits) - e0) / n;
}

Test(kvm_counts, exits_per_request_on_vsock_and_on_com2)
{
	TESTS_REQUIRE_KVM();
	struct snapbox *v = tests_boot_probe(NULL, NULL, NULL);
	struct snapbox *u = tests_boot_probe("console=ttyS0 probe.channel=uart", NULL, NULL);
	double vpa, upa, vea, uea;
	double vp = tc_exits_per(v, PROTO_T_PING, 0, 50, &vpa), up = tc_exits_per(u, PROTO_T_PING, 0, 50, &upa);
	double ve = tc_exits_per(v, PROTO_T_ECHO, 65536, 20, &vea);
	double ue = tc_exits_per(u, PROTO_T_ECHO, 65536, 20, &uea);
	fprintf(stderr, "counts | exits to snapbox (all, KVM's count) per PING: vsock %.2f (%.2f), COM2 %.2f "
		"(%.2f); per 64 KiB ECHO: vsock %.2f (%.2f), COM2 %.2f (%.2f)\n",
		vp, vpa, up, upa, ve, vea, ue, uea);
	/* docs/benchmarks.md, Costs: a PING on vsock is one exit (the kick of its
	 * reply, which carries the RESPONSE too); its interrupt and the guest's
	 * reading cost none. A mean over 50, because now and then one takes a
	 * second (seen: 51 in 50), not yet explained. A 64 KiB ECHO goes whole
	 * before the RESPONSE (the assumed credit is one whole frame) and its
	 * reply carries the credit back, so it takes the one kick of its reply,
	 * plus now and then a kick of fresh RX buffers (measured: 1.0 to 1.5 on
	 * average), where COM2 took an exit for every byte of the reply. */
	cr_assert_leq(vp, 1.1, "a PING on vsock took %.2f exits", vp);
	cr_assert_leq(ve, 2.0, "a 64 KiB ECHO on vsock took %.2f exits", ve);
	cr_assert_gt(ue, 1000.0);
	snapbox_destroy(v);
	snapbox_destroy(u);
}
