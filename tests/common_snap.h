/* common_snap.h - helpers shared by the snapshot and restore KVM tests: temp dirs, probe commands, snapshot/restore that assert. */
#ifndef SNAPBOX_TESTS_COMMON_SNAP_H
#define SNAPBOX_TESTS_COMMON_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"
#include "snapbox.h"
#include "tests/common_kvm.h"

#define TS_MS        tests_ms(5000)   /* tests/common_kvm.h */
#define TS_MEM       (64ull << 20)   /* guest RAM of the snapshot tests */
#define TS_FILL_MIB  16u             /* the filled region, from PROTO_FILL_BASE */
#define TS_SEED      0x5eed0001ull   /* the pattern written before the snapshot */

/* Every memory mode, for tests that run once per mode. */
#define TESTS_NMODES 3
extern const enum snapbox_restore_mode tests_modes[TESTS_NMODES];
const char *tests_mode_name(enum snapbox_restore_mode m);

uint64_t tests_now_ns(void);

/* A fresh private directory /tmp/snapbox-<tag>-XXXXXX (malloc'd; free it). */
char *tests_mkdtemp(const char *tag);
/* Remove path and everything below it; missing is fine. */
void tests_rm_rf(const char *path);
/* Entries of a directory other than . and .. (-1 when it cannot be opened). */
int tests_count_entries(const char *dir);
/* snprintf into a malloc'd string. */
char *tests_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Boot the probe with mem bytes of RAM and check PING; asserts success. */
struct snapbox *tests_boot_probe_mem(uint64_t mem);

/* Probe commands; each asserts that the request succeeded. */
void tests_fill(struct snapbox *sb, uint32_t mib, uint64_t seed);
uint64_t tests_bad_pages(struct snapbox *sb, uint32_t mib, uint64_t seed);
uint64_t tests_hash(struct snapbox *sb, uint64_t gpa, uint64_t len);
struct proto_ticks_resp tests_ticks(struct snapbox *sb);

/* Snapshot into dir (no_sync as asked); asserts success. */
void tests_snapshot_ok(struct snapbox *sb, const char *dir, bool no_sync);

/* On stderr: the vCPU, PIC and COM2 state of a guest that stopped answering. */
void tests_dump_stuck(struct snapbox *sb);

/* Restore with verification on; asserts success, and a PING when resume. */
struct snapbox *tests_restore_ok(const char *dir, enum snapbox_restore_mode mode,
				 const char *cache_dir, bool resume);

/* Boot, fill TS_FILL_MIB with TS_SEED, snapshot into dir, destroy. Returns the fill's HASH. */
uint64_t tests_make_snapshot(const char *dir);

#endif
