/* virtio_mmio.c - the virtio-mmio v2 register window: what a hostile driver may write, and what it reads back. */
#include "kvm/virtio_mmio.h"
#include "kvm/log.h"

#include <errno.h>
#include <string.h>

#define VIRTIO_MMIO_STATE_VERSION 1u

int virtio_mmio_init(struct virtio_mmio *t, const char *name, const struct gmem *mem,
		     uint32_t device_id, uint64_t host_features, unsigned nqueues,
		     const struct virtio_mmio_ops *ops, void *dev, unsigned irq,
		     virtio_irq_fn irq_fn, void *irq_opaque)
{
	if (nqueues == 0 || nqueues > VIRTIO_MMIO_MAX_QUEUES)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	int rc = pthread_mutex_init(&t->lock, NULL);
	if (rc)
		return -rc;
	t->name = name;
	t->mem = mem;
	t->device_id = device_id;
	t->host_features = host_features | 1ull << VIRTIO_F_VERSION_1;
	t->nqueues = nqueues;
	t->ops = ops;
	t->dev = dev;
	t->irq = irq;
	t->irq_fn = irq_fn;
	t->irq_opaque = irq_opaque;
	return 0;
}

void virtio_mmio_fini(struct virtio_mmio *t)
{
	pthread_mutex_destroy(&t->lock);
}

bool virtio_mmio_has(const struct virtio_mmio *t, unsigned bit)
{
	return bit < 64 && (t->drv_features >> bit & 1);
}

bool virtio_mmio_live(const struct virtio_mmio *t)
{
	return (t->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->status & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

/*
 * Interrupts are edges: the line is raised and lowered at once, as an irqfd
 * does, and InterruptStatus only tells the driver why. Why edges: the
 * guest needs no register access to re-arm the line (on KVM-PVM every
 * access is a ~25 us exit), and nothing about the line needs saving.
 */
void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t isr_bits)
{
	t->isr |= isr_bits;
	t->interrupts++;
	if (t->irq_fn) {
		t->irq_fn(t->irq_opaque, t->irq, 1);
		t->irq_fn(t->irq_opaque, t->irq, 0);
	}
}

void virtio_mmio_fail(struct virtio_mmio *t)
{
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	t->config_gen++;
	virtio_mmio_interrupt(t, VIRTIO_ISR_CONFIG);
}

/* Status 0: back to power-on state, the device first so it drops what it holds. */
static void virtio_mmio_reset(struct virtio_mmio *t)
{
	if (t->ops && t->ops->reset)
		t->ops->reset(t);
	t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
	t->drv_features = 0;
	t->status = 0;
	t->isr = 0;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		virtq_reset(&t->q[i]);
}

static void virtio_mmio_set_status(struct virtio_mmio *t, uint32_t v)
{
	if (v == 0) {
		virtio_mmio_reset(t);
		return;
	}
	/* FEATURES_OK is granted only for a subset of what was offered that includes VERSION_1. */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		if ((t->drv_features & ~t->host_features) ||
		    !(t->drv_features >> VIRTIO_F_VERSION_1 & 1))
			v &= ~VIRTIO_STATUS_FEATURES_OK;
		else
			for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
				t->q[i].event_idx = virtio_mmio_has(t, VIRTIO_F_EVENT_IDX);
	}
	/* The driver cannot clear NEEDS_RESET (only a reset does) nor set it. */
	v = (v & ~VIRTIO_STATUS_NEEDS_RESET) | (t->status & VIRTIO_STATUS_NEEDS_RESET);
	bool now_ok = (v & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_DRIVER_OK);
	t->status = v;
	if (now_ok && t->ops && t->ops->driver_ok)
		t->ops->driver_ok(t);
}

static struct virtq *virtio_mmio_sel(struct virtio_mmio *t)
{
	return t->queue_sel < t->nqueues ? &t->q[t->queue_sel] : NULL;
}

/* Queue set-up writes count only while the queue is not ready (virtio 1.x 4.2.2.2). */
static void virtio_mmio_set_addr(struct virtio_mmio *t, uint64_t *field, bool high, uint32_t v)
{
	struct virtq *q = virtio_mmio_sel(t);

	if (!q || q->ready)
		return;
	if (high)
		*field = (*field & 0xffffffffull) | (uint64_t)v << 32;
	else
		*field = (*field & ~0xffffffffull) | v;
}

