/* unit_state.c - the VCPU/HOST/CLCK/IRQC/PIT2 payload encodings without KVM: round trips, layout, and every rejection. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"

/* Wire sizes from docs/snapshot-sections.md; the layout test holds the code to them. */
#define US_HEAD        (2 + 4 + 18 * 8)                     /* version, mp_state, 18 GPRs */
#define US_SREGS       (8 * 23 + 2 * 10 + 7 * 8 + 4 + 32)   /* segments, dtables, CRs, bitmap */
#define US_XSAVE_OFF   (US_HEAD + US_SREGS)
#define US_EVENTS      37
#define US_CLCK_LEN    30
#define US_IRQC_LEN    250
#define US_PIT2_LEN    78

static uint64_t us_rng;

static uint64_t us_rand(void)
{
	us_rng ^= us_rng << 13;
	us_rng ^= us_rng >> 7;
	us_rng ^= us_rng << 17;
	return us_rng;
}

static void us_fill(void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)us_rand();
}

static void us_quiet(void)
{
	cr_redirect_stderr(); /* every rejection logs one line; they are expected here */
}

/* Random contents in every encoded field; zero in every field the encoding leaves out. */
static void us_fill_vcpu(struct vcpu_state *st, uint64_t seed, uint32_t ncpuid, uint32_t nmsrs)
{
	struct kvm_segment *segs[] = { &st->sregs.cs, &st->sregs.ds, &st->sregs.es, &st->sregs.fs,
				       &st->sregs.gs, &st->sregs.ss, &st->sregs.tr, &st->sregs.ldt };
	uint32_t i, idx = 0;

	us_rng = seed * 0x9e3779b97f4a7c15ull + 1;
	vcpu_state_init(st);
	us_fill(&st->mp_state, sizeof(st->mp_state));
	us_fill(&st->regs, sizeof(st->regs));
	us_fill(&st->sregs, sizeof(st->sregs));
	for (i = 0; i < 8; i++)
		segs[i]->padding = 0;
	memset(st->sregs.gdt.padding, 0, sizeof(st->sregs.gdt.padding));
	memset(st->sregs.idt.padding, 0, sizeof(st->sregs.idt.padding));
	st->xsave_size = 4096 + 64 * (uint32_t)(us_rand() % 4);
	st->xsave = malloc(st->xsave_size);
	cr_assert_not_null(st->xsave);
	us_fill(st->xsave, st->xsave_size);
	memset(&st->xcrs, 0, sizeof(st->xcrs));
	st->xcrs.nr_xcrs = (uint32_t)(us_rand() % (KVM_MAX_XCRS + 1));
	st->xcrs.flags = (uint32_t)us_rand();
	for (i = 0; i < st->xcrs.nr_xcrs; i++) {
		st->xcrs.xcrs[i].xcr = (uint32_t)us_rand();
		st->xcrs.xcrs[i].value = us_rand();
	}
	us_fill(&st->debugregs, sizeof(st->debugregs));
	memset(st->debugregs.reserved, 0, sizeof(st->debugregs.reserved));
	us_fill(&st->lapic, sizeof(st->lapic));
	st->tsc_khz = (uint32_t)us_rand();
	st->cpuid = calloc(1, sizeof(*st->cpuid) + ncpuid * sizeof(st->cpuid->entries[0]));
	cr_assert_not_null(st->cpuid);
	st->cpuid->nent = ncpuid;
	for (i = 0; i < ncpuid; i++) {
		us_fill(&st->cpuid->entries[i], sizeof(st->cpuid->entries[i]));
		memset(st->cpuid->entries[i].padding, 0, sizeof(st->cpuid->entries[i].padding));
	}
	st->msrs = calloc(1, sizeof(*st->msrs) + nmsrs * sizeof(st->msrs->entries[0]));
	cr_assert_not_null(st->msrs);
	st->msrs->nmsrs = nmsrs;
	for (i = 0; i < nmsrs; i++) {
		idx += 1 + (uint32_t)(us_rand() % 1000);   /* strictly ascending */
		st->msrs->entries[i].index = idx;
		st->msrs->entries[i].data = us_rand();
	}
	us_fill(&st->events, sizeof(st->events));
	st->events.nmi.pad = 0;
	memset(st->events.reserved, 0, sizeof(st->events.reserved));
}

