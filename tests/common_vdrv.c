/* common_vdrv.c - a fake virtio-vsock driver for unit tests: what Linux's virtio_mmio and vsock drivers do, in a few calls. */
#include "tests/common_vdrv.h"
#include "proto/le.h"

#include <criterion/criterion.h>
#include <string.h>

#define VDRV_RING_BASE 0x10000u
#define VDRV_BUF_BASE  0x200000u

uint64_t vdrv_desc(unsigned q) { return VDRV_RING_BASE + q * 0x4000u; }
uint64_t vdrv_avail(unsigned q) { return vdrv_desc(q) + 0x1000u; }
uint64_t vdrv_used(unsigned q) { return vdrv_desc(q) + 0x2000u; }
uint64_t vdrv_buf(unsigned q, unsigned slot)
{
	return VDRV_BUF_BASE + ((uint64_t)q * VDRV_SLOTS * 2 + slot) * VDRV_BUF;
}

static void vdrv_irq(void *opaque, unsigned irq, int level)
{
	struct vdrv *d = opaque;

	(void)irq;
	if (level && !d->irq_level)
		d->irq_rises++;
	d->irq_level = level;
}

uint32_t vdrv_read(struct vdrv *d, uint32_t off)
{
	uint8_t b[4];

	vsock_mmio(&d->v, off, b, 4, 1, false);
	return le_get32(b);
}

void vdrv_write(struct vdrv *d, uint32_t off, uint32_t val)
{
	uint8_t b[4];

	le_put32(b, val);
	vsock_mmio(&d->v, off, b, 4, 1, true);
}

void vdrv_setup(struct vdrv *d, bool event_idx)
{
	memset(d, 0, sizeof(*d));
	cr_assert_eq(gmem_init(&d->mem, 16u << 20), 0);
	cr_assert_eq(vsock_init(&d->v, &d->mem, 5, vdrv_irq, d), 0);
	vdrv_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vdrv_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vdrv_write(d, VIRTIO_MMIO_DRIVER_FEATURES, event_idx ? 1u << VIRTIO_F_EVENT_IDX : 0);
	vdrv_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vdrv_write(d, VIRTIO_MMIO_DRIVER_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
	vdrv_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK);
	cr_assert(vdrv_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++) {
		vdrv_write(d, VIRTIO_MMIO_QUEUE_SEL, q);
		vdrv_write(d, VIRTIO_MMIO_QUEUE_NUM, VDRV_QSIZE);
		vdrv_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)vdrv_desc(q));
		vdrv_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		vdrv_write(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)vdrv_avail(q));
		vdrv_write(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		vdrv_write(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)vdrv_used(q));
		vdrv_write(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		vdrv_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
		cr_assert_eq(vdrv_read(d, VIRTIO_MMIO_QUEUE_READY), 1);
	}
	vdrv_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

void vdrv_teardown(struct vdrv *d)
{
	vsock_fini(&d->v);
	gmem_fini(&d->mem);
}

void vdrv_set_desc(struct vdrv *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		   uint16_t flags, uint16_t next)
{
	uint8_t *p = gmem_ptr(&d->mem, vdrv_desc(q) + 16u * i, 16);

	le_put64(p, addr);
	le_put32(p + 8, len);
	le_put16(p + 12, flags);
	le_put16(p + 14, next);
}

void vdrv_publish(struct vdrv *d, unsigned q, uint16_t head, uint16_t bump)
{
	uint8_t *a = gmem_ptr(&d->mem, vdrv_avail(q), 4 + 2 * VDRV_QSIZE);
	uint16_t idx = d->avail_idx[q];

	le_put16(a + 4 + 2 * (idx % VDRV_QSIZE), head);
	d->avail_idx[q] = (uint16_t)(idx + bump);
	/* The device reads the entry after the index (its acquire pairs with this). */
	__atomic_store_n((uint16_t *)(a + 2), d->avail_idx[q], __ATOMIC_RELEASE);
}

