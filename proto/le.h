/* le.h - the one little-endian codec of the tree: fixed-width loads and stores on byte arrays (freestanding-safe, for the guests too). */
#ifndef SNAPBOX_PROTO_LE_H
#define SNAPBOX_PROTO_LE_H

#include <stdint.h>

static inline void le_put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void le_put32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static inline void le_put64(uint8_t *b, uint64_t v)
{
	le_put32(b, (uint32_t)v);
	le_put32(b + 4, (uint32_t)(v >> 32));
}

static inline uint16_t le_get16(const uint8_t *b)
{
	return (uint16_t)(b[0] | (uint16_t)b[1] << 8);
}

static inline uint32_t le_get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t le_get64(const uint8_t *b)
{
	return (uint64_t)le_get32(b) | (uint64_t)le_get32(b + 4) << 32;
}

#endif
