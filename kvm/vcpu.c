/* vcpu.c - vCPU creation, CPUID policy, and register state for the 64-bit boot protocol. */
#include "kvm/kvmcall.h"
#include "kvm/vcpu.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto/layout.h"
#include "kvm/loader.h"

#define MSR_IA32_TSC            0x00000010
#define MSR_IA32_SYSENTER_CS    0x00000174
#define MSR_IA32_SYSENTER_ESP   0x00000175
#define MSR_IA32_SYSENTER_EIP   0x00000176
#define MSR_IA32_MISC_ENABLE    0x000001a0
#define MSR_MTRR_DEF_TYPE       0x000002ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102

#define APIC_LVT0               0x350
#define APIC_LVT1               0x360
#define APIC_MODE_NMI           0x4
#define APIC_MODE_EXTINT        0x7

#define CR0_PE 0x1ULL
#define CR0_MP 0x2ULL
#define CR0_ET 0x10ULL
#define CR0_NE 0x20ULL
#define CR0_WP 0x10000ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

/*
 * Find KVM's "exits" statistic of v (KVM_GET_STATS_FD, Linux 5.14+): the
 * header, then each descriptor (a fixed part and a name_size-byte name).
 * Why here, before the thread runs: the ioctl takes the vCPU's mutex, which
 * KVM_RUN holds. Without it, v->stats_fd stays -1 and nothing fails.
 */
static void vcpu_stats_open(struct vcpu *v)
{
	struct kvm_stats_header h;
	uint8_t *d = NULL;

	v->stats_fd = kvmcall(v->fd, KVM_GET_STATS_FD, 0);
	v->stat_exits_off = -1;
	if (v->stats_fd < 0)
		return;
	if (pread(v->stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.name_size == 0 || h.name_size > 256 ||
	    h.num_desc > 4096)
		goto out;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	d = malloc(dsz * h.num_desc);
	if (!d || pread(v->stats_fd, d, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *x = (const void *)(d + i * dsz);
		if (x->size == 1 && !strncmp(x->name, "exits", h.name_size)) {
			v->stat_exits_off = (int64_t)h.data_offset + x->offset;
			break;
		}
	}
out:
	free(d);
	if (v->stat_exits_off < 0) {
		close(v->stats_fd);
		v->stats_fd = -1;
	}
}

uint64_t vcpu_kvm_exits(struct vcpu *v)
{
	uint64_t n;

	if (v->stats_fd < 0 ||
	    pread(v->stats_fd, &n, sizeof(n), (off_t)v->stat_exits_off) != (ssize_t)sizeof(n))
		return UINT64_MAX;
	return n;
}

int vcpu_init(struct vcpu *v, struct vm *vm, int id)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->stats_fd = -1;
	v->id = id;
	v->vm = vm;
	v->tsc_ctrl = -1;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	v->fd = kvmcall(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		ret = -errno;
		log_msg("snapbox: KVM_CREATE_VCPU %d: %s\n", id, strerror(-ret));
		goto err;
	}
	vcpu_stats_open(v);
	v->run_size = (size_t)vm->sys->vcpu_mmap_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		log_msg("snapbox: mmap of vCPU %d run area: %s\n", id, strerror(-ret));
		goto err_close;
	}
	return 0;

err_close:
	if (v->stats_fd >= 0)
		close(v->stats_fd);
	v->stats_fd = -1;
	close(v->fd);
	v->fd = -1;
err:
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	return ret;
}

void vcpu_fini(struct vcpu *v)
{
	vcpu_kill(v);
	if (v->run)
		munmap(v->run, v->run_size);
	v->run = NULL;
	if (v->stats_fd >= 0)
		close(v->stats_fd);
	v->stats_fd = -1;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}

static int vcpu_ioctl(struct vcpu *v, unsigned long req, void *arg, const char *what)
{
	if (kvmcall(v->fd, req, arg) < 0) {
		int ret = -errno;

		log_msg("snapbox: vCPU %d %s: %s\n", v->id, what, strerror(-ret));
		return ret;
	}
	return 0;
}

int vcpu_mark_stopped(struct vcpu *v)
{
	if (kvmcall(v->fd, KVM_KVMCLOCK_CTRL, 0) == 0)
		return 0;
	/* EINVAL: the guest set up no kvmclock, so it has nothing to be told. */
	return errno == EINVAL ? 0 : -errno;
}

