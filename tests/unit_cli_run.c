/* unit_cli_run.c - `snapbox run`'s argument handling and error paths (no VM is started). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[8192];

static const char *cli(void)
{
	const char *p = getenv("SNAPBOX_CLI");

	return p && *p ? p : "build/snapbox";
}

/* Run `<exe> run <args>` with an optional environment prefix; output (both streams) in out. */
static int run(const char *exe, const char *envp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int run(const char *exe, const char *envp, const char *fmt, ...)
{
	char args[1024], cmd[2048];
	size_t n;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "env %s %s run %s 2>&1", envp ? envp : "", exe, args);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_cli(void)
{
	if (access(cli(), X_OK) != 0) {
		if (!getenv("SNAPBOX_CLI"))
			cr_skip_test("%s not built", cli());
		cr_assert_fail("%s missing", cli());
	}
}

TestSuite(cli_run, .init = need_cli, .timeout = 60);

Test(cli_run, help_documents_the_exit_codes)
{
	cr_assert_eq(run(cli(), NULL, "--help"), 0);
	cr_assert(strstr(out, "124"), "%s", out);
	cr_assert(strstr(out, "125"));
	cr_assert(strstr(out, "127"));
	cr_assert(strstr(out, "128+N"));
}

Test(cli_run, bad_arguments_exit_125_with_a_reason)
{
	cr_assert_eq(run(cli(), NULL, "%s", ""), 125);
	cr_assert(strstr(out, "no command given"), "%s", out);
	cr_assert_eq(run(cli(), NULL, "--env NOEQUALS -- true"), 125);
	cr_assert(strstr(out, "KEY=VALUE"), "%s", out);
	cr_assert_eq(run(cli(), NULL, "--env =x -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--timeout 0 -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--timeout abc -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--cwd relative -- true"), 125);
	cr_assert(strstr(out, "absolute"), "%s", out);
	cr_assert_eq(run(cli(), NULL, "--mode cow -- true"), 125);
	cr_assert(strstr(out, "--mode needs --snapshot"), "%s", out);
	cr_assert_eq(run(cli(), NULL, "--snapshot /x --mode lazy -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--snapshot /x --kernel /y -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--mem lots -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--boot-timeout 0 -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--no-such-option -- true"), 125);
	cr_assert_eq(run(cli(), NULL, "--stdin /no/such/file -- true"), 125);
	cr_assert(strstr(out, "/no/such/file"), "%s", out);
}

Test(cli_run, command_options_are_not_ours)
{
	/* '--help' after the command belongs to the command: it must not print our help. */
	cr_assert_eq(run(cli(), "SNAPBOX_KERNEL=/no/such/vmlinux SNAPBOX_INITRD=/no/such/initrd",
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
	snprintf(cmd, sizeof(cmd), "cp %s %s", cli(), exe);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(run(exe, "-u SNAPBOX_KERNEL -u SNAPBOX_INITRD", "-- true"), 125);
	cr_assert(strstr(out, "make guest"), "%s", out);
	cr_assert_eq(run(exe, "-u SNAPBOX_INITRD", "--kernel /bin/true -- true"), 125);
	cr_assert(strstr(out, "make initramfs"), "%s", out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	cr_assert_eq(system(cmd), 0);
}
