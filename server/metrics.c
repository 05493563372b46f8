/* metrics.c - snapboxd's counters and histograms, written as Prometheus text (format 0.0.4). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/srv.h"

#define METRICS_SLOTS 64
#define METRICS_BUCKETS 12

/* Upper bounds in seconds, shared by both histograms (1 ms restores to 10 s runs). */
static const double metrics_bounds[METRICS_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 10,
};

struct metrics_hist {
	uint64_t bucket[METRICS_BUCKETS];
	uint64_t count;
	double sum;
};

/* One labelled counter: up to four label values joined into key. */
struct metrics_slot {
	char key[200];
	uint64_t n;
};

static struct {
	pthread_mutex_t lock;
	struct metrics_slot restores[METRICS_SLOTS], requests[METRICS_SLOTS], errors[METRICS_SLOTS];
	struct metrics_slot limits[METRICS_SLOTS];
	struct metrics_hist ready, run;
} metrics = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Count one under key; a full table folds new keys into the last slot. */
static void metrics_count(struct metrics_slot *t, const char *key)
{
	for (int i = 0; i < METRICS_SLOTS; i++) {
		if (!t[i].key[0]) {
			snprintf(t[i].key, sizeof(t[i].key), "%s", i == METRICS_SLOTS - 1 ? "other" : key);
			t[i].n = 1;
			return;
		}
		if (!strcmp(t[i].key, key) || i == METRICS_SLOTS - 1) {
			t[i].n++;
			return;
		}
	}
}

static void metrics_observe(struct metrics_hist *h, uint64_t ns)
{
	double s = (double)ns / 1e9;

	for (int i = 0; i < METRICS_BUCKETS; i++)
		if (s <= metrics_bounds[i])
			h->bucket[i]++;
	h->count++;
	h->sum += s;
}

void srv_metrics_restore(const char *tmpl, const char *owner, const char *mode, bool pooled,
			 uint64_t ready_ns)
{
	char key[200];

	/* A name is per tenant: the owner keeps two tenants' templates apart. */
	snprintf(key, sizeof(key), "template=\"%s\",tenant=\"%s\",mode=\"%s\",pooled=\"%s\"", tmpl,
		 owner, mode, pooled ? "true" : "false");
	pthread_mutex_lock(&metrics.lock);
	metrics_count(metrics.restores, key);
	metrics_observe(&metrics.ready, ready_ns);
	pthread_mutex_unlock(&metrics.lock);
}

void srv_metrics_run(uint64_t ns)
{
	pthread_mutex_lock(&metrics.lock);
	metrics_observe(&metrics.run, ns);
	pthread_mutex_unlock(&metrics.lock);
}

void srv_metrics_request(const char *route, int status, const char *tenant)
{
	char key[160];

	/* tenant is a validated name (or empty: refused before one was known). */
	snprintf(key, sizeof(key), "route=\"%s\",code=\"%d\",tenant=\"%s\"", route, status, tenant);
	pthread_mutex_lock(&metrics.lock);
	metrics_count(metrics.requests, key);
	pthread_mutex_unlock(&metrics.lock);
}

/* Count one in table under the single label name="value". */
static void metrics_count_label(struct metrics_slot *table, const char *name, const char *value)
{
	char key[160];

	snprintf(key, sizeof(key), "%s=\"%s\"", name, value);
	pthread_mutex_lock(&metrics.lock);
	metrics_count(table, key);
	pthread_mutex_unlock(&metrics.lock);
}

void srv_metrics_error(const char *kind)
{
	metrics_count_label(metrics.errors, "kind", kind);
}

void srv_metrics_limit(const char *limit)
{
	metrics_count_label(metrics.limits, "limit", limit);
}

static void metrics_counter(FILE *f, const char *name, const char *help,
			    const struct metrics_slot *t)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < METRICS_SLOTS && t[i].key[0]; i++)
		if (strcmp(t[i].key, "other"))
			fprintf(f, "%s{%s} %llu\n", name, t[i].key, (unsigned long long)t[i].n);
}

