/* unit_memfile.c - memory file codec: round trips over chunk sizes and threads, random access, corruption, truncation, RAW and ZERO chunks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "tests/common_capture.h"
#include "snapshot/memfile.h"


static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* 0 zero, 1 text-like, 2 random: len bytes of that kind. */
static void fill(uint8_t *p, size_t len, int kind, uint64_t seed)
{
	static const char *words[] = { "the ", "snapshot ", "kernel ", "memory\n", "page ", "vcpu ",
				       "return ", "0x7f ", "struct ", "error " };
	uint64_t s = mix(seed) | 1;
	size_t i = 0;

	if (kind == 0) {
		memset(p, 0, len);
		return;
	}
	while (i < len) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		if (kind == 2) {
			for (int b = 0; b < 8 && i < len; b++)
				p[i++] = (uint8_t)(s >> (8 * b));
		} else {
			for (const char *w = words[s % 10]; *w && i < len; w++)
				p[i++] = (uint8_t)*w;
		}
	}
}

/*
 * A realistic mix: the first half in runs of 256 KiB (so larger chunks still
 * see whole zero chunks), the second half varying every 16 KiB.
 */
static uint8_t *make_mix(size_t size)
{
	uint8_t *p = malloc(size);

	cr_assert_not_null(p);
	for (size_t off = 0, b = 0; off < size; off += 16384, b++) {
		size_t n = size - off < 16384 ? size - off : 16384;
		int kind = off < size / 2 ? (int)(mix(off / (256 << 10)) % 3) : (int)(mix(b) % 3);

		fill(p + off, n, kind, b);
	}
	/* Whole zero chunks at every chunk size the tests use (up to 4 MiB), when it fits. */
	if (size >= (12u << 20))
		memset(p + (4u << 20), 0, 4u << 20);
	else if (size >= (1u << 20))
		memset(p + (size / 2 & ~(size_t)0x3ffff), 0, 256u << 10);
	return p;
}

/* Write ram into a new memfd; returns the fd. */
static int write_mem(const uint8_t *ram, size_t size, uint32_t chunk, unsigned threads,
		     struct memfile_stats *st)
{
	struct memfile_write_opts o = { .chunk_size = chunk, .threads = threads };
	int fd = memfd_create("memory", 0);

	cr_assert(fd >= 0);
	cr_assert_eq(memfile_write(fd, ram, size, &o, st), 0, "chunk %u threads %u", chunk, threads);
	return fd;
}

static uint8_t *file_bytes(int fd, size_t *len)
{
	struct stat st;
	uint8_t *b;

	cr_assert_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	b = malloc(*len);
	cr_assert_eq(pread(fd, b, *len, 0), (ssize_t)*len);
	return b;
}

static void put_bytes(int fd, const uint8_t *b, size_t len)
{
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(pwrite(fd, b, len, 0), (ssize_t)len);
}

/* Open fd and decode everything (verify-only); returns the first error. */
static int open_and_verify(int fd)
{
	struct memfile_reader r;
	int ret = memfile_open(&r, fd);

	if (!ret)
		ret = memfile_read_all(&r, NULL, 0, 1);
	memfile_close(&r);
	return ret;
}

