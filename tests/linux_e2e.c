/* linux_e2e.c - end-to-end tests of the Linux guest and its agent on real KVM (run inside the nested lab, tests/lab). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "tests/common_kvm.h"

/* Commands get long limits: the lab is nested TCG, and its timings mean nothing. */
#define E2E_CMD_TIMEOUT_MS  tests_ms(120000)

/* Run argv (env may be NULL) with a timeout; asserts the call itself worked. */
static void e2e_exec(struct snapbox *sb, const char *const *argv, const char *const *env,
		     const char *cwd, unsigned timeout_ms, struct snapbox_exec_result *r)
{
	struct snapbox_exec_opts o = { .argv = argv, .env = env, .cwd = cwd,
				       .timeout_ms = timeout_ms ? timeout_ms : E2E_CMD_TIMEOUT_MS };
	int ret = snapbox_exec(sb, &o, r);

	cr_assert_eq(ret, 0, "exec %s: %s", argv[0], strerror(-ret));
}

static void e2e_assert_echo(struct snapbox *sb, const char *word)
{
	const char *const argv[] = { "echo", word, NULL };
	struct snapbox_exec_result r;
	char want[64];

	snprintf(want, sizeof(want), "%s\n", word);
	e2e_exec(sb, argv, NULL, NULL, 0, &r);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_not(r.signaled);
	cr_assert_str_eq((char *)r.out, want);
	cr_assert_eq(r.err_len, 0);
	snapbox_exec_result_free(&r);
}

Test(linux_e2e, cold_boot_records_every_boot_stage)
{
	struct snapbox_boot_profile bp;
	struct snapbox *sb = tests_boot_linux(&bp);
	int i;

	cr_assert_gt(bp.ready, 0);
	fprintf(stderr, "linux_e2e: cold boot to READY %.1f ms (%llu exits)\n", bp.ready / 1e6,
		(unsigned long long)bp.exits);
	for (i = 0; i < SNAPBOX_STAGE_COUNT; i++)
		cr_assert(bp.stage_valid[i], "BOOT_TIME stage %d missing", i);
	/* The stages are in boot order on the guest's clock. */
	for (i = 1; i < SNAPBOX_STAGE_COUNT; i++)
		cr_assert_geq(bp.stage_ns[i], bp.stage_ns[i - 1], "stage %d before stage %d", i, i - 1);
	cr_assert_eq(snapbox_ping(sb, E2E_CMD_TIMEOUT_MS), 0);
	snapbox_destroy(sb);
}

Test(linux_e2e, echo_hello)
{
	struct snapbox *sb = tests_boot_linux(NULL);

	e2e_assert_echo(sb, "hello");
	snapbox_destroy(sb);
}

Test(linux_e2e, stdout_and_stderr_are_separate_and_exit_code_is_reported)
{
	const char *const argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	e2e_exec(sb, argv, NULL, NULL, 0, &r);
	cr_assert_not(r.signaled);
	cr_assert_eq(r.exit_code, 3);
	cr_assert_str_eq((char *)r.out, "out\n");
	cr_assert_str_eq((char *)r.err, "err\n");
	cr_assert_not(r.timed_out);
	snapbox_exec_result_free(&r);
	snapbox_destroy(sb);
}

