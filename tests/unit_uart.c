/* unit_uart.c - unit tests for the 16550A UART: register semantics, interrupts, string I/O, save/load. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "kvm/uart.h"

#define UT_CAP 64

/* What the fake irq/tx callbacks saw. */
struct ut_fake {
	int levels[256];
	int nlevels;
	unsigned irq;
	int tx_calls;
	size_t tx_len;
	uint8_t tx[16384];
};

static struct uart ut;
static struct ut_fake utf;

static void ut_irq(void *opaque, unsigned irq, int level)
{
	struct ut_fake *f = opaque;
	f->irq = irq;
	if (f->nlevels < 256)
		f->levels[f->nlevels++] = level;
}

static void ut_tx(void *opaque, const uint8_t *buf, size_t n)
{
	struct ut_fake *f = opaque;
	f->tx_calls++;
	if (n > sizeof(f->tx) - f->tx_len)
		n = sizeof(f->tx) - f->tx_len;
	memcpy(f->tx + f->tx_len, buf, n);
	f->tx_len += n;
}

/* Stderr is captured: load-rejection messages are expected and would only be noise. */
static void ut_setup(void)
{
	cr_redirect_stderr();
	memset(&utf, 0, sizeof(utf));
	cr_assert_eq(uart_init(&ut, 0x3f8, 4, UT_CAP, ut_irq, &utf, ut_tx, &utf), 0);
}

static void ut_teardown(void)
{
	uart_fini(&ut);
}

TestSuite(uart, .init = ut_setup, .fini = ut_teardown);

static uint8_t ut_rd(struct uart *u, unsigned off)
{
	uint8_t v = 0xee;
	uart_io(u, off, &v, 1, 1, false);
	return v;
}

static void ut_wr(struct uart *u, unsigned off, uint8_t v)
{
	uart_io(u, off, &v, 1, 1, true);
}

/* Serialise u into a fresh buffer the caller finalises. */
static void ut_save(struct uart *u, struct sbuf *b)
{
	sbuf_init(b);
	cr_assert_eq(uart_save(u, b), 0);
}

Test(uart, power_on_values)
{
	cr_assert_eq(ut_rd(&ut, 5), 0x60, "LSR = THRE|TEMT");
	cr_assert_eq(ut_rd(&ut, 6), 0xb0, "MSR = DCD|DSR|CTS");
	cr_assert_eq(ut_rd(&ut, 2), 0x01, "IIR = no interrupt");
	cr_assert_eq(ut_rd(&ut, 1), 0x00);
	cr_assert_eq(ut_rd(&ut, 3), 0x00);
	ut_wr(&ut, 3, 0x80);
	cr_assert_eq(ut_rd(&ut, 0), 12, "divisor 12 = 9600 baud");
	cr_assert_eq(ut_rd(&ut, 1), 0);
	cr_assert_eq(utf.nlevels, 0);
}

Test(uart, init_rejects_zero_capacity)
{
	struct uart u;
	cr_assert_eq(uart_init(&u, 0x2f8, 3, 0, NULL, NULL, NULL, NULL), -EINVAL);
	uart_fini(&u);
}

Test(uart, dlab_switches_divisor_latch)
{
	ut_wr(&ut, 1, 0x05); /* IER */
	ut_wr(&ut, 3, 0x83); /* DLAB | 8N1 */
	ut_wr(&ut, 0, 0x01);
	ut_wr(&ut, 1, 0x02);
	cr_assert_eq(ut_rd(&ut, 0), 0x01);
	cr_assert_eq(ut_rd(&ut, 1), 0x02);
	cr_assert_eq(utf.tx_calls, 0, "a DLL write is not a transmit");
	cr_assert_eq(ut.dll, 0x01);
	cr_assert_eq(ut.dlm, 0x02);
	ut_wr(&ut, 3, 0x03);
	cr_assert_eq(ut_rd(&ut, 1), 0x05, "IER untouched by DLM writes");
	cr_assert_eq(ut_rd(&ut, 3), 0x03);
	ut_wr(&ut, 0, 'Z');
	cr_assert_eq(utf.tx_calls, 1);
	cr_assert_eq(utf.tx[0], 'Z');
	ut_wr(&ut, 3, 0x80);
	cr_assert_eq(ut_rd(&ut, 0), 0x01, "divisor survives DLAB toggling");
}

