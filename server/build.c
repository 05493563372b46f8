/* build.c - snapboxd's template builds: cold boot, then the library's snapshot with files and pre-warm commands, then the pool. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/srv.h"

#define BUILD_MAX_FILES       64
#define BUILD_MAX_PREWARM     32
#define BUILD_MAX_CMD         16384
#define BUILD_MAX_TIMEOUT_MS  3600000   /* a build step's deadline, at most an hour */
#define BUILD_DEFAULT_MIB     256       /* the library's default guest memory */

struct srv_build {
	struct srv *s;
	struct srv_template *t;
	struct json_object *spec;    /* the request's "build" object (a reference) */
	struct snapbox_file *files;  /* its files, decoded (bufs own the bytes) */
	uint8_t **bufs;
	size_t nfiles;
	const char **prewarm;        /* its shell commands, NULL-terminated */
	int kernel_fd, initrd_fd;    /* the assets, opened beneath --asset-dir (-1: none) */
	uint64_t mem;                /* its guest memory, reserved as a sandbox's is */
	struct srv_tenant *tn;       /* who asked for it */
	char *kernel, *initrd;       /* their /proc/self/fd paths, for the library */
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

/* The build's files and shell commands as snapshot options; false (why set) when malformed. */
static bool build_opts(struct json_object *spec, struct srv_build *b, char *why, size_t wlen)
{
	struct json_object *files = NULL, *cmds = NULL;
	size_t nf, nc;

	json_object_object_get_ex(spec, "files", &files);
	json_object_object_get_ex(spec, "prewarm", &cmds);
	nf = files ? json_object_array_length(files) : 0;
	nc = cmds ? json_object_array_length(cmds) : 0;
	b->files = calloc(nf ? nf : 1, sizeof(*b->files));
	b->bufs = calloc(nf ? nf : 1, sizeof(*b->bufs));
	b->prewarm = calloc(nc + 1, sizeof(*b->prewarm));
	if (!b->files || !b->bufs || !b->prewarm) {
		snprintf(why, wlen, "out of memory");
		return false;
	}
	for (size_t i = 0; i < nf; i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		const char *path = build_str(f, "path"), *data = build_str(f, "data");
		size_t len;

		if (!path || path[0] != '/' || !data || srv_b64_decode(data, &b->bufs[i], &len)) {
			snprintf(why, wlen, "files[%zu]: needs an absolute path and base64 data", i);
			return false;
		}
		b->files[i] = (struct snapbox_file){ .path = path, .data = b->bufs[i], .len = len,
						     .mode = (uint32_t)build_int(f, "mode", 0644) };
		b->nfiles++;
	}
	for (size_t i = 0; i < nc; i++)
		b->prewarm[i] = json_object_get_string(json_object_array_get_idx(cmds, i));
	return true;
}

static void build_free(struct srv_build *b)
{
	if (b->kernel_fd >= 0)
		close(b->kernel_fd);
	if (b->initrd_fd >= 0)
		close(b->initrd_fd);
	free(b->kernel);
	free(b->initrd);
	for (size_t i = 0; b->bufs && i < b->nfiles; i++)
		free(b->bufs[i]);
	free(b->bufs);
	free(b->files);
	free(b->prewarm);
	json_object_put(b->spec);
	free(b);
}

static void *build_thread(void *arg)
{
	struct srv_build *b = arg;
	struct srv *s = b->s;
	struct srv_template *t = b->t;
	struct json_object *spec = b->spec;
	struct snapbox_config cfg = {
		.kernel = b->kernel, .initrd = b->initrd,
		.cmdline = build_str(spec, "cmdline"), .console_fd = -1, .prepare_snapshot = true,
		.mem_bytes = (uint64_t)build_int(spec, "mem_mib", 0) << 20,
		.boot_timeout_ms = (unsigned)build_int(spec, "boot_timeout_ms", 0),
	};
	struct snapbox_snapshot_opts so = {
		.prewarm_timeout_ms = (unsigned)build_int(spec, "prewarm_timeout_ms", 0),
	};
	struct snapbox *sb = NULL;
	char why[512] = "";
	int ret = -EINVAL;

	if (build_opts(spec, b, why, sizeof(why))) {
		so.files = b->files;
		so.nfiles = b->nfiles;
		so.prewarm = b->prewarm;
		ret = snapbox_boot(&cfg, &sb, NULL, NULL);
		if (ret)
			snprintf(why, sizeof(why), "boot: %s", strerror(-ret));
	}
	if (!ret) {
		/* Files, then pre-warm commands, then the snapshot (the library's order). */
		ret = snapbox_snapshot(sb, t->snapshot, &so, NULL);
		if (ret)
			snprintf(why, sizeof(why), "%s: %s",
				 ret == -ECANCELED ? "a pre-warm command failed" : "pre-warm or snapshot",
				 strerror(-ret));
	}
	snapbox_destroy(sb);
	if (!ret) {
		ret = srv_template_open(s, t);
		if (ret)
			snprintf(why, sizeof(why), "opening the snapshot: %s", strerror(-ret));
	}
	srv_sandbox_unreserve(s, b->tn, b->mem);
	pthread_mutex_lock(&s->lock);
	t->status = ret ? SRV_T_FAILED : SRV_T_READY;
	if (ret)
		t->error = strdup(why);
	s->builds--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	srv_log("template %s: build %s%s", t->name, ret ? "failed: " : "done", ret ? why : "");
	srv_template_put(s, t);
	build_free(b);
	return NULL;
}

/*
 * The asset key names (kernel, initrd) beneath the operator's --asset-dir,
 * opened now: a file name, never a path, a link, a FIFO or a device. The
 * library then reads the very file opened here, through its fd's path.
 * false after a reply.
 */
static bool build_asset(struct srv *s, struct json_object *spec, const char *key, int *fd,
			char **path, struct srv_reply *r)
{
	const char *name = build_str(spec, key);

	if (!name)
		return true;
	if (s->asset_fd < 0) {
		srv_reply_error(r, 403, "forbidden", "this daemon builds no templates (its operator gives "
				"--asset-dir for kernels and initrds)");
		return false;
	}
	if (!srv_name_valid(name)) {
		srv_reply_error(r, 400, "bad_request", "build.%s is a file name in the operator's asset "
				"directory, never a path", key);
		return false;
	}
	*fd = srv_open_beneath(s->asset_fd, name, false);
	if (*fd == -ENOENT || *fd == -EACCES || *fd == -EINVAL) {
		srv_reply_error(r, *fd == -ENOENT ? 404 : 403, *fd == -ENOENT ? "not_found" : "forbidden",
				"build.%s: %s %s", key, name, *fd == -ENOENT ? "is not in the asset directory" :
				"is not a regular file of the asset directory (a link, FIFO or device)");
		return false;
	}
	if (*fd < 0) {
		srv_reply_errno(r, *fd, "opening the asset");
		return false;
	}
	if (!(*path = srv_fd_path(*fd))) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return false;
	}
	return true;
}

