/* bench_report.c - `snapbox bench`'s readable report (table, throughput, histogram) and its JSON document. */
#include "bench/bench_report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bench_hist_build(const uint64_t *v, size_t n, unsigned rows, struct bench_hist *h)
{
	uint64_t *s;
	struct bench_dist d;

	if (!n || !rows)
		return -EINVAL;
	s = malloc(n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s, v, n * sizeof(*s));
	bench_dist_of(s, n, &d);
	free(s);
	memset(h, 0, sizeof(*h));
	h->n = n;
	h->lo = d.min;
	h->hi = d.min + 2 * (d.p90 - d.min);
	if (h->hi > d.max || h->hi < d.p90)
		h->hi = d.max;
	if (rows > BENCH_HIST_MAX_ROWS)
		rows = BENCH_HIST_MAX_ROWS;
	if (rows > n)
		rows = (unsigned)n;
	if (h->hi == h->lo)
		rows = 1;
	h->step = (h->hi - h->lo + rows - 1) / rows;
	if (h->step == 0)
		h->step = 1;
	/* A span of fewer ns than rows: drop the rows that would start above hi. */
	if (h->hi > h->lo && (h->hi - h->lo + h->step - 1) / h->step < rows)
		rows = (unsigned)((h->hi - h->lo + h->step - 1) / h->step);
	h->rows = rows;
	for (size_t i = 0; i < n; i++) {
		uint64_t row;

		if (v[i] > h->hi) {
			h->over++;
			continue;
		}
		row = (v[i] - h->lo) / h->step;
		h->count[row >= rows ? rows - 1 : row]++;
	}
	return 0;
}

/* The bar of one row: '#' * count scaled to width by the fullest row, at least 1 when count > 0. */
static void bench_hist_bar(FILE *out, size_t count, size_t fullest, unsigned width)
{
	size_t len = fullest ? count * width / fullest : 0;

	if (count && !len)
		len = 1;
	for (size_t i = 0; i < width; i++)
		fputc(i < len ? '#' : ' ', out);
	fprintf(out, " %zu\n", count);
}

void bench_hist_print(FILE *out, const struct bench_hist *h, unsigned width)
{
	size_t fullest = h->over;

	for (unsigned i = 0; i < h->rows; i++)
		if (h->count[i] > fullest)
			fullest = h->count[i];
	for (unsigned i = 0; i < h->rows; i++) {
		uint64_t lo = h->lo + i * h->step;
		uint64_t hi = i + 1 == h->rows ? h->hi : lo + h->step;

		fprintf(out, "  %9.3f - %9.3f | ", (double)lo / 1e6, (double)hi / 1e6);
		bench_hist_bar(out, h->count[i], fullest, width);
	}
	if (h->over) {
		fprintf(out, "  %10s> %9.3f | ", "", (double)h->hi / 1e6);
		bench_hist_bar(out, h->over, fullest, width);
	}
}

/* The end-to-end samples in run order, malloc'd; NULL when out of memory. */
static uint64_t *bench_e2e(const struct bench_result *r)
{
	uint64_t *v = malloc((size_t)r->iterations * sizeof(*v));

	if (v)
		bench_column(r->samples, r->sample_size, (size_t)r->iterations, r->phases[r->e2e].off, v);
	return v;
}

/* MB (10^6 bytes) per second for bytes in ns; 0 when ns is 0. */
static double bench_mbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / ((double)ns / 1e9) / 1e6 : 0.0;
}

static double bench_ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

int bench_result_print(FILE *out, const struct bench_result *r)
{
	const char *e2e = r->phases[r->e2e].name;
	size_t n = (size_t)r->iterations;
	uint64_t *v = bench_e2e(r), *sorted = v ? malloc(n * sizeof(*v)) : NULL;
	struct bench_host host;
	struct bench_dist d;
	struct bench_hist h;
	int ret = -ENOMEM;

	if (!sorted)
		goto out;
	bench_host_get(&host);
	bench_emulated_banner(out);
	fprintf(out, "snapbox bench %s: %s, %llu MiB", r->bench, r->kernel,
		(unsigned long long)(r->mem_bytes >> 20));
	if (r->fill_mib || strcmp(r->bench, "cold"))
		fprintf(out, ", fill %u%% (%u MiB)", r->fill_pct, r->fill_mib);
	if (r->mode)
		fprintf(out, ", %s%s restore", r->pooled ? (r->warm ? "pooled (warm) " : "pooled (shells only) ") : "",
			r->mode);
	if (r->sync)
		fputs(", fsync", out);
	fprintf(out, ", %ld runs after %ld warm-up\n", r->iterations, r->warmup);
	fprintf(out, "host: %s, %ld CPUs, %s %s, KVM backend %s%s\n\n", host.cpu, host.cpus,
		host.sysname, host.release, host.kvm_backend, host.emulated ? " (emulated)" : "");
	ret = bench_table(out, r->samples, r->sample_size, n, r->phases, r->nphases);
	if (ret)
		goto out;
	memcpy(sorted, v, n * sizeof(*v));
	bench_dist_of(sorted, n, &d);
	fprintf(out, "\nthroughput (p50 of %s): %.0f MB/s of guest memory (%.1f MiB)", e2e,
		bench_mbps(r->mem_bytes, d.p50), (double)r->mem_bytes / 1048576.0);
	if (strcmp(r->bench, "cold"))
		fprintf(out, ", %.0f MB/s of non-zero memory (%.1f MiB)\n"
			"snapshot files: %.1f MiB, compression %.2fx of non-zero memory, %.2fx of guest memory",
			bench_mbps(r->nonzero_bytes, d.p50), (double)r->nonzero_bytes / 1048576.0,
			(double)r->file_bytes / 1048576.0, bench_ratio(r->nonzero_bytes, r->file_bytes),
			bench_ratio(r->mem_bytes, r->file_bytes));
	fputc('\n', out);
	if (r->has_pool)
		fprintf(out, "pool: %llu hits, %llu misses, %llu refills\n",
			(unsigned long long)r->pool.hits, (unsigned long long)r->pool.misses,
			(unsigned long long)r->pool.refills);
	ret = bench_hist_build(v, n, 12, &h);
	if (ret)
		goto out;
	fprintf(out, "\n%s histogram (ms, %zu runs):\n", e2e, n);
	bench_hist_print(out, &h, 50);
out:
	free(sorted);
	free(v);
	return ret;
}

