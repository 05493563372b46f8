/* sandbox.c - the cold-boot path: build a VM from a kernel, run it to READY, and tear it down. */
#include "kvm/mono.h"
#include <errno.h>
#include "kvm/log.h"
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/bus.h"
#include "kvm/devices.h"
#include "kvm/gmem.h"
#include "kvm/kvmsys.h"
#include "kvm/loader.h"
#include "kvm/piowin.h"
#include "proto/layout.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "runtime/chan.h"
#include "runtime/counts.h"
#include "runtime/sandbox_internal.h"
#include "runtime/vmshell.h"
#include "snapbox.h"

#include <xxhash.h>

#define SANDBOX_DEFAULT_MEM      (256ull << 20)
#define SANDBOX_DEFAULT_TIMEOUT  10000u
/* init_on_free=1: pages the guest frees are zeroed, so the unpacked initramfs
 * archive and dead page cache cost nothing in a snapshot (zero chunks); the
 * python image's memory file shrank from 331 to 258 non-zero 256 KiB chunks. */
#define SANDBOX_DEFAULT_CMDLINE  "console=ttyS0 init_on_free=1"

/* xxh3-128 of an input file, recorded so a snapshot says what it came from. */
static void sandbox_hash(const uint8_t *p, size_t n, uint64_t out[2])
{
	XXH128_hash_t h = XXH3_128bits(p, n);

	out[0] = h.low64;
	out[1] = h.high64;
}

