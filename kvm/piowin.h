/* piowin.h - the PIO window: every I/O port reachable through MMIO, for guest code that cannot execute in/out. */
#ifndef SNAPBOX_KVM_PIOWIN_H
#define SNAPBOX_KVM_PIOWIN_H

#include "kvm/bus.h"

/*
 * Under KVM-PVM guest user mode runs with IOPL 0 and no I/O bitmap, so in/out
 * from ring 3 fault, while ring-0 code is emulated at ~1 us an instruction.
 * The window maps port p to gpa LAYOUT_PIO_WINDOW + p (byte granular, 64 KiB),
 * and forwards every access to the PIO bus, so ring-3 code reaches the same
 * devices, with the same semantics, through MMIO exits.
 */
struct piowin {
	struct bus *pio;
};

/* Register the window on the MMIO bus. Returns 0 or bus_register's error. */
int piowin_init(struct piowin *w, struct bus *mmio, struct bus *pio);

#endif
