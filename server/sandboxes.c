/* sandboxes.c - snapboxd's live sandboxes: limits, restores, references, deferred VM teardown and the TTL reaper. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "server/srv.h"

int srv_sandbox_reserve(struct srv *s, struct srv_tenant *tn, uint64_t mem)
{
	unsigned share = s->lim.tenant_max_sandboxes ? s->lim.tenant_max_sandboxes : s->lim.max_sandboxes;
	const char *over = NULL;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->nsandboxes >= s->lim.max_sandboxes)
		over = "max-sandboxes";
	else if (s->guest_mem + mem > s->lim.max_guest_mem)
		over = "max-guest-mem";
	else if (tn && tn->reserved >= share)
		over = "tenant-max-sandboxes";
	if (over)
		ret = -EAGAIN;
	else {
		s->nsandboxes++;
		s->guest_mem += mem;
		if (tn)
			tn->reserved++;
	}
	pthread_mutex_unlock(&s->lock);
	if (over)
		srv_metrics_limit(over);
	return ret;
}

void srv_sandbox_unreserve(struct srv *s, struct srv_tenant *tn, uint64_t mem)
{
	pthread_mutex_lock(&s->lock);
	s->nsandboxes--;
	s->guest_mem -= mem;
	if (tn)
		tn->reserved--;
	pthread_mutex_unlock(&s->lock);
}

int srv_restore(struct srv_template *t, struct snapbox **out,
		struct snapbox_restore_profile *prof)
{
	struct snapbox_restore_opts ro = {
		.mode = t->mode, .resume = true, .ping = true, .console_fd = -1,
		.cache_dir = t->cache_dir,
	};
	int ret;

	memset(prof, 0, sizeof(*prof));
	if (t->pool)
		ret = snapbox_pool_restore(t->pool, &ro, out, prof);
	else
		ret = snapbox_restore(t->snapshot, &ro, out, prof);
	if (!ret)
		srv_metrics_restore(t->name, t->owner ? t->owner->name : "", srv_mode_name(t->mode), prof->pooled,
				    prof->restore_to_ready);
	return ret;
}

struct srv_sandbox *srv_sandbox_add(struct srv *s, const struct srv_template *t, struct srv_tenant *tn,
				    struct snapbox *sb, uint64_t mem, unsigned ttl_s)
{
	struct srv_sandbox *x = calloc(1, sizeof(*x));
	uint8_t rnd[8];

	if (!x || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(x);
		return NULL;
	}
	snprintf(x->id, sizeof(x->id), "sb-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	snprintf(x->tmpl, sizeof(x->tmpl), "%s", t->name);
	x->instrument = t->instrument;
	x->owner = tn;
	pthread_rwlock_init(&x->busy, NULL);
	x->sb = sb;
	x->mem_bytes = mem;
	x->created_ns = srv_real_ns();
	if (ttl_s) {
		x->expires_ns = x->created_ns + (uint64_t)ttl_s * 1000000000ull;
		x->expires_mono = srv_mono_ns() + (uint64_t)ttl_s * 1000000000ull;
	}
	x->refs = 2;   /* the list's and the caller's */
	x->listed = true;
	pthread_mutex_lock(&s->lock);
	x->next = s->sandboxes;
	s->sandboxes = x;
	pthread_mutex_unlock(&s->lock);
	return x;
}

struct srv_sandbox *srv_sandbox_get(struct srv *s, const char *id, const struct srv_tenant *tn)
{
	struct srv_sandbox *x;

	pthread_mutex_lock(&s->lock);
	for (x = s->sandboxes; x; x = x->next)
		if (!strcmp(x->id, id) && x->owner == tn)
			break;
	if (x)
		x->refs++;
	pthread_mutex_unlock(&s->lock);
	return x;
}

void srv_sandbox_put(struct srv *s, struct srv_sandbox *x)
{
	bool last;

	if (!x)
		return;
	pthread_mutex_lock(&s->lock);
	last = --x->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return;
	srv_bury(s, x->sb, x->owner, x->mem_bytes);
	pthread_rwlock_destroy(&x->busy);
	free(x);
}

struct srv_grave {
	struct snapbox *sb;
	struct srv_tenant *owner;
	uint64_t mem;
	struct srv_grave *next;
};

/* Where srv_bury puts VMs on this thread: the request's list, or NULL for the reaper. */
static __thread struct srv_grave **srv_defer_to;

