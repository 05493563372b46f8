/* confine.c - the seccomp allow-lists, written for the syscalls each thread actually makes. */
#include "kvm/confine.h"
#include "kvm/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Every thread: memory management behind malloc and thread exit, locks, time, logging. */
static const int confine_common[] = {
	SCMP_SYS(futex), SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(mmap), SCMP_SYS(munmap),
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(exit), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(sched_yield), SCMP_SYS(clock_gettime),
	SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(restart_syscall), SCMP_SYS(set_robust_list),
};

/* vCPU thread ioctls: the run loop, the fatal-exit register dump, IRQ lines from the UARTs. */
static const unsigned long confine_vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE,
};

static const unsigned long confine_uffd_ioctls[] = {
	UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE,
};

static const int confine_uffd_extra[] = {
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(read), SCMP_SYS(pread64),
};

/* Each role's filter, compiled once to BPF: immutable, so threads install it concurrently. */
static struct sock_fprog confine_prog[2];
static int confine_err[2];
static pthread_once_t confine_once[2] = { PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT };

/*
 * The filter as a BPF program in memory (libseccomp 2.5 exports only to a
 * file descriptor). Why not seccomp_load per thread: it regenerates the
 * program from the shared context each time, and two vCPU threads doing that
 * at once corrupt it (seen: both spinning inside libseccomp forever).
 */
static int confine_export(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("snapbox-seccomp", MFD_CLOEXEC);
	struct sock_filter *f = NULL;
	off_t len;
	int ret;

	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(*f) || len / (off_t)sizeof(*f) > USHRT_MAX) {
		ret = -EINVAL;
		goto out;
	}
	f = malloc((size_t)len);
	if (!f) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, f, (size_t)len, 0) != len) {
		ret = -EIO;
		free(f);
		goto out;
	}
	out->filter = f;
	out->len = (unsigned short)(len / (off_t)sizeof(*f));
out:
	close(fd);
	return ret;
}

static int confine_build(enum confine_role role, struct sock_fprog *out)
{
	const unsigned long *ioc = role == CONFINE_VCPU ? confine_vcpu_ioctls : confine_uffd_ioctls;
	size_t nioc = role == CONFINE_VCPU ? sizeof(confine_vcpu_ioctls) / sizeof(ioc[0]) :
					     sizeof(confine_uffd_ioctls) / sizeof(ioc[0]);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	size_t i;
	int ret = 0;

	if (!ctx)
		return -ENOMEM;
	for (i = 0; !ret && i < sizeof(confine_common) / sizeof(confine_common[0]); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, confine_common[i], 0);
	/* ioctl only with the request numbers this role issues (argument 1, compared as 32 bits). */
	for (i = 0; !ret && i < nioc; i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				       SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)ioc[i]));
	for (i = 0; !ret && role == CONFINE_UFFD &&
		    i < sizeof(confine_uffd_extra) / sizeof(confine_uffd_extra[0]); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, confine_uffd_extra[i], 0);
	if (!ret)
		ret = confine_export(ctx, out);
	seccomp_release(ctx);
	return ret;
}

static void confine_build_vcpu(void)
{
	confine_err[CONFINE_VCPU] = confine_build(CONFINE_VCPU, &confine_prog[CONFINE_VCPU]);
}

static void confine_build_uffd(void)
{
	confine_err[CONFINE_UFFD] = confine_build(CONFINE_UFFD, &confine_prog[CONFINE_UFFD]);
}

/* Off only when the embedding program says so (snapbox_set_confinement), never from the environment. */
static atomic_bool confine_off;

void confine_set_enabled(bool on)
{
	bool was_off = atomic_exchange(&confine_off, !on);

	if (!on && !was_off)
		log_msg("snapbox: warning: seccomp confinement of vCPU and fault-handler threads is off "
			"(the caller asked: for strace or valgrind only)\n");
}

int confine_thread(enum confine_role role)
{
	int ret;

	if (atomic_load(&confine_off))
		return 0;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Sanitizer runtimes make syscalls of their own on these threads
	 * (sigaltstack at thread start, /proc/self/maps and exit_group when
	 * reporting); the allow-lists are for snapbox's code, so sanitizer builds
	 * run unconfined (the normal build's tests cover the filters). */
	return 0;
#endif
	pthread_once(&confine_once[role], role == CONFINE_VCPU ? confine_build_vcpu : confine_build_uffd);
	ret = confine_err[role];
	/* no_new_privs first: the kernel refuses an unprivileged filter without
	 * it. Both apply to the calling thread only (no TSYNC). */
	if (!ret && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		     syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &confine_prog[role])))
		ret = -errno;
	if (ret)
		log_msg("snapbox: cannot confine the %s thread with seccomp: %s\n",
			role == CONFINE_VCPU ? "vCPU" : "fault handler", strerror(-ret));
	return ret;
}

/* The highest capability number this kernel knows (CAP_LAST_CAP of our headers if unreadable). */
static int confine_last_cap(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	int last = CAP_LAST_CAP;

	if (f) {
		if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* Entries of /proc/self/task: this process's threads (0 when unreadable). */
static int confine_count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* True when userfaultfd needs CAP_SYS_PTRACE to handle kernel-mode (KVM) faults. */
static bool confine_uffd_needs_ptrace(void)
{
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v == 0;
}

int confine_process(bool keep_uffd)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	int keep = keep_uffd && confine_uffd_needs_ptrace() ? CAP_SYS_PTRACE : -1;
	int cap, last = confine_last_cap();
	const char *what;
	bool setpcap;

	/* Capabilities and no_new_privs are per thread: threads that already
	 * exist would keep theirs, and hand them to the threads they create. */
	if (confine_count_threads() != 1) {
		log_msg("snapbox: cannot drop privileges: the process has other threads "
			"already (drop them first, before any sandbox or pool exists)\n");
		return -EBUSY;
	}
	what = "PR_SET_NO_NEW_PRIVS";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		goto fail;
	/* Ambient first: it may only hold what permitted and inheritable hold. */
	what = "clearing the ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		goto fail;
	what = "capget";
	if (syscall(SYS_capget, &hdr, data))
		goto fail;
	setpcap = data[0].effective & (1u << CAP_SETPCAP);
	/* Only what is permitted now can be kept. */
	if (keep >= 0 && !(data[keep / 32].permitted & (1u << (keep % 32))))
		keep = -1;
	memset(data, 0, sizeof(data));
	/* The bounding set before capset: dropping from it needs CAP_SETPCAP,
	 * which capset is about to remove from the effective set. Without it
	 * (not root) there is nothing in permitted to drop, and no_new_privs
	 * keeps exec from gaining any. */
	for (cap = 0; setpcap && cap <= last; cap++) {
		if (cap == keep || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
			continue;
		what = "dropping from the bounding set";
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			goto fail;
	}
	if (keep >= 0)
		data[keep / 32].effective = data[keep / 32].permitted = 1u << (keep % 32);
	what = "capset";
	if (syscall(SYS_capset, &hdr, data))
		goto fail;
	return 0;
fail:
	cap = -errno;
	log_msg("snapbox: cannot drop privileges (%s): %s\n", what, strerror(-cap));
	return cap;
}
