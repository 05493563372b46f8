/* snapbox.c - the snapbox command-line tool: boot, snapshot, restore, inspect (run and bench in their own files). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapbox.h"
#include "tools/snapbox_cli.h"

#define CLI_MAX_PREWARM 64
#define CLI_MAX_FILES   64

static const char snapbox_usage[] =
	"usage: snapbox <command> [options]\n"
	"\n"
	"commands:\n"
	"  boot       cold-boot a kernel to its agent's READY and print the profiles\n"
	"  snapshot   cold-boot, then snapshot the ready VM into a directory\n"
	"  restore    rebuild a VM from a snapshot and print RestoreProfile\n"
	"  inspect    describe a snapshot directory, optionally verifying every checksum\n"
	"  run        boot (or restore) a Linux sandbox, run one command in it, exit with its\n"
	"             status (its own exit codes: 'snapbox run --help')\n"
	"  bench      repeat a cold boot, snapshot or restore: phase percentiles, throughput,\n"
	"             latency histogram, or a JSON document\n"
	"\n"
	"Run 'snapbox <command> --help' for the command's options.\n"
	"\n"
	"exit codes:\n"
	"  0  success\n"
	"  1  the guest failed: it stopped (triple fault, reset, KVM error) or timed out\n"
	"  2  bad command line\n"
	"  3  bad input: kernel/initrd missing, unreadable, not ELF/bzImage, too big\n"
	"  4  KVM unusable: no /dev/kvm, no permission, missing capabilities\n"
	"  5  this host failed or cannot honour the snapshot: out of memory, busy, I/O\n"
	"     error, disk full, CPU features the snapshot needs\n";

static const char snapbox_snapshot_usage[] =
	"usage: snapbox snapshot --kernel FILE --out DIR [options]\n"
	"\n"
	"Cold-boot a VM to READY, snapshot it into DIR (written beside DIR and\n"
	"renamed into place, so DIR is never half-written), print CreateVmProfile,\n"
	"BootProfile and the snapshot profile, and destroy the VM.\n"
	"\n"
	"  --kernel FILE     kernel, as for boot\n"
	"  --initrd FILE     initramfs\n"
	"  --mem SIZE        guest memory (default 256M)\n"
	"  --cmdline STR     kernel command line\n"
	"  --timeout MS      boot timeout: READY within MS ms (default 10000)\n"
	"  --out DIR         the snapshot directory (replaced if it is a snapshot)\n"
	"  --fill MIB        probe guest only: first fill MIB MiB of RAM with its realistic\n"
	"                    mix of zero, text-like and random pages\n"
	"  --chunk-size SZ   memory file chunk size, power of two, 64K..16M (default 256K)\n"
	"  --threads N       compression threads (default: online CPUs)\n"
	"  --no-sync         skip fsync (faster; a crash may lose the snapshot)\n"
	"  --no-compress     store guest memory uncompressed (faster to write and restore, larger)\n"
	"  --prewarm CMD     before the snapshot, run `sh -c CMD` in the guest through its agent\n"
	"                    (repeatable, in order; each must exit 0): compile .pyc files,\n"
	"                    import heavy modules, fill caches\n"
	"  --add-file SRC:DEST  before the pre-warm commands, write host file SRC to DEST in\n"
	"                    the guest, with SRC's permission bits (repeatable)\n"
	"  --prewarm-timeout MS  deadline of each --prewarm command (default 300000)\n"
	"  --file-timeout MS deadline of each --add-file write (default 30000 plus 4000\n"
	"                    per 64 KiB of the file)\n"
	"Default deadlines are multiplied by $SNAPBOX_TIME_SCALE (a number from 1 to\n"
	"1000, default 1) on slow or emulated hosts.\n"
	"  --console         copy the guest console to stderr\n"
	"  --json            one JSON object instead of readable lines\n";

static const char snapbox_boot_usage[] =
	"usage: snapbox boot --kernel FILE [options]\n"
	"\n"
	"Cold-boot a VM until its guest agent (or the probe guest) reports READY,\n"
	"then print CreateVmProfile and BootProfile and destroy the VM.\n"
	"\n"
	"  --kernel FILE     ELF vmlinux, bzImage, or the probe guest (build/guest/probe.elf)\n"
	"  --initrd FILE     initramfs to load\n"
	"  --mem SIZE        guest memory, e.g. 256M or 1G (plain number: MiB; default 256M)\n"
	"  --cmdline STR     kernel command line (default \"console=ttyS0 init_on_free=1\")\n"
	"  --timeout MS      give up when READY has not arrived after MS ms (default 10000\n"
	"                    times $SNAPBOX_TIME_SCALE)\n"
	"  --console         copy the guest console (COM1) to stderr\n"
	"  --json            print one JSON object instead of readable lines\n"
	"  -h, --help        this text\n";

/* Options shared by every command that cold-boots a guest. */
struct cli_boot {
	struct snapbox_config cfg;
	bool json;
	/* snapshot only */
	const char *out;
	struct snapbox_snapshot_opts snap;
	uint32_t fill_mib;
	const char *prewarm[CLI_MAX_PREWARM + 1];
	unsigned nprewarm;
	struct snapbox_file files[CLI_MAX_FILES];
	unsigned nfiles;
};

