/*
 * api-embed.c - POST /v1/embeddings in OpenAI's shape, and the pooled
 * vectors /v1/rerank compares (embed_run).
 *
 *   {"model", "input", "encoding_format", "dimensions", "pooling", "layer", "normalize"}
 *   input: a string, an array of strings, an array of token ids, or an array
 *   of arrays of token ids (at most EMBED_MAX_INPUTS inputs)
 *   -> {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
 *       "model", "usage": {"prompt_tokens", "total_tokens"}}
 *
 * Each input is one scheduler request that computes its tokens, generates
 * nothing (score_only) and keeps the hidden states of one layer
 * (hidden_layers): batched with whatever else runs, as any request is, at
 * most EMBED_WINDOW in flight per call. Per token, the vector is the final
 * norm of the last layer's state (what llama.cpp's embeddings are) or, when
 * "layer" is given, that layer's residual stream as it is (negative: from
 * the end). The tokens' vectors are pooled ("pooling": mean, cls = the first
 * token's, last = the last token's; default the GGUF's {arch}.pooling_type,
 * mean when it gives none; "none": every token's vector, an array of
 * them with "shape": [tokens, dims] — the hidden states themselves), cut to
 * "dimensions" and L2-normalized as OpenAI's are (unless "normalize":
 * false; each token's vector with "none"). base64 is the float32 vector's
 * little-endian bytes, as OpenAI's clients decode it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "usage.h"

#define EMBED_WINDOW 32       /* requests in flight per call ... */
#define EMBED_MAX_FLOATS ((size_t)64 << 20) /* ... and their hidden states at most 256 MiB (one request
					     * alone may take more: it fits the context); so are the
					     * per-token vectors of "none" that one call returns */

/* The token ids of one input (a string or an array of ids); false after an error reply. */
static bool embed_ids(struct served_model *sm, json_t *v, const char *what, int32_t max, int32_t **ids, int32_t *n,
		      struct reply *rp)
{
	struct hearth_err err = { 0 };
	const int32_t n_vocab = hearth_model_n_vocab(sm->model);
	json_t *e;
	size_t i;
	*ids = NULL;
	*n = 0;
	if (json_is_string(v)) {
		int rc = hearth_tokenize_max(sm->model, json_string_value(v), json_string_length(v), true, true, max, ids,
					     n, &err);
		if (rc == HEARTH_ETOOBIG)
			reply_error(rp, 400, "invalid_request_error", "input", "context_length_exceeded",
				    "This model's maximum context length is %d tokens; %s is longer.", max + 1, what);
		else if (rc)
			reply_lib_error(rp, rc, "input", &err);
		else if (*n == 0)
			reply_error(rp, 400, "invalid_request_error", "input", "invalid_value", "%s has no tokens", what);
		return rc == 0 && *n > 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0) {
		reply_error(rp, 400, "invalid_request_error", "input", "invalid_value",
			    "%s must be a non-empty string or array of token ids", what);
		return false;
	}
	if (json_array_size(v) > (size_t)max) {
		reply_error(rp, 400, "invalid_request_error", "input", "context_length_exceeded",
			    "This model's maximum context length is %d tokens; %s has %zu.", max + 1, what,
			    json_array_size(v));
		return false;
	}
	if (!(*ids = malloc(json_array_size(v) * sizeof **ids))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= n_vocab) {
			free(*ids);
			*ids = NULL;
			reply_error(rp, 400, "invalid_request_error", "input", "invalid_value",
				    "%s[%zu] must be an integer token id from 0 to %d", what, i, n_vocab - 1);
			return false;
		}
		(*ids)[(*n)++] = (int32_t)json_integer_value(e);
	}
	return true;
}

void embed_inputs_free(struct embed_inputs *in)
{
	for (int32_t i = 0; in->ids && i < in->n; i++)
		free(in->ids[i]);
	free(in->ids);
	free(in->n_ids);
	*in = (struct embed_inputs){ 0 };
}

