/* memfile.h - the memory file codec: fixed-size chunks, zero elision, parallel lz4, xxh3 per chunk, an index (docs/snapshot-format.md §3). */
#ifndef SNAPBOX_SNAPSHOT_MEMFILE_H
#define SNAPBOX_SNAPSHOT_MEMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMFILE_MAGIC        "SNAPBOXM"
#define MEMFILE_VERSION      1u
#define MEMFILE_HDR_SIZE     56u
#define MEMFILE_ENTRY_SIZE   24u
#define MEMFILE_MIN_CHUNK    (64u << 10)
#define MEMFILE_MAX_CHUNK    (16u << 20)
/* Chosen by bench/memfile.c; the measurement is in docs/snapshot-format.md §5. */
#define MEMFILE_DEFAULT_CHUNK (256u << 10)
#define MEMFILE_MAX_RAW      (1ull << 40)
#define MEMFILE_MAX_CHUNKS   (1u << 22)
#define MEMFILE_MAX_THREADS  64u

#define MEMFILE_KIND_ZERO    0u
#define MEMFILE_KIND_LZ4     1u
#define MEMFILE_KIND_RAW     2u

/*
 * On-disk layouts, for their sizes and field offsets only: the code writes and
 * reads every field explicitly little-endian, never the structs themselves.
 */
struct memfile_disk_hdr {
	char magic[8];
	uint32_t version;
	uint32_t flags;
	uint64_t raw_size;
	uint32_t chunk_size;
	uint32_t chunk_count;
	uint64_t index_offset;
	uint64_t index_xxh64;
	uint64_t header_xxh64;     /* xxh64 of the 48 bytes before it */
};

struct memfile_disk_entry {
	uint64_t offset;
	uint32_t stored_len;
	uint8_t kind;
	uint8_t reserved[3];
	uint64_t xxh3;
};

_Static_assert(sizeof(struct memfile_disk_hdr) == MEMFILE_HDR_SIZE, "memory header is 56 bytes");
_Static_assert(__builtin_offsetof(struct memfile_disk_hdr, header_xxh64) == 48, "header hash at 48");
_Static_assert(sizeof(struct memfile_disk_entry) == MEMFILE_ENTRY_SIZE, "index entry is 24 bytes");
_Static_assert(__builtin_offsetof(struct memfile_disk_entry, xxh3) == 16, "entry hash at 16");

/* One index entry, decoded. */
struct memfile_chunk {
	uint64_t offset;       /* file offset of the stored bytes; 0 for ZERO */
	uint32_t stored_len;
	uint8_t kind;          /* MEMFILE_KIND_* */
	uint64_t xxh3;         /* XXH3_64bits of the raw chunk */
};

/* Writer options; all-zero means the default chunk size, one thread, no hint. */
struct memfile_write_opts {
	uint32_t chunk_size;       /* power of two in [MEMFILE_MIN_CHUNK, MEMFILE_MAX_CHUNK]; 0: default */
	unsigned threads;          /* lz4 workers, 1..MEMFILE_MAX_THREADS; 0: 1 */
	/*
	 * The caller guarantees that ram is private anonymous memory in which a
	 * page that is neither present nor swapped reads as zero: no userfaultfd
	 * registration, not a MAP_PRIVATE view of a file or memfd. Chunks whose
	 * pages are all like that (per /proc/self/pagemap) are ZERO without being
	 * read, so never-touched guest RAM costs neither a scan nor page faults.
	 * Ignored (everything is scanned) when pagemap cannot be read.
	 */
	bool untouched_is_zero;
	/* Store every non-zero chunk RAW, without trying lz4: bigger files, less CPU on both sides. */
	bool no_compress;
};

/* What a write did. Times are CLOCK_MONOTONIC nanoseconds. */
struct memfile_stats {
	uint64_t bytes_in;     /* raw_size */
	uint64_t bytes_out;    /* file size: header, payloads, index */
	uint32_t zero_chunks;  /* all ZERO chunks ... */
	uint32_t unread_chunks;/* ... of which this many were known untouched and never read */
	uint32_t lz4_chunks;
	uint32_t raw_chunks;
	uint64_t compress_ns;  /* zero scan + lz4 + xxh3, summed over worker threads */
	uint64_t write_ns;     /* time in pwrite/ftruncate on the writer thread */
	uint64_t total_ns;     /* wall time of memfile_write */
	/* What vmstate's MEMF section records, as written in the header. */
	uint32_t chunk_size;
	uint32_t chunk_count;
	uint64_t index_xxh64;
};

