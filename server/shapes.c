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

/* The logprobs of tokens l[0..n) in the chat shape; NULL when out of memory. */
json_t *shape_chat_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n)
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
		ok = jsonb_add(content, json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob", (double)l[i].lp, "bytes", bytes,
					    "top_logprobs", top));
	}
	return ok ? json_pack("{s:o}", "content", content) : jsonb_done(content, false);
}

/* The logprobs of tokens l[0..n) in the completions shape; NULL when out of memory. */
json_t *shape_completion_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n)
{
	json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
	bool ok = toks && lps && tops && offs;
	for (size_t i = 0; ok && i < n; i++) {
		json_t *t = json_object();
		ok = jsonb_add(toks, shape_piece(sm, l[i].id, NULL)) && jsonb_add(lps, json_real(l[i].lp)) && t;
		for (int32_t k = 0; ok && k < l[i].n_top; k++) {
			json_t *name = shape_piece(sm, l[i].top_ids[k], NULL);
			ok = jsonb_set(t, json_string_value(name), json_real(l[i].top_lp[k]));
			json_decref(name);
		}
		ok = jsonb_add(tops, jsonb_done(t, ok)) && jsonb_add(offs, json_integer((json_int_t)l[i].text_offset));
	}
	if (ok)
		return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
				 "text_offset", offs);
	json_decref(toks);
	json_decref(lps);
	json_decref(tops);
	json_decref(offs);
	return NULL;
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
		ok = jsonb_add(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", k, "message", msg, "logprobs",
					    st->p.logprobs ? shape_chat_logprobs(sm, g->lps, g->n_lps) : json_null(),
					    "finish_reason", calls ? "tool_calls" : shape_finish_name(g->finish)));
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
		ok = jsonb_add(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", i, "text", jsonb_str(g->text ? g->text : "", g->len),
					    "logprobs", st->p.logprobs ? shape_completion_logprobs(sm, g->lps, g->n_lps) : json_null(),
					    "finish_reason", shape_finish_name(g->finish)));
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
