/* kvm_probe.c - cold boot of the probe guest to READY and its command set, on real KVM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"

#define T_MS tests_ms(5000)

static struct snapbox *boot_ok(struct snapbox_create_profile *cp, struct snapbox_boot_profile *bp)
{
	return tests_boot_probe(NULL, cp, bp);
}

Test(kvm_probe, boots_to_ready_with_all_stages_in_order)
{
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(&cp, &bp);
	for (int i = 0; i < SNAPBOX_STAGE_COUNT; i++) {
		cr_assert(bp.stage_valid[i], "stage %s missing", snapbox_stage_name(i));
		if (i > 0)
			cr_assert_geq(bp.stage_ns[i], bp.stage_ns[i - 1], "stage %s before %s",
				      snapbox_stage_name(i), snapbox_stage_name(i - 1));
	}
	cr_assert_gt(bp.ready, 0);
	cr_assert_gt(bp.exits, 0);
	cr_assert_eq(cp.cold_start_total, cp.create_vm_total + cp.boot_wait);
	cr_assert_gt(cp.kvm_create_vm, 0);
	cr_assert_gt(cp.vcpu_creation, 0);
	snapbox_destroy(sb);
}

Test(kvm_probe, ping_and_echo)
{
	struct snapbox *sb;
	static uint8_t big[60000];
	uint32_t n;
	void *r;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(NULL, NULL);
	cr_assert_eq(snapbox_ping(sb, T_MS), 0);
	cr_assert_eq(snapbox_request(sb, PROTO_T_ECHO, "hello", 5, &r, &n, T_MS), 0);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(r, "hello", 5), 0);
	free(r);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	cr_assert_eq(snapbox_request(sb, PROTO_T_ECHO, big, sizeof(big), &r, &n, T_MS), 0);
	cr_assert_eq(n, sizeof(big));
	cr_assert_eq(memcmp(r, big, sizeof(big)), 0);
	free(r);
	snapbox_destroy(sb);
}

Test(kvm_probe, fill_verify_and_hash_match_host_view)
{
	struct proto_fill_req fr = { .mib = 16, .seed = 0x1234 };
	struct proto_fill_resp fresp;
	struct proto_verify_resp vr;
	struct proto_hash_req hr;
	struct snapbox *sb;
	uint8_t *host;
	uint64_t gh;
	uint32_t n;
	void *r;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_FILL, &fr, sizeof(fr), &r, &n, T_MS), 0);
	cr_assert_eq(n, sizeof(fresp));
	memcpy(&fresp, r, sizeof(fresp));
	free(r);
	cr_assert_eq(fresp.base, PROTO_FILL_BASE);
	cr_assert_eq(fresp.bytes, 16ull << 20);
	cr_assert_eq(fresp.zero_pages + fresp.text_pages + fresp.random_pages, 4096);
	cr_assert_gt(fresp.zero_pages, 0);
	cr_assert_gt(fresp.text_pages, 0);
	cr_assert_gt(fresp.random_pages, 0);

	cr_assert_eq(snapbox_request(sb, PROTO_T_VERIFY, &fr, sizeof(fr), &r, &n, T_MS), 0);
	memcpy(&vr, r, sizeof(vr));
	free(r);
	cr_assert_eq(vr.bad_pages, 0);
	fr.seed++;
	cr_assert_eq(snapbox_request(sb, PROTO_T_VERIFY, &fr, sizeof(fr), &r, &n, T_MS), 0);
	memcpy(&vr, r, sizeof(vr));
	free(r);
	cr_assert_gt(vr.bad_pages, 0, "verify with the wrong seed found no difference");

	hr.gpa = PROTO_FILL_BASE;
	hr.len = 16ull << 20;
	cr_assert_eq(snapbox_request(sb, PROTO_T_HASH, &hr, sizeof(hr), &r, &n, T_MS), 0);
	cr_assert_eq(n, 8);
	memcpy(&gh, r, 8);
	free(r);
	host = malloc(hr.len);
	cr_assert_eq(snapbox_read_guest(sb, hr.gpa, host, hr.len), 0);
	cr_assert_eq(gh, proto_hash64(host, hr.len), "guest and host disagree on memory");
	free(host);
	snapbox_destroy(sb);
}

Test(kvm_probe, fill_outside_ram_is_refused)
{
	struct proto_fill_req fr = { .mib = 4096, .seed = 1 };
	struct snapbox *sb;
	uint32_t n;
	void *r;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_FILL, &fr, sizeof(fr), &r, &n, T_MS), -EREMOTEIO);
	free(r);
	cr_assert_eq(snapbox_ping(sb, T_MS), 0, "probe died after a refused fill");
	snapbox_destroy(sb);
}

Test(kvm_probe, ticks_advance_and_spin_spins)
{
	struct proto_ticks_resp a, b;
	struct snapbox *sb;
	uint32_t n, ms = 20;
	uint64_t spun;
	void *r;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(NULL, NULL);
	cr_assert_eq(snapbox_request(sb, PROTO_T_TICKS, NULL, 0, &r, &n, T_MS), 0);
	cr_assert_eq(n, sizeof(a));
	memcpy(&a, r, sizeof(a));
	free(r);
	cr_assert_eq(snapbox_request(sb, PROTO_T_SPIN, &ms, 4, &r, &n, T_MS), 0);
	memcpy(&spun, r, 8);
	free(r);
	cr_assert_geq(spun, 20ull * 1000000, "spun only %llu ns", (unsigned long long)spun);
	cr_assert_eq(snapbox_request(sb, PROTO_T_TICKS, NULL, 0, &r, &n, T_MS), 0);
	memcpy(&b, r, sizeof(b));
	free(r);
	cr_assert_gt(a.tsc_khz, 0);
	cr_assert_gt(b.tsc, a.tsc);
	cr_assert_geq(b.ns - a.ns, 20ull * 1000000, "guest clock did not advance over the spin");
	snapbox_destroy(sb);
}

Test(kvm_probe, unknown_request_gets_error_reply)
{
	struct snapbox *sb;
	uint32_t n;
	void *r;

	TESTS_REQUIRE_KVM();
	sb = boot_ok(NULL, NULL);
	cr_assert_eq(snapbox_request(sb, 0x7777, NULL, 0, &r, &n, T_MS), -EREMOTEIO);
	cr_assert_gt(n, 0, "error reply carries no reason");
	free(r);
	cr_assert_eq(snapbox_ping(sb, T_MS), 0);
	snapbox_destroy(sb);
}

/* Criterion runs each test in a fresh process, so the process-wide MSR cache starts empty. */
Test(kvm_probe, prepare_snapshot_probes_the_msr_set_during_boot)
{
	struct snapbox_config cfg = { .kernel = tests_probe_path(), .console_fd = -1,
				      .mem_bytes = 128ull << 20 };
	struct snapbox *plain, *prepared;
	int fds;

	TESTS_REQUIRE_KVM();
	fds = tests_count_fds();
	cr_assert_eq(snapbox_boot(&cfg, &plain, NULL, NULL), 0);
	cr_assert_null(plain->sys.msrs, "a plain boot probed the MSRs");
	cfg.prepare_snapshot = true;
	cr_assert_eq(snapbox_boot(&cfg, &prepared, NULL, NULL), 0);
	cr_assert_not_null(prepared->sys.msrs);
	cr_assert_gt(prepared->sys.nmsrs, 0);
	cr_assert_eq(snapbox_ping(prepared, tests_ms(5000)), 0);
	snapbox_destroy(prepared);
	snapbox_destroy(plain);
	/* The probe's scratch VM is gone by the time boot returns. */
	cr_assert_eq(tests_count_fds(), fds);
}

