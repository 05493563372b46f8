/* counts.h - the exact costs of one operation (snapbox_counts): KVM ioctls and page faults of the calling thread, and memory bytes. */
#ifndef SNAPBOX_RUNTIME_COUNTS_H
#define SNAPBOX_RUNTIME_COUNTS_H

#include <sys/resource.h>

#include "kvm/kvmcall.h"
#include "snapbox.h"
#include "snapshot/memfile.h"

/* Where an operation started: this thread's ioctl counts and both rusages. */
struct counts_mark {
	struct kvmcall_counts kvm;
	struct rusage thread, process;
};

void counts_start(struct counts_mark *m);
/* Fill c's KVM and fault fields with what happened since m (other fields untouched). */
void counts_finish(const struct counts_mark *m, struct snapbox_counts *c);
/* This thread's minor faults since m. */
uint64_t counts_minflt_since(const struct counts_mark *m);
/* Add what decoding every non-zero chunk of r costs: lz4 bytes, raw bytes, chunks. */
void counts_add_decode(struct snapbox_counts *c, const struct memfile_reader *r);

/* The counts as "[tag] name: n" lines (non-zero KVM ioctls by name) and as a JSON object. */
void counts_print(FILE *f, const char *tag, const struct snapbox_counts *c);
void counts_json(FILE *f, const struct snapbox_counts *c);

#endif
