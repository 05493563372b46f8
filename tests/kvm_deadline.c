/* kvm_deadline.c - deadlines on slow hosts: a restored guest that never answers is reported within the caller's timeout or the scaled default, never before it and not long after. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/vcpu.h"
#include "proto/wire.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_cli.h"
#include "tests/common_kvm.h"
#include "tests/common_snap.h"

static char *td_dir, *td_snap, *td_cache;

/* .fini: also after a failed assertion; nothing to do for a skipped test. */
static void td_teardown(void)
{
	if (!td_dir)
		return;
	tests_rm_rf(td_dir);
	tests_rm_rf(td_cache);
	free(td_dir);
	free(td_cache);
	free(td_snap);
}

/*
 * A snapshot of a probe that spins in ring 3 for ever: every clone of it
 * runs, but never answers anything, REFRESH included.
 */
static void td_make_silent_snapshot(void)
{
	struct proto_fault_req f = { .kind = PROTO_FAULT_SPIN_FOREVER };
	struct snapbox *sb;
	uint32_t n = 0;
	void *r = NULL;

	td_dir = tests_mkdtemp("deadline");
	td_cache = tests_mkdtemp("cache");
	td_snap = tests_path("%s/snap", td_dir);
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_FAULT, &f, sizeof(f), &r, &n, 300), -ETIMEDOUT);
	free(r);
	tests_snapshot_ok(sb, td_snap, true);
	snapbox_destroy(sb);
}

/* Restore the silent snapshot with ping_timeout_ms (0: the default); the restore's wall time in ms. */
static double td_restore_fails(unsigned ping_timeout_ms)
{
	struct snapbox_restore_opts o = { .mode = SNAPBOX_RESTORE_COW, .resume = true, .ping = true,
					  .console_fd = -1, .cache_dir = td_cache,
					  .ping_timeout_ms = ping_timeout_ms };
	struct snapbox *sb = NULL;
	uint64_t t0 = tests_now_ns();
	int ret = snapbox_restore(td_snap, &o, &sb, NULL);
	double ms = (double)(tests_now_ns() - t0) / 1e6;

	cr_assert_eq(ret, -ETIMEDOUT, "restore of a silent guest: %d (%s), want -ETIMEDOUT", ret,
		     strerror(-ret));
	cr_assert_null(sb);
	return ms;
}

Test(kvm_deadline, silent_clone_fails_at_the_callers_timeout, .fini = td_teardown)
{
	double ms;

	TESTS_REQUIRE_KVM();
	td_make_silent_snapshot();
	ms = td_restore_fails(700);
	/* Never before the deadline; after it, only the restore's own work (scaled slack). */
	cr_assert_geq(ms, 700.0, "gave up after %.0f ms, before its 700 ms", ms);
	cr_assert_lt(ms, 700.0 + tests_ms(10000), "gave up only after %.0f ms", ms);
}

Test(kvm_deadline, silent_clone_fails_at_the_scaled_default, .fini = td_teardown)
{
	double ms, slack;

	TESTS_REQUIRE_KVM();
	td_make_silent_snapshot();
	/* The slack after the deadline follows the host's own factor (the lab's), taken first. */
	slack = tests_ms(10000);
	/* The default REFRESH deadline is 5000 ms; times 1.5 here. */
	cr_assert_eq(snapbox_set_time_scale(1.5), 0);
	cr_assert_eq(snapbox_scaled_ms(5000), 7500);
	ms = td_restore_fails(0);
	cr_assert_geq(ms, 7500.0, "gave up after %.0f ms, before the scaled 7500 ms", ms);
	cr_assert_lt(ms, 7500.0 + slack, "gave up only after %.0f ms", ms);
}

/* The CLI: --timeout reaches REFRESH, its message says which deadline passed; bad factors are refused. */
Test(kvm_deadline, cli_restore_timeout_reaches_refresh, .fini = td_teardown)
{
	char out[8192], args[1024];
	int st;

	TESTS_REQUIRE_KVM();
	tests_require_cli();
	td_make_silent_snapshot();
	snprintf(args, sizeof(args), "restore %s --mode eager --resume --timeout 600", td_snap);
	st = tests_cli_capture(tests_cli_path(), NULL, args, out, sizeof(out));
	cr_assert_neq(st, 0, "a silent guest restored: %s", out);
	cr_assert(strstr(out, "did not answer REFRESH within 600 ms"), "CLI said: %s", out);
	st = tests_cli_capture(tests_cli_path(), "SNAPBOX_TIME_SCALE=0.5", args, out, sizeof(out));
	cr_assert_eq(st, 2, "SNAPBOX_TIME_SCALE=0.5: exit %d: %s", st, out);
	cr_assert(strstr(out, "SNAPBOX_TIME_SCALE"), "CLI said: %s", out);
}

/*
 * The lab's flake "cow restore: PING failed: running", made on demand: a
 * restored guest whose vCPU does not run for longer than the PING's deadline
 * (as a starved L1 does not) misses it with exactly that state, and answers
 * as soon as it runs again. REFRESH was answered first, and reading it
 * lowered COM2's line, so the next frame makes a fresh edge: nothing is lost.
 */
Test(kvm_deadline, stalled_clone_misses_a_ping_and_answers_the_next, .fini = td_teardown)
{
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	td_dir = tests_mkdtemp("deadline");
	td_cache = tests_mkdtemp("cache");
	td_snap = tests_path("%s/snap", td_dir);
	tests_make_snapshot(td_snap);
	sb = tests_restore_ok(td_snap, SNAPBOX_RESTORE_COW, td_cache, true);
	cr_assert_eq(vcpu_pause(&sb->vcpu, tests_ms(2000)), 0);
	cr_assert_eq(snapbox_ping(sb, 300), -ETIMEDOUT);
	cr_assert_str_eq(snapbox_stop_reason(sb), "running");
	tests_dump_stuck(sb);      /* what a stuck guest's report looks like (it leaves it paused) */
	cr_assert_eq(vcpu_resume(&sb->vcpu), 0);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "the stalled clone did not recover");
	snapbox_destroy(sb);
}
