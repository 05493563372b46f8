/* restore.c - rebuild a sandbox from a snapshot directory, timing every phase into RestoreProfile. */
#include "kvm/mono.h"
#include "runtime/restore.h"
#include "kvm/log.h"

#include <errno.h>
#include <sched.h>
#include <sys/random.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/compat.h"
#include "runtime/counts.h"
#include "runtime/template.h"
#include "runtime/vmshell.h"
#include "proto/le.h"
#include "proto/wire.h"

/* The DEVS section; version 1 predates the vsock agent channel and gets its own message. */
static int restore_devs_section(struct restore_snap *s)
{
	const struct vmstate_section *d = vmstate_find(&s->so.vs, VMSTATE_TAG_DEVS, 0);

	if (d && d->version == 1 && DEVICES_STATE_VERSION == 2) {
		log_msg("snapbox: this snapshot was made before the agent channel moved to "
			"virtio-vsock (device state version 1); rebuild it with this snapbox "
			"(snapbox snapshot ...)\n");
		return -EPROTO;
	}
	return snapopen_section(&s->so, VMSTATE_TAG_DEVS, DEVICES_STATE_VERSION, &s->devs);
}

int restore_snap_open(struct restore_snap *s, const char *dir)
{
	struct sbuf_reader r;
	int ret;

	memset(s, 0, sizeof(*s));
	s->template_fd = -1;
	vcpu_state_init(&s->vst);
	ret = snapopen_open(&s->so, dir);
	if (ret)
		return ret;
	ret = snapopen_section(&s->so, VMSTATE_TAG_HOST, VCPU_STATE_HOST_VERSION, &r);
	if (!ret)
		ret = vcpu_state_host_decode(&r, &s->host);
	if (!ret)
		ret = snapopen_section(&s->so, VMSTATE_TAG_VCPU, VCPU_STATE_VERSION, &r);
	if (!ret)
		ret = vcpu_state_decode(&r, &s->vst);
	if (!ret)
		ret = snapopen_section(&s->so, VMSTATE_TAG_CLCK, VM_STATE_CLOCK_VERSION, &r);
	if (!ret)
		ret = vm_state_clock_decode(&r, &s->vmst);
	if (!ret)
		ret = snapopen_section(&s->so, VMSTATE_TAG_IRQC, VM_STATE_IRQCHIP_VERSION, &r);
	if (!ret)
		ret = vm_state_irqchip_decode(&r, &s->vmst);
	if (!ret)
		ret = snapopen_section(&s->so, VMSTATE_TAG_PIT2, VM_STATE_PIT_VERSION, &r);
	if (!ret)
		ret = vm_state_pit_decode(&r, &s->vmst);
	if (!ret)
		ret = restore_devs_section(s);
	/* The device records too, before any VM or template exists: a refused
	 * snapshot costs no shell, and inspect --verify refuses the same. */
	if (!ret)
		ret = restore_snap_check_devices(s);
	if (ret)
		restore_snap_close(s);
	return ret;
}

int restore_snap_check_devices(const struct restore_snap *s)
{
	/* The same queue size as a restore's devices (sandbox_setup_devices):
	 * the COM2 RX queue in the record is checked against it. */
	/* Rings are checked against the snapshot's RAM size; no RAM is mapped. */
	const struct gmem ram = { .size = s->so.conf.mem_bytes };
	struct devices_cfg cfg = { .com2_rx_cap = PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE, .mem = &ram };
	struct sbuf_reader devs = s->devs;
	struct devices scratch;
	struct bus pio;
	int ret;

	ret = bus_init(&pio, "pio");
	if (ret)
		return ret;
	ret = devices_init(&scratch, &pio, &cfg);
	if (!ret) {
		ret = devices_load(&scratch, &devs);
		devices_fini(&scratch);
	}
	bus_fini(&pio);
	return ret;
}

void restore_snap_close(struct restore_snap *s)
{
	if (s->template_fd >= 0)
		close(s->template_fd);
	s->template_fd = -1;
	vcpu_state_host_fini(&s->host);
	vcpu_state_fini(&s->vst);
	snapopen_close(&s->so);
}

/* Guest RAM: eager gets fresh memory, cow a private view of the shared template. */
static int restore_memory_map(struct snapbox *sb, struct restore_snap *s,
			      enum snapbox_restore_mode mode, const char *cache_dir, unsigned threads,
			      struct snapbox_counts *c)
{
	bool created;

