/* unit_confine.c - the seccomp allow-lists are in force: a confined thread is refused what its role never needs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/confine.h"

struct confine_probe {
	enum confine_role role;
	int confine_ret;
	int open_errno, socket_errno, ioctl_errno, fork_errno;
	ssize_t write_ret;
	int pipe_w;
};

static void *confine_thread_main(void *arg)
{
	struct confine_probe *p = arg;

	p->confine_ret = confine_thread(p->role);
	errno = 0;
	p->open_errno = open("/etc/hostname", O_RDONLY) < 0 ? errno : 0;
	p->socket_errno = socket(AF_INET, SOCK_STREAM, 0) < 0 ? errno : 0;
	/* An ioctl the role never issues (FIONREAD on a pipe) is refused by argument. */
	{
		int n;

		p->ioctl_errno = ioctl(p->pipe_w, FIONREAD, &n) < 0 ? errno : 0;
	}
	p->write_ret = write(p->pipe_w, "ok", 2);
	return NULL;
}

static void confine_check(enum confine_role role)
{
	struct confine_probe p = { .role = role };
	int fds[2];
	pthread_t t;
	char buf[2];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	cr_skip_test("sanitizer builds run unconfined (kvm/confine.c); the normal build tests the filters");
#endif
	cr_assert_eq(pipe(fds), 0);
	p.pipe_w = fds[1];
	unsetenv("SNAPBOX_SECCOMP");
	cr_assert_eq(pthread_create(&t, NULL, confine_thread_main, &p), 0);
	pthread_join(t, NULL);
	cr_assert_eq(p.confine_ret, 0);
	cr_assert_eq(p.open_errno, EPERM, "open was allowed");
	cr_assert_eq(p.socket_errno, EPERM, "socket was allowed");
	cr_assert_eq(p.ioctl_errno, EPERM, "an unlisted ioctl was allowed");
	cr_assert_eq(p.write_ret, 2, "write, which the role needs, was refused");
	cr_assert_eq(read(fds[0], buf, 2), 2, "the filter leaked to another thread");
	/* This (unconfined) thread is unaffected. */
	{
		int fd = open("/dev/null", O_RDONLY);

		cr_assert_geq(fd, 0, "confinement leaked to the main thread");
		close(fd);
	}
	close(fds[0]);
	close(fds[1]);
}

Test(confine, vcpu_thread_is_refused_what_it_never_needs)
{
	confine_check(CONFINE_VCPU);
}

Test(confine, fault_handler_thread_is_refused_what_it_never_needs)
{
	confine_check(CONFINE_UFFD);
}

/* Criterion runs each test in its own process, so dropping for good is fine here. */
Test(confine, dropped_process_has_no_capabilities_and_no_new_privs)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	char path[] = "/tmp/snapbox-confine-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(confine_process(false), 0);
	cr_assert_eq(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
	cr_assert_eq(syscall(SYS_capget, &hdr, d), 0);
	cr_assert_eq(d[0].effective | d[1].effective | d[0].permitted | d[1].permitted, 0);
	cr_assert_eq(d[0].inheritable | d[1].inheritable, 0);
	cr_assert_eq(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0), 0);
	/* What root could do only by capability is refused now (CAP_CHOWN) ... */
	cr_assert_eq(fchown(fd, 12345, 12345), -1);
	cr_assert_eq(errno, EPERM);
	/* ... while the owner's plain file access still works (/dev/kvm needs no more). */
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	cr_assert_eq(unlink(path), 0);
}

Test(confine, lazy_keeps_only_sys_ptrace_and_only_when_userfaultfd_needs_it)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2], before[2];
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int unpriv = 0;
	uint32_t want;

	if (f) {
		cr_assert_eq(fscanf(f, "%d", &unpriv), 1);
		fclose(f);
	}
	cr_assert_eq(syscall(SYS_capget, &hdr, before), 0);
	cr_assert_eq(confine_process(true), 0);
	cr_assert_eq(syscall(SYS_capget, &hdr, d), 0);
	want = !unpriv && (before[0].permitted & (1u << CAP_SYS_PTRACE)) ? 1u << CAP_SYS_PTRACE : 0;
	cr_assert_eq(d[0].effective, want);
	cr_assert_eq(d[0].permitted, want);
	cr_assert_eq(d[1].effective | d[1].permitted, 0);
}
