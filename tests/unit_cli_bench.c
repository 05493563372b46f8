/* unit_cli_bench.c - `snapbox bench`: option errors (no VM is started), percentiles, the histogram, JSON strings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_report.h"
#include "bench/bench_stats.h"
#include "tests/common_cli.h"

static char out[16384];

/* Run `env ENVP <cli> <args>`; both streams in out. Returns the exit status. */
static int snapbox(const char *envp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int snapbox(const char *envp, const char *fmt, ...)
{
	char args[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return tests_cli_capture(tests_cli_path(), envp, args, out, sizeof(out));
}

TestSuite(cli_bench, .init = tests_require_cli, .timeout = 60);

Test(cli_bench, help_names_the_benchmarks_and_options)
{
	cr_assert_eq(snapbox(NULL, "bench --help"), 0);
	for (const char *w = "cold\0snapshot\0restore\0--iterations\0--warmup\0--mem\0--fill\0"
			     "--mode\0--pooled\0--no-warm\0--kernel\0--initrd\0--json\0schema\0"; *w; w += strlen(w) + 1)
		cr_assert(strstr(out, w), "'%s' missing from:\n%s", w, out);
	cr_assert_eq(snapbox(NULL, "--help"), 0);
	cr_assert(strstr(out, "  bench "), "%s", out);
}

/* Each command that restores or pre-warms names its deadline options and what they cover. */
Test(cli_bench, help_says_which_deadlines_each_timeout_covers)
{
	static const struct {
		const char *args, *expect[3];
	} cases[] = {
		{ "bench --help", { "--timeout MS", "REFRESH and PING", "SNAPBOX_TIME_SCALE" } },
		{ "restore --help", { "--timeout MS", "REFRESH", "SNAPBOX_TIME_SCALE" } },
		{ "snapshot --help", { "--prewarm-timeout MS", "--file-timeout MS", "SNAPBOX_TIME_SCALE" } },
		{ "run --help", { "--restore-timeout MS", "--boot-timeout MS", "SNAPBOX_TIME_SCALE" } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(snapbox(NULL, "%s", cases[i].args), 0, "%s: %s", cases[i].args, out);
		for (int j = 0; j < 3; j++)
			cr_assert(strstr(out, cases[i].expect[j]), "%s: want '%s' in:\n%s", cases[i].args,
				  cases[i].expect[j], out);
	}
}

/* Each bad command line exits 2 and says why; expect is part of the message. */
Test(cli_bench, bad_arguments_exit_2_with_a_reason)
{
	static const struct {
		const char *args, *expect;
	} cases[] = {
		{ "bench", "which benchmark" },
		{ "bench boot", "unknown benchmark 'boot'" },
		{ "bench cold restore", "one benchmark at a time" },
		{ "bench cold --iterations 0", "--iterations" },
		{ "bench cold --iterations 12x", "--iterations" },
		{ "bench cold --iterations 100001", "--iterations" },
		{ "bench cold --warmup -1", "--warmup" },
		{ "bench cold --mem lots", "--mem" },
		{ "bench cold --timeout 0", "--timeout" },
		{ "bench restore --fill 101", "--fill" },
		{ "bench restore --fill ten", "--fill" },
		{ "bench restore --mode fast", "--mode" },
		{ "bench cold --mode cow", "restore only" },
		{ "bench snapshot --pooled", "restore only" },
		{ "bench restore --no-warm", "--pooled only" },
		{ "bench restore --sync", "snapshot only" },
		{ "bench cold --fill 10", "--fill applies to snapshot and restore" },
		{ "bench cold --initrd /x", "--initrd needs --kernel" },
		{ "bench cold --no-such-option", "usage" },
		{ "restore /x --timeout 0", "--timeout" },
		{ "restore /x --timeout soon", "--timeout" },
		{ "snapshot --kernel /x --out /y --prewarm-timeout 0", "--prewarm-timeout" },
		{ "snapshot --kernel /x --out /y --file-timeout -1", "--file-timeout" },
		{ "boot --kernel /x --file-timeout 5", "usage" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(snapbox(NULL, "%s", cases[i].args), 2, "%s: %s", cases[i].args, out);
		cr_assert(strstr(out, cases[i].expect), "%s: want '%s' in:\n%s", cases[i].args,
			  cases[i].expect, out);
	}
}

Test(cli_bench, unreadable_guest_files_exit_3_before_any_vm)
{
	cr_assert_eq(snapbox(NULL, "bench cold --kernel /no/such/kernel"), 3, "%s", out);
	cr_assert(strstr(out, "/no/such/kernel"), "%s", out);
	cr_assert_eq(snapbox(NULL, "bench restore --kernel /dev/null --initrd /no/such/initrd"), 3,
		     "%s", out);
	cr_assert(strstr(out, "/no/such/initrd"), "%s", out);
	/* The default guest is $SNAPBOX_PROBE when set, as for the tests. */
	cr_assert_eq(snapbox("SNAPBOX_PROBE=/no/such/probe.elf", "bench cold"), 3, "%s", out);
	cr_assert(strstr(out, "/no/such/probe.elf"), "%s", out);
}

Test(bench_stats, nearest_rank_percentiles)
{
	uint64_t v[100];
	struct bench_dist d;

	for (int i = 0; i < 100; i++)
		v[i] = (uint64_t)(100 - i);   /* unsorted on purpose */
	bench_dist_of(v, 100, &d);
	cr_assert_eq(d.min, 1);
	cr_assert_eq(d.p50, 50);
	cr_assert_eq(d.p90, 90);
	cr_assert_eq(d.p99, 99);
	cr_assert_eq(d.max, 100);
	v[0] = 7;
	bench_dist_of(v, 1, &d);
	cr_assert(d.min == 7 && d.p50 == 7 && d.p99 == 7 && d.max == 7);
}

static size_t count_rows(const struct bench_hist *h)
{
	size_t sum = h->over;

	for (unsigned i = 0; i < h->rows; i++)
		sum += h->count[i];
	return sum;
}

Test(bench_hist, counts_every_sample_once)
{
	uint64_t v[50];
	struct bench_hist h;

	for (int i = 0; i < 50; i++)
		v[i] = 1000000 + (uint64_t)(i * 37 % 50) * 10000;
	cr_assert_eq(bench_hist_build(v, 50, 10, &h), 0);
	cr_assert_eq(h.n, 50);
	cr_assert(h.rows >= 1 && h.rows <= 10, "rows %u", h.rows);
	cr_assert_eq(count_rows(&h), 50);
	cr_assert_eq(h.lo, 1000000);
	cr_assert_eq(v[0], 1000000, "the input must not be reordered");
	cr_assert_eq(v[1], 1370000, "the input must not be reordered");
}

Test(bench_hist, outliers_go_to_the_overflow_row)
{
	uint64_t v[100];
	struct bench_hist h;

	for (int i = 0; i < 99; i++)
		v[i] = 8000000 + (uint64_t)i * 1000;
	v[99] = 900000000;                /* one sample 100 times slower */
	cr_assert_eq(bench_hist_build(v, 100, 12, &h), 0);
	cr_assert_eq(h.over, 1);
	cr_assert_lt(h.hi, 900000000);
	cr_assert_eq(count_rows(&h), 100);
	cr_assert_eq(h.rows, 12);
}

Test(bench_hist, equal_samples_make_one_row_and_few_samples_few_rows)
{
	uint64_t same[5] = { 42, 42, 42, 42, 42 }, two[2] = { 1, 2 };
	struct bench_hist h;

	cr_assert_eq(bench_hist_build(same, 5, 12, &h), 0);
	cr_assert_eq(h.rows, 1);
	cr_assert_eq(h.count[0], 5);
	cr_assert_eq(h.over, 0);
	cr_assert_eq(bench_hist_build(two, 2, 12, &h), 0);
	cr_assert_leq(h.rows, 2);
	cr_assert_eq(count_rows(&h), 2);
	cr_assert_eq(bench_hist_build(same, 0, 12, &h), -EINVAL);
	cr_assert_eq(bench_hist_build(same, 5, 0, &h), -EINVAL);
}

/* Number of '#' on the line that starts at p. */
static size_t hashes(const char *p)
{
	size_t n = 0;

	for (; *p && *p != '\n'; p++)
		n += *p == '#';
	return n;
}

Test(bench_hist, bars_scale_to_the_fullest_row)
{
	uint64_t v[101];
	struct bench_hist h;
	char *text = NULL, *line;
	size_t len = 0, lines = 0, widest = 0, thinnest = 1000;
	FILE *f;

	for (int i = 0; i < 100; i++)
		v[i] = 1000000;               /* 100 in the first row */
	v[100] = 1100000;                     /* 1 in the last */
	cr_assert_eq(bench_hist_build(v, 101, 4, &h), 0);
	f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	bench_hist_print(f, &h, 20);
	fclose(f);
	for (line = text; *line; line = strchr(line, '\n') + 1) {
		size_t n = hashes(line);

		cr_assert(strchr(line, '|'), "%s", text);
		if (n > widest)
			widest = n;
		if (n && n < thinnest)
			thinnest = n;
		lines++;
	}
	cr_assert_eq(lines, h.rows + (h.over ? 1 : 0), "%s", text);
	cr_assert_eq(widest, 20, "%s", text);
	cr_assert_eq(thinnest, 1, "a row of one sample still shows one '#':\n%s", text);
	cr_assert(strstr(text, "1.000 -"), "rows are labelled in ms:\n%s", text);
	free(text);
}

Test(bench_stats, json_strings_are_escaped)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	snapbox_json_string(f, "a\"b\\c\nd");
	fputc(' ', f);
	snapbox_json_string(f, NULL);
	fclose(f);
	cr_assert_str_eq(text, "\"a\\\"b\\\\c\\u000ad\" null");
	free(text);
}
