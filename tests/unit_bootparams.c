/* unit_bootparams.c - unit tests for the zero page, e820 map, cmdline, initrd fields, boot GDT/IDT and page tables. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/bootparams.h"
#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

#define BPT_MEM (64ULL << 20)

static struct gmem bpt_mem;

static void bpt_setup(void)
{
	cr_assert_eq(gmem_init(&bpt_mem, BPT_MEM), 0);
}

static void bpt_teardown(void)
{
	gmem_fini(&bpt_mem);
}

static struct bp_boot_params *bpt_zero_page(void)
{
	struct bp_boot_params *bp = gmem_ptr(&bpt_mem, LAYOUT_ZERO_PAGE, sizeof(*bp));
	cr_assert_not_null(bp);
	return bp;
}

static uint64_t bpt_rd64(uint64_t gpa)
{
	uint64_t v;
	cr_assert_eq(gmem_read(&bpt_mem, gpa, &v, sizeof(v)), 0);
	return v;
}

/* An ELF kernel descriptor: no setup header, so one gets synthesised. */
static const struct loader_kernel bpt_elf_kernel = {
	.kind = LOADER_ELF, .entry = 0x1000000, .start = 0x1000000, .end = 0x1400000,
};

/* Redirect stderr into a temp file so tests can assert on the one log line. */
static int bpt_saved_fd = -1;
static FILE *bpt_cap;

static void bpt_capture_begin(void)
{
	fflush(stderr);
	bpt_cap = tmpfile();
	cr_assert_not_null(bpt_cap);
	bpt_saved_fd = dup(2);
	dup2(fileno(bpt_cap), 2);
}

/* Returns the number of lines logged; the text is left in buf. */
static int bpt_capture_end(char *buf, size_t cap)
{
	fflush(stderr);
	dup2(bpt_saved_fd, 2);
	close(bpt_saved_fd);
	rewind(bpt_cap);
	size_t n = fread(buf, 1, cap - 1, bpt_cap);
	buf[n] = 0;
	fclose(bpt_cap);
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

TestSuite(bootparams, .init = bpt_setup, .fini = bpt_teardown);

Test(bootparams, zero_page_offsets_match_boot_protocol)
{
	cr_expect_eq(sizeof(struct bp_boot_params), 4096);
	cr_expect_eq(sizeof(struct bp_e820_entry), 20);
	cr_expect_eq(offsetof(struct bp_boot_params, ext_ramdisk_image), 0x0c0);
	cr_expect_eq(offsetof(struct bp_boot_params, ext_ramdisk_size), 0x0c4);
	cr_expect_eq(offsetof(struct bp_boot_params, ext_cmd_line_ptr), 0x0c8);
	cr_expect_eq(offsetof(struct bp_boot_params, e820_entries), 0x1e8);
	cr_expect_eq(offsetof(struct bp_boot_params, hdr), 0x1f1);
	cr_expect_eq(offsetof(struct bp_boot_params, e820_table), 0x2d0);
#define BPT_HDR(f) (offsetof(struct bp_boot_params, hdr) + offsetof(struct bp_setup_header, f))
	cr_expect_eq(BPT_HDR(setup_sects), 0x1f1);
	cr_expect_eq(BPT_HDR(boot_flag), 0x1fe);
	cr_expect_eq(BPT_HDR(header), 0x202);
	cr_expect_eq(BPT_HDR(version), 0x206);
	cr_expect_eq(BPT_HDR(type_of_loader), 0x210);
	cr_expect_eq(BPT_HDR(loadflags), 0x211);
	cr_expect_eq(BPT_HDR(code32_start), 0x214);
	cr_expect_eq(BPT_HDR(ramdisk_image), 0x218);
	cr_expect_eq(BPT_HDR(ramdisk_size), 0x21c);
	cr_expect_eq(BPT_HDR(heap_end_ptr), 0x224);
	cr_expect_eq(BPT_HDR(cmd_line_ptr), 0x228);
	cr_expect_eq(BPT_HDR(initrd_addr_max), 0x22c);
	cr_expect_eq(BPT_HDR(kernel_alignment), 0x230);
	cr_expect_eq(BPT_HDR(relocatable_kernel), 0x234);
	cr_expect_eq(BPT_HDR(xloadflags), 0x236);
	cr_expect_eq(BPT_HDR(cmdline_size), 0x238);
	cr_expect_eq(BPT_HDR(setup_data), 0x250);
	cr_expect_eq(BPT_HDR(pref_address), 0x258);
	cr_expect_eq(BPT_HDR(init_size), 0x260);
	cr_expect_eq(BPT_HDR(kernel_info_offset), 0x268);
#undef BPT_HDR
}

Test(bootparams, e820_map_for_memory_size)
{
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, "", 0, 0), 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_assert_eq(bp->e820_entries, 3);
	cr_expect_eq(bp->e820_table[0].addr, 0);
	cr_expect_eq(bp->e820_table[0].size, 0x9fc00);
	cr_expect_eq(bp->e820_table[0].type, BP_E820_RAM);
	cr_expect_eq(bp->e820_table[1].addr, 0x9fc00);
	cr_expect_eq(bp->e820_table[1].size, 0x100000 - 0x9fc00);
	cr_expect_eq(bp->e820_table[1].type, BP_E820_RESERVED);
	cr_expect_eq(bp->e820_table[2].addr, 0x100000);
	cr_expect_eq(bp->e820_table[2].size, BPT_MEM - 0x100000);
	cr_expect_eq(bp->e820_table[2].type, BP_E820_RAM);
	cr_expect_eq(bp->e820_table[3].size, 0, "no stray fourth entry");
}

