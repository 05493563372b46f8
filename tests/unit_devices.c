/* unit_devices.c - unit tests for the i8042, the PCI/POST stubs and the device table's save/load. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/devices.h"

static struct bus dt_bus;
static struct devices dt_dev;
static int dt_resets;

static void dt_reset(void *opaque)
{
	int *n = opaque;
	(*n)++;
}

static void dt_setup(void)
{
	cr_redirect_stderr(); /* rejection messages are expected; checked where it matters */
	dt_resets = 0;
	cr_assert_eq(bus_init(&dt_bus, "pio"), 0);
	struct devices_cfg cfg = { .reset_fn = dt_reset, .reset_opaque = &dt_resets,
				   .com2_rx_cap = 1024 };
	cr_assert_eq(devices_init(&dt_dev, &dt_bus, &cfg), 0);
}

static void dt_teardown(void)
{
	bus_fini(&dt_bus);
	devices_fini(&dt_dev);
}

TestSuite(devices, .init = dt_setup, .fini = dt_teardown);

static uint32_t dt_in(struct bus *b, uint16_t port, uint32_t size)
{
	uint8_t v[4] = { 0xee, 0xee, 0xee, 0xee };
	bus_access(b, port, v, size, 1, false);
	uint32_t x = 0;
	for (uint32_t i = 0; i < size; i++)
		x |= (uint32_t)v[i] << (8 * i);
	return x;
}

static void dt_out(struct bus *b, uint16_t port, uint32_t size, uint32_t x)
{
	uint8_t v[4];
	for (uint32_t i = 0; i < 4; i++)
		v[i] = (uint8_t)(x >> (8 * i));
	bus_access(b, port, v, size, 1, true);
}

Test(devices, table_registers_every_port)
{
	cr_assert_eq(dt_bus.n, 5);
	static const uint16_t ports[] = { 0x3f8, 0x3ff, 0x2f8, 0x2ff, 0x60, 0x61, 0x64,
					  0xcf8, 0xcff, 0x80 };
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		dt_in(&dt_bus, ports[i], 1);
	cr_assert_eq(dt_bus.unknown_accesses, 0);
	dt_in(&dt_bus, 0x65, 1);
	dt_in(&dt_bus, 0x81, 1);
	cr_assert_eq(dt_bus.unknown_accesses, 2);
	cr_assert_eq(dt_dev.com1.irq, 4);
	cr_assert_eq(dt_dev.com2.irq, 3);
	cr_assert_eq(dt_dev.com1.rx_cap, 4096);
	cr_assert_eq(dt_dev.com2.rx_cap, 1024);
}

Test(devices, com2_default_queue_is_256k)
{
	struct bus b;
	struct devices d;
	cr_assert_eq(bus_init(&b, "pio"), 0);
	cr_assert_eq(devices_init(&d, &b, NULL), 0);
	cr_assert_eq(d.com2.rx_cap, 256 * 1024);
	devices_fini(&d);
	bus_fini(&b);
}

static void dt_nop(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		   uint32_t count, bool is_write)
{
	(void)opaque; (void)offset; (void)data; (void)size; (void)count; (void)is_write;
}

Test(devices, init_failure_unwinds_registrations)
{
	struct bus b;
	struct devices d;
	cr_assert_eq(bus_init(&b, "pio"), 0);
	/* Squat on the PCI ports so the fourth table entry cannot register. */
	cr_assert_eq(bus_register(&b, 0xcfc, 1, dt_nop, NULL, "squatter"), 0);
	cr_assert_eq(devices_init(&d, &b, NULL), -EEXIST);
	cr_assert_eq(b.n, 1, "earlier devices were unregistered");
	cr_assert_str_eq(b.ranges[0].name, "squatter");
	cr_assert_null(d.com1.rx, "earlier devices were finalised");
	cr_assert_null(d.com2.rx);
	bus_fini(&b);
}

