/* unit_vsock.c - unit tests for virtio-vsock's host end: connections both ways, credit, resets for malformed traffic, bounded host memory. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <string.h>

#include "proto/le.h"
#include "kvm/mono.h"
#include "tests/common_vdrv.h"

static struct vdrv d;
static struct vdrv_pkt p;

/* What the host listener received. */
static uint8_t heard[1 << 20];
static size_t nheard;
static int ends;

static void listener(void *opaque, const uint8_t *buf, size_t n)
{
	(void)opaque;
	if (!n) {
		ends++;
		return;
	}
	cr_assert_leq(nheard + n, sizeof(heard));
	memcpy(heard + nheard, buf, n);
	nheard += n;
}

static void setup(void)
{
	cr_redirect_stderr();
	nheard = 0;
	ends = 0;
	vdrv_setup(&d, true);
	vdrv_post(&d, VSOCK_Q_RX, VDRV_SLOTS, 4096 + VSOCK_HDR_SIZE);
}

static void teardown(void)
{
	vdrv_teardown(&d);
}

TestSuite(vsock, .init = setup, .fini = teardown);

static uint64_t soon(unsigned ms)
{
	return mono_now_ns() + (uint64_t)ms * 1000000u;
}

/* Recycle one RX buffer the driver consumed, as a guest driver does. */
static bool next(void)
{
	if (!vdrv_recv(&d, &p))
		return false;
	vdrv_post(&d, VSOCK_Q_RX, 1, 4096 + VSOCK_HDR_SIZE);
	return true;
}

Test(vsock, host_connect_sends_request_then_pipelined_data)
{
	int h = vsock_connect(&d.v, 1024);
	cr_assert_geq(h, 0);
	cr_assert_eq(vsock_send(&d.v, h, "hello", 5), 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_REQUEST);
	cr_assert_eq(p.src_cid, VSOCK_HOST_CID);
	cr_assert_eq(p.dst_cid, VSOCK_GUEST_CID);
	cr_assert_eq(p.dst_port, 1024);
	cr_assert_eq(p.type, VSOCK_TYPE_STREAM);
	cr_assert_eq(p.buf_alloc, VSOCK_BUF_ALLOC);
	uint32_t lport = p.src_port;
	cr_assert_geq(lport, VSOCK_FIRST_LOCAL_PORT);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RW);
	cr_assert_eq(p.len, 5);
	cr_assert_eq(p.used_len, VSOCK_HDR_SIZE + 5);
	cr_assert_eq(memcmp(p.data, "hello", 5), 0);
	cr_assert_not(next());

	/* the guest accepts and answers */
	vdrv_send(&d, 1024, lport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536, 0);
	vdrv_send(&d, 1024, lport, VSOCK_OP_RW, 0, "world!", 6, 65536, 5);
	vdrv_send(&d, 1024, lport, VSOCK_OP_SHUTDOWN, VSOCK_SHUT_SEND | VSOCK_SHUT_RCV, NULL, 0, 65536, 5);
	char buf[64];
	cr_assert_eq(vsock_recv(&d.v, h, buf, sizeof(buf), soon(1000)), 6);
	cr_assert_eq(memcmp(buf, "world!", 6), 0);
	cr_assert_eq(vsock_recv(&d.v, h, buf, sizeof(buf), soon(1000)), 0, "end of stream");
	cr_assert_eq(vsock_send(&d.v, h, "x", 1), -EPIPE);
	vsock_close(&d.v, h);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RST);
	cr_assert_eq(p.src_port, lport);
	cr_assert(vsock_is_quiet(&d.v));
	/* a later connection takes a new host port: tuples are never reused */
	int h2 = vsock_connect(&d.v, 1024);
	cr_assert_neq(h2, h, "a stale handle never names the reused slot");
	cr_assert(next());
	cr_assert_eq(p.src_port, lport + 1);
}

