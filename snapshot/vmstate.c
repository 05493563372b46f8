/* vmstate.c - vmstate file writer (sections collected in memory, END appended) and validating reader. */
#include "proto/le.h"
#include "snapshot/vmstate.h"
#include "kvm/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/*
 * On-disk layouts, for their sizes and field offsets only: the code writes
 * and reads each field explicitly little-endian at these offsets, never the
 * struct itself.
 */
struct vmstate_disk_hdr {
	char magic[8];
	uint32_t format_version;
	uint32_t flags;
};

struct vmstate_disk_sec {
	uint32_t tag;
	uint16_t version;
	uint16_t flags;
	uint64_t length;
	uint64_t xxh64;
};

struct vmstate_disk_end {
	uint64_t file_xxh64;
	uint32_t section_count;
} __attribute__((packed));

_Static_assert(sizeof(struct vmstate_disk_hdr) == VMSTATE_HDR_SIZE, "vmstate header is 16 bytes");
_Static_assert(sizeof(struct vmstate_disk_sec) == VMSTATE_SEC_HDR_SIZE, "section header is 24 bytes");
_Static_assert(sizeof(struct vmstate_disk_end) == VMSTATE_END_LEN, "END payload is 12 bytes");
_Static_assert(offsetof(struct vmstate_disk_sec, length) == 8, "length at 8");
_Static_assert(offsetof(struct vmstate_disk_sec, xxh64) == 16, "xxh64 at 16");

#define VMSTATE_LOG(...) log_line("snapbox: vmstate: ", __VA_ARGS__)

static const uint32_t vmstate_v1_tags[] = {
	VMSTATE_TAG_CONF, VMSTATE_TAG_HOST, VMSTATE_TAG_VCPU, VMSTATE_TAG_CLCK,
	VMSTATE_TAG_IRQC, VMSTATE_TAG_PIT2, VMSTATE_TAG_DEVS, VMSTATE_TAG_MEMF,
};

/* Print a tag as its four characters, '?' for anything not printable ASCII. */
void vmstate_tag_str(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));
		out[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	out[4] = '\0';
}

void vmstate_writer_init(struct vmstate_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->bytes = VMSTATE_HDR_SIZE + VMSTATE_SEC_HDR_SIZE + VMSTATE_END_LEN;
}

void vmstate_writer_fini(struct vmstate_writer *w)
{
	for (size_t i = 0; i < w->nsecs; i++)
		free((void *)w->secs[i].payload);
	free(w->secs);
	memset(w, 0, sizeof(*w));
}

int vmstate_add(struct vmstate_writer *w, uint32_t tag, uint16_t version, uint16_t flags,
		const void *payload, size_t len)
{
	char name[5];
	uint8_t *copy = NULL;

	vmstate_tag_str(tag, name);
	if (tag == VMSTATE_TAG_END || (flags & ~VMSTATE_F_OPTIONAL) || (len && !payload)) {
		VMSTATE_LOG("section '%s': invalid tag, flags 0x%x or payload", name, flags);
		return -EINVAL;
	}
	/* Checked against the cap the reader enforces, so we never write an unreadable file. */
	if (len > VMSTATE_MAX_FILE || w->bytes + VMSTATE_SEC_HDR_SIZE + len > VMSTATE_MAX_FILE) {
		VMSTATE_LOG("section '%s': %zu bytes would exceed the %u-byte file cap", name, len,
			    VMSTATE_MAX_FILE);
		return -EFBIG;
	}
	if (w->nsecs == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct vmstate_section *s = realloc(w->secs, cap * sizeof(*s));
		if (!s)
			goto nomem;
		w->secs = s;
		w->cap = cap;
	}
	if (len) {
		copy = malloc(len);
		if (!copy)
			goto nomem;
		memcpy(copy, payload, len);
	}
	w->secs[w->nsecs++] = (struct vmstate_section){ .tag = tag, .version = version,
		.flags = flags, .length = len, .payload = copy, .known = true };
	w->bytes += VMSTATE_SEC_HDR_SIZE + len;
	return 0;
nomem:
	VMSTATE_LOG("section '%s': out of memory", name);
	return -ENOMEM;
}

/* Write one section header at p for this payload. */
static void vmstate_put_sec(uint8_t *p, uint32_t tag, uint16_t version, uint16_t flags,
			    const uint8_t *payload, uint64_t len)
{
	le_put32(p + offsetof(struct vmstate_disk_sec, tag), tag);
	le_put16(p + offsetof(struct vmstate_disk_sec, version), version);
	le_put16(p + offsetof(struct vmstate_disk_sec, flags), flags);
	le_put64(p + offsetof(struct vmstate_disk_sec, length), len);
	le_put64(p + offsetof(struct vmstate_disk_sec, xxh64), XXH64(payload, (size_t)len, 0));
}

