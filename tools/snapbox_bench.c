/* snapbox_bench.c - `snapbox bench cold|snapshot|restore`: repeat one operation, report its phases, throughput and latency histogram. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_report.h"
#include "bench/bench_run.h"
#include "snapbox.h"
#include "tools/snapbox_cli.h"

static const char bench_usage[] =
	"usage: snapbox bench cold|snapshot|restore [options]\n"
	"\n"
	"Repeat one operation on one guest (the probe guest by default) and report\n"
	"min, p50, p90, p99 and max of every profile phase, throughput, and a\n"
	"histogram of the end-to-end latency:\n"
	"  cold       cold boot to READY, then one PING (CreateVmProfile, BootProfile;\n"
	"             end to end: cold_start_total)\n"
	"  snapshot   snapshots of one booted and filled guest, which resumes between\n"
	"             them (the snapshot profile; end to end: total)\n"
	"  restore    restores of one snapshot, each resumed and PINGed (RestoreProfile;\n"
	"             end to end: restore_to_ready, the first PONG)\n"
	"\n"
	"  --iterations N    measured runs (default 50)\n"
	"  --warmup N        unmeasured runs before them (default 2)\n"
	"  --mem SIZE        guest memory, e.g. 256M or 1G (default 256M)\n"
	"  --fill PERCENT    snapshot, restore: before the snapshot, fill PERCENT %% of the\n"
	"                    probe's fillable memory (guest memory less 8 MiB) with its\n"
	"                    realistic page mix (default 25 with the probe, 0 with --kernel)\n"
	"  --mode MODE       restore: eager, cow (default) or lazy\n"
	"  --pooled          restore: from a shell pool, built before each request; its\n"
	"                    shells are warm clones (state restored, resumed, one REFRESH\n"
	"                    and PING), so a request pays its own REFRESH and PING\n"
	"  --no-warm         with --pooled: shells only, the state restored at the request\n"
	"  --clones N        restore: keep N cow clones alive instead, and report this\n"
	"                    process's PSS and RSS before the first and after each, and the\n"
	"                    marginal PSS per clone (host memory per clone)\n"
	"  --exec CMD        with --clones: each clone also runs `sh -c CMD` (Linux guest)\n"
	"  --sync            snapshot: fsync every snapshot (default: no fsync)\n"
	"  --kernel FILE     guest kernel (default: the probe guest, $SNAPBOX_PROBE or\n"
	"                    guest/probe.elf beside snapbox)\n"
	"  --initrd FILE     initramfs, with --kernel\n"
	"  --cmdline STR     kernel command line (default \"console=ttyS0\")\n"
	"  --timeout MS      every deadline of the run: the boot's READY wait (default\n"
	"                    10000) and each restore's REFRESH and PING (default 5000);\n"
	"                    defaults are times $SNAPBOX_TIME_SCALE\n"
	"  --json            print only the JSON document on stdout (schema: docs/benchmarks.md,\n"
	"                    \"snapbox bench JSON schema\")\n"
	"  -h, --help        this text\n"
	"\n"
	"The table is in ms, the JSON in ns. Progress goes to stderr when it is a\n"
	"terminal. Exit codes as for 'snapbox --help'.\n";

#define BENCH_MAX_ITER 100000L

struct bench_opts {
	const char *op;              /* "cold", "snapshot" or "restore" */
	struct bench_guest g;
	long iterations, warmup;
	long fill_pct;               /* -1: the default */
	enum snapbox_restore_mode mode;
	const char *mode_name;       /* NULL: not given */
	bool pooled, no_warm, sync, json;
	unsigned clones;             /* restore --clones N; 0: the latency loop */
	const char *exec;            /* --clones: a shell command each clone runs */
};

enum { BO_ITER = 256, BO_WARMUP, BO_MEM, BO_FILL, BO_MODE, BO_POOLED, BO_NO_WARM, BO_SYNC, BO_KERNEL,
       BO_INITRD, BO_CMDLINE, BO_TIMEOUT, BO_JSON, BO_CLONES, BO_EXEC };

static int bench_bad(const char *what, const char *arg)
{
	fprintf(stderr, "snapbox bench: bad %s '%s' (see snapbox bench --help)\n", what, arg);
	return SNAPBOX_EXIT_USAGE;
}

