/* mono.h - the one monotonic clock of the tree (ns) and the "lap" helper that times phases. */
#ifndef SNAPBOX_KVM_MONO_H
#define SNAPBOX_KVM_MONO_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds since *t, and *t moved to now: consecutive calls time consecutive phases. */
static inline uint64_t mono_lap(uint64_t *t)
{
	uint64_t now = mono_now_ns(), d = now - *t;

	*t = now;
	return d;
}

#endif
