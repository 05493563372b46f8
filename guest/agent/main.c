/* main.c - the guest agent's start-up (mounts, channel, BOOT_TIME stages, READY) and its command loops: vsock (a handler per connection) or a serial stream. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent/agent.h"

/*
 * How the agent runs. As PID 1 (the default when getpid() == 1) it mounts
 * the pseudo file systems and never exits. Test mode (--test or
 * SNAPBOX_AGENT_TEST=1) skips the mounts, becomes a child subreaper so it
 * still reaps orphans, and exits when the channel reaches EOF.
 */
struct agent_opts {
	const char *dev;       /* --dev PATH or SNAPBOX_AGENT_DEV; default /dev/ttyS1 */
	int fd;                /* --fd N: an inherited channel (socketpair, pty); -1: open dev */
	bool test;
	bool dev_given;        /* --dev or SNAPBOX_AGENT_DEV: that device, not vsock */
	unsigned stall_ms;     /* --stall-ms N */
};

static const char *const agent_stage_names[AGENT_NSTAGES] = {
	"init_entry", "mounts_done", "uart_access_done", "init_ok", "ready", "command_loop",
};

/* Never exit as PID 1 (the kernel would panic): park instead. */
static void __attribute__((noreturn)) agent_fatal(const struct agent *a, const char *what)
{
	agent_log("fatal: %s", what);
	if (!a->init_mode)
		exit(1);
	for (;;)
		sleep(3600);
}

static unsigned agent_parse_uint(const char *s, unsigned dflt)
{
	char *end;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoul(s, &end, 10);
	return errno || *end || v > 0x7fffffff ? dflt : (unsigned)v;
}

/* argv from the kernel may hold unrelated cmdline words: unknown ones are ignored. */
static void agent_parse_args(int argc, char **argv, struct agent_opts *o)
{
	const char *env = getenv("SNAPBOX_AGENT_DEV");
	int i;

	o->dev = env && *env ? env : AGENT_DEFAULT_DEV;
	o->dev_given = env && *env;
	o->fd = -1;
	env = getenv("SNAPBOX_AGENT_TEST");
	o->test = env && !strcmp(env, "1");
	o->stall_ms = agent_parse_uint(getenv("SNAPBOX_AGENT_STALL_MS"), AGENT_STALL_MS);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--test"))
			o->test = true;
		else if (!strcmp(argv[i], "--dev") && i + 1 < argc)
			o->dev = argv[++i], o->dev_given = true;
		else if (!strcmp(argv[i], "--fd") && i + 1 < argc)
			o->fd = (int)agent_parse_uint(argv[++i], (unsigned)-1);
		else if (!strcmp(argv[i], "--stall-ms") && i + 1 < argc)
			o->stall_ms = agent_parse_uint(argv[++i], AGENT_STALL_MS);
	}
	if (o->stall_ms == 0)
		o->stall_ms = AGENT_STALL_MS;
}

/* fds 0-2 must exist, or the first open() would land there and a child's dup2 would clobber it. */
static void agent_fix_stdio(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/console", O_RDWR | O_NOCTTY) != fd && open("/dev/null", O_RDWR) != fd)
			return;
	}
}

/* Raw 8-bit channel: no echo, no line discipline, no flow-control characters. */
static void agent_make_raw(int fd)
{
	struct termios t;

	if (tcgetattr(fd, &t) < 0)
		return;   /* a socket (test mode): nothing to do */
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag &= ~(tcflag_t)HUPCL;
	t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	cfsetspeed(&t, B115200);
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		agent_log("tcsetattr: %s", strerror(errno));
}

static void agent_open_channel(struct agent *a, const struct agent_opts *o)
{
	bool logged = false;

	if (o->fd >= 0) {
		if (fcntl(o->fd, F_SETFD, FD_CLOEXEC) < 0)
			agent_fatal(a, "--fd is not an open descriptor");
		a->fd = o->fd;
	} else {
		/* As PID 1, keep trying: the device may appear late. */
		while ((a->fd = open(o->dev, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
			if (!a->init_mode)
				agent_fatal(a, "cannot open the channel device");
			if (!logged)
				agent_log("cannot open %s: %s; retrying", o->dev, strerror(errno));
			logged = true;
			usleep(100000);
		}
	}
	agent_make_raw(a->fd);
}

static void agent_setup_signals(struct agent *a)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);   /* a command closing its stdin must not kill us */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0)
		agent_fatal(a, "signalfd failed");
	if (!a->init_mode) {
		/* Orphans of our commands come back to us, as they would to PID 1. */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
}

static void agent_on_frame(void *opaque, const struct proto_hdr *h, const uint8_t *payload)
{
	struct agent *a = opaque;

	if (h->flags & PROTO_F_RESP)
		return;   /* not a request */
	switch (h->type) {
	case PROTO_T_PING:
		agent_reply(a, h, NULL, 0);
		break;
	case PROTO_T_ECHO:
		agent_reply(a, h, payload, h->len);
		break;
	case PROTO_T_EXEC:
		agent_exec(a, h, payload);
		break;
	case PROTO_T_WRITE_FILE:
		agent_write_file(a, h, payload);
		break;
	case PROTO_T_READ_FILE:
		agent_read_file(a, h, payload);
		break;
	case PROTO_T_REFRESH:
		agent_refresh(a, h, payload);
		break;
	default:
		agent_reply_err(a, h, ENOSYS, "unknown command");
		break;
	}
}

