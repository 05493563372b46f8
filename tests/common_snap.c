/* common_snap.c - helpers shared by the snapshot and restore KVM tests. */
#include "tests/common_snap.h"
#include "bench/bench_run.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm/uart.h"
#include "kvm/vcpu.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"

const enum snapbox_restore_mode tests_modes[TESTS_NMODES] = {
	SNAPBOX_RESTORE_EAGER, SNAPBOX_RESTORE_COW, SNAPBOX_RESTORE_LAZY,
};

const char *tests_mode_name(enum snapbox_restore_mode m)
{
	return m == SNAPBOX_RESTORE_COW ? "cow" : m == SNAPBOX_RESTORE_LAZY ? "lazy" : "eager";
}

uint64_t tests_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

char *tests_mkdtemp(const char *tag)
{
	char *p = tests_path("/tmp/snapbox-%s-XXXXXX", tag);

	cr_assert_not_null(mkdtemp(p), "mkdtemp: %s", strerror(errno));
	return p;
}

void tests_rm_rf(const char *path)
{
	if (path)
		bench_rmtree(path);
}

int tests_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

char *tests_path(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert_geq(n, 0);
	return s;
}

struct snapbox *tests_boot_probe_mem(uint64_t mem)
{
	struct snapbox_config cfg = {
		.kernel = tests_probe_path(),
		.cmdline = "console=ttyS0",
		.mem_bytes = mem,
		.console_fd = -1,
		.boot_timeout_ms = tests_ms(10000),
	};
	struct snapbox *sb = NULL;
	int ret = snapbox_boot(&cfg, &sb, NULL, NULL);

	cr_assert_eq(ret, 0, "probe boot failed: %s", strerror(-ret));
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	return sb;
}

/* One request whose reply must be exactly n bytes, copied into out. */
static void tests_req(struct snapbox *sb, uint16_t type, const void *p, uint32_t len, void *out,
		      uint32_t n)
{
	uint32_t rn = 0;
	void *r = NULL;
	int ret = snapbox_request(sb, type, p, len, &r, &rn, tests_ms(20000));

	cr_assert_eq(ret, 0, "request 0x%x failed: %s (%s)", type, strerror(-ret),
		     snapbox_stop_reason(sb));
	cr_assert_eq(rn, n, "request 0x%x: %u reply bytes, want %u", type, rn, n);
	if (n)
		memcpy(out, r, n);
	free(r);
}

void tests_fill(struct snapbox *sb, uint32_t mib, uint64_t seed)
{
	int ret = snapbox_probe_fill(sb, mib, seed, tests_ms(20000));

	cr_assert_eq(ret, 0, "fill %u MiB failed: %s", mib, strerror(-ret));
}

uint64_t tests_bad_pages(struct snapbox *sb, uint32_t mib, uint64_t seed)
{
	struct proto_fill_req fr = { .mib = mib, .seed = seed };
	struct proto_verify_resp vr;

	tests_req(sb, PROTO_T_VERIFY, &fr, sizeof(fr), &vr, sizeof(vr));
	return vr.bad_pages;
}

uint64_t tests_hash(struct snapbox *sb, uint64_t gpa, uint64_t len)
{
	struct proto_hash_req hr = { .gpa = gpa, .len = len };
	uint64_t h;

	tests_req(sb, PROTO_T_HASH, &hr, sizeof(hr), &h, sizeof(h));
	return h;
}

struct proto_ticks_resp tests_ticks(struct snapbox *sb)
{
	struct proto_ticks_resp t;

	tests_req(sb, PROTO_T_TICKS, NULL, 0, &t, sizeof(t));
	return t;
}

void tests_snapshot_ok(struct snapbox *sb, const char *dir, bool no_sync)
{
	struct snapbox_snapshot_opts o = { .no_sync = no_sync };
	int ret = snapbox_snapshot(sb, dir, &o, NULL);

	cr_assert_eq(ret, 0, "snapshot into %s failed: %s", dir, strerror(-ret));
}

/* A 32-bit LAPIC register of a KVM_GET_LAPIC image, by its offset. */
static unsigned tests_apic_reg(const struct kvm_lapic_state *a, unsigned off)
{
	uint32_t v;

	memcpy(&v, a->regs + off, sizeof(v));
	return v;
}

/*
 * What a guest that stopped answering is doing, on stderr: its vCPU (where,
 * IF, halted or not, an event being injected), the master PIC (a latched or
 * in-service IRQ3, the edge detector), COM2 (bytes waiting, its line)
 * and the LAPIC's LINT0 set-up.
 * Read while the vCPU is paused, so nothing moves underneath.
 */
