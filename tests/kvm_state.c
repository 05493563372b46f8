/* kvm_state.c - vCPU and VM state capture/encode/decode/restore on a paused probe guest, per section and whole. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvm/gmem.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "proto/wire.h"
#include "runtime/sandbox_internal.h"
#include "tests/common_kvm.h"

#define KS_MS            tests_ms(5000)
#define KS_MSR_TSC       0x10u
#define KS_APIC_TMCCT    0x390u   /* LAPIC current count: counts down while the timer runs */

static uint64_t ks_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct snapbox *ks_boot_paused(void)
{
	struct snapbox *sb = tests_boot_probe(NULL, NULL, NULL);

	cr_assert_eq(snapbox_ping(sb, KS_MS), 0);
	cr_assert_eq(vcpu_pause(&sb->vcpu, KS_MS), 0, "pause failed");
	return sb;
}

static void ks_resume_and_ping(struct snapbox *sb)
{
	cr_assert_eq(vcpu_resume(&sb->vcpu), 0);
	cr_assert_eq(snapbox_ping(sb, KS_MS), 0, "PING failed after restore: %s",
		     snapbox_stop_reason(sb));
}

static struct proto_ticks_resp ks_ticks(struct snapbox *sb)
{
	struct proto_ticks_resp t;
	uint32_t n;
	void *r;

	cr_assert_eq(snapbox_request(sb, PROTO_T_TICKS, NULL, 0, &r, &n, KS_MS), 0);
	cr_assert_eq(n, sizeof(t));
	memcpy(&t, r, sizeof(t));
	free(r);
	return t;
}

/* Encode, decode into a fresh state: the "save -> load" half of every test. */
static void ks_vcpu_reload(const struct vcpu_state *a, struct vcpu_state *b)
{
	struct sbuf out;
	struct sbuf_reader in;

	sbuf_init(&out);
	vcpu_state_encode(a, &out);
	cr_assert_eq(out.err, 0);
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vcpu_state_decode(&in, b), 0);
	cr_assert_eq(sbuf_remaining(&in), 0, "decode left bytes over");
	sbuf_fini(&out);
}

/* Named comparison; a field listed in `moving` may differ. Returns unexpected differences. */
static int ks_diff(const char *name, const void *a, const void *b, size_t n, bool moving)
{
	if (memcmp(a, b, n) == 0)
		return 0;
	if (moving)
		return 0;
	cr_log_error("vCPU/VM state differs after restore: %s", name);
	return 1;
}

static void ks_log_events(const struct kvm_vcpu_events *a, const struct kvm_vcpu_events *b)
{
	const struct kvm_vcpu_events *e[2] = { a, b };
	int i;

	for (i = 0; i < 2; i++)
		cr_log_error("events[%d]: exc inj %u nr %u pend %u | irq inj %u nr %u soft %u shadow %u | "
			     "nmi inj %u pend %u masked %u | sipi %u flags 0x%x | smi %u %u %u %u | tf %u",
			     i, e[i]->exception.injected, e[i]->exception.nr, e[i]->exception.pending,
			     e[i]->interrupt.injected, e[i]->interrupt.nr, e[i]->interrupt.soft,
			     e[i]->interrupt.shadow, e[i]->nmi.injected, e[i]->nmi.pending,
			     e[i]->nmi.masked, e[i]->sipi_vector, e[i]->flags, e[i]->smi.smm,
			     e[i]->smi.pending, e[i]->smi.smm_inside_nmi, e[i]->smi.latched_init,
			     e[i]->triple_fault.pending);
}

/*
 * Compare two captures of the same vCPU. Legitimately moving between them:
 * IA32_TSC (the TSC runs in real time) and the LAPIC's current-count
 * register (it counts down while the LAPIC timer is armed); and a pending
 * exception comes back as injected (below).
 */
