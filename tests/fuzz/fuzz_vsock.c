/* fuzz_vsock.c - libFuzzer target: guest-written virtqueue rings and vsock packets (the input is guest RAM), walked by the device, with host calls between. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/le.h"
#include "kvm/vsock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Guest RAM as the input lays it out: byte 0 picks options, the next
 * FZ_RINGS bytes land at FZ_RING_BASE (the three queues' rings, below), the
 * rest at FZ_BUF_BASE, where descriptors in the corpus point.
 */
#define FZ_RAM       (16u << 20)
#define FZ_RING_BASE 0x10000u
#define FZ_RINGS     0x3000u
#define FZ_BUF_BASE  0x20000u
#define FZ_QSIZE     32u
#define FZ_OPT_EVENT_IDX 1u
#define FZ_OPT_CONNECT   2u   /* a host connection with bytes queued before the guest runs */
#define FZ_OPT_LISTEN    4u

/* Queue q's rings: desc at +0, avail at +0x200, used at +0x300, 0x1000 per queue. */
static uint64_t fz_ring(unsigned q, unsigned part) { return FZ_RING_BASE + q * 0x1000u + part; }

static struct gmem fz_mem;
static struct vsock fz_dev, fz_dev2;
static uint64_t fz_heard;

static void fz_listen(void *opaque, const uint8_t *buf, size_t n)
{
	(void)opaque;
	for (size_t i = 0; i < n; i++)
		fz_heard = fz_heard * 31 + buf[i]; /* every byte read: ASan sees an overread */
}

static void fz_w(struct vsock *v, uint32_t off, uint32_t val)
{
	uint8_t b[4];
	le_put32(b, val);
	vsock_mmio(v, off, b, 4, 1, true);
}

static uint32_t fz_r(struct vsock *v, uint32_t off)
{
	uint8_t b[4];
	vsock_mmio(v, off, b, 4, 1, false);
	return le_get32(b);
}

/* The driver's set-up, as Linux does it, up to DRIVER_OK. */
static void fz_setup(struct vsock *v, bool event_idx)
{
	fz_w(v, VIRTIO_MMIO_STATUS, 0);
	fz_w(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fz_w(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fz_w(v, VIRTIO_MMIO_DRIVER_FEATURES, event_idx ? 1u << VIRTIO_F_EVENT_IDX : 0);
	fz_w(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fz_w(v, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	fz_w(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	     VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++) {
		fz_w(v, VIRTIO_MMIO_QUEUE_SEL, q);
		fz_w(v, VIRTIO_MMIO_QUEUE_NUM, FZ_QSIZE);
		fz_w(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)fz_ring(q, 0));
		fz_w(v, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)fz_ring(q, 0x200));
		fz_w(v, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)fz_ring(q, 0x300));
		fz_w(v, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	fz_w(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (gmem_init(&fz_mem, FZ_RAM) || vsock_init(&fz_dev, &fz_mem, 5, NULL, NULL) ||
	    vsock_init(&fz_dev2, &fz_mem, 5, NULL, NULL))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t opt = data[0];
	size_t rings = size - 1 < FZ_RINGS ? size - 1 : FZ_RINGS;
	size_t bufs = size - 1 - rings;
	if (bufs > FZ_RAM - FZ_BUF_BASE)
		bufs = FZ_RAM - FZ_BUF_BASE;

	/* The guest's memory is written before the device is live, as the driver would. */
	memset(fz_mem.host + FZ_RING_BASE, 0, FZ_BUF_BASE - FZ_RING_BASE);
	fz_setup(&fz_dev, opt & FZ_OPT_EVENT_IDX);
	vsock_listen(&fz_dev, (opt & FZ_OPT_LISTEN) ? 9 : 0, fz_listen, NULL);
	int h = -1;
	if (opt & FZ_OPT_CONNECT) {
		h = vsock_connect(&fz_dev, 1024);
		if (h >= 0)
			vsock_send(&fz_dev, h, "ping", 4);
	}
	memcpy(fz_mem.host + FZ_RING_BASE, data + 1, rings);
	memcpy(fz_mem.host + FZ_BUF_BASE, data + 1 + rings, bufs);

	for (unsigned q = 0; q < 3; q++)
		fz_w(&fz_dev, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	if (h >= 0) {
		char buf[64];
		long n = vsock_recv(&fz_dev, h, buf, sizeof(buf), 0);
		if (n > (long)sizeof(buf))
			abort();
		vsock_close(&fz_dev, h);
	}
	fz_w(&fz_dev, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
	fz_w(&fz_dev, VIRTIO_MMIO_INTERRUPT_ACK, fz_r(&fz_dev, VIRTIO_MMIO_INTERRUPT_STATUS));

	/* Host memory stays bounded whatever the guest sent. */
	if (fz_dev.rst_len > 64 || fz_dev.nconns > VSOCK_MAX_CONNS)
		abort();

	/* What the device saves, a second device loads (its queues passed the same checks). */
	struct sbuf s;
	struct sbuf_reader r;
	sbuf_init(&s);
	if (vsock_save(&fz_dev, &s))
		abort();
	sbuf_reader_init(&r, s.data, s.len);
	if (vsock_load(&fz_dev2, &r))
		abort();
	vsock_restored(&fz_dev2);
	sbuf_fini(&s);
	/* A driver reset drops what the guest opened: the next input starts from an empty table. */
	fz_w(&fz_dev, VIRTIO_MMIO_STATUS, 0);
	fz_w(&fz_dev2, VIRTIO_MMIO_STATUS, 0);
	if (fz_dev.nconns)
		abort();
	return 0;
}
