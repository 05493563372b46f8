/* registry.c - snapboxd's registry: its state directory, start and shutdown, and the templates with their pools. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/srv.h"

/*
 * What an earlier run left in templates/: snapshots of templates no daemon
 * lists any more, and an interrupted build's hidden temporaries (snapdir's
 * .NAME.tmp-* and .NAME.old-*). Removed through the directory's fd, never
 * following a link.
 */
static void srv_clean_state(int tdir_fd)
{
	int fd = dup(tdir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		srv_log("removing templates/%s, left by an earlier run", e->d_name);
		srv_rm_at(tdir_fd, e->d_name);
	}
	closedir(d);
}

/*
 * /dev/shm directories of daemons of this user that died without their
 * shutdown (kill -9, a drain that ran out): RAM nobody would free. Only
 * snapboxd-<pid>-* directories of this euid whose pid is gone, through
 * /dev/shm's fd, never following a link.
 */
static void srv_clean_shm(void)
{
	int fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dfd = fd >= 0 ? dup(fd) : -1;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;
	struct stat st;
	int pid;

	while (d && (e = readdir(d))) {
		if (sscanf(e->d_name, "snapboxd-%d-", &pid) != 1 || pid <= 0 ||
		    fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) ||
		    st.st_uid != geteuid() || !(kill(pid, 0) && errno == ESRCH))
			continue;
		srv_log("removing /dev/shm/%s, left by a daemon that is gone", e->d_name);
		srv_rm_at(fd, e->d_name);
	}
	if (d)
		closedir(d);
	else if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
}

