/* confine.h - seccomp-bpf allow-lists for the threads that touch guest-controlled data: vCPU and userfaultfd handler. */
#ifndef SNAPBOX_KVM_CONFINE_H
#define SNAPBOX_KVM_CONFINE_H

enum confine_role {
	CONFINE_VCPU = 0,   /* KVM_RUN loop: device emulation, console writes, channel parsing */
	CONFINE_UFFD,       /* lazy-restore fault handler: read the memory file, UFFDIO_* */
};

/*
 * Restrict the calling thread (only it: no TSYNC) to the syscalls its role
 * makes; anything else fails with EPERM. Sets no_new_privs. The filter is
 * compiled once per role and process. SNAPBOX_SECCOMP=0 in the environment
 * skips it (for strace/valgrind sessions). Returns 0 or -errno (logged once).
 */
int confine_thread(enum confine_role role);

#endif
