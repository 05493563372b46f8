/* restore.h - the restore phases, shared by one-shot restores and the shell pool. */
#ifndef SNAPBOX_RUNTIME_RESTORE_H
#define SNAPBOX_RUNTIME_RESTORE_H

#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "runtime/sandbox_internal.h"
#include "runtime/snapopen.h"

/* A snapshot opened, validated and decoded once; read-only afterwards, so shareable. */
struct restore_snap {
	struct snapopen so;
	struct vcpu_state_host host;
	struct vcpu_state vst;
	struct vm_state vmst;
	struct sbuf_reader devs;     /* DEVS payload; copied per restore before reading */
	int template_fd;             /* cow: the decompressed template, else -1 */
};

/*
 * Open, validate and decode `dir`: the containers, then every section (host,
 * vCPU, clock, irqchips, PIT, and the device records through
 * restore_snap_check_devices), all before any VM exists. inspect --verify
 * uses the same call. Returns 0 or -errno (logged once).
 */
int restore_snap_open(struct restore_snap *s, const char *dir);

/*
 * The device records of an opened snapshot, loaded into scratch devices that
 * no VM uses: what a restore's device load would refuse, refused at open, so
 * `inspect --verify` and restore refuse the same snapshots. Returns 0 or -EPROTO
 * (or -ENOMEM) with the loader's message.
 */
int restore_snap_check_devices(const struct restore_snap *s);
void restore_snap_close(struct restore_snap *s);

/*
 * Build an empty VM shell for s in sb: /dev/kvm, compatibility check, VM,
 * irqchip and PIT, guest memory (fresh anonymous memory for eager; a private
 * view of the template for cow, built on first use), memory slot, vCPU and
 * devices, built by vmshell_build (its error policy), then the vCPU thread
 * started parked. Times go into p's matching fields. Returns 0 or -errno.
 */
int restore_shell(struct snapbox *sb, struct restore_snap *s, enum snapbox_restore_mode mode,
		  const char *cache_dir, unsigned threads, struct snapbox_restore_profile *p);

/*
 * Put the snapshot's state into a shell: CPUID, memory (eager: decode every
 * chunk), VM and device state, then vCPU registers. Returns 0 or -errno.
 */
int restore_state(struct snapbox *sb, struct restore_snap *s, enum snapbox_restore_mode mode,
		  bool verify, unsigned threads, struct snapbox_restore_profile *p);

/* Bytes of host entropy each restored guest receives. */
#define RESTORE_REFRESH_ENTROPY 64u

/*
 * REFRESH: send the guest fresh entropy (getrandom) and the host's
 * CLOCK_REALTIME; the agent reseeds its kernel's CRNG and sets its clock, the
 * probe acknowledges. Every restored sandbox gets it before it is handed to
 * its caller (restore_resume, or snapbox_resume of a restore made without
 * resume). Returns 0, -ENOTSUP when the guest refuses it (an older agent), or
 * the request's -errno; logged.
 */
int restore_refresh(struct snapbox *sb, unsigned timeout_ms);

/* Resume, REFRESH (and PING) a restored sandbox per o, filling the resume fields of p. */
int restore_resume(struct snapbox *sb, const struct snapbox_restore_opts *o, uint64_t t0,
		   struct snapbox_restore_profile *p);

/* Decompression threads to use for a request of `want` (0: online CPUs). */
unsigned restore_threads(unsigned want);

#endif
