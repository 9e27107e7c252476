/* template.c - the public chat-template API (hearth_template_*): compiles a
 * Jinja2 source once, renders it with a JSON object of variables, and hands
 * back the text and the byte ranges where content from "messages" and
 * "tools" landed.
 *
 * Compile: the source is checked to be UTF-8, its newlines normalized
 * (\r\n and \r become \n) and one trailing newline dropped, as jinja2 does;
 * then lexed and parsed into the template's arena. Render: every value lives
 * in a per-render arena (capped), dropped at the end; nothing is shared
 * between renders but the read-only tree.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/err.h"
#include "jinja.h"

int hearth_template_new(const char *src, size_t len, struct hearth_template **out, struct hearth_err *err)
{
	struct hearth_err local;
	if (!err)
		err = &local;
	*out = NULL;
	if (!src && len)
		return err_set(err, HEARTH_EINVAL, "template: no source");
	if (len > JINJA_MAX_SOURCE)
		return err_set(err, HEARTH_ETOOBIG, "template: %zu bytes, more than the %u allowed", len,
			       JINJA_MAX_SOURCE);
	for (size_t i = 0; i < len;) {
		size_t k = hearth_utf8_valid(src + i, len - i);
		if (!k)
			return err_set(err, HEARTH_EINVAL, "template: byte %zu is not valid UTF-8", i);
		i += k;
	}
	struct jarena tmp = { 0 };
	struct hearth_template *t = calloc(1, sizeof *t);
	char *norm = ja_alloc(&tmp, len + 1);
	if (!t || !norm) {
		free(t);
		ja_free(&tmp);
		return err_set(err, HEARTH_ENOMEM, "template: out of memory");
	}
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			norm[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			norm[n++] = src[i];
		}
	}
	if (n && norm[n - 1] == '\n')
		n--;
	norm[n] = 0;
	struct jtokens toks;
	int rc = jinja_lex(norm, n, &tmp, &toks, err);
	if (!rc)
		rc = jinja_parse(&toks, &t->ar, &t->root, err);
	ja_free(&tmp);
	if (rc) {
		hearth_template_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void hearth_template_free(struct hearth_template *t)
{
	if (!t)
		return;
	ja_free(&t->ar);
	free(t);
}

static int parse_date(const char *date, struct tm *tm, struct hearth_err *err)
{
	memset(tm, 0, sizeof *tm);
	if (!date) {
		time_t now = time(NULL);
		if (!localtime_r(&now, tm))
			return err_set(err, HEARTH_EINVAL, "template: the local time is not available");
		return 0;
	}
	int y, m, d;
	char tail;
	if (sscanf(date, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || strlen(date) != 10 || m < 1 || m > 12 || d < 1 ||
	    d > 31)
		return err_set(err, HEARTH_EINVAL, "template: date '%.40s' is not YYYY-MM-DD", date);
	tm->tm_year = y - 1900;
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	time_t t = timegm(tm); /* fills weekday and day of the year */
	struct tm check;
	if (t == (time_t)-1 || !gmtime_r(&t, &check) || check.tm_mday != d)
		return err_set(err, HEARTH_EINVAL, "template: date '%.40s' does not exist", date);
	*tm = check;
	return 0;
}

/* Is a variable one of the tokenizer's special tokens (bos_token, eos_token,
 * pad_token, ..., additional_special_tokens)? Those are the template's own
 * markup; every other variable is the caller's content. */
static bool special_token_var(const char *k)
{
	const size_t n = strlen(k);
	return (n > 6 && !strcmp(k + n - 6, "_token")) || !strcmp(k, "additional_special_tokens");
}

static int load_vars(struct jctx *c, const json_t *root)
{
	if (!json_is_object(root))
		return err_set(c->err, HEARTH_EINVAL, "template variables: not a JSON object");
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach((json_t *)root, k, v) {
		struct jv key, val;
		bool content = !special_token_var(k);
		if ((rc = jv_cstr(c, k, &key)) || (rc = jinja_from_json(c, v, content, &val)) ||
		    (rc = jdict_set(c, &c->globals->vars, key, val)))
			break;
	}
	return rc ? c->err->code : 0;
}

/* copies the render out (malloc) */
static int take_output(struct jctx *c, char **out, size_t *len, struct hearth_span **spans, size_t *n_spans)
{
	struct jsb *b = c->out;
	char *p = malloc(b->len + 1);
	struct hearth_span *sp = b->nsp ? malloc(b->nsp * sizeof *sp) : NULL;
	if (!p || (b->nsp && !sp)) {
		free(p);
		free(sp);
		return err_set(c->err, HEARTH_ENOMEM, "template: out of memory");
	}
	jmemcpy(p, b->p, b->len + 1);
	if (b->nsp)
		jmemcpy(sp, b->sp, b->nsp * sizeof *sp);
	*out = p;
	if (len)
		*len = b->len;
	if (spans)
		*spans = sp;
	else
		free(sp);
	if (n_spans)
		*n_spans = b->nsp;
	return 0;
}

int template_render_json(const struct hearth_template *t, const json_t *vars, const struct hearth_template_opts *o,
			 char **out, size_t *len, struct hearth_span **spans, size_t *n_spans, struct hearth_err *err)
{
	struct hearth_err local = { 0 };
	if (!err)
		err = &local;
	err->code = 0;
	err->msg[0] = 0;
	*out = NULL;
	if (spans)
		*spans = NULL;
	if (n_spans)
		*n_spans = 0;
	if (len)
		*len = 0;
	if (!t)
		return err_set(err, HEARTH_EINVAL, "template: none given");
	struct jctx c = { .err = err };
	c.ar.cap = JINJA_ARENA_CAP;
	c.max_output = o && o->max_output ? o->max_output : (size_t)16 << 20;
	int rc = parse_date(o ? o->date : NULL, &c.date, err);
	struct jsb body;
	if (!rc && !(c.globals = ja_alloc(&c.ar, sizeof *c.globals)))
		rc = err_set(err, HEARTH_ENOMEM, "template: out of memory");
	if (!rc) {
		memset(c.globals, 0, sizeof *c.globals);
		rc = load_vars(&c, vars);
	}
	if (!rc)
		rc = jsb_init(&c, &body, 4096);
	if (!rc) {
		c.out = &body;
		rc = jinja_render(&c, t->root);
		if (rc && !err->code) /* a failure that did not say why */
			rc = err_set(err, HEARTH_EINVAL, "template: render failed");
		else if (rc)
			rc = err->code;
	}
	if (!rc)
		rc = take_output(&c, out, len, spans, n_spans);
	ja_free(&c.ar);
	return rc;
}

int hearth_template_render(const struct hearth_template *t, const char *vars_json, size_t vars_len,
			   const struct hearth_template_opts *o, char **out, size_t *len, struct hearth_span **spans,
			   size_t *n_spans, struct hearth_err *err)
{
	json_error_t je;
	*out = NULL;
	bool oom;
	json_t *root = chat_json_load(vars_json ? vars_json : "{}", vars_json ? vars_len : 2, JSON_ALLOW_NUL, &je, &oom);
	if (!root)
		return err_set(err, oom ? HEARTH_ENOMEM : HEARTH_EINVAL,
			       "template variables: line %d, column %d: %s", je.line, je.column, je.text);
	int rc = template_render_json(t, root, o, out, len, spans, n_spans, err);
	json_decref(root);
	return rc;
}
