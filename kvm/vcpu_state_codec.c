/* vcpu_state_codec.c - the 'VCPU' and 'HOST' section payloads: field-by-field little-endian encode and checked decode. */
#include "kvm/vcpu_state.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VCPU_STATE_CPUID_WIRE  28u   /* function, index, flags, eax, ebx, ecx, edx */
#define VCPU_STATE_MSR_WIRE    12u   /* u32 index, u64 data */
#define VCPU_STATE_XCR_WIRE    12u   /* u32 xcr, u64 value */

/* The kernel layouts this encoding reads from; a header change that breaks one fails the build. */
_Static_assert(sizeof(struct kvm_lapic_state) == VCPU_STATE_LAPIC_SIZE, "LAPIC page is 1 KiB");
_Static_assert(sizeof(((struct kvm_sregs *)0)->interrupt_bitmap) == VCPU_STATE_IRQ_BITMAP,
	       "interrupt bitmap is 256 bits");
_Static_assert(sizeof(struct kvm_xsave) == VCPU_STATE_MIN_XSAVE, "legacy XSAVE area is 4 KiB");
_Static_assert(sizeof(((struct kvm_regs *)0)->rax) == 8, "GPRs are 64-bit");
_Static_assert(sizeof(((struct kvm_debugregs *)0)->db) == 4 * 8, "DR0-DR3");
_Static_assert(KVM_MAX_XCRS == 16, "XCR table cap");

/* ---- encode ---------------------------------------------------------------- */

static void vcpu_state_put_seg(struct sbuf *b, const struct kvm_segment *s)
{
	sbuf_put_u64(b, s->base);
	sbuf_put_u32(b, s->limit);
	sbuf_put_u16(b, s->selector);
	sbuf_put_u8(b, s->type);
	sbuf_put_u8(b, s->present);
	sbuf_put_u8(b, s->dpl);
	sbuf_put_u8(b, s->db);
	sbuf_put_u8(b, s->s);
	sbuf_put_u8(b, s->l);
	sbuf_put_u8(b, s->g);
	sbuf_put_u8(b, s->avl);
	sbuf_put_u8(b, s->unusable);
}

static void vcpu_state_put_dtable(struct sbuf *b, const struct kvm_dtable *d)
{
	sbuf_put_u64(b, d->base);
	sbuf_put_u16(b, d->limit);
}

static void vcpu_state_put_sregs(struct sbuf *b, const struct kvm_sregs *s)
{
	const struct kvm_segment *segs[] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss,
					     &s->tr, &s->ldt };
	uint32_t i;

	for (i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
		vcpu_state_put_seg(b, segs[i]);
	vcpu_state_put_dtable(b, &s->gdt);
	vcpu_state_put_dtable(b, &s->idt);
	sbuf_put_u64(b, s->cr0);
	sbuf_put_u64(b, s->cr2);
	sbuf_put_u64(b, s->cr3);
	sbuf_put_u64(b, s->cr4);
	sbuf_put_u64(b, s->cr8);
	sbuf_put_u64(b, s->efer);
	sbuf_put_u64(b, s->apic_base);
	/* The pending-interrupt bitmap as an architectural blob: byte v/8, bit v%8. */
	sbuf_put_u32(b, VCPU_STATE_IRQ_BITMAP);
	for (i = 0; i < VCPU_STATE_IRQ_BITMAP; i++)
		sbuf_put_u8(b, (uint8_t)(s->interrupt_bitmap[i / 8] >> (8 * (i % 8))));
}

static void vcpu_state_put_cpuid(struct sbuf *b, const struct kvm_cpuid2 *c)
{
	uint32_t i, n = c ? c->nent : 0;

	sbuf_put_u32(b, n);
	for (i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		sbuf_put_u32(b, e->function);
		sbuf_put_u32(b, e->index);
		sbuf_put_u32(b, e->flags);
		sbuf_put_u32(b, e->eax);
		sbuf_put_u32(b, e->ebx);
		sbuf_put_u32(b, e->ecx);
		sbuf_put_u32(b, e->edx);
	}
}