Test(vsock, guest_connects_to_the_listening_port)
{
	vsock_listen(&d.v, 9, listener, NULL);
	vdrv_send(&d, 5000, 9, VSOCK_OP_REQUEST, 0, NULL, 0, 65536, 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RESPONSE);
	cr_assert_eq(p.src_port, 9);
	cr_assert_eq(p.dst_port, 5000);
	vdrv_send(&d, 5000, 9, VSOCK_OP_RW, 0, "READY", 5, 65536, 0);
	vdrv_send(&d, 5000, 9, VSOCK_OP_RW, 0, "!", 1, 65536, 0);
	cr_assert_eq(nheard, 6);
	cr_assert_eq(memcmp(heard, "READY!", 6), 0);
	vdrv_send(&d, 5000, 9, VSOCK_OP_SHUTDOWN, VSOCK_SHUT_SEND, NULL, 0, 65536, 0);
	cr_assert_eq(ends, 1);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RST);
	cr_assert(vsock_is_quiet(&d.v));
	/* another port has no listener: refused with a reset */
	vdrv_send(&d, 5001, 10, VSOCK_OP_REQUEST, 0, NULL, 0, 65536, 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RST);
	cr_assert_eq(p.dst_port, 5001);
	cr_assert_eq(d.v.refused, 1);
}

