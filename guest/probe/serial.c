/* serial.c - the frame calls (on vsock when it is up, else COM2: one rep outsb per flush, two rep insb per frame), COM1 console, PIC setup. */

#include "guest/probe/probe.h"

#define COM1        0x3f8
#define COM2        0x2f8
#define UART_RBR    0   /* read: receive buffer; write: THR */
#define UART_IER    1
#define UART_FCR    2
#define UART_LCR    3
#define UART_MCR    4
#define UART_LSR    5
#define LSR_DR      0x01
#define LSR_THRE    0x20
#define UART_FIFO   16     /* a 16550's FIFO depth, the slow mode's TX burst */
#define IER_RDA     0x01
#define LCR_8N1     0x03
#define FCR_ENABLE  0x01   /* FIFO on; no RX clear, a queued frame must survive */
#define MCR_DTR_RTS_OUT2 0x0b  /* OUT2 gates the IRQ line on PC hardware/QEMU */

#define PIC1_CMD    0x20
#define PIC1_DATA   0x21
#define PIC_ICW1    0x11   /* edge, cascade, ICW4 follows */
#define PIC_ICW3_M  0x04   /* slave on IRQ2 */
#define PIC_ICW4    0x03   /* 8086 mode, auto-EOI: no EOI port write per IRQ */
#define PIC_MASK_M  0xd7   /* only IRQ3 (COM2) and IRQ5 (virtio-vsock) */

/*
 * Fast mode (default for the Linux boot path, i.e. snapbox): every port
 * access from the probe is a ring-0 visit (entry.S) plus a VM exit, so whole
 * buffers go out with one rep outsb and frames come in with two rep insb.
 * Measured on KVM(-PVM): KVM's emulator batches INS (up to a page per exit)
 * but not OUTS, which costs one exit per byte (~20 us each here); the one
 * ring-0 visit per buffer is still the cheapest the guest can do.
 * Assumption: snapbox's UART transmits instantly and always reports THRE,
 * so there is no LSR polling on transmit; and the host queues every frame
 * whole, so once DR is set the whole frame is there.
 *
 * Slow mode (default for PVH, i.e. QEMU; probe.uart=slow|fast overrides):
 * a real 16550 model. QEMU feeds the RX FIFO a byte or so at a time and
 * drops TX bytes when its FIFO overflows, so every RX byte waits for DR and
 * TX goes in 16-byte bursts after THRE.
 */
#define TX_CAP (2 * (PROTO_HDR_SIZE + PROTO_PROBE_MAX_PAYLOAD))

static uint8_t probe_txbuf[TX_CAP];
static size_t probe_txlen;
static uint8_t probe_rxbuf[PROTO_PROBE_MAX_PAYLOAD];


/*
 * Through snapbox's PIO window the data register takes 8-byte stores, each
 * moving 8 bytes (kvm/uart.c's wide-access extension): one exit per 8 bytes
 * instead of one per byte with rep outsb.
 */
static void uart_write_window(uint16_t base, const uint8_t *b, size_t n)
{
	volatile uint64_t *thr64 = (volatile uint64_t *)(probe_piowin + base);

	for (; n >= 8; n -= 8, b += 8) {
		uint64_t w;

		memcpy(&w, b, 8);
		*thr64 = w;
	}
	while (n--)
		probe_piowin[base] = *b++;
}

static void uart_write(uint16_t base, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (!probe_boot.uart_slow) {
		if (probe_piowin)
			uart_write_window(base, b, n);
		else
			probe_io_outsb(base, b, n);
		return;
	}
	while (n) {
		size_t k = n < UART_FIFO ? n : UART_FIFO;
		while (!(probe_inb(base + UART_LSR) & LSR_THRE))
			__asm__ volatile("pause");
		probe_io_outsb(base, b, k);
		b += k;
		n -= k;
	}
}

void probe_com2_init(void)
{
	/* no divisor programming: the virtual UART has no baud rate */
	probe_outb(COM2 + UART_LCR, LCR_8N1);
	probe_outb(COM2 + UART_FCR, FCR_ENABLE);
	probe_outb(COM2 + UART_MCR, MCR_DTR_RTS_OUT2);
	probe_outb(COM2 + UART_IER, IER_RDA);
}

/*
 * Master PIC only: ICW1 on 0x20, then ICW2-4 and the mask all go to 0x21,
 * so one rep outsb sends them (2 ring-0 visits instead of 5). The slave is left at
 * its reset state: it hangs off IRQ2, which the master masks, so nothing it
 * raises can reach the CPU. Auto-EOI means the IRQ handler is a bare iretq.
 */
