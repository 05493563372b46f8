/* virtq.c - split virtqueue walking for devices: descriptor chains from a hostile driver, checked before a byte is used. */
#include "kvm/virtq.h"
#include "kvm/log.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Ring layout (virtio 1.x 2.7): desc is size * 16 bytes {u64 addr, u32 len,
 * u16 flags, u16 next}; avail is {u16 flags, u16 idx, u16 ring[size],
 * u16 used_event}; used is {u16 flags, u16 idx, {u32 id, u32 len}[size],
 * u16 avail_event}. The host is x86 like the guest, so fields are read in
 * place, through aligned pointers that virtq_enable checked.
 */
#define DESC_SIZE 16u

static uint64_t avail_bytes(uint16_t size) { return 6u + 2u * (uint64_t)size; }
static uint64_t used_bytes(uint16_t size) { return 6u + 8u * (uint64_t)size; }

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

int virtq_enable(struct virtq *q, const struct gmem *m, const char *name)
{
	q->ready = false;
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1))) {
		log_msg("snapbox: %s: queue size %u is not a power of two up to %u\n",
			name, q->size, VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3)) {
		log_msg("snapbox: %s: misaligned ring (desc 0x%llx avail 0x%llx used 0x%llx)\n",
			name, (unsigned long long)q->desc, (unsigned long long)q->avail,
			(unsigned long long)q->used);
		return -EINVAL;
	}
	if (!gmem_range_ok(m, q->desc, (uint64_t)q->size * DESC_SIZE) ||
	    !gmem_range_ok(m, q->avail, avail_bytes(q->size)) ||
	    !gmem_range_ok(m, q->used, used_bytes(q->size))) {
		log_msg("snapbox: %s: ring outside guest RAM (desc 0x%llx avail 0x%llx used 0x%llx)\n",
			name, (unsigned long long)q->desc, (unsigned long long)q->avail,
			(unsigned long long)q->used);
		return -EINVAL;
	}
	q->next_avail = q->next_used = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	q->broken = false;
	q->ready = true;
	return 0;
}

/* A pointer to a ring field; NULL only if the ring moved out of RAM (cannot after enable). */
static uint16_t *ring16(const struct gmem *m, uint64_t gpa)
{
	return gmem_ptr(m, gpa, 2);
}

static uint16_t avail_idx(const struct virtq *q, const struct gmem *m)
{
	uint16_t *p = ring16(m, q->avail + 2);

	/* Acquire: the ring entries and descriptors the index covers are read after it. */
	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : q->next_avail;
}

uint16_t virtq_pending(const struct virtq *q, const struct gmem *m)
{
	if (!q->ready || q->broken)
		return 0;
	return (uint16_t)(avail_idx(q, m) - q->next_avail);
}

static int virtq_fail(struct virtq *q, const char *name, const char *why, unsigned v)
{
	if (!q->broken)
		log_msg("snapbox: %s: guest broke the queue: %s (%u); queue stopped\n", name, why, v);
	q->broken = true;
	return -EPROTO;
}

