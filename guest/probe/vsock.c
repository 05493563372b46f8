/* vsock.c - the probe's freestanding virtio-mmio vsock driver: a listener on the agent port, boot frames on the event port, one frame stream per connection. */

#include "guest/probe/probe.h"

/* virtio-mmio v2 registers and values (virtio 1.x 4.2.2), the few the probe uses. */
#define VM_MAGIC        0x000
#define VM_VERSION      0x004
#define VM_DEVICE_ID    0x008
#define VM_DRV_FEAT     0x020
#define VM_DRV_FEAT_SEL 0x024
#define VM_QUEUE_SEL    0x030
#define VM_QUEUE_NUM    0x038
#define VM_QUEUE_READY  0x044
#define VM_QUEUE_NOTIFY 0x050
#define VM_STATUS       0x070
#define VM_DESC_LO      0x080
#define VM_AVAIL_LO     0x090
#define VM_USED_LO      0x0a0
#define ST_ACK 1u
#define ST_DRIVER 2u
#define ST_DRIVER_OK 4u
#define ST_FEATURES_OK 8u
#define F_EVENT_IDX (1u << 29)
#define F_VERSION_1_HI 1u      /* bit 32, in the high word */
#define DESC_F_NEXT 1u
#define DESC_F_WRITE 2u

/* virtio-vsock (virtio 1.2 5.10). */
#define HOST_CID 2u
#define GUEST_CID 3u
#define HDR 44u
#define OP_REQUEST 1u
#define OP_RESPONSE 2u
#define OP_RST 3u
#define OP_SHUTDOWN 4u
#define OP_RW 5u
#define OP_CREDIT_UPDATE 6u
#define OP_CREDIT_REQUEST 7u
#define Q_RX 0u
#define Q_TX 1u
#define Q_EVENT 2u

/*
 * Sizes, chosen for a restored clone: every page the probe or the host
 * writes for the first time in a clone costs a copy-on-write fault (tens of
 * microseconds on KVM-PVM), so a request must touch few pages. RX buffers
 * are 2 KiB, packed (a REQUEST and a small frame share one page; the host
 * cuts bigger data to fit). Small TX packets go to 512-byte slots packed in
 * the same way; only big ones take one of 8 big slots. The rings of RX and
 * TX share a page.
 */
#define QSIZE   64u
#define PKT_MAX (64u << 10)              /* payload of one packet, as the host's cap */
#define RXBUF   2048u
#define TXSMALL 512u
#define TXBIG   (HDR + PKT_MAX)
#define TXMAX   8u                       /* TX packets in flight; big slot = index % TXMAX */
#define NEVENT  8u
#define NCONN   8u
#define CONNBUF (PROTO_HDR_SIZE + PROTO_PROBE_MAX_PAYLOAD) /* one whole frame; our buf_alloc */
#define MY_PORT_EVENT 1025u              /* the probe's end of its event connection */

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vq {
	struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
	struct { uint16_t flags, idx, ring[QSIZE], used_event; } avail __attribute__((aligned(4)));
	struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE]; uint16_t avail_event; }
		used __attribute__((aligned(4)));
	uint16_t next_avail;     /* the driver's avail.idx */
	uint16_t kicked;         /* avail.idx at the last kick */
	uint16_t used_seen;      /* used entries consumed */
};

struct conn {
	int used;
	uint32_t gen;            /* bumped on every use of the slot */
	uint32_t port;           /* ours: PROTO_VSOCK_AGENT_PORT, or MY_PORT_EVENT */
	uint32_t peer;           /* the host's */
	uint32_t fwd_cnt, fwd_told, tx_cnt, peer_alloc, peer_fwd;
	uint32_t have;           /* bytes of buf */
	uint8_t buf[CONNBUF];
};

