/* vsock.c - virtio-vsock's packet side: the guest's TX packets parsed and checked, RX packets built from what the host owes, and the device's state. */
#include "kvm/vsock.h"
#include "kvm/vsock_conn.h"
#include "proto/le.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define VSOCK_STATE_VERSION 1u

/* A packet header, decoded (virtio 1.2 5.10.6: 44 bytes, little-endian, packed). */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

static void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h)
{
	h->src_cid = le_get64(b);
	h->dst_cid = le_get64(b + 8);
	h->src_port = le_get32(b + 16);
	h->dst_port = le_get32(b + 20);
	h->len = le_get32(b + 24);
	h->type = le_get16(b + 28);
	h->op = le_get16(b + 30);
	h->flags = le_get32(b + 32);
	h->buf_alloc = le_get32(b + 36);
	h->fwd_cnt = le_get32(b + 40);
}

static void vsock_hdr_encode(uint8_t *b, uint32_t lport, uint32_t pport, uint32_t len,
			     uint16_t op, uint32_t flags, uint32_t fwd_cnt)
{
	le_put64(b, VSOCK_HOST_CID);
	le_put64(b + 8, VSOCK_GUEST_CID);
	le_put32(b + 16, lport);
	le_put32(b + 20, pport);
	le_put32(b + 24, len);
	le_put16(b + 28, VSOCK_TYPE_STREAM);
	le_put16(b + 30, op);
	le_put32(b + 32, flags);
	le_put32(b + 36, VSOCK_BUF_ALLOC);
	le_put32(b + 40, fwd_cnt);
}

/* A guest connection to the listening port ended: tell the consumer (it may be gone). */
static void vsock_listener_end(struct vsock *v)
{
	if (v->listen_fn)
		v->listen_fn(v->listen_opaque, NULL, 0);
}

static struct vsock_conn *vsock_find(struct vsock *v, uint32_t lport, uint32_t pport)
{
	for (uint32_t i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];
		if (c->state != VSOCK_FREE && c->lport == lport && c->pport == pport)
			return c;
	}
	return NULL;
}

void vsock_queue_rst(struct vsock *v, uint32_t lport, uint32_t pport, bool lazy)
{
	if (!lazy)
		v->rsts_sent++;
	if (v->rst_len == VSOCK_RST_QUEUE)
		return; /* a guest flooding us with garbage loses some resets, never host memory */
	v->rsts[(v->rst_head + v->rst_len++) % VSOCK_RST_QUEUE] =
		(struct vsock_rst){ lport, pport, lazy };
}

/* Bytes connection c may send now: pending, within the guest's credit and one packet. */
static uint32_t vsock_sendable(const struct vsock_conn *c)
{
	if (c->state != VSOCK_CONNECTING && c->state != VSOCK_ESTABLISHED)
		return 0;
	if (c->peer_no_rcv || c->tx_len == c->tx_off)
		return 0;
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;
	uint32_t credit = c->peer_buf_alloc > inflight ? c->peer_buf_alloc - inflight : 0;
	size_t n = c->tx_len - c->tx_off;
	if (n > credit)
		n = credit;
	return n > VSOCK_MAX_PKT ? VSOCK_MAX_PKT : (uint32_t)n;
}

/*
 * Fill one RX buffer with the next packet owed, in this order: resets for
 * unknown tuples, then per connection its control packets before its data
 * (a REQUEST must precede the bytes that follow it). Returns false when
 * nothing is owed. *lazy says the packet needs no interrupt of its own.
 */
