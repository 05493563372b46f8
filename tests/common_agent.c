/* common_agent.c - the host-side harness that runs guest/agent as a test-mode child behind chan + UART. */
#include "kvm/mono.h"
#include "tests/common_agent.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm/uart.h"
#include "proto/frame.h"

const char *tagent_path(void)
{
	const char *p = getenv("SNAPBOX_AGENT");

	return p && *p ? p : "build/guest/agent";
}

static void tagent_write_all(struct tagent *t, const uint8_t *p, size_t n)
{
	pthread_mutex_lock(&t->wlock);
	while (n > 0) {
		ssize_t w = write(t->fd, p, n);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;   /* the agent is gone; the request will time out */
		}
		p += w;
		n -= (size_t)w;
	}
	pthread_mutex_unlock(&t->wlock);
}

/* UART RX queue -> agent, through the data register as the guest would read it. */
static void *tagent_pump(void *opaque)
{
	struct tagent *t = opaque;
	static uint8_t buf[PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE];

	while (!atomic_load(&t->stop)) {
		size_t n = t->uart.rx_cap - uart_rx_space(&t->uart);

		if (n == 0) {
			usleep(200);
			continue;
		}
		uart_io(&t->uart, 0, buf, 1, (uint32_t)n, false);
		tagent_write_all(t, buf, n);
	}
	return NULL;
}

