/* kvm_bench.c - `snapbox bench` on the probe: its JSON checked against the documented schema (json-c), its readable report. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common_cli.h"
#include "tests/common_kvm.h"

static void tb_init(void)
{
	TESTS_REQUIRE_KVM();
	tests_require_cli();
}

TestSuite(bench, .init = tb_init, .timeout = 120);

/* stdout and stderr of the last run, malloc'd. */
static char *tb_out, *tb_err;

static char *tb_slurp(FILE *f)
{
	size_t len = 0, cap = 4096;
	char *b = malloc(cap);

	cr_assert_not_null(b);
	for (;;) {
		size_t n = fread(b + len, 1, cap - len - 1, f);

		len += n;
		if (n == 0)
			break;
		if (len + 1 == cap) {
			cap *= 2;
			b = realloc(b, cap);
			cr_assert_not_null(b);
		}
	}
	b[len] = '\0';
	return b;
}

/* Run `snapbox bench ARGS` with stderr to a file (so not a terminal). Returns the exit status. */
static int tb_bench(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int tb_bench(const char *fmt, ...)
{
	char args[512], cmd[PATH_MAX + 1024], errpath[] = "/tmp/snapbox-test-bench-XXXXXX";
	int fd = mkstemp(errpath), st;
	va_list ap;
	FILE *f;

	cr_assert_geq(fd, 0);
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "'%s' bench %s 2>'%s' </dev/null", tests_cli_path(), args, errpath);
	free(tb_out);
	free(tb_err);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	tb_out = tb_slurp(f);
	st = pclose(f);
	f = fdopen(fd, "r");
	cr_assert_not_null(f);
	tb_err = tb_slurp(f);
	fclose(f);
	unlink(errpath);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* key of o, of type t (json_type_null: null or absent is refused; use tb_maybe). */
static json_object *tb_get(json_object *o, const char *key, json_type t)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "key '%s' missing in %s", key,
		  json_object_to_json_string(o));
	cr_assert(json_object_is_type(v, t), "key '%s' has type %s, want %s", key,
		  json_type_to_name(json_object_get_type(v)), json_type_to_name(t));
	return v;
}

/* A number: JSON writes 3.0 as 3.0, but 0 or a whole MB/s may come out as an int. */
static double tb_num(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "key '%s' missing", key);
	cr_assert(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int),
		  "key '%s' is not a number", key);
	return json_object_get_double(v);
}

/* key present and either null or of type t. Returns NULL for null. */
static json_object *tb_maybe(json_object *o, const char *key, json_type t)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "key '%s' missing", key);
	if (!v)
		return NULL;
	cr_assert(json_object_is_type(v, t), "key '%s' has type %s, want %s or null", key,
		  json_type_to_name(json_object_get_type(v)), json_type_to_name(t));
	return v;
}

/* o has exactly the keys of the NUL-separated list: the schema is closed. */
static void tb_exact_keys(json_object *o, const char *keys)
{
	int want = 0;

	for (const char *k = keys; *k; k += strlen(k) + 1, want++)
		tb_maybe(o, k, json_object_get_type(json_object_object_get(o, k)));
	cr_assert_eq(json_object_object_length(o), want, "unexpected keys in %s",
		     json_object_to_json_string(o));
}

static void tb_check_host(json_object *h)
{
	json_object *load = tb_get(h, "loadavg", json_type_array);
	const char *backend = json_object_get_string(tb_get(h, "kvm_backend", json_type_string));

	const char *emu = getenv("SNAPBOX_EMULATED");
	bool emulated = json_object_get_boolean(tb_get(h, "emulated", json_type_boolean));

	tb_exact_keys(h, "cpu_model\0cpus\0os\0kernel_release\0machine\0kvm_backend\0emulated\0"
		      "loadavg\0");
	/* The lab sets SNAPBOX_EMULATED=1: its timings must be marked as such. */
	if (emu && *emu)
		cr_assert_eq(emulated, strcmp(emu, "0") != 0, "emulated is %d with SNAPBOX_EMULATED=%s",
			     emulated, emu);
	cr_assert_gt(strlen(json_object_get_string(tb_get(h, "cpu_model", json_type_string))), 0);
	cr_assert_geq(json_object_get_int64(tb_get(h, "cpus", json_type_int)), 1);
	cr_assert_gt(strlen(json_object_get_string(tb_get(h, "kernel_release", json_type_string))), 0);
	tb_get(h, "os", json_type_string);
	tb_get(h, "machine", json_type_string);
	cr_assert(!strcmp(backend, "pvm") || !strcmp(backend, "hardware"), "kvm_backend %s", backend);
	cr_assert_eq(json_object_array_length(load), 3);
}

