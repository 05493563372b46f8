/* files.c - the agent's WRITE_FILE and READ_FILE: size caps, and a walk from / that refuses every symlink. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/agent/agent.h"

/* A path resolved to its parent directory (an fd) and its last component. */
struct agent_path {
	char buf[PROTO_PATH_MAX + 1];
	const char *leaf;
	int dirfd;
};

/*
 * Open every directory of an absolute path from / with O_NOFOLLOW|O_DIRECTORY,
 * so no component can be a symlink (one that is gives -ELOOP). Empty and "."
 * components are skipped; ".." is refused. Returns 0 with p->dirfd open, or
 * -errno with *why naming the problem.
 */
static int agent_path_walk(struct agent_path *p, const uint8_t *path, uint32_t n, bool mkdirs,
			   const char **why)
{
	char *comp, *next;
	int fd;

	p->dirfd = -1;
	p->leaf = NULL;
	if (n == 0 || path[0] != '/') {
		*why = "the path must be absolute";
		return -EINVAL;
	}
	memcpy(p->buf, path, n);
	p->buf[n] = '\0';
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot open /";
		return -errno;
	}
	for (comp = p->buf; comp; comp = next) {
		int nfd;

		while (*comp == '/')
			comp++;
		next = strchr(comp, '/');
		if (next)
			*next++ = '\0';
		if (!*comp || !strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			close(fd);
			*why = "'..' is not allowed in the path";
			return -EINVAL;
		}
		/* The last component (nothing but slashes after it) is the leaf. */
		if (!next || !next[strspn(next, "/")]) {
			p->leaf = comp;
			break;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A missing parent is made (never through a symlink: mkdirat does not follow one). */
		if (nfd < 0 && errno == ENOENT && mkdirs &&
		    (mkdirat(fd, comp, 0755) == 0 || errno == EEXIST))
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			int err = errno;
			struct stat st;

			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				err = ELOOP;
			close(fd);
			*why = err == ELOOP ? "a directory in the path is a symlink (refused)"
					    : "cannot open a directory in the path";
			return -err;
		}
		close(fd);
		fd = nfd;
	}
	if (!p->leaf) {
		close(fd);
		*why = "the path names a directory";
		return -EISDIR;
	}
	p->dirfd = fd;
	return 0;
}

/* Open the leaf (O_NOFOLLOW, O_NONBLOCK so a FIFO cannot hang us) and insist on a regular file. */
static int agent_path_open(struct agent_path *p, int flags, mode_t mode, const char **why)
{
	struct stat st;
	int fd, err;

	fd = openat(p->dirfd, p->leaf, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
	if (fd < 0) {
		err = errno;
		*why = err == ELOOP ? "the file is a symlink (refused)" : "open";
		return -err;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		close(fd);
		*why = "fstat";
		return -err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	return fd;
}

static void agent_path_done(struct agent_path *p)
{
	if (p->dirfd >= 0)
		close(p->dirfd);
	p->dirfd = -1;
}

void agent_write_file(struct agent *a, const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_cursor c = { payload, h->len, 0 };
	struct agent_path *p;
	const uint8_t *path, *data;
	uint32_t mode, flags, plen, dlen, off = 0;
	const char *why = "malformed write-file request";
	int fd = -1, ret = -EINVAL;

	mode = proto_cur_u32(&c);
	flags = proto_cur_u32(&c);
	path = proto_cur_str(&c, PROTO_PATH_MAX, 1, &plen);
	data = proto_cur_str(&c, PROTO_FILE_MAX, 0, &dlen);
	p = malloc(sizeof(*p));
	if (!p) {
		agent_reply_err(a, h, ENOMEM, "out of memory");
		return;
	}
	p->dirfd = -1;
	if (c.bad || c.left || !path || (flags & ~PROTO_WRITE_F_MKDIRS) || (mode & ~07777u)) {
		if (!c.bad && !c.left && path)
			why = (flags & ~PROTO_WRITE_F_MKDIRS) ? "unknown write-file flags"
							      : "mode has bits beyond 07777";
		goto out;
	}
	ret = agent_path_walk(p, path, plen, flags & PROTO_WRITE_F_MKDIRS, &why);
	if (ret)
		goto out;
	fd = agent_path_open(p, O_WRONLY | O_CREAT, (mode_t)mode, &why);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = ftruncate(fd, 0) < 0 ? -errno : 0;
	while (!ret && off < dlen) {
		ssize_t n = write(fd, data + off, dlen - off);

		if (n > 0)
			off += (uint32_t)n;
		else if (n == 0)
			ret = -EIO;
		else if (errno != EINTR && errno != EAGAIN)
			ret = -errno;
	}
	if (!ret && fchmod(fd, (mode_t)mode) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	why = "write";
out:
	if (ret)
		agent_reply_err(a, h, -ret, "write-file %.*s: %s: %s", path ? (int)plen : 0,
				path ? (const char *)path : "", why, strerror(-ret));
	else
		agent_reply(a, h, NULL, 0);
	agent_path_done(p);
	free(p);
}

void agent_read_file(struct agent *a, const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_cursor c = { payload, h->len, 0 };
	struct agent_path *p;
	const uint8_t *path;
	uint32_t max, flags, plen, got = 0;
	const char *why = "malformed read-file request";
	uint8_t *buf = NULL;
	int fd, ret = -EINVAL;

	max = proto_cur_u32(&c);
	flags = proto_cur_u32(&c);
	path = proto_cur_str(&c, PROTO_PATH_MAX, 1, &plen);
	p = malloc(sizeof(*p));
	if (!p) {
		agent_reply_err(a, h, ENOMEM, "out of memory");
		return;
	}
	p->dirfd = -1;
	if (c.bad || c.left || !path || flags || max > PROTO_FILE_MAX) {
		if (!c.bad && !c.left && path)
			why = flags ? "read-file flags must be 0" : "max_bytes above the file cap";
		goto out;
	}
	ret = agent_path_walk(p, path, plen, false, &why);
	if (ret)
		goto out;
	fd = agent_path_open(p, O_RDONLY, 0, &why);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	buf = malloc((size_t)max + 1);
	ret = buf ? 0 : -ENOMEM;
	why = "read";
	/* One byte more than allowed tells a too-large file (st_size lies in /proc). */
	while (!ret && got <= max) {
		ssize_t n = read(fd, buf + got, (size_t)max + 1 - got);

		if (n == 0)
			break;
		if (n > 0)
			got += (uint32_t)n;
		else if (errno != EINTR && errno != EAGAIN)
			ret = -errno;
	}
	close(fd);
	if (!ret && got > max) {
		ret = -EFBIG;
		why = "the file is larger than max_bytes";
	}
out:
	if (ret)
		agent_reply_err(a, h, -ret, "read-file %.*s: %s: %s", path ? (int)plen : 0,
				path ? (const char *)path : "", why, strerror(-ret));
	else
		agent_reply(a, h, buf, got);
	agent_path_done(p);
	free(p);
	free(buf);
}
