/* io.c - the agent's frame output, error replies, logging and child reaping. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent/agent.h"

#define AGENT_MAX_IOV 8

uint64_t agent_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void agent_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* One write per line so concurrent console output never splits it. */
	line[n++] = '\n';
	if (write(STDERR_FILENO, "snapbox-agent: ", 15) < 0 || write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

/* writev until everything went out; iov is consumed. */
static int agent_writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int agent_send(struct agent *a, uint16_t type, uint16_t flags, uint32_t id,
	       const struct iovec *iov, int n)
{
	struct iovec v[AGENT_MAX_IOV + 1];
	uint8_t hdr[PROTO_HDR_SIZE];
	uint64_t len = 0;
	int i, ret;

	if (n < 0 || n > AGENT_MAX_IOV)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		len += iov[i].iov_len;
		v[i + 1] = iov[i];
	}
	if (len > PROTO_MAX_PAYLOAD) {
		agent_log("reply of %llu bytes exceeds the frame cap", (unsigned long long)len);
		return -EMSGSIZE;
	}
	le_put32(hdr, PROTO_MAGIC);
	hdr[4] = (uint8_t)type;
	hdr[5] = (uint8_t)(type >> 8);
	hdr[6] = (uint8_t)flags;
	hdr[7] = (uint8_t)(flags >> 8);
	le_put32(hdr + 8, id);
	le_put32(hdr + 12, (uint32_t)len);
	v[0].iov_base = hdr;
	v[0].iov_len = sizeof(hdr);
	ret = agent_writev_all(a->fd, v, n + 1);
	if (ret) {
		if (a->send_errors++ == 0)
			agent_log("writing to the channel failed: %s", strerror(-ret));
	}
	return ret;
}

int agent_reply(struct agent *a, const struct proto_hdr *req, const void *buf, size_t len)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return agent_send(a, req->type, PROTO_F_RESP, req->id, &v, len ? 1 : 0);
}

int agent_reply_err(struct agent *a, const struct proto_hdr *req, int err, const char *fmt, ...)
{
	char text[600];
	struct iovec v;
	va_list ap;
	int n, m;

	n = snprintf(text, sizeof(text), "%d ", err);
	va_start(ap, fmt);
	m = vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) >= sizeof(text))
		m = (int)sizeof(text) - 1 - n;
	v.iov_base = text;
	v.iov_len = (size_t)(n + m);
	return agent_send(a, req->type, PROTO_F_RESP | PROTO_F_ERR, req->id, &v, 1);
}

void agent_reap(struct agent *a)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);

		if (pid <= 0)
			return;
		if (a->exec_pid > 0 && pid == a->exec_pid) {
			a->exec_status = st;
			a->exec_reaped = true;
		}
	}
}

void agent_on_sigchld(struct agent *a)
{
	struct signalfd_siginfo si[8];

	/* Non-blocking: coalesced signals leave nothing more to read. */
	while (read(a->sigfd, si, sizeof(si)) > 0)
		;
	agent_reap(a);
}
