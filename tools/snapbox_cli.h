/* snapbox_cli.h - what the snapbox CLI's command files share. */
#ifndef SNAPBOX_TOOLS_CLI_H
#define SNAPBOX_TOOLS_CLI_H

#include "tools/cli_util.h"

/* `snapbox run` (tools/snapbox_run.c); argv[0] is "run". Returns the process exit code. */
int snapbox_cmd_run(int argc, char **argv);

/* `snapbox bench` (tools/snapbox_bench.c); argv[0] is "bench". Returns the process exit code. */
int snapbox_cmd_bench(int argc, char **argv);

struct bench_guest;
/*
 * `snapbox bench restore --clones N [--exec CMD]` (tools/snapbox_clones.c):
 * N cow clones kept alive, each PINGed (and running `sh -c CMD`, which must
 * exit 0), with this process's PSS and RSS after each. 0 or -errno.
 */
int snapbox_bench_clones(const struct bench_guest *g, unsigned clones, const char *cmd, bool json);

#endif