/* agent -> chan_rx, as the vCPU thread would deliver COM2 bytes. */
static void *tagent_reader(void *opaque)
{
	struct tagent *t = opaque;
	uint8_t buf[65536];

	while (!atomic_load(&t->stop)) {
		struct pollfd p = { .fd = t->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(t->fd, buf, sizeof(buf));
		if (n > 0)
			chan_rx(&t->chan, buf, (size_t)n);
		else if (n == 0 || errno != EINTR)
			usleep(10000);   /* EOF/EIO after the agent died: wait for stop */
	}
	return NULL;
}

/* PID 1 of fresh PID and mount namespaces; it dies with its parent (pdeathsig). */
static void tagent_exec_pid1(const char *path, const char *stall)
{
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		_exit(126);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(path, path, "--fd", "3", "--stall-ms", stall, (char *)NULL);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	_exit(0);
}

static pid_t tagent_spawn(const char *path, enum tagent_mode mode, int child_fd, const char *dev,
			  unsigned stall_ms)
{
	char stall[16];
	pid_t pid;

	snprintf(stall, sizeof(stall), "%u", stall_ms);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		if (mode != TAGENT_PTY)
			dup2(child_fd, 3);
		if (mode == TAGENT_PID1)
			tagent_exec_pid1(path, stall);
		else if (mode == TAGENT_PTY)
			execl(path, path, "--test", "--dev", dev, "--stall-ms", stall, (char *)NULL);
		else
			execl(path, path, "--test", "--fd", "3", "--stall-ms", stall, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The one child of pid (the namespaced agent), or 0. */
static pid_t tagent_child_of(pid_t parent)
{
	char path[64], buf[4096];
	FILE *f;
	pid_t child = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
	f = fopen(path, "r");
	if (f && fgets(buf, sizeof(buf), f))
		child = (pid_t)atoi(buf);
	if (f)
		fclose(f);
	return child;
}

/* Can this host give us new PID and mount namespaces? */
static bool tagent_can_unshare(void)
{
	pid_t pid = fork();
	int st;

	if (pid == 0)
		_exit(unshare(CLONE_NEWPID | CLONE_NEWNS) == 0 ? 0 : 1);
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void tagent_start(struct tagent *t, enum tagent_mode mode, unsigned stall_ms)
{
	const char *path = tagent_path();
	char dev[128] = "";
	int sv[2] = { -1, -1 }, ret, i;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (access(path, X_OK) != 0) {
		if (!getenv("SNAPBOX_AGENT"))
			cr_skip_test("agent binary %s not built (make agent)", path);
		cr_assert_fail("agent binary %s: %s", path, strerror(errno));
	}
	if (mode == TAGENT_PID1 && !tagent_can_unshare())
		cr_skip_test("no PID/mount namespaces here (unshare: not permitted)");
	if (mode == TAGENT_PTY) {
		int slave;

		cr_assert_eq(openpty(&sv[0], &slave, dev, NULL, NULL), 0, "openpty: %s", strerror(errno));
		close(slave);   /* the agent opens it by name; the master keeps it alive */
		fcntl(sv[0], F_SETFD, FD_CLOEXEC);
	} else {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	}
	t->fd = sv[0];
	t->pid = tagent_spawn(path, mode, sv[1], dev, stall_ms);
	if (sv[1] >= 0)
		close(sv[1]);
	cr_assert_gt(t->pid, 0, "fork failed");
	t->agent_pid = t->pid;
	cr_assert_eq(uart_init(&t->uart, UART_COM2_BASE, UART_COM2_IRQ,
			       PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE, NULL, NULL, NULL, NULL), 0);
	cr_assert_eq(chan_init(&t->chan, &t->uart), 0);
	pthread_mutex_init(&t->wlock, NULL);
	atomic_store(&t->stop, false);
	pthread_create(&t->pump, NULL, tagent_pump, t);
	pthread_create(&t->reader, NULL, tagent_reader, t);
	t->started = true;
	ret = chan_wait_ready(&t->chan, mono_now_ns() + 5000000000ull);
	cr_assert_eq(ret, 0, "agent sent no READY: %s", strerror(-ret));
	pthread_mutex_lock(&t->chan.lock);
	for (i = 0; i < SNAPBOX_STAGE_COUNT; i++)
		cr_assert(t->chan.stage_valid[i], "BOOT_TIME stage %d missing", i);
	cr_assert_eq(t->chan.bad_boot_time, 0);
	pthread_mutex_unlock(&t->chan.lock);
	if (mode == TAGENT_PID1) {
		t->agent_pid = tagent_child_of(t->pid);
		cr_assert_gt(t->agent_pid, 0, "the namespaced agent is not a child of %d", t->pid);
	}
}

void tagent_stop(struct tagent *t)
{
	if (!t->started)
		return;
	t->started = false;
	/* PID1 mode: the namespace's parent reaps the agent, then exits by itself. */
	kill(t->agent_pid, SIGKILL);
	if (t->agent_pid != t->pid && waitpid(t->pid, NULL, 0) != t->pid)
		kill(t->pid, SIGKILL);
	if (t->agent_pid == t->pid)
		waitpid(t->pid, NULL, 0);
	atomic_store(&t->stop, true);
	pthread_join(t->pump, NULL);
	pthread_join(t->reader, NULL);
	close(t->fd);
	chan_fini(&t->chan);
	uart_fini(&t->uart);
	pthread_mutex_destroy(&t->wlock);
}

void tagent_raw(struct tagent *t, const void *buf, size_t n)
{
	tagent_write_all(t, buf, n);
}

int tagent_ping(struct tagent *t, unsigned timeout_ms)
{
	uint32_t n;
	void *r;
	int ret = chan_request(&t->chan, PROTO_T_PING, NULL, 0, &r, &n,
			       mono_now_ns() + (uint64_t)timeout_ms * 1000000ull);

	free(r);
	return ret;
}

int tagent_zombies(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[512], *rp;
		int ppid = 0;
		char state = 0;
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && state == 'Z' && ppid == parent)
			count++;
		fclose(f);
	}
	closedir(d);
	return count;
}

bool tagent_wait_gone(pid_t pid, unsigned ms)
{
	char path[64];
	unsigned i;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	for (i = 0; i < ms / 10; i++) {
		if (access(path, F_OK) != 0)
			return true;
		usleep(10000);
	}
	return access(path, F_OK) != 0;
}
