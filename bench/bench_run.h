/* bench_run.h - the measuring loops shared by the bench programs and `snapbox bench`: cold boot, snapshot, restore. */
#ifndef SNAPBOX_BENCH_RUN_H
#define SNAPBOX_BENCH_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench_stats.h"
#include "snapbox.h"

/*
 * Set by SIGINT/SIGTERM once bench_catch_interrupts ran. The loops check it
 * between iterations and return -EINTR, so their callers still remove the
 * temporary snapshots and templates they made.
 */
extern volatile sig_atomic_t bench_interrupted;

/* Route SIGINT and SIGTERM to bench_interrupted (a second one kills as usual). */
void bench_catch_interrupts(void);

/* The memory file's default chunk size (snapbox_snapshot_opts.chunk_size 0): zero chunks cost nothing. */
#define BENCH_CHUNK_BYTES (256u << 10)

/* One cold boot: the library's two profiles and what the benchmark adds. */
struct bench_cold_sample {
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	uint64_t ping;        /* first PING round trip after READY */
	uint64_t own_code;    /* host phases that are neither KVM ioctls nor guest time */
};

/* The reported phases of each operation, in profile order; the last row is noted. */
extern const struct bench_phase bench_cold_phases[];      /* CreateVmProfile, BootProfile, ping, own_code */
extern const size_t bench_cold_nphases;
extern const struct bench_phase bench_snapshot_phases[];  /* the snapshot profile, "total" last */
extern const size_t bench_snapshot_nphases;
extern const struct bench_phase bench_restore_phases[];   /* RestoreProfile, "restore_to_ready" last */
extern const size_t bench_restore_nphases;

/* A guest to boot and, for the probe, to fill before a snapshot. */
struct bench_guest {
	struct snapbox_config cfg;
	uint32_t fill_mib;           /* 0: no FILL (any guest); else the probe's FILL of that size */
	uint64_t fill_seed;
	unsigned restore_timeout_ms; /* restores of its snapshot: REFRESH and PING; 0: the default */
};

/* The probe's FILL size for pct % of a guest of mem_bytes: it fills from 4 MiB up, 8 MiB kept. */
uint32_t bench_fill_mib(uint64_t mem_bytes, unsigned pct);

/*
 * Boot g to READY and fill it. Returns 0 with *out running, or a negative
 * errno (the library has said why on stderr) with nothing left behind.
 */
int bench_guest_boot(const struct bench_guest *g, struct snapbox **out);

/*
 * Cold-boot cfg warmup + runs times; each boot is PINGed once and destroyed.
 * out[0..runs) gets the measured runs. label (NULL: none) names the
 * terminal progress line. Returns 0 or the first failure's negative errno.
 */
int bench_cold_loop(const struct snapbox_config *cfg, long runs, long warmup, const char *label,
		    struct bench_cold_sample *out);

/*
 * Boot and fill g once, then snapshot it into dir warmup + runs times (the
 * guest resumes in between); out[0..runs) gets the measured profiles.
 * Returns 0 or a negative errno.
 */
int bench_snapshot_loop(const struct bench_guest *g, const struct snapbox_snapshot_opts *so,
			const char *dir, long runs, long warmup, const char *label,
			struct snapbox_snapshot_profile *out);

/*
 * Boot and fill g, snapshot it (no fsync) into a new private directory:
 * dir (cap bytes) gets "/tmp/snapbox-bench-XXXXXX/snap", prof (may be NULL)
 * the snapshot's profile. Remove it with bench_rmtree of dir's parent.
 * Returns 0 or a negative errno.
 */
int bench_make_snapshot(const struct bench_guest *g, char *dir, size_t cap,
			struct snapbox_snapshot_profile *prof);

/* How a restore loop restores. */
struct bench_restore_how {
	enum snapbox_restore_mode mode;
	bool pooled;                 /* from a shell pool of 2, refilled in the background */
	bool no_warm;                /* pooled: shells only (snapbox_pool_opts.no_warm) */
	const char *cache_dir;       /* cow templates; NULL: the library's default */
	unsigned ping_timeout_ms;    /* each restore's REFRESH and PING; 0: the library's default */
};

/*
 * Restore the snapshot in dir warmup + runs times, each resumed, PINGed
 * (restore_to_ready) and destroyed; out[0..runs) gets the measured profiles,
 * pool (when pooled and non-NULL) the pool's statistics at the end.
 * Returns 0 or a negative errno.
 */
int bench_restore_loop(const char *dir, const struct bench_restore_how *how, long runs,
		       long warmup, const char *label, struct snapbox_restore_profile *out,
		       struct snapbox_pool_stats *pool);

/* Remove path and everything below it (no symlink is followed). Returns 0 or -errno (logged). */
int bench_rmtree(const char *path);

#endif
