/* probe.h - constants shared by the probe's assembly and C, and the C modules' interfaces. */
#ifndef SNAPBOX_PROBE_H
#define SNAPBOX_PROBE_H

/* ---- x86 bits used by entry.S / tables.S ---- */
#define X86_CR0_PE         0x00000001
#define X86_CR0_ET         0x00000010
#define X86_CR0_PG         0x80000000
#define X86_CR4_PAE        0x00000020
#define MSR_EFER           0xc0000080
#define EFER_LME           0x00000100
#define PTE_P              0x001
#define PTE_RW             0x002
#define PTE_US             0x004
#define PTE_PS             0x080
#define IDT_INTGATE_DPL0   0x8e
#define IDT_INTGATE_DPL3   0xee
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* The probe's own GDT (tables.S). */
#define PROBE_SEL_KCODE    0x08
#define PROBE_SEL_KDATA    0x10
#define PROBE_SEL_UDATA    0x1b   /* 0x18 | RPL 3 */
#define PROBE_SEL_UCODE    0x23   /* 0x20 | RPL 3 */
#define PROBE_SEL_TSS      0x28
#define PROBE_TSS_SIZE     0x68
#define PROBE_USER_RFLAGS  0x3002 /* IOPL 3, IF 0, reserved bit 1 */

/* IDT vectors. */
#define PROBE_VEC_GP       0x0d   /* the ring-0 trampoline (entry.S) */
#define PROBE_VEC_IRQ_BASE 0x20   /* PIC master 0x20-0x27, slave 0x28-0x2f */

#define PROBE_KSTACK_SIZE  4096
#define PROBE_USTACK_SIZE  65536

/* probe_main's proto argument. */
#define PROBE_BOOT_LINUX   1      /* info = boot_params (zero page) gpa */
#define PROBE_BOOT_PVH     2      /* info = hvm_start_info gpa */

#ifndef __ASSEMBLER__

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define PROBE_E820_MAX     128
#define PROBE_CMDLINE_MAX  4096
#define PROBE_PAGE         4096u

/* ---- what the boot info told us (main.c) ---- */
struct probe_e820 {
	uint64_t addr, size;
	uint32_t type;
};

struct probe_boot {
	uint64_t proto;
	uint64_t info_gpa;
	char cmdline[PROBE_CMDLINE_MAX];
	uint32_t e820_n;
	struct probe_e820 e820[PROBE_E820_MAX];
	uint64_t initrd_gpa, initrd_size;
	int poll;          /* probe.poll=1: spin on LSR, never sleep in hlt */
	int uart_slow;     /* probe.uart=slow: 16550-paced I/O (default for PVH) */
	int quiet;         /* quiet: no COM1 banner */
	int info;          /* probe.info=1: one LOG frame with the boot facts */
	int nokvmclock;    /* probe.nokvmclock=1: ignore kvmclock */
	uint64_t tsc_khz;  /* tsc_khz=N, 0 when absent */
};

extern struct probe_boot probe_boot;

/* 1 when [gpa, gpa+len) lies inside one e820 RAM entry. */
int probe_ram_range_ok(uint64_t gpa, uint64_t len);

/*
 * ---- privileged operations (entry.S) ----
 * Ring 3 cannot do port I/O on KVM-PVM (IOPL is forced to 0), so each of
 * these enters ring 0 through the #GP trampoline for a handful of emulated
 * instructions. Batch: one call per buffer, never per byte where avoidable.
 */
void probe_io_outb(uint16_t port, uint8_t v);
uint8_t probe_io_inb(uint16_t port);
void probe_io_outl(uint16_t port, uint32_t v);
uint32_t probe_io_inl(uint16_t port);
void probe_io_outsb(uint16_t port, const void *buf, size_t n);
void probe_io_insb(uint16_t port, void *buf, size_t n);
/* Read port; when (value & mask) == 0 sleep until an IRQ. Returns the value. */
uint8_t probe_io_wait(uint16_t port, uint8_t mask);
/* Sleep until an IRQ unless *a != va or *b != vb (checked with interrupts off). */
void probe_io_wait_mem(const volatile uint16_t *a, uint16_t va,
		       const volatile uint16_t *b, uint16_t vb);
