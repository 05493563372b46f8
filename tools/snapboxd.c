/* snapboxd.c - the sandbox service's main: options, listener, signals and the drain on SIGTERM (docs/api.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/http.h"
#include "server/srv.h"
#include "tools/cli_util.h"

#define SNAPBOXD_TOKEN_MIN 16

static void snapboxd_usage(FILE *f)
{
	fprintf(f,
		"usage: snapboxd [options]\n"
		"Serve sandboxes over HTTP/JSON (API: docs/api.md).\n\n"
		"  --socket PATH         Unix socket, mode 0600, in a directory of this user's that\n"
		"                        nobody else may enter (default $XDG_RUNTIME_DIR/snapboxd.sock,\n"
		"                        else, as root, /run/snapboxd/snapboxd.sock)\n"
		"  --listen tcp:HOST:PORT  listen on TCP instead (not with --socket); needs --token-file\n"
		"  --token-file FILE     the tenants and their bearer tokens: a NAME TOKEN pair per\n"
		"                        line, or one bare token (tenant \"default\"); tokens have at\n"
		"                        least %d characters; the file must not be open to others.\n"
		"                        What a tenant makes, only it sees. On the socket, every\n"
		"                        request is tenant \"local\"\n"
		"  --tenant-max-sandboxes N  one tenant's share of --max-sandboxes (default: all)\n"
		"  --tenant-max-templates N  one tenant's share of --max-templates (default: all)\n"
		"  --metrics-tenant NAME the TCP tenant that may read /v1/metrics (default\n"
		"                        \"default\"; on the socket, its owner always may)\n"
		"  --tls-cert FILE, --tls-key FILE  with --listen: serve HTTPS with this PEM\n"
		"                        certificate (chain) and key (not open to others)\n"
		"  --max-conn-per-ip N   with --listen: connections one address may hold (default 64)\n"
		"  --state-dir DIR       built templates live here, a private (0700) directory of this\n"
		"                        user's (default $XDG_RUNTIME_DIR/snapboxd.d, else, as root,\n"
		"                        /var/lib/snapboxd); anything else refuses the start\n"
		"  --asset-dir DIR       kernels and initrds that template builds may name (by file\n"
		"                        name); without it, clients cannot build templates\n"
		"  --snapshot-root DIR   snapshot directories clients may register (by their path\n"
		"                        beneath DIR); without it, they cannot\n"
		"  --allow-raw-requests  serve POST /v1/sandboxes/{id}/request for sandboxes of\n"
		"                        instrument templates (--template ones, or registered with\n"
		"                        \"instrument\": true); off by default\n"
		"  --template NAME=DIR   register a snapshot directory at start (repeatable)\n"
		"  --pool-size N         pool size of --template templates (default 2)\n"
		"  --pool-mode MODE      their restore mode: cow (default), eager or lazy\n"
		"  --max-sandboxes N     live sandboxes at most (default 64)\n"
		"  --max-guest-mem SIZE  guest memory of live sandboxes at most (default 16G)\n"
		"  --max-builds N        template builds at once (default 2; each also counts as a\n"
		"                        sandbox and its memory in the two limits above)\n"
		"  --max-ttl S           a sandbox's ttl_s at most (default 86400)\n"
		"  --max-templates N     templates at most, building ones included (default 64)\n"
		"  --max-disk SIZE       snapshot bytes the daemon writes (builds, snapshots; default 64G)\n"
		"  --max-shm SIZE        cow templates decoded into /dev/shm (default 16G)\n"
		"  --max-inflight SIZE   request body bytes held across all connections (default 256M)\n"
		"  --max-body SIZE       request body at most (default 8M)\n"
		"                        (SIZE: 512K, 8M, 16G; a plain number is MiB)\n"
		"  --drain-timeout S     on SIGTERM, wait this long for running requests and builds\n"
		"                        (default 10); then they are abandoned and the process exits\n"
		"  --no-confine          no seccomp filter on vCPU threads (debugging only; logged)\n"
		"  -h, --help            this text\n",
		SNAPBOXD_TOKEN_MIN);
}

static int snapboxd_register(struct srv *s, const char *spec, unsigned pool_size,
			     enum snapbox_restore_mode mode)
{
	const char *eq = strchr(spec, '=');
	char name[SRV_NAME_MAX + 1];
	struct srv_template *t;
	int ret;

	if (!eq || eq == spec || (size_t)(eq - spec) > SRV_NAME_MAX) {
		fprintf(stderr, "snapboxd: --template wants NAME=DIR, not %s\n", spec);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(eq - spec), spec);
	if (!srv_name_valid(name)) {
		fprintf(stderr, "snapboxd: bad template name %s\n", name);
		return -EINVAL;
	}
	t = srv_template_new(name, eq + 1);
	if (!t)
		return -ENOMEM;
	t->pool_size = pool_size;
	t->mode = mode;
	t->instrument = true;   /* the operator's own: raw requests with --allow-raw-requests */
	ret = srv_template_open(s, t);
	if (!ret)
		ret = srv_template_add(s, t);
	if (ret)
		fprintf(stderr, "snapboxd: template %s (%s): %s\n", name, eq + 1, strerror(-ret));
	srv_template_put(s, t);
	return ret;
}