static bool vsock_next_packet(struct vsock *v, const struct virtq_elem *e, uint32_t *written,
			      bool *lazy)
{
	uint8_t h[VSOCK_HDR_SIZE];

	*lazy = false;
	if (v->rst_len) {
		struct vsock_rst r = v->rsts[v->rst_head];
		v->rst_head = (v->rst_head + 1) % VSOCK_RST_QUEUE;
		v->rst_len--;
		vsock_hdr_encode(h, r.lport, r.pport, 0, VSOCK_OP_RST, 0, 0);
		*written = virtq_elem_write(e, 0, h, sizeof(h));
		*lazy = r.lazy;
		return true;
	}
	for (uint32_t k = 0; k < VSOCK_MAX_CONNS; k++) {
		uint32_t i = (v->rr + k) % VSOCK_MAX_CONNS;
		struct vsock_conn *c = &v->conns[i];
		uint16_t op = 0;

		if (c->state == VSOCK_FREE || c->state == VSOCK_RESET)
			continue;
		if (c->need_request)
			op = VSOCK_OP_REQUEST, c->need_request = false;
		else if (c->need_response)
			op = VSOCK_OP_RESPONSE, c->need_response = false;
		else if (c->need_credit)
			op = VSOCK_OP_CREDIT_UPDATE, c->need_credit = false;
		if (op) {
			vsock_hdr_encode(h, c->lport, c->pport, 0, op, 0, c->fwd_cnt);
			c->fwd_sent = c->fwd_cnt;
			*written = virtq_elem_write(e, 0, h, sizeof(h));
			return true;
		}
		uint32_t n = vsock_sendable(c);
		if (n > e->in_len - VSOCK_HDR_SIZE)
			n = e->in_len - VSOCK_HDR_SIZE;
		if (n == 0)
			continue;
		vsock_hdr_encode(h, c->lport, c->pport, n, VSOCK_OP_RW, 0, c->fwd_cnt);
		c->fwd_sent = c->fwd_cnt;
		virtq_elem_write(e, 0, h, sizeof(h));
		virtq_elem_write(e, VSOCK_HDR_SIZE, c->tx + c->tx_off, n);
		c->tx_off += n;
		c->tx_cnt += n;
		if (c->tx_off == c->tx_len)
			c->tx_off = c->tx_len = 0;
		v->bytes_tx += n;
		v->rr = i + 1; /* the next search starts after this one */
		*written = VSOCK_HDR_SIZE + n;
		return true;
	}
	return false;
}

/*
 * The next chain of q into e. When none is left, ask the driver to kick on
 * its next one and look once more (closing the race with a chain posted
 * meanwhile). False when the queue is empty, or broken: the device is then
 * failed.
 */
static bool vsock_pop(struct vsock *v, struct virtq *q, struct virtq_elem *e)
{
	for (;;) {
		int rc = virtq_pop(q, v->t.mem, e, v->t.name);
		if (rc > 0)
			return true;
		if (rc < 0) {
			virtio_mmio_fail(&v->t);
			return false;
		}
		if (!virtq_enable_notify(q, v->t.mem))
			return false;
	}
}

void vsock_flush_rx(struct vsock *v)
{
	struct virtq *q = &v->t.q[VSOCK_Q_RX];
	struct virtq_elem e;
	bool pushed = false, urgent = false;

	if (!virtio_mmio_live(&v->t)) {
		pthread_cond_broadcast(&v->cond); /* a failed device ends every wait */
		return;
	}
	while (vsock_pop(v, q, &e)) {
		uint32_t written = 0;
		bool lazy = false;
		if (e.in_len < VSOCK_HDR_SIZE || !vsock_next_packet(v, &e, &written, &lazy)) {
			/* Nothing owed (or a buffer too small for a header): leave it posted. */
			virtq_unpop(q);
			if (e.in_len < VSOCK_HDR_SIZE) {
				log_msg("snapbox: %s: RX buffer of %u bytes cannot hold a header\n",
					v->t.name, e.in_len);
				virtio_mmio_fail(&v->t);
			}
			break;
		}
		virtq_push(q, v->t.mem, e.head, written);
		v->pkts_tx++;
		pushed = true;
		urgent |= !lazy;
	}
	/* Why resets from the host's own close raise nothing: the guest sent
	 * its reply and needs nothing more, and a guest left asleep is also
	 * one that a snapshot finds in the same place every time. */
	if (pushed && urgent && virtq_need_interrupt(q, v->t.mem))
		virtio_mmio_interrupt(&v->t, VIRTIO_ISR_USED);
	pthread_cond_broadcast(&v->cond);
}

