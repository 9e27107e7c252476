/*
 * shapes.c - OpenAI's JSON shapes: a reply's choices, logprobs (chat and
 * completions differ), usage, and a model. Each returns NULL when memory
 * runs out.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

const char *shape_finish_name(int f)
{
	return f == HEARTH_FINISH_LENGTH || f == HEARTH_FINISH_TIMEOUT ? "length" : "stop";
}

static json_t *shape_piece(struct served_model *sm, int32_t id, json_t **bytes)
{
	char buf[256];
	int n = hearth_token_to_piece(sm->model, id, true, buf, sizeof buf);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof buf)
		n = sizeof buf;
	if (bytes) {
		bool ok = (*bytes = json_array()) != NULL;
		for (int i = 0; ok && i < n; i++)
			ok = jsonb_add(*bytes, json_integer((unsigned char)buf[i]));
		*bytes = jsonb_done(*bytes, ok);
	}
	return jsonb_str(buf, (size_t)n);
}

/* Adds l's entropy and rank to the object o (null for an unscored echoed token). */
static bool add_unc(json_t *o, const struct tok_lp *l)
{
	return jsonb_set(o, "entropy", l->no_lp ? json_null() : json_real(l->entropy)) &&
	       jsonb_set(o, "rank", l->no_lp ? json_null() : json_integer(l->rank));
}

/* The logprobs of tokens l[0..n) in the chat shape; NULL when out of memory. */
json_t *shape_chat_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n, bool unc)
{
	json_t *content = json_array();
	bool ok = content != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		json_t *bytes, *top = json_array();
		json_t *tok = shape_piece(sm, l[i].id, &bytes);
		ok = top != NULL;
		for (int32_t k = 0; ok && k < l[i].n_top; k++) {
			json_t *tb, *tt = shape_piece(sm, l[i].top_ids[k], &tb);
			ok = jsonb_add(top, json_pack("{s:o, s:f, s:o}", "token", tt, "logprob", (double)l[i].top_lp[k], "bytes", tb));
		}
		if (!ok) {
			json_decref(top);
			json_decref(tok);
			json_decref(bytes);
			break;
		}
		json_t *e = json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob", (double)l[i].lp, "bytes", bytes,
				      "top_logprobs", top);
		ok = jsonb_add(content, unc ? jsonb_done(e, e && add_unc(e, &l[i])) : e);
	}
	return ok ? json_pack("{s:o}", "content", content) : jsonb_done(content, false);
}

/* The logprobs of tokens l[0..n) in the completions shape; NULL when out of memory. */
json_t *shape_completion_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n, bool unc)
{
	json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
	json_t *ents = unc ? json_array() : NULL, *ranks = unc ? json_array() : NULL;
	bool ok = toks && lps && tops && offs && (!unc || (ents && ranks));
	for (size_t i = 0; ok && i < n; i++) {
		json_t *t = l[i].no_lp ? json_null() : json_object(); /* an echoed first token: null, as OpenAI has it */
		ok = jsonb_add(toks, shape_piece(sm, l[i].id, NULL)) &&
		     jsonb_add(lps, l[i].no_lp ? json_null() : json_real(l[i].lp)) && t;
		for (int32_t k = 0; ok && !l[i].no_lp && k < l[i].n_top; k++) {
			json_t *name = shape_piece(sm, l[i].top_ids[k], NULL);
			ok = jsonb_set(t, json_string_value(name), json_real(l[i].top_lp[k]));
			json_decref(name);
		}
		ok = jsonb_add(tops, jsonb_done(t, ok)) && jsonb_add(offs, json_integer((json_int_t)l[i].text_offset));
		if (ok && unc)
			ok = jsonb_add(ents, l[i].no_lp ? json_null() : json_real(l[i].entropy)) &&
			     jsonb_add(ranks, l[i].no_lp ? json_null() : json_integer(l[i].rank));
	}
	json_t *j = ok ? json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
				   "text_offset", offs) : NULL;
	if (!j) {
		json_decref(toks);
		json_decref(lps);
		json_decref(tops);
		json_decref(offs);
		json_decref(ents);
		json_decref(ranks);
		return NULL;
	}
	if (unc)
		j = jsonb_done(j, jsonb_set(j, "token_entropies", ents) && jsonb_set(j, "token_ranks", ranks));
	return j;
}

json_t *shape_uncertainty(struct served_model *sm, const struct tok_lp *l, size_t n)
{
	json_t *content = json_array();
	bool ok = content != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		json_t *e = json_pack("{s:o}", "token", shape_piece(sm, l[i].id, NULL));
		ok = jsonb_add(content, jsonb_done(e, e && add_unc(e, &l[i])));
	}
	return ok ? json_pack("{s:o}", "content", content) : jsonb_done(content, false);
}

