/* vmstate.h - the vmstate file: tagged, xxh64-checked sections with a final END section (docs/snapshot-format.md §2). */
#ifndef SNAPBOX_SNAPSHOT_VMSTATE_H
#define SNAPBOX_SNAPSHOT_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMSTATE_MAGIC          "SNAPBOXV"
#define VMSTATE_FORMAT_VERSION 1u
#define VMSTATE_HDR_SIZE       16u
#define VMSTATE_SEC_HDR_SIZE   24u
#define VMSTATE_END_LEN        12u
/* Whole-file cap: readers refuse larger files before allocating. */
#define VMSTATE_MAX_FILE       (64u << 20)

/* Section flag bit 0: a reader that does not know the tag may skip it. */
#define VMSTATE_F_OPTIONAL     0x0001u

/* A fourcc: the four characters are stored in reading order (little-endian u32). */
#define VMSTATE_TAG(a, b, c, d) \
	((uint32_t)(uint8_t)(a) | (uint32_t)(uint8_t)(b) << 8 | \
	 (uint32_t)(uint8_t)(c) << 16 | (uint32_t)(uint8_t)(d) << 24)

#define VMSTATE_TAG_CONF VMSTATE_TAG('C', 'O', 'N', 'F')
#define VMSTATE_TAG_HOST VMSTATE_TAG('H', 'O', 'S', 'T')
#define VMSTATE_TAG_VCPU VMSTATE_TAG('V', 'C', 'P', 'U')
#define VMSTATE_TAG_CLCK VMSTATE_TAG('C', 'L', 'C', 'K')
#define VMSTATE_TAG_IRQC VMSTATE_TAG('I', 'R', 'Q', 'C')
#define VMSTATE_TAG_PIT2 VMSTATE_TAG('P', 'I', 'T', '2')
#define VMSTATE_TAG_DEVS VMSTATE_TAG('D', 'E', 'V', 'S')
#define VMSTATE_TAG_MEMF VMSTATE_TAG('M', 'E', 'M', 'F')
#define VMSTATE_TAG_END  VMSTATE_TAG('E', 'N', 'D', ' ')

/* One section as held by the writer (payload owned) or reader (payload points into the file image). */
struct vmstate_section {
	uint32_t tag;
	uint16_t version;
	uint16_t flags;
	uint64_t length;
	const uint8_t *payload;
	bool known;            /* reader: false for a skipped unknown optional section */
};

/* Collects sections in memory; nothing touches a file until vmstate_write_fd. */
struct vmstate_writer {
	struct vmstate_section *secs;
	size_t nsecs;
	size_t cap;
	uint64_t bytes;        /* file size so far, header and END included */
};

/* A validated file image and its section table. */
struct vmstate_reader {
	uint8_t *image;
	size_t size;
	uint32_t format_version;
	struct vmstate_section *secs;  /* every section before END, in file order */
	size_t nsecs;
	size_t nskipped;               /* unknown optional sections (known == false) */
};

/* Empty writer. Never fails; pair with vmstate_writer_fini. */
void vmstate_writer_init(struct vmstate_writer *w);

/* Free every section the writer holds. Safe on a zeroed writer. */
void vmstate_writer_fini(struct vmstate_writer *w);

/*
 * Append a section, copying the payload (len may be 0, payload NULL then).
 * Returns 0; -EINVAL for tag END or flag bits other than OPTIONAL; -EFBIG when
 * the file would exceed VMSTATE_MAX_FILE (so a writer never produces a file
 * the reader refuses); -ENOMEM. Logs one line on error. Sections are written
 * in the order they are added.
 */
int vmstate_add(struct vmstate_writer *w, uint32_t tag, uint16_t version, uint16_t flags,
		const void *payload, size_t len);

/*
 * Serialise the whole file (header, sections, END) into a new malloc'd buffer
 * returned in *out / *out_len; the caller frees it. Returns 0 or -ENOMEM.
 */
int vmstate_serialize(const struct vmstate_writer *w, uint8_t **out, size_t *out_len);

/*
 * Write the whole file to fd from its current position (a fresh, empty file:
 * it does not truncate). Returns 0 or -errno (-EIO on a short write that
 * makes no progress); logs one line on error. Does not fsync (snapdir does).
 */
int vmstate_write_fd(const struct vmstate_writer *w, int fd);

/*
 * Read the whole file at fd (from offset 0) and validate it completely
 * (docs/snapshot-format.md §2.4). `known`/`nknown` list the tags the caller
 * understands; known == NULL means the version-1 set (CONF HOST VCPU CLCK
 * IRQC PIT2 DEVS MEMF). Unknown mandatory tags are rejected; unknown optional
 * ones are kept with known == false and counted in nskipped.
 * Returns 0, or -EPROTO for a malformed file (-EFBIG over the cap), -ENOMEM,
 * -errno from I/O; logs one line naming what is wrong. On error *r is left
 * zeroed; on success release with vmstate_reader_fini.
 */
int vmstate_read_fd(struct vmstate_reader *r, int fd, const uint32_t *known, size_t nknown);

/* As vmstate_read_fd, over a copy of the memory [data, data + len). */
int vmstate_parse(struct vmstate_reader *r, const void *data, size_t len, const uint32_t *known,
		  size_t nknown);

/* Free the image and section table. Safe on a zeroed or failed reader. */
void vmstate_reader_fini(struct vmstate_reader *r);

/*
 * The index-th (from 0) known section with this tag, or NULL. Skipped
 * optional sections are never returned: their payload has no known meaning.
 */
const struct vmstate_section *vmstate_find(const struct vmstate_reader *r, uint32_t tag,
					   size_t index);

/* Number of known sections with this tag. */
size_t vmstate_count(const struct vmstate_reader *r, uint32_t tag);

/* Write the tag's four characters and a NUL into out (non-printable bytes as '?'). */
void vmstate_tag_str(uint32_t tag, char out[5]);

#endif