static int ks_cmp_vcpu(const struct vcpu_state *a, const struct vcpu_state *b)
{
	struct kvm_vcpu_events ea, eb;
	int bad = 0;
	uint32_t i;

	bad += ks_diff("MP_STATE", &a->mp_state, &b->mp_state, sizeof(a->mp_state), false);
	bad += ks_diff("REGS", &a->regs, &b->regs, sizeof(a->regs), false);
	bad += ks_diff("SREGS", &a->sregs, &b->sregs, sizeof(a->sregs), false);
	cr_assert_eq(a->xsave_size, b->xsave_size);
	bad += ks_diff("XSAVE", a->xsave, b->xsave, a->xsave_size, false);
	bad += ks_diff("XCRS", &a->xcrs, &b->xcrs, sizeof(a->xcrs), false);
	bad += ks_diff("DEBUGREGS", &a->debugregs, &b->debugregs, sizeof(a->debugregs), false);
	for (i = 0; i < VCPU_STATE_LAPIC_SIZE; i += 16) {
		char name[32];

		snprintf(name, sizeof(name), "LAPIC reg 0x%03x", i);
		bad += ks_diff(name, &a->lapic.regs[i], &b->lapic.regs[i], 16, i == KS_APIC_TMCCT);
	}
	bad += ks_diff("TSC_KHZ", &a->tsc_khz, &b->tsc_khz, sizeof(a->tsc_khz), false);
	cr_assert_eq(a->cpuid->nent, b->cpuid->nent);
	bad += ks_diff("CPUID", a->cpuid->entries, b->cpuid->entries,
		       a->cpuid->nent * sizeof(a->cpuid->entries[0]), false);
	cr_assert_eq(a->msrs->nmsrs, b->msrs->nmsrs);
	for (i = 0; i < a->msrs->nmsrs; i++) {
		char name[32];

		cr_assert_eq(a->msrs->entries[i].index, b->msrs->entries[i].index);
		snprintf(name, sizeof(name), "MSR 0x%x", a->msrs->entries[i].index);
		if (a->msrs->entries[i].data != b->msrs->entries[i].data && a->msrs->entries[i].index != KS_MSR_TSC)
			cr_log_error("%s: 0x%llx then 0x%llx", name,
				     (unsigned long long)a->msrs->entries[i].data,
				     (unsigned long long)b->msrs->entries[i].data);
		bad += ks_diff(name, &a->msrs->entries[i].data, &b->msrs->entries[i].data, 8,
			       a->msrs->entries[i].index == KS_MSR_TSC);
	}
	ea = a->events;
	eb = b->events;
	/* Without KVM_CAP_EXCEPTION_PAYLOAD, KVM reports a pending exception as
	 * injected *and* pending, and KVM_SET_VCPU_EVENTS ignores "pending":
	 * it comes back as injected only. Same delivery, so compare it so. */
	if (!(ea.flags & KVM_VCPUEVENT_VALID_PAYLOAD))
		ea.exception.pending = eb.exception.pending = 0;
	if (memcmp(&ea, &eb, sizeof(ea)))
		ks_log_events(&a->events, &b->events);
	bad += ks_diff("VCPU_EVENTS", &ea, &eb, sizeof(ea), false);
	return bad;
}

static int ks_cmp_irqchip(const struct vm_state *a, const struct vm_state *b)
{
	return ks_diff("PIC master", &a->pic[0], &b->pic[0], sizeof(a->pic[0]), false) +
	       ks_diff("PIC slave", &a->pic[1], &b->pic[1], sizeof(a->pic[1]), false) +
	       ks_diff("IOAPIC", &a->ioapic, &b->ioapic, sizeof(a->ioapic), false);
}

/* count_load_time is host ktime at the (re)load: KVM sets it anew on KVM_SET_PIT2. */
static int ks_cmp_pit(const struct vm_state *a, const struct vm_state *b)
{
	struct kvm_pit_state2 x = a->pit, y = b->pit;
	int i;

	for (i = 0; i < 3; i++)
		x.channels[i].count_load_time = y.channels[i].count_load_time = 0;
	return ks_diff("PIT2", &x, &y, sizeof(x), false);
}

