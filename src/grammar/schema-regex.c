/*
 * schema-regex.c - JSON Schema patterns to grammar text.
 *
 * The subset: literal characters (UTF-8), escaped punctuation, \d \w \s
 * \D \W \S, \n \r \t \f \v, \xHH, \uHHHH, `.` (anything but a newline),
 * [classes] with ranges and negation (and the escapes above inside),
 * (groups), (?:groups), alternation |, the quantifiers * + ? {m} {m,} {m,n}
 * (a lazy ? after one changes nothing here), and ^ at the very start and $
 * at the very end. Anything else - backreferences, \b, \p{...},
 * lookaround, named groups, inline flags, possessive quantifiers, anchors
 * elsewhere - is an error that names it.
 *
 * The grammar speaks of the JSON text of the string, so a character the
 * pattern allows is written as JSON writes it: `"` as \", `\` as \\, tab,
 * newline and carriage return as \t \n \r (other control characters are
 * left out; nothing else is escaped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "schema-regex.h"

#define RX_MAX_DEPTH 32
#define RX_MAX_REPEAT 10000
#define RX_MAX_RANGES 256

struct rx {
	const char *s, *p, *end;
	struct sbuf *o;
	struct hearth_err *err;
	int depth;
};

struct ranges {
	uint32_t v[2 * RX_MAX_RANGES];
	int n;
};

static int rx_err(struct rx *r, const char *what)
{
	return err_set(r->err, HEARTH_EUNSUPPORTED, "pattern: %s is not supported (at offset %zu)", what,
		       (size_t)(r->p - r->s));
}

static int add_range(struct rx *r, struct ranges *rg, uint32_t lo, uint32_t hi)
{
	if (rg->n >= RX_MAX_RANGES)
		return rx_err(r, "a class this large");
	rg->v[2 * rg->n] = lo;
	rg->v[2 * rg->n++ + 1] = hi;
	return 0;
}

static int cmp_pair(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void normalize(struct ranges *rg)
{
	qsort(rg->v, (size_t)rg->n, 2 * sizeof *rg->v, cmp_pair);
	int m = 0;
	for (int i = 0; i < rg->n; i++) {
		if (m && rg->v[2 * i] <= rg->v[2 * (m - 1) + 1] + 1) {
			if (rg->v[2 * i + 1] > rg->v[2 * (m - 1) + 1])
				rg->v[2 * (m - 1) + 1] = rg->v[2 * i + 1];
		} else {
			rg->v[2 * m] = rg->v[2 * i];
			rg->v[2 * m++ + 1] = rg->v[2 * i + 1];
		}
	}
	rg->n = m;
}

static void complement(struct ranges *rg)
{
	normalize(rg);
	struct ranges c;
	uint32_t next = 0;
	c.n = 0;
	for (int i = 0; i < rg->n; i++) {
		if (rg->v[2 * i] > next) {
			c.v[2 * c.n] = next;
			c.v[2 * c.n++ + 1] = rg->v[2 * i] - 1;
		}
		next = rg->v[2 * i + 1] + 1;
	}
	if (next <= 0x10ffff) {
		c.v[2 * c.n] = next;
		c.v[2 * c.n++ + 1] = 0x10ffff;
	}
	*rg = c;
}

static bool has(const struct ranges *rg, uint32_t c)
{
	for (int i = 0; i < rg->n; i++)
		if (rg->v[2 * i] <= c && c <= rg->v[2 * i + 1])
			return true;
	return false;
}

static void class_char(struct sbuf *o, uint32_t c)
{
	if (c >= 0x20 && c < 0x7f && !strchr("]\\-^\"[", (int)c))
		sbuf_printf(o, "%c", (char)c);
	else if (c < 0x10000)
		sbuf_printf(o, "\\u%04X", c);
	else
		sbuf_printf(o, "\\U%08X", c);
}

/* The set rg as JSON string content: a GBNF atom (in parentheses). */
static int emit_set(struct rx *r, struct ranges *rg)
{
	normalize(rg);
	struct sbuf *o = r->o;
	bool first = true;
	sbuf_puts(o, "(");
	/* the characters written as themselves: not controls, not " or \ */
	struct ranges plain = { .n = 0 };
	for (int i = 0; i < rg->n; i++) {
		uint32_t lo = rg->v[2 * i], hi = rg->v[2 * i + 1];
		if (lo < 0x20)
			lo = 0x20;
		for (uint32_t x = lo; x <= hi;) { /* cut out " and \ */
			uint32_t end = hi;
			if (x <= '"' && '"' <= end)
				end = x == '"' ? '"' : '"' - 1;
			else if (x <= '\\' && '\\' <= end)
				end = x == '\\' ? '\\' : '\\' - 1;
			if (!((x == '"' && end == '"') || (x == '\\' && end == '\\')))
				plain.v[2 * plain.n] = x, plain.v[2 * plain.n++ + 1] = end;
			if (end == hi)
				break;
			x = end + 1;
		}
	}
	if (plain.n) {
		sbuf_puts(o, "[");
		for (int i = 0; i < plain.n; i++) {
			class_char(o, plain.v[2 * i]);
			if (plain.v[2 * i + 1] != plain.v[2 * i]) {
				sbuf_puts(o, "-");
				class_char(o, plain.v[2 * i + 1]);
			}
		}
		sbuf_puts(o, "]");
		first = false;
	}
	static const struct { uint32_t c; const char *json; } esc[] = {
		{ '"', "\"\\\\\\\"\"" }, { '\\', "\"\\\\\\\\\"" }, { '\t', "\"\\\\t\"" }, { '\n', "\"\\\\n\"" },
		{ '\r', "\"\\\\r\"" },
	};
	for (size_t i = 0; i < sizeof esc / sizeof *esc; i++)
		if (has(rg, esc[i].c)) {
			sbuf_printf(o, "%s%s", first ? "" : " | ", esc[i].json);
			first = false;
		}
	if (first)
		return rx_err(r, "a class that matches no character JSON text can hold");
	sbuf_puts(o, ")");
	return 0;
}

