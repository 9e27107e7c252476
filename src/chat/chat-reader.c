/*
 * chat-reader.c - the public face of the tool-call and reasoning parsers
 * (toolcall-*.c): a reader per answer, its family from the chat, its events
 * in the library's own shape.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "chat-impl.h"
#include "jinja.h"

struct hearth_chat_reader {
	struct tc_parser *p;
	struct tc_events ev;
	struct hearth_chat_event *out;
	size_t cap;
};

const char *hearth_chat_format_name(const struct hearth_chat *c) { return tc_format_name(c->format); }

const char *hearth_chat_call_opener(const struct hearth_chat *c) { return tc_call_opener(c->format); }

int hearth_chat_reader_new(const struct hearth_chat *c, const struct hearth_chat_prompt *prompt, const char *tools_json,
			   size_t tools_len, struct hearth_chat_reader **out, struct hearth_err *err)
{
	json_t *tools = NULL;
	enum tc_format format = c->format;
	*out = NULL;
	if (tools_json) {
		json_error_t je;
		bool oom;
		tools = chat_json_load(tools_json, tools_len, JSON_ALLOW_NUL, &je, &oom);
		if (!json_is_array(tools)) {
			json_decref(tools);
			return err_set(err, oom ? HEARTH_ENOMEM : HEARTH_EINVAL, "chat reader: the tools are not a JSON array (%s)",
				       tools ? "another value" : je.text);
		}
	} else if (format != TC_HARMONY) { /* no tools: reasoning only */
		format = c->src && strstr(c->src, "<think>") ? TC_THINK : TC_NONE;
	}
	struct hearth_chat_reader *r = calloc(1, sizeof *r);
	if (!r) {
		json_decref(tools);
		return err_set(err, HEARTH_ENOMEM, "chat reader: out of memory");
	}
	int rc = tc_parser_new(format, tools, chat_prompt_think(prompt) == THINK_OPEN, &r->p, err);
	json_decref(tools); /* the parser holds its own reference */
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void hearth_chat_reader_free(struct hearth_chat_reader *r)
{
	if (!r)
		return;
	tc_parser_free(r->p);
	tc_events_free(&r->ev);
	free(r->out);
	free(r);
}

/* The parser's events as the library's. */
static int publish(struct hearth_chat_reader *r, const struct hearth_chat_event **ev, size_t *n, struct hearth_err *err)
{
	static const enum hearth_chat_event_kind kinds[] = {
		[TC_EV_CONTENT] = HEARTH_CHAT_CONTENT,       [TC_EV_REASONING] = HEARTH_CHAT_REASONING,
		[TC_EV_CALL_BEGIN] = HEARTH_CHAT_CALL_BEGIN, [TC_EV_CALL_ARGS] = HEARTH_CHAT_CALL_ARGS,
		[TC_EV_CALL_FAIL] = HEARTH_CHAT_CALL_FAIL,   [TC_EV_CALL_DONE] = HEARTH_CHAT_CALL_DONE,
	};
	if (r->ev.n > r->cap) {
		struct hearth_chat_event *o = realloc(r->out, r->ev.n * sizeof *o);
		if (!o)
			return err_set(err, HEARTH_ENOMEM, "chat reader: out of memory for %zu events", r->ev.n);
		r->out = o;
		r->cap = r->ev.n;
	}
	for (size_t i = 0; i < r->ev.n; i++) {
		const struct tc_event *e = &r->ev.v[i];
		r->out[i] = (struct hearth_chat_event){ kinds[e->kind], e->index, e->text, e->len, e->name,
							e->id[0] ? e->id : NULL };
	}
	*ev = r->out;
	*n = r->ev.n;
	return 0;
}

int hearth_chat_reader_feed(struct hearth_chat_reader *r, const char *text, size_t len,
			    const struct hearth_chat_event **ev, size_t *n, struct hearth_err *err)
{
	*ev = NULL;
	*n = 0;
	tc_events_clear(&r->ev);
	int rc = tc_parser_feed(r->p, text, len, &r->ev, err);
	return rc ? rc : publish(r, ev, n, err);
}

int hearth_chat_reader_finish(struct hearth_chat_reader *r, const struct hearth_chat_event **ev, size_t *n,
			      struct hearth_err *err)
{
	*ev = NULL;
	*n = 0;
	tc_events_clear(&r->ev);
	int rc = tc_parser_finish(r->p, &r->ev, err);
	return rc ? rc : publish(r, ev, n, err);
}
