/* cli_util.h - helpers the snapbox CLI, its bench command and snapboxd share. */
#ifndef SNAPBOX_TOOLS_CLI_UTIL_H
#define SNAPBOX_TOOLS_CLI_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "snapbox.h"

/* "256M", "1G", "4096K", "1048576B" or a plain number of MiB. Returns 0 or -EINVAL. */
int cli_parse_size(const char *s, uint64_t *out);

/* "eager", "cow" or "lazy" into *out: 0, or -EINVAL for anything else. */
int cli_parse_mode(const char *s, enum snapbox_restore_mode *out);
/* The name cli_parse_mode takes for m. */
const char *cli_mode_name(enum snapbox_restore_mode m);

/*
 * A default guest asset, malloc'd: $env when set, else build/guest/NAME beside
 * the binary, else the installed share/snapbox/NAME, else (kernel only) the
 * cached guest kernel guest/linux/build.sh reports. NULL when none exists.
 */
char *cli_find_asset(const char *env, const char *name, bool kernel);

/*
 * A guest image (an initramfs with the agent as /init): NAME with a '/' is a
 * file path; otherwise the image `make image IMAGE_NAME=NAME` built, as
 * guest/image/build.sh --path reports it for the agent and mkinitramfs beside
 * this binary. malloc'd, or NULL when there is none.
 */
char *cli_find_image(const char *name);

/* The whole of path, malloc'd, when it is a regular file of at most max bytes: 0 or -errno (-EFBIG). */
int cli_read_file(const char *path, size_t max, void **data, size_t *len);

/*
 * $SNAPBOX_TIME_SCALE, when set, becomes the library's deadline factor
 * (snapbox_set_time_scale). Returns 0, or -EINVAL after one line on stderr
 * naming prog when it is not a number from 1 to 1000.
 */
int cli_time_scale_from_env(const char *prog);

#endif
