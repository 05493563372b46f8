/* unit_codec.c - the tree's one little-endian codec (proto/le.h), one JSON string writer and one lap timer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/le.h"
#include "kvm/mono.h"
#include "snapbox.h"

Test(codec, le_stores_least_significant_byte_first_and_round_trips)
{
	uint8_t b[8];

	le_put16(b, 0x1234);
	cr_assert(b[0] == 0x34 && b[1] == 0x12);
	cr_assert_eq(le_get16(b), 0x1234);
	le_put32(b, 0xa1b2c3d4u);
	cr_assert(b[0] == 0xd4 && b[3] == 0xa1);
	cr_assert_eq(le_get32(b), 0xa1b2c3d4u);
	le_put64(b, 0x0102030405060708ull);
	cr_assert(b[0] == 0x08 && b[7] == 0x01);
	cr_assert_eq(le_get64(b), 0x0102030405060708ull);
	/* No sign extension from a high byte. */
	memset(b, 0xff, sizeof(b));
	cr_assert_eq(le_get64(b), UINT64_MAX);
	cr_assert_eq(le_get32(b), UINT32_MAX);
}

static char *codec_json(const char *s)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	cr_assert_not_null(f);
	snapbox_json_string(f, s);
	fclose(f);
	return out;
}

Test(codec, json_string_escapes_to_valid_ascii)
{
	char *o;

	o = codec_json("a\"b\\c\n\x01\x7f\xc3\xa9");
	cr_assert_str_eq(o, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\\u00c3\\u00a9\"");
	free(o);
	o = codec_json(NULL);
	cr_assert_str_eq(o, "null");
	free(o);
	o = codec_json("");
	cr_assert_str_eq(o, "\"\"");
	free(o);
}

Test(codec, lap_returns_elapsed_and_restarts)
{
	uint64_t t = mono_now_ns() - 1000000, d;

	d = mono_lap(&t);
	cr_assert_geq(d, 1000000);
	cr_assert_leq(t, mono_now_ns());
	cr_assert_lt(mono_lap(&t), d);
}
