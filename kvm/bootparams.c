/* bootparams.c - the zero page (setup header, cmdline, initrd, e820) and the boot GDT, IDT and identity page tables. */
#include "proto/bootparams.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

/* Every offset from Documentation/arch/x86/boot.rst, checked at compile time. */
_Static_assert(sizeof(struct bp_e820_entry) == 20, "e820 entry is 20 bytes");
_Static_assert(sizeof(struct bp_boot_params) == 4096, "zero page is 4 KiB");
_Static_assert(offsetof(struct bp_boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
_Static_assert(offsetof(struct bp_boot_params, ext_ramdisk_size) == 0x0c4, "ext_ramdisk_size");
_Static_assert(offsetof(struct bp_boot_params, ext_cmd_line_ptr) == 0x0c8, "ext_cmd_line_ptr");
_Static_assert(offsetof(struct bp_boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct bp_boot_params, hdr) == 0x1f1, "hdr");
_Static_assert(offsetof(struct bp_boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(0x2d0 + sizeof(struct bp_e820_entry) * BP_E820_MAX <= 0xcd0, "e820_table end");

#define LOADER_HDR_OFF(field, off) \
	_Static_assert(0x1f1 + offsetof(struct bp_setup_header, field) == (off), #field)
LOADER_HDR_OFF(setup_sects, 0x1f1);
LOADER_HDR_OFF(root_flags, 0x1f2);
LOADER_HDR_OFF(syssize, 0x1f4);
LOADER_HDR_OFF(ram_size, 0x1f8);
LOADER_HDR_OFF(vid_mode, 0x1fa);
LOADER_HDR_OFF(root_dev, 0x1fc);
LOADER_HDR_OFF(boot_flag, 0x1fe);
LOADER_HDR_OFF(jump, 0x200);
LOADER_HDR_OFF(header, 0x202);
LOADER_HDR_OFF(version, 0x206);
LOADER_HDR_OFF(realmode_swtch, 0x208);
LOADER_HDR_OFF(start_sys_seg, 0x20c);
LOADER_HDR_OFF(kernel_version, 0x20e);
LOADER_HDR_OFF(type_of_loader, 0x210);
LOADER_HDR_OFF(loadflags, 0x211);
LOADER_HDR_OFF(setup_move_size, 0x212);
LOADER_HDR_OFF(code32_start, 0x214);
LOADER_HDR_OFF(ramdisk_image, 0x218);
LOADER_HDR_OFF(ramdisk_size, 0x21c);
LOADER_HDR_OFF(bootsect_kludge, 0x220);
LOADER_HDR_OFF(heap_end_ptr, 0x224);
LOADER_HDR_OFF(ext_loader_ver, 0x226);
LOADER_HDR_OFF(ext_loader_type, 0x227);
LOADER_HDR_OFF(cmd_line_ptr, 0x228);
LOADER_HDR_OFF(initrd_addr_max, 0x22c);
LOADER_HDR_OFF(kernel_alignment, 0x230);
LOADER_HDR_OFF(relocatable_kernel, 0x234);
LOADER_HDR_OFF(min_alignment, 0x235);
LOADER_HDR_OFF(xloadflags, 0x236);
LOADER_HDR_OFF(cmdline_size, 0x238);
LOADER_HDR_OFF(hardware_subarch, 0x23c);
LOADER_HDR_OFF(hardware_subarch_data, 0x240);
LOADER_HDR_OFF(payload_offset, 0x248);
LOADER_HDR_OFF(payload_length, 0x24c);
LOADER_HDR_OFF(setup_data, 0x250);
LOADER_HDR_OFF(pref_address, 0x258);
LOADER_HDR_OFF(init_size, 0x260);
LOADER_HDR_OFF(handover_offset, 0x264);
LOADER_HDR_OFF(kernel_info_offset, 0x268);
_Static_assert(sizeof(struct bp_setup_header) == 0x26c - 0x1f1, "setup header ends at 0x26c");

/* The layout's low-memory boot structures must not overlap each other. */
_Static_assert(LAYOUT_GDT + 8 * LAYOUT_GDT_ENTRIES <= LAYOUT_IDT, "GDT overlaps IDT");
_Static_assert(LAYOUT_IDT + 8 <= LAYOUT_ZERO_PAGE, "IDT overlaps zero page");
_Static_assert(LAYOUT_ZERO_PAGE + 4096 <= (LAYOUT_BOOT_STACK & ~0xfffULL), "zero page overlaps stack page");
_Static_assert(LAYOUT_BOOT_STACK < LAYOUT_PML4, "stack overlaps PML4");
_Static_assert(LAYOUT_PD + 4096 * LAYOUT_PD_COUNT <= LAYOUT_CMDLINE, "PDs overlap cmdline");
_Static_assert(LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX <= LAYOUT_EBDA, "cmdline overlaps EBDA");
_Static_assert(LAYOUT_GDT_ENTRIES > (LAYOUT_BOOT_DS >> 3), "GDT too small for the boot selectors");

/* Page-table entry bits. User (bit 2) is deliberately never set. */
#define LOADER_PTE_PRESENT  0x001ULL
#define LOADER_PTE_RW       0x002ULL
#define LOADER_PTE_PS       0x080ULL  /* 2 MiB page in a PD entry */
#define LOADER_PAGE_2M      (2ULL << 20)

/* Descriptors: flat 4 GiB, present, DPL 0. Code: L=1 (64-bit), execute/read, accessed. */
#define LOADER_GDT_CODE64   0x00af9b000000ffffULL
#define LOADER_GDT_DATA     0x00cf93000000ffffULL

/* Synthesised setup header values for ELF kernels, which carry none. */
#define LOADER_ELF_KERNEL_ALIGN  0x1000000u
/*
 * Protocol 2.15 (Linux 5.5+) is the current one and covers every field we
 * fill: ext_ramdisk_* and ext_cmd_line_ptr arrived with 2.12. Claiming less
 * would tell a guest that reads hdr.version that fields we set are absent;
 * claiming more would promise fields that do not exist.
 */
#define LOADER_ELF_HDR_VERSION   0x020f

/* Little-endian 64-bit store into guest RAM that does not assume alignment. */
static void loader_put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* The boot GDT, indexed by selector >> 3. */
void loader_gdt_entries(uint64_t out[LAYOUT_GDT_ENTRIES])
{
	for (int i = 0; i < LAYOUT_GDT_ENTRIES; i++)
		out[i] = 0;
	out[LAYOUT_BOOT_CS >> 3] = LOADER_GDT_CODE64;
	out[LAYOUT_BOOT_DS >> 3] = LOADER_GDT_DATA;
}

/* Split a 64-bit initrd address and size into the low and ext_ fields. */
void loader_bp_set_initrd(struct bp_boot_params *bp, uint64_t gpa, uint64_t size)
{
	bp->hdr.ramdisk_image = (uint32_t)gpa;
	bp->hdr.ramdisk_size = (uint32_t)size;
	bp->ext_ramdisk_image = (uint32_t)(gpa >> 32);
	bp->ext_ramdisk_size = (uint32_t)(size >> 32);
}

/* Fill a setup header for a kernel that has none (ELF vmlinux, probe guest). */
static void loader_synth_hdr(struct bp_setup_header *h)
{
	memset(h, 0, sizeof(*h));
	h->boot_flag = BP_BOOT_FLAG;
	h->header = BP_HDR_MAGIC;
	h->version = LOADER_ELF_HDR_VERSION;
	h->kernel_alignment = LOADER_ELF_KERNEL_ALIGN;
	h->cmdline_size = (uint32_t)(LAYOUT_CMDLINE_MAX - 1);
	h->initrd_addr_max = LOADER_ELF_INITRD_ADDR_MAX;
}

static void loader_e820_add(struct bp_boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	struct bp_e820_entry *e = &bp->e820_table[bp->e820_entries++];

	e->addr = addr;
	e->size = size;
	e->type = type;
}

/*
 * Write the zero page at LAYOUT_ZERO_PAGE and the cmdline at LAYOUT_CMDLINE.
 * Returns 0, -E2BIG (cmdline too long), -ERANGE (initrd outside RAM) or
 * -EFAULT (RAM too small for the zero page).
 */
int loader_write_boot_params(const struct gmem *m, const struct loader_kernel *k,
			     const char *cmdline, uint64_t initrd_gpa,
			     uint64_t initrd_size)
{
	const char *cl = cmdline ? cmdline : "";
	size_t cl_len = strlen(cl);
	uint64_t cl_max = LAYOUT_CMDLINE_MAX - 1;

	if (k->has_hdr && k->hdr.cmdline_size && k->hdr.cmdline_size < cl_max)
		cl_max = k->hdr.cmdline_size;

	/* Every check comes before the first write, so a refused call leaves guest RAM untouched. */
	if (cl_len > cl_max) {
		log_msg("snapbox: kernel command line is %zu bytes, the limit is %llu\n",
			cl_len, (unsigned long long)cl_max);
		return -E2BIG;
	}
	if (initrd_size && !gmem_ptr(m, initrd_gpa, initrd_size)) {
		log_msg("snapbox: initrd [0x%llx,+0x%llx) lies outside guest RAM (%llu MiB)\n",
			(unsigned long long)initrd_gpa, (unsigned long long)initrd_size,
			(unsigned long long)(m->size >> 20));
		return -ERANGE;
	}
	struct bp_boot_params *bp = gmem_ptr(m, LAYOUT_ZERO_PAGE, sizeof(*bp));
	char *cl_dst = gmem_ptr(m, LAYOUT_CMDLINE, cl_len + 1);
	if (!bp || !cl_dst || m->size <= LAYOUT_HIMEM) {
		log_msg("snapbox: guest RAM (%llu MiB) too small for boot_params\n",
			(unsigned long long)(m->size >> 20));
		return -EFAULT;
	}

	memcpy(cl_dst, cl, cl_len + 1);

	memset(bp, 0, sizeof(*bp));
	if (k->has_hdr)
		bp->hdr = k->hdr;
	else
		loader_synth_hdr(&bp->hdr);
	bp->hdr.type_of_loader = BP_TYPE_OF_LOADER;
	bp->hdr.loadflags |= BP_LOADED_HIGH;
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->ext_cmd_line_ptr = 0;
	/* We pass no setup_data chain; never forward a pointer from the image. */
	bp->hdr.setup_data = 0;
	if (initrd_size)
		loader_bp_set_initrd(bp, initrd_gpa, initrd_size);
	else
		loader_bp_set_initrd(bp, 0, 0);

	bp->e820_entries = 0;
	loader_e820_add(bp, 0, LAYOUT_EBDA, BP_E820_RAM);
	loader_e820_add(bp, LAYOUT_EBDA, LAYOUT_HIMEM - LAYOUT_EBDA, BP_E820_RESERVED);
	loader_e820_add(bp, LAYOUT_HIMEM, m->size - LAYOUT_HIMEM, BP_E820_RAM);
	return 0;
}

/*
 * Write the boot GDT, a zeroed boot IDT and the 0..4 GiB identity map of
 * 2 MiB pages. Returns 0 or -EFAULT (RAM too small for the tables).
 */
int loader_write_boot_tables(const struct gmem *m)
{
	uint64_t gdt[LAYOUT_GDT_ENTRIES];
	uint8_t *gdt_p = gmem_ptr(m, LAYOUT_GDT, sizeof(gdt));
	uint8_t *idt_p = gmem_ptr(m, LAYOUT_IDT, 8);
	uint8_t *pml4 = gmem_ptr(m, LAYOUT_PML4, 4096);
	uint8_t *pdpt = gmem_ptr(m, LAYOUT_PDPT, 4096);
	uint8_t *pd = gmem_ptr(m, LAYOUT_PD, 4096 * LAYOUT_PD_COUNT);

	if (!gdt_p || !idt_p || !pml4 || !pdpt || !pd) {
		log_msg("snapbox: guest RAM (%llu MiB) too small for the boot tables\n",
			(unsigned long long)(m ? m->size >> 20 : 0));
		return -EFAULT;
	}

	loader_gdt_entries(gdt);
	memcpy(gdt_p, gdt, sizeof(gdt));
	memset(idt_p, 0, 8);

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	loader_put_u64(pml4, LAYOUT_PDPT | LOADER_PTE_PRESENT | LOADER_PTE_RW);
	for (uint64_t i = 0; i < LAYOUT_PD_COUNT; i++)
		loader_put_u64(pdpt + 8 * i,
			       (LAYOUT_PD + 4096 * i) | LOADER_PTE_PRESENT | LOADER_PTE_RW);
	for (uint64_t i = 0; i < 512 * LAYOUT_PD_COUNT; i++)
		loader_put_u64(pd + 8 * i, (i * LOADER_PAGE_2M) | LOADER_PTE_PRESENT |
				LOADER_PTE_RW | LOADER_PTE_PS);
	return 0;
}
