/* gmem.h - guest RAM: one anonymous mapping and the single checked gpa->host accessor. */
#ifndef SNAPBOX_KVM_GMEM_H
#define SNAPBOX_KVM_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gmem {
	uint8_t *host;   /* start of guest RAM in our address space (gpa 0) */
	uint64_t size;   /* bytes of RAM, gpa [0, size) */
	uint8_t *map;    /* the raw mapping (may start before host for alignment) */
	size_t map_len;
	bool untouched_zero; /* a never-touched page reads as zero (anonymous RAM, not a cow view) */
};

/*
 * Map `size` bytes of zeroed anonymous memory for guest RAM, 2 MiB aligned and
 * hinted for transparent huge pages. `size` must be a multiple of 4 KiB and
 * within [LAYOUT_MEM_MIN, LAYOUT_MEM_MAX]. Returns 0 or -errno (-EINVAL for a
 * bad size, -ENOMEM when the mapping fails).
 */
int gmem_init(struct gmem *m, uint64_t size);

/*
 * Guest RAM as a MAP_PRIVATE view of the first `size` bytes of fd (a
 * decompressed memory template): every page the guest never writes stays
 * shared with every other view of fd; a written page becomes private
 * (copy-on-write). Same size rules as gmem_init. fd may be closed afterwards.
 * Returns 0, -EINVAL, or -ENOMEM.
 */
int gmem_init_cow(struct gmem *m, int fd, uint64_t size);

/* Unmap guest RAM. Safe on a zeroed or already finalised struct. */
void gmem_fini(struct gmem *m);

/*
 * The one accessor for guest-physical addresses: returns a host pointer to
 * [gpa, gpa + len) when every byte lies inside RAM, else NULL. Overflow of
 * gpa + len is rejected. len == 0 is valid for any gpa <= size.
 * Every other gpa access in snapbox goes through this function.
 */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/*
 * The same bounds check as gmem_ptr without needing the mapping: true when
 * [gpa, gpa + len) lies inside RAM of m->size bytes, with no overflow. For
 * checking saved guest addresses before any RAM exists (m->host may be NULL).
 */
bool gmem_range_ok(const struct gmem *m, uint64_t gpa, uint64_t len);

/* Copy into / out of guest RAM through gmem_ptr. Return 0 or -EFAULT. */
int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, uint64_t len);
int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, uint64_t len);

#endif