Test(devices, i8042_reset_only_on_fe)
{
	static const uint8_t cmds[] = { 0x20, 0x60, 0xaa, 0xad, 0xd1, 0xfd, 0xff };
	for (size_t i = 0; i < sizeof(cmds); i++)
		dt_out(&dt_bus, 0x64, 1, cmds[i]);
	dt_out(&dt_bus, 0x60, 1, 0xfe); /* data port: not a command */
	dt_out(&dt_bus, 0x61, 1, 0xfe);
	cr_assert_eq(dt_resets, 0);
	cr_assert_not(dt_dev.kbd.reset_requested);
	dt_out(&dt_bus, 0x64, 1, 0xfe);
	cr_assert_eq(dt_resets, 1);
	cr_assert(dt_dev.kbd.reset_requested);
	cr_assert_eq(dt_dev.kbd.last_cmd, 0xfe);
}

Test(devices, i8042_status_and_data_read_zero)
{
	cr_assert_eq(dt_in(&dt_bus, 0x64, 1), 0);
	cr_assert_eq(dt_in(&dt_bus, 0x60, 1), 0);
}

Test(devices, i8042_port_b_toggles_and_masks)
{
	uint32_t a = dt_in(&dt_bus, 0x61, 1);
	uint32_t b = dt_in(&dt_bus, 0x61, 1);
	uint32_t c = dt_in(&dt_bus, 0x61, 1);
	cr_assert_eq(a ^ b, 0x10, "bit 4 toggles on each read");
	cr_assert_eq(a, c);
	dt_out(&dt_bus, 0x61, 1, 0xff);
	uint32_t d = dt_in(&dt_bus, 0x61, 1);
	cr_assert_eq(d & 0x0f, 0x0f, "bits 0-3 writable");
	cr_assert_eq(d & 0xe0, 0, "bits 5-7 not writable");
	dt_out(&dt_bus, 0x61, 1, 0x05);
	cr_assert_eq(dt_in(&dt_bus, 0x61, 1) & 0x0f, 0x05);
}

Test(devices, pci_latch_and_empty_bus)
{
	cr_assert_eq(dt_in(&dt_bus, 0xcfc, 4), 0xffffffffu);
	dt_out(&dt_bus, 0xcf8, 4, 0x80000000u);
	cr_assert_eq(dt_in(&dt_bus, 0xcf8, 4), 0x80000000u, "Linux's type-1 probe reads it back");
	cr_assert_eq(dt_in(&dt_bus, 0xcfb, 1), 0x80);
	cr_assert_eq(dt_in(&dt_bus, 0xcf8, 1), 0x00);
	dt_out(&dt_bus, 0xcf8, 4, 0x8000f810u);
	cr_assert_eq(dt_in(&dt_bus, 0xcfc, 4), 0xffffffffu);
	cr_assert_eq(dt_in(&dt_bus, 0xcfe, 2), 0xffff);
	cr_assert_eq(dt_in(&dt_bus, 0xcff, 1), 0xff);
	dt_out(&dt_bus, 0xcfc, 4, 0x12345678u);
	cr_assert_eq(dt_in(&dt_bus, 0xcfc, 4), 0xffffffffu, "data writes ignored");
	dt_out(&dt_bus, 0xcf8, 1, 0x00);
	dt_out(&dt_bus, 0xcfa, 2, 0x0000);
	cr_assert_eq(dt_dev.pci.addr, 0x8000f810u, "only a dword write at 0xcf8 latches");
	cr_assert_eq(dt_bus.unknown_accesses, 0);
}

Test(devices, post_port_is_a_silent_sink)
{
	dt_out(&dt_bus, 0x80, 1, 0x42);
	cr_assert_eq(dt_in(&dt_bus, 0x80, 1), 0xff);
	cr_assert_eq(dt_bus.unknown_accesses, 0);
}

/* A second machine to load into. */
struct dt_machine {
	struct bus bus;
	struct devices dev;
};

