/* snapbox_run.c - `snapbox run`: boot (or restore) a sandbox, run one command through the agent, relay its output and status. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapbox.h"
#include "tools/snapbox_cli.h"

/* `snapbox run` exits with the command's status; its own outcomes use these. */
#define RUN_EXIT_TIMEOUT   124   /* the command hit --timeout (as GNU timeout) */
#define RUN_EXIT_SNAPBOX   125   /* snapbox failed: usage, boot, restore, KVM, guest */
#define RUN_EXIT_CANNOT    126   /* the guest could not run the command (permission, cwd, ...) */
#define RUN_EXIT_NOTFOUND  127   /* no such command in the guest */

#define RUN_MAX_ENV        4096
#define RUN_MAX_STDIN      (1u << 20)
#define RUN_STDERR_CAP     (256u << 10)  /* the rest of SNAPBOX_EXEC_MAX_OUTPUT is stdout */
#define RUN_CMDLINE        "console=ttyS0 quiet panic=-1 init_on_free=1"
#define RUN_CMDLINE_LOUD   "console=ttyS0 panic=-1 init_on_free=1"

static const char run_usage[] =
	"usage: snapbox run [options] -- CMD [ARGS...]\n"
	"\n"
	"Cold-boot a Linux sandbox (or restore one from a snapshot), run CMD in it\n"
	"through the guest agent, copy its stdout and stderr to ours, destroy the\n"
	"sandbox and exit with CMD's exit status.\n"
	"\n"
	"  --kernel FILE       guest kernel (vmlinux or bzImage); default: $SNAPBOX_KERNEL,\n"
	"                      else the project's kernel (make guest)\n"
	"  --initrd FILE       initramfs with the agent as /init; default: $SNAPBOX_INITRD,\n"
	"                      else build/guest/initramfs.cpio.gz (make initramfs)\n"
	"  --image NAME        boot the guest image NAME (make image IMAGE_NAME=NAME; 'python'\n"
	"                      has python3 and its standard library) or an image file, instead\n"
	"                      of --initrd\n"
	"  --snapshot DIR      restore this snapshot instead of booting\n"
	"  --mode eager|cow    restore mode with --snapshot (default eager)\n"
	"  --env KEY=VALUE     add to the command's environment (repeatable); the command\n"
	"                      gets only these, plus a default PATH when none is given\n"
	"  --cwd DIR           working directory in the guest (default /)\n"
	"  --user USER         run as USER: a name from the guest's /etc/passwd, or UID or\n"
	"                      UID:GID (default root); adds HOME, USER and LOGNAME unless\n"
	"                      --env sets them\n"
	"  --timeout SECONDS   kill the command's whole process group after this long\n"
	"                      (default 30; fractions allowed)\n"
	"  --stdin FILE        feed FILE ('-': our stdin) to the command, at most 1 MiB\n"
	"  --mem SIZE          guest memory (default 256M)\n"
	"  --cmdline STR       kernel command line (default \"" RUN_CMDLINE "\")\n"
	"  --boot-timeout MS   give up when the agent is not READY after MS ms (default 10000)\n"
	"  --restore-timeout MS  with --snapshot: the deadline of the restored guest's\n"
	"                      REFRESH and of its first PING, each (default 5000)\n"
	"  --console           copy the guest console to stderr (and boot without 'quiet')\n"
	"  -h, --help          this text\n"
	"\n"
	"--timeout is the command's own limit, enforced in the guest. The host's\n"
	"deadlines (boot, restore, and the wait for the command's reply beyond\n"
	"--timeout) default to the values above times $SNAPBOX_TIME_SCALE (a number\n"
	"from 1 to 1000, default 1), for slow or emulated hosts.\n"
	"\n"
	"exit status:\n"
	"  N                   the command's exit status (0-255)\n"
	"  124                 the command timed out (--timeout) and was killed\n"
	"  125                 snapbox itself failed (bad options, no kernel, boot, KVM, guest)\n"
	"  126                 the guest could not run the command (permission, bad --cwd,\n"
	"                      unknown --user)\n"
	"  127                 the command was not found in the guest\n"
	"  128+N               the command was killed by signal N\n"
	"\n"
	"Output beyond about 3.75 MiB (stdout) or 256 KiB (stderr) is dropped, with a warning.\n";

