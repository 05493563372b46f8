/* log.h - the library's one sink for its error and warning lines: stderr by default, or the caller's function (snapbox_set_log). */
#ifndef SNAPBOX_KVM_LOG_H
#define SNAPBOX_KVM_LOG_H

/* Receives one whole line, "snapbox: ..." ending in a newline. May be called from any thread. */
typedef void (*log_fn)(void *arg, const char *line);

/* Route every later line to fn(arg, line); fn NULL restores stderr. */
void log_set(log_fn fn, void *arg);

/* Format one line (the format ends in \n) and hand it to the sink. Never fails. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* prefix, then the formatted text, then a newline, as one line. */
void log_line(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