Test(memfile, round_trip_chunk_sizes_and_threads)
{
	static const uint32_t chunks[] = { 64 << 10, 256 << 10, 1 << 20, 4 << 20 };
	size_t size = (16u << 20) + 12345;    /* the last chunk is short */
	uint8_t *ram = make_mix(size), *out = malloc(size);

	for (size_t c = 0; c < 4; c++) {
		for (unsigned t = 1; t <= 3; t++) {
			struct memfile_stats st;
			struct memfile_reader r;
			int fd = write_mem(ram, size, chunks[c], t, &st);

			cr_assert_eq(memfile_open(&r, fd), 0);
			cr_assert_eq(r.raw_size, size);
			cr_assert_eq(r.chunk_count, (size - 1) / chunks[c] + 1);
			cr_assert_eq(st.zero_chunks + st.lz4_chunks + st.raw_chunks, r.chunk_count);
			cr_assert_eq(st.zero_chunks, r.zero_chunks);
			cr_assert_eq(st.raw_chunks, r.raw_chunks);
			cr_assert_gt(st.zero_chunks, 0, "chunk %u", chunks[c]);
			cr_assert_gt(st.lz4_chunks, 0);
			cr_assert_lt(st.bytes_out, size);
			cr_assert_eq(st.bytes_in, size);
			cr_assert_eq(st.index_xxh64, r.index_xxh64);
			cr_assert_eq(st.chunk_count, r.chunk_count);
			cr_assert_eq(st.chunk_size, r.chunk_size);
			for (unsigned rt = 1; rt <= 2; rt++) {
				memset(out, 0, size);
				cr_assert_eq(memfile_read_all(&r, out, size, rt), 0);
				cr_assert(!memcmp(out, ram, size), "chunk %u, %u/%u threads", chunks[c], t,
					  rt);
			}
			memfile_close(&r);
			close(fd);
		}
	}
	free(out);
	free(ram);
}

Test(memfile, output_does_not_depend_on_threads)
{
	size_t size = 4u << 20, a_len, b_len;
	uint8_t *ram = make_mix(size);
	int a = write_mem(ram, size, 64 << 10, 1, NULL), b = write_mem(ram, size, 64 << 10, 4, NULL);
	uint8_t *fa = file_bytes(a, &a_len), *fb = file_bytes(b, &b_len);

	cr_assert_eq(a_len, b_len);
	cr_assert(!memcmp(fa, fb, a_len));
	free(fa);
	free(fb);
	close(a);
	close(b);
	free(ram);
}

Test(memfile, random_access_single_chunks)
{
	size_t size = (3u << 20) + 4096 + 7;
	uint8_t *ram = make_mix(size), *chunk = malloc(256 << 10), *scratch;
	struct memfile_reader r;
	int fd = write_mem(ram, size, 256 << 10, 2, NULL);

	cr_assert_eq(memfile_open(&r, fd), 0);
	scratch = malloc(memfile_scratch_size(&r));
	for (uint32_t k = 0; k < 3 * r.chunk_count; k++) {
		uint32_t i = (uint32_t)(mix(k) % r.chunk_count);
		uint32_t len = memfile_chunk_len(r.raw_size, r.chunk_size, i);

		memset(chunk, 0xa5, 256 << 10);
		cr_assert_eq(memfile_read_chunk(&r, i, chunk, 256 << 10, (k & 1) ? scratch : NULL), 0);
		cr_assert(!memcmp(chunk, ram + (size_t)i * r.chunk_size, len), "chunk %u", i);
	}
	cr_assert_eq(memfile_chunk_len(size, 256 << 10, r.chunk_count - 1), 4096 + 7);
	free(scratch);
	memfile_close(&r);
	close(fd);
	free(chunk);
	free(ram);
}

Test(memfile, flipped_payload_byte_is_a_checksum_error)
{
	size_t size = 2u << 20, len;
	uint8_t *ram = malloc(size), *f, *out = calloc(1, size);
	struct memfile_reader r;
	int fd, mfd, saved;
	const char *msg;

	fill(ram, size, 2, 1);                /* random: every chunk RAW, so only the hash can tell */
	fd = write_mem(ram, size, 64 << 10, 1, NULL);
	f = file_bytes(fd, &len);
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(r.raw_chunks, 32);
	f[r.chunks[17].offset + 100] ^= 0x10;
	memfile_close(&r);
	put_bytes(fd, f, len);
	cr_assert_eq(memfile_open(&r, fd), 0, "payloads are not covered by the index hash");
	saved = tests_cap_begin(&mfd);
	cr_assert_eq(memfile_read_all(&r, NULL, 0, 2), -EPROTO);
	msg = tests_cap_end(saved, mfd);
	cr_assert_str_eq(msg, "snapbox: memory file: chunk 17 checksum mismatch\n");
	/* Verification can be switched off: then the damage goes through unnoticed. */
	memfile_set_verify(&r, false);
	cr_assert_eq(memfile_read_all(&r, out, size, 1), 0);
	cr_assert_neq(memcmp(out, ram, size), 0);
	memfile_close(&r);
	free(out);
	free(f);
	close(fd);
	free(ram);
}