	if (mode != SNAPBOX_RESTORE_COW)
		return gmem_init(&sb->mem, s->so.conf.mem_bytes);
	if (s->template_fd < 0) {
		int fd = template_get(&s->so.mem, cache_dir, threads, &created);

		if (fd < 0)
			return fd;
		s->template_fd = fd;
		if (created)   /* this restore decoded the template: its bytes are ours */
			counts_add_decode(c, &s->so.mem);
	}
	return gmem_init_cow(&sb->mem, s->template_fd, s->so.conf.mem_bytes);
}

/*
 * Fault in, on the shell's thread, the guest pages KVM itself writes when the
 * state is loaded: KVM_SET_MSRS of the kvmclock MSRs writes the wall clock at
 * the wall-clock MSR's GPA (0x11, 0x4b564d00) and maps the pvclock page at
 * the system-time MSR's (0x12, 0x4b564d01; bit 0 enables it) for writing. On
 * a cow view each is a copy-on-write fault of the restoring thread (counted
 * in its minflt though KVM takes it); taken here, a pooled request takes none
 * before its vCPU runs. Reads and rewrites one byte of each page, so the
 * content is the template's.
 */
static void restore_prefault(struct snapbox *sb, const struct restore_snap *s)
{
	const struct kvm_msrs *m = s->vst.msrs;

	for (uint32_t i = 0; m && i < m->nmsrs; i++) {
		uint32_t idx = m->entries[i].index;
		volatile uint8_t *b;

		uint64_t val = m->entries[i].data;

		if (idx == 0x12 || idx == 0x4b564d01) {
			if (!(val & 1))
				continue;
		} else if (idx != 0x11 && idx != 0x4b564d00) {
			continue;
		}
		b = gmem_ptr(&sb->mem, val & ~0xfffull, 1);
		if (b)
			*b = *b;
	}
}

/* restore_shell's hooks for vmshell_build. */
struct restore_shell_ctx {
	struct restore_snap *s;
	enum snapbox_restore_mode mode;
	const char *cache_dir;
	unsigned threads;
	struct snapbox_restore_profile *p;
};

/* Compatibility before the VM exists: refusing must cost nothing. */
static int restore_shell_check(struct snapbox *sb, void *arg)
{
	struct restore_shell_ctx *c = arg;
	uint64_t t = mono_now_ns();
	int ret;

	ret = compat_check(&sb->sys, &c->s->so.conf, &c->s->host);
	c->p->snapshot_open += mono_lap(&t);
	return ret;
}

/* cow's template build (first restore only) is counted here: it is the mapping's cost. */
static int restore_shell_map(struct snapbox *sb, void *arg)
{
	struct restore_shell_ctx *c = arg;

	return restore_memory_map(sb, c->s, c->mode, c->cache_dir, c->threads, &c->p->counts);
}

int restore_shell(struct snapbox *sb, struct restore_snap *s, enum snapbox_restore_mode mode,
		  const char *cache_dir, unsigned threads, struct snapbox_restore_profile *p)
{
	struct restore_shell_ctx c = {
		.s = s, .mode = mode, .cache_dir = cache_dir, .threads = threads, .p = p,
	};
	const struct vmshell_ops ops = {
		.check = restore_shell_check,
		.map_memory = restore_shell_map,
	};
	struct vmshell_times tm;
	uint64_t t;
	int ret;

	ret = vmshell_build(sb, &ops, &c, &tm);
	p->kvm_fd_open = tm.kvm_fd_open;
	p->kvm_create_vm = tm.kvm_create_vm;
	p->vm_arch_setup = tm.vm_arch_setup;
	p->guest_memory_mmap = tm.guest_memory_mmap;
	p->kvm_set_user_memory_region = tm.set_memory;
	p->vcpu_creation = tm.vcpu_creation;
	p->device_state_restore = tm.devices;
	if (ret)
		return ret;
	/* Snapshot-invariant questions to KVM now, so a pooled request does not ask them. */
	t = mono_now_ns();
	/* cow only: lazy memory must stay untouched until its fault handler
	 * serves it, and eager memory is written whole by the decode anyway. */
	if (mode == SNAPBOX_RESTORE_COW)
		restore_prefault(sb, s);
	ret = vcpu_state_prepare_restore(&sb->vcpu);
	p->vcpu_creation += mono_lap(&t);
	if (ret)
		return sandbox_kvm_err(ret);
	/* The run thread now, parked and confined: a pooled shell then resumes
	 * without thread creation or a seccomp load on the request's path (a
	 * one-shot restore pays the same either way). After the devices,
	 * because its exits are dispatched to their buses. */
	t = mono_now_ns();
	ret = sandbox_start_parked(sb);
	p->vcpu_creation += mono_lap(&t);
	return ret;
}

