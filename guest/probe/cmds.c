/* cmds.c - the probe's request handlers: PING ECHO FILL VERIFY HASH TICKS SPIN FAULT. */

#include "guest/probe/probe.h"
#include "guest/probe/pattern.h"

#define FOUR_GIB          (1ull << 32)
#define FLOOD_PORT        0x2e0
#define GARBAGE_MAX       PROTO_PROBE_MAX_PAYLOAD

static uint8_t probe_scratch[PROBE_PAGE] __attribute__((aligned(PROBE_PAGE)));

static void reply(const struct proto_hdr *h, const void *p, uint32_t len)
{
	probe_tx_frame(h->type, PROTO_F_RESP, h->id, p, len);
}

static void reply_u64(const struct proto_hdr *h, uint64_t v)
{
	reply(h, &v, sizeof(v));
}

static void reply_err(const struct proto_hdr *h, const char *msg)
{
	probe_tx_frame(h->type, PROTO_F_RESP | PROTO_F_ERR, h->id, msg, (uint32_t)probe_strlen(msg));
}

/* RAM per e820, and below 4 GiB where the probe's identity map ends. */
static int range_ok(uint64_t gpa, uint64_t len)
{
	return probe_ram_range_ok(gpa, len) && gpa + len <= FOUR_GIB;
}

static void cmd_fill(const struct proto_hdr *h, const uint8_t *payload, int verify)
{
	struct proto_fill_req req;
	uint64_t bytes, pages, i;

	if (h->len != sizeof(req)) {
		reply_err(h, "bad payload size");
		return;
	}
	memcpy(&req, payload, sizeof(req));
	bytes = (uint64_t)req.mib << 20;
	pages = bytes / PROBE_PAGE;
	if (!range_ok(PROTO_FILL_BASE, bytes)) {
		reply_err(h, "fill range outside RAM");
		return;
	}
	if (!verify) {
		struct proto_fill_resp r;
		memset(&r, 0, sizeof(r));
		r.base = PROTO_FILL_BASE;
		r.bytes = bytes;
		for (i = 0; i < pages; i++) {
			uint8_t *p = probe_gpa_ptr(PROTO_FILL_BASE + i * PROBE_PAGE);
			switch (probe_pattern_page(p, req.seed, i)) {
			case PROBE_PATTERN_ZERO:
				r.zero_pages++;
				break;
			case PROBE_PATTERN_TEXT:
				r.text_pages++;
				break;
			default:
				r.random_pages++;
				break;
			}
		}
		reply(h, &r, sizeof(r));
	} else {
		struct proto_verify_resp r;
		r.bad_pages = 0;
		r.first_bad_page = ~0ull;
		for (i = 0; i < pages; i++) {
			const uint8_t *p = probe_gpa_ptr(PROTO_FILL_BASE + i * PROBE_PAGE);
			probe_pattern_page(probe_scratch, req.seed, i);
			if (memcmp(p, probe_scratch, PROBE_PAGE) != 0) {
				if (r.bad_pages == 0)
					r.first_bad_page = i;
				r.bad_pages++;
			}
		}
		reply(h, &r, sizeof(r));
	}
}

static void cmd_hash(const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_hash_req req;

	if (h->len != sizeof(req)) {
		reply_err(h, "bad payload size");
		return;
	}
	memcpy(&req, payload, sizeof(req));
	if (!range_ok(req.gpa, req.len)) {
		reply_err(h, "hash range outside RAM");
		return;
	}
	reply_u64(h, proto_hash64(probe_gpa_ptr(req.gpa), req.len));
}

static void cmd_ticks(const struct proto_hdr *h)
{
	struct proto_ticks_resp r;

	r.tsc = probe_rdtsc();
	r.ns = probe_clock_ns();
	r.tsc_khz = probe_clock_tsc_khz();
	reply(h, &r, sizeof(r));
}

static void cmd_spin(const struct proto_hdr *h, const uint8_t *payload)
{
	uint32_t ms;
	uint64_t start, now, want;

	if (h->len != sizeof(ms)) {
		reply_err(h, "bad payload size");
		return;
	}
	memcpy(&ms, payload, sizeof(ms));
	want = (uint64_t)ms * 1000000ull;
	start = probe_clock_ns();
	do {
		__asm__ volatile("pause");
		now = probe_clock_ns();
	} while (now - start < want);
	reply_u64(h, now - start);
}

