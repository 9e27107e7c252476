/*
 * hidden-http.c - the opt-in "hidden_states" field of /v1/completions and
 * /v1/chat/completions, streamed or not:
 *
 *   "hidden_states": {"layers": [0, -1], "dtype": "f32" | "f16",
 *                     "tokens": "prompt" | "generated" | "all"}
 *   -> each choice: "hidden_states": {"layers": [...as asked], "dtype",
 *      "tokens", "first_position", "shape": [layers, positions, n_embd],
 *      "data": base64}
 *
 * data is the residual stream after each layer (hearth_request_hidden) of
 * the positions asked for, layer by layer, position by position, as
 * little-endian float32 or IEEE half floats. Positions are those a pass
 * computed: the prompt, then every generated token but the last (which no
 * pass reads; nor, when a stop string ended the answer, the last token's).
 * The request's prompt is then computed in full (no prefix
 * cache). Memory is bounded by the context: layers x n_ctx x n_embd floats.
 *
 * Streamed, each chunk carries the positions kept since the last chunk that
 * carried some, in the same object (first_position and shape say which):
 * the chunk of the first generated token the prompt's positions, the chunk
 * of each later token the position before it (the state that predicted
 * it), the last chunk what is left. Concatenated along positions they are
 * the non-streamed object's data (and logit_lens), byte for byte.
 *
 * "logit_lens": k (1..20) adds, per layer and position, the k tokens the
 * state decodes to through the final norm and the output head, with their
 * log-probabilities: "logit_lens": [layer][position][{"id", "token",
 * "logprob"}]. That is one output-head product per layer and position, on
 * one thread of the HTTP request's own (a small context made for it).
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

bool hidden_parse(struct served_model *sm, json_t *b, struct params *p, struct reply *rp)
{
	json_t *h = json_object_get(b, "hidden_states"), *layers, *e;
	const int32_t L = hearth_model_n_layer(sm->model);
	size_t i;
	if (!h || json_is_null(h))
		return true;
	layers = json_object_get(h, "layers");
	if (!json_is_object(h) || !json_is_array(layers) || json_array_size(layers) == 0 ||
	    json_array_size(layers) > HIDDEN_MAX_LAYERS || json_array_size(layers) > (size_t)L) {
		reply_error(rp, 400, "invalid_request_error", "hidden_states", "invalid_value",
			    "'hidden_states' must be an object with 'layers': an array of 1 to %d layer numbers",
			    L < HIDDEN_MAX_LAYERS ? L : HIDDEN_MAX_LAYERS);
		return false;
	}
	json_array_foreach(layers, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < -L || json_integer_value(e) >= L) {
			reply_error(rp, 400, "invalid_request_error", "hidden_states", "invalid_value",
				    "hidden_states.layers[%zu] must be an integer from %d to %d (negative: from the end)", i,
				    -L, L - 1);
			return false;
		}
		p->hidden.layers[p->hidden.n++] = (int32_t)json_integer_value(e);
	}
	const char *dt = json_string_value(json_object_get(h, "dtype")), *tk = json_string_value(json_object_get(h, "tokens"));
	if ((json_object_get(h, "dtype") && (!dt || (strcmp(dt, "f32") && strcmp(dt, "f16")))) ||
	    (json_object_get(h, "tokens") && (!tk || (strcmp(tk, "prompt") && strcmp(tk, "generated") && strcmp(tk, "all"))))) {
		reply_error(rp, 400, "invalid_request_error", "hidden_states", "invalid_value",
			    "hidden_states.dtype must be \"f32\" or \"f16\"; hidden_states.tokens \"prompt\", \"generated\" or \"all\"");
		return false;
	}
	json_t *lens = json_object_get(h, "logit_lens");
	if (lens && !json_is_null(lens) &&
	    (!json_is_integer(lens) || json_integer_value(lens) < 0 || json_integer_value(lens) > HEARTH_MAX_TOP_LOGPROBS)) {
		reply_error(rp, 400, "invalid_request_error", "hidden_states", "invalid_value",
			    "hidden_states.logit_lens must be an integer from 0 to %d", HEARTH_MAX_TOP_LOGPROBS);
		return false;
	}
	p->hidden.lens_top = lens ? (int32_t)json_integer_value(lens) : 0;
	p->hidden.f16 = dt && !strcmp(dt, "f16");
	p->hidden.tokens = !tk || !strcmp(tk, "all") ? HIDDEN_ALL : !strcmp(tk, "prompt") ? HIDDEN_PROMPT : HIDDEN_GENERATED;
	return true;
}

/* IEEE half of f, rounded to nearest even (overflow: infinity; NaN stays NaN). */
static uint16_t half_of(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	const uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
	if (ax > 0x7f800000)
		return (uint16_t)(sign | 0x7e00);
	if (ax >= 0x477ff000) /* rounds past the largest half */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000) { /* a subnormal half (or zero): units of 2^-24 */
		if (ax < 0x33000000) /* below 2^-25: rounds to zero */
			return (uint16_t)sign;
		const uint32_t m = (ax & 0x7fffff) | 0x800000, sh = 126 - (ax >> 23); /* 14..24 */
		uint32_t h = m >> sh;
		const uint32_t rest = m & ((1u << sh) - 1), halfway = 1u << (sh - 1);
		if (rest > halfway || (rest == halfway && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((ax - 0x38000000) >> 13), rest = ax & 0x1fff;
	if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

#define LENS_ROWS 16 /* states through the output head at once */

/* The top tokens of logits as [{"id", "token", "logprob"}]; NULL when out of memory. */
static json_t *lens_top(struct served_model *sm, struct hearth_sampler *smp, const float *logits, int32_t k)
{
	int32_t ids[HEARTH_MAX_TOP_LOGPROBS];
	float lps[HEARTH_MAX_TOP_LOGPROBS], lp;
	const int32_t n = hearth_sampler_logprobs(smp, logits, 0, k, &lp, ids, lps);
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t i = 0; ok && i < n; i++) {
		char buf[256];
		int len = hearth_token_to_piece(sm->model, ids[i], true, buf, sizeof buf);
		len = len < 0 ? 0 : len > (int)sizeof buf ? (int)sizeof buf : len;
		ok = jsonb_add(arr, json_pack("{s:i, s:o, s:f}", "id", ids[i], "token", jsonb_str(buf, (size_t)len), "logprob",
					      (double)lps[i]));
	}
	return jsonb_done(arr, ok);
}

/* "logit_lens": for each layer asked, each of the n positions in rows
 * ([n][o->n][n_embd]), the top tokens its state decodes to (final norm and
 * output head: hearth_context_logit_lens, on a small context of this
 * request's own, one thread); NULL on failure. */
static json_t *lens_shape(struct served_model *sm, const struct hidden_opts *o, const float *rows, int32_t n_pos)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_sampler_params spp = hearth_sampler_default_params();
	struct hearth_context *c = NULL;
	struct hearth_sampler *smp = NULL;
	struct hearth_err err = { 0 };
	const size_t E = (size_t)hearth_model_n_embd(sm->model), V = (size_t)hearth_model_n_vocab(sm->model);
	float *x = malloc(LENS_ROWS * E * sizeof *x), *logits = malloc(LENS_ROWS * V * sizeof *logits);
	json_t *out = json_array();
	cp.n_ctx = LENS_ROWS;
	cp.n_batch = LENS_ROWS;
	cp.n_threads = 1;
	bool ok = x && logits && out && !hearth_context_new(&c, sm->model, &cp, &err) &&
		  !hearth_sampler_new(&smp, &spp, (int32_t)V, &err);
	for (int32_t k = 0; ok && k < o->n; k++) {
		json_t *layer = json_array();
		ok = layer != NULL;
		for (int32_t r0 = 0; ok && r0 < n_pos; r0 += LENS_ROWS) {
			const int32_t n = n_pos - r0 < LENS_ROWS ? n_pos - r0 : LENS_ROWS;
			for (int32_t i = 0; i < n; i++)
				memcpy(x + (size_t)i * E, rows + ((size_t)(r0 + i) * (size_t)o->n + (size_t)k) * E, E * sizeof *x);
			ok = !hearth_context_logit_lens(c, x, n, logits, &err);
			for (int32_t i = 0; ok && i < n; i++)
				ok = jsonb_add(layer, lens_top(sm, smp, logits + (size_t)i * V, o->lens_top));
		}
		ok = jsonb_add(out, jsonb_done(layer, ok));
	}
	hearth_sampler_free(smp);
	hearth_context_free(c);
	free(logits);
	free(x);
	return jsonb_done(out, ok);
}

/* The positions [*p0, *p1) a choice's hidden_states may show now: those
 * "tokens" asks for, among the kept ones that the events read so far vouch
 * for (every kept one once the request ended). */
static void hidden_range(const struct params *p, const struct gen *g, int32_t *p0, int32_t *p1)
{
	const struct hidden_opts *o = &p->hidden;
	/* while it runs, and when a stop string ended it (the scheduler may have
	 * computed a token more before it stopped: not shown, so that the answer
	 * does not depend on timing), the positions up to the last token's */
	const int32_t vouched = g->n_gen > 0 ? g->n_prompt + g->n_gen - 1 : 0;
	const int32_t all = g->finish ? hearth_request_n_hidden(g->req) : 0; /* read only after the final event */
	const int32_t kept = !g->finish ? vouched : g->stopped && vouched < all ? vouched : all;
	*p0 = o->tokens == HIDDEN_GENERATED ? g->n_prompt : 0;
	*p1 = o->tokens == HIDDEN_PROMPT && g->n_prompt < kept ? g->n_prompt : kept;
	if (*p0 > *p1)
		*p0 = *p1;
	if (p->stream && g->hid_sent > *p0) /* what earlier chunks did not carry */
		*p0 = g->hid_sent < *p1 ? g->hid_sent : *p1;
}

bool hidden_pending(const struct params *p, const struct gen *g)
{
	int32_t p0, p1;
	if (!p->hidden.n || !g->req)
		return false;
	hidden_range(p, g, &p0, &p1);
	return p1 > p0;
}

/* The rows [p0, p1) of every layer as little-endian f32 or f16, base64. */
static json_t *hidden_data(const struct hidden_opts *o, const float *rows, int32_t n_pos, int32_t E)
{
	const size_t w = o->f16 ? 2 : 4, n_val = (size_t)o->n * (size_t)n_pos * (size_t)E;
	unsigned char *buf = malloc(n_val * w + 1), *q = buf;
	if (!buf)
		return NULL;
	for (int32_t k = 0; k < o->n; k++)
		for (int32_t pos = 0; pos < n_pos; pos++) {
			const float *x = rows + ((size_t)pos * (size_t)o->n + (size_t)k) * (size_t)E;
			for (int32_t j = 0; j < E; j++) {
				uint32_t u;
				if (o->f16) {
					u = half_of(x[j]);
				} else {
					memcpy(&u, &x[j], 4);
				}
				for (size_t c = 0; c < w; c++)
					*q++ = (unsigned char)(u >> (8 * c));
			}
		}
	json_t *data = jsonb_base64(buf, n_val * w);
	free(buf);
	return data;
}

json_t *hidden_shape(struct served_model *sm, const struct params *p, struct gen *g)
{
	const struct hidden_opts *o = &p->hidden;
	const int32_t E = hearth_model_n_embd(sm->model);
	int32_t p0, p1;
	if (!g->req)
		return NULL;
	hidden_range(p, g, &p0, &p1);
	float *rows = malloc((size_t)o->n * (size_t)(p1 - p0) * (size_t)E * sizeof *rows + 1);
	json_t *layers = json_array(), *data = NULL;
	bool ok = rows && layers && hearth_request_hidden_read(g->req, p0, p1 - p0, rows) == p1 - p0;
	for (int32_t k = 0; ok && k < o->n; k++)
		ok = jsonb_add(layers, json_integer(o->layers[k]));
	if (ok)
		ok = (data = hidden_data(o, rows, p1 - p0, E)) != NULL;
	if (!ok) {
		free(rows);
		json_decref(layers);
		return NULL;
	}
	static const char *const names[] = { [HIDDEN_ALL] = "all", [HIDDEN_PROMPT] = "prompt", [HIDDEN_GENERATED] = "generated" };
	json_t *h = json_pack("{s:o, s:s, s:s, s:i, s:[i, i, i], s:o}", "layers", layers, "dtype", o->f16 ? "f16" : "f32",
			      "tokens", names[o->tokens], "first_position", p0, "shape", o->n, p1 - p0, E, "data", data);
	if (h && o->lens_top > 0)
		h = jsonb_done(h, jsonb_set(h, "logit_lens", lens_shape(sm, o, rows, p1 - p0)));
	free(rows);
	if (h)
		g->hid_sent = p1;
	return h;
}
