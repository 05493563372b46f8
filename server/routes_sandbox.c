/* routes_sandbox.c - snapboxd's sandbox routes: create, list, get, delete, exec, ping, raw request, files, snapshot, one-shot run. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

#define SANDBOX_DEFAULT_TTL 300

/* Reserve, restore (pooled when possible) from the body's template: sb and its profile, or an error reply. */
static struct srv_template *sandbox_restore(struct srv *s, struct srv_tenant *tn, struct json_object *b,
					    struct snapbox **sb, struct snapbox_restore_profile *p,
					    struct srv_reply *r)
{
	struct json_object *v;
	struct srv_template *t;
	bool ready;
	int ret;

	if (!json_object_object_get_ex(b, "template", &v) || !json_object_is_type(v, json_type_string)) {
		srv_reply_error(r, 400, "bad_request", "template (a name) is required");
		return NULL;
	}
	t = srv_template_get(s, json_object_get_string(v), tn);
	if (!t) {
		srv_reply_error(r, 404, "not_found", "no template %s", json_object_get_string(v));
		return NULL;
	}
	pthread_mutex_lock(&s->lock);      /* a build's thread writes it */
	ready = t->status == SRV_T_READY;
	pthread_mutex_unlock(&s->lock);
	if (!ready) {
		srv_reply_error(r, 422, "unprocessable", "template %s is not ready", t->name);
		goto err;
	}
	ret = srv_sandbox_reserve(s, tn, t->mem_bytes);
	if (ret) {
		srv_reply_error(r, 429, "limit", "the daemon's sandbox or guest-memory limit, or this "
				"tenant's share, is reached");
		goto err;
	}
	ret = srv_restore(t, sb, p);
	if (ret) {
		srv_sandbox_unreserve(s, tn, t->mem_bytes);
		srv_reply_errno(r, ret, "restore");
		goto err;
	}
	return t;
err:
	srv_template_put(s, t);
	return NULL;
}

static void route_create(struct srv *s, const struct srv_req *req, struct srv_reply *r)
{
	struct json_object *b = srv_body_json(req, r), *v, *o;
	struct snapbox_restore_profile p;
	struct srv_template *t;
	struct srv_sandbox *x;
	struct snapbox *sb;
	int64_t ttl = SANDBOX_DEFAULT_TTL < s->lim.max_ttl_s ? SANDBOX_DEFAULT_TTL : s->lim.max_ttl_s;

	if (!b)
		return;
	if (json_object_object_get_ex(b, "ttl_s", &v)) {
		ttl = json_object_get_int64(v);
		/* No sandbox lives for ever: at most the operator's --max-ttl. */
		if (!json_object_is_type(v, json_type_int) || ttl < 1 || ttl > s->lim.max_ttl_s) {
			srv_reply_error(r, 400, "bad_request", "ttl_s must be an integer in [1, %u]",
					s->lim.max_ttl_s);
			goto out;
		}
	}
	t = sandbox_restore(s, req->tenant, b, &sb, &p, r);
	if (!t)
		goto out;
	x = srv_sandbox_add(s, t, req->tenant, sb, t->mem_bytes, (unsigned)ttl);
	if (!x) {
		snapbox_destroy(sb);
		srv_sandbox_unreserve(s, req->tenant, t->mem_bytes);
		srv_reply_error(r, 500, "internal", "out of memory");
	} else {
		o = srv_sandbox_json(x);
		json_object_object_add(o, "restore_profile", srv_profile_json(&p));
		srv_reply_json(r, 201, o);
		srv_sandbox_put(s, x);
	}
	srv_template_put(s, t);
out:
	json_object_put(b);
}

/* After a guest failure the sandbox is of no more use: unlist it now. */
static void sandbox_reap_on(struct srv *s, struct srv_sandbox *x, int err)
{
	if (err == -ETIMEDOUT || strcmp(snapbox_stop_reason(x->sb), "running")) {
		srv_log("sandbox %s reaped: %s", x->id, err == -ETIMEDOUT ? "the guest did not answer"
									  : snapbox_stop_reason(x->sb));
		srv_sandbox_remove(s, x);
	}
}

