/* unit_mkinitramfs.c - the initramfs builder: byte-identical rebuilds, a newc archive that parses (our reader and cpio -t). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NEWC_MAX 512

struct newc_ent {
	char name[256];
	uint32_t ino, mode, uid, gid, nlink, mtime, size, rmaj, rmin;
	const uint8_t *data;
};

static char dir[128];

static const char *tool(void)
{
	const char *p = getenv("SNAPBOX_MKINITRAMFS");

	return p && *p ? p : "build/mkinitramfs";
}

static const char *at(const char *name)
{
	static char buf[4][256];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == -1 ? -1 : WEXITSTATUS(st);
}

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint32_t hex8(const uint8_t *p)
{
	char tmp[9];

	memcpy(tmp, p, 8);
	tmp[8] = '\0';
	return (uint32_t)strtoul(tmp, NULL, 16);
}

/* A minimal newc reader: returns the member count (trailer excluded), asserting the format. */
static int newc_parse(const uint8_t *p, size_t n, struct newc_ent *e)
{
	size_t off = 0;
	int count = 0;

	for (;;) {
		struct newc_ent x;
		uint32_t namesize;
		uint32_t f[13];
		int i;

		cr_assert_leq(off + 110, n, "archive truncated at %zu", off);
		cr_assert_eq(memcmp(p + off, "070701", 6), 0, "bad magic at %zu", off);
		for (i = 0; i < 13; i++)
			f[i] = hex8(p + off + 6 + 8 * i);
		memset(&x, 0, sizeof(x));
		x.ino = f[0], x.mode = f[1], x.uid = f[2], x.gid = f[3], x.nlink = f[4];
		x.mtime = f[5], x.size = f[6], x.rmaj = f[9], x.rmin = f[10];
		namesize = f[11];
		cr_assert(namesize > 1 && namesize < sizeof(x.name));
		cr_assert_leq(off + 110 + namesize, n);
		memcpy(x.name, p + off + 110, namesize);
		cr_assert_eq(x.name[namesize - 1], '\0');
		off = (off + 110 + namesize + 3) & ~(size_t)3;
		cr_assert_leq(off + x.size, n);
		x.data = p + off;
		off = (off + x.size + 3) & ~(size_t)3;
		if (!strcmp(x.name, "TRAILER!!!"))
			return count;
		cr_assert_lt(count, NEWC_MAX);
		e[count++] = x;
	}
}

static const struct newc_ent *find(const struct newc_ent *e, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(e[i].name, name))
			return &e[i];
	return NULL;
}

/* A fake busybox: a script answering --list-full like the real one. */
static void setup(void)
{
	char tmpl[] = "/tmp/snapbox-mkinitramfs-XXXXXX";

	if (access(tool(), X_OK) != 0) {
		if (!getenv("SNAPBOX_MKINITRAMFS"))
			cr_skip_test("%s not built (make build/mkinitramfs)", tool());
		cr_assert_fail("%s: %s", tool(), strerror(errno));
	}
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(dir, sizeof(dir), "%s", tmpl);
	put(at("init"), "#!/bin/sh\necho agent\n", 0644);
	put(at("busybox"), "#!/bin/sh\n[ \"$1\" = --list-full ] || exit 1\n"
	    "printf 'bin/sh\\nusr/bin/env\\nsbin/init\\nbin/busybox\\nlinuxrc\\n'\n", 0755);
	put(at("mod.ko"), "module", 0644);
}

