/* wire.h - the agent/probe frame format shared by host and guests (docs/agent-protocol.md). */
#ifndef SNAPBOX_PROTO_WIRE_H
#define SNAPBOX_PROTO_WIRE_H

#include "proto/le.h"
#include <stdint.h>

/*
 * Every message on COM2 is one frame: a 16-byte little-endian header and
 * `len` payload bytes. Guests may include this header (freestanding-safe).
 */
#define PROTO_MAGIC        0x31584253u   /* bytes "SBX1" */
#define PROTO_HDR_SIZE     16

struct proto_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t id;
	uint32_t len;
} __attribute__((packed));

_Static_assert(sizeof(struct proto_hdr) == PROTO_HDR_SIZE, "proto_hdr is 16 bytes");

/*
 * On virtio-vsock (the default channel): the guest listens on
 * PROTO_VSOCK_AGENT_PORT and the host opens one connection per request,
 * which carries the request frame and its reply frame. The guest opens one
 * connection to the host's PROTO_VSOCK_EVENT_PORT at boot for its
 * unsolicited frames (BOOT_TIME, LOG, READY). Both guests keep at least
 * 64 KiB of receive buffer per connection, so the request's bytes may
 * follow its REQUEST before the guest's RESPONSE arrives.
 */
#define PROTO_VSOCK_AGENT_PORT   1024u
#define PROTO_VSOCK_EVENT_PORT   1025u

/* flags */
#define PROTO_F_RESP       0x0001   /* a reply; id matches the request */
#define PROTO_F_ERR        0x0002   /* a failed request; payload is a text reason */

/* guest -> host, unsolicited (id 0) */
#define PROTO_T_READY      0x0001   /* payload: text, guest name/version */
#define PROTO_T_BOOT_TIME  0x0002   /* payload: text "BOOT_TIME:<stage>:<ns>" */
#define PROTO_T_LOG        0x0003   /* payload: text */

/* host -> guest requests; replies carry the same type with PROTO_F_RESP */
#define PROTO_T_PING       0x0010   /* -> empty */
#define PROTO_T_ECHO       0x0011   /* bytes -> same bytes */
#define PROTO_T_FILL       0x0020   /* struct proto_fill_req -> struct proto_fill_resp */
#define PROTO_T_VERIFY     0x0021   /* struct proto_fill_req -> struct proto_verify_resp */
#define PROTO_T_HASH       0x0022   /* struct proto_hash_req -> u64 hash */
#define PROTO_T_TICKS      0x0023   /* -> struct proto_ticks_resp */
#define PROTO_T_SPIN       0x0024   /* u32 ms -> u64 spun ns */
#define PROTO_T_FAULT      0x0025   /* struct proto_fault_req -> u64 value (if it returns) */
#define PROTO_T_CONSOLE    0x0026   /* bytes written to COM1 (the console) -> empty */
/* Both guests: sent after every restore, before the sandbox is handed over. */
#define PROTO_T_REFRESH    0x0027   /* u64 realtime ns, u32 n, n bytes of entropy -> empty */
/* Linux agent only (guest/agent); payloads are explicit LE fields and counted strings, below. */
#define PROTO_T_EXEC       0x0030   /* exec request -> exec reply */
#define PROTO_T_WRITE_FILE 0x0031   /* mode, flags, path, data -> empty */
#define PROTO_T_READ_FILE  0x0032   /* max_bytes, flags, path -> file bytes */

/* WRITE_FILE flags */
#define PROTO_WRITE_F_MKDIRS      0x1u    /* create missing parent directories (mode 0755) */

/* REFRESH: the entropy bytes the host sends (the agent mixes them in and reseeds). */
#define PROTO_REFRESH_MIN_ENTROPY 16u
#define PROTO_REFRESH_MAX_ENTROPY 256u
#define PROTO_REFRESH_HDR         12u     /* u64 realtime ns + u32 entropy length */