static void route_exec(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
		       struct srv_reply *r)
{
	struct json_object *b = srv_body_json(req, r), *o;
	struct srv_exec e;
	int err = 0;

	if (!b)
		return;
	if (srv_exec_parse(b, &e, r)) {
		/* The TTL bounds the command too: past it the sandbox is gone. */
		uint64_t now = srv_mono_ns();
		uint64_t left = x->expires_mono > now ? (x->expires_mono - now) / 1000000 : 1;
		unsigned t = e.o.timeout_ms ? e.o.timeout_ms : 30000;

		if (x->expires_mono && t > left)
			e.o.timeout_ms = left ? (unsigned)left : 1;
		o = srv_exec_run(x->sb, &e, r, &err);
		if (o)
			srv_reply_json(r, 200, o);
		else
			sandbox_reap_on(s, x, err);
	}
	srv_exec_fini(&e);
	json_object_put(b);
}

static void route_ping(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
		       struct srv_reply *r)
{
	struct json_object *b = NULL, *o;
	uint64_t t0;
	int ret;

	if (req->body_len && !(b = srv_body_json(req, r)))
		return;
	t0 = srv_mono_ns();
	ret = snapbox_ping(x->sb, srv_body_timeout(b, 5000));
	if (ret) {
		srv_reply_errno(r, ret, "ping");
		sandbox_reap_on(s, x, ret);
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "ping_ns", json_object_new_int64((int64_t)(srv_mono_ns() - t0)));
		srv_reply_json(r, 200, o);
	}
	json_object_put(b);
}

static void route_request(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
			  struct srv_reply *r)
{
	struct json_object *b = srv_body_json(req, r), *v, *o;
	uint8_t *payload = NULL;
	void *reply = NULL;
	uint32_t rlen = 0;
	size_t len = 0;
	int ret;

	if (!b)
		return;
	if (!json_object_object_get_ex(b, "type", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0 || json_object_get_int64(v) > 0xffff) {
		srv_reply_error(r, 400, "bad_request", "type must be an integer in [0, 65535]");
		goto out;
	}
	if (json_object_object_get_ex(b, "payload", &v) &&
	    (!json_object_is_type(v, json_type_string) ||
	     srv_b64_decode(json_object_get_string(v), &payload, &len))) {
		srv_reply_error(r, 400, "bad_request", "payload must be base64");
		goto out;
	}
	json_object_object_get_ex(b, "type", &v);
	ret = snapbox_request(x->sb, (uint16_t)json_object_get_int64(v), payload, (uint32_t)len, &reply,
			      &rlen, srv_body_timeout(b, 5000));
	if (ret) {
		srv_reply_errno(r, ret, "request");
		sandbox_reap_on(s, x, ret);
	} else {
		char *b64 = srv_b64_encode(reply, rlen);

		o = json_object_new_object();
		json_object_object_add(o, "payload", json_object_new_string(b64 ? b64 : ""));
		free(b64);
		srv_reply_json(r, 200, o);
	}
out:
	free(reply);
	free(payload);
	json_object_put(b);
}

static void route_files(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
			struct srv_reply *r)
{
	const char *path = req->query(req->query_ctx, "path");
	const char *mode = req->query(req->query_ctx, "mode");
	void *data = NULL;
	size_t len = 0;
	int ret;

