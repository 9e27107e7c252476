/*
 * chat-out.c - a chat answer read as OpenAI's message fields: content,
 * reasoning_content and tool_calls (hearth_chat_reader knows the model
 * family's syntax). Streaming, each call goes out whole once its text has
 * closed and parsed (name, id and arguments in one delta), so that a call
 * that turns out malformed, which becomes content, was never announced;
 * calls are numbered 0, 1, ... in the order they went out; with
 * parallel_tool_calls false only the first goes out.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

/* What a batch of events adds to the reply. */
struct out_acc {
	char *content, *reasoning;
	size_t n_content, cap_content, n_reasoning, cap_reasoning;
	json_t *calls; /* OpenAI tool_calls entries; NULL until one */
	bool oom;
};

int chat_out_init(struct chat_out *o, struct served_model *sm, const struct hearth_chat_prompt *prompt, const char *tools_json,
		  size_t tools_len, bool parallel, struct hearth_err *err)
{
	memset(o, 0, sizeof *o);
	o->one_call = !parallel;
	return hearth_chat_reader_new(sm->chat, prompt, tools_json, tools_len, &o->r, err);
}

void chat_out_free(struct chat_out *o)
{
	hearth_chat_reader_free(o->r);
	free(o->pend_name);
	memset(o, 0, sizeof *o);
}

/* Sends parser call index (its id, name and arguments) as the next call. */
static void emit_call(struct chat_out *o, struct out_acc *a, int32_t index, const char *id, const char *name,
		      const char *args, size_t args_len)
{
	if (index >= 0 && index < 64)
		o->emitted |= 1ULL << index;
	if (o->one_call && o->n_calls > 0) /* parallel_tool_calls false: the first call only */
		return;
	if (!a->calls && !(a->calls = json_array())) {
		a->oom = true;
		return;
	}
	json_t *c = json_pack("{s:i, s:s, s:s, s:{s:s, s:s%}}", "index", o->n_calls, "id", id ? id : "", "type", "function",
			      "function", "name", name ? name : "", "arguments", args ? args : "", args ? args_len : 0);
	a->oom = a->oom || !jsonb_add(a->calls, c);
	o->n_calls++;
}

static bool emitted(const struct chat_out *o, int32_t index)
{
	return index >= 0 && index < 64 && (o->emitted >> index & 1);
}

/* Folds the reader's events into a. */
static void take_events(struct chat_out *o, const struct hearth_chat_event *ev, size_t n, struct out_acc *a)
{
	for (size_t k = 0; k < n; k++) {
		const struct hearth_chat_event *e = &ev[k];
		switch (e->kind) {
		case HEARTH_CHAT_CONTENT:
			a->oom = a->oom || buf_append(&a->content, &a->n_content, &a->cap_content, e->text, e->len);
			break;
		case HEARTH_CHAT_REASONING:
			a->oom = a->oom || buf_append(&a->reasoning, &a->n_reasoning, &a->cap_reasoning, e->text, e->len);
			break;
		case HEARTH_CHAT_CALL_BEGIN: /* held until its arguments close */
			free(o->pend_name);
			o->pend_name = strdup(e->name ? e->name : "");
			snprintf(o->pend_id, sizeof o->pend_id, "%s", e->id ? e->id : "");
			o->pend_index = e->index;
			a->oom = a->oom || !o->pend_name;
			break;
		case HEARTH_CHAT_CALL_ARGS:
			if (o->pend_name && o->pend_index == e->index && !emitted(o, e->index))
				emit_call(o, a, e->index, o->pend_id, o->pend_name, e->text, e->len);
			break;
		case HEARTH_CHAT_CALL_FAIL:
			free(o->pend_name);
			o->pend_name = NULL;
			break;
		case HEARTH_CHAT_CALL_DONE: /* a call not sent yet (no separate arguments event) */
			if (!emitted(o, e->index))
				emit_call(o, a, e->index, e->id, e->name, e->text, e->len);
			break;
		}
	}
}

/* Feeds text (and the end, when final) into a. */
static bool read_text(struct chat_out *o, const char *text, size_t len, bool final, struct out_acc *a)
{
	struct hearth_err err = { 0 };
	const struct hearth_chat_event *ev;
	size_t n;
	if (len) {
		if (hearth_chat_reader_feed(o->r, text, len, &ev, &n, &err))
			return false;
		take_events(o, ev, n, a);
	}
	if (final) {
		if (hearth_chat_reader_finish(o->r, &ev, &n, &err))
			return false;
		take_events(o, ev, n, a);
	}
	return !a->oom;
}

static void acc_free(struct out_acc *a)
{
	free(a->content);
	free(a->reasoning);
	json_decref(a->calls);
}

bool chat_out_delta(struct chat_out *o, const char *text, size_t len, bool final, json_t *delta)
{
	struct out_acc a = { 0 };
	bool ok = read_text(o, text, len, final, &a);
	if (ok && a.n_content)
		ok = jsonb_set(delta, "content", jsonb_str(a.content, a.n_content));
	if (ok && a.n_reasoning)
		ok = jsonb_set(delta, "reasoning_content", jsonb_str(a.reasoning, a.n_reasoning));
	if (ok && a.calls) {
		ok = jsonb_set(delta, "tool_calls", a.calls);
		a.calls = NULL;
	}
	acc_free(&a);
	return ok;
}

bool chat_out_message(struct chat_out *o, const char *text, size_t len, json_t *msg)
{
	struct out_acc a = { 0 };
	bool ok = read_text(o, text, len, true, &a);
	if (ok)
		ok = jsonb_set(msg, "content", a.n_content || !a.calls ? jsonb_str(a.content ? a.content : "", a.n_content)
								 : json_null());
	if (ok && a.n_reasoning)
		ok = jsonb_set(msg, "reasoning_content", jsonb_str(a.reasoning, a.n_reasoning));
	if (ok && a.calls) { /* a message's calls carry no index (stream deltas do) */
		size_t i;
		json_t *c;
		json_array_foreach(a.calls, i, c)
			json_object_del(c, "index");
		ok = jsonb_set(msg, "tool_calls", a.calls);
		a.calls = NULL;
	}
	acc_free(&a);
	return ok;
}
