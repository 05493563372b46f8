/* virtio_mmio.h - the virtio-mmio transport, version 2 (virtio 1.x, section 4.2): registers, feature negotiation, queues, interrupt status. */
#ifndef SNAPBOX_KVM_VIRTIO_MMIO_H
#define SNAPBOX_KVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/gmem.h"
#include "kvm/sbuf.h"
#include "kvm/virtq.h"

/* One device's register window; the guest finds it from the kernel command line. */
#define VIRTIO_MMIO_SIZE        0x200u
#define VIRTIO_MMIO_MAX_QUEUES  4u
#define VIRTIO_MMIO_CONFIG_MAX  64u

/* Registers (offsets in the window). */
#define VIRTIO_MMIO_MAGIC            0x000
#define VIRTIO_MMIO_VERSION          0x004
#define VIRTIO_MMIO_DEVICE_ID        0x008
#define VIRTIO_MMIO_VENDOR_ID        0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW   0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH  0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW  0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW   0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH  0x0a4
#define VIRTIO_MMIO_SHM_SEL          0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW      0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH     0x0b4
#define VIRTIO_MMIO_CONFIG_GEN       0x0fc
#define VIRTIO_MMIO_CONFIG           0x100

#define VIRTIO_MMIO_MAGIC_VALUE      0x74726976u  /* "virt" */
#define VIRTIO_MMIO_VENDOR           0x58425300u  /* "\0SBX": snapbox */

/* Device status bits (virtio 1.x 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE  0x01u
#define VIRTIO_STATUS_DRIVER       0x02u
#define VIRTIO_STATUS_DRIVER_OK    0x04u
#define VIRTIO_STATUS_FEATURES_OK  0x08u
#define VIRTIO_STATUS_NEEDS_RESET  0x40u
#define VIRTIO_STATUS_FAILED       0x80u

/* InterruptStatus bits. */
#define VIRTIO_ISR_USED    0x1u
#define VIRTIO_ISR_CONFIG  0x2u

/* Transport feature bits. */
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_IN_ORDER  35

struct virtio_mmio;

/* What a device on this transport provides. Every callback runs with t->lock held. */
struct virtio_mmio_ops {
	void (*notify)(struct virtio_mmio *t, unsigned queue); /* the driver kicked a ready queue */
	void (*reset)(struct virtio_mmio *t);                  /* the driver wrote status 0 */
	void (*driver_ok)(struct virtio_mmio *t);              /* the driver set DRIVER_OK */
};

/* Raise (1) or lower (0) the device's interrupt line; an interrupt is a 1 then a 0 (an edge). Lock held. */
typedef void (*virtio_irq_fn)(void *opaque, unsigned irq, int level);

struct virtio_mmio {
	pthread_mutex_t lock;     /* guards everything here and the device behind it */
	const char *name;         /* for messages: "virtio-vsock" */
	const struct gmem *mem;   /* guest RAM; the struct may be remapped, never moved */
	uint32_t device_id;
	uint64_t host_features;   /* offered */
	unsigned nqueues;
	const struct virtio_mmio_ops *ops;
	void *dev;                /* the device, for its callbacks */
	uint8_t config[VIRTIO_MMIO_CONFIG_MAX]; /* device config space, little-endian */
	uint32_t config_len;
	unsigned irq;
	virtio_irq_fn irq_fn;
	void *irq_opaque;
	/* Driver-visible state (saved and loaded). */
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	uint64_t drv_features;    /* accepted by FEATURES_OK */
	uint32_t status;
	uint32_t isr;
	uint32_t config_gen;
	struct virtq q[VIRTIO_MMIO_MAX_QUEUES];
	/* Host-only. */
	uint64_t notifies;        /* QueueNotify writes, for counts */
	uint64_t interrupts;      /* interrupts sent (edges), for counts */
};

/*
 * Set up a transport for device `device_id` with `nqueues` queues offering
 * host_features (VERSION_1 is always added). irq_fn may be NULL. Returns 0,
 * -EINVAL (too many queues), or a pthread error as -errno.
 */
int virtio_mmio_init(struct virtio_mmio *t, const char *name, const struct gmem *mem,
		     uint32_t device_id, uint64_t host_features, unsigned nqueues,
		     const struct virtio_mmio_ops *ops, void *dev, unsigned irq,
		     virtio_irq_fn irq_fn, void *irq_opaque);
void virtio_mmio_fini(struct virtio_mmio *t);

/* Bus callback for the window (register it VIRTIO_MMIO_SIZE long); `opaque` is the transport. */
void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		    uint32_t count, bool is_write);

/* True when the driver negotiated feature bit `bit`. */
bool virtio_mmio_has(const struct virtio_mmio *t, unsigned bit);

/* The driver finished set-up (DRIVER_OK) and the device has not failed. */
bool virtio_mmio_live(const struct virtio_mmio *t);

/* Set InterruptStatus bits and send an edge on the line (lock held). */
void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t isr_bits);

/*
 * The guest broke the device: set NEEDS_RESET and raise a config interrupt,
 * so the driver may reset it; queues stop until then (lock held).
 */
void virtio_mmio_fail(struct virtio_mmio *t);

/*
 * Serialise the transport: features, status, interrupt status and, per
 * queue, size, ready, the three addresses and both indices. Format in
 * docs/snapshot-format.md (the transport part of a virtio device's record).
 * Lock held by the caller, so the device can save its own state with it.
 */
void virtio_mmio_save(struct virtio_mmio *t, struct sbuf *out);

/*
 * Load what virtio_mmio_save wrote, re-checking every queue against guest
 * RAM as the driver's QueueReady would. -EPROTO (logged) for anything
 * malformed, leaving the transport unchanged. Touches no guest RAM (the
 * rings are checked against mem->size only). Lock held by the caller.
 */
int virtio_mmio_load(struct virtio_mmio *t, struct sbuf_reader *in);

#endif