static void us_assert_vcpu_eq(const struct vcpu_state *a, const struct vcpu_state *b)
{
	cr_assert_eq(memcmp(&a->mp_state, &b->mp_state, sizeof(a->mp_state)), 0, "MP_STATE");
	cr_assert_eq(memcmp(&a->regs, &b->regs, sizeof(a->regs)), 0, "REGS");
	cr_assert_eq(memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)), 0, "SREGS");
	cr_assert_eq(a->xsave_size, b->xsave_size, "XSAVE size");
	cr_assert_eq(memcmp(a->xsave, b->xsave, a->xsave_size), 0, "XSAVE");
	cr_assert_eq(memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)), 0, "XCRS");
	cr_assert_eq(memcmp(&a->debugregs, &b->debugregs, sizeof(a->debugregs)), 0, "DEBUGREGS");
	cr_assert_eq(memcmp(&a->lapic, &b->lapic, sizeof(a->lapic)), 0, "LAPIC");
	cr_assert_eq(a->tsc_khz, b->tsc_khz, "TSC_KHZ");
	cr_assert_eq(a->cpuid->nent, b->cpuid->nent, "CPUID count");
	cr_assert_eq(memcmp(a->cpuid, b->cpuid, sizeof(*a->cpuid) + a->cpuid->nent *
			    sizeof(a->cpuid->entries[0])), 0, "CPUID");
	cr_assert_eq(a->msrs->nmsrs, b->msrs->nmsrs, "MSR count");
	cr_assert_eq(memcmp(a->msrs, b->msrs, sizeof(*a->msrs) + a->msrs->nmsrs *
			    sizeof(a->msrs->entries[0])), 0, "MSRs");
	cr_assert_eq(memcmp(&a->events, &b->events, sizeof(a->events)), 0, "VCPU_EVENTS");
}

static void us_fill_vm(struct vm_state *st, uint64_t seed)
{
	us_rng = seed * 0x9e3779b97f4a7c15ull + 7;
	memset(st, 0, sizeof(*st));
	st->clock.clock = us_rand();
	st->clock.flags = (uint32_t)us_rand();
	st->clock.realtime = us_rand();
	st->clock.host_tsc = us_rand();
	us_fill(st->pic, sizeof(st->pic));
	us_fill(&st->ioapic, sizeof(st->ioapic));
	st->ioapic.pad = 0;
	us_fill(st->pit.channels, sizeof(st->pit.channels));
	st->pit.flags = (uint32_t)us_rand();
}

/* The payload offsets of a state, per the documented layout. */
struct us_layout {
	size_t xcrs, debugregs, lapic, tsc, cpuid, msrs, events, end;
};

static struct us_layout us_layout_of(const struct vcpu_state *st)
{
	struct us_layout l;

	l.xcrs = US_XSAVE_OFF + 4 + st->xsave_size;
	l.debugregs = l.xcrs + 8 + 12 * st->xcrs.nr_xcrs;
	l.lapic = l.debugregs + 7 * 8;
	l.tsc = l.lapic + 4 + 1024;
	l.cpuid = l.tsc + 4;
	l.msrs = l.cpuid + 4 + 28 * st->cpuid->nent;
	l.events = l.msrs + 4 + 12 * st->msrs->nmsrs;
	l.end = l.events + US_EVENTS;
	return l;
}

static int us_decode(const uint8_t *p, size_t n, struct vcpu_state *out)
{
	struct sbuf_reader in;

	sbuf_reader_init(&in, p, n);
	return vcpu_state_decode(&in, out);
}

