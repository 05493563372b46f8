/* memfile_write.c - memory file writer: zero scan, xxh3 and lz4 in worker threads, chunks written in order, index and header last. */
#include "snapshot/memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "kvm/sbuf.h"

#define MEMFILE_LOG(...) \
	do { \
		fprintf(stderr, "snapbox: memory file: " __VA_ARGS__); \
		fputc('\n', stderr); \
	} while (0)

/* lz4 acceleration 1 (LZ4_compress_default's); see docs/snapshot-format.md §5. */
#define MEMFILE_LZ4_ACCEL 1

/* One chunk in flight between a worker and the writer. */
struct memfile_slot {
	uint8_t *buf;              /* lz4 output, chunk_size bytes */
	void *lz4;                 /* lz4 state of the worker using this slot */
	uint32_t idx;              /* chunk held, valid when ready */
	bool ready;
	uint64_t *pm;              /* pagemap entries of one chunk, when the hint is on */
	struct memfile_chunk ent;
	bool unread;               /* ZERO known from pagemap, memory never read */
	const uint8_t *src;        /* bytes to store: buf (LZ4) or guest RAM itself (RAW) */
};

struct memfile_wctx {
	int fd;
	const uint8_t *ram;
	uint64_t size;
	uint32_t chunk_size, count;
	uint64_t zero_full, zero_tail;   /* xxh3 of a zero chunk and of a zero last chunk */
	int pagemap_fd;                  /* /proc/self/pagemap for untouched_is_zero, else -1 */
	size_t page;                     /* host page size */
	struct memfile_chunk *index;
	uint64_t off;                    /* where the next payload goes */
	struct memfile_stats st;

	/* Pipeline (threads > 1), all under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv_ready;         /* writer waits for its next chunk */
	pthread_cond_t cv_free;          /* workers wait for a slot */
	uint32_t next;                   /* next chunk a worker claims */
	uint32_t written;                /* chunks the writer has consumed */
	bool stop;
	struct memfile_slot *slots;
	unsigned nslots;
};

static uint64_t memfile_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* pwrite exactly len bytes at off: 0 or -errno (-EIO if the kernel makes no progress). */
static int memfile_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * True when every page overlapping [p, p + len) is neither present nor
 * swapped (pagemap bits 63 and 62 clear), i.e. never touched. Any failure
 * answers false: the chunk is then simply scanned.
 */
static bool memfile_untouched(const struct memfile_wctx *w, const uint8_t *p, size_t len, uint64_t *pm)
{
	uintptr_t first = (uintptr_t)p / w->page, last = ((uintptr_t)p + len - 1) / w->page;
	size_t n = last - first + 1;
	ssize_t got = pread(w->pagemap_fd, pm, n * 8, (off_t)(first * 8));

	if (got != (ssize_t)(n * 8))
		return false;
	for (size_t k = 0; k < n; k++)
		if (pm[k] >> 62)
			return false;
	return true;
}

/* Classify and encode chunk i: ZERO, LZ4 into buf, or RAW. Cannot fail. */
static void memfile_encode(const struct memfile_wctx *w, uint32_t i, struct memfile_slot *s)
{
	uint32_t len = memfile_chunk_len(w->size, w->chunk_size, i);
	const uint8_t *p = w->ram + (uint64_t)i * w->chunk_size;
	int n;

	memset(&s->ent, 0, sizeof(s->ent));
	/* pagemap first: an untouched chunk is then never read (no scan, no page faults). */
	s->unread = w->pagemap_fd >= 0 && memfile_untouched(w, p, len, s->pm);
	if (s->unread || memfile_is_zero(p, len)) {
		s->ent.kind = MEMFILE_KIND_ZERO;
		s->ent.xxh3 = len == w->chunk_size ? w->zero_full : w->zero_tail;
		s->src = NULL;
		return;
	}
	s->ent.xxh3 = XXH3_64bits(p, len);
	/* Capacity len - 1: lz4 gives up (returns 0) as soon as the output would not be smaller. */
	n = LZ4_compress_fast_extState(s->lz4, (const char *)p, (char *)s->buf, (int)len, (int)len - 1,
				       MEMFILE_LZ4_ACCEL);
	if (n > 0) {
		s->ent.kind = MEMFILE_KIND_LZ4;
		s->ent.stored_len = (uint32_t)n;
		s->src = s->buf;
	} else {
		s->ent.kind = MEMFILE_KIND_RAW;
		s->ent.stored_len = len;
		s->src = p;
	}
}

