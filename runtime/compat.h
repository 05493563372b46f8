/* compat.h - may this host restore that snapshot? Compares what the snapshot recorded with what the host offers. */
#ifndef SNAPBOX_RUNTIME_COMPAT_H
#define SNAPBOX_RUNTIME_COMPAT_H

#include "kvm/kvmsys.h"
#include "kvm/vcpu_state.h"
#include "runtime/snapconf.h"

/*
 * Check, before any VM exists: the KVM backend (PVM or hardware) is the
 * snapshot's; the vCPU count and memory size are supported; every CPUID
 * feature bit the snapshot's guest saw (leaves 1, 7.0, 0xd.1, 0x80000001) is
 * one this host's KVM supports. Returns 0, or -ENOTSUP after one stderr line
 * listing every difference found. The TSC rate and the MSR set are checked
 * when they are applied (vcpu_state_restore), naming what KVM refused.
 */
int compat_check(struct kvmsys *sys, const struct snapconf *conf, const struct vcpu_state_host *host);

#endif
