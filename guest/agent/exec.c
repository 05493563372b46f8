/* exec.c - the agent's EXEC request: decode, fork into a new session, feed stdin, collect output, enforce the deadline. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/agent/agent.h"

extern char **environ;

#define AGENT_EXEC_READS_PER_WAKE 16   /* a pipe never starves the deadline check */

/* A decoded EXEC request; argv, envp and cwd live in one allocation. */
struct agent_exec_req {
	uint32_t timeout_ms, out_cap, err_cap;
	char **argv;
	char **envp;
	char *cwd;
	const uint8_t *in;
	uint32_t in_len;
	void *block;
	bool has_user;
	char user_spec[PROTO_EXEC_MAX_USER + 1];
	struct agent_user user;
};

/* One running command: the parent's pipe ends and what came back. */
struct agent_exec_run {
	int in_fd, out_fd, err_fd;
	uint32_t in_off;
	uint8_t *out, *err;
	uint32_t out_len, err_len;
	bool out_trunc, err_trunc;
};

/* Copy a counted string into the block as a C string. */
static char *agent_exec_put(char **pos, const uint8_t *s, uint32_t n)
{
	char *r = *pos;

	memcpy(r, s, n);
	r[n] = '\0';
	*pos += n + 1;
	return r;
}

/*
 * Decode and validate the payload (docs/agent-protocol.md, EXEC). Two passes:
 * the first checks every field and sizes the block, the second copies.
 * Returns 0, or -EINVAL / -E2BIG / -ENOMEM with *why set.
 */
static int agent_exec_parse(const uint8_t *payload, uint32_t len, struct agent_exec_req *r,
			    const char **why)
{
	struct proto_cursor c = { payload, len, 0 };
	uint32_t i, argc, envc, n, flags;
	const uint8_t *s;
	uint64_t strbytes = 0;
	bool has_path = false;
	char *pos;

	memset(r, 0, sizeof(*r));
	*why = "malformed exec request";
	flags = proto_cur_u32(&c);
	if (flags & ~PROTO_EXEC_REQ_F_USER) {
		*why = "unknown exec flags";
		return -EINVAL;
	}
	r->has_user = flags & PROTO_EXEC_REQ_F_USER;
	r->timeout_ms = proto_cur_u32(&c);
	r->out_cap = proto_cur_u32(&c);
	r->err_cap = proto_cur_u32(&c);
	argc = proto_cur_u32(&c);
	if (c.bad)
		return -EINVAL;
	if (r->timeout_ms == 0 || r->timeout_ms > PROTO_EXEC_MAX_TIMEOUT_MS) {
		*why = "exec timeout out of range";
		return -EINVAL;
	}
	if ((uint64_t)r->out_cap + r->err_cap > PROTO_EXEC_MAX_OUTPUT) {
		*why = "exec output caps exceed the frame cap";
		return -E2BIG;
	}
	if (argc == 0 || argc > PROTO_EXEC_MAX_ARGS) {
		*why = "exec argc out of range";
		return -EINVAL;
	}
	for (i = 0; i < argc; i++) {
		s = proto_cur_str(&c, PROTO_EXEC_MAX_STR, 1, &n);
		if (i == 0 && s && n == 0) {
			*why = "empty argv[0]";
			return -EINVAL;
		}
		strbytes += n + 1;
	}
	envc = proto_cur_u32(&c);
	if (envc > PROTO_EXEC_MAX_ENV) {
		*why = "exec envc out of range";
		return -EINVAL;
	}
	for (i = 0; i < envc && !c.bad; i++) {
		s = proto_cur_str(&c, PROTO_EXEC_MAX_STR, 1, &n);
		if (s && (n < 2 || s[0] == '=' || !memchr(s, '=', n))) {
			*why = "env entries must be KEY=VALUE";
			return -EINVAL;
		}
		has_path |= s && n >= 5 && !memcmp(s, "PATH=", 5);
		strbytes += n + 1;
	}
	s = proto_cur_str(&c, PROTO_PATH_MAX, 1, &n);
	if (s && n && s[0] != '/') {
		*why = "cwd must be an absolute path";
		return -EINVAL;
	}
	strbytes += n + 2 + sizeof(AGENT_DEFAULT_PATH);
	if (r->has_user) {
		s = proto_cur_str(&c, PROTO_EXEC_MAX_USER, 1, &n);
		if (s && n == 0) {
			*why = "empty exec user";
			return -EINVAL;
		}
		if (s)
			memcpy(r->user_spec, s, n);
	}
	r->in = proto_cur_str(&c, PROTO_MAX_PAYLOAD, 0, &r->in_len);
	if (c.bad || c.left) {
		*why = c.bad ? "malformed exec request" : "trailing bytes after exec request";
		return -EINVAL;
	}

	r->block = malloc((argc + 1 + envc + 2) * sizeof(char *) + strbytes);
	if (!r->block) {
		*why = "out of memory";
		return -ENOMEM;
	}
	r->argv = r->block;
	r->envp = r->argv + argc + 1;
	pos = (char *)(r->envp + envc + 2);
	c = (struct proto_cursor){ payload + 20, len - 20, 0 };
	for (i = 0; i < argc; i++) {
		s = proto_cur_str(&c, PROTO_EXEC_MAX_STR, 1, &n);
		r->argv[i] = agent_exec_put(&pos, s, n);
	}
	r->argv[argc] = NULL;
	proto_cur_u32(&c);
	for (i = 0; i < envc; i++) {
		s = proto_cur_str(&c, PROTO_EXEC_MAX_STR, 1, &n);
		r->envp[i] = agent_exec_put(&pos, s, n);
	}
	if (!has_path)
		r->envp[i++] = agent_exec_put(&pos, (const uint8_t *)AGENT_DEFAULT_PATH,
					      sizeof(AGENT_DEFAULT_PATH) - 1);
	r->envp[i] = NULL;
	s = proto_cur_str(&c, PROTO_PATH_MAX, 1, &n);
	r->cwd = n ? agent_exec_put(&pos, s, n) : agent_exec_put(&pos, (const uint8_t *)"/", 1);
	return 0;
}

