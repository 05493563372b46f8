/* unit_log.c - the library's log lines go to the caller's function when one is set, whole lines, and to stderr otherwise. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapbox.h"

struct ul_sink {
	int lines;
	char last[512];
};

static void ul_collect(void *arg, const char *line)
{
	struct ul_sink *s = arg;

	s->lines++;
	snprintf(s->last, sizeof(s->last), "%s", line);
}

/* Bytes written to stderr while fn runs. */
static long ul_stderr_bytes(void (*fn)(void))
{
	char path[] = "/tmp/snapbox-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	struct stat st;

	cr_assert(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	unlink(path);
	return (long)st.st_size;
}

static void ul_inspect_missing(void)
{
	cr_assert_lt(snapbox_inspect("/no/such/snapshot", false, false, stdout), 0);
}

Test(log, lines_go_to_the_callers_function_then_back_to_stderr)
{
	struct ul_sink sink = { 0 };

	snapbox_set_log(ul_collect, &sink);
	cr_assert_eq(ul_stderr_bytes(ul_inspect_missing), 0, "a line reached stderr with a log function set");
	snapbox_set_log(NULL, NULL);
	cr_assert_geq(sink.lines, 1);
	cr_assert(strstr(sink.last, "/no/such/snapshot"), "%s", sink.last);
	cr_assert_eq(strncmp(sink.last, "snapbox: ", 9), 0, "%s", sink.last);
	cr_assert_eq(sink.last[strlen(sink.last) - 1], '\n', "not a whole line: %s", sink.last);
	cr_assert_gt(ul_stderr_bytes(ul_inspect_missing), 0, "the default sink is stderr");
}