/* A guest REQUEST to the host: accepted on the listening port while a slot is free. */
static void vsock_guest_connect(struct vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c = NULL;

	if (h->dst_port == v->listen_port && v->listen_fn)
		for (uint32_t i = 0; i < VSOCK_MAX_CONNS && !c; i++)
			if (v->conns[i].state == VSOCK_FREE)
				c = &v->conns[i];
	if (!c) {
		v->refused++;
		vsock_queue_rst(v, h->dst_port, h->src_port, false);
		return;
	}
	c->gen++;
	c->state = VSOCK_ESTABLISHED;
	c->guest_initiated = true;
	c->lport = h->dst_port;
	c->pport = h->src_port;
	c->need_response = true;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	v->nconns++;
	v->guest_spoke = true;
}

/* Payload of an RW packet for connection c; false when it breaks the credit it was given. */
static bool vsock_take_data(struct vsock *v, struct vsock_conn *c, const struct virtq_elem *e,
			    uint32_t len)
{
	if (c->guest_initiated) {
		/* Listener bytes go straight to the consumer: credit comes back at once. */
		uint8_t buf[4096];
		for (uint32_t off = 0; off < len;) {
			uint32_t k = len - off < sizeof(buf) ? len - off : (uint32_t)sizeof(buf);
			virtq_elem_read(e, VSOCK_HDR_SIZE + off, buf, k);
			if (v->listen_fn)
				v->listen_fn(v->listen_opaque, buf, k);
			off += k;
		}
		c->fwd_cnt += len;
	} else {
		if (len > VSOCK_BUF_ALLOC - c->rx_len)
			return false;
		/* Compact, then grow: most replies are small, so most connections
		 * never hold more than a few KiB of heap. */
		if (c->rx && c->rx_head + c->rx_len + len > c->rx_cap) {
			memmove(c->rx, c->rx + c->rx_head, c->rx_len);
			c->rx_head = 0;
		}
		if (c->rx_len + len > c->rx_cap) {
			uint32_t cap = c->rx_cap ? c->rx_cap : 4096;
			while (cap < c->rx_len + len)
				cap *= 2;
			uint8_t *p = realloc(c->rx, cap);
			if (!p)
				return false; /* out of host memory: the connection is reset */
			c->rx = p;
			c->rx_cap = cap;
		}
		if (len) {
			virtq_elem_read(e, VSOCK_HDR_SIZE, c->rx + c->rx_head + c->rx_len, len);
			c->rx_len += len;
		}
	}
	v->bytes_rx += len;
	/* Credit back once a quarter of the buffer was consumed unannounced. */
	if (c->fwd_cnt - c->fwd_sent >= VSOCK_BUF_ALLOC / 4)
		c->need_credit = true;
	return true;
}