/* A decimal in [0, max] into *out; -EINVAL otherwise. */
static int bench_long(const char *s, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno || end == s || *end || *out < 0 || *out > max ? -EINVAL : 0;
}

/* What only one operation takes, given to another: a usage error. */
static int bench_check_scope(const struct bench_opts *o)
{
	const char *bad = NULL;

	if (strcmp(o->op, "restore") && o->mode_name)
		bad = "--mode applies to restore only";
	else if (strcmp(o->op, "restore") && o->pooled)
		bad = "--pooled applies to restore only";
	else if (o->no_warm && !o->pooled)
		bad = "--no-warm applies to --pooled only";
	else if (o->clones && (strcmp(o->op, "restore") || o->pooled || (o->mode_name && o->mode != SNAPBOX_RESTORE_COW)))
		bad = "--clones applies to cow restores only (not --pooled)";
	else if (o->exec && !o->clones)
		bad = "--exec applies with --clones (a Linux guest with the agent)";
	else if (strcmp(o->op, "snapshot") && o->sync)
		bad = "--sync applies to snapshot only";
	else if (!strcmp(o->op, "cold") && o->fill_pct >= 0)
		bad = "--fill applies to snapshot and restore (a cold boot is measured unfilled)";
	else if (o->g.cfg.initrd && !o->g.cfg.kernel)
		bad = "--initrd needs --kernel";
	if (bad)
		fprintf(stderr, "snapbox bench: %s\n", bad);
	return bad ? SNAPBOX_EXIT_USAGE : -1;
}

/* Returns -1 to go on, or an exit code. */
static int bench_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "iterations", required_argument, NULL, BO_ITER },
		{ "warmup", required_argument, NULL, BO_WARMUP },
		{ "mem", required_argument, NULL, BO_MEM },
		{ "fill", required_argument, NULL, BO_FILL },
		{ "mode", required_argument, NULL, BO_MODE },
		{ "pooled", no_argument, NULL, BO_POOLED },
		{ "no-warm", no_argument, NULL, BO_NO_WARM },
		{ "clones", required_argument, NULL, BO_CLONES },
		{ "exec", required_argument, NULL, BO_EXEC },
		{ "sync", no_argument, NULL, BO_SYNC },
		{ "kernel", required_argument, NULL, BO_KERNEL },
		{ "initrd", required_argument, NULL, BO_INITRD },
		{ "cmdline", required_argument, NULL, BO_CMDLINE },
		{ "timeout", required_argument, NULL, BO_TIMEOUT },
		{ "json", no_argument, NULL, BO_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->g.cfg.console_fd = -1;
	o->g.cfg.mem_bytes = 256ull << 20;
	o->g.fill_seed = 1;
	o->iterations = 50;
	o->warmup = 2;
	o->fill_pct = -1;
	o->mode = SNAPBOX_RESTORE_COW;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case BO_ITER:
			if (bench_long(optarg, BENCH_MAX_ITER, &o->iterations) || o->iterations == 0)
				return bench_bad("--iterations (1..100000)", optarg);
			break;
		case BO_WARMUP:
			if (bench_long(optarg, BENCH_MAX_ITER, &o->warmup))
				return bench_bad("--warmup (0..100000)", optarg);
			break;
		case BO_MEM:
			if (cli_parse_size(optarg, &o->g.cfg.mem_bytes) || o->g.cfg.mem_bytes == 0)
				return bench_bad("--mem (try 256M or 1G)", optarg);
			break;
		case BO_FILL:
			if (bench_long(optarg, 100, &o->fill_pct))
				return bench_bad("--fill (a percentage, 0..100)", optarg);
			break;
		case BO_MODE:
			o->mode_name = optarg;
			if (cli_parse_mode(optarg, &o->mode))
				return bench_bad("--mode (eager, cow or lazy)", optarg);
			break;
		case BO_POOLED: o->pooled = true; break;
		case BO_NO_WARM: o->no_warm = true; break;
		case BO_EXEC: o->exec = optarg; break;
		case BO_CLONES: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (!*optarg || *end || v == 0 || v > 1024)
				return bench_bad("--clones (1..1024)", optarg);
			o->clones = (unsigned)v;
			break;
		}
		case BO_SYNC: o->sync = true; break;
		case BO_KERNEL: o->g.cfg.kernel = optarg; break;
		case BO_INITRD: o->g.cfg.initrd = optarg; break;
		case BO_CMDLINE: o->g.cfg.cmdline = optarg; break;
		case BO_TIMEOUT:
			if (bench_long(optarg, 86400000, &v) || v == 0)
				return bench_bad("--timeout (ms)", optarg);
			o->g.cfg.boot_timeout_ms = (unsigned)v;
			o->g.restore_timeout_ms = (unsigned)v;
			break;
		case BO_JSON: o->json = true; break;
		case 'h':
			fputs(bench_usage, stdout);
			return SNAPBOX_EXIT_OK;
		default:
			fputs(bench_usage, stderr);
			return SNAPBOX_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "snapbox bench: %s (cold, snapshot or restore)\n",
			optind == argc ? "which benchmark?" : "one benchmark at a time");
		return SNAPBOX_EXIT_USAGE;
	}
	o->op = argv[optind];
	if (strcmp(o->op, "cold") && strcmp(o->op, "snapshot") && strcmp(o->op, "restore")) {
		fprintf(stderr, "snapbox bench: unknown benchmark '%s' (cold, snapshot or restore)\n", o->op);
		return SNAPBOX_EXIT_USAGE;
	}
	return bench_check_scope(o);
}

