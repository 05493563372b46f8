/* common_agent.h - runs the guest agent on the host (test mode) behind the real host channel: chan, UART, socketpair or pty. */
#ifndef SNAPBOX_TESTS_COMMON_AGENT_H
#define SNAPBOX_TESTS_COMMON_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvm/uart.h"
#include "runtime/chan.h"
#include "tests/common_kvm.h"   /* tests_ms */

/*
 * The agent binary runs as a child process in test mode (no mounts, child
 * subreaper, exits at EOF). Host requests go through the production path:
 * chan_request queues the frame into a COM2-sized UART RX queue, a pump
 * thread drains that queue through the data register onto the socket (or
 * pty master), and a reader thread feeds the agent's bytes to chan_rx.
 */
enum tagent_mode {
	TAGENT_SOCKET,    /* test mode on a socketpair */
	TAGENT_PTY,       /* test mode on a pty, which the agent makes raw */
	TAGENT_PID1,      /* init mode: PID 1 of new PID and mount namespaces, on a socketpair */
};

struct tagent {
	pid_t pid;                    /* the agent; for TAGENT_PID1 the namespace's parent */
	pid_t agent_pid;              /* the agent as the host sees it */
	int fd;                       /* our end: socket or pty master */
	struct uart uart;
	struct chan chan;
	pthread_t pump, reader;
	atomic_bool stop;
	pthread_mutex_t wlock;        /* whole writes to fd: pump frames vs raw test bytes */
	bool started;
};

/* Path of the agent binary ($SNAPBOX_AGENT, default build/guest/agent). */
const char *tagent_path(void);

/*
 * Start the agent in `mode`, wait for READY (asserting it arrives within 5 s,
 * with all six BOOT_TIME stages). stall_ms is passed as --stall-ms. Skips the
 * test when the binary is missing and $SNAPBOX_AGENT is unset, or (PID1) when
 * this host refuses new namespaces.
 */
void tagent_start(struct tagent *t, enum tagent_mode mode, unsigned stall_ms);

/* Kill the agent (SIGKILL), join the threads, free the channel. Safe to call twice. */
void tagent_stop(struct tagent *t);

/* Write raw bytes to the agent, bypassing the channel (garbage tests). */
void tagent_raw(struct tagent *t, const void *buf, size_t n);

/* PING through the channel; returns chan_request's result. */
int tagent_ping(struct tagent *t, unsigned timeout_ms);

/* Zombie children of pid right now (state Z in /proc/<n>/stat). */
int tagent_zombies(pid_t parent);

/* Wait up to ms for /proc/<pid> to vanish (reaped); true if it did. */
bool tagent_wait_gone(pid_t pid, unsigned ms);

#endif