static void metrics_histogram(FILE *f, const char *name, const char *help,
			      const struct metrics_hist *h)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < METRICS_BUCKETS; i++)
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[i],
			(unsigned long long)h->bucket[i]);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
		(unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

static uint64_t metrics_rss_bytes(void)
{
	unsigned long long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Pool counters and gauges come from the registry; written under its lock. */
static void metrics_registry(FILE *f, struct srv *s)
{
	static const char *const names[3] = { "hits", "misses", "refills" };

	pthread_mutex_lock(&s->lock);
	for (int k = 0; k < 3; k++) {
		fprintf(f, "# HELP snapbox_pool_%s_total Pool %s by template.\n"
			"# TYPE snapbox_pool_%s_total counter\n", names[k], names[k], names[k]);
		for (struct srv_template *t = s->templates; t; t = t->next) {
			struct snapbox_pool_stats st = { 0 };
			uint64_t v;

			if (t->pool)
				snapbox_pool_get_stats(t->pool, &st);
			v = k == 0 ? st.hits : k == 1 ? st.misses : st.refills;
			fprintf(f, "snapbox_pool_%s_total{template=\"%s\",tenant=\"%s\"} %llu\n", names[k],
				t->name, t->owner ? t->owner->name : "", (unsigned long long)v);
		}
	}
	fprintf(f, "# HELP snapbox_sandboxes_live Sandboxes alive now.\n"
		"# TYPE snapbox_sandboxes_live gauge\nsnapbox_sandboxes_live %u\n", srv_sandboxes_live(s));
	fprintf(f, "# HELP snapbox_sandboxes_reserved Sandboxes counted against the limits: restoring, live or being destroyed.\n"
		"# TYPE snapbox_sandboxes_reserved gauge\nsnapbox_sandboxes_reserved %u\n", s->nsandboxes);
	fprintf(f, "# HELP snapbox_templates Templates registered.\n"
		"# TYPE snapbox_templates gauge\nsnapbox_templates %u\n", s->ntemplates);
	fprintf(f, "# HELP snapbox_builds Template builds running.\n"
		"# TYPE snapbox_builds gauge\nsnapbox_builds %u\n", s->builds);
	fprintf(f, "# HELP snapbox_guest_mem_bytes Guest memory counted against --max-guest-mem.\n"
		"# TYPE snapbox_guest_mem_bytes gauge\nsnapbox_guest_mem_bytes %llu\n",
		(unsigned long long)s->guest_mem);
	fprintf(f, "# HELP snapbox_disk_bytes Snapshot bytes the daemon wrote, against --max-disk.\n"
		"# TYPE snapbox_disk_bytes gauge\nsnapbox_disk_bytes %llu\n", (unsigned long long)s->disk_bytes);
	fprintf(f, "# HELP snapbox_shm_bytes Cow templates' bytes in /dev/shm, against --max-shm.\n"
		"# TYPE snapbox_shm_bytes gauge\nsnapbox_shm_bytes %llu\n", (unsigned long long)s->shm_bytes);
	fprintf(f, "# HELP snapbox_inflight_body_bytes Request body bytes held, against --max-inflight.\n"
		"# TYPE snapbox_inflight_body_bytes gauge\nsnapbox_inflight_body_bytes %llu\n",
		(unsigned long long)atomic_load(&s->inflight_bytes));
	pthread_mutex_unlock(&s->lock);
}

char *srv_metrics_text_of(struct srv *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	pthread_mutex_lock(&metrics.lock);
	metrics_counter(f, "snapbox_restores_total", "Restores by template, mode and pool hit.",
			metrics.restores);
	metrics_counter(f, "snapbox_requests_total", "HTTP requests by route, status and tenant.",
			metrics.requests);
	metrics_counter(f, "snapbox_errors_total", "Error replies by kind.", metrics.errors);
	metrics_counter(f, "snapbox_limit_refusals_total", "Requests refused by a limit, by its option.",
			metrics.limits);
	metrics_histogram(f, "snapbox_restore_to_ready_seconds",
			  "Restore start until the guest answered PING.", &metrics.ready);
	metrics_histogram(f, "snapbox_run_seconds", "One-shot runs, request to reply.", &metrics.run);
	pthread_mutex_unlock(&metrics.lock);
	metrics_registry(f, s);
	fprintf(f, "# HELP snapbox_daemon_rss_bytes Resident memory of snapboxd.\n"
		"# TYPE snapbox_daemon_rss_bytes gauge\nsnapbox_daemon_rss_bytes %llu\n",
		(unsigned long long)metrics_rss_bytes());
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
