/* snapshot.c - snapshot benchmark: probe guests of several sizes and fill levels, per-phase percentiles and throughput, JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_run.h"
#include "snapbox.h"

/* One configuration: boot once, fill, then snapshot `runs` times (the guest resumes between). */
static int snapshot_case(const char *kernel, uint64_t mib, unsigned fill_pct, long runs, bool sync,
			 const char *dir, FILE *json, bool first)
{
	struct bench_guest g = { .cfg = { .kernel = kernel, .mem_bytes = mib << 20, .console_fd = -1 },
				 .fill_mib = bench_fill_mib(mib << 20, fill_pct), .fill_seed = 7 };
	struct snapbox_snapshot_opts so = { .no_sync = !sync };
	struct snapbox_snapshot_profile *s = calloc((size_t)runs, sizeof(*s));
	uint64_t *t = malloc((size_t)runs * sizeof(*t));
	uint64_t nonzero, out;
	struct bench_dist d;
	double mbs;
	int ret = -ENOMEM;

	if (!s || !t)
		goto out;
	ret = bench_snapshot_loop(&g, &so, dir, runs, 0, "snapshot", s);
	if (ret)
		goto out;
	/* Non-zero bytes: what the memory file did not store as zero chunks. */
	nonzero = s[0].bytes_in - (uint64_t)s[0].zero_chunks * BENCH_CHUNK_BYTES;
	out = s[0].bytes_out;
	printf("\n== %llu MiB, %u%% filled (%u MiB), %s ==\n", (unsigned long long)mib, fill_pct,
	       g.fill_mib, sync ? "fsync" : "no fsync");
	if (json)
		fprintf(json, "%s{\"mem_mib\": %llu, \"fill_pct\": %u, \"fsync\": %s, \"bytes_out\": %llu, ",
			first ? "" : ", ", (unsigned long long)mib, fill_pct, sync ? "true" : "false",
			(unsigned long long)out);
	bench_report(json, s, sizeof(*s), (size_t)runs, bench_snapshot_phases, bench_snapshot_nphases);
	/* Throughput: non-zero memory over the p50 of compress + write. */
	for (long i = 0; i < runs; i++)
		t[i] = s[i].memory_compress + s[i].write;
	bench_dist_of(t, (size_t)runs, &d);
	mbs = d.p50 ? (double)nonzero / ((double)d.p50 / 1e9) / 1e6 : 0.0;
	printf("non-zero memory %.1f MiB, file %.1f MiB (ratio %.2f), %.0f MB/s of non-zero memory (p50 compress+write)\n",
	       (double)nonzero / 1048576.0, (double)out / 1048576.0,
	       out ? (double)s[0].bytes_in / (double)out : 0.0, mbs);
	if (json)
		fprintf(json, ", \"nonzero_bytes\": %llu, \"nonzero_mb_per_s\": %.1f}",
			(unsigned long long)nonzero, mbs);
out:
	free(t);
	free(s);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "runs", required_argument, NULL, 'n' },
		{ "sizes", required_argument, NULL, 's' },
		{ "fills", required_argument, NULL, 'f' },
		{ "sync", no_argument, NULL, 'S' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *kernel = "build/guest/probe.elf", *json_path = NULL;
	char *sizes = strdup("128,256,1024"), *fills = strdup("0,25,100");
	char dir[] = "/tmp/snapbox-snapbench-XXXXXX", snap[64];
	long runs = 5;
	bool sync = false, first = true;
	FILE *json = NULL;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kernel = optarg; break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 's': free(sizes); sizes = strdup(optarg); break;
		case 'f': free(fills); fills = strdup(optarg); break;
		case 'S': sync = true; break;
		case 'j': json_path = optarg; break;
		default:
			printf("usage: snapshot [--kernel F] [--runs N] [--sizes 128,256,1024] [--fills 0,25,100]\n"
			       "                [--sync] [--json FILE]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	bench_emulated_banner(stdout);
	if (runs < 1 || runs > 1000 || !mkdtemp(dir)) {
		fprintf(stderr, "snapshot: --runs must be 1..1000 (or mkdtemp failed)\n");
		return 2;
	}
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	if (json_path && !(json = fopen(json_path, "w")))
		fprintf(stderr, "snapshot: cannot write %s: %s\n", json_path, strerror(errno));
	if (json) {
		fprintf(json, "{\"bench\": \"snapshot\", \"runs\": %ld, ", runs);
		bench_json_host(json);
		fputs(", \"cases\": [", json);
	}
	for (char *sp = NULL, *st = strtok_r(sizes, ",", &sp); st && !ret; st = strtok_r(NULL, ",", &sp)) {
		char *fcopy = strdup(fills), *fp = NULL;

		for (char *ft = strtok_r(fcopy, ",", &fp); ft && !ret; ft = strtok_r(NULL, ",", &fp)) {
			ret = snapshot_case(kernel, strtoull(st, NULL, 10), (unsigned)strtoul(ft, NULL, 10),
					    runs, sync, snap, json, first);
			first = false;
		}
		free(fcopy);
	}
	if (json) {
		fputs("]}\n", json);
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
	bench_rmtree(dir);
	free(sizes);
	free(fills);
	return ret ? 1 : 0;
}
