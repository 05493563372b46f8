/* devices.c - the device table: init, PIO registration, save and load in one fixed order. */
#include "kvm/devices.h"
#include "proto/layout.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define DEVICES_COM1_RX_CAP   4096
#define DEVICES_COM2_RX_CAP   (256 * 1024)
#define DEVICES_NAME_MAX      64 /* longest record name accepted from a state file */
#define DEVICES_PCI_BASE      0xcf8
#define DEVICES_PCI_LEN       8
#define DEVICES_PCI_VERSION   1
#define DEVICES_POST_PORT     0x80

struct devices_entry {
	const char *name;
	int (*init)(struct devices *d, const struct devices_cfg *cfg); /* NULL: stateless */
	void (*fini)(struct devices *d);                               /* NULL: nothing to free */
	int (*save)(struct devices *d, struct sbuf *out);
	int (*load)(struct devices *d, struct sbuf_reader *in);
	uint16_t pio_base;
	uint16_t pio_len;                                              /* 0: not on the PIO bus */
	bus_io_fn io;                                                  /* opaque is the struct devices */
	uint64_t mmio_base;                                            /* virtio window, on cfg->mmio */
	uint64_t mmio_len;                                             /* 0: not on the MMIO bus */
};

/* ---- COM1: the console ---- */

static int devices_com1_init(struct devices *d, const struct devices_cfg *cfg)
{
	return uart_init(&d->com1, UART_COM1_BASE, UART_COM1_IRQ, DEVICES_COM1_RX_CAP,
			 cfg->irq_fn, cfg->irq_opaque, cfg->com1_tx, cfg->com1_opaque);
}

static void devices_com1_fini(struct devices *d) { uart_fini(&d->com1); }
static int devices_com1_save(struct devices *d, struct sbuf *out) { return uart_save(&d->com1, out); }
static int devices_com1_load(struct devices *d, struct sbuf_reader *in) { return uart_load(&d->com1, in); }

static void devices_com1_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			    uint32_t count, bool is_write)
{
	struct devices *d = opaque;
	uart_io(&d->com1, offset, data, size, count, is_write);
}

/* ---- COM2: the agent channel ---- */

static int devices_com2_init(struct devices *d, const struct devices_cfg *cfg)
{
	size_t cap = cfg->com2_rx_cap ? cfg->com2_rx_cap : DEVICES_COM2_RX_CAP;
	return uart_init(&d->com2, UART_COM2_BASE, UART_COM2_IRQ, cap,
			 cfg->irq_fn, cfg->irq_opaque, cfg->com2_tx, cfg->com2_opaque);
}

static void devices_com2_fini(struct devices *d) { uart_fini(&d->com2); }
static int devices_com2_save(struct devices *d, struct sbuf *out) { return uart_save(&d->com2, out); }
static int devices_com2_load(struct devices *d, struct sbuf_reader *in) { return uart_load(&d->com2, in); }

static void devices_com2_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			    uint32_t count, bool is_write)
{
	struct devices *d = opaque;
	uart_io(&d->com2, offset, data, size, count, is_write);
}

/* ---- i8042: reset line and port B ---- */

static int devices_kbd_init(struct devices *d, const struct devices_cfg *cfg)
{
	i8042_init(&d->kbd, cfg->reset_fn, cfg->reset_opaque);
	return 0;
}

static int devices_kbd_save(struct devices *d, struct sbuf *out) { return i8042_save(&d->kbd, out); }
static int devices_kbd_load(struct devices *d, struct sbuf_reader *in) { return i8042_load(&d->kbd, in); }

static void devices_kbd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			   uint32_t count, bool is_write)
{
	struct devices *d = opaque;
	i8042_io(&d->kbd, offset, data, size, count, is_write);
}

/* ---- PCI config mechanism #1 with an empty bus ---- */

static int devices_pci_init(struct devices *d, const struct devices_cfg *cfg)
{
	(void)cfg;
	d->pci.addr = 0;
	return 0;
}

/*
 * 0xcf8-0xcfb hold the 32-bit address latch, written only by a 4-byte write
 * at 0xcf8 (as on real chipsets and in QEMU) and readable at any width, so
 * Linux's type-1 probe (outl 0x80000000, inl back) succeeds. 0xcfc-0xcff is
 * the data window of a bus with no devices: reads all-ones, writes ignored.
 */
static void devices_pci_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			   uint32_t count, bool is_write)
{
	struct devices *d = opaque;

	for (uint32_t i = 0; i < count; i++) {
		uint8_t *el = data + (size_t)i * size;
		if (is_write) {
			if (offset == 0 && size == 4)
				d->pci.addr = (uint32_t)el[0] | (uint32_t)el[1] << 8 |
					      (uint32_t)el[2] << 16 | (uint32_t)el[3] << 24;
			continue;
		}
		for (uint32_t j = 0; j < size; j++) {
			uint64_t o = offset + j;
			el[j] = o < 4 ? (uint8_t)(d->pci.addr >> (8 * o)) : 0xff;
		}
	}
}

