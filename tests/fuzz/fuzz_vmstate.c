/* fuzz_vmstate.c - libFuzzer target: vmstate_parse, then every known section through its decoder (and back through its encoder). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kvm/bus.h"
#include "kvm/devices.h"
#include "kvm/sbuf.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "runtime/snapconf.h"
#include "snapshot/vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decoder that succeeded and read the whole payload must re-encode to exactly those bytes. */
static void fz_same(const struct sbuf_reader *in, const struct sbuf *out)
{
	if (out->err || in->err || sbuf_remaining(in) != 0)
		return;
	if (out->len != in->len || memcmp(out->data, in->p, in->len) != 0)
		abort();
}

static void fz_vcpu(struct sbuf_reader *in)
{
	struct vcpu_state st;
	struct sbuf out;

	if (vcpu_state_decode(in, &st) != 0) {
		/* On failure the state must be left empty. */
		if (st.xsave || st.cpuid || st.msrs)
			abort();
		return;
	}
	sbuf_init(&out);
	vcpu_state_encode(&st, &out);
	fz_same(in, &out);
	sbuf_fini(&out);
	vcpu_state_fini(&st);
}

static void fz_host(struct sbuf_reader *in)
{
	struct vcpu_state_host h;
	struct vcpu_state st;
	struct sbuf out;

	if (vcpu_state_host_decode(in, &h) != 0) {
		if (h.cpuid || h.msr_index)
			abort();
		return;
	}
	/* The encoder takes the CPUID and TSC rate from a vCPU state. */
	vcpu_state_init(&st);
	st.tsc_khz = h.tsc_khz;
	st.cpuid = h.cpuid;
	sbuf_init(&out);
	vcpu_state_host_encode(&st, h.msr_index, h.nmsrs, &out);
	fz_same(in, &out);
	sbuf_fini(&out);
	vcpu_state_host_fini(&h);
}

static void fz_vm(struct sbuf_reader *in, uint32_t tag)
{
	struct vm_state st;
	struct sbuf out;
	int ret;

	memset(&st, 0, sizeof(st));
	sbuf_init(&out);
	if (tag == VMSTATE_TAG_CLCK) {
		ret = vm_state_clock_decode(in, &st);
		if (!ret)
			vm_state_clock_encode(&st, &out);
	} else if (tag == VMSTATE_TAG_IRQC) {
		ret = vm_state_irqchip_decode(in, &st);
		if (!ret)
			vm_state_irqchip_encode(&st, &out);
	} else {
		ret = vm_state_pit_decode(in, &st);
		if (!ret)
			vm_state_pit_encode(&st, &out);
	}
	if (!ret)
		fz_same(in, &out);
	sbuf_fini(&out);
}

static void fz_conf(struct sbuf_reader *in)
{
	static struct snapconf c;
	struct sbuf out;

	if (snapconf_decode(in, &c) != 0)
		return;
	sbuf_init(&out);
	snapconf_encode(&c, &out);
	fz_same(in, &out);
	sbuf_fini(&out);
}

static void fz_memf(struct sbuf_reader *in)
{
	struct snapconf_memf m;
	struct sbuf out;

	if (snapconf_memf_decode(in, &m) != 0)
		return;
	sbuf_init(&out);
	snapconf_memf_encode(&m, &out);
	fz_same(in, &out);
	sbuf_fini(&out);
}

/* A fresh device table per DEVS section, as a restore builds one. */
static void fz_devs(struct sbuf_reader *in)
{
	struct devices d;
	struct bus pio;

	if (bus_init(&pio, "pio") != 0)
		abort();
	if (devices_init(&d, &pio, NULL) != 0)
		abort();
	if (devices_load(&d, in) == 0) {
		/* What was loaded saves to a record that loads back and saves the same again. */
		struct sbuf a, b;
		struct sbuf_reader ra;

		sbuf_init(&a);
		sbuf_init(&b);
		if (devices_save(&d, &a) != 0)
			abort();
		sbuf_reader_init(&ra, a.data, a.len);
		if (devices_load(&d, &ra) != 0 || devices_save(&d, &b) != 0)
			abort();
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			abort();
		sbuf_fini(&a);
		sbuf_fini(&b);
	}
	devices_fini(&d);
	bus_fini(&pio);
}

static void fz_sections(const struct vmstate_reader *r)
{
	for (size_t i = 0; i < r->nsecs; i++) {
		const struct vmstate_section *s = &r->secs[i];
		struct sbuf_reader in;

		if (!s->known)
			continue;
		sbuf_reader_init(&in, s->payload, (size_t)s->length);
		switch (s->tag) {
		case VMSTATE_TAG_CONF: fz_conf(&in); break;
		case VMSTATE_TAG_MEMF: fz_memf(&in); break;
		case VMSTATE_TAG_HOST: fz_host(&in); break;
		case VMSTATE_TAG_VCPU: fz_vcpu(&in); break;
		case VMSTATE_TAG_CLCK:
		case VMSTATE_TAG_IRQC:
		case VMSTATE_TAG_PIT2: fz_vm(&in, s->tag); break;
		case VMSTATE_TAG_DEVS: fz_devs(&in); break;
		default: abort(); /* the reader marked an unknown tag as known */
		}
	}
}

static void fz_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t fz_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/*
 * Rewrite every section checksum, and END's file hash and section count, so
 * mutated payloads get past the hashes and reach the section decoders.
 */
static void fz_fix_hashes(uint8_t *img, size_t size)
{
	size_t off = VMSTATE_HDR_SIZE;
	uint32_t count = 0;

	while (off <= size && size - off >= VMSTATE_SEC_HDR_SIZE) {
		uint8_t *h = img + off;
		uint64_t len = fz_get64(h + 8);
		uint8_t *p = h + VMSTATE_SEC_HDR_SIZE;

		if (len > size - off - VMSTATE_SEC_HDR_SIZE)
			return;
		if (h[0] == 'E' && h[1] == 'N' && h[2] == 'D' && h[3] == ' ') {
			if (len >= 8)
				fz_put64(p, XXH64(img, off, 0));
			if (len >= 12) {
				for (int i = 0; i < 4; i++)
					p[8 + i] = (uint8_t)(count >> (8 * i));
			}
			fz_put64(h + 16, XXH64(p, (size_t)len, 0));
			return;
		}
		fz_put64(h + 16, XXH64(p, (size_t)len, 0));
		count++;
		off += VMSTATE_SEC_HDR_SIZE + (size_t)len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmstate_reader r;
	uint8_t *fixed;

	if (vmstate_parse(&r, data, size, NULL, 0) == 0) {
		fz_sections(&r);
		vmstate_reader_fini(&r);
	}
	/* The same bytes with their checksums made right. */
	fixed = malloc(size ? size : 1);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	fz_fix_hashes(fixed, size);
	if (memcmp(fixed, data, size) != 0 && vmstate_parse(&r, fixed, size, NULL, 0) == 0) {
		fz_sections(&r);
		vmstate_reader_fini(&r);
	}
	free(fixed);
	return 0;
}