void probe_pic_init(void)
{
	static const uint8_t icw[4] = {
		PROBE_VEC_IRQ_BASE, PIC_ICW3_M, PIC_ICW4, PIC_MASK_M,
	};

	/* Real port I/O, never the PIO window: the PIC lives inside KVM (the
	 * in-kernel irqchip), and the window only reaches userspace devices. */
	probe_io_outb(PIC1_CMD, PIC_ICW1);
	probe_io_outsb(PIC1_DATA, icw, sizeof(icw));
}

void probe_console_write(const char *s, size_t n)
{
	uart_write(COM1, s, n);
}

static void tx_flush(int end)
{
	if (probe_vsock_on)
		probe_vsock_send(probe_txbuf, probe_txlen, end);
	else if (probe_txlen)
		uart_write(COM2, probe_txbuf, probe_txlen);
	probe_txlen = 0;
}

void probe_tx_flush(void)
{
	if (probe_txlen)
		tx_flush(0);
}

void probe_tx_flush_boot(void)
{
	tx_flush(1);
}

void probe_tx_raw(const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t room = TX_CAP - probe_txlen, k;
		if (room == 0) {
			probe_tx_flush();
			room = TX_CAP;
		}
		k = n < room ? n : room;
		memcpy(probe_txbuf + probe_txlen, b, k);
		probe_txlen += k;
		b += k;
		n -= k;
	}
}

void probe_tx_frame(uint16_t type, uint16_t flags, uint32_t id, const void *payload, uint32_t len)
{
	struct proto_hdr h;

	if (len > PROTO_PROBE_MAX_PAYLOAD)
		len = PROTO_PROBE_MAX_PAYLOAD;
	if (TX_CAP - probe_txlen < PROTO_HDR_SIZE + (size_t)len)
		probe_tx_flush();
	h.magic = PROTO_MAGIC;
	h.type = type;
	h.flags = flags;
	h.id = id;
	h.len = len;
	memcpy(probe_txbuf + probe_txlen, &h, sizeof(h));
	if (len)
		memcpy(probe_txbuf + probe_txlen + sizeof(h), payload, len);
	probe_txlen += sizeof(h) + len;
}

/*
 * Wait for DR. probe_io_wait reads LSR and, when DR is clear, sleeps in hlt
 * until IRQ3 within the same ring-0 visit. The IRQ may be stale (an edge
 * latched while we were already reading), so LSR is always read again
 * before reading data. probe.poll=1 spins on LSR instead.
 */
static void probe_rx_wait(void)
{
	if (probe_boot.poll) {
		while (!(probe_inb(COM2 + UART_LSR) & LSR_DR))
			__asm__ volatile("pause");
		return;
	}
	while (!(probe_io_wait(COM2 + UART_LSR, LSR_DR) & LSR_DR))
		;
}

/* Slow mode: every byte waits for DR (2 exits per byte at least). */
static void rx_bytes_slow(uint8_t *p, size_t n)
{
	while (n--) {
		probe_rx_wait();
		*p++ = probe_inb(COM2 + UART_RBR);
	}
}

/*
 * Fast mode: the host queues each frame atomically, so once DR is set a
 * whole frame is there: 16 header bytes in one rep insb, the payload in
 * another. A header with bad magic or len > PROTO_PROBE_MAX_PAYLOAD starts a
 * resync: drop one byte, pull the next one through LSR/RBR, and retest the
 * 16-byte window until it is a good header. When the queue runs dry the
 * window is garbage (no frame is ever split) and is dropped.
 * Slow mode resyncs the same way but waits for each byte instead, since a
 * frame may arrive piecemeal. Nothing is ever replied to garbage.
 */
const uint8_t *probe_rx_frame(struct proto_hdr *h)
{
	uint8_t win[PROTO_HDR_SIZE];
	int slow = probe_boot.uart_slow;

	if (probe_vsock_on)
		return probe_vsock_rx_frame(h);
	for (;;) {
		if (slow) {
			rx_bytes_slow(win, sizeof(win));
		} else {
			probe_rx_wait();
			probe_io_insb(COM2, win, sizeof(win));
		}
		for (;;) {
			memcpy(h, win, sizeof(*h));
			if (h->magic == PROTO_MAGIC && h->len <= PROTO_PROBE_MAX_PAYLOAD) {
				if (h->len && slow)
					rx_bytes_slow(probe_rxbuf, h->len);
				else if (h->len)
					probe_io_insb(COM2, probe_rxbuf, h->len);
				return probe_rxbuf;
			}
			memmove(win, win + 1, sizeof(win) - 1);
			if (slow) {
				rx_bytes_slow(win + sizeof(win) - 1, 1);
				continue;
			}
			if (!(probe_inb(COM2 + UART_LSR) & LSR_DR))
				break;
			win[sizeof(win) - 1] = probe_inb(COM2 + UART_RBR);
		}
	}
}
