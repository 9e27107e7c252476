/* toolcall-harmony.c - gpt-oss's harmony messages. The prompt ends with
 * "<|start|>assistant", so the output starts in a message header:
 *
 *   <|channel|>analysis<|message|>...<|end|>                       reasoning
 *   <|start|>assistant<|channel|>final<|message|>...<|return|>     content
 *   <|channel|>commentary to=functions.N <|constrain|>json<|message|>{...}<|call|>   a call
 *   to=functions.N<|channel|>commentary json<|message|>{...}<|call|>  (recipient first)
 *
 * Commentary without a recipient (a preamble) is content. A header that does
 * not reach <|message|> within HEADER_MAX bytes means the output is not
 * harmony: from there on everything is content.
 */
#include <string.h>

#include "toolcall-impl.h"

#define HEADER_MAX 512
#define MSG "<|message|>"

enum { H_HEADER, H_REASON, H_TEXT, H_CALL, H_RAW };

static const char *const text_ends[] = { "<|end|>", "<|return|>", "<|call|>", "<|start|>", NULL };
static const char *const call_ends[] = { "<|call|>", "<|end|>", NULL };

/* The word after key in the header (up to a space or '<'), or 0. */
static size_t header_word(const char *h, size_t n, const char *key, const char **w)
{
	const char *f = tc_find(h, n, key);
	if (!f)
		return 0;
	*w = f + strlen(key);
	size_t k = 0;
	while (*w + k < h + n && !tc_is_space((*w)[k]) && (*w)[k] != '<')
		k++;
	return k;
}

static int on_header(struct tc_parser *p, size_t hlen, struct hearth_err *err)
{
	const char *ch = NULL, *to = NULL;
	size_t chn = header_word(p->buf, hlen, "<|channel|>", &ch), ton = header_word(p->buf, hlen, "to=", &to);
	if (ton > 10 && !memcmp(to, "functions.", 10)) {
		p->blk_open = hlen + strlen(MSG);
		p->scan = 0;
		p->begun = false;
		p->fstate = H_CALL;
		int rc = tc_call_begin(p, to + 10, ton - 10, NULL, err);
		return rc < 0 ? rc : 1;
	}
	p->fstate = chn == 8 && !memcmp(ch, "analysis", 8) ? H_REASON : H_TEXT;
	tc_consume(p, hlen + strlen(MSG));
	p->r_skip_ws = false;
	return 1;
}

static int step_text(struct tc_parser *p, bool eof, enum tc_event_kind kind, struct hearth_err *err)
{
	int which = -1, rc;
	const char *f = tc_find_any(p->buf, p->len, text_ends, &which);
	if (f) {
		size_t i = (size_t)(f - p->buf);
		if ((rc = tc_emit(p, kind, p->buf, i, err)))
			return rc;
		/* <|start|> belongs to the next header */
		tc_consume(p, i + (which == 3 ? 0 : strlen(text_ends[which])));
		p->fstate = H_HEADER;
		return 1;
	}
	size_t k = p->len - (eof ? 0 : tc_partial(p->buf, p->len, text_ends));
	if ((rc = tc_emit(p, kind, p->buf, k, err)))
		return rc;
	tc_consume(p, k);
	return k > 0;
}

static int step_call(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	const char *s = p->buf + p->blk_open;
	size_t n = p->len - p->blk_open, body, total;
	int which = -1, rc;
	const char *f = tc_find_any(s + p->scan, n - p->scan, call_ends, &which);
	if (f) {
		body = (size_t)(f - s);
		total = p->blk_open + body + strlen(call_ends[which]);
	} else if (eof) {
		body = n;
		total = p->len;
	} else {
		if (n > TC_MAX_BLOCK)
			return tc_fail(p, p->buf, p->blk_open + TC_MAX_BLOCK, err) ? HEARTH_ENOMEM :
			       (tc_consume(p, p->blk_open + TC_MAX_BLOCK), p->fstate = H_RAW, 1);
		p->scan = n >= 8 ? n - 7 : 0;
		return 0;
	}
	if (body > TC_MAX_BLOCK) {
		total = p->blk_open + TC_MAX_BLOCK;
		rc = 1;
	} else {
		const char *to = NULL;
		size_t ton = header_word(p->buf, p->blk_open, "to=", &to);
		json_t *v = tc_json_parse(s, body), *args = v ? tc_args_object(v) : NULL;
		json_decref(v);
		rc = args ? tc_plist_add(&p->plist, to + 10, ton - 10, args, NULL, err) : 1;
		if (rc == 0)
			rc = tc_commit(p, err);
	}
	if (rc < 0)
		return rc;
	if (rc > 0 && (rc = tc_fail(p, p->buf, total, err)))
		return rc;
	tc_consume(p, total);
	p->fstate = H_HEADER;
	return 1;
}

int tc_harmony_step(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	int rc;
	switch (p->fstate) {
	case H_HEADER: {
		const char *f = tc_find(p->buf, p->len < HEADER_MAX ? p->len : HEADER_MAX, MSG);
		if (f)
			return on_header(p, (size_t)(f - p->buf), err);
		if (!eof && p->len < HEADER_MAX)
			return 0;
		p->fstate = H_RAW;
		return 1;
	}
	case H_REASON:
		return step_text(p, eof, TC_EV_REASONING, err);
	case H_TEXT:
		return step_text(p, eof, TC_EV_CONTENT, err);
	case H_CALL:
		return step_call(p, eof, err);
	default:
		if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, p->len, err)))
			return rc;
		tc_consume(p, p->len);
		return 0;
	}
}