static int next_cp(struct rx *r, uint32_t *cp)
{
	size_t k = hearth_utf8_valid(r->p, (size_t)(r->end - r->p));
	if (!k)
		return err_set(r->err, HEARTH_EINVAL, "pattern: invalid UTF-8 at offset %zu", (size_t)(r->p - r->s));
	const unsigned char *u = (const unsigned char *)r->p;
	uint32_t c = k == 1 ? u[0] : u[0] & (0x7fu >> k);
	for (size_t j = 1; j < k; j++)
		c = (c << 6) | (u[j] & 0x3fu);
	r->p += k;
	*cp = c;
	return 0;
}

static int hex(struct rx *r, int n, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		char c = r->p < r->end ? *r->p : 0;
		int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (h < 0)
			return rx_err(r, "an escape without its hex digits");
		*v = *v * 16 + (uint32_t)h;
		r->p++;
	}
	return 0;
}

/* After a backslash: adds the set the escape stands for to rg. */
static int escape(struct rx *r, struct ranges *rg)
{
	if (r->p >= r->end)
		return rx_err(r, "a pattern ending in a backslash");
	const char c = *r->p++;
	struct ranges t = { .n = 0 };
	int rc = 0;
	uint32_t v;
	switch (c) {
	case 'd': case 'D':
		rc = add_range(r, &t, '0', '9');
		break;
	case 'w': case 'W':
		if (!(rc = add_range(r, &t, 'a', 'z')) && !(rc = add_range(r, &t, 'A', 'Z')) &&
		    !(rc = add_range(r, &t, '0', '9')))
			rc = add_range(r, &t, '_', '_');
		break;
	case 's': case 'S':
		if (!(rc = add_range(r, &t, '\t', '\r')))
			rc = add_range(r, &t, ' ', ' ');
		break;
	case 'n': return add_range(r, rg, '\n', '\n');
	case 'r': return add_range(r, rg, '\r', '\r');
	case 't': return add_range(r, rg, '\t', '\t');
	case 'f': return add_range(r, rg, '\f', '\f');
	case 'v': return add_range(r, rg, '\v', '\v');
	case 'x':
		return (rc = hex(r, 2, &v)) ? rc : add_range(r, rg, v, v);
	case 'u':
		if ((rc = hex(r, 4, &v)))
			return rc;
		if (v >= 0xd800 && v <= 0xdfff)
			return rx_err(r, "a surrogate \\u escape");
		return add_range(r, rg, v, v);
	default:
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (unsigned char)c >= 0x80) {
			char what[48];
			snprintf(what, sizeof what, "the escape '\\%c'", (unsigned char)c < 0x80 ? c : '?');
			r->p--;
			return rx_err(r, what);
		}
		return add_range(r, rg, (uint32_t)c, (uint32_t)c);
	}
	if (rc)
		return rc;
	if (c == 'D' || c == 'W' || c == 'S')
		complement(&t);
	for (int i = 0; i < t.n && !rc; i++)
		rc = add_range(r, rg, t.v[2 * i], t.v[2 * i + 1]);
	return rc;
}

