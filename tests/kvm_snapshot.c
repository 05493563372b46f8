/* kvm_snapshot.c - snapshots of a running probe guest: it keeps running, atomic replace, inspect, corrupt snapshots refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/sandbox_internal.h"
#include "snapshot/memfile.h"
#include "snapshot/vmstate.h"
#include "tests/common_capture.h"
#include "tests/common_kvm.h"
#include "tests/common_snap.h"

#define TSN_SEED_2  0x5eed0002ull

/*
 * Per test (each runs in its own process): a work dir, the snapshot in it, a
 * private cow cache. Made by ts_setup() after the KVM check, not by .init:
 * Criterion runs no .fini for a skipped test.
 */
static char *ts_dir, *ts_snap, *ts_cache;

static void ts_setup(void)
{
	ts_dir = tests_mkdtemp("snapshot");
	ts_cache = tests_mkdtemp("cache");
	ts_snap = tests_path("%s/snap", ts_dir);
}

static void ts_teardown(void)
{
	tests_rm_rf(ts_dir);
	tests_rm_rf(ts_cache);
	free(ts_dir);
	free(ts_cache);
	free(ts_snap);
}

Test(kvm_snapshot, original_keeps_running_after_snapshot, .fini = ts_teardown)
{
	struct snapbox_snapshot_profile p;
	struct snapbox *sb, *r;
	uint64_t h;
	char *snap2;

	TESTS_REQUIRE_KVM();
	ts_setup();
	snap2 = tests_path("%s/snap2", ts_dir);
	sb = tests_boot_probe_mem(TS_MEM);
	tests_fill(sb, TS_FILL_MIB, TS_SEED);
	h = tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20);
	cr_assert_eq(snapbox_snapshot(sb, ts_snap, &(struct snapbox_snapshot_opts){ .no_sync = true },
				      &p), 0);
	cr_assert_eq(p.bytes_in, TS_MEM);
	cr_assert_gt(p.bytes_out, 0);
	cr_assert_lt(p.bytes_out, p.bytes_in, "a mostly empty guest did not compress");
	cr_assert_gt(p.zero_chunks, 0);
	cr_assert_gt(p.lz4_chunks + p.raw_chunks, 0);
	cr_assert_geq(p.total, p.pause);

	/* The original runs on, unchanged. */
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "original stopped answering: %s",
		     snapbox_stop_reason(sb));
	cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0);
	cr_assert_eq(tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20), h);
	/* Its later writes are its own, and a second snapshot of it works. */
	tests_fill(sb, TS_FILL_MIB, TSN_SEED_2);
	tests_snapshot_ok(sb, snap2, true);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	snapbox_destroy(sb);

	r = tests_restore_ok(ts_snap, SNAPBOX_RESTORE_EAGER, NULL, true);
	cr_assert_eq(tests_bad_pages(r, TS_FILL_MIB, TS_SEED), 0,
		     "writes after the snapshot leaked into it");
	snapbox_destroy(r);
	r = tests_restore_ok(snap2, SNAPBOX_RESTORE_EAGER, NULL, true);
	cr_assert_eq(tests_bad_pages(r, TS_FILL_MIB, TSN_SEED_2), 0);
	snapbox_destroy(r);
	free(snap2);
}

Test(kvm_snapshot, leave_paused_snapshot_destroys_cleanly, .fini = ts_teardown)
{
	struct snapbox_snapshot_opts o = { .no_sync = true, .leave_paused = true };
	struct snapbox *sb;
	int fds;

	TESTS_REQUIRE_KVM();
	ts_setup();
	fds = tests_count_fds();
	sb = tests_boot_probe_mem(TS_MEM);
	tests_fill(sb, TS_FILL_MIB, TS_SEED);
	cr_assert_eq(snapbox_snapshot(sb, ts_snap, &o, NULL), 0);
	snapbox_destroy(sb);
	cr_assert_eq(tests_count_fds(), fds, "snapshot + destroy leaked file descriptors");
	sb = tests_restore_ok(ts_snap, SNAPBOX_RESTORE_EAGER, NULL, true);
	cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0);
	snapbox_destroy(sb);
}

