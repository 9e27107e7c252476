/*
 * schema-int.c - the decimal strings of an integer range as a grammar.
 *
 * A range of magnitudes is cut by digit count; a range of equal-length
 * strings x..y is, when their first digits differ, x0 followed by the rest
 * of x up to 9...9, the digits strictly between x0 and y0 followed by
 * anything, and y0 followed by 0...0 up to the rest of y (when they share
 * the first digit, that digit and the same question one digit shorter).
 * Negative numbers are "-" and a range of magnitudes; 0 has no sign.
 */
#include <stdio.h>
#include <string.h>

#include "schema-int.h"

/* x..y: decimal strings of the same length n (leading zeros allowed inside). */
static void fixed(struct sbuf *o, const char *x, const char *y, size_t n)
{
	if (n == 0)
		return;
	if (n == 1) {
		sbuf_printf(o, "[%c-%c]", x[0], y[0]);
		return;
	}
	if (x[0] == y[0]) {
		sbuf_printf(o, "\"%c\" ", x[0]);
		fixed(o, x + 1, y + 1, n - 1);
		return;
	}
	bool x_zeros = strspn(x + 1, "0") == n - 1, y_nines = strspn(y + 1, "9") == n - 1;
	char nines[20], zeros[20];
	memset(nines, '9', n - 1);
	memset(zeros, '0', n - 1);
	sbuf_puts(o, "(");
	const char lo = x_zeros ? x[0] : (char)(x[0] + 1), hi = y_nines ? y[0] : (char)(y[0] - 1);
	bool first = true;
	if (!x_zeros) {
		sbuf_printf(o, "\"%c\" (", x[0]);
		fixed(o, x + 1, nines, n - 1);
		sbuf_puts(o, ")");
		first = false;
	}
	if (lo <= hi) {
		sbuf_printf(o, "%s[%c-%c] [0-9]{%zu}", first ? "" : " | ", lo, hi, n - 1);
		first = false;
	}
	if (!y_nines) {
		sbuf_printf(o, "%s\"%c\" (", first ? "" : " | ", y[0]);
		fixed(o, zeros, y + 1, n - 1);
		sbuf_puts(o, ")");
	}
	sbuf_puts(o, ")");
}

static int digits(uint64_t v)
{
	int d = 1;
	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

static uint64_t pow10u(int d)
{
	uint64_t p = 1;
	while (d-- > 0)
		p *= 10;
	return p;
}

/* Magnitudes a..b (open above when !has_b), as alternatives joined by " | "; a <= b. */
static void magnitudes(struct sbuf *o, uint64_t a, bool has_b, uint64_t b)
{
	const uint64_t top = has_b ? b : (uint64_t)SCHEMA_INT_LIMIT * 10 - 1; /* 19 digits */
	bool first = true;
	for (int d = digits(a); d <= digits(top); d++) {
		uint64_t x = d == 1 ? 0 : pow10u(d - 1), y = pow10u(d) - 1;
		if (x < a)
			x = a;
		if (y > top)
			y = top;
		if (x > y)
			continue;
		char xs[24], ys[24];
		snprintf(xs, sizeof xs, "%llu", (unsigned long long)x);
		snprintf(ys, sizeof ys, "%llu", (unsigned long long)y);
		sbuf_puts(o, first ? "" : " | ");
		fixed(o, xs, ys, strlen(xs));
		first = false;
	}
}

bool schema_int_range(struct sbuf *o, bool has_lo, int64_t lo, bool has_hi, int64_t hi)
{
	const int64_t L = SCHEMA_INT_LIMIT;
	if (!has_lo || lo < -L)
		lo = -L, has_lo = true;
	if (!has_hi || hi > L)
		hi = L, has_hi = true;
	if (lo > hi)
		return false;
	sbuf_puts(o, "(");
	bool any = false;
	if (hi >= 0) { /* 0 or more */
		magnitudes(o, (uint64_t)(lo > 0 ? lo : 0), true, (uint64_t)hi);
		any = true;
	}
	if (lo < 0) { /* magnitudes of the negatives, at least 1 */
		const uint64_t a = hi < 0 ? (uint64_t)-hi : 1, b = (uint64_t)-lo;
		sbuf_puts(o, any ? " | \"-\" (" : "\"-\" (");
		magnitudes(o, a, true, b);
		sbuf_puts(o, ")");
	}
	sbuf_puts(o, ")");
	return true;
}
