/* unit_cli_run.c - `snapbox run`'s argument handling and error paths (no VM is started). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapbox.h"
#include "tests/common_cli.h"

static char out[8192];

/* Run `<exe> run <args>` with an optional environment prefix; output (both streams) in out. */
static int run(const char *exe, const char *envp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int run(const char *exe, const char *envp, const char *fmt, ...)
{
	char args[1024];
	va_list ap;

	memcpy(args, "run ", 4);
	va_start(ap, fmt);
	vsnprintf(args + 4, sizeof(args) - 4, fmt, ap);
	va_end(ap);
	return tests_cli_capture(exe, envp, args, out, sizeof(out));
}

TestSuite(cli_run, .init = tests_require_cli, .timeout = 60);

Test(cli_run, help_documents_the_exit_codes)
{
	cr_assert_eq(run(tests_cli_path(), NULL, "--help"), 0);
	cr_assert(strstr(out, "124"), "%s", out);
	cr_assert(strstr(out, "125"));
	cr_assert(strstr(out, "127"));
	cr_assert(strstr(out, "128+N"));
	cr_assert(strstr(out, "--restore-timeout MS"), "%s", out);
	cr_assert(strstr(out, "SNAPBOX_TIME_SCALE"), "%s", out);
}

Test(cli_run, bad_arguments_exit_125_with_a_reason)
{
	cr_assert_eq(run(tests_cli_path(), NULL, "%s", ""), 125);
	cr_assert(strstr(out, "no command given"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--env NOEQUALS -- true"), 125);
	cr_assert(strstr(out, "KEY=VALUE"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--env =x -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--timeout 0 -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--timeout abc -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--cwd relative -- true"), 125);
	cr_assert(strstr(out, "absolute"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--mode cow -- true"), 125);
	cr_assert(strstr(out, "--mode needs --snapshot"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--snapshot /x --mode lazy -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--snapshot /x --kernel /y -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--mem lots -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--boot-timeout 0 -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--restore-timeout 500 -- true"), 125);
	cr_assert(strstr(out, "--restore-timeout needs --snapshot"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--snapshot /x --restore-timeout 0 -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--snapshot /x --restore-timeout -5 -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), "SNAPBOX_TIME_SCALE=fast", "-- true"), 125);
	cr_assert(strstr(out, "SNAPBOX_TIME_SCALE"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--no-such-option -- true"), 125);
	cr_assert_eq(run(tests_cli_path(), NULL, "--stdin /no/such/file -- true"), 125);
	cr_assert(strstr(out, "/no/such/file"), "%s", out);
}

Test(cli_run, command_options_are_not_ours)
{
	/* '--help' after the command belongs to the command: it must not print our help. */
	cr_assert_eq(run(tests_cli_path(), "SNAPBOX_KERNEL=/no/such/vmlinux SNAPBOX_INITRD=/no/such/initrd",
			 "echo --help"), 125);
	cr_assert_null(strstr(out, "usage: snapbox run"), "%s", out);
	cr_assert(strstr(out, "/no/such/vmlinux"), "%s", out);
}

Test(cli_run, missing_kernel_says_make_guest)
{
	char tmpl[] = "/tmp/snapbox-cli-XXXXXX", exe[128], cmd[512];

	/* A copy of the CLI with no build tree around it finds no kernel. */
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(exe, sizeof(exe), "%s/snapbox", tmpl);
	snprintf(cmd, sizeof(cmd), "cp %s %s", tests_cli_path(), exe);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(run(exe, "-u SNAPBOX_KERNEL -u SNAPBOX_INITRD", "-- true"), 125);
	cr_assert(strstr(out, "make guest"), "%s", out);
	cr_assert_eq(run(exe, "-u SNAPBOX_INITRD", "--kernel /bin/true -- true"), 125);
	cr_assert(strstr(out, "make initramfs"), "%s", out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	cr_assert_eq(system(cmd), 0);
}

Test(cli_run, missing_inputs_are_named_before_kvm_is_opened)
{
	/* On any host, with or without /dev/kvm: the missing file is what is
	 * reported, with the input error's exit status, never "no KVM" (4). */
	cr_assert_eq(tests_cli_capture(tests_cli_path(), NULL, "boot --kernel /no/such/vmlinux", out,
				       sizeof(out)), 3, "%s", out);
	cr_assert(strstr(out, "/no/such/vmlinux"), "%s", out);
	cr_assert_null(strstr(out, "/dev/kvm"), "%s", out);
	cr_assert_eq(tests_cli_capture(tests_cli_path(), NULL,
				       "snapshot --kernel /bin/true --initrd /no/such/initrd --out /tmp/x",
				       out, sizeof(out)), 3, "%s", out);
	cr_assert(strstr(out, "/no/such/initrd"), "%s", out);
	cr_assert_null(strstr(out, "/dev/kvm"), "%s", out);
	cr_assert_eq(tests_cli_capture(tests_cli_path(), NULL, "restore /no/such/snapshot", out,
				       sizeof(out)), 3, "%s", out);
	cr_assert(strstr(out, "/no/such/snapshot"), "%s", out);
	cr_assert_null(strstr(out, "/dev/kvm"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--snapshot /no/such/snapshot -- true"), 125, "%s", out);
	cr_assert(strstr(out, "/no/such/snapshot"), "%s", out);
	cr_assert_eq(run(tests_cli_path(), NULL, "--kernel /no/such/vmlinux --initrd /bin/true -- true"),
		     125, "%s", out);
	cr_assert(strstr(out, "/no/such/vmlinux"), "%s", out);
	cr_assert_null(strstr(out, "/dev/kvm"), "%s", out);
}

Test(cli_run, exit_codes_keep_the_kind_of_failure)
{
	/* KVM itself, the guest, the input, and the host each have their code:
	 * out of memory or a snapshot this CPU cannot honour is not "bad input". */
	cr_assert_eq(snapbox_exit_code(0), SNAPBOX_EXIT_OK);
	cr_assert_eq(snapbox_exit_code(-ENODEV), SNAPBOX_EXIT_KVM);
	cr_assert_eq(snapbox_exit_code(-ETIMEDOUT), SNAPBOX_EXIT_GUEST);
	cr_assert_eq(snapbox_exit_code(-ENOENT), SNAPBOX_EXIT_INPUT);
	cr_assert_eq(snapbox_exit_code(-EPROTO), SNAPBOX_EXIT_INPUT);
	cr_assert_eq(snapbox_exit_code(-ENOMEM), SNAPBOX_EXIT_HOST);
	cr_assert_eq(snapbox_exit_code(-ENOTSUP), SNAPBOX_EXIT_HOST);
	cr_assert_eq(snapbox_exit_code(-EBUSY), SNAPBOX_EXIT_HOST);
	cr_assert_eq(snapbox_exit_code(-EIO), SNAPBOX_EXIT_HOST);
	/* and the CLI documents it */
	cr_assert_eq(tests_cli_capture(tests_cli_path(), NULL, "--help", out, sizeof(out)), 0);
	cr_assert(strstr(out, "  5  this host failed"), "%s", out);
}
