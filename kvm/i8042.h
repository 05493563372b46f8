/* i8042.h - the keyboard controller's reset line (port 0x64, cmd 0xFE) and port B (0x61). */
#ifndef SNAPBOX_KVM_I8042_H
#define SNAPBOX_KVM_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/sbuf.h"

#define I8042_DATA_PORT   0x60
#define I8042_PORTB       0x61
#define I8042_CMD_PORT    0x64
#define I8042_CMD_RESET   0xfe

/* Called on the vCPU thread when the guest pulses the reset line. */
typedef void (*i8042_reset_fn)(void *opaque);

struct i8042 {
	uint8_t port_b;       /* bits 0-3 writable; bit 4 toggles on each read (refresh) */
	uint8_t last_cmd;
	bool reset_requested;
	i8042_reset_fn reset_fn;
	void *reset_opaque;
};

void i8042_init(struct i8042 *k, i8042_reset_fn fn, void *opaque);
/* Bus callback for ports 0x60..0x64 (offset relative to 0x60). */
void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
	      uint32_t count, bool is_write);
/* Format: u8 version=1, u8 port_b, u8 last_cmd, u8 reset_requested. */
int i8042_save(struct i8042 *k, struct sbuf *out);
int i8042_load(struct i8042 *k, struct sbuf_reader *in);

#endif
