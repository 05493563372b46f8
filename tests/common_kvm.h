/* common_kvm.h - shared helpers for the probe-guest KVM tests: skipping without KVM, booting, fd counting. */
#ifndef SNAPBOX_TESTS_COMMON_KVM_H
#define SNAPBOX_TESTS_COMMON_KVM_H

#include <stdbool.h>
#include <stdint.h>

#include "snapbox.h"

/* True when /dev/kvm can be opened read-write; otherwise why holds the reason. */
bool tests_kvm_usable(char *why, size_t len);

/* Path of the probe guest ELF ($SNAPBOX_PROBE, default build/guest/probe.elf). */
const char *tests_probe_path(void);

/* SNAPBOX_KVM_REQUIRED=1 (make test, the lab): a KVM test that cannot run fails instead of skipping. */
bool tests_kvm_required(void);

/* Skip the test when KVM is unusable, or fail it when KVM is required. */
#define TESTS_REQUIRE_KVM()                                                     \
	do {                                                                    \
		char why_[256];                                                 \
		if (tests_kvm_usable(why_, sizeof(why_)))                       \
			break;                                                  \
		if (tests_kvm_required())                                       \
			cr_assert_fail("KVM test could not run: %s "             \
				       "(SNAPBOX_KVM_REQUIRED=1)", why_);        \
		cr_skip_test("KVM test skipped: %s", why_);                     \
	} while (0)

/* Boot the probe with an optional extra cmdline; asserts success. */
struct snapbox *tests_boot_probe(const char *cmdline, struct snapbox_create_profile *cp,
				 struct snapbox_boot_profile *bp);

/*
 * Boot the Linux guest named by the environment, as the nested lab sets it:
 * SNAPBOX_KERNEL (our vmlinux) and SNAPBOX_INITRD (the agent's initramfs),
 * quiet console, a 300 s boot limit (the lab is nested TCG). Skips the test
 * visibly without them or without KVM; asserts the boot.
 */
struct snapbox *tests_boot_linux(struct snapbox_boot_profile *bp);

/*
 * A deadline of ms on a quiet host, times SNAPBOX_TIME_SCALE: every deadline
 * a test gives for something that must succeed goes through it. A deadline
 * that a test expects to pass (a timeout it asserts) need not.
 */
unsigned tests_ms(unsigned ms);

/* Number of open file descriptors of this process. */
int tests_count_fds(void);

#endif