Test(bootparams, e820_map_tracks_odd_memory_size)
{
	struct gmem m;
	uint64_t size = LAYOUT_MEM_MIN + 3 * 4096;
	cr_assert_eq(gmem_init(&m, size), 0);
	cr_assert_eq(loader_write_boot_params(&m, &bpt_elf_kernel, "x", 0, 0), 0);
	struct bp_boot_params *bp = gmem_ptr(&m, LAYOUT_ZERO_PAGE, sizeof(*bp));
	cr_assert_eq(bp->e820_entries, 3);
	cr_expect_eq(bp->e820_table[2].addr + bp->e820_table[2].size, size);
	gmem_fini(&m);
}

Test(bootparams, cmdline_written_and_terminated)
{
	const char *cl = "console=ttyS0 panic=-1 probe.demo=1";
	char *dst = gmem_ptr(&bpt_mem, LAYOUT_CMDLINE, 64);
	memset(dst, 'Z', 64);
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, cl, 0, 0), 0);
	cr_expect_str_eq(dst, cl);
	cr_expect_eq(dst[strlen(cl)], 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_expect_eq(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	cr_expect_eq(bp->ext_cmd_line_ptr, 0);
}

Test(bootparams, null_cmdline_is_empty)
{
	char *dst = gmem_ptr(&bpt_mem, LAYOUT_CMDLINE, 1);
	*dst = 'Z';
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, NULL, 0, 0), 0);
	cr_expect_eq(*dst, 0);
}

Test(bootparams, cmdline_at_limit_accepted_one_more_rejected)
{
	static char cl[LAYOUT_CMDLINE_MAX + 1];
	char msg[512];

	memset(cl, 'a', LAYOUT_CMDLINE_MAX - 1);
	cl[LAYOUT_CMDLINE_MAX - 1] = 0;
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, cl, 0, 0), 0);
	cr_expect_eq(((char *)gmem_ptr(&bpt_mem, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX))
		     [LAYOUT_CMDLINE_MAX - 1], 0);

	/* A refused call must leave the zero page untouched. */
	struct bp_boot_params *bp = bpt_zero_page();
	memset(bp, 0xab, sizeof(*bp));
	memset(cl, 'b', LAYOUT_CMDLINE_MAX);
	cl[LAYOUT_CMDLINE_MAX] = 0;
	bpt_capture_begin();
	int rc = loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, cl, 0, 0);
	int lines = bpt_capture_end(msg, sizeof(msg));
	cr_assert_eq(rc, -E2BIG);
	cr_expect_eq(lines, 1, "one log line, got: %s", msg);
	cr_expect_not_null(strstr(msg, "4096"), "message names the length: %s", msg);
	cr_expect_eq(((uint8_t *)bp)[0x1f1], 0xab);
}

Test(bootparams, cmdline_limited_by_kernel_cmdline_size)
{
	struct loader_kernel k = { .kind = LOADER_BZIMAGE, .has_hdr = true };
	char cl[300];

	k.hdr.header = BP_HDR_MAGIC;
	k.hdr.version = 0x020f;
	k.hdr.cmdline_size = 255;
	memset(cl, 'c', 256);
	cl[256] = 0;
	bpt_capture_begin();
	int rc = loader_write_boot_params(&bpt_mem, &k, cl, 0, 0);
	char msg[256];
	bpt_capture_end(msg, sizeof(msg));
	cr_expect_eq(rc, -E2BIG);
	cl[255] = 0;
	cr_expect_eq(loader_write_boot_params(&bpt_mem, &k, cl, 0, 0), 0);
}