Test(uart, scratch_register)
{
	ut_wr(&ut, 7, 0x5a);
	cr_assert_eq(ut_rd(&ut, 7), 0x5a);
	ut_wr(&ut, 7, 0xa5);
	cr_assert_eq(ut_rd(&ut, 7), 0xa5);
}

Test(uart, ier_keeps_low_four_bits)
{
	ut_wr(&ut, 1, 0xff);
	cr_assert_eq(ut_rd(&ut, 1), 0x0f);
	ut_wr(&ut, 1, 0xf0);
	cr_assert_eq(ut_rd(&ut, 1), 0x00);
}

Test(uart, mcr_keeps_five_bits_and_lcr_all)
{
	ut_wr(&ut, 4, 0xff);
	cr_assert_eq(ut_rd(&ut, 4), 0x1f);
	ut_wr(&ut, 4, 0x00);
	ut_wr(&ut, 3, 0x5b);
	cr_assert_eq(ut_rd(&ut, 3), 0x5b);
}

Test(uart, iir_fifo_bits_follow_fcr)
{
	ut_wr(&ut, 2, 0x01);
	cr_assert_eq(ut_rd(&ut, 2), 0xc1);
	ut_wr(&ut, 2, 0xc7); /* enable, clear both, trigger 14 */
	cr_assert_eq(ut_rd(&ut, 2), 0xc1);
	ut_wr(&ut, 2, 0x00);
	cr_assert_eq(ut_rd(&ut, 2), 0x01);
}

Test(uart, iir_priorities)
{
	/* Loopback gives an overrun: fill the RX queue through THR, then one more. */
	ut_wr(&ut, 4, 0x10);
	for (int i = 0; i <= UT_CAP; i++)
		ut_wr(&ut, 0, (uint8_t)i);
	ut_wr(&ut, 1, 0x0f); /* all four sources enabled; ETBEI newly on latches THRE */
	cr_assert_eq(ut_rd(&ut, 2), 0x06, "line status first");
	cr_assert_eq(ut_rd(&ut, 2), 0x06, "IIR read does not clear RLS");
	cr_assert(ut_rd(&ut, 5) & 0x02, "OE reported");
	cr_assert_eq(ut_rd(&ut, 5) & 0x1e, 0, "LSR read cleared OE");
	cr_assert_eq(ut_rd(&ut, 2), 0x04, "then received data");
	for (int i = 0; i < UT_CAP; i++)
		cr_assert_eq(ut_rd(&ut, 0), (uint8_t)i);
	cr_assert_eq(ut_rd(&ut, 2), 0x02, "then THR empty");
	cr_assert_eq(ut_rd(&ut, 2), 0x01, "reading IIR acknowledged THRE");

	/* Modem status (lowest) can only come from a restored delta bit. */
	ut_wr(&ut, 4, 0x00);
	uint8_t rec[] = { 1, 0x08, 0x03, 0x00, 0x60, 0xb1, 0, 12, 0, 0, 0, 0, 0, 0, 0 };
	struct sbuf_reader r;
	sbuf_reader_init(&r, rec, sizeof(rec));
	cr_assert_eq(uart_load(&ut, &r), 0);
	cr_assert_eq(ut_rd(&ut, 2), 0x00, "modem status");
	cr_assert_eq(ut_rd(&ut, 6), 0xb1);
	cr_assert_eq(ut_rd(&ut, 6), 0xb0, "MSR read clears deltas");
	cr_assert_eq(ut_rd(&ut, 2), 0x01);
}

Test(uart, rda_beats_thre_and_irq_follows)
{
	ut_wr(&ut, 1, 0x03);
	cr_assert_eq(utf.nlevels, 1);
	cr_assert_eq(utf.levels[0], 1);
	uint8_t b = 'q';
	cr_assert_eq(uart_rx_push(&ut, &b, 1), 0);
	cr_assert_eq(ut_rd(&ut, 2), 0x04);
	cr_assert_eq(utf.nlevels, 1, "line already high: no callback");
	cr_assert_eq(ut_rd(&ut, 0), 'q');
	cr_assert_eq(ut_rd(&ut, 2), 0x02);
	cr_assert_eq(utf.nlevels, 2);
	cr_assert_eq(utf.levels[1], 0);
}

