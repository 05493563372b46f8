/* restore.c - restore benchmark: eager, cow and pooled restores of one snapshot to the first PONG, per-phase percentiles, JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_run.h"
#include "snapbox.h"

struct restore_mode {
	const char *name;
	enum snapbox_restore_mode mode;
	bool pooled;
};

static const struct restore_mode restore_modes[] = {
	{ "eager", SNAPBOX_RESTORE_EAGER, false },
	{ "cow", SNAPBOX_RESTORE_COW, false },
	{ "lazy", SNAPBOX_RESTORE_LAZY, false },
	{ "pool_cow", SNAPBOX_RESTORE_COW, true },
};

/* With --samples: every run's restore_to_ready and total_with_resume go into the JSON too. */
static bool restore_samples;

/* Append `, "samples_ns": {...}` (one array per field, run order) to json. */
static void restore_json_samples(FILE *json, const struct snapbox_restore_profile *s, long runs)
{
	fputs(", \"samples_ns\": {\"restore_to_ready\": [", json);
	for (long i = 0; i < runs; i++)
		fprintf(json, "%s%llu", i ? ", " : "", (unsigned long long)s[i].restore_to_ready);
	fputs("], \"total_with_resume\": [", json);
	for (long i = 0; i < runs; i++)
		fprintf(json, "%s%llu", i ? ", " : "", (unsigned long long)s[i].total_with_resume);
	fputs("]}", json);
}

/* Private anonymous memory of this process (kB), from /proc/self/status. */
static long restore_rss_anon_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static int restore_one_mode(const char *dir, const struct restore_mode *m, long runs, long warmup,
			    const char *cache, FILE *json)
{
	struct bench_restore_how how = { .mode = m->mode, .pooled = m->pooled, .cache_dir = cache };
	struct snapbox_restore_profile *s = calloc((size_t)runs, sizeof(*s));
	struct snapbox_pool_stats st;
	int ret;

	if (!s)
		return -ENOMEM;
	printf("\n== %s ==\n", m->name);
	ret = bench_restore_loop(dir, &how, runs, warmup, m->name, s, &st);
	if (ret)
		goto out;
	if (json)
		fprintf(json, "\"%s\": {", m->name);
	bench_report(json, s, sizeof(*s), (size_t)runs, bench_restore_phases, bench_restore_nphases);
	if (json && restore_samples)
		restore_json_samples(json, s, runs);
	if (m->pooled) {
		printf("pool: %llu hits, %llu misses, %llu refills\n", (unsigned long long)st.hits,
		       (unsigned long long)st.misses, (unsigned long long)st.refills);
		if (json)
			fprintf(json, ", \"pool\": {\"hits\": %llu, \"misses\": %llu, \"refills\": %llu}",
				(unsigned long long)st.hits, (unsigned long long)st.misses,
				(unsigned long long)st.refills);
	}
	if (json)
		fputc('}', json);
out:
	free(s);
	return ret;
}

/* Host memory each extra live cow clone costs: private pages only. */
static long restore_clone_cost_kb(const char *dir, const char *cache, int clones)
{
	struct snapbox_restore_opts ro = { .mode = SNAPBOX_RESTORE_COW, .resume = true, .ping = true,
					   .console_fd = -1, .cache_dir = cache };
	struct snapbox *sb[16];
	long before, after;
	int i, n = 0;

	if (clones > 16)
		clones = 16;
	before = restore_rss_anon_kb();
	for (i = 0; i < clones; i++)
		if (snapbox_restore(dir, &ro, &sb[n], NULL) == 0)
			n++;
	after = restore_rss_anon_kb();
	for (i = 0; i < n; i++)
		snapbox_destroy(sb[i]);
	return n ? (after - before) / n : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "runs", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "mem", required_argument, NULL, 'm' },
		{ "fill", required_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'M' },
		{ "json", required_argument, NULL, 'j' },
		{ "samples", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *snap = NULL, *kernel = "build/guest/probe.elf", *json_path = NULL, *only = NULL;
	char dir[256], cache[] = "/tmp/snapbox-bench-cache-XXXXXX";
	long runs = 30, warmup = 2, fill = 32, clone_kb;
	uint64_t mem = 256ull << 20;
	FILE *json = NULL;
	int c, ret = 0;
	size_t i;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': snap = optarg; break;
		case 'k': kernel = optarg; break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		case 'm': mem = strtoull(optarg, NULL, 10) << 20; break;
		case 'f': fill = strtol(optarg, NULL, 10); break;
		case 'M': only = optarg; break;
		case 'j': json_path = optarg; break;
		case 'S': restore_samples = true; break;
		default:
			printf("usage: restore [--snapshot DIR | --kernel F --mem MiB --fill MiB] [--runs N]\n"
			       "               [--warmup N] [--mode eager|cow|lazy|pool_cow] [--json FILE]\n"
			       "               [--samples]   (per-run restore_to_ready and total_with_resume in the JSON)\n");
			return c == 'h' ? 0 : 2;
		}
	}
	bench_emulated_banner(stdout);
	if (runs < 1 || runs > 100000 || warmup < 0 || fill < 0) {
		fprintf(stderr, "restore: --runs must be 1..100000, --warmup and --fill >= 0\n");
		return 2;
	}
	if (!mkdtemp(cache)) {
		perror("restore: mkdtemp");
		return 1;
	}
	if (!snap) {
		struct bench_guest g = { .cfg = { .kernel = kernel, .mem_bytes = mem, .console_fd = -1 },
					 .fill_mib = (uint32_t)fill, .fill_seed = 1 };

		ret = bench_make_snapshot(&g, dir, sizeof(dir), NULL);
		if (ret) {
			bench_rmtree(cache);
			return 1;
		}
		snap = dir;
	}
	if (json_path && !(json = fopen(json_path, "w")))
		fprintf(stderr, "restore: cannot write %s: %s\n", json_path, strerror(errno));
	if (json) {
		fprintf(json, "{\"bench\": \"restore\", \"snapshot\": \"%s\", \"runs\": %ld, ", snap, runs);
		bench_json_host(json);
		fputs(", \"modes\": {", json);
	}
	for (i = 0; i < sizeof(restore_modes) / sizeof(restore_modes[0]) && !ret; i++) {
		if (only && strcmp(only, restore_modes[i].name))
			continue;
		if (json && i && !only)
			fputs(", ", json);
		ret = restore_one_mode(snap, &restore_modes[i], runs, warmup, cache, json);
	}
	clone_kb = ret ? -1 : restore_clone_cost_kb(snap, cache, 4);
	printf("\ncow: host memory per extra live clone (private pages): %ld KiB\n", clone_kb);
	if (json) {
		fprintf(json, "}, \"cow_clone_private_kib\": %ld}\n", clone_kb);
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
	/* The cow templates of this run live in its private cache directory. */
	bench_rmtree(cache);
	if (snap == dir) {
		*strrchr(dir, '/') = '\0';
		bench_rmtree(dir);
	}
	return ret ? 1 : 0;
}
