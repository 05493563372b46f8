/* exec.c - snapboxd's exec requests: the JSON body into snapbox_exec_opts, the result into the JSON reply; the RestoreProfile as JSON. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

void srv_exec_fini(struct srv_exec *e)
{
	for (size_t i = 0; i < EXEC_MAX_ARGS && e->envbuf[i]; i++)
		free(e->envbuf[i]);
	free(e->stdin_buf);
}

static bool exec_uint(struct json_object *b, const char *key, uint32_t *out, struct srv_reply *r)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(b, key, &v))
		return true;
	n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || n < 0 || n > UINT32_MAX) {
		srv_reply_error(r, 400, "bad_request", "%s must be a non-negative integer", key);
		return false;
	}
	*out = (uint32_t)n;
	return true;
}

static bool exec_strings(struct json_object *a, const char **out, const char *what,
			 struct srv_reply *r)
{
	size_t n = json_object_array_length(a);

	if (n > EXEC_MAX_ARGS) {
		srv_reply_error(r, 400, "bad_request", "%s has more than %d entries", what, EXEC_MAX_ARGS);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_string)) {
			srv_reply_error(r, 400, "bad_request", "%s must hold strings only", what);
			return false;
		}
		out[i] = json_object_get_string(v);
	}
	out[n] = NULL;
	return true;
}

/* Fill e from an exec body (argv, env, cwd, stdin, timeout_ms, caps); false after a 400. */
bool srv_exec_parse(struct json_object *b, struct srv_exec *e, struct srv_reply *r)
{
	struct json_object *v;
	uint32_t timeout = 0;

	memset(e, 0, sizeof(*e));
	if (!json_object_object_get_ex(b, "argv", &v) || !json_object_is_type(v, json_type_array) ||
	    !json_object_array_length(v)) {
		srv_reply_error(r, 400, "bad_request", "argv must be a non-empty array of strings");
		return false;
	}
	if (!exec_strings(v, e->argv, "argv", r))
		return false;
	e->o.argv = e->argv;
	if (json_object_object_get_ex(b, "env", &v)) {
		if (json_object_is_type(v, json_type_array)) {
			if (!exec_strings(v, e->env, "env", r))
				return false;
		} else if (json_object_is_type(v, json_type_object)) {
			size_t i = 0;

			json_object_object_foreach(v, key, val) {
				if (i >= EXEC_MAX_ARGS || !json_object_is_type(val, json_type_string)) {
					srv_reply_error(r, 400, "bad_request", "env values must be strings");
					return false;
				}
				if (asprintf(&e->envbuf[i], "%s=%s", key, json_object_get_string(val)) < 0) {
					e->envbuf[i] = NULL;
					srv_reply_error(r, 500, "internal", "out of memory");
					return false;
				}
				e->env[i] = e->envbuf[i];
				i++;
			}
			e->env[i] = NULL;
		} else {
			srv_reply_error(r, 400, "bad_request", "env must be an object or an array");
			return false;
		}
		e->o.env = e->env;
	}
	if (json_object_object_get_ex(b, "cwd", &v)) {
		if (!json_object_is_type(v, json_type_string) || json_object_get_string(v)[0] != '/') {
			srv_reply_error(r, 400, "bad_request", "cwd must be an absolute path");
			return false;
		}
		e->o.cwd = json_object_get_string(v);
	}
	if (json_object_object_get_ex(b, "user", &v)) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
			srv_reply_error(r, 400, "bad_request",
					"user must be a name, UID or UID:GID of the guest");
			return false;
		}
		e->o.user = json_object_get_string(v);
	}
	if (json_object_object_get_ex(b, "stdin", &v)) {
		size_t len;

		if (!json_object_is_type(v, json_type_string) ||
		    srv_b64_decode(json_object_get_string(v), &e->stdin_buf, &len)) {
			srv_reply_error(r, 400, "bad_request", "stdin must be base64");
			return false;
		}
		e->o.stdin_data = e->stdin_buf;
		e->o.stdin_len = len;
	} else if (json_object_object_get_ex(b, "stdin_text", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			srv_reply_error(r, 400, "bad_request", "stdin_text must be a string");
			return false;
		}
		e->o.stdin_data = json_object_get_string(v);
		e->o.stdin_len = (size_t)json_object_get_string_len(v);
	}
	if (!exec_uint(b, "timeout_ms", &timeout, r) || !exec_uint(b, "stdout_cap", &e->o.stdout_cap, r) ||
	    !exec_uint(b, "stderr_cap", &e->o.stderr_cap, r))
		return false;
	/* A command may not outlive an hour (nor, in a sandbox, its TTL: srv_exec_run). */
	if (timeout > SRV_EXEC_MAX_MS) {
		srv_reply_error(r, 400, "bad_request", "timeout_ms must be at most %u", SRV_EXEC_MAX_MS);
		return false;
	}
	e->o.timeout_ms = timeout;
	return true;
}