/* --add-file SRC:DEST: SRC's bytes and permission bits, for DEST in the guest. */
static int cli_add_file(const char *cmd, const char *arg, struct cli_boot *b)
{
	const char *colon = strrchr(arg, ':');
	struct snapbox_file *f = &b->files[b->nfiles];
	struct stat st;
	void *data;
	size_t len;
	char src[4096];
	int ret;

	if (!colon || colon == arg || colon[1] != '/' || (size_t)(colon - arg) >= sizeof(src) ||
	    b->nfiles == CLI_MAX_FILES) {
		fprintf(stderr, "snapbox %s: --add-file wants SRC:/absolute/dest (at most %d), not '%s'\n",
			cmd, CLI_MAX_FILES, arg);
		return -EINVAL;
	}
	snprintf(src, sizeof(src), "%.*s", (int)(colon - arg), arg);
	ret = stat(src, &st) ? -errno : cli_read_file(src, SNAPBOX_FILE_MAX, &data, &len);
	if (ret) {
		fprintf(stderr, "snapbox %s: --add-file %s: %s\n", cmd, src,
			ret == -EFBIG ? "not a regular file of at most 4 MiB less 8 KiB" : strerror(-ret));
		return ret;
	}
	f->path = colon + 1;
	f->mode = st.st_mode & 07777;
	f->data = data;
	f->len = len;
	b->nfiles++;
	return 0;
}

enum { OPT_KERNEL = 256, OPT_INITRD, OPT_MEM, OPT_CMDLINE, OPT_TIMEOUT, OPT_CONSOLE, OPT_JSON,
       OPT_OUT, OPT_NOSYNC, OPT_NOCOMPRESS, OPT_FILL, OPT_CHUNK, OPT_PREWARM, OPT_ADDFILE,
       OPT_THREADS, OPT_PREWARM_TIMEOUT, OPT_FILE_TIMEOUT };

static const struct option cli_boot_opts[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "console", no_argument, NULL, OPT_CONSOLE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "no-sync", no_argument, NULL, OPT_NOSYNC },
	{ "no-compress", no_argument, NULL, OPT_NOCOMPRESS },
	{ "fill", required_argument, NULL, OPT_FILL },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "prewarm", required_argument, NULL, OPT_PREWARM },
	{ "add-file", required_argument, NULL, OPT_ADDFILE },
	{ "prewarm-timeout", required_argument, NULL, OPT_PREWARM_TIMEOUT },
	{ "file-timeout", required_argument, NULL, OPT_FILE_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A whole number from 0 to max for --opt; -1 after a message naming it. */
static int cli_uint(const char *cmd, const char *opt, const char *arg, unsigned long max,
		    unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || *arg == '-' || *out > max) {
		fprintf(stderr, "snapbox %s: bad --%s '%s'\n", cmd, opt, arg);
		return -1;
	}
	return 0;
}

/* As cli_uint, and 0 is refused too. */
static int cli_pos(const char *cmd, const char *opt, const char *arg, unsigned long max,
		   unsigned long *out)
{
	if (cli_uint(cmd, opt, arg, max, out))
		return -1;
	if (*out == 0) {
		fprintf(stderr, "snapbox %s: bad --%s '%s' (at least 1)\n", cmd, opt, arg);
		return -1;
	}
	return 0;
}

/*
 * Parse argv for `cmd`. snapshot_opts enables --out/--no-sync/--fill/
 * --chunk-size/--threads. Returns -1 to continue, or an exit code.
 */
