/* main.c - the probe's ring-3 start: boot info (zero page or PVH), device setup, BOOT_TIME/READY, command loop. */

#include "guest/probe/probe.h"
#include "proto/bootparams.h"
#include "proto/layout.h"

/* Xen's hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
#define HVM_START_MAGIC 0x336ec578u

struct probe_hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;     /* version >= 1 */
	uint32_t memmap_entries;   /* version >= 1 */
	uint32_t reserved;
} __attribute__((packed));

struct probe_hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} __attribute__((packed));

struct probe_hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
} __attribute__((packed));

#define FOUR_GIB (1ull << 32)

struct probe_boot probe_boot;
volatile uint8_t *probe_piowin;

static const char *const probe_stage_names[] = {
	"init_entry", "mounts_done", "uart_access_done", "init_ok", "ready", "command_loop",
};
#define NSTAGES (sizeof(probe_stage_names) / sizeof(probe_stage_names[0]))

int probe_ram_range_ok(uint64_t gpa, uint64_t len)
{
	uint64_t end = gpa + len;
	uint32_t i;

	if (end < gpa)
		return 0;
	for (i = 0; i < probe_boot.e820_n; i++) {
		const struct probe_e820 *e = &probe_boot.e820[i];
		if (e->type != BP_E820_RAM)
			continue;
		if (gpa >= e->addr && end <= e->addr + e->size && e->addr + e->size >= e->addr)
			return 1;
	}
	return 0;
}

/* Copy a NUL-terminated cmdline from guest memory (identity-mapped below 4 GiB). */
static void copy_cmdline(uint64_t gpa)
{
	const char *src;
	size_t i;

	probe_boot.cmdline[0] = 0;
	if (gpa == 0 || gpa >= FOUR_GIB - PROBE_CMDLINE_MAX)
		return;
	src = probe_gpa_ptr(gpa);
	for (i = 0; i + 1 < PROBE_CMDLINE_MAX && src[i]; i++)
		probe_boot.cmdline[i] = src[i];
	probe_boot.cmdline[i] = 0;
}

static void add_e820(uint64_t addr, uint64_t size, uint32_t type)
{
	if (probe_boot.e820_n < PROBE_E820_MAX) {
		struct probe_e820 *e = &probe_boot.e820[probe_boot.e820_n++];
		e->addr = addr;
		e->size = size;
		e->type = type;
	}
}

static void parse_linux(uint64_t gpa)
{
	const struct bp_boot_params *bp = probe_gpa_ptr(gpa);
	uint32_t i, n = bp->e820_entries;

	copy_cmdline(bp->hdr.cmd_line_ptr | ((uint64_t)bp->ext_cmd_line_ptr << 32));
	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	for (i = 0; i < n; i++)
		add_e820(bp->e820_table[i].addr, bp->e820_table[i].size, bp->e820_table[i].type);
	probe_boot.initrd_gpa = bp->hdr.ramdisk_image | ((uint64_t)bp->ext_ramdisk_image << 32);
	probe_boot.initrd_size = bp->hdr.ramdisk_size | ((uint64_t)bp->ext_ramdisk_size << 32);
}

static void parse_pvh(uint64_t gpa)
{
	const struct probe_hvm_start_info *si = probe_gpa_ptr(gpa);
	uint32_t i;

	if (si->magic != HVM_START_MAGIC)
		return;
	copy_cmdline(si->cmdline_paddr);
	if (si->version >= 1 && si->memmap_paddr && si->memmap_paddr < FOUR_GIB) {
		const struct probe_hvm_memmap_entry *m = probe_gpa_ptr(si->memmap_paddr);
		for (i = 0; i < si->memmap_entries && i < PROBE_E820_MAX; i++)
			add_e820(m[i].addr, m[i].size, m[i].type);
	}
	if (si->nr_modules && si->modlist_paddr && si->modlist_paddr < FOUR_GIB) {
		const struct probe_hvm_modlist_entry *mod = probe_gpa_ptr(si->modlist_paddr);
		probe_boot.initrd_gpa = mod->paddr;
		probe_boot.initrd_size = mod->size;
	}
}

