/* gmem.c - guest RAM: the 2 MiB aligned anonymous mapping and the single checked gpa->host accessor. */
#include "kvm/gmem.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "proto/layout.h"

#define GMEM_ALIGN (2ULL << 20) /* transparent huge page size on x86-64 */

/*
 * Map `size` bytes of zeroed anonymous memory for guest RAM, 2 MiB aligned and
 * hinted for THP. Returns 0, -EINVAL for a bad size, -ENOMEM when mmap fails.
 */
static int gmem_check_size(uint64_t size)
{
	if (size % 4096) {
		log_msg("snapbox: guest memory size %llu is not a multiple of 4 KiB\n",
			(unsigned long long)size);
		return -EINVAL;
	}
	if (size < LAYOUT_MEM_MIN || size > LAYOUT_MEM_MAX) {
		log_msg("snapbox: guest memory %llu MiB is outside [%llu, %llu] MiB\n",
			(unsigned long long)(size >> 20), LAYOUT_MEM_MIN >> 20,
			LAYOUT_MEM_MAX >> 20);
		return -EINVAL;
	}
	return 0;
}

int gmem_init(struct gmem *m, uint64_t size)
{
	int ret;

	memset(m, 0, sizeof(*m));
	ret = gmem_check_size(size);
	if (ret)
		return ret;

	/*
	 * Over-allocate by one huge page so a 2 MiB aligned start exists inside
	 * the mapping, then give back the slack on both sides: KVM backs guest
	 * 2 MiB pages with host huge pages only when gpa and hva agree modulo 2 MiB.
	 */
	size_t len = (size_t)size + GMEM_ALIGN;
	uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		int err = errno;
		log_msg("snapbox: cannot map %llu MiB of guest memory: %s\n",
			(unsigned long long)(size >> 20), strerror(err));
		return -ENOMEM;
	}
	uintptr_t start = ((uintptr_t)raw + GMEM_ALIGN - 1) & ~(uintptr_t)(GMEM_ALIGN - 1);
	uint8_t *host = (uint8_t *)start;
	size_t head = (size_t)(host - raw);
	size_t tail = len - head - (size_t)size;
	/* Both slack pieces are page multiples (mmap and size are), so munmap cannot fail. */
	if (head)
		munmap(raw, head);
	if (tail)
		munmap(host + size, tail);

	/* Only a hint: without THP the guest still works, just with more faults. */
	(void)madvise(host, (size_t)size, MADV_HUGEPAGE);

	m->host = host;
	m->size = size;
	m->map = host;
	m->map_len = (size_t)size;
	m->untouched_zero = true;
	return 0;
}

/* A MAP_PRIVATE view of a memory template: see gmem.h. */
int gmem_init_cow(struct gmem *m, int fd, uint64_t size)
{
	uint8_t *host;
	int ret;

	memset(m, 0, sizeof(*m));
	ret = gmem_check_size(size);
	if (ret)
		return ret;
	/* File offsets and gpas agree from 0, so a tmpfs huge page lines up with a guest one. */
	host = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (host == MAP_FAILED) {
		ret = errno;
		log_msg("snapbox: cannot map the %llu MiB memory template: %s\n",
			(unsigned long long)(size >> 20), strerror(ret));
		return -ENOMEM;
	}
	m->host = host;
	m->size = size;
	m->map = host;
	m->map_len = (size_t)size;
	return 0;
}

/* Unmap guest RAM. Safe on a zeroed or already finalised struct. */
void gmem_fini(struct gmem *m)
{
	if (m->map && m->map_len)
		munmap(m->map, m->map_len);
	memset(m, 0, sizeof(*m));
}

/*
 * The one accessor for guest-physical addresses: a host pointer to
 * [gpa, gpa + len) when it lies wholly inside RAM, else NULL. len == 0 is
 * valid for any gpa <= size.
 */
bool gmem_range_ok(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	return m && !__builtin_add_overflow(gpa, len, &end) && end <= m->size;
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	if (!m || !m->host || !gmem_range_ok(m, gpa, len))
		return NULL;
	return m->host + gpa;
}

/* Copy len bytes from src into guest RAM at gpa. Returns 0 or -EFAULT. */
int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = gmem_ptr(m, gpa, len);

	if (!dst)
		return -EFAULT;
	if (len)
		memcpy(dst, src, (size_t)len);
	return 0;
}

/* Copy len bytes of guest RAM at gpa into dst. Returns 0 or -EFAULT. */
int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *src = gmem_ptr(m, gpa, len);

	if (!src)
		return -EFAULT;
	if (len)
		memcpy(dst, src, (size_t)len);
	return 0;
}
