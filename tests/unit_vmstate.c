/* unit_vmstate.c - vmstate writer/reader: round trip, every corruption and truncation rejected, unknown sections. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "tests/common_capture.h"
#include "snapshot/vmstate.h"

#define TAG_ZZZZ VMSTATE_TAG('Z', 'Z', 'Z', 'Z')

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A small file: CONF, two VCPUs, an empty CLCK, MEMF (and optionally extra). */
static void build(uint8_t **buf, size_t *len, uint32_t extra_tag, uint16_t extra_flags)
{
	struct vmstate_writer w;
	uint8_t vcpu[40];

	for (size_t i = 0; i < sizeof(vcpu); i++)
		vcpu[i] = (uint8_t)(i * 7 + 1);
	vmstate_writer_init(&w);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CONF, 1, 0, "config!", 7), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_VCPU, 3, 0, vcpu, sizeof(vcpu)), 0);
	vcpu[0] = 0xee;
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_VCPU, 3, 0, vcpu, sizeof(vcpu)), 0);
	if (extra_tag)
		cr_assert_eq(vmstate_add(&w, extra_tag, 9, extra_flags, "xyz", 3), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CLCK, 1, 0, NULL, 0), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_MEMF, 2, 0, "memory", 6), 0);
	cr_assert_eq(vmstate_serialize(&w, buf, len), 0);
	vmstate_writer_fini(&w);
}

/* Recompute END's file hash (and END's own section hash) after an edit. */
static void fix_end(uint8_t *buf, size_t len)
{
	size_t end = len - VMSTATE_SEC_HDR_SIZE - VMSTATE_END_LEN;

	put64(buf + end + VMSTATE_SEC_HDR_SIZE, XXH64(buf, end, 0));
	put64(buf + end + 16, XXH64(buf + end + VMSTATE_SEC_HDR_SIZE, VMSTATE_END_LEN, 0));
}

static int parse(const uint8_t *buf, size_t len)
{
	struct vmstate_reader r;
	int ret = vmstate_parse(&r, buf, len, NULL, 0);

	vmstate_reader_fini(&r);
	return ret;
}

Test(vmstate, round_trip_through_a_file)
{
	struct vmstate_writer w;
	struct vmstate_reader r;
	const struct vmstate_section *s;
	uint8_t big[5000];
	int fd = memfd_create("vmstate", 0);

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	vmstate_writer_init(&w);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CONF, 1, 0, "abc", 3), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_HOST, 1, 0, big, sizeof(big)), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_VCPU, 1, 0, "cpu0", 4), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_VCPU, 1, 0, "cpu1", 4), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CLCK, 1, 0, NULL, 0), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_IRQC, 1, 0, "irq", 3), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_PIT2, 1, 0, "pit", 3), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_DEVS, 7, 0, "devs", 4), 0);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_MEMF, 1, 0, "memf", 4), 0);
	cr_assert_eq(vmstate_write_fd(&w, fd), 0);
	vmstate_writer_fini(&w);

	cr_assert_eq(vmstate_read_fd(&r, fd, NULL, 0), 0);
	cr_assert_eq(r.format_version, 1);
	cr_assert_eq(r.nsecs, 9);
	cr_assert_eq(r.nskipped, 0);
	cr_assert_eq(vmstate_count(&r, VMSTATE_TAG_VCPU), 2);
	s = vmstate_find(&r, VMSTATE_TAG_VCPU, 1);
	cr_assert(s && s->length == 4 && !memcmp(s->payload, "cpu1", 4));
	s = vmstate_find(&r, VMSTATE_TAG_HOST, 0);
	cr_assert(s && s->length == sizeof(big) && !memcmp(s->payload, big, sizeof(big)));
	s = vmstate_find(&r, VMSTATE_TAG_DEVS, 0);
	cr_assert(s && s->version == 7 && s->flags == 0);
	s = vmstate_find(&r, VMSTATE_TAG_CLCK, 0);
	cr_assert(s && s->length == 0);
	cr_assert_null(vmstate_find(&r, VMSTATE_TAG_VCPU, 2));
	cr_assert_null(vmstate_find(&r, VMSTATE_TAG_END, 0));
	vmstate_reader_fini(&r);
	close(fd);
}

