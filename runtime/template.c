/* template.c - build or reuse the decompressed memory template of a snapshot. */
#include "runtime/template.h"
#include "kvm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The template at path when it can be trusted: a regular file, reached with
 * no symlink in its last component, owned by this user and writable by
 * nobody else, of the right size. Its contents are not re-hashed (that would
 * cost a full read of the image on every restore): the trust is that only this
 * user could have written it. Returns the fd, -ENOENT when there is none,
 * -ESTALE for one of ours of the wrong size (rebuilt), or -EPERM for a file
 * that is not ours to trust (left untouched).
 */
static int template_open_existing(const char *path, uint64_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		if (fstat(fd, &st) == 0)
			log_msg("snapbox: ignoring memory template %s: not a private file of this "
				"user (owner %u, mode %04o); using a private copy\n", path,
				(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	if ((uint64_t)st.st_size != size) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/*
 * The default cache directory, /dev/shm/snapbox-<euid>: created 0700 and
 * used only when it is a real directory of this user that nobody else can
 * enter, so no other local user can plant or swap a template in it.
 */
static int template_default_dir(char *buf, size_t len)
{
	struct stat st;

	snprintf(buf, len, "/dev/shm/snapbox-%u", (unsigned)geteuid());
	if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
		int ret = -errno;

		log_msg("snapbox: cannot create the template directory %s: %s\n", buf,
			strerror(-ret));
		return ret;
	}
	if (lstat(buf, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		static atomic_bool warned;

		if (!atomic_exchange(&warned, true))
			log_msg("snapbox: warning: %s is not a private directory of this user (it must be "
				"owned by uid %u with mode 0700; another user may have planted it): each cow "
				"restore decodes a private copy instead of sharing a template; remove it\n",
				buf, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

/*
 * Decode into a fresh file made from the template tmp (mkostemp, so its name
 * cannot be guessed and pre-planted), then rename it to path; with path NULL
 * the file is unlinked instead and stays private to the returned fd. Returns
 * an fd (O_RDWR) or -errno.
 */
static int template_build(const struct memfile_reader *mem, const char *path, char *tmp,
			  unsigned threads)
{
	void *map;
	int fd, ret;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_msg("snapbox: cannot create memory template %s: %s\n", tmp, strerror(-ret));
		return ret;
	}
	/* A new file reads as zeros, which is what memfile_read_all expects for ZERO chunks. */
	if (ftruncate(fd, (off_t)mem->raw_size) < 0) {
		ret = -errno;
		log_msg("snapbox: cannot size memory template: %s\n", strerror(-ret));
		goto err;
	}
	map = mmap(NULL, mem->raw_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		log_msg("snapbox: cannot map memory template: %s\n", strerror(-ret));
		goto err;
	}
	ret = memfile_read_all(mem, map, mem->raw_size, threads);
	munmap(map, mem->raw_size);
	if (ret)
		goto err;
	if (!path) {
		unlink(tmp);
		return fd;
	}
	if (rename(tmp, path) < 0) {
		ret = -errno;
		log_msg("snapbox: cannot publish memory template %s: %s\n", path, strerror(-ret));
		goto err;
	}
	close(fd);
	return 0;
err:
	unlink(tmp);
	close(fd);
	return ret;
}

/*
 * Builders in this process take turns, so concurrent restores of one snapshot
 * decode it once: the others wait, then find the template. Other processes
 * may still build in parallel; their temporary names differ (pid) and the
 * last rename wins with identical contents.
 */
static pthread_mutex_t template_lock = PTHREAD_MUTEX_INITIALIZER;

int template_get(const struct memfile_reader *mem, const char *cache_dir, unsigned threads,
		 bool *created)
{
	char dir[4096], path[4200], tmp[4300];
	int fd, ret;

	*created = false;
	if (!cache_dir) {
		ret = template_default_dir(dir, sizeof(dir));
		if (ret == -EPERM) {
			/* A planted directory must not deny service: a copy of our own,
			 * created unguessably in /dev/shm and unlinked at once. */
			snprintf(tmp, sizeof(tmp), "/dev/shm/snapbox-%u-private.XXXXXX", (unsigned)geteuid());
			fd = template_build(mem, NULL, tmp, threads);
			*created = fd >= 0;
			return fd;
		}
		if (ret)
			return ret;
		cache_dir = dir;
	}
	snprintf(path, sizeof(path), "%s/snapbox-%016llx-%llu.mem", cache_dir,
		 (unsigned long long)mem->index_xxh64, (unsigned long long)mem->raw_size);
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d-XXXXXX", path, (int)getpid());
	fd = template_open_existing(path, mem->raw_size);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&template_lock);
	/* Someone may have finished it while we waited. */
	fd = template_open_existing(path, mem->raw_size);
	if (fd >= 0)
		goto out;
	if (fd == -EPERM) {
		/* Someone else's file holds the name: never map it, never touch
		 * it; decode a copy only this restore sees. */
		fd = template_build(mem, NULL, tmp, threads);
		*created = fd >= 0;
		goto out;
	}
	ret = template_build(mem, path, tmp, threads);
	if (ret) {
		fd = ret;
		goto out;
	}
	*created = true;
	fd = template_open_existing(path, mem->raw_size);
	if (fd < 0)
		log_msg("snapbox: memory template %s vanished: %s\n", path, strerror(-fd));
out:
	pthread_mutex_unlock(&template_lock);
	return fd;
}
