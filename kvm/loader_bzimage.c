/* loader_bzimage.c - bzImage loading per the Linux x86 boot protocol, kernel format dispatch and initrd placement. */
#include <errno.h>
#include "kvm/log.h"
#include <stdio.h>
#include <string.h>

#include "proto/bootparams.h"
#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

#define LOADER_BZ_MIN_LEN      0x270   /* the whole 2.15 setup header, rounded up */
#define LOADER_BZ_HDR_OFF      0x1f1
#define LOADER_BZ_JUMP_DISP    0x201   /* header ends at 0x202 + this byte */
#define LOADER_BZ_MAGIC_OFF    0x202
#define LOADER_BZ_HDR_MAX_END  (LOADER_BZ_HDR_OFF + sizeof(struct bp_setup_header))
#define LOADER_BZ_MIN_VERSION  0x020c  /* 2.12: xloadflags, so XLF_KERNEL_64 exists */
#define LOADER_BZ_ENTRY64      0x200   /* 64-bit entry, relative to the protected-mode part */
#define LOADER_PAGE            4096ULL

static double loader_mib(uint64_t bytes)
{
	return (double)bytes / (double)(1ULL << 20);
}

/*
 * Where the kernel decompresses itself (boot.rst: init_size bytes "starting at
 * the kernel runtime start address"). head_64.S picks the load address
 * rounded up to kernel_alignment when relocatable, but never below
 * LOAD_PHYSICAL_ADDR, which protocol >= 2.10 publishes as pref_address.
 * Returns 0 with *base set, or -ENOEXEC for a bad kernel_alignment.
 */
static int loader_bz_runtime_base(const struct bp_setup_header *h, uint64_t *base)
{
	uint64_t b = h->pref_address;

	if (h->relocatable_kernel) {
		uint64_t align = h->kernel_alignment;
		if (align == 0 || (align & (align - 1))) {
			log_msg("snapbox: kernel: bzImage kernel_alignment 0x%llx is not a "
				"power of two\n", (unsigned long long)align);
			return -ENOEXEC;
		}
		uint64_t at = (LAYOUT_HIMEM + align - 1) & ~(align - 1);
		if (at > b)
			b = at;
	}
	*base = b < LAYOUT_HIMEM ? LAYOUT_HIMEM : b;
	return 0;
}

/*
 * Load a bzImage: protocol >= 2.12 with XLF_KERNEL_64, protected-mode part to
 * LAYOUT_HIMEM, entry LAYOUT_HIMEM + 0x200; `end` covers the decompression
 * area. Returns 0, -ENOEXEC, -ERANGE or -EINVAL; logs one line on error.
 */
int loader_load_bzimage(const struct gmem *m, const uint8_t *img, size_t len,
			struct loader_kernel *out)
{
	struct bp_setup_header hdr;
	uint32_t magic;
	uint64_t base, decomp_end, end;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!m || !img) {
		log_msg("snapbox: kernel: no image or guest memory\n");
		return -EINVAL;
	}
	if (len < LOADER_BZ_MIN_LEN) {
		log_msg("snapbox: kernel: bzImage is truncated (%zu bytes, the setup "
			"header needs 0x%x)\n", len, LOADER_BZ_MIN_LEN);
		return -ENOEXEC;
	}
	memcpy(&magic, img + LOADER_BZ_MAGIC_OFF, sizeof(magic));
	if (magic != BP_HDR_MAGIC) {
		log_msg("snapbox: kernel: bzImage has no \"HdrS\" setup header\n");
		return -ENOEXEC;
	}
	/* Copy only the header's own bytes; what follows it in the image is setup code. */
	size_t hdr_end = LOADER_BZ_MAGIC_OFF + img[LOADER_BZ_JUMP_DISP];
	if (hdr_end > LOADER_BZ_HDR_MAX_END)
		hdr_end = LOADER_BZ_HDR_MAX_END;
	memset(&hdr, 0, sizeof(hdr));
	memcpy(&hdr, img + LOADER_BZ_HDR_OFF, hdr_end - LOADER_BZ_HDR_OFF);

	if (hdr.version < LOADER_BZ_MIN_VERSION) {
		log_msg("snapbox: kernel: bzImage boot protocol %u.%02u is older than 2.12\n",
			hdr.version >> 8, hdr.version & 0xff);
		return -ENOEXEC;
	}
	if (!(hdr.xloadflags & BP_XLF_KERNEL_64)) {
		log_msg("snapbox: kernel: bzImage has no 64-bit entry point "
			"(XLF_KERNEL_64 clear)\n");
		return -ENOEXEC;
	}
	uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4; /* 0 means 4, for history */
	uint64_t pm_off = (setup_sects + 1) * 512;
	if (pm_off >= len || len - pm_off <= LOADER_BZ_ENTRY64) {
		log_msg("snapbox: kernel: bzImage protected-mode part at 0x%llx is missing "
			"or too short for the 64-bit entry (%zu-byte file)\n",
			(unsigned long long)pm_off, len);
		return -ENOEXEC;
	}
	uint64_t payload = len - pm_off;

	rc = loader_bz_runtime_base(&hdr, &base);
	if (rc)
		return rc;
	if (__builtin_add_overflow(base, (uint64_t)hdr.init_size, &decomp_end)) {
		log_msg("snapbox: kernel: bzImage decompression area wraps the address "
			"space\n");
		return -ERANGE;
	}
	end = LAYOUT_HIMEM + payload;
	if (decomp_end > end)
		end = decomp_end;
	uint8_t *dst = gmem_ptr(m, LAYOUT_HIMEM, end - LAYOUT_HIMEM);
	if (!dst) {
		log_msg("snapbox: kernel: bzImage needs guest RAM up to 0x%llx "
			"(%.1f MiB) but guest RAM is %.1f MiB\n", (unsigned long long)end,
			loader_mib(end), loader_mib(m->size));
		return -ERANGE;
	}
	memcpy(dst, img + pm_off, payload);

	out->kind = LOADER_BZIMAGE;
	out->entry = LAYOUT_HIMEM + LOADER_BZ_ENTRY64;
	out->start = LAYOUT_HIMEM;
	out->end = end;
	out->has_hdr = true;
	out->hdr = hdr;
	return 0;
}

