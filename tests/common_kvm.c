/* common_kvm.c - helpers shared by the KVM test files. */
#include "tests/common_kvm.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool tests_kvm_usable(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, len, "/dev/kvm unusable: %s", strerror(errno));
		return false;
	}
	close(fd);
	if (access(tests_probe_path(), R_OK) != 0) {
		snprintf(why, len, "probe guest %s missing (run make)", tests_probe_path());
		return false;
	}
	return true;
}

bool tests_kvm_required(void)
{
	const char *e = getenv("SNAPBOX_KVM_REQUIRED");

	return e && strcmp(e, "1") == 0;
}

const char *tests_probe_path(void)
{
	const char *p = getenv("SNAPBOX_PROBE");

	return p && *p ? p : "build/guest/probe.elf";
}

struct snapbox *tests_boot_probe(const char *cmdline, struct snapbox_create_profile *cp,
				 struct snapbox_boot_profile *bp)
{
	struct snapbox_config cfg = {
		.kernel = tests_probe_path(),
		.cmdline = cmdline ? cmdline : "console=ttyS0",
		.mem_bytes = 128ull << 20,
		.console_fd = -1,
		.boot_timeout_ms = tests_ms(10000),
	};
	struct snapbox *sb = NULL;
	int ret = snapbox_boot(&cfg, &sb, cp, bp);

	cr_assert_eq(ret, 0, "probe boot failed: %s", strerror(-ret));
	cr_assert_not_null(sb);
	return sb;
}

struct snapbox *tests_boot_linux(struct snapbox_boot_profile *bp)
{
	const char *k = getenv("SNAPBOX_KERNEL"), *i = getenv("SNAPBOX_INITRD");
	struct snapbox_config cfg = { .console_fd = -1, .boot_timeout_ms = tests_ms(300000),
				      .cmdline = "console=ttyS0 quiet panic=-1" };
	struct snapbox *sb = NULL;

	TESTS_REQUIRE_KVM();
	if (!k || !i || access(k, R_OK) || access(i, R_OK))
		cr_skip_test("Linux test skipped: set SNAPBOX_KERNEL and SNAPBOX_INITRD (the lab does)");
	cfg.kernel = k;
	cfg.initrd = i;
	cr_assert_eq(snapbox_boot(&cfg, &sb, NULL, bp), 0, "cold boot of %s + %s", k, i);
	return sb;
}

int tests_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/*
 * The test binaries, like the CLI, turn confinement off for SNAPBOX_SECCOMP=0
 * (valgrind runs), and take the deadline factor from SNAPBOX_TIME_SCALE (the
 * lab sets it; a bad value aborts the run rather than testing with another).
 */
__attribute__((constructor)) static void tests_settings_from_env(void)
{
	const char *e = getenv("SNAPBOX_SECCOMP");
	double f;

	if (e && !strcmp(e, "0"))
		snapbox_set_confinement(false);
	e = getenv("SNAPBOX_TIME_SCALE");
	if (e && (snapbox_parse_time_scale(e, &f) || snapbox_set_time_scale(f))) {
		fprintf(stderr, "tests: SNAPBOX_TIME_SCALE='%s': want a number from 1 to 1000\n", e);
		abort();
	}
}

unsigned tests_ms(unsigned ms)
{
	return snapbox_scaled_ms(ms);
}