static void teardown(void)
{
	if (dir[0] && sh("rm -rf '%s'", dir) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(mkinitramfs, .init = setup, .fini = teardown, .timeout = 60);

Test(mkinitramfs, two_builds_are_byte_identical)
{
	size_t la, lb;
	uint8_t *a, *b;

	cr_assert_eq(sh("%s --init %s --busybox %s --compress gzip -o %s", tool(), at("init"),
			at("busybox"), at("a.gz")), 0);
	/* Different mtimes and permissions of the inputs must not matter. */
	cr_assert_eq(sh("touch -d '2001-02-03' %s %s && chmod 0700 %s", at("init"), at("busybox"),
			at("init")), 0);
	cr_assert_eq(sh("%s --init %s --busybox %s --compress gzip -o %s", tool(), at("init"),
			at("busybox"), at("b.gz")), 0);
	a = slurp(at("a.gz"), &la);
	b = slurp(at("b.gz"), &lb);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(a, b, la), 0, "two builds differ");
	cr_assert_eq(a[0], 0x1f);
	cr_assert_eq(a[1], 0x8b);
	cr_assert_eq(a[4] | a[5] | a[6] | a[7], 0, "gzip header carries a timestamp");
	cr_assert_neq(access(at("a.gz.tmp"), F_OK), 0);
	free(a);
	free(b);
}

Test(mkinitramfs, archive_parses_with_fixed_metadata)
{
	static const char *const want[] = {
		"bin", "bin/busybox", "bin/sh", "dev", "dev/console", "init", "lib", "lib/modules",
		"lib/modules/mod.ko", "linuxrc", "proc", "root", "sbin", "sbin/init", "sys", "tmp",
		"usr", "usr/bin", "usr/bin/env",
	};
	static struct newc_ent e[NEWC_MAX];
	const struct newc_ent *x;
	size_t len, i;
	uint8_t *raw;
	int n;

	cr_assert_eq(sh("%s --init %s --busybox %s --add %s=/lib/modules/mod.ko --compress gzip -o %s",
			tool(), at("init"), at("busybox"), at("mod.ko"), at("a.gz")), 0);
	cr_assert_eq(sh("gzip -dc %s > %s", at("a.gz"), at("a.cpio")), 0);
	raw = slurp(at("a.cpio"), &len);
	n = newc_parse(raw, len, e);
	cr_assert_eq(n, (int)(sizeof(want) / sizeof(want[0])));
	for (i = 0; i < (size_t)n; i++) {
		cr_assert_str_eq(e[i].name, want[i]);
		cr_assert_eq(e[i].ino, i + 1, "inode numbers follow the sorted order");
		cr_assert_eq(e[i].mtime, 0);
		cr_assert_eq(e[i].uid | e[i].gid, 0);
	}
	x = find(e, n, "init");
	cr_assert_eq(x->mode, 0100755);
	cr_assert_eq(x->size, 21);
	cr_assert_eq(memcmp(x->data, "#!/bin/sh\necho agent\n", 21), 0);
	x = find(e, n, "bin/sh");
	cr_assert_eq(x->mode, 0120777);
	cr_assert_eq(x->size, 12);
	cr_assert_eq(memcmp(x->data, "/bin/busybox", 12), 0);
	cr_assert_eq(find(e, n, "bin/busybox")->mode, 0100755);
	x = find(e, n, "dev/console");
	cr_assert_eq(x->mode, 020600);
	cr_assert_eq(x->rmaj, 5);
	cr_assert_eq(x->rmin, 1);
	cr_assert_eq(find(e, n, "tmp")->mode, 041777);
	cr_assert_eq(find(e, n, "lib/modules/mod.ko")->mode, 0100644);
	free(raw);

	/* The stock cpio agrees, when it is installed. */
	if (sh("command -v cpio >/dev/null") == 0) {
		cr_assert_eq(sh("cpio -t --quiet < %s > %s", at("a.cpio"), at("list")), 0);
		raw = slurp(at("list"), &len);
		raw[len] = '\0';
		for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			char line[64];

			snprintf(line, sizeof(line), "%s\n", want[i]);
			cr_assert(strstr((char *)raw, line), "cpio -t does not list %s", want[i]);
		}
		free(raw);
	}
}

Test(mkinitramfs, lz4_legacy_and_uncompressed_agree)
{
	size_t la, lb, lc;
	uint8_t *a, *b, *c;

	cr_assert_eq(sh("%s --init %s --compress lz4 -o %s", tool(), at("init"), at("a.lz4")), 0);
	cr_assert_eq(sh("%s --init %s --compress lz4 -o %s", tool(), at("init"), at("b.lz4")), 0);
	cr_assert_eq(sh("%s --init %s -o %s", tool(), at("init"), at("c.cpio")), 0);
	a = slurp(at("a.lz4"), &la);
	b = slurp(at("b.lz4"), &lb);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(a, b, la), 0);
	cr_assert_eq(memcmp(a, "\x02\x21\x4c\x18", 4), 0, "not the legacy lz4 format");
	cr_assert_eq(sh("lz4 -dc -q %s > %s", at("a.lz4"), at("d.cpio")), 0);
	free(a);
	a = slurp(at("d.cpio"), &la);
	c = slurp(at("c.cpio"), &lc);
	cr_assert_eq(la, lc);
	cr_assert_eq(memcmp(a, c, la), 0);
	free(a);
	free(b);
	free(c);
}

Test(mkinitramfs, errors_leave_nothing_behind)
{
	cr_assert_eq(sh("%s --init %s -o %s 2>/dev/null", tool(), at("missing"), at("x.gz")), 1);
	cr_assert_neq(access(at("x.gz"), F_OK), 0);
	cr_assert_neq(access(at("x.gz.tmp"), F_OK), 0);
	cr_assert_eq(sh("%s --add nodest -o %s 2>/dev/null", tool(), at("x.gz")), 2);
	cr_assert_eq(sh("%s --init %s --compress zip -o %s 2>/dev/null", tool(), at("init"),
			at("x.gz")), 2);
	cr_assert_eq(sh("%s --init %s --add %s=../x -o %s 2>/dev/null", tool(), at("init"),
			at("init"), at("x.gz")), 1);
	cr_assert_eq(sh("%s --init %s --add %s=init -o %s 2>/dev/null", tool(), at("init"),
			at("mod.ko"), at("x.gz")), 1, "a duplicate path must be refused");
}

