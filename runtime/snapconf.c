/* snapconf.c - explicit encoding of the CONF and MEMF snapshot sections. */
#include "runtime/snapconf.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* s is NUL-terminated within its buffer; cap bounds what a reader accepts. */
static void snapconf_put_str(struct sbuf *out, const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	sbuf_put_u32(out, (uint32_t)n);
	sbuf_put_bytes(out, s, n);
}

/* Length-checked before copying: a hostile file cannot overrun dst. */
static int snapconf_get_str(struct sbuf_reader *in, char *dst, size_t cap)
{
	uint32_t n = sbuf_get_u32(in);

	if (in->err || n >= cap || n > sbuf_remaining(in))
		return -EPROTO;
	sbuf_get_bytes(in, dst, n);
	dst[n] = '\0';
	if (memchr(dst, '\0', n))
		return -EPROTO;
	return in->err ? -EPROTO : 0;
}

void snapconf_encode(const struct snapconf *c, struct sbuf *out)
{
	sbuf_put_u64(out, c->mem_bytes);
	sbuf_put_u32(out, c->vcpus);
	sbuf_put_u8(out, c->backend);
	sbuf_put_u8(out, c->has_initrd ? 1 : 0);
	sbuf_put_u64(out, c->kernel_hash[0]);
	sbuf_put_u64(out, c->kernel_hash[1]);
	sbuf_put_u64(out, c->initrd_hash[0]);
	sbuf_put_u64(out, c->initrd_hash[1]);
	sbuf_put_u64(out, c->created_unix_ns);
	snapconf_put_str(out, c->cmdline, sizeof(c->cmdline) - 1);
	snapconf_put_str(out, c->kernel_path, sizeof(c->kernel_path) - 1);
	snapconf_put_str(out, c->version, sizeof(c->version) - 1);
}

int snapconf_decode(struct sbuf_reader *in, struct snapconf *c)
{
	uint8_t has_initrd;
	int ret;

	memset(c, 0, sizeof(*c));
	c->mem_bytes = sbuf_get_u64(in);
	c->vcpus = sbuf_get_u32(in);
	c->backend = sbuf_get_u8(in);
	has_initrd = sbuf_get_u8(in);
	c->has_initrd = has_initrd != 0;
	c->kernel_hash[0] = sbuf_get_u64(in);
	c->kernel_hash[1] = sbuf_get_u64(in);
	c->initrd_hash[0] = sbuf_get_u64(in);
	c->initrd_hash[1] = sbuf_get_u64(in);
	c->created_unix_ns = sbuf_get_u64(in);
	ret = snapconf_get_str(in, c->cmdline, sizeof(c->cmdline));
	if (!ret)
		ret = snapconf_get_str(in, c->kernel_path, sizeof(c->kernel_path));
	if (!ret)
		ret = snapconf_get_str(in, c->version, sizeof(c->version));
	if (ret || in->err || sbuf_remaining(in) != 0 || c->backend > 1 || has_initrd > 1) {
		log_msg("snapbox: snapshot CONF section is malformed\n");
		return -EPROTO;
	}
	return 0;
}

void snapconf_memf_encode(const struct snapconf_memf *m, struct sbuf *out)
{
	snapconf_put_str(out, m->name, sizeof(m->name) - 1);
	sbuf_put_u64(out, m->raw_size);
	sbuf_put_u32(out, m->chunk_size);
	sbuf_put_u32(out, m->chunk_count);
	sbuf_put_u64(out, m->index_xxh64);
}

int snapconf_memf_decode(struct sbuf_reader *in, struct snapconf_memf *m)
{
	int ret;

	memset(m, 0, sizeof(*m));
	ret = snapconf_get_str(in, m->name, sizeof(m->name));
	m->raw_size = sbuf_get_u64(in);
	m->chunk_size = sbuf_get_u32(in);
	m->chunk_count = sbuf_get_u32(in);
	m->index_xxh64 = sbuf_get_u64(in);
	/* Only the one file name snapbox writes: a path here could point anywhere. */
	if (ret || in->err || sbuf_remaining(in) != 0 || strcmp(m->name, "memory") != 0) {
		log_msg("snapbox: snapshot MEMF section is malformed\n");
		return -EPROTO;
	}
	return 0;
}
