/* memfile_write.c - memory file writer: zero scan, xxh3 and lz4 in worker threads, chunks written in order, index and header last. */
#include "kvm/mono.h"
#include "snapshot/memfile.h"
#include "kvm/log.h"

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

#define MEMFILE_LOG(...) log_line("snapbox: memory file: ", __VA_ARGS__)

/* lz4 acceleration 1 (LZ4_compress_default's); see docs/snapshot-format.md §5. */
#define MEMFILE_LZ4_ACCEL 1

/* One chunk in flight between a worker and the writer. */
struct memfile_slot {
	uint8_t *buf;              /* lz4 output, chunk_size bytes */
	void *lz4;                 /* lz4 state of the worker using this slot */
	uint32_t idx;              /* chunk held, valid when ready */
	bool ready;
	struct memfile_chunk ent;
	const uint8_t *src;        /* bytes to store: buf (LZ4) or guest RAM itself (RAW) */
};

struct memfile_wctx {
	int fd;
	const uint8_t *ram;
	uint64_t size;
	uint32_t chunk_size, count;
	uint64_t zero_full, zero_tail;   /* xxh3 of a zero chunk and of a zero last chunk */
	uint8_t *untouched;              /* per chunk: never touched (untouched_is_zero), or NULL */
	bool no_compress;                /* RAW for every non-zero chunk */
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

#define MEMFILE_PM_BATCH 8192u     /* pagemap entries per pread: 64 KiB, 32 MiB of RAM */

/*
 * With the untouched_is_zero hint: mark the chunks whose every page is
 * neither present nor swapped (pagemap bits 63 and 62 clear), in one pass
 * over /proc/self/pagemap (about 3 ms per GiB here). Those chunks are ZERO
 * without being read and never enter the worker pipeline. On any failure
 * nothing is marked, and every chunk is scanned as without the hint.
 */
static void memfile_find_untouched(struct memfile_wctx *w)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)w->ram, first = start / page;
	uintptr_t last = (start + w->size - 1) / page;
	uint64_t *pm = malloc(MEMFILE_PM_BATCH * sizeof(*pm));
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	w->untouched = malloc(w->count);
	if (fd < 0 || !pm || !w->untouched)
		goto fail;
	memset(w->untouched, 1, w->count);
	for (uintptr_t pg = first; pg <= last;) {
		size_t n = last - pg + 1 < MEMFILE_PM_BATCH ? last - pg + 1 : MEMFILE_PM_BATCH;

		if (pread(fd, pm, n * sizeof(*pm), (off_t)(pg * sizeof(*pm))) != (ssize_t)(n * sizeof(*pm)))
			goto fail;
		for (size_t k = 0; k < n; k++) {
			if (!(pm[k] >> 62))
				continue;
			/* A touched page: clear every chunk it overlaps (two if ram is not page aligned). */
			uintptr_t a = (pg + k) * page, b = a + page - 1;
			uint64_t from = a < start ? 0 : (a - start) / w->chunk_size;
			uint64_t to = (b - start >= w->size ? w->size - 1 : b - start) / w->chunk_size;
			for (uint64_t c = from; c <= to; c++)
				w->untouched[c] = 0;
		}
		pg += n;
	}
	goto out;
fail:
	free(w->untouched);
	w->untouched = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(pm);
}

