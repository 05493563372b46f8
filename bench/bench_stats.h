/* bench_stats.h - shared by the benchmarks: a table of phases, percentiles, readable and JSON reports. */
#ifndef SNAPBOX_BENCH_STATS_H
#define SNAPBOX_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One reported quantity: a name and its offset (a uint64_t ns) inside a sample struct. */
struct bench_phase {
	const char *name;
	size_t off;
};

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/*
 * Print min/p50/p90/p99/max (ms) of every phase over n samples of sample_size
 * bytes each, and when json is non-NULL append `"phases_ns": {...}` to it.
 */
void bench_report(FILE *json, const void *samples, size_t sample_size, size_t n,
		  const struct bench_phase *phases, size_t nphases);

/* Write `"host": {...}` (kernel, CPU model, CPUs, KVM backend) to json. */
void bench_json_host(FILE *json);

/* Show "\r<what> i/n" on a terminal only. */
void bench_progress(const char *what, long i, long n);

#endif
