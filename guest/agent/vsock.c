/* vsock.c - the agent's virtio-vsock sockets: its listener for request connections and its connection to the host for the boot frames. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest/agent/agent.h"
#include "proto/wire.h"

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
