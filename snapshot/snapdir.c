/* snapdir.c - atomic snapshot directories: hidden temporary, fsync, rename/exchange into place, removal of the old one. */
#include "snapshot/snapdir.h"
#include "kvm/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/vmstate.h"

#define SNAPDIR_LOG(...) log_line("snapbox: snapshot dir: ", __VA_ARGS__)

/* Release everything in *d without touching the file system. */
static void snapdir_release(struct snapdir *d)
{
	if (d->tmp_fd >= 0)
		close(d->tmp_fd);
	if (d->parent_fd >= 0)
		close(d->parent_fd);
	free(d->path);
	free(d->name);
	free(d->tmp_name);
	memset(d, 0, sizeof(*d));
	d->parent_fd = d->tmp_fd = -1;
}

/*
 * 1 when parent/name may be replaced: an empty directory, or one holding only
 * regular files with a vmstate that starts with the vmstate magic. 0 when it
 * must not be, -errno when it cannot be examined.
 */
static int snapdir_replaceable(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	bool entries = false, vmstate = false;
	struct dirent *e;
	DIR *dir;

	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -ENOMEM;
	}
	while ((e = readdir(dir))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		entries = true;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			goto no;
		if (!strcmp(e->d_name, SNAPDIR_VMSTATE)) {
			char magic[8];
			int vfd = openat(dirfd(dir), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			ssize_t n = vfd < 0 ? -1 : pread(vfd, magic, sizeof(magic), 0);

			if (vfd >= 0)
				close(vfd);
			vmstate = n == (ssize_t)sizeof(magic) && !memcmp(magic, VMSTATE_MAGIC, 8);
		}
	}
	closedir(dir);
	return !entries || vmstate;
no:
	closedir(dir);
	return 0;
}

/* Remove parent/name: its entries (one level: snapshots hold only files), then the directory. */
static int snapdir_remove(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *e;
	DIR *dir;
	int ret = 0;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -ENOMEM;
	}
	while ((e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    unlinkat(dirfd(dir), e->d_name, 0) < 0 && !ret)
			ret = -errno;
	closedir(dir);
	if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && !ret)
		ret = -errno;
	return ret;
}

/* Split target into d->name and an open parent directory; checks the name. */
static int snapdir_split(struct snapdir *d, const char *target)
{
	size_t len = strlen(target);
	char *parent, *slash;

	while (len > 1 && target[len - 1] == '/')
		len--;
	parent = strndup(target, len);
	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	d->name = strdup(slash ? slash + 1 : parent);
	if (slash == parent)
		parent[1] = '\0';          /* "/name": the parent is the root */
	else if (slash)
		*slash = '\0';
	if (!d->name) {
		free(parent);
		return -ENOMEM;
	}
	if (!d->name[0] || !strcmp(d->name, ".") || !strcmp(d->name, "..")) {
		SNAPDIR_LOG("'%s' does not name a directory to create", target);
		free(parent);
		return -EINVAL;
	}
	/* Room for ".<name>.tmp-<pid>-<8 hex>" within NAME_MAX. */
	if (strlen(d->name) + 32 > NAME_MAX) {
		SNAPDIR_LOG("'%s': name too long", target);
		free(parent);
		return -ENAMETOOLONG;
	}
	d->parent_fd = open(slash ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->parent_fd < 0) {
		int ret = -errno;
		SNAPDIR_LOG("parent directory of '%s': %s", target, strerror(errno));
		free(parent);
		return ret;
	}
	free(parent);
	return 0;
}