/* A snapshot can leave the guest paused; snapbox_resume starts it again. */
Test(kvm_snapshot, leave_paused_snapshot_can_be_resumed, .fini = ts_teardown)
{
	struct snapbox_snapshot_opts o = { .no_sync = true, .leave_paused = true };
	struct snapbox *sb;

	TESTS_REQUIRE_KVM();
	ts_setup();
	sb = tests_boot_probe_mem(TS_MEM);
	cr_assert_eq(snapbox_snapshot(sb, ts_snap, &o, NULL), 0);
	cr_assert_eq(snapbox_ping(sb, 300), -ETIMEDOUT, "a paused guest answered");
	cr_assert_eq(snapbox_resume(sb), 0);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	cr_assert_eq(snapbox_resume(sb), -EINVAL, "resumed a running guest");
	snapbox_destroy(sb);
}

/* A snapshot of a restored sandbox holds its whole memory, untouched template pages included. */
Test(kvm_snapshot, snapshot_of_a_restored_sandbox_restores, .fini = ts_teardown)
{
	uint64_t h;
	char *snap2;

	TESTS_REQUIRE_KVM();
	ts_setup();
	snap2 = tests_path("%s/snap2", ts_dir);
	h = tests_make_snapshot(ts_snap);
	for (int i = 0; i < TESTS_NMODES; i++) {
		enum snapbox_restore_mode m = tests_modes[i];
		const char *mn = tests_mode_name(m);
		/* Only PINGed: the guest never touches the filled region before the snapshot. */
		struct snapbox *sb = tests_restore_ok(ts_snap, m, ts_cache, true);

		tests_snapshot_ok(sb, snap2, true);
		cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
		snapbox_destroy(sb);
		for (int j = 0; j < TESTS_NMODES; j++) {
			sb = tests_restore_ok(snap2, tests_modes[j], ts_cache, true);
			cr_assert_eq(tests_bad_pages(sb, TS_FILL_MIB, TS_SEED), 0,
				     "snapshot of a %s-restored guest, restored %s: fill lost", mn,
				     tests_mode_name(tests_modes[j]));
			cr_assert_eq(tests_hash(sb, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20), h);
			snapbox_destroy(sb);
		}
		tests_rm_rf(snap2);
	}
	free(snap2);
}

/*
 * A sandbox restored without resume has its vCPU thread parked before any
 * guest instruction: it can be snapshotted as it is (leave_paused keeps it
 * that way), and both it and the new snapshot then run and hold the fill.
 */
Test(kvm_snapshot, never_resumed_restore_snapshots_and_stays_paused, .fini = ts_teardown)
{
	struct snapbox_snapshot_opts o = { .no_sync = true, .leave_paused = true };
	struct snapbox *sb, *again;
	uint64_t h;
	char *snap2;

	TESTS_REQUIRE_KVM();
	ts_setup();
	snap2 = tests_path("%s/snap2", ts_dir);
	h = tests_make_snapshot(ts_snap);
	sb = tests_restore_ok(ts_snap, SNAPBOX_RESTORE_COW, ts_cache, false);
	cr_assert_eq(snapbox_snapshot(sb, snap2, &o, NULL), 0);
	/* Still paused: the guest answers nothing until resumed. */
	cr_assert_eq(snapbox_ping(sb, 300), -ETIMEDOUT);
	cr_assert_eq(snapbox_resume(sb), 0);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	cr_assert_eq(snapbox_resume(sb), -EINVAL, "resuming a running sandbox");
	snapbox_destroy(sb);
	again = tests_restore_ok(snap2, SNAPBOX_RESTORE_EAGER, ts_cache, true);
	cr_assert_eq(tests_bad_pages(again, TS_FILL_MIB, TS_SEED), 0);
	cr_assert_eq(tests_hash(again, PROTO_FILL_BASE, (uint64_t)TS_FILL_MIB << 20), h);
	snapbox_destroy(again);
	free(snap2);
}