static int cli_parse_boot(const char *cmd, const char *usage, bool snapshot_opts, int argc,
			  char **argv, struct cli_boot *b)
{
	unsigned long v;
	int c;

	memset(b, 0, sizeof(*b));
	b->cfg.console_fd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", cli_boot_opts, NULL)) != -1) {
		if (!snapshot_opts && c >= OPT_OUT && c <= OPT_FILE_TIMEOUT)
			c = '?';
		switch (c) {
		case OPT_KERNEL: b->cfg.kernel = optarg; break;
		case OPT_INITRD: b->cfg.initrd = optarg; break;
		case OPT_CMDLINE: b->cfg.cmdline = optarg; break;
		case OPT_CONSOLE: b->cfg.console_fd = STDERR_FILENO; break;
		case OPT_JSON: b->json = true; break;
		case OPT_OUT: b->out = optarg; break;
		case OPT_NOSYNC: b->snap.no_sync = true; break;
		case OPT_NOCOMPRESS: b->snap.no_compress = true; break;
		case OPT_MEM:
			if (cli_parse_size(optarg, &b->cfg.mem_bytes)) {
				fprintf(stderr, "snapbox %s: bad --mem '%s' (try 256M or 1G)\n", cmd, optarg);
				return SNAPBOX_EXIT_USAGE;
			}
			break;
		case OPT_TIMEOUT:
			if (cli_pos(cmd, "timeout", optarg, 86400000, &v))
				return SNAPBOX_EXIT_USAGE;
			b->cfg.boot_timeout_ms = (unsigned)v;
			break;
		case OPT_FILL:
			if (cli_uint(cmd, "fill", optarg, 1u << 20, &v))
				return SNAPBOX_EXIT_USAGE;
			b->fill_mib = (uint32_t)v;
			break;
		case OPT_CHUNK: {
			uint64_t sz;

			if (cli_parse_size(optarg, &sz) || sz > UINT32_MAX) {
				fprintf(stderr, "snapbox %s: bad --chunk-size '%s' (try 256K)\n", cmd, optarg);
				return SNAPBOX_EXIT_USAGE;
			}
			b->snap.chunk_size = (uint32_t)sz;
			break;
		}
		case OPT_PREWARM:
			if (b->nprewarm == CLI_MAX_PREWARM) {
				fprintf(stderr, "snapbox %s: at most %d --prewarm\n", cmd, CLI_MAX_PREWARM);
				return SNAPBOX_EXIT_USAGE;
			}
			b->prewarm[b->nprewarm++] = optarg;
			b->snap.prewarm = b->prewarm;
			break;
		case OPT_ADDFILE:
			if (cli_add_file(cmd, optarg, b))
				return SNAPBOX_EXIT_USAGE;
			b->snap.files = b->files;
			b->snap.nfiles = b->nfiles;
			break;
		case OPT_THREADS:
			if (cli_pos(cmd, "threads", optarg, 64, &v))
				return SNAPBOX_EXIT_USAGE;
			b->snap.threads = (unsigned)v;
			break;
		case OPT_PREWARM_TIMEOUT:
		case OPT_FILE_TIMEOUT:
			if (cli_pos(cmd, c == OPT_FILE_TIMEOUT ? "file-timeout" : "prewarm-timeout", optarg,
				     86400000, &v))
				return SNAPBOX_EXIT_USAGE;
			*(c == OPT_FILE_TIMEOUT ? &b->snap.file_timeout_ms : &b->snap.prewarm_timeout_ms) =
				(unsigned)v;
			break;
		case 'h':
			fputs(usage, stdout);
			return SNAPBOX_EXIT_OK;
		default:
			fputs(usage, stderr);
			return SNAPBOX_EXIT_USAGE;
		}
	}
	if (optind != argc || !b->cfg.kernel || (snapshot_opts && !b->out)) {
		fprintf(stderr, "snapbox %s: %s\n", cmd,
			optind != argc ? "unexpected argument" :
			!b->cfg.kernel ? "--kernel is required" : "--out is required");
		fputs(usage, stderr);
		return SNAPBOX_EXIT_USAGE;
	}
	return -1;
}

static void cli_print_boot(const struct cli_boot *b, const struct snapbox_create_profile *cp,
			   const struct snapbox_boot_profile *bp)
{
	printf("snapbox: %s reached READY in %.3f ms (cold start %.3f ms)\n", b->cfg.kernel,
	       (double)cp->boot_wait / 1e6, (double)cp->cold_start_total / 1e6);
	snapbox_print_create_profile(stdout, cp);
	snapbox_print_boot_profile(stdout, bp);
}