static int flag_set(const char *key)
{
	const char *v;
	size_t n;

	if (!probe_cmdline_get(probe_boot.cmdline, key, &v, &n))
		return 0;
	return n == 0 || !(n == 1 && v[0] == '0');
}

static void parse_boot(uint64_t proto, uint64_t info)
{
	const char *v;
	size_t n;

	probe_boot.proto = proto;
	probe_boot.info_gpa = info;
	if (info && info < FOUR_GIB - PROBE_PAGE) {
		if (proto == PROBE_BOOT_LINUX)
			parse_linux(info);
		else
			parse_pvh(info);
	}
	/* PVH means QEMU: a real 16550 model, and on -M microvm the PIC's
	 * output never reaches the CPU, so poll there unless told otherwise */
	probe_boot.uart_slow = proto == PROBE_BOOT_PVH;
	probe_boot.poll = proto == PROBE_BOOT_PVH;
	if (probe_cmdline_get(probe_boot.cmdline, "probe.poll", &v, &n))
		probe_boot.poll = !(n == 1 && v[0] == '0');
	if (probe_cmdline_get(probe_boot.cmdline, "probe.uart", &v, &n) && n == 4)
		probe_boot.uart_slow = memcmp(v, "slow", 4) == 0;
	probe_boot.quiet = flag_set("quiet");
	probe_boot.info = flag_set("probe.info");
	probe_boot.nokvmclock = flag_set("probe.nokvmclock");
	/* The Linux entry means snapbox, which always provides the PIO window;
	 * PVH means QEMU, which has none. probe.piowin=0|1|<gpa> overrides. */
	if (proto == PROBE_BOOT_LINUX)
		probe_piowin = probe_gpa_ptr(LAYOUT_PIO_WINDOW);
	if (probe_cmdline_get(probe_boot.cmdline, "probe.piowin", &v, &n)) {
		uint64_t base = LAYOUT_PIO_WINDOW;
		if (n > 1)
			base = probe_parse_u64(v, n);
		probe_piowin = NULL;
		if (!(n == 1 && v[0] == '0') && base && base <= FOUR_GIB - 0x10000)
			probe_piowin = probe_gpa_ptr(base);
	}
	if (probe_cmdline_get(probe_boot.cmdline, "tsc_khz", &v, &n))
		probe_boot.tsc_khz = probe_parse_u64(v, n);
}

static uint64_t ram_bytes(void)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < probe_boot.e820_n; i++)
		if (probe_boot.e820[i].type == BP_E820_RAM)
			total += probe_boot.e820[i].size;
	return total;
}

/* One LOG frame with what the boot info said (probe.info=1). */
static void send_info(void)
{
	static char buf[PROBE_CMDLINE_MAX + 1024];
	size_t pos = 0;
	uint32_t i;

	probe_cat(buf, sizeof(buf), &pos, probe_boot.proto == PROBE_BOOT_LINUX ? "boot=linux" : "boot=pvh");
	probe_cat(buf, sizeof(buf), &pos, " info=");
	probe_cat_hex(buf, sizeof(buf), &pos, probe_boot.info_gpa);
	probe_cat(buf, sizeof(buf), &pos, " clock=");
	probe_cat(buf, sizeof(buf), &pos, probe_clock_name());
	probe_cat(buf, sizeof(buf), &pos, " tsc_khz=");
	probe_cat_u64(buf, sizeof(buf), &pos, probe_clock_tsc_khz());
	probe_cat(buf, sizeof(buf), &pos, probe_boot.uart_slow ? " uart=slow" : " uart=fast");
	probe_cat(buf, sizeof(buf), &pos, probe_boot.poll ? " poll=1" : " poll=0");
	probe_cat(buf, sizeof(buf), &pos, " piowin=");
	probe_cat_hex(buf, sizeof(buf), &pos, (uint64_t)(uintptr_t)probe_piowin);
	probe_cat(buf, sizeof(buf), &pos, " initrd=");
	probe_cat_hex(buf, sizeof(buf), &pos, probe_boot.initrd_gpa);
	probe_cat(buf, sizeof(buf), &pos, "+");
	probe_cat_hex(buf, sizeof(buf), &pos, probe_boot.initrd_size);
	probe_cat(buf, sizeof(buf), &pos, " e820=");
	for (i = 0; i < probe_boot.e820_n; i++) {
		if (i)
			probe_cat(buf, sizeof(buf), &pos, ",");
		probe_cat_hex(buf, sizeof(buf), &pos, probe_boot.e820[i].addr);
		probe_cat(buf, sizeof(buf), &pos, "+");
		probe_cat_hex(buf, sizeof(buf), &pos, probe_boot.e820[i].size);
		probe_cat(buf, sizeof(buf), &pos, ":");
		probe_cat_u64(buf, sizeof(buf), &pos, probe_boot.e820[i].type);
	}
	probe_cat(buf, sizeof(buf), &pos, " cmdline=");
	probe_cat(buf, sizeof(buf), &pos, probe_boot.cmdline);
	probe_tx_frame(PROTO_T_LOG, 0, 0, buf, (uint32_t)pos);
}