/* Format: u8 version=1, u32 addr. */
static int devices_pci_save(struct devices *d, struct sbuf *out)
{
	sbuf_put_u8(out, DEVICES_PCI_VERSION);
	sbuf_put_u32(out, d->pci.addr);
	return out->err;
}

static int devices_pci_load(struct devices *d, struct sbuf_reader *in)
{
	uint8_t version = sbuf_get_u8(in);
	uint32_t addr = sbuf_get_u32(in);
	if (in->err || version != DEVICES_PCI_VERSION) {
		log_msg("snapbox: pci state: truncated record or unsupported version %u\n",
			version);
		return -EPROTO;
	}
	d->pci.addr = addr;
	return 0;
}

/* ---- port 0x80: POST codes and Linux's io_delay, silently absorbed ---- */

static int devices_post_save(struct devices *d, struct sbuf *out)
{
	(void)d;
	return out->err; /* stateless: empty payload */
}

static int devices_post_load(struct devices *d, struct sbuf_reader *in)
{
	(void)d;
	(void)in; /* stateless; devices_load rejects a non-empty payload */
	return 0;
}

static void devices_post_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			    uint32_t count, bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		memset(data, 0xff, (size_t)size * count);
}

/* ---- virtio-vsock: the agent channel ---- */

/* A device set with no RAM (a state check) gets rings checked against nothing. */
static const struct gmem devices_no_mem;

static int devices_vsock_init(struct devices *d, const struct devices_cfg *cfg)
{
	return vsock_init(&d->vsock, cfg->mem ? cfg->mem : &devices_no_mem, LAYOUT_VSOCK_IRQ,
			  cfg->vsock_irq_fn ? cfg->vsock_irq_fn : cfg->irq_fn,
			  cfg->vsock_irq_fn ? cfg->vsock_irq_opaque : cfg->irq_opaque);
}

static void devices_vsock_fini(struct devices *d) { vsock_fini(&d->vsock); }
static int devices_vsock_save(struct devices *d, struct sbuf *out) { return vsock_save(&d->vsock, out); }
static int devices_vsock_load(struct devices *d, struct sbuf_reader *in) { return vsock_load(&d->vsock, in); }

static void devices_vsock_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
			     uint32_t count, bool is_write)
{
	struct devices *d = opaque;
	vsock_mmio(&d->vsock, offset, data, size, count, is_write);
}

/*
 * The one order for init, registration, save and load. Why fixed: saved
 * records are matched to devices by position (names are only a check), so
 * reordering, inserting or renaming an entry makes older snapshots fail to
 * load. Append new devices at the end and bump DEVICES_STATE_VERSION, so
 * a snapshot without the new record is refused by version, with a message
 * that says to rebuild it, rather than as a malformed record.
 */
static const struct devices_entry devices_table[] = {
	{ "com1", devices_com1_init, devices_com1_fini, devices_com1_save, devices_com1_load,
	  UART_COM1_BASE, UART_NREGS, devices_com1_io, 0, 0 },
	{ "com2", devices_com2_init, devices_com2_fini, devices_com2_save, devices_com2_load,
	  UART_COM2_BASE, UART_NREGS, devices_com2_io, 0, 0 },
	{ "i8042", devices_kbd_init, NULL, devices_kbd_save, devices_kbd_load,
	  I8042_DATA_PORT, I8042_CMD_PORT - I8042_DATA_PORT + 1, devices_kbd_io, 0, 0 },
	{ "pci", devices_pci_init, NULL, devices_pci_save, devices_pci_load,
	  DEVICES_PCI_BASE, DEVICES_PCI_LEN, devices_pci_io, 0, 0 },
	{ "post", NULL, NULL, devices_post_save, devices_post_load,
	  DEVICES_POST_PORT, 1, devices_post_io, 0, 0 },
	{ "vsock", devices_vsock_init, devices_vsock_fini, devices_vsock_save, devices_vsock_load,
	  0, 0, devices_vsock_io, LAYOUT_VSOCK_BASE, VIRTIO_MMIO_SIZE },
};

#define DEVICES_N (sizeof(devices_table) / sizeof(devices_table[0]))

/*
 * Initialise every device in table order and register it on the PIO bus.
 * On failure everything already done is undone. Returns 0 or -errno.
 * cfg may be NULL (no callbacks, default queue sizes).
 */
int devices_init(struct devices *d, struct bus *pio, const struct devices_cfg *cfg)
{
	static const struct devices_cfg defaults;
	size_t i;
	int rc = 0;

	memset(d, 0, sizeof(*d));
	if (!cfg)
		cfg = &defaults;
	for (i = 0; i < DEVICES_N; i++) {
		const struct devices_entry *e = &devices_table[i];
		/* Device first, then its range: the bus must never route to a half-built device. */
		if (e->init) {
			rc = e->init(d, cfg);
			if (rc)
				goto unwind;
		}
		if (e->pio_len)
			rc = bus_register(pio, e->pio_base, e->pio_len, e->io, d, e->name);
		else if (e->mmio_len && cfg->mmio)
			rc = bus_register(cfg->mmio, e->mmio_base, e->mmio_len, e->io, d, e->name);
		if (rc) {
			if (e->fini)
				e->fini(d);
			goto unwind;
		}
	}
	return 0;

unwind:
	while (i-- > 0) {
		const struct devices_entry *e = &devices_table[i];
		if (e->pio_len)
			bus_unregister(pio, e->pio_base);
		else if (e->mmio_len && cfg->mmio)
			bus_unregister(cfg->mmio, e->mmio_base);
		if (e->fini)
			e->fini(d);
	}
	return rc;
}

