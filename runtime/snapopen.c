/* snapopen.c - validation of a snapshot directory before anything trusts it. */
#include "runtime/snapopen.h"
#include "kvm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/snapdir.h"

int snapopen_section(const struct snapopen *so, uint32_t tag, uint16_t version,
		     struct sbuf_reader *r)
{
	const struct vmstate_section *s = vmstate_find(&so->vs, tag, 0);
	char name[5];

	vmstate_tag_str(tag, name);
	if (!s || vmstate_count(&so->vs, tag) != 1) {
		log_msg("snapbox: snapshot has %s %s section\n", s ? "more than one" : "no", name);
		return -EPROTO;
	}
	/* A section version this build does not know means a layout it cannot read. */
	if (s->version != version) {
		log_msg("snapbox: snapshot %s section is version %u; this snapbox reads version %u\n",
			name, s->version, version);
		return -EPROTO;
	}
	sbuf_reader_init(r, s->payload, s->length);
	return 0;
}

static int snapopen_check_memf(const struct snapopen *so)
{
	const struct snapconf_memf *m = &so->memf;
	const struct memfile_reader *r = &so->mem;

	if (m->raw_size != r->raw_size || m->chunk_size != r->chunk_size ||
	    m->chunk_count != r->chunk_count || m->index_xxh64 != r->index_xxh64) {
		log_msg("snapbox: snapshot memory file does not match its vmstate (MEMF)\n");
		return -EPROTO;
	}
	if (so->conf.mem_bytes != r->raw_size) {
		log_msg("snapbox: snapshot memory file holds %llu bytes, CONF says %llu\n",
			(unsigned long long)r->raw_size, (unsigned long long)so->conf.mem_bytes);
		return -EPROTO;
	}
	return 0;
}

/*
 * A file of the snapshot: a plain name in dir_fd, opened without following a
 * link or blocking on a FIFO, and only when it is a regular file. Whoever
 * could write the snapshot directory must not make the reader open anything
 * else. fd or -errno (logged).
 */
static int snapopen_file(int dir_fd, const char *dir, const char *name, const char *what)
{
	struct stat st;
	int fd;

	if (!*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, ".")) {
		log_msg("snapbox: %s names its %s '%s', not a file of the snapshot\n", dir, what, name);
		return -EPROTO;
	}
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int ret = errno == ELOOP ? -EPROTO : -errno;

		log_msg("snapbox: %s has no readable %s: %s\n", dir, what,
			errno == ELOOP ? "it is a symlink" : strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		log_msg("snapbox: %s: its %s is not a regular file\n", dir, what);
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int snapopen_open(struct snapopen *so, const char *dir)
{
	struct sbuf_reader r;
	int fd, ret;

	memset(so, 0, sizeof(*so));
	so->mem_fd = -1;
	so->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (so->dir_fd < 0) {
		ret = -errno;
		log_msg("snapbox: cannot open snapshot %s: %s\n", dir, strerror(-ret));
		return ret;
	}
	fd = snapopen_file(so->dir_fd, dir, SNAPDIR_VMSTATE, "vmstate");
	if (fd < 0) {
		ret = fd;
		goto err_dir;
	}
	ret = vmstate_read_fd(&so->vs, fd, NULL, 0);
	close(fd);
	if (ret)
		goto err_dir;
	ret = snapopen_section(so, VMSTATE_TAG_CONF, SNAPCONF_CONF_VERSION, &r);
	if (!ret)
		ret = snapconf_decode(&r, &so->conf);
	if (!ret)
		ret = snapopen_section(so, VMSTATE_TAG_MEMF, SNAPCONF_MEMF_VERSION, &r);
	if (!ret)
		ret = snapconf_memf_decode(&r, &so->memf);
	if (ret)
		goto err_vs;
	so->mem_fd = snapopen_file(so->dir_fd, dir, so->memf.name, "memory file");
	if (so->mem_fd < 0) {
		ret = so->mem_fd;
		goto err_vs;
	}
	ret = memfile_open(&so->mem, so->mem_fd);
	if (ret)
		goto err_mem;
	ret = snapopen_check_memf(so);
	if (ret)
		goto err_memfile;
	return 0;

err_memfile:
	memfile_close(&so->mem);
err_mem:
	close(so->mem_fd);
err_vs:
	vmstate_reader_fini(&so->vs);
err_dir:
	close(so->dir_fd);
	memset(so, 0, sizeof(*so));
	so->dir_fd = so->mem_fd = -1;
	return ret;
}

void snapopen_close(struct snapopen *so)
{
	if (so->dir_fd < 0)
		return;
	memfile_close(&so->mem);
	close(so->mem_fd);
	vmstate_reader_fini(&so->vs);
	close(so->dir_fd);
	so->dir_fd = so->mem_fd = -1;
}
