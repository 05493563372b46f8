/* memfile.c - memory-file codec benchmark: compress+write and read+decompress throughput and ratio per chunk size and thread count, p50, JSON. */
#include "kvm/mono.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/memfile.h"

#define BENCH_PAGE 4096u
#define BENCH_MAX_RUNS 100

/* One (layout, chunk size, threads) cell: p50 of each measurement over the runs. */
struct bench_cell {
	const char *layout;
	uint32_t chunk;
	unsigned threads;
	uint64_t write_ns, read_ns, chunk_ns, open_ns;
	uint64_t compress_ns, io_ns;      /* p50 of the writer's own split: lz4+scan (summed over workers), pwrite */
	struct memfile_stats st;
};

static uint64_t bench_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t bench_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Same idea as the probe guest's FILL pattern: text pages of dictionary words, random pages of xorshift. */
static void bench_page(uint8_t *p, int kind, uint64_t seed)
{
	static const char *const words[32] = {
		"the", "of", "and", "snapshot", "restore", "kernel", "memory", "page",
		"guest", "host", "vcpu", "frame", "probe", "boot", "agent", "serial",
		"lorem", "ipsum", "dolor", "sit", "amet", "data", "file", "exec",
		"return", "value", "error", "struct", "uint64_t", "0x7f", "{", "}\n",
	};
	uint64_t s = bench_mix(seed) | 1;
	unsigned pos = 0;

	if (kind == 0) {
		memset(p, 0, BENCH_PAGE);
	} else if (kind == 2) {
		for (unsigned i = 0; i < BENCH_PAGE; i += 8) {
			uint64_t w = bench_xorshift(&s);
			memcpy(p + i, &w, 8);
		}
	} else {
		while (pos < BENCH_PAGE) {
			uint64_t r = bench_xorshift(&s);
			for (const char *w = words[r % 32]; *w && pos < BENCH_PAGE; w++)
				p[pos++] = (uint8_t)*w;
			if (pos < BENCH_PAGE)
				p[pos++] = (r >> 32) % 12 == 0 ? '\n' : ' ';
		}
	}
}

/*
 * 1/3 zero, 1/3 text-like, 1/3 random pages.
 *  pages: every 4 KiB page picks its kind independently (the probe's FILL;
 *         worst case for zero elision: almost no chunk is all zero).
 *  runs:  runs of 1..256 pages (mean 512 KiB) of one kind, the way untouched
 *         RAM, page cache and heaps cluster in a real guest.
 *  random: every page random (incompressible: all chunks RAW).
 * Returns the number of non-zero bytes.
 */
static uint64_t bench_fill(uint8_t *buf, uint64_t size, const char *layout)
{
	uint64_t pages = size / BENCH_PAGE, nonzero = 0, run = 0;
	int kind = 0;

	for (uint64_t i = 0; i < pages; i++) {
		if (!strcmp(layout, "random")) {
			kind = 2;
		} else if (!strcmp(layout, "pages")) {
			kind = (int)(bench_mix(i) % 3);
		} else if (run == 0) {
			kind = (int)(bench_mix(i ^ 0x5155) % 3);
			run = 1 + bench_mix(i ^ 0x7275) % 256;
		}
		if (run)
			run--;
		bench_page(buf + i * BENCH_PAGE, kind, i);
		nonzero += kind ? BENCH_PAGE : 0;
	}
	return nonzero;
}

static int bench_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t bench_p50(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp);
	return v[(n - 1) / 2];
}

static double bench_mbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / 1e6 / ((double)ns / 1e9) : 0;
}