/* Whether the irqchips (or the PIT) of a and b are equal, logging nothing: a difference is expected here. */
static bool ks_same_quietly(bool irqchip, const struct vm_state *a, const struct vm_state *b)
{
	struct kvm_pit_state2 x = a->pit, y = b->pit;

	if (irqchip)
		return !memcmp(a->pic, b->pic, sizeof(a->pic)) && !memcmp(&a->ioapic, &b->ioapic, sizeof(a->ioapic));
	for (int i = 0; i < 3; i++)
		x.channels[i].count_load_time = y.channels[i].count_load_time = 0;
	return !memcmp(&x, &y, sizeof(x));
}

/* kvmclock after a restore: resumed from the saved value, advanced only by the elapsed host time. */
static void ks_check_clock(const struct vm_state *saved, const struct vm_state *now, uint64_t elapsed_ns)
{
	cr_assert_geq(now->clock.clock, saved->clock.clock, "kvmclock went backwards over the restore");
	cr_assert_leq(now->clock.clock - saved->clock.clock, elapsed_ns,
		      "kvmclock jumped %llu ns over a %llu ns restore",
		      (unsigned long long)(now->clock.clock - saved->clock.clock),
		      (unsigned long long)elapsed_ns);
}

Test(kvm_state, msr_set_is_sorted_and_has_the_clock_msrs)
{
	static const uint32_t want[] = { 0x10, 0x6e0, 0x4b564d00, 0x4b564d01 };
	struct snapbox *sb;
	uint32_t i, j;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	cr_assert_eq(kvmsys_probe_msrs(&sb->sys), 0);
	cr_assert_gt(sb->sys.nmsrs, 0);
	cr_assert_gt(sb->sys.tsc_khz, 0);
	for (i = 1; i < sb->sys.nmsrs; i++)
		cr_assert_gt(sb->sys.msrs[i], sb->sys.msrs[i - 1], "MSR list not strictly ascending");
	for (j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
		bool found = false;

		for (i = 0; i < sb->sys.nmsrs; i++)
			found |= sb->sys.msrs[i] == want[j];
		cr_assert(found, "MSR 0x%x missing from the set", want[j]);
	}
	snapbox_destroy(sb);
}

Test(kvm_state, whole_state_roundtrip_into_the_same_paused_vm)
{
	struct vcpu_state a, b, c;
	struct vm_state va, vb, vc;
	struct proto_ticks_resp t0, t1;
	struct sbuf out;
	struct sbuf_reader in;
	struct snapbox *sb;
	uint64_t t;

	TESTS_REQUIRE_KVM();
	sb = tests_boot_probe(NULL, NULL, NULL);
	t0 = ks_ticks(sb);
	cr_assert_eq(vcpu_pause(&sb->vcpu, KS_MS), 0);
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0);
	cr_assert_eq(vm_state_capture(&sb->vm, &va), 0);

	/* save -> load: every section through its encoding */
	ks_vcpu_reload(&a, &b);
	sbuf_init(&out);
	vm_state_clock_encode(&va, &out);
	vm_state_irqchip_encode(&va, &out);
	vm_state_pit_encode(&va, &out);
	cr_assert_eq(out.err, 0);
	memset(&vb, 0xa5, sizeof(vb));
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vm_state_clock_decode(&in, &vb), 0);
	cr_assert_eq(vm_state_irqchip_decode(&in, &vb), 0);
	cr_assert_eq(vm_state_pit_decode(&in, &vb), 0);
	cr_assert_eq(sbuf_remaining(&in), 0);
	sbuf_fini(&out);

	/* restore into the same VM and vCPU: the VM first (see vm_state.h) */
	t = ks_now_ns();
	cr_assert_eq(vm_state_restore(&sb->vm, &vb), 0);
	cr_assert_eq(vcpu_state_restore(&sb->vcpu, &b), 0);
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &c), 0);
	cr_assert_eq(vm_state_capture(&sb->vm, &vc), 0);
	t = ks_now_ns() - t;

	cr_assert_eq(ks_cmp_vcpu(&a, &c), 0, "vCPU state changed over the round trip");
	cr_assert_eq(ks_cmp_irqchip(&va, &vc), 0, "irqchip state changed over the round trip");
	cr_assert_eq(ks_cmp_pit(&va, &vc), 0, "PIT state changed over the round trip");
	ks_check_clock(&va, &vc, t);

	ks_resume_and_ping(sb);
	t1 = ks_ticks(sb);
	cr_assert_geq(t1.ns, t0.ns, "guest clock went backwards");
	cr_assert_gt(t1.tsc, t0.tsc, "guest TSC went backwards");
	vcpu_state_fini(&a);
	vcpu_state_fini(&b);
	vcpu_state_fini(&c);
	snapbox_destroy(sb);
}