/* A double, or null when it is not meaningful (negative: unknown). */
static void bench_json_num(FILE *out, double x, const char *fmt)
{
	if (x < 0)
		fputs("null", out);
	else
		fprintf(out, fmt, x);
}

static void bench_json_head(FILE *out, const struct bench_result *r)
{
	struct bench_host h;
	char when[32] = "";
	struct tm tm;

	bench_host_get(&h);
	if (gmtime_r(&r->started, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(out, "{\"schema_version\": %d, \"bench\": \"%s\", \"time_unit\": \"ns\", "
		"\"started_utc\": \"%s\", \"host\": {\"cpu_model\": ", BENCH_JSON_SCHEMA_VERSION,
		r->bench, when);
	snapbox_json_string(out, h.cpu);
	fprintf(out, ", \"cpus\": %ld, \"os\": ", h.cpus);
	snapbox_json_string(out, h.sysname);
	fputs(", \"kernel_release\": ", out);
	snapbox_json_string(out, h.release);
	fputs(", \"machine\": ", out);
	snapbox_json_string(out, h.machine);
	fprintf(out, ", \"kvm_backend\": \"%s\", \"emulated\": %s, \"loadavg\": [", h.kvm_backend,
		h.emulated ? "true" : "false");
	for (int i = 0; i < 3; i++) {
		fputs(i ? ", " : "", out);
		bench_json_num(out, h.loadavg[i], "%.2f");
	}
	fprintf(out, "]}, \"options\": {\"iterations\": %ld, \"warmup\": %ld, \"mem_bytes\": %llu, "
		"\"fill_pct\": %u, \"fill_mib\": %u, \"mode\": ", r->iterations, r->warmup,
		(unsigned long long)r->mem_bytes, r->fill_pct, r->fill_mib);
	snapbox_json_string(out, r->mode);
	fprintf(out, ", \"pooled\": %s, \"warm\": %s, \"sync\": %s, \"kernel\": ",
		r->pooled ? "true" : "false", r->warm ? "true" : "false", r->sync ? "true" : "false");
	snapbox_json_string(out, r->kernel);
	fputs(", \"initrd\": ", out);
	snapbox_json_string(out, r->initrd);
	fputs(", \"cmdline\": ", out);
	snapbox_json_string(out, r->cmdline);
	fputs("}, ", out);
}

int bench_result_json(FILE *out, const struct bench_result *r)
{
	size_t n = (size_t)r->iterations;
	bool cold = !strcmp(r->bench, "cold");
	uint64_t *v = bench_e2e(r), *sorted = v ? malloc(n * sizeof(*v)) : NULL;
	struct bench_dist d;
	int ret = -ENOMEM;

	if (!sorted)
		goto out;
	memcpy(sorted, v, n * sizeof(*v));
	bench_dist_of(sorted, n, &d);
	bench_json_head(out, r);
	ret = bench_json_phases(out, r->samples, r->sample_size, n, r->phases, r->nphases);
	if (ret)
		goto out;
	fprintf(out, ", \"end_to_end\": {\"phase\": \"%s\", \"samples_ns\": [", r->phases[r->e2e].name);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%llu", i ? ", " : "", (unsigned long long)v[i]);
	fprintf(out, "]}, \"throughput\": {\"guest_mem_bytes\": %llu, \"mem_mb_per_s\": ",
		(unsigned long long)r->mem_bytes);
	bench_json_num(out, d.p50 ? bench_mbps(r->mem_bytes, d.p50) : -1, "%.1f");
	if (cold)
		fputs(", \"nonzero_bytes\": null, \"file_bytes\": null, \"nonzero_mb_per_s\": null, "
		      "\"compression_ratio\": null", out);
	else {
		fprintf(out, ", \"nonzero_bytes\": %llu, \"file_bytes\": %llu, \"nonzero_mb_per_s\": ",
			(unsigned long long)r->nonzero_bytes, (unsigned long long)r->file_bytes);
		bench_json_num(out, d.p50 ? bench_mbps(r->nonzero_bytes, d.p50) : -1, "%.1f");
		fputs(", \"compression_ratio\": ", out);
		bench_json_num(out, r->file_bytes ? bench_ratio(r->nonzero_bytes, r->file_bytes) : -1,
			       "%.3f");
	}
	fputs("}, \"pool\": ", out);
	if (r->has_pool)
		fprintf(out, "{\"hits\": %llu, \"misses\": %llu, \"refills\": %llu, "
			"\"refill_failures\": %llu}", (unsigned long long)r->pool.hits,
			(unsigned long long)r->pool.misses, (unsigned long long)r->pool.refills,
			(unsigned long long)r->pool.refill_failures);
	else
		fputs("null", out);
	fputs("}\n", out);
out:
	free(sorted);
	free(v);
	return ret;
}
