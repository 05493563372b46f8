/* uart.c - 16550A UART emulation (register semantics after QEMU's hw/char/serial.c) with save/load. */
#include "kvm/uart.h"
#include "kvm/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UART_STATE_VERSION 1

#define UART_IER_RDI   0x01 /* received data available */
#define UART_IER_THRI  0x02 /* transmitter holding register empty */
#define UART_IER_RLSI  0x04 /* receiver line status */
#define UART_IER_MSI   0x08 /* modem status */
#define UART_IER_MASK  0x0f

#define UART_IIR_NONE  0x01
#define UART_IIR_MSI   0x00
#define UART_IIR_THRI  0x02
#define UART_IIR_RDI   0x04
#define UART_IIR_RLSI  0x06
#define UART_IIR_FIFO  0xc0 /* both "FIFOs enabled" bits of a 16550A */

#define UART_FCR_FE    0x01
#define UART_FCR_RFR   0x02
#define UART_FCR_XFR   0x04
#define UART_FCR_MASK  0xc9 /* what is remembered: enable, DMA mode, RX trigger */

#define UART_LCR_DLAB  0x80

#define UART_MCR_DTR   0x01
#define UART_MCR_RTS   0x02
#define UART_MCR_OUT1  0x04
#define UART_MCR_OUT2  0x08
#define UART_MCR_LOOP  0x10
#define UART_MCR_MASK  0x1f

#define UART_LSR_DR    0x01
#define UART_LSR_OE    0x02
#define UART_LSR_BI    0x10
#define UART_LSR_THRE  0x20
#define UART_LSR_TEMT  0x40
#define UART_LSR_ERR   0x9e /* OE, PE, FE, BI and the FIFO error bit: cleared by reading LSR */
#define UART_LSR_INT   0x1e /* error bits that raise a line-status interrupt */

#define UART_MSR_CTS   0x10
#define UART_MSR_DSR   0x20
#define UART_MSR_RI    0x40
#define UART_MSR_DCD   0x80
#define UART_MSR_DELTA 0x0f

/* RX FIFO depth the guest sees (a 16550A's); see uart_sync_dr. */
#define UART_RX_FIFO   16

/* Largest THR burst collected before one tx_fn call; KVM's PIO data never exceeds a page. */
#define UART_TX_CHUNK  4096

/* The pending interrupt of highest priority, as IIR bits 3:0. Lock held. */
static uint8_t uart_iir_id(const struct uart *u)
{
	if ((u->ier & UART_IER_RLSI) && (u->lsr & UART_LSR_INT))
		return UART_IIR_RLSI;
	if ((u->ier & UART_IER_RDI) && (u->lsr & UART_LSR_DR))
		return UART_IIR_RDI;
	if ((u->ier & UART_IER_THRI) && u->thr_ipending)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && (u->msr & UART_MSR_DELTA))
		return UART_IIR_MSI;
	return UART_IIR_NONE;
}

/*
 * Report the line level if it changed. Lock held: called under the lock so
 * that two threads changing state cannot deliver their levels out of order
 * (which could leave the line low while an interrupt is pending).
 */
static void uart_update_irq(struct uart *u)
{
	int level = uart_iir_id(u) != UART_IIR_NONE;
	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->irq_fn)
		u->irq_fn(u->irq_opaque, u->irq, level);
}

/*
 * Keep the guest's FIFO view and LSR.DR in step with the RX queue. Lock held.
 *
 * The queue holds whole frames (megabytes), but the guest sees it through a
 * window of a real 16550's FIFO depth, refilled when the guest has read it
 * empty. Why: ISA interrupts are edge-triggered at the PIC and IOAPIC, and a
 * driver reads a bounded number of bytes per interrupt (Linux's 8250: 256).
 * With the whole queue visible, DR and the line would stay high after such an
 * interrupt, no new edge would come, and the rest of a large frame would sit
 * unread. Emptying the window drops DR and the line; the refill raises them
 * again: a fresh edge for every 16 bytes, as the hardware gives.
 */
static void uart_sync_dr(struct uart *u)
{
	if (u->rx_window > u->rx_len)
		u->rx_window = u->rx_len;
	if (u->rx_window == 0 && u->rx_len) {
		u->lsr &= (uint8_t)~UART_LSR_DR;
		uart_update_irq(u);
		u->rx_window = u->rx_len < UART_RX_FIFO ? u->rx_len : UART_RX_FIFO;
	}
	if (u->rx_window)
		u->lsr |= UART_LSR_DR;
	else
		u->lsr &= (uint8_t)~UART_LSR_DR;
}