/* A small file with one chunk of each kind and a short last chunk: 64K zero, 16K text + 48K zero, 64K random, 100 B text. */
static int small_file(uint8_t **ram_out, size_t *size_out)
{
	size_t size = 3 * (64 << 10) + 100;
	uint8_t *ram = malloc(size);

	fill(ram, 64 << 10, 0, 0);
	fill(ram + (64 << 10), 64 << 10, 0, 0);
	fill(ram + (64 << 10), 16 << 10, 1, 1);   /* text then zeros: a small lz4 block */
	fill(ram + (128 << 10), 64 << 10, 2, 2);
	fill(ram + (192 << 10), 100, 1, 3);
	*ram_out = ram;
	*size_out = size;
	return write_mem(ram, size, 64 << 10, 1, NULL);
}

/*
 * Every single-byte flip is rejected (open fails, or decoding the chunk fails),
 * except one kind that cannot be: a flip
 * inside an lz4 block that still decodes to the very same bytes (a match
 * offset moved onto an identical earlier string). Those are counted and must
 * decode byte-exact; the raw-bytes xxh3 cannot see them because nothing the
 * guest would see has changed.
 */
Test(memfile, every_byte_flip_in_a_small_file_rejected, .init = tests_quiet_stderr)
{
	uint8_t *ram, *f, *out;
	size_t size, len, n = 0, same = 0;
	int fd = small_file(&ram, &size);
	struct memfile_reader r;
	uint64_t a_from, a_to, b_from, b_to;     /* the two lz4 blocks */
	uint64_t raw_from;
	uint8_t *scratch;

	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(r.zero_chunks, 1);
	cr_assert_eq(r.lz4_chunks, 2);
	cr_assert_eq(r.raw_chunks, 1);
	a_from = r.chunks[1].offset;
	a_to = a_from + r.chunks[1].stored_len;
	b_from = r.chunks[3].offset;
	b_to = b_from + r.chunks[3].stored_len;
	raw_from = r.chunks[2].offset;
	memfile_close(&r);
	f = file_bytes(fd, &len);
	out = malloc(size);
	scratch = malloc(LZ4_COMPRESSBOUND(64 << 10));
	for (size_t i = 0; i < len; i++) {
		uint8_t old = f[i];
		bool in_payload = i >= MEMFILE_HDR_SIZE && i < len - 4 * MEMFILE_ENTRY_SIZE;
		int ret;

		/* Dense sample of the RAW chunk (its bytes are all alike to the reader), all others. */
		if (i >= raw_from && i < raw_from + (64 << 10) && (i - raw_from) % 13)
			continue;

		f[i] ^= (i & 1) ? 0x01 : 0x80;
		cr_assert_eq(pwrite(fd, f + i, 1, (off_t)i), 1);
		ret = memfile_open(&r, fd);
		memcpy(out, ram, size);
		/*
		 * Decode chunk by chunk with our scratch. A flip inside a chunk's stored
		 * bytes can only affect that chunk (decoding reads nothing else), so only
		 * that one is decoded; a flip anywhere else decodes them all.
		 */
		for (uint32_t c = 0; !ret && c < r.chunk_count; c++) {
			bool mine = i >= r.chunks[c].offset && i < r.chunks[c].offset + r.chunks[c].stored_len;
			if (in_payload && !mine)
				continue;
			ret = memfile_read_chunk(&r, c, out + (size_t)c * r.chunk_size,
						 size - (size_t)c * r.chunk_size, scratch);
		}
		if (r.chunks)
			memfile_close(&r);
		if (!ret) {
			bool in_lz4 = (i >= a_from && i < a_to) || (i >= b_from && i < b_to);
			cr_assert(in_lz4 && !memcmp(out, ram, size),
				  "flip at byte %zu of %zu accepted and decodes differently", i, len);
			same++;
		}
		f[i] = old;
		cr_assert_eq(pwrite(fd, f + i, 1, (off_t)i), 1);
		n++;
	}
	cr_assert_eq(open_and_verify(fd), 0);
	cr_log_info("memfile: %zu single-byte flips over a %zu-byte file (every byte of header, lz4 "
		    "blocks and index, every 13th of the raw chunk): %zu rejected, %zu inside lz4 "
		    "blocks decode to identical bytes", n, len, n - same, same);
	free(scratch);
	free(out);
	free(f);
	close(fd);
	free(ram);
}

