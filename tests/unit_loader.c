/* unit_loader.c - unit tests for guest memory bounds, the ELF and bzImage loaders (on images built here) and initrd placement. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/bootparams.h"
#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

#define LT_MEM (64ULL << 20)

static struct gmem lt_mem;

static void lt_setup(void)
{
	cr_assert_eq(gmem_init(&lt_mem, LT_MEM), 0);
}

static void lt_teardown(void)
{
	gmem_fini(&lt_mem);
}

/* Run a call with stderr captured; returns the number of lines it logged. */
static int lt_saved_fd = -1;
static FILE *lt_cap;
static char lt_msg[1024];

static void lt_capture_begin(void)
{
	fflush(stderr);
	lt_cap = tmpfile();
	cr_assert_not_null(lt_cap);
	lt_saved_fd = dup(2);
	dup2(fileno(lt_cap), 2);
}

static int lt_capture_end(void)
{
	fflush(stderr);
	dup2(lt_saved_fd, 2);
	close(lt_saved_fd);
	rewind(lt_cap);
	size_t n = fread(lt_msg, 1, sizeof(lt_msg) - 1, lt_cap);
	lt_msg[n] = 0;
	fclose(lt_cap);
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += lt_msg[i] == '\n';
	return lines;
}

/* ---- gmem ---------------------------------------------------------------- */

TestSuite(gmem, .init = lt_setup, .fini = lt_teardown);

Test(gmem, init_rejects_bad_sizes)
{
	const uint64_t bad[] = { 0, LAYOUT_MEM_MIN + 1, LAYOUT_MEM_MIN - 4096,
				 LAYOUT_MEM_MAX + 4096, UINT64_MAX & ~4095ULL };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gmem m;
		lt_capture_begin();
		int rc = gmem_init(&m, bad[i]);
		int lines = lt_capture_end();
		cr_expect_eq(rc, -EINVAL, "size %llu", (unsigned long long)bad[i]);
		cr_expect_eq(lines, 1, "one log line: %s", lt_msg);
		cr_expect_null(m.host);
	}
}

Test(gmem, init_is_2m_aligned_zeroed_and_fini_is_idempotent)
{
	cr_expect_eq((uintptr_t)lt_mem.host % (2u << 20), 0);
	cr_expect_eq(lt_mem.size, LT_MEM);
	cr_expect_eq(lt_mem.host[0], 0);
	cr_expect_eq(lt_mem.host[LT_MEM - 1], 0);
	struct gmem m;
	cr_assert_eq(gmem_init(&m, LAYOUT_MEM_MAX), 0, "3 GiB maps (NORESERVE)");
	gmem_fini(&m);
	gmem_fini(&m);
	cr_expect_null(gmem_ptr(&m, 0, 1));
}

Test(gmem, ptr_bounds_and_overflow)
{
	const struct gmem *m = &lt_mem;
	cr_expect_eq(gmem_ptr(m, 0, LT_MEM), m->host);
	cr_expect_eq(gmem_ptr(m, LT_MEM - 1, 1), m->host + LT_MEM - 1, "last byte");
	cr_expect_eq(gmem_ptr(m, LT_MEM, 0), m->host + LT_MEM, "len 0 at size");
	cr_expect_null(gmem_ptr(m, LT_MEM + 1, 0), "len 0 past size");
	cr_expect_null(gmem_ptr(m, LT_MEM - 1, 2), "one byte past the end");
	cr_expect_null(gmem_ptr(m, LT_MEM, 1));
	cr_expect_null(gmem_ptr(m, 0, LT_MEM + 1));
	cr_expect_null(gmem_ptr(m, UINT64_MAX, 2), "gpa + len wraps");
	cr_expect_null(gmem_ptr(m, 4096, UINT64_MAX - 4095), "gpa + len wraps to 0");
	cr_expect_null(gmem_ptr(m, UINT64_MAX, 0));
	cr_expect_null(gmem_ptr(NULL, 0, 0));
}

