/* bench_stats.h - shared by the benchmarks and `snapbox bench`: phases, percentiles, tables, the host, progress. */
#ifndef SNAPBOX_BENCH_STATS_H
#define SNAPBOX_BENCH_STATS_H

#include "kvm/mono.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One reported quantity: a name and its offset (a uint64_t ns) inside a sample struct. */
struct bench_phase {
	const char *name;
	size_t off;
};

/* Nearest-rank summary of one phase over n samples, in ns. */
struct bench_dist {
	uint64_t min, p50, p90, p99, max;
};

/* What the machine is, for reports that must tell hosts apart. */
struct bench_host {
	char cpu[256];               /* /proc/cpuinfo "model name", or "unknown" */
	long cpus;                   /* online CPUs */
	char sysname[65];            /* uname: "Linux" */
	char release[65];            /* uname: kernel release */
	char machine[65];            /* uname: "x86_64" */
	const char *kvm_backend;     /* snapbox_kvm_backend(): "pvm" or "hardware" */
	bool emulated;               /* snapbox_host_emulated(): timings here mean nothing */
	double loadavg[3];           /* 1, 5, 15 minutes; -1 when unknown */
};

/* Copy the phase at `off` of n samples (sample_size bytes each) into v[0..n). */
void bench_column(const void *samples, size_t sample_size, size_t n, size_t off, uint64_t *v);

/* Sort v[0..n) in place (n >= 1) and summarise it into d (nearest-rank percentiles). */
void bench_dist_of(uint64_t *v, size_t n, struct bench_dist *d);

/*
 * Print a table (ms) of min/p50/p90/p99/max of every phase over n samples on
 * out. Returns 0, -EINVAL when n is 0, -ENOMEM.
 */
int bench_table(FILE *out, const void *samples, size_t sample_size, size_t n,
		const struct bench_phase *phases, size_t nphases);

/*
 * Write `"phases_ns": {PHASE: {"min", "p50", "p90", "p99", "max"}, ...}` to
 * json. Returns 0, -EINVAL when n is 0, -ENOMEM.
 */
int bench_json_phases(FILE *json, const void *samples, size_t sample_size, size_t n,
		      const struct bench_phase *phases, size_t nphases);

/*
 * The bench programs' report: bench_table on stdout and, when json is
 * non-NULL, bench_json_phases appended to it.
 */
void bench_report(FILE *json, const void *samples, size_t sample_size, size_t n,
		  const struct bench_phase *phases, size_t nphases);

/* Fill h from /proc/cpuinfo, uname, sysconf, getloadavg and the library. Never fails. */
void bench_host_get(struct bench_host *h);

/* The one line every report prints first on an emulated host (nothing otherwise). */
void bench_emulated_banner(FILE *out);

/* Write `"host": {"kernel", "cpu", "cpus", "kvm_backend"}` (the bench programs' form) to json. */
void bench_json_host(FILE *json);

/* Show "\r<what> [i/n]" on stderr when stderr is a terminal; a newline after the last. */
void bench_progress(const char *what, long i, long n);

/* End a progress line left open (before an error message); no-op otherwise. */
void bench_progress_break(void);

#endif
