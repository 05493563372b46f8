/* bench_run.c - the measuring loops behind bench/coldboot, bench/snapshot, bench/restore and `snapbox bench`. */
#include "kvm/mono.h"
#include "bench/bench_run.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Every bench program (and `snapbox bench`, through the CLI's main) runs its
 * deadlines times $SNAPBOX_TIME_SCALE: the nested lab runs them emulated. A
 * bad value is ignored with a warning (the CLI then refuses it).
 */
__attribute__((constructor)) static void bench_time_scale_from_env(void)
{
	const char *e = getenv("SNAPBOX_TIME_SCALE");
	double f;

	if (!e)
		return;
	if (!snapbox_parse_time_scale(e, &f))
		snapbox_set_time_scale(f);
	else
		fprintf(stderr, "bench: SNAPBOX_TIME_SCALE='%s' ignored: want a number from 1 to 1000\n", e);
}

#define CP(f) { #f, offsetof(struct bench_cold_sample, cp.f) }
#define BP(f) { "boot." #f, offsetof(struct bench_cold_sample, bp.f) }

const struct bench_phase bench_cold_phases[] = {
	CP(kvm_fd_open), CP(kvm_create_vm), CP(vm_arch_setup), CP(guest_memory_mmap),
	CP(kernel_asset_read), CP(rootfs_asset_read), CP(kernel_elf_load), CP(rootfs_write),
	CP(kvm_set_user_memory_region), CP(vcpu_creation), CP(vcpu_register_config),
	CP(cpuid_config), CP(boot_params), CP(misc), CP(create_vm_total), CP(boot_wait),
	CP(cold_start_total), BP(vcpu_thread_start), BP(first_guest_byte), BP(ready),
	{ "ping_round_trip", offsetof(struct bench_cold_sample, ping) },
	{ "own_code", offsetof(struct bench_cold_sample, own_code) },
};
const size_t bench_cold_nphases = sizeof(bench_cold_phases) / sizeof(bench_cold_phases[0]);

#define SP(f) { #f, offsetof(struct snapbox_snapshot_profile, f) }

const struct bench_phase bench_snapshot_phases[] = {
	SP(pause), SP(vcpu_capture), SP(device_capture), SP(memory_compress), SP(write), SP(fsync),
	SP(total),
};
const size_t bench_snapshot_nphases = sizeof(bench_snapshot_phases) / sizeof(bench_snapshot_phases[0]);

#define RP(f) { #f, offsetof(struct snapbox_restore_profile, f) }

const struct bench_phase bench_restore_phases[] = {
	RP(snapshot_open), RP(kvm_fd_open), RP(kvm_create_vm), RP(vm_arch_setup),
	RP(guest_memory_mmap), RP(kvm_set_user_memory_region), RP(vcpu_creation), RP(cpuid_config),
	RP(memory_state_write), RP(vcpu_state_restore), RP(device_state_restore), RP(resume_kvm_run),
	RP(guest_refresh), RP(total_without_resume), RP(total_with_resume), RP(restore_to_ready),
};
const size_t bench_restore_nphases = sizeof(bench_restore_phases) / sizeof(bench_restore_phases[0]);

/* A PING the loop itself sends: the library reports nothing of its own for it. */
#define BENCH_PING_TIMEOUT_MS 5000u

uint32_t bench_fill_mib(uint64_t mem_bytes, unsigned pct)
{
	uint64_t mib = mem_bytes >> 20;

	return mib <= 8 ? 0 : (uint32_t)((mib - 8) * pct / 100);
}

int bench_guest_boot(const struct bench_guest *g, struct snapbox **out)
{
	struct snapbox_config cfg = g->cfg;
	struct snapbox *sb;
	int ret;

	cfg.prepare_snapshot = true;   /* every caller snapshots what it boots */
	ret = snapbox_boot(&cfg, &sb, NULL, NULL);
	if (ret)
		return ret;
	/* A FILL of 1 GiB takes a few seconds: give it a minute per GiB and more. */
	if (g->fill_mib)
		ret = snapbox_probe_fill(sb, g->fill_mib, g->fill_seed, 60000 + g->fill_mib * 60);
	if (ret) {
		if (ret != -EREMOTEIO)
			fprintf(stderr, "bench: FILL of %u MiB failed: %s (%s)\n", g->fill_mib,
				strerror(-ret), snapbox_stop_reason(sb));
		snapbox_destroy(sb);
		return ret;
	}
	*out = sb;
	return 0;
}

volatile sig_atomic_t bench_interrupted;

static void bench_on_signal(int sig)
{
	bench_interrupted = 1;
	signal(sig, SIG_DFL);   /* a second Ctrl-C ends the process at once */
}

