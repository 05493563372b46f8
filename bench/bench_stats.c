/* bench_stats.c - percentiles, phase tables and JSON, host facts and terminal progress for the benchmarks. */
#include "bench/bench_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "snapbox.h"

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

void bench_column(const void *samples, size_t sample_size, size_t n, size_t off, uint64_t *v)
{
	for (size_t j = 0; j < n; j++)
		memcpy(&v[j], (const char *)samples + j * sample_size + off, sizeof(v[j]));
}

void bench_dist_of(uint64_t *v, size_t n, struct bench_dist *d)
{
	qsort(v, n, sizeof(*v), bench_cmp);
	d->min = v[0];
	d->p50 = bench_pct(v, n, 50);
	d->p90 = bench_pct(v, n, 90);
	d->p99 = bench_pct(v, n, 99);
	d->max = v[n - 1];
}

int bench_table(FILE *out, const void *samples, size_t sample_size, size_t n,
		const struct bench_phase *phases, size_t nphases)
{
	uint64_t *v = n ? malloc(n * sizeof(*v)) : NULL;
	struct bench_dist d;

	if (!v)
		return n ? -ENOMEM : -EINVAL;
	fprintf(out, "%-28s %9s %9s %9s %9s %9s   (ms, %zu runs)\n", "phase", "min", "p50", "p90",
		"p99", "max", n);
	for (size_t i = 0; i < nphases; i++) {
		bench_column(samples, sample_size, n, phases[i].off, v);
		bench_dist_of(v, n, &d);
		fprintf(out, "%-28s %9.3f %9.3f %9.3f %9.3f %9.3f\n", phases[i].name, (double)d.min / 1e6,
			(double)d.p50 / 1e6, (double)d.p90 / 1e6, (double)d.p99 / 1e6,
			(double)d.max / 1e6);
	}
	free(v);
	return 0;
}

int bench_json_phases(FILE *json, const void *samples, size_t sample_size, size_t n,
		      const struct bench_phase *phases, size_t nphases)
{
	uint64_t *v = n ? malloc(n * sizeof(*v)) : NULL;
	struct bench_dist d;

	if (!v)
		return n ? -ENOMEM : -EINVAL;
	fputs("\"phases_ns\": {", json);
	for (size_t i = 0; i < nphases; i++) {
		bench_column(samples, sample_size, n, phases[i].off, v);
		bench_dist_of(v, n, &d);
		fprintf(json, "%s\"%s\": {\"min\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
			"\"max\": %llu}", i ? ", " : "", phases[i].name, (unsigned long long)d.min,
			(unsigned long long)d.p50, (unsigned long long)d.p90,
			(unsigned long long)d.p99, (unsigned long long)d.max);
	}
	fputc('}', json);
	free(v);
	return 0;
}

void bench_report(FILE *json, const void *samples, size_t sample_size, size_t n,
		  const struct bench_phase *phases, size_t nphases)
{
	if (bench_table(stdout, samples, sample_size, n, phases, nphases))
		return;
	if (json)
		bench_json_phases(json, samples, sample_size, n, phases, nphases);
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

void bench_host_get(struct bench_host *h)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	bench_cpu_model(h->cpu, sizeof(h->cpu));
	h->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0) {
		snprintf(h->sysname, sizeof(h->sysname), "%s", u.sysname);
		snprintf(h->release, sizeof(h->release), "%s", u.release);
		snprintf(h->machine, sizeof(h->machine), "%s", u.machine);
	}
	h->kvm_backend = snapbox_kvm_backend();
	h->emulated = snapbox_host_emulated();
	if (getloadavg(h->loadavg, 3) != 3)
		h->loadavg[0] = h->loadavg[1] = h->loadavg[2] = -1;
}

void bench_json_host(FILE *json)
{
	struct bench_host h;

	bench_host_get(&h);
	fprintf(json, "\"host\": {\"kernel\": \"%s %s\", \"cpu\": \"%s\", \"cpus\": %ld, "
		"\"kvm_backend\": \"%s\", \"emulated\": %s}", h.sysname, h.release, h.cpu, h.cpus,
		h.kvm_backend, h.emulated ? "true" : "false");
}

void bench_emulated_banner(FILE *out)
{
	if (snapbox_host_emulated())
		fputs("EMULATED: this host's CPU is emulated (QEMU TCG, the nested lab): every time "
		      "below means nothing as performance (docs/benchmarks.md has real ones)\n", out);
}

/* A progress line is on the terminal without its newline yet. */
static bool bench_progress_open;

void bench_progress(const char *what, long i, long n)
{
	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r%s [%ld/%ld]", what, i, n);
	bench_progress_open = i != n;
	if (i == n)
		fputc('\n', stderr);
}

void bench_progress_break(void)
{
	if (bench_progress_open)
		fputc('\n', stderr);
	bench_progress_open = false;
}
