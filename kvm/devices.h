/* devices.h - the machine's device table: one fixed order for init, bus registration and save. */
#ifndef SNAPBOX_KVM_DEVICES_H
#define SNAPBOX_KVM_DEVICES_H

#include <stdint.h>

#include "kvm/bus.h"
#include "kvm/i8042.h"
#include "kvm/sbuf.h"
#include "kvm/uart.h"
#include "kvm/vsock.h"

/* Version of the DEVS section that devices_save writes. */
/* Version 2 added the virtio-vsock record (the agent channel); version 1 snapshots must be rebuilt. */
#define DEVICES_STATE_VERSION 2u

/* PCI configuration mechanism #1 with no devices: 0xcf8 latch, data reads all-ones. */
struct pcistub {
	uint32_t addr;
};

/* A write-only sink for port 0x80 (POST codes / Linux io_delay), never logged. */
struct devices {
	struct uart com1;     /* console */
	struct uart com2;     /* agent channel */
	struct i8042 kbd;
	struct pcistub pci;
	struct vsock vsock;   /* the agent channel (virtio-mmio at LAYOUT_VSOCK_BASE) */
};

struct devices_cfg {
	uart_irq_fn irq_fn;          /* shared by both UARTs */
	void *irq_opaque;
	uart_tx_fn com1_tx;          /* console output sink, may be NULL */
	void *com1_opaque;
	uart_tx_fn com2_tx;          /* agent channel sink */
	void *com2_opaque;
	size_t com2_rx_cap;          /* RX queue for whole host->guest frames */
	i8042_reset_fn reset_fn;
	void *reset_opaque;
	struct bus *mmio;            /* where virtio windows go; NULL: not registered (state checks) */
	virtio_irq_fn vsock_irq_fn;  /* vsock's edges (an irqfd); NULL: irq_fn */
	void *vsock_irq_opaque;
	const struct gmem *mem;      /* guest RAM the virtio rings live in; NULL: none */
};

/*
 * Initialise every device in table order and register it on the PIO bus
 * (virtio devices on cfg->mmio).
 * On failure everything already done is undone. Returns 0 or -errno.
 */
int devices_init(struct devices *d, struct bus *pio, const struct devices_cfg *cfg);
void devices_fini(struct devices *d);

/*
 * Save every device in table order. Each record is: u32 name length, name
 * bytes, u32 payload length, payload (the device's own save format).
 */
int devices_save(struct devices *d, struct sbuf *out);

/*
 * Load records written by devices_save. Names must match the table in order;
 * a missing, extra, renamed or malformed record gives -EPROTO and a message.
 */
int devices_load(struct devices *d, struct sbuf_reader *in);

/*
 * After devices_load, once guest RAM is live and the vCPU has resumed: what
 * the devices owe a restored guest (vsock's reset event, its TX replay).
 */
void devices_restored(struct devices *d);

#endif
