/* echo.c - agent-channel benchmark: ECHO round trips of one size to a booted probe, on virtio-vsock and, in the same run, on COM2 (the probe's UART test mode); percentiles, MB/s, JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_stats.h"
#include "kvm/mono.h"
#include "proto/wire.h"
#include "snapbox.h"

/* One ECHO: the round trip in ns (request out, reply in and checked). */
struct echo_sample {
	uint64_t round_trip;
};

static const struct bench_phase echo_phases[] = {
	{ "round_trip", offsetof(struct echo_sample, round_trip) },
};

/* n ECHOs of len bytes (after warmup) to a probe booted with cmdline; 0 or -errno. */
static int echo_run(const char *kernel, const char *cmdline, uint32_t len, long n, long warmup,
		    struct echo_sample *s, uint64_t *total_ns)
{
	struct snapbox_config cfg = { .kernel = kernel, .cmdline = cmdline, .console_fd = -1,
				      .mem_bytes = 64ull << 20 };
	struct snapbox *sb;
	uint8_t *msg = malloc(len ? len : 1);
	int ret;

	if (!msg)
		return -ENOMEM;
	for (uint32_t i = 0; i < len; i++)
		msg[i] = (uint8_t)(i * 131 + 7);
	ret = snapbox_boot(&cfg, &sb, NULL, NULL);
	if (ret) {
		free(msg);
		return ret;
	}
	*total_ns = 0;
	for (long i = -warmup; i < n && !ret; i++) {
		void *r = NULL;
		uint32_t rl = 0;
		uint64_t t = mono_now_ns();
		ret = snapbox_request(sb, PROTO_T_ECHO, msg, len, &r, &rl, 30000);
		t = mono_now_ns() - t;
		if (!ret && (rl != len || memcmp(r, msg, len)))
			ret = -EPROTO;
		free(r);
		if (i >= 0) {
			s[i].round_trip = t;
			*total_ns += t;
			bench_progress("echo", i + 1, n);
		}
	}
	bench_progress_break();
	snapbox_destroy(sb);
	free(msg);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { const char *name, *cmdline; } chans[] = {
		{ "vsock", "console=ttyS0" },
		{ "com2", "console=ttyS0 probe.channel=uart" },
	};
	const char *kernel = "build/guest/probe.elf", *json_path = NULL;
	long runs = 200, warmup = 10, size = PROTO_PROBE_MAX_PAYLOAD;
	FILE *json = NULL;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kernel = optarg; break;
		case 's': size = strtol(optarg, NULL, 10); break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 'w': warmup = strtol(optarg, NULL, 10); break;
		case 'j': json_path = optarg; break;
		default:
			printf("usage: echo [--kernel probe.elf] [--size BYTES] [--runs N] [--warmup N] "
			       "[--json FILE]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > 1000000 || warmup < 0 || size < 0 || size > PROTO_PROBE_MAX_PAYLOAD) {
		fprintf(stderr, "echo: --runs 1..1000000, --warmup >= 0, --size 0..%u\n",
			PROTO_PROBE_MAX_PAYLOAD);
		return 2;
	}
	bench_emulated_banner(stdout);
	struct echo_sample *s = calloc((size_t)runs, sizeof(*s));
	if (!s)
		return 1;
	if (json_path && !(json = fopen(json_path, "w")))
		fprintf(stderr, "echo: cannot write %s: %s\n", json_path, strerror(errno));
	if (json) {
		fprintf(json, "{\"bench\": \"echo\", \"kernel\": \"%s\", \"size\": %ld, \"runs\": %ld, ",
			kernel, size, runs);
		bench_json_host(json);
		fputs(", \"channels\": {", json);
	}
	for (size_t k = 0; k < sizeof(chans) / sizeof(chans[0]) && !ret; k++) {
		uint64_t total = 0;
		ret = echo_run(kernel, chans[k].cmdline, (uint32_t)size, runs, warmup, s, &total);
		if (ret) {
			fprintf(stderr, "echo: %s: %s\n", chans[k].name, strerror(-ret));
			break;
		}
		/* Bytes moved both ways per second of round trips. */
		double mbs = total ? 2.0 * (double)size * (double)runs / ((double)total / 1e9) / 1e6 : 0;
		printf("%s: %ld ECHOs of %ld bytes, %.1f MB/s (both directions)\n", chans[k].name, runs,
		       size, mbs);
		if (json)
			fprintf(json, "%s\"%s\": {\"mb_per_s\": %.1f, ", k ? ", " : "", chans[k].name, mbs);
		bench_report(json, s, sizeof(*s), (size_t)runs, echo_phases, 1);
		if (json)
			fputs("}", json);
	}
	if (json) {
		fputs("}}\n", json);
		fclose(json);
	}
	free(s);
	return ret ? 1 : 0;
}