bool embed_inputs_parse(struct served_model *sm, json_t *v, const char *key, struct embed_inputs *in,
			struct reply *rp)
{
	const int32_t max = sm->sp.n_ctx_seq - 1; /* a request holds at most n_ctx_seq - 1 prompt tokens */
	*in = (struct embed_inputs){ 0 };
	if (!v || json_is_null(v)) {
		reply_error(rp, 400, "invalid_request_error", key, "missing_required_parameter",
			    "Missing required parameter: '%s'", key);
		return false;
	}
	/* one input: a string or an array of ids; several: an array of those */
	const bool many = json_is_array(v) && json_array_size(v) > 0 && !json_is_integer(json_array_get(v, 0));
	const size_t n = many ? json_array_size(v) : 1;
	if (n > EMBED_MAX_INPUTS) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_value", "'%s' has %zu inputs; at most %d",
			    key, n, EMBED_MAX_INPUTS);
		return false;
	}
	in->ids = calloc(n, sizeof *in->ids);
	in->n_ids = calloc(n, sizeof *in->n_ids);
	if (!in->ids || !in->n_ids) {
		embed_inputs_free(in);
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	in->n = (int32_t)n;
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof what, many ? "%s[%zu]" : "%s", key, i);
		if (!embed_ids(sm, many ? json_array_get(v, i) : v, what, max, &in->ids[i], &in->n_ids[i], rp)) {
			embed_inputs_free(in);
			return false;
		}
	}
	return true;
}

bool embed_opts_parse(struct served_model *sm, json_t *body, struct embed_opts *o, struct reply *rp)
{
	const int32_t L = hearth_model_n_layer(sm->model);
	json_t *pool = json_object_get(body, "pooling"), *layer = json_object_get(body, "layer");
	const int gguf = hearth_model_pooling(sm->model);
	const bool none_ok = o->none_ok;
	*o = (struct embed_opts){ .none_ok = none_ok };
	o->pooling = gguf == HEARTH_POOLING_CLS || gguf == HEARTH_POOLING_LAST ? gguf : HEARTH_POOLING_MEAN;
	o->layer = -1;
	o->final_norm = true;
	o->normalize = true;
	if (pool && !json_is_null(pool)) {
		const char *s = json_string_value(pool);
		if (s && !strcmp(s, "mean"))
			o->pooling = HEARTH_POOLING_MEAN;
		else if (s && !strcmp(s, "cls"))
			o->pooling = HEARTH_POOLING_CLS;
		else if (s && !strcmp(s, "last"))
			o->pooling = HEARTH_POOLING_LAST;
		else if (s && !strcmp(s, "none") && o->none_ok)
			o->pooling = HEARTH_POOLING_NONE;
		else {
			reply_error(rp, 400, "invalid_request_error", "pooling", "invalid_value",
				    o->none_ok ? "'pooling' must be \"mean\", \"cls\", \"last\" or \"none\""
					       : "'pooling' must be \"mean\", \"cls\" or \"last\"");
			return false;
		}
	}
	if (layer && !json_is_null(layer)) {
		if (!json_is_integer(layer) || json_integer_value(layer) < -L || json_integer_value(layer) >= L) {
			reply_error(rp, 400, "invalid_request_error", "layer", "invalid_value",
				    "'layer' must be an integer from %d to %d (negative: from the end)", -L, L - 1);
			return false;
		}
		o->layer = (int32_t)json_integer_value(layer);
		o->final_norm = false;
	}
	return params_bool(body, "normalize", &o->normalize, rp);
}

