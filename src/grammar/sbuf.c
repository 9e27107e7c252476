/* sbuf.c - see sbuf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "sbuf.h"

void sbuf_init(struct sbuf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void sbuf_free(struct sbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof *b);
}

void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (n > b->max - b->n) {
		b->bad = HEARTH_ETOOBIG;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->bad = HEARTH_ENOMEM;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

void sbuf_puts(struct sbuf *b, const char *s) { sbuf_add(b, s, strlen(s)); }

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof tmp) {
		b->bad = b->bad ? b->bad : HEARTH_ETOOBIG;
		return;
	}
	sbuf_add(b, tmp, (size_t)k);
}

void sbuf_literal(struct sbuf *b, const char *s, size_t n)
{
	sbuf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		const unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			sbuf_add(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			sbuf_printf(b, "\\x%02X", c);
		} else {
			sbuf_add(b, (const char *)&s[i], 1);
		}
	}
	sbuf_add(b, "\"", 1);
}
