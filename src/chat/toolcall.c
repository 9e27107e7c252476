/* toolcall.c - the tool-call parser's engine: held text, events, calls and
 * their ids, and the generic steps most families use:
 *
 *   START ──(<think>)──> REASONING ──(</think>)──> CONTENT <──> BLOCK
 *     └──────────────────────────────────────────────┘  opener / block end
 *
 * START waits until the output's first non-space bytes show whether it opens
 * a reasoning block (or, for Llama 3, a JSON call). CONTENT releases text up
 * to the first marker, holding back only a suffix that may start one. BLOCK
 * holds a call's text until the family says where it ends, then parses it
 * whole: calls when it is well formed, its raw text as content when not.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../base/err.h"
#include "toolcall-impl.h"

#define TC_SLICE 4096                  /* bytes appended to the held text at a time */
#define TC_NAME_WINDOW (TC_MAX_NAME + 64) /* bytes of a block within which its name must be known */

static int no_mem(struct hearth_err *err, const char *what, size_t n)
{
	return err_set(err, HEARTH_ENOMEM, "tool-call parser: no memory for %s (%zu bytes)", what, n);
}

/* ---- events ---- */

void tc_events_clear(struct tc_events *ev)
{
	for (size_t i = 0; i < ev->n; i++) {
		free(ev->v[i].text);
		free(ev->v[i].name);
	}
	ev->n = 0;
}

void tc_events_free(struct tc_events *ev)
{
	tc_events_clear(ev);
	free(ev->v);
	ev->v = NULL;
	ev->cap = 0;
}

