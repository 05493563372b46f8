/* snapdir.h - atomic snapshot directories: write into a hidden temporary beside the target, then rename or exchange into place. */
#ifndef SNAPBOX_SNAPSHOT_SNAPDIR_H
#define SNAPBOX_SNAPSHOT_SNAPDIR_H

#include <stdbool.h>

/* Names of the two files a snapshot directory holds (docs/snapshot-format.md §1). */
#define SNAPDIR_VMSTATE "vmstate"
#define SNAPDIR_MEMORY  "memory"

/* A snapshot being written. Between begin and finish/abort, the target is untouched. */
struct snapdir {
	int parent_fd;      /* the target's parent directory */
	int tmp_fd;         /* the temporary directory; files are created relative to it */
	char *path;         /* the target as given, for messages */
	char *name;         /* the target's last component */
	char *tmp_name;     /* ".<name>.tmp-<pid>-<8 hex>", in the parent */
	bool no_sync;
};

/*
 * Start a snapshot at `target`: check that its parent exists and that the
 * target either does not exist or may be replaced (an empty directory, or a
 * directory of regular files whose vmstate starts with the vmstate magic),
 * then create the hidden temporary directory (mode 0700) beside it.
 * no_sync skips every fsync in snapdir_finish.
 * Returns 0, or -errno: -ENOENT (missing parent), -EEXIST (target exists and
 * is not a snapshot), -EINVAL (empty target, "." or ".."), -ENAMETOOLONG.
 * Logs one line on error. On success exactly one of snapdir_finish or
 * snapdir_abort must follow.
 */
int snapdir_begin(struct snapdir *d, const char *target, bool no_sync);

/*
 * Create a new file `name` in the temporary directory (O_WRONLY, O_EXCL,
 * O_CLOEXEC, mode 0600). Returns the fd (the caller closes it) or -errno,
 * logging one line on error.
 */
int snapdir_create_file(struct snapdir *d, const char *name);

/*
 * Publish the temporary directory as the target: unless no_sync, fsync every
 * file in it and the directory; then rename it into place (exchange with an
 * existing snapshot, re-checked now); unless no_sync, fsync the parent; then
 * remove the old snapshot. The caller has finished writing every file (its
 * fds may still be open). Returns 0 or -errno, logging one line; on error the
 * temporary directory is removed and the target is as it was (old snapshot
 * intact), with one exception: if only the final fsync of the parent fails,
 * the new snapshot is in place but may not survive a power loss, and that
 * error is returned. Either way *d is released and needs no abort.
 */
int snapdir_finish(struct snapdir *d);

/*
 * Give up: remove the temporary directory and its files and release *d. The
 * target is untouched. The caller closes its fds first or after; either is
 * fine. Safe on a released (zeroed) snapdir. Logs one line if removal fails.
 */
void snapdir_abort(struct snapdir *d);

#endif