static void srv_close_fds(struct srv *s)
{
	int *fds[] = { &s->state_fd, &s->tdir_fd, &s->asset_fd, &s->snaproot_fd, &s->shm_fd };

	/* The daemon's /dev/shm directory goes with it: cow templates are RAM. */
	if (s->shm_dir && s->shm_fd >= 0) {
		const char *base = strrchr(s->shm_dir, '/') + 1;
		int parent = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (parent >= 0) {
			srv_rm_at(parent, base);
			close(parent);
		}
	}
	free(s->shm_dir);
	s->shm_dir = NULL;

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int srv_init(struct srv *s, const char *state_dir, const struct srv_limits *lim)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->state_fd = s->tdir_fd = s->asset_fd = s->snaproot_fd = s->shm_fd = -1;
	if (strlen(state_dir) + sizeof("/templates/") + SRV_NAME_MAX + 32 >= PATH_MAX) {
		srv_log("the state directory %s is too long", state_dir);
		return -ENAMETOOLONG;
	}
	s->lim = *lim;
	s->state_dir = strdup(state_dir);
	if (!s->state_dir)
		return -ENOMEM;
	/* Why both checks before anything is removed: a planted directory or link
	 * must never make this daemon delete what it points at. */
	s->state_fd = srv_private_dir(state_dir, "state directory", true);
	ret = s->state_fd < 0 ? s->state_fd : 0;
	/* Through the checked directory's fd: no path is resolved twice. */
	if (!ret)
		ret = s->tdir_fd = srv_private_dirat(s->state_fd, "templates", "templates directory", true);
	if (ret < 0) {
		srv_close_fds(s);
		free(s->state_dir);
		return ret;
	}
	srv_clean_state(s->tdir_fd);
	srv_clean_shm();
	/* Cow templates decode into a directory only this daemon knows (mkdtemp,
	 * 0700), one subdirectory per template, removed with it. */
	if (asprintf(&s->shm_dir, "/dev/shm/snapboxd-%d-XXXXXX", (int)getpid()) < 0)
		s->shm_dir = NULL;
	if (!s->shm_dir || !mkdtemp(s->shm_dir) ||
	    (s->shm_fd = open(s->shm_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		ret = -errno;
		srv_log("cannot make a private directory in /dev/shm: %s", strerror(errno));
		srv_close_fds(s);
		free(s->state_dir);
		return ret ? ret : -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	ret = -pthread_create(&s->reaper, NULL, srv_reaper, s);
	if (ret) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		srv_close_fds(s);
		free(s->state_dir);
		return ret;
	}
	s->have_reaper = true;
	return 0;
}

int srv_set_roots(struct srv *s, const char *asset_dir, const char *snapshot_root)
{
	if (asset_dir && (s->asset_fd = srv_root_open(asset_dir, "--asset-dir")) < 0)
		return s->asset_fd;
	if (snapshot_root && (s->snaproot_fd = srv_root_open(snapshot_root, "--snapshot-root")) < 0)
		return s->snaproot_fd;
	return 0;
}

char *srv_template_dir(struct srv *s, const char *name)
{
	uint64_t r = 0;
	char *p;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = srv_mono_ns();
	/* Through the checked directory's fd, never its path again. */
	return asprintf(&p, "/proc/self/fd/%d/%s.%016llx", s->tdir_fd, name, (unsigned long long)r) < 0 ?
	       NULL : p;
}

/* Give back what was reserved for t's snapshot; the caller holds s->lock. */
static void srv_disk_release_locked(struct srv *s, struct srv_template *t)
{
	s->disk_bytes -= t->disk_reserved;
	t->disk_reserved = 0;
}

static void srv_template_free(struct srv *s, struct srv_template *t)
{
	snapbox_pool_destroy(t->pool);
	pthread_mutex_lock(&s->lock);
	if (t->charged) {
		s->guest_mem -= t->pool_mem;
		s->shm_bytes -= t->shm;
		s->disk_bytes -= t->disk;
	}
	srv_disk_release_locked(s, t);
	pthread_mutex_unlock(&s->lock);
	/* Only its own directory, named in templates/, through that directory's fd. */
	if (t->owned && t->snapshot && s->tdir_fd >= 0 && strrchr(t->snapshot, '/'))
		srv_rm_at(s->tdir_fd, strrchr(t->snapshot, '/') + 1);
	if (t->snap_fd >= 0)
		close(t->snap_fd);
	/* Its decoded copy in /dev/shm goes with it (live clones keep their mappings). */
	if (t->cache_dir && s->shm_fd >= 0)
		srv_rm_at(s->shm_fd, strrchr(t->cache_dir, '/') + 1);
	free(t->cache_dir);
	free(t->snapshot);
	free(t->shown);
	free(t->kernel_shown);
	free(t->error);
	free(t);
}

struct srv_template *srv_template_new(const char *name, const char *snapshot)
{
	struct srv_template *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->snap_fd = -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->snapshot = strdup(snapshot);
	if (!t->snapshot) {
		free(t);
		return NULL;
	}
	t->refs = 1;
	t->pool_size = 2;
	t->mode = SNAPBOX_RESTORE_COW;
	t->created_ns = srv_real_ns();
	return t;
}

/* The snapshot's inspect --json object (verify: every chunk decoded too), or NULL. */
static struct json_object *srv_inspect(const char *dir, bool verify, int *err)
{
	struct json_object *o = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	*err = -ENOMEM;
	if (!f)
		return NULL;
	*err = snapbox_inspect(dir, verify, true, f);
	fclose(f);
	if (!*err) {
		o = json_tokener_parse(buf);
		if (!o)
			*err = -EPROTO;
	}
	free(buf);
	return o;
}

int srv_disk_reserve(struct srv *s, struct srv_template *t, uint64_t bytes)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->lim.max_disk && s->disk_bytes + bytes > s->lim.max_disk)
		ret = -EAGAIN;
	else {
		s->disk_bytes += bytes;
		t->disk_reserved += bytes;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret)
		srv_metrics_limit("max-disk");
	return ret;
}