Test(gmem, read_write_roundtrip_and_efault)
{
	const char msg[] = "hello guest";
	char back[sizeof(msg)];
	cr_assert_eq(gmem_write(&lt_mem, 0x123456, msg, sizeof(msg)), 0);
	cr_assert_eq(gmem_read(&lt_mem, 0x123456, back, sizeof(back)), 0);
	cr_expect_str_eq(back, msg);
	cr_expect_eq(gmem_write(&lt_mem, LT_MEM - 4, msg, sizeof(msg)), -EFAULT);
	cr_expect_eq(gmem_read(&lt_mem, UINT64_MAX - 2, back, sizeof(back)), -EFAULT);
	cr_expect_eq(gmem_write(&lt_mem, LT_MEM, msg, 0), 0);
}

/* ---- ELF ----------------------------------------------------------------- */

/*
 * A two-segment ELF built by hand: segment 0 at 0x200000 with 0x100 file
 * bytes and 0x2000 in memory (bss), a PT_NOTE, and segment 2 at 0x400000.
 */
#define LT_ELF_LEN   0x3000
#define LT_SEG0_PA   0x200000ULL
#define LT_SEG0_FILE 0x100
#define LT_SEG0_MEM  0x2000
#define LT_SEG2_PA   0x400000ULL
#define LT_ENTRY     (LT_SEG0_PA + 0x10)

static uint8_t lt_elf[LT_ELF_LEN];

static Elf64_Ehdr *lt_eh(void)
{
	return (Elf64_Ehdr *)lt_elf;
}

static Elf64_Phdr *lt_ph(int i)
{
	return (Elf64_Phdr *)(lt_elf + sizeof(Elf64_Ehdr)) + i;
}

static void lt_build_elf(void)
{
	memset(lt_elf, 0, sizeof(lt_elf));
	Elf64_Ehdr *eh = lt_eh();
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = LT_ENTRY;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 3;

	*lt_ph(0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0x1000,
		.p_vaddr = 0xffffffff80200000ULL, .p_paddr = LT_SEG0_PA,
		.p_filesz = LT_SEG0_FILE, .p_memsz = LT_SEG0_MEM, .p_align = 0x1000 };
	*lt_ph(1) = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 0x2000, .p_filesz = 0x10,
		.p_memsz = 0x10, .p_paddr = 0 };
	*lt_ph(2) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 0x2000,
		.p_vaddr = 0xffffffff80400000ULL, .p_paddr = LT_SEG2_PA,
		.p_filesz = 0x20, .p_memsz = 0x20, .p_align = 0x1000 };
	for (int i = 0; i < LT_SEG0_FILE; i++)
		lt_elf[0x1000 + i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 0x20; i++)
		lt_elf[0x2000 + i] = (uint8_t)(0xf0 ^ i);
}

/* Load the (possibly mutilated) test ELF; returns rc and checks exactly one log line on error. */
static int lt_load_elf(size_t len)
{
	struct loader_kernel k;
	lt_capture_begin();
	int rc = loader_load_elf(&lt_mem, lt_elf, len, &k);
	int lines = lt_capture_end();
	cr_expect_eq(lines, rc ? 1 : 0, "log lines for rc %d: %s", rc, lt_msg);
	return rc;
}

TestSuite(loader_elf, .init = lt_setup, .fini = lt_teardown);