/*
 * Free every device in reverse table order. The bus still names them, so the
 * caller must stop dispatching on it (no running vCPUs) first.
 */
void devices_fini(struct devices *d)
{
	for (size_t i = DEVICES_N; i-- > 0;) {
		if (devices_table[i].fini)
			devices_table[i].fini(d);
	}
}

/*
 * Save every device in table order. Each record is: u32 name length, name
 * bytes, u32 payload length, payload (the device's own save format).
 */
int devices_save(struct devices *d, struct sbuf *out)
{
	for (size_t i = 0; i < DEVICES_N; i++) {
		const struct devices_entry *e = &devices_table[i];
		struct sbuf payload;

		sbuf_init(&payload);
		int rc = e->save(d, &payload);
		if (!rc && payload.len > UINT32_MAX)
			rc = -EOVERFLOW;
		if (rc) {
			log_msg("snapbox: cannot save device %s: %s\n", e->name, strerror(-rc));
			sbuf_fini(&payload);
			return rc;
		}
		size_t name_len = strlen(e->name);
		sbuf_put_u32(out, (uint32_t)name_len);
		sbuf_put_bytes(out, e->name, name_len);
		sbuf_put_u32(out, (uint32_t)payload.len);
		sbuf_put_bytes(out, payload.data, payload.len);
		sbuf_fini(&payload);
	}
	return out->err;
}

/* Print a name from a state file with anything unprintable replaced, so hostile bytes stay inert. */
static void devices_sanitize(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
	dst[n] = '\0';
}

/*
 * Split off record i from r: check its name against the table and hand back
 * a reader over its payload, advancing r past it. -EPROTO with one message
 * for a truncated, oversized or misnamed record.
 */
static int devices_record(struct sbuf_reader *r, size_t i, struct sbuf_reader *payload)
{
	const char *want = devices_table[i].name;
	uint8_t name[DEVICES_NAME_MAX];
	char shown[DEVICES_NAME_MAX + 1];

	uint32_t name_len = sbuf_get_u32(r);
	if (r->err || name_len > DEVICES_NAME_MAX || name_len > sbuf_remaining(r)) {
		log_msg("snapbox: device state: record %zu (expected \"%s\") is missing or malformed\n",
			i, want);
		return -EPROTO;
	}
	sbuf_get_bytes(r, name, name_len);
	if (name_len != strlen(want) || memcmp(name, want, name_len) != 0) {
		devices_sanitize(shown, name, name_len);
		log_msg("snapbox: device state: record %zu is \"%s\", expected \"%s\"\n",
			i, shown, want);
		return -EPROTO;
	}
	uint32_t len = sbuf_get_u32(r);
	if (r->err || len > sbuf_remaining(r)) {
		log_msg("snapbox: device state: record \"%s\" is truncated\n", want);
		return -EPROTO;
	}
	sbuf_reader_init(payload, r->p + r->off, len);
	r->off += len;
	return 0;
}

/*
 * Load records written by devices_save. Names must match the table in order;
 * a missing, extra, renamed or malformed record gives -EPROTO and a message.
 * The whole reader must be consumed: trailing bytes count as an extra record.
 * The record layout is checked before any device is touched, so such errors
 * leave every device unchanged; a bad payload inside a record fails in that
 * device's loader, after the devices before it were already restored.
 */
int devices_load(struct devices *d, struct sbuf_reader *in)
{
	struct sbuf_reader scan = *in;
	struct sbuf_reader payload;
	int rc;

	/* Pass 1: structure only. */
	for (size_t i = 0; i < DEVICES_N; i++) {
		rc = devices_record(&scan, i, &payload);
		if (rc)
			return rc;
	}
	if (sbuf_remaining(&scan) != 0) {
		log_msg("snapbox: device state: %zu unexpected bytes after the last device\n",
			sbuf_remaining(&scan));
		return -EPROTO;
	}

	/* Pass 2: hand each payload to its device. */
	for (size_t i = 0; i < DEVICES_N; i++) {
		const struct devices_entry *e = &devices_table[i];
		rc = devices_record(in, i, &payload);
		if (rc)
			return rc;
		rc = e->load(d, &payload);
		if (rc)
			return rc;
		if (sbuf_remaining(&payload) != 0) {
			log_msg("snapbox: device state: record \"%s\" has %zu trailing bytes\n",
				e->name, sbuf_remaining(&payload));
			return -EPROTO;
		}
	}
	return 0;
}

void devices_restored(struct devices *d)
{
	vsock_restored(&d->vsock);
}
