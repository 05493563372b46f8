/* snapbox_clones.c - `snapbox bench restore --clones N`: host memory (PSS, RSS) per copy-on-write clone kept alive in this process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_run.h"
#include "snapbox.h"
#include "tools/snapbox_cli.h"

struct clones_mem {
	unsigned long pss_kib, rss_kib;
};

/* This process's Pss and Rss from /proc/self/smaps_rollup: 0 or -errno. */
static int clones_measure(struct clones_mem *m)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		found += sscanf(line, "Pss: %lu kB", &m->pss_kib) + sscanf(line, "Rss: %lu kB", &m->rss_kib);
	fclose(f);
	return found == 2 ? 0 : -EIO;
}

static int clones_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static void clones_report(FILE *f, bool json, const struct clones_mem *m, unsigned n)
{
	long *marg = calloc(n ? n : 1, sizeof(*marg)), med = 0;
	long first = n ? (long)m[1].pss_kib - (long)m[0].pss_kib : 0;

	for (unsigned i = 2; marg && i <= n; i++)
		marg[i - 2] = (long)m[i].pss_kib - (long)m[i - 1].pss_kib;
	if (marg && n >= 2) {
		qsort(marg, n - 1, sizeof(*marg), clones_cmp);
		med = marg[(n - 2) / 2];
	}
	if (json) {
		fprintf(f, "{\"bench\": \"restore-clones\", \"schema_version\": 1, \"emulated\": %s, \"clones\": [",
			snapbox_host_emulated() ? "true" : "false");
		for (unsigned i = 0; i <= n; i++)
			fprintf(f, "%s{\"n\": %u, \"pss_kib\": %lu, \"rss_kib\": %lu}", i ? ", " : "", i,
				m[i].pss_kib, m[i].rss_kib);
		fprintf(f, "], \"first_clone_pss_kib\": %ld, \"marginal_pss_median_kib\": %ld}\n", first, med);
	} else {
		fprintf(f, "%6s %10s %10s %10s\n", "clones", "PSS KiB", "RSS KiB", "+PSS");
		for (unsigned i = 0; i <= n; i++)
			fprintf(f, "%6u %10lu %10lu %10ld\n", i, m[i].pss_kib, m[i].rss_kib,
				i ? (long)m[i].pss_kib - (long)m[i - 1].pss_kib : 0L);
		fprintf(f, "first clone: %ld KiB PSS (it maps the template); each further clone: median %ld KiB PSS\n",
			first, med);
	}
	free(marg);
}

/* Run `sh -c cmd` in a clone; it must exit 0. */
static int clones_exec(struct snapbox *sb, const char *cmd)
{
	const char *argv[] = { "sh", "-c", cmd, NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 120000 };
	struct snapbox_exec_result r;
	int ret = snapbox_exec(sb, &o, &r);

	if (ret)
		return ret;
	if (r.signaled || r.exit_code) {
		fprintf(stderr, "snapbox bench: --exec '%s' failed in a clone (%s %d)\n", cmd,
			r.signaled ? "signal" : "exit", r.signaled ? r.signal : r.exit_code);
		ret = -ECANCELED;
	}
	snapbox_exec_result_free(&r);
	return ret;
}

int snapbox_bench_clones(const struct bench_guest *g, unsigned clones, const char *cmd, bool json)
{
	char cache[64] = "/dev/shm/snapbox-bench-XXXXXX", dir[64];
	struct snapbox_restore_opts ro = { .mode = SNAPBOX_RESTORE_COW, .resume = true, .ping = true,
					   .console_fd = -1, .ping_timeout_ms = g->restore_timeout_ms };
	struct snapbox **sb = calloc(clones, sizeof(*sb));
	struct clones_mem *m = calloc(clones + 1, sizeof(*m));
	unsigned n = 0;
	int ret;

	if (!sb || !m || !mkdtemp(cache)) {
		free(sb);
		free(m);
		return -ENOMEM;
	}
	ro.cache_dir = cache;
	ret = bench_make_snapshot(g, dir, sizeof(dir), NULL);
	if (ret)
		goto out;
	ret = clones_measure(&m[0]);
	/* Each clone stays alive: what the process holds is the cost of all of them. */
	while (!ret && n < clones) {
		ret = snapbox_restore(dir, &ro, &sb[n], NULL);
		if (ret)
			break;
		n++;
		if (cmd && (ret = clones_exec(sb[n - 1], cmd)))
			break;
		ret = clones_measure(&m[n]);
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "\rsnapbox bench: %u/%u clones alive", n, clones);
	}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (!ret) {
		if (snapbox_host_emulated() && !json)
			puts("EMULATED: this host's CPU is emulated; page counts are exact, times are not");
		clones_report(stdout, json, m, n);
	}
	while (n)
		snapbox_destroy(sb[--n]);
	*strrchr(dir, '/') = '\0';
	bench_rmtree(dir);
out:
	bench_rmtree(cache);
	free(sb);
	free(m);
	return ret;
}