Test(bootparams, elf_kernel_gets_synthesised_header)
{
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, "", 0, 0), 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_expect_eq(bp->hdr.boot_flag, 0xaa55);
	cr_expect_eq(bp->hdr.header, 0x53726448);
	cr_expect_eq(memcmp((uint8_t *)bp + 0x202, "HdrS", 4), 0);
	cr_expect_eq(bp->hdr.version, 0x020f);
	cr_expect_eq(bp->hdr.kernel_alignment, 0x1000000);
	cr_expect_eq(bp->hdr.cmdline_size, LAYOUT_CMDLINE_MAX - 1);
	cr_expect_eq(bp->hdr.initrd_addr_max, 0x7fffffff);
	cr_expect_eq(bp->hdr.type_of_loader, 0xff);
	cr_expect(bp->hdr.loadflags & BP_LOADED_HIGH);
}

Test(bootparams, bzimage_header_copied_and_loader_fields_overridden)
{
	struct loader_kernel k = { .kind = LOADER_BZIMAGE, .has_hdr = true };

	k.hdr.header = BP_HDR_MAGIC;
	k.hdr.version = 0x020c;
	k.hdr.init_size = 0x1234000;
	k.hdr.kernel_alignment = 0x200000;
	k.hdr.pref_address = 0x1000000;
	k.hdr.type_of_loader = 0x42;
	k.hdr.setup_data = 0xdead000;
	k.hdr.cmd_line_ptr = 0x90000;
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &k, "root=/dev/vda", 0, 0), 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_expect_eq(bp->hdr.version, 0x020c);
	cr_expect_eq(bp->hdr.init_size, 0x1234000);
	cr_expect_eq(bp->hdr.kernel_alignment, 0x200000);
	cr_expect_eq(bp->hdr.pref_address, 0x1000000);
	cr_expect_eq(bp->hdr.type_of_loader, 0xff);
	cr_expect_eq(bp->hdr.setup_data, 0);
	cr_expect_eq(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	cr_expect(bp->hdr.loadflags & BP_LOADED_HIGH);
}

Test(bootparams, initrd_fields_for_normal_address)
{
	uint64_t gpa = 0x3000000, size = 0x123456;
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, "", gpa, size), 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_expect_eq(bp->hdr.ramdisk_image, 0x3000000);
	cr_expect_eq(bp->hdr.ramdisk_size, 0x123456);
	cr_expect_eq(bp->ext_ramdisk_image, 0);
	cr_expect_eq(bp->ext_ramdisk_size, 0);
}

Test(bootparams, no_initrd_leaves_fields_zero)
{
	cr_assert_eq(loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, "", 0x3000000, 0), 0);
	struct bp_boot_params *bp = bpt_zero_page();
	cr_expect_eq(bp->hdr.ramdisk_image, 0);
	cr_expect_eq(bp->hdr.ramdisk_size, 0);
}

Test(bootparams, initrd_split_into_ext_fields_above_4g)
{
	struct bp_boot_params bp;
	memset(&bp, 0, sizeof(bp));
	loader_bp_set_initrd(&bp, 0x123456000ULL, 0x200001000ULL);
	cr_expect_eq(bp.hdr.ramdisk_image, 0x23456000);
	cr_expect_eq(bp.ext_ramdisk_image, 0x1);
	cr_expect_eq(bp.hdr.ramdisk_size, 0x00001000);
	cr_expect_eq(bp.ext_ramdisk_size, 0x2);
	/* And the bytes land at the protocol offsets. */
	uint32_t v;
	memcpy(&v, (uint8_t *)&bp + 0x0c0, 4);
	cr_expect_eq(v, 1);
	memcpy(&v, (uint8_t *)&bp + 0x218, 4);
	cr_expect_eq(v, 0x23456000);
}

Test(bootparams, initrd_outside_ram_rejected)
{
	char msg[256];
	bpt_capture_begin();
	int rc = loader_write_boot_params(&bpt_mem, &bpt_elf_kernel, "", BPT_MEM - 4096, 8192);
	int lines = bpt_capture_end(msg, sizeof(msg));
	cr_expect_eq(rc, -ERANGE);
	cr_expect_eq(lines, 1);
}