Test(uart, thre_latch_and_clear)
{
	ut_wr(&ut, 0, 'a'); /* ETBEI off: nothing latched */
	cr_assert_eq(ut_rd(&ut, 2), 0x01);
	cr_assert_eq(utf.nlevels, 0);

	ut_wr(&ut, 1, 0x02); /* enabling ETBEI with THR empty raises THRE */
	cr_assert_eq(utf.nlevels, 1);
	cr_assert_eq(utf.levels[0], 1);
	cr_assert_eq(utf.irq, 4);
	cr_assert_eq(ut_rd(&ut, 2), 0x02);
	cr_assert_eq(utf.nlevels, 2, "IIR read lowered the line");
	cr_assert_eq(utf.levels[1], 0);
	cr_assert_eq(ut_rd(&ut, 2), 0x01);

	ut_wr(&ut, 0, 'b'); /* THR empties at once and re-latches */
	cr_assert_eq(utf.nlevels, 3);
	cr_assert_eq(utf.levels[2], 1);
	cr_assert_eq(ut_rd(&ut, 2), 0x02);

	ut_wr(&ut, 0, 'c');
	ut_wr(&ut, 1, 0x00); /* disabling drops it */
	cr_assert_eq(utf.levels[utf.nlevels - 1], 0);
	cr_assert_not(ut.thr_ipending);
	ut_wr(&ut, 1, 0x02);
	cr_assert(ut.thr_ipending);
	cr_assert_eq(utf.levels[utf.nlevels - 1], 1);
	ut_wr(&ut, 1, 0x03); /* ETBEI unchanged: no re-latch after an acknowledge */
	cr_assert_eq(ut_rd(&ut, 2), 0x02);
	ut_wr(&ut, 1, 0x03);
	cr_assert_eq(ut_rd(&ut, 2), 0x01);
	cr_assert_eq(utf.tx_len, 3);
	cr_assert_eq(memcmp(utf.tx, "abc", 3), 0);
}

Test(uart, fcr_clears_rx_and_relatches_thre)
{
	uint8_t buf[5] = "hello";
	cr_assert_eq(uart_rx_push(&ut, buf, 5), 0);
	cr_assert_eq(ut_rd(&ut, 5) & 0x01, 0x01);
	ut_wr(&ut, 2, 0x01); /* enabling alone keeps data */
	cr_assert_eq(uart_rx_space(&ut), UT_CAP - 5);
	ut_wr(&ut, 2, 0x03);
	cr_assert_eq(ut_rd(&ut, 5), 0x60);
	cr_assert_eq(uart_rx_space(&ut), UT_CAP);
	ut_wr(&ut, 1, 0x02);
	cr_assert_eq(ut_rd(&ut, 2), 0xc2);
	cr_assert_eq(ut_rd(&ut, 2), 0xc1);
	ut_wr(&ut, 2, 0x05); /* TX clear: THR is empty again */
	cr_assert_eq(ut_rd(&ut, 2), 0xc2);
}

Test(uart, lsr_data_ready_and_empty_rbr)
{
	cr_assert_eq(ut_rd(&ut, 0), 0, "empty RBR reads 0");
	uint8_t buf[2] = { 'x', 'y' };
	cr_assert_eq(uart_rx_push(&ut, buf, 2), 0);
	cr_assert_eq(ut_rd(&ut, 5), 0x61);
	cr_assert_eq(ut_rd(&ut, 0), 'x');
	cr_assert_eq(ut_rd(&ut, 5), 0x61);
	cr_assert_eq(ut_rd(&ut, 0), 'y');
	cr_assert_eq(ut_rd(&ut, 5), 0x60);
	cr_assert_eq(utf.nlevels, 0, "RDI disabled: no interrupt");
}