/* A PEM file's text (a key's file must not be open to others); NULL after a message. */
static char *snapboxd_read_pem(const char *path, bool secret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	const char *why = NULL;
	char *buf = NULL;
	struct stat st;

	if (fd < 0)
		why = strerror(errno);
	else if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size >= (1 << 20))
		why = "not a regular file under 1 MiB";
	else if (secret && (st.st_mode & 077))
		why = "a key open to others (make it 0600 or 0400)";
	else if (!(buf = calloc(1, (size_t)st.st_size + 1)) || read(fd, buf, (size_t)st.st_size) != st.st_size)
		why = "cannot read it";
	if (fd >= 0)
		close(fd);
	if (why) {
		fprintf(stderr, "snapboxd: %s: %s\n", path, why);
		free(buf);
		return NULL;
	}
	return buf;
}

/* The default socket and state directory: this user's runtime directory, or root's own places. */
static int snapboxd_defaults(const char *tcp, const char **sock, char *defsock, size_t slen,
			     const char **state, char *defstate, size_t stlen)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	bool root = geteuid() == 0;

	if (rt && (!*rt || rt[0] != '/'))
		rt = NULL;
	if (!tcp && !*sock) {
		if (rt)
			snprintf(defsock, slen, "%s/snapboxd.sock", rt);
		else if (root && (mkdir("/run/snapboxd", 0700) == 0 || errno == EEXIST))
			snprintf(defsock, slen, "/run/snapboxd/snapboxd.sock");
		else {
			fprintf(stderr, "snapboxd: no XDG_RUNTIME_DIR: give --socket PATH (in a private "
				"directory of yours)\n");
			return -1;
		}
		*sock = defsock;
	}
	if (!*state) {
		if (rt)
			snprintf(defstate, stlen, "%s/snapboxd.d", rt);
		else if (root)
			snprintf(defstate, stlen, "/var/lib/snapboxd");
		else {
			fprintf(stderr, "snapboxd: no XDG_RUNTIME_DIR: give --state-dir DIR (a private "
				"directory of yours)\n");
			return -1;
		}
		*state = defstate;
	}
	return 0;
}