Test(loader_elf, good_image_lands_at_paddr_with_bss_zeroed)
{
	struct loader_kernel k;
	lt_build_elf();
	memset(gmem_ptr(&lt_mem, LT_SEG0_PA, LT_SEG0_MEM), 0xcc, LT_SEG0_MEM);
	cr_assert_eq(loader_load_kernel(&lt_mem, lt_elf, sizeof(lt_elf), &k), 0);
	cr_expect_eq(k.kind, LOADER_ELF);
	cr_expect_eq(k.entry, LT_ENTRY);
	cr_expect_eq(k.start, LT_SEG0_PA);
	cr_expect_eq(k.end, LT_SEG2_PA + 0x20);
	cr_expect_not(k.has_hdr);
	const uint8_t *s0 = gmem_ptr(&lt_mem, LT_SEG0_PA, LT_SEG0_MEM);
	cr_expect_eq(memcmp(s0, lt_elf + 0x1000, LT_SEG0_FILE), 0);
	for (int i = LT_SEG0_FILE; i < LT_SEG0_MEM; i++)
		cr_assert_eq(s0[i], 0, "bss byte %#x not zeroed", i);
	cr_expect_eq(memcmp(gmem_ptr(&lt_mem, LT_SEG2_PA, 0x20), lt_elf + 0x2000, 0x20), 0);
	/* The PT_NOTE (p_paddr 0) was not loaded over low memory. */
	cr_expect_eq(*(uint8_t *)gmem_ptr(&lt_mem, 0, 1), 0);
}

Test(loader_elf, segment_beyond_ram)
{
	lt_build_elf();
	lt_ph(2)->p_paddr = LT_MEM - 0x10;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ERANGE);
	cr_expect_not_null(strstr(lt_msg, "outside guest RAM (64 MiB)"), "%s", lt_msg);
}

Test(loader_elf, paddr_plus_memsz_overflows)
{
	lt_build_elf();
	lt_ph(0)->p_paddr = UINT64_MAX - 0x10;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ERANGE);
	lt_build_elf();
	lt_ph(2)->p_memsz = UINT64_MAX;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ERANGE);
}

Test(loader_elf, file_range_beyond_file)
{
	lt_build_elf();
	lt_ph(2)->p_filesz = 0x1001;
	lt_ph(2)->p_memsz = 0x1001;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_ph(0)->p_offset = UINT64_MAX - 0x80; /* offset + filesz wraps */
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	cr_expect_eq(lt_load_elf(0x2010), -ENOEXEC, "file cut inside segment 2");
}

Test(loader_elf, filesz_larger_than_memsz)
{
	lt_build_elf();
	lt_ph(0)->p_memsz = LT_SEG0_FILE - 1;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
}

Test(loader_elf, segment_below_1m_refused_and_ram_untouched)
{
	lt_build_elf();
	lt_ph(2)->p_paddr = LAYOUT_ZERO_PAGE;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ERANGE);
	cr_expect_eq(*(uint8_t *)gmem_ptr(&lt_mem, LAYOUT_ZERO_PAGE, 1), 0);
	/* Validation precedes copying: the good segment 0 was not written either. */
	cr_expect_eq(*(uint8_t *)gmem_ptr(&lt_mem, LT_SEG0_PA, 1), 0);
}

Test(loader_elf, wrong_class_machine_type_encoding)
{
	lt_build_elf();
	lt_eh()->e_ident[EI_CLASS] = ELFCLASS32;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_machine = EM_386;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_machine = EM_AARCH64;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_type = ET_DYN;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_ident[EI_DATA] = ELFDATA2MSB;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
}

Test(loader_elf, truncated_headers)
{
	lt_build_elf();
	cr_expect_eq(lt_load_elf(10), -ENOEXEC, "shorter than e_ident");
	cr_expect_eq(lt_load_elf(sizeof(Elf64_Ehdr) - 1), -ENOEXEC, "ehdr cut");
	cr_expect_eq(lt_load_elf(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr)), -ENOEXEC,
		     "phdr table cut");
	lt_build_elf();
	lt_eh()->e_phoff = LT_ELF_LEN - 8;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC, "phdr table past the end");
	lt_build_elf();
	lt_eh()->e_phentsize = 32;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC, "bogus phentsize");
}

