/*
 * stream.c - a request's generations (one per choice), and when it streams,
 * their text as server-sent events in OpenAI's chunk shape: each choice in
 * turn, a usage chunk when asked, then "data: [DONE]". A chunk that cannot
 * be built breaks the stream: the connection is cut rather than ended
 * falsely.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "openai.h"
#include "usage.h"

static void gen_id(char *buf, size_t size, const char *prefix)
{
	static atomic_uint_fast64_t counter;
	uint64_t x = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ atomic_fetch_add(&counter, 1) * 0xbf58476d1ce4e5b9ULL;
	snprintf(buf, size, "%s%016" PRIx64, prefix, x);
}

void stream_put(struct stream *st, const char *s, size_t n)
{
	if (!st->broken && buf_append(&st->out, &st->out_len, &st->out_cap, s, n))
		st->broken = true;
}

void stream_push_json(struct stream *st, const char *prefix, json_t *j, const char *suffix)
{
	size_t n = 0;
	char *s = j ? reply_text(j, &n) : NULL;
	json_decref(j);
	if (!s)
		st->broken = true;
	if (prefix)
		stream_put(st, prefix, strlen(prefix));
	stream_put(st, s ? s : "", n);
	stream_put(st, suffix, strlen(suffix));
	free(s);
}

/* Queues j (taken over) as one event; a failure breaks the stream. */
static void sse_push(struct stream *st, json_t *j)
{
	stream_push_json(st, "data: ", j, "\n\n");
}

static json_t *chunk(struct stream *st, json_t *choices)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", st->id, "object",
			 st->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)st->created,
			 "model", st->sm->name, "choices", choices);
}

/* Queues what choice i has ready; its final chunk when it finished. */
static void sse_emit(struct stream *st, int i, size_t lp_from)
{
	struct gen *g = &st->g[i];
	size_t upto = gen_sendable(&st->p, g);
	bool fin = g->finish != 0;
	const bool extras = ((st->p.logprobs || st->p.uncertainty) && g->n_lps > lp_from) || hidden_pending(&st->p, g);
	if (upto <= g->sent && !fin && !(st->chat && !st->role_sent[i]) && !extras)
		return; /* (extras go out even when their text is held back: lp_sent moves past them) */
	json_t *text = jsonb_str(g->text ? g->text + g->sent : "", upto > g->sent ? upto - g->sent : 0);
	g->sent = upto > g->sent ? upto : g->sent;
	json_t *choice;
	if (!text) {
		st->broken = true;
		return;
	}
	if (st->chat) {
		json_t *delta = json_object();
		bool ok = delta != NULL;
		if (ok && !st->role_sent[i]) {
			ok = jsonb_set(delta, "role", json_string("assistant"));
			st->role_sent[i] = true;
		}
		if (ok)
			ok = chat_out_delta(&st->reader[i], json_string_value(text), json_string_length(text), fin, delta);
		const int fr = fin && st->reader[i].n_calls > 0 && g->finish == HEARTH_FINISH_STOP ? -1 : g->finish;
		delta = jsonb_done(delta, ok);
		if (delta && !fin && json_object_size(delta) == 0 && !extras) {
			json_decref(delta); /* everything new is held back (a marker may be starting) */
			json_decref(text);
			return;
		}
		choice = !delta ? NULL : json_pack("{s:i, s:o, s:o}", "index", i, "delta", delta,
				   "finish_reason", fin ? json_string(fr < 0 ? "tool_calls" : shape_finish_name(fr)) : json_null());
	} else {
		choice = json_pack("{s:i, s:O, s:o}", "index", i, "text", text,
				   "finish_reason", fin ? json_string(shape_finish_name(g->finish)) : json_null());
	}
	choice = jsonb_done(choice, choice && shape_choice_extras(st, g, lp_from, choice));
	json_decref(text);
	sse_push(st, choice ? chunk(st, json_pack("[o]", choice)) : NULL);
}

/* Queues the end: the usage chunk when asked, then [DONE]. */
static void sse_end(struct stream *st)
{
	if (st->p.include_usage) {
		json_t *c = chunk(st, json_array());
		sse_push(st, jsonb_done(c, jsonb_set(c, "usage", shape_usage(st->g, st->n_gen))));
	}
	stream_put(st, "data: [DONE]\n\n", 14);
	st->done = true;
}

bool stream_run_all(struct stream *st, int fd, struct reply *rp)
{
	bool ok = true;
	for (int i = 0; i < st->n_gen; i++) {
		while (gen_wait(st->sm, &st->p, &st->g[i], fd))
			;
		ok = ok && st->g[i].finish != HEARTH_FINISH_ERROR;
	}
	if (!ok)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory: the model could not finish the request");
	return ok;
}

ssize_t stream_read(struct stream *st, char *buf, size_t max, bool *ended)
{
	while (st->out_sent == st->out_len) {
		st->out_len = st->out_sent = 0;
		if (st->broken)
			return -1;
		if (st->done) {
			*ended = true;
			return 0;
		}
		if (st->cur >= st->n_gen) {
			st->wire->end(st);
			continue;
		}
		struct gen *g = &st->g[st->cur];
		size_t lp_from = g->lp_sent;
		bool more = g->finish == 0 && gen_wait(st->sm, &st->p, g, st->fd);
		if (g->finish == HEARTH_FINISH_ERROR) {
			st->broken = true; /* the model could not finish it: the client sees the stream cut */
			continue;
		}
		st->wire->emit(st, st->cur, lp_from);
		g->lp_sent = g->n_lps;
		if (!more || g->finish)
			st->cur++;
	}
	size_t n = st->out_len - st->out_sent < max ? st->out_len - st->out_sent : max;
	memcpy(buf, st->out + st->out_sent, n);
	st->out_sent += n;
	return (ssize_t)n;
}

void stream_free(struct stream *st)
{
	if (!st)
		return;
	if (st->route)
		usage_note_stream(st);
	for (int i = 0; i < st->n_gen; i++)
		gen_free(st->sm, &st->g[i]);
	for (int i = 0; i < MAX_PROMPTS; i++)
		chat_out_free(&st->reader[i]);
	params_free(&st->p);
	models_release(&st->srv->models, st->sm, st->keep_s);
	free(st->out);
	free(st);
}

const char *stream_content_type(const struct stream *st)
{
	return st->wire->content_type;
}

static const struct stream_wire sse_wire = { "text/event-stream", sse_emit, sse_end };

struct stream *stream_new(struct served_model *sm, bool chat, const struct call *call)
{
	struct stream *st = calloc(1, sizeof *st);
	if (!st) {
		models_release(&sm->srv->models, sm, -1);
		return NULL;
	}
	st->srv = sm->srv;
	st->sm = sm;
	st->wire = &sse_wire;
	st->keep_s = -1;
	st->t_start = hearth_now();
	st->chat = chat;
	st->fd = call->fd;
	st->created = (long)time(NULL);
	gen_id(st->id, sizeof st->id, chat ? "chatcmpl-" : "cmpl-");
	st->route = usage_route_name(call->http ? call->http->url : NULL);
	usage_mark_now(&st->mark, sm);
	return st;
}