/* One guest packet. Anything malformed resets its connection; the device lives on. */
static void vsock_guest_packet(struct vsock *v, const struct virtq_elem *e)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;

	v->pkts_rx++;
	if (virtq_elem_read(e, 0, raw, sizeof(raw)) != sizeof(raw))
		return; /* no header to answer: dropped */
	vsock_hdr_decode(raw, &h);
	if (h.src_cid != VSOCK_GUEST_CID || h.dst_cid != VSOCK_HOST_CID)
		return; /* not ours: a reset would carry a forged address, so drop it */
	struct vsock_conn *c = vsock_find(v, h.dst_port, h.src_port);
	bool bad = h.type != VSOCK_TYPE_STREAM || h.len > VSOCK_MAX_PKT ||
		   h.len > e->out_len - VSOCK_HDR_SIZE || h.op < VSOCK_OP_REQUEST ||
		   h.op > VSOCK_OP_CREDIT_REQUEST || (h.op != VSOCK_OP_RW && h.len);

	if (h.op == VSOCK_OP_RST) {
		if (c && c->state != VSOCK_RESET) {
			if (c->guest_initiated) {
				vsock_listener_end(v);
				vsock_conn_free(v, c, false);
			} else {
				c->refused = c->state == VSOCK_CONNECTING;
				c->state = VSOCK_RESET;
			}
		}
		return;
	}
	if (bad) {
		if (c) {
			if (c->guest_initiated) {
				vsock_listener_end(v);
				vsock_conn_free(v, c, true);
			} else {
				c->state = VSOCK_RESET;
				vsock_queue_rst(v, h.dst_port, h.src_port, false);
			}
		} else {
			vsock_queue_rst(v, h.dst_port, h.src_port, false);
		}
		return;
	}
	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			vsock_guest_connect(v, &h);
		else
			vsock_queue_rst(v, h.dst_port, h.src_port, false);
		return;
	}
	if (c->state == VSOCK_RESET)
		return;
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == VSOCK_CONNECTING && !c->guest_initiated)
			c->state = VSOCK_ESTABLISHED;
		else
			goto reset;
		break;
	case VSOCK_OP_RW:
		if (!vsock_take_data(v, c, e, h.len))
			goto reset; /* a credit overrun */
		break;
	case VSOCK_OP_SHUTDOWN:
		c->peer_eof |= (h.flags & VSOCK_SHUT_SEND) != 0;
		c->peer_no_rcv |= (h.flags & VSOCK_SHUT_RCV) != 0;
		if (c->guest_initiated && c->peer_eof) {
			/* The guest is done sending: end the stream and free the slot. */
			vsock_listener_end(v);
			vsock_conn_free(v, c, true);
		}
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->need_credit = true;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the credit fields were taken above */
	default: /* a second REQUEST on a live tuple */
		goto reset;
	}
	return;
reset:
	if (c->guest_initiated) {
		vsock_listener_end(v);
		vsock_conn_free(v, c, true);
	} else {
		c->state = VSOCK_RESET;
		vsock_queue_rst(v, c->lport, c->pport, false);
	}
}

/* Drain the TX queue: every packet the guest posted, then whatever they made owed. */
static void vsock_process_tx(struct vsock *v)
{
	struct virtq *q = &v->t.q[VSOCK_Q_TX];
	struct virtq_elem e;
	bool pushed = false;

	while (vsock_pop(v, q, &e)) {
		vsock_guest_packet(v, &e);
		virtq_push(q, v->t.mem, e.head, 0);
		pushed = true;
	}
	if (pushed && virtq_need_interrupt(q, v->t.mem))
		virtio_mmio_interrupt(&v->t, VIRTIO_ISR_USED);
	vsock_flush_rx(v);
}

static void vsock_notify(struct virtio_mmio *t, unsigned queue)
{
	struct vsock *v = (struct vsock *)t;

	/* The event queue's buffers are kept, never used: a restore needs no
	 * TRANSPORT_RESET, because a snapshot is only taken when the device is
	 * quiet and every connection the guest still holds has its RST
	 * waiting in its RX ring (docs/snapshot-sections.md). */
	if (queue == VSOCK_Q_TX)
		vsock_process_tx(v);
	else if (queue == VSOCK_Q_RX)
		vsock_flush_rx(v);
}

/* A driver reset drops every connection: host waiters see a reset. */
static void vsock_reset(struct virtio_mmio *t)
{
	struct vsock *v = (struct vsock *)t;

	for (uint32_t i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];
		if (c->state == VSOCK_FREE)
			continue;
		if (c->guest_initiated) {
			vsock_listener_end(v);
			vsock_conn_free(v, c, false);
		} else {
			c->state = VSOCK_RESET;
		}
	}
	v->rst_len = 0;
	pthread_cond_broadcast(&v->cond);
}

