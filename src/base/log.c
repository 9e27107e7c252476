/* log.c - the process-wide log sink: the one named singleton of libhearth. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static struct {
	hearth_log_fn fn;
	void *user_data;
} log_sink;

void hearth_log_set(hearth_log_fn fn, void *user_data)
{
	log_sink.fn = fn;
	log_sink.user_data = user_data;
}

void hlog(enum hearth_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_sink.fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_sink.fn(level, msg, log_sink.user_data);
}