static struct tc_event *event_push(struct tc_parser *p, enum tc_event_kind kind, int32_t index,
				   struct hearth_err *err)
{
	struct tc_events *ev = p->ev;
	if (ev->n == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 16;
		struct tc_event *v = realloc(ev->v, cap * sizeof *v);
		if (!v) {
			no_mem(err, "events", cap * sizeof *v);
			return NULL;
		}
		ev->v = v;
		ev->cap = cap;
	}
	struct tc_event *e = &ev->v[ev->n++];
	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->index = index;
	return e;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Text for an event; content and reasoning join the previous event of their kind when it is the last one. */
int tc_emit(struct tc_parser *p, enum tc_event_kind kind, const char *s, size_t n, struct hearth_err *err)
{
	struct tc_events *ev = p->ev;
	if (n == 0 && (kind == TC_EV_CONTENT || kind == TC_EV_REASONING))
		return 0;
	if ((kind == TC_EV_CONTENT || kind == TC_EV_REASONING) && ev->n && ev->v[ev->n - 1].kind == kind) {
		struct tc_event *e = &ev->v[ev->n - 1];
		char *t = realloc(e->text, e->len + n + 1);
		if (!t)
			return no_mem(err, "an event's text", e->len + n + 1);
		memcpy(t + e->len, s, n);
		e->len += n;
		t[e->len] = '\0';
		e->text = t;
		return 0;
	}
	struct tc_event *e = event_push(p, kind, kind == TC_EV_CALL_ARGS ? p->cur_index : -1, err);
	if (!e)
		return HEARTH_ENOMEM;
	if (!(e->text = dup_n(s, n))) {
		p->ev->n--;
		return no_mem(err, "an event's text", n + 1);
	}
	e->len = n;
	return 0;
}

void tc_consume(struct tc_parser *p, size_t n)
{
	if (n == 0) /* also when nothing was ever held: buf may be NULL */
		return;
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
}

/* ---- ids and calls ---- */

static uint64_t default_random(void *ud)
{
	uint64_t *s = ud, z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void tc_parser_set_random(struct tc_parser *p, tc_random_fn fn, void *ud)
{
	p->rnd = fn ? fn : default_random;
	p->rnd_ud = fn ? ud : &p->rng;
}

/* Mistral's templates take only ids of 9 alphanumerics. */
static bool valid_model_id(const char *id, bool mistral)
{
	size_t n = strlen(id);
	if (!mistral || n != 9)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

static void make_id(struct tc_parser *p, const char *model_id, char id[32])
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	if (p->fam->mistral_ids && model_id && valid_model_id(model_id, true)) {
		snprintf(id, 32, "%s", model_id);
		return;
	}
	int n = p->fam->mistral_ids ? 9 : 24, at = 0;
	if (!p->fam->mistral_ids)
		at = snprintf(id, 32, "call_");
	for (int i = 0; i < n; i++)
		id[at + i] = alnum[p->rnd(p->rnd_ud) % 62];
	id[at + n] = '\0';
}

int tc_call_begin(struct tc_parser *p, const char *name, size_t name_len, const char *model_id,
		  struct hearth_err *err)
{
	if (p->n_indexes >= TC_MAX_CALLS || !tc_tool_known(p, name, name_len))
		return 1;
	struct tc_event *e = event_push(p, TC_EV_CALL_BEGIN, p->n_indexes, err);
	if (!e)
		return HEARTH_ENOMEM;
	if (!(e->name = dup_n(name, name_len))) {
		p->ev->n--;
		return no_mem(err, "a tool name", name_len + 1);
	}
	make_id(p, model_id, e->id);
	p->cur_index = p->n_indexes++;
	memcpy(p->cur_id, e->id, sizeof p->cur_id);
	p->begun = true;
	return 0;
}

static int commit_one(struct tc_parser *p, struct tc_pcall *c, struct hearth_err *err)
{
	int rc;
	if (!p->begun && (rc = tc_call_begin(p, c->name, strlen(c->name), c->id, err)))
		return rc < 0 ? rc : err_set(err, HEARTH_EINVAL, "tool call '%s' refused after its check", c->name);
	char *args = json_dumps(c->args, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!args)
		return no_mem(err, "a call's arguments", 0);
	struct tc_call *calls = realloc(p->calls, (size_t)(p->n_calls + 1) * sizeof *calls);
	if (!calls) {
		free(args);
		return no_mem(err, "the calls", (size_t)(p->n_calls + 1) * sizeof *calls);
	}
	p->calls = calls;
	struct tc_call *k = &calls[p->n_calls];
	k->index = p->cur_index;
	memcpy(k->id, p->cur_id, sizeof k->id);
	k->arguments = args;
	if (!(k->name = strdup(c->name))) {
		free(args);
		return no_mem(err, "a tool name", strlen(c->name));
	}
	p->n_calls++;
	p->begun = false;
	return tc_emit(p, TC_EV_CALL_ARGS, args, strlen(args), err);
}

int tc_commit(struct tc_parser *p, struct hearth_err *err)
{
	struct tc_plist *l = &p->plist;
	int rc = 0, fresh = l->n - (p->begun ? 1 : 0);
	if (l->n == 0 || p->n_indexes + fresh > TC_MAX_CALLS)
		rc = 1;
	for (int i = 0; !rc && i < l->n; i++)
		if (!tc_tool_known(p, l->v[i].name, strlen(l->v[i].name)))
			rc = 1;
	for (int i = 0; !rc && i < l->n; i++)
		rc = commit_one(p, &l->v[i], err);
	tc_plist_reset(l);
	return rc;
}

int tc_fail(struct tc_parser *p, const char *raw, size_t n, struct hearth_err *err)
{
	if (p->begun) {
		p->begun = false;
		if (!event_push(p, TC_EV_CALL_FAIL, p->cur_index, err))
			return HEARTH_ENOMEM;
	}
	return tc_emit(p, TC_EV_CONTENT, raw, n, err);
}

/* ---- the generic steps ---- */

static void block_start(struct tc_parser *p, size_t open_len)
{
	p->mode = TC_M_BLOCK;
	p->blk_open = open_len;
	p->name_tried = false;
	p->begun = false;
	p->scan = 0;
	tc_jscan_reset(&p->js);
}

static int step_start(struct tc_parser *p, bool eof)
{
	const struct tc_family *f = p->fam;
	size_t w = tc_skip_space(p->buf, p->len), rest = p->len - w;
	if (rest == 0) {
		if (!eof && w <= TC_SLICE)
			return 0;
		p->mode = TC_M_CONTENT;
		return 1;
	}
	if (f->json_at_start && p->buf[w] == '{') {
		tc_consume(p, w);
		block_start(p, 0);
		return 1;
	}
	if (f->think_open) {
		size_t m = strlen(f->think_open);
		if (rest < m && !memcmp(p->buf + w, f->think_open, rest) && !eof)
			return 0;
		if (rest >= m && !memcmp(p->buf + w, f->think_open, m)) {
			tc_consume(p, w + m);
			p->mode = TC_M_REASONING;
			p->r_skip_ws = true;
			return 1;
		}
	}
	p->mode = TC_M_CONTENT;
	return 1;
}

static int step_reasoning(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	const char *close = p->fam->think_close ? p->fam->think_close : "</think>";
	const char *lits[] = { close, NULL };
	int rc;
	if (p->r_skip_ws) {
		size_t w = tc_skip_space(p->buf, p->len);
		if (w) {
			tc_consume(p, w);
			return 1;
		}
		if (p->len == 0) {
			if (!eof)
				return 0;
		} else {
			p->r_skip_ws = false;
		}
	}
	const char *f = tc_find(p->buf, p->len, close);
	if (f) {
		size_t i = (size_t)(f - p->buf);
		if ((rc = tc_emit(p, TC_EV_REASONING, p->buf, i, err)))
			return rc;
		tc_consume(p, i + strlen(close));
		p->mode = TC_M_CONTENT;
		p->skip_ws = true;
		return 1;
	}
	size_t k = p->len - (eof ? 0 : tc_partial(p->buf, p->len, lits));
	if ((rc = tc_emit(p, TC_EV_REASONING, p->buf, k, err)))
		return rc;
	tc_consume(p, k);
	if (eof) {
		p->mode = TC_M_CONTENT;
		return 1;
	}
	return k > 0;
}

int tc_step_content(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	const struct tc_family *f = p->fam;
	const char *lits[6];
	int n_lits = 0, which = -1, rc;
	if (f->block_open)
		lits[n_lits++] = f->block_open;
	for (int i = 0; f->drops[i]; i++)
		lits[n_lits++] = f->drops[i];
	lits[n_lits] = NULL;
	if (p->skip_ws) {
		size_t w = tc_skip_space(p->buf, p->len);
		if (w) {
			tc_consume(p, w);
			return 1;
		}
		if (p->len == 0)
			return 0;
		p->skip_ws = false;
	}
	const char *m = n_lits ? tc_find_any(p->buf, p->len, lits, &which) : NULL;
	if (m) {
		size_t i = (size_t)(m - p->buf);
		if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, i, err)))
			return rc;
		tc_consume(p, i);
		if (f->block_open && which == 0) {
			block_start(p, strlen(f->block_open));
		} else {
			tc_consume(p, strlen(lits[which]));
			p->skip_ws = true;
		}
		return 1;
	}
	size_t k = p->len - (eof || !n_lits ? 0 : tc_partial(p->buf, p->len, lits));
	if ((rc = tc_emit(p, TC_EV_CONTENT, p->buf, k, err)))
		return rc;
	tc_consume(p, k);
	return k > 0;
}

