/* unit_snapdir.c - atomic snapshot directories: hidden temporary, replace keeps the old one until finish, abort, refusals, kill. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot/snapdir.h"
#include "tests/common_snap.h"

static char base[64];
static bool no_rename_flags;

/*
 * Interposes glibc's renameat2 for this binary (only snapdir calls it): with
 * no_rename_flags set it behaves like a file system without RENAME_NOREPLACE
 * or RENAME_EXCHANGE, so the fallback path runs.
 */
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)
{
	if (no_rename_flags && flags) {
		errno = EINVAL;
		return -1;
	}
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

/*
 * Interposes fsync the same way: with fail_parent_fsync set, an fsync of the
 * test's base directory (the snapshot's parent) fails with EIO.
 */
static bool fail_parent_fsync;

int fsync(int fd)
{
	struct stat a, b;

	if (fail_parent_fsync && fstat(fd, &a) == 0 && stat(base, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

static void setup(void)
{
	strcpy(base, "/tmp/snapbox-snapdir-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	if (!freopen("/dev/null", "w", stderr))
		abort();
}

static void teardown(void)
{
	tests_rm_rf(base);
}

TestSuite(snapdir, .init = setup, .fini = teardown);

static char *at(const char *name)
{
	static char path[4][256];
	static int k;
	char *p = path[k++ & 3];

	snprintf(p, 256, "%s/%s", base, name);
	return p;
}

/* Names in dir (excluding . and ..), sorted, joined with ','. */
static const char *listing(const char *dir)
{
	static char out[1024];
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
			if (out[0])
				strcat(out, ",");
			strcat(out, ents[i]->d_name);
		}
		free(ents[i]);
	}
	free(n >= 0 ? ents : NULL);
	return out;
}

/* Content of a small file, or "" when missing. */
static const char *slurp(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

static void put(struct snapdir *d, const char *name, const char *text)
{
	int fd = snapdir_create_file(d, name);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A complete snapshot whose vmstate starts with the magic and carries a label. */
static void make_snapshot(const char *target, const char *label, bool no_sync)
{
	struct snapdir d;
	char vm[64];

	snprintf(vm, sizeof(vm), "SNAPBOXV%s", label);
	cr_assert_eq(snapdir_begin(&d, target, no_sync), 0);
	put(&d, SNAPDIR_MEMORY, label);
	put(&d, SNAPDIR_VMSTATE, vm);
	cr_assert_eq(snapdir_finish(&d), 0);
}

Test(snapdir, create_fresh_with_hidden_temporary)
{
	struct snapdir d;
	char prefix[64];

	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	snprintf(prefix, sizeof(prefix), ".snap.tmp-%d-", (int)getpid());
	cr_assert_eq(strncmp(d.tmp_name, prefix, strlen(prefix)), 0, "temp name %s", d.tmp_name);
	cr_assert_eq(strlen(d.tmp_name), strlen(prefix) + 8);
	cr_assert_str_eq(listing(base), d.tmp_name);
	put(&d, SNAPDIR_MEMORY, "mem");
	put(&d, SNAPDIR_VMSTATE, "SNAPBOXV1");
	cr_assert_eq(access(at("snap"), F_OK), -1, "target must not exist before finish");
	cr_assert_eq(snapdir_finish(&d), 0);
	cr_assert_str_eq(listing(base), "snap");
	cr_assert_str_eq(listing(at("snap")), "memory,vmstate");
	cr_assert_str_eq(slurp(at("snap/memory")), "mem");
	struct stat st;
	cr_assert_eq(stat(at("snap"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(stat(at("snap/memory"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(snapdir, replace_keeps_old_until_finish)
{
	struct snapdir d;

	make_snapshot(at("snap"), "old", false);
	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	put(&d, SNAPDIR_MEMORY, "new");
	cr_assert_str_eq(slurp(at("snap/memory")), "old");
	put(&d, SNAPDIR_VMSTATE, "SNAPBOXVnew");
	cr_assert_str_eq(slurp(at("snap/vmstate")), "SNAPBOXVold");
	cr_assert_eq(snapdir_finish(&d), 0);
	cr_assert_str_eq(slurp(at("snap/memory")), "new");
	cr_assert_str_eq(slurp(at("snap/vmstate")), "SNAPBOXVnew");
	cr_assert_str_eq(listing(base), "snap", "the old snapshot is removed");
}

Test(snapdir, old_snapshot_is_kept_when_the_rename_is_not_durable)
{
	struct snapdir d;
	char old[256];
	int ret;

	make_snapshot(at("snap"), "old", false);
	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	put(&d, SNAPDIR_MEMORY, "new");
	put(&d, SNAPDIR_VMSTATE, "SNAPBOXVnew");
	fail_parent_fsync = true;
	ret = snapdir_finish(&d);
	fail_parent_fsync = false;
	cr_assert_eq(ret, -EIO, "finish must report the failed fsync");
	/* The new snapshot is in place; the old one, whose name a crash could
	 * still bring back, keeps its data beside it. */
	cr_assert_str_eq(slurp(at("snap/memory")), "new");
	cr_assert_eq(sscanf(listing(base), "%255[^,],snap", old), 1, "%s", listing(base));
	cr_assert_eq(old[0], '.', "the old snapshot was deleted: %s", listing(base));
	snprintf(old + strlen(old), sizeof(old) - strlen(old), "/memory");
	cr_assert_str_eq(slurp(at(old)), "old");
}

Test(snapdir, replace_without_sync)
{
	make_snapshot(at("snap"), "one", true);
	make_snapshot(at("snap"), "two", true);
	cr_assert_str_eq(slurp(at("snap/memory")), "two");
	cr_assert_str_eq(listing(base), "snap");
}

Test(snapdir, abort_leaves_nothing)
{
	struct snapdir d;

	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	put(&d, SNAPDIR_MEMORY, "partial");
	snapdir_abort(&d);
	cr_assert_str_eq(listing(base), "");
	snapdir_abort(&d);                   /* released: a no-op */

	make_snapshot(at("snap"), "old", false);
	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	put(&d, SNAPDIR_MEMORY, "new");
	snapdir_abort(&d);
	cr_assert_str_eq(listing(base), "snap");
	cr_assert_str_eq(slurp(at("snap/memory")), "old");
}

Test(snapdir, refuses_what_is_not_a_snapshot)
{
	struct snapdir d;

	cr_assert_eq(mkdir(at("data"), 0755), 0);
	cr_assert_eq(close(open(at("data/precious"), O_CREAT | O_WRONLY, 0644)), 0);
	cr_assert_eq(snapdir_begin(&d, at("data"), false), -EEXIST);
	cr_assert_eq(close(open(at("file"), O_CREAT | O_WRONLY, 0644)), 0);
	cr_assert_eq(snapdir_begin(&d, at("file"), false), -EEXIST);
	cr_assert_eq(symlink("data", at("link")), 0);
	cr_assert_eq(snapdir_begin(&d, at("link"), false), -EEXIST);
	/* A snapshot-like directory with a subdirectory is not one of ours either. */
	make_snapshot(at("snap"), "x", true);
	cr_assert_eq(mkdir(at("snap/sub"), 0755), 0);
	cr_assert_eq(snapdir_begin(&d, at("snap"), false), -EEXIST);
	cr_assert_str_eq(listing(base), "data,file,link,snap");
	cr_assert_str_eq(listing(at("data")), "precious");
}

Test(snapdir, empty_directory_may_be_replaced)
{
	cr_assert_eq(mkdir(at("out"), 0755), 0);
	make_snapshot(at("out"), "new", false);
	cr_assert_str_eq(listing(at("out")), "memory,vmstate");
	cr_assert_str_eq(listing(base), "out");
}

Test(snapdir, target_changed_before_finish_is_refused)
{
	struct snapdir d;

	cr_assert_eq(snapdir_begin(&d, at("snap"), false), 0);
	put(&d, SNAPDIR_MEMORY, "new");
	/* Someone puts unrelated data at the target meanwhile: it must survive. */
	cr_assert_eq(mkdir(at("snap"), 0755), 0);
	cr_assert_eq(close(open(at("snap/precious"), O_CREAT | O_WRONLY, 0644)), 0);
	cr_assert_eq(snapdir_finish(&d), -EEXIST);
	cr_assert_str_eq(listing(base), "snap");
	cr_assert_str_eq(listing(at("snap")), "precious");
}

Test(snapdir, bad_targets)
{
	struct snapdir d;

	cr_assert_eq(snapdir_begin(&d, at("missing/snap"), false), -ENOENT);
	cr_assert_eq(snapdir_begin(&d, "", false), -EINVAL);
	cr_assert_eq(snapdir_begin(&d, ".", false), -EINVAL);
	cr_assert_eq(snapdir_begin(&d, at(".."), false), -EINVAL);
	cr_assert_eq(snapdir_begin(&d, "/", false), -EINVAL);
	cr_assert_str_eq(listing(base), "");
}

Test(snapdir, trailing_slash_and_relative_target)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/", at("snap"));
	make_snapshot(path, "a", true);
	cr_assert_str_eq(listing(base), "snap");
	cr_assert_eq(chdir(base), 0);
	make_snapshot("rel", "b", true);
	cr_assert_str_eq(listing(base), "rel,snap");
}

/*
 * A writer killed at any point leaves either no target or the complete old
 * one, and at most a hidden temporary directory.
 */
Test(snapdir, killed_writer_leaves_nothing_loadable)
{
	make_snapshot(at("snap"), "old", false);
	for (int step = 0; step < 4; step++) {
		pid_t pid = fork();
		int status;

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			struct snapdir d;

			if (snapdir_begin(&d, at("snap"), false))
				_exit(1);
			if (step >= 1)
				put(&d, SNAPDIR_MEMORY, "new");
			if (step >= 2)
				put(&d, SNAPDIR_VMSTATE, "SNAPBOXVnew-partial");
			if (step >= 3) {
				int fd = openat(d.tmp_fd, SNAPDIR_VMSTATE, O_WRONLY | O_APPEND);
				(void)!write(fd, "more", 4);
			}
			raise(SIGKILL);
			_exit(2);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		cr_assert_str_eq(slurp(at("snap/memory")), "old", "step %d", step);
		cr_assert_str_eq(slurp(at("snap/vmstate")), "SNAPBOXVold");
	}
	/* Only hidden temporaries besides the snapshot; a new writer still succeeds. */
	DIR *dir = opendir(base);
	struct dirent *e;
	int hidden = 0;
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "snap"))
			continue;
		cr_assert(!strncmp(e->d_name, ".snap.tmp-", 10), "unexpected %s", e->d_name);
		hidden++;
	}
	closedir(dir);
	cr_assert_eq(hidden, 4);
	make_snapshot(at("snap"), "newer", false);
	cr_assert_str_eq(slurp(at("snap/memory")), "newer");
}

Test(snapdir, fallback_without_renameat2_flags)
{
	struct snapdir d;

	no_rename_flags = true;
	make_snapshot(at("snap"), "one", false);
	make_snapshot(at("snap"), "two", false);
	cr_assert_str_eq(slurp(at("snap/memory")), "two");
	cr_assert_str_eq(listing(base), "snap");
	/* The re-check still protects a non-snapshot target. */
	cr_assert_eq(snapdir_begin(&d, at("data"), false), 0);
	cr_assert_eq(mkdir(at("data"), 0755), 0);
	cr_assert_eq(close(open(at("data/precious"), O_CREAT | O_WRONLY, 0644)), 0);
	cr_assert_eq(snapdir_finish(&d), -EEXIST);
	cr_assert_str_eq(listing(at("data")), "precious");
	cr_assert_str_eq(listing(base), "data,snap");
}
