/* confine.c - the seccomp allow-lists, written for the syscalls each thread actually makes. */
#include "kvm/confine.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static scmp_filter_ctx confine_ctx[2];
static int confine_err[2];
static pthread_once_t confine_once[2] = { PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT };

static int confine_build(enum confine_role role, scmp_filter_ctx *out)
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
	if (ret) {
		seccomp_release(ctx);
		return ret;
	}
	*out = ctx;
	return 0;
}

static void confine_build_vcpu(void)
{
	confine_err[CONFINE_VCPU] = confine_build(CONFINE_VCPU, &confine_ctx[CONFINE_VCPU]);
}

static void confine_build_uffd(void)
{
	confine_err[CONFINE_UFFD] = confine_build(CONFINE_UFFD, &confine_ctx[CONFINE_UFFD]);
}

int confine_thread(enum confine_role role)
{
	const char *env = getenv("SNAPBOX_SECCOMP");
	int ret;

	if (env && !strcmp(env, "0"))
		return 0;
	pthread_once(&confine_once[role], role == CONFINE_VCPU ? confine_build_vcpu : confine_build_uffd);
	ret = confine_err[role];
	/* seccomp_load applies to the calling thread only: no SCMP_FLTATR_CTL_TSYNC. */
	if (!ret)
		ret = seccomp_load(confine_ctx[role]);
	if (ret)
		fprintf(stderr, "snapbox: cannot confine the %s thread with seccomp: %s\n",
			role == CONFINE_VCPU ? "vCPU" : "fault handler", strerror(-ret));
	return ret;
}
