/* kvmcall.h - the one wrapper every KVM ioctl goes through: it counts calls by request, per thread. */
#ifndef SNAPBOX_KVM_KVMCALL_H
#define SNAPBOX_KVM_KVMCALL_H

#include <stdint.h>

#include "snapbox.h"

/* Per-thread counts, indexed as snapbox_kvm_ioctl_name (the last slot is "other"). */
struct kvmcall_counts {
	uint32_t n[SNAPBOX_KVM_IOCTL_KINDS];
};

/*
 * ioctl(fd, req, arg), counted for the calling thread under req's name. Returns
 * what ioctl returns, with errno as it left it. Cheap: a thread-local
 * increment after a lookup in a short table.
 */
int kvmcall_ul(int fd, unsigned long req, unsigned long arg);
/* Pointers and integers alike, as ioctl takes them. */
#define kvmcall(fd, req, arg) kvmcall_ul((fd), (req), (unsigned long)(arg))

/* This thread's counts since it started. */
void kvmcall_get(struct kvmcall_counts *out);

/* out = now - before, as snapbox_counts' KVM fields; total in *total. */
void kvmcall_delta(const struct kvmcall_counts *before, uint32_t *out, uint32_t *total);

#endif
