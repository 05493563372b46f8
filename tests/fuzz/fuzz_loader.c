/* fuzz_loader.c - libFuzzer target: ELF and bzImage kernels through loader_load_kernel into 16 MiB of guest RAM, then initrd placement and boot_params. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/bootparams.h"
#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

#define FZ_MEM        (16u << 20)
#define FZ_INITRD_BIG (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gmem fz_mem;
static uint8_t fz_initrd[FZ_INITRD_BIG];
static char fz_long_cmdline[LAYOUT_CMDLINE_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (gmem_init(&fz_mem, FZ_MEM) != 0)
		abort();
	memset(fz_initrd, 0x5a, sizeof(fz_initrd));
	memset(fz_long_cmdline, 'x', sizeof(fz_long_cmdline) - 1);
	return 0;
}

static bool fz_zeroed(const struct loader_kernel *k)
{
	static const struct loader_kernel zero;

	return memcmp(k, &zero, sizeof(zero)) == 0;
}

/* What a loaded kernel must look like, whatever the image said. */
static void fz_check_kernel(const struct loader_kernel *k)
{
	if (k->kind != LOADER_ELF && k->kind != LOADER_BZIMAGE)
		abort();
	if (k->start < LAYOUT_HIMEM || k->start >= k->end || k->end > fz_mem.size)
		abort();
	if (k->entry < k->start || k->entry >= k->end)
		abort();
	if (k->has_hdr != (k->kind == LOADER_BZIMAGE))
		abort();
}

static void fz_initrd_place(const struct loader_kernel *k, size_t len, uint64_t *gpa)
{
	if (loader_load_initrd(&fz_mem, k, fz_initrd, len, gpa) != 0) {
		*gpa = 0;
		return;
	}
	/* Page aligned, above the kernel, inside RAM. */
	if ((*gpa & 4095) || *gpa < k->end || *gpa < LAYOUT_HIMEM || !gmem_ptr(&fz_mem, *gpa, len))
		abort();
}

static void fz_boot_params(const struct loader_kernel *k, const char *cmdline, uint64_t gpa,
			   uint64_t len)
{
	const struct bp_boot_params *bp = gmem_ptr(&fz_mem, LAYOUT_ZERO_PAGE, sizeof(*bp));

	if (loader_write_boot_params(&fz_mem, k, cmdline, gpa, len) != 0)
		return;
	if (bp->e820_entries != 3 || bp->hdr.cmd_line_ptr != LAYOUT_CMDLINE || bp->hdr.setup_data)
		abort();
	if (strcmp((const char *)gmem_ptr(&fz_mem, LAYOUT_CMDLINE, 1), cmdline) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct loader_kernel k;
	uint64_t gpa;

	/* Each format's own entry point on every input, whatever its magic. */
	if (loader_load_elf(&fz_mem, data, size, &k) == 0)
		fz_check_kernel(&k);
	else if (!fz_zeroed(&k))
		abort();
	if (loader_load_bzimage(&fz_mem, data, size, &k) == 0)
		fz_check_kernel(&k);
	else if (!fz_zeroed(&k))
		abort();

	if (loader_load_kernel(&fz_mem, data, size, &k) != 0)
		return 0;
	fz_check_kernel(&k);

	fz_initrd_place(&k, FZ_INITRD_BIG, &gpa);
	fz_initrd_place(&k, 4096, &gpa);
	fz_boot_params(&k, "console=ttyS0 quiet", gpa, gpa ? 4096 : 0);
	fz_boot_params(&k, fz_long_cmdline, 0, 0);
	/* An initrd that runs past the end of RAM is refused. */
	if (loader_write_boot_params(&fz_mem, &k, "", fz_mem.size - 2048, 4096) == 0)
		abort();
	if (loader_write_boot_tables(&fz_mem) != 0)
		abort();
	return 0;
}