/* Submits one input's request; HEARTH_* from the scheduler. */
static int embed_submit(struct served_model *sm, const char *salt, const int32_t *ids, int32_t n, const int32_t *layer,
			struct hearth_request **req, struct hearth_err *err)
{
	struct hearth_request_params rq = hearth_request_default_params();
	rq.prompt = ids;
	rq.n_prompt = n;
	rq.score_only = true; /* nothing generated: the request ends after its last prompt token */
	rq.sampling.temp = 0;
	rq.hidden_layers = layer;
	rq.n_hidden_layers = 1;
	rq.timeout_s = sm->srv->request_timeout_s;
	rq.cache_salt = salt;
	rq.cache_salt_size = salt ? strlen(salt) : 0;
	return hearth_sched_submit(sm->sched, &rq, req, err);
}

/* Waits for req's end; its finish reason. */
static int embed_wait(const struct call *call, struct hearth_request *req)
{
	for (;;) {
		struct hearth_token_event e;
		int rc = hearth_request_next(req, &e, 250);
		if (rc == HEARTH_ETIMEDOUT) {
			if (client_gone(call->fd))
				hearth_request_cancel(req);
			continue;
		}
		if (rc)
			return HEARTH_FINISH_ERROR;
		if (e.finish)
			return e.finish;
	}
}

/* The pooled vector of a finished request over n tokens into out (n_embd). */
static bool embed_pool(struct served_model *sm, const struct hearth_request *req, int32_t n, const struct embed_opts *o,
		       float *out, float *tmp)
{
	const int32_t E = hearth_model_n_embd(sm->model);
	if (hearth_request_n_hidden(req) != n)
		return false;
	if (o->pooling == HEARTH_POOLING_NONE) { /* every token's vector */
		for (int32_t pos = 0; pos < n; pos++) {
			const float *h = hearth_request_hidden(req, 0, pos);
			if (!h)
				return false;
			if (o->final_norm)
				hearth_model_final_norm(sm->model, h, out + (size_t)pos * (size_t)E);
			else
				memcpy(out + (size_t)pos * (size_t)E, h, (size_t)E * sizeof *h);
		}
		return true;
	}
	const int32_t p0 = o->pooling == HEARTH_POOLING_LAST ? n - 1 : 0;
	const int32_t p1 = o->pooling == HEARTH_POOLING_MEAN ? n : p0 + 1;
	for (int32_t j = 0; j < E; j++)
		out[j] = 0;
	for (int32_t pos = p0; pos < p1; pos++) {
		const float *h = hearth_request_hidden(req, 0, pos);
		if (!h)
			return false;
		if (o->final_norm) {
			hearth_model_final_norm(sm->model, h, tmp);
			h = tmp;
		}
		for (int32_t j = 0; j < E; j++)
			out[j] += h[j];
	}
	for (int32_t j = 0; j < E; j++)
		out[j] /= (float)(p1 - p0);
	return true;
}

/* The cache salt of the caller's tenant (as params.c names it), or NULL; false when out of memory. */
static bool embed_salt(const struct call *call, char **salt)
{
	*salt = NULL;
	if (!call->tenant)
		return true;
	const size_t len = strlen(call->tenant);
	if (!(*salt = malloc(len + 2)))
		return false;
	memcpy(*salt, call->tenant, len);
	memcpy(*salt + len, "\n", 2);
	return true;
}

/* Replies to a failed submit. */
static void embed_submit_error(int rc, const struct hearth_err *err, struct reply *rp)
{
	if (rc == HEARTH_EBUSY) {
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "queue_full",
			    "The server is busy: too many requests are waiting. Retry shortly.");
		rp->retry_after = 1;
	} else {
		reply_lib_error(rp, rc, "input", err);
	}
}

