/* util.c - snapboxd's small helpers: JSON and error replies, errno mapping, base64, UTF-8, names, clocks, log. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv.h"

void srv_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapboxd: %s\n", line);
}

static uint64_t srv_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t srv_mono_ns(void)
{
	return srv_clock(CLOCK_MONOTONIC);
}

uint64_t srv_real_ns(void)
{
	return srv_clock(CLOCK_REALTIME);
}

void srv_reply_json(struct srv_reply *r, int status, struct json_object *obj)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);

	r->status = status;
	r->ctype = "application/json";
	free(r->body);
	r->body = s ? strndup(s, len) : NULL;
	r->len = r->body ? len : 0;
	if (!r->body)
		r->status = 500;
	json_object_put(obj);
}

void srv_reply_error(struct srv_reply *r, int status, const char *kind, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(kind));
	json_object_object_add(o, "message", json_object_new_string(msg));
	srv_reply_json(r, status, o);
	r->kind = kind;
}

void srv_reply_errno(struct srv_reply *r, int err, const char *what)
{
	const char *why = strerror(-err);

	switch (err) {
	case -ETIMEDOUT:
		srv_reply_error(r, 504, "guest_timeout", "%s: the guest did not answer in time", what);
		break;
	case -EPIPE:
	case -ESHUTDOWN:
	case -ECONNRESET:
	case -EPROTO:
	case -EBADMSG:
	case -EREMOTEIO:
		srv_reply_error(r, 502, "guest_failed", "%s: the guest failed: %s", what, why);
		break;
	case -ENODEV:
		srv_reply_error(r, 503, "unavailable", "%s: KVM is unusable on this host", what);
		break;
	case -ENOENT:
	case -ENOTDIR:
	case -EINVAL:
	case -ENOEXEC:
	case -ENOTSUP:
	case -EISDIR:
	case -ELOOP:
	case -ERANGE:
	case -ENAMETOOLONG:
	case -ECANCELED:
		srv_reply_error(r, 422, "unprocessable", "%s: %s", what, why);
		break;
	case -E2BIG:
	case -EFBIG:
	case -EMSGSIZE:
		srv_reply_error(r, 413, "too_large", "%s: %s", what, why);
		break;
	case -EACCES:
	case -EPERM:
		srv_reply_error(r, 403, "forbidden", "%s: %s", what, why);
		break;
	case -EEXIST:
	case -EBUSY:
		srv_reply_error(r, 409, "conflict", "%s: %s", what, why);
		break;
	case -EAGAIN:
		srv_reply_error(r, 429, "limit", "%s: a limit of this daemon is reached", what);
		break;
	default:
		srv_reply_error(r, 500, "internal", "%s: %s", what, why);
		break;
	}
}

void srv_reply_bytes(struct srv_reply *r, int status, const void *data, size_t len)
{
	free(r->body);
	r->body = malloc(len ? len : 1);
	if (!r->body) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return;
	}
	memcpy(r->body, data, len);
	r->len = len;
	r->status = status;
	r->ctype = "application/octet-stream";
}

void srv_reply_fini(struct srv_reply *r)
{
	free(r->body);
	r->body = NULL;
}

static const char srv_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *srv_b64_encode(const void *data, size_t len)
{
	const uint8_t *p = data;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = srv_b64[v >> 18];
		*o++ = srv_b64[(v >> 12) & 63];
		*o++ = srv_b64[(v >> 6) & 63];
		*o++ = srv_b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);

		*o++ = srv_b64[v >> 18];
		*o++ = srv_b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? srv_b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int srv_b64_val(char c)
{
	const char *at = c ? strchr(srv_b64, c) : NULL;

	return at ? (int)(at - srv_b64) : -1;
}

int srv_b64_decode(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s), pad = 0, o = 0;
	uint8_t *buf;

	if (n % 4)
		return -EINVAL;
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		bool last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			v[k] = last && k >= 4 - (int)pad ? 0 : srv_b64_val(s[i + k]);
			if (v[k] < 0) {
				free(buf);
				return -EINVAL;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		buf[o++] = (uint8_t)(w >> 16);
		if (!last || pad < 2)
			buf[o++] = (uint8_t)(w >> 8);
		if (!last || pad < 1)
			buf[o++] = (uint8_t)w;
	}
	*out = buf;
	*len = o;
	return 0;
}

bool srv_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t k;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

bool srv_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SRV_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

struct json_object *srv_body_json(const struct srv_req *req, struct srv_reply *r)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (!req->body_len) {
		srv_reply_error(r, 400, "bad_request", "a JSON object body is required");
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok) {
		srv_reply_error(r, 500, "internal", "out of memory");
		return NULL;
	}
	o = json_tokener_parse_ex(tok, (const char *)req->body, (int)req->body_len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != req->body_len || !json_object_is_type(o, json_type_object)) {
		srv_reply_error(r, 400, "bad_request", "the body is not a JSON object%s%s",
				o ? "" : ": ", o ? "" : json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

bool srv_token_equal(const char *given, const char *token)
{
	size_t gn = strnlen(given, SRV_TOKEN_MAX + 1), tn = strlen(token), diff = gn ^ tn;

	/* The same SRV_TOKEN_MAX steps whatever either length is: the time
	 * says nothing about the token, its length included. */
	for (size_t i = 0; i < SRV_TOKEN_MAX; i++) {
		unsigned char a = i < gn ? (unsigned char)given[i] : 0;
		unsigned char b = i < tn ? (unsigned char)token[i] : 0;

		diff |= (size_t)(a ^ b);
	}
	return diff == 0 && tn <= SRV_TOKEN_MAX;
}

void srv_escape(const char *s, char *buf, size_t len)
{
	size_t j = 0;

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		/* Spaces and quotes too: a path must not forge the line's later fields. */
		bool esc = c <= 0x20 || c >= 0x7f || c == '\\' || c == '"';

		if (j + (esc ? 4 : 1) >= len)
			break;
		if (esc)
			j += (size_t)snprintf(buf + j, len - j, "\\x%02x", c);
		else
			buf[j++] = (char)c;
	}
	if (len)
		buf[j < len ? j : len - 1] = '\0';
}