/* Classify and encode chunk i: ZERO, LZ4 into buf, or RAW. Cannot fail. */
static void memfile_encode(const struct memfile_wctx *w, uint32_t i, struct memfile_slot *s)
{
	uint32_t len = memfile_chunk_len(w->size, w->chunk_size, i);
	const uint8_t *p = w->ram + (uint64_t)i * w->chunk_size;
	int n;

	memset(&s->ent, 0, sizeof(s->ent));
	if (memfile_is_zero(p, len)) {
		s->ent.kind = MEMFILE_KIND_ZERO;
		s->ent.xxh3 = len == w->chunk_size ? w->zero_full : w->zero_tail;
		s->src = NULL;
		return;
	}
	s->ent.xxh3 = XXH3_64bits(p, len);
	/* Capacity len - 1: lz4 gives up (returns 0) as soon as the output would not be smaller. */
	n = w->no_compress ? 0 :
	    LZ4_compress_fast_extState(s->lz4, (const char *)p, (char *)s->buf, (int)len, (int)len - 1,
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
		uint64_t t = mono_now_ns();
		int ret = memfile_pwrite_full(w->fd, s->src, ent.stored_len, w->off);

		w->st.write_ns += mono_now_ns() - t;
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
	w->st.lz4_chunks += ent.kind == MEMFILE_KIND_LZ4;
	w->st.raw_chunks += ent.kind == MEMFILE_KIND_RAW;
	return 0;
}

/* Record a chunk that memfile_find_untouched found never touched: ZERO, never read. */
static void memfile_emit_untouched(struct memfile_wctx *w, uint32_t i)
{
	uint32_t len = memfile_chunk_len(w->size, w->chunk_size, i);

	w->index[i] = (struct memfile_chunk){ .kind = MEMFILE_KIND_ZERO,
		.xxh3 = len == w->chunk_size ? w->zero_full : w->zero_tail };
	w->st.zero_chunks++;
	w->st.unread_chunks++;
}

static bool memfile_is_untouched(const struct memfile_wctx *w, uint32_t i)
{
	return w->untouched && w->untouched[i];
}

static void *memfile_worker(void *arg)
{
	struct memfile_wctx *w = arg;
	uint64_t busy = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		/* Untouched chunks are the writer's alone: claims skip them. */
		while (w->next < w->count && memfile_is_untouched(w, w->next))
			w->next++;
		if (w->stop || w->next >= w->count)
			break;
		/*
		 * Claim the next chunk only once its slot's previous chunk (next - nslots)
		 * is written: claims go in chunk order, so the writer always finds its next
		 * chunk claimed and no two claimants ever wait for the same slot.
		 */
		if (w->next >= w->written + w->nslots) {
			pthread_cond_wait(&w->cv_free, &w->mu);
			continue;
		}
		uint32_t i = w->next++;
		struct memfile_slot *s = &w->slots[i % w->nslots];
		pthread_mutex_unlock(&w->mu);

		uint64_t t = mono_now_ns();
		memfile_encode(w, i, s);
		busy += mono_now_ns() - t;

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
		if (memfile_is_untouched(w, i)) {
			memfile_emit_untouched(w, i);
			continue;
		}
		uint64_t t = mono_now_ns();
		memfile_encode(w, i, s);
		w->st.compress_ns += mono_now_ns() - t;
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

		if (memfile_is_untouched(w, i)) {
			/* A whole run of them, then one locked update of written. */
			uint32_t j = i;
			for (; j < w->count && memfile_is_untouched(w, j); j++)
				memfile_emit_untouched(w, j);
			pthread_mutex_lock(&w->mu);
			w->written += j - i;
			pthread_cond_broadcast(&w->cv_free);
			pthread_mutex_unlock(&w->mu);
			i = j - 1;
			continue;
		}
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
	t = mono_now_ns();
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
	w->st.write_ns += mono_now_ns() - t;
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
				  };
	uint32_t chunk_size = opts && opts->chunk_size ? opts->chunk_size : MEMFILE_DEFAULT_CHUNK;
	unsigned threads = opts && opts->threads ? opts->threads : 1;
	uint64_t t0 = mono_now_ns();
	int ret = -ENOMEM;

	if (!ram || size == 0 || size > MEMFILE_MAX_RAW || chunk_size < MEMFILE_MIN_CHUNK ||
	    chunk_size > MEMFILE_MAX_CHUNK || (chunk_size & (chunk_size - 1)) || threads < 1 ||
	    threads > MEMFILE_MAX_THREADS || (size - 1) / chunk_size + 1 > MEMFILE_MAX_CHUNKS) {
		MEMFILE_LOG("bad arguments: %llu bytes, chunk size %u, %u threads",
			    (unsigned long long)size, chunk_size, threads);
		return -EINVAL;
	}
	w.chunk_size = chunk_size;
	w.no_compress = opts && opts->no_compress;
	w.count = (uint32_t)((size - 1) / chunk_size + 1);
	w.zero_full = memfile_zero_xxh3(chunk_size);
	w.zero_tail = memfile_zero_xxh3(memfile_chunk_len(size, chunk_size, w.count - 1));
	/* Two slots per worker: one being encoded while the other waits for the writer. */
	w.nslots = threads == 1 ? 1 : 2 * threads;
	w.index = calloc(w.count, sizeof(*w.index));
	w.slots = calloc(w.nslots, sizeof(*w.slots));
	if (!w.index || !w.slots)
		goto nomem;
	for (unsigned i = 0; i < w.nslots; i++) {
		w.slots[i].buf = malloc(chunk_size);
		w.slots[i].lz4 = malloc((size_t)LZ4_sizeofState());
		if (!w.slots[i].buf || !w.slots[i].lz4)
			goto nomem;
	}
	if (opts && opts->untouched_is_zero)
		memfile_find_untouched(&w);
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
	free(w.untouched);
	for (unsigned i = 0; w.slots && i < w.nslots; i++) {
		free(w.slots[i].lz4);
		free(w.slots[i].buf);
	}
	free(w.slots);
	free(w.index);
	if (!ret && stats) {
		w.st.bytes_in = size;
		w.st.chunk_size = chunk_size;
		w.st.chunk_count = w.count;
		w.st.total_ns = mono_now_ns() - t0;
		*stats = w.st;
	}
	return ret;
}
