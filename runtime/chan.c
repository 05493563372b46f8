/* chan.c - frame dispatch for the agent channel and the host's request/reply waits. */
#include "kvm/mono.h"
#include "runtime/chan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void chan_abstime(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* Parser callback, under c->lock on the vCPU thread. Nothing here trusts the guest. */
static void chan_on_frame(void *opaque, const struct proto_hdr *h, const uint8_t *payload)
{
	struct chan *c = opaque;
	enum snapbox_stage st;
	uint64_t ns;

	if (h->flags & PROTO_F_RESP) {
		if (c->wait_id == 0 || h->id != c->wait_id || c->resp_have) {
			c->dropped++;
			return;
		}
		c->resp = malloc(h->len ? h->len : 1);
		if (!c->resp) {
			c->dropped++;
			return;
		}
		memcpy(c->resp, payload, h->len);
		c->resp_len = h->len;
		c->resp_flags = h->flags;
		c->resp_have = true;
		pthread_cond_broadcast(&c->cond);
		return;
	}
	switch (h->type) {
	case PROTO_T_READY:
		if (!c->ready) {
			c->ready = true;
			c->ready_ns = mono_now_ns();
			pthread_cond_broadcast(&c->cond);
		}
		break;
	case PROTO_T_BOOT_TIME:
		if (snapbox_parse_boot_time((const char *)payload, h->len, &st, &ns) == 0) {
			c->stage_ns[st] = ns;
			c->stage_valid[st] = true;
		} else {
			c->bad_boot_time++;
		}
		break;
	case PROTO_T_LOG:
		break;
	default:
		c->dropped++;
		break;
	}
}

int chan_init(struct chan *c, struct uart *uart)
{
	pthread_condattr_t ca;
	int ret;

	memset(c, 0, sizeof(*c));
	c->uart = uart;
	c->next_id = 1;
	ret = proto_parser_init(&c->parser, PROTO_MAX_PAYLOAD, chan_on_frame, c);
	if (ret)
		return ret;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->req_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void chan_fini(struct chan *c)
{
	proto_parser_fini(&c->parser);
	free(c->resp);
	c->resp = NULL;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->req_lock);
	pthread_mutex_destroy(&c->lock);
}

void chan_rx(void *opaque, const uint8_t *buf, size_t n)
{
	struct chan *c = opaque;

	pthread_mutex_lock(&c->lock);
	proto_parser_feed(&c->parser, buf, n);
	pthread_mutex_unlock(&c->lock);
}

void chan_mark_dead(struct chan *c)
{
	pthread_mutex_lock(&c->lock);
	c->dead = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->vsock)
		vsock_mark_dead(c->vsock);
}

int chan_wait_ready(struct chan *c, uint64_t deadline_ns)
{
	struct timespec ts;
	int ret = 0;

	chan_abstime(&ts, deadline_ns);
	pthread_mutex_lock(&c->lock);
	while (!c->ready && !c->dead && ret == 0)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	if (c->ready)
		ret = 0;
	else if (c->dead)
		ret = -ESHUTDOWN;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Queue a whole frame on the UART, waiting for RX space until the deadline. */
static int chan_send(struct chan *c, const uint8_t *frame, size_t n, uint64_t deadline_ns)
{
	for (;;) {
		int ret = uart_rx_push(c->uart, frame, n);

		if (ret != -ENOSPC)
			return ret;
		if (n > c->uart->rx_cap)
			return -EMSGSIZE;
		if (mono_now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		/* The guest drains the queue at its own pace; poll briefly. */
		usleep(200);
	}
}

void chan_on_queued(struct chan *c, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->queued_fn = fn;
	c->queued_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

void chan_run_queued(struct chan *c)
{
	pthread_mutex_lock(&c->lock);
	void (*fn)(void *) = c->queued_fn;
	void *arg = c->queued_arg;
	c->queued_fn = NULL;
	pthread_mutex_unlock(&c->lock);
	if (fn)
		fn(arg);
}

int chan_request(struct chan *c, uint16_t type, const void *payload, uint32_t len,
		 void **reply, uint32_t *reply_len, uint64_t deadline_ns)
{
	size_t cap = (size_t)PROTO_HDR_SIZE + len;
	struct timespec ts;
	uint8_t *frame;
	uint32_t id;
	long flen;
	int ret = 0;

	*reply = NULL;
	*reply_len = 0;
	if (c->vsock && vsock_guest_spoke(c->vsock)) {
		pthread_mutex_lock(&c->lock);
		bool dead = c->dead;
		pthread_mutex_unlock(&c->lock);
		return dead ? -ESHUTDOWN :
		       chan_request_vsock(c, type, payload, len, reply, reply_len, deadline_ns);
	}
	/* One request at a time on the channel (it tracks one reply id): a
	 * caller on another thread waits its turn, within its own deadline. */
	chan_abstime(&ts, deadline_ns);
	if (pthread_mutex_clocklock(&c->req_lock, CLOCK_MONOTONIC, &ts) != 0)
		return -ETIMEDOUT;
	frame = malloc(cap);
	if (!frame) {
		pthread_mutex_unlock(&c->req_lock);
		return -ENOMEM;
	}
	pthread_mutex_lock(&c->lock);
	if (c->dead) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->req_lock);
		free(frame);
		return -ESHUTDOWN;
	}
	id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	/* Register the id before sending so a fast reply cannot be dropped. */
	c->wait_id = id;
	c->resp_have = false;
	pthread_mutex_unlock(&c->lock);

	flen = proto_encode(frame, cap, type, 0, id, payload, len);
	chan_run_queued(c);   /* the UART's FIFO is drained by a running guest only */
	ret = flen < 0 ? (int)flen : chan_send(c, frame, (size_t)flen, deadline_ns);
	free(frame);

	chan_abstime(&ts, deadline_ns);
	pthread_mutex_lock(&c->lock);
	while (ret == 0 && !c->resp_have && !c->dead)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	if (c->resp_have) {
		*reply = c->resp;
		*reply_len = c->resp_len;
		ret = (c->resp_flags & PROTO_F_ERR) ? -EREMOTEIO : 0;
		c->resp = NULL;
		c->resp_have = false;
	} else if (ret == 0) {
		ret = -ESHUTDOWN;
	}
	c->wait_id = 0;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->req_lock);
	return ret;
}

bool chan_is_idle(struct chan *c)
{
	bool idle;

	pthread_mutex_lock(&c->lock);
	idle = !c->parser.in_payload && c->parser.hdr_have == 0 && c->wait_id == 0;
	pthread_mutex_unlock(&c->lock);
	return idle && (!c->vsock || vsock_is_quiet(c->vsock));
}

void chan_get_stats(struct chan *c, uint64_t *frames, uint64_t *skipped, uint64_t *oversize)
{
	pthread_mutex_lock(&c->lock);
	*frames = c->parser.frames;
	*skipped = c->parser.skipped_bytes;
	*oversize = c->parser.oversize;
	pthread_mutex_unlock(&c->lock);
}

void chan_mark_ready(struct chan *c)
{
	pthread_mutex_lock(&c->lock);
	c->ready = true;
	c->ready_ns = mono_now_ns();
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void chan_get_boot(struct chan *c, uint64_t *ready_ns, uint64_t *stage_ns, bool *stage_valid)
{
	pthread_mutex_lock(&c->lock);
	*ready_ns = c->ready_ns;
	memcpy(stage_ns, c->stage_ns, sizeof(c->stage_ns));
	memcpy(stage_valid, c->stage_valid, sizeof(c->stage_valid));
	pthread_mutex_unlock(&c->lock);
}
