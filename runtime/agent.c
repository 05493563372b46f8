/* agent.c - host side of EXEC, WRITE_FILE and READ_FILE: request encoders, hostile-reply decoders, deadlines. */
#include "kvm/mono.h"
#include "runtime/agent.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "runtime/sandbox_internal.h"

_Static_assert(SNAPBOX_FILE_MAX == PROTO_FILE_MAX, "public file cap matches the protocol");
_Static_assert(SNAPBOX_EXEC_MAX_OUTPUT == PROTO_EXEC_MAX_OUTPUT, "public output cap matches");
_Static_assert(SNAPBOX_EXEC_DEFAULT_STDOUT + SNAPBOX_EXEC_DEFAULT_STDERR <= PROTO_EXEC_MAX_OUTPUT,
	       "default caps fit one frame");

#define AGENTREQ_DEFAULT_TIMEOUT_MS 30000u
#define AGENTREQ_GRACE_MS           5000u   /* plus 1 s per 64 KiB moved */

/* Growable request payload; every append is bounded by PROTO_MAX_PAYLOAD. */
struct agentreq_buf {
	uint8_t *p;
	size_t len;
};

static void agentreq_u32(struct agentreq_buf *b, uint32_t v)
{
	le_put32(b->p + b->len, v);
	b->len += 4;
}