/* Append one byte to the RX queue; false when full. Lock held. */
static bool uart_rx_put(struct uart *u, uint8_t v)
{
	if (u->rx_len == u->rx_cap)
		return false;
	u->rx[(u->rx_head + u->rx_len) % u->rx_cap] = v;
	u->rx_len++;
	return true;
}

/* Pop the oldest RX byte; 0 when empty (what a real RBR read returns then). Lock held. */
static uint8_t uart_rx_pop(struct uart *u)
{
	if (!u->rx_len)
		return 0;
	uint8_t v = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % u->rx_cap;
	u->rx_len--;
	if (u->rx_window)
		u->rx_window--;
	return v;
}

/* MSR as the guest sees it: in loopback the modem outputs drive the inputs. */
static uint8_t uart_loop_msr(const struct uart *u)
{
	uint8_t v = 0;
	if (u->mcr & UART_MCR_RTS)
		v |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_DTR)
		v |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_OUT1)
		v |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		v |= UART_MSR_DCD;
	return v;
}

/* One register read with its side effects. Lock held. */
static uint8_t uart_read_reg(struct uart *u, unsigned off)
{
	uint8_t v;

	switch (off) {
	case 0:
		if (u->lcr & UART_LCR_DLAB)
			return u->dll;
		v = uart_rx_pop(u);
		uart_sync_dr(u);
		return v;
	case 1:
		return (u->lcr & UART_LCR_DLAB) ? u->dlm : u->ier;
	case 2:
		v = uart_iir_id(u);
		/* Reading IIR acknowledges a THRE interrupt, and only when it is the one reported. */
		if (v == UART_IIR_THRI)
			u->thr_ipending = false;
		if (u->fcr & UART_FCR_FE)
			v |= UART_IIR_FIFO;
		return v;
	case 3:
		return u->lcr;
	case 4:
		return u->mcr;
	case 5:
		v = u->lsr;
		u->lsr &= (uint8_t)~UART_LSR_ERR;
		return v;
	case 6:
		if (u->mcr & UART_MCR_LOOP)
			return uart_loop_msr(u);
		v = u->msr;
		u->msr &= (uint8_t)~UART_MSR_DELTA;
		return v;
	default:
		return u->scr;
	}
}

/* One register write. A transmitted byte is appended to tx[*ntx]. Lock held. */
static void uart_write_reg(struct uart *u, unsigned off, uint8_t v, uint8_t *tx, size_t *ntx)
{
	uint8_t changed;

	switch (off) {
	case 0:
		if (u->lcr & UART_LCR_DLAB) {
			u->dll = v;
			break;
		}
		u->thr_ipending = false;
		if (u->mcr & UART_MCR_LOOP) {
			if (uart_rx_put(u, v))
				uart_sync_dr(u);
			else
				u->lsr |= UART_LSR_OE;
		} else {
			tx[(*ntx)++] = v;
		}
		/* Transmission is instantaneous, so THR is empty again at once. */
		if (u->ier & UART_IER_THRI)
			u->thr_ipending = true;
		break;
	case 1:
		if (u->lcr & UART_LCR_DLAB) {
			u->dlm = v;
			break;
		}
		changed = (u->ier ^ v) & UART_IER_MASK;
		u->ier = v & UART_IER_MASK;
		/* Enabling ETBEI while THR is empty (always) raises THRE, as QEMU and Bochs do. */
		if (changed & UART_IER_THRI)
			u->thr_ipending = (u->ier & UART_IER_THRI) != 0;
		break;
	case 2:
		if (v & UART_FCR_RFR) {
			u->rx_head = 0;
			u->rx_len = 0;
			u->rx_window = 0;
			u->lsr &= (uint8_t)~(UART_LSR_DR | UART_LSR_BI);
		}
		if ((v & UART_FCR_XFR) && (u->ier & UART_IER_THRI))
			u->thr_ipending = true;
		u->fcr = v & UART_FCR_MASK;
		break;
	case 3:
		u->lcr = v;
		break;
	case 4:
		u->mcr = v & UART_MCR_MASK;
		break;
	case 5:
	case 6:
		break; /* LSR and MSR are read-only here, as in QEMU */
	default:
		u->scr = v;
		break;
	}
}

/*
 * Reset state at power-on values (LSR = THRE|TEMT, MSR = DCD|DSR|CTS,
 * divisor 12 = 9600 baud). rx_cap bytes of RX queue are allocated.
 * irq_fn/tx_fn may be NULL. Returns 0 or -ENOMEM / -EINVAL.
 */