Test(memfile, every_truncation_rejected, .init = tests_quiet_stderr)
{
	uint8_t *ram, *f;
	size_t size, len;
	int fd = small_file(&ram, &size);
	struct memfile_reader r;

	f = file_bytes(fd, &len);
	for (size_t n = 0; n < len; n++) {
		cr_assert_eq(ftruncate(fd, (off_t)n), 0);
		cr_assert_neq(memfile_open(&r, fd), 0, "truncated to %zu of %zu bytes", n, len);
		cr_assert_eq(r.chunks, NULL);
	}
	/* Appended bytes are rejected too. */
	put_bytes(fd, f, len);
	cr_assert_eq(pwrite(fd, "x", 1, (off_t)len), 1);
	cr_assert_neq(memfile_open(&r, fd), 0);
	free(f);
	close(fd);
	free(ram);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Re-hash the index (at idx) and header after an edit, so only the edited field's own check can fire. */
static void rehash(uint8_t *f, size_t len, size_t idx)
{
	put_u64(f + 40, XXH64(f + idx, len - idx, 0));
	put_u64(f + 48, XXH64(f, 48, 0));
}

/* Apply edit to a copy of the small file, re-hash, and expect open to fail with this message. */
static void expect_rejected(int fd, const uint8_t *f, size_t len, size_t at, const void *bytes,
			    size_t n, const char *needle)
{
	uint8_t *g = malloc(len);
	struct memfile_reader r;
	int mfd, saved, ret;
	const char *msg;

	memcpy(g, f, len);
	memcpy(g + at, bytes, n);
	rehash(g, len, len - 4 * MEMFILE_ENTRY_SIZE);
	put_bytes(fd, g, len);
	saved = tests_cap_begin(&mfd);
	ret = memfile_open(&r, fd);
	msg = tests_cap_end(saved, mfd);
	cr_assert_eq(ret, -EPROTO, "edit at %zu accepted", at);
	cr_assert(strstr(msg, needle), "edit at %zu: got '%s', want '%s'", at, msg, needle);
	free(g);
}

Test(memfile, corrupt_header_and_index_fields_rejected)
{
	uint8_t *ram, *f, b[8];
	size_t size, len;
	int fd = small_file(&ram, &size);
	size_t idx, e1, e2;

	f = file_bytes(fd, &len);
	idx = len - 4 * MEMFILE_ENTRY_SIZE;
	e1 = idx + MEMFILE_ENTRY_SIZE;        /* chunk 1: LZ4 */
	e2 = idx + 2 * MEMFILE_ENTRY_SIZE;    /* chunk 2: RAW */
	cr_assert_eq(f[idx + 12], MEMFILE_KIND_ZERO);
	cr_assert_eq(f[e1 + 12], MEMFILE_KIND_LZ4);
	cr_assert_eq(f[e2 + 12], MEMFILE_KIND_RAW);

	expect_rejected(fd, f, len, 0, "SNAPBOXX", 8, "bad magic");
	expect_rejected(fd, f, len, 8, "\x02", 1, "version 2 not supported (this build reads 1)");
	expect_rejected(fd, f, len, 12, "\x01", 1, "unknown header flags");
	put_u64(b, 0);
	expect_rejected(fd, f, len, 16, b, 8, "bad raw size");
	expect_rejected(fd, f, len, 24, "\x00\x00\x03\x00", 4, "chunk size");     /* 192 KiB */
	expect_rejected(fd, f, len, 24, "\x00\x80\x00\x00", 4, "chunk size");     /* 32 KiB */
	expect_rejected(fd, f, len, 28, "\x05", 1, "chunk count 5");
	put_u64(b, idx - 1);
	expect_rejected(fd, f, len, 32, b, 8, "does not end");
	put_u64(b, 1ull << 63);
	expect_rejected(fd, f, len, 32, b, 8, "does not end");
	expect_rejected(fd, f, len, idx + 12, "\x03", 1, "unknown kind 3");
	expect_rejected(fd, f, len, idx + 13, "\x01", 1, "reserved");
	expect_rejected(fd, f, len, idx + 16, "\x01", 1, "bad index entry");     /* ZERO hash */
	expect_rejected(fd, f, len, idx + 8, "\x01", 1, "bad index entry");      /* ZERO stored_len */
	put_u64(b, 8);
	expect_rejected(fd, f, len, e1, b, 8, "bad index entry");                /* into the header */
	put_u64(b, idx - 10);
	expect_rejected(fd, f, len, e1, b, 8, "bad index entry");                /* into the index */
	put_u64(b, UINT64_MAX - 5);
	expect_rejected(fd, f, len, e1, b, 8, "bad index entry");                /* overflow */
	expect_rejected(fd, f, len, e1 + 8, "\xff\xff\xff\x7f", 4, "bad index entry");  /* > bound */
	expect_rejected(fd, f, len, e1 + 8, "\0\0\0\0", 4, "bad index entry");   /* LZ4 of 0 bytes */
	expect_rejected(fd, f, len, e2 + 8, "\x01\0\x01\0", 4, "bad index entry");  /* RAW != len */
	/* Without re-hashing, any index byte is an index checksum error. */
	f[idx + 3] ^= 1;
	put_bytes(fd, f, len);
	int mfd, saved = tests_cap_begin(&mfd);
	struct memfile_reader r;
	cr_assert_eq(memfile_open(&r, fd), -EPROTO);
	cr_assert_str_eq(tests_cap_end(saved, mfd), "snapbox: memory file: index checksum mismatch\n");
	free(f);
	close(fd);
	free(ram);
}

Test(memfile, corrupt_lz4_data_is_named)
{
	uint8_t *ram, *f;
	size_t size, len;
	int fd = small_file(&ram, &size), mfd, saved;
	struct memfile_reader r;
	const char *msg;

	f = file_bytes(fd, &len);
	cr_assert_eq(memfile_open(&r, fd), 0);
	/* The first byte of an lz4 block is a token: 0xff claims long literal and match runs. */
	f[r.chunks[1].offset] = 0xff;
	f[r.chunks[1].offset + 1] = 0xff;
	memfile_close(&r);
	put_bytes(fd, f, len);
	cr_assert_eq(memfile_open(&r, fd), 0);
	saved = tests_cap_begin(&mfd);
	cr_assert_eq(memfile_read_chunk(&r, 1, ram, size, NULL), -EPROTO);
	msg = tests_cap_end(saved, mfd);
	cr_assert(strstr(msg, "chunk 1: corrupt lz4 data") || strstr(msg, "chunk 1 checksum mismatch"),
		  "got %s", msg);
	memfile_close(&r);
	free(f);
	close(fd);
	free(ram);
}

Test(memfile, incompressible_data_stored_raw)
{
	size_t size = 8u << 20;
	uint8_t *ram = malloc(size), *out = calloc(1, size);
	struct memfile_stats st;
	struct memfile_reader r;
	int fd;

	fill(ram, size, 2, 42);
	fd = write_mem(ram, size, 256 << 10, 2, &st);
	cr_assert_eq(st.raw_chunks, 32);
	cr_assert_eq(st.lz4_chunks + st.zero_chunks, 0);
	cr_assert_eq(st.bytes_out, MEMFILE_HDR_SIZE + size + 32 * MEMFILE_ENTRY_SIZE);
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(memfile_read_all(&r, out, size, 2), 0);
	cr_assert(!memcmp(out, ram, size));
	memfile_close(&r);
	close(fd);
	free(out);
	free(ram);
}

Test(memfile, no_compress_stores_every_nonzero_chunk_raw)
{
	size_t size = 16u << 20;
	uint8_t *ram = make_mix(size), *out = calloc(1, size);
	struct memfile_write_opts o = { .chunk_size = 256 << 10, .threads = 2, .no_compress = true };
	struct memfile_stats st, lz;
	struct memfile_reader r;
	int fd = memfd_create("memory", 0), fd2;

	cr_assert(fd >= 0);
	cr_assert_eq(memfile_write(fd, ram, size, &o, &st), 0);
	cr_assert_eq(st.lz4_chunks, 0);
	cr_assert_gt(st.raw_chunks, 0);
	/* Zero chunks stay free; every other chunk is RAW where lz4 would have shrunk some. */
	fd2 = write_mem(ram, size, 256 << 10, 2, &lz);
	cr_assert_gt(lz.lz4_chunks, 0);
	cr_assert_eq(st.zero_chunks, lz.zero_chunks);
	cr_assert_eq(st.raw_chunks, lz.raw_chunks + lz.lz4_chunks);
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(memfile_read_all(&r, out, size, 2), 0);
	cr_assert(!memcmp(out, ram, size));
	memfile_close(&r);
	close(fd2);
	close(fd);
	free(out);
	free(ram);
}

Test(memfile, zero_chunks_cost_nothing_and_are_skipped)
{
	size_t size = (16u << 20) + 1;        /* a one-byte last chunk */
	uint8_t *ram = calloc(1, size), *out = malloc(size);
	struct memfile_stats st;
	struct memfile_reader r;
	int fd = write_mem(ram, size, 1 << 20, 2, &st);

	cr_assert_eq(st.zero_chunks, 17);
	cr_assert_eq(st.bytes_out, MEMFILE_HDR_SIZE + 17 * MEMFILE_ENTRY_SIZE);
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(r.chunks[16].xxh3, XXH3_64bits(ram, 1));
	cr_assert_eq(r.chunks[0].xxh3, XXH3_64bits(ram, 1 << 20));
	/* Decode into memory that is NOT zero: ZERO chunks must be left untouched. */
	memset(out, 0xaa, size);
	cr_assert_eq(memfile_read_all(&r, out, size, 2), 0);
	cr_assert_eq(out[0], 0xaa);
	cr_assert_eq(out[size - 1], 0xaa);
	/* Random access still yields zeros. */
	cr_assert_eq(memfile_read_chunk(&r, 3, out, size, NULL), 0);
	cr_assert(memfile_is_zero(out, 1 << 20));
	memfile_close(&r);
	close(fd);
	free(out);
	free(ram);
}

Test(memfile, zero_scan_and_zero_hash)
{
	uint8_t *p = calloc(1, 70000);

	cr_assert(memfile_is_zero(p, 70000));
	cr_assert(memfile_is_zero(p + 3, 70000 - 3));
	for (size_t at = 0; at < 70000; at += 997) {
		p[at] = 1;
		cr_assert(!memfile_is_zero(p, 70000), "byte %zu", at);
		p[at] = 0;
	}
	p[69999] = 1;
	cr_assert(!memfile_is_zero(p, 70000));
	for (size_t n = 0; n < 70000; n += 4099)
		cr_assert_eq(memfile_zero_xxh3(n), XXH3_64bits(p, n), "%zu zero bytes", n);
	free(p);
	/* The table of whole-chunk zero hashes. */
	p = calloc(1, MEMFILE_MAX_CHUNK);
	for (uint64_t n = MEMFILE_MIN_CHUNK; n <= MEMFILE_MAX_CHUNK; n *= 2)
		cr_assert_eq(memfile_zero_xxh3(n), XXH3_64bits(p, n), "%llu zero bytes", (unsigned long long)n);
	cr_assert_eq(memfile_zero_xxh3(MEMFILE_MIN_CHUNK + 1), XXH3_64bits(p, MEMFILE_MIN_CHUNK + 1));
	free(p);
}

Test(memfile, tiny_and_odd_sizes)
{
	static const size_t sizes[] = { 1, 4095, 65535, 65537, (1u << 20) - 3 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t size = sizes[k];
		uint8_t *ram = malloc(size), *out = calloc(1, size);
		struct memfile_reader r;
		int fd;

		fill(ram, size, 1, k);
		fd = write_mem(ram, size, 64 << 10, 2, NULL);
		cr_assert_eq(memfile_open(&r, fd), 0);
		cr_assert_eq(memfile_read_all(&r, out, size, 2), 0);
		cr_assert(!memcmp(out, ram, size), "%zu bytes", size);
		memfile_close(&r);
		close(fd);
		free(out);
		free(ram);
	}
}

Test(memfile, reused_file_is_truncated)
{
	size_t size = 1u << 20;
	uint8_t *ram = make_mix(size), *junk = malloc(4u << 20);
	struct memfile_reader r;
	int fd = memfd_create("reused", 0);

	memset(junk, 0x5a, 4u << 20);
	cr_assert_eq(pwrite(fd, junk, 4u << 20, 0), 4 << 20);
	cr_assert_eq(memfile_write(fd, ram, size, &(struct memfile_write_opts){ .threads = 2 }, NULL), 0);
	cr_assert_eq(memfile_open(&r, fd), 0);
	memfile_close(&r);
	close(fd);
	free(junk);
	free(ram);
}

Test(memfile, bad_arguments, .init = tests_quiet_stderr)
{
	uint8_t ram[16] = { 0 };
	struct memfile_reader r;
	int fd = memfd_create("x", 0);

	struct memfile_write_opts o[] = { { .chunk_size = 3 << 16 }, { .chunk_size = 32 << 10 },
					  { .chunk_size = 32 << 20 }, { .threads = MEMFILE_MAX_THREADS + 1 } };

	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		cr_assert_eq(memfile_write(fd, ram, sizeof(ram), &o[i], NULL), -EINVAL, "opts %zu", i);
	cr_assert_eq(memfile_write(fd, ram, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(memfile_write(fd, NULL, 16, NULL, NULL), -EINVAL);
	cr_assert_eq(memfile_write(fd, ram, sizeof(ram), NULL, NULL), 0);   /* all defaults */
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(r.chunk_size, MEMFILE_DEFAULT_CHUNK);
	cr_assert_eq(memfile_read_chunk(&r, 1, ram, sizeof(ram), NULL), -EINVAL);
	cr_assert_eq(memfile_read_chunk(&r, 0, ram, sizeof(ram) - 1, NULL), -EINVAL);
	cr_assert_eq(memfile_read_all(&r, ram, sizeof(ram) - 1, 1), -EINVAL);
	cr_assert_eq(memfile_read_all(&r, ram, sizeof(ram), 0), -EINVAL);
	memfile_close(&r);
	cr_assert_eq(memfile_open(&r, 0x7fff), -EBADF);
	close(fd);
}

Test(memfile, full_disk_is_an_error, .init = tests_quiet_stderr)
{
	struct rlimit lim = { .rlim_cur = 1u << 20, .rlim_max = RLIM_INFINITY };
	size_t size = 8u << 20;
	uint8_t *ram = malloc(size);
	char path[] = "/tmp/snapbox-memfile-XXXXXX";
	int fd = mkstemp(path);

	/* RLIMIT_FSIZE makes pwrite fail with EFBIG past 1 MiB, as a full disk would with ENOSPC. */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	fill(ram, size, 2, 9);
	unlink(path);
	cr_assert_eq(memfile_write(fd, ram, size, &(struct memfile_write_opts){ .threads = 1 }, NULL),
		     -EFBIG);
	cr_assert_eq(memfile_write(fd, ram, size, &(struct memfile_write_opts){ .threads = 3 }, NULL),
		     -EFBIG);
	close(fd);
	free(ram);
}

/* Pages of [p, p + len) that are present or swapped, per /proc/self/pagemap. */
static size_t touched_pages(const uint8_t *p, size_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	size_t n = len / 4096, touched = 0;
	uint64_t *e = malloc(n * 8);

	cr_assert(fd >= 0 && e);
	cr_assert_eq(pread(fd, e, n * 8, (off_t)((uintptr_t)p / 4096 * 8)), (ssize_t)(n * 8));
	for (size_t i = 0; i < n; i++)
		touched += (e[i] >> 62) != 0;
	free(e);
	close(fd);
	return touched;
}

Test(memfile, untouched_memory_is_never_read_with_the_hint)
{
	size_t size = 16u << 20, chunk = 256u << 10;
	struct memfile_write_opts o = { .chunk_size = (uint32_t)chunk, .threads = 2,
					.untouched_is_zero = true };
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *out = calloc(1, size);
	struct memfile_stats st;
	struct memfile_reader r;
	int fd = memfd_create("memory", 0);

	cr_assert_neq(ram, MAP_FAILED);
	madvise(ram, size, MADV_NOHUGEPAGE);   /* so touching one chunk does not populate its neighbours */
	fill(ram + 0 * chunk, chunk, 1, 1);        /* text */
	fill(ram + 5 * chunk, chunk, 2, 2);        /* random */
	memset(ram + 9 * chunk, 0, chunk);         /* touched, but zero */
	ram[20 * chunk + 4095] = 7;                /* one byte at the end of a page */
	cr_assert_eq(touched_pages(ram, size), 3 * (chunk / 4096) + 1);
	cr_assert_eq(memfile_write(fd, ram, size, &o, &st), 0);
	cr_assert_eq(st.zero_chunks, 64 - 3);
	cr_assert_eq(st.unread_chunks, 64 - 4, "the touched zero chunk is scanned, not assumed");
	/* Only the partly touched chunk 20 was read whole (it is not zero): nothing else. */
	cr_assert_eq(touched_pages(ram, size), 4 * (chunk / 4096), "untouched chunks were read");
	cr_assert_eq(memfile_open(&r, fd), 0);
	cr_assert_eq(memfile_read_all(&r, out, size, 2), 0);
	cr_assert(!memcmp(out, ram, size));
	memfile_close(&r);
	/* Without the hint the same file comes out, every chunk having been scanned. */
	o.untouched_is_zero = false;
	int fd2 = memfd_create("memory2", 0);
	cr_assert_eq(memfile_write(fd2, ram, size, &o, &st), 0);
	cr_assert_eq(st.unread_chunks, 0);
	cr_assert_eq(st.zero_chunks, 64 - 3);
	size_t l1, l2;
	uint8_t *f1 = file_bytes(fd, &l1), *f2 = file_bytes(fd2, &l2);
	cr_assert(l1 == l2 && !memcmp(f1, f2, l1), "the hint changes no byte of the file");
	free(f1);
	free(f2);
	close(fd2);
	close(fd);
	free(out);
	munmap(ram, size);
}
