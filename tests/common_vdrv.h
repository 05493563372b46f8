/* common_vdrv.h - a fake virtio-vsock driver for unit tests: rings in a real gmem, driven through the device's register window. */
#ifndef SNAPBOX_TESTS_COMMON_VDRV_H
#define SNAPBOX_TESTS_COMMON_VDRV_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/gmem.h"
#include "kvm/vsock.h"

#define VDRV_QSIZE   32u    /* queue size; chains use descriptor pairs (2 * slot, 2 * slot + 1) */
#define VDRV_SLOTS   16u    /* chains outstanding per queue */
#define VDRV_BUF     0x11000u /* bytes of each buffer slot */

/* A packet as the fake driver sees it. */
struct vdrv_pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
	uint8_t data[VSOCK_MAX_PKT];
	uint32_t used_len;     /* what the device said it wrote */
};

struct vdrv {
	struct gmem mem;
	struct vsock v;
	uint16_t avail_idx[3];  /* the driver's avail.idx per queue */
	uint16_t used_seen[3];  /* used entries consumed per queue */
	int irq_level;
	int irq_rises;
};

/* RAM, the device, and a driver set-up up to DRIVER_OK (EVENT_IDX when event_idx). */
void vdrv_setup(struct vdrv *d, bool event_idx);
void vdrv_teardown(struct vdrv *d);

uint32_t vdrv_read(struct vdrv *d, uint32_t off);
void vdrv_write(struct vdrv *d, uint32_t off, uint32_t val);

/* Guest-physical addresses of queue q's areas and of buffer `slot` of queue q. */
uint64_t vdrv_desc(unsigned q);
uint64_t vdrv_avail(unsigned q);
uint64_t vdrv_used(unsigned q);
uint64_t vdrv_buf(unsigned q, unsigned slot);

/* Write descriptor i of queue q. */
void vdrv_set_desc(struct vdrv *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		   uint16_t flags, uint16_t next);
/* Publish head in queue q's avail ring and bump avail.idx by `bump` (normally 1). */
void vdrv_publish(struct vdrv *d, unsigned q, uint16_t head, uint16_t bump);

/* Post n writable buffers of `size` bytes on RX (or EVENT) and kick. */
void vdrv_post(struct vdrv *d, unsigned q, unsigned n, uint32_t size);

/* Send one packet on TX (header then payload, as two descriptors) and kick. */
void vdrv_send(struct vdrv *d, uint32_t src_port, uint32_t dst_port, uint16_t op,
	       uint32_t flags, const void *data, uint32_t len, uint32_t buf_alloc, uint32_t fwd_cnt);

/* The next packet the device returned on RX; false when none. Decoded into p. */
bool vdrv_recv(struct vdrv *d, struct vdrv_pkt *p);

/* Used entries the device returned on queue q that the driver has not consumed. */
uint16_t vdrv_used_pending(struct vdrv *d, unsigned q);

#endif