Test(vsock, host_data_waits_for_credit)
{
	static uint8_t big[200000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	int h = vsock_connect(&d.v, 1024);
	cr_assert_eq(vsock_send(&d.v, h, big, sizeof(big)), 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_REQUEST);
	uint32_t lport = p.src_port;
	/* before the RESPONSE, only the assumed credit goes out */
	size_t got = 0;
	while (next()) {
		cr_assert_eq(p.op, VSOCK_OP_RW);
		cr_assert_eq(memcmp(p.data, big + got, p.len), 0);
		got += p.len;
	}
	cr_assert_eq(got, VSOCK_ASSUMED_CREDIT);
	/* the guest grants 100000 bytes in all */
	vdrv_send(&d, 1024, lport, VSOCK_OP_RESPONSE, 0, NULL, 0, 100000, 0);
	while (next())
		got += p.len;
	cr_assert_eq(got, 100000);
	/* it consumed everything: a credit update opens the rest */
	vdrv_send(&d, 1024, lport, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0, 100000, 100000);
	while (next()) {
		cr_assert_eq(memcmp(p.data, big + got, p.len), 0);
		got += p.len;
	}
	cr_assert_eq(got, sizeof(big));
}

Test(vsock, guest_credit_overrun_resets_the_connection)
{
	static uint8_t chunk[60000];
	int h = vsock_connect(&d.v, 1024);
	cr_assert(next());
	uint32_t lport = p.src_port;
	vdrv_send(&d, 1024, lport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536, 0);
	/* 5 x 60000 > the 256 KiB the host offered, nothing read meanwhile */
	for (int i = 0; i < 5; i++)
		vdrv_send(&d, 1024, lport, VSOCK_OP_RW, 0, chunk, sizeof(chunk), 65536, 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RST);
	char buf[16];
	long n;
	size_t total = 0;
	while ((n = vsock_recv(&d.v, h, buf, sizeof(buf), soon(1000))) > 0)
		total += (size_t)n;
	cr_assert_eq(n, -ECONNRESET);
	cr_assert_eq(total, 0, "a reset connection hands over nothing more");
	vsock_close(&d.v, h);
	cr_assert(vsock_is_quiet(&d.v));
}

Test(vsock, malformed_packets_get_resets)
{
	int h = vsock_connect(&d.v, 1024);
	cr_assert(next());
	uint32_t lport = p.src_port;
	vdrv_send(&d, 1024, lport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536, 0);
	/* a payload on a control op */
	vdrv_send(&d, 1024, lport, VSOCK_OP_CREDIT_UPDATE, 0, "x", 1, 65536, 0);
	cr_assert(next());
	cr_assert_eq(p.op, VSOCK_OP_RST);
	char c;
	cr_assert_eq(vsock_recv(&d.v, h, &c, 1, soon(1000)), -ECONNRESET);
	vsock_close(&d.v, h);
	/* unknown op, unknown tuple, a length beyond the buffer */
	vdrv_send(&d, 1, 2, 99, 0, NULL, 0, 0, 0);
	vdrv_send(&d, 1, 2, VSOCK_OP_RW, 0, "abc", 3, 0, 0);
	/* a header claiming 100 bytes over a 3-byte buffer, and a datagram type */
	vdrv_send(&d, 1, 2, VSOCK_OP_RW, 0, "abc", 3, 0, 0);
	uint8_t *hdr = gmem_ptr(&d.mem, vdrv_buf(VSOCK_Q_TX, (d.avail_idx[VSOCK_Q_TX] - 1u) % VDRV_SLOTS), 44);
	le_put32(hdr + 24, 100);
	vdrv_publish(&d, VSOCK_Q_TX, (uint16_t)(2 * ((d.avail_idx[VSOCK_Q_TX] - 1u) % VDRV_SLOTS)), 1);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
	le_put32(hdr + 24, 3);
	le_put16(hdr + 28, 2);
	vdrv_publish(&d, VSOCK_Q_TX, (uint16_t)(2 * ((d.avail_idx[VSOCK_Q_TX] - 2u) % VDRV_SLOTS)), 1);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
	for (int i = 0; i < 5; i++) {
		cr_assert(next());
		cr_assert_eq(p.op, VSOCK_OP_RST);
		cr_assert_eq(p.dst_port, 1);
	}
	/* an RST to an unknown tuple is never answered */
	vdrv_send(&d, 1, 2, VSOCK_OP_RST, 0, NULL, 0, 0, 0);
	cr_assert_not(next());
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

Test(vsock, a_guest_that_never_returns_rx_buffers_keeps_host_memory_bounded)
{
	/* use up the posted buffers and never post more */
	for (int i = 0; i < 1000; i++)
		vdrv_send(&d, 1, 2, VSOCK_OP_RW, 0, "abc", 3, 0, 0);
	cr_assert_leq(d.v.rst_len, 64);
	int h = vsock_connect(&d.v, 1024);
	cr_assert_geq(h, 0);
	static uint8_t mb[1 << 20];
	int rc = 0, sent = 0;
	while ((rc = vsock_send(&d.v, h, mb, sizeof(mb))) == 0)
		sent++;
	cr_assert_eq(rc, -EMSGSIZE);
	cr_assert_eq(sent, VSOCK_TX_MAX / sizeof(mb));
	/* a host reader gives up at its deadline */
	char c;
	uint64_t t0 = mono_now_ns();
	cr_assert_eq(vsock_recv(&d.v, h, &c, 1, soon(50)), -ETIMEDOUT);
	cr_assert_geq(mono_now_ns() - t0, 50000000u);
}

Test(vsock, connection_table_is_capped)
{
	int h[VSOCK_MAX_CONNS];
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		cr_assert_geq(h[i] = vsock_connect(&d.v, 1024), 0);
	cr_assert_eq(vsock_connect(&d.v, 1024), -EAGAIN);
	vsock_listen(&d.v, 9, listener, NULL);
	vdrv_send(&d, 5000, 9, VSOCK_OP_REQUEST, 0, NULL, 0, 65536, 0);
	cr_assert_eq(d.v.refused, 1);
	vsock_close(&d.v, h[3]);
	cr_assert_geq(vsock_connect(&d.v, 1024), 0);
}

Test(vsock, a_dead_guest_ends_every_wait)
{
	int h = vsock_connect(&d.v, 1024);
	vsock_mark_dead(&d.v);
	char c;
	cr_assert_eq(vsock_recv(&d.v, h, &c, 1, soon(10000)), -ESHUTDOWN);
	cr_assert_eq(vsock_send(&d.v, h, "x", 1), -ESHUTDOWN);
	cr_assert_eq(vsock_connect(&d.v, 1024), -ESHUTDOWN);
}

Test(vsock, driver_reset_resets_host_connections)
{
	int h = vsock_connect(&d.v, 1024);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, 0);
	char c;
	cr_assert_eq(vsock_recv(&d.v, h, &c, 1, soon(1000)), -ENOTCONN);
	cr_assert_eq(d.v.t.status, 0);
	cr_assert_eq(vsock_connect(&d.v, 1024), -ENOTCONN);
}