static uint32_t virtio_mmio_read_reg(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = virtio_mmio_sel(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC: return VIRTIO_MMIO_MAGIC_VALUE;
	case VIRTIO_MMIO_VERSION: return 2;
	case VIRTIO_MMIO_DEVICE_ID: return t->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return t->dev_features_sel < 2 ? (uint32_t)(t->host_features >> (32 * t->dev_features_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? VIRTQ_MAX_SIZE : 0;
	case VIRTIO_MMIO_QUEUE_READY: return q && q->ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return t->isr;
	case VIRTIO_MMIO_STATUS: return t->status;
	/* No shared memory regions: a length of all-ones says "none". */
	case VIRTIO_MMIO_SHM_LEN_LOW: case VIRTIO_MMIO_SHM_LEN_HIGH: return 0xffffffffu;
	case VIRTIO_MMIO_CONFIG_GEN: return t->config_gen;
	default: return 0;
	}
}

static void virtio_mmio_write_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtq *q = virtio_mmio_sel(t);

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: t->dev_features_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: t->drv_features_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Features are fixed once FEATURES_OK is set. */
		if (t->drv_features_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned sh = 32 * t->drv_features_sel;
			t->drv_features = (t->drv_features & ~(0xffffffffull << sh)) | (uint64_t)v << sh;
		}
		break;
	case VIRTIO_MMIO_QUEUE_SEL: t->queue_sel = v; break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q && !q->ready)
			q->size = v <= 0xffff ? (uint16_t)v : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (!q)
			break;
		if (v & 1) {
			if (!q->ready && virtq_enable(q, t->mem, t->name) < 0)
				virtio_mmio_fail(t);
		} else {
			q->ready = false;
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		t->notifies++;
		if (v < t->nqueues && t->q[v].ready && virtio_mmio_live(t) && t->ops && t->ops->notify)
			t->ops->notify(t, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->isr &= ~v;
		break;
	case VIRTIO_MMIO_STATUS: virtio_mmio_set_status(t, v); break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW: if (q) virtio_mmio_set_addr(t, &q->desc, false, v); break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH: if (q) virtio_mmio_set_addr(t, &q->desc, true, v); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW: if (q) virtio_mmio_set_addr(t, &q->avail, false, v); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: if (q) virtio_mmio_set_addr(t, &q->avail, true, v); break;
	case VIRTIO_MMIO_QUEUE_USED_LOW: if (q) virtio_mmio_set_addr(t, &q->used, false, v); break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH: if (q) virtio_mmio_set_addr(t, &q->used, true, v); break;
	default: break; /* read-only or unknown: ignored */
	}
}

void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		    uint32_t count, bool is_write)
{
	struct virtio_mmio *t = opaque;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < count; i++, data += size) {
		if (offset >= VIRTIO_MMIO_CONFIG) {
			/* Config space: any width; writes ignored (no writable field in our devices). */
			uint64_t o = offset - VIRTIO_MMIO_CONFIG;
			for (uint32_t b = 0; b < size && !is_write; b++)
				data[b] = o + b < t->config_len ? t->config[o + b] : 0;
			continue;
		}
		/* Registers are 32 bits wide and aligned; anything else reads 0 and writes nothing. */
		if (size != 4 || (offset & 3)) {
			if (!is_write)
				memset(data, 0, size);
			continue;
		}
		if (is_write) {
			uint32_t v;
			memcpy(&v, data, 4);
			virtio_mmio_write_reg(t, offset, v);
		} else {
			uint32_t v = virtio_mmio_read_reg(t, offset);
			memcpy(data, &v, 4);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_save(struct virtio_mmio *t, struct sbuf *out)
{
	sbuf_put_u8(out, VIRTIO_MMIO_STATE_VERSION);
	sbuf_put_u32(out, t->status);
	sbuf_put_u32(out, t->isr);
	sbuf_put_u64(out, t->drv_features);
	sbuf_put_u32(out, t->dev_features_sel);
	sbuf_put_u32(out, t->drv_features_sel);
	sbuf_put_u32(out, t->queue_sel);
	sbuf_put_u32(out, t->config_gen);
	sbuf_put_u8(out, (uint8_t)t->nqueues);
	for (unsigned i = 0; i < t->nqueues; i++) {
		const struct virtq *q = &t->q[i];
		sbuf_put_u16(out, q->size);
		sbuf_put_u8(out, (uint8_t)((q->ready ? 1 : 0) | (q->signalled_valid ? 2 : 0)));
		sbuf_put_u64(out, q->desc);
		sbuf_put_u64(out, q->avail);
		sbuf_put_u64(out, q->used);
		sbuf_put_u16(out, q->next_avail);
		sbuf_put_u16(out, q->next_used);
		sbuf_put_u16(out, q->signalled_used);
	}
}

/* The status values a driver can reach: the documented bits only, FEATURES_OK before DRIVER_OK. */
static bool virtio_mmio_status_ok(uint32_t s)
{
	const uint32_t known = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK |
			       VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED;
	if (s & ~known)
		return false;
	return !(s & VIRTIO_STATUS_DRIVER_OK) || (s & VIRTIO_STATUS_FEATURES_OK);
}

int virtio_mmio_load(struct virtio_mmio *t, struct sbuf_reader *in)
{
	uint8_t version = sbuf_get_u8(in);
	uint32_t status = sbuf_get_u32(in), isr = sbuf_get_u32(in);
	uint64_t feat = sbuf_get_u64(in);
	uint32_t dsel = sbuf_get_u32(in), fsel = sbuf_get_u32(in), qsel = sbuf_get_u32(in);
	uint32_t gen = sbuf_get_u32(in);
	uint8_t nq = sbuf_get_u8(in);
	struct virtq q[VIRTIO_MMIO_MAX_QUEUES];
	const char *why = NULL;

	memset(q, 0, sizeof(q));
	for (unsigned i = 0; i < nq && i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		q[i].size = sbuf_get_u16(in);
		uint8_t fl = sbuf_get_u8(in);
		q[i].ready = fl & 1;
		q[i].signalled_valid = fl & 2;
		if (fl & ~3u)
			why = "unknown queue flags";
		q[i].desc = sbuf_get_u64(in);
		q[i].avail = sbuf_get_u64(in);
		q[i].used = sbuf_get_u64(in);
		q[i].next_avail = sbuf_get_u16(in);
		q[i].next_used = sbuf_get_u16(in);
		q[i].signalled_used = sbuf_get_u16(in);
	}
	if (in->err)
		why = "truncated record";
	else if (version != VIRTIO_MMIO_STATE_VERSION)
		why = "unsupported version";
	else if (nq != t->nqueues)
		why = "queue count differs from the device's";
	else if (!virtio_mmio_status_ok(status))
		why = "impossible device status";
	else if (isr & ~(VIRTIO_ISR_USED | VIRTIO_ISR_CONFIG))
		why = "unknown interrupt status bits";
	else if (feat & ~t->host_features)
		why = "features this device does not offer";
	if (why) {
		log_msg("snapbox: %s state: %s\n", t->name, why);
		return -EPROTO;
	}
	for (unsigned i = 0; i < nq; i++) {
		struct virtq *v = &q[i];
		v->event_idx = feat >> VIRTIO_F_EVENT_IDX & 1;
		if (!v->ready)
			continue;
		struct virtq chk = *v;
		/* The same checks as the driver's QueueReady, then the saved progress back. */
		if (virtq_enable(&chk, t->mem, t->name) < 0)
			return -EPROTO;
		if ((uint16_t)(v->next_avail - v->next_used) > v->size) {
			log_msg("snapbox: %s state: queue %u has more chains in flight than slots\n",
				t->name, i);
			return -EPROTO;
		}
	}
	t->status = status;
	t->isr = isr;
	t->drv_features = feat;
	t->dev_features_sel = dsel;
	t->drv_features_sel = fsel;
	t->queue_sel = qsel;
	t->config_gen = gen;
	memcpy(t->q, q, sizeof(q));
	return 0;
}