static void agentreq_str(struct agentreq_buf *b, const void *s, size_t n)
{
	agentreq_u32(b, (uint32_t)n);
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

static size_t agentreq_count(const char *const *v, size_t *bytes)
{
	size_t n = 0;

	for (; v && v[n]; n++)
		*bytes += 4 + strlen(v[n]);
	return n;
}

int agentreq_exec_encode(const struct snapbox_exec_opts *o, uint32_t timeout_ms,
			 uint32_t out_cap, uint32_t err_cap, uint8_t **buf, uint32_t *len)
{
	size_t bytes = 20 + 4 + 4 + 4, argc, envc, i, cwdlen = o->cwd ? strlen(o->cwd) : 0;
	size_t userlen = o->user ? strlen(o->user) : 0;
	struct agentreq_buf b;

	*buf = NULL;
	*len = 0;
	argc = agentreq_count(o->argv, &bytes);
	envc = agentreq_count(o->env, &bytes);
	bytes += cwdlen + o->stdin_len + (o->user ? 4 + userlen : 0);
	if (argc == 0 || !o->argv[0][0]) {
		log_msg("snapbox: exec: no command given\n");
		return -EINVAL;
	}
	for (i = 0; i < argc + envc; i++) {
		const char *s = i < argc ? o->argv[i] : o->env[i - argc];

		if (strlen(s) > PROTO_EXEC_MAX_STR) {
			log_msg("snapbox: exec: an argument or env entry exceeds %u bytes\n",
				PROTO_EXEC_MAX_STR);
			return -E2BIG;
		}
		if (i >= argc && (s[0] == '=' || !strchr(s, '='))) {
			log_msg("snapbox: exec: env entry '%.64s' is not KEY=VALUE\n", s);
			return -EINVAL;
		}
	}
	if (o->cwd && (o->cwd[0] != '/' || cwdlen > PROTO_PATH_MAX)) {
		log_msg("snapbox: exec: cwd must be an absolute path of at most %u bytes\n",
			PROTO_PATH_MAX);
		return -EINVAL;
	}
	if (o->user && (!userlen || userlen > PROTO_EXEC_MAX_USER || strchr(o->user, ':') == o->user ||
			strpbrk(o->user, " \t\n/"))) {
		log_msg("snapbox: exec: user must be a name, UID or UID:GID of 1 to %u bytes\n",
			PROTO_EXEC_MAX_USER);
		return -EINVAL;
	}
	if (argc > PROTO_EXEC_MAX_ARGS || envc > PROTO_EXEC_MAX_ENV || bytes > PROTO_MAX_PAYLOAD ||
	    (uint64_t)out_cap + err_cap > PROTO_EXEC_MAX_OUTPUT ||
	    timeout_ms > PROTO_EXEC_MAX_TIMEOUT_MS) {
		log_msg("snapbox: exec: request exceeds the protocol's caps (%zu args, %zu env, "
			"%zu bytes, output caps %u+%u, timeout %u ms)\n", argc, envc, bytes, out_cap,
			err_cap, timeout_ms);
		return -E2BIG;
	}
	b.p = malloc(bytes);
	if (!b.p)
		return -ENOMEM;
	b.len = 0;
	agentreq_u32(&b, o->user ? PROTO_EXEC_REQ_F_USER : 0);
	agentreq_u32(&b, timeout_ms);
	agentreq_u32(&b, out_cap);
	agentreq_u32(&b, err_cap);
	agentreq_u32(&b, (uint32_t)argc);
	for (i = 0; i < argc; i++)
		agentreq_str(&b, o->argv[i], strlen(o->argv[i]));
	agentreq_u32(&b, (uint32_t)envc);
	for (i = 0; i < envc; i++)
		agentreq_str(&b, o->env[i], strlen(o->env[i]));
	agentreq_str(&b, o->cwd, cwdlen);
	if (o->user)
		agentreq_str(&b, o->user, userlen);
	agentreq_str(&b, o->stdin_data, o->stdin_len);
	*buf = b.p;
	*len = (uint32_t)b.len;
	return 0;
}

/* malloc'd copy with a NUL after it, so text output can be used as a C string. */
static uint8_t *agentreq_dup(const uint8_t *p, uint32_t n)
{
	uint8_t *r = malloc((size_t)n + 1);

	if (r) {
		memcpy(r, p, n);
		r[n] = '\0';
	}
	return r;
}

int agentreq_exec_decode(const uint8_t *p, uint32_t n, uint32_t out_cap, uint32_t err_cap,
			 struct snapbox_exec_result *r)
{
	uint32_t status, code, flags, olen, elen;

	memset(r, 0, sizeof(*r));
	if (n < PROTO_EXEC_RESP_SIZE)
		goto bad;
	status = le_get32(p);
	code = le_get32(p + 4);
	flags = le_get32(p + 8);
	olen = le_get32(p + 12);
	elen = le_get32(p + 16);
	if ((status == PROTO_EXEC_EXITED && code > 255) ||
	    (status == PROTO_EXEC_SIGNALED && (code == 0 || code > 64)) ||
	    status > PROTO_EXEC_SIGNALED || olen > out_cap || elen > err_cap ||
	    (uint64_t)PROTO_EXEC_RESP_SIZE + olen + elen != n)
		goto bad;
	r->signaled = status == PROTO_EXEC_SIGNALED;
	r->exit_code = r->signaled ? 0 : (int)code;
	r->signal = r->signaled ? (int)code : 0;
	r->timed_out = flags & PROTO_EXEC_F_TIMED_OUT;
	r->out_truncated = flags & PROTO_EXEC_F_STDOUT_TRUNC;
	r->err_truncated = flags & PROTO_EXEC_F_STDERR_TRUNC;
	r->guest_ns = le_get64(p + 24);
	r->out = agentreq_dup(p + PROTO_EXEC_RESP_SIZE, olen);
	r->err = agentreq_dup(p + PROTO_EXEC_RESP_SIZE + olen, elen);
	if (!r->out || !r->err) {
		snapbox_exec_result_free(r);
		return -ENOMEM;
	}
	r->out_len = olen;
	r->err_len = elen;
	return 0;
bad:
	log_msg("snapbox: malformed exec reply from the guest (%u bytes)\n", n);
	return -EPROTO;
}

int agentreq_guest_error(const char *what, const void *reply, uint32_t len)
{
	static const int known[] = { EPERM, ENOENT, EIO, E2BIG, ENOEXEC, EACCES, EEXIST, ENOTDIR,
				     EISDIR, EINVAL, ENFILE, EMFILE, ETXTBSY, EFBIG, ENOSPC, EROFS,
				     ENAMETOOLONG, ELOOP, ENOMEM, ENOSYS, ESRCH };
	const char *s = reply ? reply : "";
	char text[201];
	uint32_t i, j = 0;
	int err = 0;

	for (i = 0; i < len && i < 5 && s[i] >= '0' && s[i] <= '9'; i++)
		err = err * 10 + (s[i] - '0');
	if (i < len && s[i] == ' ')
		i++;
	else
		err = 0;
	for (; i < len && j < sizeof(text) - 1; i++)
		text[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	text[j] = '\0';
	if (j)
		log_msg("snapbox: guest: %s\n", text);
	else
		log_msg("snapbox: guest: %s failed (no reason given)\n", what);
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (err == known[i])
			return -err;
	return -EREMOTEIO;
}

/* chan_request plus the one log line for a failure that is not the guest's answer. */
static int agentreq_request(struct chan *c, const char *what, uint16_t type, const void *payload,
			    uint32_t len, void **reply, uint32_t *rlen, uint64_t timeout_ms)
{
	int ret = chan_request(c, type, payload, len, reply, rlen,
			       mono_now_ns() + timeout_ms * 1000000ull);

	if (ret == -EREMOTEIO) {
		ret = agentreq_guest_error(what, *reply, *rlen);
		free(*reply);
		*reply = NULL;
	} else if (ret == -ETIMEDOUT) {
		log_msg("snapbox: %s: no reply from the guest within %llu ms\n", what,
			(unsigned long long)timeout_ms);
	} else if (ret == -ESHUTDOWN) {
		log_msg("snapbox: %s: the guest has stopped\n", what);
	} else if (ret) {
		log_msg("snapbox: %s: %s\n", what, strerror(-ret));
	}
	return ret;
}

int agentreq_exec(struct chan *c, const struct snapbox_exec_opts *o, struct snapbox_exec_result *r)
{
	uint32_t timeout = o->timeout_ms ? o->timeout_ms : AGENTREQ_DEFAULT_TIMEOUT_MS;
	uint32_t out_cap = o->stdout_cap ? o->stdout_cap : SNAPBOX_EXEC_DEFAULT_STDOUT;
	uint32_t err_cap = o->stderr_cap ? o->stderr_cap : SNAPBOX_EXEC_DEFAULT_STDERR;
	uint64_t grace = o->grace_ms ? o->grace_ms
		: snapbox_scaled_ms(AGENTREQ_GRACE_MS +
				    (unsigned)(((uint64_t)out_cap + err_cap + o->stdin_len) / 65536 * 1000));
	uint8_t *req;
	uint32_t len, rlen;
	void *reply = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = agentreq_exec_encode(o, timeout, out_cap, err_cap, &req, &len);
	if (ret)
		return ret;
	ret = agentreq_request(c, "exec", PROTO_T_EXEC, req, len, &reply, &rlen, timeout + grace);
	free(req);
	if (!ret)
		ret = agentreq_exec_decode(reply, rlen, out_cap, err_cap, r);
	if (!ret) {
		/* Both frames whole, headers included: what crossed the channel. */
		r->wire_out = (uint64_t)len + PROTO_HDR_SIZE;
		r->wire_in = (uint64_t)rlen + PROTO_HDR_SIZE;
	}
	free(reply);
	return ret;
}

/* Payload prefix shared by both file requests: u32 a, u32 flags, counted path. */
static int agentreq_file_req(const char *path, uint32_t a, uint32_t flags, size_t extra,
			     struct agentreq_buf *b)
{
	size_t plen = path ? strlen(path) : 0;

	if (!path || path[0] != '/' || plen > PROTO_PATH_MAX) {
		log_msg("snapbox: file path must be absolute, at most %u bytes\n",
			PROTO_PATH_MAX);
		return -EINVAL;
	}
	b->p = malloc(12 + plen + extra);
	if (!b->p)
		return -ENOMEM;
	b->len = 0;
	agentreq_u32(b, a);
	agentreq_u32(b, flags);
	agentreq_str(b, path, plen);
	return 0;
}

int agentreq_write_file(struct chan *c, const char *path, uint32_t mode, const void *data,
			size_t len, unsigned timeout_ms)
{
	return agentreq_write_file_flags(c, path, mode, 0, data, len, timeout_ms);
}

int agentreq_write_file_flags(struct chan *c, const char *path, uint32_t mode, uint32_t flags,
			      const void *data, size_t len, unsigned timeout_ms)
{
	struct agentreq_buf b;
	uint32_t rlen;
	void *reply = NULL;
	int ret;

	if (len > PROTO_FILE_MAX || (mode & ~07777u)) {
		log_msg("snapbox: write-file %s: %s\n", path ? path : "(null)",
			len > PROTO_FILE_MAX ? "more than SNAPBOX_FILE_MAX bytes" : "bad mode");
		return len > PROTO_FILE_MAX ? -EFBIG : -EINVAL;
	}
	ret = agentreq_file_req(path, mode, flags, 4 + len, &b);
	if (ret)
		return ret;
	agentreq_str(&b, data, len);
	ret = agentreq_request(c, "write-file", PROTO_T_WRITE_FILE, b.p, (uint32_t)b.len, &reply,
			       &rlen, timeout_ms);
	free(b.p);
	free(reply);
	return ret;
}

int agentreq_read_file(struct chan *c, const char *path, size_t max, void **data, size_t *len,
		       unsigned timeout_ms)
{
	struct agentreq_buf b;
	uint32_t rlen;
	void *reply = NULL;
	int ret;

	*data = NULL;
	*len = 0;
	if (max == 0)
		max = PROTO_FILE_MAX;
	if (max > PROTO_FILE_MAX) {
		log_msg("snapbox: read-file: max_bytes above SNAPBOX_FILE_MAX\n");
		return -EINVAL;
	}
	ret = agentreq_file_req(path, (uint32_t)max, 0, 0, &b);
	if (ret)
		return ret;
	ret = agentreq_request(c, "read-file", PROTO_T_READ_FILE, b.p, (uint32_t)b.len, &reply,
			       &rlen, timeout_ms);
	free(b.p);
	if (!ret && rlen > max) {
		log_msg("snapbox: read-file: the guest sent %u bytes, more than %zu asked\n",
			rlen, max);
		ret = -EPROTO;
	}
	if (!ret) {
		*data = agentreq_dup(reply, rlen);
		ret = *data ? 0 : -ENOMEM;
		*len = *data ? rlen : 0;
	}
	free(reply);
	return ret;
}

void snapbox_exec_result_free(struct snapbox_exec_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	r->out_len = r->err_len = 0;
}

/*
 * Each call checks the lazy restore's checksums after its reply, as
 * snapbox_request does: serving it may be what touched a bad chunk, and an
 * answer from a guest that saw wrong memory is not handed back.
 */
int snapbox_exec(struct snapbox *sb, const struct snapbox_exec_opts *o,
		 struct snapbox_exec_result *r)
{
	uint64_t exits = atomic_load(&sb->vcpu.exits), io = atomic_load(&sb->vcpu.io_exits);
	int ret = agentreq_exec(&sb->chan, o, r);

	if (!ret) {
		r->exits = atomic_load(&sb->vcpu.exits) - exits;
		r->io_exits = atomic_load(&sb->vcpu.io_exits) - io;
	}
	if (sandbox_lazy_check(sb)) {
		if (!ret)
			snapbox_exec_result_free(r);
		return -EIO;
	}
	return ret;
}

int snapbox_write_file(struct snapbox *sb, const char *path, uint32_t mode, const void *data,
		       size_t len, unsigned timeout_ms)
{
	int ret = agentreq_write_file(&sb->chan, path, mode, data, len, timeout_ms);

	return sandbox_lazy_check(sb) ? -EIO : ret;
}

int snapbox_read_file(struct snapbox *sb, const char *path, size_t max, void **data,
		      size_t *len, unsigned timeout_ms)
{
	int ret = agentreq_read_file(&sb->chan, path, max, data, len, timeout_ms);

	if (sandbox_lazy_check(sb)) {
		if (!ret) {
			free(*data);
			*data = NULL;
			*len = 0;
		}
		return -EIO;
	}
	return ret;
}
