/* build.c - snapboxd's template builds: cold boot, files and pre-warm commands through the agent, snapshot, pool. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

#define BUILD_MAX_ARGV 256

struct srv_build {
	struct srv *s;
	struct srv_template *t;
	struct json_object *spec;    /* the request's "build" object (a reference) */
};

static const char *build_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t build_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

/* Write every {"path","mode","data"} of files into the guest: 0 or -errno (*why set). */
static int build_files(struct snapbox *sb, struct json_object *files, char *why, size_t wlen)
{
	size_t n = files ? json_object_array_length(files) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		const char *path = build_str(f, "path"), *data = build_str(f, "data");
		uint8_t *buf;
		size_t len;
		int ret;

		if (!path || !data || srv_b64_decode(data, &buf, &len)) {
			snprintf(why, wlen, "files[%zu]: needs a path and base64 data", i);
			return -EINVAL;
		}
		ret = snapbox_write_file(sb, path, (uint32_t)build_int(f, "mode", 0644), buf, len, 30000);
		free(buf);
		if (ret) {
			snprintf(why, wlen, "writing %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Run every pre-warm argv; each must exit 0. */
static int build_prewarm(struct snapbox *sb, struct json_object *cmds, char *why, size_t wlen)
{
	size_t n = cmds ? json_object_array_length(cmds) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(cmds, i);
		const char *argv[BUILD_MAX_ARGV + 1];
		struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = 300000 };
		struct snapbox_exec_result r;
		size_t k, na = json_object_array_length(c);
		int ret;

		if (na == 0 || na > BUILD_MAX_ARGV) {
			snprintf(why, wlen, "prewarm[%zu]: needs 1 to %d strings", i, BUILD_MAX_ARGV);
			return -EINVAL;
		}
		for (k = 0; k < na; k++)
			argv[k] = json_object_get_string(json_object_array_get_idx(c, k));
		argv[k] = NULL;
		ret = snapbox_exec(sb, &o, &r);
		if (ret) {
			snprintf(why, wlen, "prewarm[%zu] (%s): %s", i, argv[0], strerror(-ret));
			return ret;
		}
		ret = r.signaled || r.exit_code ? -ECANCELED : 0;
		if (ret)
			snprintf(why, wlen, "prewarm[%zu] (%s) %s %d: %.200s", i, argv[0],
				 r.signaled ? "killed by signal" : "exited", r.signaled ? r.signal : r.exit_code,
				 r.err_len ? (const char *)r.err : "");
		snapbox_exec_result_free(&r);
		if (ret)
			return ret;
	}
	return 0;
}

static void *build_thread(void *arg)
{
	struct srv_build *b = arg;
	struct srv *s = b->s;
	struct srv_template *t = b->t;
	struct json_object *spec = b->spec, *files = NULL, *cmds = NULL;
	struct snapbox_config cfg = {
		.kernel = build_str(spec, "kernel"), .initrd = build_str(spec, "initrd"),
		.cmdline = build_str(spec, "cmdline"), .console_fd = -1, .prepare_snapshot = true,
		.mem_bytes = (uint64_t)build_int(spec, "mem_mib", 0) << 20,
		.boot_timeout_ms = (unsigned)build_int(spec, "boot_timeout_ms", 0),
	};
	struct snapbox_snapshot_opts so = { 0 };
	struct snapbox *sb = NULL;
	char why[512] = "";
	int ret;

	json_object_object_get_ex(spec, "files", &files);
	json_object_object_get_ex(spec, "prewarm", &cmds);
	ret = snapbox_boot(&cfg, &sb, NULL, NULL);
	if (ret)
		snprintf(why, sizeof(why), "boot: %s", strerror(-ret));
	if (!ret)
		ret = build_files(sb, files, why, sizeof(why));
	if (!ret)
		ret = build_prewarm(sb, cmds, why, sizeof(why));
	if (!ret) {
		ret = snapbox_snapshot(sb, t->snapshot, &so, NULL);
		if (ret)
			snprintf(why, sizeof(why), "snapshot: %s", strerror(-ret));
	}
	snapbox_destroy(sb);
	if (!ret) {
		ret = srv_template_open(t);
		if (ret)
			snprintf(why, sizeof(why), "opening the snapshot: %s", strerror(-ret));
	}
	pthread_mutex_lock(&s->lock);
	t->status = ret ? SRV_T_FAILED : SRV_T_READY;
	if (ret)
		t->error = strdup(why);
	s->builds--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	srv_log("template %s: build %s%s%s", t->name, ret ? "failed: " : "done", ret ? why : "", "");
	srv_template_put(s, t);
	json_object_put(spec);
	free(b);
	return NULL;
}

/* Shape checks before anything starts, so a bad request is a 400, not a failed build. */
static bool build_spec_ok(struct json_object *spec, struct srv_reply *r)
{
	struct json_object *v;

	if (!json_object_is_type(spec, json_type_object) || !build_str(spec, "kernel")) {
		srv_reply_error(r, 400, "bad_request", "build needs a \"kernel\" path");
		return false;
	}
	if (json_object_object_get_ex(spec, "files", &v) && !json_object_is_type(v, json_type_array)) {
		srv_reply_error(r, 400, "bad_request", "build.files must be an array");
		return false;
	}
	if (json_object_object_get_ex(spec, "prewarm", &v)) {
		if (!json_object_is_type(v, json_type_array)) {
			srv_reply_error(r, 400, "bad_request", "build.prewarm must be an array of argv arrays");
			return false;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *c = json_object_array_get_idx(v, i);

			if (!json_object_is_type(c, json_type_array)) {
				srv_reply_error(r, 400, "bad_request", "build.prewarm[%zu] must be an argv array", i);
				return false;
			}
			for (size_t k = 0; k < json_object_array_length(c); k++)
				if (!json_object_is_type(json_object_array_get_idx(c, k), json_type_string)) {
					srv_reply_error(r, 400, "bad_request",
							"build.prewarm[%zu] must hold strings", i);
					return false;
				}
		}
	}
	return true;
}

int srv_build_start(struct srv *s, struct srv_template *t, struct json_object *spec,
		    struct srv_reply *r)
{
	struct srv_build *b;
	pthread_attr_t attr;
	pthread_t th;
	int ret;

	if (!build_spec_ok(spec, r))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return -ENOMEM;
	}
	b->s = s;
	b->t = t;
	b->spec = json_object_get(spec);
	pthread_mutex_lock(&s->lock);
	t->refs++;
	s->builds++;
	pthread_mutex_unlock(&s->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = -pthread_create(&th, &attr, build_thread, b);
	pthread_attr_destroy(&attr);
	if (ret) {
		pthread_mutex_lock(&s->lock);
		t->refs--;
		s->builds--;
		pthread_mutex_unlock(&s->lock);
		json_object_put(spec);
		free(b);
		srv_reply_errno(r, ret, "starting the build");
	}
	return ret;
}
