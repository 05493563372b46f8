/* sbuf.h - little-endian, fixed-width serialisation buffers for device and vCPU state. */
#ifndef SNAPBOX_KVM_SBUF_H
#define SNAPBOX_KVM_SBUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writer: grows on demand. Errors are sticky: after the first failure every
 * put is a no-op and `err` holds the -errno, so callers check once at the end.
 */
struct sbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int err;
};

/* Reader over a borrowed byte range. Errors are sticky (-EPROTO on truncation). */
struct sbuf_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

void sbuf_init(struct sbuf *b);
void sbuf_fini(struct sbuf *b);
void sbuf_put_u8(struct sbuf *b, uint8_t v);
void sbuf_put_u16(struct sbuf *b, uint16_t v);
void sbuf_put_u32(struct sbuf *b, uint32_t v);
void sbuf_put_u64(struct sbuf *b, uint64_t v);
void sbuf_put_bytes(struct sbuf *b, const void *p, size_t n);

void sbuf_reader_init(struct sbuf_reader *r, const void *p, size_t len);
uint8_t sbuf_get_u8(struct sbuf_reader *r);
uint16_t sbuf_get_u16(struct sbuf_reader *r);
uint32_t sbuf_get_u32(struct sbuf_reader *r);
uint64_t sbuf_get_u64(struct sbuf_reader *r);
/* Copies n bytes; on truncation sets err and zero-fills dst. */
void sbuf_get_bytes(struct sbuf_reader *r, void *dst, size_t n);
/* Bytes left to read. */
size_t sbuf_remaining(const struct sbuf_reader *r);

#endif