/* The block's text becomes content (raw bytes: n of them from the opener on). */
static int block_fail(struct tc_parser *p, size_t n, struct hearth_err *err)
{
	tc_plist_reset(&p->plist);
	int rc = tc_fail(p, p->buf, n, err);
	if (rc)
		return rc;
	tc_consume(p, n);
	p->mode = TC_M_CONTENT;
	p->skip_ws = false;
	return 1;
}

static int block_try_name(struct tc_parser *p, const char *s, size_t n, bool eof, struct hearth_err *err)
{
	size_t off = 0, nl = 0;
	int r = p->fam->block_name(s, n < TC_NAME_WINDOW ? n : TC_NAME_WINDOW, &off, &nl);
	if (r == 1 && off + nl > TC_NAME_WINDOW)
		r = -1;
	if (r == 0 && !eof && n < TC_NAME_WINDOW)
		return 0;
	p->name_tried = true;
	if (r != 1)
		return 0;
	char id[32] = "";
	if (p->fam->block_id)
		p->fam->block_id(s, n, id);
	int rc = tc_call_begin(p, s + off, nl, id, err);
	return rc < 0 ? rc : 0;
}

static int step_block(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	const struct tc_family *f = p->fam;
	const char *s = p->buf + p->blk_open;
	size_t n = p->len - p->blk_open, bl = 0, cl = 0;
	int rc;
	if (!p->name_tried && f->block_name && (rc = block_try_name(p, s, n, eof, err)))
		return rc;
	int r = f->block_end(p, s, n, eof, &bl, &cl);
	if (r == 0)
		return n > TC_MAX_BLOCK ? block_fail(p, p->blk_open + TC_MAX_BLOCK, err) : 0;
	if (r < 0)
		return block_fail(p, p->blk_open, err);
	if (bl + cl > TC_MAX_BLOCK)
		return block_fail(p, p->blk_open + TC_MAX_BLOCK, err);
	size_t total = p->blk_open + bl + cl;
	rc = f->parse_block(p, s, bl, &p->plist, err);
	if (rc == 0)
		rc = tc_commit(p, err);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return block_fail(p, total, err);
	tc_consume(p, total);
	p->mode = TC_M_CONTENT;
	p->skip_ws = true;
	return 1;
}