/* Default the kernel to the probe and check the guest's files. Returns -1 to go on, or an exit code. */
static int bench_assets(struct bench_opts *o, char **probe)
{
	const char *files[2] = { o->g.cfg.kernel, o->g.cfg.initrd };

	if (!o->g.cfg.kernel) {
		*probe = cli_find_asset("SNAPBOX_PROBE", "probe.elf", false);
		if (!*probe) {
			fputs("snapbox bench: no probe guest found: run 'make', set SNAPBOX_PROBE, or "
			      "pass --kernel FILE\n", stderr);
			return SNAPBOX_EXIT_INPUT;
		}
		o->g.cfg.kernel = files[0] = *probe;
	}
	for (int i = 0; i < 2; i++) {
		if (files[i] && access(files[i], R_OK) != 0) {
			fprintf(stderr, "snapbox bench: cannot read %s: %s\n", files[i], strerror(errno));
			return SNAPBOX_EXIT_INPUT;
		}
	}
	if (o->fill_pct < 0)
		o->fill_pct = *probe && strcmp(o->op, "cold") ? 25 : 0;
	o->g.fill_mib = bench_fill_mib(o->g.cfg.mem_bytes, (unsigned)o->fill_pct);
	return -1;
}

/* Index of the phase called name (the end-to-end latency). */
static size_t bench_phase_index(const struct bench_phase *p, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < n && strcmp(p[i].name, name); i++)
		;
	return i;
}

/* Say what is happening before the measured runs, on a terminal only. */
static void bench_status(const char *what)
{
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "snapbox bench: %s\n", what);
}

static int bench_cold(const struct bench_opts *o, const char *label, struct bench_result *r)
{
	struct bench_cold_sample *s = calloc((size_t)o->iterations, sizeof(*s));

	if (!s)
		return -ENOMEM;
	r->samples = s;
	r->sample_size = sizeof(*s);
	r->phases = bench_cold_phases;
	r->nphases = bench_cold_nphases;
	r->e2e = bench_phase_index(r->phases, r->nphases, "cold_start_total");
	return bench_cold_loop(&o->g.cfg, o->iterations, o->warmup, label, s);
}

static int bench_snapshot(const struct bench_opts *o, const char *label, struct bench_result *r)
{
	struct snapbox_snapshot_profile *s = calloc((size_t)o->iterations, sizeof(*s));
	struct snapbox_snapshot_opts so = { .no_sync = !o->sync };
	char dir[64] = "/tmp/snapbox-bench-XXXXXX";
	int ret;

	if (!s)
		return -ENOMEM;
	r->samples = s;
	r->sample_size = sizeof(*s);
	r->phases = bench_snapshot_phases;
	r->nphases = bench_snapshot_nphases;
	r->e2e = bench_phase_index(r->phases, r->nphases, "total");
	if (!mkdtemp(dir)) {
		ret = -errno;
		fprintf(stderr, "snapbox bench: cannot create a directory in /tmp: %s\n", strerror(errno));
		return ret;
	}
	strcat(dir, "/snap");
	bench_status(o->g.fill_mib ? "booting the guest and filling its memory" : "booting the guest");
	ret = bench_snapshot_loop(&o->g, &so, dir, o->iterations, o->warmup, label, s);
	if (!ret) {
		r->nonzero_bytes = s[0].bytes_in - (uint64_t)s[0].zero_chunks * BENCH_CHUNK_BYTES;
		r->file_bytes = s[0].bytes_out;
	}
	*strrchr(dir, '/') = '\0';
	bench_rmtree(dir);
	return ret;
}

