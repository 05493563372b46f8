/* unit_agent_files.c - the agent's WRITE_FILE/READ_FILE (caps, symlink refusal) and its handling of hostile frames. */
#include "kvm/mono.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/agent.h"
#include "proto/frame.h"
#include "tests/common_agent.h"

static struct tagent T;
static char dir[256];

static void fini(void)
{
	char cmd[PATH_MAX + 16];

	tagent_stop(&T);
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

/* A fresh directory with no symlink in its own path. */
static void setup_dir(void)
{
	char tmpl[] = "/tmp/snapbox-agent-XXXXXX", *real;

	cr_assert_not_null(mkdtemp(tmpl));
	real = realpath(tmpl, NULL);
	cr_assert_not_null(real);
	snprintf(dir, sizeof(dir), "%s", real);
	free(real);
}

static const char *at(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

/* A raw request: reply text of an error, as chan_request returns it. */
static int raw_request(uint16_t type, const void *payload, uint32_t len, char *text, size_t cap)
{
	uint32_t n = 0;
	void *r = NULL;
	int ret = chan_request(&T.chan, type, payload, len, &r, &n, mono_now_ns() + 3000000000ull);

	snprintf(text, cap, "%.*s", (int)n, r ? (char *)r : "");
	free(r);
	return ret;
}

TestSuite(agent_files, .fini = fini, .timeout = 60);

Test(agent_files, round_trip_with_nul_and_newline_and_mode)
{
	static const uint8_t data[] = "a\0b\nc\r\n\0\xff";
	struct stat st;
	size_t len;
	void *got;

	setup_dir();
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_write_file(&T.chan, at("f"), 0640, data, sizeof(data), tests_ms(3000)), 0);
	cr_assert_eq(stat(at("f"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(agentreq_read_file(&T.chan, at("f"), 0, &got, &len, tests_ms(3000)), 0);
	cr_assert_eq(len, sizeof(data));
	cr_assert_eq(memcmp(got, data, len), 0);
	free(got);
	/* Overwrite truncates and re-applies the mode; an empty file reads back empty. */
	cr_assert_eq(agentreq_write_file(&T.chan, at("f"), 0600, "", 0, tests_ms(3000)), 0);
	cr_assert_eq(stat(at("f"), &st), 0);
	cr_assert_eq(st.st_size, 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(agentreq_read_file(&T.chan, at("f"), 0, &got, &len, tests_ms(3000)), 0);
	cr_assert_eq(len, 0);
	free(got);
}

Test(agent_files, large_file_then_exec_output_of_it)
{
	static const char *argv[] = { "cat", NULL, NULL };
	size_t n = SNAPBOX_EXEC_DEFAULT_STDOUT, i;
	uint8_t *buf = malloc(n);
	struct snapbox_exec_opts o = { .argv = argv, .timeout_ms = tests_ms(10000) };
	struct snapbox_exec_result r;
	size_t len;
	void *got;

	setup_dir();
	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)((i * 0x9e3779b1u) >> 11);
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_write_file(&T.chan, at("big"), 0644, buf, n, tests_ms(5000)), 0);
	cr_assert_eq(agentreq_read_file(&T.chan, at("big"), n, &got, &len, tests_ms(5000)), 0);
	cr_assert_eq(len, n);
	cr_assert_eq(memcmp(got, buf, n), 0);
	free(got);
	argv[1] = at("big");
	cr_assert_eq(agentreq_exec(&T.chan, &o, &r), 0);
	cr_assert_eq(r.out_len, n);
	cr_assert(!r.out_truncated);
	cr_assert_eq(memcmp(r.out, buf, n), 0);
	snapbox_exec_result_free(&r);
	free(buf);
}

Test(agent_files, size_caps)
{
	static const char text[] = "0123456789";
	size_t len;
	void *got;

	setup_dir();
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_write_file(&T.chan, at("s"), 0644, text, 10, tests_ms(3000)), 0);
	cr_assert_eq(agentreq_read_file(&T.chan, at("s"), 9, &got, &len, tests_ms(3000)), -EFBIG);
	cr_assert_null(got);
	cr_assert_eq(agentreq_read_file(&T.chan, at("s"), 10, &got, &len, tests_ms(3000)), 0);
	free(got);
	/* The host refuses oversize requests before sending anything. */
	cr_assert_eq(agentreq_write_file(&T.chan, at("s"), 0644, text, SNAPBOX_FILE_MAX + 1, tests_ms(3000)),
		     -EFBIG);
	cr_assert_eq(agentreq_read_file(&T.chan, at("s"), SNAPBOX_FILE_MAX + 1, &got, &len, tests_ms(3000)),
		     -EINVAL);
	cr_assert_eq(agentreq_write_file(&T.chan, at("s"), 010000, text, 1, tests_ms(3000)), -EINVAL);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent_files, symlinks_anywhere_are_refused)
{
	char target[PATH_MAX];
	size_t len;
	void *got;

	setup_dir();
	snprintf(target, sizeof(target), "%s/real", dir);
	cr_assert_eq(mkdir(at("real"), 0755), 0);
	cr_assert_eq(symlink(target, at("dirlink")), 0);
	cr_assert_eq(symlink("real/secret", at("filelink")), 0);
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_write_file(&T.chan, at("real/secret"), 0600, "s", 1, tests_ms(3000)), 0);
	/* a directory component that is a symlink */
	cr_assert_eq(agentreq_write_file(&T.chan, at("dirlink/new"), 0644, "x", 1, tests_ms(3000)), -ELOOP);
	cr_assert_eq(access(at("real/new"), F_OK), -1, "written through a symlink");
	cr_assert_eq(agentreq_read_file(&T.chan, at("dirlink/secret"), 0, &got, &len, tests_ms(3000)), -ELOOP);
	/* the file itself is a symlink */
	cr_assert_eq(agentreq_write_file(&T.chan, at("filelink"), 0644, "y", 1, tests_ms(3000)), -ELOOP);
	cr_assert_eq(agentreq_read_file(&T.chan, at("filelink"), 0, &got, &len, tests_ms(3000)), -ELOOP);
	/* '..', a relative path, a directory, a FIFO, a missing file */
	cr_assert_eq(agentreq_read_file(&T.chan, at("real/../real/secret"), 0, &got, &len, tests_ms(3000)),
		     -EINVAL);
	cr_assert_eq(agentreq_read_file(&T.chan, "relative", 0, &got, &len, tests_ms(3000)), -EINVAL);
	cr_assert_eq(agentreq_read_file(&T.chan, at("real"), 0, &got, &len, tests_ms(3000)), -EISDIR);
	cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
	cr_assert_eq(agentreq_read_file(&T.chan, at("fifo"), 0, &got, &len, tests_ms(3000)), -EINVAL);
	cr_assert_eq(agentreq_read_file(&T.chan, at("missing"), 0, &got, &len, tests_ms(3000)), -ENOENT);
	cr_assert_eq(agentreq_write_file(&T.chan, at("nodir/f"), 0644, "z", 1, tests_ms(3000)), -ENOENT);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

/* WRITE_FILE with PROTO_WRITE_F_MKDIRS: missing parents are made 0755, a symlinked one still refused. */
Test(agent_files, mkdirs_flag_makes_parents_but_not_through_symlinks)
{
	struct stat st;
	void *got;
	size_t len;

	setup_dir();
	tagent_start(&T, TAGENT_SOCKET, 300);
	cr_assert_eq(agentreq_write_file_flags(&T.chan, at("a/b/c/f"), 0600, PROTO_WRITE_F_MKDIRS,
					       "deep", 4, tests_ms(3000)), 0);
	cr_assert_eq(agentreq_read_file(&T.chan, at("a/b/c/f"), 0, &got, &len, tests_ms(3000)), 0);
	cr_assert(len == 4 && !memcmp(got, "deep", 4));
	free(got);
	cr_assert_eq(stat(at("a/b"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0755);
	cr_assert_eq(symlink("/", at("link")), 0);
	cr_assert_eq(agentreq_write_file_flags(&T.chan, at("link/x/f"), 0600, PROTO_WRITE_F_MKDIRS,
					       "no", 2, tests_ms(3000)), -ELOOP);
	cr_assert_eq(agentreq_write_file_flags(&T.chan, at("g"), 0600, 0x2, "no", 2, tests_ms(3000)), -EINVAL);
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
}

Test(agent_files, guest_rechecks_every_length)
{
	uint8_t *p = calloc(1, PROTO_MAX_PAYLOAD);
	char text[256];

	tagent_start(&T, TAGENT_SOCKET, 300);
	/* EXEC: output caps beyond one frame */
	le_put32(p + 4, 1000);
	le_put32(p + 8, PROTO_EXEC_MAX_OUTPUT);
	le_put32(p + 12, 1);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 36, text, sizeof(text)), -EREMOTEIO);
	cr_assert(!strncmp(text, "7 ", 2), "%s", text);
	/* EXEC: argc 0, then argc huge, then an argv string longer than the payload */
	le_put32(p + 8, 10);
	le_put32(p + 16, 0);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 36, text, sizeof(text)), -EREMOTEIO);
	cr_assert(!strncmp(text, "22 ", 3), "%s", text);
	le_put32(p + 16, 0xffffffffu);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 36, text, sizeof(text)), -EREMOTEIO);
	le_put32(p + 16, 1);
	le_put32(p + 20, 0xfffffff0u);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 36, text, sizeof(text)), -EREMOTEIO);
	/* EXEC: a NUL inside argv[0]; then trailing bytes after a valid request */
	le_put32(p + 20, 3);
	memcpy(p + 24, "a\0b", 3);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 39, text, sizeof(text)), -EREMOTEIO);
	memcpy(p + 24, "env", 3);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 39, text, sizeof(text)), 0);
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 40, text, sizeof(text)), -EREMOTEIO);
	cr_assert(strstr(text, "trailing"), "%s", text);
	/* EXEC: truncated in the middle of the fixed fields */
	cr_assert_eq(raw_request(PROTO_T_EXEC, p, 7, text, sizeof(text)), -EREMOTEIO);
	/* WRITE_FILE: data longer than PROTO_FILE_MAX, within one frame */
	memset(p, 0, 64);
	le_put32(p, 0644);
	le_put32(p + 8, 5);
	memcpy(p + 12, "/tmp/", 5);
	le_put32(p + 17, PROTO_FILE_MAX + 1);
	cr_assert_eq(raw_request(PROTO_T_WRITE_FILE, p, 21 + PROTO_FILE_MAX + 1, text, sizeof(text)),
		     -EREMOTEIO);
	cr_assert(!strncmp(text, "22 ", 3), "%s", text);
	/* READ_FILE: max above the cap; a path length beyond the payload */
	memset(p, 0, 64);
	le_put32(p, PROTO_FILE_MAX + 1);
	le_put32(p + 8, 1);
	p[12] = '/';
	cr_assert_eq(raw_request(PROTO_T_READ_FILE, p, 13, text, sizeof(text)), -EREMOTEIO);
	le_put32(p, 10);
	le_put32(p + 8, 1000);
	cr_assert_eq(raw_request(PROTO_T_READ_FILE, p, 13, text, sizeof(text)), -EREMOTEIO);
	/* unknown type */
	cr_assert_eq(raw_request(0x7777, NULL, 0, text, sizeof(text)), -EREMOTEIO);
	cr_assert_str_eq(text, "38 unknown command");
	cr_assert_eq(tagent_ping(&T, tests_ms(2000)), 0);
	free(p);
}

