/* unit_proto.c - the host frame parser and encoder against good, split, garbage and oversized input. */
#include "kvm/mono.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "runtime/chan.h"
#include "proto/frame.h"

struct got {
	int n;
	struct proto_hdr h[8];
	uint8_t payload[8][64];
};

static void on_frame(void *opaque, const struct proto_hdr *h, const uint8_t *payload)
{
	struct got *g = opaque;

	if (g->n < 8) {
		g->h[g->n] = *h;
		memcpy(g->payload[g->n], payload, h->len < 64 ? h->len : 64);
	}
	g->n++;
}

Test(proto, encode_then_parse_roundtrip)
{
	struct proto_parser p;
	struct got g = { 0 };
	uint8_t buf[64];
	long n = proto_encode(buf, sizeof(buf), PROTO_T_ECHO, PROTO_F_RESP, 77, "hello", 5);

	cr_assert_eq(n, PROTO_HDR_SIZE + 5);
	cr_assert_eq(proto_parser_init(&p, 1024, on_frame, &g), 0);
	proto_parser_feed(&p, buf, (size_t)n);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.h[0].type, PROTO_T_ECHO);
	cr_assert_eq(g.h[0].flags, PROTO_F_RESP);
	cr_assert_eq(g.h[0].id, 77);
	cr_assert_eq(g.h[0].len, 5);
	cr_assert_eq(memcmp(g.payload[0], "hello", 5), 0);
	proto_parser_fini(&p);
}

Test(proto, byte_at_a_time_and_back_to_back)
{
	struct proto_parser p;
	struct got g = { 0 };
	uint8_t buf[128];
	long a = proto_encode(buf, sizeof(buf), PROTO_T_PING, 0, 1, NULL, 0);
	long b = proto_encode(buf + a, sizeof(buf) - (size_t)a, PROTO_T_LOG, 0, 0, "xyz", 3);

	cr_assert_eq(proto_parser_init(&p, 1024, on_frame, &g), 0);
	for (long i = 0; i < a + b; i++)
		proto_parser_feed(&p, buf + i, 1);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(g.h[0].type, PROTO_T_PING);
	cr_assert_eq(g.h[1].type, PROTO_T_LOG);
	cr_assert_eq(memcmp(g.payload[1], "xyz", 3), 0);
	proto_parser_fini(&p);
}

Test(proto, garbage_is_skipped_and_counted)
{
	struct proto_parser p;
	struct got g = { 0 };
	uint8_t buf[128];
	/* garbage that even contains a partial magic */
	static const uint8_t junk[] = { 'S', 'B', 'X', 0, 1, 2, 3, 'S', 'B', 9 };
	long n;

	memcpy(buf, junk, sizeof(junk));
	n = proto_encode(buf + sizeof(junk), sizeof(buf) - sizeof(junk), PROTO_T_READY, 0, 0, "ok", 2);
	cr_assert_eq(proto_parser_init(&p, 1024, on_frame, &g), 0);
	proto_parser_feed(&p, buf, sizeof(junk) + (size_t)n);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.h[0].type, PROTO_T_READY);
	cr_assert_eq(p.skipped_bytes, sizeof(junk));
	proto_parser_fini(&p);
}

Test(proto, oversize_header_is_rejected_then_resyncs)
{
	struct proto_parser p;
	struct got g = { 0 };
	uint8_t buf[128];
	long a, b;

	a = proto_encode(buf, sizeof(buf), PROTO_T_LOG, 0, 0, NULL, 0);
	buf[12] = 0xff; buf[13] = 0xff; buf[14] = 0xff; buf[15] = 0xff;  /* len = 4 GiB - 1 */
	b = proto_encode(buf + a, sizeof(buf) - (size_t)a, PROTO_T_PING, 0, 5, NULL, 0);
	cr_assert_eq(proto_parser_init(&p, 1024, on_frame, &g), 0);
	proto_parser_feed(&p, buf, (size_t)(a + b));
	cr_assert_eq(p.oversize, 1);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.h[0].type, PROTO_T_PING);
	cr_assert_eq(g.h[0].id, 5);
	proto_parser_fini(&p);
}

Test(proto, encode_refuses_too_small_buffer_and_huge_len)
{
	uint8_t buf[20];

	cr_assert_eq(proto_encode(buf, sizeof(buf), PROTO_T_ECHO, 0, 1, "12345", 5), -EMSGSIZE);
	cr_assert_eq(proto_encode(buf, sizeof(buf), PROTO_T_ECHO, 0, 1, buf, PROTO_MAX_PAYLOAD + 1),
		     -EMSGSIZE);
	cr_assert_eq(proto_encode(buf, sizeof(buf), PROTO_T_ECHO, 0, 1, "1234", 4), 20);
}

Test(proto, init_refuses_cap_above_protocol_max)
{
	struct proto_parser p;

	cr_assert_eq(proto_parser_init(&p, PROTO_MAX_PAYLOAD + 1, on_frame, NULL), -EINVAL);
}

/* The channel answers for its own state: idle only between whole frames, READY marked, stats counted. */
Test(proto, channel_idle_ready_and_stats_through_its_own_calls)
{
	uint8_t buf[64];
	uint64_t frames, skipped, oversize, ready_ns, stage_ns[SNAPBOX_STAGE_COUNT];
	bool stage_valid[SNAPBOX_STAGE_COUNT];
	struct chan c;
	long n = proto_encode(buf, sizeof(buf), PROTO_T_LOG, 0, 0, "half", 4);

	cr_assert_gt(n, 8);
	cr_assert_eq(chan_init(&c, NULL), 0);
	cr_assert(chan_is_idle(&c));
	chan_rx(&c, buf, 8);               /* half a header: a snapshot now would lose it */
	cr_assert_not(chan_is_idle(&c));
	chan_rx(&c, buf + 8, (size_t)n - 8);
	cr_assert(chan_is_idle(&c));
	chan_get_stats(&c, &frames, &skipped, &oversize);
	cr_assert_eq(frames, 1);
	cr_assert_eq(skipped, 0);
	chan_get_boot(&c, &ready_ns, stage_ns, stage_valid);
	cr_assert_eq(ready_ns, 0);
	chan_mark_ready(&c);
	cr_assert_eq(chan_wait_ready(&c, mono_now_ns()), 0, "a restored channel is ready");
	chan_get_boot(&c, &ready_ns, stage_ns, stage_valid);
	cr_assert_gt(ready_ns, 0);
	chan_fini(&c);
}