int uart_init(struct uart *u, uint16_t base, unsigned irq, size_t rx_cap,
	      uart_irq_fn irq_fn, void *irq_opaque, uart_tx_fn tx_fn, void *tx_opaque)
{
	memset(u, 0, sizeof(*u));
	if (rx_cap == 0) {
		log_msg("snapbox: uart 0x%x: RX queue size must be non-zero\n", base);
		return -EINVAL;
	}
	u->rx = malloc(rx_cap);
	if (!u->rx) {
		log_msg("snapbox: uart 0x%x: cannot allocate %zu byte RX queue\n",
			base, rx_cap);
		return -ENOMEM;
	}
	int rc = pthread_mutex_init(&u->lock, NULL);
	if (rc) {
		log_msg("snapbox: uart 0x%x: cannot create lock: %s\n", base, strerror(rc));
		free(u->rx);
		u->rx = NULL;
		return -rc;
	}
	u->base = base;
	u->irq = irq;
	u->rx_cap = rx_cap;
	u->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	u->msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	u->dll = 12;
	u->irq_fn = irq_fn;
	u->irq_opaque = irq_opaque;
	u->tx_fn = tx_fn;
	u->tx_opaque = tx_opaque;
	return 0;
}

/* Free the RX queue and the lock. Safe on a zeroed or already finalised struct. */
void uart_fini(struct uart *u)
{
	if (u->rx) {
		free(u->rx);
		pthread_mutex_destroy(&u->lock);
	}
	memset(u, 0, sizeof(*u));
}

/*
 * Bus callback: offset 0..7 register access; `opaque` is the struct uart.
 * Each of the `count` elements is one register access at `offset`. Registers
 * other than the data register are bytes: for wider accesses only the low
 * byte is used, and reads put the register in the low byte and zero the rest.
 * The data register (offset 0, DLAB clear) is snapbox's one extension: an
 * access of `size` bytes moves `size` bytes, low byte first, as that many
 * THR writes or RBR reads (reads past the queued bytes give 0). A real 16550
 * has no such mode; guests that reach the UART through MMIO use it to move 8
 * bytes per exit instead of 1. A burst of THR writes reaches tx_fn as one
 * call, made after dropping the lock so the sink may block or push RX.
 */
void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
	     uint32_t count, bool is_write)
{
	struct uart *u = opaque;
	uint8_t tx[UART_TX_CHUNK + 8]; /* one element may add up to 8 bytes past the chunk */
	uint32_t done = 0;

	if (size == 0 || size > 8 || count == 0)
		return;
	if (offset >= UART_NREGS) {
		if (!is_write)
			memset(data, 0xff, (size_t)size * count);
		return;
	}
	while (done < count) {
		size_t ntx = 0;

		pthread_mutex_lock(&u->lock);
		/* Decided under the lock: DLAB may change within a burst. */
		for (; done < count && ntx < UART_TX_CHUNK; done++) {
			uint8_t *el = data + (size_t)done * size;
			uint32_t wide = (offset == 0 && !(u->lcr & UART_LCR_DLAB)) ? size : 1;
			uint32_t b;

			for (b = 0; b < wide; b++) {
				if (is_write)
					uart_write_reg(u, (unsigned)offset, el[b], tx, &ntx);
				else
					el[b] = uart_read_reg(u, (unsigned)offset);
			}
			if (!is_write)
				memset(el + wide, 0, size - wide);
		}
		uart_update_irq(u);
		pthread_mutex_unlock(&u->lock);
		if (ntx && u->tx_fn)
			u->tx_fn(u->tx_opaque, tx, ntx);
	}
}

/*
 * Queue host->guest bytes. All or nothing: returns 0 when all n bytes were
 * queued, -ENOSPC (queuing none) when they do not fit, so a protocol frame
 * is never split. Updates DR and the interrupt line.
 */