static void cli_json_boot(const struct snapbox_create_profile *cp,
			  const struct snapbox_boot_profile *bp)
{
	fputs("\"create_vm_profile\": ", stdout);
	snapbox_json_create_profile(stdout, cp);
	fputs(", \"boot_profile\": ", stdout);
	snapbox_json_boot_profile(stdout, bp);
}

static int snapbox_cmd_boot(int argc, char **argv)
{
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	struct cli_boot b;
	struct snapbox *sb;
	int ret = cli_parse_boot("boot", snapbox_boot_usage, false, argc, argv, &b);

	if (ret >= 0)
		return ret;
	ret = snapbox_boot(&b.cfg, &sb, &cp, &bp);
	if (ret)
		return snapbox_exit_code(ret);
	if (b.json) {
		fputc('{', stdout);
		cli_json_boot(&cp, &bp);
		fputs("}\n", stdout);
	} else {
		cli_print_boot(&b, &cp, &bp);
	}
	snapbox_destroy(sb);
	return SNAPBOX_EXIT_OK;
}

static int cli_fill(struct snapbox *sb, uint32_t mib)
{
	int ret;

	if (isatty(STDERR_FILENO))
		fprintf(stderr, "snapbox: filling %u MiB of guest memory...\n", mib);
	ret = snapbox_probe_fill(sb, mib, 1, 120000);
	if (ret && ret != -EREMOTEIO)
		fprintf(stderr, "snapbox: --fill %u failed: %s\n", mib, strerror(-ret));
	return ret;
}

static int snapbox_cmd_snapshot(int argc, char **argv)
{
	struct snapbox_create_profile cp;
	struct snapbox_boot_profile bp;
	struct snapbox_snapshot_profile sp;
	struct cli_boot b;
	struct snapbox *sb;
	int ret = cli_parse_boot("snapshot", snapbox_snapshot_usage, true, argc, argv, &b);

	if (ret >= 0)
		return ret;
	b.cfg.prepare_snapshot = true;
	ret = snapbox_boot(&b.cfg, &sb, &cp, &bp);
	if (ret)
		return snapbox_exit_code(ret);
	if (b.fill_mib)
		ret = cli_fill(sb, b.fill_mib);
	if (!ret)
		ret = snapbox_snapshot(sb, b.out, &b.snap, &sp);
	snapbox_destroy(sb);
	for (unsigned i = 0; i < b.nfiles; i++)
		free((void *)b.files[i].data);
	if (ret)
		return snapbox_exit_code(ret);
	if (b.json) {
		fputc('{', stdout);
		cli_json_boot(&cp, &bp);
		fputs(", \"snapshot_profile\": ", stdout);
		snapbox_json_snapshot_profile(stdout, &sp);
		fputs("}\n", stdout);
	} else {
		cli_print_boot(&b, &cp, &bp);
		snapbox_print_snapshot_profile(stdout, &sp);
		printf("snapbox: snapshot written to %s\n", b.out);
	}
	return SNAPBOX_EXIT_OK;
}

static const char snapbox_inspect_usage[] =
	"usage: snapbox inspect DIR [--verify] [--json]\n"
	"\n"
	"Validate and describe a snapshot: sections, versions, sizes, what it was\n"
	"booted from, memory chunk statistics.\n"
	"\n"
	"  --verify          also decode every memory chunk and check its xxh3\n"
	"  --json            one JSON object instead of readable lines\n";

static int snapbox_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verify", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool verify = false, json = false;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'v': verify = true; break;
		case 'j': json = true; break;
		case 'h': fputs(snapbox_inspect_usage, stdout); return SNAPBOX_EXIT_OK;
		default: fputs(snapbox_inspect_usage, stderr); return SNAPBOX_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(snapbox_inspect_usage, stderr);
		return SNAPBOX_EXIT_USAGE;
	}
	ret = snapbox_inspect(argv[optind], verify, json, stdout);
	return ret ? SNAPBOX_EXIT_INPUT : SNAPBOX_EXIT_OK;
}

