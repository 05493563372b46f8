/* loader.h - kernel loading (ELF vmlinux via libelf, bzImage), initrd placement, boot_params and boot page tables. */
#ifndef SNAPBOX_KVM_LOADER_H
#define SNAPBOX_KVM_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/bootparams.h"
#include "kvm/gmem.h"
#include "proto/layout.h"

/* initrd_addr_max assumed for ELF kernels, which carry no setup header. */
#define LOADER_ELF_INITRD_ADDR_MAX 0x7fffffffu

enum loader_kind {
	LOADER_ELF = 1,
	LOADER_BZIMAGE = 2,
};

struct loader_kernel {
	enum loader_kind kind;
	uint64_t entry;          /* gpa of the 64-bit entry point */
	uint64_t start, end;     /* gpa range the kernel image occupies (end exclusive, incl. bss) */
	bool has_hdr;            /* bzImage: hdr is the image's setup header */
	struct bp_setup_header hdr;
};

/*
 * Load a kernel image held in memory (img, len) into guest RAM, detecting ELF
 * by its magic and bzImage by "HdrS". ELF: every PT_LOAD goes to p_paddr,
 * p_filesz bytes copied and the rest of p_memsz zeroed; a segment outside RAM,
 * below LAYOUT_HIMEM, or reaching beyond the file is refused. bzImage: needs
 * boot protocol >= 2.12 with XLF_KERNEL_64; the protected-mode part goes to
 * LAYOUT_HIMEM and entry is LAYOUT_HIMEM + 0x200.
 * Returns 0, -ENOEXEC (not ELF/bzImage, or wrong class/machine/protocol),
 * -ERANGE (does not fit in RAM or outside allowed range), -EINVAL.
 * Logs one line naming the problem.
 */
int loader_load_kernel(const struct gmem *m, const uint8_t *img, size_t len,
		       struct loader_kernel *out);

/*
 * The two halves of loader_load_kernel, for callers (and tests) that already
 * know the format. Same rules, return values and logging as above; on error
 * *out is left zeroed.
 */
int loader_load_elf(const struct gmem *m, const uint8_t *img, size_t len,
		    struct loader_kernel *out);
int loader_load_bzimage(const struct gmem *m, const uint8_t *img, size_t len,
			struct loader_kernel *out);

/*
 * Place an initrd page-aligned as high as possible below
 * min(mem size, initrd_addr_max + 1) and above the kernel's end.
 * initrd_addr_max comes from the bzImage header, or 0x7fffffff for ELF.
 * Returns 0 with *gpa set, or -E2BIG when it cannot fit (message names sizes).
 * len == 0 places nothing and sets *gpa = 0.
 */
int loader_load_initrd(const struct gmem *m, const struct loader_kernel *k,
		       const uint8_t *img, size_t len, uint64_t *gpa);

/*
 * Write boot_params at LAYOUT_ZERO_PAGE: the bzImage setup header (or a
 * synthesised one for ELF), type_of_loader, cmdline at LAYOUT_CMDLINE,
 * initrd address/size including the ext_ fields, and the e820 map:
 * [0, EBDA) RAM, [EBDA, 1 MiB) reserved, [1 MiB, mem size) RAM.
 * cmdline longer than LAYOUT_CMDLINE_MAX-1 (or the kernel's cmdline_size)
 * gives -E2BIG.
 */
int loader_write_boot_params(const struct gmem *m, const struct loader_kernel *k,
			     const char *cmdline, uint64_t initrd_gpa,
			     uint64_t initrd_size);

/*
 * Store an initrd's 64-bit address and size into a zero page: the low 32 bits
 * in hdr.ramdisk_image/ramdisk_size, the high 32 bits in ext_ramdisk_image/
 * ext_ramdisk_size. Pure field packing; no checks (loader_write_boot_params
 * checks the range against RAM before calling it).
 */
void loader_bp_set_initrd(struct bp_boot_params *bp, uint64_t gpa, uint64_t size);

/*
 * Write the boot GDT at LAYOUT_GDT (null, null, code64 at LAYOUT_BOOT_CS,
 * data at LAYOUT_BOOT_DS), zero the boot IDT, and identity-map 0..4 GiB with
 * 2 MiB pages (PML4 -> PDPT -> 4 PDs). Returns 0 or -EFAULT.
 */
int loader_write_boot_tables(const struct gmem *m);

/*
 * The boot GDT descriptors exactly as loader_write_boot_tables writes them,
 * indexed by selector >> 3 (out[LAYOUT_BOOT_CS >> 3] is the 64-bit code
 * segment, out[LAYOUT_BOOT_DS >> 3] the data segment), so vCPU setup can
 * derive the hidden segment-register state from the same values.
 */
void loader_gdt_entries(uint64_t out[LAYOUT_GDT_ENTRIES]);

#endif
