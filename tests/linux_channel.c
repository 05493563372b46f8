/* linux_channel.c - the agent channel on virtio-vsock with the Linux guest (in the lab): requests run at once, a long exec never holds up PING, and the vCPU exits an exec costs. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/mono.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"

#define LC_TIMEOUT_MS tests_ms(120000)
#define LC_THREADS 8

struct lc_worker {
	struct snapbox *sb;
	int index;
	int ret;
	char out[64];
};

/* Each thread runs `echo chan-<i>` and keeps what it got back. */
static void *lc_echo(void *arg)
{
	struct lc_worker *w = arg;
	char word[32];
	snprintf(word, sizeof(word), "chan-%d", w->index);
	const char *const argv[] = { "/bin/sh", "-c", "sleep 1; echo $0", word, NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = LC_TIMEOUT_MS };
	struct snapbox_exec_result r;

	w->ret = snapbox_exec(w->sb, &o, &r);
	if (!w->ret) {
		snprintf(w->out, sizeof(w->out), "%.*s", (int)r.out_len, (const char *)r.out);
		snapbox_exec_result_free(&r);
	}
	return NULL;
}

Test(linux_channel, eight_concurrent_execs_each_get_their_own_output, .timeout = 1800)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	struct lc_worker w[LC_THREADS];
	pthread_t th[LC_THREADS];

	for (int i = 0; i < LC_THREADS; i++) {
		w[i] = (struct lc_worker){ .sb = sb, .index = i };
		cr_assert_eq(pthread_create(&th[i], NULL, lc_echo, &w[i]), 0);
	}
	for (int i = 0; i < LC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < LC_THREADS; i++) {
		char want[32];
		snprintf(want, sizeof(want), "chan-%d\n", i);
		cr_assert_eq(w[i].ret, 0, "exec %d: %s", i, strerror(-w[i].ret));
		cr_assert_str_eq(w[i].out, want);
	}
	snapbox_destroy(sb);
}

struct lc_sleeper {
	struct snapbox *sb;
	atomic_bool done;
	int ret;
};

static void *lc_sleep(void *arg)
{
	struct lc_sleeper *s = arg;
	const char *const argv[] = { "sleep", "30", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = LC_TIMEOUT_MS };
	struct snapbox_exec_result r;

	s->ret = snapbox_exec(s->sb, &o, &r);
	if (!s->ret)
		snapbox_exec_result_free(&r);
	atomic_store(&s->done, true);
	return NULL;
}

/* The median round trip of 9 PINGs, each of which must succeed. */
static uint64_t lc_ping_p50(struct snapbox *sb)
{
	uint64_t t[9];

	for (int i = 0; i < 9; i++) {
		uint64_t t0 = mono_now_ns();
		cr_assert_eq(snapbox_ping(sb, LC_TIMEOUT_MS), 0);
		t[i] = mono_now_ns() - t0;
	}
	for (int i = 1; i < 9; i++)
		for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
			uint64_t x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return t[4];
}

Test(linux_channel, a_long_exec_does_not_hold_up_ping_or_files, .timeout = 1800)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	struct lc_sleeper s = { .sb = sb };
	pthread_t th;
	void *data = NULL;
	size_t len = 0;

	uint64_t alone = lc_ping_p50(sb);
	cr_assert_eq(pthread_create(&th, NULL, lc_sleep, &s), 0);
	/* Give the exec time to start in the guest (its own connection), then
	 * ask for other things while it sleeps: on COM2 each waited its turn. */
	unsigned settle = tests_ms(2000);
	struct timespec ts = { settle / 1000, (long)(settle % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	uint64_t beside = lc_ping_p50(sb);
	/* Printed, not asserted (a time): docs/benchmarks.md records it. */
	fprintf(stderr, "linux_channel: PING round trip p50 %.3f ms alone, %.3f ms beside sleep 30 "
		"(this machine's clock; in the lab, L1's)\n", (double)alone / 1e6, (double)beside / 1e6);
	cr_assert_eq(snapbox_write_file(sb, "/tmp/beside", 0644, "ok", 2, LC_TIMEOUT_MS), 0);
	cr_assert_eq(snapbox_read_file(sb, "/tmp/beside", 16, &data, &len, LC_TIMEOUT_MS), 0);
	cr_assert_eq(len, 2);
	free(data);
	cr_assert_not(atomic_load(&s.done), "the PINGs and file requests waited for sleep 30");
	pthread_join(th, NULL);
	cr_assert_eq(s.ret, 0);
	snapbox_destroy(sb);
}

/*
 * vCPU exits to userspace of one exec of argv, after a first run warmed its
 * pages, less the port I/O ones: those are the kernel's console (COM1),
 * which prints when it likes (under load in the lab, a clocksource or
 * hrtimer warning is a few hundred exits), not the channel. *io gets them.
 */
static uint64_t lc_exits(struct snapbox *sb, const char *const *argv, size_t *out_len,
			 uint64_t *io, uint64_t *all)
{
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = LC_TIMEOUT_MS,
				       .stdout_cap = 2u << 20 };
	struct snapbox_exec_result r;
	uint64_t e0, io0;

	cr_assert_eq(snapbox_exec(sb, &o, &r), 0);
	snapbox_exec_result_free(&r);
	e0 = atomic_load(&sb->vcpu.exits);
	io0 = atomic_load(&sb->vcpu.io_exits);
	uint64_t k0 = vcpu_kvm_exits(&sb->vcpu);
	cr_assert_eq(snapbox_exec(sb, &o, &r), 0);
	*out_len = r.out_len;
	snapbox_exec_result_free(&r);
	*io = atomic_load(&sb->vcpu.io_exits) - io0;
	uint64_t k1 = vcpu_kvm_exits(&sb->vcpu);
	*all = k0 == UINT64_MAX || k1 == UINT64_MAX ? 0 : k1 - k0;
	return atomic_load(&sb->vcpu.exits) - e0 - *io;
}

Test(linux_channel, exits_per_exec, .timeout = 1800)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	const char *const t[] = { "true", NULL };
	const char *const big[] = { "head", "-c", "1048576", "/dev/zero", NULL };
	uint64_t iot, iob, at, ab;
	size_t n;

	uint64_t et = lc_exits(sb, t, &n, &iot, &at);
	uint64_t eb = lc_exits(sb, big, &n, &iob, &ab);
	cr_assert_eq(n, 1048576);
	fprintf(stderr, "linux_channel: vCPU exits to userspace but the console's: exec of true %llu, "
		"1 MiB of stdout %llu (console port I/O beside them: %llu, %llu); every exit, those KVM "
		"handled itself included (KVM's count; 0: not offered): %llu, %llu\n",
		(unsigned long long)et, (unsigned long long)eb, (unsigned long long)iot,
		(unsigned long long)iob, (unsigned long long)at, (unsigned long long)ab);
	/* docs/benchmarks.md: from 732 and about 1.25 million on COM2. The issue
	 * asks 12 and 300; measured 12 and 21 in the lab (kvm-amd). An exec's
	 * count moves with how the guest's interrupts coalesce (each costs
	 * Linux's virtio-mmio handler a status read and an ACK, two exits), so
	 * the test allows two more interrupts than the measured run. */
	cr_assert_leq(et, 16, "an exec of true took %llu exits", (unsigned long long)et);
	cr_assert_leq(eb, 300, "1 MiB of stdout took %llu exits", (unsigned long long)eb);
	snapbox_destroy(sb);
}