/* Payload caps. The host never allocates more than PROTO_MAX_PAYLOAD for a frame. */
#define PROTO_MAX_PAYLOAD  (4u << 20)
#define PROTO_PROBE_MAX_PAYLOAD  (64u << 10)

/*
 * Agent request limits. The host refuses to send anything beyond them and the
 * agent re-checks every one. A counted string is a u32 length and that many
 * bytes, with no NUL inside and none at the end.
 */
#define PROTO_PATH_MAX            4095u                  /* bytes of an absolute path */
#define PROTO_EXEC_MAX_ARGS       4096u                  /* argv entries (at least 1) */
#define PROTO_EXEC_MAX_ENV        4096u                  /* KEY=VALUE entries */
#define PROTO_EXEC_MAX_STR        (128u << 10)           /* one argv or env string */
#define PROTO_EXEC_MAX_TIMEOUT_MS 86400000u              /* one day */
#define PROTO_EXEC_RESP_SIZE      32u                    /* fixed part of the exec reply */
#define PROTO_EXEC_MAX_OUTPUT     (PROTO_MAX_PAYLOAD - PROTO_EXEC_RESP_SIZE) /* stdout + stderr caps */
#define PROTO_FILE_MAX            (PROTO_MAX_PAYLOAD - 8192u) /* WRITE_FILE / READ_FILE data */
#define PROTO_EXEC_MAX_USER       64u                    /* bytes of exec's user: a name or uid[:gid] */

/* exec request: flags (an agent refuses a flag it does not know) */
#define PROTO_EXEC_REQ_F_USER     0x1u /* a user field follows cwd: run as that user */

/* exec reply: status */
#define PROTO_EXEC_EXITED         0u   /* code is the exit status, 0..255 */
#define PROTO_EXEC_SIGNALED       1u   /* code is the signal number, 1..64 */
/* exec reply: flags */
#define PROTO_EXEC_F_TIMED_OUT    0x1u /* the deadline passed; the process group was killed */
#define PROTO_EXEC_F_STDOUT_TRUNC 0x2u /* stdout exceeded its cap; the rest was discarded */
#define PROTO_EXEC_F_STDERR_TRUNC 0x4u

/*
 * A bounds-checked reader over an untrusted payload. Once a read fails, `bad`
 * stays set and every later read yields 0 / NULL, so a decoder can read all
 * fields and check `bad` once.
 */
struct proto_cursor {
	const uint8_t *p;
	uint32_t left;
	int bad;
};

static inline uint32_t proto_cur_u32(struct proto_cursor *c)
{
	uint32_t v;

	if (c->bad || c->left < 4) {
		c->bad = 1;
		return 0;
	}
	v = le_get32(c->p);
	c->p += 4;
	c->left -= 4;
	return v;
}

static inline const uint8_t *proto_cur_bytes(struct proto_cursor *c, uint32_t n)
{
	const uint8_t *r = c->p;

	if (c->bad || c->left < n) {
		c->bad = 1;
		return 0;
	}
	c->p += n;
	c->left -= n;
	return r;
}

/*
 * A counted string of at most max bytes. With no_nul, a NUL inside it is an
 * error (argv, env, paths); data strings (stdin, file bytes) allow any byte.
 */
static inline const uint8_t *proto_cur_str(struct proto_cursor *c, uint32_t max, int no_nul,
					   uint32_t *len)
{
	uint32_t n = proto_cur_u32(c);
	const uint8_t *s;

	*len = 0;
	if (c->bad || n > max) {
		c->bad = 1;
		return 0;
	}
	s = proto_cur_bytes(c, n);
	if (s && no_nul && n && __builtin_memchr(s, 0, n)) {
		c->bad = 1;
		return 0;
	}
	*len = n;
	return s;
}

