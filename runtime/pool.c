/* pool.c - the shell pool: pre-built VM shells for one snapshot (warm clones by default), refilled in the background. */
#include "kvm/mono.h"
#include <errno.h>
#include "kvm/log.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/counts.h"
#include "runtime/restore.h"
#include "runtime/template.h"

#define POOL_DEFAULT_SIZE 2u
#define POOL_MAX_SIZE     64u

struct snapbox_pool {
	struct restore_snap snap;
	struct snapbox_pool_opts opts;
	unsigned threads;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* signalled when a shell is taken or stop is set */
	struct snapbox *ready[POOL_MAX_SIZE];
	unsigned nready;
	bool stop;
	bool have_thread;
	pthread_t thread;
	struct snapbox_pool_stats stats;
	bool warm_failed;             /* a warm-up failed: later shells are built cold */
};

/*
 * Make a new shell warm: restore the snapshot's state into it, resume the
 * guest and put it through one REFRESH and PING, exactly what a request
 * does, so the pages a request touches are already mapped in this process
 * and in KVM's MMU (on KVM-PVM each first touch of a page costs the clone an
 * exit of about 25 us; a request on a cold shell took 23 of them). Then the
 * vCPU is parked (paused): a pooled clone uses no CPU, its guest's timers do
 * not run, and the request wakes it only once its REFRESH is queued
 * (restore_resume). It is no one's yet: refresh_pending is set again, so the
 * request sends the clone's own REFRESH (fresh entropy and clock) before
 * anything else. Returns 0 or -errno; the shell is then unusable. *guest
 * says whether the guest was what failed (it did not answer its REFRESH or
 * PING), as opposed to the host (memory, a pause, the pool stopping).
 */
static int pool_warm(struct snapbox_pool *p, struct snapbox *sb, bool *guest)
{
	const struct snapbox_restore_opts o = { .resume = true, .ping = true, .console_fd = -1 };
	struct snapbox_restore_profile ignore;
	int ret;

	*guest = false;
	memset(&ignore, 0, sizeof(ignore));
	ret = restore_state(sb, &p->snap, p->opts.mode, true, p->threads, &ignore);
	/* A pool being destroyed does not wait for a guest it will throw away. */
	pthread_mutex_lock(&p->lock);
	if (!ret && p->stop)
		ret = -ECANCELED;
	pthread_mutex_unlock(&p->lock);
	if (ret)
		goto out;
	sb->warm = true;
	ret = restore_resume(sb, &o, mono_now_ns(), &ignore);
	if (ret) {
		*guest = true;   /* logged by restore_resume */
		goto out;
	}
	ret = vcpu_pause(&sb->vcpu, snapbox_scaled_ms(5000));
	/* The clone may stay parked for minutes: its guest must not take that
	 * for a hung CPU when it runs again. */
	if (!ret)
		ret = vcpu_mark_stopped(&sb->vcpu);
	if (ret)
		log_msg("snapbox: pool: parking a warm shell's vCPU: %s\n", strerror(-ret));
out:
	sb->refresh_pending = true;
	return ret;
}

/*
 * One shell, built outside the pool lock (it costs milliseconds of ioctls),
 * warm when asked: a new shell, or NULL with *err set to the failure's own
 * errno.
 */
static struct snapbox *pool_build_shell(struct snapbox_pool *p, bool warm, int *err)
{
	struct snapbox_restore_profile ignore;
	struct snapbox *sb = calloc(1, sizeof(*sb));
	int ret;

	*err = -ENOMEM;
	if (!sb)
		return NULL;
	sb->console_fd = -1;
	memset(&ignore, 0, sizeof(ignore));
	ret = restore_shell(sb, &p->snap, p->opts.mode, p->opts.cache_dir, p->threads, &ignore);
	if (!ret && warm) {
		bool guest;

		ret = pool_warm(p, sb, &guest);
		if (ret && guest) {
			/* A snapshot whose clones do not answer is reported by
			 * requests, on cold shells: do not spend a deadline on
			 * every refill. A host-side failure only loses this shell. */
			log_msg("snapbox: pool: a warm-up of a new shell failed; this pool's shells are "
				"built cold from now on\n");
			pthread_mutex_lock(&p->lock);
			p->warm_failed = true;
			pthread_mutex_unlock(&p->lock);
		}
	}
	if (ret) {
		sandbox_free(sb);
		*err = ret;
		return NULL;
	}
	*err = 0;
	return sb;
}