/* Non-frame bytes: all >= 0x80, so they never contain the ASCII magic "SBX1". */
static void send_garbage(uint64_t n)
{
	uint8_t chunk[256];
	uint64_t i;

	for (i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(0x80 | ((i * 37) & 0x7f));
	while (n) {
		size_t k = n < sizeof(chunk) ? (size_t)n : sizeof(chunk);
		probe_tx_raw(chunk, k);
		n -= k;
	}
}

static void cmd_fault(const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_fault_req req;

	if (h->len != sizeof(req)) {
		reply_err(h, "bad payload size");
		return;
	}
	memcpy(&req, payload, sizeof(req));
	if (req.kind >= PROTO_FAULT_VQ_LOOP) {
		if (!probe_vsock_on)
			reply_err(h, "not on vsock");
		else if (!probe_vsock_fault(req.kind, req.arg))
			reply_u64(h, req.kind == PROTO_FAULT_NOTIFY_STORM ? req.arg : 0);
		return;
	}
	switch (req.kind) {
	case PROTO_FAULT_TRIPLE:
		/* empty IDT, then ud2 in ring 0: #UD -> #DF -> shutdown */
		probe_tx_flush();
		probe_io_triple_fault();
	case PROTO_FAULT_WILD_PORT: {
		uint16_t port = (uint16_t)req.arg;
		uint32_t v = probe_io_inl(port);   /* real in/out: PIO exits */
		probe_io_outl(port, v);
		reply_u64(h, v);
		break;
	}
	case PROTO_FAULT_WILD_MMIO: {
		volatile uint32_t *p;
		uint32_t v;
		if (req.arg > FOUR_GIB - 4) {
			reply_err(h, "gpa above 4 GiB");
			break;
		}
		p = probe_gpa_ptr(req.arg);
		v = *p;
		*p = v;
		reply_u64(h, v);
		break;
	}
	case PROTO_FAULT_PORT_FLOOD: {
		uint64_t i;
		/* one exit each, on purpose: no rep */
		for (i = 0; i < req.arg; i++)
			probe_io_outb(FLOOD_PORT, (uint8_t)i);
		reply_u64(h, req.arg);
		break;
	}
	case PROTO_FAULT_HLT_CLI:
		probe_tx_flush();
		probe_io_hlt_cli();
	case PROTO_FAULT_GARBAGE: {
		uint64_t n = req.arg < GARBAGE_MAX ? req.arg : GARBAGE_MAX;
		send_garbage(n);
		reply_u64(h, n);
		break;
	}
	case PROTO_FAULT_HUGE_FRAME: {
		struct proto_hdr bad;
		bad.magic = PROTO_MAGIC;
		bad.type = PROTO_T_LOG;
		bad.flags = 0;
		bad.id = 0;
		bad.len = 0xffffffffu;
		probe_tx_raw(&bad, sizeof(bad));   /* and no payload at all */
		reply_u64(h, 0);
		break;
	}
	case PROTO_FAULT_FRAME_FLOOD: {
		static uint8_t log[4096];
		uint64_t i;

		memset(log, 'f', sizeof(log));
		for (i = 0; req.arg == 0 || i < req.arg; i++) {
			if (i & 1)
				probe_tx_frame(PROTO_T_ECHO, PROTO_F_RESP, 0xdeadbeefu, log, 64);
			else
				probe_tx_frame(PROTO_T_LOG, 0, 0, log, sizeof(log));
		}
		reply_u64(h, req.arg);
		break;
	}
	case PROTO_FAULT_SPIN_FOREVER:
		probe_tx_flush();
		for (;;)
			__asm__ volatile("pause");
	default:
		reply_err(h, "unknown fault kind");
		break;
	}
}

void probe_dispatch(const struct proto_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case PROTO_T_PING:
		reply(h, NULL, 0);
		break;
	case PROTO_T_ECHO:
		reply(h, payload, h->len);
		break;
	case PROTO_T_FILL:
		cmd_fill(h, payload, 0);
		break;
	case PROTO_T_VERIFY:
		cmd_fill(h, payload, 1);
		break;
	case PROTO_T_HASH:
		cmd_hash(h, payload);
		break;
	case PROTO_T_TICKS:
		cmd_ticks(h);
		break;
	case PROTO_T_SPIN:
		cmd_spin(h, payload);
		break;
	case PROTO_T_FAULT:
		cmd_fault(h, payload);
		break;
	case PROTO_T_REFRESH:
		/* Nothing to reseed in ring 3: acknowledged, so probe restores pay
		 * the same round trip as the agent's. */
		reply(h, NULL, 0);
		break;
	case PROTO_T_CONSOLE:
		/* Proves COM1 works (after a restore, say): the bytes go out, then the reply. */
		probe_console_write((const char *)payload, h->len);
		reply(h, NULL, 0);
		break;
	default:
		reply_err(h, "unknown command");
		break;
	}
}
