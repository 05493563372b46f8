/* fuzz_proto.c - libFuzzer target: the host's frame parser fed whole, byte by byte and split at input-derived points, under several caps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one parse delivered: frame count and a running hash of every header and payload byte. */
struct fz_seen {
	uint32_t cap;
	uint64_t frames;
	uint64_t bytes;        /* headers and payloads delivered */
	uint64_t hash;
};

static uint64_t fz_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static void fz_frame(void *opaque, const struct proto_hdr *h, const uint8_t *payload)
{
	struct fz_seen *s = opaque;

	/* The invariant: never a frame over the cap, never a bad magic. */
	if (h->len > s->cap || h->magic != PROTO_MAGIC)
		abort();
	s->frames++;
	s->bytes += PROTO_HDR_SIZE + (uint64_t)h->len;
	s->hash = fz_mix(s->hash, h->type);
	s->hash = fz_mix(s->hash, h->flags);
	s->hash = fz_mix(s->hash, h->id);
	s->hash = fz_mix(s->hash, h->len);
	/* Every payload byte is read, so ASan sees an overread of the buffer. */
	for (uint32_t i = 0; i < h->len; i++)
		s->hash = fz_mix(s->hash, payload[i]);
}

static const uint32_t fz_caps[] = { 0, 16, 4096, PROTO_PROBE_MAX_PAYLOAD, PROTO_MAX_PAYLOAD };
#define FZ_NCAPS (sizeof(fz_caps) / sizeof(fz_caps[0]))

/* One parser per cap, allocated once (a 1 MiB allocation per run would dominate) and reset per parse. */
static struct proto_parser fz_parsers[FZ_NCAPS];
static struct fz_seen fz_cur;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (size_t c = 0; c < FZ_NCAPS; c++) {
		if (proto_parser_init(&fz_parsers[c], fz_caps[c], fz_frame, &fz_cur) != 0)
			abort();
	}
	return 0;
}

/* mode 0: one call; 1: byte by byte; 2: pieces of input-derived lengths. */
static struct fz_seen fz_parse(const uint8_t *data, size_t size, size_t c, int mode)
{
	struct proto_parser *p = &fz_parsers[c];
	uint64_t x = 0x2545f4914f6cdd1dull ^ size;
	uint64_t frames0, skipped0;
	size_t off = 0;

	for (size_t i = 0; i < size && i < 64; i++)
		x = fz_mix(x, data[i]);
	memset(&fz_cur, 0, sizeof(fz_cur));
	fz_cur.cap = fz_caps[c];
	proto_parser_reset(p);
	if (proto_parser_busy(p))
		abort();
	frames0 = p->frames;
	skipped0 = p->skipped_bytes;
	while (off < size) {
		size_t n = size - off;

		if (mode == 1) {
			n = 1;
		} else if (mode == 2) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Mostly short pieces (header boundaries), sometimes long ones, sometimes empty. */
			size_t piece = (x & 3) == 0 ? (size_t)(x >> 8) % 4096 : (size_t)(x >> 8) % 24;
			n = piece < n ? piece : n;
		}
		proto_parser_feed(p, data + off, n);
		off += n;
		if (p->hdr_have > PROTO_HDR_SIZE || p->payload_have > p->max_payload)
			abort();
	}
	/* Every byte was delivered in a frame, skipped, or is still held; nothing else. */
	if (p->frames - frames0 != fz_cur.frames ||
	    fz_cur.bytes + (p->skipped_bytes - skipped0) + p->hdr_have + p->payload_have != size)
		abort();
	if (proto_parser_busy(p) != (p->hdr_have > 0 || p->in_payload))
		abort();
	return fz_cur;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t c = 0; c < FZ_NCAPS; c++) {
		struct fz_seen whole = fz_parse(data, size, c, 0);

		/* The frames delivered must not depend on how the stream was cut. */
		for (int mode = 1; mode <= 2; mode++) {
			struct fz_seen cut = fz_parse(data, size, c, mode);
			if (cut.frames != whole.frames || cut.hash != whole.hash)
				abort();
		}
	}
	return 0;
}
