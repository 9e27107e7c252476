/* schema-int.h - integer ranges as grammar text, exactly (schema-int.c). */
#ifndef HEARTH_SCHEMA_INT_H
#define HEARTH_SCHEMA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"

#define SCHEMA_INT_LIMIT 1000000000000000000LL /* bounds are clamped to +-10^18; 19 digits at most */

/* A GBNF expression (in parentheses) for the JSON integers in [lo, hi]
 * (a side without has_* is open); empty range: false, nothing written. */
bool schema_int_range(struct sbuf *o, bool has_lo, int64_t lo, bool has_hi, int64_t hi);

#endif /* HEARTH_SCHEMA_INT_H */
