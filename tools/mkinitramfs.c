/* mkinitramfs.c - writes the guest's reproducible initramfs: a sorted cpio "newc" archive, optionally gzip -n or lz4 -l. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MKINITRAMFS_MAX_FILE   (512u << 20)
#define MKINITRAMFS_MAX_PATH   1024

/*
 * One archive member. Every field the archive records is fixed here (mtime 0,
 * uid/gid 0 unless --owner says otherwise, inode = position in sorted order),
 * so the bytes depend only on the paths, modes, owners and contents.
 */
struct mkinitramfs_entry {
	char *path;             /* relative, no leading '/' */
	uint32_t mode;          /* S_IF* | permissions */
	uint32_t uid, gid;
	uint32_t rmajor, rminor;
	uint8_t *data;          /* file bytes, or a symlink's target */
	size_t len;
};

struct mkinitramfs_list {
	struct mkinitramfs_entry *e;
	size_t n, cap;
};

struct mkinitramfs_buf {
	uint8_t *p;
	size_t len, cap;
};

static const char mkinitramfs_usage[] =
	"usage: mkinitramfs -o OUT [--init FILE] [--busybox FILE] [--add SRC=DEST]...\n"
	"                   [--tree DIR] [--owner UID:GID:PATH]... [--compress gzip|lz4|none]\n"
	"\n"
	"Write a reproducible cpio newc archive: /init (FILE, mode 0755), /bin/busybox\n"
	"and one symlink per applet ('busybox --list-full'), each --add'ed file, every\n"
	"directory, file and symlink below --tree DIR at its path (replacing an applet\n"
	"link of the same name; permission bits kept, a directory's replacing the\n"
	"default), the directories dev proc sys tmp root (and every parent), and\n"
	"dev/console. --owner gives PATH and everything below it that uid and gid.\n"
	"Entries are sorted; mtime is 0, uid and gid 0 unless --owner gives them,\n"
	"and inode numbers follow the order, so the\n"
	"same inputs always give the same bytes. gzip runs as 'gzip -n -9' and lz4 as\n"
	"'lz4 -l -9' (the legacy frame the kernel reads). The output is written to\n"
	"OUT.tmp and renamed into place.\n";

/* A clean relative path: no empty, "." or ".." component. */
static bool mkinitramfs_path_ok(const char *path)
{
	const char *c = path;

	if (!*path || strlen(path) >= MKINITRAMFS_MAX_PATH)
		return false;
	for (;;) {
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!c[n])
			return true;
		c += n + 1;
	}
}