void probe_io_wrmsr(uint32_t msr, uint64_t v);
__attribute__((noreturn)) void probe_io_hlt_cli(void);
__attribute__((noreturn)) void probe_io_triple_fault(void);

/*
 * Single port accesses (UART registers, PIC) go through snapbox's PIO window
 * (kvm/piowin.h: port p at MMIO gpa window + p, plain ring-3 loads and
 * stores, no ring-0 visit) when the cmdline says probe.piowin=1 (or an
 * address); otherwise through the trampoline. String transfers always use
 * the trampoline: KVM batches rep insb per page, MMIO costs an exit a byte.
 */
extern volatile uint8_t *probe_piowin;

static inline void probe_outb(uint16_t port, uint8_t v)
{
	if (probe_piowin)
		probe_piowin[port] = v;
	else
		probe_io_outb(port, v);
}

static inline uint8_t probe_inb(uint16_t port)
{
	return probe_piowin ? probe_piowin[port] : probe_io_inb(port);
}

static inline uint64_t probe_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* Hide a pointer's origin from the optimiser (gpa 0 is a valid address here). */
static inline void *probe_gpa_ptr(uint64_t gpa)
{
	__asm__("" : "+r"(gpa));
	return (void *)(uintptr_t)gpa;
}

/* ---- serial.c: COM1 console, COM2 protocol channel, PIC ---- */
void probe_com2_init(void);
void probe_pic_init(void);
void probe_console_write(const char *s, size_t n);
/* Append a whole frame to the transmit buffer (flushes first if full). */
void probe_tx_frame(uint16_t type, uint16_t flags, uint32_t id, const void *payload, uint32_t len);
/* Append raw bytes (not a frame) to the transmit buffer. */
void probe_tx_raw(const void *p, size_t n);
/* Send everything buffered with one rep outsb (one ring-0 visit), or one vsock kick. */
void probe_tx_flush(void);
/* The same, ending the boot frames' connection (vsock) in the same kick. */
void probe_tx_flush_boot(void);
/*
 * Block until a valid frame arrives; returns its header and a pointer to
 * its payload (valid until the next call).
 */
const uint8_t *probe_rx_frame(struct proto_hdr *h);

/*
 * ---- vsock.c: the agent channel on virtio-vsock ----
 * When the command line names a virtio-mmio vsock device (snapbox always
 * does), probe_vsock_init brings it up and serial.c's frame calls go
 * through it; COM2 is then unused. Without one (QEMU's PVH boot for the
 * peer benchmark), COM2 carries the frames as before.
 */
extern int probe_vsock_on;
int probe_vsock_init(void);
/* Send on the current connection; end: shut it down in the same kick. */
void probe_vsock_send(const uint8_t *p, size_t n, int end);
const uint8_t *probe_vsock_rx_frame(struct proto_hdr *h);
/* A PROTO_FAULT_VQ_* (and friends) attack on the channel; 1 when no reply must follow. */
int probe_vsock_fault(uint32_t kind, uint64_t arg);

/* ---- clock.c ---- */
void probe_clock_init(void);
/* Guest clock in ns for a TSC value (kvmclock scale when present). */
uint64_t probe_tsc_to_ns(uint64_t tsc);
uint64_t probe_clock_ns(void);
uint64_t probe_clock_tsc_khz(void);
const char *probe_clock_name(void);

/* ---- cmds.c ---- */
void probe_dispatch(const struct proto_hdr *h, const uint8_t *payload);

/* ---- lib.c ---- */
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t probe_strlen(const char *s);
/* Append to buf (cap bytes incl. NUL) at *pos; always NUL-terminated, truncates. */
void probe_cat(char *buf, size_t cap, size_t *pos, const char *s);
void probe_cat_u64(char *buf, size_t cap, size_t *pos, uint64_t v);
void probe_cat_hex(char *buf, size_t cap, size_t *pos, uint64_t v);
/*
 * Find "key=value" (or bare "key", value "") among space-separated words.
 * Returns 1 and sets *val and *vlen when found.
 */
int probe_cmdline_get(const char *cmdline, const char *key, const char **val, size_t *vlen);
/* Decimal (or 0x hex) prefix of s[0..n); returns 0 on no digits. */
uint64_t probe_parse_u64(const char *s, size_t n);

#endif /* __ASSEMBLER__ */
#endif