/* Every phase is {min, p50, p90, p99, max} of non-negative integers in that order. */
static void tb_check_phases(json_object *phases, const char *required)
{
	cr_assert_gt(json_object_object_length(phases), 0);
	json_object_object_foreach(phases, name, d) {
		int64_t v[5];
		int i = 0;

		cr_assert(json_object_is_type(d, json_type_object), "phase %s", name);
		tb_exact_keys(d, "min\0p50\0p90\0p99\0max\0");
		for (const char *k = "min\0p50\0p90\0p99\0max\0"; *k; k += strlen(k) + 1)
			v[i++] = json_object_get_int64(tb_get(d, k, json_type_int));
		cr_assert(v[0] >= 0 && v[0] <= v[1] && v[1] <= v[2] && v[2] <= v[3] && v[3] <= v[4],
			  "phase %s: %s", name, json_object_to_json_string(d));
	}
	for (const char *k = required; *k; k += strlen(k) + 1)
		tb_get(phases, k, json_type_object);
}

/*
 * Parse tb_out as one `snapbox bench` document and check it against the
 * schema in docs/benchmarks.md; returns the root (put it).
 */
static json_object *tb_check_doc(const char *bench, long iterations, const char *required_phases)
{
	json_tokener *tok = json_tokener_new();
	json_object *root, *opts, *phases, *e2e, *samples, *thr, *pool, *d;
	const char *e2e_name;
	int64_t lo = INT64_MAX, hi = 0;
	size_t end;

	cr_assert_not_null(tok);
	root = json_tokener_parse_ex(tok, tb_out, (int)strlen(tb_out));
	cr_assert_not_null(root, "stdout is not JSON (%s):\n%s",
			   json_tokener_error_desc(json_tokener_get_error(tok)), tb_out);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* --json: the document and its newline are all there is on stdout */
	cr_assert_eq(tb_out[0], '{', "stdout starts with something else:\n%s", tb_out);
	cr_assert_eq(strspn(tb_out + end, " \t\r\n"), strlen(tb_out + end),
		     "stdout goes on after the document:\n%s", tb_out + end);
	cr_assert_eq(tb_out[strlen(tb_out) - 1], '\n', "no newline after the document");
	tb_exact_keys(root, "schema_version\0bench\0time_unit\0started_utc\0host\0options\0phases_ns\0"
		      "end_to_end\0throughput\0pool\0");
	cr_assert_eq(json_object_get_int(tb_get(root, "schema_version", json_type_int)), 1);
	cr_assert_str_eq(json_object_get_string(tb_get(root, "bench", json_type_string)), bench);
	cr_assert_str_eq(json_object_get_string(tb_get(root, "time_unit", json_type_string)), "ns");
	cr_assert_eq(strlen(json_object_get_string(tb_get(root, "started_utc", json_type_string))), 20);
	tb_check_host(tb_get(root, "host", json_type_object));

	opts = tb_get(root, "options", json_type_object);
	tb_exact_keys(opts, "iterations\0warmup\0mem_bytes\0fill_pct\0fill_mib\0mode\0pooled\0warm\0sync\0"
		      "kernel\0initrd\0cmdline\0");
	cr_assert_eq(json_object_get_int64(tb_get(opts, "iterations", json_type_int)), iterations);
	tb_get(opts, "warmup", json_type_int);
	tb_get(opts, "mem_bytes", json_type_int);
	tb_get(opts, "fill_pct", json_type_int);
	tb_get(opts, "fill_mib", json_type_int);
	cr_assert_eq(tb_maybe(opts, "mode", json_type_string) != NULL, !strcmp(bench, "restore"));
	tb_get(opts, "pooled", json_type_boolean);
	/* Warm only when pooled, and by default then (--no-warm turns it off). */
	if (json_object_get_boolean(tb_get(opts, "warm", json_type_boolean)))
		cr_assert(json_object_get_boolean(tb_get(opts, "pooled", json_type_boolean)));
	tb_get(opts, "sync", json_type_boolean);
	tb_get(opts, "kernel", json_type_string);
	tb_maybe(opts, "initrd", json_type_string);
	tb_maybe(opts, "cmdline", json_type_string);

	phases = tb_get(root, "phases_ns", json_type_object);
	tb_check_phases(phases, required_phases);

	e2e = tb_get(root, "end_to_end", json_type_object);
	tb_exact_keys(e2e, "phase\0samples_ns\0");
	e2e_name = json_object_get_string(tb_get(e2e, "phase", json_type_string));
	d = tb_get(phases, e2e_name, json_type_object);
	samples = tb_get(e2e, "samples_ns", json_type_array);
	cr_assert_eq((long)json_object_array_length(samples), iterations);
	for (size_t i = 0; i < json_object_array_length(samples); i++) {
		json_object *s = json_object_array_get_idx(samples, i);
		int64_t v;

		cr_assert(json_object_is_type(s, json_type_int));
		v = json_object_get_int64(s);
		cr_assert_gt(v, 0, "an end-to-end sample of 0 ns");
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	cr_assert_eq(lo, json_object_get_int64(tb_get(d, "min", json_type_int)));
	cr_assert_eq(hi, json_object_get_int64(tb_get(d, "max", json_type_int)));

	thr = tb_get(root, "throughput", json_type_object);
	tb_exact_keys(thr, "guest_mem_bytes\0mem_mb_per_s\0nonzero_bytes\0file_bytes\0"
		      "nonzero_mb_per_s\0compression_ratio\0");
	cr_assert_eq(json_object_get_int64(tb_get(thr, "guest_mem_bytes", json_type_int)),
		     json_object_get_int64(tb_get(opts, "mem_bytes", json_type_int)));
	cr_assert_gt(tb_num(thr, "mem_mb_per_s"), 0);
	if (strcmp(bench, "cold")) {
		cr_assert_gt(json_object_get_int64(tb_get(thr, "file_bytes", json_type_int)), 0);
		tb_get(thr, "nonzero_bytes", json_type_int);
		cr_assert_gt(tb_num(thr, "nonzero_mb_per_s"), 0);
		cr_assert_gt(tb_num(thr, "compression_ratio"), 0);
	} else {
		cr_assert_null(tb_maybe(thr, "nonzero_bytes", json_type_int));
		cr_assert_null(tb_maybe(thr, "compression_ratio", json_type_double));
	}
	pool = tb_maybe(root, "pool", json_type_object);
	cr_assert_eq(pool != NULL, json_object_get_boolean(tb_get(opts, "pooled", json_type_boolean)));
	if (pool)
		tb_exact_keys(pool, "hits\0misses\0refills\0refill_failures\0");
	return root;
}

Test(bench, cold_json_matches_the_schema)
{
	json_object *root;

	cr_assert_eq(tb_bench("cold --iterations 3 --warmup 1 --mem 64M --json"), 0, "%s", tb_err);
	root = tb_check_doc("cold", 3, "kvm_set_user_memory_region\0create_vm_total\0boot_wait\0"
			    "cold_start_total\0");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(
		json_object_object_get(root, "end_to_end"), "phase")), "cold_start_total");
	cr_assert_null(strchr(tb_err, '\r'), "progress written to a file: %s", tb_err);
	json_object_put(root);
}

