/* chan_vsock.c - the agent channel on virtio-vsock: the guest's event stream, and one connection per request. */
#include "kvm/log.h"
#include "kvm/mono.h"
#include "runtime/chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes of the guest's event connection (vsock lock held): the same parser as COM2's. */
static void chan_vsock_event(void *opaque, const uint8_t *buf, size_t n)
{
	struct chan *c = opaque;

	pthread_mutex_lock(&c->lock);
	if (n)
		proto_parser_feed(&c->parser, buf, n);
	else
		proto_parser_reset(&c->parser); /* a stream ended: a half frame dies with it */
	pthread_mutex_unlock(&c->lock);
}

void chan_attach_vsock(struct chan *c, struct vsock *v)
{
	c->vsock = v;
	vsock_listen(v, PROTO_VSOCK_EVENT_PORT, chan_vsock_event, c);
}

/*
 * Read exactly n bytes of connection h. -EPROTO (logged) when the guest ends
 * it early; -ECONNREFUSED, unlogged, when it never accepted it.
 */
static int chan_vsock_read(struct chan *c, int h, void *buf, size_t n, uint64_t deadline_ns)
{
	for (size_t got = 0; got < n;) {
		long r = vsock_recv(c->vsock, h, (uint8_t *)buf + got, n - got, deadline_ns);
		if (r == -ECONNREFUSED && got == 0)
			return (int)r;
		if (r == 0 || r == -ECONNRESET || r == -ECONNREFUSED) {
			log_msg("snapbox: the guest %s a request's connection before its reply\n",
				r ? "reset" : "closed");
			return -EPROTO;
		}
		if (r == -EIO)
			log_msg("snapbox: the guest broke its virtio-vsock queues; the device is stopped "
				"(destroy this sandbox)\n");
		if (r < 0)
			return (int)r;
		got += (size_t)r;
	}
	return 0;
}

/* Open a request's connection, waiting (to the deadline) while the table is full. */
static int chan_vsock_open(struct chan *c, uint64_t deadline_ns)
{
	for (;;) {
		int h = vsock_connect(c->vsock, PROTO_VSOCK_AGENT_PORT);
		if (h != -EAGAIN)
			return h;
		if (mono_now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		usleep(200);
	}
}

int chan_request_vsock(struct chan *c, uint16_t type, const void *payload, uint32_t len,
		       void **reply, uint32_t *reply_len, uint64_t deadline_ns)
{
	uint8_t fh[PROTO_HDR_SIZE], hb[PROTO_HDR_SIZE];
	struct proto_hdr h;
	uint8_t *resp = NULL;
	uint32_t id;
	int ret, conn;

	pthread_mutex_lock(&c->lock);
	id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	pthread_mutex_unlock(&c->lock);
	/* The header here, the payload from where it lies: one copy less of a 64 KiB request. */
	ret = proto_encode_hdr(fh, type, 0, id, len);
	if (ret)
		return ret;
	/* A guest whose connection table is full refuses (resets before it
	 * accepts, having read nothing): try again, within the deadline. */
	for (;;) {
		conn = chan_vsock_open(c, deadline_ns);
		if (conn < 0)
			return conn;
		ret = vsock_send2(c->vsock, conn, fh, sizeof(fh), payload, len);
		chan_run_queued(c);
		if (!ret)
			ret = chan_vsock_read(c, conn, hb, sizeof(hb), deadline_ns);
		if (ret != -ECONNREFUSED)
			break;
		vsock_close(c->vsock, conn);
		if (mono_now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		usleep(100);
	}
	if (!ret) {
		memcpy(&h, hb, sizeof(h));
		/* The reply is the guest's: every field is checked before it sizes anything. */
		if (h.magic != PROTO_MAGIC || !(h.flags & PROTO_F_RESP) || h.id != id ||
		    h.type != type || h.len > PROTO_MAX_PAYLOAD) {
			log_msg("snapbox: malformed reply to request type 0x%x (magic 0x%x flags 0x%x "
				"id %u/%u len %u)\n", type, h.magic, h.flags, h.id, id, h.len);
			ret = -EPROTO;
		}
	}
	if (!ret) {
		resp = malloc(h.len ? h.len : 1);
		ret = resp ? chan_vsock_read(c, conn, resp, h.len, deadline_ns) : -ENOMEM;
	}
	vsock_close(c->vsock, conn);
	if (ret) {
		free(resp);
		return ret;
	}
	*reply = resp;
	*reply_len = h.len;
	return (h.flags & PROTO_F_ERR) ? -EREMOTEIO : 0;
}
