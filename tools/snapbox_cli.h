/* snapbox_cli.h - what the snapbox CLI's command files share. */
#ifndef SNAPBOX_TOOLS_CLI_H
#define SNAPBOX_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* "256M", "1G", "4096K", "1048576B" or a plain number of MiB. Returns 0 or -EINVAL. */
int snapbox_parse_size(const char *s, uint64_t *out);

/* `snapbox run` (tools/snapbox_run.c); argv[0] is "run". Returns the process exit code. */
int snapbox_cmd_run(int argc, char **argv);

/*
 * A default guest asset, malloc'd: $env when set, else build/guest/NAME beside
 * the CLI, else the installed share/snapbox/NAME, else (kernel only) the
 * cached guest kernel guest/linux/build.sh reports. NULL when none exists.
 */
char *snapbox_find_asset(const char *env, const char *name, bool kernel);

/* `snapbox bench` (tools/snapbox_bench.c); argv[0] is "bench". Returns the process exit code. */
int snapbox_cmd_bench(int argc, char **argv);

#endif
