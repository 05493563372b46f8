/* vsock.h - virtio-vsock (virtio device 19) whose host end lives in the library: a connection table, credit flow control, and blocking calls for host threads. */
#ifndef SNAPBOX_KVM_VSOCK_H
#define SNAPBOX_KVM_VSOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/virtio_mmio.h"
#include "proto/wire.h"

#define VSOCK_DEVICE_ID     19u
#define VSOCK_HOST_CID      2u
#define VSOCK_GUEST_CID     3u
#define VSOCK_HDR_SIZE      44u

/* Queues. */
#define VSOCK_Q_RX          0u   /* host -> guest packets, buffers posted by the guest */
#define VSOCK_Q_TX          1u   /* guest -> host packets */
#define VSOCK_Q_EVENT       2u   /* buffers kept, never used (see vsock_restored) */

/* Packet ops (virtio 1.2 5.10.6). */
#define VSOCK_OP_REQUEST        1u
#define VSOCK_OP_RESPONSE       2u
#define VSOCK_OP_RST            3u
#define VSOCK_OP_SHUTDOWN       4u
#define VSOCK_OP_RW             5u
#define VSOCK_OP_CREDIT_UPDATE  6u
#define VSOCK_OP_CREDIT_REQUEST 7u
#define VSOCK_TYPE_STREAM       1u
#define VSOCK_SHUT_RCV          1u
#define VSOCK_SHUT_SEND         2u
#define VSOCK_EVENT_TRANSPORT_RESET 0u

/* Host limits. */
#define VSOCK_BUF_ALLOC     (256u << 10) /* what the host can buffer per connection, guest -> host */
#define VSOCK_MAX_CONNS     64u          /* connections per VM, both directions */
#define VSOCK_MAX_PKT       (64u << 10)  /* payload of one packet, either way */
#define VSOCK_TX_MAX        (8u << 20)   /* host bytes queued on one connection, not yet sent */
/*
 * Credit the host assumes a guest listener has before its RESPONSE says so,
 * so a request's bytes can follow its REQUEST in the same interrupt: one
 * whole frame of the probe's largest (a 64 KiB ECHO then needs no second
 * round trip for its last 16 bytes). Both guests keep at least this much
 * receive buffer (docs/agent-protocol.md).
 */
#define VSOCK_ASSUMED_CREDIT (PROTO_HDR_SIZE + PROTO_PROBE_MAX_PAYLOAD)
/* Host ports for host-initiated connections count up from here and are never reused. */
#define VSOCK_FIRST_LOCAL_PORT 0x40000000u

/* Bytes a guest sent to a host listening port (lock held; must not block). n 0 = end of stream. */
typedef void (*vsock_listen_fn)(void *opaque, const uint8_t *buf, size_t n);

struct vsock_conn;
struct vsock_rst;

struct vsock {
	struct virtio_mmio t;         /* first: the transport and its lock */
	pthread_cond_t cond;          /* CLOCK_MONOTONIC; broadcast on every connection change */
	struct vsock_conn *conns;     /* VSOCK_MAX_CONNS slots */
	uint32_t nconns;
	uint32_t next_port;           /* next host port for host-initiated connections */
	uint32_t listen_port;         /* one host port guests may connect to, 0 = none */
	vsock_listen_fn listen_fn;
	void *listen_opaque;
	struct vsock_rst *rsts;       /* resets owed to tuples that have no connection (a ring) */
	unsigned rst_head, rst_len;
	unsigned rr;                  /* where the next data packet's search starts (fairness) */
	bool dead;                    /* the guest stopped: every wait ends */
	bool guest_spoke;             /* the guest once connected to the listening port (saved) */
	/* Counts. */
	uint64_t pkts_rx, pkts_tx;    /* packets to and from the guest */
	uint64_t bytes_rx, bytes_tx;  /* payload bytes to and from the guest */
	uint64_t rsts_sent;           /* resets for malformed or unknown traffic */
	uint64_t refused;             /* connections refused: no listener, table full */
};