static void vcpu_state_put_events(struct sbuf *b, const struct kvm_vcpu_events *e)
{
	sbuf_put_u8(b, e->exception.injected);
	sbuf_put_u8(b, e->exception.nr);
	sbuf_put_u8(b, e->exception.has_error_code);
	sbuf_put_u8(b, e->exception.pending);
	sbuf_put_u32(b, e->exception.error_code);
	sbuf_put_u8(b, e->interrupt.injected);
	sbuf_put_u8(b, e->interrupt.nr);
	sbuf_put_u8(b, e->interrupt.soft);
	sbuf_put_u8(b, e->interrupt.shadow);
	sbuf_put_u8(b, e->nmi.injected);
	sbuf_put_u8(b, e->nmi.pending);
	sbuf_put_u8(b, e->nmi.masked);
	sbuf_put_u32(b, e->sipi_vector);
	sbuf_put_u32(b, e->flags);
	sbuf_put_u8(b, e->smi.smm);
	sbuf_put_u8(b, e->smi.pending);
	sbuf_put_u8(b, e->smi.smm_inside_nmi);
	sbuf_put_u8(b, e->smi.latched_init);
	sbuf_put_u8(b, e->triple_fault.pending);
	sbuf_put_u8(b, e->exception_has_payload);
	sbuf_put_u64(b, e->exception_payload);
}

void vcpu_state_encode(const struct vcpu_state *st, struct sbuf *out)
{
	const struct kvm_regs *r = &st->regs;
	const uint64_t gpr[] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp,
				 r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
				 r->rip, r->rflags };
	uint32_t i, n;

	sbuf_put_u16(out, VCPU_STATE_VERSION);
	sbuf_put_u32(out, st->mp_state.mp_state);
	for (i = 0; i < sizeof(gpr) / sizeof(gpr[0]); i++)
		sbuf_put_u64(out, gpr[i]);
	vcpu_state_put_sregs(out, &st->sregs);
	/* The XSAVE area is architectural (SDM vol. 1 ch. 13, standard format,
	 * offsets per host CPUID 0xD): size + bytes. */
	sbuf_put_u32(out, st->xsave ? st->xsave_size : 0);
	if (st->xsave)
		sbuf_put_bytes(out, st->xsave, st->xsave_size);
	n = st->xcrs.nr_xcrs <= KVM_MAX_XCRS ? st->xcrs.nr_xcrs : KVM_MAX_XCRS;
	sbuf_put_u32(out, n);
	sbuf_put_u32(out, st->xcrs.flags);
	for (i = 0; i < n; i++) {
		sbuf_put_u32(out, st->xcrs.xcrs[i].xcr);
		sbuf_put_u64(out, st->xcrs.xcrs[i].value);
	}
	for (i = 0; i < 4; i++)
		sbuf_put_u64(out, st->debugregs.db[i]);
	sbuf_put_u64(out, st->debugregs.dr6);
	sbuf_put_u64(out, st->debugregs.dr7);
	sbuf_put_u64(out, st->debugregs.flags);
	/* The LAPIC register page is architectural (xAPIC MMIO layout): size + bytes. */
	sbuf_put_u32(out, VCPU_STATE_LAPIC_SIZE);
	sbuf_put_bytes(out, st->lapic.regs, VCPU_STATE_LAPIC_SIZE);
	sbuf_put_u32(out, st->tsc_khz);
	vcpu_state_put_cpuid(out, st->cpuid);
	n = st->msrs ? st->msrs->nmsrs : 0;
	sbuf_put_u32(out, n);
	for (i = 0; i < n; i++) {
		sbuf_put_u32(out, st->msrs->entries[i].index);
		sbuf_put_u64(out, st->msrs->entries[i].data);
	}
	vcpu_state_put_events(out, &st->events);
}

void vcpu_state_host_encode(const struct vcpu_state *st, const uint32_t *msr_index,
			    uint32_t nmsrs, struct sbuf *out)
{
	uint32_t i;

	sbuf_put_u16(out, VCPU_STATE_HOST_VERSION);
	sbuf_put_u32(out, st->tsc_khz);
	vcpu_state_put_cpuid(out, st->cpuid);
	sbuf_put_u32(out, nmsrs);
	for (i = 0; i < nmsrs; i++)
		sbuf_put_u32(out, msr_index[i]);
}

/* ---- decode ---------------------------------------------------------------- */