Test(agent_files, garbage_and_huge_lengths_then_resync)
{
	uint8_t junk[100000], hdr[PROTO_HDR_SIZE];
	size_t i;

	tagent_start(&T, TAGENT_SOCKET, 200);
	/* Bytes >= 0x80 never form the magic: all dropped. */
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(0x80 | (i * 131));
	tagent_raw(&T, junk, sizeof(junk));
	cr_assert_eq(tagent_ping(&T, tests_ms(3000)), 0);
	/* A header claiming 4 GiB, then one just over the cap: both treated as garbage. */
	cr_assert_eq(proto_encode(hdr, sizeof(hdr), PROTO_T_PING, 0, 9, NULL, 0), PROTO_HDR_SIZE);
	le_put32(hdr + 12, 0xffffffffu);
	tagent_raw(&T, hdr, sizeof(hdr));
	le_put32(hdr + 12, PROTO_MAX_PAYLOAD + 1);
	tagent_raw(&T, hdr, sizeof(hdr));
	cr_assert_eq(tagent_ping(&T, tests_ms(3000)), 0);
	/* A frame that stops half-way is dropped after the stall time. */
	le_put32(hdr + 12, 1000);
	tagent_raw(&T, hdr, sizeof(hdr));
	tagent_raw(&T, junk, 10);
	usleep(500000);
	cr_assert_eq(tagent_ping(&T, tests_ms(3000)), 0);
	/* Frames flagged as replies are ignored; the agent still answers after them. */
	cr_assert_eq(proto_encode(hdr, sizeof(hdr), PROTO_T_PING, PROTO_F_RESP, 5, NULL, 0),
		     PROTO_HDR_SIZE);
	tagent_raw(&T, hdr, sizeof(hdr));
	cr_assert_eq(tagent_ping(&T, tests_ms(3000)), 0);
}