Test(vmstate, layout_is_as_documented)
{
	uint8_t *buf;
	size_t len;

	build(&buf, &len, 0, 0);
	cr_assert(!memcmp(buf, "SNAPBOXV\x01\0\0\0\0\0\0\0", 16));
	cr_assert(!memcmp(buf + 16, "CONF\x01\0\0\0\x07\0\0\0\0\0\0\0", 16));
	cr_assert_eq(le64(buf + 32), XXH64("config!", 7, 0));
	cr_assert(!memcmp(buf + len - 36, "END \x01\0\0\0\x0c\0\0\0\0\0\0\0", 16));
	cr_assert_eq(le64(buf + len - 12), XXH64(buf, len - 36, 0));
	cr_assert(!memcmp(buf + len - 4, "\x05\0\0\0", 4));
	cr_assert_eq(parse(buf, len), 0);
	free(buf);
}

Test(vmstate, bad_magic_version_and_flags, .init = tests_quiet_stderr)
{
	uint8_t *buf;
	size_t len;
	int mfd, saved;
	const char *msg;

	build(&buf, &len, 0, 0);
	buf[3] ^= 0x20;
	cr_assert_eq(parse(buf, len), -EPROTO);
	buf[3] ^= 0x20;
	buf[8] = 2;                          /* format version 2 */
	fix_end(buf, len);
	saved = tests_cap_begin(&mfd);
	cr_assert_eq(parse(buf, len), -EPROTO);
	msg = tests_cap_end(saved, mfd);
	cr_assert(strstr(msg, "format version 2 not supported (this build reads 1)"), "got: %s", msg);
	cr_assert_eq(strchr(msg, '\n'), msg + strlen(msg) - 1, "one line: %s", msg);
	buf[8] = 1;
	buf[12] = 1;                         /* header flags */
	fix_end(buf, len);
	cr_assert_eq(parse(buf, len), -EPROTO);
	buf[12] = 0;
	fix_end(buf, len);
	cr_assert_eq(parse(buf, len), 0);
	free(buf);
}

Test(vmstate, section_and_end_checksums, .init = tests_quiet_stderr)
{
	uint8_t *buf;
	size_t len;

	build(&buf, &len, 0, 0);
	buf[16 + 24] ^= 1;                   /* CONF payload: section hash */
	cr_assert_eq(parse(buf, len), -EPROTO);
	buf[16 + 24] ^= 1;
	buf[16 + 4] ^= 1;                    /* CONF version: only END's file hash covers it */
	cr_assert_eq(parse(buf, len), -EPROTO);
	fix_end(buf, len);
	cr_assert_eq(parse(buf, len), 0);
	buf[len - 12] ^= 1;                  /* END's file hash, END section hash fixed below */
	put64(buf + len - 36 + 16, XXH64(buf + len - 12, 12, 0));
	cr_assert_eq(parse(buf, len), -EPROTO);
	buf[len - 12] ^= 1;
	buf[len - 4] = 4;                    /* section count */
	put64(buf + len - 36 + 16, XXH64(buf + len - 12, 12, 0));
	cr_assert_eq(parse(buf, len), -EPROTO);
	free(buf);
}

Test(vmstate, reserved_section_flags_rejected, .init = tests_quiet_stderr)
{
	uint8_t *buf;
	size_t len;

	build(&buf, &len, 0, 0);
	buf[16 + 6] = 0x02;                  /* CONF flags bit 1 */
	fix_end(buf, len);
	cr_assert_eq(parse(buf, len), -EPROTO);
	buf[16 + 6] = 0x01;                  /* OPTIONAL on a known tag: still read */
	fix_end(buf, len);
	cr_assert_eq(parse(buf, len), 0);
	free(buf);
}

Test(vmstate, every_truncation_rejected, .init = tests_quiet_stderr)
{
	uint8_t *buf;
	size_t len;

	build(&buf, &len, 0, 0);
	for (size_t n = 0; n < len; n++)
		cr_assert_eq(parse(buf, n), -EPROTO, "truncated to %zu of %zu bytes", n, len);
	cr_assert_eq(parse(buf, len), 0);
	free(buf);
}

Test(vmstate, every_byte_flip_rejected, .init = tests_quiet_stderr)
{
	static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff };
	uint8_t *buf;
	size_t len, n = 0;

	build(&buf, &len, 0, 0);
	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			buf[i] ^= masks[m];
			cr_assert_neq(parse(buf, len), 0, "flip 0x%02x at byte %zu accepted", masks[m], i);
			buf[i] ^= masks[m];
			n++;
		}
	}
	cr_log_info("vmstate: %zu single-byte flips over all %zu bytes, all rejected", n, len);
	free(buf);
}

