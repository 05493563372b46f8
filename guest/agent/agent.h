/* agent.h - the guest agent (PID 1 of the Linux guest): shared state and the handlers' entry points. */
#ifndef SNAPBOX_GUEST_AGENT_H
#define SNAPBOX_GUEST_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "proto/frame.h"

#define AGENT_DEFAULT_DEV   "/dev/ttyS1"
#define AGENT_DEFAULT_PATH  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define AGENT_STALL_MS      2000   /* a frame that stops arriving mid-way is dropped after this */
#define AGENT_NSTAGES       6

#define AGENT_USER_MAX_GROUPS 64

/* Who an EXEC runs as (guest/agent/user.c). */
struct agent_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[AGENT_USER_MAX_GROUPS];   /* the primary group first */
	int ngroups;
	char name[65];
	char home[256];
};

struct agent {
	int fd;                  /* the channel: a vsock connection, /dev/ttyS1 (raw) or an inherited socket/pty */
	int sigfd;               /* signalfd for SIGCHLD */
	bool init_mode;          /* PID 1: mount, never exit; otherwise a test process */
	unsigned stall_ms;
	struct proto_parser parser;
	uint64_t stage_ns[AGENT_NSTAGES];
	/* the one command being run by EXEC, so the reaper can hand its status over */
	pid_t exec_pid;
	bool exec_reaped;
	int exec_status;
	/* statistics */
	uint64_t stalled_frames;
	uint64_t send_errors;
};

/* CLOCK_MONOTONIC in ns. */
uint64_t agent_now_ns(void);

/*
 * Send one frame made of the payload pieces iov[0..n). Writes everything or
 * fails: returns 0 or -errno (counted, logged once per kind of failure).
 */
int agent_send(struct agent *a, uint16_t type, uint16_t flags, uint32_t id,
	       const struct iovec *iov, int n);

/* Reply with the payload buf (len bytes). */
int agent_reply(struct agent *a, const struct proto_hdr *req, const void *buf, size_t len);

/* Error reply "<err> <reason>" (err a positive errno; the reason printf-style). */
int agent_reply_err(struct agent *a, const struct proto_hdr *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Reap every exited child (WNOHANG); the EXEC child's status is kept in a. */
void agent_reap(struct agent *a);

/* Drain the signalfd, then reap. */
void agent_on_sigchld(struct agent *a);

/* Request handlers: each sends exactly one reply (or error reply). */
void agent_exec(struct agent *a, const struct proto_hdr *h, const uint8_t *payload);
void agent_write_file(struct agent *a, const struct proto_hdr *h, const uint8_t *payload);
void agent_read_file(struct agent *a, const struct proto_hdr *h, const uint8_t *payload);
/* REFRESH: mix the host's entropy into the kernel pool, reseed the CRNG, set the wall clock. */
void agent_refresh(struct agent *a, const struct proto_hdr *h, const uint8_t *payload);

/*
 * Resolve exec's user: a name from /etc/passwd, or UID or UID:GID (a UID
 * with an entry takes its name, home and groups; one without runs as
 * itself, gid = uid, home /). Supplementary groups come from /etc/group.
 * Returns 0, -EINVAL (malformed) or -ESRCH (no such name), *why set.
 */
int agent_user_lookup(const char *spec, struct agent_user *u, const char **why);

/*
 * In the exec child: become u (groups, gid, then uid) and add HOME, USER
 * and LOGNAME to environ where it has none. Returns 0 or -errno.
 */
int agent_user_switch(const struct agent_user *u);

/*
 * PID 1's set-up before the channel opens: mounts /proc, /sys, devtmpfs,
 * /tmp, /dev/shm and /dev/pts, links /dev/fd and /dev/std*, sets the
 * hostname (/etc/hostname, else "snapbox") and brings lo up. Failures are
 * logged and skipped: a guest without one of them still answers.
 */
void agent_sysinit(void);

/*
 * virtio-vsock (guest/agent/vsock.c): a listening socket on
 * PROTO_VSOCK_AGENT_PORT and a connection to the host's
 * PROTO_VSOCK_EVENT_PORT, each a descriptor or -errno.
 */
int agent_vsock_listen(void);
int agent_vsock_connect_host(void);

/* Log one line to stderr (the console when PID 1). */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
