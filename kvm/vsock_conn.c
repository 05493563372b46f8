/* vsock_conn.c - virtio-vsock's host end: connect, send, receive and close from host threads, with deadlines. */
#include "kvm/vsock.h"
#include "kvm/vsock_conn.h"
#include "kvm/log.h"
#include "kvm/mono.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Handles carry the slot's generation, so a stale handle never reaches a reused slot. */
#define VSOCK_H_SLOT(h)  ((uint32_t)(h) & 0xffu)
#define VSOCK_H_GEN(h)   ((uint32_t)(h) >> 8)

static struct vsock_conn *vsock_conn_get(struct vsock *v, int h)
{
	if (h < 0 || VSOCK_H_SLOT(h) >= VSOCK_MAX_CONNS)
		return NULL;
	struct vsock_conn *c = &v->conns[VSOCK_H_SLOT(h)];
	if (c->state == VSOCK_FREE || c->guest_initiated ||
	    (c->gen & 0x7fffffu) != VSOCK_H_GEN(h))
		return NULL;
	return c;
}

void vsock_conn_free(struct vsock *v, struct vsock_conn *c, bool rst)
{
	if (c->state == VSOCK_FREE)
		return;
	/* Lazy only when the host closes a connection with nothing left either
	 * way: a guest that may still be sending (or waiting for credit) must
	 * hear at once. */
	bool lazy = !c->guest_initiated && c->state == VSOCK_ESTABLISHED && c->rx_len == 0 &&
		    c->tx_off == c->tx_len;
	if (rst)
		vsock_queue_rst(v, c->lport, c->pport, lazy);
	uint8_t *rx = c->rx, *tx = c->tx;
	size_t tx_cap = c->tx_cap;
	uint32_t gen = c->gen, rx_cap = c->rx_cap;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	/* The buffers stay with the slot for its next connection (bounded: one per slot). */
	c->rx = rx;
	c->rx_cap = rx_cap;
	c->tx = tx;
	c->tx_cap = tx_cap;
	v->nconns--;
}

/*
 * Why the device cannot carry traffic: -ESHUTDOWN (the guest stopped), -EIO
 * (the guest broke its queues: NEEDS_RESET), -ENOTCONN (its driver is not
 * up, or reset the device); 0 when it can. Lock held.
 */
static int vsock_dev_err(struct vsock *v)
{
	if (v->dead)
		return -ESHUTDOWN;
	if (v->t.status & VIRTIO_STATUS_NEEDS_RESET)
		return -EIO;
	return virtio_mmio_live(&v->t) ? 0 : -ENOTCONN;
}

void vsock_listen(struct vsock *v, uint32_t port, vsock_listen_fn fn, void *opaque)
{
	pthread_mutex_lock(&v->t.lock);
	v->listen_port = port;
	v->listen_fn = port ? fn : NULL;
	v->listen_opaque = opaque;
	pthread_mutex_unlock(&v->t.lock);
}

int vsock_connect(struct vsock *v, uint32_t port)
{
	int rc;

	pthread_mutex_lock(&v->t.lock);
	rc = vsock_dev_err(v);
	if (rc)
		goto out;
	struct vsock_conn *c = NULL;
	uint32_t slot;
	for (slot = 0; slot < VSOCK_MAX_CONNS; slot++)
		if (v->conns[slot].state == VSOCK_FREE) {
			c = &v->conns[slot];
			break;
		}
	if (!c) {
		rc = -EAGAIN;
		goto out;
	}
	c->gen++;
	c->state = VSOCK_CONNECTING;
	c->lport = v->next_port++;
	if (v->next_port == 0) /* after 3 billion connections in one VM: start over */
		v->next_port = VSOCK_FIRST_LOCAL_PORT;
	c->pport = port;
	c->need_request = true;
	c->peer_buf_alloc = VSOCK_ASSUMED_CREDIT;
	v->nconns++;
	rc = (int)((c->gen & 0x7fffffu) << 8 | slot);
	vsock_flush_rx(v);
out:
	pthread_mutex_unlock(&v->t.lock);
	return rc;
}

/* Why a connection cannot carry more, as a negative errno; 0 when it can. Lock held. */
static int vsock_conn_err(struct vsock *v, const struct vsock_conn *c)
{
	int err = vsock_dev_err(v);

	if (err)
		return err;
	if (!c || c->state == VSOCK_RESET)
		return c && c->refused ? -ECONNREFUSED : -ECONNRESET;
	return 0;
}

