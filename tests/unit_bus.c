/* unit_bus.c - unit tests for the PIO/MMIO bus: registration rules, dispatch and unknown accesses. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvm/bus.h"

struct busrec {
	int calls;
	uint64_t offset;
	uint32_t size, count;
	bool is_write;
	uint8_t first;
};

static struct bus busb;

static void busb_fn(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		    uint32_t count, bool is_write)
{
	struct busrec *r = opaque;
	r->calls++;
	r->offset = offset;
	r->size = size;
	r->count = count;
	r->is_write = is_write;
	r->first = data[0];
	if (!is_write)
		memset(data, 0x5a, (size_t)size * count);
}

/* Every test gets a fresh bus and a captured stderr (checked where the text matters). */
static void busb_setup_quiet(void)
{
	cr_redirect_stderr();
	cr_assert_eq(bus_init(&busb, "pio"), 0);
}

static void busb_teardown(void)
{
	bus_fini(&busb);
}

TestSuite(bus, .init = busb_setup_quiet, .fini = busb_teardown);

Test(bus, overlap_rejected_in_every_shape)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x100, 8, busb_fn, &r, "a"), 0);
	cr_assert_eq(bus_register(&busb, 0x100, 8, busb_fn, &r, "exact"), -EEXIST);
	cr_assert_eq(bus_register(&busb, 0xfc, 8, busb_fn, &r, "left"), -EEXIST);
	cr_assert_eq(bus_register(&busb, 0x107, 4, busb_fn, &r, "right"), -EEXIST);
	cr_assert_eq(bus_register(&busb, 0x102, 2, busb_fn, &r, "inside"), -EEXIST);
	cr_assert_eq(bus_register(&busb, 0xf0, 0x100, busb_fn, &r, "around"), -EEXIST);
	cr_assert_eq(busb.n, 1);
	cr_assert_eq(busb.ranges[0].base, 0x100);
	cr_assert_eq(busb.ranges[0].len, 8);
}

Test(bus, overlap_message_names_both_devices)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x3f8, 8, busb_fn, &r, "com1"), 0);
	cr_assert_eq(bus_register(&busb, 0x3fc, 2, busb_fn, &r, "intruder"), -EEXIST);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"snapbox: pio bus: intruder [0x3fc-0x3fd] overlaps com1 [0x3f8-0x3ff]\n");
}

Test(bus, adjacent_ranges_accepted_and_sorted)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x108, 8, busb_fn, &r, "c"), 0);
	cr_assert_eq(bus_register(&busb, 0xf8, 8, busb_fn, &r, "a"), 0);
	cr_assert_eq(bus_register(&busb, 0x100, 8, busb_fn, &r, "b"), 0);
	cr_assert_eq(busb.n, 3);
	cr_assert_eq(busb.ranges[0].base, 0xf8);
	cr_assert_eq(busb.ranges[1].base, 0x100);
	cr_assert_eq(busb.ranges[2].base, 0x108);
}

Test(bus, invalid_ranges_rejected)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x10, 0, busb_fn, &r, "empty"), -EINVAL);
	cr_assert_eq(bus_register(&busb, UINT64_MAX, 2, busb_fn, &r, "wrap"), -EINVAL);
	cr_assert_eq(bus_register(&busb, 2, UINT64_MAX, busb_fn, &r, "huge"), -EINVAL);
	cr_assert_eq(busb.n, 0);
	/* Ending exactly at the top of the address space is fine. */
	cr_assert_eq(bus_register(&busb, UINT64_MAX - 0xfff, 0x1000, busb_fn, &r, "top"), 0);
	uint8_t v = 0;
	cr_assert(bus_access(&busb, UINT64_MAX, &v, 1, 1, false));
	cr_assert_eq(r.offset, 0xfff);
}

Test(bus, dispatch_passes_relative_offset_and_shape)
{
	struct busrec a = { 0 }, b = { 0 };
	cr_assert_eq(bus_register(&busb, 0x3f8, 8, busb_fn, &a, "a"), 0);
	cr_assert_eq(bus_register(&busb, 0x2f8, 8, busb_fn, &b, "b"), 0);

	uint8_t buf[8] = { 0x42 };
	cr_assert(bus_access(&busb, 0x3fd, buf, 1, 1, true));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.offset, 5);
	cr_assert_eq(a.size, 1);
	cr_assert_eq(a.count, 1);
	cr_assert(a.is_write);
	cr_assert_eq(a.first, 0x42);
	cr_assert_eq(b.calls, 0);

	cr_assert(bus_access(&busb, 0x2f8, buf, 2, 3, false));
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.offset, 0);
	cr_assert_eq(b.size, 2);
	cr_assert_eq(b.count, 3);
	cr_assert_not(b.is_write);
	cr_assert_eq(buf[5], 0x5a);
	cr_assert_eq(busb.unknown_accesses, 0);
}

Test(bus, dispatch_finds_every_range_among_many)
{
	struct busrec recs[40] = { 0 };
	/* Register in a scrambled order so sorting and the search both matter. */
	for (int k = 0; k < 40; k++) {
		int i = (k * 17) % 40;
		cr_assert_eq(bus_register(&busb, 0x1000 + 0x10 * (uint64_t)i, 4, busb_fn,
					  &recs[i], "dev"), 0);
	}
	for (int i = 0; i < 40; i++) {
		for (uint64_t off = 0; off < 4; off++) {
			uint8_t v = 0;
			cr_assert(bus_access(&busb, 0x1000 + 0x10 * (uint64_t)i + off, &v, 1, 1, false));
			cr_assert_eq(recs[i].offset, off);
		}
		cr_assert_eq(recs[i].calls, 4);
		uint8_t v = 0;
		/* The gap after each range is unknown. */
		cr_assert_not(bus_access(&busb, 0x1000 + 0x10 * (uint64_t)i + 4, &v, 1, 1, false));
	}
}

