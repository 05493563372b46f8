/* chan.h - the host end of the agent channel on COM2: READY, BOOT_TIME stages, request/reply with deadlines. */
#ifndef SNAPBOX_RUNTIME_CHAN_H
#define SNAPBOX_RUNTIME_CHAN_H

#include "kvm/mono.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/uart.h"
#include "kvm/vsock.h"
#include "proto/frame.h"
#include "snapbox.h"

struct chan {
	pthread_mutex_t req_lock;     /* held for a whole request: one outstanding at a time */
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* CLOCK_MONOTONIC */
	struct proto_parser parser;   /* fed under lock */
	struct uart *uart;            /* host -> guest bytes go into its RX queue */
	struct vsock *vsock;          /* when the guest's driver is up: one connection per request */
	bool ready;
	bool dead;                    /* the guest stopped; every wait ends */
	uint32_t next_id;
	uint32_t wait_id;             /* id of the one outstanding request, 0 if none */
	bool resp_have;
	uint16_t resp_flags;
	uint8_t *resp;                /* malloc'd copy of the reply payload */
	uint32_t resp_len;
	uint64_t stage_ns[SNAPBOX_STAGE_COUNT];
	bool stage_valid[SNAPBOX_STAGE_COUNT];
	uint64_t bad_boot_time;       /* malformed BOOT_TIME frames, ignored */
	uint64_t dropped;             /* replies nobody waited for, unknown unsolicited frames */
	uint64_t ready_ns;            /* CLOCK_MONOTONIC when READY arrived */
	void (*queued_fn)(void *);    /* chan_on_queued's one-shot hook, under lock */
	void *queued_arg;
};

/* Set up the channel over a UART (RX side). Returns 0 or -ENOMEM. */
int chan_init(struct chan *c, struct uart *uart);
void chan_fini(struct chan *c);

/*
 * Take the guest's frames on vsock too: unsolicited ones on the event port,
 * and every request over its own connection once the guest's driver is up.
 */
void chan_attach_vsock(struct chan *c, struct vsock *v);

/* Bytes the guest sent on COM2 (the UART's tx_fn). Runs on the vCPU thread. */
void chan_rx(void *opaque, const uint8_t *buf, size_t n);

/* The guest stopped: fail current and future waits with -ESHUTDOWN. */
void chan_mark_dead(struct chan *c);

/*
 * Wait until READY arrived (0), the guest died (-ESHUTDOWN) or the
 * CLOCK_MONOTONIC deadline deadline_ns passed (-ETIMEDOUT).
 */
int chan_wait_ready(struct chan *c, uint64_t deadline_ns);

/*
 * One request/reply exchange; see snapbox_request for the contract. On
 * vsock each request has its own connection, so callers on several threads
 * are served at once; on COM2 they are served one after another (req_lock).
 * Each gives up with -ETIMEDOUT at its own deadline, waiting time included.
 */
int chan_request(struct chan *c, uint16_t type, const void *payload, uint32_t len,
		 void **reply, uint32_t *reply_len, uint64_t deadline_ns);

/*
 * Run fn(arg) once, when the next request has been queued for the guest on
 * vsock and before its reply is awaited (on COM2, whose queue is the UART's
 * small FIFO, before it is sent). A restore uses it to wake a parked vCPU
 * only once its REFRESH is waiting for it: the guest then finds the
 * interrupt pending on entry instead of being woken from a halt.
 */
void chan_on_queued(struct chan *c, void (*fn)(void *), void *arg);

/* The hook set by chan_on_queued, taken (cleared) and run; nothing if none. */
void chan_run_queued(struct chan *c);

/*
 * True when no frame is half-parsed, no request is outstanding and vsock
 * is quiet (no connection, nothing owed, nothing unread in its TX queue):
 * the channel's state is then entirely in the guest and the device, and a
 * snapshot loses nothing. Call with the vCPU paused.
 */
bool chan_is_idle(struct chan *c);

/* chan_request's vsock path (chan_vsock.c); same contract. */
int chan_request_vsock(struct chan *c, uint16_t type, const void *payload, uint32_t len,
		       void **reply, uint32_t *reply_len, uint64_t deadline_ns);

/* The parser's counters: whole frames, bytes skipped resynchronising, oversize frames. */
void chan_get_stats(struct chan *c, uint64_t *frames, uint64_t *skipped, uint64_t *oversize);

/* A restored guest was past READY when captured: mark the fresh channel ready, now. */
void chan_mark_ready(struct chan *c);

/* READY's time and the BOOT_TIME stages received so far (arrays of SNAPBOX_STAGE_COUNT). */
void chan_get_boot(struct chan *c, uint64_t *ready_ns, uint64_t *stage_ns, bool *stage_valid);

#endif
