/* http.h - snapboxd's HTTP listener: one libmicrohttpd daemon over a Unix socket or TCP. */
#ifndef SNAPBOX_SERVER_HTTP_H
#define SNAPBOX_SERVER_HTTP_H

#include "server/srv.h"

struct MHD_Daemon;

struct http_server {
	struct srv *srv;
	struct MHD_Daemon *d;
	int fd;                      /* the listening socket (ours: closed in http_stop) */
	const char *socket_path;     /* removed in http_stop; NULL for TCP */
	bool tcp;                    /* TCP: every request needs a tenant's bearer token */
	struct srv_tenant *local;    /* the socket's one tenant */
};

/* What TCP adds: TLS (both PEM texts, or neither) and the per-address cap. */
struct http_tcp_opts {
	const char *tls_cert_pem, *tls_key_pem;
	unsigned per_ip;             /* connections from one address at once; 0: the default */
};

/*
 * Listen on tcp ("HOST:PORT") when given, else on the Unix socket
 * socket_path (mode 0600; a stale socket is replaced, a live one refused),
 * and serve s's routes from one thread per connection. On TCP every request
 * needs "Authorization: Bearer <token>" of one of s's tenants; on the socket
 * requests are its tenant's (the one without a token). On TCP, topts (may be
 * NULL) adds TLS and caps the connections of one address, so one client
 * holding connections open without a token (a slowloris) cannot take the
 * slots of others. Returns 0 or -errno (logged).
 */
int http_start(struct http_server *h, struct srv *s, const char *socket_path, const char *tcp,
	       const struct http_tcp_opts *topts);

/* Stop accepting, end every connection, close and remove the socket. */
void http_stop(struct http_server *h);

#endif
