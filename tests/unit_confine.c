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
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/confine.h"
#include "snapbox.h"
#include "tests/common_capture.h"

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
	confine_set_enabled(true);
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

/*
 * Run check in a child forked from this test: it has a single thread (the
 * Criterion worker does not), which confine_process requires. check returns
 * 0 or the line of the first failed expectation; that is asserted here.
 */
static void confine_in_child(int (*check)(void))
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int line = check();

		_exit(line ? line % 250 + 1 : 0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "expectation failed in the child (code %d; see the test)",
		     WEXITSTATUS(status));
}

#define EXPECT(cond) do { if (!(cond)) return __LINE__; } while (0)

static int confine_check_drop(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	char path[] = "/tmp/snapbox-confine-XXXXXX";
	int fd = mkstemp(path);

	EXPECT(fd >= 0);
	EXPECT(confine_process(false) == 0);
	EXPECT(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
	EXPECT(syscall(SYS_capget, &hdr, d) == 0);
	EXPECT((d[0].effective | d[1].effective | d[0].permitted | d[1].permitted) == 0);
	EXPECT((d[0].inheritable | d[1].inheritable) == 0);
	EXPECT(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) == 0);
	/* Root could drop the bounding set, so it did: no exec can bring a capability back. */
	if (geteuid() == 0)
		for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
			EXPECT(prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1);
	/* What root could do only by capability is refused now (CAP_CHOWN) ... */
	EXPECT(fchown(fd, 12345, 12345) == -1 && errno == EPERM);
	/* ... while the owner's plain file access still works (/dev/kvm needs no more). */
	EXPECT(write(fd, "x", 1) == 1);
	close(fd);
	EXPECT(unlink(path) == 0);
	return 0;
}

Test(confine, dropped_process_has_no_capabilities_and_no_new_privs)
{
	confine_in_child(confine_check_drop);
}

static int confine_check_lazy(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2], before[2];
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int unpriv = 0;
	uint32_t want;

	if (f) {
		EXPECT(fscanf(f, "%d", &unpriv) == 1);
		fclose(f);
	}
	EXPECT(syscall(SYS_capget, &hdr, before) == 0);
	EXPECT(confine_process(true) == 0);
	EXPECT(syscall(SYS_capget, &hdr, d) == 0);
	want = !unpriv && (before[0].permitted & (1u << CAP_SYS_PTRACE)) ? 1u << CAP_SYS_PTRACE : 0;
	EXPECT(d[0].effective == want && d[0].permitted == want);
	EXPECT((d[1].effective | d[1].permitted) == 0);
	return 0;
}

Test(confine, lazy_keeps_only_sys_ptrace_and_only_when_userfaultfd_needs_it)
{
	confine_in_child(confine_check_lazy);
}

static void *confine_idle_thread(void *arg)
{
	int *fd = arg;
	char c;

	return read(*fd, &c, 1) < 0 ? NULL : NULL;
}

Test(confine, drop_refuses_a_process_that_already_has_threads)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct before[2], after[2];
	int fds[2];
	pthread_t t;

	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(syscall(SYS_capget, &hdr, before), 0);
	cr_assert_eq(pthread_create(&t, NULL, confine_idle_thread, &fds[0]), 0);
	cr_assert_eq(confine_process(false), -EBUSY);
	/* Nothing was half-dropped. */
	cr_assert_eq(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 0);
	cr_assert_eq(syscall(SYS_capget, &hdr, after), 0);
	cr_assert_eq(after[0].effective, before[0].effective);
	cr_assert_eq(close(fds[1]), 0);
	pthread_join(t, NULL);
	close(fds[0]);
}

static pthread_barrier_t confine_barrier;

static void *confine_racer(void *arg)
{
	int *result = arg;

	pthread_barrier_wait(&confine_barrier);
	*result = confine_thread(CONFINE_VCPU);
	if (*result == 0 && open("/etc/hostname", O_RDONLY) >= 0)
		*result = 1;   /* confined, yet open was allowed */
	return NULL;
}

/* Regression: threads confining at the same moment once corrupted a shared libseccomp context and spun forever. */
Test(confine, many_threads_confine_at_once, .timeout = 60)
{
	enum { N = 8 };
	pthread_t t[N];
	int result[N];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	cr_skip_test("sanitizer builds run unconfined (kvm/confine.c)");
#endif
	confine_set_enabled(true);
	cr_assert_eq(pthread_barrier_init(&confine_barrier, NULL, N), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, confine_racer, &result[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(result[i], 0, "thread %d: %d", i, result[i]);
	}
	pthread_barrier_destroy(&confine_barrier);
}

/* Confinement is the embedding program's choice: the environment no longer turns it off. */
Test(confine, only_the_caller_turns_confinement_off, .init = tests_quiet_stderr)
{
	struct confine_probe p = { .role = CONFINE_VCPU };
	int fds[2];
	pthread_t t;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	cr_skip_test("sanitizer builds run unconfined (kvm/confine.c)");
#endif
	cr_assert_eq(pipe(fds), 0);
	p.pipe_w = fds[1];
	setenv("SNAPBOX_SECCOMP", "0", 1);
	confine_set_enabled(true);
	cr_assert_eq(pthread_create(&t, NULL, confine_thread_main, &p), 0);
	pthread_join(t, NULL);
	unsetenv("SNAPBOX_SECCOMP");
	cr_assert_eq(p.open_errno, EPERM, "SNAPBOX_SECCOMP=0 in the environment unconfined a thread");
	snapbox_set_confinement(false);
	cr_assert_eq(pthread_create(&t, NULL, confine_thread_main, &p), 0);
	pthread_join(t, NULL);
	snapbox_set_confinement(true);
	cr_assert_eq(p.open_errno, 0, "snapbox_set_confinement(false) did not apply");
	close(fds[0]);
	close(fds[1]);
}
