/* vm_state.c - capture/restore of kvmclock, the PICs, the IOAPIC and the PIT, and their section payloads. */
#include "kvm/kvmcall.h"
#include "kvm/vm_state.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#define VM_STATE_IOAPIC_PINS  KVM_IOAPIC_NUM_PINS
#define VM_STATE_PIT_CHANNELS 3u

/* The kernel layouts the encodings read from; a header change that breaks one fails the build. */
_Static_assert(sizeof(struct kvm_pic_state) == 16, "kvm_pic_state is 16 one-byte fields");
_Static_assert(KVM_IOAPIC_NUM_PINS == 24, "IRQC v1 has 24 IOAPIC pins");
_Static_assert(sizeof(((struct kvm_ioapic_state *)0)->redirtbl[0]) == 8, "an RTE is 64 bits");
_Static_assert(sizeof(((struct kvm_pit_state2 *)0)->channels) / sizeof(struct kvm_pit_channel_state)
	       == VM_STATE_PIT_CHANNELS, "PIT2 has 3 channels");

static int vm_state_ioctl(struct vm *vm, unsigned long req, void *arg, const char *what)
{
	if (kvmcall(vm->fd, req, arg) < 0) {
		int ret = -errno;

		log_msg("snapbox: %s: %s\n", what, strerror(-ret));
		return ret;
	}
	return 0;
}

static int vm_state_get_chip(struct vm *vm, uint32_t id, struct kvm_irqchip *chip)
{
	memset(chip, 0, sizeof(*chip));
	chip->chip_id = id;
	return vm_state_ioctl(vm, KVM_GET_IRQCHIP, chip, "KVM_GET_IRQCHIP");
}

int vm_state_capture(struct vm *vm, struct vm_state *st)
{
	struct kvm_irqchip chip;
	int ret;

	memset(st, 0, sizeof(*st));
	/* CLOCK first, right after the vCPUs paused: the restored guest resumes
	 * its kvmclock from this value, so every microsecond between the pause
	 * and this read becomes a forward step the guest sees. */
	ret = vm_state_ioctl(vm, KVM_GET_CLOCK, &st->clock, "KVM_GET_CLOCK");
	if (ret)
		return ret;
	ret = vm_state_get_chip(vm, KVM_IRQCHIP_PIC_MASTER, &chip);
	if (ret)
		return ret;
	st->pic[0] = chip.chip.pic;
	ret = vm_state_get_chip(vm, KVM_IRQCHIP_PIC_SLAVE, &chip);
	if (ret)
		return ret;
	st->pic[1] = chip.chip.pic;
	ret = vm_state_get_chip(vm, KVM_IRQCHIP_IOAPIC, &chip);
	if (ret)
		return ret;
	st->ioapic = chip.chip.ioapic;
	/* PIT2 after the irqchips, as the design fixes. The PIT's hrtimer keeps
	 * running in the kernel while the vCPUs are paused, so the five reads
	 * are not one atomic cut: an edge raised between the IRQCHIP and PIT2
	 * reads can be missing from both, i.e. at most one timer tick lost,
	 * which guests absorb like any late tick. */
	return vm_state_ioctl(vm, KVM_GET_PIT2, &st->pit, "KVM_GET_PIT2");
}