static void us_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Decode must fail with -EPROTO and leave the state empty. */
static void us_assert_rejected(const uint8_t *p, size_t n, const char *why)
{
	struct vcpu_state d;

	memset(&d, 0x5a, sizeof(d));
	cr_assert_eq(us_decode(p, n, &d), -EPROTO, "accepted: %s", why);
	cr_assert_null(d.xsave, "%s: state not left empty", why);
	cr_assert_null(d.cpuid);
	cr_assert_null(d.msrs);
}

Test(state_codec, vcpu_roundtrip_many_seeds, .init = us_quiet)
{
	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct vcpu_state a, b;
		struct sbuf out;
		struct sbuf_reader in;

		us_fill_vcpu(&a, seed, (uint32_t)(seed * 7 % 80), (uint32_t)(seed * 13 % 300));
		sbuf_init(&out);
		vcpu_state_encode(&a, &out);
		cr_assert_eq(out.err, 0);
		cr_assert_eq(out.len, us_layout_of(&a).end, "payload length differs from the documented layout");
		sbuf_reader_init(&in, out.data, out.len);
		cr_assert_eq(vcpu_state_decode(&in, &b), 0, "seed %llu", (unsigned long long)seed);
		cr_assert_eq(sbuf_remaining(&in), 0);
		us_assert_vcpu_eq(&a, &b);
		vcpu_state_fini(&a);
		vcpu_state_fini(&b);
		sbuf_fini(&out);
	}
}

Test(state_codec, vcpu_layout_is_little_endian_and_as_documented)
{
	struct vcpu_state a;
	struct sbuf out;
	struct us_layout l;

	us_fill_vcpu(&a, 99, 3, 5);
	a.regs.rax = 0x0807060504030201ull;
	a.sregs.interrupt_bitmap[1] = 1ull << 3;   /* vector 67: byte 8, bit 3 */
	sbuf_init(&out);
	vcpu_state_encode(&a, &out);
	l = us_layout_of(&a);
	cr_assert_eq(out.data[0], VCPU_STATE_VERSION);
	cr_assert_eq(out.data[1], 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(out.data[6 + i], i + 1, "RAX not little-endian");
	cr_assert_eq(out.data[US_XSAVE_OFF - 36], 32, "bitmap size");
	cr_assert_eq(out.data[US_XSAVE_OFF - 32 + 8], 1u << 3, "bitmap bit order");
	cr_assert_eq(memcmp(out.data + US_XSAVE_OFF + 4, a.xsave, a.xsave_size), 0);
	cr_assert_eq(out.data[l.lapic] | out.data[l.lapic + 1] << 8, 1024);
	cr_assert_eq(memcmp(out.data + l.lapic + 4, a.lapic.regs, 1024), 0);
	cr_assert_eq(out.data[l.cpuid], 3);
	cr_assert_eq(out.data[l.msrs], 5);
	cr_assert_eq(out.len, l.end);
	vcpu_state_fini(&a);
	sbuf_fini(&out);
}

Test(state_codec, vcpu_truncated_anywhere_is_rejected, .init = us_quiet)
{
	struct vcpu_state a;
	struct sbuf out;

	us_fill_vcpu(&a, 5, 4, 6);
	sbuf_init(&out);
	vcpu_state_encode(&a, &out);
	/* Every prefix: inside each field, and at every field boundary. */
	for (size_t n = 0; n < out.len; n++)
		us_assert_rejected(out.data, n, "a truncated payload");
	vcpu_state_fini(&a);
	sbuf_fini(&out);
}

Test(state_codec, vcpu_counts_and_sizes_over_the_caps_are_rejected, .init = us_quiet)
{
	static const struct { int field; uint32_t value; const char *why; } bad[] = {
		{ 0, VCPU_STATE_MAX_XSAVE + 4, "XSAVE over 1 MiB" },
		{ 0, 0xffffffffu, "XSAVE of 4 GiB" },
		{ 0, 4092, "XSAVE under 4096" },
		{ 0, 4098, "XSAVE not a multiple of 4" },
		{ 1, KVM_MAX_XCRS + 1, "17 XCRs" },
		{ 2, 1023, "LAPIC page of 1023 bytes" },
		{ 3, VCPU_STATE_MAX_CPUID + 1, "1025 CPUID entries" },
		{ 3, 0xffffffffu, "4G CPUID entries" },
		{ 4, VCPU_STATE_MAX_MSRS + 1, "4097 MSRs" },
		{ 4, 0xffffffffu, "4G MSRs" },
		{ 5, 31, "interrupt bitmap of 31 bytes" },
	};
	struct vcpu_state a;
	struct sbuf out;
	struct us_layout l;
	uint8_t *big;
	size_t cap;

	us_fill_vcpu(&a, 6, 2, 2);
	sbuf_init(&out);
	vcpu_state_encode(&a, &out);
	l = us_layout_of(&a);
	/* Room for a full capped table after the count, so only the cap can reject it. */
	cap = out.len + (size_t)VCPU_STATE_MAX_MSRS * 12 + 2 * VCPU_STATE_MAX_XSAVE;
	big = calloc(1, cap);
	cr_assert_not_null(big);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const size_t off[] = { US_XSAVE_OFF, l.xcrs, l.lapic, l.cpuid, l.msrs, US_XSAVE_OFF - 36 };

		memset(big, 0, cap);
		memcpy(big, out.data, out.len);
		us_put_le32(big + off[bad[i].field], bad[i].value);
		us_assert_rejected(big, cap, bad[i].why);
	}
	/* A count within the cap but beyond the bytes left: refused before allocating it. */
	memcpy(big, out.data, out.len);
	us_put_le32(big + l.msrs, VCPU_STATE_MAX_MSRS);
	us_assert_rejected(big, l.msrs + 4 + 12 * 10, "MSR table longer than the payload");
	free(big);
	vcpu_state_fini(&a);
	sbuf_fini(&out);
}