/* Measure one cell: `runs` writes, `runs` full reads, and 64 random single-chunk decodes. */
static int bench_cell_run(struct bench_cell *c, const uint8_t *ram, uint8_t *out, uint64_t size,
			  int runs)
{
	uint64_t w[BENCH_MAX_RUNS], r[BENCH_MAX_RUNS], cw[BENCH_MAX_RUNS], io[BENCH_MAX_RUNS], one[64];
	uint64_t op[16];
	struct memfile_reader rd;
	int fd = memfd_create("bench-memory", 0), ret = 0;
	uint8_t *scratch = NULL;

	if (fd < 0)
		return -errno;
	for (int i = 0; i < runs; i++) {
		uint64_t t;

		/* An empty file each run, as a fresh snapshot would write. */
		if (ftruncate(fd, 0) < 0) {
			ret = -errno;
			goto out;
		}
		t = mono_now_ns();
		ret = memfile_write(fd, ram, size, &(struct memfile_write_opts){ .chunk_size = c->chunk,
			.threads = c->threads }, &c->st);
		w[i] = mono_now_ns() - t;
		if (ret)
			goto out;
		cw[i] = c->st.compress_ns;
		io[i] = c->st.write_ns;
	}
	/* Restore's fixed cost before any chunk: header, index read, hash and checks. */
	for (int i = 0; i < 16; i++) {
		uint64_t t = mono_now_ns();

		ret = memfile_open(&rd, fd);
		op[i] = mono_now_ns() - t;
		if (ret)
			goto out;
		if (i < 15)
			memfile_close(&rd);
	}
	for (int i = 0; i < runs; i++) {
		uint64_t t;

		/* Zeroed outside the timing: restore gets zeroed memory from mmap for free. */
		memset(out, 0, size);
		t = mono_now_ns();
		ret = memfile_read_all(&rd, out, size, c->threads);
		r[i] = mono_now_ns() - t;
		if (ret)
			goto close;
	}
	if (memcmp(out, ram, size)) {
		fprintf(stderr, "memfile bench: decoded memory differs\n");
		ret = -EIO;
		goto close;
	}
	/* Lazy restore's unit of work: one random non-zero chunk, verified. */
	scratch = malloc(memfile_scratch_size(&rd));
	for (int i = 0; i < 64 && scratch; i++) {
		uint32_t k = (uint32_t)(bench_mix((uint64_t)i) % rd.chunk_count);
		uint64_t t;

		while (rd.chunks[k].kind == MEMFILE_KIND_ZERO && rd.zero_chunks < rd.chunk_count)
			k = (k + 1) % rd.chunk_count;
		t = mono_now_ns();
		ret = memfile_read_chunk(&rd, k, out, size - (uint64_t)k * rd.chunk_size, scratch);
		one[i] = mono_now_ns() - t;
		if (ret)
			goto close;
	}
	c->write_ns = bench_p50(w, (size_t)runs);
	c->compress_ns = bench_p50(cw, (size_t)runs);
	c->io_ns = bench_p50(io, (size_t)runs);
	c->read_ns = bench_p50(r, (size_t)runs);
	c->chunk_ns = bench_p50(one, 64);
	c->open_ns = bench_p50(op, 16);
close:
	free(scratch);
	memfile_close(&rd);
out:
	close(fd);
	return ret;
}

/*
 * An all-zero guest of `mib` MiB, 2 threads, default chunk: never touched
 * (fresh anonymous memory, as after boot for most of RAM) with and without
 * the untouched_is_zero hint, and touched (the guest wrote zeros). Prints
 * p50 write times in ms.
 */
static int bench_zero_guest(uint64_t mib, int runs)
{
	static const char *const what[3] = { "untouched, hint", "untouched, scanned", "touched zeros" };
	uint64_t size = mib << 20, t[3][BENCH_MAX_RUNS];
	int fd = memfd_create("bench-zero", 0), ret = 0;

	if (fd < 0)
		return -errno;
	for (int i = 0; i < runs && !ret; i++) {
		for (int k = 0; k < 3 && !ret; k++) {
			struct memfile_write_opts o = { .threads = 2, .untouched_is_zero = k == 0 };
			uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			uint64_t t0;

			if (ram == MAP_FAILED) {
				ret = -errno;
				break;
			}
			/* Guest RAM is THP-hinted (kvm/gmem.c). */
			madvise(ram, size, MADV_HUGEPAGE);
			if (k == 2)
				memset(ram, 0, size);
			if (ftruncate(fd, 0) < 0)
				ret = -errno;
			t0 = mono_now_ns();
			if (!ret)
				ret = memfile_write(fd, ram, size, &o, NULL);
			t[k][i] = mono_now_ns() - t0;
			munmap(ram, size);
		}
	}
	close(fd);
	if (ret)
		return ret;
	printf("\nall-zero guest, %llu MiB, 2 threads, %u KiB chunks, p50 of %d runs:\n",
	       (unsigned long long)mib, MEMFILE_DEFAULT_CHUNK >> 10, runs);
	for (int k = 0; k < 3; k++)
		printf("  %-20s %8.1f ms\n", what[k], bench_p50(t[k], (size_t)runs) / 1e6);
	return 0;
}