static int mkinitramfs_add(struct mkinitramfs_list *l, const char *path, uint32_t mode,
			   uint8_t *data, size_t len)
{
	size_t i;

	while (*path == '/')
		path++;
	if (!mkinitramfs_path_ok(path)) {
		fprintf(stderr, "mkinitramfs: bad archive path '%s'\n", path);
		free(data);
		return -EINVAL;
	}
	for (i = 0; i < l->n; i++) {
		if (strcmp(l->e[i].path, path))
			continue;
		free(data);
		if (S_ISDIR(mode) && S_ISDIR(l->e[i].mode)) {
			/* One directory; the later mode (a tree's over the defaults) wins. */
			l->e[i].mode = mode;
			return 0;
		}
		fprintf(stderr, "mkinitramfs: two entries for '%s'\n", path);
		return -EEXIST;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct mkinitramfs_entry *e = realloc(l->e, cap * sizeof(*e));

		if (!e) {
			free(data);
			return -ENOMEM;
		}
		l->e = e;
		l->cap = cap;
	}
	l->e[l->n] = (struct mkinitramfs_entry){ .path = strdup(path), .mode = mode,
						  .data = data, .len = len };
	if (!l->e[l->n].path) {
		free(data);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

/* Add every parent directory of path (mode 0755). */
static int mkinitramfs_add_parents(struct mkinitramfs_list *l, const char *path)
{
	char tmp[MKINITRAMFS_MAX_PATH];
	char *s;
	int ret;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (s = strchr(tmp + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		ret = mkinitramfs_add(l, tmp, S_IFDIR | 0755, NULL, 0);
		*s = '/';
		if (ret)
			return ret;
	}
	return 0;
}

static int mkinitramfs_read(const char *path, uint8_t **out, size_t *len, mode_t *mode)
{
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		fprintf(stderr, "mkinitramfs: cannot read %s: %s\n", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MKINITRAMFS_MAX_FILE) {
		fprintf(stderr, "mkinitramfs: %s is not a regular file of at most 512 MiB\n", path);
		ret = -EINVAL;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n <= 0) {
			fprintf(stderr, "mkinitramfs: reading %s failed\n", path);
			free(buf);
			ret = -EIO;
			goto out;
		}
		have += (size_t)n;
	}
	*out = buf;
	*len = have;
	*mode = st.st_mode;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A regular file from the host, placed at dest with its parents. */
static int mkinitramfs_add_file(struct mkinitramfs_list *l, const char *src, const char *dest,
				int force_mode)
{
	uint8_t *data = NULL;
	size_t len = 0;
	mode_t m = 0;
	int ret = mkinitramfs_read(src, &data, &len, &m);

	if (ret)
		return ret;
	if (force_mode < 0)
		force_mode = (m & 0111) ? 0755 : 0644;
	ret = mkinitramfs_add_parents(l, dest);
	if (ret) {
		free(data);
		return ret;
	}
	return mkinitramfs_add(l, dest, S_IFREG | (uint32_t)force_mode, data, len);
}

/* The list --tree adds to (nftw's callback has no argument of its own). */
static struct mkinitramfs_list *mkinitramfs_tree_list;
static size_t mkinitramfs_tree_root_len;

/*
 * One entry of a --tree: directories, regular files (with their permission
 * bits) and symlinks, at their path below the tree's root. A tree entry
 * replaces a busybox applet link of the same name (the real program wins).
 */
static int mkinitramfs_tree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct mkinitramfs_list *l = mkinitramfs_tree_list;
	const char *rel = path + mkinitramfs_tree_root_len;
	uint8_t *data = NULL;
	size_t len = 0;
	mode_t m;

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return 0;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->e[i].path, rel) || !S_ISLNK(l->e[i].mode) || flag == FTW_D)
			continue;
		free(l->e[i].path);
		free(l->e[i].data);
		l->e[i] = l->e[--l->n];
		break;
	}
	if (flag == FTW_D)
		return mkinitramfs_add(l, rel, S_IFDIR | (st->st_mode & 07777), NULL, 0);
	if (flag == FTW_SL) {
		char target[MKINITRAMFS_MAX_PATH];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0 || !(data = malloc((size_t)n + 1)))
			return -EIO;
		memcpy(data, target, (size_t)n);
		return mkinitramfs_add(l, rel, S_IFLNK | 0777, data, (size_t)n);
	}
	if (flag != FTW_F || !S_ISREG(st->st_mode)) {
		fprintf(stderr, "mkinitramfs: %s is not a file, directory or symlink\n", path);
		return -EINVAL;
	}
	if (mkinitramfs_read(path, &data, &len, &m))
		return -EIO;
	return mkinitramfs_add(l, rel, S_IFREG | (st->st_mode & 07777), data, len);
}

/* Every entry below dir, at the same path in the archive. */
static int mkinitramfs_add_tree(struct mkinitramfs_list *l, const char *dir)
{
	int ret;

	mkinitramfs_tree_list = l;
	mkinitramfs_tree_root_len = strlen(dir);
	ret = nftw(dir, mkinitramfs_tree_one, 32, FTW_PHYS);
	if (ret == -1) {
		ret = -errno;
		fprintf(stderr, "mkinitramfs: --tree %s: %s\n", dir, strerror(errno));
	}
	return ret;
}

/* Run `busybox <arg>` and return its stdout (NUL-terminated) or NULL. */
static char *mkinitramfs_run(const char *busybox, const char *arg)
{
	struct mkinitramfs_buf b = { 0 };
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl(busybox, busybox, arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n;

		if (b.len + 4096 + 1 > b.cap) {
			uint8_t *q = realloc(b.p, b.cap = b.cap * 2 + 65536);

			if (!q)
				break;
			b.p = q;
		}
		n = read(p[0], b.p + b.len, b.cap - b.len - 1);
		if (n <= 0)
			break;
		b.len += (size_t)n;
	}
	close(p[0]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) || !b.p) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	return (char *)b.p;
}

/* /bin/busybox plus a symlink to it for every applet, in the directory busybox names. */
static int mkinitramfs_add_busybox(struct mkinitramfs_list *l, const char *busybox)
{
	static const char target[] = "/bin/busybox";
	bool full = true;
	char *list, *line, *save = NULL;
	int ret;

	ret = mkinitramfs_add_file(l, busybox, "bin/busybox", 0755);
	if (ret)
		return ret;
	list = mkinitramfs_run(busybox, "--list-full");
	if (!list) {
		full = false;
		list = mkinitramfs_run(busybox, "--list");
	}
	if (!list || !*list) {
		fprintf(stderr, "mkinitramfs: '%s --list' gave no applets\n", busybox);
		free(list);
		return -EINVAL;
	}
	for (line = strtok_r(list, "\n", &save); line && !ret; line = strtok_r(NULL, "\n", &save)) {
		char path[MKINITRAMFS_MAX_PATH];
		uint8_t *t;

		while (*line == '/')
			line++;
		snprintf(path, sizeof(path), full ? "%s" : "bin/%s", line);
		if (!*line || !strcmp(path, "bin/busybox"))
			continue;
		t = (uint8_t *)strdup(target);
		ret = t ? mkinitramfs_add_parents(l, path) : -ENOMEM;
		if (!ret)
			ret = mkinitramfs_add(l, path, S_IFLNK | 0777, t, sizeof(target) - 1);
		else
			free(t);
	}
	free(list);
	return ret;
}

