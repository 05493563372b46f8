/* piowin.c - forwards MMIO accesses in the PIO window to the PIO bus. */
#include "kvm/piowin.h"

#include "proto/layout.h"

static void piowin_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
		      uint32_t count, bool is_write)
{
	struct piowin *w = opaque;

	/* offset < LAYOUT_PIO_WINDOW_SIZE, so it is a valid port number. */
	bus_access(w->pio, offset, data, size, count, is_write);
}

int piowin_init(struct piowin *w, struct bus *mmio, struct bus *pio)
{
	w->pio = pio;
	return bus_register(mmio, LAYOUT_PIO_WINDOW, LAYOUT_PIO_WINDOW_SIZE, piowin_io, w,
			    "pio-window");
}