void bench_catch_interrupts(void)
{
	struct sigaction sa = { .sa_handler = bench_on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* -EINTR, after ending the progress line, when an interrupt was caught. */
static int bench_check_interrupt(void)
{
	if (!bench_interrupted)
		return 0;
	bench_progress_break();
	return -EINTR;
}

int bench_cold_loop(const struct snapbox_config *cfg, long runs, long warmup, const char *label,
		    struct bench_cold_sample *out)
{
	for (long i = -warmup; i < runs; i++) {
		struct bench_cold_sample x;
		struct snapbox *sb;
		uint64_t t;
		int ret = bench_check_interrupt();

		if (ret)
			return ret;
		ret = snapbox_boot(cfg, &sb, &x.cp, &x.bp);
		if (ret) {
			bench_progress_break();
			return ret;
		}
		t = mono_now_ns();
		ret = snapbox_ping(sb, snapbox_scaled_ms(BENCH_PING_TIMEOUT_MS));
		x.ping = mono_now_ns() - t;
		if (ret) {
			bench_progress_break();
			fprintf(stderr, "bench: no PONG after cold boot %ld: %s (%s)\n", i, strerror(-ret),
				snapbox_stop_reason(sb));
		}
		snapbox_destroy(sb);
		if (ret)
			return ret;
		/* Reading and placing the kernel, boot params and glue: ours, no ioctl, no guest. */
		x.own_code = x.cp.kernel_asset_read + x.cp.kernel_elf_load + x.cp.boot_params + x.cp.misc;
		if (i < 0)
			continue;
		out[i] = x;
		if (label)
			bench_progress(label, i + 1, runs);
	}
	return 0;
}

int bench_snapshot_loop(const struct bench_guest *g, const struct snapbox_snapshot_opts *so,
			const char *dir, long runs, long warmup, const char *label,
			struct snapbox_snapshot_profile *out)
{
	struct snapbox *sb = NULL;
	int ret = bench_guest_boot(g, &sb);

	for (long i = -warmup; !ret && i < runs; i++) {
		struct snapbox_snapshot_profile p;

		ret = bench_check_interrupt();
		if (ret)
			break;
		ret = snapbox_snapshot(sb, dir, so, &p);
		if (ret) {
			bench_progress_break();
			break;
		}
		if (i < 0)
			continue;
		out[i] = p;
		if (label)
			bench_progress(label, i + 1, runs);
	}
	snapbox_destroy(sb);
	return ret;
}

int bench_make_snapshot(const struct bench_guest *g, char *dir, size_t cap,
			struct snapbox_snapshot_profile *prof)
{
	struct snapbox_snapshot_opts so = { .no_sync = true };
	struct snapbox *sb;
	int ret;

	if (cap < sizeof("/tmp/snapbox-bench-XXXXXX/snap"))
		return -ENAMETOOLONG;
	snprintf(dir, cap, "/tmp/snapbox-bench-XXXXXX");
	if (!mkdtemp(dir)) {
		ret = -errno;
		fprintf(stderr, "bench: cannot create a directory in /tmp: %s\n", strerror(errno));
		return ret;
	}
	strcat(dir, "/snap");
	ret = bench_guest_boot(g, &sb);
	if (!ret) {
		ret = snapbox_snapshot(sb, dir, &so, prof);
		snapbox_destroy(sb);
	}
	if (ret) {
		*strrchr(dir, '/') = '\0';
		bench_rmtree(dir);
	}
	return ret;
}

int bench_restore_loop(const char *dir, const struct bench_restore_how *how, long runs,
		       long warmup, const char *label, struct snapbox_restore_profile *out,
		       struct snapbox_pool_stats *pool_stats)
{
	struct snapbox_restore_opts ro = { .mode = how->mode, .resume = true, .ping = true,
					   .console_fd = -1, .cache_dir = how->cache_dir,
					   .ping_timeout_ms = how->ping_timeout_ms };
	struct snapbox_pool_opts po = { .size = 2, .mode = how->mode, .cache_dir = how->cache_dir,
					.no_warm = how->no_warm };
	struct snapbox_pool *pool = NULL;
	int ret = 0;

	if (how->pooled && (ret = snapbox_pool_create(dir, &po, &pool)))
		return ret;
	for (long i = -warmup; i < runs; i++) {
		struct snapbox_restore_profile p;
		struct snapbox *sb;

		/* Give the refill thread time to top the pool up, as between real requests. */
		if (pool)
			usleep(30000);
		ret = bench_check_interrupt();
		if (ret)
			goto out;
		ret = pool ? snapbox_pool_restore(pool, &ro, &sb, &p) : snapbox_restore(dir, &ro, &sb, &p);
		if (ret) {
			bench_progress_break();
			goto out;
		}
		snapbox_destroy(sb);
		if (i < 0)
			continue;
		out[i] = p;
		if (label)
			bench_progress(label, i + 1, runs);
	}
	if (pool && pool_stats)
		snapbox_pool_get_stats(pool, pool_stats);
out:
	snapbox_pool_destroy(pool);
	return ret;
}

static int bench_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
		fprintf(stderr, "bench: cannot remove %s: %s\n", path, strerror(errno));
		return -errno;
	}
	return 0;
}

int bench_rmtree(const char *path)
{
	int ret = nftw(path, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);

	if (ret < 0 && errno == ENOENT)
		return 0;
	return ret < 0 ? -errno : ret;
}
