/* jinja-format.c - Python's string formatting: printf-style ("%s" % x, the
 * format filter) and str.format ("{} {0} {name} {x.attr} {0:>10}"), with
 * the common conversions. Arguments that are content stay content. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/utf8.h"
#include "jinja.h"

/* pads s (a value already converted) to width; align '<' '>' '^' '=' */
static int put_padded(struct jctx *c, struct jsb *b, struct jv s, int64_t width, char align, const char *fill,
		      size_t fl)
{
	int64_t len = (int64_t)utf8_count(s.s->p, s.s->len), total = width > len ? width - len : 0;
	if (total > (int64_t)(c->ar.cap / 4))
		return joom(c, NULL);
	int64_t left = align == '>' ? total : align == '^' ? total / 2 : 0, right = total - left;
	for (int64_t i = 0; i < left; i++)
		if (jsb_put(c, b, fill, fl))
			return c->err->code;
	if (jsb_put_str(c, b, s.s, 0, s.s->len))
		return c->err->code;
	for (int64_t i = 0; i < right; i++)
		if (jsb_put(c, b, fill, fl))
			return c->err->code;
	return 0;
}

static bool is_num(struct jv v) { return v.t == JT_INT || v.t == JT_FLOAT || v.t == JT_BOOL; }

/* one numeric conversion with C's printf, which agrees with Python for these */
static int fmt_number(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, char type,
		      const char *flags, int64_t width, int64_t prec)
{
	char spec[32], buf[512];
	if (width > 256 || prec > 256)
		return jerr(c, n, "ValueError: format width or precision past 256");
	if (!is_num(v))
		return jerr(c, n, "TypeError: %%%c format: a real number is required, not %s", type, jv_type_name(v));
	if (strchr("diuxXoc", type)) {
		int64_t i = v.t == JT_INT ? v.i : v.t == JT_BOOL ? v.b : (int64_t)v.f;
		if (v.t == JT_FLOAT && strchr("xXoc", type))
			return jerr(c, n, "TypeError: %%%c format: an integer is required, not float", type);
		if (v.t == JT_FLOAT && (!isfinite(v.f) || fabs(v.f) > 9.2e18))
			return jerr(c, n, "OverflowError: cannot convert float to integer");
		if (type == 'c') {
			char ch[5] = { 0 };
			if (i < 0 || i > 0x10ffff)
				return jerr(c, n, "OverflowError: %%c arg not in range(0x110000)");
			size_t k = 0;
			uint32_t cp = (uint32_t)i;
			if (cp < 0x80)
				ch[k++] = (char)cp;
			else if (cp < 0x800) {
				ch[k++] = (char)(0xc0 | (cp >> 6));
				ch[k++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				ch[k++] = (char)(0xe0 | (cp >> 12));
				ch[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				ch[k++] = (char)(0x80 | (cp & 0x3f));
			} else {
				ch[k++] = (char)(0xf0 | (cp >> 18));
				ch[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				ch[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				ch[k++] = (char)(0x80 | (cp & 0x3f));
			}
			return jsb_put(c, b, ch, k);
		}
		char t = type == 'i' || type == 'u' ? 'd' : type;
		if (prec >= 0)
			snprintf(spec, sizeof spec, "%%%s*.*ll%c", flags, t);
		else
			snprintf(spec, sizeof spec, "%%%s*ll%c", flags, t);
		long long ll = (long long)i;
		if (t != 'd' && ll < 0) { /* Python prints -0x1f: sign then magnitude */
			if (jsb_putc(c, b, '-'))
				return c->err->code;
			ll = -ll;
			width = width > 0 ? width - 1 : width;
		}
		if (prec >= 0)
			snprintf(buf, sizeof buf, spec, (int)width, (int)prec, ll);
		else
			snprintf(buf, sizeof buf, spec, (int)width, ll);
		if (strchr(flags, '#') && type == 'o') { /* Python: 0o17 */
			char *z = strchr(buf, '0');
			if (z) {
				memmove(z + 2, z + 1, strlen(z + 1) + 1);
				z[1] = 'o';
			}
		}
		return jsb_puts(c, b, buf);
	}
	double d = v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b;
	if (!isfinite(d)) {
		const char *s = isnan(d) ? "nan" : d > 0 ? (strchr(flags, '+') ? "+inf" : "inf") : "-inf";
		char up[8];
		snprintf(up, sizeof up, "%s", s);
		if (type >= 'A' && type <= 'Z')
			for (char *p = up; *p; p++)
				*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		struct jv sv;
		if (jv_cstr(c, up, &sv))
			return c->err->code;
		return put_padded(c, b, sv, width, strchr(flags, '-') ? '<' : '>', " ", 1);
	}
	snprintf(spec, sizeof spec, "%%%s*.*%c", flags, type);
	snprintf(buf, sizeof buf, spec, (int)width, (int)(prec >= 0 ? prec : 6), d);
	return jsb_puts(c, b, buf);
}

int jinja_percent_format(struct jctx *c, const struct jnode *n, struct jv fmt, struct jv args, struct jv *out)
{
	const char *p = fmt.s->p;
	size_t len = fmt.s->len, ai = 0, lit = 0;
	bool tuple = args.t == JT_LIST && args.flag == 1, mapping = args.t == JT_DICT;
	size_t nargs = tuple ? args.l->n : 1;
	bool used_mapping = false;
	struct jsb b;
	if (jsb_init(c, &b, len + 32))
		return c->err->code;
	for (size_t i = 0; i < len;) {
		if (p[i] != '%') {
			i++;
			continue;
		}
		if (jsb_put_str(c, &b, fmt.s, lit, i - lit))
			return c->err->code;
		i++;
		if (i >= len)
			return jerr(c, n, "ValueError: incomplete format");
		struct jv v = { .t = JT_UNDEF };
		bool have = false;
		if (p[i] == '(') {
			size_t e = i + 1;
			int depth = 1;
			while (e < len && depth) {
				depth += p[e] == '(' ? 1 : p[e] == ')' ? -1 : 0;
				e++;
			}
			if (depth)
				return jerr(c, n, "ValueError: incomplete format key");
			if (!mapping)
				return jerr(c, n, "TypeError: format requires a mapping");
			struct jv key;
			if (jv_str(c, p + i + 1, e - i - 2, &key))
				return c->err->code;
			if (!jdict_get(args.d, key, &v))
				return jerr(c, n, "KeyError: '%s'", key.s->p);
			have = used_mapping = true;
			i = e;
		}
		char flags[8];
		size_t nf = 0;
		while (i < len && strchr("-+ #0", p[i]) && p[i]) {
			if (nf < sizeof flags - 1 && !memchr(flags, p[i], nf))
				flags[nf++] = p[i];
			i++;
		}
		flags[nf] = 0;
		int64_t width = 0, prec = -1;
		while (i < len && p[i] >= '0' && p[i] <= '9' && width < 100000)
			width = width * 10 + (p[i++] - '0');
		if (i < len && p[i] == '.') {
			prec = 0;
			i++;
			while (i < len && p[i] >= '0' && p[i] <= '9' && prec < 100000)
				prec = prec * 10 + (p[i++] - '0');
		}
		while (i < len && (p[i] == 'l' || p[i] == 'h' || p[i] == 'L'))
			i++;
		if (i >= len)
			return jerr(c, n, "ValueError: incomplete format");
		char type = p[i++];
		lit = i;
		if (type == '%') {
			if (jsb_putc(c, &b, '%'))
				return c->err->code;
			continue;
		}
		if (!have) {
			if (ai >= nargs)
				return jerr(c, n, "TypeError: not enough arguments for format string");
			v = tuple ? args.l->v[ai] : args;
			ai++;
		}
		if (type == 's' || type == 'r' || type == 'a') {
			struct jv s;
			if (type == 's') {
				if (jv_to_str(c, n, v, &s))
					return c->err->code;
			} else {
				struct jsb rb;
				if (jsb_init(c, &rb, 32) || jv_repr_into(c, n, &rb, v, 0) || jsb_finish(c, &rb, &s))
					return c->err->code;
			}
			if (prec >= 0 && jv_substr(c, s, 0, utf8_offset(s.s->p, s.s->len, (size_t)prec), &s))
				return c->err->code;
			if (put_padded(c, &b, s, width, strchr(flags, '-') ? '<' : '>', " ", 1))
				return c->err->code;
			continue;
		}
		if (!strchr("diuxXoceEfFgG", type))
			return jerr(c, n, "ValueError: unsupported format character '%c'", type);
		if (jv_check_undef(c, n, v) || fmt_number(c, n, &b, v, type, flags, width, prec))
			return c->err->code;
	}
	if (jsb_put_str(c, &b, fmt.s, lit, len - lit))
		return c->err->code;
	if (!mapping && ai < nargs && !(args.t == JT_DICT) && !used_mapping)
		return jerr(c, n, "TypeError: not all arguments converted during string formatting");
	return jsb_finish(c, &b, out);
}

/* str.format's field: "name", "0", "name.attr", "name[key]" */
static int format_field(struct jctx *c, const struct jnode *n, const char *p, size_t len, const struct jargs *a,
			size_t *auto_i, struct jv *out)
{
	size_t e = 0;
	while (e < len && p[e] != '.' && p[e] != '[')
		e++;
	if (e == 0) {
		if (*auto_i >= a->nargs)
			return jerr(c, n, "IndexError: Replacement index %zu out of range for positional args tuple",
				    *auto_i);
		*out = a->args[(*auto_i)++];
	} else if (p[0] >= '0' && p[0] <= '9') {
		size_t idx = (size_t)strtoull(p, NULL, 10);
		if (idx >= a->nargs)
			return jerr(c, n, "IndexError: Replacement index %zu out of range for positional args tuple", idx);
		*out = a->args[idx];
	} else {
		size_t k;
		for (k = 0; k < a->nkw; k++)
			if (strlen(a->names[k]) == e && !memcmp(a->names[k], p, e))
				break;
		if (k == a->nkw)
			return jerr(c, n, "KeyError: '%.*s'", (int)(e < 60 ? e : 60), p);
		*out = a->kw[k];
	}
	while (e < len) {
		struct jv key;
		if (p[e] == '.') {
			size_t s = ++e;
			while (e < len && p[e] != '.' && p[e] != '[')
				e++;
			if (jv_str(c, p + s, e - s, &key))
				return c->err->code;
			if (key.s->p[0] == '_')
				return jerr(c, n, "SecurityError: access to attribute '%s' is unsafe", key.s->p);
			if (jv_getattr(c, n, *out, key, out))
				return c->err->code;
		} else {
			size_t s = ++e;
			while (e < len && p[e] != ']')
				e++;
			bool digits = e > s;
			for (size_t i = s; i < e; i++)
				digits &= p[i] >= '0' && p[i] <= '9';
			if (digits ? (key = jv_int(strtoll(p + s, NULL, 10)), 0) : jv_str(c, p + s, e - s, &key))
				return c->err->code;
			if (jv_getitem(c, n, *out, key, out))
				return c->err->code;
			e++;
		}
	}
	return 0;
}

/* the format spec [[fill]align][sign][#][0][width][,][.prec][type] */
static int format_spec(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, const char *sp,
		       size_t len)
{
	const char *fill = " ";
	size_t fl = 1, i = 0;
	char align = 0, sign = 0, type = 0;
	bool alt = false, zero = false;
	int64_t width = 0, prec = -1;
	if (len >= 2 && strchr("<>^=", sp[utf8_seq_len((unsigned char)sp[0])]) &&
	    sp[utf8_seq_len((unsigned char)sp[0])]) {
		fill = sp;
		fl = utf8_seq_len((unsigned char)sp[0]);
		align = sp[fl];
		i = fl + 1;
	} else if (len >= 1 && strchr("<>^=", sp[0]) && sp[0]) {
		align = sp[0];
		i = 1;
	}
	if (i < len && (sp[i] == '+' || sp[i] == '-' || sp[i] == ' '))
		sign = sp[i++];
	if (i < len && sp[i] == '#') {
		alt = true;
		i++;
	}
	if (i < len && sp[i] == '0') {
		zero = true;
		i++;
	}
	while (i < len && sp[i] >= '0' && sp[i] <= '9' && width < 100000)
		width = width * 10 + (sp[i++] - '0');
	if (i < len && sp[i] == ',')
		return jerr_code(c, n, HEARTH_EUNSUPPORTED, "the ',' format option is not supported");
	if (i < len && sp[i] == '.') {
		prec = 0;
		i++;
		while (i < len && sp[i] >= '0' && sp[i] <= '9' && prec < 100000)
			prec = prec * 10 + (sp[i++] - '0');
	}
	if (i < len)
		type = sp[i++];
	if (i != len)
		return jerr(c, n, "ValueError: Invalid format specifier");
	if (v.t == JT_STR || (!type && !is_num(v))) {
		struct jv s;
		if (type && type != 's')
			return jerr(c, n, "ValueError: Unknown format code '%c' for object of type '%s'", type,
				    jv_type_name(v));
		if (jv_to_str(c, n, v, &s))
			return c->err->code;
		if (prec >= 0 && jv_substr(c, s, 0, utf8_offset(s.s->p, s.s->len, (size_t)prec), &s))
			return c->err->code;
		return put_padded(c, b, s, width, align ? align : '<', fill, fl);
	}
	if (!is_num(v))
		return jerr(c, n, "ValueError: Unknown format code '%c' for object of type '%s'", type, jv_type_name(v));
	struct jsb nb;
	char flags[6];
	size_t nf = 0;
	if (sign == '+' || sign == ' ')
		flags[nf++] = sign;
	if (alt)
		flags[nf++] = '#';
	flags[nf] = 0;
	if (!type) {
		if (v.t == JT_FLOAT && prec < 0) {
			char buf[40];
			fmt_float_repr(v.f, buf);
			if (jsb_init(c, &nb, 48) || ((sign == '+' || sign == ' ') && v.f >= 0 && jsb_putc(c, &nb, sign)) ||
			    jsb_puts(c, &nb, buf))
				return c->err->code;
			goto pad;
		}
		type = v.t == JT_FLOAT ? 'g' : 'd';
	}
	if (type == '%') {
		double d = v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b;
		if (jsb_init(c, &nb, 64) || fmt_number(c, n, &nb, jv_float(d * 100), 'f', flags, 0, prec) ||
		    jsb_putc(c, &nb, '%'))
			return c->err->code;
		goto pad;
	}
	if (!strchr("dxXobeEfFgGnc", type))
		return jerr(c, n, "ValueError: Unknown format code '%c' for object of type '%s'", type, jv_type_name(v));
	if (type == 'b' || type == 'n')
		return jerr_code(c, n, HEARTH_EUNSUPPORTED, "the format code '%c' is not supported", type);
	if (v.t == JT_FLOAT && strchr("dxXoc", type))
		return jerr(c, n, "ValueError: Unknown format code '%c' for object of type 'float'", type);
	if (jsb_init(c, &nb, 64) || fmt_number(c, n, &nb, v, type, flags, 0, prec))
		return c->err->code;
pad:;
	struct jv s;
	if (jsb_finish(c, &nb, &s))
		return c->err->code;
	if (zero && !align) {
		fill = "0";
		fl = 1;
		align = '=';
	}
	if (align == '=') { /* padding after the sign */
		size_t sg = s.s->len && strchr("+- ", s.s->p[0]) ? 1 : 0;
		if (sg && jsb_put(c, b, s.s->p, 1))
			return c->err->code;
		struct jv rest;
		if (jv_substr(c, s, sg, s.s->len - sg, &rest))
			return c->err->code;
		return put_padded(c, b, rest, width - (int64_t)sg, '>', fill, fl);
	}
	return put_padded(c, b, s, width, align ? align : '>', fill, fl);
}

int jinja_str_format(struct jctx *c, const struct jnode *n, struct jv fmt, const struct jargs *a, struct jv *out)
{
	const char *p = fmt.s->p;
	size_t len = fmt.s->len, lit = 0, auto_i = 0;
	struct jsb b;
	if (jsb_init(c, &b, len + 32))
		return c->err->code;
	for (size_t i = 0; i < len;) {
		if (p[i] == '}' ) {
			if (i + 1 < len && p[i + 1] == '}') {
				if (jsb_put_str(c, &b, fmt.s, lit, i + 1 - lit))
					return c->err->code;
				i += 2;
				lit = i;
				continue;
			}
			return jerr(c, n, "ValueError: Single '}' encountered in format string");
		}
		if (p[i] != '{') {
			i++;
			continue;
		}
		if (i + 1 < len && p[i + 1] == '{') {
			if (jsb_put_str(c, &b, fmt.s, lit, i + 1 - lit))
				return c->err->code;
			i += 2;
			lit = i;
			continue;
		}
		if (jsb_put_str(c, &b, fmt.s, lit, i - lit))
			return c->err->code;
		size_t e = i + 1;
		while (e < len && p[e] != '}' && p[e] != '{')
			e++;
		if (e >= len || p[e] != '}')
			return jerr(c, n, "ValueError: expected '}' before end of string");
		const char *f = p + i + 1;
		size_t fl = e - i - 1, nl = 0;
		while (nl < fl && f[nl] != '!' && f[nl] != ':')
			nl++;
		struct jv v;
		if (format_field(c, n, f, nl, a, &auto_i, &v))
			return c->err->code;
		size_t k = nl;
		if (k < fl && f[k] == '!') {
			if (k + 1 >= fl || (f[k + 1] != 'r' && f[k + 1] != 's' && f[k + 1] != 'a'))
				return jerr(c, n, "ValueError: bad conversion in a format field");
			if (f[k + 1] != 's') {
				struct jsb rb;
				if (jsb_init(c, &rb, 32) || jv_repr_into(c, n, &rb, v, 0) || jsb_finish(c, &rb, &v))
					return c->err->code;
			} else if (jv_to_str(c, n, v, &v)) {
				return c->err->code;
			}
			k += 2;
		}
		const char *spec = "";
		size_t sl = 0;
		if (k < fl && f[k] == ':') {
			spec = f + k + 1;
			sl = fl - k - 1;
		} else if (k != fl) {
			return jerr(c, n, "ValueError: expected ':' after conversion specifier");
		}
		if (format_spec(c, n, &b, v, spec, sl))
			return c->err->code;
		i = e + 1;
		lit = i;
	}
	if (jsb_put_str(c, &b, fmt.s, lit, len - lit))
		return c->err->code;
	return jsb_finish(c, &b, out);
}
