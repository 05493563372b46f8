/* vsock_conn.h - the vsock device's connection table, shared by its packet side (vsock.c) and its host calls (vsock_conn.c); internal. */
#ifndef SNAPBOX_KVM_VSOCK_CONN_H
#define SNAPBOX_KVM_VSOCK_CONN_H

#include "kvm/vsock.h"

enum vsock_state {
	VSOCK_FREE = 0,
	VSOCK_CONNECTING,   /* host sent REQUEST, no RESPONSE yet */
	VSOCK_ESTABLISHED,
	VSOCK_RESET,        /* reset by either side; kept until the host closes it */
};

struct vsock_conn {
	enum vsock_state state;
	uint32_t gen;            /* bumped on every reuse of the slot, part of the handle */
	bool guest_initiated;    /* to the host's listening port */
	uint32_t lport, pport;   /* host port, guest port */
	/* Control packets owed to the guest, sent before any data. */
	bool need_request, need_response, need_credit;
	/* guest -> host (host-initiated only): pending bytes are rx[rx_head, rx_head + rx_len),
	 * in a buffer grown as data comes, to at most VSOCK_BUF_ALLOC (the credit offered). */
	uint8_t *rx;
	uint32_t rx_head, rx_len, rx_cap;
	uint32_t fwd_cnt;        /* bytes the host consumed */
	uint32_t fwd_sent;       /* fwd_cnt the guest last heard */
	bool peer_eof;           /* the guest will send no more */
	bool peer_no_rcv;        /* the guest will receive no more */
	bool refused;            /* reset before the guest's RESPONSE */
	/* host -> guest */
	uint8_t *tx;
	size_t tx_off, tx_len, tx_cap; /* pending bytes are tx[tx_off, tx_len) */
	uint32_t tx_cnt;         /* bytes sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
};

/* A reset owed to a tuple with no connection (malformed or unknown traffic). */
struct vsock_rst {
	uint32_t lport, pport;
	bool lazy;               /* the host closed: no interrupt just for this */
};

#define VSOCK_RST_QUEUE 64u

/* Packet side, lock held: send what is owed while the guest has RX buffers. */
void vsock_flush_rx(struct vsock *v);

/* Free slot i (its buffers too); a reset for the guest is queued when `rst`. */
void vsock_conn_free(struct vsock *v, struct vsock_conn *c, bool rst);

/*
 * Queue a reset for a tuple (bounded: dropped when the queue is full). A
 * lazy one (the host closing its own connection) raises no interrupt of
 * its own: the guest finds it when it next wakes.
 */
void vsock_queue_rst(struct vsock *v, uint32_t lport, uint32_t pport, bool lazy);

#endif