struct run_opts {
	struct snapbox_config cfg;
	const char *snapshot;
	enum snapbox_restore_mode mode;
	bool mode_set;
	const char **env;          /* NULL-terminated, RUN_MAX_ENV at most */
	size_t nenv;
	const char *cwd;
	const char *user;
	unsigned timeout_ms;
	unsigned restore_timeout_ms;
	const char *stdin_path;
	const char *image;         /* --image NAME: its initramfs replaces --initrd */
	char **cmd;
};

enum { RUN_KERNEL = 256, RUN_INITRD, RUN_SNAPSHOT, RUN_MODE, RUN_ENV, RUN_CWD, RUN_USER, RUN_TIMEOUT,
       RUN_STDIN, RUN_MEM, RUN_CMDLINE_OPT, RUN_BOOT_TIMEOUT, RUN_CONSOLE, RUN_IMAGE,
       RUN_RESTORE_TIMEOUT };

static int run_bad(const char *what, const char *arg)
{
	fprintf(stderr, "snapbox run: bad %s '%s' (see snapbox run --help)\n", what, arg);
	return RUN_EXIT_SNAPBOX;
}

/* Milliseconds, 1..86400000. */
static int run_parse_ms(const char *s, unsigned *ms)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v == 0 || v > 86400000)
		return -EINVAL;
	*ms = (unsigned)v;
	return 0;
}

/* Seconds with an optional fraction, to ms: "30", "1.5", "0.25". */
static int run_parse_seconds(const char *s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		return -EINVAL;
	*ms = (unsigned)(v * 1000 + 0.5);
	return *ms ? 0 : -EINVAL;
}

/* Returns -1 to go on, or an exit code. */
static int run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, RUN_KERNEL },
		{ "initrd", required_argument, NULL, RUN_INITRD },
		{ "snapshot", required_argument, NULL, RUN_SNAPSHOT },
		{ "image", required_argument, NULL, RUN_IMAGE },
		{ "mode", required_argument, NULL, RUN_MODE },
		{ "env", required_argument, NULL, RUN_ENV },
		{ "cwd", required_argument, NULL, RUN_CWD },
		{ "user", required_argument, NULL, RUN_USER },
		{ "timeout", required_argument, NULL, RUN_TIMEOUT },
		{ "stdin", required_argument, NULL, RUN_STDIN },
		{ "mem", required_argument, NULL, RUN_MEM },
		{ "cmdline", required_argument, NULL, RUN_CMDLINE_OPT },
		{ "boot-timeout", required_argument, NULL, RUN_BOOT_TIMEOUT },
		{ "restore-timeout", required_argument, NULL, RUN_RESTORE_TIMEOUT },
		{ "console", no_argument, NULL, RUN_CONSOLE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->cfg.console_fd = -1;
	optind = 1;
	/* '+': stop at the command, so its own options are never ours. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case RUN_KERNEL: o->cfg.kernel = optarg; break;
		case RUN_INITRD: o->cfg.initrd = optarg; break;
		case RUN_SNAPSHOT: o->snapshot = optarg; break;
		case RUN_IMAGE: o->image = optarg; break;
		case RUN_CWD: o->cwd = optarg; break;
		case RUN_USER: o->user = optarg; break;
		case RUN_STDIN: o->stdin_path = optarg; break;
		case RUN_CMDLINE_OPT: o->cfg.cmdline = optarg; break;
		case RUN_CONSOLE: o->cfg.console_fd = STDERR_FILENO; break;
		case RUN_MODE:
			/* lazy needs CAP_SYS_PTRACE kept, which run does not ask for */
			if (cli_parse_mode(optarg, &o->mode) || o->mode == SNAPBOX_RESTORE_LAZY)
				return run_bad("--mode", optarg);
			o->mode_set = true;
			break;
		case RUN_ENV:
			if (optarg[0] == '=' || !strchr(optarg, '='))
				return run_bad("--env (want KEY=VALUE)", optarg);
			if (o->nenv == RUN_MAX_ENV)
				return run_bad("--env (too many)", optarg);
			o->env[o->nenv++] = optarg;
			break;
		case RUN_TIMEOUT:
			if (run_parse_seconds(optarg, &o->timeout_ms))
				return run_bad("--timeout (seconds, at most 86400)", optarg);
			break;
		case RUN_MEM:
			if (cli_parse_size(optarg, &o->cfg.mem_bytes))
				return run_bad("--mem (try 256M or 1G)", optarg);
			break;
		case RUN_BOOT_TIMEOUT:
			if (run_parse_ms(optarg, &o->cfg.boot_timeout_ms))
				return run_bad("--boot-timeout (ms)", optarg);
			break;
		case RUN_RESTORE_TIMEOUT:
			if (run_parse_ms(optarg, &o->restore_timeout_ms))
				return run_bad("--restore-timeout (ms)", optarg);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fputs(run_usage, stderr);
			return RUN_EXIT_SNAPBOX;
		}
	}
	if (optind >= argc) {
		fputs("snapbox run: no command given (snapbox run [options] -- CMD ARGS...)\n", stderr);
		return RUN_EXIT_SNAPBOX;
	}
	if (o->snapshot && (o->cfg.kernel || o->cfg.initrd || o->cfg.cmdline || o->cfg.mem_bytes)) {
		fputs("snapbox run: --snapshot restores a booted VM; --kernel, --initrd, --cmdline "
		      "and --mem do not apply\n", stderr);
		return RUN_EXIT_SNAPBOX;
	}
	if ((o->mode_set || o->restore_timeout_ms) && !o->snapshot) {
		fprintf(stderr, "snapbox run: %s needs --snapshot\n",
			o->mode_set ? "--mode" : "--restore-timeout");
		return RUN_EXIT_SNAPBOX;
	}
	if (o->cwd && o->cwd[0] != '/')
		return run_bad("--cwd (an absolute guest path)", o->cwd);
	if (o->image && (o->cfg.initrd || o->snapshot))
		return run_bad("--image (with --initrd or --snapshot)", o->image);
	o->cmd = argv + optind;
	if (!o->cfg.cmdline)
		o->cfg.cmdline = o->cfg.console_fd >= 0 ? RUN_CMDLINE_LOUD : RUN_CMDLINE;
	return -1;
}

