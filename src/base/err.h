/* err.h - filling a caller-owned struct hearth_err (see include/hearth.h). */
#ifndef HEARTH_ERR_H
#define HEARTH_ERR_H

#include "hearth.h"

/* Records code and a printf-style message in err (which may be NULL); returns code. */
int err_set(struct hearth_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* HEARTH_ERR_H */
