/* unit_agent.c - the guest agent's EXEC, run on the host in test mode behind the real host channel. */
#include "kvm/mono.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/le.h"
#include "runtime/agent.h"
#include "proto/wire.h"
#include "tests/common_agent.h"

static struct tagent T;

static void fini(void)
{
	tagent_stop(&T);
}

/* Run argv with defaults; asserts the request itself succeeded. */
static void run(const char *const *argv, struct snapbox_exec_result *r)
{
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(10000) };
	int ret = agentreq_exec(&T.chan, &o, r);

	cr_assert_eq(ret, 0, "exec %s: %s", argv[0], strerror(-ret));
}

TestSuite(agent, .fini = fini, .timeout = 60);

Test(agent, ping_and_boot_stages)
{
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent, exit_code_and_separate_streams)
{
	static const char *const argv[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	run(argv, &r);
	cr_assert(!r.signaled);
	cr_assert_eq(r.exit_code, 3);
	cr_assert(!r.timed_out);
	cr_assert_str_eq((char *)r.out, "out\n");
	cr_assert_str_eq((char *)r.err, "err\n");
	cr_assert(!r.out_truncated && !r.err_truncated);
	cr_assert_gt(r.guest_ns, 0);
	snapbox_exec_result_free(&r);
}

Test(agent, signal_is_reported_and_agent_survives)
{
	static const char *const argv[] = { "sh", "-c", "echo before; kill -SEGV $$", NULL };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	run(argv, &r);
	cr_assert(r.signaled);
	cr_assert_eq(r.signal, SIGSEGV);
	cr_assert_str_eq((char *)r.out, "before\n");
	snapbox_exec_result_free(&r);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent, missing_program_and_missing_cwd)
{
	static const char *const argv[] = { "/no/such/program", NULL };
	static const char *const pwd[] = { "pwd", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(5000) };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -ENOENT);
	o.argv = pwd;
	o.cwd = "/no/such/dir";
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -ENOENT);
	cr_assert_null(r.out);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent, truncation_keeps_the_cap_and_drains_the_rest)
{
	static const char *const argv[] = {
		"sh", "-c", "head -c 100000 /dev/zero; head -c 7000 /dev/zero >&2; echo done >&2", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(10000), .stdout_cap = 1000,
				       .stderr_cap = 200 };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	/* The writer is never blocked by the cap: it ran to completion (exit 0, no SIGPIPE). */
	cr_assert(!r.signaled);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_eq(r.out_len, 1000);
	cr_assert_eq(r.err_len, 200);
	cr_assert(r.out_truncated && r.err_truncated);
	snapbox_exec_result_free(&r);
}

Test(agent, stdin_bytes_round_trip)
{
	static const char *const argv[] = { "cat", NULL };
	static const uint8_t small[] = "line\n\0\x03\x11\x13\x7f\r\nend";
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(10000),
				       .stdin_data = small, .stdin_len = sizeof(small) };
	struct snapbox_exec_result r;
	size_t big = 600u << 10, i;
	uint8_t *buf = malloc(big);

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_eq(r.out_len, sizeof(small));
	cr_assert_eq(memcmp(r.out, small, sizeof(small)), 0);
	snapbox_exec_result_free(&r);

	/* More than a pipe holds in both directions at once: no deadlock. */
	for (i = 0; i < big; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	o.stdin_data = buf;
	o.stdin_len = big;
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_eq(r.out_len, big);
	cr_assert_eq(memcmp(r.out, buf, big), 0);
	snapbox_exec_result_free(&r);
	free(buf);
}

Test(agent, env_is_exact_plus_default_path)
{
	static const char *const argv[] = { "env", NULL };
	static const char *const env[] = { "FOO=bar baz", "EMPTY=", NULL };
	static const char *const env2[] = { "PATH=/usr/bin:/bin", "X=1", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .env = env, .timeout_ms = tests_ms(5000) };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_str_eq((char *)r.out, "FOO=bar baz\nEMPTY=\n"
			 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
	snapbox_exec_result_free(&r);
	o.env = env2;
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_str_eq((char *)r.out, "PATH=/usr/bin:/bin\nX=1\n");
	snapbox_exec_result_free(&r);
}

Test(agent, cwd_is_honoured)
{
	static const char *const argv[] = { "pwd", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .cwd = "/usr/bin", .timeout_ms = tests_ms(5000) };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_str_eq((char *)r.out, "/usr/bin\n");
	snapbox_exec_result_free(&r);
	o.cwd = NULL;
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_str_eq((char *)r.out, "/\n");
	snapbox_exec_result_free(&r);
}

Test(agent, timeout_kills_the_whole_process_group)
{
	/* A grandchild that holds stdout open and would outlive its parent. */
	static const char *const argv[] = { "sh", "-c", "sleep 30 & echo $!; wait", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 500 };
	struct snapbox_exec_result r;
	uint64_t t0 = mono_now_ns();
	pid_t grandchild;

	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert(r.timed_out);
	cr_assert(r.signaled);
	cr_assert_eq(r.signal, SIGKILL);
	cr_assert_lt(mono_now_ns() - t0, tests_ms(5000) * 1000000ull, "the timeout was not enforced");
	grandchild = (pid_t)atoi((char *)r.out);
	cr_assert_gt(grandchild, 1, "no grandchild pid in '%s'", (char *)r.out);
	snapbox_exec_result_free(&r);
	/* Killed, reparented to the agent (subreaper, like PID 1) and reaped. */
	cr_assert(tagent_wait_gone(grandchild, tests_ms(3000)), "grandchild %d survived", grandchild);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent, orphans_are_reaped)
{
	static const char *const argv[] = { "sh", "-c", "for i in 1 2 3; do sleep 0.1 & done", NULL };
	struct snapbox_exec_result r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	run(argv, &r);
	cr_assert_eq(r.exit_code, 0);
	snapbox_exec_result_free(&r);
	usleep(600000);
	cr_assert_eq(tagent_zombies(T.agent_pid), 0, "zombies left under the agent");
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent, ten_commands_in_a_row)
{
	struct snapbox_exec_result r;
	char arg[16], want[16];
	int i;

	tagent_start(&T, TAGENT_SOCKET, 300);
	for (i = 0; i < 10; i++) {
		const char *argv[] = { "echo", arg, NULL };

		snprintf(arg, sizeof(arg), "n%d", i);
		snprintf(want, sizeof(want), "n%d\n", i);
		run(argv, &r);
		cr_assert_str_eq((char *)r.out, want);
		snapbox_exec_result_free(&r);
	}
}

Test(agent, stopped_guest_times_out_then_recovers)
{
	static const char *const argv[] = { "true", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 200, .grace_ms = 300 };
	struct snapbox_exec_result r;
	uint64_t t0;

	tagent_start(&T, TAGENT_SOCKET, 300);
	kill(T.pid, SIGSTOP);
	t0 = mono_now_ns();
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -ETIMEDOUT);
	cr_assert_lt(mono_now_ns() - t0, tests_ms(2000) * 1000000ull);
	cr_assert_eq(tagent_ping(&T, 200), -ETIMEDOUT);
	kill(T.pid, SIGCONT);
	/* The late replies carry old ids and are dropped; a new request works. */
	cr_assert_eq(tagent_ping(&T, tests_ms(3000)), 0);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	snapbox_exec_result_free(&r);
}