int virtq_pop(struct virtq *q, const struct gmem *m, struct virtq_elem *e, const char *name)
{
	if (!q->ready || q->broken)
		return q->broken ? -EPROTO : 0;
	uint16_t avail = avail_idx(q, m);
	uint16_t n = (uint16_t)(avail - q->next_avail);

	if (n == 0)
		return 0;
	if (n > q->size)
		return virtq_fail(q, name, "avail index ran ahead by more than the queue size", n);

	uint16_t *slot = ring16(m, q->avail + 4 + 2u * (q->next_avail & (q->size - 1)));
	if (!slot)
		return virtq_fail(q, name, "avail ring outside RAM", 0);
	uint16_t head = *slot;
	if (head >= q->size)
		return virtq_fail(q, name, "head descriptor index out of range", head);

	memset(e, 0, offsetof(struct virtq_elem, seg));
	e->head = head;
	uint16_t idx = head;
	uint64_t out = 0, in = 0;
	for (unsigned walked = 0;; walked++) {
		if (walked >= q->size)
			return virtq_fail(q, name, "descriptor chain loops or exceeds the queue size",
					  walked);
		const uint8_t *d = gmem_ptr(m, q->desc + (uint64_t)idx * DESC_SIZE, DESC_SIZE);
		if (!d)
			return virtq_fail(q, name, "descriptor table outside RAM", idx);
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		memcpy(&flags, d + 12, 2);
		memcpy(&next, d + 14, 2);
		if (flags & VIRTQ_DESC_F_INDIRECT)
			return virtq_fail(q, name, "indirect descriptor (not offered)", idx);
		uint8_t *p = gmem_ptr(m, addr, len);
		if (!p)
			return virtq_fail(q, name, "buffer outside guest RAM or wrapping", idx);
		if (len) {
			if (e->nout + e->nin >= VIRTQ_MAX_SEGS)
				return virtq_fail(q, name, "chain has too many segments", VIRTQ_MAX_SEGS);
			if (flags & VIRTQ_DESC_F_WRITE) {
				in += len;
				e->seg[e->nout + e->nin++] = (struct virtq_seg){ p, len };
			} else {
				if (e->nin)
					return virtq_fail(q, name,
							  "readable descriptor after a writable one", idx);
				out += len;
				e->seg[e->nout++] = (struct virtq_seg){ p, len };
			}
			if (out > UINT32_MAX || in > UINT32_MAX)
				return virtq_fail(q, name, "chain larger than 4 GiB", idx);
		}
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
		if (next >= q->size)
			return virtq_fail(q, name, "next descriptor index out of range", next);
		idx = next;
	}
	e->out_len = (uint32_t)out;
	e->in_len = (uint32_t)in;
	q->next_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->next_avail--;
}

void virtq_push(struct virtq *q, const struct gmem *m, uint16_t head, uint32_t written)
{
	uint8_t *el = gmem_ptr(m, q->used + 4 + 8u * (q->next_used & (q->size - 1)), 8);
	uint16_t *idx = ring16(m, q->used + 2);

	if (!el || !idx || q->broken)
		return;
	uint32_t id = head;
	memcpy(el, &id, 4);
	memcpy(el + 4, &written, 4);
	q->next_used++;
	/* Release: the element is visible before the index that hands it over. */
	__atomic_store_n(idx, q->next_used, __ATOMIC_RELEASE);
}

bool virtq_need_interrupt(struct virtq *q, const struct gmem *m)
{
	if (!q->ready)
		return false;
	/* Full fence: used.idx is stored before the driver's suppression field is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	bool want;
	if (q->event_idx) {
		uint16_t *ev = ring16(m, q->avail + 4 + 2u * q->size);
		uint16_t old = q->signalled_used, now = q->next_used;
		bool valid = q->signalled_valid;

		q->signalled_valid = true;
		q->signalled_used = now;
		/* vring_need_event: did used.idx step over used_event since the last interrupt? */
		want = !valid || !ev || (uint16_t)(now - *ev - 1) < (uint16_t)(now - old);
	} else {
		uint16_t *fl = ring16(m, q->avail);
		want = !fl || !(*fl & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	if (want)
		q->notified++;
	return want;
}

bool virtq_enable_notify(struct virtq *q, const struct gmem *m)
{
	if (!q->ready || q->broken)
		return false;
	if (q->event_idx) {
		uint16_t *ev = ring16(m, q->used + 4 + 8u * q->size);
		if (ev)
			__atomic_store_n(ev, q->next_avail, __ATOMIC_RELAXED);
	}
	/* Full fence: the request is visible before avail.idx is read again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q, m) != q->next_avail;
}

uint32_t virtq_elem_read(const struct virtq_elem *e, uint32_t off, void *dst, uint32_t n)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < e->nout && done < n; i++) {
		const struct virtq_seg *s = &e->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		uint32_t k = s->len - off < n - done ? s->len - off : n - done;
		memcpy((uint8_t *)dst + done, s->p + off, k);
		done += k;
		off = 0;
	}
	return done;
}

uint32_t virtq_elem_write(const struct virtq_elem *e, uint32_t off, const void *src, uint32_t n)
{
	uint32_t done = 0;

	for (unsigned i = e->nout; i < (unsigned)e->nout + e->nin && done < n; i++) {
		const struct virtq_seg *s = &e->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		uint32_t k = s->len - off < n - done ? s->len - off : n - done;
		memcpy(s->p + off, (const uint8_t *)src + done, k);
		done += k;
		off = 0;
	}
	return done;
}