Test(kvm_snapshot, second_snapshot_replaces_the_first_atomically, .fini = ts_teardown)
{
	struct snapbox *sb, *r;
	char *missing, *parent;
	struct stat st;

	TESTS_REQUIRE_KVM();
	ts_setup();
	missing = tests_path("%s/no-such-parent/snap", ts_dir);
	parent = tests_path("%s/no-such-parent", ts_dir);
	sb = tests_boot_probe_mem(TS_MEM);
	tests_fill(sb, TS_FILL_MIB, TS_SEED);
	tests_snapshot_ok(sb, ts_snap, false);         /* with fsync, as by default */
	tests_fill(sb, TS_FILL_MIB, TSN_SEED_2);
	tests_snapshot_ok(sb, ts_snap, false);
	cr_assert_eq(tests_count_entries(ts_dir), 1, "temporaries or the old snapshot were left");
	cr_assert_eq(tests_count_entries(ts_snap), 2, "a snapshot holds vmstate and memory only");

	cr_assert_eq(snapbox_snapshot(sb, missing, NULL, NULL), -ENOENT);
	cr_assert_eq(stat(parent, &st), -1, "the missing parent was created");
	cr_assert_eq(tests_count_entries(ts_dir), 1, "a failed snapshot left something behind");
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0, "a failed snapshot stopped the guest");
	snapbox_destroy(sb);

	r = tests_restore_ok(ts_snap, SNAPBOX_RESTORE_EAGER, NULL, true);
	cr_assert_eq(tests_bad_pages(r, TS_FILL_MIB, TSN_SEED_2), 0,
		     "the second snapshot is not in place");
	cr_assert_gt(tests_bad_pages(r, TS_FILL_MIB, TS_SEED), 0);
	snapbox_destroy(r);
	free(missing);
	free(parent);
}

Test(kvm_snapshot, refuses_to_replace_what_is_not_a_snapshot, .fini = ts_teardown)
{
	char *file, *keep, *empty;
	struct snapbox *sb, *r;
	FILE *f;

	TESTS_REQUIRE_KVM();
	ts_setup();
	file = tests_path("%s/file", ts_dir);
	keep = tests_path("%s/keep", ts_snap);
	empty = tests_path("%s/empty", ts_dir);
	sb = tests_boot_probe_mem(TS_MEM);
	tests_fill(sb, TS_FILL_MIB, TS_SEED);
	/* a directory with something else in it */
	cr_assert_eq(mkdir(ts_snap, 0700), 0);
	f = fopen(keep, "w");
	cr_assert_not_null(f);
	fputs("precious\n", f);
	fclose(f);
	cr_assert_eq(snapbox_snapshot(sb, ts_snap, NULL, NULL), -EEXIST);
	cr_assert_eq(tests_count_entries(ts_snap), 1);
	cr_assert_eq(access(keep, F_OK), 0, "a non-snapshot directory was replaced");
	/* a regular file */
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(snapbox_snapshot(sb, file, NULL, NULL), -EEXIST);
	cr_assert_eq(tests_count_entries(ts_dir), 2, "a refused snapshot left a temporary");
	/* an empty directory may be replaced */
	cr_assert_eq(mkdir(empty, 0700), 0);
	tests_snapshot_ok(sb, empty, true);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	snapbox_destroy(sb);
	r = tests_restore_ok(empty, SNAPBOX_RESTORE_EAGER, NULL, true);
	cr_assert_eq(tests_bad_pages(r, TS_FILL_MIB, TS_SEED), 0);
	snapbox_destroy(r);
	free(file);
	free(keep);
	free(empty);
}

Test(kvm_snapshot, inspect_json_names_memory_and_sections, .fini = ts_teardown)
{
	static const char *const tags[] = { "CONF", "HOST", "VCPU", "CLCK", "IRQC", "PIT2", "DEVS",
					    "MEMF" };
	char want[64];
	size_t len;
	char *out;
	FILE *f;
	int fds;

	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	fds = tests_count_fds();
	for (int verify = 0; verify < 2; verify++) {
		f = open_memstream(&out, &len);
		cr_assert_not_null(f);
		cr_assert_eq(snapbox_inspect(ts_snap, verify, true, f), 0);
		fclose(f);
		cr_assert_eq(out[0], '{', "not a JSON object: %s", out);
		cr_assert_eq(strcmp(out + len - 2, "}\n"), 0, "not one JSON object: %s", out);
		snprintf(want, sizeof(want), "\"mem_bytes\": %llu", TS_MEM);
		cr_assert_not_null(strstr(out, want), "no %s in %s", want, out);
		for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
			snprintf(want, sizeof(want), "\"tag\": \"%s\"", tags[i]);
			cr_assert_not_null(strstr(out, want), "no %s in %s", want, out);
		}
		cr_assert_not_null(strstr(out, verify ? "\"verified\": true" : "\"verified\": false"));
		free(out);
	}
	/* and as text */
	f = open_memstream(&out, &len);
	cr_assert_eq(snapbox_inspect(ts_snap, true, false, f), 0);
	fclose(f);
	cr_assert_not_null(strstr(out, "CONF"));
	cr_assert_not_null(strstr(out, "verified"));
	free(out);
	cr_assert_eq(snapbox_inspect("/nonexistent/snapshot", false, true, stdout), -ENOENT);
	cr_assert_eq(tests_count_fds(), fds, "inspect leaked file descriptors");
}