int vsock_send(struct vsock *v, int h, const void *buf, size_t n)
{
	return vsock_send2(v, h, buf, n, NULL, 0);
}

int vsock_send2(struct vsock *v, int h, const void *a, size_t na, const void *b, size_t nb)
{
	size_t n = na + nb;
	int rc;

	pthread_mutex_lock(&v->t.lock);
	struct vsock_conn *c = vsock_conn_get(v, h);
	rc = vsock_conn_err(v, c);
	if (rc)
		goto out;
	if (c->peer_no_rcv) {
		rc = -EPIPE;
		goto out;
	}
	size_t pending = c->tx_len - c->tx_off;
	if (n > VSOCK_TX_MAX - pending) {
		rc = -EMSGSIZE;
		goto out;
	}
	/* Compact, then grow: pending bytes start at 0 and the buffer holds them all. */
	if (c->tx_off) {
		memmove(c->tx, c->tx + c->tx_off, pending);
		c->tx_off = 0;
		c->tx_len = pending;
	}
	if (pending + n > c->tx_cap) {
		size_t cap = c->tx_cap ? c->tx_cap : 4096;
		while (cap < pending + n)
			cap *= 2;
		uint8_t *p = realloc(c->tx, cap);
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		c->tx = p;
		c->tx_cap = cap;
	}
	if (na)
		memcpy(c->tx + c->tx_len, a, na);
	if (nb)
		memcpy(c->tx + c->tx_len + na, b, nb);
	c->tx_len += n;
	vsock_flush_rx(v);
out:
	pthread_mutex_unlock(&v->t.lock);
	return rc;
}

long vsock_recv(struct vsock *v, int h, void *buf, size_t n, uint64_t deadline_ns)
{
	long rc;
	struct timespec ts = { (time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u) };

	pthread_mutex_lock(&v->t.lock);
	for (;;) {
		struct vsock_conn *c = vsock_conn_get(v, h);
		/* A reset ends the stream at once: what it had buffered is not handed over. */
		if (c && c->rx_len && c->state != VSOCK_RESET) {
			uint32_t k = n < c->rx_len ? (uint32_t)n : c->rx_len;
			memcpy(buf, c->rx + c->rx_head, k);
			c->rx_head = c->rx_len == k ? 0 : c->rx_head + k;
			c->rx_len -= k;
			c->fwd_cnt += k;
			/* Tell the guest once a quarter of the buffer is free again unannounced. */
			if (c->fwd_cnt - c->fwd_sent >= VSOCK_BUF_ALLOC / 4) {
				c->need_credit = true;
				vsock_flush_rx(v);
			}
			rc = (long)k;
			break;
		}
		if (c && c->peer_eof && c->state != VSOCK_RESET) {
			rc = 0;
			break;
		}
		rc = vsock_conn_err(v, c);
		if (rc)
			break;
		if (pthread_cond_timedwait(&v->cond, &v->t.lock, &ts) == ETIMEDOUT &&
		    mono_now_ns() >= deadline_ns) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&v->t.lock);
	return rc;
}

void vsock_close(struct vsock *v, int h)
{
	pthread_mutex_lock(&v->t.lock);
	struct vsock_conn *c = vsock_conn_get(v, h);
	if (c) {
		/* A reset tells the guest at once; nothing the guest still sends is wanted. */
		vsock_conn_free(v, c, c->state != VSOCK_RESET);
		vsock_flush_rx(v);
	}
	pthread_mutex_unlock(&v->t.lock);
}

bool vsock_guest_spoke(struct vsock *v)
{
	pthread_mutex_lock(&v->t.lock);
	bool live = v->guest_spoke;
	pthread_mutex_unlock(&v->t.lock);
	return live;
}

void vsock_mark_dead(struct vsock *v)
{
	pthread_mutex_lock(&v->t.lock);
	v->dead = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->t.lock);
}

bool vsock_is_quiet(struct vsock *v)
{
	pthread_mutex_lock(&v->t.lock);
	bool quiet = v->nconns == 0 && v->rst_len == 0;
	pthread_mutex_unlock(&v->t.lock);
	return quiet;
}