static int vm_state_set_chip(struct vm *vm, uint32_t id, const struct vm_state *st)
{
	struct kvm_irqchip chip;

	memset(&chip, 0, sizeof(chip));
	chip.chip_id = id;
	if (id == KVM_IRQCHIP_IOAPIC)
		chip.chip.ioapic = st->ioapic;
	else
		chip.chip.pic = st->pic[id];
	return vm_state_ioctl(vm, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP");
}

int vm_state_restore(struct vm *vm, const struct vm_state *st)
{
	struct kvm_pit_state2 pit = st->pit;
	struct kvm_clock_data clock;
	int ret;

	/* The interrupt controllers first: KVM_SET_PIT2 re-arms channel 0 and a
	 * tick it raises must land in the restored PIC/IOAPIC (the guest's IMR,
	 * vector base and edge state), not in power-on defaults that a later
	 * KVM_SET_IRQCHIP would overwrite, dropping or inventing the tick.
	 * Master, slave, IOAPIC: independent of each other (the cascade on
	 * IRQ 2 is evaluated at delivery), kept in capture order. */
	ret = vm_state_set_chip(vm, KVM_IRQCHIP_PIC_MASTER, st);
	if (!ret)
		ret = vm_state_set_chip(vm, KVM_IRQCHIP_PIC_SLAVE, st);
	if (!ret)
		ret = vm_state_set_chip(vm, KVM_IRQCHIP_IOAPIC, st);
	if (ret)
		return ret;
	/* PIT2: KVM reloads every channel's count and sets count_load_time to
	 * the host's ktime now (the saved one is host-relative and ignored), so
	 * channel 0 starts a full period at restore time. The PIT runs on host
	 * time, not kvmclock, so it needs nothing from the clock below. */
	ret = vm_state_ioctl(vm, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
	if (ret)
		return ret;
	/* CLOCK last: KVM_SET_CLOCK makes kvmclock read st->clock.clock at the
	 * instant of the ioctl and run on from there (and asks every vCPU to
	 * rewrite its pvclock page at its next entry). Whatever is done after
	 * it is time the guest sees pass, so it goes as late as possible.
	 * flags = 0 on purpose: KVM_CLOCK_REALTIME would advance the clock by
	 * the wall time since capture (the time the snapshot sat on disk), a
	 * jump; without it the guest's monotonic clock neither jumps nor stalls:
	 * it resumes where it stopped and ticks from the restore on. */
	memset(&clock, 0, sizeof(clock));
	clock.clock = st->clock.clock;
	return vm_state_ioctl(vm, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
}

/* ---- encodings ------------------------------------------------------------- */

/* Version check with one message; -EPROTO on mismatch or truncation. */
static int vm_state_version(struct sbuf_reader *in, const char *sec, uint16_t want)
{
	uint16_t v = sbuf_get_u16(in);

	if (in->err) {
		log_msg("snapbox: '%s' section truncated before its version\n", sec);
		return -EPROTO;
	}
	if (v != want) {
		log_msg("snapbox: '%s' section version %u, this build reads only %u\n",
			sec, v, want);
		in->err = -EPROTO;
		return -EPROTO;
	}
	return 0;
}

static int vm_state_end(struct sbuf_reader *in, const char *sec)
{
	if (!in->err)
		return 0;
	log_msg("snapbox: '%s' section truncated\n", sec);
	return -EPROTO;
}

void vm_state_clock_encode(const struct vm_state *st, struct sbuf *out)
{
	sbuf_put_u16(out, VM_STATE_CLOCK_VERSION);
	sbuf_put_u64(out, st->clock.clock);
	sbuf_put_u32(out, st->clock.flags);
	sbuf_put_u64(out, st->clock.realtime);
	sbuf_put_u64(out, st->clock.host_tsc);
}

int vm_state_clock_decode(struct sbuf_reader *in, struct vm_state *st)
{
	struct kvm_clock_data c;
	int ret = vm_state_version(in, "CLCK", VM_STATE_CLOCK_VERSION);

	if (ret)
		return ret;
	memset(&c, 0, sizeof(c));
	c.clock = sbuf_get_u64(in);
	c.flags = sbuf_get_u32(in);
	c.realtime = sbuf_get_u64(in);
	c.host_tsc = sbuf_get_u64(in);
	ret = vm_state_end(in, "CLCK");
	if (!ret)
		st->clock = c;
	return ret;
}

/* The 16 kvm_pic_state bytes, one named field at a time, in struct order. */
static void vm_state_put_pic(struct sbuf *b, const struct kvm_pic_state *p)
{
	const uint8_t f[] = { p->last_irr, p->irr, p->imr, p->isr, p->priority_add, p->irq_base,
			      p->read_reg_select, p->poll, p->special_mask, p->init_state,
			      p->auto_eoi, p->rotate_on_auto_eoi, p->special_fully_nested_mode,
			      p->init4, p->elcr, p->elcr_mask };
	size_t i;

	for (i = 0; i < sizeof(f); i++)
		sbuf_put_u8(b, f[i]);
}

static void vm_state_get_pic(struct sbuf_reader *in, struct kvm_pic_state *p)
{
	__u8 *f[] = { &p->last_irr, &p->irr, &p->imr, &p->isr, &p->priority_add, &p->irq_base,
		      &p->read_reg_select, &p->poll, &p->special_mask, &p->init_state,
		      &p->auto_eoi, &p->rotate_on_auto_eoi, &p->special_fully_nested_mode,
		      &p->init4, &p->elcr, &p->elcr_mask };
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		*f[i] = sbuf_get_u8(in);
}

void vm_state_irqchip_encode(const struct vm_state *st, struct sbuf *out)
{
	uint32_t i;

	sbuf_put_u16(out, VM_STATE_IRQCHIP_VERSION);
	vm_state_put_pic(out, &st->pic[0]);
	vm_state_put_pic(out, &st->pic[1]);
	sbuf_put_u64(out, st->ioapic.base_address);
	sbuf_put_u32(out, st->ioapic.ioregsel);
	sbuf_put_u32(out, st->ioapic.id);
	sbuf_put_u32(out, st->ioapic.irr);
	/* Redirection entries in the architectural 64-bit IOAPIC RTE format
	 * (vector 0-7, delivery 8-10, dest mode 11, status 12, polarity 13,
	 * remote IRR 14, trigger 15, mask 16, destination 56-63). */
	sbuf_put_u32(out, VM_STATE_IOAPIC_PINS);
	for (i = 0; i < VM_STATE_IOAPIC_PINS; i++)
		sbuf_put_u64(out, st->ioapic.redirtbl[i].bits);
}

int vm_state_irqchip_decode(struct sbuf_reader *in, struct vm_state *st)
{
	struct kvm_pic_state pic[2];
	struct kvm_ioapic_state io;
	uint32_t i, pins;
	int ret = vm_state_version(in, "IRQC", VM_STATE_IRQCHIP_VERSION);

	if (ret)
		return ret;
	memset(pic, 0, sizeof(pic));
	memset(&io, 0, sizeof(io));
	vm_state_get_pic(in, &pic[0]);
	vm_state_get_pic(in, &pic[1]);
	io.base_address = sbuf_get_u64(in);
	io.ioregsel = sbuf_get_u32(in);
	io.id = sbuf_get_u32(in);
	io.irr = sbuf_get_u32(in);
	pins = sbuf_get_u32(in);
	if (!in->err && pins != VM_STATE_IOAPIC_PINS) {
		log_msg("snapbox: 'IRQC' section: IOAPIC with %u pins, KVM has %u\n",
			pins, VM_STATE_IOAPIC_PINS);
		in->err = -EPROTO;
		return -EPROTO;
	}
	for (i = 0; i < VM_STATE_IOAPIC_PINS; i++)
		io.redirtbl[i].bits = sbuf_get_u64(in);
	ret = vm_state_end(in, "IRQC");
	if (ret)
		return ret;
	st->pic[0] = pic[0];
	st->pic[1] = pic[1];
	st->ioapic = io;
	return 0;
}

void vm_state_pit_encode(const struct vm_state *st, struct sbuf *out)
{
	uint32_t i;

	sbuf_put_u16(out, VM_STATE_PIT_VERSION);
	for (i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		const struct kvm_pit_channel_state *c = &st->pit.channels[i];

		sbuf_put_u32(out, c->count);
		sbuf_put_u16(out, c->latched_count);
		sbuf_put_u8(out, c->count_latched);
		sbuf_put_u8(out, c->status_latched);
		sbuf_put_u8(out, c->status);
		sbuf_put_u8(out, c->read_state);
		sbuf_put_u8(out, c->write_state);
		sbuf_put_u8(out, c->write_latch);
		sbuf_put_u8(out, c->rw_mode);
		sbuf_put_u8(out, c->mode);
		sbuf_put_u8(out, c->bcd);
		sbuf_put_u8(out, c->gate);
		sbuf_put_u64(out, (uint64_t)c->count_load_time);
	}
	sbuf_put_u32(out, st->pit.flags);
}

int vm_state_pit_decode(struct sbuf_reader *in, struct vm_state *st)
{
	struct kvm_pit_state2 p;
	uint32_t i;
	int ret = vm_state_version(in, "PIT2", VM_STATE_PIT_VERSION);

	if (ret)
		return ret;
	memset(&p, 0, sizeof(p));
	for (i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		struct kvm_pit_channel_state *c = &p.channels[i];

		c->count = sbuf_get_u32(in);
		c->latched_count = sbuf_get_u16(in);
		c->count_latched = sbuf_get_u8(in);
		c->status_latched = sbuf_get_u8(in);
		c->status = sbuf_get_u8(in);
		c->read_state = sbuf_get_u8(in);
		c->write_state = sbuf_get_u8(in);
		c->write_latch = sbuf_get_u8(in);
		c->rw_mode = sbuf_get_u8(in);
		c->mode = sbuf_get_u8(in);
		c->bcd = sbuf_get_u8(in);
		c->gate = sbuf_get_u8(in);
		c->count_load_time = (__s64)sbuf_get_u64(in);
	}
	p.flags = sbuf_get_u32(in);
	ret = vm_state_end(in, "PIT2");
	if (!ret)
		st->pit = p;
	return ret;
}