/* Corrupt snapshots: every reader refuses with a negative errno, creates nothing, leaks no fd. */

/* dir/name, rewritten by fn(fd, size). */
static void ts_mutate(const char *dir, const char *name, void (*fn)(int fd, off_t size))
{
	char *p = tests_path("%s/%s", dir, name);
	struct stat st;
	int fd = open(p, O_RDWR);

	cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	fn(fd, st.st_size);
	close(fd);
	free(p);
}

static void ts_flip_middle(int fd, off_t size)
{
	uint8_t b;

	cr_assert_eq(pread(fd, &b, 1, size / 2), 1);
	b ^= 0x01;
	cr_assert_eq(pwrite(fd, &b, 1, size / 2), 1);
}

static void ts_truncate_half(int fd, off_t size)
{
	cr_assert_eq(ftruncate(fd, size / 2), 0);
}

/*
 * Restore (every mode) and inspect --verify of dir all fail; want 0 accepts
 * any errno. data_only: the damage is inside a chunk's data, which a lazy
 * restore only decodes on first touch, so lazy is left out.
 */
static void ts_refused(const char *dir, int want, bool data_only)
{
	int fds = tests_count_fds();

	for (int i = 0; i < TESTS_NMODES; i++) {
		if (data_only && tests_modes[i] == SNAPBOX_RESTORE_LAZY)
			continue;
		struct snapbox_restore_opts o = {
			.mode = tests_modes[i], .resume = true, .console_fd = -1, .cache_dir = ts_cache,
		};
		struct snapbox *sb = NULL;
		int ret = snapbox_restore(dir, &o, &sb, NULL);

		cr_assert(ret < 0 && ret > -4096, "%s restore of a bad snapshot returned %d",
			  tests_mode_name(tests_modes[i]), ret);
		if (want)
			cr_assert_eq(ret, want, "%s restore: %s, want %s", tests_mode_name(tests_modes[i]),
				     strerror(-ret), strerror(-want));
		cr_assert_null(sb);
	}
	{
		char *out;
		size_t len;
		FILE *f = open_memstream(&out, &len);
		int ret = snapbox_inspect(dir, true, true, f);

		fclose(f);
		free(out);
		cr_assert(ret < 0 && ret > -4096, "inspect of a bad snapshot returned %d", ret);
		if (want)
			cr_assert_eq(ret, want, "inspect: %s, want %s", strerror(-ret), strerror(-want));
	}
	cr_assert_eq(tests_count_fds(), fds, "refusing a bad snapshot leaked file descriptors");
	cr_assert_eq(tests_count_entries(ts_cache), 0, "a refused cow restore left a template");
}

/*
 * Flip one byte of the memory file inside a stored chunk of the filled region,
 * chosen so that the chunk still decodes to its full length: only the xxh3
 * check can tell. Returns the page index (from PROTO_FILL_BASE) it changes.
 */
