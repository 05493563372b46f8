/* kvmsys.h - the /dev/kvm system handle: API version, required capabilities, host facts. */
#ifndef SNAPBOX_KVM_KVMSYS_H
#define SNAPBOX_KVM_KVMSYS_H

#include <stdbool.h>
#include <linux/kvm.h>

struct kvmsys {
	int fd;
	int vcpu_mmap_size;
	bool is_pvm;                    /* no vmx/svm in /proc/cpuinfo: KVM-PVM or similar */
	struct kvm_cpuid2 *cpuid;       /* KVM_GET_SUPPORTED_CPUID, fetched on first use */
};

/*
 * Open `path` (NULL means /dev/kvm), check KVM_GET_API_VERSION == 12 and every
 * capability snapbox needs. Returns 0, or -errno with one stderr line:
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

/* "pvm" or "hardware", from /proc/cpuinfo; for reports and the PVM warning. */
const char *kvmsys_backend_name(const struct kvmsys *s);

#endif
