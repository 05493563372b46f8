/* coldboot.c - cold-boot benchmark: N boots of a kernel (the probe guest by default) to READY, per-phase percentiles, JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_run.h"
#include "snapbox.h"

static void coldboot_report(FILE *json, const struct bench_cold_sample *s, size_t n, const char *kernel,
			    uint64_t mem)
{
	if (json) {
		fprintf(json, "{\"bench\": \"coldboot\", \"kernel\": \"%s\", \"mem_bytes\": %llu, "
			"\"runs\": %zu, ", kernel, (unsigned long long)mem, n);
		bench_json_host(json);
		fputs(", ", json);
	}
	bench_report(json, s, sizeof(*s), n, bench_cold_phases, bench_cold_nphases);
	if (json)
		fputs("}\n", json);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "runs", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "mem", required_argument, NULL, 'm' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct snapbox_config cfg = { .kernel = "build/guest/probe.elf", .console_fd = -1,
				      .mem_bytes = 256ull << 20 };
	const char *json_path = NULL;
	struct bench_cold_sample *s;
	long runs = 50, warmup = 3;
	FILE *json = NULL;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		case 'm': cfg.mem_bytes = strtoull(optarg, NULL, 10) << 20; break;
		case 'j': json_path = optarg; break;
		default:
			printf("usage: coldboot [--kernel F] [--runs N] [--warmup N] [--mem MiB] [--json FILE]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	bench_emulated_banner(stdout);
	if (runs < 1 || runs > 100000 || warmup < 0) {
		fprintf(stderr, "coldboot: --runs must be 1..100000 and --warmup >= 0\n");
		return 2;
	}
	s = calloc((size_t)runs, sizeof(*s));
	if (!s)
		return 1;
	ret = bench_cold_loop(&cfg, runs, warmup, "coldboot", s);
	if (ret)
		goto out;
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			fprintf(stderr, "coldboot: cannot write %s: %s\n", json_path, strerror(errno));
	}
	coldboot_report(json, s, (size_t)runs, cfg.kernel, cfg.mem_bytes);
	if (json) {
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
out:
	free(s);
	return ret ? 1 : 0;
}
