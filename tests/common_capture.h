/* common_capture.h - test helpers that silence or capture what the code under test logs on stderr. */
#ifndef SNAPBOX_TESTS_COMMON_CAPTURE_H
#define SNAPBOX_TESTS_COMMON_CAPTURE_H

/* Send stderr to /dev/null for the rest of the test (expected error lines are noise). */
void tests_quiet_stderr(void);

/* Start capturing stderr into a memfd (*mfd); returns the saved fd 2. */
int tests_cap_begin(int *mfd);

/* Stop capturing; returns what was written (static buffer, NUL-terminated). */
const char *tests_cap_end(int saved, int mfd);

#endif
