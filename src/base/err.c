/* err.c - the error-code table and err_set(). */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

const char *hearth_err_name(int code)
{
	switch (code) {
#define X(name, value, desc) \
	case value:          \
		return #name;
		HEARTH_ERRORS(X)
#undef X
	}
	return "HEARTH_E?";
}

const char *hearth_strerror(int code)
{
	switch (code) {
#define X(name, value, desc) \
	case value:          \
		return desc;
		HEARTH_ERRORS(X)
#undef X
	}
	return "unknown error";
}

int err_set(struct hearth_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}
