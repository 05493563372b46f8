/* kvm_restore.c - restore of probe-guest snapshots in eager, cow and lazy modes: memory, clock, isolation, resume, template cache. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/common_kvm.h"
#include "tests/common_snap.h"

#define TR_SEED_A  0xa11ce001ull
#define TR_SEED_B  0xb0b0b002ull
#define TR_MARGIN  (1000ull * 1000000)   /* 1 s: generous slack for the clock's upper bound */

/*
 * Per test (each runs in its own process): a work dir for snapshots and a
 * private cow cache. Made by tr_setup() after the KVM check, not by .init:
 * Criterion runs no .fini for a skipped test.
 */
static char *tr_dir, *tr_snap, *tr_cache;

static void tr_setup(void)
{
	tr_dir = tests_mkdtemp("restore");
	tr_cache = tests_mkdtemp("cache");
	tr_snap = tests_path("%s/snap", tr_dir);
}

static void tr_teardown(void)
{
	tests_rm_rf(tr_dir);
	tests_rm_rf(tr_cache);
	free(tr_dir);
	free(tr_cache);
	free(tr_snap);
}

Test(kvm_restore, restored_guest_pings_verifies_and_hashes_equal, .fini = tr_teardown)
{
	uint64_t h;

	TESTS_REQUIRE_KVM();
	tr_setup();
	h = tests_make_snapshot(tr_snap);
	for (int i = 0; i < TESTS_NMODES; i++) {
		enum snapbox_restore_mode m = tests_modes[i];
		struct snapbox_restore_profile p;
		struct snapbox_restore_opts o = {
			.mode = m, .resume = true, .ping = true, .console_fd = -1,
			.cache_dir = tr_cache,
		};
		struct snapbox *sb = NULL;
		int ret = snapbox_restore(tr_snap, &o, &sb, &p);

		cr_assert_eq(ret, 0, "%s restore failed: %s", tests_mode_name(m), strerror(-ret));
		cr_assert_gt(p.restore_to_ready, 0, "%s: restore_to_ready not measured",
			     tests_mode_name(m));
		cr_assert_geq(p.total_with_resume, p.total_without_resume);
		/* Every clone is refreshed, inside restore_to_ready. */
		cr_assert_gt(p.guest_refresh, 0, "%s: no REFRESH", tests_mode_name(m));
		cr_assert_lt(p.guest_refresh, p.restore_to_ready);
		cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "%s: PING failed", tests_mode_name(m));
		cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0,
			     "%s: the pattern written before the snapshot did not survive",
			     tests_mode_name(m));
		cr_assert_eq(tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20), h,
			     "%s: HASH differs from the one taken before the snapshot",
			     tests_mode_name(m));
		cr_assert_gt(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED + 1), 0,
			     "%s: VERIFY with the wrong seed passed", tests_mode_name(m));
		snapbox_destroy(sb);
	}
}

Test(kvm_restore, guest_clock_neither_jumps_nor_stalls, .fini = tr_teardown)
{
	struct proto_ticks_resp before;
	struct snapbox *sb;
	uint64_t w0;

	TESTS_REQUIRE_KVM();
	tr_setup();
	sb = tests_boot_probe_mem(TS_MEM);
	w0 = tests_now_ns();
	before = tests_ticks(sb);
	tests_snapshot_ok(sb, tr_snap, true);
	snapbox_destroy(sb);
	usleep(100 * 1000);   /* the snapshot sits on disk a while, as it would in use */
	for (int i = 0; i < TESTS_NMODES; i++) {
		enum snapbox_restore_mode m = tests_modes[i];
		struct proto_ticks_resp after, later;
		uint64_t w1, w2, w3, spun;
		uint32_t ms = 20, n;
		void *r;

		sb = tests_restore_ok(tr_snap, m, tr_cache, true);
		after = tests_ticks(sb);
		w1 = tests_now_ns();
		cr_assert_geq(after.ns, before.ns, "%s: guest clock went back %llu ns across the restore",
			      tests_mode_name(m), (unsigned long long)(before.ns - after.ns));
		cr_assert_lt(after.ns - before.ns, w1 - w0 + TR_MARGIN,
			     "%s: guest clock jumped %llu ns over %llu ns of wall time",
			     tests_mode_name(m), (unsigned long long)(after.ns - before.ns),
			     (unsigned long long)(w1 - w0));
		cr_assert_gt(after.tsc, before.tsc, "%s: guest TSC went back across the restore",
			     tests_mode_name(m));
		cr_assert_eq(after.tsc_khz, before.tsc_khz, "%s: guest TSC frequency changed",
			     tests_mode_name(m));

		/* And it keeps running at the host's pace afterwards. */
		w2 = tests_now_ns();
		cr_assert_eq(snapbox_request(sb, PROTO_T_SPIN, &ms, 4, &r, &n, TS_MS), 0);
		cr_assert_eq(n, 8);
		memcpy(&spun, r, 8);
		free(r);
		later = tests_ticks(sb);
		w3 = tests_now_ns();
		cr_assert_geq(later.ns - after.ns, 20ull * 1000000,
			      "%s: guest clock stalled after the restore", tests_mode_name(m));
		cr_assert_lt(later.ns - after.ns, w3 - w1 + TR_MARGIN,
			     "%s: guest clock runs faster than the host's", tests_mode_name(m));
		cr_assert_geq(w3 - w2, 19ull * 1000000,
			      "%s: a 20 ms guest spin took %llu ns of wall time", tests_mode_name(m),
			      (unsigned long long)(w3 - w2));
		snapbox_destroy(sb);
	}
}