Test(bootparams, gdt_entries_in_memory_match_export)
{
	uint64_t want[LAYOUT_GDT_ENTRIES];
	memset(gmem_ptr(&bpt_mem, LAYOUT_IDT, 8), 0x5a, 8);
	cr_assert_eq(loader_write_boot_tables(&bpt_mem), 0);
	loader_gdt_entries(want);
	cr_expect_eq(want[0], 0);
	cr_expect_eq(want[1], 0);
	cr_expect_eq(want[LAYOUT_BOOT_CS >> 3], 0x00af9b000000ffffULL);
	cr_expect_eq(want[LAYOUT_BOOT_DS >> 3], 0x00cf93000000ffffULL);
	for (int i = 0; i < LAYOUT_GDT_ENTRIES; i++)
		cr_expect_eq(bpt_rd64(LAYOUT_GDT + 8 * i), want[i], "GDT[%d]", i);
	cr_expect_eq(bpt_rd64(LAYOUT_IDT), 0, "IDT zeroed");
}

Test(bootparams, page_table_top_levels)
{
	cr_assert_eq(loader_write_boot_tables(&bpt_mem), 0);
	cr_expect_eq(bpt_rd64(LAYOUT_PML4), LAYOUT_PDPT | 0x3);
	for (uint64_t i = 1; i < 512; i++)
		cr_expect_eq(bpt_rd64(LAYOUT_PML4 + 8 * i), 0, "PML4[%llu]", (unsigned long long)i);
	for (uint64_t i = 0; i < 4; i++)
		cr_expect_eq(bpt_rd64(LAYOUT_PDPT + 8 * i), (LAYOUT_PD + 0x1000 * i) | 0x3,
			     "PDPT[%llu]", (unsigned long long)i);
	cr_expect_eq(bpt_rd64(LAYOUT_PDPT + 8 * 4), 0);
	/* 1 GiB + 2 MiB is PD 1, entry 1. */
	cr_expect_eq(bpt_rd64(LAYOUT_PD + 0x1000 + 8), 0x40200000ULL | 0x83);
}

/* Walk the tables the way the MMU does, asserting present/PS and no user bit. */
static uint64_t bpt_walk(uint64_t va)
{
	const uint64_t addr = 0x000ffffffffff000ULL;
	uint64_t e = bpt_rd64(LAYOUT_PML4 + 8 * ((va >> 39) & 511));
	cr_assert(e & 1, "PML4E present for 0x%llx", (unsigned long long)va);
	e = bpt_rd64((e & addr) + 8 * ((va >> 30) & 511));
	cr_assert(e & 1, "PDPTE present");
	cr_assert(!(e & 0x80), "PDPTE is not a 1 GiB page");
	e = bpt_rd64((e & addr) + 8 * ((va >> 21) & 511));
	cr_assert_eq(e & 0x83, 0x83, "PDE present, writable, 2 MiB page");
	return (e & addr & ~0x1fffffULL) | (va & 0x1fffff);
}

Test(bootparams, identity_map_covers_4g)
{
	const uint64_t vas[] = { 0, 0x7000, 0x100000, 0x1000000, 0x40200000, 0x40212345,
				 0xbfffffff, 0xc0000000, 0xfffbd000, 0xffffffff };
	cr_assert_eq(loader_write_boot_tables(&bpt_mem), 0);
	for (size_t i = 0; i < sizeof(vas) / sizeof(vas[0]); i++)
		cr_expect_eq(bpt_walk(vas[i]), vas[i], "va 0x%llx", (unsigned long long)vas[i]);
}

Test(bootparams, no_page_table_entry_sets_user_bit)
{
	cr_assert_eq(loader_write_boot_tables(&bpt_mem), 0);
	cr_expect_eq(bpt_rd64(LAYOUT_PML4) & 0x4, 0);
	for (uint64_t i = 0; i < 4; i++)
		cr_expect_eq(bpt_rd64(LAYOUT_PDPT + 8 * i) & 0x4, 0);
	for (uint64_t i = 0; i < 512 * LAYOUT_PD_COUNT; i++) {
		uint64_t e = bpt_rd64(LAYOUT_PD + 8 * i);
		cr_expect_eq(e & 0x4, 0, "PD entry %llu has U set", (unsigned long long)i);
		cr_expect_eq(e, (i << 21) | 0x83, "PD entry %llu", (unsigned long long)i);
	}
}

Test(bootparams, boot_tables_refuse_unmapped_memory)
{
	struct gmem none;
	memset(&none, 0, sizeof(none));
	char msg[256];
	bpt_capture_begin();
	int rc = loader_write_boot_tables(&none);
	bpt_capture_end(msg, sizeof(msg));
	cr_expect_eq(rc, -EFAULT);
}
