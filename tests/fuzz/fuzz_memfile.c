/* fuzz_memfile.c - libFuzzer target: memfile_open on a memfd holding the input, then every chunk decoded with verification on and off. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "snapshot/memfile.h"

/* Raw bytes decoded per input at most, so a tiny file of huge chunks cannot make one run slow. */
#define FZ_BUDGET     (64u << 20)
/* memfile_read_all into a real destination only up to this raw size. */
#define FZ_MAX_DST    (16u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_fd = -1;
static uint8_t *fz_dst;        /* FZ_MAX_DST bytes */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_fd = memfd_create("fuzz_memfile", MFD_CLOEXEC);
	fz_dst = calloc(1, FZ_MAX_DST);
	if (fz_fd < 0 || !fz_dst)
		abort();
	return 0;
}

/* Make the memfd hold exactly these bytes. */
static void fz_load(const uint8_t *data, size_t size)
{
	size_t done = 0;

	if (ftruncate(fz_fd, 0) != 0 || ftruncate(fz_fd, (off_t)size) != 0)
		abort();
	while (done < size) {
		ssize_t n = pwrite(fz_fd, data + done, size - done, (off_t)done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
}

/* fz_dst is all zero between runs: whatever a run writes into it, it zeroes again. */
static void fz_decode(struct memfile_reader *r)
{
	uint64_t budget = FZ_BUDGET, nonzero = 0;
	uint8_t *scratch = malloc(memfile_scratch_size(r));
	size_t dirty = 0;

	if (!scratch)
		abort();
	for (uint32_t i = 0; i < r->chunk_count; i++) {
		uint32_t len = memfile_chunk_len(r->raw_size, r->chunk_size, i);
		bool zero = r->chunks[i].kind == MEMFILE_KIND_ZERO;

		if (len == 0 || len > r->chunk_size)
			abort();
		nonzero += zero ? 0 : len;
		/* A ZERO chunk is a memset: the first and the last are enough. */
		if (len > budget || (zero && i != 0 && i != r->chunk_count - 1))
			continue;
		budget -= len;
		dirty = len > dirty ? len : dirty;
		memfile_set_verify(r, true);
		int on = memfile_read_chunk(r, i, fz_dst, len, i & 1 ? scratch : NULL);
		memfile_set_verify(r, false);
		int off = memfile_read_chunk(r, i, fz_dst, len, scratch);
		/* Verification can only add failures. */
		if (on == 0 && off != 0)
			abort();
	}
	memset(fz_dst, 0, dirty);
	/* An index past the end is refused. */
	if (memfile_read_chunk(r, r->chunk_count, fz_dst, FZ_MAX_DST, scratch) == 0)
		abort();
	free(scratch);
	if (nonzero > FZ_BUDGET)
		return;
	memfile_set_verify(r, true);
	(void)memfile_read_all(r, NULL, 0, 1);
	if (r->raw_size > FZ_MAX_DST)
		return;
	(void)memfile_read_all(r, fz_dst, r->raw_size, 2);
	for (uint32_t i = 0; i < r->chunk_count; i++) {
		if (r->chunks[i].kind != MEMFILE_KIND_ZERO)
			memset(fz_dst + (size_t)i * r->chunk_size, 0,
			       memfile_chunk_len(r->raw_size, r->chunk_size, i));
	}
}

static void fz_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t fz_get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Rewrite index_xxh64 (when the header places the index inside the file) and header_xxh64. */
static void fz_fix_hashes(uint8_t *f, size_t size)
{
	uint64_t count, at;

	if (size < MEMFILE_HDR_SIZE)
		return;
	count = fz_get(f + 28, 4);
	at = fz_get(f + 32, 8);
	if (at <= size && (size - at) / MEMFILE_ENTRY_SIZE >= count)
		fz_put64(f + 40, XXH64(f + at, (size_t)count * MEMFILE_ENTRY_SIZE, 0));
	fz_put64(f + 48, XXH64(f, 48, 0));
}

static void fz_one(const uint8_t *data, size_t size)
{
	struct memfile_reader r;

	fz_load(data, size);
	if (memfile_open(&r, fz_fd) != 0) {
		if (r.chunks || r.fd != -1)
			abort();
		return;
	}
	fz_decode(&r);
	memfile_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	fz_one(data, size);
	fixed = malloc(size ? size : 1);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	fz_fix_hashes(fixed, size);
	if (memcmp(fixed, data, size) != 0)
		fz_one(fixed, size);
	free(fixed);
	return 0;
}