/* key absent, or an integer in [lo, hi]; false after a 400. */
static bool build_range(struct json_object *spec, const char *key, int64_t lo, int64_t hi,
			struct srv_reply *r)
{
	struct json_object *v;

	if (!json_object_object_get_ex(spec, key, &v))
		return true;
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= lo &&
	    json_object_get_int64(v) <= hi)
		return true;
	srv_reply_error(r, 400, "bad_request", "build.%s must be an integer in [%lld, %lld]", key,
			(long long)lo, (long long)hi);
	return false;
}

/* Shape checks before anything starts, so a bad request is a 400, not a failed build. */
static bool build_spec_ok(struct json_object *spec, struct srv_reply *r)
{
	struct json_object *v;

	if (!json_object_is_type(spec, json_type_object) || !build_str(spec, "kernel")) {
		srv_reply_error(r, 400, "bad_request", "build needs a \"kernel\" (an asset's name)");
		return false;
	}
	if (json_object_object_get_ex(spec, "files", &v) && (!json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) > BUILD_MAX_FILES)) {
		srv_reply_error(r, 400, "bad_request", "build.files must be an array of at most %d", BUILD_MAX_FILES);
		return false;
	}
	if (json_object_object_get_ex(spec, "prewarm", &v)) {
		if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > BUILD_MAX_PREWARM) {
			srv_reply_error(r, 400, "bad_request", "build.prewarm must be an array of at most %d "
					"shell commands", BUILD_MAX_PREWARM);
			return false;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *c = json_object_array_get_idx(v, i);

			if (!json_object_is_type(c, json_type_string) ||
			    json_object_get_string_len(c) > BUILD_MAX_CMD) {
				srv_reply_error(r, 400, "bad_request", "build.prewarm[%zu] must be a string of at "
						"most %d bytes", i, BUILD_MAX_CMD);
				return false;
			}
		}
	}
	/* Numbers in range, or absent: -1 ms must not become 49 days. */
	return build_range(spec, "boot_timeout_ms", 1, BUILD_MAX_TIMEOUT_MS, r) &&
	       build_range(spec, "prewarm_timeout_ms", 1, BUILD_MAX_TIMEOUT_MS, r) &&
	       build_range(spec, "mem_mib", 16, 3072, r);
}

int srv_build_start(struct srv *s, struct srv_template *t, struct srv_tenant *tn,
		    struct json_object *spec, struct srv_reply *r)
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
	b->tn = tn;
	b->spec = json_object_get(spec);
	b->kernel_fd = b->initrd_fd = -1;
	if (!build_asset(s, spec, "kernel", &b->kernel_fd, &b->kernel, r) ||
	    !build_asset(s, spec, "initrd", &b->initrd_fd, &b->initrd, r)) {
		build_free(b);
		return -EINVAL;
	}
	free(t->kernel_shown);
	t->kernel_shown = strdup(build_str(spec, "kernel"));
	/* A build is a VM: it counts as a sandbox and its memory against the limits. */
	b->mem = (uint64_t)build_int(spec, "mem_mib", BUILD_DEFAULT_MIB) << 20;
	ret = srv_disk_reserve(s, t, b->mem);
	if (ret) {
		srv_reply_error(r, 429, "limit", "the daemon's disk budget for snapshots (--max-disk) is spent");
		build_free(b);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	ret = s->builds >= s->lim.max_builds ? -EAGAIN : 0;
	if (!ret)
		s->builds++;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		srv_metrics_limit("max-builds");
	if (!ret && (ret = srv_sandbox_reserve(s, b->tn, b->mem))) {
		pthread_mutex_lock(&s->lock);
		s->builds--;
		pthread_mutex_unlock(&s->lock);
	}
	if (ret) {
		srv_reply_error(r, 429, "limit", "%s", s->builds >= s->lim.max_builds ?
				"the daemon's limit of concurrent builds (--max-builds) is reached" :
				"the daemon's sandbox or guest-memory limit is reached");
		build_free(b);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	t->refs++;
	pthread_mutex_unlock(&s->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = -pthread_create(&th, &attr, build_thread, b);
	pthread_attr_destroy(&attr);
	if (ret) {
		srv_sandbox_unreserve(s, b->tn, b->mem);
		pthread_mutex_lock(&s->lock);
		t->refs--;
		s->builds--;
		pthread_mutex_unlock(&s->lock);
		build_free(b);
		srv_reply_errno(r, ret, "starting the build");
	}
	return ret;
}