static int mkinitramfs_put(struct mkinitramfs_buf *b, const void *p, size_t n)
{
	static const uint8_t zero[4];

	if (b->len + n + 4 > b->cap) {
		size_t cap = (b->cap + n) * 2 + 65536;
		uint8_t *q = realloc(b->p, cap);

		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p ? p : zero, n);
	b->len += n;
	return 0;
}

/* One newc member: 110-byte header, name, pad to 4, data, pad to 4. */
static int mkinitramfs_member(struct mkinitramfs_buf *b, uint32_t ino,
			      const struct mkinitramfs_entry *e, const char *name)
{
	char h[111];
	size_t namesize = strlen(name) + 1;
	int ret;

	snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 ino, e->mode, e->uid, e->gid, S_ISDIR(e->mode) ? 2u : 1u, 0u, (uint32_t)e->len, 0u, 0u,
		 e->rmajor, e->rminor, (uint32_t)namesize, 0u);
	ret = mkinitramfs_put(b, h, 110);
	if (!ret)
		ret = mkinitramfs_put(b, name, namesize);
	if (!ret)
		ret = mkinitramfs_put(b, NULL, (4 - (110 + namesize) % 4) % 4);
	if (!ret && e->len)
		ret = mkinitramfs_put(b, e->data, e->len);
	if (!ret)
		ret = mkinitramfs_put(b, NULL, (4 - e->len % 4) % 4);
	return ret;
}

static int mkinitramfs_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mkinitramfs_entry *)a)->path,
		      ((const struct mkinitramfs_entry *)b)->path);
}

/* Sorted members (parents sort before children), then the trailer. */
static int mkinitramfs_archive(struct mkinitramfs_list *l, struct mkinitramfs_buf *b)
{
	static const struct mkinitramfs_entry trailer = { .mode = 0 };
	size_t i;
	int ret = 0;

	qsort(l->e, l->n, sizeof(l->e[0]), mkinitramfs_cmp);
	for (i = 0; i < l->n && !ret; i++)
		ret = mkinitramfs_member(b, (uint32_t)(i + 1), &l->e[i], l->e[i].path);
	if (!ret)
		ret = mkinitramfs_member(b, 0, &trailer, "TRAILER!!!");
	return ret;
}

/* Write buf to fd, through `compressor` (argv) when non-NULL. */
static int mkinitramfs_emit(const struct mkinitramfs_buf *b, int fd, char *const *compressor)
{
	size_t off = 0;
	int p[2] = { -1, -1 }, st, out = fd;
	pid_t pid = -1;

	if (compressor) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		pid = fork();
		if (pid == 0) {
			dup2(p[0], 0);
			dup2(fd, 1);
			execvp(compressor[0], compressor);
			fprintf(stderr, "mkinitramfs: cannot run %s: %s\n", compressor[0], strerror(errno));
			_exit(127);
		}
		close(p[0]);
		out = p[1];
		if (pid < 0) {
			close(p[1]);
			return -EAGAIN;
		}
	}
	while (off < b->len) {
		ssize_t n = write(out, b->p + off, b->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (!compressor)
		return off == b->len ? 0 : -EIO;
	close(p[1]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) || off != b->len) {
		fprintf(stderr, "mkinitramfs: %s failed\n", compressor[0]);
		return -EIO;
	}
	return 0;
}

static int mkinitramfs_write(const struct mkinitramfs_buf *b, const char *out, const char *how)
{
	static char *const gz[] = { "gzip", "-n", "-9", "-c", NULL };
	static char *const lz[] = { "lz4", "-l", "-9", "-c", "-q", NULL };
	char tmp[4096];
	int fd, ret;

	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "mkinitramfs: cannot create %s: %s\n", tmp, strerror(-ret));
		return ret;
	}
	ret = mkinitramfs_emit(b, fd, !strcmp(how, "gzip") ? gz : !strcmp(how, "lz4") ? lz : NULL);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, out) < 0)
		ret = -errno;
	if (ret) {
		fprintf(stderr, "mkinitramfs: writing %s failed: %s\n", out, strerror(-ret));
		unlink(tmp);
	}
	return ret;
}

