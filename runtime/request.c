/* request.c - the running sandbox's public calls: requests to its guest, status, statistics, exit codes. */
#include "kvm/mono.h"
#include <errno.h>
#include "kvm/log.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/confine.h"
#include "runtime/sandbox_internal.h"

const char *snapbox_stop_reason(struct snapbox *sb)
{
	static __thread char buf[256];
	enum vcpu_run_state st = vcpu_get_state(&sb->vcpu);

	if (st != VCPU_EXITED)
		return "running";
	if (sb->vcpu.stop_detail[0])
		snprintf(buf, sizeof(buf), "%s: %s", vcpu_stop_name(sb->vcpu.stop_reason),
			 sb->vcpu.stop_detail);
	else
		snprintf(buf, sizeof(buf), "%s", vcpu_stop_name(sb->vcpu.stop_reason));
	return buf;
}

int sandbox_lazy_check(struct snapbox *sb)
{
	if (!sb->lazy || !atomic_load(&sb->lazy->errors))
		return 0;
	if (!sb->lazy_reported)
		log_msg("snapbox: guest memory failed its checksum during a lazy "
			"restore; the sandbox is not trustworthy\n");
	sb->lazy_reported = true;
	return -EIO;
}

int snapbox_request(struct snapbox *sb, uint16_t type, const void *payload,
		    uint32_t len, void **reply, uint32_t *reply_len, unsigned timeout_ms)
{
	int ret = chan_request(&sb->chan, type, payload, len, reply, reply_len,
			       mono_now_ns() + (uint64_t)timeout_ms * 1000000ull);

	/* Checked after the reply: serving the request may be what touched the bad chunk. */
	if (sandbox_lazy_check(sb)) {
		free(*reply);
		*reply = NULL;
		*reply_len = 0;
		return -EIO;
	}
	return ret;
}

int snapbox_ping(struct snapbox *sb, unsigned timeout_ms)
{
	uint32_t n;
	void *r;
	int ret = snapbox_request(sb, PROTO_T_PING, NULL, 0, &r, &n, timeout_ms);

	free(r);
	return ret;
}

void snapbox_channel_stats(struct snapbox *sb, uint64_t *frames, uint64_t *skipped,
			   uint64_t *oversize)
{
	chan_get_stats(&sb->chan, frames, skipped, oversize);
}

uint64_t snapbox_unknown_accesses(struct snapbox *sb)
{
	return sb->pio.unknown_accesses + sb->mmio.unknown_accesses;
}

int snapbox_exit_code(int err)
{
	switch (err) {
	case 0:
		return SNAPBOX_EXIT_OK;
	case -ENODEV:
		return SNAPBOX_EXIT_KVM;
	case -ETIMEDOUT:
	case -ESHUTDOWN:
	case -EREMOTEIO:
	case -ECANCELED:             /* a pre-warm command failed in the guest */
		return SNAPBOX_EXIT_GUEST;
	case -ENOTSUP:
	case -ENOMEM:
	case -EBUSY:
	case -EIO:
	case -EAGAIN:
	case -ENOSPC:
	case -EDQUOT:
	case -EMFILE:
	case -ENFILE:
	case -EPERM:
		return SNAPBOX_EXIT_HOST;
	default:
		return SNAPBOX_EXIT_INPUT;
	}
}

int snapbox_drop_privileges(bool keep_lazy)
{
	return confine_process(keep_lazy);
}

int snapbox_read_guest(struct snapbox *sb, uint64_t gpa, void *buf, uint64_t len)
{
	return gmem_read(&sb->mem, gpa, buf, len);
}

int snapbox_probe_fill(struct snapbox *sb, uint32_t mib, uint64_t seed, unsigned timeout_ms)
{
	struct proto_fill_req req = { .mib = mib, .seed = seed };
	uint32_t n;
	void *r;
	int ret = snapbox_request(sb, PROTO_T_FILL, &req, sizeof(req), &r, &n, timeout_ms);

	if (ret == -EREMOTEIO)
		log_msg("snapbox: the guest refused to fill %u MiB: %.*s\n", mib, (int)n,
			(const char *)r);
	free(r);
	return ret;
}