Test(vmstate, oversized_length_rejected, .init = tests_quiet_stderr)
{
	uint8_t *buf;
	size_t len;

	build(&buf, &len, 0, 0);
	put64(buf + 16 + 8, 1ull << 62);     /* CONF length */
	cr_assert_eq(parse(buf, len), -EPROTO);
	put64(buf + 16 + 8, len);            /* just past the end */
	cr_assert_eq(parse(buf, len), -EPROTO);
	put64(buf + 16 + 8, UINT64_MAX);
	cr_assert_eq(parse(buf, len), -EPROTO);
	free(buf);
}

Test(vmstate, trailing_bytes_rejected, .init = tests_quiet_stderr)
{
	uint8_t *buf, *more;
	size_t len;

	build(&buf, &len, 0, 0);
	more = malloc(len + 1);
	memcpy(more, buf, len);
	more[len] = 0;
	cr_assert_eq(parse(more, len + 1), -EPROTO);
	free(more);
	free(buf);
}

Test(vmstate, unknown_mandatory_rejected_naming_the_tag)
{
	uint8_t *buf;
	size_t len;
	int mfd, saved;
	const char *msg;

	build(&buf, &len, TAG_ZZZZ, 0);
	saved = tests_cap_begin(&mfd);
	cr_assert_eq(parse(buf, len), -EPROTO);
	msg = tests_cap_end(saved, mfd);
	cr_assert(strstr(msg, "unknown mandatory section 'ZZZZ'"), "got: %s", msg);
	free(buf);
}

Test(vmstate, unknown_optional_skipped)
{
	struct vmstate_reader r;
	uint8_t *buf;
	size_t len;
	uint32_t known[] = { VMSTATE_TAG_CONF, VMSTATE_TAG_VCPU, VMSTATE_TAG_CLCK, VMSTATE_TAG_MEMF,
			     TAG_ZZZZ };

	build(&buf, &len, TAG_ZZZZ, VMSTATE_F_OPTIONAL);
	cr_assert_eq(vmstate_parse(&r, buf, len, NULL, 0), 0);
	cr_assert_eq(r.nsecs, 6);
	cr_assert_eq(r.nskipped, 1);
	cr_assert_eq(r.secs[3].tag, TAG_ZZZZ);
	cr_assert(!r.secs[3].known);
	cr_assert_null(vmstate_find(&r, TAG_ZZZZ, 0));
	cr_assert_not_null(vmstate_find(&r, VMSTATE_TAG_MEMF, 0));
	vmstate_reader_fini(&r);
	/* A reader that knows the tag returns it. */
	cr_assert_eq(vmstate_parse(&r, buf, len, known, 5), 0);
	cr_assert_eq(r.nskipped, 0);
	cr_assert(vmstate_find(&r, TAG_ZZZZ, 0) && vmstate_find(&r, TAG_ZZZZ, 0)->version == 9);
	vmstate_reader_fini(&r);
	free(buf);
}

Test(vmstate, writer_refuses_bad_sections_and_the_cap, .init = tests_quiet_stderr)
{
	struct vmstate_writer w;
	uint8_t x = 0;

	vmstate_writer_init(&w);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_END, 1, 0, &x, 1), -EINVAL);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CONF, 1, 0x0002, &x, 1), -EINVAL);
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CONF, 1, 0, NULL, 1), -EINVAL);
	/* Rejected on its length before the payload is read. */
	cr_assert_eq(vmstate_add(&w, VMSTATE_TAG_CONF, 1, 0, &x, VMSTATE_MAX_FILE), -EFBIG);
	cr_assert_eq(w.nsecs, 0);
	vmstate_writer_fini(&w);
}

Test(vmstate, reader_refuses_a_file_over_the_cap, .init = tests_quiet_stderr)
{
	struct vmstate_reader r;
	int fd = memfd_create("big", 0);

	/* Sparse: the reader must refuse on the size alone, before allocating. */
	cr_assert_eq(ftruncate(fd, (off_t)VMSTATE_MAX_FILE + 1), 0);
	cr_assert_eq(vmstate_read_fd(&r, fd, NULL, 0), -EFBIG);
	cr_assert_null(r.image);
	vmstate_reader_fini(&r);
	close(fd);
}

Test(vmstate, tag_str)
{
	char s[5];

	vmstate_tag_str(VMSTATE_TAG_PIT2, s);
	cr_assert_str_eq(s, "PIT2");
	vmstate_tag_str(VMSTATE_TAG(1, 'a', 0x7f, ' '), s);
	cr_assert_str_eq(s, "?a? ");
}