/* Charge t's pool shells, /dev/shm copy and disk bytes: 0, or -EAGAIN (counted) with nothing charged. */
static int srv_template_charge(struct srv *s, struct srv_template *t)
{
	const char *over = NULL;

	t->pool_mem = (uint64_t)t->pool_size * t->mem_bytes;
	t->shm = t->mode == SNAPBOX_RESTORE_COW ? t->mem_bytes : 0;
	t->disk = t->owned ? srv_dir_bytes(t->snapshot) : 0;
	pthread_mutex_lock(&s->lock);
	if (s->guest_mem + t->pool_mem > s->lim.max_guest_mem)
		over = "max-guest-mem";
	else if (s->lim.max_shm && s->shm_bytes + t->shm > s->lim.max_shm)
		over = "max-shm";
	if (!over) {
		s->guest_mem += t->pool_mem;
		s->shm_bytes += t->shm;
		srv_disk_release_locked(s, t);
		s->disk_bytes += t->disk;   /* what it really takes, instead of the reservation */
		t->charged = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (over) {
		srv_metrics_limit(over);
		srv_log("template %s refused: --%s is reached", t->name, over);
	}
	return over ? -EAGAIN : 0;
}

/* A cow template's own directory under the daemon's /dev/shm one: 0 or -errno. */
static int srv_template_cache(struct srv *s, struct srv_template *t)
{
	char *dir = srv_template_dir(s, t->name), *base = dir ? strrchr(dir, '/') + 1 : NULL;

	if (!dir)
		return -ENOMEM;
	if (mkdirat(s->shm_fd, base, 0700) || asprintf(&t->cache_dir, "%s/%s", s->shm_dir, base) < 0) {
		int ret = errno ? -errno : -ENOMEM;

		t->cache_dir = NULL;
		free(dir);
		return ret;
	}
	free(dir);
	return 0;
}

int srv_template_open(struct srv *s, struct srv_template *t)
{
	struct snapbox_pool_opts po = { .size = t->pool_size, .mode = t->mode };
	struct json_object *o, *conf, *mem;
	int ret;

	/* Everything validated (every chunk too) before the template is usable. */
	o = srv_inspect(t->snapshot, true, &ret);
	if (!o)
		return ret;
	if (json_object_object_get_ex(o, "conf", &conf) &&
	    json_object_object_get_ex(conf, "mem_bytes", &mem))
		t->mem_bytes = (uint64_t)json_object_get_int64(mem);
	else if (json_object_object_get_ex(o, "mem_bytes", &mem))
		t->mem_bytes = (uint64_t)json_object_get_int64(mem);
	json_object_put(o);
	ret = srv_template_charge(s, t);
	if (!ret && t->mode == SNAPBOX_RESTORE_COW)
		ret = srv_template_cache(s, t);
	if (ret || !t->pool_size)
		return ret;
	po.cache_dir = t->cache_dir;
	return snapbox_pool_create(t->snapshot, &po, &t->pool);
}

/* x and t cannot share a name: one of them is the operator's (seen by all), or both are one tenant's. */
static bool srv_template_clash(const struct srv_template *x, const struct srv_template *t)
{
	return !strcmp(x->name, t->name) && (!x->owner || !t->owner || x->owner == t->owner);
}

/* t as tn sees it: its own, and the operator's (tn NULL: the daemon sees every one). */
static bool srv_template_visible(const struct srv_template *t, const struct srv_tenant *tn)
{
	return !tn || !t->owner || t->owner == tn;
}

int srv_template_add(struct srv *s, struct srv_template *t)
{
	pthread_mutex_lock(&s->lock);
	for (struct srv_template *x = s->templates; x; x = x->next) {
		if (srv_template_clash(x, t)) {
			pthread_mutex_unlock(&s->lock);
			return -EEXIST;
		}
	}
	if (s->lim.max_templates && s->ntemplates >= s->lim.max_templates) {
		pthread_mutex_unlock(&s->lock);
		srv_metrics_limit("max-templates");
		return -EAGAIN;
	}
	if (t->owner && s->lim.tenant_max_templates) {
		unsigned mine = 0;

		for (struct srv_template *x = s->templates; x; x = x->next)
			mine += x->owner == t->owner;
		if (mine >= s->lim.tenant_max_templates) {
			pthread_mutex_unlock(&s->lock);
			srv_metrics_limit("tenant-max-templates");
			return -EAGAIN;
		}
	}
	t->refs++;
	t->listed = true;
	t->next = s->templates;
	s->templates = t;
	s->ntemplates++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

struct srv_template *srv_template_get(struct srv *s, const char *name, const struct srv_tenant *tn)
{
	struct srv_template *t;

	pthread_mutex_lock(&s->lock);
	for (t = s->templates; t; t = t->next)
		if (!strcmp(t->name, name) && srv_template_visible(t, tn))
			break;
	if (t)
		t->refs++;
	pthread_mutex_unlock(&s->lock);
	return t;
}

void srv_template_put(struct srv *s, struct srv_template *t)
{
	bool last;

	if (!t)
		return;
	pthread_mutex_lock(&s->lock);
	last = --t->refs == 0;
	pthread_mutex_unlock(&s->lock);
	/* Outside the lock: a pool's teardown joins its refill thread. */
	if (last)
		srv_template_free(s, t);
}

int srv_template_remove(struct srv *s, const char *name, const struct srv_tenant *tn)
{
	struct srv_template **pp, *t;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->templates; (t = *pp); pp = &t->next)
		if (!strcmp(t->name, name) && srv_template_visible(t, tn))
			break;
	if (!t) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	if (tn && !t->owner) {
		pthread_mutex_unlock(&s->lock);
		return -EPERM;
	}
	if (t->status == SRV_T_BUILDING) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	*pp = t->next;
	t->listed = false;
	s->ntemplates--;
	pthread_mutex_unlock(&s->lock);
	srv_template_put(s, t);
	return 0;
}

void srv_template_fail_unlist(struct srv *s, struct srv_template *t)
{
	bool found = false;

	/* By pointer, under one lock with the status: a template that took the
	 * name meanwhile is never the one removed. */
	pthread_mutex_lock(&s->lock);
	t->status = SRV_T_FAILED;
	for (struct srv_template **pp = &s->templates; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			t->listed = false;
			s->ntemplates--;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (found)
		srv_template_put(s, t);   /* the list's reference */
}

static const char *const srv_mode_names[] = { "eager", "cow", "lazy" };

struct json_object *srv_template_json(struct srv *s, struct srv_template *t, bool inspect)
{
	struct json_object *o = json_object_new_object(), *p = json_object_new_object();
	static const char *const status[] = { "ready", "building", "failed" };
	struct snapbox_pool_stats st = { 0 };
	enum srv_tstatus stv;
	char *err;

	pthread_mutex_lock(&s->lock);
	stv = t->status;
	err = t->error ? strdup(t->error) : NULL;
	pthread_mutex_unlock(&s->lock);
	if (stv == SRV_T_READY && t->pool)
		snapbox_pool_get_stats(t->pool, &st);
	json_object_object_add(o, "name", json_object_new_string(t->name));
	/* Names only: a reply never carries a host path. */
	json_object_object_add(o, "snapshot", t->shown ? json_object_new_string(t->shown) : NULL);
	json_object_object_add(o, "instrument", json_object_new_boolean(t->instrument));
	json_object_object_add(o, "status", json_object_new_string(status[stv]));
	json_object_object_add(o, "error", err ? json_object_new_string(err) : NULL);
	free(err);
	json_object_object_add(o, "mem_bytes", json_object_new_int64((int64_t)t->mem_bytes));
	json_object_object_add(o, "created_ns", json_object_new_int64((int64_t)t->created_ns));
	json_object_object_add(p, "size", json_object_new_int((int)t->pool_size));
	json_object_object_add(p, "mode", json_object_new_string(srv_mode_names[t->mode]));
	json_object_object_add(p, "ready", json_object_new_int((int)st.ready));
	json_object_object_add(p, "hits", json_object_new_int64((int64_t)st.hits));
	json_object_object_add(p, "misses", json_object_new_int64((int64_t)st.misses));
	json_object_object_add(p, "refills", json_object_new_int64((int64_t)st.refills));
	json_object_object_add(p, "refill_failures", json_object_new_int64((int64_t)st.refill_failures));
	json_object_object_add(o, "pool", p);
	if (inspect && stv == SRV_T_READY) {
		int ret;
		struct json_object *i = srv_inspect(t->snapshot, false, &ret), *k;

		/* The kernel as the snapshot recorded it is a path on some host: its name only. */
		if (i && json_object_object_get_ex(i, "kernel", &k)) {
			const char *kp = json_object_get_string(k), *base = kp ? strrchr(kp, '/') : NULL;

			json_object_object_add(i, "kernel", json_object_new_string(
				t->kernel_shown ? t->kernel_shown : base ? base + 1 : kp ? kp : ""));
		}
		json_object_object_add(o, "inspect", i);
	}
	return o;
}

struct json_object *srv_templates_json(struct srv *s, const struct srv_tenant *tn)
{
	struct json_object *a = json_object_new_array();
	struct srv_template **list;
	size_t n = 0;

	/* References taken under the lock, JSON built outside it (pool stats lock their pool). */
	pthread_mutex_lock(&s->lock);
	list = calloc(s->ntemplates + 1, sizeof(*list));
	for (struct srv_template *t = s->templates; list && t; t = t->next) {
		if (!srv_template_visible(t, tn))
			continue;
		t->refs++;
		list[n++] = t;
	}
	pthread_mutex_unlock(&s->lock);
	if (!list) {
		json_object_put(a);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		json_object_array_add(a, srv_template_json(s, list[i], false));
		srv_template_put(s, list[i]);
	}
	free(list);
	return a;
}

const char *srv_mode_name(enum snapbox_restore_mode m)
{
	return srv_mode_names[m];
}

void srv_fini(struct srv *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->have_reaper)
		pthread_join(s->reaper, NULL);
	/* Builds hold a template reference and a VM: let them end (each is bounded by its boot timeout). */
	pthread_mutex_lock(&s->lock);
	while (s->builds)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	while (s->sandboxes)
		srv_sandbox_remove(s, s->sandboxes);
	while (s->templates)
		srv_template_remove(s, s->templates->name, NULL);
	/* The reaper is gone: what was buried since is destroyed here. */
	pthread_mutex_lock(&s->lock);
	srv_dig_locked(s);
	pthread_mutex_unlock(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	srv_close_fds(s);
	srv_tenants_fini(s);
	free(s->state_dir);
}