static const char snapbox_restore_usage[] =
	"usage: snapbox restore DIR [options]\n"
	"\n"
	"Rebuild a VM from the snapshot in DIR and print RestoreProfile. With\n"
	"--resume the guest runs and is PINGed, which fills restore_to_ready.\n"
	"\n"
	"  --mode MODE       eager: decompress every chunk into fresh memory (default);\n"
	"                    cow: map a template decompressed once per snapshot (in\n"
	"                    /dev/shm) privately, sharing every page no clone writes;\n"
	"                    lazy: decompress each chunk when the guest first touches it\n"
	"  --resume          run the restored guest and PING it\n"
	"  --timeout MS      with --resume: the deadline of the REFRESH every restored\n"
	"                    guest gets and of the PING, each (default 5000 times\n"
	"                    $SNAPBOX_TIME_SCALE)\n"
	"  --no-verify       skip the per-chunk xxh3 check\n"
	"  --threads N       decompression threads (default: online CPUs)\n"
	"  --console         copy the guest console to stderr after resume\n"
	"  --json            one JSON object instead of readable lines\n";

static int snapbox_cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "resume", no_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "console", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct snapbox_restore_opts ro = { .console_fd = -1 };
	struct snapbox_restore_profile rp;
	struct snapbox *sb;
	bool json = false;
	unsigned long v;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_mode(optarg, &ro.mode)) {
				fprintf(stderr, "snapbox restore: unknown --mode '%s' (eager, cow or lazy)\n", optarg);
				return SNAPBOX_EXIT_USAGE;
			}
			break;
		case 'r': ro.resume = ro.ping = true; break;
		case 'T':
			if (cli_pos("restore", "timeout", optarg, 86400000, &v))
				return SNAPBOX_EXIT_USAGE;
			ro.ping_timeout_ms = (unsigned)v;
			break;
		case 'n': ro.no_verify = true; break;
		case 'C': ro.console_fd = STDERR_FILENO; break;
		case 'j': json = true; break;
		case 't':
			if (cli_pos("restore", "threads", optarg, 64, &v))
				return SNAPBOX_EXIT_USAGE;
			ro.threads = (unsigned)v;
			break;
		case 'h': fputs(snapbox_restore_usage, stdout); return SNAPBOX_EXIT_OK;
		default: fputs(snapbox_restore_usage, stderr); return SNAPBOX_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(snapbox_restore_usage, stderr);
		return SNAPBOX_EXIT_USAGE;
	}
	ret = snapbox_restore(argv[optind], &ro, &sb, &rp);
	if (ret)
		return snapbox_exit_code(ret);
	if (json) {
		fputs("{\"restore_profile\": ", stdout);
		snapbox_json_restore_profile(stdout, &rp);
		fputs("}\n", stdout);
	} else {
		printf("snapbox: restored %s in %.3f ms%s\n", argv[optind],
		       (double)(ro.resume ? rp.restore_to_ready : rp.total_without_resume) / 1e6,
		       ro.resume ? " (to the first PONG)" : " (not resumed)");
		snapbox_print_restore_profile(stdout, &rp);
	}
	snapbox_destroy(sb);
	return SNAPBOX_EXIT_OK;
}

/* Whether the command line asks for a lazy restore (--mode lazy or --mode=lazy). */
static bool snapbox_wants_lazy(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if ((!strcmp(argv[i], "--mode") && i + 1 < argc && !strcmp(argv[i + 1], "lazy")) ||
		    !strcmp(argv[i], "--mode=lazy"))
			return true;
	return false;
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
	/* Before any option or input file is read: the process never needs a
	 * capability (opening /dev/kvm is file permission), except
	 * CAP_SYS_PTRACE for lazy restores on hosts where userfaultfd needs it. */
	if (snapbox_drop_privileges(snapbox_wants_lazy(argc, argv)))
		return SNAPBOX_EXIT_KVM;
	/* The CLI, not the library, reads this: for strace or valgrind sessions. */
	if (getenv("SNAPBOX_SECCOMP") && !strcmp(getenv("SNAPBOX_SECCOMP"), "0"))
		snapbox_set_confinement(false);
	/* run's own failures are 125: its small codes are the command's. */
	if (cli_time_scale_from_env("snapbox"))
		return strcmp(argv[1], "run") ? SNAPBOX_EXIT_USAGE : 125;
	if (!strcmp(argv[1], "boot"))
		return snapbox_cmd_boot(argc - 1, argv + 1);
	if (!strcmp(argv[1], "snapshot"))
		return snapbox_cmd_snapshot(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore"))
		return snapbox_cmd_restore(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return snapbox_cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return snapbox_cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return snapbox_cmd_bench(argc - 1, argv + 1);
	fprintf(stderr, "snapbox: unknown command '%s'\n", argv[1]);
	fputs(snapbox_usage, stderr);
	return SNAPBOX_EXIT_USAGE;
}