/* Log one decode failure and return its error. */
static int vcpu_state_bad(const char *sec, const char *what, uint32_t got)
{
	log_msg("snapbox: '%s' section: %s (%u)\n", sec, what, got);
	return -EPROTO;
}

/* Log a truncated payload and return its error. */
static int vcpu_state_trunc(const char *sec, const char *where)
{
	log_msg("snapbox: '%s' section truncated %s\n", sec, where);
	return -EPROTO;
}

/* The u16 version every payload starts with. */
static int vcpu_state_get_version(struct sbuf_reader *in, const char *sec, uint16_t want)
{
	uint16_t v = sbuf_get_u16(in);

	if (in->err)
		return vcpu_state_trunc(sec, "before its version");
	if (v != want) {
		log_msg("snapbox: '%s' section version %u, this build reads only %u\n",
			sec, v, want);
		return -EPROTO;
	}
	return 0;
}

/* A count, checked against its cap and against the bytes left, before any allocation. */
static int vcpu_state_get_count(struct sbuf_reader *in, const char *sec, const char *what,
				uint32_t cap, uint32_t wire, uint32_t *n)
{
	*n = sbuf_get_u32(in);
	if (in->err)
		return vcpu_state_trunc(sec, "at its end");
	if (*n > cap) {
		log_msg("snapbox: '%s' section: %u %s, more than the cap of %u\n",
			sec, *n, what, cap);
		return -EPROTO;
	}
	if ((uint64_t)*n * wire > sbuf_remaining(in))
		return vcpu_state_trunc(sec, "inside a table");
	return 0;
}

static void vcpu_state_get_seg(struct sbuf_reader *in, struct kvm_segment *s)
{
	s->base = sbuf_get_u64(in);
	s->limit = sbuf_get_u32(in);
	s->selector = sbuf_get_u16(in);
	s->type = sbuf_get_u8(in);
	s->present = sbuf_get_u8(in);
	s->dpl = sbuf_get_u8(in);
	s->db = sbuf_get_u8(in);
	s->s = sbuf_get_u8(in);
	s->l = sbuf_get_u8(in);
	s->g = sbuf_get_u8(in);
	s->avl = sbuf_get_u8(in);
	s->unusable = sbuf_get_u8(in);
}

static void vcpu_state_get_dtable(struct sbuf_reader *in, struct kvm_dtable *d)
{
	d->base = sbuf_get_u64(in);
	d->limit = sbuf_get_u16(in);
}

static int vcpu_state_get_sregs(struct sbuf_reader *in, struct kvm_sregs *s)
{
	struct kvm_segment *segs[] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss,
				       &s->tr, &s->ldt };
	uint32_t i, size;

	for (i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
		vcpu_state_get_seg(in, segs[i]);
	vcpu_state_get_dtable(in, &s->gdt);
	vcpu_state_get_dtable(in, &s->idt);
	s->cr0 = sbuf_get_u64(in);
	s->cr2 = sbuf_get_u64(in);
	s->cr3 = sbuf_get_u64(in);
	s->cr4 = sbuf_get_u64(in);
	s->cr8 = sbuf_get_u64(in);
	s->efer = sbuf_get_u64(in);
	s->apic_base = sbuf_get_u64(in);
	size = sbuf_get_u32(in);
	if (in->err)
		return vcpu_state_trunc("VCPU", "in SREGS");
	if (size != VCPU_STATE_IRQ_BITMAP)
		return vcpu_state_bad("VCPU", "interrupt bitmap size is not 32", size);
	for (i = 0; i < VCPU_STATE_IRQ_BITMAP; i++)
		s->interrupt_bitmap[i / 8] |= (uint64_t)sbuf_get_u8(in) << (8 * (i % 8));
	return 0;
}

/* n CPUID entries into a fresh kvm_cpuid2 (n already checked). */
static int vcpu_state_get_cpuid(struct sbuf_reader *in, const char *sec, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c;
	uint32_t n, i;
	int ret = vcpu_state_get_count(in, sec, "CPUID entries", VCPU_STATE_MAX_CPUID,
				       VCPU_STATE_CPUID_WIRE, &n);

	if (ret)
		return ret;
	c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
	if (!c) {
		log_msg("snapbox: '%s' section: out of memory\n", sec);
		return -ENOMEM;
	}
	c->nent = n;
	for (i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		e->function = sbuf_get_u32(in);
		e->index = sbuf_get_u32(in);
		e->flags = sbuf_get_u32(in);
		e->eax = sbuf_get_u32(in);
		e->ebx = sbuf_get_u32(in);
		e->ecx = sbuf_get_u32(in);
		e->edx = sbuf_get_u32(in);
	}
	*out = c;
	return 0;
}