/* Tell the parent which step failed (1 chdir, 2 exec, 3 user) and with which errno. */
static void agent_exec_child_fail(int fd, int step, int err)
{
	int msg[2] = { step, err };

	if (write(fd, msg, sizeof(msg)) < 0)
		_exit(125);
	_exit(step == 2 && err == ENOENT ? 127 : 126);
}

/* In the child: new session and process group, pipes on 0-2, clean signal state. */
static void agent_exec_child(const struct agent_exec_req *r, int in_r, int out_w, int err_w,
			     int ep_w)
{
	sigset_t none;
	int s;

	for (s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);   /* fails harmlessly for SIGKILL, SIGSTOP and glibc's own */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		agent_exec_child_fail(ep_w, 2, errno);
	/* The originals are O_CLOEXEC and vanish at exec. */
	environ = r->envp;   /* execvpe searches the caller's PATH */
	/* The user before chdir, so that cwd is entered with the user's rights. */
	if (r->has_user && (s = agent_user_switch(&r->user)) < 0)
		agent_exec_child_fail(ep_w, 3, -s);
	if (chdir(r->cwd) < 0)
		agent_exec_child_fail(ep_w, 1, errno);
	execvpe(r->argv[0], r->argv, environ);
	agent_exec_child_fail(ep_w, 2, errno);
}

/* Read what a pipe has (a bounded number of reads); EOF or an error closes it. */
static void agent_exec_drain(int *fd, uint8_t *buf, uint32_t cap, uint32_t *len, bool *trunc)
{
	static uint8_t scratch[65536];
	int i;

	for (i = 0; i < AGENT_EXEC_READS_PER_WAKE && *fd >= 0; i++) {
		ssize_t n = *len < cap ? read(*fd, buf + *len, cap - *len)
				       : read(*fd, scratch, sizeof(scratch));

		if (n > 0) {
			if (*len < cap)
				*len += (uint32_t)n;
			else
				*trunc = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
	}
}

static void agent_exec_feed(struct agent_exec_run *x, const struct agent_exec_req *r)
{
	uint32_t left = r->in_len - x->in_off;
	ssize_t n = write(x->in_fd, r->in + x->in_off, left < 65536 ? left : 65536);

	if (n > 0)
		x->in_off += (uint32_t)n;
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || x->in_off == r->in_len) {
		close(x->in_fd);   /* all sent (the child sees EOF), or the child closed stdin */
		x->in_fd = -1;
	}
}