static struct vq vq[3] __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][RXBUF] __attribute__((aligned(4096)));
static uint8_t txsmall[QSIZE][TXSMALL] __attribute__((aligned(4096)));
static uint8_t txbig[TXMAX][TXBIG] __attribute__((aligned(64)));
static uint32_t evbuf[NEVENT];
static struct conn conns[NCONN];
static struct conn *cur;         /* the connection a reply goes to */
static int starve;               /* PROTO_FAULT_RX_STARVE: RX buffers are kept, not given back */
static volatile uint32_t *regs;
int probe_vsock_on;

static uint32_t rd(uint32_t off) { return regs[off / 4]; }
static void wr(uint32_t off, uint32_t v) { regs[off / 4] = v; }
static void mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static uint64_t gpa(const void *p) { return (uint64_t)(uintptr_t)p; }

/* "4K@0xd0010000:5": the device window the VMM put on the command line. */
static uint64_t parse_device(void)
{
	const char *v;
	size_t n, i = 0;

	if (!probe_cmdline_get(probe_boot.cmdline, "virtio_mmio.device", &v, &n))
		return 0;
	while (i < n && v[i] != '@')
		i++;
	if (i + 1 >= n)
		return 0;
	size_t j = i + 1;
	while (j < n && v[j] != ':')
		j++;
	uint64_t base = probe_parse_u64(v + i + 1, j - i - 1);
	/* Below 4 GiB (our identity map), page aligned, outside RAM. */
	if (!base || (base & 0xfff) || base >= (1ull << 32) || probe_ram_range_ok(base, 1))
		return 0;
	return base;
}

/* Kick q when the device asked for it (EVENT_IDX avail_event). */
static void vq_kick(unsigned qi)
{
	struct vq *q = &vq[qi];
	uint16_t old = q->kicked, now = q->next_avail;

	if (old == now)
		return;
	q->kicked = now;
	mb();
	uint16_t ev = *(volatile uint16_t *)&q->used.avail_event;
	if ((uint16_t)(now - ev - 1) < (uint16_t)(now - old))
		wr(VM_QUEUE_NOTIFY, qi);
}

static void vq_post(unsigned qi, uint16_t d)
{
	struct vq *q = &vq[qi];

	q->avail.ring[q->next_avail % QSIZE] = d;
	q->next_avail++;
	__atomic_store_n(&q->avail.idx, q->next_avail, __ATOMIC_RELEASE);
}

static int setup_queue(unsigned qi)
{
	struct vq *q = &vq[qi];

	wr(VM_QUEUE_SEL, qi);
	wr(VM_QUEUE_NUM, QSIZE);
	wr(VM_DESC_LO, (uint32_t)gpa(q->desc));
	wr(VM_DESC_LO + 4, 0);
	wr(VM_AVAIL_LO, (uint32_t)gpa(&q->avail));
	wr(VM_AVAIL_LO + 4, 0);
	wr(VM_USED_LO, (uint32_t)gpa(&q->used));
	wr(VM_USED_LO + 4, 0);
	wr(VM_QUEUE_READY, 1);
	return rd(VM_QUEUE_READY) == 1 ? 0 : -1;
}

/* ---- packets out ---- */

static void put_hdr(uint8_t *b, uint32_t src, uint32_t dst, uint32_t len, uint16_t op,
		    uint32_t flags, uint32_t fwd)
{
	le_put64(b, GUEST_CID);
	le_put64(b + 8, HOST_CID);
	le_put32(b + 16, src);
	le_put32(b + 20, dst);
	le_put32(b + 24, len);
	le_put16(b + 28, 1);     /* STREAM */
	le_put16(b + 30, op);
	le_put32(b + 32, flags);
	le_put32(b + 36, CONNBUF);
	le_put32(b + 40, fwd);
}

/* A free TX slot: the device returns them when it processes a kick (at once, on our VMM). */
static unsigned tx_slot(void)
{
	struct vq *q = &vq[Q_TX];

	for (;;) {
		uint16_t inflight = (uint16_t)(q->next_avail - __atomic_load_n(&q->used.idx, __ATOMIC_ACQUIRE));
		if (inflight < TXMAX)
			return q->next_avail % QSIZE;
		q->kicked = (uint16_t)(q->next_avail - 1); /* force the kick */
		wr(VM_QUEUE_NOTIFY, Q_TX);
		__asm__ volatile("pause");
	}
}