int restore_state(struct snapbox *sb, struct restore_snap *s, enum snapbox_restore_mode mode,
		  bool verify, unsigned threads, struct snapbox_restore_profile *p)
{
	struct sbuf_reader devs = s->devs;
	uint64_t t = mono_now_ns();
	int ret;

	ret = vcpu_state_restore_cpuid(&sb->vcpu, &s->vst);
	p->cpuid_config = mono_lap(&t);
	if (ret)
		return ret;
	if (mode == SNAPBOX_RESTORE_EAGER) {
		/* The reader is shared; verification is per call, so toggle nothing shared. */
		struct memfile_reader r = s->so.mem;

		memfile_set_verify(&r, verify);
		ret = memfile_read_all(&r, sb->mem.host, sb->mem.size, threads);
		counts_add_decode(&p->counts, &r);
	} else if (mode == SNAPBOX_RESTORE_LAZY) {
		/* Before any state: KVM_SET_MSRS already writes guest RAM (the kvmclock page). */
		struct memfile_reader r = s->so.mem;

		memfile_set_verify(&r, verify);
		sb->lazy = calloc(1, sizeof(*sb->lazy));
		ret = sb->lazy ? lazy_start(sb->lazy, sb->mem.host, sb->mem.size, &r) : -ENOMEM;
		if (ret) {
			free(sb->lazy);
			sb->lazy = NULL;
		}
	}
	p->memory_state_write = mono_lap(&t);
	if (ret)
		return ret;
	/* VM state before the vCPU's: the clock and irqchips are what its MSRs and LAPIC refer to. */
	ret = vm_state_restore(&sb->vm, &s->vmst);
	if (!ret)
		ret = devices_load(&sb->dev, &devs);
	p->device_state_restore += mono_lap(&t);
	if (ret)
		return ret;
	ret = vcpu_state_restore_regs(&sb->vcpu, &s->vst);
	p->vcpu_state_restore = mono_lap(&t);
	if (ret)
		return ret;
	/* The guest was past READY when it was captured; the fresh channel must know it. */
	chan_mark_ready(&sb->chan);
	/* A clone of a snapshot: it must not run for anyone before REFRESH. */
	sb->refresh_pending = true;
	return 0;
}