int vmstate_serialize(const struct vmstate_writer *w, uint8_t **out, size_t *out_len)
{
	size_t size = (size_t)w->bytes, off = VMSTATE_HDR_SIZE;
	uint8_t *buf = malloc(size);

	if (!buf) {
		VMSTATE_LOG("out of memory for a %zu-byte file", size);
		return -ENOMEM;
	}
	memcpy(buf, VMSTATE_MAGIC, 8);
	le_put32(buf + offsetof(struct vmstate_disk_hdr, format_version), VMSTATE_FORMAT_VERSION);
	le_put32(buf + offsetof(struct vmstate_disk_hdr, flags), 0);
	for (size_t i = 0; i < w->nsecs; i++) {
		const struct vmstate_section *s = &w->secs[i];

		vmstate_put_sec(buf + off, s->tag, s->version, s->flags, s->payload, s->length);
		off += VMSTATE_SEC_HDR_SIZE;
		if (s->length)
			memcpy(buf + off, s->payload, (size_t)s->length);
		off += (size_t)s->length;
	}
	/* END comes last: its payload hashes everything written before its header. */
	uint8_t end[VMSTATE_END_LEN];
	le_put64(end + offsetof(struct vmstate_disk_end, file_xxh64), XXH64(buf, off, 0));
	le_put32(end + offsetof(struct vmstate_disk_end, section_count), (uint32_t)w->nsecs);
	vmstate_put_sec(buf + off, VMSTATE_TAG_END, 1, 0, end, VMSTATE_END_LEN);
	memcpy(buf + off + VMSTATE_SEC_HDR_SIZE, end, VMSTATE_END_LEN);
	*out = buf;
	*out_len = size;
	return 0;
}

int vmstate_write_fd(const struct vmstate_writer *w, int fd)
{
	uint8_t *buf;
	size_t len, done = 0;
	int ret = vmstate_serialize(w, &buf, &len);

	if (ret)
		return ret;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			VMSTATE_LOG("write failed after %zu of %zu bytes: %s", done, len, strerror(-ret));
			break;
		}
		done += (size_t)n;
	}
	free(buf);
	return ret;
}

void vmstate_reader_fini(struct vmstate_reader *r)
{
	free(r->image);
	free(r->secs);
	memset(r, 0, sizeof(*r));
}

static bool vmstate_is_known(uint32_t tag, const uint32_t *known, size_t nknown)
{
	for (size_t i = 0; i < nknown; i++)
		if (known[i] == tag)
			return true;
	return false;
}

/* Append a section to the reader's table (at most size/24 entries, so bounded by the file). */
static int vmstate_push(struct vmstate_reader *r, size_t *cap, const struct vmstate_section *s)
{
	if (r->nsecs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct vmstate_section *p = realloc(r->secs, ncap * sizeof(*p));
		if (!p) {
			VMSTATE_LOG("out of memory for the section table");
			return -ENOMEM;
		}
		r->secs = p;
		*cap = ncap;
	}
	r->secs[r->nsecs++] = *s;
	return 0;
}

/* Check the END section whose header is at off; it must end the file. */
static int vmstate_check_end(const struct vmstate_reader *r, size_t off, const struct vmstate_section *s)
{
	const uint8_t *p = s->payload;

	if (s->version != 1 || s->flags != 0 || s->length != VMSTATE_END_LEN) {
		VMSTATE_LOG("END section at offset %zu: bad version, flags or length", off);
		return -EPROTO;
	}
	if (off + VMSTATE_SEC_HDR_SIZE + VMSTATE_END_LEN != r->size) {
		VMSTATE_LOG("%zu trailing bytes after the END section",
			    r->size - (off + VMSTATE_SEC_HDR_SIZE + VMSTATE_END_LEN));
		return -EPROTO;
	}
	if (le_get64(p) != XXH64(r->image, off, 0)) {
		VMSTATE_LOG("file checksum mismatch (END section)");
		return -EPROTO;
	}
	if (le_get32(p + 8) != r->nsecs) {
		VMSTATE_LOG("END counts %u sections, file has %zu", le_get32(p + 8), r->nsecs);
		return -EPROTO;
	}
	return 0;
}