	if (!path || path[0] != '/') {
		srv_reply_error(r, 400, "bad_request", "the query needs path=/absolute/path");
		return;
	}
	if (!strcmp(req->method, "PUT")) {
		char *end = NULL;
		unsigned long m = mode ? strtoul(mode, &end, 8) : 0644;

		if ((mode && (!*mode || *end)) || m > 07777) {
			srv_reply_error(r, 400, "bad_request", "mode must be octal, at most 07777");
			return;
		}
		if (req->body_len > SNAPBOX_FILE_MAX) {
			srv_reply_error(r, 413, "too_large", "a file holds at most %u bytes", SNAPBOX_FILE_MAX);
			return;
		}
		ret = snapbox_write_file(x->sb, path, (uint32_t)m, req->body, req->body_len, 30000);
		if (!ret)
			r->status = 204;
	} else if (!strcmp(req->method, "GET")) {
		ret = snapbox_read_file(x->sb, path, SNAPBOX_FILE_MAX, &data, &len, 30000);
		if (!ret)
			srv_reply_bytes(r, 200, data, len);
		free(data);
	} else {
		srv_reply_error(r, 405, "method_not_allowed", "use PUT or GET");
		return;
	}
	if (ret == -ENOENT)
		srv_reply_error(r, 404, "not_found", "the guest has no %s", path);
	else if (ret) {
		srv_reply_errno(r, ret, !strcmp(req->method, "PUT") ? "write-file" : "read-file");
		sandbox_reap_on(s, x, ret);
	}
}

static void route_snapshot(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
			   struct srv_reply *r)
{
	struct json_object *b = srv_body_json(req, r), *v;
	struct snapbox_snapshot_opts so = { 0 };
	struct srv_template *t;
	const char *name = NULL;
	char *dir = NULL;
	int ret;

	if (!b)
		return;
	if (json_object_object_get_ex(b, "template", &v) && json_object_is_type(v, json_type_string))
		name = json_object_get_string(v);
	if (name && srv_name_valid(name) && !(dir = srv_template_dir(s, name))) {
		srv_reply_error(r, 500, "internal", "out of memory");
		goto out;
	}
	t = srv_template_from(s, b, name, dir ? dir : "", req->tenant, r);
	if (!t)
		goto out;
	if (srv_disk_reserve(s, t, x->mem_bytes)) {
		srv_reply_error(r, 429, "limit", "the daemon's disk budget for snapshots (--max-disk) "
				"has no room for this sandbox's memory");
		srv_template_put(s, t);
		goto out;
	}
	t->instrument = x->instrument;
	/* Why listed first (as building): the name is taken before anything is
	 * written, so two snapshots to one name cannot mix their states. */
	t->owned = true;
	t->status = SRV_T_BUILDING;
	if ((ret = srv_template_add(s, t))) {
		t->owned = false;
		srv_template_refused(r, ret, t->name);
		srv_template_put(s, t);
		goto out;
	}
	ret = snapbox_snapshot(x->sb, t->snapshot, &so, NULL);
	if (!ret)
		ret = srv_template_open(s, t);
	if (ret) {
		srv_reply_errno(r, ret, "snapshot");
		srv_template_fail_unlist(s, t);
	} else {
		pthread_mutex_lock(&s->lock);
		t->status = SRV_T_READY;
		pthread_mutex_unlock(&s->lock);
		srv_reply_json(r, 201, srv_template_json(s, t, false));
	}
	srv_template_put(s, t);
out:
	free(dir);
	json_object_put(b);
}

/*
 * The routes that talk to the guest. Requests share the sandbox; a snapshot
 * takes it alone. Neither waits for the other: the loser gets 409 at once
 * (a snapshot during an exec would otherwise fail with -EBUSY, a 500, or
 * two snapshots publish a torn state).
 */
static void route_guest(struct srv *s, struct srv_sandbox *x, const struct srv_req *req,
			const char *slash, struct srv_reply *r, const char **route)
{
	bool snap = !strcmp(slash, "/snapshot");
	bool files = !strcmp(slash, "/files");

	if (!files && strcmp(req->method, "POST")) {
		srv_reply_error(r, 405, "method_not_allowed", "use POST");
		return;
	}
	if (!files && !snap && strcmp(slash, "/exec") && strcmp(slash, "/ping") && strcmp(slash, "/request")) {
		srv_reply_error(r, 404, "not_found", "no route %s", req->path);
		return;
	}
	*route = slash + 1;
	if (!strcmp(slash, "/request") && (!s->allow_raw || !x->instrument)) {
		srv_reply_error(r, 403, "forbidden", "raw agent requests are off%s",
				s->allow_raw ? ": this sandbox's template is not a test instrument" :
				" (the operator enables them with --allow-raw-requests, for instrument templates)");
		return;
	}
	if (snap ? pthread_rwlock_trywrlock(&x->busy) : pthread_rwlock_tryrdlock(&x->busy)) {
		srv_reply_error(r, 409, "conflict", "sandbox %s is busy: %s", x->id,
				snap ? "requests are running on it" : "it is being snapshotted");
		return;
	}
	if (files)
		route_files(s, x, req, r);
	else if (snap)
		route_snapshot(s, x, req, r);
	else if (!strcmp(slash, "/exec"))
		route_exec(s, x, req, r);
	else if (!strcmp(slash, "/ping"))
		route_ping(s, x, req, r);
	else
		route_request(s, x, req, r);
	pthread_rwlock_unlock(&x->busy);
}

void srv_route_sandbox(struct srv *s, const struct srv_req *req, const char *rest,
		       struct srv_reply *r, const char **route)
{
	const char *m = req->method, *slash = strchr(rest, '/');
	char id[64];
	struct srv_sandbox *x;