int restore_refresh(struct snapbox *sb, unsigned timeout_ms)
{
	uint8_t msg[PROTO_REFRESH_HDR + RESTORE_REFRESH_ENTROPY];
	struct timespec now;
	uint32_t n = 0;
	void *r = NULL;
	int ret;

	/* What the devices owe the clone first (vsock's reset event), now that it runs. */
	devices_restored(&sb->dev);
	if (getrandom(msg + PROTO_REFRESH_HDR, RESTORE_REFRESH_ENTROPY, 0) != RESTORE_REFRESH_ENTROPY) {
		ret = -errno;
		log_msg("snapbox: getrandom for the guest's entropy: %s\n", strerror(-ret));
		return ret;
	}
	/* The clock last, just before the send: the guest's wall clock is off by one trip. */
	clock_gettime(CLOCK_REALTIME, &now);
	le_put64(msg, (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec);
	le_put32(msg + 8, RESTORE_REFRESH_ENTROPY);
	ret = snapbox_request(sb, PROTO_T_REFRESH, msg, sizeof(msg), &r, &n, timeout_ms);
	explicit_bzero(msg, sizeof(msg));
	if (ret == -EREMOTEIO)
		log_msg("snapbox: the restored guest refused REFRESH (%.*s): its agent cannot make this "
			"clone unique (entropy, clock); rebuild the snapshot with this snapbox's agent\n",
			(int)n, r ? (const char *)r : "");
	else if (ret)
		log_msg("snapbox: restored guest did not answer REFRESH within %u ms: %s\n", timeout_ms,
			ret == -ESHUTDOWN ? snapbox_stop_reason(sb) : strerror(-ret));
	free(r);
	if (!ret)
		sb->refresh_pending = false;
	return ret == -EREMOTEIO ? -ENOTSUP : ret;
}

/*
 * Start or wake the vCPU thread (parked since restore_shell, or paused).
 * A first start waits (at most 1 s) until the thread has entered KVM_RUN,
 * so that snapbox_restore's resume and a later snapbox_resume send REFRESH
 * into the same state (a vCPU already running) and time the start alike.
 */
static int restore_wake(struct snapbox *sb)
{
	uint64_t t = mono_now_ns();
	int ret;

	switch (vcpu_get_state(&sb->vcpu)) {
	case VCPU_CREATED:
		ret = sandbox_start(sb);
		break;
	case VCPU_PAUSED:
		return vcpu_resume(&sb->vcpu);
	default:
		return -EINVAL;
	}
	while (!ret && !atomic_load(&sb->vcpu.first_run_ns) && mono_now_ns() - t < 1000000000ull)
		sched_yield();
	return ret;
}

/* chan_on_queued's hook: wake a warm shell's paused vCPU (a failure shows as the REFRESH's). */
static void restore_wake_queued(void *arg)
{
	struct snapbox *sb = arg;

	(void)vcpu_resume(&sb->vcpu);
}

int restore_resume(struct snapbox *sb, const struct snapbox_restore_opts *o, uint64_t t0,
		   struct snapbox_restore_profile *p)
{
	unsigned timeout = o->ping_timeout_ms ? o->ping_timeout_ms : snapbox_scaled_ms(5000);
	uint64_t t = mono_now_ns();
	int ret;

	sb->console_fd = o->console_fd;
	/* A warm pool shell's vCPU, paused after its warm-up, is woken once its
	 * REFRESH is queued: it enters the guest with the interrupt pending
	 * instead of being woken from a halt (measured on KVM-PVM: PING after
	 * 10 ms of idle 0.39 ms, back to back 0.06 ms); the warm-up itself takes
	 * this way too. Else the shell's parked thread (restore_shell) starts now. */
	if (sb->warm && vcpu_get_state(&sb->vcpu) == VCPU_PAUSED)
		chan_on_queued(&sb->chan, restore_wake_queued, sb);
	else if ((ret = restore_wake(sb)))
		return ret;
	p->resume_kvm_run = atomic_load(&sb->vcpu.first_run_ns) > t ?
			    atomic_load(&sb->vcpu.first_run_ns) - t : 0;
	p->total_with_resume = mono_now_ns() - t0;
	/* Before anything else reaches the guest: no caller ever sees a clone that is not unique. */
	t = mono_now_ns();
	ret = restore_refresh(sb, timeout);
	chan_run_queued(&sb->chan);   /* a REFRESH that was never queued still wakes it */
	p->guest_refresh = mono_now_ns() - t;
	if (ret || !o->ping)
		return ret;
	ret = snapbox_ping(sb, timeout);
	p->restore_to_ready = mono_now_ns() - t0;
	if (ret)
		log_msg("snapbox: restored guest did not answer PING within %u ms: %s\n", timeout,
			ret == -ESHUTDOWN ? snapbox_stop_reason(sb) : strerror(-ret));
	return ret;
}

int snapbox_resume(struct snapbox *sb)
{
	int ret = restore_wake(sb);

	if (!ret && sb->refresh_pending)
		ret = restore_refresh(sb, sb->refresh_timeout_ms ? sb->refresh_timeout_ms :
				      snapbox_scaled_ms(5000));
	return ret;
}

unsigned restore_threads(unsigned want)
{
	unsigned n = want ? want : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);

	return n > MEMFILE_MAX_THREADS ? MEMFILE_MAX_THREADS : n ? n : 1;
}

int snapbox_restore(const char *dir, const struct snapbox_restore_opts *opts, struct snapbox **out,
		    struct snapbox_restore_profile *prof)
{
	static const struct snapbox_restore_opts defaults = { .console_fd = -1 };
	const struct snapbox_restore_opts *o = opts ? opts : &defaults;
	unsigned threads = restore_threads(o->threads);
	struct snapbox_restore_profile pl;
	struct restore_snap s;
	struct counts_mark cm;
	struct snapbox *sb;
	uint64_t t0 = mono_now_ns();
	int ret;

	counts_start(&cm);
	*out = NULL;
	memset(&pl, 0, sizeof(pl));
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	sb->console_fd = -1;
	ret = restore_snap_open(&s, dir);
	pl.snapshot_open = mono_now_ns() - t0;
	if (ret) {
		free(sb);
		return ret;
	}
	ret = restore_shell(sb, &s, o->mode, o->cache_dir, threads, &pl);
	if (!ret)
		ret = restore_state(sb, &s, o->mode, !o->no_verify, threads, &pl);
	sb->refresh_timeout_ms = o->ping_timeout_ms;   /* for a later snapbox_resume too */
	pl.total_without_resume = mono_now_ns() - t0;
	pl.counts.minflt_before_run = counts_minflt_since(&cm);
	if (!ret && o->resume)
		ret = restore_resume(sb, o, t0, &pl);
	counts_finish(&cm, &pl.counts);
	restore_snap_close(&s);
	if (ret) {
		sandbox_free(sb);
		return ret;
	}
	if (prof)
		*prof = pl;
	*out = sb;
	return 0;
}
