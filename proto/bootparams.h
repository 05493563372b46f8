/* bootparams.h - the Linux x86 boot protocol's zero page and setup header, byte for byte. */
#ifndef SNAPBOX_PROTO_BOOTPARAMS_H
#define SNAPBOX_PROTO_BOOTPARAMS_H

#include <stddef.h>
#include <stdint.h>

/* Documentation/arch/x86/boot.rst; offsets are asserted in bootparams.c and tested. */
#define BP_HDR_MAGIC        0x53726448u   /* "HdrS" at 0x202 */
#define BP_BOOT_FLAG        0xaa55
#define BP_LOADED_HIGH      0x01          /* loadflags */
#define BP_CAN_USE_HEAP     0x80
#define BP_XLF_KERNEL_64    0x0001        /* xloadflags: has the 64-bit entry at +0x200 */
#define BP_E820_MAX         128
#define BP_E820_RAM         1
#define BP_E820_RESERVED    2
#define BP_TYPE_OF_LOADER   0xff          /* "undefined" boot loader id */

struct bp_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct bp_setup_header {
	uint8_t  setup_sects;           /* 0x1f1 */
	uint16_t root_flags;            /* 0x1f2 */
	uint32_t syssize;               /* 0x1f4 */
	uint16_t ram_size;              /* 0x1f8 */
	uint16_t vid_mode;              /* 0x1fa */
	uint16_t root_dev;              /* 0x1fc */
	uint16_t boot_flag;             /* 0x1fe */
	uint16_t jump;                  /* 0x200 */
	uint32_t header;                /* 0x202 */
	uint16_t version;               /* 0x206 */
	uint32_t realmode_swtch;        /* 0x208 */
	uint16_t start_sys_seg;         /* 0x20c */
	uint16_t kernel_version;        /* 0x20e */
	uint8_t  type_of_loader;        /* 0x210 */
	uint8_t  loadflags;             /* 0x211 */
	uint16_t setup_move_size;       /* 0x212 */
	uint32_t code32_start;          /* 0x214 */
	uint32_t ramdisk_image;         /* 0x218 */
	uint32_t ramdisk_size;          /* 0x21c */
	uint32_t bootsect_kludge;       /* 0x220 */
	uint16_t heap_end_ptr;          /* 0x224 */
	uint8_t  ext_loader_ver;        /* 0x226 */
	uint8_t  ext_loader_type;       /* 0x227 */
	uint32_t cmd_line_ptr;          /* 0x228 */
	uint32_t initrd_addr_max;       /* 0x22c */
	uint32_t kernel_alignment;      /* 0x230 */
	uint8_t  relocatable_kernel;    /* 0x234 */
	uint8_t  min_alignment;         /* 0x235 */
	uint16_t xloadflags;            /* 0x236 */
	uint32_t cmdline_size;          /* 0x238 */
	uint32_t hardware_subarch;      /* 0x23c */
	uint64_t hardware_subarch_data; /* 0x240 */
	uint32_t payload_offset;        /* 0x248 */
	uint32_t payload_length;        /* 0x24c */
	uint64_t setup_data;            /* 0x250 */
	uint64_t pref_address;          /* 0x258 */
	uint32_t init_size;             /* 0x260 */
	uint32_t handover_offset;       /* 0x264 */
	uint32_t kernel_info_offset;    /* 0x268 */
} __attribute__((packed));

/* The 4 KiB zero page. Regions we never fill are opaque padding. */
struct bp_boot_params {
	uint8_t  _pad0[0x0c0];
	uint32_t ext_ramdisk_image;     /* 0x0c0 */
	uint32_t ext_ramdisk_size;      /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;      /* 0x0c8 */
	uint8_t  _pad1[0x1e8 - 0x0cc];
	uint8_t  e820_entries;          /* 0x1e8 */
	uint8_t  _pad2[0x1f1 - 0x1e9];
	struct bp_setup_header hdr;     /* 0x1f1 */
	uint8_t  _pad3[0x2d0 - 0x26c];
	struct bp_e820_entry e820_table[BP_E820_MAX]; /* 0x2d0 */
	uint8_t  _pad4[0x1000 - 0x2d0 - 20 * BP_E820_MAX];
} __attribute__((packed));

#endif
