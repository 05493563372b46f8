/* kvm_faults.c - a misbehaving probe guest and bad boot input must give errors, never crashes, hangs or leaks. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/wire.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"

static int fault(struct snapbox *sb, uint32_t kind, uint64_t arg, uint64_t *value, unsigned ms)
{
	struct proto_fault_req f = { .kind = kind, .arg = arg };
	uint32_t n = 0;
	void *r = NULL;
	int ret = snapbox_request(sb, PROTO_T_FAULT, &f, sizeof(f), &r, &n, ms);

	if (ret == 0 && value && n >= 8)
		memcpy(value, r, 8);
	free(r);
	return ret;
}

Test(kvm_faults, unknown_port_reads_all_ones_and_guest_survives)
{
	struct snapbox *sb;
	uint64_t v = 0, before;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	before = snapbox_unknown_accesses(sb);
	cr_assert_eq(fault(sb, PROTO_FAULT_WILD_PORT, 0x3e0, &v, tests_ms(5000)), 0);
	cr_assert_eq((uint32_t)v, 0xffffffffu);
	cr_assert_gt(snapbox_unknown_accesses(sb), before);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}

Test(kvm_faults, unknown_mmio_reads_all_ones_and_guest_survives)
{
	struct snapbox *sb;
	uint64_t v = 0, before;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	before = snapbox_unknown_accesses(sb);
	cr_assert_eq(fault(sb, PROTO_FAULT_WILD_MMIO, 0xe0000000ull, &v, tests_ms(5000)), 0);
	cr_assert_eq((uint32_t)v, 0xffffffffu);
	cr_assert_gt(snapbox_unknown_accesses(sb), before);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}

Test(kvm_faults, triple_fault_is_an_error_not_a_crash)
{
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(fault(sb, PROTO_FAULT_TRIPLE, 0, NULL, tests_ms(5000)), -ESHUTDOWN);
	cr_assert_not_null(strstr(snapbox_stop_reason(sb), "triple fault"), "reason: %s",
			   snapbox_stop_reason(sb));
	cr_assert_eq(snapbox_ping(sb, tests_ms(1000)), -ESHUTDOWN);
	snapbox_destroy(sb);
}

Test(kvm_faults, spinning_guest_times_out_and_is_destroyed)
{
	struct snapbox *sb;
	int fds;

	TESTS_REQUIRE_KVM();
	fds = tests_count_fds();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(fault(sb, PROTO_FAULT_SPIN_FOREVER, 0, NULL, 300), -ETIMEDOUT);
	cr_assert_eq(snapbox_ping(sb, 200), -ETIMEDOUT);
	cr_assert_str_eq(snapbox_stop_reason(sb), "running");
	snapbox_destroy(sb);
	cr_assert_eq(tests_count_fds(), fds, "destroy leaked file descriptors");
}

Test(kvm_faults, halt_with_interrupts_off_times_out_and_is_destroyed)
{
	struct snapbox *sb;
	int fds;

	TESTS_REQUIRE_KVM();
	fds = tests_count_fds();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(fault(sb, PROTO_FAULT_HLT_CLI, 0, NULL, 300), -ETIMEDOUT);
	snapbox_destroy(sb);
	cr_assert_eq(tests_count_fds(), fds, "destroy leaked file descriptors");
}

Test(kvm_faults, port_flood_is_survived)
{
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(fault(sb, PROTO_FAULT_PORT_FLOOD, 20000, NULL, tests_ms(20000)), 0);
	cr_assert_geq(snapbox_unknown_accesses(sb), 20000);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}

Test(kvm_faults, garbage_and_huge_frames_are_skipped)
{
	uint64_t frames, skipped, oversize;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	/* COM2 attacks: the probe's UART test mode. */
	sb = tests_boot_probe("console=ttyS0 probe.channel=uart", NULL, NULL);
	cr_assert_eq(fault(sb, PROTO_FAULT_GARBAGE, 5000, NULL, tests_ms(5000)), 0);
	snapbox_channel_stats(sb, &frames, &skipped, &oversize);
	cr_assert_geq(skipped, 5000);
	cr_assert_eq(fault(sb, PROTO_FAULT_HUGE_FRAME, 0, NULL, tests_ms(5000)), 0);
	snapbox_channel_stats(sb, &frames, &skipped, &oversize);
	cr_assert_geq(oversize, 1);
	cr_assert_eq(snapbox_ping(sb, tests_ms(5000)), 0);
	snapbox_destroy(sb);
}

