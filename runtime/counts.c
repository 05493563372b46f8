/* counts.c - snapbox_counts: marks taken at an operation's start, deltas at its end, printing and JSON. */
#include "runtime/counts.h"

#include <stdio.h>
#include <string.h>

void counts_start(struct counts_mark *m)
{
	kvmcall_get(&m->kvm);
	getrusage(RUSAGE_THREAD, &m->thread);
	getrusage(RUSAGE_SELF, &m->process);
}

uint64_t counts_minflt_since(const struct counts_mark *m)
{
	struct rusage now;

	getrusage(RUSAGE_THREAD, &now);
	return (uint64_t)(now.ru_minflt - m->thread.ru_minflt);
}

void counts_finish(const struct counts_mark *m, struct snapbox_counts *c)
{
	struct rusage th, pr;

	kvmcall_delta(&m->kvm, c->kvm_ioctl, &c->kvm_ioctls);
	getrusage(RUSAGE_THREAD, &th);
	getrusage(RUSAGE_SELF, &pr);
	c->minflt_thread = (uint64_t)(th.ru_minflt - m->thread.ru_minflt);
	c->majflt_thread = (uint64_t)(th.ru_majflt - m->thread.ru_majflt);
	c->minflt_process = (uint64_t)(pr.ru_minflt - m->process.ru_minflt);
	c->majflt_process = (uint64_t)(pr.ru_majflt - m->process.ru_majflt);
}

void counts_add_decode(struct snapbox_counts *c, const struct memfile_reader *r)
{
	for (uint32_t i = 0; i < r->chunk_count; i++) {
		uint64_t left = r->raw_size - (uint64_t)i * r->chunk_size;
		uint64_t len = left < r->chunk_size ? left : r->chunk_size;

		switch (r->chunks[i].kind) {
		case MEMFILE_KIND_LZ4:
			c->bytes_decompressed += len;
			c->chunks_touched++;
			break;
		case MEMFILE_KIND_RAW:
			c->bytes_copied += len;
			c->chunks_touched++;
			break;
		default:
			break;
		}
	}
}

static const struct {
	const char *name;
	size_t off;
	bool wide;
} counts_fields[] = {
	{ "minflt_thread", offsetof(struct snapbox_counts, minflt_thread), true },
	{ "majflt_thread", offsetof(struct snapbox_counts, majflt_thread), true },
	{ "minflt_before_run", offsetof(struct snapbox_counts, minflt_before_run), true },
	{ "minflt_process", offsetof(struct snapbox_counts, minflt_process), true },
	{ "majflt_process", offsetof(struct snapbox_counts, majflt_process), true },
	{ "bytes_decompressed", offsetof(struct snapbox_counts, bytes_decompressed), true },
	{ "bytes_copied", offsetof(struct snapbox_counts, bytes_copied), true },
	{ "chunks_touched", offsetof(struct snapbox_counts, chunks_touched), false },
};

static uint64_t counts_field(const struct snapbox_counts *c, unsigned i)
{
	const char *p = (const char *)c + counts_fields[i].off;
	uint64_t v64;
	uint32_t v32;

	if (counts_fields[i].wide) {
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
	memcpy(&v32, p, sizeof(v32));
	return v32;
}

void counts_print(FILE *f, const char *tag, const struct snapbox_counts *c)
{
	fprintf(f, "[%s] kvm_ioctls %33u\n", tag, c->kvm_ioctls);
	for (unsigned i = 0; i < SNAPBOX_KVM_IOCTL_KINDS; i++)
		if (c->kvm_ioctl[i])
			fprintf(f, "[%s]   %-34s %8u\n", tag, snapbox_kvm_ioctl_name(i), c->kvm_ioctl[i]);
	for (unsigned i = 0; i < sizeof(counts_fields) / sizeof(counts_fields[0]); i++)
		fprintf(f, "[%s] %-36s %8llu\n", tag, counts_fields[i].name,
			(unsigned long long)counts_field(c, i));
}

void counts_json(FILE *f, const struct snapbox_counts *c)
{
	bool first = true;

	fprintf(f, "{\"kvm_ioctls\":%u,\"kvm_ioctl\":{", c->kvm_ioctls);
	for (unsigned i = 0; i < SNAPBOX_KVM_IOCTL_KINDS; i++) {
		if (!c->kvm_ioctl[i])
			continue;
		fprintf(f, "%s\"%s\":%u", first ? "" : ",", snapbox_kvm_ioctl_name(i), c->kvm_ioctl[i]);
		first = false;
	}
	fputc('}', f);
	for (unsigned i = 0; i < sizeof(counts_fields) / sizeof(counts_fields[0]); i++)
		fprintf(f, ",\"%s\":%llu", counts_fields[i].name, (unsigned long long)counts_field(c, i));
	fputc('}', f);
}
