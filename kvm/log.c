/* log.c - the library's one sink for its error and warning lines: stderr by default, or the caller's function. */
#include "kvm/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_LINE_MAX 2048

/* The sink, swapped as a pair under the lock so no line goes to a half-set one. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_fn log_sink;
static void *log_arg;

void log_set(log_fn fn, void *arg)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_arg = arg;
	pthread_mutex_unlock(&log_lock);
}

/* One formatted line to the sink: a single write to stderr, so lines from threads do not interleave. */
static void log_emit(char *buf)
{
	log_fn fn;
	void *arg;

	pthread_mutex_lock(&log_lock);
	fn = log_sink;
	arg = log_arg;
	pthread_mutex_unlock(&log_lock);
	if (fn)
		fn(arg, buf);
	else
		fputs(buf, stderr);
}

void log_msg(const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* A line cut at the cap still ends the line. */
	if (strlen(buf) == sizeof(buf) - 1)
		buf[sizeof(buf) - 2] = '\n';
	log_emit(buf);
}

void log_line(const char *prefix, const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
	va_list ap;

	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	log_emit(buf);
}