/* Bad input: each gets its errno and leaves no file descriptor behind. */
static int boot_with(const char *kernel, const char *initrd, uint64_t mem, const char *kvm)
{
	struct snapbox_config cfg = {
		.kernel = kernel, .initrd = initrd, .mem_bytes = mem, .console_fd = -1,
		.boot_timeout_ms = tests_ms(5000), .kvm_path = kvm,
	};
	struct snapbox *sb = NULL;
	int fds = tests_count_fds();
	int ret = snapbox_boot(&cfg, &sb, NULL, NULL);

	cr_assert_null(sb);
	cr_assert_eq(tests_count_fds(), fds, "failed boot leaked file descriptors");
	return ret;
}

static const char *write_tmp(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/snapbox-test-%d-%s", getpid(), name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	if (len)
		cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

Test(kvm_badinput, missing_kernel)
{
	TESTS_REQUIRE_KVM();
	cr_assert_eq(boot_with("/nonexistent/vmlinux", NULL, 0, NULL), -ENOENT);
}

Test(kvm_badinput, not_a_kernel)
{
	const char *p;

	TESTS_REQUIRE_KVM();
	p = write_tmp("notkernel", "#!/bin/sh\necho hello\n", 21);
	cr_assert_eq(boot_with(p, NULL, 0, NULL), -ENOEXEC);
	unlink(p);
}

Test(kvm_badinput, empty_kernel_and_directory)
{
	const char *p;

	TESTS_REQUIRE_KVM();
	p = write_tmp("empty", "", 0);
	cr_assert_eq(boot_with(p, NULL, 0, NULL), -ENOEXEC);
	unlink(p);
	cr_assert_eq(boot_with("/tmp", NULL, 0, NULL), -EISDIR);
}

Test(kvm_badinput, too_little_and_too_much_memory)
{
	TESTS_REQUIRE_KVM();
	cr_assert_eq(boot_with(tests_probe_path(), NULL, 1ull << 20, NULL), -EINVAL);
	cr_assert_eq(boot_with(tests_probe_path(), NULL, 64ull << 30, NULL), -EINVAL);
}

Test(kvm_badinput, initrd_larger_than_memory)
{
	const char *p;
	int fd;

	TESTS_REQUIRE_KVM();
	p = write_tmp("bigrd", "", 0);
	fd = open(p, O_WRONLY);
	cr_assert_eq(ftruncate(fd, 40ll << 20), 0);  /* sparse: costs no disk */
	close(fd);
	cr_assert_eq(boot_with(tests_probe_path(), p, 32ull << 20, NULL), -E2BIG);
	unlink(p);
}

Test(kvm_badinput, no_kvm_device)
{
	/* Needs no KVM: the point is that there is none at this path. */
	cr_assert_eq(boot_with(tests_probe_path(), NULL, 0, "/nonexistent/kvm"), -ENODEV);
}

/* Frames the channel has parsed so far. */
static uint64_t kf_frames(struct snapbox *sb)
{
	uint64_t frames = 0, skipped, oversize;

	snapbox_channel_stats(sb, &frames, &skipped, &oversize);
	return frames;
}

Test(kvm_faults, a_pause_that_times_out_leaves_the_guest_running)
{
	struct proto_fault_req f = { .kind = PROTO_FAULT_FRAME_FLOOD, .arg = 0 };
	struct timespec tick = { 0, 200 * 1000 * 1000 };
	struct snapbox *sb;
	uint32_t n = 0;
	void *r = NULL;
	uint64_t a, b;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe("console=ttyS0 probe.channel=uart", NULL, NULL);
	/* The guest sends frames for ever; each byte reaches the channel on the
	 * vCPU thread. Holding the channel's lock stops that thread inside its
	 * COM2 handler, outside KVM_RUN, where no kick can make it park: the
	 * pause must time out. */
	cr_assert_eq(snapbox_request(sb, PROTO_T_FAULT, &f, sizeof(f), &r, &n, 300), -ETIMEDOUT);
	free(r);
	pthread_mutex_lock(&sb->chan.lock);
	nanosleep(&tick, NULL);   /* the flood's next byte stops the vCPU thread at the lock */
	cr_assert_eq(vcpu_pause(&sb->vcpu, 300), -ETIMEDOUT);
	pthread_mutex_unlock(&sb->chan.lock);
	/* The withdrawn pause leaves the guest running: frames keep coming.
	 * Still armed, the vCPU would park once the lock was free, with nobody
	 * left to resume it, and the frames would stop for good. */
	nanosleep(&tick, NULL);
	a = kf_frames(sb);
	nanosleep(&tick, NULL);
	b = kf_frames(sb);
	cr_assert_gt(b, a, "the guest froze after a pause timed out (%llu frames, then %llu)",
		     (unsigned long long)a, (unsigned long long)b);
	/* And a later pause and resume still work. */
	cr_assert_eq(vcpu_pause(&sb->vcpu, tests_ms(2000)), 0);
	cr_assert_eq(vcpu_resume(&sb->vcpu), 0);
	snapbox_destroy(sb);
}