static void dt_machine_init(struct dt_machine *m)
{
	cr_assert_eq(bus_init(&m->bus, "pio"), 0);
	struct devices_cfg cfg = { .com2_rx_cap = 1024 };
	cr_assert_eq(devices_init(&m->dev, &m->bus, &cfg), 0);
}

static void dt_machine_fini(struct dt_machine *m)
{
	bus_fini(&m->bus);
	devices_fini(&m->dev);
}

/* Put every device of the global machine into a distinctive state and save it. */
static void dt_save_busy(struct sbuf *out)
{
	dt_out(&dt_bus, 0x3fb, 1, 0x03);
	dt_out(&dt_bus, 0x3f9, 1, 0x01);
	uint8_t msg[3] = { 'c', 'o', 'n' };
	cr_assert_eq(uart_rx_push(&dt_dev.com1, msg, 3), 0);
	dt_out(&dt_bus, 0x2ff, 1, 0x5c);
	uint8_t frame[5] = { 0, 0, 0, 1, 0xaa };
	cr_assert_eq(uart_rx_push(&dt_dev.com2, frame, 5), 0);
	dt_out(&dt_bus, 0x61, 1, 0x03);
	dt_out(&dt_bus, 0x64, 1, 0xd1);
	dt_out(&dt_bus, 0xcf8, 4, 0x80001234u);
	sbuf_init(out);
	cr_assert_eq(devices_save(&dt_dev, out), 0);
}

/* Save m into a fresh buffer the caller finalises. */
static void dt_save(struct devices *d, struct sbuf *out)
{
	sbuf_init(out);
	cr_assert_eq(devices_save(d, out), 0);
}

Test(devices, save_load_round_trip)
{
	struct sbuf saved;
	dt_save_busy(&saved);

	struct dt_machine m;
	dt_machine_init(&m);
	struct sbuf_reader r;
	sbuf_reader_init(&r, saved.data, saved.len);
	cr_assert_eq(devices_load(&m.dev, &r), 0);
	cr_assert_eq(sbuf_remaining(&r), 0);

	struct sbuf again;
	dt_save(&m.dev, &again);
	cr_assert_eq(again.len, saved.len);
	cr_assert_eq(memcmp(again.data, saved.data, saved.len), 0);

	cr_assert_eq(m.dev.com1.lcr, 0x03);
	cr_assert_eq(m.dev.com1.ier, 0x01);
	cr_assert_eq(dt_in(&m.bus, 0x3f8, 1), 'c');
	cr_assert_eq(m.dev.com2.scr, 0x5c);
	cr_assert_eq(m.dev.com2.rx_len, 5);
	cr_assert_eq(m.dev.kbd.port_b & 0x0f, 0x03);
	cr_assert_eq(m.dev.kbd.last_cmd, 0xd1);
	cr_assert_eq(dt_in(&m.bus, 0xcf8, 4), 0x80001234u);
	sbuf_fini(&again);
	sbuf_fini(&saved);
	dt_machine_fini(&m);
}

/* Byte offsets of the records in a devices_save buffer. */
static size_t dt_records(const struct sbuf *b, size_t *start, size_t max)
{
	struct sbuf_reader r;
	size_t n = 0;
	sbuf_reader_init(&r, b->data, b->len);
	while (sbuf_remaining(&r) && n < max) {
		start[n++] = r.off;
		uint32_t nl = sbuf_get_u32(&r);
		uint8_t skip[256];
		sbuf_get_bytes(&r, skip, nl);
		uint32_t pl = sbuf_get_u32(&r);
		r.off += pl;
	}
	cr_assert_eq(r.off, b->len);
	start[n] = b->len;
	return n;
}