/* Store chunk i's payload at the current offset and record its index entry. */
static int memfile_emit(struct memfile_wctx *w, uint32_t i, const struct memfile_slot *s)
{
	struct memfile_chunk ent = s->ent;

	if (ent.kind != MEMFILE_KIND_ZERO) {
		uint64_t t = memfile_now();
		int ret = memfile_pwrite_full(w->fd, s->src, ent.stored_len, w->off);

		w->st.write_ns += memfile_now() - t;
		if (ret) {
			MEMFILE_LOG("writing chunk %u at offset %llu: %s", i, (unsigned long long)w->off,
				    strerror(-ret));
			return ret;
		}
		ent.offset = w->off;
		w->off += ent.stored_len;
	}
	w->index[i] = ent;
	w->st.zero_chunks += ent.kind == MEMFILE_KIND_ZERO;
	w->st.unread_chunks += s->unread;
	w->st.lz4_chunks += ent.kind == MEMFILE_KIND_LZ4;
	w->st.raw_chunks += ent.kind == MEMFILE_KIND_RAW;
	return 0;
}

static void *memfile_worker(void *arg)
{
	struct memfile_wctx *w = arg;
	uint64_t busy = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		/*
		 * Claim the next chunk only once its slot's previous chunk (next - nslots)
		 * is written: claims go in chunk order, so the writer always finds its next
		 * chunk claimed and no two claimants ever wait for the same slot.
		 */
		while (!w->stop && w->next < w->count && w->next >= w->written + w->nslots)
			pthread_cond_wait(&w->cv_free, &w->mu);
		if (w->stop || w->next >= w->count)
			break;
		uint32_t i = w->next++;
		struct memfile_slot *s = &w->slots[i % w->nslots];
		pthread_mutex_unlock(&w->mu);

		uint64_t t = memfile_now();
		memfile_encode(w, i, s);
		busy += memfile_now() - t;

		pthread_mutex_lock(&w->mu);
		s->idx = i;
		s->ready = true;
		pthread_cond_broadcast(&w->cv_ready);
	}
	w->st.compress_ns += busy;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* threads == 1: encode and write on the calling thread, one slot. */
static int memfile_run_inline(struct memfile_wctx *w)
{
	struct memfile_slot *s = &w->slots[0];

	for (uint32_t i = 0; i < w->count; i++) {
		uint64_t t = memfile_now();
		memfile_encode(w, i, s);
		w->st.compress_ns += memfile_now() - t;
		int ret = memfile_emit(w, i, s);
		if (ret)
			return ret;
	}
	return 0;
}

/* threads > 1: workers encode into slots; this thread writes them in chunk order. */
static int memfile_run_pipeline(struct memfile_wctx *w, unsigned threads)
{
	pthread_t tid[MEMFILE_MAX_THREADS];
	unsigned started = 0;
	int ret = 0;

	for (; started < threads; started++) {
		int e = pthread_create(&tid[started], NULL, memfile_worker, w);
		if (e) {
			MEMFILE_LOG("starting worker thread: %s", strerror(e));
			ret = -e;
			goto stop;
		}
	}
	for (uint32_t i = 0; i < w->count; i++) {
		struct memfile_slot *s = &w->slots[i % w->nslots];

		pthread_mutex_lock(&w->mu);
		while (!(s->ready && s->idx == i))
			pthread_cond_wait(&w->cv_ready, &w->mu);
		pthread_mutex_unlock(&w->mu);

		/* The slot stays ours until written is bumped: no worker reuses it before. */
		ret = memfile_emit(w, i, s);

		pthread_mutex_lock(&w->mu);
		s->ready = false;
		w->written++;
		pthread_cond_broadcast(&w->cv_free);
		pthread_mutex_unlock(&w->mu);
		if (ret)
			break;
	}
stop:
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv_free);
	pthread_mutex_unlock(&w->mu);
	while (started)
		pthread_join(tid[--started], NULL);
	return ret;
}

/* Serialise the index and header and write them: index first, header last. */
static int memfile_finish(struct memfile_wctx *w)
{
	uint64_t index_offset = w->off, end, t;
	struct sbuf idx, hdr;
	int ret;

	sbuf_init(&idx);
	sbuf_init(&hdr);
	for (uint32_t i = 0; i < w->count; i++) {
		const struct memfile_chunk *c = &w->index[i];
		static const uint8_t reserved[3];

		sbuf_put_u64(&idx, c->offset);
		sbuf_put_u32(&idx, c->stored_len);
		sbuf_put_u8(&idx, c->kind);
		sbuf_put_bytes(&idx, reserved, sizeof(reserved));
		sbuf_put_u64(&idx, c->xxh3);
	}
	sbuf_put_bytes(&hdr, MEMFILE_MAGIC, 8);
	sbuf_put_u32(&hdr, MEMFILE_VERSION);
	sbuf_put_u32(&hdr, 0);
	sbuf_put_u64(&hdr, w->size);
	sbuf_put_u32(&hdr, w->chunk_size);
	sbuf_put_u32(&hdr, w->count);
	sbuf_put_u64(&hdr, index_offset);
	w->st.index_xxh64 = idx.err ? 0 : XXH64(idx.data, idx.len, 0);
	sbuf_put_u64(&hdr, w->st.index_xxh64);
	sbuf_put_u64(&hdr, hdr.err ? 0 : XXH64(hdr.data, hdr.len, 0));
	ret = idx.err ? idx.err : hdr.err;
	if (ret) {
		MEMFILE_LOG("out of memory for the index of %u chunks", w->count);
		goto out;
	}
	end = index_offset + idx.len;
	t = memfile_now();
	/*
	 * Index, then the final length (drops stale bytes of a reused file), then
	 * the header: until the header lands the file has no valid magic or hash,
	 * so an interrupted write never looks complete.
	 */
	ret = memfile_pwrite_full(w->fd, idx.data, idx.len, index_offset);
	if (!ret && ftruncate(w->fd, (off_t)end) < 0)
		ret = -errno;
	if (!ret)
		ret = memfile_pwrite_full(w->fd, hdr.data, hdr.len, 0);
	w->st.write_ns += memfile_now() - t;
	if (ret) {
		MEMFILE_LOG("writing the index and header: %s", strerror(-ret));
		goto out;
	}
	w->st.bytes_out = end;
out:
	sbuf_fini(&hdr);
	sbuf_fini(&idx);
	return ret;
}