static uint32_t bench_parse_size(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' }, { "runs", required_argument, NULL, 'n' },
		{ "json", required_argument, NULL, 'j' }, { "layout", required_argument, NULL, 'l' },
		{ "chunks", required_argument, NULL, 'c' }, { "zero-mib", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t chunks[16] = { 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20 };
	const char *layouts[2] = { "runs", "pages" }, *json_path = NULL;
	size_t nchunks = 7, nlayouts = 2, ncells = 0;
	uint64_t size = 256ull << 20;
	struct bench_cell cells[2 * 16 * 2];
	uint8_t *ram, *out;
	FILE *json = NULL;
	uint64_t zero_mib = 1024;
	int runs = 5, c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': size = strtoull(optarg, NULL, 10) << 20; break;
		case 'n': runs = atoi(optarg); break;
		case 'j': json_path = optarg; break;
		case 'l': layouts[0] = optarg; nlayouts = 1; break;
		case 'z': zero_mib = strtoull(optarg, NULL, 10); break;
		case 'c':
			nchunks = 0;
			for (char *t = strtok(optarg, ","); t && nchunks < 16; t = strtok(NULL, ","))
				chunks[nchunks++] = bench_parse_size(t);
			break;
		default:
			printf("usage: memfile [--size MiB] [--runs N] [--layout runs|pages|random] "
			       "[--chunks 64K,1M,...] [--zero-mib MiB (0: skip)] [--json FILE]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > BENCH_MAX_RUNS || size < (4u << 20) || nchunks == 0) {
		fprintf(stderr, "memfile bench: --runs 1..%d, --size >= 4 MiB, at least one chunk size\n",
			BENCH_MAX_RUNS);
		return 2;
	}
	ram = malloc(size);
	out = malloc(size);
	if (!ram || !out) {
		fprintf(stderr, "memfile bench: out of memory for 2 x %llu bytes\n", (unsigned long long)size);
		return 1;
	}
	printf("memory file codec, %llu MiB, p50 of %d runs; MB/s are of raw (guest) bytes, nz = of "
	       "non-zero bytes\n", (unsigned long long)(size >> 20), runs);
	printf("%-6s %6s %3s | %8s %6s %6s %7s %7s | %7s %6s | %5s %7s %7s | %5s %5s %5s\n", "layout",
	       "chunk", "thr", "write ms", "MB/s", "nzMB/s", "cmp ms", "pwr ms", "read ms", "MB/s",
	       "ratio", "open us", "1ch us", "zero", "lz4", "raw");
	for (size_t l = 0; l < nlayouts; l++) {
		uint64_t nonzero = bench_fill(ram, size, layouts[l]);

		for (size_t k = 0; k < nchunks; k++) {
			for (unsigned t = 1; t <= 2; t++) {
				struct bench_cell *x = &cells[ncells];

				*x = (struct bench_cell){ .layout = layouts[l], .chunk = chunks[k], .threads = t };
				ret = bench_cell_run(x, ram, out, size, runs);
				if (ret) {
					fprintf(stderr, "memfile bench: %s chunk %u threads %u: %s\n", x->layout,
						x->chunk, t, strerror(-ret));
					goto out;
				}
				ncells++;
				printf("%-6s %5uK %3u | %8.1f %6.0f %6.0f %7.1f %7.1f | %7.1f %6.0f | %5.2f %7.0f %7.0f | "
				       "%5u %5u %5u\n",
				       x->layout, x->chunk >> 10, t, x->write_ns / 1e6, bench_mbps(size, x->write_ns),
				       bench_mbps(nonzero, x->write_ns), x->compress_ns / 1e6, x->io_ns / 1e6,
				       x->read_ns / 1e6,
				       bench_mbps(size, x->read_ns), (double)size / (double)x->st.bytes_out,
				       x->open_ns / 1e3,
				       x->chunk_ns / 1e3, x->st.zero_chunks, x->st.lz4_chunks, x->st.raw_chunks);
				fflush(stdout);
			}
		}
	}
	if (zero_mib) {
		ret = bench_zero_guest(zero_mib, runs);
		if (ret) {
			fprintf(stderr, "memfile bench: zero guest: %s\n", strerror(-ret));
			goto out;
		}
	}
	if (json_path) {
		struct utsname u;

		json = fopen(json_path, "w");
		if (!json) {
			fprintf(stderr, "memfile bench: cannot write %s: %s\n", json_path, strerror(errno));
			ret = -errno;
			goto out;
		}
		uname(&u);
		fprintf(json, "{\"bench\": \"memfile\", \"size_bytes\": %llu, \"runs\": %d, \"host\": "
			"{\"kernel\": \"%s %s\", \"cpus\": %ld}, \"results\": [",
			(unsigned long long)size, runs, u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN));
		for (size_t i = 0; i < ncells; i++) {
			const struct bench_cell *x = &cells[i];

			fprintf(json, "%s\n {\"layout\": \"%s\", \"chunk_bytes\": %u, \"threads\": %u, "
				"\"write_ns_p50\": %llu, \"compress_ns_p50\": %llu, \"pwrite_ns_p50\": %llu, "
				"\"read_ns_p50\": %llu, \"open_ns_p50\": %llu, \"chunk_decode_ns_p50\": %llu, "
				"\"bytes_out\": %llu, \"zero_chunks\": %u, \"lz4_chunks\": %u, \"raw_chunks\": %u}",
				i ? "," : "", x->layout, x->chunk, x->threads, (unsigned long long)x->write_ns,
				(unsigned long long)x->compress_ns, (unsigned long long)x->io_ns,
				(unsigned long long)x->read_ns, (unsigned long long)x->open_ns,
				(unsigned long long)x->chunk_ns,
				(unsigned long long)x->st.bytes_out, x->st.zero_chunks, x->st.lz4_chunks,
				x->st.raw_chunks);
		}
		fputs("\n]}\n", json);
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
out:
	free(out);
	free(ram);
	return ret ? 1 : 0;
}