bool shape_choice_extras(struct stream *st, struct gen *g, size_t from, json_t *choice)
{
	const bool unc = st->p.uncertainty, any = g->n_lps > from;
	json_t *lp = json_null();
	if (st->p.logprobs && any)
		lp = st->chat ? shape_chat_logprobs(st->sm, g->lps + from, g->n_lps - from, unc)
			      : shape_completion_logprobs(st->sm, g->lps + from, g->n_lps - from, unc);
	if (!jsonb_set(choice, "logprobs", lp))
		return false;
	/* streamed: only in the chunks that bring positions */
	if (st->p.hidden.n && (!st->p.stream || hidden_pending(&st->p, g)) &&
	    !jsonb_set(choice, "hidden_states", hidden_shape(st->sm, &st->p, g)))
		return false;
	if (unc && !st->p.logprobs)
		return jsonb_set(choice, "uncertainty", any ? shape_uncertainty(st->sm, g->lps + from, g->n_lps - from)
							    : json_null());
	return true;
}

json_t *shape_usage(const struct gen *g, int n)
{
	long long prompt = 0, completion = 0, cached = 0;
	for (int i = 0; i < n; i++) {
		prompt += g[i].n_prompt;
		completion += g[i].n_gen;
		cached += g[i].cached;
	}
	return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", prompt, "completion_tokens", completion,
			 "total_tokens", prompt + completion, "prompt_tokens_details", "cached_tokens", cached);
}

/* Choice k's message: its answer read into content, reasoning and calls. */
static json_t *chat_message(struct stream *st, int k)
{
	struct gen *g = &st->g[k];
	json_t *msg = json_pack("{s:s}", "role", "assistant");
	return jsonb_done(msg, msg && chat_out_message(&st->reader[k], g->text ? g->text : "", g->len, msg));
}

/* The chat.completion reply of finished generations; NULL when out of memory. */
json_t *shape_chat_reply(struct stream *st)
{
	struct served_model *sm = st->sm;
	json_t *choices = json_array();
	bool ok = choices != NULL;
	for (int k = 0; ok && k < st->n_gen; k++) {
		struct gen *g = &st->g[k];
		json_t *msg = chat_message(st, k);
		const bool calls = msg && json_object_get(msg, "tool_calls") && g->finish == HEARTH_FINISH_STOP;
		json_t *c = json_pack("{s:i, s:o, s:s}", "index", k, "message", msg, "finish_reason",
				      calls ? "tool_calls" : shape_finish_name(g->finish));
		ok = jsonb_add(choices, jsonb_done(c, c && shape_choice_extras(st, g, 0, c)));
	}
	if (!ok)
		return jsonb_done(choices, false);
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s}", "id", st->id, "object", "chat.completion", "created",
			 (json_int_t)st->created, "model", sm->name, "choices", choices, "usage",
			 shape_usage(st->g, st->n_gen), "system_fingerprint", "hearth");
}

/* The text_completion reply of finished generations; NULL when out of memory. */
json_t *shape_completion_reply(struct stream *st)
{
	struct served_model *sm = st->sm;
	json_t *choices = json_array();
	bool ok = choices != NULL;
	for (int i = 0; ok && i < st->n_gen; i++) {
		struct gen *g = &st->g[i];
		json_t *c = json_pack("{s:i, s:o, s:s}", "index", i, "text", jsonb_str(g->text ? g->text : "", g->len),
				      "finish_reason", shape_finish_name(g->finish));
		ok = jsonb_add(choices, jsonb_done(c, c && shape_choice_extras(st, g, 0, c)));
	}
	if (!ok)
		return jsonb_done(choices, false);
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", st->id, "object", "text_completion", "created",
			 (json_int_t)st->created, "model", sm->name, "choices", choices, "usage",
			 shape_usage(st->g, st->n_gen));
}

/* The model as /v1/models lists it: its file name only, never where it lies;
 * max_model_len once known (it was loaded, or -c gives it), and whether it
 * is loaded now. */
json_t *shape_model(struct models *ms, struct served_model *sm)
{
	struct model_view v;
	models_view(ms, sm, &v);
	const char *slash = strrchr(sm->path, '/');
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:[], s:b}", "id", sm->name, "object", "model", "created",
			      (json_int_t)(v.created ? v.created : sm->modified), "owned_by", "hearth", "root",
			      slash ? slash + 1 : sm->path, "parent", "permission", "loaded", v.state == MODEL_LOADED);
	return v.n_ctx_seq > 0 ? jsonb_done(j, jsonb_set(j, "max_model_len", json_integer(v.n_ctx_seq))) : j;
}
