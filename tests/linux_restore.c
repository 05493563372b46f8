/* linux_restore.c - the Linux guest snapshotted at READY and restored in every mode, on real KVM (the nested lab). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/common_kvm.h"

#define LR_CMD_TIMEOUT_MS  tests_ms(120000)
#define LR_MARKER          "written before the snapshot\n"

static double lr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The guest's uptime in seconds (first field of /proc/uptime). */
static double lr_uptime(struct snapbox *sb)
{
	void *data = NULL;
	size_t len = 0;
	double up;

	cr_assert_eq(snapbox_read_file(sb, "/proc/uptime", 4096, &data, &len, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_gt(len, 0);
	((char *)data)[len - 1] = '\0';
	up = strtod(data, NULL);
	free(data);
	return up;
}

/*
 * Boot the agent, write a marker file into its tmpfs, read its uptime and
 * snapshot it into a fresh temporary directory (returned in dir).
 * *up and *t are the guest uptime and host time at the snapshot.
 */
static void lr_make_snapshot(char *dir, size_t dlen, double *up, double *t)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	char tmpl[] = "/tmp/snapbox-lr-XXXXXX";

	cr_assert_eq(snapbox_write_file(sb, "/tmp/marker", 0644, LR_MARKER, strlen(LR_MARKER),
					LR_CMD_TIMEOUT_MS), 0);
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(dir, dlen, "%s/snap", tmpl);
	*up = lr_uptime(sb);
	*t = lr_now();
	cr_assert_eq(snapbox_snapshot(sb, dir, NULL, NULL), 0);
	snapbox_destroy(sb);
}

/* Remove the snapshot and the temporary directory lr_make_snapshot made for it. */
static void lr_remove_snapshot(const char *dir)
{
	char cmd[512];
	size_t n = strlen(dir) - strlen("/snap");

	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)n, dir);
	cr_assert_eq(system(cmd), 0);
}

static void lr_check_restored(struct snapbox *sb, double up0, double t0)
{
	const char *const argv[] = { "echo", "hello", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = LR_CMD_TIMEOUT_MS };
	static const uint8_t bin[] = { 0, '\n', 'x', 0, 0xfe, '\n' };
	struct snapbox_exec_result r;
	double up1, t1;
	void *data = NULL;
	size_t len = 0;

	/* The guest clock: it never runs backwards across the restore, and it
	 * advances by no more than the host time that passed (plus slack for
	 * the requests themselves). */
	up1 = lr_uptime(sb);
	t1 = lr_now();
	cr_assert_geq(up1, up0, "guest uptime went backwards: %.2f -> %.2f", up0, up1);
	cr_assert_leq(up1 - up0, (t1 - t0) + 5.0, "guest uptime jumped %.2f s in %.2f s of host time",
		      up1 - up0, t1 - t0);
	/* The file written before the snapshot is there. */
	cr_assert_eq(snapbox_read_file(sb, "/tmp/marker", 0, &data, &len, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(len, strlen(LR_MARKER));
	cr_assert_arr_eq(data, LR_MARKER, len);
	free(data);
	/* A command and a file round trip in the restored guest. */
	cr_assert_eq(snapbox_exec(sb, &o, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_str_eq((char *)r.out, "hello\n");
	snapbox_exec_result_free(&r);
	cr_assert_eq(snapbox_write_file(sb, "/tmp/after", 0600, bin, sizeof(bin), LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(snapbox_read_file(sb, "/tmp/after", 0, &data, &len, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(len, sizeof(bin));
	cr_assert_arr_eq(data, bin, len);
	free(data);
}

static void lr_restore_mode(enum snapbox_restore_mode mode)
{
	struct snapbox_restore_opts ro = { .mode = mode, .resume = true, .ping = true,
					   .console_fd = -1, .ping_timeout_ms = LR_CMD_TIMEOUT_MS };
	struct snapbox *sb = NULL;
	char dir[256];
	double up0, t0;

	lr_make_snapshot(dir, sizeof(dir), &up0, &t0);
	cr_assert_eq(snapbox_restore(dir, &ro, &sb, NULL), 0);
	lr_check_restored(sb, up0, t0);
	snapbox_destroy(sb);
	lr_remove_snapshot(dir);
}

Test(linux_restore, eager_restore_keeps_files_clock_and_runs_commands)
{
	lr_restore_mode(SNAPBOX_RESTORE_EAGER);
}

Test(linux_restore, cow_restore_keeps_files_clock_and_runs_commands)
{
	lr_restore_mode(SNAPBOX_RESTORE_COW);
}

Test(linux_restore, lazy_restore_keeps_files_clock_and_runs_commands)
{
	lr_restore_mode(SNAPBOX_RESTORE_LAZY);
}

Test(linux_restore, two_restores_of_one_snapshot_are_isolated)
{
	struct snapbox_restore_opts ro = { .mode = SNAPBOX_RESTORE_COW, .resume = true, .ping = true,
					   .console_fd = -1, .ping_timeout_ms = LR_CMD_TIMEOUT_MS };
	struct snapbox *a = NULL, *b = NULL;
	void *data = NULL;
	size_t len = 0;
	char dir[256];
	double up0, t0;

	lr_make_snapshot(dir, sizeof(dir), &up0, &t0);
	cr_assert_eq(snapbox_restore(dir, &ro, &a, NULL), 0);
	cr_assert_eq(snapbox_restore(dir, &ro, &b, NULL), 0);
	cr_assert_eq(snapbox_write_file(a, "/tmp/marker", 0644, "A", 1, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(snapbox_read_file(b, "/tmp/marker", 0, &data, &len, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(len, strlen(LR_MARKER), "b sees a's write");
	free(data);
	cr_assert_eq(snapbox_read_file(a, "/tmp/marker", 0, &data, &len, LR_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(len, 1);
	free(data);
	snapbox_destroy(a);
	snapbox_destroy(b);
	lr_remove_snapshot(dir);
}