int memfile_write(int fd, const void *ram, uint64_t size, const struct memfile_write_opts *opts,
		  struct memfile_stats *stats)
{
	struct memfile_wctx w = { .fd = fd, .ram = ram, .size = size, .off = MEMFILE_HDR_SIZE,
				  .pagemap_fd = -1, .page = (size_t)sysconf(_SC_PAGESIZE) };
	uint32_t chunk_size = opts && opts->chunk_size ? opts->chunk_size : MEMFILE_DEFAULT_CHUNK;
	unsigned threads = opts && opts->threads ? opts->threads : 1;
	uint64_t t0 = memfile_now();
	int ret = -ENOMEM;

	if (!ram || size == 0 || size > MEMFILE_MAX_RAW || chunk_size < MEMFILE_MIN_CHUNK ||
	    chunk_size > MEMFILE_MAX_CHUNK || (chunk_size & (chunk_size - 1)) || threads < 1 ||
	    threads > MEMFILE_MAX_THREADS || (size - 1) / chunk_size + 1 > MEMFILE_MAX_CHUNKS) {
		MEMFILE_LOG("bad arguments: %llu bytes, chunk size %u, %u threads",
			    (unsigned long long)size, chunk_size, threads);
		return -EINVAL;
	}
	w.chunk_size = chunk_size;
	w.count = (uint32_t)((size - 1) / chunk_size + 1);
	w.zero_full = memfile_zero_xxh3(chunk_size);
	w.zero_tail = memfile_zero_xxh3(memfile_chunk_len(size, chunk_size, w.count - 1));
	/* Two slots per worker: one being encoded while the other waits for the writer. */
	w.nslots = threads == 1 ? 1 : 2 * threads;
	w.index = calloc(w.count, sizeof(*w.index));
	w.slots = calloc(w.nslots, sizeof(*w.slots));
	if (!w.index || !w.slots)
		goto nomem;
	if (opts && opts->untouched_is_zero)
		w.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	for (unsigned i = 0; i < w.nslots; i++) {
		w.slots[i].buf = malloc(chunk_size);
		w.slots[i].lz4 = malloc((size_t)LZ4_sizeofState());
		/* A chunk overlaps at most chunk_size / page + 1 pages (+1 more if ram is unaligned). */
		w.slots[i].pm = malloc((chunk_size / w.page + 2) * sizeof(uint64_t));
		if (!w.slots[i].buf || !w.slots[i].lz4 || !w.slots[i].pm)
			goto nomem;
	}
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv_ready, NULL);
	pthread_cond_init(&w.cv_free, NULL);
	ret = threads == 1 ? memfile_run_inline(&w) : memfile_run_pipeline(&w, threads);
	if (!ret)
		ret = memfile_finish(&w);
	pthread_cond_destroy(&w.cv_free);
	pthread_cond_destroy(&w.cv_ready);
	pthread_mutex_destroy(&w.mu);
	goto out;
nomem:
	MEMFILE_LOG("out of memory for %u chunks of %u bytes", w.count, chunk_size);
out:
	if (w.pagemap_fd >= 0)
		close(w.pagemap_fd);
	for (unsigned i = 0; w.slots && i < w.nslots; i++) {
		free(w.slots[i].pm);
		free(w.slots[i].lz4);
		free(w.slots[i].buf);
	}
	free(w.slots);
	free(w.index);
	if (!ret && stats) {
		w.st.bytes_in = size;
		w.st.chunk_size = chunk_size;
		w.st.chunk_count = w.count;
		w.st.total_ns = memfile_now() - t0;
		*stats = w.st;
	}
	return ret;
}
