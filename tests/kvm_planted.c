/* kvm_planted.c - a cow restore with the default template directory that another user planted first: it still restores (a private copy), and nothing of the planted directory is used. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/common_kvm.h"
#include "tests/common_snap.h"

/*
 * In a mount namespace of this test's own, with a /dev/shm of its own: the
 * machine's real template directory (shared with every other run) is never
 * touched. Skips where namespaces or mounts are refused.
 */
static bool tp_private_shm(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=512m,mode=1777"))
		return false;
	return true;
}

Test(kvm_planted, a_planted_template_directory_costs_sharing_not_service)
{
	struct snapbox_restore_opts o = { .mode = SNAPBOX_RESTORE_COW, .resume = true, .ping = true,
					  .console_fd = -1 };
	char *dir, *snap, planted[64];
	struct snapbox *sb = NULL;
	uint64_t h;
	int ret;

	TESTS_REQUIRE_KVM();
	if (!tp_private_shm())
		cr_skip_test("no private mount namespace here: %s", strerror(errno));
	dir = tests_mkdtemp("planted");
	snap = tests_path("%s/snap", dir);
	h = tests_make_snapshot(snap);
	/* Another user's directory, open to all, in the template directory's place. */
	snprintf(planted, sizeof(planted), "/dev/shm/snapbox-%u", (unsigned)geteuid());
	cr_assert_eq(mkdir(planted, 0777), 0);
	cr_assert_eq(chmod(planted, 0777), 0);
	if (geteuid() == 0)
		cr_assert_eq(chown(planted, 65534, 65534), 0);
	ret = snapbox_restore(snap, &o, &sb, NULL);
	cr_assert_eq(ret, 0, "a planted directory denied the restore: %s", strerror(-ret));
	cr_assert_eq(tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20), h);
	snapbox_destroy(sb);
	cr_assert_eq(tests_count_entries(planted), 0, "a template was written into the planted directory");
	tests_rm_rf(dir);
	free(snap);
	free(dir);
}