static uint64_t ts_flip_chunk_byte(const char *dir)
{
	char *p = tests_path("%s/memory", dir);
	struct memfile_reader r;
	uint8_t *good, *got, b;
	uint32_t first, last;
	int fd = open(p, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(memfile_open(&r, fd), 0);
	memfile_set_verify(&r, false);
	good = malloc(r.chunk_size);
	got = malloc(r.chunk_size);
	first = (uint32_t)(PROTO_FILL_BASE / r.chunk_size);
	last = (uint32_t)((PROTO_FILL_BASE + ((uint64_t)TS_FILL_MIB << 20)) / r.chunk_size);
	for (uint32_t k = 0; k < last - first; k++) {
		uint32_t c = first + ((last - first) / 2 + k) % (last - first);
		const struct memfile_chunk *ch = &r.chunks[c];

		if (ch->kind == MEMFILE_KIND_ZERO)
			continue;
		cr_assert_eq(memfile_read_chunk(&r, c, good, r.chunk_size, NULL), 0);
		for (uint32_t off = ch->stored_len / 2; off < ch->stored_len && off < ch->stored_len / 2 + 64;
		     off++) {
			cr_assert_eq(pread(fd, &b, 1, (off_t)(ch->offset + off)), 1);
			b ^= 0x01;
			cr_assert_eq(pwrite(fd, &b, 1, (off_t)(ch->offset + off)), 1);
			if (memfile_read_chunk(&r, c, got, r.chunk_size, NULL) == 0) {
				for (uint32_t i = 0; i < r.chunk_size; i++)
					if (got[i] != good[i]) {
						uint64_t gpa = (uint64_t)c * r.chunk_size + i;

						memfile_close(&r);
						close(fd);
						free(good);
						free(got);
						free(p);
						return (gpa - PROTO_FILL_BASE) / 4096;
					}
			}
			b ^= 0x01;
			cr_assert_eq(pwrite(fd, &b, 1, (off_t)(ch->offset + off)), 1);
		}
	}
	cr_assert_fail("found no byte whose flip still decodes");
	return 0;
}

Test(kvm_snapshot, corrupt_memory_chunk_is_caught_by_verification, .fini = ts_teardown)
{
	struct snapbox_restore_opts o = {
		.mode = SNAPBOX_RESTORE_LAZY, .resume = true, .console_fd = -1,
	};
	struct snapbox *sb;
	char *out;
	size_t len;
	FILE *f;

	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_flip_chunk_byte(ts_snap);
	ts_refused(ts_snap, -EPROTO, true);
	/* The structure is intact: only decoding every chunk finds the damage. */
	f = open_memstream(&out, &len);
	cr_assert_eq(snapbox_inspect(ts_snap, false, true, f), 0);
	fclose(f);
	free(out);

	/* lazy: the restore succeeds; the bad chunk is caught when first touched, and from then
	 * on every request fails with -EIO: the guest saw zeros there. */
	sb = NULL;
	cr_assert_eq(snapbox_restore(ts_snap, &o, &sb, NULL), 0);
	cr_assert_eq(snapbox_ping(sb, TS_MS), 0);
	{
		struct proto_fill_req fr = { .mib = TS_FILL_MIB, .seed = TS_SEED };
		uint32_t n;
		void *r;

		cr_assert_eq(snapbox_request(sb, PROTO_T_VERIFY, &fr, sizeof(fr), &r, &n, TS_MS), -EIO,
			     "lazy: touching the damaged chunk was not reported");
		cr_assert_null(r);
		cr_assert_eq(snapbox_ping(sb, TS_MS), -EIO);
	}
	/* The agent's calls too: none hands back an answer from that guest. */
	{
		const char *argv[] = { "/bin/true", NULL };
		struct snapbox_exec_opts eo = { .argv = argv };
		struct snapbox_exec_result er;
		void *data = NULL;
		size_t dlen = 0;

		cr_assert_eq(snapbox_exec(sb, &eo, &er), -EIO);
		cr_assert_eq(snapbox_read_file(sb, "/x", 0, &data, &dlen, TS_MS), -EIO);
		cr_assert_null(data);
		cr_assert_eq(snapbox_write_file(sb, "/x", 0644, "a", 1, TS_MS), -EIO);
	}
	cr_assert_not_null(sb->lazy);
	cr_assert_geq(atomic_load(&sb->lazy->errors), 1, "lazy did not count the corrupt chunk");
	snapbox_destroy(sb);
}

/* With no_verify the damaged chunk is restored as stored: the guest sees just the flipped page. */
static void ts_restore_unverified(enum snapbox_restore_mode m)
{
	struct snapbox_restore_opts o = {
		.mode = m, .no_verify = true, .resume = true, .console_fd = -1, .cache_dir = ts_cache,
	};
	struct proto_fill_req fr = { .mib = TS_FILL_MIB, .seed = TS_SEED };
	struct proto_verify_resp vr;
	struct snapbox *sb = NULL;
	uint64_t page;
	uint32_t n;
	void *r;
	int ret;

	tests_make_snapshot(ts_snap);
	page = ts_flip_chunk_byte(ts_snap);
	ret = snapbox_restore(ts_snap, &o, &sb, NULL);
	cr_assert_eq(ret, 0, "%s restore with no_verify: %s", tests_mode_name(m), strerror(-ret));
	cr_assert_eq(snapbox_request(sb, PROTO_T_VERIFY, &fr, sizeof(fr), &r, &n, TS_MS), 0);
	cr_assert_eq(n, sizeof(vr));
	memcpy(&vr, r, sizeof(vr));
	free(r);
	cr_assert_eq(vr.bad_pages, 1, "%s: the flipped byte shows as %llu bad pages",
		     tests_mode_name(m), (unsigned long long)vr.bad_pages);
	cr_assert_eq(vr.first_bad_page, page);
	snapbox_destroy(sb);
}

Test(kvm_snapshot, corrupt_chunk_restores_eager_without_verification, .fini = ts_teardown)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	ts_restore_unverified(SNAPBOX_RESTORE_EAGER);
}