int uart_rx_push(struct uart *u, const uint8_t *buf, size_t n)
{
	if (n == 0)
		return 0;
	if (!buf)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	if (n > u->rx_cap - u->rx_len) {
		pthread_mutex_unlock(&u->lock);
		return -ENOSPC;
	}
	size_t tail = (u->rx_head + u->rx_len) % u->rx_cap;
	size_t first = u->rx_cap - tail < n ? u->rx_cap - tail : n;
	memcpy(u->rx + tail, buf, first);
	memcpy(u->rx, buf + first, n - first);
	u->rx_len += n;
	uart_sync_dr(u);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

/* Free space in the RX queue. */
size_t uart_rx_space(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	size_t space = u->rx_cap - u->rx_len;
	pthread_mutex_unlock(&u->lock);
	return space;
}

/*
 * Serialise registers, the latched THRE interrupt and the queued RX bytes.
 * Format (little-endian): u8 version=1, u8 ier, lcr, mcr, lsr, msr, scr, dll,
 * dlm, fcr, u8 thr_ipending, u32 rx_len, rx bytes in FIFO order.
 * Returns 0 or the writer's sticky error.
 */
int uart_save(struct uart *u, struct sbuf *out)
{
	pthread_mutex_lock(&u->lock);
	sbuf_put_u8(out, UART_STATE_VERSION);
	sbuf_put_u8(out, u->ier);
	sbuf_put_u8(out, u->lcr);
	sbuf_put_u8(out, u->mcr);
	sbuf_put_u8(out, u->lsr);
	sbuf_put_u8(out, u->msr);
	sbuf_put_u8(out, u->scr);
	sbuf_put_u8(out, u->dll);
	sbuf_put_u8(out, u->dlm);
	sbuf_put_u8(out, u->fcr);
	sbuf_put_u8(out, u->thr_ipending ? 1 : 0);
	sbuf_put_u32(out, (uint32_t)u->rx_len);
	size_t first = u->rx_cap - u->rx_head < u->rx_len ? u->rx_cap - u->rx_head : u->rx_len;
	sbuf_put_bytes(out, u->rx + u->rx_head, first);
	sbuf_put_bytes(out, u->rx, u->rx_len - first);
	pthread_mutex_unlock(&u->lock);
	if (out->err)
		log_msg("snapbox: uart 0x%x: cannot save state: %s\n", u->base,
			strerror(-out->err));
	return out->err;
}

/*
 * Restore what uart_save wrote. Rejects an unknown version, a truncated
 * record, a bad thr_ipending or an RX length above rx_cap with -EPROTO,
 * leaving the UART unchanged. Register values are masked to what the
 * hardware can hold, LSR.DR is re-derived from the RX queue and THRE|TEMT
 * are forced (transmission is instantaneous). Re-derives and reports the
 * interrupt line level afterwards.
 */
int uart_load(struct uart *u, struct sbuf_reader *in)
{
	uint8_t version = sbuf_get_u8(in);
	uint8_t regs[10]; /* ier lcr mcr lsr msr scr dll dlm fcr thr_ipending */
	sbuf_get_bytes(in, regs, sizeof(regs));
	uint32_t rx_len = sbuf_get_u32(in);

	if (in->err) {
		log_msg("snapbox: uart 0x%x state: truncated record\n", u->base);
		return -EPROTO;
	}
	if (version != UART_STATE_VERSION) {
		log_msg("snapbox: uart 0x%x state: unsupported version %u\n",
			u->base, version);
		return -EPROTO;
	}
	if (regs[9] > 1) {
		log_msg("snapbox: uart 0x%x state: bad THRE latch %u\n", u->base, regs[9]);
		return -EPROTO;
	}
	if (rx_len > u->rx_cap) {
		log_msg("snapbox: uart 0x%x state: %u queued RX bytes exceed capacity %zu\n",
			u->base, rx_len, u->rx_cap);
		return -EPROTO;
	}
	if (rx_len > sbuf_remaining(in)) {
		log_msg("snapbox: uart 0x%x state: truncated RX queue\n", u->base);
		return -EPROTO;
	}

	pthread_mutex_lock(&u->lock);
	u->ier = regs[0] & UART_IER_MASK;
	u->lcr = regs[1];
	u->mcr = regs[2] & UART_MCR_MASK;
	u->lsr = (regs[3] & UART_LSR_ERR) | UART_LSR_THRE | UART_LSR_TEMT;
	u->msr = regs[4];
	u->scr = regs[5];
	u->dll = regs[6];
	u->dlm = regs[7];
	u->fcr = regs[8] & UART_FCR_MASK;
	u->thr_ipending = regs[9] != 0;
	sbuf_get_bytes(in, u->rx, rx_len); /* cannot fail: length checked above */
	u->rx_head = 0;
	u->rx_len = rx_len;
	/* A full window at once: no line change while the irqchips are being restored. */
	u->rx_window = rx_len < UART_RX_FIFO ? rx_len : UART_RX_FIFO;
	uart_sync_dr(u);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
