/* paths.c - snapboxd's files: what a client may name (beneath an operator's root, never through a link), the private state directory, and deletes that never follow a link. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "server/srv.h"

#define SRV_REL_MAX   1024    /* a client-given relative path, at most */
#define SRV_RM_DEPTH  8       /* snapshot directories hold only files; this bounds a planted tree */

int srv_root_open(const char *dir, const char *what)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		int ret = -errno;

		srv_log("%s %s: %s", what, dir, strerror(errno));
		return ret;
	}
	return fd;
}

int srv_open_beneath(int root, const char *rel, bool dir)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (dir ? O_DIRECTORY : 0),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	struct stat st;
	int fd;

	if (root < 0)
		return -EACCES;
	if (!rel || !*rel || rel[0] == '/' || strlen(rel) > SRV_REL_MAX)
		return -EINVAL;
	fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
	if (fd < 0)
		return errno == EXDEV || errno == ELOOP ? -EACCES : -errno;
	/* A FIFO, device or socket would block a read or mean something else: only regular files. */
	if (fstat(fd, &st) || (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int srv_private_dir(const char *path, const char *what, bool create)
{
	return srv_private_dirat(AT_FDCWD, path, what, create);
}

int srv_private_dirat(int at, const char *path, const char *what, bool create)
{
	struct stat st;
	int fd;

	if (create && mkdirat(at, path, 0700) && errno != EEXIST) {
		srv_log("cannot create the %s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int ret = errno == ELOOP || errno == ENOTDIR ? -EPERM : -errno;

		srv_log("the %s %s %s", what, path, ret == -EPERM ?
			"is a symlink or not a directory: refusing it (nothing was touched)" : strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		srv_log("the %s %s is owned by uid %u with mode %04o: it must be this daemon's (uid %u) "
			"and private (0700); refusing it (nothing was touched)", what, path,
			(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	return fd;
}

int srv_rm_at(int dirfd, const char *name)
{
	return srv_rm_at_depth(dirfd, name, SRV_RM_DEPTH);
}

int srv_rm_at_depth(int dirfd, const char *name, int depth)
{
	struct dirent *e;
	DIR *d;
	int fd, ret = 0;

	/* A link (or anything not a directory) is removed itself, never followed. */
	if (!unlinkat(dirfd, name, 0) || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth <= 0)
		return -ELOOP;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (srv_rm_at_depth(fd, e->d_name, depth - 1) && !ret)
			ret = -EIO;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) && !ret)
		ret = -errno;
	return ret;
}

char *srv_fd_path(int fd)
{
	char *p;

	return asprintf(&p, "/proc/self/fd/%d", fd) < 0 ? NULL : p;
}

uint64_t srv_dir_bytes(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	uint64_t n = 0;
	struct dirent *e;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((e = readdir(d)))
		if (!fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
			n += (uint64_t)st.st_blocks * 512;
	closedir(d);
	return n;
}
