/* template.c - build or reuse the decompressed memory template of a snapshot. */
#include "runtime/template.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int template_open_existing(const char *path, uint64_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* A template of the wrong size is not ours to trust; rebuild it. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* Decode into a fresh file under tmp, then rename it to path. */
static int template_build(const struct memfile_reader *mem, const char *path, const char *tmp,
			  unsigned threads)
{
	void *map;
	int fd, ret;

	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "snapbox: cannot create memory template %s: %s\n", tmp, strerror(-ret));
		return ret;
	}
	/* A new file reads as zeros, which is what memfile_read_all expects for ZERO chunks. */
	if (ftruncate(fd, (off_t)mem->raw_size) < 0) {
		ret = -errno;
		fprintf(stderr, "snapbox: cannot size memory template: %s\n", strerror(-ret));
		goto err;
	}
	map = mmap(NULL, mem->raw_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		fprintf(stderr, "snapbox: cannot map memory template: %s\n", strerror(-ret));
		goto err;
	}
	ret = memfile_read_all(mem, map, mem->raw_size, threads);
	munmap(map, mem->raw_size);
	if (ret)
		goto err;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		fprintf(stderr, "snapbox: cannot publish memory template %s: %s\n", path, strerror(-ret));
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
	char path[4096], tmp[4160];
	int fd, ret;

	*created = false;
	if (!cache_dir)
		cache_dir = "/dev/shm";
	snprintf(path, sizeof(path), "%s/snapbox-%016llx-%llu.mem", cache_dir,
		 (unsigned long long)mem->index_xxh64, (unsigned long long)mem->raw_size);
	fd = template_open_existing(path, mem->raw_size);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&template_lock);
	/* Someone may have finished it while we waited. */
	fd = template_open_existing(path, mem->raw_size);
	if (fd >= 0)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
	ret = template_build(mem, path, tmp, threads);
	if (ret) {
		fd = ret;
		goto out;
	}
	*created = true;
	fd = template_open_existing(path, mem->raw_size);
	if (fd < 0)
		fprintf(stderr, "snapbox: memory template %s vanished: %s\n", path, strerror(-fd));
out:
	pthread_mutex_unlock(&template_lock);
	return fd;
}