Test(uart, loopback_echo_and_msr_mapping)
{
	ut_wr(&ut, 4, 0x1a); /* LOOP | OUT2 | RTS: Linux's autoconfig probe */
	cr_assert_eq(ut_rd(&ut, 6) & 0xf0, 0x90);
	ut_wr(&ut, 4, 0x1f);
	cr_assert_eq(ut_rd(&ut, 6), 0xf0);
	ut_wr(&ut, 4, 0x11); /* DTR -> DSR */
	cr_assert_eq(ut_rd(&ut, 6), 0x20);
	ut_wr(&ut, 4, 0x14); /* OUT1 -> RI */
	cr_assert_eq(ut_rd(&ut, 6), 0x40);
	ut_wr(&ut, 4, 0x10);
	cr_assert_eq(ut_rd(&ut, 6), 0x00);

	ut_wr(&ut, 1, 0x01);
	ut_wr(&ut, 0, 'e');
	cr_assert_eq(utf.tx_calls, 0, "loopback bytes never leave");
	cr_assert_eq(ut_rd(&ut, 5) & 0x01, 0x01);
	cr_assert_eq(ut_rd(&ut, 2), 0x04);
	cr_assert_eq(utf.levels[utf.nlevels - 1], 1);
	cr_assert_eq(ut_rd(&ut, 0), 'e');
	cr_assert_eq(utf.levels[utf.nlevels - 1], 0);

	ut_wr(&ut, 4, 0x03);
	cr_assert_eq(ut_rd(&ut, 6), 0xb0, "outside loopback MSR is fixed");
	ut_wr(&ut, 0, 'o');
	cr_assert_eq(utf.tx_calls, 1);
	cr_assert_eq(utf.tx[0], 'o');
}

Test(uart, rep_outsb_is_one_tx_call)
{
	static const char msg[] = "hello, console";
	uint8_t buf[sizeof(msg)];
	memcpy(buf, msg, sizeof(msg));
	uart_io(&ut, 0, buf, 1, sizeof(msg) - 1, true);
	cr_assert_eq(utf.tx_calls, 1);
	cr_assert_eq(utf.tx_len, sizeof(msg) - 1);
	cr_assert_eq(memcmp(utf.tx, msg, sizeof(msg) - 1), 0);

	static uint8_t page[4096];
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7);
	uart_io(&ut, 0, page, 1, sizeof(page), true);
	cr_assert_eq(utf.tx_calls, 2, "a whole page is still one call");
	cr_assert_eq(memcmp(utf.tx + sizeof(msg) - 1, page, sizeof(page)), 0);
}