Test(bench, snapshot_json_matches_the_schema)
{
	json_object *root, *opts;

	cr_assert_eq(tb_bench("snapshot --iterations 3 --warmup 1 --mem 64M --fill 10 --json"), 0,
		     "%s", tb_err);
	root = tb_check_doc("snapshot", 3, "pause\0vcpu_capture\0memory_compress\0write\0total\0");
	opts = json_object_object_get(root, "options");
	cr_assert_eq(json_object_get_int(json_object_object_get(opts, "fill_pct")), 10);
	/* 10 % of (64 - 8) MiB */
	cr_assert_eq(json_object_get_int(json_object_object_get(opts, "fill_mib")), 5);
	json_object_put(root);
}

Test(bench, restore_json_matches_the_schema)
{
	json_object *root;

	cr_assert_eq(tb_bench("restore --iterations 3 --warmup 1 --mem 64M --fill 10 --mode eager --json"),
		     0, "%s", tb_err);
	root = tb_check_doc("restore", 3, "snapshot_open\0kvm_set_user_memory_region\0memory_state_write\0"
			    "resume_kvm_run\0total_with_resume\0restore_to_ready\0");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(
		json_object_object_get(root, "options"), "mode")), "eager");
	json_object_put(root);
}

Test(bench, pooled_restore_json_reports_the_pool)
{
	json_object *root, *pool;

	cr_assert_eq(tb_bench("restore --iterations 3 --warmup 1 --mem 64M --fill 5 --pooled --json"),
		     0, "%s", tb_err);
	root = tb_check_doc("restore", 3, "restore_to_ready\0");
	pool = json_object_object_get(root, "pool");
	/* every restore (warm-up included) came from the pool, as a hit or a miss */
	cr_assert_eq(json_object_get_int(json_object_object_get(pool, "hits")) +
		     json_object_get_int(json_object_object_get(pool, "misses")), 4);
	json_object_put(root);
}