Test(state_codec, vcpu_unsorted_msrs_and_wrong_version_are_rejected, .init = us_quiet)
{
	struct vcpu_state a;
	struct sbuf out;
	struct us_layout l;

	us_fill_vcpu(&a, 8, 1, 3);
	a.msrs->entries[2].index = a.msrs->entries[1].index;   /* duplicate */
	sbuf_init(&out);
	vcpu_state_encode(&a, &out);
	us_assert_rejected(out.data, out.len, "a duplicate MSR index");
	l = us_layout_of(&a);
	us_put_le32(out.data + l.msrs + 4 + 2 * 12, a.msrs->entries[0].index - 1);
	us_assert_rejected(out.data, out.len, "descending MSR indices");
	out.data[0] = VCPU_STATE_VERSION + 1;
	us_assert_rejected(out.data, out.len, "version 2");
	out.data[0] = 0;
	us_assert_rejected(out.data, out.len, "version 0");
	vcpu_state_fini(&a);
	sbuf_fini(&out);
}

Test(state_codec, host_roundtrip_and_rejections, .init = us_quiet)
{
	static const uint32_t idx[] = { 0x10, 0x11, 0x6e0, 0x4b564d00, 0x4b564d01, 0xc0000081 };
	struct vcpu_state a;
	struct vcpu_state_host h;
	struct sbuf out;
	struct sbuf_reader in;
	size_t n;

	us_fill_vcpu(&a, 11, 9, 0);
	sbuf_init(&out);
	vcpu_state_host_encode(&a, idx, 6, &out);
	cr_assert_eq(out.len, 2 + 4 + 4 + 9 * 28 + 4 + 6 * 4);
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vcpu_state_host_decode(&in, &h), 0);
	cr_assert_eq(h.tsc_khz, a.tsc_khz);
	cr_assert_eq(memcmp(h.cpuid, a.cpuid, sizeof(*a.cpuid) + 9 * sizeof(a.cpuid->entries[0])), 0);
	cr_assert_eq(h.nmsrs, 6);
	cr_assert_eq(memcmp(h.msr_index, idx, sizeof(idx)), 0);
	vcpu_state_host_fini(&h);
	for (n = 0; n < out.len; n++) {
		sbuf_reader_init(&in, out.data, n);
		cr_assert_eq(vcpu_state_host_decode(&in, &h), -EPROTO, "prefix %zu accepted", n);
		cr_assert_null(h.cpuid);
		cr_assert_null(h.msr_index);
	}
	us_put_le32(out.data + out.len - 4 * 7, VCPU_STATE_MAX_MSRS + 1);
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vcpu_state_host_decode(&in, &h), -EPROTO, "MSR count over the cap accepted");
	out.data[0] = 9;
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vcpu_state_host_decode(&in, &h), -EPROTO, "wrong version accepted");
	vcpu_state_fini(&a);
	sbuf_fini(&out);
}