static int parse_class(struct rx *r)
{
	struct ranges *rg = malloc(sizeof *rg);
	int rc = 0;
	if (!rg)
		return err_set(r->err, HEARTH_ENOMEM, "pattern: out of memory");
	rg->n = 0;
	r->p++; /* [ */
	const bool neg = r->p < r->end && *r->p == '^';
	r->p += neg;
	bool first = true;
	while (!rc) {
		if (r->p >= r->end) {
			rc = rx_err(r, "an unterminated class");
			break;
		}
		if (*r->p == ']' && !first)
			break;
		first = false;
		uint32_t lo;
		if (*r->p == '\\') {
			r->p++;
			struct ranges one = { .n = 0 };
			if ((rc = escape(r, &one)))
				break;
			if (one.n != 1 || one.v[0] != one.v[1]) { /* \d and friends: no range from them */
				for (int i = 0; i < one.n && !rc; i++)
					rc = add_range(r, rg, one.v[2 * i], one.v[2 * i + 1]);
				continue;
			}
			lo = one.v[0];
		} else if (*r->p == '[' && r->end - r->p > 1 && (r->p[1] == ':' || r->p[1] == '=' || r->p[1] == '.')) {
			rc = rx_err(r, "a POSIX class");
			break;
		} else if ((rc = next_cp(r, &lo))) {
			break;
		}
		uint32_t hi = lo;
		if (r->end - r->p >= 2 && r->p[0] == '-' && r->p[1] != ']') {
			r->p++;
			if (*r->p == '\\') {
				r->p++;
				struct ranges one = { .n = 0 };
				if ((rc = escape(r, &one)))
					break;
				if (one.n != 1 || one.v[0] != one.v[1]) {
					rc = rx_err(r, "a range ending in a class escape");
					break;
				}
				hi = one.v[0];
			} else if ((rc = next_cp(r, &hi))) {
				break;
			}
			if (hi < lo) {
				rc = rx_err(r, "a range out of order");
				break;
			}
		}
		rc = add_range(r, rg, lo, hi);
	}
	if (!rc) {
		r->p++; /* ] */
		if (neg)
			complement(rg);
		rc = emit_set(r, rg);
	}
	free(rg);
	return rc;
}

static int parse_alt(struct rx *r, bool *multi);

static int parse_count(struct rx *r, int *v)
{
	long x = 0;
	if (r->p >= r->end || *r->p < '0' || *r->p > '9')
		return rx_err(r, "a malformed {m,n}");
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		x = x * 10 + (*r->p++ - '0');
		if (x > RX_MAX_REPEAT)
			return rx_err(r, "a repetition count this large");
	}
	*v = (int)x;
	return 0;
}

