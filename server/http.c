/* http.c - snapboxd's HTTP layer on libmicrohttpd: listeners (Unix socket, TCP), bearer tokens, body limits, draining. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/http.h"

/* One request's state across libmicrohttpd's calls. */
struct http_conn {
	uint8_t *body;
	size_t len, cap;
	bool too_large;
	bool over_inflight;          /* refused: the daemon's bytes in flight are at --max-inflight */
	struct srv_grave *graves;    /* VMs to destroy once the reply is sent */
	uint64_t t0;
	struct srv_tenant *tenant;   /* NULL: refused (no valid token) */
};

/* The peer as text: an address and port on TCP, "unix" on the socket. */
static void http_peer(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	char host[INET6_ADDRSTRLEN] = "?";

	if (!sa || sa->sa_family == AF_UNIX) {
		snprintf(buf, len, "unix");
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

/* One log line per request: peer, tenant, method, path (escaped), status, time. */
static void http_log(struct MHD_Connection *c, const struct http_conn *hc, const char *method,
		     const char *url, int status, const char *why)
{
	char peer[64], m[32], u[512];

	http_peer(c, peer, sizeof(peer));
	srv_escape(method, m, sizeof(m));
	srv_escape(url, u, sizeof(u));
	srv_log("%s %s %s %s %d %.3f ms%s%s", peer, hc->tenant ? hc->tenant->name : "-", m, u, status,
		(double)(srv_mono_ns() - hc->t0) / 1e6, why ? ": " : "", why ? why : "");
}

/* Who asks: on TCP the tenant whose token the request bears (NULL: none), on the socket its one tenant. */
static struct srv_tenant *http_tenant(const struct http_server *h, struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h->tcp)
		return h->local;
	if (!a || strncmp(a, "Bearer ", 7))
		return NULL;
	return srv_tenant_by_token(h->srv, a + 7);
}

static enum MHD_Result http_send(struct MHD_Connection *c, struct srv_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (r->ctype && r->len)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	ret = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static const char *http_query(void *ctx, const char *key)
{
	return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

/* Append a chunk of the body, or mark it too large and drop it. */
static void http_take(struct http_server *h, struct http_conn *hc, const char *data, size_t n)
{
	struct srv *s = h->srv;

	if (hc->too_large || hc->len + n > s->lim.max_body) {
		hc->too_large = true;
		return;
	}
	/* Every connection's body counts: 1024 connections times --max-body would
	 * be more than the host has (the decoded copies cost more again). */
	if (atomic_fetch_add(&s->inflight_bytes, n) + n > s->lim.max_inflight) {
		atomic_fetch_sub(&s->inflight_bytes, n);
		hc->too_large = hc->over_inflight = true;
		return;
	}
	if (hc->len + n > hc->cap) {
		size_t cap = hc->cap ? hc->cap * 2 : 4096;
		uint8_t *p;

		while (cap < hc->len + n)
			cap *= 2;
		p = realloc(hc->body, cap);
		if (!p) {
			atomic_fetch_sub(&s->inflight_bytes, n);
			hc->too_large = true;
			return;
		}
		hc->body = p;
		hc->cap = cap;
	}
	memcpy(hc->body + hc->len, data, n);
	hc->len += n;   /* charged above; given back in http_done */
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *data,
				   size_t *data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_conn *hc = *con_cls;
	struct srv_reply r = { 0 };
	const char *route = "other";
	enum MHD_Result ret;

	(void)version;
	if (!hc) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		hc = calloc(1, sizeof(*hc));
		if (!hc)
			return MHD_NO;
		hc->t0 = srv_mono_ns();
		hc->tenant = http_tenant(h, c);
		*con_cls = hc;
		atomic_fetch_add(&h->srv->inflight, 1);
		/* Refusals that need no body are answered before it is read. */
		if (!hc->tenant) {
			srv_reply_error(&r, 401, "unauthorized", "a valid bearer token is required");
			r.kind = "missing or wrong bearer token";
		} else if (atomic_load(&h->srv->draining)) {
			srv_reply_error(&r, 503, "unavailable", "the daemon is shutting down");
		} else if (cl && strtoull(cl, NULL, 10) > h->srv->lim.max_body) {
			srv_reply_error(&r, 413, "too_large", "the body exceeds %zu bytes",
					h->srv->lim.max_body);
		} else {
			return MHD_YES;
		}
		goto send;
	}
	if (*data_size) {
		http_take(h, hc, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	if (hc->over_inflight) {
		srv_metrics_limit("max-inflight");
		srv_reply_error(&r, 429, "limit", "the daemon holds its most request bytes (--max-inflight); "
				"try again");
	} else if (hc->too_large) {
		srv_reply_error(&r, 413, "too_large", "the body exceeds %zu bytes", h->srv->lim.max_body);
	} else if (atomic_load(&h->srv->draining)) {
		srv_reply_error(&r, 503, "unavailable", "the daemon is shutting down");
	} else {
		struct srv_req req = {
			.method = method, .path = url, .query = http_query, .query_ctx = c,
			.body = hc->body, .body_len = hc->len, .tenant = hc->tenant,
		};

		srv_defer_graves(&hc->graves);
		srv_route(h->srv, &req, &r, &route);
		srv_defer_graves(NULL);
	}
send:
	if (!r.status)
		srv_reply_error(&r, 500, "internal", "no reply");
	srv_metrics_request(route, r.status, hc->tenant ? hc->tenant->name : "");
	if (r.status == 401) {
		srv_metrics_error("unauthorized");
		http_log(c, hc, method, url, r.status, r.kind);
	} else {
		if (r.kind)
			srv_metrics_error(r.kind);
		http_log(c, hc, method, url, r.status, NULL);
	}
	ret = http_send(c, &r);
	srv_reply_fini(&r);
	return ret;
}

static void http_done(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;
	struct http_conn *hc = *con_cls;

	(void)c;
	(void)toe;
	if (!hc)
		return;
	/* After the reply went out: the request's latency does not include teardown. */
	srv_graves_destroy(h->srv, hc->graves);
	atomic_fetch_sub(&h->srv->inflight, 1);
	atomic_fetch_sub(&h->srv->inflight_bytes, hc->len);
	free(hc->body);
	free(hc);
	*con_cls = NULL;
}

/* A Unix socket at path, mode 0600; a stale one (nobody accepting) is replaced. */
static int http_listen_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(a.sun_path)) {
		srv_log("socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		srv_log("another daemon is serving %s", path);
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED) {
		struct stat st;

		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
			srv_log("replacing the stale socket %s", path);
			unlink(path);
		}
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Created 0600 from the start: no window where others may connect. */
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (ret || listen(fd, 128)) {
		ret = -errno;
		srv_log("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

/* TCP on HOST:PORT (HOST may be a name or an address). */
static int http_listen_tcp(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	int fd, one = 1, ret;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
		srv_log("--listen wants tcp:HOST:PORT, not tcp:%s", spec);
		return -EINVAL;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	ret = getaddrinfo(host, colon + 1, &hints, &ai);
	if (ret) {
		srv_log("cannot resolve %s: %s", spec, gai_strerror(ret));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
		ret = -errno;
		srv_log("cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return ret;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Connections one address may hold at once, by default: far below the daemon's 1024. */
#define HTTP_PER_IP_DEFAULT 64
/* A connection idle this long (no byte of a request) is closed. */
#define HTTP_IDLE_S         30

int http_start(struct http_server *h, struct srv *s, const char *socket_path, const char *tcp,
	       const struct http_tcp_opts *topts)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG;
	bool tls = tcp && topts && topts->tls_cert_pem;
	struct MHD_OptionItem tcp_ops[] = {
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		  topts && topts->per_ip ? topts->per_ip : HTTP_PER_IP_DEFAULT, NULL },
		{ tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0,
		  tls ? (void *)topts->tls_cert_pem : NULL },
		{ tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0,
		  tls ? (void *)topts->tls_key_pem : NULL },
		{ MHD_OPTION_END, 0, NULL },
	};

	memset(h, 0, sizeof(h[0]));
	h->tcp = tcp != NULL;
	for (unsigned i = 0; i < s->ntenants; i++)
		if (!s->tenants[i].token)
			h->local = &s->tenants[i];
	if ((h->tcp && !s->ntenants) || (!h->tcp && !h->local)) {
		srv_log("no tenant to serve: %s", h->tcp ? "TCP needs tokens" : "the socket needs its tenant");
		return -EINVAL;
	}
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		srv_log("this libmicrohttpd has no TLS: cannot serve --tls-cert");
		return -ENOTSUP;
	}
	if (tls)
		flags |= MHD_USE_TLS;
	h->srv = s;
	h->fd = tcp ? http_listen_tcp(tcp) : http_listen_unix(socket_path);
	if (h->fd < 0)
		return h->fd;
	if (!tcp)
		h->socket_path = socket_path;
	/* The TCP options go last, through an array: on the Unix socket there is
	 * no address to count and no TLS. */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, h,
				MHD_OPTION_LISTEN_SOCKET, h->fd,
				MHD_OPTION_NOTIFY_COMPLETED, http_done, h,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
				MHD_OPTION_ARRAY, tcp ? tcp_ops : &tcp_ops[3],
				MHD_OPTION_END);
	if (!h->d) {
		srv_log("libmicrohttpd did not start");
		close(h->fd);
		if (h->socket_path)
			unlink(h->socket_path);
		return -EIO;
	}
	return 0;
}

void http_stop(struct http_server *h)
{
	/* Quiesced first, so the listening socket stays ours to close, exactly once. */
	MHD_quiesce_daemon(h->d);
	MHD_stop_daemon(h->d);
	close(h->fd);
	if (h->socket_path)
		unlink(h->socket_path);
}