void vdrv_post(struct vdrv *d, unsigned q, unsigned n, uint32_t size)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned slot = d->avail_idx[q] % VDRV_SLOTS;
		vdrv_set_desc(d, q, 2 * slot, vdrv_buf(q, slot), size, VIRTQ_DESC_F_WRITE, 0);
		vdrv_publish(d, q, (uint16_t)(2 * slot), 1);
	}
	vdrv_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

void vdrv_send(struct vdrv *d, uint32_t src_port, uint32_t dst_port, uint16_t op,
	       uint32_t flags, const void *data, uint32_t len, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	unsigned slot = d->avail_idx[VSOCK_Q_TX] % VDRV_SLOTS;
	uint64_t hdr = vdrv_buf(VSOCK_Q_TX, slot);
	uint8_t *h = gmem_ptr(&d->mem, hdr, VSOCK_HDR_SIZE);

	le_put64(h, VSOCK_GUEST_CID);
	le_put64(h + 8, VSOCK_HOST_CID);
	le_put32(h + 16, src_port);
	le_put32(h + 20, dst_port);
	le_put32(h + 24, len);
	le_put16(h + 28, VSOCK_TYPE_STREAM);
	le_put16(h + 30, op);
	le_put32(h + 32, flags);
	le_put32(h + 36, buf_alloc);
	le_put32(h + 40, fwd_cnt);
	if (len) {
		cr_assert_leq(len, VDRV_BUF - 64);
		gmem_write(&d->mem, hdr + 64, data, len);
		vdrv_set_desc(d, VSOCK_Q_TX, 2 * slot, hdr, VSOCK_HDR_SIZE, VIRTQ_DESC_F_NEXT,
			      (uint16_t)(2 * slot + 1));
		vdrv_set_desc(d, VSOCK_Q_TX, 2 * slot + 1, hdr + 64, len, 0, 0);
	} else {
		vdrv_set_desc(d, VSOCK_Q_TX, 2 * slot, hdr, VSOCK_HDR_SIZE, 0, 0);
	}
	vdrv_publish(d, VSOCK_Q_TX, (uint16_t)(2 * slot), 1);
	vdrv_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
}

uint16_t vdrv_used_pending(struct vdrv *d, unsigned q)
{
	uint8_t *u = gmem_ptr(&d->mem, vdrv_used(q), 4);

	return (uint16_t)(__atomic_load_n((uint16_t *)(u + 2), __ATOMIC_ACQUIRE) - d->used_seen[q]);
}

bool vdrv_recv(struct vdrv *d, struct vdrv_pkt *p)
{
	if (!vdrv_used_pending(d, VSOCK_Q_RX))
		return false;
	uint8_t *u = gmem_ptr(&d->mem, vdrv_used(VSOCK_Q_RX), 4 + 8 * VDRV_QSIZE);
	uint16_t k = d->used_seen[VSOCK_Q_RX]++ % VDRV_QSIZE;
	uint32_t id = le_get32(u + 4 + 8 * k);
	p->used_len = le_get32(u + 8 + 8 * k);
	const uint8_t *h = gmem_ptr(&d->mem, vdrv_buf(VSOCK_Q_RX, id / 2), VDRV_BUF);
	cr_assert_not_null(h);
	p->src_cid = le_get64(h);
	p->dst_cid = le_get64(h + 8);
	p->src_port = le_get32(h + 16);
	p->dst_port = le_get32(h + 20);
	p->len = le_get32(h + 24);
	p->type = le_get16(h + 28);
	p->op = le_get16(h + 30);
	p->flags = le_get32(h + 32);
	p->buf_alloc = le_get32(h + 36);
	p->fwd_cnt = le_get32(h + 40);
	cr_assert_leq(p->len, VSOCK_MAX_PKT);
	memcpy(p->data, h + VSOCK_HDR_SIZE, p->len);
	return true;
}