Test(kvm_state, section_vcpu_save_load_compare)
{
	struct vcpu_state a, b, c;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = ks_boot_paused();
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0);
	ks_vcpu_reload(&a, &b);
	cr_assert_eq(vcpu_state_restore(&sb->vcpu, &b), 0);
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &c), 0);
	cr_assert_eq(ks_cmp_vcpu(&a, &c), 0);
	ks_resume_and_ping(sb);
	vcpu_state_fini(&a);
	vcpu_state_fini(&b);
	vcpu_state_fini(&c);
	snapbox_destroy(sb);
}

/* One VM section: capture, encode it alone, decode over a copy, restore, capture, compare. */
enum ks_vm_sec { KS_CLCK, KS_IRQC, KS_PIT2 };

static void ks_vm_section(enum ks_vm_sec sec)
{
	struct vm_state a, b, c;
	struct sbuf out;
	struct sbuf_reader in;
	struct snapbox *sb;
	uint64_t t;
	int ret;

	sb = ks_boot_paused();
	cr_assert_eq(vm_state_capture(&sb->vm, &a), 0);
	b = a;
	sbuf_init(&out);
	if (sec == KS_CLCK) {
		vm_state_clock_encode(&a, &out);
		memset(&b.clock, 0x5a, sizeof(b.clock));
	} else if (sec == KS_IRQC) {
		vm_state_irqchip_encode(&a, &out);
		memset(b.pic, 0x5a, sizeof(b.pic));
		memset(&b.ioapic, 0x5a, sizeof(b.ioapic));
	} else {
		vm_state_pit_encode(&a, &out);
		memset(&b.pit, 0x5a, sizeof(b.pit));
	}
	cr_assert_eq(out.err, 0);
	sbuf_reader_init(&in, out.data, out.len);
	ret = sec == KS_CLCK ? vm_state_clock_decode(&in, &b) :
	      sec == KS_IRQC ? vm_state_irqchip_decode(&in, &b) : vm_state_pit_decode(&in, &b);
	cr_assert_eq(ret, 0);
	cr_assert_eq(sbuf_remaining(&in), 0);
	sbuf_fini(&out);
	if (sec != KS_CLCK) {
		/* The irqchips and the PIT go into another VM, first given other
		 * values, so only a restore that really sets them can match. */
		struct snapbox *dst = ks_boot_paused();
		struct vm_state other;

		cr_assert_eq(vm_state_capture(&dst->vm, &other), 0);
		if (sec == KS_IRQC) {
			other.pic[0].imr ^= 0x20;
			other.ioapic.redirtbl[5].bits ^= 1ull << 16;   /* toggle the mask */
		} else {
			other.pit.channels[2].count = 0x1234;
		}
		cr_assert_eq(vm_state_restore(&dst->vm, &other), 0);
		cr_assert_eq(vm_state_capture(&dst->vm, &c), 0);
		cr_assert_not(ks_same_quietly(sec == KS_IRQC, &a, &c), "the destination already held the source's state");
		snapbox_destroy(sb);
		sb = dst;
	}
	t = ks_now_ns();
	cr_assert_eq(vm_state_restore(&sb->vm, &b), 0);
	cr_assert_eq(vm_state_capture(&sb->vm, &c), 0);
	t = ks_now_ns() - t;
	if (sec == KS_CLCK)
		ks_check_clock(&a, &c, t);
	else if (sec == KS_IRQC)
		cr_assert_eq(ks_cmp_irqchip(&a, &c), 0);
	else
		cr_assert_eq(ks_cmp_pit(&a, &c), 0);
	ks_resume_and_ping(sb);
	snapbox_destroy(sb);
}

