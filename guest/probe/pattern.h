/* pattern.h - the FILL/VERIFY page pattern (docs/agent-protocol.md), header-only so host tests can include it. */
#ifndef SNAPBOX_PROBE_PATTERN_H
#define SNAPBOX_PROBE_PATTERN_H

#include <stdint.h>

#include "proto/wire.h"

#define PROBE_PATTERN_PAGE      4096u
#define PROBE_PATTERN_ZERO      0
#define PROBE_PATTERN_TEXT      1
#define PROBE_PATTERN_RANDOM    2
#define PROBE_PATTERN_TEXT_SALT 0x7465787470616765ull   /* "textpage" */
#define PROBE_PATTERN_RAND_SALT 0x72616e646f6d7067ull   /* "randompg" */

/* The text pages' dictionary: 32 words, index = r % 32. */
static const char *const probe_pattern_words[32] = {
	"the", "of", "and", "snapshot", "restore", "kernel", "memory", "page",
	"guest", "host", "vcpu", "frame", "probe", "boot", "agent", "serial",
	"lorem", "ipsum", "dolor", "sit", "amet", "data", "file", "exec",
	"return", "value", "error", "struct", "uint64_t", "0x7f", "{", "}\n",
};

/* Marsaglia xorshift64 (13, 7, 17). */
static inline uint64_t probe_xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Page kind for page `index` (counted from PROTO_FILL_BASE) under `seed`. */
static inline int probe_pattern_kind(uint64_t seed, uint64_t index)
{
	unsigned k = (unsigned)(proto_mix(seed ^ index) % 8);

	if (k <= 2)
		return PROBE_PATTERN_ZERO;
	if (k <= 5)
		return PROBE_PATTERN_TEXT;
	return PROBE_PATTERN_RANDOM;
}

/*
 * Write page `index` of the pattern into p (4096 bytes) and return its kind.
 *  zero:   all zero bytes.
 *  text:   s = proto_mix(seed ^ index ^ TEXT_SALT) | 1; repeat: r = xorshift64(s),
 *          append word[r % 32], then '\n' if (r >> 32) % 12 == 0 else ' ';
 *          everything past byte 4095 is cut off.
 *  random: s = proto_mix(seed ^ index ^ RAND_SALT) | 1; 512 little-endian
 *          u64 words, each the next xorshift64(s).
 */
static inline int probe_pattern_page(uint8_t *p, uint64_t seed, uint64_t index)
{
	int kind = probe_pattern_kind(seed, index);
	uint64_t s;
	unsigned pos = 0, i;

	if (kind == PROBE_PATTERN_ZERO) {
		__builtin_memset(p, 0, PROBE_PATTERN_PAGE);
		return kind;
	}
	if (kind == PROBE_PATTERN_RANDOM) {
		s = proto_mix(seed ^ index ^ PROBE_PATTERN_RAND_SALT) | 1;
		for (i = 0; i < PROBE_PATTERN_PAGE; i += 8) {
			uint64_t w = probe_xorshift64(&s);
			__builtin_memcpy(p + i, &w, 8);
		}
		return kind;
	}
	s = proto_mix(seed ^ index ^ PROBE_PATTERN_TEXT_SALT) | 1;
	while (pos < PROBE_PATTERN_PAGE) {
		uint64_t r = probe_xorshift64(&s);
		const char *w = probe_pattern_words[r % 32];

		while (*w && pos < PROBE_PATTERN_PAGE)
			p[pos++] = (uint8_t)*w++;
		if (pos < PROBE_PATTERN_PAGE)
			p[pos++] = ((r >> 32) % 12 == 0) ? '\n' : ' ';
	}
	return kind;
}

#endif
