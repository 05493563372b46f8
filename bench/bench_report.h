/* bench_report.h - `snapbox bench`'s report: phase table, throughput, latency histogram, and its versioned JSON document. */
#ifndef SNAPBOX_BENCH_REPORT_H
#define SNAPBOX_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "bench/bench_stats.h"
#include "snapbox.h"

/* The "schema_version" of the JSON document (docs/benchmarks.md, "snapbox bench JSON schema"). */
#define BENCH_JSON_SCHEMA_VERSION 1

#define BENCH_HIST_MAX_ROWS 32

/*
 * A histogram of latencies: `rows` equal-width rows spanning [lo, hi] ns, and
 * one overflow count for the samples above hi. hi is min + 2 * (p90 - min),
 * capped at the maximum, so a few slow outliers do not squeeze every other
 * sample into the first row.
 */
struct bench_hist {
	size_t n;                            /* samples counted */
	unsigned rows;                       /* 1..BENCH_HIST_MAX_ROWS */
	uint64_t lo, hi, step;               /* row i spans [lo + i*step, lo + (i+1)*step), the last ends at hi */
	size_t count[BENCH_HIST_MAX_ROWS];
	size_t over;                         /* samples above hi */
};

/*
 * Count v[0..n) (any order; v is not changed) into h with at most `rows`
 * rows (fewer when there are fewer samples, one when all are equal).
 * Returns 0, -EINVAL when n or rows is 0, -ENOMEM.
 */
int bench_hist_build(const uint64_t *v, size_t n, unsigned rows, struct bench_hist *h);

/*
 * Print h on out: one line per row, "  LO - HI | ####  COUNT" in ms, the
 * longest bar `width` characters of '#', every non-empty row at least one;
 * then a "> HI" line when some samples are above hi.
 */
void bench_hist_print(FILE *out, const struct bench_hist *h, unsigned width);

/* What one `snapbox bench` run was asked and measured. */
struct bench_result {
	const char *bench;                   /* "cold", "snapshot" or "restore" */
	/* the options */
	long iterations, warmup;
	uint64_t mem_bytes;
	unsigned fill_pct;                   /* snapshot, restore */
	uint32_t fill_mib;
	const char *mode;                    /* restore: "eager", "cow" or "lazy"; else NULL */
	bool pooled;                         /* restore */
	bool warm;                           /* pooled on warm clones */
	bool sync;                           /* snapshot: fsync every snapshot */
	const char *kernel, *initrd, *cmdline;   /* initrd, cmdline: NULL when not given */
	time_t started;
	/* the measurements: `iterations` samples of sample_size bytes */
	const void *samples;
	size_t sample_size;
	const struct bench_phase *phases;
	size_t nphases;
	size_t e2e;                          /* index in phases of the end-to-end latency */
	/* snapshot and restore: the snapshot's memory (0 for cold) */
	uint64_t nonzero_bytes;              /* guest memory not stored as zero chunks */
	uint64_t file_bytes;                 /* memory file and vmstate written */
	bool has_pool;
	struct snapbox_pool_stats pool;
};

/*
 * The readable report on out: what ran and where, the phase table (ms),
 * throughput, and a histogram of the end-to-end latency. Returns 0 or -ENOMEM.
 */
int bench_result_print(FILE *out, const struct bench_result *r);

/*
 * The JSON document (schema BENCH_JSON_SCHEMA_VERSION), one object and a
 * newline, on out. Returns 0 or -ENOMEM.
 */
int bench_result_json(FILE *out, const struct bench_result *r);

#endif
