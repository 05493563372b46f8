/* unit_agent_user.c - EXEC's user: the agent, in test mode on the host (root), switches to a user of the host's /etc/passwd or to a bare UID:GID. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/agent.h"
#include "tests/common_agent.h"

static struct tagent T;

static void fini(void)
{
	tagent_stop(&T);
}

TestSuite(agent_user, .fini = fini, .timeout = 60);

/* Setting groups, gid and uid needs root; the test process is the agent's parent. */
static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("exec's user needs the agent to run as root");
}

/* `sh -c SCRIPT` as user with env; the reply's stdout, asserted exit 0. */
static void as(const char *user, const char *const *env, const char *script, char *out, size_t cap)
{
	const char *const argv[] = { "sh", "-c", script, NULL };
	struct snapbox_exec_opts o = {
		.argv = argv, .env = env, .user = user, .timeout_ms = tests_ms(10000),
	};
	struct snapbox_exec_result r;
	int ret = agentreq_exec(&T.chan, &o, &r);

	cr_assert_eq(ret, 0, "exec as %s: %s", user ? user : "root", strerror(-ret));
	cr_assert_eq(r.exit_code, 0, "exec as %s exited %d: %s", user ? user : "root", r.exit_code,
		     r.err);
	snprintf(out, cap, "%s", (char *)r.out);
	snapbox_exec_result_free(&r);
}

Test(agent_user, a_named_user_gets_its_ids_home_and_names)
{
	struct passwd *pw = getpwnam("nobody");
	char want[512], got[512];

	need_root();
	cr_assert_not_null(pw, "the host has no user nobody");
	snprintf(want, sizeof(want), "%u %u %s nobody nobody\n", (unsigned)pw->pw_uid,
		 (unsigned)pw->pw_gid, pw->pw_dir);
	tagent_start(&T, TAGENT_SOCKET, 300);
	as("nobody", NULL, "echo $(id -u) $(id -g) $HOME $USER $LOGNAME", got, sizeof(got));
	cr_assert_str_eq(got, want);
	/* Without a user the command stays root, and its env stays exact. */
	as(NULL, NULL, "echo $(id -u) ${HOME-unset}", got, sizeof(got));
	cr_assert_str_eq(got, "0 unset\n");
}

Test(agent_user, a_bare_uid_and_gid_run_as_themselves)
{
	static const char *const env[] = { "HOME=/tmp", NULL };
	char got[512];

	need_root();
	tagent_start(&T, TAGENT_SOCKET, 300);
	as("43210:43211", NULL, "echo $(id -u) $(id -g) $(id -G) $HOME $USER", got, sizeof(got));
	cr_assert_str_eq(got, "43210 43211 43211 / 43210\n");
	/* A UID alone takes it as the gid too; the caller's HOME is kept. */
	as("43210", env, "echo $(id -g) $HOME", got, sizeof(got));
	cr_assert_str_eq(got, "43210 /tmp\n");
}

Test(agent_user, unknown_or_malformed_users_are_refused)
{
	static const char *const argv[] = { "true", NULL };
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(5000) };
	struct snapbox_exec_result r;

	need_root();
	tagent_start(&T, TAGENT_SOCKET, 300);
	o.user = "no-such-user-here";
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -ESRCH);
	o.user = "12:ab";
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -EINVAL);
	/* Refused by the host before anything is sent. */
	o.user = "";
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -EINVAL);
	o.user = ":12";
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -EINVAL);
	o.user = NULL;
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	snapbox_exec_result_free(&r);
}

Test(agent_user, cwd_is_entered_with_the_users_rights)
{
	static const char *const argv[] = { "pwd", NULL };
	struct snapbox_exec_opts o = {
		.argv = argv, .cwd = "/root", .user = "43210", .timeout_ms = tests_ms(5000),
	};
	struct snapbox_exec_result r;
	struct stat st;

	need_root();
	cr_assert_eq(stat("/root", &st), 0);
	if (st.st_mode & 0001)
		cr_skip_test("/root is world-searchable on this host");
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), -EACCES);
	o.user = NULL;
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_str_eq((char *)r.out, "/root\n");
	snapbox_exec_result_free(&r);
}
