/* agent.h - host side of the agent's EXEC, WRITE_FILE and READ_FILE requests over a channel (internal). */
#ifndef SNAPBOX_RUNTIME_AGENT_H
#define SNAPBOX_RUNTIME_AGENT_H

#include <stdint.h>

#include "runtime/chan.h"
#include "snapbox.h"

/*
 * Encode an EXEC request payload (docs/agent-protocol.md) for o with the
 * given (already defaulted) caps and timeout. Returns 0 with a malloc'd
 * *buf of *len bytes, -EINVAL for a malformed request (empty argv, env entry
 * without '=', relative cwd, NUL-free limits exceeded) or -E2BIG when it would
 * exceed a protocol cap. Logs why.
 */
int agentreq_exec_encode(const struct snapbox_exec_opts *o, uint32_t timeout_ms,
			 uint32_t out_cap, uint32_t err_cap, uint8_t **buf, uint32_t *len);

/*
 * Decode an EXEC reply of n bytes from the (hostile) guest, checking every
 * field against the caps the request asked for. Returns 0 with r filled
 * (free with snapbox_exec_result_free) or -EPROTO (logged) for anything
 * malformed, -ENOMEM.
 */
int agentreq_exec_decode(const uint8_t *p, uint32_t n, uint32_t out_cap, uint32_t err_cap,
			 struct snapbox_exec_result *r);

/*
 * Turn an agent error reply ("<errno> <reason>") into a negative errno:
 * well-known file and exec errors (ENOENT, EACCES, ELOOP, EFBIG, ...) map to
 * themselves, anything else to -EREMOTEIO. Logs the (sanitised) reason.
 */
int agentreq_guest_error(const char *what, const void *reply, uint32_t len);

/* The requests themselves, on a channel; contracts as snapbox_exec & co. */
int agentreq_exec(struct chan *c, const struct snapbox_exec_opts *o, struct snapbox_exec_result *r);
int agentreq_write_file(struct chan *c, const char *path, uint32_t mode, const void *data,
			size_t len, unsigned timeout_ms);
/* The same with WRITE_FILE flags (PROTO_WRITE_F_MKDIRS: create missing parents, 0755). */
int agentreq_write_file_flags(struct chan *c, const char *path, uint32_t mode, uint32_t flags,
			      const void *data, size_t len, unsigned timeout_ms);
int agentreq_read_file(struct chan *c, const char *path, size_t max, void **data, size_t *len,
		       unsigned timeout_ms);

#endif
