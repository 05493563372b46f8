/* linux_guest.c - what the agent sets up for programs in the Linux guest (loopback, devpts, /dev links, hostname) and exec's user, on real KVM (the nested lab). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/common_kvm.h"

#define LG_CMD_TIMEOUT_MS  tests_ms(120000)

/* sh -c script as user (NULL: root); the reply, asserted to have arrived. */
static void lg_sh(struct snapbox *sb, const char *user, const char *script,
		  struct snapbox_exec_result *r)
{
	const char *const argv[] = { "/bin/sh", "-c", script, NULL };
	struct snapbox_exec_opts o = { .argv = argv, .user = user, .timeout_ms = LG_CMD_TIMEOUT_MS };
	int ret = snapbox_exec(sb, &o, r);

	cr_assert_eq(ret, 0, "exec as %s: %s", user ? user : "root", strerror(-ret));
}

Test(linux_guest, loopback_serves_tcp_and_the_pseudo_file_systems_are_there)
{
	/* busybox's httpd daemonizes onto /dev/null, so the command ends while it
	 * serves; nc is the client (Debian's static busybox wget crashes in glibc's
	 * static resolver, on any host). */
	static const char script[] =
		"ip addr show lo | grep -q 'inet 127.0.0.1/8' && echo lo4;"
		"ip addr show lo | grep -q 'inet6 ::1/128' && echo lo6;"
		"mkdir -p /tmp/www && echo served > /tmp/www/x &&"
		" httpd -p 127.0.0.1:8080 -h /tmp/www && httpd -p '[::1]:8081' -h /tmp/www &&"
		" printf 'GET /x HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 | tail -n 1 &&"
		" printf 'GET /x HTTP/1.0\\r\\n\\r\\n' | nc ::1 8081 | tail -n 1;"
		"test -c /dev/ptmx && grep -q ' /dev/pts devpts ' /proc/mounts && echo pts;"
		"test -L /dev/fd && test \"$(readlink /dev/stdin)\" = /proc/self/fd/0 && echo fd;"
		"grep -q ' /dev/shm tmpfs ' /proc/mounts && echo shm;"
		"hostname";
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	lg_sh(sb, NULL, script, &r);
	cr_assert_str_eq((char *)r.out, "lo4\nlo6\nserved\nserved\npts\nfd\nshm\nsnapbox\n", "got: %s (stderr %s)",
			 r.out, r.err);
	snapbox_exec_result_free(&r);
	snapbox_destroy(sb);
}

Test(linux_guest, exec_runs_as_a_user_and_root_files_stay_out_of_reach)
{
	struct snapbox *sb = tests_boot_linux(NULL);
	struct snapbox_exec_result r;

	lg_sh(sb, "4321:4322", "echo $(id -u) $(id -g) $HOME; echo x > /tmp/u; ls -n /tmp/u | "
	      "awk '{print $3, $4}'; echo y > /init", &r);
	cr_assert_neq(r.exit_code, 0, "a user wrote root's /init");
	cr_assert_str_eq((char *)r.out, "4321 4322 /\n4321 4322\n", "got: %s", r.out);
	snapbox_exec_result_free(&r);
	/* This initramfs has no /etc/passwd: a name is unknown, and the command never runs. */
	{
		const char *const argv[] = { "true", NULL };
		struct snapbox_exec_opts o = { .argv = argv, .user = "user", .timeout_ms = LG_CMD_TIMEOUT_MS };

		cr_assert_eq(snapbox_exec(sb, &o, &r), -ESRCH);
	}
	lg_sh(sb, NULL, "id -u", &r);
	cr_assert_str_eq((char *)r.out, "0\n");
	snapbox_exec_result_free(&r);
	snapbox_destroy(sb);
}