Test(mkinitramfs, real_busybox_applets)
{
	static struct newc_ent e[NEWC_MAX];
	const struct newc_ent *x;
	size_t len;
	uint8_t *raw;
	int n;

	if (access("/bin/busybox", X_OK) != 0)
		cr_skip_test("/bin/busybox missing (apt-get install busybox-static)");
	cr_assert_eq(sh("%s --init %s --busybox /bin/busybox -o %s", tool(), at("init"),
			at("r.cpio")), 0);
	raw = slurp(at("r.cpio"), &len);
	n = newc_parse(raw, len, e);
	cr_assert_gt(n, 100, "only %d entries", n);
	x = find(e, n, "bin/sh");
	cr_assert_not_null(x);
	cr_assert_eq(x->mode, 0120777);
	cr_assert_not_null(find(e, n, "bin/busybox"));
	for (int i = 1; i < n; i++)
		cr_assert_lt(strcmp(e[i - 1].name, e[i].name), 0, "entries not sorted");
	free(raw);
}

/* --tree: files keep their permission bits, symlinks stay symlinks, a tree program replaces the applet link. */
Test(mkinitramfs, tree_is_taken_whole_and_wins_over_applets)
{
	static struct newc_ent e[NEWC_MAX];
	const struct newc_ent *x;
	size_t len;
	uint8_t *raw;
	int n;

	cr_assert_eq(sh("mkdir -p %s/usr/lib/py %s/usr/bin && printf 'print(1)' > %s/usr/lib/py/m.py && "
			"chmod 0640 %s/usr/lib/py/m.py && printf real > %s/usr/bin/env && chmod 0755 %s/usr/bin/env && "
			"ln -s py %s/usr/lib/link", at("t"), at("t"), at("t"), at("t"), at("t"), at("t"), at("t")), 0);
	cr_assert_eq(sh("%s --init %s --busybox %s --tree %s -o %s", tool(), at("init"), at("busybox"),
			at("t"), at("t.cpio")), 0);
	cr_assert_eq(sh("%s --init %s --busybox %s --tree %s -o %s", tool(), at("init"), at("busybox"),
			at("t"), at("t2.cpio")), 0);
	cr_assert_eq(sh("cmp -s %s %s", at("t.cpio"), at("t2.cpio")), 0, "two builds differ");
	raw = slurp(at("t.cpio"), &len);
	n = newc_parse(raw, len, e);
	cr_assert_gt(n, 0);
	x = find(e, n, "usr/lib/py/m.py");
	cr_assert_not_null(x);
	cr_assert_eq(x->mode, 0100640);
	cr_assert_eq(memcmp(x->data, "print(1)", 8), 0);
	x = find(e, n, "usr/lib/link");
	cr_assert_eq(x->mode, 0120777);
	cr_assert_eq(memcmp(x->data, "py", 2), 0);
	x = find(e, n, "usr/bin/env");   /* an applet of the fake busybox, replaced */
	cr_assert_eq(x->mode, 0100755);
	cr_assert_eq(memcmp(x->data, "real", 4), 0);
	for (int i = 1; i < n; i++)
		cr_assert_lt(strcmp(e[i - 1].name, e[i].name), 0, "entries not sorted");
	free(raw);
}

Test(mkinitramfs, owner_applies_below_a_path_and_a_tree_dir_mode_wins)
{
	static struct newc_ent e[NEWC_MAX];
	const struct newc_ent *x;
	size_t len;
	uint8_t *raw;
	int n;

	cr_assert_eq(sh("mkdir -p %s/home/user/.cache %s/root && printf hi > %s/home/user/.profile && "
			"chmod 0700 %s/root", at("o"), at("o"), at("o"), at("o")), 0);
	cr_assert_eq(sh("%s --init %s --tree %s --owner 1000:1001:/home/user -o %s", tool(),
			at("init"), at("o"), at("o.cpio")), 0);
	raw = slurp(at("o.cpio"), &len);
	n = newc_parse(raw, len, e);
	for (int i = 0; i < n; i++) {
		bool mine = !strcmp(e[i].name, "home/user") || !strncmp(e[i].name, "home/user/", 10);

		cr_assert_eq(e[i].uid, mine ? 1000u : 0u, "%s: uid %u", e[i].name, e[i].uid);
		cr_assert_eq(e[i].gid, mine ? 1001u : 0u, "%s: gid %u", e[i].name, e[i].gid);
	}
	cr_assert_not_null(find(e, n, "home/user/.cache"));
	x = find(e, n, "root");   /* a default directory, given 0700 by the tree */
	cr_assert_not_null(x);
	cr_assert_eq(x->mode, 040700);
	free(raw);
	cr_assert_neq(sh("%s --init %s --owner 1000:x:/home -o %s 2>/dev/null", tool(), at("init"),
			 at("bad.cpio")), 0);
	cr_assert_neq(sh("%s --init %s --owner 1:2:../etc -o %s 2>/dev/null", tool(), at("init"),
			 at("bad.cpio")), 0);
	cr_assert_neq(access(at("bad.cpio"), F_OK), 0, "a refused build left an archive");
}
