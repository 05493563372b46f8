/* snapbox_cli.h - what the snapbox CLI's command files share. */
#ifndef SNAPBOX_TOOLS_CLI_H
#define SNAPBOX_TOOLS_CLI_H

#include <stdint.h>

/* "256M", "1G", "4096K", "1048576B" or a plain number of MiB. Returns 0 or -EINVAL. */
int snapbox_parse_size(const char *s, uint64_t *out);

/* `snapbox run` (tools/snapbox_run.c); argv[0] is "run". Returns the process exit code. */
int snapbox_cmd_run(int argc, char **argv);

#endif