/* The buffer of TX descriptor s for a packet of `total` bytes (in flight ones never share). */
static uint8_t *tx_mem(unsigned s, uint32_t total)
{
	return total <= TXSMALL ? txsmall[s] : txbig[s % TXMAX];
}

static void tx_packet(uint32_t src, uint32_t dst, uint16_t op, uint32_t flags, uint32_t fwd,
		      const void *data, uint32_t len)
{
	unsigned s = tx_slot();
	struct vq *q = &vq[Q_TX];
	uint8_t *b = tx_mem(s, HDR + len);

	put_hdr(b, src, dst, len, op, flags, fwd);
	if (len)
		memcpy(b + HDR, data, len);
	q->desc[s] = (struct vq_desc){ gpa(b), HDR + len, 0, 0 };
	vq_post(Q_TX, (uint16_t)s);
}

static void conn_ctl(struct conn *c, uint16_t op)
{
	/* Never less than a reply already told (it counts its request's frame
	 * as read before consume_last does): the count only grows. */
	uint32_t fwd = (int32_t)(c->fwd_told - c->fwd_cnt) > 0 ? c->fwd_told : c->fwd_cnt;

	tx_packet(c->port, c->peer, op, 0, fwd, 0, 0);
	c->fwd_told = fwd;
}

/* ---- packets in ---- */

static struct conn *find(uint32_t port, uint32_t peer)
{
	for (unsigned i = 0; i < NCONN; i++)
		if (conns[i].used && conns[i].port == port && conns[i].peer == peer)
			return &conns[i];
	return 0;
}

/*
 * Take slot c for a connection. Field by field: assigning a whole struct
 * would also zero its 64 KiB buffer, sixteen pages written for nothing.
 */
static void conn_open(struct conn *c, uint32_t port, uint32_t peer, uint32_t alloc, uint32_t fwd)
{
	c->used = 1;
	c->gen++;
	c->port = port;
	c->peer = peer;
	c->fwd_cnt = c->fwd_told = c->tx_cnt = 0;
	c->peer_alloc = alloc;
	c->peer_fwd = fwd;
	c->have = 0;
}

static void drop(struct conn *c)
{
	c->used = 0;
	if (cur == c)
		cur = 0;
}

static void on_packet(const uint8_t *b, uint32_t got)
{
	if (got < HDR)
		return;
	uint32_t src = le_get32(b + 16), dst = le_get32(b + 20), len = le_get32(b + 24);
	uint16_t op = le_get16(b + 30);
	struct conn *c = find(dst, src);

	if (le_get64(b) != HOST_CID || len > got - HDR)
		return;
	if (c) {
		c->peer_alloc = le_get32(b + 36);
		c->peer_fwd = le_get32(b + 40);
	}
	switch (op) {
	case OP_REQUEST:
		if (c || dst != PROTO_VSOCK_AGENT_PORT)
			break;
		for (unsigned i = 0; i < NCONN && !c; i++)
			if (!conns[i].used)
				c = &conns[i];
		if (!c)
			break;
		conn_open(c, dst, src, le_get32(b + 36), le_get32(b + 40));
		conn_ctl(c, OP_RESPONSE);
		return;
	case OP_RESPONSE:
	case OP_CREDIT_UPDATE:
		if (c)
			return;
		break;
	case OP_RW:
		/* The host keeps within our credit; a stream that breaks it, or a frame header, is reset. */
		if (!c || len > CONNBUF - c->have)
			break;
		memcpy(c->buf + c->have, b + HDR, len);
		c->have += len;
		return;
	case OP_CREDIT_REQUEST:
		if (c) {
			conn_ctl(c, OP_CREDIT_UPDATE);
			return;
		}
		break;
	case OP_SHUTDOWN:
		if (c) {
			conn_ctl(c, OP_RST);
			drop(c);
			return;
		}
		break;
	case OP_RST:
		if (c)
			drop(c);
		return;
	}
	/* Anything else (an unknown tuple or op, a broken stream): reset it. */
	tx_packet(dst, src, OP_RST, 0, 0, 0, 0);
	if (c)
		drop(c);
}