Test(bench, readable_report_has_table_throughput_and_histogram)
{
	cr_assert_eq(tb_bench("restore --iterations 4 --warmup 0 --mem 64M --fill 5"), 0, "%s", tb_err);
	cr_assert(strstr(tb_out, "p50"), "%s", tb_out);
	cr_assert(strstr(tb_out, "p99"), "%s", tb_out);
	cr_assert(strstr(tb_out, "resume_kvm_run"), "%s", tb_out);
	cr_assert(strstr(tb_out, "MB/s of guest memory"), "%s", tb_out);
	cr_assert(strstr(tb_out, "compression"), "%s", tb_out);
	cr_assert(strstr(tb_out, "restore_to_ready histogram"), "%s", tb_out);
	cr_assert(strstr(tb_out, "| #"), "%s", tb_out);
	cr_assert(strstr(tb_out, "KVM backend"), "%s", tb_out);
	/* On an emulated host (the lab) the report says so before any number. */
	if (getenv("SNAPBOX_EMULATED") && !strcmp(getenv("SNAPBOX_EMULATED"), "1"))
		cr_assert(!strncmp(tb_out, "EMULATED:", 9) || strstr(tb_out, "\nEMULATED:"), "%s", tb_out);
	cr_assert_null(strchr(tb_err, '\r'), "progress written to a file: %s", tb_err);
}

/* Entries of dir whose names start with prefix. */
static int tb_count(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* Ctrl-C mid-run: exit 130, and the run's snapshot and template directories are gone. */
Test(bench, interrupt_removes_temporary_files)
{
	int tmp0 = tb_count("/tmp", "snapbox-bench-"), shm0 = tb_count("/dev/shm", "snapbox-bench-");
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(tests_cli_path(), "snapbox", "bench", "restore", "--iterations", "100000", "--mem", "64M",
		      "--fill", "5", (char *)NULL);
		_exit(127);
	}
	sleep(2);   /* snapshot taken, restores running (or, at worst, still preparing) */
	cr_assert_eq(kill(pid, SIGINT), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "killed by the signal instead of stopping cleanly");
	cr_assert_eq(WEXITSTATUS(st), 130);
	cr_assert_eq(tb_count("/tmp", "snapbox-bench-"), tmp0, "a snapshot directory was left in /tmp");
	cr_assert_eq(tb_count("/dev/shm", "snapbox-bench-"), shm0, "a template directory was left");
}