static int step(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	switch (p->mode) {
	case TC_M_START:
		return step_start(p, eof);
	case TC_M_REASONING:
		return step_reasoning(p, eof, err);
	case TC_M_CONTENT:
		return tc_step_content(p, eof, err);
	case TC_M_BLOCK:
		return step_block(p, eof, err);
	case TC_M_CUSTOM:
		return p->fam->step(p, eof, err);
	}
	return 0;
}

static int run(struct tc_parser *p, bool eof, struct hearth_err *err)
{
	int r;
	while ((r = step(p, eof, err)) > 0)
		;
	if (r < 0)
		p->broken = true;
	return r;
}

/* ---- the parser ---- */

int tc_parser_new(enum tc_format format, const json_t *tools, bool starts_in_reasoning, struct tc_parser **out,
		  struct hearth_err *err)
{
	*out = NULL;
	const struct tc_family *f = tc_family_of(format);
	if (!f)
		return err_set(err, HEARTH_EINVAL, "tool-call parser: format %d is not one hearth knows", (int)format);
	if (tools && !json_is_array(tools))
		return err_set(err, HEARTH_EINVAL, "tool-call parser: tools must be an array");
	struct tc_parser *p = calloc(1, sizeof *p);
	if (!p)
		return no_mem(err, "the parser", sizeof *p);
	p->fam = f;
	p->tools = json_incref((json_t *)tools);
	if (getrandom(&p->rng, sizeof p->rng, GRND_NONBLOCK) != (ssize_t)sizeof p->rng)
		p->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
	tc_parser_set_random(p, NULL, NULL);
	p->mode = f->step ? TC_M_CUSTOM : starts_in_reasoning && f->think_open ? TC_M_REASONING : TC_M_START;
	p->r_skip_ws = true;
	p->fsub = starts_in_reasoning;
	*out = p;
	return 0;
}

void tc_parser_free(struct tc_parser *p)
{
	if (!p)
		return;
	for (int32_t i = 0; i < p->n_calls; i++) {
		free(p->calls[i].name);
		free(p->calls[i].arguments);
	}
	free(p->calls);
	tc_plist_reset(&p->plist);
	json_decref(p->tools);
	free(p->buf);
	free(p);
}

static int usable(struct tc_parser *p, struct hearth_err *err)
{
	if (p->broken)
		return err_set(err, HEARTH_EINVAL, "tool-call parser: used after an error");
	if (p->finished)
		return err_set(err, HEARTH_EINVAL, "tool-call parser: fed after finish");
	return 0;
}

int tc_parser_feed(struct tc_parser *p, const char *text, size_t len, struct tc_events *ev, struct hearth_err *err)
{
	int rc = usable(p, err);
	p->ev = ev;
	for (size_t at = 0; !rc && at < len;) {
		size_t k = len - at < TC_SLICE ? len - at : TC_SLICE;
		if (p->len + k > p->cap) {
			size_t cap = p->cap ? p->cap : TC_SLICE;
			while (cap < p->len + k)
				cap *= 2;
			char *b = realloc(p->buf, cap);
			if (!b) {
				p->broken = true;
				return no_mem(err, "held output", cap);
			}
			p->buf = b;
			p->cap = cap;
		}
		memcpy(p->buf + p->len, text + at, k);
		p->len += k;
		at += k;
		rc = run(p, false, err);
	}
	return rc < 0 ? rc : 0;
}

int tc_parser_finish(struct tc_parser *p, struct tc_events *ev, struct hearth_err *err)
{
	int rc = usable(p, err);
	p->ev = ev;
	if (!rc)
		rc = run(p, true, err);
	if (rc >= 0 && p->len) { /* a family left text unsettled: it is content */
		rc = tc_emit(p, TC_EV_CONTENT, p->buf, p->len, err);
		p->len = 0;
	}
	p->finished = true;
	for (int32_t i = 0; rc >= 0 && i < p->n_calls; i++) {
		const struct tc_call *c = &p->calls[i];
		struct tc_event *e = event_push(p, TC_EV_CALL_DONE, c->index, err);
		if (!e)
			return HEARTH_ENOMEM;
		memcpy(e->id, c->id, sizeof e->id);
		e->name = strdup(c->name);
		e->text = strdup(c->arguments);
		if (!e->name || !e->text)
			return no_mem(err, "a final call", strlen(c->arguments));
		e->len = strlen(c->arguments);
	}
	if (rc < 0)
		p->broken = true;
	return rc < 0 ? rc : 0;
}

const struct tc_call *tc_parser_calls(const struct tc_parser *p, int32_t *n_calls)
{
	*n_calls = p->n_calls;
	return p->calls;
}
