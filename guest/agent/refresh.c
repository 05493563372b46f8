/* refresh.c - the agent's REFRESH: every restored clone gets fresh kernel entropy and the host's wall clock before it serves anyone. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent/agent.h"
#include "proto/le.h"
#include "proto/wire.h"

/*
 * Credit the host's bytes as entropy and force a reseed. Why credit, and why
 * the reseed: clones of one snapshot share the CRNG's state, and mixing bytes
 * in without a reseed leaves the next outputs of every clone the same until
 * the kernel reseeds on its own schedule (up to a minute later).
 */
static int agent_reseed(const uint8_t *bytes, uint32_t n)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[PROTO_REFRESH_MAX_ENTROPY];
	} e;
	int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	e.info.entropy_count = (int)(n * 8);
	e.info.buf_size = (int)n;
	memcpy(e.buf, bytes, n);
	if (ioctl(fd, RNDADDENTROPY, &e) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		ret = -errno;
	explicit_bzero(&e, sizeof(e));
	close(fd);
	return ret;
}

void agent_refresh(struct agent *a, const struct proto_hdr *h, const uint8_t *payload)
{
	uint64_t ns;
	uint32_t n;
	struct timespec ts;
	int ret;

	if (h->len < PROTO_REFRESH_HDR) {
		agent_reply_err(a, h, EINVAL, "refresh: %u bytes is too short", h->len);
		return;
	}
	ns = le_get64(payload);
	n = le_get32(payload + 8);
	if (n < PROTO_REFRESH_MIN_ENTROPY || n > PROTO_REFRESH_MAX_ENTROPY ||
	    h->len != PROTO_REFRESH_HDR + n) {
		agent_reply_err(a, h, EINVAL, "refresh: bad entropy length %u", n);
		return;
	}
	/* A test process (not PID 1) must not reseed or set the clock of the machine it runs on. */
	if (!a->init_mode) {
		agent_reply(a, h, NULL, 0);
		return;
	}
	ret = agent_reseed(payload + PROTO_REFRESH_HDR, n);
	if (ret) {
		agent_reply_err(a, h, -ret, "refresh: reseeding the kernel RNG: %s", strerror(-ret));
		return;
	}
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
		agent_reply_err(a, h, errno, "refresh: setting the clock: %s", strerror(errno));
		return;
	}
	agent_reply(a, h, NULL, 0);
}