/* Read --stdin into a malloc'd buffer (at most RUN_MAX_STDIN bytes). */
static int run_read_stdin(const char *path, uint8_t **buf, size_t *len)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	uint8_t *b;
	size_t have = 0;

	if (fd < 0) {
		fprintf(stderr, "snapbox run: --stdin %s: %s\n", path, strerror(errno));
		return -errno;
	}
	b = malloc(RUN_MAX_STDIN + 1);
	while (b && have <= RUN_MAX_STDIN) {
		ssize_t n = read(fd, b + have, RUN_MAX_STDIN + 1 - have);

		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "snapbox run: reading --stdin %s: %s\n", path, strerror(errno));
			have = RUN_MAX_STDIN + 2;
			break;
		}
		have += (size_t)n;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (b && have > RUN_MAX_STDIN) {
		if (have == RUN_MAX_STDIN + 1)
			fprintf(stderr, "snapbox run: --stdin %s is larger than 1 MiB\n", path);
		free(b);
		return -E2BIG;
	}
	*buf = b;
	*len = have;
	return b ? 0 : -ENOMEM;
}

static void run_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;   /* our stdout is gone (EPIPE): nothing more to do */
		p += w;
		n -= (size_t)w;
	}
}

/* Boot from kernel + initramfs, or restore --snapshot. Returns 0 or an exit code. */
static int run_start(struct run_opts *o, struct snapbox **sb)
{
	char *kernel = NULL, *initrd = NULL;
	int ret;

	if (o->snapshot) {
		struct snapbox_restore_opts ro = { .mode = o->mode, .resume = true, .ping = true,
						   .console_fd = o->cfg.console_fd,
						   .ping_timeout_ms = o->restore_timeout_ms };

		return snapbox_restore(o->snapshot, &ro, sb, NULL) ? RUN_EXIT_SNAPBOX : 0;
	}
	if (!o->cfg.kernel) {
		kernel = cli_find_asset("SNAPBOX_KERNEL", "vmlinux", true);
		if (!kernel) {
			fputs("snapbox run: no guest kernel found: run 'make guest' to build the "
			      "project's kernel, or pass --kernel FILE (or set SNAPBOX_KERNEL)\n", stderr);
			return RUN_EXIT_SNAPBOX;
		}
		o->cfg.kernel = kernel;
	}
	if (o->image) {
		initrd = cli_find_image(o->image);
		if (!initrd) {
			fprintf(stderr, "snapbox run: no guest image '%s': build it with 'make image "
				"IMAGE_NAME=%s' (or give a path to an image file)\n", o->image, o->image);
			free(kernel);
			return RUN_EXIT_SNAPBOX;
		}
		o->cfg.initrd = initrd;
	}
	if (!o->cfg.initrd) {
		initrd = cli_find_asset("SNAPBOX_INITRD", "initramfs.cpio.gz", false);
		if (!initrd) {
			fputs("snapbox run: no agent initramfs found: run 'make guest' and 'make "
			      "initramfs', or pass --initrd FILE (or set SNAPBOX_INITRD)\n", stderr);
			free(kernel);
			return RUN_EXIT_SNAPBOX;
		}
		o->cfg.initrd = initrd;
	}
	ret = snapbox_boot(&o->cfg, sb, NULL, NULL);
	free(kernel);
	free(initrd);
	return ret ? RUN_EXIT_SNAPBOX : 0;
}

