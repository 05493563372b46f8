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

#include "bench/bench_stats.h"
#include "snapbox.h"

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

static void coldboot_report(FILE *json, const struct bench_sample *s, size_t n, const char *kernel,
			    uint64_t mem)
{
	if (json) {
		fprintf(json, "{\"bench\": \"coldboot\", \"kernel\": \"%s\", \"mem_bytes\": %llu, "
			"\"runs\": %zu, ", kernel, (unsigned long long)mem, n);
		bench_json_host(json);
		fputs(", ", json);
	}
	bench_report(json, s, sizeof(*s), n, bench_phases, NPHASES);
	if (json)
		fputs("}\n", json);
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

		ret = snapbox_boot(&cfg, &sb, &x.cp, &x.bp);
		if (ret) {
			fprintf(stderr, "coldboot: run %ld failed: %s\n", i, strerror(-ret));
			goto out;
		}
		t = bench_now_ns();
		ret = snapbox_ping(sb, 5000);
		x.ping = bench_now_ns() - t;
		snapbox_destroy(sb);
		if (ret) {
			fprintf(stderr, "coldboot: ping after run %ld failed: %s\n", i, strerror(-ret));
			goto out;
		}
		/* Reading and placing the kernel, boot params and glue: ours, no ioctl, no guest. */
		x.own_code = x.cp.kernel_asset_read + x.cp.kernel_elf_load + x.cp.boot_params + x.cp.misc;
		if (i >= 0)
			s[i] = x;
		if (i >= 0)
			bench_progress("coldboot", i + 1, runs);
	}
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			fprintf(stderr, "coldboot: cannot write %s: %s\n", json_path, strerror(errno));
	}
	coldboot_report(json, s, (size_t)runs, cfg.kernel, cfg.mem_bytes);
	if (json) {
		fclose(json);
		printf("JSON written to %s\n", json_path);
	}
out:
	free(s);
	return ret ? 1 : 0;
}
