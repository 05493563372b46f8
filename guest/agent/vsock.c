/* vsock.c - the agent's channel on virtio-vsock: the boot frames on one connection to the host, then a forked handler per request connection. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest/agent/agent.h"
#include "runtime/proto_wire.h"

/* Connections the kernel may hold for us before accept(): the host's table is 64. */
#define AGENT_VSOCK_BACKLOG 64

int agent_vsock_listen(void)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = PROTO_VSOCK_AGENT_PORT,
	};
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int err;

	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(s, AGENT_VSOCK_BACKLOG) < 0) {
		err = errno;
		close(s);
		return -err;
	}
	return s;
}

int agent_vsock_connect_host(void)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = PROTO_VSOCK_EVENT_PORT,
	};
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int err;

	if (s < 0)
		return -errno;
	while (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno;
		close(s);
		return -err;
	}
	return s;
}

/*
 * In a forked handler: serve the frames of one connection until the host
 * closes it. The host sends a request whole, so a frame that stops
 * arriving for stall_ms is garbage and is dropped.
 */
void agent_vsock_serve(struct agent *a)
{
	static uint8_t buf[65536];

	for (;;) {
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		int busy = proto_parser_busy(&a->parser);
		int r = poll(&p, 1, busy ? (int)a->stall_ms : -1);

		if (r == 0) {
			proto_parser_reset(&a->parser);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t n = read(a->fd, buf, sizeof(buf));
		if (n > 0)
			proto_parser_feed(&a->parser, buf, (size_t)n);
		else if (n == 0 || (errno != EINTR && errno != EAGAIN))
			return;
	}
}