static int vcpu_state_get_xsave(struct sbuf_reader *in, struct vcpu_state *st)
{
	uint32_t size = sbuf_get_u32(in);

	if (in->err)
		return vcpu_state_trunc("VCPU", "before XSAVE");
	if (size < VCPU_STATE_MIN_XSAVE || size > VCPU_STATE_MAX_XSAVE || size % 4)
		return vcpu_state_bad("VCPU", "XSAVE size outside [4096, 1 MiB] or not a multiple of 4",
				      size);
	if (size > sbuf_remaining(in))
		return vcpu_state_trunc("VCPU", "inside XSAVE");
	st->xsave = malloc(size);
	if (!st->xsave) {
		log_msg("snapbox: 'VCPU' section: out of memory for XSAVE\n");
		return -ENOMEM;
	}
	st->xsave_size = size;
	sbuf_get_bytes(in, st->xsave, size);
	return 0;
}

static int vcpu_state_get_msrs(struct sbuf_reader *in, struct vcpu_state *st)
{
	uint32_t n, i;
	int ret = vcpu_state_get_count(in, "VCPU", "MSRs", VCPU_STATE_MAX_MSRS,
				       VCPU_STATE_MSR_WIRE, &n);

	if (ret)
		return ret;
	st->msrs = calloc(1, sizeof(*st->msrs) + (size_t)n * sizeof(st->msrs->entries[0]));
	if (!st->msrs) {
		log_msg("snapbox: 'VCPU' section: out of memory for MSRs\n");
		return -ENOMEM;
	}
	st->msrs->nmsrs = n;
	for (i = 0; i < n; i++) {
		st->msrs->entries[i].index = sbuf_get_u32(in);
		st->msrs->entries[i].data = sbuf_get_u64(in);
		/* Canonical order (ascending, no duplicates): restore relies on it. */
		if (i && st->msrs->entries[i].index <= st->msrs->entries[i - 1].index)
			return vcpu_state_bad("VCPU", "MSR indices not strictly ascending at entry", i);
	}
	return 0;
}

static void vcpu_state_get_events(struct sbuf_reader *in, struct kvm_vcpu_events *e)
{
	e->exception.injected = sbuf_get_u8(in);
	e->exception.nr = sbuf_get_u8(in);
	e->exception.has_error_code = sbuf_get_u8(in);
	e->exception.pending = sbuf_get_u8(in);
	e->exception.error_code = sbuf_get_u32(in);
	e->interrupt.injected = sbuf_get_u8(in);
	e->interrupt.nr = sbuf_get_u8(in);
	e->interrupt.soft = sbuf_get_u8(in);
	e->interrupt.shadow = sbuf_get_u8(in);
	e->nmi.injected = sbuf_get_u8(in);
	e->nmi.pending = sbuf_get_u8(in);
	e->nmi.masked = sbuf_get_u8(in);
	e->sipi_vector = sbuf_get_u32(in);
	e->flags = sbuf_get_u32(in);
	e->smi.smm = sbuf_get_u8(in);
	e->smi.pending = sbuf_get_u8(in);
	e->smi.smm_inside_nmi = sbuf_get_u8(in);
	e->smi.latched_init = sbuf_get_u8(in);
	e->triple_fault.pending = sbuf_get_u8(in);
	e->exception_has_payload = sbuf_get_u8(in);
	e->exception_payload = sbuf_get_u64(in);
}