Test(kvm_restore, two_restores_from_one_snapshot_are_independent, .fini = tr_teardown)
{
	TESTS_REQUIRE_KVM();
	tr_setup();
	tests_make_snapshot(tr_snap);
	for (int i = 0; i < TESTS_NMODES; i++) {
		enum snapbox_restore_mode m = tests_modes[i];
		const char *mn = tests_mode_name(m);
		struct snapbox *a = tests_restore_ok(tr_snap, m, tr_cache, true);
		struct snapbox *b = tests_restore_ok(tr_snap, m, tr_cache, true);
		struct snapbox *c;

		tests_fill(a, TS_FILL_MIB, TR_SEED_A);
		cr_assert_eq(tests_bad_pages(a, TS_FILL_MIB, TR_SEED_A), 0, "%s: clone 1 lost its fill", mn);
		cr_assert_eq(tests_bad_pages(b, TS_FILL_MIB, TS_SEED), 0,
			     "%s: clone 1's writes reached clone 2", mn);
		cr_assert_gt(tests_bad_pages(b, TS_FILL_MIB, TR_SEED_A), 0,
			     "%s: clone 2 holds clone 1's pattern", mn);
		tests_fill(b, TS_FILL_MIB, TR_SEED_B);
		cr_assert_eq(tests_bad_pages(b, TS_FILL_MIB, TR_SEED_B), 0, "%s: clone 2 lost its fill", mn);
		cr_assert_eq(tests_bad_pages(a, TS_FILL_MIB, TR_SEED_A), 0,
			     "%s: clone 2's writes reached clone 1", mn);
		snapbox_destroy(a);
		snapbox_destroy(b);
		/* Neither clone's writes reached the snapshot (or cow's shared template). */
		c = tests_restore_ok(tr_snap, m, tr_cache, true);
		cr_assert_eq(tests_bad_pages(c, TS_FILL_MIB, TS_SEED), 0,
			     "%s: a later restore sees an earlier clone's writes", mn);
		snapbox_destroy(c);
	}
}

Test(kvm_restore, paused_restore_then_resume, .fini = tr_teardown)
{
	TESTS_REQUIRE_KVM();
	tr_setup();
	tests_make_snapshot(tr_snap);
	for (int i = 0; i < TESTS_NMODES; i++) {
		enum snapbox_restore_mode m = tests_modes[i];
		const char *mn = tests_mode_name(m);
		struct snapbox_restore_opts o = { .mode = m, .console_fd = -1, .cache_dir = tr_cache };
		struct snapbox_restore_profile p;
		struct snapbox *sb = NULL;
		int ret = snapbox_restore(tr_snap, &o, &sb, &p);

		cr_assert_eq(ret, 0, "%s restore failed: %s", mn, strerror(-ret));
		cr_assert_eq(p.resume_kvm_run, 0, "%s: resume timed though not resumed", mn);
		cr_assert_eq(p.restore_to_ready, 0, "%s: ready timed though not resumed", mn);
		cr_assert_eq(p.guest_refresh, 0, "%s: refreshed though not resumed", mn);
		cr_assert_gt(p.total_without_resume, 0);
		cr_assert_eq(snapbox_resume(sb), 0, "%s: resume failed", mn);
		cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "%s: PING after resume failed: %s", mn,
			     snapbox_stop_reason(sb));
		cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0, "%s: fill lost", mn);
		cr_assert_lt(snapbox_resume(sb), 0, "%s: a running sandbox resumed again", mn);
		cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "%s: the second resume broke the guest", mn);
		snapbox_destroy(sb);
	}
}

/* The one template file in the cache dir: its name in *name (malloc'd), its stat in *st. */
static void tr_template(const char *cache, char **name, struct stat *st)
{
	DIR *d = opendir(cache);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	*name = NULL;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		free(*name);
		*name = tests_path("%s/%s", cache, e->d_name);
	}
	closedir(d);
	cr_assert_eq(n, 1, "the cache holds %d files, want exactly the template", n);
	cr_assert_eq(strncmp(strrchr(*name, '/') + 1, "snapbox-", 8), 0, "template %s", *name);
	cr_assert_str_eq(*name + strlen(*name) - 4, ".mem", "template %s", *name);
	cr_assert_eq(stat(*name, st), 0);
}

