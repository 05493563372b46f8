/* bench_stats.c - percentile tables and JSON for the benchmarks. */
#include "bench/bench_stats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t bench_pct(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank == 0)
		rank = 1;
	return v[rank > n ? n - 1 : rank - 1];
}

void bench_report(FILE *json, const void *samples, size_t sample_size, size_t n,
		  const struct bench_phase *phases, size_t nphases)
{
	uint64_t *v = malloc(n * sizeof(*v));
	size_t i, j;

	if (!v || n == 0) {
		free(v);
		return;
	}
	printf("%-28s %9s %9s %9s %9s %9s   (ms, %zu runs)\n", "phase", "min", "p50", "p90", "p99",
	       "max", n);
	if (json)
		fputs("\"phases_ns\": {", json);
	for (i = 0; i < nphases; i++) {
		for (j = 0; j < n; j++)
			memcpy(&v[j], (const char *)samples + j * sample_size + phases[i].off, 8);
		qsort(v, n, sizeof(*v), bench_cmp);
		printf("%-28s %9.3f %9.3f %9.3f %9.3f %9.3f\n", phases[i].name, (double)v[0] / 1e6,
		       (double)bench_pct(v, n, 50) / 1e6, (double)bench_pct(v, n, 90) / 1e6,
		       (double)bench_pct(v, n, 99) / 1e6, (double)v[n - 1] / 1e6);
		if (json)
			fprintf(json, "%s\"%s\": {\"min\": %llu, \"p50\": %llu, \"p90\": %llu, "
				"\"p99\": %llu, \"max\": %llu}", i ? ", " : "", phases[i].name,
				(unsigned long long)v[0], (unsigned long long)bench_pct(v, n, 50),
				(unsigned long long)bench_pct(v, n, 90),
				(unsigned long long)bench_pct(v, n, 99), (unsigned long long)v[n - 1]);
	}
	if (json)
		fputc('}', json);
	free(v);
}

static void bench_cpu_model(char *out, size_t cap)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(out, cap, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		snprintf(out, cap, "%s", colon + 2);
		out[strcspn(out, "\n\"\\")] = '\0';
		break;
	}
	fclose(f);
}

void bench_json_host(FILE *json)
{
	struct utsname u;
	char cpu[256];
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	int hw = 0;

	uname(&u);
	bench_cpu_model(cpu, sizeof(cpu));
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) && (strstr(line, " vmx") || strstr(line, " svm")))
			hw = 1;
	if (f)
		fclose(f);
	fprintf(json, "\"host\": {\"kernel\": \"%s %s\", \"cpu\": \"%s\", \"cpus\": %ld, "
		"\"kvm_backend\": \"%s\"}", u.sysname, u.release, cpu, sysconf(_SC_NPROCESSORS_ONLN),
		hw ? "hardware" : "pvm");
}

void bench_progress(const char *what, long i, long n)
{
	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r%s %ld/%ld", what, i, n);
	if (i == n)
		fputc('\n', stderr);
}