static void agent_boot_frames(struct agent *a)
{
	char text[64];
	struct iovec v;
	int i;

	a->stage_ns[4] = agent_now_ns();
	a->stage_ns[5] = agent_now_ns();
	for (i = 0; i < AGENT_NSTAGES; i++) {
		int n = snprintf(text, sizeof(text), "BOOT_TIME:%s:%llu", agent_stage_names[i],
				 (unsigned long long)a->stage_ns[i]);

		v = (struct iovec){ text, (size_t)n };
		agent_send(a, PROTO_T_BOOT_TIME, 0, 0, &v, 1);
	}
	v = (struct iovec){ (void *)"snapbox-agent 2", 15 };
	agent_send(a, PROTO_T_READY, 0, 0, &v, 1);
}

/*
 * Serve the frames of a->fd until its read ends (EOF or an error), reaping
 * children as they exit. The host sends whole frames, so one that stops
 * arriving for stall_ms is garbage and is dropped.
 */
static void agent_serve(struct agent *a)
{
	static uint8_t buf[65536];

	for (;;) {
		struct pollfd p[2] = { { .fd = a->fd, .events = POLLIN },
				       { .fd = a->sigfd, .events = POLLIN } };
		int busy = proto_parser_busy(&a->parser);
		int r = poll(p, 2, busy ? (int)a->stall_ms : -1);
		ssize_t n;

		if (r == 0 && busy) {
			proto_parser_reset(&a->parser);
			a->stalled_frames++;
			continue;
		}
		if (r <= 0)
			continue;
		if (p[1].revents)
			agent_on_sigchld(a);
		if (!p[0].revents)
			continue;
		n = read(a->fd, buf, sizeof(buf));
		if (n > 0) {
			proto_parser_feed(&a->parser, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return;
	}
}

/* The serial stream (COM2, or an inherited channel in test mode). */
static void __attribute__((noreturn)) agent_loop(struct agent *a)
{
	for (;;) {
		agent_serve(a);
		if (!a->init_mode)
			exit(0);   /* the test closed its end */
		usleep(100000); /* a tty with CLOCAL should never end; do not spin if it does */
	}
}

/*
 * The default channel, virtio-vsock: the boot frames go on their own
 * connection to the host, then every request connection gets a forked
 * handler, so a long exec never holds up a PING or another request. PID 1
 * only accepts and reaps. Returns only when vsock is unusable (no device or
 * no listener on the host), so the caller can fall back to COM2.
 */
static void agent_vsock_main(struct agent *a)
{
	int lfd = agent_vsock_listen();
	if (lfd < 0)
		return;
	/* Listening before READY: the host's first request may follow it at once. */
	a->fd = agent_vsock_connect_host();
	if (a->fd < 0) {
		agent_log("vsock: cannot reach the host (%s); using %s", strerror(-a->fd),
			  AGENT_DEFAULT_DEV);
		close(lfd);
		a->fd = -1;
		return;
	}
	a->stage_ns[2] = agent_now_ns();
	agent_setup_signals(a);
	a->stage_ns[3] = agent_now_ns();
	agent_boot_frames(a);
	close(a->fd);   /* SHUTDOWN goes out; the host ends the stream and resets it */
	a->fd = -1;
	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = a->sigfd, .events = POLLIN } };
		if (poll(p, 2, -1) <= 0)
			continue;
		if (p[1].revents)
			agent_on_sigchld(a);
		if (!p[0].revents)
			continue;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			a->fd = c;
			agent_serve(a);   /* until the host closes the connection */
			_exit(0);
		}
		if (pid < 0)
			agent_log("fork for a request: %s", strerror(errno));
		close(c);
	}
}

int main(int argc, char **argv)
{
	static struct agent a;
	struct agent_opts o;

	a.stage_ns[0] = agent_now_ns();
	a.fd = a.sigfd = -1;
	agent_parse_args(argc, argv, &o);
	a.init_mode = !o.test && getpid() == 1;
	a.stall_ms = o.stall_ms;
	agent_fix_stdio();
	if (a.init_mode) {
		agent_sysinit();
		agent_fix_stdio();
	}
	a.stage_ns[1] = agent_now_ns();
	while (proto_parser_init(&a.parser, PROTO_MAX_PAYLOAD, agent_on_frame, &a) != 0) {
		if (!a.init_mode)
			agent_fatal(&a, "out of memory for the frame buffer");
		sleep(1);
	}
	/* PID 1 without an inherited channel: vsock, unless the guest has none. */
	if (a.init_mode && o.fd < 0 && !o.dev_given)
		agent_vsock_main(&a);
	agent_open_channel(&a, &o);
	a.stage_ns[2] = agent_now_ns();
	if (a.sigfd < 0)
		agent_setup_signals(&a);
	a.stage_ns[3] = agent_now_ns();
	agent_boot_frames(&a);
	agent_loop(&a);
}