static void exec_output(struct json_object *o, const char *name, const uint8_t *p, size_t n,
			bool truncated)
{
	char key[32];
	char *b64 = srv_b64_encode(p, n);

	json_object_object_add(o, name, json_object_new_string(b64 ? b64 : ""));
	free(b64);
	snprintf(key, sizeof(key), "%s_text", name);
	json_object_object_add(o, key, srv_utf8_valid(p, n) ? json_object_new_string_len((const char *)p, (int)n)
							       : NULL);
	snprintf(key, sizeof(key), "%s_truncated", name);
	json_object_object_add(o, key, json_object_new_boolean(truncated));
}

/* Run e in sb; the exec reply object, or NULL after an error reply (*err set). */
struct json_object *srv_exec_run(struct snapbox *sb, struct srv_exec *e, struct srv_reply *r,
				    int *err)
{
	struct snapbox_exec_result res;
	struct json_object *o, *t;
	uint64_t t0 = srv_mono_ns();

	*err = snapbox_exec(sb, &e->o, &res);
	if (*err == -ESRCH) {   /* the agent's answer to a user it cannot find */
		srv_reply_error(r, 422, "unprocessable", "exec: user %s is not in the guest's /etc/passwd",
				e->o.user ? e->o.user : "?");
		return NULL;
	}
	if (*err) {
		srv_reply_errno(r, *err, "exec");
		return NULL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "exit_code", res.signaled ? NULL : json_object_new_int(res.exit_code));
	json_object_object_add(o, "signal", res.signaled ? json_object_new_int(res.signal) : NULL);
	json_object_object_add(o, "timed_out", json_object_new_boolean(res.timed_out));
	exec_output(o, "stdout", res.out, res.out_len, res.out_truncated);
	exec_output(o, "stderr", res.err, res.err_len, res.err_truncated);
	t = json_object_new_object();
	json_object_object_add(t, "guest_ns", json_object_new_int64((int64_t)res.guest_ns));
	json_object_object_add(t, "exec_ns", json_object_new_int64((int64_t)(srv_mono_ns() - t0)));
	json_object_object_add(o, "timings", t);
	t = json_object_new_object();
	json_object_object_add(t, "wire_out", json_object_new_int64((int64_t)res.wire_out));
	json_object_object_add(t, "wire_in", json_object_new_int64((int64_t)res.wire_in));
	json_object_object_add(t, "exits", json_object_new_int64((int64_t)res.exits));
	json_object_object_add(t, "io_exits", json_object_new_int64((int64_t)res.io_exits));
	json_object_object_add(o, "counts", t);
	snapbox_exec_result_free(&res);
	return o;
}

struct json_object *srv_profile_json(const struct snapbox_restore_profile *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json_object *o = NULL;

	if (f) {
		snapbox_json_restore_profile(f, p);
		if (!fclose(f))
			o = json_tokener_parse(buf);
	}
	free(buf);
	return o;
}

unsigned srv_body_timeout(struct json_object *b, unsigned dflt)
{
	struct json_object *v;

	if (b && json_object_object_get_ex(b, "timeout_ms", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 0 && json_object_get_int64(v) <= 3600000)
		return (unsigned)json_object_get_int64(v);
	return snapbox_scaled_ms(dflt);
}
