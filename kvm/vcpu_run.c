/* vcpu_run.c - the vCPU thread: KVM_RUN loop, exit dispatch, and pause/resume/kill via immediate_exit plus a signal. */
#include "kvm/kvmcall.h"
#include "kvm/mono.h"
#include "kvm/vcpu.h"
#include "kvm/log.h"

#include "kvm/confine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

static int vcpu_kick_signal(void)
{
	return SIGRTMIN;
}

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* only here to make KVM_RUN return -EINTR */
}

static pthread_once_t vcpu_sig_once = PTHREAD_ONCE_INIT;
static int vcpu_sig_err;   /* the handler's installation, once per process: 0 or -errno */

static void vcpu_install_kick(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vcpu_kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the point is to interrupt KVM_RUN. Without the
	 * handler the first kick's default action would kill the process. */
	if (sigaction(vcpu_kick_signal(), &sa, NULL) < 0) {
		vcpu_sig_err = -errno;
		log_msg("snapbox: cannot install the vCPU kick signal handler: %s\n",
			strerror(errno));
	}
}

const char *vcpu_stop_name(enum vcpu_stop why)
{
	switch (why) {
	case VCPU_STOP_NONE: return "running";
	case VCPU_STOP_RESET: return "guest reset";
	case VCPU_STOP_SHUTDOWN: return "triple fault (KVM_EXIT_SHUTDOWN)";
	case VCPU_STOP_POWEROFF: return "guest power-off";
	case VCPU_STOP_CRASH: return "guest crash event";
	case VCPU_STOP_HLT: return "guest halted";
	case VCPU_STOP_INTERNAL_ERROR: return "KVM internal error";
	case VCPU_STOP_FAIL_ENTRY: return "VM entry failed";
	case VCPU_STOP_UNHANDLED: return "unhandled exit";
	case VCPU_STOP_ERROR: return "KVM_RUN failed";
	case VCPU_STOP_KILLED: return "stopped by host";
	}
	return "unknown";
}

void vcpu_request_stop(struct vcpu *v, enum vcpu_stop why)
{
	if (v->pending_stop == VCPU_STOP_NONE)
		v->pending_stop = why;
}

enum vcpu_run_state vcpu_get_state(struct vcpu *v)
{
	enum vcpu_run_state s;

	pthread_mutex_lock(&v->lock);
	s = v->state;
	pthread_mutex_unlock(&v->lock);
	return s;
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;
	uint64_t total = (uint64_t)r->io.size * r->io.count;

	/* KVM puts the data inside the mapping; refuse anything that would leave it. */
	if (r->io.data_offset >= v->run_size || total > v->run_size - r->io.data_offset) {
		vcpu_request_stop(v, VCPU_STOP_UNHANDLED);
		return;
	}
	atomic_fetch_add(&v->io_exits, 1);
	bus_access(v->pio, r->io.port, data, r->io.size, r->io.count,
		   r->io.direction == KVM_EXIT_IO_OUT);
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint32_t len = r->mmio.len;

	if (len == 0 || len > sizeof(r->mmio.data))
		len = sizeof(r->mmio.data);
	atomic_fetch_add(&v->mmio_exits, 1);
	bus_access(v->mmio, r->mmio.phys_addr, r->mmio.data, len, 1, r->mmio.is_write);
}