/* Read a whole file, refusing anything larger than max bytes. */
static int sandbox_read_file(const char *what, const char *path, uint64_t max,
			     uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t have = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_msg("snapbox: cannot open %s %s: %s\n", what, path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		log_msg("snapbox: cannot stat %s %s: %s\n", what, path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		log_msg("snapbox: %s %s is not a regular file\n", what, path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		log_msg("snapbox: %s %s is %llu MiB, larger than guest memory (%llu MiB)\n",
			what, path, (unsigned long long)st.st_size >> 20,
			(unsigned long long)max >> 20);
		ret = -E2BIG;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			log_msg("snapbox: reading %s %s failed\n", what, path);
			free(buf);
			goto out;
		}
		have += (size_t)n;
	}
	*out = buf;
	*len = have;
	ret = 0;
out:
	close(fd);
	return ret;
}

static void sandbox_irq(void *opaque, unsigned irq, int level)
{
	struct snapbox *sb = opaque;

	vm_irq_line(&sb->vm, irq, level);
}

/* virtio-vsock's interrupts: an edge is one eventfd write (KVM_IRQFD), no ioctl. */
static void sandbox_vsock_irq(void *opaque, unsigned irq, int level)
{
	struct snapbox *sb = opaque;
	uint64_t one = 1;

	(void)irq;
	if (level && write(sb->vsock_irqfd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, an edge is pending anyway. */
	}
}

static void sandbox_note_byte(struct snapbox *sb)
{
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&sb->first_byte_ns, &zero, mono_now_ns());
}

static void sandbox_console(void *opaque, const uint8_t *buf, size_t n)
{
	struct snapbox *sb = opaque;

	sandbox_note_byte(sb);
	if (sb->console_fd < 0)
		return;
	while (n > 0) {
		ssize_t w = write(sb->console_fd, buf, n);

		if (w <= 0)
			return; /* console output is best effort; never stall the vCPU */
		buf += w;
		n -= (size_t)w;
	}
}

static void sandbox_agent_rx(void *opaque, const uint8_t *buf, size_t n)
{
	struct snapbox *sb = opaque;

	sandbox_note_byte(sb);
	chan_rx(&sb->chan, buf, n);
}

static void sandbox_reset(void *opaque)
{
	struct snapbox *sb = opaque;

	vcpu_request_stop(&sb->vcpu, VCPU_STOP_RESET);
}

static void sandbox_stopped(void *opaque, enum vcpu_stop why)
{
	struct snapbox *sb = opaque;

	(void)why;
	chan_mark_dead(&sb->chan);
}

int sandbox_start(struct snapbox *sb)
{
	return vcpu_start(&sb->vcpu, &sb->pio, &sb->mmio, sandbox_stopped, sb);
}

int sandbox_start_parked(struct snapbox *sb)
{
	return vcpu_start_parked(&sb->vcpu, &sb->pio, &sb->mmio, sandbox_stopped, sb);
}

/* KVM-level failures all map to -ENODEV so callers can tell them from bad input. */
int sandbox_setup_devices(struct snapbox *sb)
{
	struct devices_cfg dc = {
		.irq_fn = sandbox_irq, .irq_opaque = sb,
		.com1_tx = sandbox_console, .com1_opaque = sb,
		.com2_tx = sandbox_agent_rx, .com2_opaque = sb,
		.com2_rx_cap = PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE,
		.reset_fn = sandbox_reset, .reset_opaque = sb,
		.mmio = &sb->mmio, .mem = &sb->mem,
		.vsock_irq_fn = sandbox_vsock_irq, .vsock_irq_opaque = sb,
	};
	int ret;

	/* Why here, with the shell: a pooled restore then pays nothing for it. */
	ret = vm_irqfd(&sb->vm, LAYOUT_VSOCK_IRQ);
	if (ret < 0)
		return sandbox_kvm_err(ret);
	sb->vsock_irqfd = ret;
	sb->have_irqfd = true;

	ret = bus_init(&sb->pio, "pio");
	if (ret)
		return ret;
	sb->have_pio = true;
	ret = bus_init(&sb->mmio, "mmio");
	if (ret)
		return ret;
	sb->have_mmio = true;
	ret = chan_init(&sb->chan, &sb->dev.com2);
	if (ret)
		return ret;
	sb->have_chan = true;
	ret = devices_init(&sb->dev, &sb->pio, &dc);
	if (ret)
		return ret;
	sb->have_dev = true;
	chan_attach_vsock(&sb->chan, &sb->dev.vsock);
	/* Stateless; unregistered with the MMIO bus in bus_fini. */
	return piowin_init(&sb->piowin, &sb->mmio, &sb->pio);
}

static int sandbox_check_config(const struct snapbox_config *cfg)
{
	if (!cfg->kernel) {
		log_msg("snapbox: no kernel given\n");
		return -EINVAL;
	}
	if (cfg->vcpus > 1) {
		log_msg("snapbox: %u vCPUs requested; only 1 is supported\n", cfg->vcpus);
		return -EINVAL;
	}
	if (cfg->mem_bytes && (cfg->mem_bytes < LAYOUT_MEM_MIN || cfg->mem_bytes > LAYOUT_MEM_MAX ||
			       cfg->mem_bytes % 4096)) {
		log_msg("snapbox: guest memory must be a multiple of 4 KiB in [%llu, %llu] MiB\n",
			LAYOUT_MEM_MIN >> 20, LAYOUT_MEM_MAX >> 20);
		return -EINVAL;
	}
	return 0;
}

/*
 * The one KVM-PVM warning. PVM emulates guest ring-0 code (~1-2.5 us an
 * instruction), so an unmodified Linux kernel crawls through early boot and
 * fails on instructions the emulator lacks; say so once per process, before
 * the wait, and name the bounded time after which the boot gives up. A
 * bzImage is always Linux; an ELF is Linux when it carries the kernel banner
 * (the probe guest does not).
 */
static void sandbox_warn_linux_on_pvm(const struct snapbox *sb, const struct loader_kernel *k,
				      const uint8_t *img, size_t len, unsigned timeout_ms)
{
	static atomic_bool warned;

	if (!sb->sys.is_pvm)
		return;
	if (k->kind != LOADER_BZIMAGE && !memmem(img, len, "Linux version ", 14))
		return;
	if (atomic_exchange(&warned, true))
		return;
	log_msg("snapbox: warning: /dev/kvm is KVM-PVM here (no vmx/svm in /proc/cpuinfo): "
		"a Linux guest cannot run at useful speed on it (its kernel code is emulated), so this "
		"boot will most likely give up after the %u ms boot timeout. Use a host with hardware "
		"virtualisation or the nested lab (make lab); the probe guest runs natively here.\n",
		timeout_ms);
}

/* A cold boot's part of the shell: its inputs, and the hooks vmshell_build calls. */
struct sandbox_boot {
	const struct snapbox_config *cfg;
	struct snapbox_create_profile *cp;
	uint64_t mem;
	const char *cmdline;
	uint8_t *kimg, *iimg;
	size_t klen, ilen;
	struct loader_kernel k;
	uint64_t initrd_gpa;
};

static int sandbox_boot_map(struct snapbox *sb, void *arg)
{
	struct sandbox_boot *b = arg;

	return gmem_init(&sb->mem, b->mem);
}

/* The kernel, then the initrd placed after it (loader_load_initrd needs k). */
static int sandbox_boot_fill(struct snapbox *sb, void *arg)
{
	struct sandbox_boot *b = arg;
	uint64_t t = mono_now_ns();
	int ret;

	ret = loader_load_kernel(&sb->mem, b->kimg, b->klen, &b->k);
	b->cp->kernel_elf_load = mono_lap(&t);
	if (ret)
		return ret;
	sandbox_warn_linux_on_pvm(sb, &b->k, b->kimg, b->klen, b->cfg->boot_timeout_ms ?
				  b->cfg->boot_timeout_ms : SANDBOX_DEFAULT_TIMEOUT);
	t = mono_now_ns();   /* the check's time belongs to misc, not to a phase */
	if (!b->iimg)
		return 0;
	ret = loader_load_initrd(&sb->mem, &b->k, b->iimg, b->ilen, &b->initrd_gpa);
	b->cp->rootfs_write = mono_lap(&t);
	return ret;
}

static int sandbox_boot_vcpu(struct snapbox *sb, void *arg)
{
	struct sandbox_boot *b = arg;
	const struct kvm_cpuid2 *cpuid;
	uint64_t t = mono_now_ns();
	int ret;

	/* CPUID before MSRs: KVM only accepts MSRs of features the guest CPUID has. */
	cpuid = kvmsys_supported_cpuid(&sb->sys);
	ret = cpuid ? vcpu_set_cpuid(&sb->vcpu, cpuid) : -ENODEV;
	b->cp->cpuid_config = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	ret = vcpu_setup_boot_regs(&sb->vcpu, b->k.entry, LAYOUT_ZERO_PAGE);
	b->cp->vcpu_register_config = mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	ret = loader_write_boot_params(&sb->mem, &b->k, b->cmdline, b->initrd_gpa, b->ilen);
	if (!ret)
		ret = loader_write_boot_tables(&sb->mem);
	b->cp->boot_params = mono_lap(&t);
	return ret;
}

/* Steps up to a configured, not yet running VM; each one timed into cp. */
static int sandbox_build(struct snapbox *sb, const struct snapbox_config *cfg,
			 struct snapbox_create_profile *cp)
{
	struct sandbox_boot b = {
		.cfg = cfg, .cp = cp,
		.mem = cfg->mem_bytes ? cfg->mem_bytes : SANDBOX_DEFAULT_MEM,
		.cmdline = sb->cmdline,
	};
	const struct vmshell_ops ops = {
		.kvm_path = cfg->kvm_path,
		.map_memory = sandbox_boot_map,
		.fill_memory = sandbox_boot_fill,
		.setup_vcpu = sandbox_boot_vcpu,
	};
	struct vmshell_times tm;
	uint64_t t = mono_now_ns();
	int ret;

	/* The inputs first: a missing or bad file is the user's to fix on any
	 * host, so it is reported before the absence of KVM could hide it. */
	ret = sandbox_read_file("kernel", cfg->kernel, b.mem, &b.kimg, &b.klen);
	if (!ret)
		sandbox_hash(b.kimg, b.klen, sb->kernel_hash);
	cp->kernel_asset_read = mono_lap(&t);
	if (ret)
		goto out;
	if (cfg->initrd) {
		ret = sandbox_read_file("initrd", cfg->initrd, b.mem, &b.iimg, &b.ilen);
		if (!ret) {
			sandbox_hash(b.iimg, b.ilen, sb->initrd_hash);
			sb->has_initrd = true;
		}
		cp->rootfs_asset_read = mono_lap(&t);
		if (ret)
			goto out;
	}
	ret = vmshell_build(sb, &ops, &b, &tm);
	cp->kvm_fd_open = tm.kvm_fd_open;
	cp->kvm_create_vm = tm.kvm_create_vm;
	cp->vm_arch_setup = tm.vm_arch_setup;
	cp->guest_memory_mmap = tm.guest_memory_mmap;
	cp->kvm_set_user_memory_region = tm.set_memory;
	cp->vcpu_creation = tm.vcpu_creation;
out:
	free(b.iimg);
	free(b.kimg);
	return ret;
}

void sandbox_free(struct snapbox *sb)
{
	/* vCPU first: its thread uses the devices, channel and memory below. */
	if (sb->have_vcpu)
		vcpu_fini(&sb->vcpu);
	/* The fault handler serves guest RAM until no vCPU can touch it, and no longer. */
	if (sb->lazy) {
		lazy_stop(sb->lazy);
		free(sb->lazy);
	}
	if (sb->have_dev)
		devices_fini(&sb->dev);
	if (sb->have_chan)
		chan_fini(&sb->chan);
	if (sb->have_mmio)
		bus_fini(&sb->mmio);
	if (sb->have_pio)
		bus_fini(&sb->pio);
	/* The VM goes before its memory so KVM never holds a slot over unmapped RAM. */
	if (sb->have_vm)
		vm_fini(&sb->vm);
	if (sb->have_irqfd)
		close(sb->vsock_irqfd);
	if (sb->have_mem)
		gmem_fini(&sb->mem);
	if (sb->have_sys)
		kvmsys_fini(&sb->sys);
	free(sb->cmdline);
	free(sb->kernel_path);
	free(sb);
}

static void sandbox_fill_boot_profile(struct snapbox *sb, struct snapbox_boot_profile *bp)
{
	uint64_t first_run = atomic_load(&sb->vcpu.first_run_ns);
	uint64_t first_byte = atomic_load(&sb->first_byte_ns);
	uint64_t ready_ns;

	memset(bp, 0, sizeof(*bp));
	bp->vcpu_thread_start = first_run > sb->wait_t0 ? first_run - sb->wait_t0 : 0;
	bp->first_guest_byte = first_byte > sb->wait_t0 ? first_byte - sb->wait_t0 : 0;
	chan_get_boot(&sb->chan, &ready_ns, bp->stage_ns, bp->stage_valid);
	bp->ready = ready_ns > sb->wait_t0 ? ready_ns - sb->wait_t0 : 0;
	bp->exits = atomic_load(&sb->vcpu.exits);
	bp->io_exits = atomic_load(&sb->vcpu.io_exits);
	bp->mmio_exits = atomic_load(&sb->vcpu.mmio_exits);
}

int snapbox_boot(const struct snapbox_config *cfg, struct snapbox **out,
		 struct snapbox_create_profile *cp, struct snapbox_boot_profile *bp)
{
	struct counts_mark cm;
	struct snapbox_create_profile cpl;
	unsigned timeout = cfg->boot_timeout_ms ? cfg->boot_timeout_ms :
			   snapbox_scaled_ms(SANDBOX_DEFAULT_TIMEOUT);
	struct snapbox *sb;
	uint64_t t0;
	int ret;

	*out = NULL;
	ret = sandbox_check_config(cfg);
	if (ret)
		return ret;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	sb->console_fd = cfg->console_fd;
	/* The guest finds its virtio devices on the command line, as with Firecracker. */
	if (asprintf(&sb->cmdline, "%s virtio_mmio.device=%lluK@0x%llx:%u",
		     cfg->cmdline ? cfg->cmdline : SANDBOX_DEFAULT_CMDLINE,
		     (unsigned long long)(LAYOUT_VIRTIO_STRIDE >> 10),
		     (unsigned long long)LAYOUT_VSOCK_BASE, LAYOUT_VSOCK_IRQ) < 0)
		sb->cmdline = NULL;
	sb->kernel_path = strdup(cfg->kernel);
	if (!sb->cmdline || !sb->kernel_path) {
		ret = -ENOMEM;
		goto err;
	}
	memset(&cpl, 0, sizeof(cpl));
	t0 = mono_now_ns();
	counts_start(&cm);
	ret = sandbox_build(sb, cfg, &cpl);
	if (ret)
		goto err;
	cpl.create_vm_total = mono_now_ns() - t0;
	counts_finish(&cm, &cpl.counts);

	sb->wait_t0 = mono_now_ns();
	ret = sandbox_start(sb);
	if (ret)
		goto err;
	/* Here, after the start: the probe's wait overlaps the guest's boot
	 * instead of adding to the snapshot. A failure is only noted: the
	 * snapshot probes again and reports it there. */
	if (cfg->prepare_snapshot)
		(void)kvmsys_probe_msrs(&sb->sys);
	ret = chan_wait_ready(&sb->chan, sb->wait_t0 + (uint64_t)timeout * 1000000ull);
	cpl.boot_wait = mono_now_ns() - sb->wait_t0;
	if (ret == -ETIMEDOUT)
		log_msg("snapbox: guest did not report READY within %u ms\n", timeout);
	else if (ret)
		log_msg("snapbox: guest stopped before READY: %s\n", snapbox_stop_reason(sb));
	if (ret)
		goto err;
	snapbox_create_profile_finish(&cpl);
	if (cp)
		*cp = cpl;
	if (bp)
		sandbox_fill_boot_profile(sb, bp);
	*out = sb;
	return 0;
err:
	sandbox_free(sb);
	return ret;
}

void snapbox_destroy(struct snapbox *sb)
{
	if (sb)
		sandbox_free(sb);
}