/* --owner UID:GID:PATH: PATH and everything below it get uid and gid. */
static int mkinitramfs_owner(struct mkinitramfs_list *l, const char *spec)
{
	unsigned long uid, gid;
	const char *path;
	char *end;
	size_t i, n;

	errno = 0;
	uid = strtoul(spec, &end, 10);
	if (end == spec || *end != ':')
		goto bad;
	gid = strtoul(end + 1, &end, 10);
	if (errno || *end != ':' || uid > 0xfffffffeUL || gid > 0xfffffffeUL)
		goto bad;
	path = end + 1;
	while (*path == '/')
		path++;
	n = strlen(path);
	if (!mkinitramfs_path_ok(path))
		goto bad;
	for (i = 0; i < l->n; i++) {
		if (!strncmp(l->e[i].path, path, n) && (!l->e[i].path[n] || l->e[i].path[n] == '/')) {
			l->e[i].uid = (uint32_t)uid;
			l->e[i].gid = (uint32_t)gid;
		}
	}
	return 0;
bad:
	fprintf(stderr, "mkinitramfs: --owner wants UID:GID:PATH, not '%s'\n", spec);
	return -EINVAL;
}

static void mkinitramfs_free(struct mkinitramfs_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].data);
	}
	free(l->e);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "init", required_argument, NULL, 'i' },
		{ "busybox", required_argument, NULL, 'b' },
		{ "add", required_argument, NULL, 'a' },
		{ "compress", required_argument, NULL, 'c' },
		{ "tree", required_argument, NULL, 't' },
		{ "owner", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const dirs[] = { "dev", "proc", "sys", "tmp", "root" };
	struct mkinitramfs_list l = { 0 };
	struct mkinitramfs_buf b = { 0 };
	const char *out = NULL, *how = "none", *init = NULL, *busybox = NULL, *tree = NULL;
	const char *owners[16];
	size_t i, nowners = 0;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		char *eq;

		switch (c) {
		case 'o': out = optarg; break;
		case 'i': init = optarg; break;
		case 'b': busybox = optarg; break;
		case 'c': how = optarg; break;
		case 't': tree = optarg; break;
		case 'w':
			if (nowners == sizeof(owners) / sizeof(owners[0])) {
				fprintf(stderr, "mkinitramfs: at most %zu --owner options\n", nowners);
				return 2;
			}
			owners[nowners++] = optarg;
			break;
		case 'a':
			eq = strchr(optarg, '=');
			if (!eq || eq == optarg || !eq[1]) {
				fprintf(stderr, "mkinitramfs: --add wants SRC=DEST, not '%s'\n", optarg);
				return 2;
			}
			*eq = '\0';
			ret = ret ? ret : mkinitramfs_add_file(&l, optarg, eq + 1, -1);
			break;
		case 'h': fputs(mkinitramfs_usage, stdout); return 0;
		default: fputs(mkinitramfs_usage, stderr); return 2;
		}
	}
	if (!out || optind != argc || (strcmp(how, "gzip") && strcmp(how, "lz4") && strcmp(how, "none"))) {
		fputs(mkinitramfs_usage, stderr);
		mkinitramfs_free(&l);
		return 2;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !ret; i++)
		ret = mkinitramfs_add(&l, dirs[i], S_IFDIR | (strcmp(dirs[i], "tmp") ? 0755 : 01777),
				      NULL, 0);
	/* The kernel opens /dev/console for init before anything is mounted. */
	if (!ret && (ret = mkinitramfs_add(&l, "dev/console", S_IFCHR | 0600, NULL, 0)) == 0) {
		l.e[l.n - 1].rmajor = 5;
		l.e[l.n - 1].rminor = 1;
	}
	if (!ret && init)
		ret = mkinitramfs_add_file(&l, init, "init", 0755);
	if (!ret && busybox)
		ret = mkinitramfs_add_busybox(&l, busybox);
	/* After busybox: a real program in the tree replaces the applet link. */
	if (!ret && tree)
		ret = mkinitramfs_add_tree(&l, tree);
	/* Last: they apply to whatever the options above added. */
	for (i = 0; i < nowners && !ret; i++)
		ret = mkinitramfs_owner(&l, owners[i]);
	if (!ret)
		ret = mkinitramfs_archive(&l, &b);
	if (!ret)
		ret = mkinitramfs_write(&b, out, how);
	mkinitramfs_free(&l);
	free(b.p);
	return ret ? 1 : 0;
}