/* Loading rec into a fresh machine fails with -EPROTO and changes nothing. */
static void dt_assert_rejected(const uint8_t *rec, size_t len)
{
	struct dt_machine m;
	struct sbuf before, after;
	dt_machine_init(&m);
	dt_save(&m.dev, &before);
	struct sbuf_reader r;
	sbuf_reader_init(&r, rec, len);
	cr_assert_eq(devices_load(&m.dev, &r), -EPROTO, "accepted %zu bytes", len);
	dt_save(&m.dev, &after);
	cr_assert_eq(after.len, before.len);
	cr_assert_eq(memcmp(after.data, before.data, before.len), 0, "state changed on error");
	sbuf_fini(&after);
	sbuf_fini(&before);
	dt_machine_fini(&m);
}

Test(devices, reordered_records_rejected)
{
	struct sbuf saved;
	size_t st[8];
	dt_save_busy(&saved);
	cr_assert_eq(dt_records(&saved, st, 7), 6);
	/* Swap records 0 and 1 (com1, com2). */
	uint8_t *buf = malloc(saved.len);
	size_t l0 = st[1] - st[0], l1 = st[2] - st[1];
	memcpy(buf, saved.data + st[1], l1);
	memcpy(buf + l1, saved.data, l0);
	memcpy(buf + l0 + l1, saved.data + st[2], saved.len - st[2]);
	dt_assert_rejected(buf, saved.len);
	free(buf);
	sbuf_fini(&saved);
}

Test(devices, reorder_message_names_both)
{
	struct sbuf saved;
	size_t st[8];
	dt_save_busy(&saved);
	dt_records(&saved, st, 7);
	struct dt_machine m;
	dt_machine_init(&m);
	struct sbuf_reader r;
	sbuf_reader_init(&r, saved.data + st[1], saved.len - st[1]); /* starts at "com2" */
	cr_assert_eq(devices_load(&m.dev, &r), -EPROTO);
	fflush(stderr);
	cr_assert_stderr_eq_str("snapbox: device state: record 0 is \"com2\", expected \"com1\"\n");
	dt_machine_fini(&m);
	sbuf_fini(&saved);
}

Test(devices, renamed_record_rejected)
{
	struct sbuf saved;
	dt_save_busy(&saved);
	uint8_t *p = memmem(saved.data, saved.len, "i8042", 5);
	cr_assert_not_null(p);
	p[4] = '3';
	dt_assert_rejected(saved.data, saved.len);
	sbuf_fini(&saved);
}

Test(devices, truncated_records_rejected)
{
	struct sbuf saved;
	dt_save_busy(&saved);
	for (size_t n = 0; n < saved.len; n++)
		dt_assert_rejected(saved.data, n);
	sbuf_fini(&saved);
}

Test(devices, missing_and_extra_records_rejected)
{
	struct sbuf saved;
	size_t st[8];
	dt_save_busy(&saved);
	cr_assert_eq(dt_records(&saved, st, 7), 6);
	dt_assert_rejected(saved.data, st[4]); /* "post" missing */

	struct sbuf more;
	sbuf_init(&more);
	sbuf_put_bytes(&more, saved.data, saved.len);
	sbuf_put_u32(&more, 4);
	sbuf_put_bytes(&more, "rtc0", 4);
	sbuf_put_u32(&more, 0);
	dt_assert_rejected(more.data, more.len);
	sbuf_fini(&more);
	sbuf_fini(&saved);
}

Test(devices, oversized_name_and_payload_rejected)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_put_u32(&b, 0xffffffffu);
	dt_assert_rejected(b.data, b.len);
	sbuf_fini(&b);

	sbuf_init(&b);
	sbuf_put_u32(&b, 4);
	sbuf_put_bytes(&b, "com1", 4);
	sbuf_put_u32(&b, 0x7fffffffu);
	dt_assert_rejected(b.data, b.len);
	sbuf_fini(&b);
}

