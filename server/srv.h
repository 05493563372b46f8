/* srv.h - snapboxd's internal interfaces: replies, the template and sandbox registry, metrics, routes. */
#ifndef SNAPBOX_SERVER_SRV_H
#define SNAPBOX_SERVER_SRV_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapbox.h"

#define SRV_NAME_MAX 64

/* ---- replies (util.c) ---- */

/* What a route answers: status, body (malloc'd, may be NULL) and its content type. */
struct srv_reply {
	int status;
	char *body;
	size_t len;
	const char *ctype;
	const char *kind;            /* the error kind of an error reply, else NULL */
};

/* Reply with obj serialised (takes ownership of obj). */
void srv_reply_json(struct srv_reply *r, int status, struct json_object *obj);
/* Reply {"error": kind, "message": printf(fmt, ...)}. */
void srv_reply_error(struct srv_reply *r, int status, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The HTTP error a library errno maps to, as srv_reply_error; what names the operation. */
void srv_reply_errno(struct srv_reply *r, int err, const char *what);
/* Reply with raw bytes (copied). */
void srv_reply_bytes(struct srv_reply *r, int status, const void *data, size_t len);
void srv_reply_fini(struct srv_reply *r);

/* base64 (RFC 4648, padded). encode: a NUL-terminated malloc'd string, NULL on ENOMEM. */
char *srv_b64_encode(const void *data, size_t len);
/* 0 and a malloc'd buffer, or -EINVAL for bad base64 / -ENOMEM. */
int srv_b64_decode(const char *s, uint8_t **out, size_t *len);
/* True when the bytes are valid UTF-8 with no NUL. */
bool srv_utf8_valid(const uint8_t *p, size_t n);
#define SRV_TOKEN_MAX 512     /* bytes of a bearer token, at most */
/* given == token, in time that depends on neither (nor on their lengths). */
bool srv_token_equal(const char *given, const char *token);
/* True for [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. */
bool srv_name_valid(const char *s);
/* CLOCK_MONOTONIC and CLOCK_REALTIME in ns. */
uint64_t srv_mono_ns(void);
uint64_t srv_real_ns(void);
/* s into buf for a log line: control characters, spaces, quotes, backslashes
 * and non-ASCII bytes as \xNN, cut to fit (a client's text never forges a
 * field or splits a line). */
void srv_escape(const char *s, char *buf, size_t len);
/* The daemon's one log sink (stderr, one line, "snapboxd: " prefixed). */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- metrics (metrics.c) ---- */

void srv_metrics_restore(const char *tmpl, const char *owner, const char *mode, bool pooled,
			 uint64_t ready_ns);
void srv_metrics_run(uint64_t ns);
void srv_metrics_request(const char *route, int status, const char *tenant);
void srv_metrics_error(const char *kind);
/* One refusal by a limit (its option's name without --). */
void srv_metrics_limit(const char *limit);
struct srv;
/* Prometheus text format of everything, plus s's pool counters and gauges; malloc'd. */
char *srv_metrics_text_of(struct srv *s, size_t *len);

/* ---- files (paths.c) ---- */

/* dir as an O_PATH directory fd (what names it in the log): fd or -errno. */
int srv_root_open(const char *dir, const char *what);
/*
 * rel (relative, at most 1 KiB) beneath root, never through a symlink or
 * out of root, without blocking on a FIFO: a directory (dir) or a regular
 * file, read-only. fd, or -EINVAL (bad name or wrong file type), -EACCES (a
 * link, an escape, or no root), -ENOENT.
 */
int srv_open_beneath(int root, const char *rel, bool dir);
/* path as a directory this euid owns with no access for others, not a link
 * (created 0700 first when create): an fd, or -EPERM / -errno (logged). */
int srv_private_dir(const char *path, const char *what, bool create);
/* The same for path relative to the directory fd at. */
int srv_private_dirat(int at, const char *path, const char *what, bool create);
/* Remove name in dirfd and, when it is a directory, what it holds; a link is
 * removed, never followed. 0 or -errno. */
int srv_rm_at(int dirfd, const char *name);
int srv_rm_at_depth(int dirfd, const char *name, int depth);
/* Bytes the files directly in dir take on disk (blocks), 0 when it cannot be read. */
uint64_t srv_dir_bytes(const char *dir);
/* "/proc/self/fd/N", malloc'd (NULL on ENOMEM): a path the library opens as fd's file. */
char *srv_fd_path(int fd);

/* ---- registry (registry.c) ---- */

#define SRV_TENANTS_MAX 64

/*
 * Who a request comes from: one name per token, or the Unix socket's one
 * tenant ("local"). What a tenant makes (sandboxes, templates) is its own;
 * others get 404 for it. Entries live as long as the daemon.
 */
struct srv_tenant {
	char name[SRV_NAME_MAX + 1];
	char *token;                 /* NULL: the Unix socket's tenant */
	unsigned reserved;           /* its sandboxes and builds, counted as nsandboxes is (s->lock) */
};

enum srv_tstatus { SRV_T_READY, SRV_T_BUILDING, SRV_T_FAILED };

struct srv_template {
	char name[SRV_NAME_MAX + 1];
	char *snapshot;              /* the snapshot directory, as the library opens it */
	int snap_fd;                 /* a client-registered snapshot: its directory, held open
					(snapshot is its /proc/self/fd path); else -1 */
	char *shown;                 /* what replies call the snapshot: its name beneath the
					snapshot root, or NULL (never a host path) */
	char *kernel_shown;          /* a build's kernel asset name, or NULL */
	bool instrument;             /* raw agent requests allowed (with --allow-raw-requests) */
	const struct srv_tenant *owner;  /* who made it; NULL: the operator's, seen by every tenant */
	bool owned;                  /* built by the daemon: removed with the template */
	enum srv_tstatus status;
	char *error;                 /* why it failed, or NULL */
	uint64_t mem_bytes;
	uint64_t created_ns;
	unsigned pool_size;
	enum snapbox_restore_mode mode;
	struct snapbox_pool *pool;   /* NULL when pool_size is 0 or not ready */
	uint64_t pool_mem, shm, disk;  /* what it holds against the limits (charged once opened) */
	uint64_t disk_reserved;      /* disk held for a snapshot being written */
	char *cache_dir;             /* a cow template's own directory in the daemon's /dev/shm
					one, removed with it (so its RAM goes with it); or NULL */
	bool charged;
	unsigned refs;               /* the registry's list holds one while listed */
	bool listed;
	struct srv_template *next;
};

struct srv_sandbox {
	char id[24];
	char tmpl[SRV_NAME_MAX + 1];
	struct snapbox *sb;
	uint64_t mem_bytes;
	uint64_t created_ns, expires_ns;   /* CLOCK_REALTIME; expires 0: no TTL */
	uint64_t expires_mono;
	bool instrument;             /* from an instrument template: raw requests allowed */
	struct srv_tenant *owner;    /* who made it: the only tenant that sees it */
	/* Requests on the guest hold it shared, a snapshot exclusively; neither
	 * waits: a request that cannot take it gets 409 at once. */
	pthread_rwlock_t busy;
	unsigned refs;
	bool listed;
	struct srv_sandbox *next;
};

struct srv_limits {
	unsigned max_ttl_s;          /* a sandbox's ttl_s at most */
	unsigned max_sandboxes;
	uint64_t max_guest_mem;
	size_t max_body;
	unsigned drain_s;
	unsigned max_builds;         /* template builds running at once */
	unsigned tenant_max_sandboxes;  /* one tenant's share of max_sandboxes (0: all of it) */
	unsigned tenant_max_templates;  /* one tenant's share of max_templates (0: all of it) */
	unsigned max_templates;      /* templates listed, building ones included */
	uint64_t max_disk;           /* bytes of snapshots the daemon wrote (builds, snapshots) */
	uint64_t max_shm;            /* bytes of cow templates decoded into /dev/shm */
	uint64_t max_inflight;       /* request body bytes held across every connection */
};

struct srv {
	struct srv_limits lim;
	char *state_dir;             /* built templates live in <state_dir>/templates */
	int state_fd, tdir_fd;       /* the state and templates directories (checked private) */
	char *shm_dir;               /* this daemon's private directory in /dev/shm (cow templates) */
	int shm_fd;
	int asset_fd;                /* --asset-dir (O_PATH), or -1: no builds */
	int snaproot_fd;             /* --snapshot-root (O_PATH), or -1: no registration by clients */
	struct srv_tenant tenants[SRV_TENANTS_MAX];
	unsigned ntenants;
	bool allow_raw;              /* --allow-raw-requests */
	const char *metrics_tenant;  /* the TCP tenant that may read /v1/metrics */
	pthread_mutex_t lock;        /* the lists and counts; never held across a guest request */
	pthread_cond_t cond;         /* wakes the reaper */
	struct srv_template *templates;
	struct srv_sandbox *sandboxes;
	unsigned nsandboxes, ntemplates;  /* nsandboxes: reserved, i.e. restoring, live or being destroyed */
	unsigned builds;             /* template builds running; srv_fini waits for them */
	struct srv_grave *graves;    /* VMs waiting for the reaper to destroy them */
	uint64_t guest_mem;          /* sandboxes', builds' and pool shells' guest memory */
	uint64_t disk_bytes, shm_bytes;
	atomic_ullong inflight_bytes;
	bool stop;
	pthread_t reaper;
	bool have_reaper;
	atomic_bool draining;
	atomic_uint inflight;
};

/*
 * Registry over state_dir: created 0700 when missing; refused (-EPERM, logged,
 * nothing touched) when it or its templates directory is a symlink, not this
 * euid's or not private. What an earlier run left in templates/ is removed
 * (no template outlives its daemon). 0 or -errno.
 */
int srv_init(struct srv *s, const char *state_dir, const struct srv_limits *lim);
/* A tenant (token NULL: the Unix socket's): 0, -EEXIST for a name or token twice, -ENOSPC. */
int srv_tenant_add(struct srv *s, const char *name, const char *token);
/* The tenant whose token is given, comparing with every one (no early exit); NULL: none. */
struct srv_tenant *srv_tenant_by_token(struct srv *s, const char *given);
/*
 * The token file: one "NAME TOKEN" per line (# comments and blank lines
 * skipped), or one bare token for tenant "default". Tokens have 16 to 512
 * characters; names and tokens are unique; the file must not be open to
 * others. 0, or -errno after a log line naming the line.
 */
int srv_tenants_load(struct srv *s, const char *path);
void srv_tenants_fini(struct srv *s);
/* The operator's roots (either may be NULL: that feature is off). 0 or -errno (logged). */
int srv_set_roots(struct srv *s, const char *asset_dir, const char *snapshot_root);
/*
 * A new, unique directory path for a template's snapshot under
 * <state_dir>/templates (name plus a random suffix, so a deleted template's
 * removal can never reach a later one of the same name); malloc'd or NULL.
 */
char *srv_template_dir(struct srv *s, const char *name);
/* Stop the reaper, destroy every sandbox, release every pool. */
void srv_fini(struct srv *s);

/* Add t (status and pool already set) under its name: 0, -EEXIST, or -EAGAIN at --max-templates. */
int srv_template_add(struct srv *s, struct srv_template *t);
/* Look up a name as tn sees it (its own and the operator's; tn NULL: every one),
 * with a reference (srv_template_put), or NULL. */
struct srv_template *srv_template_get(struct srv *s, const char *name, const struct srv_tenant *tn);
void srv_template_put(struct srv *s, struct srv_template *t);
/* Unlist it as tn asks (NULL: the daemon): 0, -ENOENT, -EBUSY while it builds,
 * -EPERM for a tenant and an operator's template. */
int srv_template_remove(struct srv *s, const char *name, const struct srv_tenant *tn);
/* Mark t failed and unlist it, if it is still listed (by pointer, not by name). */
void srv_template_fail_unlist(struct srv *s, struct srv_template *t);
/* A new template object (refs 1) for name; NULL on ENOMEM. */
struct srv_template *srv_template_new(const char *name, const char *snapshot);
/*
 * Read its memory size, charge it against s's limits (its pool shells'
 * guest memory, a cow template's decoded copy in /dev/shm, a daemon-written
 * snapshot's disk bytes) and open its pool (or none for size 0): 0,
 * -EAGAIN past a limit (counted in the metrics), or -errno.
 */
int srv_template_open(struct srv *s, struct srv_template *t);
/*
 * Reserve bytes of the disk budget (--max-disk) for t's snapshot before it is
 * written (its guest memory: the most it can take); srv_template_open then
 * charges what it really takes instead. 0, or -EAGAIN (counted).
 */
int srv_disk_reserve(struct srv *s, struct srv_template *t, uint64_t bytes);
/* JSON of t (inspect: add the snapshot's inspect object). Call with a reference. */
struct json_object *srv_template_json(struct srv *s, struct srv_template *t, bool inspect);
/* "eager", "cow" or "lazy". */
const char *srv_mode_name(enum snapbox_restore_mode m);
/* Every template tn sees as a JSON array (NULL on ENOMEM). */
struct json_object *srv_templates_json(struct srv *s, const struct srv_tenant *tn);

/*
 * Destroy sb off the request path: the reaper thread tears it down (a VM with
 * an irqchip takes milliseconds to destroy) and then releases its mem bytes
 * of the reservation. Falls back to destroying inline when out of memory.
 */
void srv_bury(struct srv *s, struct snapbox *sb, struct srv_tenant *tn, uint64_t mem);

/*
 * While a request is routed, srv_bury on this thread adds to *list instead:
 * the HTTP layer destroys those VMs once the reply has been sent
 * (srv_graves_destroy), on the connection's thread. A client's next request
 * on that connection then waits for its last VM's teardown, and a burst of
 * requests cannot pile up more VMs than there are connections.
 */
struct srv_grave;
void srv_defer_graves(struct srv_grave **list);
void srv_graves_destroy(struct srv *s, struct srv_grave *list);

/* Reserve room for one more sandbox of tn's of mem bytes: 0 or -EAGAIN (a limit). */
int srv_sandbox_reserve(struct srv *s, struct srv_tenant *tn, uint64_t mem);
void srv_sandbox_unreserve(struct srv *s, struct srv_tenant *tn, uint64_t mem);
/* Restore one sandbox from t (pooled when its pool has a shell); prof filled. */
int srv_restore(struct srv_template *t, struct snapbox **out,
		struct snapbox_restore_profile *prof);
/* List a reserved, restored sandbox of t for tn (takes sb): the new entry with a reference, or NULL. */
struct srv_sandbox *srv_sandbox_add(struct srv *s, const struct srv_template *t, struct srv_tenant *tn,
				    struct snapbox *sb, uint64_t mem, unsigned ttl_s);
/* tn's sandbox id, with a reference, or NULL (also for another tenant's). */
struct srv_sandbox *srv_sandbox_get(struct srv *s, const char *id, const struct srv_tenant *tn);
void srv_sandbox_put(struct srv *s, struct srv_sandbox *x);
/* Unlist it (destroyed once the last reference goes): 0 or -ENOENT. */
int srv_sandbox_remove(struct srv *s, struct srv_sandbox *x);
struct json_object *srv_sandbox_json(const struct srv_sandbox *x);
/* Listed sandboxes (not those being restored or destroyed); call with s->lock held. */
unsigned srv_sandboxes_live(struct srv *s);
struct json_object *srv_sandboxes_json(struct srv *s, const struct srv_tenant *tn);

/* A new template of tn's for name at dir with body's pool spec: NULL after a 400/409 reply. */
struct srv_template *srv_template_from(struct srv *s, struct json_object *body, const char *name,
				       const char *dir, struct srv_tenant *tn, struct srv_reply *r);
/* The reply for srv_template_add's err: 409 for a taken name, 429 at the template limit. */
void srv_template_refused(struct srv_reply *r, int err, const char *name);
/* List an opened template (takes the caller's reference) and reply status with it (or 409). */
void srv_template_publish(struct srv *s, struct srv_template *t, int status, struct srv_reply *r);

/* The reaper thread (srv_init starts it): TTLs, stopped guests, buried VMs. */
void *srv_reaper(void *arg);
/* Destroy every buried VM; called and returns with s->lock held. */
void srv_dig_locked(struct srv *s);

/* Start the background template build (kernel boot, files, prewarm, snapshot). */
struct srv_build;
int srv_build_start(struct srv *s, struct srv_template *t, struct srv_tenant *tn,
		    struct json_object *spec, struct srv_reply *r);

/* ---- routes (routes.c, routes_sandbox.c) ---- */

/* One request, complete: method, path (without query), query value lookup, body. */
struct srv_req {
	const char *method;
	const char *path;
	const char *(*query)(void *ctx, const char *key);
	void *query_ctx;
	const uint8_t *body;
	size_t body_len;
	struct srv_tenant *tenant;   /* who asks (never NULL) */
};

/* Route req and fill r; sets *route to a metrics label. */
void srv_route(struct srv *s, const struct srv_req *req, struct srv_reply *r, const char **route);

/* Per-sandbox routes (routes_sandbox.c); rest is the path after /v1/sandboxes/. */
void srv_route_sandbox(struct srv *s, const struct srv_req *req, const char *rest,
		       struct srv_reply *r, const char **route);
/* POST /v1/run. */
void srv_route_run(struct srv *s, const struct srv_req *req, struct srv_reply *r);

#define EXEC_MAX_ARGS 1024
#define SRV_EXEC_MAX_MS 3600000u   /* a command's timeout_ms at most */

/* What an exec request owns while it runs. */
struct srv_exec {
	const char *argv[EXEC_MAX_ARGS + 1];
	const char *env[EXEC_MAX_ARGS + 1];
	char *envbuf[EXEC_MAX_ARGS];
	uint8_t *stdin_buf;
	struct snapbox_exec_opts o;
};

/* Fill e from an exec body (argv, env, cwd, stdin, timeout_ms, caps); false after a 400 reply. */
bool srv_exec_parse(struct json_object *b, struct srv_exec *e, struct srv_reply *r);
/* Run e in sb: the exec reply object, or NULL after an error reply (*err set). */
struct json_object *srv_exec_run(struct snapbox *sb, struct srv_exec *e, struct srv_reply *r, int *err);
void srv_exec_fini(struct srv_exec *e);
/* p as the JSON object snapbox_json_restore_profile writes, or NULL. */
struct json_object *srv_profile_json(const struct snapbox_restore_profile *p);
/* The body's timeout_ms when it is an integer in (0, 3600000], else dflt times snapbox_time_scale(). */
unsigned srv_body_timeout(struct json_object *b, unsigned dflt);

/* Body helpers for routes: parse a JSON object body, or reply 400 and return NULL. */
struct json_object *srv_body_json(const struct srv_req *req, struct srv_reply *r);

#endif