typedef void (*us_enc_fn)(const struct vm_state *, struct sbuf *);
typedef int (*us_dec_fn)(struct sbuf_reader *, struct vm_state *);

/* One VM section: round trip over a scrambled target, length, truncation, version. */
static void us_vm_section(us_enc_fn enc, us_dec_fn dec, size_t want_len)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct vm_state a, b;
		struct sbuf out;
		struct sbuf_reader in;

		us_fill_vm(&a, seed);
		b = a;
		sbuf_init(&out);
		enc(&a, &out);
		cr_assert_eq(out.err, 0);
		cr_assert_eq(out.len, want_len, "payload is %zu bytes, documented %zu", out.len, want_len);
		if (enc == vm_state_clock_encode)
			memset(&b.clock, 0x77, sizeof(b.clock));
		else if (enc == vm_state_irqchip_encode) {
			memset(b.pic, 0x77, sizeof(b.pic));
			memset(&b.ioapic, 0x77, sizeof(b.ioapic));
		} else
			memset(&b.pit, 0x77, sizeof(b.pit));
		sbuf_reader_init(&in, out.data, out.len);
		cr_assert_eq(dec(&in, &b), 0);
		cr_assert_eq(sbuf_remaining(&in), 0);
		cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0, "seed %llu", (unsigned long long)seed);
		for (size_t n = 0; n < out.len; n++) {
			struct vm_state c = a;

			sbuf_reader_init(&in, out.data, n);
			cr_assert_eq(dec(&in, &c), -EPROTO, "prefix %zu accepted", n);
			cr_assert_eq(memcmp(&a, &c, sizeof(a)), 0, "a failed decode changed the state");
		}
		out.data[0]++;
		sbuf_reader_init(&in, out.data, out.len);
		cr_assert_eq(dec(&in, &b), -EPROTO, "wrong version accepted");
		sbuf_fini(&out);
	}
}

Test(state_codec, clck_roundtrip_and_rejections, .init = us_quiet)
{
	us_vm_section(vm_state_clock_encode, vm_state_clock_decode, US_CLCK_LEN);
}

Test(state_codec, irqc_roundtrip_and_rejections, .init = us_quiet)
{
	struct vm_state a;
	struct sbuf out;
	struct sbuf_reader in;

	us_vm_section(vm_state_irqchip_encode, vm_state_irqchip_decode, US_IRQC_LEN);
	us_fill_vm(&a, 3);
	sbuf_init(&out);
	vm_state_irqchip_encode(&a, &out);
	us_put_le32(out.data + 2 + 32 + 20, 23);   /* IOAPIC pin count */
	sbuf_reader_init(&in, out.data, out.len);
	cr_assert_eq(vm_state_irqchip_decode(&in, &a), -EPROTO, "a 23-pin IOAPIC accepted");
	sbuf_fini(&out);
}

Test(state_codec, pit2_roundtrip_and_rejections, .init = us_quiet)
{
	us_vm_section(vm_state_pit_encode, vm_state_pit_decode, US_PIT2_LEN);
}
