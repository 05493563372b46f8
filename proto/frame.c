/* frame.c - the incremental frame parser and the encoder of the agent channel (host and Linux agent). */
#include "proto/le.h"
#include "proto/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int proto_parser_init(struct proto_parser *p, uint32_t max_payload,
		      proto_frame_fn fn, void *opaque)
{
	memset(p, 0, sizeof(*p));
	if (max_payload > PROTO_MAX_PAYLOAD)
		return -EINVAL;
	p->payload = malloc(max_payload ? max_payload : 1);
	if (!p->payload)
		return -ENOMEM;
	p->max_payload = max_payload;
	p->fn = fn;
	p->opaque = opaque;
	return 0;
}

void proto_parser_fini(struct proto_parser *p)
{
	free(p->payload);
	p->payload = NULL;
}

/* Drop the first header byte and keep the rest: the magic may start inside it. */
static void proto_resync(struct proto_parser *p)
{
	memmove(p->hdr_buf, p->hdr_buf + 1, p->hdr_have - 1);
	p->hdr_have--;
	p->skipped_bytes++;
}

static void proto_deliver(struct proto_parser *p)
{
	p->frames++;
	if (p->fn)
		p->fn(p->opaque, &p->hdr, p->payload);
	p->in_payload = 0;
	p->hdr_have = 0;
	p->payload_have = 0;
}

/* Validate a full header buffer; on success switch to payload collection. */
static void proto_check_header(struct proto_parser *p)
{
	const uint8_t *b = p->hdr_buf;

	if (le_get32(b) != PROTO_MAGIC) {
		proto_resync(p);
		return;
	}
	p->hdr.magic = PROTO_MAGIC;
	p->hdr.type = le_get16(b + 4);
	p->hdr.flags = le_get16(b + 6);
	p->hdr.id = le_get32(b + 8);
	p->hdr.len = le_get32(b + 12);
	if (p->hdr.len > p->max_payload) {
		p->oversize++;
		proto_resync(p);
		return;
	}
	p->in_payload = 1;
	p->payload_have = 0;
	if (p->hdr.len == 0)
		proto_deliver(p);
}

void proto_parser_feed(struct proto_parser *p, const uint8_t *buf, size_t n)
{
	while (n > 0) {
		if (p->in_payload) {
			size_t want = p->hdr.len - p->payload_have;
			size_t take = n < want ? n : want;

			memcpy(p->payload + p->payload_have, buf, take);
			p->payload_have += take;
			buf += take;
			n -= take;
			if (p->payload_have == p->hdr.len)
				proto_deliver(p);
			continue;
		}
		p->hdr_buf[p->hdr_have++] = *buf++;
		n--;
		/* Resync may leave a partial header; check again whenever it is full. */
		while (!p->in_payload && p->hdr_have == PROTO_HDR_SIZE)
			proto_check_header(p);
	}
}

void proto_parser_reset(struct proto_parser *p)
{
	p->skipped_bytes += p->hdr_have + p->payload_have;
	p->in_payload = 0;
	p->hdr_have = 0;
	p->payload_have = 0;
}

int proto_parser_busy(const struct proto_parser *p)
{
	return p->in_payload || p->hdr_have > 0;
}

int proto_encode_hdr(uint8_t out[PROTO_HDR_SIZE], uint16_t type, uint16_t flags, uint32_t id,
		     uint32_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	le_put32(out, PROTO_MAGIC);
	le_put16(out + 4, type);
	le_put16(out + 6, flags);
	le_put32(out + 8, id);
	le_put32(out + 12, len);
	return 0;
}

long proto_encode(uint8_t *out, size_t cap, uint16_t type, uint16_t flags,
		  uint32_t id, const void *payload, uint32_t len)
{
	if (len > PROTO_MAX_PAYLOAD || cap < PROTO_HDR_SIZE || cap - PROTO_HDR_SIZE < len)
		return -EMSGSIZE;
	proto_encode_hdr(out, type, flags, id, len);
	if (len)
		memcpy(out + PROTO_HDR_SIZE, payload, len);
	return (long)(PROTO_HDR_SIZE + len);
}