Test(loader_elf, no_pt_load)
{
	lt_build_elf();
	lt_ph(0)->p_type = PT_NOTE;
	lt_ph(2)->p_type = PT_GNU_STACK;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	cr_expect_not_null(strstr(lt_msg, "no PT_LOAD"), "%s", lt_msg);
	lt_build_elf();
	lt_eh()->e_phnum = 0;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
}

Test(loader_elf, entry_outside_segments)
{
	lt_build_elf();
	lt_eh()->e_entry = 0x300000;
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_entry = LT_SEG0_PA + LT_SEG0_MEM; /* one past the end */
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), -ENOEXEC);
	lt_build_elf();
	lt_eh()->e_entry = LT_SEG0_PA + LT_SEG0_MEM - 1; /* inside bss still counts */
	cr_expect_eq(lt_load_elf(sizeof(lt_elf)), 0);
}

/* ---- bzImage ------------------------------------------------------------- */

#define LT_BZ_SETUP_SECTS 1
#define LT_BZ_PM_OFF      ((LT_BZ_SETUP_SECTS + 1) * 512)
#define LT_BZ_PAYLOAD     0x1000
#define LT_BZ_LEN         (LT_BZ_PM_OFF + LT_BZ_PAYLOAD)

static uint8_t lt_bz[5 * 512 + LT_BZ_PAYLOAD];

static struct bp_setup_header *lt_bz_hdr(void)
{
	return (struct bp_setup_header *)(lt_bz + 0x1f1);
}

/* A header-only bzImage: valid 2.15 setup header, a patterned "kernel". */
static void lt_build_bz(void)
{
	memset(lt_bz, 0, sizeof(lt_bz));
	struct bp_setup_header *h = lt_bz_hdr();
	h->setup_sects = LT_BZ_SETUP_SECTS;
	h->boot_flag = BP_BOOT_FLAG;
	h->jump = 0x6aeb;           /* jmp short to 0x26c: the header ends there */
	h->header = BP_HDR_MAGIC;
	h->version = 0x020f;
	h->loadflags = BP_LOADED_HIGH;
	h->initrd_addr_max = 0x7fffffff;
	h->kernel_alignment = 0x200000;
	h->relocatable_kernel = 1;
	h->xloadflags = BP_XLF_KERNEL_64;
	h->cmdline_size = 2047;
	h->pref_address = 0x1000000;
	h->init_size = 0x200000;
	h->kernel_info_offset = 0x1234;
	for (int i = 0; i < LT_BZ_PAYLOAD; i++)
		lt_bz[LT_BZ_PM_OFF + i] = (uint8_t)(i ^ 0x5a);
}

static int lt_load_bz(size_t len)
{
	struct loader_kernel k;
	lt_capture_begin();
	int rc = loader_load_kernel(&lt_mem, lt_bz, len, &k);
	int lines = lt_capture_end();
	cr_expect_eq(lines, rc ? 1 : 0, "log lines for rc %d: %s", rc, lt_msg);
	return rc;
}

TestSuite(loader_bzimage, .init = lt_setup, .fini = lt_teardown);

Test(loader_bzimage, header_only_image_accepted)
{
	struct loader_kernel k;
	lt_build_bz();
	cr_assert_eq(loader_load_kernel(&lt_mem, lt_bz, LT_BZ_LEN, &k), 0);
	cr_expect_eq(k.kind, LOADER_BZIMAGE);
	cr_expect_eq(k.entry, 0x100200);
	cr_expect_eq(k.start, 0x100000);
	/* Decompresses at max(pref_address, align(1 MiB)) = 16 MiB, init_size bytes. */
	cr_expect_eq(k.end, 0x1000000 + 0x200000);
	cr_expect(k.has_hdr);
	cr_expect_eq(k.hdr.version, 0x020f);
	cr_expect_eq(k.hdr.init_size, 0x200000);
	cr_expect_eq(k.hdr.kernel_info_offset, 0x1234);
	cr_expect_eq(memcmp(gmem_ptr(&lt_mem, 0x100000, LT_BZ_PAYLOAD), lt_bz + LT_BZ_PM_OFF,
			    LT_BZ_PAYLOAD), 0);
}

