/* clock.c - guest time: kvmclock (pvclock ABI) when offered, else TSC at tsc_khz= or an assumed 1 GHz. */

#include "guest/probe/probe.h"

#define MSR_KVM_SYSTEM_TIME_NEW   0x4b564d01u
#define KVM_CPUID_SIGNATURE       0x40000000u
#define KVM_CPUID_FEATURES        0x40000001u
#define KVM_FEATURE_CLOCKSOURCE2  3

/* struct pvclock_vcpu_time_info, 32 bytes; must not cross a page. */
struct probe_pvti {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
} __attribute__((packed, aligned(64)));

enum { CLOCK_ASSUMED = 0, CLOCK_CMDLINE = 1, CLOCK_KVM = 2 };

static volatile struct probe_pvti probe_pvti;
static int probe_clock_mode;
static uint64_t probe_khz;
static uint64_t probe_mult;   /* TSC modes: ns = (tsc * mult) >> 32 */

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static int kvm_has_clocksource2(void)
{
	uint32_t a, b, c, d;

	cpuid(1, &a, &b, &c, &d);
	if (!(c & (1u << 31)))        /* no hypervisor */
		return 0;
	cpuid(KVM_CPUID_SIGNATURE, &a, &b, &c, &d);
	/* "KVMKVMKVM\0\0\0" */
	if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d)
		return 0;
	if (a < KVM_CPUID_FEATURES)
		a = KVM_CPUID_FEATURES;  /* old KVM reported 0 here */
	cpuid(KVM_CPUID_FEATURES, &a, &b, &c, &d);
	return (a >> KVM_FEATURE_CLOCKSOURCE2) & 1;
}

static inline uint64_t rdtsc_ordered(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t pv_scale(uint64_t delta, uint32_t mul, int8_t shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/*
 * One consistent pvclock snapshot (version even and unchanged). With
 * tsc == 0, the TSC is read inside the loop as the ABI prescribes.
 */
static uint64_t pv_ns(uint64_t tsc)
{
	uint32_t v, mul;
	uint64_t ts, st, ns;
	int8_t shift;

	do {
		v = probe_pvti.version;
		__asm__ volatile("" : : : "memory");
		ts = probe_pvti.tsc_timestamp;
		st = probe_pvti.system_time;
		mul = probe_pvti.tsc_to_system_mul;
		shift = probe_pvti.tsc_shift;
		ns = tsc ? tsc : rdtsc_ordered();
		__asm__ volatile("" : : : "memory");
	} while ((v & 1) || v != probe_pvti.version);
	/* a TSC from before the snapshot (the entry stamp) scales backwards */
	if (ns >= ts)
		return st + pv_scale(ns - ts, mul, shift);
	return st - pv_scale(ts - ns, mul, shift);
}

static void set_tsc_khz(uint64_t khz, int mode)
{
	probe_khz = khz;
	probe_mult = (1000000ull << 32) / khz;
	probe_clock_mode = mode;
}

void probe_clock_init(void)
{
	if (!probe_boot.nokvmclock && kvm_has_clocksource2()) {
		uint64_t gpa = (uint64_t)(uintptr_t)&probe_pvti;
		uint64_t val = gpa | 1;   /* enable bit */

		probe_io_wrmsr(MSR_KVM_SYSTEM_TIME_NEW, val);
		if (probe_pvti.version != 0 && probe_pvti.tsc_to_system_mul != 0) {
			uint32_t v;
			uint64_t khz;
			int8_t shift;
			do {
				v = probe_pvti.version;
				khz = (1000000ull << 32) / probe_pvti.tsc_to_system_mul;
				shift = probe_pvti.tsc_shift;
			} while ((v & 1) || v != probe_pvti.version);
			if (shift < 0)
				khz <<= -shift;
			else
				khz >>= shift;
			probe_khz = khz;
			probe_clock_mode = CLOCK_KVM;
			return;
		}
	}
	if (probe_boot.tsc_khz)
		set_tsc_khz(probe_boot.tsc_khz, CLOCK_CMDLINE);
	else
		set_tsc_khz(1000000, CLOCK_ASSUMED);
}

uint64_t probe_tsc_to_ns(uint64_t tsc)
{
	if (probe_clock_mode == CLOCK_KVM)
		return pv_ns(tsc ? tsc : 1);
	return (uint64_t)(((unsigned __int128)tsc * probe_mult) >> 32);
}

uint64_t probe_clock_ns(void)
{
	if (probe_clock_mode == CLOCK_KVM)
		return pv_ns(0);
	return probe_tsc_to_ns(probe_rdtsc());
}

uint64_t probe_clock_tsc_khz(void)
{
	return probe_khz;
}

const char *probe_clock_name(void)
{
	switch (probe_clock_mode) {
	case CLOCK_KVM:
		return "kvmclock";
	case CLOCK_CMDLINE:
		return "tsc_khz";
	default:
		return "assumed-1GHz";
	}
}
