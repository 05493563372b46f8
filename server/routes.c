/* routes.c - snapboxd's router and its health, metrics and template routes (docs/api.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

#define SRV_VERSION "1"

static void route_health(struct srv *s, struct srv_reply *r)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "version", json_object_new_string(SRV_VERSION));
	json_object_object_add(o, "kvm_backend", json_object_new_string(snapbox_kvm_backend()));
	json_object_object_add(o, "emulated", json_object_new_boolean(snapbox_host_emulated()));
	pthread_mutex_lock(&s->lock);
	json_object_object_add(o, "sandboxes", json_object_new_int((int)srv_sandboxes_live(s)));
	json_object_object_add(o, "reserved", json_object_new_int((int)s->nsandboxes));
	json_object_object_add(o, "templates", json_object_new_int((int)s->ntemplates));
	pthread_mutex_unlock(&s->lock);
	srv_reply_json(r, 200, o);
}

static void route_metrics(struct srv *s, const struct srv_req *req, struct srv_reply *r)
{
	size_t len = 0;
	char *text;

	/* Every tenant's names and counts: the operator's only (the socket, or --metrics-tenant). */
	if (req->tenant->token && strcmp(req->tenant->name, s->metrics_tenant)) {
		srv_reply_error(r, 403, "forbidden", "metrics are the operator's (--metrics-tenant)");
		return;
	}
	text = srv_metrics_text_of(s, &len);
	if (!text) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return;
	}
	free(r->body);
	r->body = text;
	r->len = len;
	r->status = 200;
	r->ctype = "text/plain; version=0.0.4";
}

/* "pool": {"size", "mode"} into t; false after a 400 reply. */
static bool route_pool_spec(struct json_object *body, struct srv_template *t, struct srv_reply *r)
{
	struct json_object *p, *v;

	if (!json_object_object_get_ex(body, "pool", &p))
		return true;
	if (!json_object_is_type(p, json_type_object)) {
		srv_reply_error(r, 400, "bad_request", "pool must be an object");
		return false;
	}
	if (json_object_object_get_ex(p, "size", &v)) {
		int64_t n = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || n < 0 || n > 64) {
			srv_reply_error(r, 400, "bad_request", "pool.size must be an integer in [0, 64]");
			return false;
		}
		t->pool_size = (unsigned)n;
	}
	if (json_object_object_get_ex(p, "mode", &v)) {
		const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";

		if (!strcmp(m, "cow"))
			t->mode = SNAPBOX_RESTORE_COW;
		else if (!strcmp(m, "eager"))
			t->mode = SNAPBOX_RESTORE_EAGER;
		else if (!strcmp(m, "lazy"))
			t->mode = SNAPBOX_RESTORE_LAZY;
		else {
			srv_reply_error(r, 400, "bad_request", "pool.mode must be cow, eager or lazy");
			return false;
		}
	}
	return true;
}

/* Register an opened template t (takes the caller's reference) and reply with status. */
void srv_template_publish(struct srv *s, struct srv_template *t, int status, struct srv_reply *r)
{
	int ret = srv_template_add(s, t);

	if (ret)
		srv_template_refused(r, ret, t->name);
	else
		srv_reply_json(r, status, srv_template_json(s, t, false));
	srv_template_put(s, t);
}

void srv_template_refused(struct srv_reply *r, int err, const char *name)
{
	if (err == -EEXIST)
		srv_reply_error(r, 409, "conflict", "template %s already exists", name);
	else if (err == -EAGAIN)
		srv_reply_error(r, 429, "limit", "the daemon's template limit (--max-templates) or this "
				"tenant's share of it is reached");
	else
		srv_reply_errno(r, err, "registering the template");
}

