/* snapbox.c - the snapbox command-line tool (boot today; snapshot, restore, run, inspect, bench to come). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapbox.h"

static const char snapbox_usage[] =
	"usage: snapbox <command> [options]\n"
	"\n"
	"commands:\n"
	"  boot     cold-boot a kernel to its agent's READY and print the profiles\n"
	"\n"
	"Run 'snapbox <command> --help' for the command's options.\n"
	"\n"
	"exit codes:\n"
	"  0  success\n"
	"  1  the guest failed: it stopped (triple fault, reset, KVM error) or timed out\n"
	"  2  bad command line\n"
	"  3  bad input: kernel/initrd missing, unreadable, not ELF/bzImage, too big\n"
	"  4  KVM unusable: no /dev/kvm, no permission, missing capabilities\n";

static const char snapbox_boot_usage[] =
	"usage: snapbox boot --kernel FILE [options]\n"
	"\n"
	"Cold-boot a VM until its guest agent (or the probe guest) reports READY,\n"
	"then print CreateVmProfile and BootProfile and destroy the VM.\n"
	"\n"
	"  --kernel FILE     ELF vmlinux, bzImage, or the probe guest (build/guest/probe.elf)\n"
	"  --initrd FILE     initramfs to load\n"
	"  --mem SIZE        guest memory, e.g. 256M or 1G (plain number: MiB; default 256M)\n"
	"  --cmdline STR     kernel command line (default \"console=ttyS0\")\n"
	"  --timeout MS      give up when READY has not arrived after MS ms (default 10000)\n"
	"  --console         copy the guest console (COM1) to stderr\n"
	"  --json            print one JSON object instead of readable lines\n"
	"  -h, --help        this text\n";

/* "256M", "1G", "4096K", "1048576B" or a plain number of MiB. */
static int snapbox_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 20;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'K': case 'k': shift = 10; break;
	case 'B': case 'b': shift = 0; break;
	default: return -EINVAL;
	}
	if (*end && end[1] != '\0')
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int snapbox_cmd_boot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "console", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct snapbox_config cfg = { .console_fd = -1 };
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	struct snapbox *sb;
	bool json = false;
	char *end;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'i': cfg.initrd = optarg; break;
		case 'c': cfg.cmdline = optarg; break;
		case 'C': cfg.console_fd = STDERR_FILENO; break;
		case 'j': json = true; break;
		case 'm':
			if (snapbox_parse_size(optarg, &cfg.mem_bytes)) {
				fprintf(stderr, "snapbox boot: bad --mem '%s' (try 256M or 1G)\n", optarg);
				return SNAPBOX_EXIT_USAGE;
			}
			break;
		case 't':
			errno = 0;
			cfg.boot_timeout_ms = (unsigned)strtoul(optarg, &end, 10);
			if (errno || *end || cfg.boot_timeout_ms == 0) {
				fprintf(stderr, "snapbox boot: bad --timeout '%s' (milliseconds > 0)\n", optarg);
				return SNAPBOX_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(snapbox_boot_usage, stdout);
			return SNAPBOX_EXIT_OK;
		default:
			fputs(snapbox_boot_usage, stderr);
			return SNAPBOX_EXIT_USAGE;
		}
	}
	if (optind != argc || !cfg.kernel) {
		fprintf(stderr, "snapbox boot: %s\n", cfg.kernel ? "unexpected argument" : "--kernel is required");
		fputs(snapbox_boot_usage, stderr);
		return SNAPBOX_EXIT_USAGE;
	}
	ret = snapbox_boot(&cfg, &sb, &cp, &bp);
	if (ret)
		return snapbox_exit_code(ret);
	if (json) {
		fputs("{\"create_vm_profile\": ", stdout);
		snapbox_json_create_profile(stdout, &cp);
		fputs(", \"boot_profile\": ", stdout);
		snapbox_json_boot_profile(stdout, &bp);
		fputs("}\n", stdout);
	} else {
		printf("snapbox: %s reached READY in %.3f ms (cold start %.3f ms)\n", cfg.kernel,
		       (double)cp.boot_wait / 1e6, (double)cp.cold_start_total / 1e6);
		snapbox_print_create_profile(stdout, &cp);
		snapbox_print_boot_profile(stdout, &bp);
	}
	snapbox_destroy(sb);
	return SNAPBOX_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(snapbox_usage, stderr);
		return SNAPBOX_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(snapbox_usage, stdout);
		return SNAPBOX_EXIT_OK;
	}
	if (!strcmp(argv[1], "boot"))
		return snapbox_cmd_boot(argc - 1, argv + 1);
	fprintf(stderr, "snapbox: unknown command '%s'\n", argv[1]);
	fputs(snapbox_usage, stderr);
	return SNAPBOX_EXIT_USAGE;
}
