/* common_cli.h - shared by the tests that run the snapbox CLI as a child process: where it is, skipping without it, capturing its output. */
#ifndef SNAPBOX_TESTS_COMMON_CLI_H
#define SNAPBOX_TESTS_COMMON_CLI_H

#include <stddef.h>

/*
 * The CLI: $SNAPBOX_CLI, else `snapbox` in the build directory of the
 * running test binary (BUILD/tests/x -> BUILD/snapbox), else build/snapbox.
 */
const char *tests_cli_path(void);

/* Skip the test when the CLI is not built; fail when $SNAPBOX_CLI names a missing one. */
void tests_require_cli(void);

/*
 * Run `env ENVP EXE ARGS 2>&1` (envp may be NULL) and keep its output,
 * NUL-terminated, in out[0, cap). Returns the exit status, or -1 when it
 * did not exit normally.
 */
int tests_cli_capture(const char *exe, const char *envp, const char *args, char *out, size_t cap);

#endif
