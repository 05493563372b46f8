/* template.h - decompressed memory templates for copy-on-write restores, cached per snapshot content. */
#ifndef SNAPBOX_RUNTIME_TEMPLATE_H
#define SNAPBOX_RUNTIME_TEMPLATE_H

#include <stdbool.h>

#include "snapshot/memfile.h"

/*
 * An fd of the decompressed memory image of `mem`, decoding it only the
 * first time: the template is the file "<cache_dir>/snapbox-<index hash>-
 * <raw size>.mem" (the index hash covers every chunk's xxh3, so equal names
 * mean equal contents), created under a temporary name and renamed into place
 * so a concurrent or interrupted restore never sees half a template.
 * cache_dir NULL means /dev/shm/snapbox-<euid>, a directory of this user's
 * own, mode 0700 (tmpfs: the template is page cache that every clone maps).
 * An existing template is used only when it is a regular file of this user,
 * writable by nobody else, opened without following a symlink; a file that
 * fails this is left alone and this call decodes a private, unlinked copy.
 * *created tells whether this call decoded it.
 * Returns the fd (O_RDONLY, or O_RDWR for a private copy; the caller closes
 * it) or -errno with a message.
 */
int template_get(const struct memfile_reader *mem, const char *cache_dir, unsigned threads,
		 bool *created);

#endif
