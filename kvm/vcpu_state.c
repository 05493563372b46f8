/* vcpu_state.c - capture and restore of one vCPU's KVM state, in the orders that keep it consistent. */
#include "kvm/kvmcall.h"
#include "kvm/vcpu_state.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define VCPU_STATE_MSR_TSC           0x00000010u
#define VCPU_STATE_MSR_TSC_DEADLINE  0x000006e0u
#define VCPU_STATE_CPUID_FIRST_CAP   256u
#define VCPU_STATE_TSC_PPM           250u   /* KVM's tsc_tolerance_ppm: no scaling needed within it */
#define VCPU_STATE_DB_VECTOR         1u
#define VCPU_STATE_PF_VECTOR         14u

void vcpu_state_init(struct vcpu_state *st)
{
	memset(st, 0, sizeof(*st));
}

void vcpu_state_fini(struct vcpu_state *st)
{
	free(st->xsave);
	free(st->cpuid);
	free(st->msrs);
	memset(st, 0, sizeof(*st));
}

static int vcpu_state_ioctl(struct vcpu *v, unsigned long req, void *arg, const char *what)
{
	if (kvmcall(v->fd, req, arg) < 0) {
		int ret = -errno;

		log_msg("snapbox: vCPU %d %s: %s\n", v->id, what, strerror(-ret));
		return ret;
	}
	return 0;
}

/* The XSAVE buffer size KVM reads and writes on this host: XSAVE2's, else 4096. */
static uint32_t vcpu_state_host_xsave_size(const struct kvmsys *sys)
{
	return sys->xsave_size >= VCPU_STATE_MIN_XSAVE ? sys->xsave_size : VCPU_STATE_MIN_XSAVE;
}

/* KVM_GET_CPUID2 needs a buffer at least as large as the vCPU's table: grow on E2BIG. */
int vcpu_state_read_cpuid(struct vcpu *v, struct vcpu_state *st)
{
	uint32_t cap = VCPU_STATE_CPUID_FIRST_CAP;

	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + cap * sizeof(c->entries[0]));
		int err;

		if (!c) {
			log_msg("snapbox: vCPU %d: out of memory for CPUID\n", v->id);
			return -ENOMEM;
		}
		c->nent = cap;
		if (kvmcall(v->fd, KVM_GET_CPUID2, c) == 0) {
			st->cpuid = c;
			return 0;
		}
		err = errno;
		free(c);
		if (err != E2BIG || cap >= VCPU_STATE_MAX_CPUID) {
			log_msg("snapbox: vCPU %d KVM_GET_CPUID2: %s\n", v->id, strerror(err));
			return -err;
		}
		cap *= 2;
	}
}

/*
 * Run KVM_GET_MSRS or KVM_SET_MSRS over ents[0, n) in order, at most
 * KVMSYS_MSR_BATCH per ioctl (so one ioctl for any real MSR set); what a GET
 * read is copied back. KVM stops at the first MSR it refuses and returns how
 * many it did, which names that MSR in the message.
 */
static int vcpu_state_msr_io(struct vcpu *v, unsigned long req, const char *what,
			     struct kvm_msr_entry *ents, uint32_t n)
{
	uint32_t cap = n < KVMSYS_MSR_BATCH ? (n ? n : 1) : KVMSYS_MSR_BATCH;
	struct kvm_msrs *b = malloc(sizeof(*b) + (size_t)cap * sizeof(b->entries[0]));
	uint32_t done, len;
	int ret = 0, r;

	if (!b) {
		log_msg("snapbox: vCPU %d: out of memory for MSRs\n", v->id);
		return -ENOMEM;
	}
	for (done = 0; done < n; done += len) {
		len = n - done < cap ? n - done : cap;
		b->nmsrs = len;
		b->pad = 0;
		memcpy(b->entries, ents + done, (size_t)len * sizeof(*ents));
		r = kvmcall(v->fd, req, b);
		if (r < 0) {
			ret = -errno;
			log_msg("snapbox: vCPU %d %s: %s\n", v->id, what, strerror(-ret));
			break;
		}
		if ((uint32_t)r != len) {
			log_msg("snapbox: vCPU %d %s refused MSR 0x%x (value 0x%llx)\n", v->id, what,
				b->entries[r].index, (unsigned long long)b->entries[r].data);
			ret = -EINVAL;
			break;
		}
		memcpy(ents + done, b->entries, (size_t)len * sizeof(*ents));
	}
	free(b);
	return ret;
}

