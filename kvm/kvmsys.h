/* kvmsys.h - the /dev/kvm system handle: API version, required capabilities, host facts. */
#ifndef SNAPBOX_KVM_KVMSYS_H
#define SNAPBOX_KVM_KVMSYS_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

/* KVM refuses KVM_GET_MSRS/KVM_SET_MSRS batches of 256 or more entries (-E2BIG). */
#define KVMSYS_MSR_BATCH 255u

struct kvmsys {
	int fd;
	int vcpu_mmap_size;
	bool is_pvm;                    /* no vmx/svm in /proc/cpuinfo: KVM-PVM or similar */
	struct kvm_cpuid2 *cpuid;       /* KVM_GET_SUPPORTED_CPUID, fetched on first use */
	bool shared;                    /* /dev/kvm: the answers below and cpuid are the process's */
	/* vCPU-state facts (kvm/vcpu_state.c) */
	uint32_t xsave_size;            /* KVM_CAP_XSAVE2 size; 0: no XSAVE2, use KVM_GET_XSAVE (4096) */
	bool tsc_control;               /* KVM_CAP_TSC_CONTROL: KVM_SET_TSC_KHZ can scale the TSC */
	/* filled by kvmsys_probe_msrs; the list is shared by the process, never freed */
	const uint32_t *msrs;           /* sorted MSR indices that read back and write back */
	uint32_t nmsrs;
	uint32_t tsc_khz;               /* a new vCPU's TSC rate (KVM_GET_TSC_KHZ), 0 if unknown */
};

/*
 * Open `path` (NULL means /dev/kvm), check KVM_GET_API_VERSION == 12 and every
 * capability snapbox needs. For /dev/kvm the answers (and the supported
 * CPUID) are asked once per process and remembered: they cannot change while
 * the module is loaded, and each VM would otherwise ask 15 ioctls again. Returns 0, or -errno with one stderr line:
 * -ENOENT "no /dev/kvm", -EACCES naming the permission problem, -ENOTSUP
 * listing every missing capability by name.
 */
int kvmsys_init(struct kvmsys *s, const char *path);
void kvmsys_fini(struct kvmsys *s);

/*
 * The host's supported CPUID (KVM_GET_SUPPORTED_CPUID), cached in s.
 * Returns NULL with a message on failure.
 */
const struct kvm_cpuid2 *kvmsys_supported_cpuid(struct kvmsys *s);

/*
 * Decide, once per process (= once per host), which MSRs make up a vCPU's
 * state: the union of KVM_GET_MSR_INDEX_LIST, KVM_GET_MSR_FEATURE_INDEX_LIST
 * and the MTRRs (which KVM emulates but does not list), kept only where a
 * scratch vCPU (with the host's supported CPUID) both reads the index back
 * with KVM_GET_MSRS and accepts the value back with KVM_SET_MSRS. The sorted
 * result is cached process-wide and published in s->msrs / s->nmsrs, along
 * with s->tsc_khz. Later calls cost nothing. Returns 0 or -errno (message
 * printed where the failure is found).
 */
int kvmsys_probe_msrs(struct kvmsys *s);

/*
 * True when the host CPU flags (/proc/cpuinfo) show neither vmx nor svm, so
 * /dev/kvm is KVM-PVM or similar; false when they do or cannot be read.
 * Read once per process and kept. Needs no /dev/kvm. kvmsys_init records the
 * same answer in is_pvm, and fails (-errno) when it cannot be read.
 */
bool kvmsys_host_is_pvm(void);

/*
 * True when this host's CPU is emulated (QEMU TCG, as in the nested lab), so
 * timings taken here mean nothing: SNAPBOX_EMULATED=1 says so (0 says not),
 * else the CPUID hypervisor signature "TCGTCGTCGTCG" does.
 */
bool kvmsys_host_emulated(void);

/* "pvm" or "hardware", from /proc/cpuinfo; for reports and the PVM warning. */
const char *kvmsys_backend_name(const struct kvmsys *s);

#endif
