/* bus.h - PIO and MMIO address buses: device registration without overlap, and dispatch. */
#ifndef SNAPBOX_KVM_BUS_H
#define SNAPBOX_KVM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Device callback. `offset` is relative to the registered base. `data` holds
 * `count` elements of `size` bytes each (count > 1 for string I/O such as
 * rep insb/outsb), little-endian. For reads the device fills all of them.
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data,
			  uint32_t size, uint32_t count, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_LOG_MAX 64

struct bus {
	const char *kind;          /* "pio" or "mmio", for messages */
	struct bus_range *ranges;  /* sorted by base, never overlapping */
	size_t n;
	size_t cap;
	pthread_mutex_t log_lock;  /* guards the unknown-access log below */
	uint64_t logged[BUS_LOG_MAX];
	size_t nlogged;
	bool log_full;
	uint64_t unknown_accesses; /* total count, for tests and stats */
};

int bus_init(struct bus *b, const char *kind);
void bus_fini(struct bus *b);

/*
 * Register [base, base + len) for a device. Returns 0, -EINVAL for len 0 or
 * an overflowing range, -EEXIST when it overlaps an existing range (the
 * message names both devices), -ENOMEM.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn,
		 void *opaque, const char *name);

/*
 * Remove the range registered at exactly `base` (the undo of bus_register,
 * for unwinding a partial setup). Returns 0 or -ENOENT. Not safe while
 * another thread is dispatching on this bus.
 */
int bus_unregister(struct bus *b, uint64_t base);

/*
 * Dispatch one access of count*size bytes at addr. A registered device gets
 * it; otherwise reads return all-ones, writes are ignored, and the address is
 * logged once to stderr (at most BUS_LOG_MAX addresses, then one "further
 * accesses not logged" line). Returns true when a device handled it.
 * Never fails: a hostile guest cannot make this kill the host process.
 */
bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t size,
		uint32_t count, bool is_write);

#endif
