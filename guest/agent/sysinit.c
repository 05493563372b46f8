/* sysinit.c - what PID 1 sets up before READY: the pseudo file systems, /dev's links, the hostname and the loopback interface. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/agent/agent.h"

static void sysinit_mount(const char *src, const char *dir, const char *type, unsigned long flags,
			  const char *opts, mode_t mode)
{
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		agent_log("mkdir %s: %s", dir, strerror(errno));
	if (mount(src, dir, type, flags, opts) < 0 && errno != EBUSY)
		agent_log("mount %s on %s: %s", type, dir, strerror(errno));
}

/* A symlink /dev/NAME -> TARGET, unless something is there already. */
static void sysinit_devlink(const char *target, const char *name)
{
	if (symlink(target, name) < 0 && errno != EEXIST)
		agent_log("symlink %s: %s", name, strerror(errno));
}

/*
 * /proc, /sys and devtmpfs first: everything after them opens nodes there.
 * devpts on /dev/pts makes devtmpfs's /dev/ptmx work (since Linux 4.7 it
 * opens the instance mounted beside it), so openpty() and the pty module
 * do; gid 5 is the image's tty group. /dev/fd and /dev/std* are what shells
 * and programs expect from udev or systemd, which this guest has not.
 */
static void sysinit_mounts(void)
{
	sysinit_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
	sysinit_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
	sysinit_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
	sysinit_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
	sysinit_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
	sysinit_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		      "gid=5,mode=0620,ptmxmode=0666", 0755);
	sysinit_devlink("/proc/self/fd", "/dev/fd");
	sysinit_devlink("/proc/self/fd/0", "/dev/stdin");
	sysinit_devlink("/proc/self/fd/1", "/dev/stdout");
	sysinit_devlink("/proc/self/fd/2", "/dev/stderr");
}

/* The hostname from /etc/hostname (the image's), "snapbox" without one. */
static void sysinit_hostname(void)
{
	char name[65] = "snapbox";
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, name, sizeof(name) - 1);

		close(fd);
		if (n > 0) {
			name[n] = 0;
			name[strcspn(name, " \t\r\n")] = 0;
		}
		if (!name[0])
			snprintf(name, sizeof(name), "snapbox");
	}
	if (sethostname(name, strlen(name)) < 0)
		agent_log("sethostname: %s", strerror(errno));
}

/*
 * Bring lo up. The kernel gives it 127.0.0.1/8 and ::1 itself when it comes
 * up, so no address is configured here. An AF_INET socket would need INET;
 * the ioctl works on any socket, so a kernel without INET still boots.
 */
static void sysinit_loopback(void)
{
	struct ifreq ifr;
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0) {
		agent_log("loopback: socket: %s", strerror(errno));
		return;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		agent_log("loopback: SIOCGIFFLAGS: %s", strerror(errno));
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			agent_log("loopback: SIOCSIFFLAGS: %s", strerror(errno));
	}
	close(s);
}

void agent_sysinit(void)
{
	sysinit_mounts();
	sysinit_hostname();
	sysinit_loopback();
}
