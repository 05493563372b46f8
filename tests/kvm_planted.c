/* kvm_planted.c - what another user may plant: the default template directory (a cow restore still works, with a private copy), and links or FIFOs in a snapshot directory (refused at once). */
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

/* A snapshot's files are regular files of its own: a link or a FIFO in their place is refused, and fast. */
Test(kvm_planted, links_and_fifos_in_a_snapshot_are_refused)
{
	struct snapbox_restore_opts o = { .mode = SNAPBOX_RESTORE_EAGER, .console_fd = -1 };
	char *dir = NULL, *snap, *vm, *mem, *aside;
	struct snapbox *sb = NULL;
	uint64_t t0;

	TESTS_REQUIRE_KVM();
	dir = tests_mkdtemp("planted");
	snap = tests_path("%s/snap", dir);
	vm = tests_path("%s/vmstate", snap);
	mem = tests_path("%s/memory", snap);
	aside = tests_path("%s/vmstate.real", dir);
	tests_make_snapshot(snap);
	cr_assert_eq(rename(vm, aside), 0);
	cr_assert_eq(symlink(aside, vm), 0);
	cr_assert_eq(snapbox_restore(snap, &o, &sb, NULL), -EPROTO, "a symlinked vmstate was read");
	cr_assert_null(sb);
	cr_assert_eq(unlink(vm), 0);
	cr_assert_eq(rename(aside, vm), 0);
	cr_assert_eq(unlink(mem), 0);
	cr_assert_eq(mkfifo(mem, 0600), 0);
	t0 = tests_now_ns();
	cr_assert_eq(snapbox_restore(snap, &o, &sb, NULL), -EPROTO, "a FIFO as the memory file");
	cr_assert_lt(tests_now_ns() - t0, (uint64_t)tests_ms(5000) * 1000000ull, "it blocked on the FIFO");
	tests_rm_rf(dir);
	free(snap);
	free(vm);
	free(mem);
	free(aside);
	free(dir);
}
