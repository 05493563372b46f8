/* kvm_pool_warm.c - warm pool shells: a hit pays only its own REFRESH and PING, keeps the snapshot's memory, and stays paused until resumed when asked. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/wire.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"
#include "tests/common_snap.h"

static char *tw_dir, *tw_snap, *tw_cache;

/* The test's directories. After the KVM check: Criterion skips .fini for skipped tests. */
static void tw_dirs(void)
{
	tw_dir = tests_mkdtemp("poolwarm");
	tw_snap = tests_path("%s/snap", tw_dir);
	tw_cache = tests_path("%s/cache", tw_dir);
	cr_assert_eq(mkdir(tw_cache, 0700), 0);
}

/* A cow pool of one shell on the snapshot at tw_snap. */
static struct snapbox_pool *tw_pool(bool no_warm)
{
	struct snapbox_pool_opts po = { .size = 1, .mode = SNAPBOX_RESTORE_COW, .no_warm = no_warm,
					.cache_dir = tw_cache };
	struct snapbox_pool *pool;

	cr_assert_eq(snapbox_pool_create(tw_snap, &po, &pool), 0);
	return pool;
}

/* A pool on a snapshot of the filled probe. */
static struct snapbox_pool *tw_setup(bool no_warm)
{
	tw_dirs();
	tests_make_snapshot(tw_snap);
	return tw_pool(no_warm);
}

static void tw_teardown(void)
{
	if (tw_dir)
		tests_rm_rf(tw_dir);
	free(tw_dir);
	free(tw_snap);
	free(tw_cache);
	tw_dir = tw_snap = tw_cache = NULL;
}

/* Wait (at most 20 s, scaled) until the refill thread has a shell ready. */
static void tw_wait_ready(struct snapbox_pool *pool)
{
	struct snapbox_pool_stats st;

	for (unsigned w = 0; w < tests_ms(20000) / 10; w++) {
		snapbox_pool_get_stats(pool, &st);
		if (st.ready)
			return;
		usleep(10000);
	}
	cr_assert_fail("the refill thread made no shell ready");
}

Test(kvm_pool_warm, warm_hits_cost_no_kvm_ioctl_and_keep_the_snapshot_memory, .fini = tw_teardown)
{
	struct snapbox_restore_opts ro = { .resume = true, .ping = true, .console_fd = -1 };
	struct snapbox_pool *pool;

	TESTS_REQUIRE_KVM();
	pool = tw_setup(false);
	for (int i = 0; i < 4; i++) {
		struct snapbox_restore_profile p;
		struct snapbox *sb;

		tw_wait_ready(pool);
		cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), 0);
		cr_assert(p.pooled);
		/* The shell pool_create builds inline is cold; the refill's are warm. */
		cr_assert_eq(p.warm, i > 0, "request %d: warm %d", i, p.warm);
		cr_assert_gt(p.guest_refresh, 0, "request %d: every clone gets its own REFRESH", i);
		cr_assert_not(sb->refresh_pending);
		cr_assert_gt(p.restore_to_ready, 0);
		if (p.warm) {
			/* State, resume and first touches were the pool's: the
			 * request's interrupts are irqfd writes, its kicks exits. */
			cr_assert_eq(p.counts.kvm_ioctls, 0, "request %d: %u KVM ioctls", i,
				     p.counts.kvm_ioctls);
			cr_assert_eq(p.cpuid_config + p.vcpu_state_restore + p.device_state_restore, 0);
		}
		/* The warm-up ran the guest; its memory is still the snapshot's, and
		 * what this clone writes never reaches the next one. */
		cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0);
		tests_fill(sb, TS_FILL_MIB, TS_SEED + 1 + (uint64_t)i);
		snapbox_destroy(sb);
	}
	snapbox_pool_destroy(pool);
}

Test(kvm_pool_warm, a_warm_hit_without_resume_waits_paused_for_its_refresh, .fini = tw_teardown)
{
	struct snapbox_restore_opts ro = { .console_fd = -1 };
	struct snapbox_restore_profile p;
	struct snapbox_pool *pool;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	pool = tw_setup(false);
	/* Take the cold inline shell, then a warm one. */
	cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), 0);
	cr_assert_not(p.warm);
	snapbox_destroy(sb);
	tw_wait_ready(pool);
	cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), 0);
	cr_assert(p.warm);
	cr_assert_eq(vcpu_get_state(&sb->vcpu), VCPU_PAUSED, "not resumed: the clone must not run");
	cr_assert(sb->refresh_pending);
	cr_assert_eq(p.guest_refresh, 0);
	cr_assert_eq(snapbox_resume(sb), 0);
	cr_assert_not(sb->refresh_pending, "snapbox_resume sends the clone's REFRESH");
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
	snapbox_pool_destroy(pool);
}

Test(kvm_pool_warm, a_pool_without_warm_restores_the_state_at_the_request, .fini = tw_teardown)
{
	struct snapbox_restore_opts ro = { .resume = true, .ping = true, .console_fd = -1 };
	struct snapbox_pool *pool;

	TESTS_REQUIRE_KVM();
	pool = tw_setup(true);
	for (int i = 0; i < 2; i++) {
		struct snapbox_restore_profile p;
		struct snapbox *sb;

		tw_wait_ready(pool);
		cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), 0);
		cr_assert(p.pooled);
		cr_assert_not(p.warm);
		cr_assert_gt(p.vcpu_state_restore, 0);
		cr_assert_gt(p.counts.kvm_ioctls, 0);
		cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0);
		snapbox_destroy(sb);
	}
	snapbox_pool_destroy(pool);
}

Test(kvm_pool_warm, a_clone_that_never_answers_makes_the_pool_cold_and_fails_each_request,
     .fini = tw_teardown, .timeout = 600)
{
	struct proto_fault_req f = { .kind = PROTO_FAULT_SPIN_FOREVER };
	struct snapbox_restore_opts ro = { .resume = true, .ping = true, .console_fd = -1,
					   .ping_timeout_ms = 300 };
	struct snapbox_restore_profile p;
	struct snapbox_pool_stats st;
	struct snapbox_pool *pool;
	struct snapbox *sb;
	uint32_t n = 0;
	void *r = NULL;

	TESTS_REQUIRE_KVM();
	/* A probe spinning in ring 3 for ever: every clone runs, and answers nothing. */
	tw_dirs();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_FAULT, &f, sizeof(f), &r, &n, 300), -ETIMEDOUT);
	free(r);
	tests_snapshot_ok(sb, tw_snap, true);
	snapbox_destroy(sb);
	pool = tw_pool(false);
	/* The inline (cold) shell: the request reports the silent guest at its deadline. */
	sb = NULL;
	cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), -ETIMEDOUT);
	cr_assert_null(sb);
	/* The refill's warm-up fails at its own (scaled 5 s) deadline and is counted. */
	for (unsigned w = 0; w < tests_ms(30000) / 10; w++) {
		snapbox_pool_get_stats(pool, &st);
		if (st.refill_failures)
			break;
		usleep(10000);
	}
	cr_assert_eq(st.refill_failures, 1);
	/* From then on shells are cold: the next request misses or finds one, and
	 * fails at its deadline either way, never hangs. */
	cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), -ETIMEDOUT);
	cr_assert_null(sb);
	tw_wait_ready(pool);
	cr_assert_eq(snapbox_pool_restore(pool, &ro, &sb, &p), -ETIMEDOUT);
	snapbox_pool_get_stats(pool, &st);
	cr_assert_eq(st.refill_failures, 1, "no second warm-up was tried");
	snapbox_pool_destroy(pool);
}