Test(agent, pty_channel_is_raw_and_8bit_clean)
{
	static const char *const argv[] = { "cat", NULL };
	uint8_t all[256];
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(5000), .stdin_data = all,
				       .stdin_len = sizeof(all) };
	struct snapbox_exec_result r;
	int i;

	for (i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	tagent_start(&T, TAGENT_PTY, 300);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_eq(r.out_len, sizeof(all));
	cr_assert_eq(memcmp(r.out, all, sizeof(all)), 0, "bytes changed on the pty");
	snapbox_exec_result_free(&r);
}

Test(agent, as_pid1_it_mounts_cannot_be_killed_and_reaps)
{
	static const char *const look[] = {
		"sh", "-c", "cat /proc/1/comm; ls -A /tmp | wc -l; echo $$", NULL };
	static const char *const kill1[] = {
		"sh", "-c", "kill -KILL 1; kill -TERM 1; kill -INT 1; kill -HUP 1; echo alive", NULL };
	static const char *const orphans[] = {
		"sh", "-c", "for i in 1 2 3; do sleep 0.1 & done", NULL };
	struct snapbox_exec_result r;
	char comm[64];
	int files, pid;

	tagent_start(&T, TAGENT_PID1, 300);
	/* Its own /proc (PID 1 is the agent) and a fresh, empty tmpfs on /tmp. */
	run(look, &r);
	cr_assert_eq(sscanf((char *)r.out, "%63s %d %d", comm, &files, &pid), 3, "%s", (char *)r.out);
	cr_assert_str_eq(comm, "agent");
	cr_assert_eq(files, 0);
	cr_assert_gt(pid, 1);
	snapbox_exec_result_free(&r);
	/* Signals from inside the guest cannot take PID 1 down. */
	run(kill1, &r);
	cr_assert_str_eq((char *)r.out, "alive\n");
	snapbox_exec_result_free(&r);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
	run(orphans, &r);
	snapbox_exec_result_free(&r);
	usleep(600000);
	cr_assert_eq(tagent_zombies(T.agent_pid), 0, "zombies left under PID 1");
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

/* REFRESH as a test process: checked to the byte, acknowledged, and never applied to this host. */
Test(agent, refresh_is_validated_and_acknowledged)
{
	uint8_t msg[PROTO_REFRESH_HDR + PROTO_REFRESH_MAX_ENTROPY + 1] = { 0 };
	uint64_t deadline;
	uint32_t n;
	void *r;

	tagent_start(&T, TAGENT_SOCKET, 300);
	le_put64(msg, 1);              /* 1970: would be obvious if it were applied */
	le_put32(msg + 8, 32);
	deadline = mono_now_ns() + tests_ms(2000) * 1000000ull;
	cr_assert_eq(chan_request(&T.chan, PROTO_T_REFRESH, msg, PROTO_REFRESH_HDR + 32, &r, &n, deadline), 0);
	cr_assert_eq(n, 0);
	free(r);
	cr_assert_gt(time(NULL), 1700000000, "the host clock was set by a test agent");
	/* Too short, entropy length past the cap, and a length that disagrees with the frame. */
	cr_assert_eq(chan_request(&T.chan, PROTO_T_REFRESH, msg, 8, &r, &n, deadline), -EREMOTEIO);
	free(r);
	le_put32(msg + 8, PROTO_REFRESH_MAX_ENTROPY + 1);
	cr_assert_eq(chan_request(&T.chan, PROTO_T_REFRESH, msg, sizeof(msg), &r, &n, deadline),
		     -EREMOTEIO);
	free(r);
	le_put32(msg + 8, 32);
	cr_assert_eq(chan_request(&T.chan, PROTO_T_REFRESH, msg, PROTO_REFRESH_HDR + 31, &r, &n, deadline),
		     -EREMOTEIO);
	free(r);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}
