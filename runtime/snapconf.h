/* snapconf.h - the runtime's own snapshot sections: CONF (what the VM was built from) and MEMF (which memory file). */
#ifndef SNAPBOX_RUNTIME_SNAPCONF_H
#define SNAPBOX_RUNTIME_SNAPCONF_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/sbuf.h"

#define SNAPCONF_CONF_VERSION 1u
#define SNAPCONF_MEMF_VERSION 1u
#define SNAPCONF_STR_MAX      4096u
#define SNAPCONF_VERSION_STR  "snapbox 0.1"

struct snapconf {
	uint64_t mem_bytes;
	uint32_t vcpus;
	uint8_t backend;             /* 0 hardware, 1 pvm */
	bool has_initrd;
	uint64_t kernel_hash[2];
	uint64_t initrd_hash[2];
	uint64_t created_unix_ns;
	char cmdline[SNAPCONF_STR_MAX + 1];
	char kernel_path[SNAPCONF_STR_MAX + 1];
	char version[64];
};

struct snapconf_memf {
	char name[64];
	uint64_t raw_size;
	uint32_t chunk_size;
	uint32_t chunk_count;
	uint64_t index_xxh64;
};

/* Append the CONF payload (docs/snapshot-sections.md); errors stay in out->err. */
void snapconf_encode(const struct snapconf *c, struct sbuf *out);
/* Parse a CONF payload; -EPROTO (logged) on truncation, over-long strings, a backend or has_initrd byte other than 0/1, trailing bytes. */
int snapconf_decode(struct sbuf_reader *in, struct snapconf *c);

void snapconf_memf_encode(const struct snapconf_memf *m, struct sbuf *out);
int snapconf_memf_decode(struct sbuf_reader *in, struct snapconf_memf *m);

#endif
