/* bus.c - PIO/MMIO buses: sorted non-overlapping ranges, binary-search dispatch, unknown-access log. */
#include "kvm/bus.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Start an empty bus. `kind` ("pio" or "mmio") names it in messages and must
 * outlive the bus. Returns 0 or -errno from pthread_mutex_init.
 */
int bus_init(struct bus *b, const char *kind)
{
	memset(b, 0, sizeof(*b));
	b->kind = kind ? kind : "?";
	int rc = pthread_mutex_init(&b->log_lock, NULL);
	if (rc) {
		log_msg("snapbox: %s bus: cannot create log lock: %s\n",
			b->kind, strerror(rc));
		return -rc;
	}
	return 0;
}

/* Free the range table. The devices themselves are not touched. */
void bus_fini(struct bus *b)
{
	free(b->ranges);
	pthread_mutex_destroy(&b->log_lock);
	memset(b, 0, sizeof(*b));
}

/* Last address of a range; registration guarantees this does not overflow. */
static uint64_t bus_last(const struct bus_range *r)
{
	return r->base + (r->len - 1);
}

/* Index of the first range whose base is greater than addr (0..n). */
static size_t bus_upper(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The range containing addr, or NULL. */
static const struct bus_range *bus_find(const struct bus *b, uint64_t addr)
{
	size_t i = bus_upper(b, addr);
	if (i == 0)
		return NULL;
	const struct bus_range *r = &b->ranges[i - 1];
	return addr <= bus_last(r) ? r : NULL;
}

/* The one stderr line for a rejected registration: both devices and both ranges. */
static void bus_report_overlap(const struct bus *b, const char *name, uint64_t base,
			       uint64_t last, const struct bus_range *old)
{
	log_msg("snapbox: %s bus: %s [0x%llx-0x%llx] overlaps %s [0x%llx-0x%llx]\n",
		b->kind, name ? name : "?", (unsigned long long)base,
		(unsigned long long)last, old->name ? old->name : "?",
		(unsigned long long)old->base, (unsigned long long)bus_last(old));
}

/*
 * Register [base, base + len) for a device. Returns 0, -EINVAL for len 0 or
 * an overflowing range, -EEXIST when it overlaps an existing range (the
 * message names both devices), -ENOMEM.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn,
		 void *opaque, const char *name)
{
	/* A range may end at the very top of the address space, not beyond it. */
	if (len == 0 || len - 1 > UINT64_MAX - base || !fn) {
		log_msg("snapbox: %s bus: %s has an invalid range (base 0x%llx, len 0x%llx)\n",
			b->kind, name ? name : "?", (unsigned long long)base,
			(unsigned long long)len);
		return -EINVAL;
	}
	uint64_t last = base + (len - 1);

	/* Sorted and disjoint, so only the two neighbours of the slot can overlap. */
	size_t i = bus_upper(b, base);
	if (i > 0 && bus_last(&b->ranges[i - 1]) >= base) {
		bus_report_overlap(b, name, base, last, &b->ranges[i - 1]);
		return -EEXIST;
	}
	if (i < b->n && b->ranges[i].base <= last) {
		bus_report_overlap(b, name, base, last, &b->ranges[i]);
		return -EEXIST;
	}

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct bus_range *r = realloc(b->ranges, cap * sizeof(*r));
		if (!r) {
			log_msg("snapbox: %s bus: out of memory registering %s\n",
				b->kind, name ? name : "?");
			return -ENOMEM;
		}
		b->ranges = r;
		b->cap = cap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (b->n - i) * sizeof(b->ranges[0]));
	b->ranges[i] = (struct bus_range){
		.base = base, .len = len, .fn = fn, .opaque = opaque, .name = name,
	};
	b->n++;
	return 0;
}

/*
 * Remove the range registered at exactly `base` (the undo of bus_register,
 * for unwinding a partial setup). Returns 0 or -ENOENT. Not safe while
 * another thread is dispatching on this bus.
 */
int bus_unregister(struct bus *b, uint64_t base)
{
	size_t i = bus_upper(b, base);
	if (i == 0 || b->ranges[i - 1].base != base)
		return -ENOENT;
	i--;
	memmove(&b->ranges[i], &b->ranges[i + 1], (b->n - i - 1) * sizeof(b->ranges[0]));
	b->n--;
	return 0;
}

/* Log an unknown address the first time it is seen; bounded by BUS_LOG_MAX. */
static void bus_log_unknown(struct bus *b, uint64_t addr, bool is_write)
{
	pthread_mutex_lock(&b->log_lock);
	for (size_t i = 0; i < b->nlogged; i++) {
		if (b->logged[i] == addr)
			goto out;
	}
	if (b->nlogged < BUS_LOG_MAX) {
		b->logged[b->nlogged++] = addr;
		log_msg("snapbox: guest %s access to unknown %s address 0x%llx "
			"(reads all-ones; logged once)\n",
			is_write ? "write" : "read", b->kind, (unsigned long long)addr);
	} else if (!b->log_full) {
		b->log_full = true;
		log_msg("snapbox: further unknown accesses are not logged (%s bus)\n",
			b->kind);
	}
out:
	pthread_mutex_unlock(&b->log_lock);
}

/*
 * Dispatch one access of count*size bytes at addr. A registered device gets
 * it; otherwise reads return all-ones, writes are ignored, and the address is
 * logged once to stderr (at most BUS_LOG_MAX addresses, then one "further
 * accesses not logged" line). Returns true when a device handled it.
 * Never fails: a hostile guest cannot make this kill the host process.
 *
 * One element ([addr, addr + size)) must lie wholly inside one range to reach
 * its device; an access straddling a range end is treated as unknown, so a
 * device never sees an offset + size beyond the length it registered. String
 * I/O repeats the same address, so count does not widen the span.
 */
bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t size,
		uint32_t count, bool is_write)
{
	if (size > 0 && count > 0) {
		const struct bus_range *r = bus_find(b, addr);
		if (r && size - 1 <= bus_last(r) - addr) {
			r->fn(r->opaque, addr - r->base, data, size, count, is_write);
			return true;
		}
	}
	__atomic_fetch_add(&b->unknown_accesses, 1, __ATOMIC_RELAXED);
	if (!is_write && data)
		memset(data, 0xff, (size_t)size * count);
	bus_log_unknown(b, addr, is_write);
	return false;
}