/* Refuse a target that exists and is not replaceable. */
static int snapdir_check_target(const struct snapdir *d)
{
	struct stat st;
	int ok;

	if (fstatat(d->parent_fd, d->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	ok = snapdir_replaceable(d->parent_fd, d->name);
	if (ok < 0) {
		SNAPDIR_LOG("'%s': %s", d->path, strerror(-ok));
		return ok;
	}
	if (!ok) {
		SNAPDIR_LOG("'%s' exists and is not a snapshot; refusing to replace it", d->path);
		return -EEXIST;
	}
	return 0;
}

int snapdir_begin(struct snapdir *d, const char *target, bool no_sync)
{
	int ret;

	memset(d, 0, sizeof(*d));
	d->parent_fd = d->tmp_fd = -1;
	d->no_sync = no_sync;
	d->path = strdup(target);
	if (!d->path || !(d->tmp_name = calloc(1, NAME_MAX + 1))) {
		ret = -ENOMEM;
		SNAPDIR_LOG("out of memory");
		goto fail;
	}
	ret = snapdir_split(d, target);
	if (ret)
		goto fail;
	/* Checked now so a doomed snapshot fails before any work; finish checks again. */
	ret = snapdir_check_target(d);
	if (ret)
		goto fail;
	for (int tries = 0;; tries++) {
		uint32_t rnd;

		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
			rnd = (uint32_t)time(NULL) ^ (uint32_t)clock() ^ (uint32_t)tries * 2654435761u;
		snprintf(d->tmp_name, NAME_MAX + 1, ".%s.tmp-%d-%08x", d->name, (int)getpid(), rnd);
		if (mkdirat(d->parent_fd, d->tmp_name, 0700) == 0)
			break;
		if (errno != EEXIST || tries == 8) {
			ret = -errno;
			SNAPDIR_LOG("creating a temporary directory beside '%s': %s", d->path, strerror(errno));
			goto fail;
		}
	}
	d->tmp_fd = openat(d->parent_fd, d->tmp_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->tmp_fd < 0) {
		ret = -errno;
		SNAPDIR_LOG("opening '%s': %s", d->tmp_name, strerror(errno));
		unlinkat(d->parent_fd, d->tmp_name, AT_REMOVEDIR);
		goto fail;
	}
	return 0;
fail:
	snapdir_release(d);
	return ret;
}

int snapdir_create_file(struct snapdir *d, const char *name)
{
	int fd = openat(d->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		int ret = -errno;
		SNAPDIR_LOG("creating '%s' in '%s': %s", name, d->tmp_name, strerror(errno));
		return ret;
	}
	return fd;
}

/* fsync every regular file in the temporary directory, then the directory itself. */
static int snapdir_sync(struct snapdir *d)
{
	int fd = openat(d->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *dir;
	int ret = 0;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		SNAPDIR_LOG("listing '%s': %s", d->tmp_name, strerror(-ret));
		return ret;
	}
	while (!ret && (e = readdir(dir))) {
		int f;

		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
			continue;
		f = openat(d->tmp_fd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (f < 0 || fsync(f) < 0) {
			ret = -errno;
			SNAPDIR_LOG("fsync '%s/%s': %s", d->tmp_name, e->d_name, strerror(errno));
		}
		if (f >= 0)
			close(f);
	}
	closedir(dir);
	/* Files before their directory: the entries must never be durable ahead of the data. */
	if (!ret && fsync(d->tmp_fd) < 0) {
		ret = -errno;
		SNAPDIR_LOG("fsync '%s': %s", d->tmp_name, strerror(errno));
	}
	return ret;
}

/*
 * Fallback for file systems without renameat2 flags: old target to a hidden
 * name, new one into place. The target is briefly absent, never half-written.
 * *old_name receives the hidden name ("" when there was no old target).
 */
static int snapdir_rename_fallback(struct snapdir *d, char *old_name, size_t len)
{
	old_name[0] = '\0';
	if (faccessat(d->parent_fd, d->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(old_name, len, ".%s.old-%d", d->name, (int)getpid());
		if (renameat(d->parent_fd, d->name, d->parent_fd, old_name) < 0)
			return -errno;
	}
	if (renameat(d->parent_fd, d->tmp_name, d->parent_fd, d->name) < 0) {
		int ret = -errno;
		/* Put the old snapshot back so a failure leaves the target as it was. */
		if (old_name[0] && renameat(d->parent_fd, old_name, d->parent_fd, d->name) < 0)
			SNAPDIR_LOG("could not move the old snapshot back to '%s' (%s): it is kept as "
				    "'%s' beside it", d->path, strerror(errno), old_name);
		old_name[0] = '\0';
		return ret;
	}
	return 0;
}

/*
 * Rename the temporary directory to the target (docs/snapshot-format.md §1.1
 * step 4). *exchanged: the old snapshot is now at tmp_name; old_name: the
 * fallback moved it there. Logs one line on error.
 */
static int snapdir_publish(struct snapdir *d, char *old_name, size_t len, bool *exchanged)
{
	bool have_flags;
	int ret;

	if (renameat2(d->parent_fd, d->tmp_name, d->parent_fd, d->name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST && errno != EINVAL)
		goto fail;
	have_flags = errno == EEXIST;
	/* Re-checked: the target may have changed since begin. */
	ret = snapdir_check_target(d);
	if (ret)
		return ret;
	if (have_flags) {
		if (renameat2(d->parent_fd, d->tmp_name, d->parent_fd, d->name, RENAME_EXCHANGE) == 0) {
			*exchanged = true;
			return 0;
		}
		if (errno != EINVAL)
			goto fail;
	}
	ret = snapdir_rename_fallback(d, old_name, len);
	if (!ret)
		return 0;
	errno = -ret;
fail:
	ret = -errno;
	SNAPDIR_LOG("putting '%s' in place: %s", d->path, strerror(errno));
	return ret;
}

int snapdir_finish(struct snapdir *d)
{
	char old_name[NAME_MAX + 1] = "";
	bool exchanged = false;
	int ret = 0;

	/* Data is made durable before the rename that publishes it. */
	if (!d->no_sync) {
		ret = snapdir_sync(d);
		if (ret)
			goto fail;
	}
	ret = snapdir_publish(d, old_name, sizeof(old_name), &exchanged);
	if (ret)
		goto fail;
	/* The rename is made durable before the old snapshot's data is deleted. */
	if (!d->no_sync && fsync(d->parent_fd) < 0) {
		ret = -errno;
		SNAPDIR_LOG("'%s' is in place but fsync of its parent failed: %s", d->path,
			    strerror(errno));
	}
	if (exchanged || old_name[0]) {
		const char *old = exchanged ? d->tmp_name : old_name;
		int e;

		/* Why not delete it then: until the rename is durable, a crash can
		 * bring back the old name, and it must still hold the old data. */
		if (ret) {
			SNAPDIR_LOG("the old snapshot is kept as '%s' beside it", old);
			snapdir_release(d);
			return ret;
		}
		e = snapdir_remove(d->parent_fd, old);
		if (e)
			SNAPDIR_LOG("removing the old snapshot (now '%s'): %s", old, strerror(-e));
	}
	snapdir_release(d);
	return ret;
fail:
	snapdir_abort(d);
	return ret;
}

void snapdir_abort(struct snapdir *d)
{
	/* A released or never-begun snapdir has no path and owns nothing (not even fd 0). */
	if (!d->path)
		return;
	if (d->parent_fd >= 0 && d->tmp_name && d->tmp_name[0]) {
		int ret = snapdir_remove(d->parent_fd, d->tmp_name);
		if (ret)
			SNAPDIR_LOG("removing '%s': %s", d->tmp_name, strerror(-ret));
	}
	snapdir_release(d);
}
