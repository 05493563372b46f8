/* confine.h - seccomp-bpf allow-lists for the threads that touch guest-controlled data: vCPU and userfaultfd handler. */
#ifndef SNAPBOX_KVM_CONFINE_H
#define SNAPBOX_KVM_CONFINE_H

#include <stdbool.h>

enum confine_role {
	CONFINE_VCPU = 0,   /* KVM_RUN loop: device emulation, console writes, channel parsing */
	CONFINE_UFFD,       /* lazy-restore fault handler: read the memory file, UFFDIO_* */
};

/*
 * Restrict the calling thread (only it: no TSYNC) to the syscalls its role
 * makes; anything else fails with EPERM. Sets no_new_privs. The filter is
 * compiled once per role and process. Skipped after confine_set_enabled(false)
 * (for strace/valgrind sessions). Returns 0 or -errno (logged once).
 */
int confine_thread(enum confine_role role);

/* Turn thread confinement off (logged once) or back on, for threads started later. */
void confine_set_enabled(bool on);

/*
 * Drop, for the whole process, what a VMM never needs once it can open
 * /dev/kvm (plain file permission, no capability): sets no_new_privs, clears
 * the ambient and inheritable sets, drops every capability from the bounding,
 * permitted and effective sets. With keep_uffd, CAP_SYS_PTRACE stays when
 * /proc/sys/vm/unprivileged_userfaultfd is 0, because lazy restores need it
 * for userfaultfd to see KVM's faults. These are per-thread attributes, so
 * it must run while the process has one thread: -EBUSY otherwise. The uid
 * does not change. Irreversible. Returns 0 or -errno (logged once).
 */
int confine_process(bool keep_uffd);

#endif