/*
 * Detect the kernel format by magic and load it: "\x7fELF" is an ELF vmlinux,
 * "HdrS" at 0x202 a bzImage. Returns as loader_load_elf/loader_load_bzimage,
 * or -ENOEXEC for anything else.
 */
int loader_load_kernel(const struct gmem *m, const uint8_t *img, size_t len,
		       struct loader_kernel *out)
{
	uint32_t magic;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!m || !img) {
		log_msg("snapbox: kernel: no image or guest memory\n");
		return -EINVAL;
	}
	if (len >= 4 && memcmp(img, "\x7f" "ELF", 4) == 0)
		return loader_load_elf(m, img, len, out);
	if (len >= LOADER_BZ_MAGIC_OFF + sizeof(magic)) {
		memcpy(&magic, img + LOADER_BZ_MAGIC_OFF, sizeof(magic));
		if (magic == BP_HDR_MAGIC)
			return loader_load_bzimage(m, img, len, out);
	}
	log_msg("snapbox: kernel: not an ELF vmlinux or bzImage\n");
	return -ENOEXEC;
}

/*
 * Place the initrd page-aligned as high as possible below
 * min(RAM size, initrd_addr_max + 1) and above the kernel's end.
 * Returns 0 with *gpa set (0 for an empty initrd) or -E2BIG; logs on error.
 */
int loader_load_initrd(const struct gmem *m, const struct loader_kernel *k,
		       const uint8_t *img, size_t len, uint64_t *gpa)
{
	uint64_t addr_max = LOADER_ELF_INITRD_ADDR_MAX;
	uint64_t limit, floor, at;

	*gpa = 0;
	if (len == 0)
		return 0;
	if (k->has_hdr && k->hdr.initrd_addr_max)
		addr_max = k->hdr.initrd_addr_max;
	limit = addr_max + 1 < m->size ? addr_max + 1 : m->size;
	limit &= ~(LOADER_PAGE - 1);
	floor = k->end > LAYOUT_HIMEM ? k->end : LAYOUT_HIMEM;
	floor = (floor + LOADER_PAGE - 1) & ~(LOADER_PAGE - 1);

	if (limit <= floor || limit - floor < len) {
		log_msg("snapbox: initrd of %.1f MiB does not fit in guest RAM above the "
			"kernel (%.1f MiB free)\n", loader_mib(len),
			loader_mib(limit > floor ? limit - floor : 0));
		return -E2BIG;
	}
	at = (limit - len) & ~(LOADER_PAGE - 1);
	/* Cannot fail: [at, at + len) lies inside [floor, limit), which lies inside RAM. */
	if (gmem_write(m, at, img, len) != 0) {
		log_msg("snapbox: initrd at 0x%llx lies outside guest RAM\n",
			(unsigned long long)at);
		return -E2BIG;
	}
	*gpa = at;
	return 0;
}