Test(devices, payload_with_trailing_bytes_rejected)
{
	struct sbuf saved;
	size_t st[8];
	dt_save_busy(&saved);
	cr_assert_eq(dt_records(&saved, st, 7), 6);
	/* Rebuild with one junk byte appended to the empty "post" payload. */
	struct sbuf bad;
	sbuf_init(&bad);
	sbuf_put_bytes(&bad, saved.data, st[4]);
	sbuf_put_u32(&bad, 4);
	sbuf_put_bytes(&bad, "post", 4);
	sbuf_put_u32(&bad, 1);
	sbuf_put_u8(&bad, 0);
	sbuf_put_bytes(&bad, saved.data + st[5], saved.len - st[5]); /* the vsock record */
	struct dt_machine m;
	dt_machine_init(&m);
	struct sbuf_reader r;
	sbuf_reader_init(&r, bad.data, bad.len);
	cr_assert_eq(devices_load(&m.dev, &r), -EPROTO);
	dt_machine_fini(&m);
	sbuf_fini(&bad);
	sbuf_fini(&saved);
}

/* ---- the serialisation buffer underneath every save format ---- */

Test(sbuf, little_endian_layout_and_round_trip)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_put_u8(&b, 0x01);
	sbuf_put_u16(&b, 0x0302);
	sbuf_put_u32(&b, 0x07060504u);
	sbuf_put_u64(&b, 0x0f0e0d0c0b0a0908ull);
	sbuf_put_bytes(&b, "\x10\x11", 2);
	sbuf_put_bytes(&b, NULL, 0);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(b.len, 17);
	for (size_t i = 0; i < 17; i++)
		cr_assert_eq(b.data[i], i + 1, "byte %zu", i);

	struct sbuf_reader r;
	sbuf_reader_init(&r, b.data, b.len);
	cr_assert_eq(sbuf_get_u8(&r), 0x01);
	cr_assert_eq(sbuf_get_u16(&r), 0x0302);
	cr_assert_eq(sbuf_get_u32(&r), 0x07060504u);
	cr_assert_eq(sbuf_get_u64(&r), 0x0f0e0d0c0b0a0908ull);
	cr_assert_eq(sbuf_remaining(&r), 2);
	uint8_t two[2];
	sbuf_get_bytes(&r, two, 2);
	cr_assert_eq(two[1], 0x11);
	cr_assert_eq(sbuf_remaining(&r), 0);
	cr_assert_eq(r.err, 0);
	sbuf_fini(&b);
	cr_assert_null(b.data);
}

Test(sbuf, writer_grows)
{
	struct sbuf b;
	sbuf_init(&b);
	for (uint32_t i = 0; i < 100000; i++)
		sbuf_put_u32(&b, i);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(b.len, 400000);
	struct sbuf_reader r;
	sbuf_reader_init(&r, b.data, b.len);
	for (uint32_t i = 0; i < 100000; i++)
		cr_assert_eq(sbuf_get_u32(&r), i);
	sbuf_fini(&b);
}

Test(sbuf, reader_truncation_is_sticky)
{
	static const uint8_t three[3] = { 0xaa, 0xbb, 0xcc };
	struct sbuf_reader r;
	sbuf_reader_init(&r, three, 3);
	cr_assert_eq(sbuf_get_u16(&r), 0xbbaa);
	cr_assert_eq(sbuf_get_u32(&r), 0, "short read yields 0");
	cr_assert_eq(r.err, -EPROTO);
	cr_assert_eq(sbuf_get_u8(&r), 0, "later reads fail too, even if a byte is left");
	uint8_t dst[4] = { 1, 2, 3, 4 };
	sbuf_get_bytes(&r, dst, 4);
	cr_assert_eq(dst[0] | dst[1] | dst[2] | dst[3], 0, "zero-filled on failure");
	cr_assert_eq(r.err, -EPROTO);
	cr_assert_eq(sbuf_remaining(&r), 0);

	sbuf_reader_init(&r, three, 3);
	cr_assert_eq(sbuf_get_u64(&r), 0);
	cr_assert_eq(r.err, -EPROTO);
}
