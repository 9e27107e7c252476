/* schema-regex.h - a JSON Schema "pattern" (a regular expression subset) as
 * a grammar for the content of a JSON string (schema-regex.c). */
#ifndef HEARTH_SCHEMA_REGEX_H
#define HEARTH_SCHEMA_REGEX_H

#include <stddef.h>

#include "hearth.h"
#include "sbuf.h"

/* Appends a GBNF expression for the JSON string contents (between the quotes,
 * escaped as JSON writes them) whose decoded text the pattern matches
 * (anywhere, as JSON Schema reads it, unless anchored with ^ and $). chr is the
 * name of a rule for any one JSON string character (for unanchored ends).
 * HEARTH_EUNSUPPORTED names a construct outside the subset. */
int schema_regex(const char *pat, size_t n, const char *chr, struct sbuf *o, struct hearth_err *err);

#endif /* HEARTH_SCHEMA_REGEX_H */
