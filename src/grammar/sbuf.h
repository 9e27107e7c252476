/* sbuf.h - a capped growable text buffer for generated grammar text.
 * Appends never fail at the call: a failure (out of memory, past the cap)
 * is remembered in bad and reported once by whoever finishes the text. */
#ifndef HEARTH_SBUF_H
#define HEARTH_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *s;     /* NUL-terminated when not bad */
	size_t n, cap, max;
	int bad;     /* 0, HEARTH_ENOMEM or HEARTH_ETOOBIG */
};

void sbuf_init(struct sbuf *b, size_t max);
void sbuf_free(struct sbuf *b);
void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A GBNF literal "..." for n bytes of UTF-8 text (quote, backslash and control bytes escaped). */
void sbuf_literal(struct sbuf *b, const char *s, size_t n);

#endif /* HEARTH_SBUF_H */