static int bench_restore(const struct bench_opts *o, const char *label, struct bench_result *r)
{
	struct snapbox_restore_profile *s = calloc((size_t)o->iterations, sizeof(*s));
	/* cow templates where the library keeps them by default, but private to this run */
	char cache[64] = "/dev/shm/snapbox-bench-XXXXXX", dir[64];
	struct bench_restore_how how = { .mode = o->mode, .pooled = o->pooled, .no_warm = o->no_warm,
					 .ping_timeout_ms = o->g.restore_timeout_ms };
	struct snapbox_snapshot_profile sp;
	int ret;

	if (!s)
		return -ENOMEM;
	r->samples = s;
	r->sample_size = sizeof(*s);
	r->phases = bench_restore_phases;
	r->nphases = bench_restore_nphases;
	r->e2e = bench_phase_index(r->phases, r->nphases, "restore_to_ready");
	if (!mkdtemp(cache)) {
		strcpy(cache, "/tmp/snapbox-bench-cache-XXXXXX");
		if (!mkdtemp(cache)) {
			ret = -errno;
			fprintf(stderr, "snapbox bench: cannot create a template directory: %s\n",
				strerror(errno));
			return ret;
		}
	}
	how.cache_dir = cache;
	bench_status("booting the guest, filling its memory and taking the snapshot");
	ret = bench_make_snapshot(&o->g, dir, sizeof(dir), &sp);
	if (ret)
		goto out;
	r->nonzero_bytes = sp.bytes_in - (uint64_t)sp.zero_chunks * BENCH_CHUNK_BYTES;
	r->file_bytes = sp.bytes_out;
	ret = bench_restore_loop(dir, &how, o->iterations, o->warmup, label, s, &r->pool);
	r->has_pool = o->pooled;
	*strrchr(dir, '/') = '\0';
	bench_rmtree(dir);
out:
	bench_rmtree(cache);
	return ret;
}

int snapbox_cmd_bench(int argc, char **argv)
{
	struct bench_result r = { 0 };
	struct bench_opts o;
	char *probe = NULL, label[64];
	int ret = bench_parse(argc, argv, &o);

	if (ret >= 0)
		return ret;
	ret = bench_assets(&o, &probe);
	if (ret >= 0)
		goto out;
	r.bench = o.op;
	r.iterations = o.iterations;
	r.warmup = o.warmup;
	r.mem_bytes = o.g.cfg.mem_bytes;
	r.fill_pct = (unsigned)o.fill_pct;
	r.fill_mib = o.g.fill_mib;
	r.mode = strcmp(o.op, "restore") ? NULL : cli_mode_name(o.mode);
	r.pooled = o.pooled;
	r.warm = o.pooled && !o.no_warm;
	r.sync = o.sync;
	r.kernel = o.g.cfg.kernel;
	r.initrd = o.g.cfg.initrd;
	r.cmdline = o.g.cfg.cmdline;
	r.started = time(NULL);
	snprintf(label, sizeof(label), "snapbox bench %s", o.op);
	/* Ctrl-C ends the run between iterations, so its temporary files are removed. */
	bench_catch_interrupts();
	if (o.clones) {
		ret = snapbox_exit_code(snapbox_bench_clones(&o.g, o.clones, o.exec, o.json));
		goto out;
	}
	if (!strcmp(o.op, "cold"))
		ret = bench_cold(&o, label, &r);
	else if (!strcmp(o.op, "snapshot"))
		ret = bench_snapshot(&o, label, &r);
	else
		ret = bench_restore(&o, label, &r);
	if (!ret)
		ret = o.json ? bench_result_json(stdout, &r) : bench_result_print(stdout, &r);
	if (ret == -EINTR) {
		fprintf(stderr, "snapbox bench: interrupted; temporary files removed\n");
		ret = 130;   /* as a shell reports SIGINT */
		goto out;
	}
	ret = snapbox_exit_code(ret);
out:
	free((void *)r.samples);
	free(probe);
	return ret;
}