Test(kvm_state, section_clck_save_load_compare)
{
	TESTS_REQUIRE_KVM();
	ks_vm_section(KS_CLCK);
}

Test(kvm_state, section_irqc_save_load_compare)
{
	TESTS_REQUIRE_KVM();
	ks_vm_section(KS_IRQC);
}

Test(kvm_state, section_pit2_save_load_compare)
{
	TESTS_REQUIRE_KVM();
	ks_vm_section(KS_PIT2);
}

Test(kvm_state, section_host_save_load_compare)
{
	struct vcpu_state_host h;
	struct vcpu_state a;
	struct sbuf out;
	struct sbuf_reader in;
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	sb = ks_boot_paused();
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0);
	sbuf_init(&out);
	vcpu_state_host_encode(&a, sb->sys.msrs, sb->sys.nmsrs, &out);
	cr_assert_eq(out.err, 0);
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vcpu_state_host_decode(&in, &h), 0);
	cr_assert_eq(sbuf_remaining(&in), 0);
	cr_assert_eq(h.tsc_khz, sb->sys.tsc_khz, "a new vCPU's TSC rate differs from the probe's");
	cr_assert_eq(h.tsc_khz, a.tsc_khz);
	cr_assert_eq(h.cpuid->nent, a.cpuid->nent);
	cr_assert_eq(memcmp(h.cpuid->entries, a.cpuid->entries,
			    a.cpuid->nent * sizeof(a.cpuid->entries[0])), 0);
	cr_assert_eq(h.nmsrs, sb->sys.nmsrs);
	cr_assert_eq(memcmp(h.msr_index, sb->sys.msrs, h.nmsrs * sizeof(uint32_t)), 0);
	vcpu_state_host_fini(&h);
	sbuf_fini(&out);
	ks_resume_and_ping(sb);
	vcpu_state_fini(&a);
	snapbox_destroy(sb);
}

/* A VM shell like a restore builds: irqchip, PIT, memory (copied from sb), one vCPU never run. */
struct ks_shell {
	struct kvmsys sys;
	struct vm vm;
	struct gmem mem;
	struct vcpu vcpu;
};

static void ks_shell_init(struct ks_shell *s, struct snapbox *sb)
{
	memset(s, 0, sizeof(*s));
	cr_assert_eq(kvmsys_init(&s->sys, NULL), 0);
	cr_assert_eq(vm_init(&s->vm, &s->sys), 0);
	cr_assert_eq(vm_arch_setup(&s->vm), 0);
	cr_assert_eq(gmem_init(&s->mem, sb->mem.size), 0);
	memcpy(s->mem.host, sb->mem.host, sb->mem.size);
	cr_assert_eq(vm_set_memory(&s->vm, 0, 0, s->mem.size, s->mem.host), 0);
	cr_assert_eq(vcpu_init(&s->vcpu, &s->vm, 0), 0);
}

static void ks_shell_fini(struct ks_shell *s)
{
	vcpu_fini(&s->vcpu);
	vm_fini(&s->vm);
	gmem_fini(&s->mem);
	kvmsys_fini(&s->sys);
}

static int ks_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

