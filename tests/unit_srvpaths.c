/* unit_srvpaths.c - snapboxd's file rules: client names stay beneath their root and off links and FIFOs; state directories must be private; deletes never follow a link. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/srv.h"
#include "tests/common_snap.h"

static char *tp_dir;

static void tp_setup(void)
{
	tp_dir = tests_mkdtemp("srvpaths");
}

static void tp_teardown(void)
{
	tests_rm_rf(tp_dir);
	free(tp_dir);
}

/* Write text to dir/name. */
static void tp_file(const char *dir, const char *name, const char *text)
{
	char *p = tests_path("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
	free(p);
}

TestSuite(srvpaths, .init = tp_setup, .fini = tp_teardown);

Test(srvpaths, names_open_beneath_their_root_only)
{
	char *root = tests_path("%s/assets", tp_dir), *p;
	int rfd, fd;

	cr_assert_eq(mkdir(root, 0700), 0);
	tp_file(root, "vmlinux", "kernel");
	tp_file(tp_dir, "secret", "not an asset");
	p = tests_path("%s/link", root);
	cr_assert_eq(symlink("../secret", p), 0);
	free(p);
	p = tests_path("%s/abs", root);
	cr_assert_eq(symlink("/etc/passwd", p), 0);
	free(p);
	p = tests_path("%s/fifo", root);
	cr_assert_eq(mkfifo(p, 0600), 0);
	free(p);
	p = tests_path("%s/sub", root);
	cr_assert_eq(mkdir(p, 0700), 0);
	free(p);
	rfd = srv_root_open(root, "assets");
	cr_assert_geq(rfd, 0);
	fd = srv_open_beneath(rfd, "vmlinux", false);
	cr_assert_geq(fd, 0, "a plain asset: %d", fd);
	close(fd);
	cr_assert_eq(srv_open_beneath(rfd, "../secret", false), -EACCES, "escaped with ..");
	cr_assert_eq(srv_open_beneath(rfd, "link", false), -EACCES, "followed a relative link");
	cr_assert_eq(srv_open_beneath(rfd, "abs", false), -EACCES, "followed a link to /etc/passwd");
	cr_assert_eq(srv_open_beneath(rfd, "/etc/shadow", false), -EINVAL, "took an absolute path");
	cr_assert_eq(srv_open_beneath(rfd, "", false), -EINVAL);
	cr_assert_eq(srv_open_beneath(rfd, "fifo", false), -EINVAL, "a FIFO (would block a read)");
	cr_assert_eq(srv_open_beneath(rfd, "sub", false), -EINVAL, "a directory as a file");
	cr_assert_eq(srv_open_beneath(rfd, "vmlinux", true), -ENOTDIR);
	fd = srv_open_beneath(rfd, "sub", true);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(srv_open_beneath(rfd, "missing", false), -ENOENT);
	cr_assert_eq(srv_open_beneath(-1, "vmlinux", false), -EACCES, "no root: nothing opens");
	close(rfd);
	free(root);
}

Test(srvpaths, state_directories_must_be_private_and_ours)
{
	char *ok = tests_path("%s/state", tp_dir), *open_ = tests_path("%s/open", tp_dir);
	char *link = tests_path("%s/link", tp_dir), *other = tests_path("%s/other", tp_dir);
	int fd;

	fd = srv_private_dir(ok, "state directory", true);
	cr_assert_geq(fd, 0, "a new private directory");
	close(fd);
	cr_assert_eq(mkdir(open_, 0755), 0);
	cr_assert_eq(chmod(open_, 0755), 0);
	cr_assert_eq(srv_private_dir(open_, "state directory", true), -EPERM, "mode 0755 accepted");
	cr_assert_eq(symlink(ok, link), 0);
	cr_assert_eq(srv_private_dir(link, "state directory", true), -EPERM, "a symlink accepted");
	if (geteuid() == 0) {
		cr_assert_eq(mkdir(other, 0700), 0);
		cr_assert_eq(chown(other, 65534, 65534), 0);
		cr_assert_eq(srv_private_dir(other, "state directory", true), -EPERM,
			     "another user's directory accepted");
	}
	free(ok);
	free(open_);
	free(link);
	free(other);
}

Test(srvpaths, deletes_never_follow_a_link)
{
	char *victim = tests_path("%s/victim", tp_dir), *tdir = tests_path("%s/templates", tp_dir);
	char *snap = tests_path("%s/t1", tdir), *p;
	struct stat st;
	int fd;

	cr_assert_eq(mkdir(victim, 0700), 0);
	tp_file(victim, "precious", "keep me");
	cr_assert_eq(mkdir(tdir, 0700), 0);
	cr_assert_eq(mkdir(snap, 0700), 0);
	tp_file(snap, "memory", "m");
	/* A planted link inside a snapshot and one in place of a snapshot. */
	p = tests_path("%s/inner", snap);
	cr_assert_eq(symlink(victim, p), 0);
	free(p);
	p = tests_path("%s/t2", tdir);
	cr_assert_eq(symlink(victim, p), 0);
	free(p);
	fd = open(tdir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(srv_rm_at(fd, "t1"), 0);
	cr_assert_eq(srv_rm_at(fd, "t2"), 0);
	cr_assert_eq(srv_rm_at(fd, "t3"), 0, "a missing name is already gone");
	close(fd);
	cr_assert_eq(stat(snap, &st), -1, "the snapshot was not removed");
	cr_assert_eq(lstat(tdir, &st), 0);
	p = tests_path("%s/precious", victim);
	cr_assert_eq(stat(p, &st), 0, "a delete followed a link and removed %s", p);
	free(p);
	free(victim);
	free(tdir);
	free(snap);
}