/*
 * Set up the device on `mem` with its interrupt on `irq`. No connection
 * exists until the driver is up. Returns 0 or -errno (-ENOMEM).
 */
int vsock_init(struct vsock *v, const struct gmem *mem, unsigned irq,
	       virtio_irq_fn irq_fn, void *irq_opaque);
void vsock_fini(struct vsock *v);

/*
 * Accept guest connections to host port `port`; their bytes go to fn, in
 * order, with the lock held. One listener per device; port 0 removes it.
 */
void vsock_listen(struct vsock *v, uint32_t port, vsock_listen_fn fn, void *opaque);

/*
 * Open a connection to the guest's `port`. Returns a connection handle
 * (>= 0), -ESHUTDOWN when the guest stopped, -EIO when it broke its queues
 * (the device needs a reset), -ENOTCONN when its driver is not up, -EAGAIN
 * when VSOCK_MAX_CONNS are open. The REQUEST goes out at once;
 * vsock_send may queue bytes before the guest answers.
 */
int vsock_connect(struct vsock *v, uint32_t port);

/*
 * Queue n bytes for the guest on connection h; they go out as guest
 * buffers and credit allow. Returns 0, -EMSGSIZE beyond VSOCK_TX_MAX
 * queued, -ECONNRESET when the connection was reset, -EPIPE after the guest
 * shut its receive side, or vsock_connect's device errors.
 */
int vsock_send(struct vsock *v, int h, const void *buf, size_t n);
/* vsock_send of a then b as one run of bytes (a frame's header and its payload, say). */
int vsock_send2(struct vsock *v, int h, const void *a, size_t na, const void *b, size_t nb);

/*
 * Wait until connection h has bytes, end of stream or an error, or until
 * the CLOCK_MONOTONIC deadline_ns. Returns bytes copied (> 0), 0 at end of
 * stream, -ETIMEDOUT, -ECONNREFUSED (the guest reset it before accepting:
 * nothing was read, so it may be retried), -ECONNRESET (reset later),
 * or vsock_connect's device errors. Bytes buffered before a reset are
 * dropped, as TCP drops them. Reading returns credit to the guest.
 */
long vsock_recv(struct vsock *v, int h, void *buf, size_t n, uint64_t deadline_ns);

/* Close connection h: the guest gets a reset, and the slot is freed. */
void vsock_close(struct vsock *v, int h);

/*
 * The guest speaks vsock: it once connected to the host's listening port
 * (a kernel with the driver but an agent on another channel never does).
 * Its requests then go on vsock whatever happens to the device, so a guest
 * that breaks it gets errors, not a silent fall-back.
 */
bool vsock_guest_spoke(struct vsock *v);

/* The guest stopped: every blocked and later call fails with -ESHUTDOWN. */
void vsock_mark_dead(struct vsock *v);

/*
 * True when the host holds nothing of the guest's: no connection open and
 * no reset owed. A snapshot taken then loses nothing: what the guest
 * posted on TX and did not kick is in guest RAM and is replayed on restore.
 */
bool vsock_is_quiet(struct vsock *v);

/* Bus callback: the transport's register window; `opaque` is the struct vsock. */
void vsock_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		uint32_t count, bool is_write);

/*
 * Save the transport, the next host port and whether the guest spoke;
 * connections are never saved (vsock_is_quiet first). Format in
 * docs/snapshot-sections.md.
 */
int vsock_save(struct vsock *v, struct sbuf *out);

/*
 * Load what vsock_save wrote. Touches no guest RAM, so it also checks a
 * snapshot before any VM exists. -EPROTO for anything malformed.
 */
int vsock_load(struct vsock *v, struct sbuf_reader *in);

/*
 * After a load, once guest RAM is live: replay the TX queue once, so a
 * packet posted just before the snapshot is not lost and the guest's event
 * index is caught up. No TRANSPORT_RESET is sent: the snapshot was quiet,
 * so every connection the guest still holds has its RST in its RX ring.
 * Called after the vCPU resumes, so a restore takes no page fault before
 * its first KVM_RUN.
 */
void vsock_restored(struct vsock *v);

#endif