static void banner(void)
{
	char buf[160];
	size_t pos = 0;

	probe_cat(buf, sizeof(buf), &pos, "snapbox probe 1: ready, boot=");
	probe_cat(buf, sizeof(buf), &pos, probe_boot.proto == PROBE_BOOT_LINUX ? "linux" : "pvh");
	probe_cat(buf, sizeof(buf), &pos, " clock=");
	probe_cat(buf, sizeof(buf), &pos, probe_clock_name());
	probe_cat(buf, sizeof(buf), &pos, " ram_mib=");
	probe_cat_u64(buf, sizeof(buf), &pos, ram_bytes() >> 20);
	probe_cat(buf, sizeof(buf), &pos, "\n");
	probe_console_write(buf, pos);
}

static void send_boot_time(const char *stage, uint64_t tsc)
{
	char buf[80];
	size_t pos = 0;

	probe_cat(buf, sizeof(buf), &pos, "BOOT_TIME:");
	probe_cat(buf, sizeof(buf), &pos, stage);
	probe_cat(buf, sizeof(buf), &pos, ":");
	probe_cat_u64(buf, sizeof(buf), &pos, probe_tsc_to_ns(tsc));
	probe_tx_frame(PROTO_T_BOOT_TIME, 0, 0, buf, (uint32_t)pos);
}

/*
 * Entered from entry.S in ring 3 (IOPL 3, IF 0) on the user stack.
 * Stage times are raw TSC values converted once the clock is known; all
 * boot frames then leave in a single rep outsb (one ring-0 visit).
 */
__attribute__((noreturn))
void probe_main(uint64_t proto, uint64_t info, uint64_t tsc0);

void probe_main(uint64_t proto, uint64_t info, uint64_t tsc0)
{
	static const char ready[] = "probe 1";
	uint64_t t[NSTAGES];
	unsigned i;

	t[0] = tsc0;                       /* init_entry: first ring-0 instruction */
	parse_boot(proto, info);
	probe_clock_init();
	t[1] = probe_rdtsc();              /* mounts_done: tables loaded, boot info read */
	/* The agent channel: virtio-vsock when the VMM offers it, else COM2. */
	if (probe_vsock_init() != 0)
		probe_com2_init();
	t[2] = probe_rdtsc();              /* uart_access_done */
	probe_pic_init();
	t[3] = probe_rdtsc();              /* init_ok: PIC up (the IDT is static) */
	if (probe_boot.info)
		send_info();
	t[4] = probe_rdtsc();              /* ready */
	for (i = 0; i + 1 < NSTAGES; i++)
		send_boot_time(probe_stage_names[i], t[i]);
	t[5] = probe_rdtsc();              /* command_loop */
	send_boot_time(probe_stage_names[5], t[5]);
	probe_tx_frame(PROTO_T_READY, 0, 0, ready, sizeof(ready) - 1);
	probe_tx_flush_boot();
	if (!probe_boot.quiet)
		banner();

	for (;;) {
		struct proto_hdr h;
		const uint8_t *payload = probe_rx_frame(&h);

		probe_dispatch(&h, payload);
		probe_tx_flush();
	}
}