void tests_dump_stuck(struct snapbox *sb)
{
	struct kvm_regs regs = { 0 };
	struct kvm_mp_state mp = { 0 };
	struct kvm_vcpu_events ev = { 0 };
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	struct kvm_lapic_state apic = { 0 };
	/* Paused here only when it runs; one the caller paused stays as it is. */
	bool was_paused = vcpu_get_state(&sb->vcpu) == VCPU_PAUSED;
	int paused = was_paused ? 0 : vcpu_pause(&sb->vcpu, tests_ms(2000));
	struct uart *u = &sb->dev.com2;
	char rx[3 * 20 + 1] = "";

	ioctl(sb->vcpu.fd, KVM_GET_REGS, &regs);
	ioctl(sb->vcpu.fd, KVM_GET_MP_STATE, &mp);
	ioctl(sb->vcpu.fd, KVM_GET_VCPU_EVENTS, &ev);
	ioctl(sb->vm.fd, KVM_GET_IRQCHIP, &pic);
	ioctl(sb->vcpu.fd, KVM_GET_LAPIC, &apic);
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->rx_len && i < 20; i++)
		sprintf(rx + 3 * i, "%02x ", u->rx[(u->rx_head + i) % u->rx_cap]);
	fprintf(stderr, "stuck guest: pause %d%s; rip 0x%llx rflags 0x%llx (IF %d) mp_state %u; "
		"interrupt injected %u nr %u soft %u shadow %u; nmi pending %u; "
		"PIC master irr 0x%02x isr 0x%02x imr 0x%02x last_irr 0x%02x auto_eoi %u; "
		"COM2 rx_len %zu window %zu lsr 0x%02x ier 0x%02x line %d; KVM line cache 0x%x; "
		"LAPIC svr 0x%x lvt0 0x%x tpr 0x%x; rx %s\n",
		paused, was_paused ? " (already paused)" : "", (unsigned long long)regs.rip, (unsigned long long)regs.rflags,
		!!(regs.rflags & 0x200), mp.mp_state, ev.interrupt.injected, ev.interrupt.nr,
		ev.interrupt.soft, ev.interrupt.shadow, ev.nmi.pending, pic.chip.pic.irr,
		pic.chip.pic.isr, pic.chip.pic.imr, pic.chip.pic.last_irr, pic.chip.pic.auto_eoi,
		u->rx_len, u->rx_window, u->lsr, u->ier, u->irq_level,
		atomic_load(&sb->vm.irq_levels), tests_apic_reg(&apic, 0xf0), tests_apic_reg(&apic, 0x350),
		tests_apic_reg(&apic, 0x80), rx);
	pthread_mutex_unlock(&u->lock);
	if (!was_paused && !paused)
		vcpu_resume(&sb->vcpu);
}

/* The failure after a deadline: a guest that answers a second, long PING was
 * only slow (the host stalled past the deadline); one that never answers lost
 * its wake-up, and its state is dumped. The test fails either way. */
static void tests_not_answered(struct snapbox *sb, enum snapbox_restore_mode mode, const char *what,
			       unsigned ms, int ret, const struct kvm_irqchip *restored,
			       const struct kvm_regs *rregs, const struct kvm_mp_state *rmp)
{
	uint64_t t0 = tests_now_ns();
	int again = snapbox_ping(sb, tests_ms(60000));

	if (again) {
		fprintf(stderr, "as restored (before REFRESH): rip 0x%llx IF %d mp_state %u; PIC master "
			"irr 0x%02x isr 0x%02x imr 0x%02x last_irr 0x%02x\n",
			(unsigned long long)rregs->rip, !!(rregs->rflags & 0x200), rmp->mp_state,
			restored->chip.pic.irr, restored->chip.pic.isr, restored->chip.pic.imr,
			restored->chip.pic.last_irr);
		tests_dump_stuck(sb);
	}
	cr_assert_fail("%s restore: %s within %u ms failed: %s (%s); %s %.0f ms",
		       tests_mode_name(mode), what, ms, strerror(-ret), snapbox_stop_reason(sb),
		       again ? "a second PING got no answer either (the guest is stuck) in" :
		       "a second PING was answered (the host was only slow) after",
		       (double)(tests_now_ns() - t0) / 1e6);
}

struct snapbox *tests_restore_ok(const char *dir, enum snapbox_restore_mode mode,
				 const char *cache_dir, bool resume)
{
	/* Restored parked, then resumed (which sends REFRESH): a guest that
	 * misses REFRESH is still there to be asked again and dumped. */
	struct snapbox_restore_opts o = {
		.mode = mode, .console_fd = -1, .cache_dir = cache_dir,
	};
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	struct kvm_regs regs = { 0 };
	struct kvm_mp_state mp = { 0 };
	struct snapbox *sb = NULL;
	int ret = snapbox_restore(dir, &o, &sb, NULL);

	cr_assert_eq(ret, 0, "%s restore of %s failed: %s", tests_mode_name(mode), dir,
		     strerror(-ret));
	cr_assert_not_null(sb);
	if (!resume)
		return sb;
	/* As restored, for a failure's report: a parked vCPU can be read. */
	ioctl(sb->vm.fd, KVM_GET_IRQCHIP, &pic);
	ioctl(sb->vcpu.fd, KVM_GET_REGS, &regs);
	ioctl(sb->vcpu.fd, KVM_GET_MP_STATE, &mp);
	if ((ret = snapbox_resume(sb)))
		tests_not_answered(sb, mode, "REFRESH", snapbox_scaled_ms(5000), ret, &pic, &regs, &mp);
	if ((ret = snapbox_ping(sb, TS_MS)))
		tests_not_answered(sb, mode, "PING", TS_MS, ret, &pic, &regs, &mp);
	return sb;
}

uint64_t tests_make_snapshot(const char *dir)
{
	struct snapbox *sb = tests_boot_probe_mem(TS_MEM);
	uint64_t h;

	tests_fill(sb, TS_FILL_MIB, TS_SEED);
	h = tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20);
	tests_snapshot_ok(sb, dir, true);
	snapbox_destroy(sb);
	return h;
}