/* An open, validated memory file. Fields are read-only for callers. */
struct memfile_reader {
	int fd;                /* borrowed: memfile_close does not close it */
	uint64_t file_size;
	uint64_t raw_size;
	uint32_t chunk_size;
	uint32_t chunk_count;
	uint64_t index_offset;
	uint64_t index_xxh64;  /* what vmstate's MEMF section must match */
	struct memfile_chunk *chunks;
	uint32_t zero_chunks, lz4_chunks, raw_chunks;
	uint64_t stored_bytes; /* sum of stored_len */
	bool verify;           /* check each decoded chunk's xxh3; true after open */
};

/* True when len bytes at p are all zero. Word-wise scan that stops at the first non-zero word. */
bool memfile_is_zero(const void *p, size_t len);

/* XXH3_64bits of len zero bytes, without a len-sized buffer. */
uint64_t memfile_zero_xxh3(uint64_t len);

/* Raw length of chunk idx (chunk_size, or less for the last chunk). idx must be < chunk count. */
uint32_t memfile_chunk_len(uint64_t raw_size, uint32_t chunk_size, uint32_t idx);

/*
 * Write the memory file for ram[0, size) to fd, a regular file opened for
 * writing (written with pwrite from offset 0 and truncated to its final
 * length; the fd's offset is not used). opts may be NULL (all defaults).
 * threads == 1 compresses on the calling thread; more start that many lz4
 * workers while the calling thread writes their output in chunk order. The
 * file's bytes do not depend on the thread count. ram must stay unchanged
 * during the call. stats may be NULL.
 * Returns 0, -EINVAL for bad arguments, -ENOMEM, or -errno from the write
 * (-ENOSPC on a full disk); logs one line. On error the file's contents are
 * unspecified (its header is not valid): the caller discards it.
 */
int memfile_write(int fd, const void *ram, uint64_t size, const struct memfile_write_opts *opts,
		  struct memfile_stats *stats);

/*
 * Open and validate a memory file: header, index placement, index hash and
 * every entry (docs/snapshot-format.md §3.4, steps 1-5). fd is borrowed and
 * must stay open until memfile_close. Returns 0, -EPROTO for a malformed
 * file, -ENOMEM, or -errno from I/O; logs one line. On error *r is zeroed
 * with fd -1 and nothing needs closing.
 */
int memfile_open(struct memfile_reader *r, int fd);

/* Release the index. Does not close the fd. Safe on a zeroed or failed reader. */
void memfile_close(struct memfile_reader *r);

/* Switch per-chunk xxh3 verification on (the default) or off. */
void memfile_set_verify(struct memfile_reader *r, bool on);

/* Bytes of scratch a decoding thread needs (the largest stored LZ4 chunk allowed). */
size_t memfile_scratch_size(const struct memfile_reader *r);

/*
 * Decode chunk idx into dst (dst_len >= its raw length; exactly that many
 * bytes are written, zeros for a ZERO chunk). scratch: NULL, or
 * memfile_scratch_size(r) bytes the caller owns (avoids an allocation per
 * call; one per thread). Safe to call from several threads at once.
 * Returns 0, -EINVAL (idx or dst_len), -EPROTO (bad lz4 data, wrong length,
 * checksum mismatch), -ENOMEM, -errno from I/O; logs one line naming the chunk.
 */
int memfile_read_chunk(const struct memfile_reader *r, uint32_t idx, void *dst, size_t dst_len,
		       void *scratch);

/*
 * Decode every chunk into dst[0, raw_size) with `threads` threads
 * (1..MEMFILE_MAX_THREADS; 1 decodes on the calling thread). dst must already
 * be zero: ZERO chunks are skipped and never touched (so untouched pages of
 * fresh anonymous memory stay unallocated). dst == NULL means verify only:
 * every non-zero chunk is decoded into per-thread scratch and checked, even
 * when verification is switched off. Stops at the first error.
 * Returns 0, -EINVAL (dst_len < raw_size, threads), or the first chunk's
 * error as memfile_read_chunk; logs one line.
 */
int memfile_read_all(const struct memfile_reader *r, void *dst, uint64_t dst_len, unsigned threads);

#endif