/* Take what the device returned on RX and the event queue; returns the packets seen. */
static unsigned poll_rx(void)
{
	struct vq *q = &vq[Q_RX];
	unsigned n = 0;

	while (q->used_seen != __atomic_load_n(&q->used.idx, __ATOMIC_ACQUIRE)) {
		unsigned k = q->used_seen++ % QSIZE;
		uint32_t id = q->used.ring[k].id, len = q->used.ring[k].len;
		if (id < QSIZE) {
			on_packet(rxbuf[id], len > RXBUF ? RXBUF : len);
			q->desc[id] = (struct vq_desc){ gpa(rxbuf[id]), RXBUF, DESC_F_WRITE, 0 };
			if (!starve)
				vq_post(Q_RX, (uint16_t)id);
		}
		n++;
	}
	struct vq *e = &vq[Q_EVENT];
	while (e->used_seen != __atomic_load_n(&e->used.idx, __ATOMIC_ACQUIRE)) {
		unsigned k = e->used_seen++ % QSIZE;
		uint32_t id = e->used.ring[k].id;
		/* TRANSPORT_RESET (the only event): every connection is gone. */
		if (id < NEVENT && evbuf[id] == 0)
			for (unsigned i = 0; i < NCONN; i++)
				drop(&conns[i]);
		if (id < NEVENT)
			vq_post(Q_EVENT, (uint16_t)id);
		n++;
	}
	/* TX is not kicked here: a RESPONSE queued for a request whose frame
	 * came with it leaves with the reply, in one kick (wait_rx kicks what
	 * is left before sleeping). */
	if (n) {
		vq_kick(Q_RX);
		vq_kick(Q_EVENT);
	}
	return n;
}

/* Sleep until the device returns something (probe.poll: spin). */
static void wait_rx(void)
{
	struct vq *r = &vq[Q_RX], *e = &vq[Q_EVENT];

	vq_kick(Q_TX);
	if (probe_boot.poll) {
		__asm__ volatile("pause");
		return;
	}
	/* Interrupt on the next used entry of either queue, then check once more with IF=0. */
	r->avail.used_event = r->used_seen;
	e->avail.used_event = e->used_seen;
	mb();
	probe_io_wait_mem(&r->used.idx, r->used_seen, &e->used.idx, e->used_seen);
}

/* ---- the probe's channel interface (serial.c delegates here) ---- */