void srv_defer_graves(struct srv_grave **list)
{
	srv_defer_to = list;
}

void srv_graves_destroy(struct srv *s, struct srv_grave *g)
{
	while (g) {
		struct srv_grave *next = g->next;

		snapbox_destroy(g->sb);
		srv_sandbox_unreserve(s, g->owner, g->mem);
		free(g);
		g = next;
	}
}

void srv_bury(struct srv *s, struct snapbox *sb, struct srv_tenant *tn, uint64_t mem)
{
	struct srv_grave *g = malloc(sizeof(*g));

	if (!g) {
		snapbox_destroy(sb);
		srv_sandbox_unreserve(s, tn, mem);
		return;
	}
	g->sb = sb;
	g->owner = tn;
	g->mem = mem;
	if (srv_defer_to) {
		g->next = *srv_defer_to;
		*srv_defer_to = g;
		return;
	}
	pthread_mutex_lock(&s->lock);
	g->next = s->graves;
	s->graves = g;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Destroy every buried VM; called and returns with s->lock held, drops it meanwhile. */
void srv_dig_locked(struct srv *s)
{
	while (s->graves) {
		struct srv_grave *g = s->graves;

		s->graves = NULL;
		pthread_mutex_unlock(&s->lock);
		srv_graves_destroy(s, g);
		pthread_mutex_lock(&s->lock);
	}
}

/* Unlink x from the list; the caller holds s->lock. */
static bool srv_sandbox_unlink(struct srv *s, struct srv_sandbox *x)
{
	for (struct srv_sandbox **pp = &s->sandboxes; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			x->listed = false;
			return true;
		}
	}
	return false;
}

int srv_sandbox_remove(struct srv *s, struct srv_sandbox *x)
{
	bool found;

	pthread_mutex_lock(&s->lock);
	found = x->listed && srv_sandbox_unlink(s, x);
	pthread_mutex_unlock(&s->lock);
	if (!found)
		return -ENOENT;
	srv_sandbox_put(s, x);   /* the list's reference */
	return 0;
}

struct json_object *srv_sandbox_json(const struct srv_sandbox *x)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(x->id));
	json_object_object_add(o, "template", json_object_new_string(x->tmpl));
	json_object_object_add(o, "state", json_object_new_string("running"));
	json_object_object_add(o, "mem_bytes", json_object_new_int64((int64_t)x->mem_bytes));
	json_object_object_add(o, "created_ns", json_object_new_int64((int64_t)x->created_ns));
	json_object_object_add(o, "expires_ns", json_object_new_int64((int64_t)x->expires_ns));
	return o;
}

unsigned srv_sandboxes_live(struct srv *s)
{
	unsigned n = 0;

	for (struct srv_sandbox *x = s->sandboxes; x; x = x->next)
		n++;
	return n;
}

struct json_object *srv_sandboxes_json(struct srv *s, const struct srv_tenant *tn)
{
	struct json_object *a = json_object_new_array();

	pthread_mutex_lock(&s->lock);
	for (struct srv_sandbox *x = s->sandboxes; x; x = x->next)
		if (x->owner == tn)
			json_object_array_add(a, srv_sandbox_json(x));
	pthread_mutex_unlock(&s->lock);
	return a;
}

/* Once a second: unlist sandboxes past their TTL or whose guest has stopped. */
void *srv_reaper(void *arg)
{
	struct srv *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct srv_sandbox *dead[64];
		size_t n = 0;
		uint64_t now = srv_mono_ns();
		struct timespec ts;

		for (struct srv_sandbox *x = s->sandboxes, *next; x && n < 64; x = next) {
			next = x->next;
			if ((x->expires_mono && now >= x->expires_mono) ||
			    strcmp(snapbox_stop_reason(x->sb), "running")) {
				srv_sandbox_unlink(s, x);
				dead[n++] = x;
			}
		}
		pthread_mutex_unlock(&s->lock);
		for (size_t i = 0; i < n; i++) {
			srv_log("sandbox %s reaped: %s", dead[i]->id,
				dead[i]->expires_mono && now >= dead[i]->expires_mono ? "its TTL passed"
										  : "its guest stopped");
			srv_sandbox_put(s, dead[i]);
		}
		pthread_mutex_lock(&s->lock);
		srv_dig_locked(s);
		if (s->stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!s->graves)
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		srv_dig_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