bool embed_run(struct served_model *sm, const struct call *call, const struct embed_inputs *in,
	       const struct embed_opts *o, float *const *out, struct reply *rp)
{
	const size_t E = (size_t)hearth_model_n_embd(sm->model);
	struct hearth_request *win[EMBED_WINDOW];
	struct hearth_err err = { 0 };
	float *tmp = malloc(E * sizeof *tmp);
	char *salt = NULL;
	bool ok = tmp && embed_salt(call, &salt);
	if (!ok)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	for (int32_t i0 = 0, n_win = 0; ok && i0 < in->n; i0 += n_win) {
		size_t floats = 0;
		for (n_win = 0; i0 + n_win < in->n && n_win < EMBED_WINDOW; n_win++) {
			floats += (size_t)in->n_ids[i0 + n_win] * E;
			if (n_win > 0 && floats > EMBED_MAX_FLOATS)
				break;
		}
		int32_t n_sub = 0;
		for (; n_sub < n_win; n_sub++) {
			int rc = embed_submit(sm, salt, in->ids[i0 + n_sub], in->n_ids[i0 + n_sub], &o->layer, &win[n_sub], &err);
			if (rc) {
				embed_submit_error(rc, &err, rp);
				ok = false;
				break;
			}
		}
		for (int32_t k = 0; k < n_sub; k++) {
			if (!ok) {
				hearth_request_free(win[k]);
				continue;
			}
			const int fin = embed_wait(call, win[k]);
			if (fin == HEARTH_FINISH_LENGTH &&
			    embed_pool(sm, win[k], in->n_ids[i0 + k], o, out[i0 + k], tmp)) {
				hearth_request_free(win[k]);
				continue;
			}
			if (fin == HEARTH_FINISH_TIMEOUT)
				reply_error(rp, 504, "timeout", NULL, "timeout", "The request took longer than the server allows");
			else
				reply_error(rp, 500, "server_error", NULL, NULL, "the model could not compute the embedding");
			hearth_request_free(win[k]);
			ok = false;
		}
	}
	free(salt);
	free(tmp);
	return ok;
}

void embed_normalize(float *v, int32_t n)
{
	double ss = 0;
	for (int32_t j = 0; j < n; j++)
		ss += (double)v[j] * v[j];
	if (ss > 0) {
		const float inv = (float)(1.0 / sqrt(ss));
		for (int32_t j = 0; j < n; j++)
			v[j] *= inv;
	}
}

/* One vector as the reply's "embedding": an array of numbers or base64 of float32 little-endian. */
static json_t *embed_json(const float *v, int32_t n, bool b64)
{
	if (b64) {
		unsigned char *bytes = malloc((size_t)n * 4 + 1);
		if (!bytes)
			return NULL;
		for (int32_t j = 0; j < n; j++) {
			uint32_t u;
			memcpy(&u, &v[j], 4);
			for (int k = 0; k < 4; k++)
				bytes[4 * j + k] = (unsigned char)(u >> (8 * k));
		}
		json_t *s = jsonb_base64(bytes, (size_t)n * 4);
		free(bytes);
		return s;
	}
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t j = 0; ok && j < n; j++)
		ok = jsonb_add(arr, json_real(v[j]));
	return jsonb_done(arr, ok);
}

/* n rows of d floats at v: one vector, or (rows) an array of them; base64:
 * all rows' float32 bytes in one string (row after row). */
static json_t *embed_rows_json(const float *v, int32_t n, int32_t d, bool b64, bool rows)
{
	if (!rows || b64)
		return embed_json(v, n * d, b64);
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t r = 0; ok && r < n; r++)
		ok = jsonb_add(arr, embed_json(v + (size_t)r * (size_t)d, d, false));
	return jsonb_done(arr, ok);
}

/* "encoding_format" and "dimensions"; false after an error reply. */
static bool embed_format(json_t *body, int32_t E, bool *b64, int32_t *dims, struct reply *rp)
{
	json_t *f = json_object_get(body, "encoding_format"), *d = json_object_get(body, "dimensions");
	*b64 = false;
	*dims = E;
	if (f && !json_is_null(f)) {
		const char *s = json_string_value(f);
		if (!s || (strcmp(s, "float") && strcmp(s, "base64"))) {
			reply_error(rp, 400, "invalid_request_error", "encoding_format", "invalid_value",
				    "'encoding_format' must be \"float\" or \"base64\"");
			return false;
		}
		*b64 = !strcmp(s, "base64");
	}
	if (d && !json_is_null(d)) {
		if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > E) {
			reply_error(rp, 400, "invalid_request_error", "dimensions", "invalid_value",
				    "'dimensions' must be an integer from 1 to %d (the model's width)", E);
			return false;
		}
		*dims = (int32_t)json_integer_value(d);
	}
	return true;
}