/* Wait for output EOF and the child's exit, or the deadline. Returns true on timeout. */
static bool agent_exec_wait(struct agent *a, struct agent_exec_run *x,
			    const struct agent_exec_req *r, uint64_t deadline)
{
	for (;;) {
		struct pollfd p[4];
		int np = 0, io = -1, oo = -1, eo = -1;
		uint64_t now, ms;

		if (x->out_fd < 0 && x->err_fd < 0 && a->exec_reaped)
			return false;
		now = agent_now_ns();
		if (now >= deadline)
			return true;
		ms = (deadline - now + 999999) / 1000000;
		p[np++] = (struct pollfd){ .fd = a->sigfd, .events = POLLIN };
		if (x->out_fd >= 0) {
			oo = np;
			p[np++] = (struct pollfd){ .fd = x->out_fd, .events = POLLIN };
		}
		if (x->err_fd >= 0) {
			eo = np;
			p[np++] = (struct pollfd){ .fd = x->err_fd, .events = POLLIN };
		}
		if (x->in_fd >= 0) {
			io = np;
			p[np++] = (struct pollfd){ .fd = x->in_fd, .events = POLLOUT };
		}
		if (poll(p, (nfds_t)np, ms > INT_MAX ? INT_MAX : (int)ms) < 0)
			continue;   /* EINTR; the deadline still bounds the loop */
		if (p[0].revents)
			agent_on_sigchld(a);
		if (oo >= 0 && p[oo].revents)
			agent_exec_drain(&x->out_fd, x->out, r->out_cap, &x->out_len, &x->out_trunc);
		if (eo >= 0 && p[eo].revents)
			agent_exec_drain(&x->err_fd, x->err, r->err_cap, &x->err_len, &x->err_trunc);
		if (io >= 0 && p[io].revents)
			agent_exec_feed(x, r);
	}
}

static void agent_exec_reply(struct agent *a, const struct proto_hdr *h,
			     const struct agent_exec_run *x, bool timed_out, uint64_t ns)
{
	uint8_t head[PROTO_EXEC_RESP_SIZE] = { 0 };
	struct iovec v[3];
	uint32_t flags = (timed_out ? PROTO_EXEC_F_TIMED_OUT : 0) |
			 (x->out_trunc ? PROTO_EXEC_F_STDOUT_TRUNC : 0) |
			 (x->err_trunc ? PROTO_EXEC_F_STDERR_TRUNC : 0);
	int st = a->exec_status;

	if (WIFSIGNALED(st)) {
		le_put32(head, PROTO_EXEC_SIGNALED);
		le_put32(head + 4, (uint32_t)WTERMSIG(st));
	} else {
		le_put32(head, PROTO_EXEC_EXITED);
		le_put32(head + 4, (uint32_t)WEXITSTATUS(st));
	}
	le_put32(head + 8, flags);
	le_put32(head + 12, x->out_len);
	le_put32(head + 16, x->err_len);
	le_put64(head + 24, ns);
	v[0] = (struct iovec){ head, sizeof(head) };
	v[1] = (struct iovec){ x->out, x->out_len };
	v[2] = (struct iovec){ x->err, x->err_len };
	agent_send(a, h->type, PROTO_F_RESP, h->id, v, 3);
}

/* Create the three pipes and the exec-error pipe; parent ends non-blocking. */
static int agent_exec_pipes(int in[2], int out[2], int err[2], int ep[2])
{
	in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = ep[0] = ep[1] = -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
	    pipe2(ep, O_CLOEXEC))
		return -errno;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	return 0;
}

