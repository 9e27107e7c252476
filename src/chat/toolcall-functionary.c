/* toolcall-functionary.c - Functionary v3.2. The prompt ends with ">>>", so
 * the output starts with a recipient line:
 *
 *   all\nText for the user.>>>get_weather\n{"location": "Paris"}>>>python\nprint(1)
 *
 * "all" is content (until the next ">>>"); any other recipient is a call whose
 * arguments are the JSON object that follows (or, for python, the code up to
 * the next ">>>" or the end). A recipient line longer than TC_MAX_NAME bytes
 * means the output is not this format: the rest is content.
 */
#include <string.h>

#include "../base/err.h"
#include "toolcall-impl.h"

enum { F_HEAD, F_ALL, F_CALL, F_RAW };

static const char *const opener[] = { ">>>", NULL };

static int on_head(struct tc_parser *p, size_t i, struct hearth_err *err)
{
	size_t a = tc_skip_space(p->buf, i), e = i;
	while (e > a && tc_is_space(p->buf[e - 1]))
		e--;
	if (e - a == 3 && !memcmp(p->buf + a, "all", 3)) {
		tc_consume(p, i + 1);
		p->fstate = F_ALL;
		return 1;
	}
	p->blk_open = i + 1;
	p->scan = 0;
	p->begun = false;
	tc_jscan_reset(&p->js);
	p->fstate = F_CALL;
	int rc = tc_call_begin(p, p->buf + a, e - a, NULL, err);
	return rc < 0 ? rc : 1;
}

/* The call's arguments from its body: a JSON object, or python's code. */
static int add_call(struct tc_parser *p, const char *body, size_t n, struct hearth_err *err)
{
	size_t a = tc_skip_space(p->buf, p->blk_open), e = p->blk_open - 1;
	while (e > a && tc_is_space(p->buf[e - 1]))
		e--;
	json_t *v = tc_json_parse(body, n), *args = v ? tc_args_object(v) : NULL;
	json_decref(v);
	if (!args && e - a == 6 && !memcmp(p->buf + a, "python", 6)) {
		args = json_object();
		if (!args || json_object_set_new(args, "code", json_stringn(body, n))) {
			json_decref(args);
			return err_set(err, HEARTH_ENOMEM, "tool call 'python': no memory for the code");
		}
	}
	if (!args)
		return 1;
	int rc = tc_plist_add(&p->plist, p->buf + a, e - a, args, NULL, err);
	return rc ? rc : tc_commit(p, err);
}

static int step_call(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	const char *s = p->buf + p->blk_open;
	size_t n = p->len - p->blk_open, a = tc_skip_space(s, n), body;
	if (a == n && !eof)
		return 0;
	if (a < n && s[a] == '{') {
		int r = tc_jscan_run(&p->js, s, n, &body);
		if (r == 0 && !eof && n <= TC_MAX_BLOCK)
			return 0;
		if (r != 1)
			body = n < TC_MAX_BLOCK ? n : TC_MAX_BLOCK;
	} else {
		const char *f = tc_find(s + p->scan, n - p->scan, ">>>");
		if (!f && !eof && n <= TC_MAX_BLOCK) {
			p->scan = n >= 3 ? n - 2 : 0;
			return 0;
		}
		body = f ? (size_t)(f - s) : n;
	}
	int rc = body > TC_MAX_BLOCK ? 1 : add_call(p, s, body, err);
	if (body > TC_MAX_BLOCK)
		body = TC_MAX_BLOCK;
	if (rc < 0)
		return rc;
	if (rc > 0 && (rc = tc_fail(p, p->buf, p->blk_open + body, err)))
		return rc;
	tc_consume(p, p->blk_open + body);
	p->fstate = F_ALL;
	p->skip_ws = true;
	return 1;
}

/* Content up to the next ">>>" (which opens a recipient line). */
static int step_all(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	int which, rc;
	if (p->skip_ws) {
		size_t w = tc_skip_space(p->buf, p->len);
		tc_consume(p, w);
		if (p->len == 0)
			return w > 0;
		p->skip_ws = false;
	}
	const char *f = tc_find_any(p->buf, p->len, opener, &which);
	if (f) {
		size_t i = (size_t)(f - p->buf);
		if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, i, err)))
			return rc;
		tc_consume(p, i + 3);
		p->fstate = F_HEAD;
		return 1;
	}
	size_t k = p->len - (eof ? 0 : tc_partial(p->buf, p->len, opener));
	if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, k, err)))
		return rc;
	tc_consume(p, k);
	return k > 0;
}

int tc_functionary_step(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	int rc;
	switch (p->fstate) {
	case F_HEAD: {
		const char *nl = memchr(p->buf, '\n', p->len < TC_MAX_NAME ? p->len : TC_MAX_NAME);
		if (nl)
			return on_head(p, (size_t)(nl - p->buf), err);
		if (!eof && p->len < TC_MAX_NAME)
			return 0;
		p->fstate = F_RAW;
		return 1;
	}
	case F_ALL:
		return step_all(p, eof, err);
	case F_CALL:
		return step_call(p, eof, err);
	default:
		if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, p->len, err)))
			return rc;
		tc_consume(p, p->len);
		return 0;
	}
}
