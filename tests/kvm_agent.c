/* kvm_agent.c - the agent calls on a real VM (the probe): refusals, a guest that stops answering, clean destroy. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"
#include "tests/common_kvm.h"

Test(kvm_agent, probe_refuses_agent_requests_cleanly)
{
	static const char *const argv[] = { "true", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 1000, .grace_ms = tests_ms(4000) };
	struct snapbox_exec_result r;
	struct snapbox *sb;
	size_t len;
	void *data;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	/* The probe answers "unknown command" (no errno): -EREMOTEIO, nothing allocated. */
	cr_assert_eq(snapbox_exec(sb, &o, &r), -EREMOTEIO);
	cr_assert_null(r.out);
	cr_assert_eq(snapbox_read_file(sb, "/x", 0, &data, &len, tests_ms(5000)), -EREMOTEIO);
	cr_assert_null(data);
	cr_assert_eq(snapbox_write_file(sb, "/x", 0644, "a", 1, tests_ms(5000)), -EREMOTEIO);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}

Test(kvm_agent, silent_guest_times_out_and_destroys)
{
	static const char *const argv[] = { "true", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 200, .grace_ms = 300 };
	struct proto_fault_req f = { .kind = PROTO_FAULT_SPIN_FOREVER };
	struct snapbox_exec_result r;
	struct snapbox *sb;
	uint32_t n = 0;
	void *reply = NULL, *data;
	size_t len;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_FAULT, &f, sizeof(f), &reply, &n, 300), -ETIMEDOUT);
	free(reply);
	cr_assert_eq(snapbox_exec(sb, &o, &r), -ETIMEDOUT);
	cr_assert_eq(snapbox_read_file(sb, "/etc/hostname", 0, &data, &len, 300), -ETIMEDOUT);
	cr_assert_eq(snapbox_write_file(sb, "/tmp/x", 0644, "a", 1, 300), -ETIMEDOUT);
	snapbox_destroy(sb);   /* must not hang on the spinning vCPU */
}

Test(kvm_agent, oversize_requests_are_refused_before_sending)
{
	static const char *const argv[] = { "cat", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .stdout_cap = SNAPBOX_EXEC_MAX_OUTPUT,
				       .stderr_cap = 1 };
	struct snapbox_exec_result r;
	struct snapbox *sb;
	void *big;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(snapbox_exec(sb, &o, &r), -E2BIG);
	o.stdout_cap = 0;
	o.stderr_cap = 0;
	big = calloc(1, 5u << 20);
	o.stdin_data = big;
	o.stdin_len = 5u << 20;   /* more than one frame can carry */
	cr_assert_eq(snapbox_exec(sb, &o, &r), -E2BIG);
	cr_assert_eq(snapbox_write_file(sb, "/tmp/x", 0644, big, SNAPBOX_FILE_MAX + 1, tests_ms(1000)), -EFBIG);
	free(big);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}