/* A new template named by body's "name" (pool spec applied) at dir; NULL after a reply. */
struct srv_template *srv_template_from(struct srv *s, struct json_object *body, const char *name,
				       const char *dir, struct srv_tenant *tn, struct srv_reply *r)
{
	struct srv_template *t, *old;

	if (!name || !srv_name_valid(name)) {
		srv_reply_error(r, 400, "bad_request",
				"name must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
		return NULL;
	}
	old = srv_template_get(s, name, tn);
	if (old) {
		srv_template_put(s, old);
		srv_reply_error(r, 409, "conflict", "template %s already exists", name);
		return NULL;
	}
	t = srv_template_new(name, dir);
	if (!t) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return NULL;
	}
	t->owner = tn;
	if (!route_pool_spec(body, t, r)) {
		srv_template_put(s, t);
		return NULL;
	}
	return t;
}

/*
 * A client's snapshot: a name beneath the operator's --snapshot-root, opened
 * there (no link, no escape) and held open; t->snapshot becomes its fd path.
 * false after a reply.
 */
static bool route_snapshot_beneath(struct srv *s, struct srv_template *t, const char *rel,
				   struct srv_reply *r)
{
	int fd;

	if (s->snaproot_fd < 0) {
		srv_reply_error(r, 403, "forbidden", "this daemon takes no snapshot directories from "
				"clients (its operator gives --snapshot-root)");
		return false;
	}
	fd = srv_open_beneath(s->snaproot_fd, rel, true);
	if (fd < 0) {
		if (fd == -EACCES)
			srv_reply_error(r, 403, "forbidden", "snapshot %s leaves the snapshot root or "
					"goes through a symlink", rel);
		else if (fd == -ENOENT)
			srv_reply_error(r, 404, "not_found", "no snapshot %s beneath the snapshot root", rel);
		else if (fd == -EINVAL)
			srv_reply_error(r, 400, "bad_request", "snapshot must name a directory beneath the "
					"snapshot root (relative, at most 1 KiB)");
		else
			srv_reply_errno(r, fd, "opening the snapshot");
		return false;
	}
	free(t->snapshot);
	t->snapshot = srv_fd_path(fd);
	t->shown = strdup(rel);
	t->snap_fd = fd;
	if (!t->snapshot || !t->shown) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return false;
	}
	return true;
}

static void route_template_create(struct srv *s, const struct srv_req *req, struct srv_reply *r)
{
	struct json_object *body = srv_body_json(req, r), *v, *build = NULL;
	const char *name = NULL, *snap = NULL;
	struct srv_template *t;
	char *dir = NULL;
	int ret;

	if (!body)
		return;
	if (json_object_object_get_ex(body, "name", &v) && json_object_is_type(v, json_type_string))
		name = json_object_get_string(v);
	if (json_object_object_get_ex(body, "snapshot", &v)) {
		if (!json_object_is_type(v, json_type_string) || json_object_get_string(v)[0] == '/' ||
		    !json_object_get_string(v)[0]) {
			srv_reply_error(r, 400, "bad_request", "snapshot is a directory's name beneath the "
					"operator's snapshot root, never a host path");
			goto out;
		}
		snap = json_object_get_string(v);
	}
	if (json_object_object_get_ex(body, "instrument", &v) && !json_object_is_type(v, json_type_boolean)) {
		srv_reply_error(r, 400, "bad_request", "instrument must be true or false");
		goto out;
	}
	/* Instruments are the operator's: its socket, not a tenant's token. */
	if (json_object_object_get_ex(body, "instrument", &v) && json_object_get_boolean(v) &&
	    req->tenant->token) {
		srv_reply_error(r, 403, "forbidden", "only the operator (on the Unix socket) marks "
				"a template as a test instrument");
		goto out;
	}
	json_object_object_get_ex(body, "build", &build);
	if (!snap == !build) {
		srv_reply_error(r, 400, "bad_request", "give exactly one of snapshot and build");
		goto out;
	}
	if (build && name && srv_name_valid(name) && !(dir = srv_template_dir(s, name))) {
		srv_reply_error(r, 500, "internal", "out of memory");
		goto out;
	}
	t = srv_template_from(s, body, name, dir ? dir : "", req->tenant, r);
	if (!t)
		goto out;
	t->instrument = json_object_object_get_ex(body, "instrument", &v) && json_object_get_boolean(v);
	if (snap) {
		ret = route_snapshot_beneath(s, t, snap, r) ? srv_template_open(s, t) : 0;
		if (ret)
			srv_reply_errno(r, ret, "opening the snapshot");
		if (ret || r->status) {
			srv_template_put(s, t);
			goto out;
		}
		srv_template_publish(s, t, 201, r);
		goto out;
	}
	/* Listed (so the name is taken) before anything is written. */
	t->owned = true;
	t->status = SRV_T_BUILDING;
	ret = srv_template_add(s, t);
	if (ret) {
		t->owned = false;
		srv_template_refused(r, ret, t->name);
	} else if (!srv_build_start(s, t, req->tenant, build, r)) {
		srv_reply_json(r, 202, srv_template_json(s, t, false));
	} else {
		srv_template_fail_unlist(s, t);
	}
	srv_template_put(s, t);
out:
	free(dir);
	json_object_put(body);
}