Test(loader_bzimage, end_covers_payload_when_larger_than_init_area)
{
	struct loader_kernel k;
	lt_build_bz();
	lt_bz_hdr()->relocatable_kernel = 0;
	lt_bz_hdr()->pref_address = 0x100000;
	lt_bz_hdr()->init_size = 0x800;
	cr_assert_eq(loader_load_bzimage(&lt_mem, lt_bz, LT_BZ_LEN, &k), 0);
	cr_expect_eq(k.end, 0x100000 + LT_BZ_PAYLOAD);
}

Test(loader_bzimage, setup_sects_zero_means_four)
{
	struct loader_kernel k;
	lt_build_bz();
	lt_bz_hdr()->setup_sects = 0;
	memset(lt_bz + 5 * 512, 0xe7, LT_BZ_PAYLOAD);
	cr_assert_eq(loader_load_bzimage(&lt_mem, lt_bz, sizeof(lt_bz), &k), 0);
	cr_expect_eq(*(uint8_t *)gmem_ptr(&lt_mem, 0x100000, 1), 0xe7);
	cr_expect_eq(k.end, 0x1200000);
}

Test(loader_bzimage, header_copy_stops_at_header_end)
{
	struct loader_kernel k;
	lt_build_bz();
	lt_bz_hdr()->jump = 0x66eb; /* header ends at 0x268: kernel_info_offset is setup code */
	cr_assert_eq(loader_load_bzimage(&lt_mem, lt_bz, LT_BZ_LEN, &k), 0);
	cr_expect_eq(k.hdr.kernel_info_offset, 0);
	cr_expect_eq(k.hdr.init_size, 0x200000);
}

Test(loader_bzimage, old_protocol_rejected)
{
	lt_build_bz();
	lt_bz_hdr()->version = 0x020b;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ENOEXEC);
	cr_expect_not_null(strstr(lt_msg, "2.11"), "%s", lt_msg);
}

Test(loader_bzimage, no_64bit_entry_rejected)
{
	lt_build_bz();
	lt_bz_hdr()->xloadflags = 0;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ENOEXEC);
}

Test(loader_bzimage, truncated_rejected)
{
	lt_build_bz();
	cr_expect_eq(lt_load_bz(0x26f), -ENOEXEC, "header cut");
	cr_expect_eq(lt_load_bz(LT_BZ_PM_OFF), -ENOEXEC, "no protected-mode part");
	cr_expect_eq(lt_load_bz(LT_BZ_PM_OFF + 0x200), -ENOEXEC, "no 64-bit entry");
	lt_bz_hdr()->setup_sects = 0xff;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ENOEXEC, "setup_sects past the file");
}

Test(loader_bzimage, bad_alignment_rejected)
{
	lt_build_bz();
	lt_bz_hdr()->kernel_alignment = 0x300000;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ENOEXEC);
}

Test(loader_bzimage, init_size_beyond_ram_rejected)
{
	lt_build_bz();
	lt_bz_hdr()->init_size = (uint32_t)LT_MEM;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ERANGE);
	lt_build_bz();
	lt_bz_hdr()->pref_address = UINT64_MAX - 0x1000;
	cr_expect_eq(lt_load_bz(LT_BZ_LEN), -ERANGE, "pref_address + init_size wraps");
}

Test(loader_bzimage, not_a_kernel_rejected)
{
	struct loader_kernel k;
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 31 + 3);
	lt_capture_begin();
	int rc = loader_load_kernel(&lt_mem, junk, sizeof(junk), &k);
	int lines = lt_capture_end();
	cr_expect_eq(rc, -ENOEXEC);
	cr_expect_eq(lines, 1);
	cr_expect_not_null(strstr(lt_msg, "not an ELF vmlinux or bzImage"), "%s", lt_msg);
	lt_capture_begin();
	rc = loader_load_kernel(&lt_mem, junk, 0, &k);
	lt_capture_end();
	cr_expect_eq(rc, -ENOEXEC);
}

