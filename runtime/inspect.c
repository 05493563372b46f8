/* inspect.c - `snapbox inspect`: validate a snapshot and describe it, readable or JSON. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/restore.h"
#include "runtime/snapopen.h"
#include "snapbox.h"

static void inspect_text(const struct snapopen *so, const char *dir, FILE *f)
{
	const struct snapconf *c = &so->conf;
	const struct memfile_reader *m = &so->mem;
	time_t secs = (time_t)(c->created_unix_ns / 1000000000ull);
	char when[64], tag[5];
	struct tm tm;
	size_t i;

	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(f, "snapshot %s\n", dir);
	fprintf(f, "  format         vmstate v%u, %zu sections (%zu unknown optional skipped)\n",
		so->vs.format_version, so->vs.nsecs, so->vs.nskipped);
	fprintf(f, "  created        %s by %s on %s KVM\n", when, c->version,
		c->backend ? "PVM" : "hardware");
	fprintf(f, "  memory         %llu MiB, %u vCPU\n", (unsigned long long)(c->mem_bytes >> 20),
		c->vcpus);
	fprintf(f, "  kernel         %s (xxh3-128 %016llx%016llx)\n", c->kernel_path,
		(unsigned long long)c->kernel_hash[1], (unsigned long long)c->kernel_hash[0]);
	if (c->has_initrd)
		fprintf(f, "  initrd         xxh3-128 %016llx%016llx\n",
			(unsigned long long)c->initrd_hash[1], (unsigned long long)c->initrd_hash[0]);
	fprintf(f, "  cmdline        %s\n", c->cmdline);
	fprintf(f, "  sections\n");
	for (i = 0; i < so->vs.nsecs; i++) {
		const struct vmstate_section *s = &so->vs.secs[i];

		vmstate_tag_str(s->tag, tag);
		fprintf(f, "    %-4s v%-3u %8llu bytes%s%s\n", tag, s->version,
			(unsigned long long)s->length, (s->flags & VMSTATE_F_OPTIONAL) ? " optional" : "",
			s->known ? "" : " (unknown, skipped)");
	}
	fprintf(f, "  memory file    %llu bytes stored for %llu raw (ratio %.2f)\n",
		(unsigned long long)m->file_size, (unsigned long long)m->raw_size,
		m->file_size ? (double)m->raw_size / (double)m->file_size : 0.0);
	fprintf(f, "  chunks         %u of %u KiB: %u zero, %u lz4, %u raw\n", m->chunk_count,
		m->chunk_size >> 10, m->zero_chunks, m->lz4_chunks, m->raw_chunks);
}

static void inspect_json(const struct snapopen *so, bool verified, FILE *f)
{
	const struct snapconf *c = &so->conf;
	const struct memfile_reader *m = &so->mem;
	char tag[5];
	size_t i;

	fprintf(f, "{\"format_version\": %u, \"created_unix_ns\": %llu, \"version\": ",
		so->vs.format_version, (unsigned long long)c->created_unix_ns);
	snapbox_json_string(f, c->version);
	fprintf(f, ", \"backend\": \"%s\", \"mem_bytes\": %llu, \"vcpus\": %u, \"kernel\": ",
		c->backend ? "pvm" : "hardware", (unsigned long long)c->mem_bytes, c->vcpus);
	snapbox_json_string(f, c->kernel_path);
	fprintf(f, ", \"kernel_xxh3_128\": \"%016llx%016llx\", \"initrd_xxh3_128\": ",
		(unsigned long long)c->kernel_hash[1], (unsigned long long)c->kernel_hash[0]);
	if (c->has_initrd)
		fprintf(f, "\"%016llx%016llx\"", (unsigned long long)c->initrd_hash[1],
			(unsigned long long)c->initrd_hash[0]);
	else
		fputs("null", f);
	fputs(", \"cmdline\": ", f);
	snapbox_json_string(f, c->cmdline);
	fputs(", \"sections\": [", f);
	for (i = 0; i < so->vs.nsecs; i++) {
		const struct vmstate_section *s = &so->vs.secs[i];

		vmstate_tag_str(s->tag, tag);
		fprintf(f, "%s{\"tag\": ", i ? ", " : "");
		snapbox_json_string(f, tag);
		fprintf(f, ", \"version\": %u, \"flags\": %u, \"length\": %llu, \"known\": %s}",
			s->version, s->flags, (unsigned long long)s->length, s->known ? "true" : "false");
	}
	fprintf(f, "], \"memory\": {\"raw_bytes\": %llu, \"file_bytes\": %llu, \"chunk_size\": %u, "
		"\"chunks\": %u, \"zero_chunks\": %u, \"lz4_chunks\": %u, \"raw_chunks\": %u}, "
		"\"verified\": %s}\n", (unsigned long long)m->raw_size, (unsigned long long)m->file_size,
		m->chunk_size, m->chunk_count, m->zero_chunks, m->lz4_chunks, m->raw_chunks,
		verified ? "true" : "false");
}

/*
 * Why --verify goes through restore_snap_open: one decoder for every section
 * (vCPU, host, clock, irqchips, PIT, devices), so a snapshot that passes
 * --verify is one a restore will not refuse as malformed either.
 */
int snapbox_inspect(const char *dir, bool verify, bool json, FILE *f)
{
	struct restore_snap rs;
	struct snapopen so, *o = &so;
	int ret;

	if (verify) {
		ret = restore_snap_open(&rs, dir);
		if (ret)
			return ret;   /* it closed what it opened */
		ret = memfile_read_all(&rs.so.mem, NULL, 0, 2);
		if (ret) {
			restore_snap_close(&rs);
			return ret;
		}
		o = &rs.so;
	} else {
		ret = snapopen_open(&so, dir);
		if (ret)
			return ret;
	}
	if (json)
		inspect_json(o, verify, f);
	else {
		inspect_text(o, dir, f);
		if (verify)
			fprintf(f, "  verified       every section decoded, every chunk matched its xxh3\n");
	}
	if (verify)
		restore_snap_close(&rs);
	else
		snapopen_close(&so);
	return 0;
}