/* FILL/VERIFY work on [PROTO_FILL_BASE, PROTO_FILL_BASE + mib MiB) of guest RAM. */
#define PROTO_FILL_BASE    (4ull << 20)

struct proto_fill_req {
	uint32_t mib;
	uint32_t reserved;
	uint64_t seed;
} __attribute__((packed));

struct proto_fill_resp {
	uint64_t base;
	uint64_t bytes;
	uint32_t zero_pages;
	uint32_t text_pages;
	uint32_t random_pages;
	uint32_t reserved;
} __attribute__((packed));

struct proto_verify_resp {
	uint64_t bad_pages;
	uint64_t first_bad_page;   /* page index from PROTO_FILL_BASE, or ~0 */
} __attribute__((packed));

struct proto_hash_req {
	uint64_t gpa;
	uint64_t len;
} __attribute__((packed));

struct proto_ticks_resp {
	uint64_t tsc;
	uint64_t ns;               /* guest clock (kvmclock) ns */
	uint64_t tsc_khz;
} __attribute__((packed));

/* deliberate faults */
#define PROTO_FAULT_TRIPLE     1   /* ud2 in ring 3 with no IDT entry: shutdown */
#define PROTO_FAULT_WILD_PORT  2   /* arg = port: 32-bit in, then out; reply = value read */
#define PROTO_FAULT_WILD_MMIO  3   /* arg = gpa: 32-bit read, then write; reply = value read */
#define PROTO_FAULT_PORT_FLOOD 4   /* arg = number of out instructions to port 0x2e0 */
#define PROTO_FAULT_HLT_CLI    5   /* hlt with interrupts off, forever */
#define PROTO_FAULT_GARBAGE    6   /* arg = bytes of non-frame garbage sent on COM2, then reply */
#define PROTO_FAULT_HUGE_FRAME 7   /* send a header claiming len = 0xffffffff, then reply */
#define PROTO_FAULT_SPIN_FOREVER 8 /* loop in ring 3 forever, never reply */
#define PROTO_FAULT_FRAME_FLOOD 9  /* arg = frames (0: forever): 4 KiB LOG frames and stale replies; reply = arg */
/* virtio-vsock attacks (the probe on vsock); docs/hardening.md says what each must do. */
#define PROTO_FAULT_VQ_LOOP    10  /* a TX descriptor that chains to itself, kicked; no reply */
#define PROTO_FAULT_VQ_WILD    11  /* arg = gpa: a TX buffer there (outside RAM, wrapping), kicked; no reply */
#define PROTO_FAULT_VQ_AVAIL_JUMP 12 /* TX avail.idx moved by more than the queue size, kicked; no reply */
#define PROTO_FAULT_NOTIFY_STORM 13 /* arg = QueueNotify writes to queues 0..7, then reply = arg */
#define PROTO_FAULT_VSOCK_BAD  14  /* packets with a bad op, type, length and tuple, then reply = 0 */
#define PROTO_FAULT_CREDIT_OVERRUN 15 /* arg bytes on this connection past the host's credit; no reply */
#define PROTO_FAULT_RX_STARVE  16  /* reply, then never give the host another RX buffer */

struct proto_fault_req {
	uint32_t kind;
	uint32_t reserved;
	uint64_t arg;
} __attribute__((packed));

/*
 * The probe's page fill pattern, shared so the host can check guest memory:
 * page i (from PROTO_FILL_BASE) with seed s is one of zero / text-like /
 * random, chosen by proto_mix(s ^ i) % 8: 0-2 zero, 3-5 text, 6-7 random.
 */
static inline uint64_t proto_mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* 64-bit hash over memory, 8 bytes at a time (tail bytewise), same on both sides. */
static inline uint64_t proto_hash64(const void *p, uint64_t len)
{
	const unsigned char *b = (const unsigned char *)p;
	uint64_t h = 0xcbf29ce484222325ull ^ len;
	uint64_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		__builtin_memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return proto_mix(h);
}

#endif
