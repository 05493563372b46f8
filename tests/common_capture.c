/* common_capture.c - stderr silencing and capture shared by the unit tests. */
#include "tests/common_capture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void tests_quiet_stderr(void)
{
	if (!freopen("/dev/null", "w", stderr))
		abort();
}

int tests_cap_begin(int *mfd)
{
	int saved = dup(2);

	fflush(stderr);
	*mfd = memfd_create("stderr", 0);
	cr_assert(saved >= 0 && *mfd >= 0);
	dup2(*mfd, 2);
	return saved;
}

const char *tests_cap_end(int saved, int mfd)
{
	static char out[4096];
	ssize_t n;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(mfd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(mfd);
	return out;
}
