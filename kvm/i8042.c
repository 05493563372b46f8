/* i8042.c - the minimal keyboard controller: reset via port 0x64 command 0xFE, and port B (0x61). */
#include "kvm/i8042.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define I8042_STATE_VERSION 1
#define I8042_PORTB_RW      0x0f /* gate/speaker/parity/channel-check enables */
#define I8042_PORTB_REFRESH 0x10 /* toggles on every read; guests time delays by it */

/* Power-on state: no keyboard data, port B all clear, no reset requested. */
void i8042_init(struct i8042 *k, i8042_reset_fn fn, void *opaque)
{
	memset(k, 0, sizeof(*k));
	k->reset_fn = fn;
	k->reset_opaque = opaque;
}

/* One byte read at port 0x60 + off. */
static uint8_t i8042_read(struct i8042 *k, uint64_t off)
{
	switch (off) {
	case I8042_DATA_PORT - I8042_DATA_PORT:
		return 0; /* no keyboard: nothing is ever in the output buffer */
	case I8042_PORTB - I8042_DATA_PORT:
		k->port_b ^= I8042_PORTB_REFRESH;
		return k->port_b;
	case I8042_CMD_PORT - I8042_DATA_PORT:
		return 0; /* status: output buffer empty, input buffer empty (ready for commands) */
	default:
		return 0xff; /* 0x62/0x63 are not ours: behave like an empty bus */
	}
}

/* One byte write at port 0x60 + off. */
static void i8042_write(struct i8042 *k, uint64_t off, uint8_t v)
{
	switch (off) {
	case I8042_PORTB - I8042_DATA_PORT:
		k->port_b = (uint8_t)((k->port_b & ~I8042_PORTB_RW) | (v & I8042_PORTB_RW));
		break;
	case I8042_CMD_PORT - I8042_DATA_PORT:
		k->last_cmd = v;
		if (v == I8042_CMD_RESET) {
			k->reset_requested = true;
			if (k->reset_fn)
				k->reset_fn(k->reset_opaque);
		}
		break;
	default:
		break; /* keyboard data and 0x62/0x63: ignored */
	}
}

/*
 * Bus callback for ports 0x60..0x64 (offset relative to 0x60). A byte
 * device: for size 2 or 4 each element uses its low byte, reads zero the rest.
 */
void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
	      uint32_t count, bool is_write)
{
	struct i8042 *k = opaque;

	if (size == 0)
		return;
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *el = data + (size_t)i * size;
		if (is_write) {
			i8042_write(k, offset, el[0]);
		} else {
			el[0] = i8042_read(k, offset);
			memset(el + 1, 0, size - 1);
		}
	}
}

/* Format: u8 version=1, u8 port_b, u8 last_cmd, u8 reset_requested. Returns 0 or the writer's error. */
int i8042_save(struct i8042 *k, struct sbuf *out)
{
	sbuf_put_u8(out, I8042_STATE_VERSION);
	sbuf_put_u8(out, k->port_b);
	sbuf_put_u8(out, k->last_cmd);
	sbuf_put_u8(out, k->reset_requested ? 1 : 0);
	return out->err;
}

/*
 * Restore what i8042_save wrote. -EPROTO (state unchanged) for a truncated
 * record, an unknown version or a reset flag other than 0/1. Does not call
 * reset_fn: a pending reset is the runtime's to act on.
 */
int i8042_load(struct i8042 *k, struct sbuf_reader *in)
{
	uint8_t version = sbuf_get_u8(in);
	uint8_t port_b = sbuf_get_u8(in);
	uint8_t last_cmd = sbuf_get_u8(in);
	uint8_t reset = sbuf_get_u8(in);

	if (in->err) {
		log_msg("snapbox: i8042 state: truncated record\n");
		return -EPROTO;
	}
	if (version != I8042_STATE_VERSION || reset > 1) {
		log_msg("snapbox: i8042 state: unsupported version %u or bad reset flag %u\n",
			version, reset);
		return -EPROTO;
	}
	k->port_b = port_b;
	k->last_cmd = last_cmd;
	k->reset_requested = reset != 0;
	return 0;
}