#define KP_THREADS 8
#define KP_ROUNDS  25

struct kp_worker {
	struct snapbox *sb;
	int index;
	int failures;    /* requests that failed or came back with another thread's bytes */
	int first_err;
};

/* KP_ROUNDS ECHOs of bytes only this thread sends, each checked against its own. */
static void *kp_worker_run(void *arg)
{
	struct kp_worker *w = arg;

	for (int k = 0; k < KP_ROUNDS; k++) {
		char msg[64];
		uint32_t n = 0;
		void *r = NULL;
		int len = snprintf(msg, sizeof(msg), "thread %d round %d", w->index, k);
		int ret = snapbox_request(w->sb, PROTO_T_ECHO, msg, (uint32_t)len, &r, &n, tests_ms(20000));

		if (ret || n != (uint32_t)len || memcmp(r, msg, n) != 0) {
			if (!w->failures)
				w->first_err = ret;
			w->failures++;
		}
		free(r);
	}
	return NULL;
}

Test(kvm_probe, concurrent_requests_to_one_sandbox_each_get_their_own_reply)
{
	struct kp_worker w[KP_THREADS];
	pthread_t th[KP_THREADS];
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	/* snapbox.h: requests on one sandbox from several threads are served in
	 * turn and never lose or swap a reply. */
	for (int i = 0; i < KP_THREADS; i++) {
		w[i] = (struct kp_worker){ .sb = sb, .index = i };
		cr_assert_eq(pthread_create(&th[i], NULL, kp_worker_run, &w[i]), 0);
	}
	for (int i = 0; i < KP_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < KP_THREADS; i++)
		cr_assert_eq(w[i].failures, 0, "thread %d: %d of %d requests failed or got another's reply "
			     "(first error %d)", i, w[i].failures, KP_ROUNDS, w[i].first_err);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}