Test(uart, oversized_burst_is_chunked_in_order)
{
	static uint8_t big[10000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	uart_io(&ut, 0, big, 1, sizeof(big), true);
	cr_assert_eq(utf.tx_len, sizeof(big));
	cr_assert_eq(utf.tx_calls, 3);
	cr_assert_eq(memcmp(utf.tx, big, sizeof(big)), 0);
}

Test(uart, rep_insb_pops_up_to_count)
{
	uint8_t in[3] = { 1, 2, 3 };
	cr_assert_eq(uart_rx_push(&ut, in, 3), 0);
	uint8_t out[6];
	memset(out, 0xee, sizeof(out));
	uart_io(&ut, 0, out, 1, 5, false);
	cr_assert_eq(out[0], 1);
	cr_assert_eq(out[1], 2);
	cr_assert_eq(out[2], 3);
	cr_assert_eq(out[3], 0);
	cr_assert_eq(out[4], 0);
	cr_assert_eq(out[5], 0xee, "wrote past count");
	cr_assert_eq(ut_rd(&ut, 5) & 0x01, 0);
}

Test(uart, wide_access_to_byte_registers_uses_low_byte)
{
	uint8_t w[4] = { 0x05, 0xff, 0xff, 0xff };
	uart_io(&ut, 7, w, 4, 1, true);
	cr_assert_eq(ut_rd(&ut, 7), 0x05, "SCR takes only the low byte");
	uint8_t r[8];
	memset(r, 0xee, sizeof(r));
	uart_io(&ut, 5, r, 4, 2, false);
	cr_assert_eq(r[0], 0x60);
	cr_assert_eq(r[1], 0);
	cr_assert_eq(r[3], 0);
	cr_assert_eq(r[4], 0x60);
	cr_assert_eq(r[7], 0);
}

Test(uart, rx_push_is_all_or_nothing)
{
	uint8_t buf[UT_CAP];
	for (int i = 0; i < UT_CAP; i++)
		buf[i] = (uint8_t)(i + 1);
	cr_assert_eq(uart_rx_push(&ut, buf, 40), 0);
	cr_assert_eq(uart_rx_push(&ut, buf, 30), -ENOSPC);
	cr_assert_eq(uart_rx_space(&ut), UT_CAP - 40, "a refused frame queues nothing");
	/* Drain some so the next frame wraps around the ring. */
	for (int i = 0; i < 30; i++)
		cr_assert_eq(ut_rd(&ut, 0), (uint8_t)(i + 1));
	cr_assert_eq(uart_rx_push(&ut, buf + 40, 24), 0);
	cr_assert_eq(uart_rx_push(&ut, buf, 30), 0);
	cr_assert_eq(uart_rx_space(&ut), 0);
	cr_assert_eq(uart_rx_push(&ut, buf, 1), -ENOSPC);
	cr_assert_eq(uart_rx_push(&ut, buf, 0), 0);
	for (int i = 30; i < 64; i++)
		cr_assert_eq(ut_rd(&ut, 0), (uint8_t)(i + 1));
	for (int i = 0; i < 30; i++)
		cr_assert_eq(ut_rd(&ut, 0), (uint8_t)(i + 1));
	cr_assert_eq(uart_rx_space(&ut), UT_CAP);
}

/* Pushes frames of four equal bytes, retrying while the queue is full. */
static void *ut_pusher(void *arg)
{
	uint8_t base = (uint8_t)(uintptr_t)arg;
	for (int i = 0; i < 2000; i++) {
		uint8_t f[4];
		memset(f, (uint8_t)(base + (i % 100)), 4);
		while (uart_rx_push(&ut, f, 4) == -ENOSPC)
			sched_yield();
	}
	return NULL;
}

Test(uart, rx_push_concurrent_frames_stay_whole)
{
	pthread_t a, b;
	cr_assert_eq(pthread_create(&a, NULL, ut_pusher, (void *)(uintptr_t)0), 0);
	cr_assert_eq(pthread_create(&b, NULL, ut_pusher, (void *)(uintptr_t)128), 0);
	size_t got = 0;
	uint8_t frame[4];
	size_t in_frame = 0;
	while (got < 2 * 2000 * 4) {
		if (!(ut_rd(&ut, 5) & 0x01)) {
			sched_yield();
			continue;
		}
		frame[in_frame++] = ut_rd(&ut, 0);
		got++;
		if (in_frame == 4) {
			cr_assert(frame[0] == frame[1] && frame[1] == frame[2] && frame[2] == frame[3],
				  "frame split at byte %zu", got);
			in_frame = 0;
		}
	}
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	cr_assert_eq(uart_rx_space(&ut), UT_CAP);
}

Test(uart, save_format_is_exact)
{
	ut_wr(&ut, 1, 0x02);
	ut_wr(&ut, 7, 0x77);
	uint8_t in[3] = { 'a', 'b', 'c' };
	cr_assert_eq(uart_rx_push(&ut, in, 3), 0);
	struct sbuf b;
	ut_save(&ut, &b);
	static const uint8_t want[] = {
		1, 0x02, 0x00, 0x00, 0x61, 0xb0, 0x77, 12, 0, 0x00, 1, 3, 0, 0, 0, 'a', 'b', 'c',
	};
	cr_assert_eq(b.len, sizeof(want));
	cr_assert_eq(memcmp(b.data, want, sizeof(want)), 0);
	sbuf_fini(&b);
}

Test(uart, save_load_round_trip)
{
	ut_wr(&ut, 3, 0x80);
	ut_wr(&ut, 0, 0x01);
	ut_wr(&ut, 1, 0x00);
	ut_wr(&ut, 3, 0x03);
	ut_wr(&ut, 1, 0x07);
	ut_wr(&ut, 2, 0xc1);
	ut_wr(&ut, 4, 0x0b);
	ut_wr(&ut, 7, 0x42);
	uint8_t fill[UT_CAP];
	for (int i = 0; i < UT_CAP; i++)
		fill[i] = (uint8_t)(0x80 + i);
	/* Leave the queue wrapped so save must linearise it. */
	cr_assert_eq(uart_rx_push(&ut, fill, 50), 0);
	for (int i = 0; i < 40; i++)
		ut_rd(&ut, 0);
	cr_assert_eq(uart_rx_push(&ut, fill, 40), 0);

	struct sbuf b;
	ut_save(&ut, &b);

	struct ut_fake f2;
	struct uart u2;
	memset(&f2, 0, sizeof(f2));
	cr_assert_eq(uart_init(&u2, 0x3f8, 4, UT_CAP, ut_irq, &f2, ut_tx, &f2), 0);
	struct sbuf_reader r;
	sbuf_reader_init(&r, b.data, b.len);
	cr_assert_eq(uart_load(&u2, &r), 0);
	cr_assert_eq(sbuf_remaining(&r), 0);
	cr_assert_eq(f2.nlevels, 1, "restored line level reported");
	cr_assert_eq(f2.levels[0], 1);

	cr_assert_eq(u2.ier, ut.ier);
	cr_assert_eq(u2.lcr, 0x03);
	cr_assert_eq(u2.mcr, 0x0b);
	cr_assert_eq(u2.lsr, ut.lsr);
	cr_assert_eq(u2.msr, ut.msr);
	cr_assert_eq(u2.scr, 0x42);
	cr_assert_eq(u2.dll, 0x01);
	cr_assert_eq(u2.dlm, 0x00);
	cr_assert_eq(u2.fcr, ut.fcr);
	cr_assert_eq(u2.thr_ipending, ut.thr_ipending);

	struct sbuf b2;
	ut_save(&u2, &b2);
	cr_assert_eq(b2.len, b.len);
	cr_assert_eq(memcmp(b2.data, b.data, b.len), 0);

	for (int i = 40; i < 50; i++)
		cr_assert_eq(ut_rd(&u2, 0), (uint8_t)(0x80 + i));
	for (int i = 0; i < 40; i++)
		cr_assert_eq(ut_rd(&u2, 0), (uint8_t)(0x80 + i));
	cr_assert_eq(ut_rd(&u2, 5) & 0x01, 0);
	sbuf_fini(&b2);
	sbuf_fini(&b);
	uart_fini(&u2);
}

/* Loading `rec` into ut must fail with -EPROTO and leave ut byte-for-byte as it was. */
static void ut_assert_rejected(const uint8_t *rec, size_t len)
{
	struct sbuf before, after;
	ut_save(&ut, &before);
	int nlevels = utf.nlevels;
	struct sbuf_reader r;
	sbuf_reader_init(&r, rec, len);
	cr_assert_eq(uart_load(&ut, &r), -EPROTO, "accepted a %zu byte record", len);
	ut_save(&ut, &after);
	cr_assert_eq(after.len, before.len);
	cr_assert_eq(memcmp(after.data, before.data, before.len), 0, "state changed on error");
	cr_assert_eq(utf.nlevels, nlevels);
	sbuf_fini(&after);
	sbuf_fini(&before);
}

Test(uart, load_rejects_bad_records_unchanged)
{
	ut_wr(&ut, 7, 0x99);
	ut_wr(&ut, 1, 0x01);
	uint8_t pending[2] = { 7, 8 };
	cr_assert_eq(uart_rx_push(&ut, pending, 2), 0);

	uint8_t good[15 + 4] = { 1, 0x0f, 0x03, 0x00, 0x60, 0xb0, 0x11, 12, 0, 0, 0, 4, 0, 0, 0,
				 'w', 'x', 'y', 'z' };
	uint8_t rec[sizeof(good)];

	memcpy(rec, good, sizeof(rec));
	rec[0] = 2;
	ut_assert_rejected(rec, sizeof(rec));

	memcpy(rec, good, sizeof(rec));
	rec[11] = UT_CAP + 1; /* rx_len above capacity */
	ut_assert_rejected(rec, sizeof(rec));

	memcpy(rec, good, sizeof(rec));
	rec[14] = 0x80; /* absurd rx_len */
	ut_assert_rejected(rec, sizeof(rec));

	memcpy(rec, good, sizeof(rec));
	rec[10] = 2; /* thr_ipending is a bool */
	ut_assert_rejected(rec, sizeof(rec));

	for (size_t n = 0; n < sizeof(good); n++)
		ut_assert_rejected(good, n);

	/* A queue longer than rx_cap is refused even when all its bytes are present. */
	static uint8_t big[15 + UT_CAP + 1];
	memcpy(big, good, 11);
	big[11] = UT_CAP + 1;
	ut_assert_rejected(big, sizeof(big));
	big[11] = UT_CAP; /* exactly full is fine */
	struct sbuf_reader rb;
	sbuf_reader_init(&rb, big, sizeof(big) - 1);
	cr_assert_eq(uart_load(&ut, &rb), 0);
	cr_assert_eq(uart_rx_space(&ut), 0);

	struct sbuf_reader r;
	sbuf_reader_init(&r, good, sizeof(good));
	cr_assert_eq(uart_load(&ut, &r), 0, "the untouched record loads");
	cr_assert_eq(ut_rd(&ut, 7), 0x11);
	cr_assert_eq(ut_rd(&ut, 0), 'w');
}

/* snapbox extension: wide data-register accesses move several bytes per access. */
Test(uart, wide_data_register_moves_every_byte)
{
	uint8_t out[8] = { 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h' };
	uint8_t in[8];
	uint8_t lcr[4] = { 0x03, 0xaa, 0xbb, 0xcc };

	uart_io(&ut, 0, out, 8, 1, true);
	cr_assert_eq(utf.tx_len, 8);
	cr_assert_eq(memcmp(utf.tx, "abcdefgh", 8), 0);
	cr_assert_eq(utf.tx_calls, 1);

	cr_assert_eq(uart_rx_push(&ut, (const uint8_t *)"12345", 5), 0);
	memset(in, 0xee, sizeof(in));
	uart_io(&ut, 0, in, 8, 1, false);
	cr_assert_eq(memcmp(in, "12345\0\0\0", 8), 0, "queued bytes then zeros");
	cr_assert_eq(ut_rd(&ut, 5) & 0x01, 0, "DR clear once the queue is drained");

	/* Other registers stay byte registers: only the low byte counts. */
	uart_io(&ut, 3, lcr, 4, 1, true);
	cr_assert_eq(ut_rd(&ut, 3), 0x03);
}

Test(uart, wide_access_with_dlab_sets_divisor_only)
{
	uint8_t v[4] = { 0x01, 0x02, 0x03, 0x04 };

	ut_wr(&ut, 3, 0x80);               /* DLAB */
	uart_io(&ut, 0, v, 4, 1, true);
	cr_assert_eq(ut_rd(&ut, 0), 0x01, "DLL takes the low byte");
	cr_assert_eq(utf.tx_len, 0, "nothing transmitted while DLAB is set");
}

/*
 * A queued frame larger than the FIFO is seen 16 bytes at a time, and every
 * refill is a fresh low-to-high edge: a driver that reads a bounded number
 * of bytes per (edge-triggered) interrupt is interrupted again.
 */
Test(uart, large_rx_frame_gives_an_edge_per_fifo_refill)
{
	uint8_t frame[40], got[40];
	int n = 0, edges = 0;

	for (int i = 0; i < 40; i++)
		frame[i] = (uint8_t)(i * 3 + 1);
	ut_wr(&ut, 1, 0x01);                        /* IER: RX data available only */
	cr_assert_eq(uart_rx_push(&ut, frame, sizeof(frame)), 0);
	while ((ut_rd(&ut, 5) & 0x01) && n < 40) {  /* read while LSR.DR, as a driver does */
		got[n++] = ut_rd(&ut, 0);
	}
	cr_assert_eq(n, 40, "the guest saw %d bytes", n);
	cr_assert_arr_eq(got, frame, sizeof(frame));
	for (int i = 1; i < utf.nlevels; i++)
		edges += utf.levels[i - 1] == 0 && utf.levels[i] == 1;
	edges += utf.nlevels > 0 && utf.levels[0] == 1;
	cr_assert_eq(edges, 3, "windows of 16 + 16 + 8 bytes, one rising edge each (levels seen: %d)",
		     utf.nlevels);
	cr_assert_eq(utf.levels[utf.nlevels - 1], 0, "line low once the queue is empty");
	cr_assert_eq(ut_rd(&ut, 2) & 0x0f, 0x01, "IIR: no interrupt pending");
}

/* Bounded reads per interrupt (a driver's budget) never strand queued bytes. */
Test(uart, bounded_reader_still_drains_a_large_frame)
{
	uint8_t frame[60];
	int read = 0, interrupts = 0, last = 0;

	memset(frame, 0x5a, sizeof(frame));
	ut_wr(&ut, 1, 0x01);
	cr_assert_eq(uart_rx_push(&ut, frame, sizeof(frame)), 0);
	/* Model an edge-triggered controller: one interrupt per rising edge seen. */
	while (interrupts < 100) {
		int seen = utf.nlevels, rising = 0;

		for (int i = last; i < seen; i++)
			rising += utf.levels[i] == 1 && (i == 0 || utf.levels[i - 1] == 0);
		last = seen;
		if (!rising)
			break;
		interrupts++;
		/* The handler reads at most 20 bytes while DR is set. */
		for (int k = 0; k < 20 && (ut_rd(&ut, 5) & 0x01); k++, read++)
			(void)ut_rd(&ut, 0);
	}
	cr_assert_eq(read, 60, "only %d of 60 bytes read before the interrupts stopped", read);
}
