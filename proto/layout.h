/* layout.h - the guest-physical memory map every loader and device agrees on. */
#ifndef SNAPBOX_PROTO_LAYOUT_H
#define SNAPBOX_PROTO_LAYOUT_H

/*
 * Guest-physical layout (documented in docs/architecture.md, keep in sync):
 *
 *   0x00000000  real-mode IVT / BDA (zeroed, unused)
 *   0x00000500  boot GDT (LAYOUT_GDT_ENTRIES entries)
 *   0x00000520  boot IDT (empty, limit 7)
 *   0x00007000  boot_params ("zero page"), RSI at 64-bit entry
 *   0x00008ff0  initial RSP (stack grows down inside 0x8000..0x8fff)
 *   0x00009000  PML4
 *   0x0000a000  PDPT
 *   0x0000b000  4 page directories, 2 MiB pages, identity map of 0..4 GiB
 *   0x00020000  kernel command line (LAYOUT_CMDLINE_MAX bytes incl. NUL)
 *   0x0009fc00  EBDA .. 0x100000: reserved in e820
 *   0x00100000  HIMEM: bzImage protected-mode kernel, probe guest
 *   0x01000000  typical vmlinux p_paddr
 *   top of RAM  initrd (page aligned, below initrd_addr_max)
 *   0xc0000000  MMIO hole (no RAM above here; RAM is capped below it)
 *   0xd0000000  PIO window: port p at 0xd0000000 + p (64 KiB), see piowin.h
 *   0xd0010000  virtio-mmio devices, LAYOUT_VIRTIO_STRIDE apart: vsock first (IRQ 5)
 *   0xfffbc000  KVM identity-map page (KVM_SET_IDENTITY_MAP_ADDR)
 *   0xfffbd000  KVM TSS, 3 pages (KVM_SET_TSS_ADDR)
 */
#define LAYOUT_GDT            0x500ULL
#define LAYOUT_GDT_ENTRIES    4
#define LAYOUT_IDT            0x520ULL
#define LAYOUT_ZERO_PAGE      0x7000ULL
#define LAYOUT_BOOT_STACK     0x8ff0ULL
#define LAYOUT_PML4           0x9000ULL
#define LAYOUT_PDPT           0xa000ULL
#define LAYOUT_PD             0xb000ULL
#define LAYOUT_PD_COUNT       4
#define LAYOUT_CMDLINE        0x20000ULL
#define LAYOUT_CMDLINE_MAX    4096ULL
#define LAYOUT_EBDA           0x9fc00ULL
#define LAYOUT_HIMEM          0x100000ULL
#define LAYOUT_MMIO_HOLE      0xc0000000ULL
#define LAYOUT_PIO_WINDOW     0xd0000000ULL
#define LAYOUT_PIO_WINDOW_SIZE 0x10000ULL
#define LAYOUT_VIRTIO_BASE    0xd0010000ULL
#define LAYOUT_VIRTIO_STRIDE  0x1000ULL
#define LAYOUT_VSOCK_BASE     LAYOUT_VIRTIO_BASE
#define LAYOUT_VSOCK_IRQ      5
#define LAYOUT_IDMAP_ADDR     0xfffbc000ULL
#define LAYOUT_TSS_ADDR       0xfffbd000ULL

/* Boot GDT selectors, as the Linux 64-bit boot protocol expects. */
#define LAYOUT_BOOT_CS        0x10
#define LAYOUT_BOOT_DS        0x18

/* Guest RAM limits: RAM is one slot at gpa 0, below the MMIO hole. */
#define LAYOUT_MEM_MIN        (16ULL << 20)
#define LAYOUT_MEM_MAX        LAYOUT_MMIO_HOLE

#endif