static void *pool_refill(void *arg)
{
	struct snapbox_pool *p = arg;

	/*
	 * Normal scheduling, not SCHED_IDLE: each shell's vCPU thread is created
	 * here, parked, and inherits this policy, and an unprivileged process
	 * cannot lift a thread out of SCHED_IDLE. Requests are protected
	 * instead by when refills start (pool_wake_refill).
	 */
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct snapbox *sb;
		int err;

		if (p->nready >= p->opts.size) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		bool warm = !p->opts.no_warm && !p->warm_failed;

		pthread_mutex_unlock(&p->lock);
		sb = pool_build_shell(p, warm, &err);
		pthread_mutex_lock(&p->lock);
		if (!sb) {
			p->stats.refill_failures++;
			/* Do not spin on a host that keeps failing: wait for the next
			 * request. Not if stopping: that broadcast came while we built. */
			if (!p->stop)
				pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		if (p->stop || p->nready >= p->opts.size) {
			pthread_mutex_unlock(&p->lock);
			sandbox_free(sb);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		p->ready[p->nready++] = sb;
		p->stats.refills++;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int snapbox_pool_create(const char *dir, const struct snapbox_pool_opts *opts,
			struct snapbox_pool **out)
{
	struct snapbox_pool *p;
	bool created;
	int ret, fd;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (opts)
		p->opts = *opts;
	if (p->opts.size == 0)
		p->opts.size = POOL_DEFAULT_SIZE;
	if (p->opts.size > POOL_MAX_SIZE) {
		log_msg("snapbox: pool size %u is above the limit %u\n", p->opts.size,
			POOL_MAX_SIZE);
		free(p);
		return -EINVAL;
	}
	p->threads = restore_threads(p->opts.threads);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	ret = restore_snap_open(&p->snap, dir);
	if (ret)
		goto err;
	/* The template is built here, once, so shell builders never race to make it. */
	if (p->opts.mode == SNAPBOX_RESTORE_COW) {
		fd = template_get(&p->snap.so.mem, p->opts.cache_dir, p->threads, &created);
		if (fd < 0) {
			ret = fd;
			goto err_snap;
		}
		p->snap.template_fd = fd;
	}
	/* The first shell is built inline, cold: it proves the host can restore this
	 * snapshot, and creating a pool runs no guest. */
	p->ready[0] = pool_build_shell(p, false, &ret);
	if (!p->ready[0])
		goto err_snap;
	p->nready = 1;
	if (!p->opts.no_refill) {
		ret = -pthread_create(&p->thread, NULL, pool_refill, p);
		if (ret)
			goto err_shells;
		p->have_thread = true;
	}
	*out = p;
	return 0;

err_shells:
	sandbox_free(p->ready[0]);
err_snap:
	restore_snap_close(&p->snap);
err:
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return ret;
}

/*
 * Tell the refill thread a shell was taken. Why only once the restored
 * sandbox runs: building a shell is milliseconds of kernel work (VM, memslot) in
 * ioctls that do not yield, and begun while the request's vCPU thread is
 * being woken it can hold the core that thread needs (measured: resume p50
 * 0.02 ms -> 0.46 ms).
 */
static void pool_wake_refill(struct snapbox_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

int snapbox_pool_restore(struct snapbox_pool *pool, const struct snapbox_restore_opts *opts,
			 struct snapbox **out, struct snapbox_restore_profile *prof)
{
	static const struct snapbox_restore_opts defaults = { .console_fd = -1 };
	const struct snapbox_restore_opts *o = opts ? opts : &defaults;
	struct snapbox_restore_profile pl;
	struct snapbox *sb = NULL;
	struct counts_mark cm;
	uint64_t t0 = mono_now_ns();
	int ret;

	counts_start(&cm);
	*out = NULL;
	memset(&pl, 0, sizeof(pl));
	pthread_mutex_lock(&pool->lock);
	if (pool->nready) {
		sb = pool->ready[--pool->nready];
		pool->stats.hits++;
		pl.pooled = true;
	} else {
		pool->stats.misses++;
	}
	pthread_mutex_unlock(&pool->lock);
	if (!sb) {
		sb = calloc(1, sizeof(*sb));
		if (!sb)
			return -ENOMEM;
		sb->console_fd = -1;
		ret = restore_shell(sb, &pool->snap, pool->opts.mode, pool->opts.cache_dir,
				    pool->threads, &pl);
		if (ret)
			goto err;
	}
	/* A warm shell is parked with its state in; without resume it stays
	 * parked until snapbox_resume, which sends its REFRESH. */
	pl.warm = sb->warm;
	ret = sb->warm ? 0 : restore_state(sb, &pool->snap, pool->opts.mode, !o->no_verify,
					   pool->threads, &pl);
	sb->refresh_timeout_ms = o->ping_timeout_ms;   /* for a later snapbox_resume too */
	pl.total_without_resume = mono_now_ns() - t0;
	pl.counts.minflt_before_run = counts_minflt_since(&cm);
	if (!ret && o->resume)
		ret = restore_resume(sb, o, t0, &pl);
	counts_finish(&cm, &pl.counts);
	if (ret)
		goto err;
	pool_wake_refill(pool);
	if (prof)
		*prof = pl;
	*out = sb;
	return 0;
err:
	pool_wake_refill(pool);
	sandbox_free(sb);
	return ret;
}

void snapbox_pool_get_stats(struct snapbox_pool *pool, struct snapbox_pool_stats *st)
{
	pthread_mutex_lock(&pool->lock);
	*st = pool->stats;
	st->ready = pool->nready;
	pthread_mutex_unlock(&pool->lock);
}

void snapbox_pool_destroy(struct snapbox_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	if (pool->have_thread)
		pthread_join(pool->thread, NULL);
	while (pool->nready)
		sandbox_free(pool->ready[--pool->nready]);
	restore_snap_close(&pool->snap);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}