int vcpu_set_cpuid(struct vcpu *v, const struct kvm_cpuid2 *supported)
{
	size_t sz = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	uint32_t i;
	int ret;

	if (!c)
		return -ENOMEM;
	memcpy(c, supported, sz);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 0x1:
			/* Initial APIC id is the vCPU id; one logical CPU per package. */
			e->ebx = (e->ebx & 0x0000ffffu) | (1u << 16) | ((uint32_t)v->id << 24);
			/* Tell the guest it runs under a hypervisor (kvmclock, PV paths). */
			e->ecx |= 1u << 31;
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC id of this vCPU in every topology sub-leaf. */
			e->edx = (uint32_t)v->id;
			break;
		case 0xa:
			/* No PMU: perf MSRs are not part of our snapshot contract. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		default:
			break;
		}
	}
	ret = vcpu_ioctl(v, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
	free(c);
	return ret;
}

static int vcpu_set_boot_msrs(struct vcpu *v)
{
	static const struct { uint32_t index; uint64_t data; } boot[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 },
		{ MSR_IA32_MISC_ENABLE, 1 },              /* fast strings */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 },    /* MTRRs on, default write-back */
	};
	enum { N = sizeof(boot) / sizeof(boot[0]) };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N];
	} m;
	int n, i;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = N;
	for (i = 0; i < N; i++) {
		m.e[i].index = boot[i].index;
		m.e[i].data = boot[i].data;
	}
	n = kvmcall(v->fd, KVM_SET_MSRS, &m);
	if (n < 0) {
		n = -errno;
		log_msg("snapbox: vCPU %d KVM_SET_MSRS: %s\n", v->id, strerror(-n));
		return n;
	}
	if (n != N) {
		/* KVM stops at the first MSR it refuses. */
		log_msg("snapbox: vCPU %d refused boot MSR 0x%x\n", v->id, boot[n].index);
		return -EINVAL;
	}
	return 0;
}

static void vcpu_set_lvt(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t val;

	memcpy(&val, &l->regs[reg], 4);
	/* Clear delivery mode (bits 8-10) and the mask bit (16), then set the mode. */
	val = (val & ~0x10700u) | (mode << 8);
	memcpy(&l->regs[reg], &val, 4);
}

/* Hidden segment state decoded from the very descriptor the boot GDT holds. */
static void vcpu_seg_from_desc(struct kvm_segment *s, uint16_t sel, uint64_t d)
{
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));

	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	s->g = (d >> 55) & 1;
	s->limit = s->g ? (limit << 12) | 0xfff : limit;
	s->type = (d >> 40) & 0xf;
	s->s = (d >> 44) & 1;
	s->dpl = (d >> 45) & 3;
	s->present = (d >> 47) & 1;
	s->avl = (d >> 52) & 1;
	s->l = (d >> 53) & 1;
	s->db = (d >> 54) & 1;
}

int vcpu_setup_boot_regs(struct vcpu *v, uint64_t entry, uint64_t zero_page)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_lapic_state lapic;
	struct kvm_sregs sregs;
	uint64_t gdt[LAYOUT_GDT_ENTRIES];
	struct kvm_regs regs;
	int ret;

	ret = vcpu_set_boot_msrs(v);
	if (ret)
		return ret;
	ret = vcpu_ioctl(v, KVM_SET_FPU, &fpu, "KVM_SET_FPU");
	if (ret)
		return ret;
	/* PIC interrupts reach the CPU through LINT0 (ExtINT); LINT1 is NMI, as on a PC. */
	ret = vcpu_ioctl(v, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	if (ret)
		return ret;
	vcpu_set_lvt(&lapic, APIC_LVT0, APIC_MODE_EXTINT);
	vcpu_set_lvt(&lapic, APIC_LVT1, APIC_MODE_NMI);
	ret = vcpu_ioctl(v, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
	if (ret)
		return ret;

	/* Start from KVM's reset sregs so fields we do not own (APIC base) keep their defaults. */
	ret = vcpu_ioctl(v, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	if (ret)
		return ret;
	loader_gdt_entries(gdt);
	vcpu_seg_from_desc(&sregs.cs, LAYOUT_BOOT_CS, gdt[LAYOUT_BOOT_CS >> 3]);
	vcpu_seg_from_desc(&sregs.ds, LAYOUT_BOOT_DS, gdt[LAYOUT_BOOT_DS >> 3]);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	/* A valid busy 64-bit TSS is required for VM entry; the guest loads its own later. */
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = LAYOUT_GDT_ENTRIES * 8 - 1;
	sregs.idt.base = LAYOUT_IDT;
	sregs.idt.limit = 7;
	sregs.cr3 = LAYOUT_PML4;
	sregs.cr4 = CR4_PAE;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.efer = EFER_LME | EFER_LMA;
	ret = vcpu_ioctl(v, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	if (ret)
		return ret;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rsi = zero_page;
	regs.rsp = LAYOUT_BOOT_STACK;
	regs.rbp = LAYOUT_BOOT_STACK;
	return vcpu_ioctl(v, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}
