/* unit_tenants.c - snapboxd's token file: pairs or one bare token, unique names and tokens, lengths, a file open to others refused; lookups find exactly the right tenant. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/srv.h"
#include "tests/common_snap.h"

static char *tt_dir;
static struct srv tt_srv;

static void tt_setup(void)
{
	tt_dir = tests_mkdtemp("tenants");
	memset(&tt_srv, 0, sizeof(tt_srv));
}

static void tt_teardown(void)
{
	srv_tenants_fini(&tt_srv);
	tests_rm_rf(tt_dir);
	free(tt_dir);
}

/* Write text to the token file with mode; load it. */
static int tt_load(const char *text, mode_t mode)
{
	char *p = tests_path("%s/tokens", tt_dir);
	FILE *f = fopen(p, "w");
	int ret;

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(chmod(p, mode), 0);
	srv_tenants_fini(&tt_srv);
	ret = srv_tenants_load(&tt_srv, p);
	free(p);
	return ret;
}

TestSuite(tenants, .init = tt_setup, .fini = tt_teardown);

Test(tenants, pairs_and_a_bare_token)
{
	cr_assert_eq(tt_load("# tenants\nalice aaaaaaaaaaaaaaaaaaaa\n\nbob   bbbbbbbbbbbbbbbbbbbb\n", 0600), 0);
	cr_assert_eq(tt_srv.ntenants, 2);
	cr_assert_str_eq(srv_tenant_by_token(&tt_srv, "bbbbbbbbbbbbbbbbbbbb")->name, "bob");
	cr_assert_str_eq(srv_tenant_by_token(&tt_srv, "aaaaaaaaaaaaaaaaaaaa")->name, "alice");
	cr_assert_null(srv_tenant_by_token(&tt_srv, "aaaaaaaaaaaaaaaaaaa"), "a prefix found a tenant");
	cr_assert_null(srv_tenant_by_token(&tt_srv, ""));
	cr_assert_eq(tt_load("cccccccccccccccccccc\n", 0400), 0);
	cr_assert_str_eq(srv_tenant_by_token(&tt_srv, "cccccccccccccccccccc")->name, "default");
	/* Comments and blank lines do not count: the bare token is still the one entry. */
	cr_assert_eq(tt_load("# the service's token\n\ndddddddddddddddddddd\n", 0600), 0);
	cr_assert_str_eq(srv_tenant_by_token(&tt_srv, "dddddddddddddddddddd")->name, "default");
}

Test(tenants, bad_files_are_refused)
{
	static const char *const bad[] = {
		"alice short\n",                                            /* token too short */
		"alice aaaaaaaaaaaaaaaaaaaa\nalice bbbbbbbbbbbbbbbbbbbb\n",  /* a name twice */
		"alice aaaaaaaaaaaaaaaaaaaa\nbob aaaaaaaaaaaaaaaaaaaa\n",    /* a token twice */
		"al/ice aaaaaaaaaaaaaaaaaaaa\n",                            /* not a name */
		"alice aaaaaaaaaaaaaaaaaaaa extra\n",
		"aaaaaaaaaaaaaaaaaaaa\nbob bbbbbbbbbbbbbbbbbbbb\n",          /* bare among pairs */
		"# only a comment\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_neq(tt_load(bad[i], 0600), 0, "accepted: %s", bad[i]);
	cr_assert_eq(tt_load("alice aaaaaaaaaaaaaaaaaaaa\n", 0640), -EPERM, "a file others may read");
}