Test(kvm_state, restore_into_a_fresh_never_run_vcpu)
{
	struct vcpu_state a, b, c;
	struct vm_state va, vc;
	struct ks_shell s;
	struct snapbox *sb;
	uint64_t t, t_vm, t_vcpu, tsc_a = 0, tsc_c = 0, max_ticks;
	uint32_t i;

	TESTS_REQUIRE_KVM();
	sb = ks_boot_paused();
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0);
	cr_assert_eq(vm_state_capture(&sb->vm, &va), 0);
	ks_vcpu_reload(&a, &b);
	ks_shell_init(&s, sb);

	t = ks_now_ns();
	cr_assert_eq(vm_state_restore(&s.vm, &va), 0);
	t_vm = ks_now_ns() - t;
	cr_assert_eq(vcpu_state_restore(&s.vcpu, &b), 0);
	t_vcpu = ks_now_ns() - t - t_vm;
	cr_assert_eq(vcpu_state_capture(&s.vcpu, &c), 0);
	cr_assert_eq(vm_state_capture(&s.vm, &vc), 0);
	t = ks_now_ns() - t;
	cr_log_info("fresh-vCPU restore: VM state %.1f us, vCPU state %.1f us (incl. KVM_SET_CPUID2)",
		    t_vm / 1e3, t_vcpu / 1e3);

	cr_assert_eq(ks_cmp_vcpu(&a, &c), 0, "fresh vCPU does not hold the restored state");
	cr_assert_eq(ks_cmp_irqchip(&va, &vc), 0);
	cr_assert_eq(ks_cmp_pit(&va, &vc), 0);
	ks_check_clock(&va, &vc, t);
	/* On hardware KVM a fresh VM takes the IA32_TSC write exactly (KVM's
	 * "sync within 1 s of the last write" rule needs an earlier user
	 * write), so the guest TSC resumes from the saved value and moves by at
	 * most the restore time. KVM-PVM accepts the write but ignores it: the
	 * guest TSC is the host TSC (ring 3 runs natively, rdtsc unoffset). */
	for (i = 0; i < a.msrs->nmsrs; i++)
		if (a.msrs->entries[i].index == KS_MSR_TSC) {
			tsc_a = a.msrs->entries[i].data;
			tsc_c = c.msrs->entries[i].data;
		}
	cr_assert_geq(tsc_c, tsc_a, "TSC went backwards");
	max_ticks = t / 1000 * a.tsc_khz / 1000 + a.tsc_khz; /* + 1 ms of slack */
	if (s.sys.is_pvm)
		cr_log_info("PVM: guest TSC moved %llu ticks over the restore (host TSC; the write is ignored)",
			    (unsigned long long)(tsc_c - tsc_a));
	else
		cr_assert_leq(tsc_c - tsc_a, max_ticks, "TSC jumped by %llu ticks",
			      (unsigned long long)(tsc_c - tsc_a));
	vcpu_state_fini(&a);
	vcpu_state_fini(&b);
	vcpu_state_fini(&c);
	ks_shell_fini(&s);
	ks_resume_and_ping(sb);
	snapbox_destroy(sb);
}

/* Not a pass/fail test: the numbers for the report (run with --verbose). */
Test(kvm_state, capture_and_restore_timing)
{
	enum { N = 41 };
	uint64_t cap[N], res[N], vcap[N], vres[N];
	struct vcpu_state a;
	struct vm_state v;
	struct snapbox *sb;
	uint64_t t;
	int i;

	TESTS_REQUIRE_KVM();
	sb = ks_boot_paused();
	cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0); /* MSR probe done here, once */
	vcpu_state_fini(&a);
	for (i = 0; i < N; i++) {
		t = ks_now_ns();
		cr_assert_eq(vcpu_state_capture(&sb->vcpu, &a), 0);
		cap[i] = ks_now_ns() - t;
		t = ks_now_ns();
		cr_assert_eq(vm_state_capture(&sb->vm, &v), 0);
		vcap[i] = ks_now_ns() - t;
		t = ks_now_ns();
		cr_assert_eq(vm_state_restore(&sb->vm, &v), 0);
		vres[i] = ks_now_ns() - t;
		t = ks_now_ns();
		cr_assert_eq(vcpu_state_restore(&sb->vcpu, &a), 0);
		res[i] = ks_now_ns() - t;
		vcpu_state_fini(&a);
	}
	qsort(cap, N, sizeof(cap[0]), ks_cmp_u64);
	qsort(res, N, sizeof(res[0]), ks_cmp_u64);
	qsort(vcap, N, sizeof(vcap[0]), ks_cmp_u64);
	qsort(vres, N, sizeof(vres[0]), ks_cmp_u64);
	cr_log_info("p50 of %d: vCPU capture %.1f us, vCPU restore %.1f us, VM capture %.1f us, "
		    "VM restore %.1f us", N, cap[N / 2] / 1e3, res[N / 2] / 1e3, vcap[N / 2] / 1e3,
		    vres[N / 2] / 1e3);
	ks_resume_and_ping(sb);
	snapbox_destroy(sb);
}
