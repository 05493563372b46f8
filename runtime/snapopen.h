/* snapopen.h - open and validate a snapshot directory (vmstate + memory), shared by inspect and restore. */
#ifndef SNAPBOX_RUNTIME_SNAPOPEN_H
#define SNAPBOX_RUNTIME_SNAPOPEN_H

#include "runtime/snapconf.h"
#include "snapshot/memfile.h"
#include "snapshot/vmstate.h"

struct snapopen {
	int dir_fd;
	int mem_fd;
	struct vmstate_reader vs;
	struct snapconf conf;
	struct snapconf_memf memf;
	struct memfile_reader mem;
};

/*
 * Open `dir`: read and fully validate vmstate (magic, version, every section
 * checksum, END), decode CONF and MEMF, open and validate the memory file,
 * and check that the memory file is the one MEMF names (size, chunking,
 * index hash), so a vmstate can never be paired with another snapshot's
 * memory. Returns 0 or -errno with one line on stderr.
 */
int snapopen_open(struct snapopen *so, const char *dir);
void snapopen_close(struct snapopen *so);

/*
 * The one section with `tag`, as a reader. -EPROTO (logged) when it is
 * absent, repeated, or of another section version than `version`.
 */
int snapopen_section(const struct snapopen *so, uint32_t tag, uint16_t version,
		     struct sbuf_reader *r);

#endif
