/* vcpu.h - a KVM vCPU: creation, boot-time register setup, and its run-loop thread with pause/stop. */
#ifndef SNAPBOX_KVM_VCPU_H
#define SNAPBOX_KVM_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "kvm/bus.h"
#include "kvm/vm.h"

/* Why a vCPU thread is not running the guest. */
enum vcpu_stop {
	VCPU_STOP_NONE = 0,
	VCPU_STOP_RESET,          /* guest asked for a reset (i8042 0xFE, SYSTEM_EVENT reset) */
	VCPU_STOP_SHUTDOWN,       /* triple fault: KVM_EXIT_SHUTDOWN */
	VCPU_STOP_POWEROFF,       /* SYSTEM_EVENT shutdown */
	VCPU_STOP_CRASH,          /* SYSTEM_EVENT crash */
	VCPU_STOP_HLT,            /* HLT reached userspace */
	VCPU_STOP_INTERNAL_ERROR, /* KVM_EXIT_INTERNAL_ERROR (e.g. unemulated instruction) */
	VCPU_STOP_FAIL_ENTRY,     /* KVM_EXIT_FAIL_ENTRY */
	VCPU_STOP_UNHANDLED,      /* an exit reason we do not handle */
	VCPU_STOP_ERROR,          /* KVM_RUN itself failed */
	VCPU_STOP_KILLED,         /* the host stopped it */
};

enum vcpu_run_state {
	VCPU_CREATED = 0,
	VCPU_RUNNING,
	VCPU_PAUSED,
	VCPU_EXITED,
};

/* Called on the vCPU thread when the guest stops for good. */
typedef void (*vcpu_stop_fn)(void *opaque, enum vcpu_stop why);

struct vcpu {
	int fd;
	int id;
	struct vm *vm;
	struct kvm_run *run;
	size_t run_size;

	/* run loop */
	struct bus *pio;
	struct bus *mmio;
	vcpu_stop_fn stop_fn;
	void *stop_opaque;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vcpu_run_state state;        /* under lock */
	atomic_bool pause_req;
	atomic_bool kill_req;
	enum vcpu_stop pending_stop;  /* set by device callbacks on the vCPU thread */
	enum vcpu_stop stop_reason;   /* final, valid once state == VCPU_EXITED */
	char stop_detail[160];

	/* statistics, written by the vCPU thread */
	atomic_uint_least64_t exits;
	atomic_uint_least64_t io_exits;
	atomic_uint_least64_t mmio_exits;
	atomic_uint_least64_t first_run_ns;   /* CLOCK_MONOTONIC when KVM_RUN was first entered */
	/* KVM's own statistics of this vCPU (KVM_GET_STATS_FD): -1 when the kernel has none */
	int stats_fd;
	int64_t stat_exits_off;       /* offset of "exits" (every VM exit, in-kernel ones too), or -1 */

	/* TSC offset control (vcpu_state_prepare_restore): -1 not probed, 0 absent, 1 present */
	int tsc_ctrl;
	uint64_t tsc_offset;                  /* KVM's current offset, valid when tsc_ctrl == 1 */
	bool tsc_scaled;                      /* KVM_SET_TSC_KHZ gave it a rate not the host's */
};

/* KVM_CREATE_VCPU and map its kvm_run page. Returns 0 or -errno. */
int vcpu_init(struct vcpu *v, struct vm *vm, int id);

/* Stop the thread if running (as vcpu_kill), unmap and close. */
void vcpu_fini(struct vcpu *v);

/*
 * Give the vCPU the host's supported CPUID with snapbox's deliberate
 * adjustments (each commented in vcpu.c). Returns 0 or -errno.
 */
int vcpu_set_cpuid(struct vcpu *v, const struct kvm_cpuid2 *supported);

/*
 * Registers for the Linux 64-bit boot protocol: boot MSRs, FPU, LAPIC LINT0
 * ExtINT / LINT1 NMI, long mode with paging (CR3 = LAYOUT_PML4, the boot GDT
 * selectors), RIP = entry, RSI = zero_page. Returns 0 or -errno.
 */
int vcpu_setup_boot_regs(struct vcpu *v, uint64_t entry, uint64_t zero_page);

/*
 * Start the run-loop thread. I/O exits go to the buses; when the guest stops
 * for good stop_fn is called on the vCPU thread. Returns 0 or -errno.
 */
int vcpu_start(struct vcpu *v, struct bus *pio, struct bus *mmio,
	       vcpu_stop_fn stop_fn, void *opaque);

/*
 * vcpu_start, but the thread confines itself and parks before its first
 * KVM_RUN; returns once it is parked (state VCPU_PAUSED). vcpu_resume then
 * starts the guest with no thread creation or seccomp load on that path, and
 * until then the vCPU's state may still be set from other threads. Returns 0,
 * -EPERM when the thread could not confine itself, or -errno.
 */
int vcpu_start_parked(struct vcpu *v, struct bus *pio, struct bus *mmio,
		      vcpu_stop_fn stop_fn, void *opaque);

/*
 * Pause from another thread: the vCPU finishes the exit it is handling,
 * completes any pending I/O inside KVM (so its state is consistent for
 * capture), and parks. Returns 0 when paused, -ESRCH if the guest already
 * stopped, -ETIMEDOUT after timeout_ms (the request is then withdrawn: the
 * vCPU goes on running and never parks for it later).
 */
int vcpu_pause(struct vcpu *v, unsigned timeout_ms);

/*
 * Tell a paused vCPU's guest, through its kvmclock page (KVM_KVMCLOCK_CTRL),
 * that it was stopped on purpose, so a Linux guest's soft-lockup and RCU
 * stall detectors do not report the time it spends parked. 0 (also when the
 * guest uses no kvmclock) or -errno.
 */
int vcpu_mark_stopped(struct vcpu *v);

/*
 * Every VM exit of this vCPU so far as KVM counts it, those it handles in the
 * kernel included (its binary statistics' "exits"); vcpu.exits counts only
 * those that come back to snapbox. UINT64_MAX when the kernel does not offer
 * the statistic. Any thread, at any time.
 */
uint64_t vcpu_kvm_exits(struct vcpu *v);

/* Let a paused vCPU run again. Returns 0 or -EINVAL when it is not paused. */
int vcpu_resume(struct vcpu *v);

/* Stop the thread for good and join it. Idempotent. */
void vcpu_kill(struct vcpu *v);

/* Called from a device callback on the vCPU thread: stop after this exit. */
void vcpu_request_stop(struct vcpu *v, enum vcpu_stop why);

/* Current state (locked read). */
enum vcpu_run_state vcpu_get_state(struct vcpu *v);

/* Human-readable stop reason, e.g. "triple fault (KVM_EXIT_SHUTDOWN)". */
const char *vcpu_stop_name(enum vcpu_stop why);

#endif
