/* coldboot.c - cold-boot benchmark: N boots of a kernel (the probe guest by default) to READY, per-phase percentiles, JSON. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "snapbox.h"

struct bench_phase {
	const char *name;
	size_t off;           /* offset in struct bench_sample */
};

struct bench_sample {
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	uint64_t ping;        /* first PING round trip after READY */
	uint64_t own_code;    /* host phases that are neither KVM ioctls nor guest time */
};

#define CP(f) { #f, offsetof(struct bench_sample, cp.f) }
#define BP(f) { "boot." #f, offsetof(struct bench_sample, bp.f) }

static const struct bench_phase bench_phases[] = {
	CP(kvm_fd_open), CP(kvm_create_vm), CP(vm_arch_setup), CP(guest_memory_mmap),
	CP(kernel_asset_read), CP(rootfs_asset_read), CP(kernel_elf_load), CP(rootfs_write),
	CP(kvm_set_user_memory_region), CP(vcpu_creation), CP(vcpu_register_config),
	CP(cpuid_config), CP(boot_params), CP(misc), CP(create_vm_total), CP(boot_wait),
	CP(cold_start_total), BP(vcpu_thread_start), BP(first_guest_byte), BP(ready),
	{ "ping_round_trip", offsetof(struct bench_sample, ping) },
	{ "own_code", offsetof(struct bench_sample, own_code) },
};
#define NPHASES (sizeof(bench_phases) / sizeof(bench_phases[0]))

static uint64_t bench_get(const struct bench_sample *s, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)s + off, sizeof(v));
	return v;
}

static int bench_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t bench_pct(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank == 0)
		rank = 1;
	return v[rank > n ? n - 1 : rank - 1];
}

static double bench_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void bench_report(FILE *json, const struct bench_sample *s, size_t n, const char *kernel,
			 uint64_t mem)
{
	uint64_t *v = malloc(n * sizeof(*v));
	struct utsname u;
	size_t i, j;

	if (!v)
		return;
	uname(&u);
	printf("%-28s %9s %9s %9s %9s %9s   (ms, %zu runs)\n", "phase", "min", "p50", "p90", "p99",
	       "max", n);
	if (json)
		fprintf(json, "{\"bench\": \"coldboot\", \"kernel\": \"%s\", \"mem_bytes\": %llu, "
			"\"runs\": %zu, \"host\": {\"kernel\": \"%s %s\", \"cpus\": %ld}, \"phases_ns\": {",
			kernel, (unsigned long long)mem, n, u.sysname, u.release,
			sysconf(_SC_NPROCESSORS_ONLN));
	for (i = 0; i < NPHASES; i++) {
		for (j = 0; j < n; j++)
			v[j] = bench_get(&s[j], bench_phases[i].off);
		qsort(v, n, sizeof(*v), bench_cmp);
		printf("%-28s %9.3f %9.3f %9.3f %9.3f %9.3f\n", bench_phases[i].name, bench_ms(v[0]),
		       bench_ms(bench_pct(v, n, 50)), bench_ms(bench_pct(v, n, 90)),
		       bench_ms(bench_pct(v, n, 99)), bench_ms(v[n - 1]));
		if (json)
			fprintf(json, "%s\"%s\": {\"min\": %llu, \"p50\": %llu, \"p90\": %llu, "
				"\"p99\": %llu, \"max\": %llu}", i ? ", " : "", bench_phases[i].name,
				(unsigned long long)v[0], (unsigned long long)bench_pct(v, n, 50),
				(unsigned long long)bench_pct(v, n, 90),
				(unsigned long long)bench_pct(v, n, 99), (unsigned long long)v[n - 1]);
	}
	if (json)
		fputs("}}\n", json);
	free(v);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "runs", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "mem", required_argument, NULL, 'm' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct snapbox_config cfg = { .kernel = "build/guest/probe.elf", .console_fd = -1,
				      .mem_bytes = 256ull << 20 };
	const char *json_path = NULL;
	struct bench_sample *s;
	long runs = 50, warmup = 3;
	FILE *json = NULL;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		case 'm': cfg.mem_bytes = strtoull(optarg, NULL, 10) << 20; break;
		case 'j': json_path = optarg; break;
		default:
			printf("usage: coldboot [--kernel F] [--runs N] [--warmup N] [--mem MiB] [--json FILE]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > 100000 || warmup < 0) {
		fprintf(stderr, "coldboot: --runs must be 1..100000 and --warmup >= 0\n");
		return 2;
	}
	s = calloc((size_t)runs, sizeof(*s));
	if (!s)
		return 1;
	for (long i = -warmup; i < runs; i++) {
		struct bench_sample x;
		struct snapbox *sb;
		uint64_t t;
		struct timespec ts;

		ret = snapbox_boot(&cfg, &sb, &x.cp, &x.bp);
		if (ret) {
			fprintf(stderr, "coldboot: run %ld failed: %s\n", i, strerror(-ret));
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		ret = snapbox_ping(sb, 5000);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x.ping = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec - t;
		snapbox_destroy(sb);
		if (ret) {
			fprintf(stderr, "coldboot: ping after run %ld failed: %s\n", i, strerror(-ret));
			goto out;
		}
		/* Reading and placing the kernel, boot params and glue: ours, no ioctl, no guest. */
		x.own_code = x.cp.kernel_asset_read + x.cp.kernel_elf_load + x.cp.boot_params + x.cp.misc;
		if (i >= 0)
			s[i] = x;
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "\rcoldboot: %ld/%ld", i + 1 > 0 ? i + 1 : 0, runs);
	}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			fprintf(stderr, "coldboot: cannot write %s: %s\n", json_path, strerror(errno));
	}
	bench_report(json, s, (size_t)runs, cfg.kernel, cfg.mem_bytes);
	if (json) {
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
out:
	free(s);
	return ret ? 1 : 0;
}
