/* proto_wire.h - the agent/probe frame format shared by host and guests (docs/agent-protocol.md). */
#ifndef SNAPBOX_PROTO_WIRE_H
#define SNAPBOX_PROTO_WIRE_H

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

/* Payload caps. The host never allocates more than PROTO_MAX_PAYLOAD for a frame. */
#define PROTO_MAX_PAYLOAD  (1u << 20)
#define PROTO_PROBE_MAX_PAYLOAD  (64u << 10)

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