/* Append where the guest was to stop_detail, for fatal exits only (costs ioctls). */
static void vcpu_note_location(struct vcpu *v)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	size_t len = strlen(v->stop_detail);

	if (kvmcall(v->fd, KVM_GET_REGS, &regs) < 0 || kvmcall(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return;
	snprintf(v->stop_detail + len, sizeof(v->stop_detail) - len,
		 "%sat rip=0x%llx rsp=0x%llx cs=0x%x cr0=0x%llx cr3=0x%llx",
		 len ? " " : "", (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
		 sregs.cs.selector, (unsigned long long)sregs.cr0, (unsigned long long)sregs.cr3);
}

/* One exit: returns a stop reason, or VCPU_STOP_NONE to keep running. */
static enum vcpu_stop vcpu_dispatch(struct vcpu *v)
{
	struct kvm_run *r = v->run;

	switch (r->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return VCPU_STOP_NONE;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(v);
		return VCPU_STOP_NONE;
	case KVM_EXIT_INTR:
		return VCPU_STOP_NONE;
	case KVM_EXIT_HLT:
		return VCPU_STOP_HLT;
	case KVM_EXIT_SHUTDOWN:
		return VCPU_STOP_SHUTDOWN;
	case KVM_EXIT_SYSTEM_EVENT:
		snprintf(v->stop_detail, sizeof(v->stop_detail), "system event type %u",
			 r->system_event.type);
		if (r->system_event.type == KVM_SYSTEM_EVENT_RESET)
			return VCPU_STOP_RESET;
		if (r->system_event.type == KVM_SYSTEM_EVENT_CRASH)
			return VCPU_STOP_CRASH;
		return VCPU_STOP_POWEROFF;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(v->stop_detail, sizeof(v->stop_detail), "suberror %u",
			 r->internal.suberror);
		return VCPU_STOP_INTERNAL_ERROR;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(v->stop_detail, sizeof(v->stop_detail), "hardware reason 0x%llx",
			 (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
		return VCPU_STOP_FAIL_ENTRY;
	default:
		snprintf(v->stop_detail, sizeof(v->stop_detail), "exit reason %u", r->exit_reason);
		return VCPU_STOP_UNHANDLED;
	}
}

/*
 * Park until resumed or killed. Called only right after a KVM_RUN that
 * returned -EINTR, so KVM has completed any pending I/O and the register
 * state seen by a snapshot is consistent.
 */
static void vcpu_park(struct vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	v->state = VCPU_PAUSED;
	pthread_cond_broadcast(&v->cond);
	while (atomic_load(&v->pause_req) && !atomic_load(&v->kill_req))
		pthread_cond_wait(&v->cond, &v->lock);
	if (!atomic_load(&v->kill_req)) {
		v->state = VCPU_RUNNING;
		v->run->immediate_exit = 0;
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void vcpu_exit_for_good(struct vcpu *v, enum vcpu_stop why)
{
	pthread_mutex_lock(&v->lock);
	v->stop_reason = why;
	v->state = VCPU_EXITED;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	if (why != VCPU_STOP_KILLED && v->stop_fn)
		v->stop_fn(v->stop_opaque, why);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, vcpu_kick_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Before the first guest instruction: from here on every byte we handle is the guest's. */
	if (confine_thread(CONFINE_VCPU)) {
		vcpu_exit_for_good(v, VCPU_STOP_ERROR);
		return NULL;
	}
	/* Started parked (vcpu_start_parked): wait, confined, without ever
	 * entering KVM_RUN, so the vCPU's state can still be loaded. */
	if (atomic_load(&v->pause_req))
		vcpu_park(v);

	for (;;) {
		enum vcpu_stop why;

		if (atomic_load(&v->kill_req)) {
			vcpu_exit_for_good(v, VCPU_STOP_KILLED);
			return NULL;
		}
		if (v->pending_stop != VCPU_STOP_NONE) {
			vcpu_exit_for_good(v, v->pending_stop);
			return NULL;
		}
		if (atomic_load(&v->pause_req)) {
			/* Re-enter once with immediate_exit set: KVM finishes the
			 * pending I/O of the last exit, runs no guest code, and
			 * returns -EINTR. Only then is the state safe to read. */
			v->run->immediate_exit = 1;
			if (kvmcall(v->fd, KVM_RUN, 0) < 0 && errno != EINTR) {
				vcpu_exit_for_good(v, VCPU_STOP_ERROR);
				return NULL;
			}
			vcpu_park(v);
			continue;
		}
		if (atomic_load(&v->first_run_ns) == 0)
			atomic_store(&v->first_run_ns, mono_now_ns());
		if (kvmcall(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(v->stop_detail, sizeof(v->stop_detail), "%s", strerror(errno));
			vcpu_exit_for_good(v, VCPU_STOP_ERROR);
			return NULL;
		}
		atomic_fetch_add(&v->exits, 1);
		why = vcpu_dispatch(v);
		if (why == VCPU_STOP_SHUTDOWN || why == VCPU_STOP_INTERNAL_ERROR ||
		    why == VCPU_STOP_FAIL_ENTRY || why == VCPU_STOP_UNHANDLED)
			vcpu_note_location(v);
		if (why != VCPU_STOP_NONE)
			vcpu_request_stop(v, why);
	}
}

int vcpu_start(struct vcpu *v, struct bus *pio, struct bus *mmio,
	       vcpu_stop_fn stop_fn, void *opaque)
{
	sigset_t set, old;
	int ret;

	pthread_once(&vcpu_sig_once, vcpu_install_kick);
	if (vcpu_sig_err)
		return vcpu_sig_err;
	v->pio = pio;
	v->mmio = mmio;
	v->stop_fn = stop_fn;
	v->stop_opaque = opaque;
	v->state = VCPU_RUNNING;
	/* The new thread starts with the kick signal blocked and unblocks it
	 * itself, so no kick can arrive before it is ready to handle one. */
	sigemptyset(&set);
	sigaddset(&set, vcpu_kick_signal());
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = -pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		v->state = VCPU_CREATED;
		log_msg("snapbox: cannot start vCPU thread: %s\n", strerror(-ret));
		return ret;
	}
	v->thread_started = true;
	return 0;
}

int vcpu_start_parked(struct vcpu *v, struct bus *pio, struct bus *mmio,
		      vcpu_stop_fn stop_fn, void *opaque)
{
	int ret;

	/* Set before the thread exists, so its first look sees it. */
	atomic_store(&v->pause_req, true);
	ret = vcpu_start(v, pio, mmio, stop_fn, opaque);
	if (ret) {
		atomic_store(&v->pause_req, false);
		return ret;
	}
	pthread_mutex_lock(&v->lock);
	while (v->state == VCPU_RUNNING)
		pthread_cond_wait(&v->cond, &v->lock);
	ret = v->state == VCPU_PAUSED ? 0 : -EPERM;   /* EXITED: it could not confine itself */
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* Make KVM_RUN return now: immediate_exit covers a thread about to enter, the signal one inside. */
static void vcpu_kick(struct vcpu *v)
{
	v->run->immediate_exit = 1;
	pthread_kill(v->thread, vcpu_kick_signal());
}

#define VCPU_PAUSE_SLICE_MS 50u   /* re-kick period while a pause waits */

static void vcpu_deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int vcpu_pause(struct vcpu *v, unsigned timeout_ms)
{
	struct timespec dl;
	int ret = 0;

	if (!v->thread_started)
		return -ESRCH;
	vcpu_deadline(&dl, timeout_ms);
	pthread_mutex_lock(&v->lock);
	if (v->state == VCPU_EXITED) {
		pthread_mutex_unlock(&v->lock);
		return -ESRCH;
	}
	atomic_store(&v->pause_req, true);
	vcpu_kick(v);
	while (v->state == VCPU_RUNNING && ret == 0) {
		struct timespec slice;
		bool last;

		/* Kicked again every slice: a signal that landed while the thread
		 * was outside KVM_RUN (in a device handler) is gone by the time it
		 * re-enters, and immediate_exit alone covers only the next entry. */
		vcpu_deadline(&slice, VCPU_PAUSE_SLICE_MS);
		last = slice.tv_sec > dl.tv_sec || (slice.tv_sec == dl.tv_sec && slice.tv_nsec >= dl.tv_nsec);
		if (pthread_cond_timedwait(&v->cond, &v->lock, last ? &dl : &slice) != ETIMEDOUT ||
		    v->state != VCPU_RUNNING)
			continue;
		if (last)
			ret = -ETIMEDOUT;
		else
			vcpu_kick(v);
	}
	if (ret == -ETIMEDOUT) {
		/* A pause that gave up must not stay armed: the vCPU (stuck in a
		 * handler, say) would park whenever it came back, with nobody left
		 * to resume it, and the guest would be frozen for good. Under the
		 * lock, so vcpu_park sees either the request or its withdrawal. */
		atomic_store(&v->pause_req, false);
		v->run->immediate_exit = 0;
		pthread_cond_broadcast(&v->cond);
	}
	if (ret == 0 && v->state == VCPU_EXITED)
		ret = -ESRCH;
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int vcpu_resume(struct vcpu *v)
{
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	if (v->state != VCPU_PAUSED)
		ret = -EINVAL;
	atomic_store(&v->pause_req, false);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void vcpu_kill(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->kill_req, true);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	if (v->run)
		vcpu_kick(v);
	pthread_join(v->thread, NULL);
	v->thread_started = false;
}
