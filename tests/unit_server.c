/* unit_server.c - snapboxd's helpers: base64 both ways, UTF-8 validation, template names, error bodies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"

Test(server, base64_round_trips_every_length)
{
	uint8_t in[64];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 1);
	for (size_t n = 0; n <= sizeof(in); n++) {
		char *e = srv_b64_encode(in, n);
		uint8_t *d;
		size_t len;

		cr_assert_not_null(e);
		cr_assert_eq(strlen(e), 4 * ((n + 2) / 3));
		cr_assert_eq(srv_b64_decode(e, &d, &len), 0);
		cr_assert_eq(len, n);
		cr_assert(n == 0 || !memcmp(d, in, n));
		free(d);
		free(e);
	}
	char *e = srv_b64_encode("foobar", 6);
	cr_assert_str_eq(e, "Zm9vYmFy");
	free(e);
	e = srv_b64_encode("fo", 2);
	cr_assert_str_eq(e, "Zm8=");
	free(e);
}

Test(server, base64_refuses_what_is_not)
{
	uint8_t *d;
	size_t len;

	cr_assert_eq(srv_b64_decode("Zm9", &d, &len), -EINVAL);      /* not a multiple of 4 */
	cr_assert_eq(srv_b64_decode("Zm9*", &d, &len), -EINVAL);     /* not the alphabet */
	cr_assert_eq(srv_b64_decode("Z===", &d, &len), -EINVAL);     /* too much padding */
	cr_assert_eq(srv_b64_decode("Zg==Zg==", &d, &len), -EINVAL); /* padding inside */
}

Test(server, utf8_validation)
{
	cr_assert(srv_utf8_valid((const uint8_t *)"plain", 5));
	cr_assert(srv_utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	cr_assert(!srv_utf8_valid((const uint8_t *)"\xff", 1));
	cr_assert(!srv_utf8_valid((const uint8_t *)"\xc3", 1));             /* truncated */
	cr_assert(!srv_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
	cr_assert(!srv_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
	cr_assert(!srv_utf8_valid((const uint8_t *)"a\0b", 3));             /* NUL */
}

Test(server, template_names)
{
	cr_assert(srv_name_valid("py-3.11_base"));
	cr_assert(!srv_name_valid(""));
	cr_assert(!srv_name_valid("-x"));
	cr_assert(!srv_name_valid("a/b"));
	cr_assert(!srv_name_valid("../x"));
	cr_assert(!srv_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
}

Test(server, log_text_is_escaped)
{
	char buf[64];

	srv_escape("/v1/x\nsnapboxd: forged\r\x1b[31m\\\" 200", buf, sizeof(buf));
	cr_assert_str_eq(buf, "/v1/x\\x0asnapboxd:\\x20forged\\x0d\\x1b[31m\\x5c\\x22\\x20200");
	srv_escape("0123456789", buf, 8);
	cr_assert_eq(strlen(buf), 7, "not cut to fit: %s", buf);
	srv_escape(NULL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
}

Test(server, tokens_compare_whole_and_only_whole)
{
	char longer[SRV_TOKEN_MAX + 8];

	cr_assert(srv_token_equal("s3cret-token-0123", "s3cret-token-0123"));
	cr_assert_not(srv_token_equal("s3cret-token-012", "s3cret-token-0123"), "a prefix matched");
	cr_assert_not(srv_token_equal("s3cret-token-01234", "s3cret-token-0123"), "a longer one matched");
	cr_assert_not(srv_token_equal("", "s3cret-token-0123"));
	cr_assert_not(srv_token_equal("S3cret-token-0123", "s3cret-token-0123"));
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	cr_assert_not(srv_token_equal(longer, longer), "a token past the cap compares equal");
}

Test(server, errno_maps_to_status_and_kind)
{
	static const struct { int err, status; const char *kind; } m[] = {
		{ -ETIMEDOUT, 504, "guest_timeout" }, { -EPIPE, 502, "guest_failed" },
		{ -ENODEV, 503, "unavailable" }, { -ENOENT, 422, "unprocessable" },
		{ -EAGAIN, 429, "limit" }, { -ENOMEM, 500, "internal" },
		/* Client errors are never a 500. */
		{ -E2BIG, 413, "too_large" }, { -EFBIG, 413, "too_large" },
		{ -EACCES, 403, "forbidden" }, { -EPERM, 403, "forbidden" },
		{ -EISDIR, 422, "unprocessable" }, { -ELOOP, 422, "unprocessable" },
		{ -ERANGE, 422, "unprocessable" }, { -ECANCELED, 422, "unprocessable" },
		{ -EEXIST, 409, "conflict" }, { -EBUSY, 409, "conflict" },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct srv_reply r = { 0 };

		srv_reply_errno(&r, m[i].err, "op");
		cr_assert_eq(r.status, m[i].status);
		cr_assert_str_eq(r.kind, m[i].kind);
		cr_assert_not_null(strstr(r.body, m[i].kind));
		srv_reply_fini(&r);
	}
}