	if (!*rest) {
		if (!strcmp(m, "POST"))
			route_create(s, req, r);
		else if (!strcmp(m, "GET")) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "sandboxes", srv_sandboxes_json(s, req->tenant));
			srv_reply_json(r, 200, o);
		} else
			srv_reply_error(r, 405, "method_not_allowed", "use GET or POST");
		return;
	}
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	x = srv_sandbox_get(s, id, req->tenant);
	if (!x) {
		srv_reply_error(r, 404, "not_found", "no sandbox %s", id);
		return;
	}
	if (!slash) {
		if (!strcmp(m, "GET"))
			srv_reply_json(r, 200, srv_sandbox_json(x));
		else if (!strcmp(m, "DELETE")) {
			r->status = srv_sandbox_remove(s, x) ? 404 : 204;
			if (r->status == 404)
				srv_reply_error(r, 404, "not_found", "no sandbox %s", id);
		} else
			srv_reply_error(r, 405, "method_not_allowed", "use GET or DELETE");
	} else {
		route_guest(s, x, req, slash, r, route);
	}
	srv_sandbox_put(s, x);
}

void srv_route_run(struct srv *s, const struct srv_req *req, struct srv_reply *r)
{
	struct json_object *b = srv_body_json(req, r), *v, *o = NULL, *t;
	struct snapbox_restore_profile p;
	struct srv_template *tp;
	struct snapbox *sb;
	struct srv_exec e;
	uint64_t t0 = srv_mono_ns(), t1, t2, t3;
	bool ping = false;
	int err = 0;

	memset(&e, 0, sizeof(e));
	if (!b)
		return;
	if (json_object_object_get_ex(b, "ping", &v))
		ping = json_object_get_boolean(v);
	/* Parse first: a bad request costs no restore. */
	if (!ping && !srv_exec_parse(b, &e, r))
		goto out;
	tp = sandbox_restore(s, req->tenant, b, &sb, &p, r);
	if (!tp)
		goto out;
	t1 = srv_mono_ns();
	if (ping) {
		err = snapbox_ping(sb, srv_body_timeout(b, 5000));
		if (err)
			srv_reply_errno(r, err, "ping");
		else {
			o = json_object_new_object();
			json_object_object_add(o, "ping_ns", json_object_new_int64((int64_t)(srv_mono_ns() - t1)));
		}
	} else {
		o = srv_exec_run(sb, &e, r, &err);
	}
	t2 = srv_mono_ns();
	srv_bury(s, sb, req->tenant, tp->mem_bytes);   /* destroyed once this reply is sent */
	t3 = srv_mono_ns();
	if (o) {
		json_object_object_add(o, "restore_profile", srv_profile_json(&p));
		if (!json_object_object_get_ex(o, "timings", &t)) {
			t = json_object_new_object();
			json_object_object_add(o, "timings", t);
		}
		json_object_object_add(t, "restore_ns", json_object_new_int64((int64_t)(t1 - t0)));
		json_object_object_add(t, "destroy_ns", json_object_new_int64((int64_t)(t3 - t2)));
		json_object_object_add(t, "total_ns", json_object_new_int64((int64_t)(t3 - t0)));
		srv_reply_json(r, 200, o);
		srv_metrics_run(t3 - t0);
	}
	srv_template_put(s, tp);
out:
	srv_exec_fini(&e);
	json_object_put(b);
}