static int parse_quant(struct rx *r)
{
	if (r->p >= r->end)
		return 0;
	const char c = *r->p;
	int rc;
	if (c == '*' || c == '+' || c == '?') {
		r->p++;
		sbuf_printf(r->o, "%c", c);
	} else if (c == '{') {
		int m, n = -1;
		r->p++;
		if ((rc = parse_count(r, &m)))
			return rc;
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			if (r->p < r->end && *r->p != '}' && (rc = parse_count(r, &n)))
				return rc;
		} else {
			n = m;
		}
		if (r->p >= r->end || *r->p != '}')
			return rx_err(r, "a malformed {m,n}");
		r->p++;
		if (n >= 0 && n < m)
			return rx_err(r, "{m,n} with n < m");
		if (n < 0)
			sbuf_printf(r->o, "{%d,}", m);
		else
			sbuf_printf(r->o, "{%d,%d}", m, n);
	} else {
		return 0;
	}
	if (r->p < r->end && *r->p == '?')
		r->p++; /* lazy: the same strings */
	else if (r->p < r->end && *r->p == '+')
		return rx_err(r, "a possessive quantifier");
	if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{'))
		return rx_err(r, "a quantifier after a quantifier");
	return 0;
}

static int parse_atom(struct rx *r)
{
	const char c = *r->p;
	int rc;
	if (c == '(') {
		bool multi;
		r->p++;
		if (r->p < r->end && *r->p == '?') {
			if (r->end - r->p >= 2 && r->p[1] == ':')
				r->p += 2;
			else
				return rx_err(r, "a group of the form (?...) other than (?:...)");
		}
		if (++r->depth > RX_MAX_DEPTH)
			return rx_err(r, "groups nested this deeply");
		sbuf_puts(r->o, "(");
		if ((rc = parse_alt(r, &multi)))
			return rc;
		r->depth--;
		if (r->p >= r->end || *r->p != ')')
			return rx_err(r, "an unclosed group");
		r->p++;
		sbuf_puts(r->o, ")");
		return 0;
	}
	if (c == '[')
		return parse_class(r);
	if (c == '^' || c == '$')
		return rx_err(r, "an anchor inside the pattern");
	if (c == '*' || c == '+' || c == '?' || c == '{')
		return rx_err(r, "a quantifier with nothing before it");
	struct ranges one = { .n = 0 };
	if (c == '.') {
		r->p++;
		if ((rc = add_range(r, &one, '\n', '\n')))
			return rc;
		complement(&one);
	} else if (c == '\\') {
		r->p++;
		if ((rc = escape(r, &one)))
			return rc;
	} else {
		uint32_t cp;
		if ((rc = next_cp(r, &cp)) || (rc = add_range(r, &one, cp, cp)))
			return rc;
	}
	return emit_set(r, &one);
}

static bool seq_end(const struct rx *r, bool top)
{
	return r->p >= r->end || *r->p == '|' || *r->p == ')' || (top && *r->p == '$' && r->p + 1 == r->end);
}

static int parse_seq(struct rx *r)
{
	const bool top = r->depth == 0;
	bool empty = true;
	while (!seq_end(r, top)) {
		int rc;
		sbuf_puts(r->o, empty ? "" : " ");
		if ((rc = parse_atom(r)) || (rc = parse_quant(r)))
			return rc;
		empty = false;
	}
	if (empty)
		sbuf_puts(r->o, "\"\"");
	return 0;
}

static int parse_alt(struct rx *r, bool *multi)
{
	int rc = parse_seq(r);
	*multi = false;
	while (!rc && r->p < r->end && *r->p == '|') {
		r->p++;
		*multi = true;
		sbuf_puts(r->o, " | ");
		rc = parse_seq(r);
	}
	return rc;
}

int schema_regex(const char *pat, size_t n, const char *chr, struct sbuf *o, struct hearth_err *err)
{
	struct rx r = { .s = pat, .p = pat, .end = pat + n, .o = o, .err = err };
	bool multi;
	const bool start = n > 0 && pat[0] == '^';
	r.p += start;
	sbuf_puts(o, "(");
	if (!start)
		sbuf_printf(o, "%s* ", chr);
	sbuf_puts(o, "(");
	int rc = parse_alt(&r, &multi);
	if (rc)
		return rc;
	if (r.p < r.end && *r.p == ')')
		return rx_err(&r, "an unmatched ')'");
	const bool end = r.p < r.end && *r.p == '$';
	if (multi && (start || end))
		return rx_err(&r, "an anchor on one branch of an alternation (write ^(a|b)$)");
	sbuf_puts(o, ")");
	if (!end)
		sbuf_printf(o, " %s*", chr);
	sbuf_puts(o, ")");
	return 0;
}