Test(kvm_restore, cow_template_is_built_once_in_the_cache_dir, .fini = tr_teardown)
{
	struct snapbox *a, *b, *c;
	struct stat st1, st2;
	char *t1, *t2;
	uint8_t *buf;
	uint64_t h;
	FILE *f;

	TESTS_REQUIRE_KVM();
	tr_setup();
	h = tests_make_snapshot(tr_snap);
	cr_assert_eq(tests_count_entries(tr_cache), 0);
	/* eager never makes a template */
	a = tests_restore_ok(tr_snap, SNAPBOX_RESTORE_EAGER, tr_cache, true);
	snapbox_destroy(a);
	cr_assert_eq(tests_count_entries(tr_cache), 0, "an eager restore wrote into the cow cache");

	a = tests_restore_ok(tr_snap, SNAPBOX_RESTORE_COW, tr_cache, true);
	tr_template(tr_cache, &t1, &st1);
	cr_assert_eq((uint64_t)st1.st_size, TS_MEM, "template holds %lld bytes",
		     (long long)st1.st_size);
	cr_assert_eq(st1.st_mode & 0077, 0, "template is readable by others: %o", st1.st_mode);
	/* The template is the decompressed image: its fill region hashes as the guest's did. */
	buf = malloc((size_t)TS_FILL_MIB << 20);
	f = fopen(t1, "rb");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, (long)PROTO_FILL_BASE, SEEK_SET), 0);
	cr_assert_eq(fread(buf, 1, (size_t)TS_FILL_MIB << 20, f), (size_t)TS_FILL_MIB << 20);
	fclose(f);
	cr_assert_eq(proto_hash64(buf, (uint64_t)TS_FILL_MIB << 20), h, "template differs from RAM");

	/* A second clone maps the same file instead of decoding again; a write stays private. */
	b = tests_restore_ok(tr_snap, SNAPBOX_RESTORE_COW, tr_cache, true);
	tr_template(tr_cache, &t2, &st2);
	cr_assert_str_eq(t1, t2);
	cr_assert_eq(st2.st_ino, st1.st_ino, "the template was rebuilt for the second clone");
	tests_fill(b, TS_FILL_MIB, TR_SEED_A);
	f = fopen(t1, "rb");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, (long)PROTO_FILL_BASE, SEEK_SET), 0);
	cr_assert_eq(fread(buf, 1, (size_t)TS_FILL_MIB << 20, f), (size_t)TS_FILL_MIB << 20);
	fclose(f);
	cr_assert_eq(proto_hash64(buf, (uint64_t)TS_FILL_MIB << 20), h,
		     "a clone's write reached the shared template");
	free(buf);
	snapbox_destroy(a);
	snapbox_destroy(b);
	free(t2);

	/* A template of the wrong size is not trusted: it is rebuilt, and the restore still works. */
	cr_assert_eq(truncate(t1, (off_t)(TS_MEM / 2)), 0);
	c = tests_restore_ok(tr_snap, SNAPBOX_RESTORE_COW, tr_cache, true);
	cr_assert_eq(tests_bad_pages(c, TS_FILL_MIB, TS_SEED), 0, "restore from a rebuilt template");
	snapbox_destroy(c);
	tr_template(tr_cache, &t2, &st2);
	cr_assert_eq((uint64_t)st2.st_size, TS_MEM, "the short template was not rebuilt");
	free(t1);
	free(t2);

	/* Clean up, and make sure nothing else was left in the cache. */
	tests_rm_rf(tr_cache);
	cr_assert_eq(tests_count_entries(tr_cache), -1);
}

Test(kvm_restore, restore_destroy_cycles_leak_no_fds, .fini = tr_teardown)
{
	int fds;

	TESTS_REQUIRE_KVM();
	tr_setup();
	tests_make_snapshot(tr_snap);
	/* Warm up once per mode: the cow template and any lazily opened library state. */
	for (int i = 0; i < TESTS_NMODES; i++)
		snapbox_destroy(tests_restore_ok(tr_snap, tests_modes[i], tr_cache, true));
	fds = tests_count_fds();
	for (int k = 0; k < 20; k++)
		for (int i = 0; i < TESTS_NMODES; i++) {
			struct snapbox *sb = tests_restore_ok(tr_snap, tests_modes[i], tr_cache, k % 2);

			snapbox_destroy(sb);
		}
	cr_assert_eq(tests_count_fds(), fds, "restore/destroy cycles leaked file descriptors");
}