/* The command's outcome as our exit status, with the warnings it deserves. */
static int run_status(const struct run_opts *o, const struct snapbox_exec_result *r)
{
	if (r->out_truncated)
		fprintf(stderr, "snapbox run: stdout truncated to %zu bytes\n", r->out_len);
	if (r->err_truncated)
		fprintf(stderr, "snapbox run: stderr truncated to %zu bytes\n", r->err_len);
	if (r->timed_out) {
		fprintf(stderr, "snapbox run: '%s' timed out after %.3f s and was killed\n", o->cmd[0],
			(o->timeout_ms ? o->timeout_ms : 30000) / 1000.0);
		return RUN_EXIT_TIMEOUT;
	}
	return r->signaled ? 128 + r->signal : r->exit_code;
}

int snapbox_cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	struct snapbox_exec_opts eo = { 0 };
	struct snapbox_exec_result r;
	struct snapbox *sb = NULL;
	uint8_t *in = NULL;
	size_t inlen = 0;
	int ret;

	o.env = calloc(RUN_MAX_ENV + 1, sizeof(*o.env));
	if (!o.env)
		return RUN_EXIT_SNAPBOX;
	ret = run_parse(argc, argv, &o);
	if (ret >= 0)
		goto out;
	if (o.stdin_path && run_read_stdin(o.stdin_path, &in, &inlen)) {
		ret = RUN_EXIT_SNAPBOX;
		goto out;
	}
	ret = run_start(&o, &sb);
	if (ret)
		goto out;
	eo.argv = (const char *const *)o.cmd;
	eo.env = o.env;
	eo.cwd = o.cwd;
	eo.user = o.user;
	eo.stdin_data = in;
	eo.stdin_len = inlen;
	eo.timeout_ms = o.timeout_ms;
	/* A CLI user expects the whole output: the largest caps one reply can carry. */
	eo.stderr_cap = RUN_STDERR_CAP;
	eo.stdout_cap = SNAPBOX_EXEC_MAX_OUTPUT - RUN_STDERR_CAP;
	ret = snapbox_exec(sb, &eo, &r);
	if (ret == -ENOENT) {
		ret = RUN_EXIT_NOTFOUND;
	} else if (ret == -EACCES || ret == -EPERM || ret == -ENOEXEC || ret == -ENOTDIR ||
		   ret == -ELOOP || ret == -ETXTBSY || ret == -EISDIR || ret == -ESRCH) {
		ret = RUN_EXIT_CANNOT;
	} else if (ret) {
		ret = RUN_EXIT_SNAPBOX;
	} else {
		run_write_all(STDOUT_FILENO, r.out, r.out_len);
		run_write_all(STDERR_FILENO, r.err, r.err_len);
		ret = run_status(&o, &r);
		snapbox_exec_result_free(&r);
	}
out:
	snapbox_destroy(sb);
	free(in);
	free(o.env);
	return ret;
}