/* Everything after the version, into the zeroed t. */
static int vcpu_state_decode_body(struct sbuf_reader *in, struct vcpu_state *t)
{
	struct kvm_regs *r = &t->regs;
	__u64 *gpr[] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rsp, &r->rbp,
			 &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15,
			 &r->rip, &r->rflags };
	uint32_t i, n, size;
	int ret;

	t->mp_state.mp_state = sbuf_get_u32(in);
	for (i = 0; i < sizeof(gpr) / sizeof(gpr[0]); i++)
		*gpr[i] = sbuf_get_u64(in);
	ret = vcpu_state_get_sregs(in, &t->sregs);
	if (!ret)
		ret = vcpu_state_get_xsave(in, t);
	if (!ret)
		ret = vcpu_state_get_count(in, "VCPU", "XCRs", KVM_MAX_XCRS, VCPU_STATE_XCR_WIRE, &n);
	if (ret)
		return ret;
	t->xcrs.nr_xcrs = n;
	t->xcrs.flags = sbuf_get_u32(in);
	for (i = 0; i < n; i++) {
		t->xcrs.xcrs[i].xcr = sbuf_get_u32(in);
		t->xcrs.xcrs[i].value = sbuf_get_u64(in);
	}
	for (i = 0; i < 4; i++)
		t->debugregs.db[i] = sbuf_get_u64(in);
	t->debugregs.dr6 = sbuf_get_u64(in);
	t->debugregs.dr7 = sbuf_get_u64(in);
	t->debugregs.flags = sbuf_get_u64(in);
	size = sbuf_get_u32(in);
	if (in->err)
		return vcpu_state_trunc("VCPU", "before LAPIC");
	if (size != VCPU_STATE_LAPIC_SIZE)
		return vcpu_state_bad("VCPU", "LAPIC page size is not 1024", size);
	sbuf_get_bytes(in, t->lapic.regs, VCPU_STATE_LAPIC_SIZE);
	t->tsc_khz = sbuf_get_u32(in);
	ret = vcpu_state_get_cpuid(in, "VCPU", &t->cpuid);
	if (!ret)
		ret = vcpu_state_get_msrs(in, t);
	if (ret)
		return ret;
	vcpu_state_get_events(in, &t->events);
	if (in->err)
		return vcpu_state_trunc("VCPU", "at its end");
	return 0;
}

int vcpu_state_decode(struct sbuf_reader *in, struct vcpu_state *st)
{
	struct vcpu_state t;
	int ret;

	vcpu_state_init(&t);
	vcpu_state_init(st);
	ret = vcpu_state_get_version(in, "VCPU", VCPU_STATE_VERSION);
	if (!ret)
		ret = vcpu_state_decode_body(in, &t);
	if (ret) {
		vcpu_state_fini(&t);
		if (!in->err)
			in->err = ret; /* later reads from the same reader fail too */
		return ret;
	}
	*st = t;
	return 0;
}

void vcpu_state_host_fini(struct vcpu_state_host *h)
{
	free(h->cpuid);
	free(h->msr_index);
	memset(h, 0, sizeof(*h));
}

int vcpu_state_host_decode(struct sbuf_reader *in, struct vcpu_state_host *h)
{
	struct vcpu_state_host t;
	uint32_t i;
	int ret;

	memset(&t, 0, sizeof(t));
	memset(h, 0, sizeof(*h));
	ret = vcpu_state_get_version(in, "HOST", VCPU_STATE_HOST_VERSION);
	if (ret)
		goto err;
	t.tsc_khz = sbuf_get_u32(in);
	ret = vcpu_state_get_cpuid(in, "HOST", &t.cpuid);
	if (!ret)
		ret = vcpu_state_get_count(in, "HOST", "MSR indices", VCPU_STATE_MAX_MSRS, 4, &t.nmsrs);
	if (ret)
		goto err;
	t.msr_index = malloc((size_t)(t.nmsrs ? t.nmsrs : 1) * sizeof(*t.msr_index));
	if (!t.msr_index) {
		log_msg("snapbox: 'HOST' section: out of memory\n");
		ret = -ENOMEM;
		goto err;
	}
	for (i = 0; i < t.nmsrs; i++) {
		t.msr_index[i] = sbuf_get_u32(in);
		if (i && t.msr_index[i] <= t.msr_index[i - 1]) {
			ret = vcpu_state_bad("HOST", "MSR indices not strictly ascending at entry", i);
			goto err;
		}
	}
	if (in->err) {
		ret = vcpu_state_trunc("HOST", "at its end");
		goto err;
	}
	*h = t;
	return 0;

err:
	vcpu_state_host_fini(&t);
	if (!in->err)
		in->err = ret;
	return ret;
}
