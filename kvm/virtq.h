/* virtq.h - split virtqueues (virtio 1.x, section 2.7), the device's side: every ring and buffer read through gmem_ptr, every guest index checked. */
#ifndef SNAPBOX_KVM_VIRTQ_H
#define SNAPBOX_KVM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/gmem.h"

/* Largest queue a device offers (QueueNumMax); sizes are powers of two. */
#define VIRTQ_MAX_SIZE   256u
/* Segments of one descriptor chain the device accepts; a longer chain breaks the queue. */
#define VIRTQ_MAX_SEGS   64u

/* Descriptor flags (virtio 1.x 2.7.5). */
#define VIRTQ_DESC_F_NEXT     1u
#define VIRTQ_DESC_F_WRITE    2u
#define VIRTQ_DESC_F_INDIRECT 4u
/* avail.flags / used.flags without EVENT_IDX. */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define VIRTQ_USED_F_NO_NOTIFY     1u

struct virtq {
	/* What the driver configured through the transport. */
	uint16_t size;            /* QueueNum: a power of two <= VIRTQ_MAX_SIZE, 0 = unset */
	bool ready;               /* QueueReady, accepted by virtq_enable */
	bool event_idx;           /* VIRTIO_F_EVENT_IDX negotiated */
	uint64_t desc, avail, used; /* guest-physical addresses of the three areas */
	/* Device progress. */
	uint16_t next_avail;      /* the next avail ring slot to consume */
	uint16_t next_used;       /* used.idx as the device last published it */
	uint16_t signalled_used;  /* next_used when the driver was last interrupted */
	bool signalled_valid;     /* signalled_used means something (cleared on enable/load) */
	bool broken;              /* the guest broke the queue; nothing more is consumed */
	uint64_t notified;        /* interrupts wanted, for counts */
};

/* One buffer's scatter list: seg[0, nout) the device reads, seg[nout, nout + nin) it writes. */
struct virtq_seg {
	uint8_t *p;               /* host pointer from gmem_ptr */
	uint32_t len;
};

struct virtq_elem {
	uint16_t head;            /* descriptor index to return in the used ring */
	uint16_t nout, nin;
	uint32_t out_len, in_len; /* bytes in each direction */
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* Back to the reset state (size, addresses, indices and flags cleared). */
void virtq_reset(struct virtq *q);

/*
 * The driver set QueueReady: check that size is a power of two within
 * VIRTQ_MAX_SIZE and that the three areas are aligned (16, 2, 4) and lie
 * entirely in guest RAM. Returns 0 and marks the queue ready, or -EINVAL
 * (logged with `name`), leaving it not ready. Indices restart at 0.
 */
int virtq_enable(struct virtq *q, const struct gmem *m, const char *name);

/*
 * Take the next available descriptor chain into e. Returns 1 with e filled,
 * 0 when the driver has made nothing more available, or -EPROTO when the
 * guest broke the queue: an avail index more than `size` ahead, a head or
 * next index out of range, a chain longer than the queue or than
 * VIRTQ_MAX_SEGS, an indirect descriptor (not offered), a readable segment
 * after a writable one, a buffer outside RAM, or more than 4 GiB in one
 * direction. A broken queue is logged once and stays broken.
 */
int virtq_pop(struct virtq *q, const struct gmem *m, struct virtq_elem *e, const char *name);

/* Give back the chain popped last (not yet pushed), so the next pop sees it again. */
void virtq_unpop(struct virtq *q);

/*
 * Return chain `head` to the driver with `written` bytes written into its
 * writable part. The used element is stored before used.idx is published
 * (release order), so the driver never sees an index ahead of its element.
 */
void virtq_push(struct virtq *q, const struct gmem *m, uint16_t head, uint32_t written);

/*
 * After one or more pushes: should the driver be interrupted? With
 * EVENT_IDX, only when used.idx crossed the driver's used_event since the
 * last interrupt; without it, unless the driver set NO_INTERRUPT.
 */
bool virtq_need_interrupt(struct virtq *q, const struct gmem *m);

/*
 * The device ran the queue dry: ask the driver to notify on its next
 * buffer (avail_event with EVENT_IDX, else clear NO_NOTIFY). Returns true
 * when buffers arrived meanwhile and the caller must pop again, which
 * closes the race between the last pop and the request.
 */
bool virtq_enable_notify(struct virtq *q, const struct gmem *m);

/* Chains the driver made available that the device has not taken (0 when not ready). */
uint16_t virtq_pending(const struct virtq *q, const struct gmem *m);

/* Copy up to n readable bytes of e from offset off into dst. Returns the bytes copied. */
uint32_t virtq_elem_read(const struct virtq_elem *e, uint32_t off, void *dst, uint32_t n);

/* Copy up to n bytes into e's writable part at offset off. Returns the bytes copied. */
uint32_t virtq_elem_write(const struct virtq_elem *e, uint32_t off, const void *src, uint32_t n);

#endif