void api_embeddings(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	struct embed_inputs in = { 0 };
	struct embed_opts o;
	float *vec = NULL, **at = NULL;
	bool b64;
	int32_t dims;
	struct served_model *sm = api_model_acquire(srv, body, rp, NULL);
	struct usage_mark mark;
	o.none_ok = true;
	if (!sm)
		return;
	usage_mark_now(&mark, sm);
	const int32_t E = hearth_model_n_embd(sm->model);
	if (!embed_format(body, E, &b64, &dims, rp) || !embed_opts_parse(sm, body, &o, rp) ||
	    !embed_inputs_parse(sm, json_object_get(body, "input"), "input", &in, rp))
		goto out;
	/* rows per input: 1, or every token's (inputs are bounded by the context and the body) */
	size_t rows = 0;
	for (int32_t i = 0; i < in.n; i++)
		rows += o.pooling == HEARTH_POOLING_NONE ? (size_t)in.n_ids[i] : 1;
	if (rows > EMBED_MAX_FLOATS / (size_t)E) {
		reply_error(rp, 400, "invalid_request_error", "input", "invalid_value",
			    "\"pooling\": \"none\" for %zu tokens is more than one reply holds (%zu); send fewer inputs",
			    rows, EMBED_MAX_FLOATS / (size_t)E);
		goto out;
	}
	if (!(vec = malloc(rows * (size_t)E * sizeof *vec)) || !(at = malloc((size_t)in.n * sizeof *at))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		goto out;
	}
	for (int32_t i = 0, r = 0; i < in.n; r += o.pooling == HEARTH_POOLING_NONE ? in.n_ids[i] : 1, i++)
		at[i] = vec + (size_t)r * (size_t)E;
	if (!embed_run(sm, call, &in, &o, at, rp))
		goto out;
	json_t *data = json_array();
	bool ok = data != NULL;
	int64_t n_tok = 0;
	for (int32_t i = 0; ok && i < in.n; i++) {
		const int32_t n_rows = o.pooling == HEARTH_POOLING_NONE ? in.n_ids[i] : 1;
		for (int32_t r = 0; r < n_rows; r++) {
			float *v = at[i] + (size_t)r * (size_t)E;
			if (r > 0) /* rows cut to dims, packed */
				memmove(at[i] + (size_t)r * (size_t)dims, v, (size_t)dims * sizeof *v);
			if (o.normalize)
				embed_normalize(at[i] + (size_t)r * (size_t)dims, dims); /* the cut vector, renormalized */
		}
		n_tok += in.n_ids[i];
		json_t *e = embed_rows_json(at[i], n_rows, dims, b64, o.pooling == HEARTH_POOLING_NONE);
		json_t *d = e ? json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", i, "embedding", e) : NULL;
		if (d && o.pooling == HEARTH_POOLING_NONE)
			d = jsonb_done(d, jsonb_set(d, "shape", json_pack("[i, i]", n_rows, dims)));
		ok = jsonb_add(data, d);
	}
	data = jsonb_done(data, ok);
	reply_json(rp, 200, data ? json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
					     sm->name, "usage", "prompt_tokens", (json_int_t)n_tok, "total_tokens",
					     (json_int_t)n_tok)
				 : NULL);
	if (rp->status == 200)
		usage_note_simple(srv, call, sm, "embeddings", n_tok, 0, &mark);
out:
	free(at);
	free(vec);
	embed_inputs_free(&in);
	models_release(&srv->models, sm, -1);
}