Test(bus, unknown_reads_are_all_ones)
{
	uint8_t buf[16];
	static const uint32_t sizes[] = { 1, 2, 4 };
	for (size_t s = 0; s < 3; s++) {
		memset(buf, 0x11, sizeof(buf));
		cr_assert_not(bus_access(&busb, 0x500, buf, sizes[s], 1, false));
		for (uint32_t i = 0; i < sizes[s]; i++)
			cr_assert_eq(buf[i], 0xff);
		cr_assert_eq(buf[sizes[s]], 0x11, "read wrote past size %u", sizes[s]);
	}
	memset(buf, 0x11, sizeof(buf));
	cr_assert_not(bus_access(&busb, 0x500, buf, 2, 5, false));
	for (int i = 0; i < 10; i++)
		cr_assert_eq(buf[i], 0xff);
	cr_assert_eq(buf[10], 0x11);
}

Test(bus, unknown_writes_ignored_and_counted)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x60, 5, busb_fn, &r, "kbd"), 0);
	uint8_t buf[4] = { 1, 2, 3, 4 };
	cr_assert_not(bus_access(&busb, 0x70, buf, 4, 1, true));
	cr_assert_eq(buf[0], 1);
	cr_assert_eq(buf[3], 4);
	cr_assert_eq(busb.unknown_accesses, 1);
	cr_assert_not(bus_access(&busb, 0x70, buf, 1, 1, false));
	cr_assert_not(bus_access(&busb, 0x71, buf, 1, 1, false));
	cr_assert_eq(busb.unknown_accesses, 3);
	cr_assert(bus_access(&busb, 0x60, buf, 1, 1, false));
	cr_assert_eq(busb.unknown_accesses, 3);
	cr_assert_eq(r.calls, 1);
}

Test(bus, access_straddling_range_end_is_unknown)
{
	struct busrec r = { 0 };
	cr_assert_eq(bus_register(&busb, 0x3f8, 8, busb_fn, &r, "com1"), 0);
	uint8_t buf[4];
	cr_assert_not(bus_access(&busb, 0x3fe, buf, 4, 1, false));
	cr_assert_eq(r.calls, 0);
	cr_assert_eq(buf[0], 0xff);
	cr_assert(bus_access(&busb, 0x3fc, buf, 4, 1, false));
	cr_assert_eq(r.offset, 4);
}

Test(bus, unknown_address_logged_once)
{
	uint8_t v[4];
	bus_access(&busb, 0x1234, v, 1, 1, false);
	bus_access(&busb, 0x1234, v, 1, 1, true);
	bus_access(&busb, 0x1234, v, 1, 4, false);
	bus_access(&busb, 0x80, v, 1, 1, true);
	cr_assert_eq(busb.unknown_accesses, 4);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"snapbox: guest read access to unknown pio address 0x1234 (reads all-ones; logged once)\n"
		"snapbox: guest write access to unknown pio address 0x80 (reads all-ones; logged once)\n");
}

Test(bus, log_is_bounded)
{
	static char expect[BUS_LOG_MAX * 128 + 128];
	size_t off = 0;
	uint8_t v;
	for (uint64_t a = 0; a < BUS_LOG_MAX + 10; a++)
		bus_access(&busb, 0x9000 + a, &v, 1, 1, false);
	for (uint64_t a = 0; a < BUS_LOG_MAX + 10; a++)
		bus_access(&busb, 0x9000 + a, &v, 1, 1, false);
	for (uint64_t a = 0; a < BUS_LOG_MAX; a++)
		off += (size_t)snprintf(expect + off, sizeof(expect) - off,
					"snapbox: guest read access to unknown pio address 0x%llx "
					"(reads all-ones; logged once)\n",
					(unsigned long long)(0x9000 + a));
	snprintf(expect + off, sizeof(expect) - off,
		 "snapbox: further unknown accesses are not logged (pio bus)\n");
	cr_assert_eq(busb.unknown_accesses, 2 * (BUS_LOG_MAX + 10));
	cr_assert_eq(busb.nlogged, BUS_LOG_MAX);
	cr_assert(busb.log_full);
	fflush(stderr);
	cr_assert_stderr_eq_str(expect);
}

Test(bus, unregister_removes_range)
{
	struct busrec a = { 0 }, b = { 0 };
	cr_assert_eq(bus_register(&busb, 0x10, 4, busb_fn, &a, "a"), 0);
	cr_assert_eq(bus_register(&busb, 0x20, 4, busb_fn, &b, "b"), 0);
	cr_assert_eq(bus_unregister(&busb, 0x12), -ENOENT);
	cr_assert_eq(bus_unregister(&busb, 0x10), 0);
	cr_assert_eq(bus_unregister(&busb, 0x10), -ENOENT);
	cr_assert_eq(busb.n, 1);
	uint8_t v;
	cr_assert_not(bus_access(&busb, 0x10, &v, 1, 1, false));
	cr_assert(bus_access(&busb, 0x20, &v, 1, 1, false));
	/* The freed slot can be taken again. */
	cr_assert_eq(bus_register(&busb, 0x10, 4, busb_fn, &a, "a2"), 0);
}