Test(linux_e2e, killed_command_is_reported_and_agent_survives)
{
	const char *const kill9[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
	const char *const segv[] = { "/bin/sh", "-c", "kill -SEGV $$", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	e2e_exec(sb, kill9, NULL, NULL, 0, &r);
	cr_assert(r.signaled);
	cr_assert_eq(r.signal, 9);
	cr_assert_not(r.timed_out);
	snapbox_exec_result_free(&r);
	e2e_exec(sb, segv, NULL, NULL, 0, &r);
	cr_assert(r.signaled);
	cr_assert_eq(r.signal, 11);
	snapbox_exec_result_free(&r);
	e2e_assert_echo(sb, "still-here");
	snapbox_destroy(sb);
}

Test(linux_e2e, timeout_kills_the_command_and_agent_keeps_working)
{
	const char *const argv[] = { "/bin/sleep", "10", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	e2e_exec(sb, argv, NULL, NULL, 1000, &r);
	cr_assert(r.timed_out);
	cr_assert(r.signaled);
	cr_assert_eq(r.signal, 9);
	snapbox_exec_result_free(&r);
	e2e_assert_echo(sb, "after-timeout");
	snapbox_destroy(sb);
}

Test(linux_e2e, env_and_cwd_are_honoured)
{
	const char *const argv[] = { "/bin/sh", "-c", "echo \"$E2E_VAR\"; pwd; echo \"$PATH\"", NULL };
	const char *const env[] = { "E2E_VAR=lab42", "PATH=/bin:/sbin", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	e2e_exec(sb, argv, env, "/proc", 0, &r);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_str_eq((char *)r.out, "lab42\n/proc\n/bin:/sbin\n");
	snapbox_exec_result_free(&r);
	snapbox_destroy(sb);
}

Test(linux_e2e, file_round_trip_keeps_nul_and_newline_bytes)
{
	static const uint8_t data[] = { 'a', 0, '\n', 0, 0, 'b', '\n', 0xff, 0x80, '\r', '\n', 0 };
	const char *const argv[] = { "/bin/sh", "-c", "wc -c < /tmp/e2e.bin", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;
	void *got = NULL;
	size_t len = 0;

	cr_assert_eq(snapbox_write_file(sb, "/tmp/e2e.bin", 0600, data, sizeof(data),
					E2E_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(snapbox_read_file(sb, "/tmp/e2e.bin", 0, &got, &len, E2E_CMD_TIMEOUT_MS), 0);
	cr_assert_eq(len, sizeof(data));
	cr_assert_arr_eq(got, data, sizeof(data));
	free(got);
	/* The guest's own view of the file agrees. */
	e2e_exec(sb, argv, NULL, NULL, 0, &r);
	cr_assert_eq(atoi((char *)r.out), (int)sizeof(data));
	snapbox_exec_result_free(&r);
	snapbox_destroy(sb);
}

Test(linux_e2e, reading_a_missing_file_is_a_clean_not_found)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	void *got = (void *)1;
	size_t len = 7;

	cr_assert_eq(snapbox_read_file(sb, "/tmp/no-such-file", 0, &got, &len, E2E_CMD_TIMEOUT_MS),
		     -ENOENT);
	cr_assert_null(got);
	e2e_assert_echo(sb, "ok");
	snapbox_destroy(sb);
}

Test(linux_e2e, one_mib_of_output_arrives_intact, .timeout = 1800)
{
	const size_t n = 1u << 20;
	char cmd[64];
	const char *const argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(900000),
				       .stdout_cap = 2u << 20, .stderr_cap = 4096 };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;
	char *want = malloc(n);
	size_t i;

	cr_assert_not_null(want);
	/* The same bytes `yes snapbox-e2e | head -c N` produces. */
	for (i = 0; i < n; i++)
		want[i] = "snapbox-e2e\n"[i % 12];
	snprintf(cmd, sizeof(cmd), "yes snapbox-e2e | head -c %zu", n);
	cr_assert_eq(snapbox_exec(sb, &o, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_not(r.out_truncated);
	cr_assert_eq(r.out_len, n);
	cr_assert_eq(XXH64(r.out, r.out_len, 0), XXH64(want, n, 0), "checksum of 1 MiB of stdout");
	cr_assert_arr_eq(r.out, want, n);
	snapbox_exec_result_free(&r);
	free(want);
	snapbox_destroy(sb);
}

/* The CRC-32 of zlib and busybox crc32 (reflected polynomial 0xEDB88320). */
static uint32_t e2e_crc32(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = crc & 1 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
	}
	return ~crc;
}

/* Host -> guest: a frame over 1 MiB crosses the guest's 8250 RX path and tty layer intact. */
Test(linux_e2e, one_mib_file_written_into_the_guest_arrives_intact, .timeout = 1800)
{
	const size_t n = 1u << 20;
	const char *const argv[] = { "crc32", "/tmp/big.bin", NULL };
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;
	uint8_t *data = malloc(n);
	char want[64];

	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 8) + (i >> 16));
	cr_assert_eq(snapbox_write_file(sb, "/tmp/big.bin", 0600, data, n, tests_ms(900000)), 0);
	cr_assert_eq(e2e_crc32((const uint8_t *)"hello", 5), 0x3610a686u);
	snprintf(want, sizeof(want), "%08x /tmp/big.bin\n", e2e_crc32(data, n));
	e2e_exec(sb, argv, NULL, NULL, 0, &r);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_str_eq((char *)r.out, want);
	snapbox_exec_result_free(&r);
	free(data);
	snapbox_destroy(sb);
}

Test(linux_e2e, ten_commands_in_a_row_on_one_vm)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	char cmd[64], want[32];
	const char *const argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct snapbox_exec_result r;
	int i;

	for (i = 0; i < 10; i++) {
		struct timespec t0, t1;

		snprintf(cmd, sizeof(cmd), "echo $((%d * 7)); exit %d", i, i);
		snprintf(want, sizeof(want), "%d\n", i * 7);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		e2e_exec(sb, argv, NULL, NULL, 0, &r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* Reported, never asserted: lab timings mean nothing. */
		fprintf(stderr, "linux_e2e: exec round trip %d: %.3f ms (guest fork to reap %.3f ms)\n", i,
			(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, r.guest_ns / 1e6);
		cr_assert_eq(r.exit_code, i, "command %d", i);
		cr_assert_str_eq((char *)r.out, want, "command %d", i);
		snapbox_exec_result_free(&r);
	}
	snapbox_destroy(sb);
}