int probe_vsock_init(void)
{
	uint64_t base = parse_device();

	/* probe.channel=uart: the named test mode that keeps frames on COM2, for
	 * the tests of a hostile guest's UART (the host's COM2 path). */
	const char *v;
	size_t n;
	if (!base || (probe_cmdline_get(probe_boot.cmdline, "probe.channel", &v, &n) && n == 4 &&
		      !memcmp(v, "uart", 4)))
		return -1;
	regs = probe_gpa_ptr(base);
	if (rd(VM_MAGIC) != 0x74726976u || rd(VM_VERSION) != 2 || rd(VM_DEVICE_ID) != 19)
		return -1;
	wr(VM_STATUS, 0);
	wr(VM_STATUS, ST_ACK | ST_DRIVER);
	wr(VM_DRV_FEAT_SEL, 0);
	wr(VM_DRV_FEAT, F_EVENT_IDX);
	wr(VM_DRV_FEAT_SEL, 1);
	wr(VM_DRV_FEAT, F_VERSION_1_HI);
	wr(VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	if (!(rd(VM_STATUS) & ST_FEATURES_OK))
		return -1;
	for (unsigned qi = 0; qi < 3; qi++)
		if (setup_queue(qi))
			return -1;
	/* No TX completions wanted: slots are reclaimed by looking. */
	vq[Q_TX].avail.used_event = 0x8000;
	for (unsigned i = 0; i < QSIZE; i++) {
		vq[Q_RX].desc[i] = (struct vq_desc){ gpa(rxbuf[i]), RXBUF, DESC_F_WRITE, 0 };
		vq_post(Q_RX, (uint16_t)i);
	}
	for (unsigned i = 0; i < NEVENT; i++) {
		vq[Q_EVENT].desc[i] = (struct vq_desc){ gpa(&evbuf[i]), 4, DESC_F_WRITE, 0 };
		vq_post(Q_EVENT, (uint16_t)i);
	}
	wr(VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	/* The buffers were there before DRIVER_OK: nothing to kick. */
	vq[Q_RX].kicked = vq[Q_RX].next_avail;
	vq[Q_EVENT].kicked = vq[Q_EVENT].next_avail;
	/* The event connection: what is sent before the first request goes there. */
	conn_open(&conns[0], MY_PORT_EVENT, PROTO_VSOCK_EVENT_PORT, 65536, 0);
	cur = &conns[0];
	tx_packet(MY_PORT_EVENT, PROTO_VSOCK_EVENT_PORT, OP_REQUEST, 0, 0, 0, 0);
	probe_vsock_on = 1;
	return 0;
}

/* The frame handed out last, consumed at the next call (its payload is read in place until then). */
static struct conn *last;
static uint32_t last_gen, last_total;

/*
 * Send n bytes on the current connection as RW packets within the host's
 * credit, then kick once. With `end`, the connection is shut down in the
 * same kick (the boot connection: READY and the close arrive together, so
 * a snapshot right after READY never finds it open).
 */
void probe_vsock_send(const uint8_t *p, size_t n, int end)
{
	while (n && cur) {
		uint32_t credit = cur->peer_alloc - (cur->tx_cnt - cur->peer_fwd);
		if (credit == 0) {
			vq_kick(Q_TX);
			if (!poll_rx())
				wait_rx();
			continue;
		}
		uint32_t k = n < PKT_MAX ? (uint32_t)n : PKT_MAX;
		if (k > credit)
			k = credit;
		/* A reply ends its request: the frame it answers counts as read
		 * (consume_last frees it at the next call), so the host learns of
		 * the space here and no CREDIT_UPDATE costs a kick. The host sends
		 * one frame per connection and nothing after it; more would be
		 * past the space truly free and reset the connection. */
		uint32_t fwd = cur->fwd_cnt + (cur == last && cur->gen == last_gen ? last_total : 0);
		tx_packet(cur->port, cur->peer, OP_RW, 0, fwd, p, k);
		cur->fwd_told = fwd;
		cur->tx_cnt += k;
		p += k;
		n -= k;
	}
	if (end && cur) {
		tx_packet(cur->port, cur->peer, OP_SHUTDOWN, 3, cur->fwd_cnt, 0, 0);
		drop(cur);
	}
	vq_kick(Q_TX);
}


static void consume_last(void)
{
	struct conn *c = last;

	last = 0;
	if (!c || !c->used || c->gen != last_gen)
		return;   /* reset meanwhile (and maybe reused): nothing of it is left */
	memmove(c->buf, c->buf + last_total, c->have - last_total);
	c->have -= last_total;
	c->fwd_cnt += last_total;
	/* Tell the host about freed space only when it may be waiting for it. */
	if (c->fwd_cnt - c->fwd_told >= CONNBUF / 2) {
		conn_ctl(c, OP_CREDIT_UPDATE);
		vq_kick(Q_TX);
	}
}

/*
 * Block until some connection holds a whole frame; it becomes the current
 * one (replies go to it) and its payload is returned in place, valid until
 * the next call. A header with bad magic or an oversize length resets that
 * connection: on vsock nothing is lost, so nothing is resynced.
 */
const uint8_t *probe_vsock_rx_frame(struct proto_hdr *h)
{
	consume_last();
	for (;;) {
		for (unsigned i = 0; i < NCONN; i++) {
			struct conn *c = &conns[i];
			if (!c->used || c->port != PROTO_VSOCK_AGENT_PORT || c->have < PROTO_HDR_SIZE)
				continue;
			memcpy(h, c->buf, sizeof(*h));
			if (h->magic != PROTO_MAGIC || h->len > PROTO_PROBE_MAX_PAYLOAD) {
				tx_packet(c->port, c->peer, OP_RST, 0, 0, 0, 0);
				vq_kick(Q_TX);
				drop(c);
				continue;
			}
			uint32_t total = PROTO_HDR_SIZE + h->len;
			if (c->have < total)
				continue;
			cur = last = c;
			last_gen = c->gen;
			last_total = total;
			return c->buf + PROTO_HDR_SIZE;
		}
		if (!poll_rx())
			wait_rx();
	}
}

/* ---- deliberate faults on the channel itself (PROTO_FAULT_VQ_* and friends) ---- */

/* Publish TX descriptor d as the next chain and kick, whatever it holds. */
static void fault_kick(unsigned d)
{
	vq_post(Q_TX, (uint16_t)d);
	vq[Q_TX].kicked = (uint16_t)(vq[Q_TX].next_avail - 1);
	wr(VM_QUEUE_NOTIFY, Q_TX);
}

/* Returns 1 when the fault was one of the channel's (it replied or must not reply). */
int probe_vsock_fault(uint32_t kind, uint64_t arg)
{
	struct vq *q = &vq[Q_TX];
	unsigned s;

	if (!probe_vsock_on)
		return 0;
	switch (kind) {
	case PROTO_FAULT_VQ_LOOP:
		s = tx_slot();
		q->desc[s] = (struct vq_desc){ gpa(txsmall[s]), HDR, DESC_F_NEXT, (uint16_t)s };
		fault_kick(s);
		return 1;
	case PROTO_FAULT_VQ_WILD:
		s = tx_slot();
		q->desc[s] = (struct vq_desc){ arg, HDR + 64, 0, 0 };
		fault_kick(s);
		return 1;
	case PROTO_FAULT_VQ_AVAIL_JUMP:
		q->next_avail = (uint16_t)(q->next_avail + QSIZE + 1);
		__atomic_store_n(&q->avail.idx, q->next_avail, __ATOMIC_RELEASE);
		wr(VM_QUEUE_NOTIFY, Q_TX);
		return 1;
	case PROTO_FAULT_NOTIFY_STORM:
		for (uint64_t i = 0; i < arg; i++)
			wr(VM_QUEUE_NOTIFY, (uint32_t)(i % 8));
		return 0;   /* the caller replies */
	case PROTO_FAULT_VSOCK_BAD: {
		uint8_t b[HDR + 16];
		memset(b, 0, sizeof(b));
		tx_packet(7000, 7001, 99, 0, 0, 0, 0);              /* unknown op */
		tx_packet(7000, 7001, OP_RW, 0, 0, b, 16);          /* RW on no connection */
		s = tx_slot();                                      /* a length past its buffer */
		put_hdr(txsmall[s], 7002, 7003, 60000, OP_RW, 0, 0);
		q->desc[s] = (struct vq_desc){ gpa(txsmall[s]), HDR + 8, 0, 0 };
		vq_post(Q_TX, (uint16_t)s);
		s = tx_slot();                                      /* a datagram type */
		put_hdr(txsmall[s], 7004, 7005, 0, OP_REQUEST, 0, 0);
		le_put16(txsmall[s] + 28, 3);
		q->desc[s] = (struct vq_desc){ gpa(txsmall[s]), HDR, 0, 0 };
		vq_post(Q_TX, (uint16_t)s);
		vq_kick(Q_TX);
		return 0;
	}
	case PROTO_FAULT_CREDIT_OVERRUN: {
		static uint8_t junk[PKT_MAX];
		for (uint64_t sent = 0; cur && sent < arg; sent += PKT_MAX) {
			tx_packet(cur->port, cur->peer, OP_RW, 0, cur->fwd_cnt, junk, PKT_MAX);
			cur->tx_cnt += PKT_MAX;
		}
		vq_kick(Q_TX);
		return 1;
	}
	case PROTO_FAULT_RX_STARVE:
		starve = 1;
		return 0;
	}
	return 0;
}