/* Read the host's MSR set (kvmsys_probe_msrs) into st->msrs, ascending. */
static int vcpu_state_get_msrs(struct vcpu *v, const uint32_t *idx, uint32_t n, struct vcpu_state *st)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->entries[0]));
	uint32_t i;
	int ret;

	if (!m) {
		log_msg("snapbox: vCPU %d: out of memory for MSRs\n", v->id);
		return -ENOMEM;
	}
	m->nmsrs = n;
	for (i = 0; i < n; i++)
		m->entries[i].index = idx[i];
	ret = vcpu_state_msr_io(v, KVM_GET_MSRS, "KVM_GET_MSRS", m->entries, n);
	if (ret) {
		free(m);
		return ret;
	}
	st->msrs = m;
	return 0;
}

int vcpu_state_capture(struct vcpu *v, struct vcpu_state *st)
{
	struct kvmsys *sys = v->vm->sys;
	uint32_t xsize = vcpu_state_host_xsave_size(sys);
	int ret;

	vcpu_state_init(st);
	ret = kvmsys_probe_msrs(sys); /* once per process; free afterwards */
	if (ret)
		return ret;
	st->xsave = calloc(1, xsize);
	if (!st->xsave) {
		log_msg("snapbox: vCPU %d: out of memory for XSAVE\n", v->id);
		return -ENOMEM;
	}
	st->xsave_size = xsize;

	/* MP_STATE first: KVM_GET_MP_STATE runs kvm_apic_accept_events(), which
	 * may process a pending INIT/SIPI and thereby reset registers and the
	 * LAPIC. Everything read after it sees the post-INIT state. */
	ret = vcpu_state_ioctl(v, KVM_GET_MP_STATE, &st->mp_state, "KVM_GET_MP_STATE");
	if (ret)
		goto err;
	/* REGS through CPUID: plain reads without side effects on one another
	 * (KVM_GET_LAPIC only folds posted interrupts into the IRR it returns),
	 * kept in Firecracker's proven order. */
	ret = vcpu_state_ioctl(v, KVM_GET_REGS, &st->regs, "KVM_GET_REGS");
	if (ret)
		goto err;
	ret = vcpu_state_ioctl(v, KVM_GET_SREGS, &st->sregs, "KVM_GET_SREGS");
	if (ret)
		goto err;
	/* XSAVE2 when the host has it: it returns the size KVM_CAP_XSAVE2 gave,
	 * including dynamic components (AMX) that do not fit in 4096 bytes. */
	ret = vcpu_state_ioctl(v, sys->xsave_size ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, st->xsave,
			       sys->xsave_size ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
	if (ret)
		goto err;
	ret = vcpu_state_ioctl(v, KVM_GET_XCRS, &st->xcrs, "KVM_GET_XCRS");
	if (ret)
		goto err;
	ret = vcpu_state_ioctl(v, KVM_GET_DEBUGREGS, &st->debugregs, "KVM_GET_DEBUGREGS");
	if (ret)
		goto err;
	ret = vcpu_state_ioctl(v, KVM_GET_LAPIC, &st->lapic, "KVM_GET_LAPIC");
	if (ret)
		goto err;
	ret = kvmcall(v->fd, KVM_GET_TSC_KHZ, 0);
	if (ret <= 0) {
		ret = ret < 0 ? -errno : -EIO;
		log_msg("snapbox: vCPU %d KVM_GET_TSC_KHZ: %s\n", v->id, strerror(-ret));
		goto err;
	}
	st->tsc_khz = (uint32_t)ret;
	ret = vcpu_state_read_cpuid(v, st);
	if (ret)
		goto err;
	/* MSRs after the LAPIC so TSC_DEADLINE is read in the same LVTT mode the
	 * LAPIC page records (KVM reports 0 outside TSC-deadline mode). */
	ret = vcpu_state_get_msrs(v, sys->msrs, sys->nmsrs, st);
	if (ret)
		goto err;
	/* VCPU_EVENTS last: it is the one read with side effects on the rest
	 * (process_nmi, and without KVM_CAP_EXCEPTION_PAYLOAD it delivers a
	 * pending #PF/#DB payload into CR2/DR6), and nothing read after it could
	 * change the pending exception/interrupt/NMI it reports. */
	ret = vcpu_state_ioctl(v, KVM_GET_VCPU_EVENTS, &st->events, "KVM_GET_VCPU_EVENTS");
	if (ret)
		goto err;
	/* The payload delivery above may have changed CR2 (#PF) or DR6 (#DB),
	 * which we read before; re-read them so the restored exception (now
	 * without payload) finds the right values. Rare: costs 2 ioctls then. */
	if (st->events.exception.pending && !(st->events.flags & KVM_VCPUEVENT_VALID_PAYLOAD) &&
	    (st->events.exception.nr == VCPU_STATE_PF_VECTOR ||
	     st->events.exception.nr == VCPU_STATE_DB_VECTOR)) {
		ret = vcpu_state_ioctl(v, KVM_GET_SREGS, &st->sregs, "KVM_GET_SREGS");
		if (!ret)
			ret = vcpu_state_ioctl(v, KVM_GET_DEBUGREGS, &st->debugregs, "KVM_GET_DEBUGREGS");
		if (ret)
			goto err;
	}
	return 0;

err:
	vcpu_state_fini(st);
	return ret;
}

int vcpu_state_host_tsc_khz(struct vcpu *v, uint32_t *khz)
{
	int r;

	if (v->vm->sys->tsc_khz) {
		*khz = v->vm->sys->tsc_khz;
		return 0;
	}
	r = kvmcall(v->fd, KVM_GET_TSC_KHZ, 0);
	if (r <= 0) {
		r = r < 0 ? -errno : -EIO;
		log_msg("snapbox: vCPU %d KVM_GET_TSC_KHZ: %s\n", v->id, strerror(-r));
		return r;
	}
	/* Asked before any KVM_SET_TSC_KHZ, so it is the default: kept for the VM's other asks. */
	v->vm->sys->tsc_khz = *khz = (uint32_t)r;
	return 0;
}

int vcpu_state_restore_cpuid(struct vcpu *v, const struct vcpu_state *st)
{
	uint32_t host_khz = 0;
	uint64_t diff;
	int ret;

	if (!st->cpuid) {
		log_msg("snapbox: vCPU %d: state has no CPUID\n", v->id);
		return -EINVAL;
	}
	ret = vcpu_state_host_tsc_khz(v, &host_khz);
	if (ret)
		return ret;
	/*
	 * TSC rate first, before anything derived from it: the IA32_TSC write
	 * below is converted to an offset at this rate, the LAPIC timer and the
	 * TSC deadline are armed with it, and kvmclock's scale follows it. Only
	 * when it differs from a new vCPU's default (no ioctl otherwise).
	 */
	if (st->tsc_khz && st->tsc_khz != host_khz) {
		diff = st->tsc_khz > host_khz ? st->tsc_khz - host_khz : host_khz - st->tsc_khz;
		/* Without TSC scaling KVM only "accepts" a faster rate by catch-up
		 * emulation; refuse anything outside its own tolerance instead. */
		if (!v->vm->sys->tsc_control && diff * 1000000u > (uint64_t)host_khz * VCPU_STATE_TSC_PPM) {
			log_msg("snapbox: vCPU %d: snapshot TSC runs at %u kHz, this host at %u kHz, "
				"and KVM cannot scale the TSC here\n", v->id, st->tsc_khz, host_khz);
			return -ENOTSUP;
		}
		if (kvmcall(v->fd, KVM_SET_TSC_KHZ, (unsigned long)st->tsc_khz) < 0) {
			ret = -errno;
			log_msg("snapbox: vCPU %d KVM_SET_TSC_KHZ %u: %s\n", v->id, st->tsc_khz,
				strerror(-ret));
			return ret;
		}
		v->tsc_scaled = true;
	}
	/* CPUID before everything else: KVM validates XSAVE/XCR0 against CPUID
	 * leaf 0xD and accepts some MSRs only when CPUID has the feature. On
	 * kernels >= 5.16 this must be the CPUID the vCPU already has if it has
	 * ever run (a change gives -EINVAL or -EBUSY); a fresh vCPU takes any.
	 * So a vCPU that has run keeps its CPUID when the state's is the same
	 * outside KVM's runtime bits, and refuses it otherwise. */
	if (atomic_load(&v->first_run_ns))
		return vcpu_state_cpuid_on_run_vcpu(v, st->cpuid);
	return vcpu_state_ioctl(v, KVM_SET_CPUID2, st->cpuid, "KVM_SET_CPUID2");
}

/* XSAVE as KVM will read it: host-sized, zero-padded (XSTATE_BV says what is valid). */
static int vcpu_state_set_xsave(struct vcpu *v, const struct vcpu_state *st)
{
	uint32_t hsize = vcpu_state_host_xsave_size(v->vm->sys);
	struct kvm_xsave *buf = st->xsave;
	uint32_t i;
	int ret;

	if (!st->xsave) {
		log_msg("snapbox: vCPU %d: state has no XSAVE area\n", v->id);
		return -EINVAL;
	}
	if (st->xsave_size > hsize) {
		/* KVM reads hsize bytes; anything beyond must be unused. */
		for (i = hsize; i < st->xsave_size; i++)
			if (((const uint8_t *)st->xsave)[i]) {
				log_msg("snapbox: vCPU %d: XSAVE area of %u bytes uses state beyond "
					"this host's %u\n", v->id, st->xsave_size, hsize);
				return -ENOTSUP;
			}
	} else if (st->xsave_size < hsize) {
		buf = calloc(1, hsize);
		if (!buf) {
			log_msg("snapbox: vCPU %d: out of memory for XSAVE\n", v->id);
			return -ENOMEM;
		}
		memcpy(buf, st->xsave, st->xsave_size);
	}
	ret = vcpu_state_ioctl(v, KVM_SET_XSAVE, buf, "KVM_SET_XSAVE");
	if (buf != st->xsave)
		free(buf);
	return ret;
}

/*
 * The MSRs in restore order: IA32_TSC first (through the TSC offset where KVM
 * has it, see vcpu_state_set_tsc), IA32_TSC_DEADLINE last, the rest
 * ascending as stored. TSC before TSC_DEADLINE because KVM arms the deadline
 * timer against the guest TSC as it is at the moment of the write: a
 * deadline written before the TSC is restored would fire at the wrong time
 * (at once, or after the gap between the two TSC values).
 */
static int vcpu_state_set_msrs(struct vcpu *v, const struct kvm_msrs *src)
{
	uint32_t n = src->nmsrs, i, k = 0;
	struct kvm_msr_entry *e = malloc((size_t)(n ? n : 1) * sizeof(*e));
	int ret;

	if (!e) {
		log_msg("snapbox: vCPU %d: out of memory for MSRs\n", v->id);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (src->entries[i].index != VCPU_STATE_MSR_TSC)
			continue;
		ret = vcpu_state_set_tsc(v, src->entries[i].data);
		if (ret < 0) {
			free(e);
			return ret;
		}
		if (ret == 1)
			e[k++] = src->entries[i];
	}
	for (i = 0; i < n; i++)
		if (src->entries[i].index != VCPU_STATE_MSR_TSC &&
		    src->entries[i].index != VCPU_STATE_MSR_TSC_DEADLINE)
			e[k++] = src->entries[i];
	for (i = 0; i < n; i++)
		if (src->entries[i].index == VCPU_STATE_MSR_TSC_DEADLINE)
			e[k++] = src->entries[i];
	ret = vcpu_state_msr_io(v, KVM_SET_MSRS, "KVM_SET_MSRS", e, k);
	free(e);
	return ret;
}

int vcpu_state_restore_regs(struct vcpu *v, const struct vcpu_state *st)
{
	struct kvm_mp_state mp = st->mp_state;
	struct kvm_regs regs = st->regs;
	struct kvm_sregs sregs = st->sregs;
	struct kvm_xcrs xcrs = st->xcrs;
	struct kvm_debugregs dbg = st->debugregs;
	struct kvm_lapic_state lapic = st->lapic;
	struct kvm_vcpu_events ev = st->events;
	int ret;

	if (!st->msrs) {
		log_msg("snapbox: vCPU %d: state has no MSRs\n", v->id);
		return -EINVAL;
	}
	/* MP_STATE right after CPUID, before the events: KVM refuses
	 * INIT_RECEIVED/SIPI_RECEIVED while the vCPU is in SMM or has an SMI
	 * latched, and the SMM state only comes back with VCPU_EVENTS. It also
	 * mirrors the save order, where MP_STATE was read before the registers. */
	ret = vcpu_state_ioctl(v, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
	if (ret)
		return ret;
	/* REGS: independent of what follows except the events (KVM_SET_REGS
	 * drops a pending exception, so VCPU_EVENTS must come after it). */
	ret = vcpu_state_ioctl(v, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	if (ret)
		return ret;
	/* SREGS before LAPIC: KVM_SET_SREGS sets IA32_APIC_BASE, and changing the
	 * APIC base/mode (xAPIC <-> x2APIC, enable) resets parts of the LAPIC and
	 * decides how KVM_SET_LAPIC interprets the ID register. SREGS also
	 * switches long mode/paging, which the MSRs below (EFER-dependent
	 * SYSCALL MSRs) are checked against. */
	ret = vcpu_state_ioctl(v, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	if (ret)
		return ret;
	/* XSAVE before XCRS, as QEMU and Firecracker do: KVM validates the XSAVE
	 * header against the guest CPUID's XCR0 mask (set above), not against the
	 * current XCR0, and setting XCR0 does not touch the saved components. */
	ret = vcpu_state_set_xsave(v, st);
	if (ret)
		return ret;
	ret = vcpu_state_ioctl(v, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
	if (ret)
		return ret;
	/* DEBUGREGS: independent of its neighbours; before the events, which may
	 * carry a #DB whose delivery reads DR6/DR7. */
	ret = vcpu_state_ioctl(v, KVM_SET_DEBUGREGS, &dbg, "KVM_SET_DEBUGREGS");
	if (ret)
		return ret;
	ret = vcpu_state_ioctl(v, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
	if (ret)
		return ret;
	/* MSRs after the LAPIC: KVM drops an IA32_TSC_DEADLINE write unless the
	 * LVT timer is already in TSC-deadline mode, which the LAPIC page sets.
	 * kvmclock (MSR_KVM_SYSTEM_TIME_NEW) needs no order: writing it only
	 * asks KVM to rewrite the guest's pvclock page at the next KVM_RUN, from
	 * the VM clock (vm_state) and this vCPU's TSC as restored here. */
	ret = vcpu_state_set_msrs(v, st->msrs);
	if (ret)
		return ret;
	/* VCPU_EVENTS last: KVM_SET_REGS drops a pending exception, KVM_SET_SREGS
	 * queues the interrupt in its bitmap and KVM_SET_LAPIC re-evaluates
	 * pending interrupts, so any earlier set would clobber the exception,
	 * interrupt, NMI and interrupt-shadow state restored here. */
	return vcpu_state_ioctl(v, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
}

int vcpu_state_restore(struct vcpu *v, const struct vcpu_state *st)
{
	int ret = vcpu_state_restore_cpuid(v, st);

	return ret ? ret : vcpu_state_restore_regs(v, st);
}
