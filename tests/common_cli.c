/* common_cli.c - running the snapbox CLI from tests: its path, the skip when it is missing, output capture. */
#include "tests/common_cli.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tests_cli_path(void)
{
	static char path[PATH_MAX];
	const char *e = getenv("SNAPBOX_CLI");
	char exe[PATH_MAX - 16];
	ssize_t n;

	if (e && *e)
		return e;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "build/snapbox";
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	if (strrchr(exe, '/'))
		*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof(path), "%s/snapbox", exe);
	return path;
}

void tests_require_cli(void)
{
	if (access(tests_cli_path(), X_OK) == 0)
		return;
	if (!getenv("SNAPBOX_CLI"))
		cr_skip_test("%s not built", tests_cli_path());
	cr_assert_fail("%s missing", tests_cli_path());
}

int tests_cli_capture(const char *exe, const char *envp, const char *args, char *out, size_t cap)
{
	char cmd[PATH_MAX + 2048];
	size_t n;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "env %s %s %s 2>&1", envp ? envp : "", exe, args);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
