/* sbuf.c - little-endian serialisation buffers: a growable writer and a bounds-checked reader. */
#include "proto/le.h"
#include "kvm/sbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SBUF_MIN_CAP 64

/* Start an empty writer; no allocation until the first put. */
void sbuf_init(struct sbuf *b)
{
	memset(b, 0, sizeof(*b));
}

/* Free the writer's buffer. Safe on a zeroed or already finalised struct. */
void sbuf_fini(struct sbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/*
 * Make room for n more bytes and return where they go, or NULL after
 * recording a sticky error (-ENOMEM, or -EOVERFLOW for an absurd size).
 */
static uint8_t *sbuf_reserve(struct sbuf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (n > SIZE_MAX - b->len) {
		b->err = -EOVERFLOW;
		return NULL;
	}
	size_t need = b->len + n;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : SBUF_MIN_CAP;
		while (cap < need) {
			if (cap > SIZE_MAX / 2) {
				cap = need;
				break;
			}
			cap *= 2;
		}
		uint8_t *p = realloc(b->data, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	uint8_t *at = b->data + b->len;
	b->len = need;
	return at;
}

/* Append one byte. */
void sbuf_put_u8(struct sbuf *b, uint8_t v)
{
	uint8_t *p = sbuf_reserve(b, 1);
	if (p)
		p[0] = v;
}

/* Append a u16, least significant byte first. */
void sbuf_put_u16(struct sbuf *b, uint16_t v)
{
	uint8_t *p = sbuf_reserve(b, 2);
	if (!p)
		return;
	le_put16(p, v);
}

/* Append a u32, least significant byte first. */
void sbuf_put_u32(struct sbuf *b, uint32_t v)
{
	uint8_t *p = sbuf_reserve(b, 4);
	if (!p)
		return;
	le_put32(p, v);
}

/* Append a u64, least significant byte first. */
void sbuf_put_u64(struct sbuf *b, uint64_t v)
{
	uint8_t *p = sbuf_reserve(b, 8);
	if (!p)
		return;
	le_put64(p, v);
}

/* Append n raw bytes (n == 0 is a no-op; p may be NULL then). */
void sbuf_put_bytes(struct sbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (!p) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	uint8_t *dst = sbuf_reserve(b, n);
	if (dst)
		memcpy(dst, p, n);
}

/* Start reading the borrowed range [p, p + len). */
void sbuf_reader_init(struct sbuf_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
	r->err = 0;
}

/*
 * Claim the next n bytes, or NULL after setting the sticky -EPROTO when
 * fewer remain (the offset does not move then).
 */
static const uint8_t *sbuf_take(struct sbuf_reader *r, size_t n)
{
	if (r->err)
		return NULL;
	if (n > r->len - r->off) {
		r->err = -EPROTO;
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}

/* Read one byte; 0 once the reader has failed. */
uint8_t sbuf_get_u8(struct sbuf_reader *r)
{
	const uint8_t *p = sbuf_take(r, 1);
	return p ? p[0] : 0;
}

/* Read a little-endian u16; 0 once the reader has failed. */
uint16_t sbuf_get_u16(struct sbuf_reader *r)
{
	const uint8_t *p = sbuf_take(r, 2);
	if (!p)
		return 0;
	return le_get16(p);
}

/* Read a little-endian u32; 0 once the reader has failed. */
uint32_t sbuf_get_u32(struct sbuf_reader *r)
{
	const uint8_t *p = sbuf_take(r, 4);
	if (!p)
		return 0;
	return le_get32(p);
}

/* Read a little-endian u64; 0 once the reader has failed. */
uint64_t sbuf_get_u64(struct sbuf_reader *r)
{
	const uint8_t *p = sbuf_take(r, 8);
	if (!p)
		return 0;
	return le_get64(p);
}

/* Copy n bytes out; on truncation (or an earlier error) zero-fill dst. */
void sbuf_get_bytes(struct sbuf_reader *r, void *dst, size_t n)
{
	if (n == 0)
		return;
	const uint8_t *p = sbuf_take(r, n);
	if (p)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

/* Bytes left to read (0 once the reader has failed). */
size_t sbuf_remaining(const struct sbuf_reader *r)
{
	return r->err ? 0 : r->len - r->off;
}
