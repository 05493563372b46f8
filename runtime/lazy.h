/* lazy.h - lazy restore: a userfaultfd handler thread that decodes each memory chunk when the guest (or KVM) first touches it. */
#ifndef SNAPBOX_RUNTIME_LAZY_H
#define SNAPBOX_RUNTIME_LAZY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "snapshot/memfile.h"

struct lazy {
	int uffd;
	int stop_fd;                 /* eventfd: wakes the handler to exit */
	uint8_t *base;               /* guest RAM, gpa 0 */
	uint64_t size;
	struct memfile_reader mem;   /* a private copy: the handler outlives the restore call */
	uint8_t *loaded;             /* one byte per chunk, written by the handler thread only */
	uint8_t *buf;                /* one decoded chunk */
	void *scratch;               /* lz4 input scratch */
	pthread_t thread;
	atomic_uint_least64_t faults;    /* chunks decoded on demand */
	atomic_uint_least64_t errors;    /* chunks that failed to decode (the guest sees zeros) */
};

/*
 * Register guest RAM [base, base+size) (fresh anonymous memory, no page
 * touched yet) for missing-page faults and start the handler thread, which
 * serves each fault by decoding the whole chunk containing it (verified
 * against its xxh3 when mem->verify) and placing it with UFFDIO_COPY, or
 * UFFDIO_ZEROPAGE for a ZERO chunk. Must run before anything (KVM included)
 * touches guest RAM. mem is copied (index and a dup of its fd).
 * Returns 0 or -errno with one line on stderr.
 */
int lazy_start(struct lazy *l, uint8_t *base, uint64_t size, const struct memfile_reader *mem);

/* Stop and join the handler, unregister, free. Call after every vCPU stopped. Idempotent. */
void lazy_stop(struct lazy *l);

#endif