/* ---- initrd -------------------------------------------------------------- */

TestSuite(loader_initrd, .init = lt_setup, .fini = lt_teardown);

static const struct loader_kernel lt_elf_k = {
	.kind = LOADER_ELF, .entry = 0x1000000, .start = 0x1000000, .end = 0x1801234,
};

Test(loader_initrd, placed_high_page_aligned_above_kernel)
{
	size_t len = (1u << 20) + 5;
	uint8_t *rd = malloc(len);
	uint64_t gpa = 1;
	for (size_t i = 0; i < len; i++)
		rd[i] = (uint8_t)(i * 13);
	cr_assert_eq(loader_load_initrd(&lt_mem, &lt_elf_k, rd, len, &gpa), 0);
	cr_expect_eq(gpa % 4096, 0);
	cr_expect_leq(gpa + len, LT_MEM);
	cr_expect_geq(gpa, lt_elf_k.end);
	cr_expect_eq(gpa, (LT_MEM - len) & ~4095ULL, "as high as possible");
	cr_expect_eq(memcmp(gmem_ptr(&lt_mem, gpa, len), rd, len), 0);
	free(rd);
}

Test(loader_initrd, respects_initrd_addr_max)
{
	struct loader_kernel k = { .kind = LOADER_BZIMAGE, .start = 0x100000, .end = 0x1200000,
				   .has_hdr = true };
	uint8_t rd[8192] = { 1 };
	uint64_t gpa;
	k.hdr.initrd_addr_max = 0x1ffffff;
	cr_assert_eq(loader_load_initrd(&lt_mem, &k, rd, sizeof(rd), &gpa), 0);
	cr_expect_eq(gpa, 0x2000000 - sizeof(rd));
	cr_expect_leq(gpa + sizeof(rd) - 1, k.hdr.initrd_addr_max);
}

Test(loader_initrd, exact_fit_and_one_page_too_many)
{
	/* Kernel end rounds up to 0x1802000; RAM above it is LT_MEM - 0x1802000. */
	size_t fit = LT_MEM - 0x1802000;
	uint8_t *rd = calloc(1, fit + 1);
	uint64_t gpa;
	cr_assert_eq(loader_load_initrd(&lt_mem, &lt_elf_k, rd, fit, &gpa), 0);
	cr_expect_eq(gpa, 0x1802000);
	lt_capture_begin();
	int rc = loader_load_initrd(&lt_mem, &lt_elf_k, rd, fit + 1, &gpa);
	int lines = lt_capture_end();
	cr_expect_eq(rc, -E2BIG);
	cr_expect_eq(lines, 1);
	cr_expect_eq(gpa, 0);
	free(rd);
}

Test(loader_initrd, too_big_is_e2big_with_sizes)
{
	size_t len = 80u << 20;
	uint8_t *rd = calloc(1, len);
	uint64_t gpa;
	lt_capture_begin();
	int rc = loader_load_initrd(&lt_mem, &lt_elf_k, rd, len, &gpa);
	int lines = lt_capture_end();
	cr_expect_eq(rc, -E2BIG);
	cr_expect_eq(lines, 1);
	cr_expect_not_null(strstr(lt_msg, "initrd of 80.0 MiB does not fit"), "%s", lt_msg);
	cr_expect_not_null(strstr(lt_msg, "(40.0 MiB free)"), "%s", lt_msg);
	free(rd);
}

Test(loader_initrd, empty_initrd_places_nothing)
{
	uint64_t gpa = 7;
	cr_expect_eq(loader_load_initrd(&lt_mem, &lt_elf_k, NULL, 0, &gpa), 0);
	cr_expect_eq(gpa, 0);
}
