/* frame.h - the frame protocol for host and agent: an incremental, hostile-input-safe parser and a frame encoder. */
#ifndef SNAPBOX_PROTO_FRAME_H
#define SNAPBOX_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

/* Called for every complete, well-formed frame; payload is valid only during the call. */
typedef void (*proto_frame_fn)(void *opaque, const struct proto_hdr *hdr,
			       const uint8_t *payload);

struct proto_parser {
	uint8_t hdr_buf[PROTO_HDR_SIZE];
	size_t hdr_have;
	struct proto_hdr hdr;      /* decoded, valid while collecting the payload */
	uint8_t *payload;          /* max_payload bytes, allocated once */
	size_t payload_have;
	int in_payload;
	uint32_t max_payload;
	proto_frame_fn fn;
	void *opaque;
	/* statistics: what a hostile or broken guest sent */
	uint64_t frames;
	uint64_t skipped_bytes;    /* bytes dropped while resynchronising on the magic */
	uint64_t oversize;         /* headers claiming more than max_payload */
};

/*
 * Prepare a parser that accepts payloads up to max_payload (<= PROTO_MAX_PAYLOAD)
 * bytes. The payload buffer is allocated here, once, so no guest-supplied
 * length ever drives an allocation. Returns 0, -EINVAL or -ENOMEM.
 */
int proto_parser_init(struct proto_parser *p, uint32_t max_payload,
		      proto_frame_fn fn, void *opaque);
void proto_parser_fini(struct proto_parser *p);

/*
 * Feed n bytes. Complete frames are delivered through fn. Bad magic drops one
 * byte at a time until a magic matches; a header claiming more than
 * max_payload is counted in `oversize` and treated as garbage the same way.
 * Never fails.
 */
void proto_parser_feed(struct proto_parser *p, const uint8_t *buf, size_t n);

/*
 * Drop a partly received frame (header bytes or payload) and wait for a new
 * header. For receivers that give up on a frame that stalled mid-way (the
 * agent does, after a quiet period). Counts the dropped bytes as skipped.
 */
void proto_parser_reset(struct proto_parser *p);

/* True while part of a frame has been received. */
int proto_parser_busy(const struct proto_parser *p);

/*
 * The 16-byte header alone of a frame of len payload bytes, for a sender that
 * writes the payload from where it lies. 0, or -EMSGSIZE past
 * PROTO_MAX_PAYLOAD.
 */
int proto_encode_hdr(uint8_t out[PROTO_HDR_SIZE], uint16_t type, uint16_t flags, uint32_t id,
		     uint32_t len);

/*
 * Encode a frame into out (capacity cap). Returns the frame length, or
 * -EMSGSIZE when it does not fit or len exceeds PROTO_MAX_PAYLOAD.
 */
long proto_encode(uint8_t *out, size_t cap, uint16_t type, uint16_t flags,
		  uint32_t id, const void *payload, uint32_t len);

#endif