static void vsock_driver_ok(struct virtio_mmio *t)
{
	struct vsock *v = (struct vsock *)t;

	vsock_process_tx(v);
}

static const struct virtio_mmio_ops vsock_ops = {
	.notify = vsock_notify,
	.reset = vsock_reset,
	.driver_ok = vsock_driver_ok,
};

int vsock_init(struct vsock *v, const struct gmem *mem, unsigned irq,
	       virtio_irq_fn irq_fn, void *irq_opaque)
{
	pthread_condattr_t ca;
	int rc;

	memset(v, 0, sizeof(*v));
	v->conns = calloc(VSOCK_MAX_CONNS, sizeof(*v->conns));
	v->rsts = calloc(VSOCK_RST_QUEUE, sizeof(*v->rsts));
	if (!v->conns || !v->rsts) {
		rc = -ENOMEM;
		goto fail_mem;
	}
	rc = virtio_mmio_init(&v->t, "virtio-vsock", mem, VSOCK_DEVICE_ID,
			      1ull << VIRTIO_F_EVENT_IDX, 3, &vsock_ops, v, irq, irq_fn, irq_opaque);
	if (rc)
		goto fail_mem;
	le_put64(v->t.config, VSOCK_GUEST_CID);
	v->t.config_len = 8;
	v->next_port = VSOCK_FIRST_LOCAL_PORT;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = -pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		goto fail_cond;
	return 0;
fail_cond:
	virtio_mmio_fini(&v->t);
fail_mem:
	free(v->rsts);
	free(v->conns);
	return rc;
}

void vsock_fini(struct vsock *v)
{
	if (!v->conns)
		return;
	for (uint32_t i = 0; i < VSOCK_MAX_CONNS; i++) {
		free(v->conns[i].rx);
		free(v->conns[i].tx);
	}
	pthread_cond_destroy(&v->cond);
	virtio_mmio_fini(&v->t);
	free(v->rsts);
	free(v->conns);
	v->conns = NULL;
}

void vsock_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		uint32_t count, bool is_write)
{
	struct vsock *v = opaque;

	virtio_mmio_io(&v->t, offset, data, size, count, is_write);
}

int vsock_save(struct vsock *v, struct sbuf *out)
{
	pthread_mutex_lock(&v->t.lock);
	sbuf_put_u8(out, VSOCK_STATE_VERSION);
	virtio_mmio_save(&v->t, out);
	sbuf_put_u32(out, v->next_port);
	sbuf_put_u8(out, v->guest_spoke ? 1 : 0);
	pthread_mutex_unlock(&v->t.lock);
	return out->err;
}

int vsock_load(struct vsock *v, struct sbuf_reader *in)
{
	int rc = -EPROTO;

	pthread_mutex_lock(&v->t.lock);
	uint8_t version = sbuf_get_u8(in);
	if (version != VSOCK_STATE_VERSION) {
		log_msg("snapbox: virtio-vsock state: unsupported version %u\n", version);
		goto out;
	}
	rc = virtio_mmio_load(&v->t, in);
	if (rc)
		goto out;
	uint32_t port = sbuf_get_u32(in);
	uint8_t spoke = sbuf_get_u8(in);
	if (in->err || port < VSOCK_FIRST_LOCAL_PORT || spoke > 1) {
		log_msg("snapbox: virtio-vsock state: truncated or malformed record\n");
		rc = -EPROTO;
		goto out;
	}
	v->next_port = port;
	v->guest_spoke = spoke;
out:
	pthread_mutex_unlock(&v->t.lock);
	return rc;
}

void vsock_restored(struct vsock *v)
{
	pthread_mutex_lock(&v->t.lock);
	/* A packet posted just before the snapshot is not lost, and the
	 * guest's event index is caught up. */
	vsock_process_tx(v);
	pthread_mutex_unlock(&v->t.lock);
}