/* Validate r->image (owned by r) and build the section table. */
static int vmstate_validate(struct vmstate_reader *r, const uint32_t *known, size_t nknown)
{
	size_t off = VMSTATE_HDR_SIZE, cap = 0;
	const uint8_t *img = r->image;
	uint32_t flags;
	int ret;

	if (r->size < VMSTATE_HDR_SIZE || memcmp(img, VMSTATE_MAGIC, 8) != 0) {
		VMSTATE_LOG("not a vmstate file (bad magic or shorter than its header)");
		return -EPROTO;
	}
	r->format_version = le_get32(img + offsetof(struct vmstate_disk_hdr, format_version));
	if (r->format_version != VMSTATE_FORMAT_VERSION) {
		VMSTATE_LOG("format version %u not supported (this build reads %u)", r->format_version,
			    VMSTATE_FORMAT_VERSION);
		return -EPROTO;
	}
	flags = le_get32(img + offsetof(struct vmstate_disk_hdr, flags));
	if (flags) {
		VMSTATE_LOG("unknown header flags 0x%x", flags);
		return -EPROTO;
	}
	for (;;) {
		struct vmstate_section s = { 0 };
		char name[5];

		/* Header first, then length against what is left: nothing is read past the image. */
		if (r->size - off < VMSTATE_SEC_HDR_SIZE) {
			VMSTATE_LOG("truncated: no END section (%zu bytes left at offset %zu)",
				    r->size - off, off);
			return -EPROTO;
		}
		s.tag = le_get32(img + off);
		s.version = le_get16(img + off + 4);
		s.flags = le_get16(img + off + 6);
		s.length = le_get64(img + off + 8);
		vmstate_tag_str(s.tag, name);
		if (s.length > r->size - off - VMSTATE_SEC_HDR_SIZE || s.length > VMSTATE_MAX_FILE) {
			VMSTATE_LOG("section '%s' at offset %zu: length %llu exceeds the file", name, off,
				    (unsigned long long)s.length);
			return -EPROTO;
		}
		s.payload = img + off + VMSTATE_SEC_HDR_SIZE;
		if (XXH64(s.payload, (size_t)s.length, 0) != le_get64(img + off + 16)) {
			VMSTATE_LOG("section '%s' at offset %zu: checksum mismatch", name, off);
			return -EPROTO;
		}
		if (s.tag == VMSTATE_TAG_END)
			return vmstate_check_end(r, off, &s);
		if (s.flags & ~VMSTATE_F_OPTIONAL) {
			VMSTATE_LOG("section '%s' at offset %zu: unknown flags 0x%x", name, off, s.flags);
			return -EPROTO;
		}
		s.known = vmstate_is_known(s.tag, known, nknown);
		if (!s.known && !(s.flags & VMSTATE_F_OPTIONAL)) {
			VMSTATE_LOG("unknown mandatory section '%s' (version %u) at offset %zu", name,
				    s.version, off);
			return -EPROTO;
		}
		ret = vmstate_push(r, &cap, &s);
		if (ret)
			return ret;
		if (!s.known)
			r->nskipped++;
		off += VMSTATE_SEC_HDR_SIZE + (size_t)s.length;
	}
}

/* Take ownership of image (malloc'd, size bytes) and validate it; frees everything on error. */
static int vmstate_adopt(struct vmstate_reader *r, uint8_t *image, size_t size, const uint32_t *known,
			 size_t nknown)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->image = image;
	r->size = size;
	if (!known) {
		known = vmstate_v1_tags;
		nknown = sizeof(vmstate_v1_tags) / sizeof(vmstate_v1_tags[0]);
	}
	ret = vmstate_validate(r, known, nknown);
	if (ret)
		vmstate_reader_fini(r);
	return ret;
}

int vmstate_parse(struct vmstate_reader *r, const void *data, size_t len, const uint32_t *known,
		  size_t nknown)
{
	uint8_t *copy;

	memset(r, 0, sizeof(*r));
	if (len > VMSTATE_MAX_FILE) {
		VMSTATE_LOG("%zu bytes exceed the %u-byte file cap", len, VMSTATE_MAX_FILE);
		return -EFBIG;
	}
	copy = malloc(len ? len : 1);
	if (!copy) {
		VMSTATE_LOG("out of memory for a %zu-byte file", len);
		return -ENOMEM;
	}
	if (len)
		memcpy(copy, data, len);
	return vmstate_adopt(r, copy, len, known, nknown);
}

int vmstate_read_fd(struct vmstate_reader *r, int fd, const uint32_t *known, size_t nknown)
{
	struct stat st;
	uint8_t *buf;
	size_t want, got = 0;

	memset(r, 0, sizeof(*r));
	if (fstat(fd, &st) < 0) {
		int ret = -errno;
		VMSTATE_LOG("fstat: %s", strerror(errno));
		return ret;
	}
	/* The cap is checked before the allocation it bounds. */
	if (st.st_size < 0 || (uint64_t)st.st_size > VMSTATE_MAX_FILE) {
		VMSTATE_LOG("file of %lld bytes exceeds the %u-byte cap", (long long)st.st_size,
			    VMSTATE_MAX_FILE);
		return -EFBIG;
	}
	/* One spare byte detects a file that grew after fstat. */
	want = (size_t)st.st_size + 1;
	buf = malloc(want);
	if (!buf) {
		VMSTATE_LOG("out of memory for a %zu-byte file", want - 1);
		return -ENOMEM;
	}
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int ret = -errno;
			VMSTATE_LOG("read: %s", strerror(errno));
			free(buf);
			return ret;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == want) {
		VMSTATE_LOG("file changed size while being read");
		free(buf);
		return -EPROTO;
	}
	return vmstate_adopt(r, buf, got, known, nknown);
}

const struct vmstate_section *vmstate_find(const struct vmstate_reader *r, uint32_t tag, size_t index)
{
	for (size_t i = 0; i < r->nsecs; i++) {
		const struct vmstate_section *s = &r->secs[i];

		if (s->known && s->tag == tag && index-- == 0)
			return s;
	}
	return NULL;
}

size_t vmstate_count(const struct vmstate_reader *r, uint32_t tag)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nsecs; i++)
		n += r->secs[i].known && r->secs[i].tag == tag;
	return n;
}
