/* unit_confine.c - the seccomp allow-lists are in force: a confined thread is refused what its role never needs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
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
