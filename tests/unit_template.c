/* unit_template.c - cow memory templates: a planted, foreign or symlinked file at the template's name is never mapped nor touched; our own is reused. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/template.h"
#include "snapshot/memfile.h"
#include "tests/common_capture.h"

#define TT_SIZE (256u << 10)

static uint8_t tt_ram[TT_SIZE];
static char tt_dir[64];
static int tt_memfd = -1;
static struct memfile_reader tt_mem;

/* A memory file of TT_SIZE bytes (text, zeros, a pattern) and its reader; a shared 01777-free dir. */
static void tt_setup(void)
{
	struct memfile_write_opts o = { .chunk_size = 64u << 10, .threads = 1 };

	tests_quiet_stderr();
	for (size_t i = 0; i < TT_SIZE; i++)
		tt_ram[i] = i < TT_SIZE / 4 ? (uint8_t)('a' + i % 26) : i < TT_SIZE / 2 ? 0 : (uint8_t)(i * 131);
	tt_memfd = memfd_create("memory", 0);
	cr_assert(tt_memfd >= 0);
	cr_assert_eq(memfile_write(tt_memfd, tt_ram, TT_SIZE, &o, NULL), 0);
	cr_assert_eq(memfile_open(&tt_mem, tt_memfd), 0);
	snprintf(tt_dir, sizeof(tt_dir), "/tmp/snapbox-tmpl-XXXXXX");
	cr_assert_not_null(mkdtemp(tt_dir));
	/* A shared cache directory, as a caller may give: anyone can create names in it. */
	cr_assert_eq(chmod(tt_dir, 0777), 0);
}

static void tt_teardown(void)
{
	char cmd[128];

	memfile_close(&tt_mem);
	close(tt_memfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tt_dir);
	cr_assert_eq(system(cmd), 0);
}

/* The template's file name, as template_get forms it. */
static void tt_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/snapbox-%016llx-%llu.mem", tt_dir, (unsigned long long)tt_mem.index_xxh64,
		 (unsigned long long)tt_mem.raw_size);
}

/* fd maps to exactly the snapshot's memory. */
static void tt_assert_is_ours(int fd)
{
	void *m = mmap(NULL, TT_SIZE, PROT_READ, MAP_PRIVATE, fd, 0);

	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(memcmp(m, tt_ram, TT_SIZE), 0, "the template does not hold the snapshot's memory");
	munmap(m, TT_SIZE);
}

/* A same-size file of other bytes at path, with this owner and mode; returns its inode. */
static ino_t tt_plant(const char *path, uid_t uid, mode_t mode)
{
	static uint8_t junk[TT_SIZE];
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	memset(junk, 0xcc, sizeof(junk));
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	cr_assert_eq(fchown(fd, uid, (gid_t)-1), 0);
	cr_assert_eq(fchmod(fd, mode), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	return st.st_ino;
}

/* The planted file is still there, the same inode, every byte 0xcc. */
static void tt_assert_untouched(const char *path, ino_t ino)
{
	uint8_t buf[TT_SIZE];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW);

	cr_assert(fd >= 0, "the planted file is gone");
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_ino, ino, "the planted file was replaced");
	cr_assert_eq(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xcc, "the planted file was written at %zu", i);
	close(fd);
}

TestSuite(template, .init = tt_setup, .fini = tt_teardown);

Test(template, our_own_template_is_built_once_and_reused)
{
	bool created = false;
	int a = template_get(&tt_mem, tt_dir, 1, &created), b;

	cr_assert_geq(a, 0);
	cr_assert(created);
	tt_assert_is_ours(a);
	b = template_get(&tt_mem, tt_dir, 1, &created);
	cr_assert_geq(b, 0);
	cr_assert_not(created, "a private, intact template of ours must be reused");
	tt_assert_is_ours(b);
	close(a);
	close(b);
}

Test(template, another_users_file_at_the_name_is_neither_mapped_nor_touched)
{
	char path[256];
	bool created = false;
	ino_t ino;
	int fd;

	if (geteuid() != 0)
		cr_skip_test("planting a file owned by another user needs root");
	tt_path(path, sizeof(path));
	ino = tt_plant(path, 65534, 0666);   /* nobody, world-writable: the attack as reported */
	fd = template_get(&tt_mem, tt_dir, 1, &created);
	cr_assert_geq(fd, 0);
	cr_assert(created, "the restore must decode its own copy");
	tt_assert_is_ours(fd);
	close(fd);
	tt_assert_untouched(path, ino);
}

Test(template, a_file_of_ours_that_others_can_write_is_not_trusted)
{
	char path[256];
	bool created = false;
	ino_t ino;
	int fd;

	tt_path(path, sizeof(path));
	ino = tt_plant(path, geteuid(), 0666);
	fd = template_get(&tt_mem, tt_dir, 1, &created);
	cr_assert_geq(fd, 0);
	tt_assert_is_ours(fd);
	close(fd);
	tt_assert_untouched(path, ino);
}

Test(template, a_symlink_at_the_name_is_not_followed)
{
	char path[256], target[256];
	bool created = false;
	ino_t ino;
	int fd;

	tt_path(path, sizeof(path));
	snprintf(target, sizeof(target), "%s/elsewhere", tt_dir);
	ino = tt_plant(target, geteuid(), 0600);   /* a private file of ours, but reached by a link */
	cr_assert_eq(symlink(target, path), 0);
	fd = template_get(&tt_mem, tt_dir, 1, &created);
	cr_assert_geq(fd, 0);
	tt_assert_is_ours(fd);
	close(fd);
	tt_assert_untouched(target, ino);
}

Test(template, the_default_cache_is_a_private_directory)
{
	char dir[64], path[256];
	bool created = false;
	struct stat st;
	int fd = template_get(&tt_mem, NULL, 1, &created);

	cr_assert_geq(fd, 0);
	tt_assert_is_ours(fd);
	close(fd);
	snprintf(dir, sizeof(dir), "/dev/shm/snapbox-%u", (unsigned)geteuid());
	cr_assert_eq(lstat(dir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(st.st_uid, geteuid());
	snprintf(path, sizeof(path), "%s/snapbox-%016llx-%llu.mem", dir,
		 (unsigned long long)tt_mem.index_xxh64, (unsigned long long)tt_mem.raw_size);
	cr_assert_eq(unlink(path), 0, "the template is not in the private directory");
}