Test(kvm_snapshot, corrupt_chunk_restores_lazy_without_verification, .fini = ts_teardown)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	ts_restore_unverified(SNAPBOX_RESTORE_LAZY);
}

/* A cow template is cached and shared, so it is verified even when the restore asks not to. */
Test(kvm_snapshot, cow_verifies_its_template_even_with_no_verify, .fini = ts_teardown)
{
	struct snapbox_restore_opts o = {
		.mode = SNAPBOX_RESTORE_COW, .no_verify = true, .console_fd = -1, .cache_dir = ts_cache,
	};
	struct snapbox *sb = NULL;

	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_flip_chunk_byte(ts_snap);
	cr_assert_eq(snapbox_restore(ts_snap, &o, &sb, NULL), -EPROTO);
	cr_assert_null(sb);
}

/*
 * Rewrite dir/vmstate with the `tag` section's payload cut short by `cut`
 * bytes, every checksum recomputed: a file that is sound as a container but
 * whose section does not decode.
 */
static void ts_cut_section(const char *dir, uint32_t tag, size_t cut)
{
	char *path = tests_path("%s/vmstate", dir);
	struct vmstate_reader r;
	struct vmstate_writer w;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool found = false;

	cr_assert(fd >= 0);
	cr_assert_eq(vmstate_read_fd(&r, fd, NULL, 0), 0);
	close(fd);
	vmstate_writer_init(&w);
	for (size_t i = 0; i < r.nsecs; i++) {
		const struct vmstate_section *sec = &r.secs[i];
		size_t len = sec->length;

		if (sec->tag == tag) {
			cr_assert_gt(len, cut);
			len -= cut;
			found = true;
		}
		cr_assert_eq(vmstate_add(&w, sec->tag, sec->version, sec->flags, sec->payload, len), 0);
	}
	cr_assert(found);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(vmstate_write_fd(&w, fd), 0);
	close(fd);
	vmstate_writer_fini(&w);
	vmstate_reader_fini(&r);
	free(path);
}

/* inspect --verify and restore refuse the same snapshots: one decoder for every section. */
Test(kvm_snapshot, verify_refuses_what_restore_refuses, .fini = ts_teardown, .init = tests_quiet_stderr)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_cut_section(ts_snap, VMSTATE_TAG_VCPU, 8);
	ts_refused(ts_snap, -EPROTO, false);
	tests_make_snapshot(ts_snap);
	ts_cut_section(ts_snap, VMSTATE_TAG_DEVS, 4);
	ts_refused(ts_snap, -EPROTO, false);
}

Test(kvm_snapshot, truncated_memory_file_is_refused, .fini = ts_teardown)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_mutate(ts_snap, "memory", ts_truncate_half);
	ts_refused(ts_snap, -EPROTO, false);
}

Test(kvm_snapshot, truncated_vmstate_is_refused, .fini = ts_teardown)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_mutate(ts_snap, "vmstate", ts_truncate_half);
	ts_refused(ts_snap, -EPROTO, false);
}

Test(kvm_snapshot, flipped_vmstate_byte_is_refused, .fini = ts_teardown)
{
	TESTS_REQUIRE_KVM();
	ts_setup();
	tests_make_snapshot(ts_snap);
	ts_mutate(ts_snap, "vmstate", ts_flip_middle);
	ts_refused(ts_snap, -EPROTO, false);
}

Test(kvm_snapshot, missing_vmstate_empty_dir_and_non_directory_are_refused,
     .fini = ts_teardown)
{
	char *vm, *mem, *empty;

	TESTS_REQUIRE_KVM();
	ts_setup();
	vm = tests_path("%s/vmstate", ts_snap);
	mem = tests_path("%s/memory", ts_snap);
	empty = tests_path("%s/empty", ts_dir);
	tests_make_snapshot(ts_snap);
	cr_assert_eq(unlink(vm), 0);
	ts_refused(ts_snap, -ENOENT, false);
	cr_assert_eq(mkdir(empty, 0700), 0);
	ts_refused(empty, -ENOENT, false);
	ts_refused(mem, -ENOTDIR, false);       /* a regular file, not a directory */
	ts_refused("/nonexistent/snapshot", -ENOENT, false);
	free(vm);
	free(mem);
	free(empty);
}
