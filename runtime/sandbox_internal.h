/* sandbox_internal.h - struct snapbox, for runtime code and white-box tests only (never installed). */
#ifndef SNAPBOX_RUNTIME_SANDBOX_INTERNAL_H
#define SNAPBOX_RUNTIME_SANDBOX_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/bus.h"
#include "kvm/devices.h"
#include "kvm/gmem.h"
#include "kvm/kvmsys.h"
#include "kvm/piowin.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "runtime/chan.h"
#include "runtime/lazy.h"
#include "snapbox.h"

struct snapbox {
	struct kvmsys sys;
	struct vm vm;
	struct gmem mem;
	struct bus pio;
	struct bus mmio;
	struct devices dev;
	struct piowin piowin;
	struct vcpu vcpu;
	struct chan chan;
	struct lazy *lazy;               /* lazy restores: the userfaultfd handler, else NULL */
	bool lazy_reported;              /* its checksum failure was logged */
	bool refresh_pending;            /* restored, not yet refreshed (restore_refresh) */
	bool warm;                       /* a warm pool shell: restored, resumed, REFRESH still owed */
	unsigned refresh_timeout_ms;     /* its deadline: the restore's ping_timeout_ms (0: scaled default) */
	int console_fd;
	int vsock_irqfd;                 /* KVM_IRQFD on the vsock's GSI (valid when have_irqfd) */
	/* what the VM was built from, recorded in a snapshot's CONF section */
	uint64_t kernel_hash[2];         /* xxh3-128 low, high */
	uint64_t initrd_hash[2];
	bool has_initrd;
	char *cmdline;                   /* owned */
	char *kernel_path;               /* owned */
	uint64_t wait_t0;                /* start of boot_wait */
	_Atomic uint64_t first_byte_ns;
	/* how far construction got, for one unwind path */
	bool have_sys, have_vm, have_mem, have_pio, have_mmio, have_chan, have_dev, have_vcpu, have_irqfd;
};

/* Teardown shared by cold boot, restore and destroy: frees whatever was built. */
void sandbox_free(struct snapbox *sb);

/* Buses, channel, devices and PIO window, wired to sb (boot and restore alike). */
int sandbox_setup_devices(struct snapbox *sb);

/* Start the vCPU thread, wired to wake the channel when the guest stops. */
int sandbox_start(struct snapbox *sb);
/* The same, parked before its first KVM_RUN (vcpu_start_parked); snapbox_resume starts it. */
int sandbox_start_parked(struct snapbox *sb);

/* -EIO, logged once per sandbox, when a lazy restore's chunk failed its checksum; else 0. */
int sandbox_lazy_check(struct snapbox *sb);

/*
 * A KVM call's failure as the library reports it: the errnos that mean KVM
 * refused or lacks something become -ENODEV ("KVM unusable"); every other
 * errno (-ENOMEM, -EMFILE, -EBUSY, ...) is kept, so callers see what failed.
 */
int sandbox_kvm_err(int ret);

#endif
