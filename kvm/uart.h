/* uart.h - a 16550A UART: registers, FIFOs, interrupts, and state save/load. */
#ifndef SNAPBOX_KVM_UART_H
#define SNAPBOX_KVM_UART_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/sbuf.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ  4
#define UART_COM2_BASE 0x2f8
#define UART_COM2_IRQ  3
#define UART_NREGS     8

/* Raise (1) or lower (0) the UART's interrupt line. Called only on a change. */
typedef void (*uart_irq_fn)(void *opaque, unsigned irq, int level);
/* Bytes the guest transmitted. Called without the UART lock held. */
typedef void (*uart_tx_fn)(void *opaque, const uint8_t *buf, size_t n);

struct uart {
	pthread_mutex_t lock;  /* host threads push RX while the vCPU thread does I/O */
	uint16_t base;
	unsigned irq;
	/* registers */
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;     /* THRE interrupt latched, cleared by IIR read / THR write */
	/* RX queue: host -> guest. Deeper than a real 16550 so a whole protocol
	 * frame can be queued at once; the guest sees a normal DR/RDA interface. */
	uint8_t *rx;
	size_t rx_cap, rx_head, rx_len;
	size_t rx_window;      /* bytes of the queue in the guest's 16-byte FIFO view (LSR.DR) */
	int irq_level;         /* last level reported through irq_fn */
	uart_irq_fn irq_fn;
	void *irq_opaque;
	uart_tx_fn tx_fn;
	void *tx_opaque;
};

/*
 * Reset state at power-on values (LSR = THRE|TEMT, MSR = DCD|DSR|CTS,
 * divisor 12 = 9600 baud). rx_cap bytes of RX queue are allocated.
 * irq_fn/tx_fn may be NULL. Returns 0 or -ENOMEM / -EINVAL.
 */
int uart_init(struct uart *u, uint16_t base, unsigned irq, size_t rx_cap,
	      uart_irq_fn irq_fn, void *irq_opaque, uart_tx_fn tx_fn, void *tx_opaque);
void uart_fini(struct uart *u);

/* Bus callback: offset 0..7 register access; `opaque` is the struct uart. */
void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t size,
	     uint32_t count, bool is_write);

/*
 * Queue host->guest bytes. All or nothing: returns 0 when all n bytes were
 * queued, -ENOSPC (queuing none) when they do not fit, so a protocol frame
 * is never split. Updates DR and the interrupt line.
 */
int uart_rx_push(struct uart *u, const uint8_t *buf, size_t n);

/* Free space in the RX queue. */
size_t uart_rx_space(struct uart *u);

/*
 * Serialise registers, the latched THRE interrupt and the queued RX bytes.
 * Format (little-endian): u8 version=1, u8 ier, lcr, mcr, lsr, msr, scr, dll,
 * dlm, fcr, u8 thr_ipending, u32 rx_len, rx bytes in FIFO order.
 */
int uart_save(struct uart *u, struct sbuf *out);

/*
 * Restore what uart_save wrote. Rejects an unknown version or an RX length
 * above rx_cap with -EPROTO, leaving the UART unchanged. Re-derives and
 * reports the interrupt line level afterwards.
 */
int uart_load(struct uart *u, struct sbuf_reader *in);

#endif