static void agent_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Wait (blocking) for the EXEC child unless the reaper already has. */
static void agent_exec_collect(struct agent *a, pid_t pid)
{
	while (!a->exec_reaped) {
		int st;

		if (waitpid(pid, &st, 0) == pid) {
			a->exec_status = st;
			a->exec_reaped = true;
		} else if (errno != EINTR) {
			a->exec_status = 0;
			a->exec_reaped = true;
		}
	}
}

void agent_exec(struct agent *a, const struct proto_hdr *h, const uint8_t *payload)
{
	struct agent_exec_run x = { .in_fd = -1, .out_fd = -1, .err_fd = -1 };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int msg[2];
	struct agent_exec_req r;
	const char *why;
	uint64_t t0;
	bool timed_out;
	ssize_t n;
	pid_t pid;
	int ret;

	ret = agent_exec_parse(payload, h->len, &r, &why);
	if (!ret && r.has_user && (ret = agent_user_lookup(r.user_spec, &r.user, &why)))
		free(r.block);
	if (ret) {
		agent_reply_err(a, h, -ret, "%s%s%s", ret == -ESRCH ? r.user_spec : "",
				ret == -ESRCH ? ": " : "", why);
		return;
	}
	x.out = malloc(r.out_cap ? r.out_cap : 1);
	x.err = malloc(r.err_cap ? r.err_cap : 1);
	ret = x.out && x.err ? agent_exec_pipes(in, out, err, ep) : -ENOMEM;
	if (ret) {
		agent_reply_err(a, h, -ret, "exec setup: %s", strerror(-ret));
		goto out_pipes;
	}
	t0 = agent_now_ns();
	a->exec_reaped = false;
	pid = fork();
	if (pid < 0) {
		agent_reply_err(a, h, errno, "fork: %s", strerror(errno));
		goto out_pipes;
	}
	if (pid == 0)
		agent_exec_child(&r, in[0], out[1], err[1], ep[1]);
	a->exec_pid = pid;
	agent_close(&in[0]);
	agent_close(&out[1]);
	agent_close(&err[1]);
	agent_close(&ep[1]);
	do
		n = read(ep[0], msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(msg)) {
		agent_exec_collect(a, pid);
		agent_reply_err(a, h, msg[1], "%s %s: %s",
				msg[0] == 1 ? "chdir" : msg[0] == 3 ? "user" : "exec",
				msg[0] == 1 ? r.cwd : msg[0] == 3 ? r.user_spec : r.argv[0],
				strerror(msg[1]));
		goto out_child;
	}
	x.in_fd = in[1];
	x.out_fd = out[0];
	x.err_fd = err[0];
	in[1] = out[0] = err[0] = -1;
	if (r.in_len == 0)
		agent_close(&x.in_fd);
	timed_out = agent_exec_wait(a, &x, &r, t0 + (uint64_t)r.timeout_ms * 1000000ull);
	if (timed_out) {
		kill(-pid, SIGKILL);   /* the whole process group: grandchildren too */
		if (!a->exec_reaped)
			kill(pid, SIGKILL);
		agent_exec_drain(&x.out_fd, x.out, r.out_cap, &x.out_len, &x.out_trunc);
		agent_exec_drain(&x.err_fd, x.err, r.err_cap, &x.err_len, &x.err_trunc);
	}
	agent_exec_collect(a, pid);
	agent_exec_reply(a, h, &x, timed_out, agent_now_ns() - t0);
out_child:
	a->exec_pid = 0;
	agent_close(&x.in_fd);
	agent_close(&x.out_fd);
	agent_close(&x.err_fd);
out_pipes:
	agent_close(&in[0]);
	agent_close(&in[1]);
	agent_close(&out[0]);
	agent_close(&out[1]);
	agent_close(&err[0]);
	agent_close(&err[1]);
	agent_close(&ep[0]);
	agent_close(&ep[1]);
	free(x.out);
	free(x.err);
	free(r.block);
}