/* The socket's directory: this user's, private, not a link (else another user could swap the socket). */
static int snapboxd_socket_dir(const char *sock)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(sock, '/');
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == sock)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - sock), sock);
	fd = srv_private_dir(dir, "socket's directory", false);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static unsigned snapboxd_builds(struct srv *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->builds;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Wait for SIGTERM or SIGINT, then drain: 0 when every request finished in time. */
static int snapboxd_wait_and_drain(struct srv *s, const sigset_t *set)
{
	uint64_t deadline;
	int sig = 0;

	while (sigwait(set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	srv_log("signal %d: draining (new requests get 503; up to %u s for %u running)", sig,
		s->lim.drain_s, atomic_load(&s->inflight));
	atomic_store(&s->draining, true);
	deadline = srv_mono_ns() + (uint64_t)s->lim.drain_s * 1000000000ull;
	/* Builds too: each may take up to its hour-long deadlines, and the drain has one of its own. */
	while ((atomic_load(&s->inflight) || snapboxd_builds(s)) && srv_mono_ns() < deadline) {
		struct timespec ts = { 0, 20 * 1000000 };

		nanosleep(&ts, NULL);
	}
	return atomic_load(&s->inflight) || snapboxd_builds(s) ? -ETIMEDOUT : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "token-file", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "template", required_argument, NULL, 'T' },
		{ "pool-size", required_argument, NULL, 'p' },
		{ "pool-mode", required_argument, NULL, 'M' },
		{ "max-sandboxes", required_argument, NULL, 'n' },
		{ "max-guest-mem", required_argument, NULL, 'm' },
		{ "max-body", required_argument, NULL, 'b' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "max-ttl", required_argument, NULL, 'L' },
		{ "max-builds", required_argument, NULL, 'B' },
		{ "max-templates", required_argument, NULL, 'N' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "max-conn-per-ip", required_argument, NULL, 'P' },
		{ "tenant-max-sandboxes", required_argument, NULL, 'S' },
		{ "tenant-max-templates", required_argument, NULL, 'Q' },
		{ "metrics-tenant", required_argument, NULL, 'O' },
		{ "max-disk", required_argument, NULL, 'K' },
		{ "max-shm", required_argument, NULL, 'H' },
		{ "max-inflight", required_argument, NULL, 'I' },
		{ "no-confine", no_argument, NULL, 'C' },
		{ "asset-dir", required_argument, NULL, 'A' },
		{ "snapshot-root", required_argument, NULL, 'R' },
		{ "allow-raw-requests", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct srv_limits lim = { .max_ttl_s = 86400, .max_builds = 2, .max_templates = 64,
				  .max_disk = 64ull << 30, .max_shm = 16ull << 30, .max_inflight = 256u << 20,
				  .max_sandboxes = 64, .max_guest_mem = 16384ull << 20,
				  .max_body = 8u << 20, .drain_s = 10 };
	const char *sock = NULL, *tcp = NULL, *token_file = NULL, *state = NULL;
	const char *asset_dir = NULL, *snap_root = NULL, *tls_cert = NULL, *tls_key = NULL;
	struct http_tcp_opts topts = { 0 };
	bool allow_raw = false;
	const char *metrics_tenant = "default";
	const char *templates[64];
	unsigned ntemplates = 0, pool_size = 2;
	enum snapbox_restore_mode pool_mode = SNAPBOX_RESTORE_COW;
	uint64_t size;
	char defsock[256], defstate[300];
	struct http_server h;
	struct srv s;
	sigset_t set;
	int c, ret;

	/* The library's default deadlines (a client that sends no timeout_ms) on slow hosts. */
	if (cli_time_scale_from_env("snapboxd"))
		return 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end = NULL;
		unsigned long long v = optarg ? strtoull(optarg, &end, 10) : 0;
		bool num_ok = optarg && *optarg && !*end;

		switch (c) {
		case 's': sock = optarg; break;
		case 'l':
			if (strncmp(optarg, "tcp:", 4)) {
				fprintf(stderr, "snapboxd: --listen wants tcp:HOST:PORT\n");
				return 2;
			}
			tcp = optarg + 4;
			break;
		case 't': token_file = optarg; break;
		case 'd': state = optarg; break;
		case 'T':
			if (ntemplates == 64) {
				fprintf(stderr, "snapboxd: at most 64 --template\n");
				return 2;
			}
			templates[ntemplates++] = optarg;
			break;
		case 'C': snapbox_set_confinement(false); break;
		case 'A': asset_dir = optarg; break;
		case 'c': tls_cert = optarg; break;
		case 'k': tls_key = optarg; break;
		case 'R': snap_root = optarg; break;
		case 'W': allow_raw = true; break;
		case 'M':
			if (cli_parse_mode(optarg, &pool_mode)) {
				fprintf(stderr, "snapboxd: --pool-mode wants cow, eager or lazy\n");
				return 2;
			}
			break;
		case 'm': case 'b': case 'K': case 'H': case 'I':
			if (cli_parse_size(optarg, &size) || !size || (c == 'b' && size > (1u << 30))) {
				fprintf(stderr, "snapboxd: bad size %s\n", optarg);
				return 2;
			}
			if (c == 'm')
				lim.max_guest_mem = size;
			else if (c == 'b')
				lim.max_body = (size_t)size;
			else if (c == 'K')
				lim.max_disk = size;
			else if (c == 'H')
				lim.max_shm = size;
			else
				lim.max_inflight = size;
			break;
		case 'h': snapboxd_usage(stdout); return 0;
		case 'O': metrics_tenant = optarg; break;
		case 'p': case 'n': case 'D': case 'L': case 'B': case 'N': case 'P': case 'S': case 'Q':
			if (!num_ok || (c == 'p' && v > 64) || (c != 'p' && !v) || v > 86400 * 365) {
				fprintf(stderr, "snapboxd: bad number %s\n", optarg);
				return 2;
			}
			if (c == 'p') pool_size = (unsigned)v;
			if (c == 'n') lim.max_sandboxes = (unsigned)v;
			if (c == 'D') lim.drain_s = (unsigned)v;
			if (c == 'L') lim.max_ttl_s = (unsigned)v;
			if (c == 'B') lim.max_builds = (unsigned)v;
			if (c == 'N') lim.max_templates = (unsigned)v;
			if (c == 'P') topts.per_ip = (unsigned)v;
			if (c == 'S') lim.tenant_max_sandboxes = (unsigned)v;
			if (c == 'Q') lim.tenant_max_templates = (unsigned)v;
			break;
		default: snapboxd_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		snapboxd_usage(stderr);
		return 2;
	}
	if (tcp && sock) {
		fprintf(stderr, "snapboxd: --socket and --listen tcp: are one or the other (one listener)\n");
		return 2;
	}
	if (!tls_cert != !tls_key || (tls_cert && !tcp)) {
		fprintf(stderr, "snapboxd: --tls-cert and --tls-key go together, with --listen tcp:\n");
		return 2;
	}
	if (tls_cert && (!(topts.tls_cert_pem = snapboxd_read_pem(tls_cert, false)) ||
			 !(topts.tls_key_pem = snapboxd_read_pem(tls_key, true))))
		return 2;
	if (tcp && !token_file) {
		fprintf(stderr, "snapboxd: --listen tcp: needs --token-file (TCP is never open without a token)\n");
		return 2;
	}
	if (token_file && !tcp) {
		fprintf(stderr, "snapboxd: --token-file goes with --listen tcp: (the socket's file mode is its "
			"authentication)\n");
		return 2;
	}
	/* Never a fixed name in a shared directory such as /tmp: a local user could
	 * plant it first. The defaults are private to this user. */
	if (snapboxd_defaults(tcp, &sock, defsock, sizeof(defsock), &state, defstate, sizeof(defstate)))
		return 2;
	if (!tcp && snapboxd_socket_dir(sock))
		return 2;
	/* Before any thread: the privileges a VMM does not need go for good. */
	ret = snapbox_drop_privileges(true);
	if (ret)
		return 5;
	/* Signals are taken by sigwait in main alone; every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = srv_init(&s, state, &lim);
	if (ret)
		return ret == -EPERM ? 2 : 5;
	s.allow_raw = allow_raw;
	s.metrics_tenant = metrics_tenant;
	ret = tcp ? srv_tenants_load(&s, token_file) : srv_tenant_add(&s, "local", NULL);
	if (ret) {
		srv_fini(&s);
		return 2;
	}
	if (srv_set_roots(&s, asset_dir, snap_root)) {
		srv_fini(&s);
		return 2;
	}
	for (unsigned i = 0; i < ntemplates; i++)
		if (snapboxd_register(&s, templates[i], pool_size, pool_mode)) {
			srv_fini(&s);
			return 3;
		}
	ret = http_start(&h, &s, sock, tcp, &topts);
	if (ret) {
		srv_fini(&s);
		return ret == -EADDRINUSE ? 4 : 5;
	}
	srv_log("serving on %s%s (state %s, %u templates)", tcp ? "tcp:" : "", tcp ? tcp : sock, state,
		ntemplates);
	ret = snapboxd_wait_and_drain(&s, &set);
	if (ret) {
		/* Requests still running use their sandboxes: leave them to the
		 * process exit, which releases every VM, rather than free them. */
		srv_log("drain timed out with %u requests and %u builds running; exiting without "
			"waiting (the builds are cancelled; their directories go at the next start)",
			atomic_load(&s.inflight), snapboxd_builds(&s));
		if (!tcp)
			unlink(sock);
		_exit(1);
	}
	http_stop(&h);
	srv_fini(&s);
	srv_log("stopped");
	return 0;
}