static void route_templates(struct srv *s, const struct srv_req *req, const char *rest,
			    struct srv_reply *r)
{
	struct srv_template *t;
	int ret;

	if (!*rest) {
		if (!strcmp(req->method, "GET")) {
			struct json_object *o = json_object_new_object();

			struct json_object *l = srv_templates_json(s, req->tenant);

			if (!l) {
				json_object_put(o);
				srv_reply_error(r, 500, "internal", "out of memory");
				return;
			}
			json_object_object_add(o, "templates", l);
			srv_reply_json(r, 200, o);
		} else if (!strcmp(req->method, "POST")) {
			route_template_create(s, req, r);
		} else {
			srv_reply_error(r, 405, "method_not_allowed", "use GET or POST");
		}
		return;
	}
	if (!strcmp(req->method, "GET")) {
		t = srv_template_get(s, rest, req->tenant);
		if (!t) {
			srv_reply_error(r, 404, "not_found", "no template %s", rest);
			return;
		}
		srv_reply_json(r, 200, srv_template_json(s, t, true));
		srv_template_put(s, t);
	} else if (!strcmp(req->method, "DELETE")) {
		ret = srv_template_remove(s, rest, req->tenant);
		if (ret == -ENOENT)
			srv_reply_error(r, 404, "not_found", "no template %s", rest);
		else if (ret == -EBUSY)
			srv_reply_error(r, 409, "conflict", "template %s is still building", rest);
		else if (ret == -EPERM)
			srv_reply_error(r, 403, "forbidden", "template %s is the operator's", rest);
		else
			r->status = 204;
	} else {
		srv_reply_error(r, 405, "method_not_allowed", "use GET or DELETE");
	}
}

void srv_route(struct srv *s, const struct srv_req *req, struct srv_reply *r, const char **route)
{
	const char *p = req->path;

	*route = "other";
	if (!strcmp(p, "/v1/health")) {
		*route = "health";
		if (strcmp(req->method, "GET"))
			srv_reply_error(r, 405, "method_not_allowed", "use GET");
		else
			route_health(s, r);
	} else if (!strcmp(p, "/v1/metrics")) {
		*route = "metrics";
		if (strcmp(req->method, "GET"))
			srv_reply_error(r, 405, "method_not_allowed", "use GET");
		else
			route_metrics(s, req, r);
	} else if (!strcmp(p, "/v1/templates") || !strncmp(p, "/v1/templates/", 14)) {
		*route = "templates";
		route_templates(s, req, p[13] ? p + 14 : "", r);
	} else if (!strcmp(p, "/v1/sandboxes") || !strncmp(p, "/v1/sandboxes/", 14)) {
		*route = "sandboxes";
		srv_route_sandbox(s, req, p[13] ? p + 14 : "", r, route);
	} else if (!strcmp(p, "/v1/run")) {
		*route = "run";
		if (strcmp(req->method, "POST"))
			srv_reply_error(r, 405, "method_not_allowed", "use POST");
		else
			srv_route_run(s, req, r);
	} else {
		srv_reply_error(r, 404, "not_found", "no route %s", p);
	}
}
