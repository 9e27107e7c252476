/* log.h - library logging through the callback set by hearth_log_set(). */
#ifndef HEARTH_LOG_H
#define HEARTH_LOG_H

#include "hearth.h"

void hlog(enum hearth_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define HLOG_ERROR(...) hlog(HEARTH_LOG_ERROR, __VA_ARGS__)
#define HLOG_WARN(...) hlog(HEARTH_LOG_WARN, __VA_ARGS__)
#define HLOG_INFO(...) hlog(HEARTH_LOG_INFO, __VA_ARGS__)
#define HLOG_DEBUG(...) hlog(HEARTH_LOG_DEBUG, __VA_ARGS__)

#endif /* HEARTH_LOG_H */
