/*
 * api-rerank.c - POST /v1/rerank (and /rerank): documents ordered by how
 * close each is to a query, in the shape llama.cpp and vLLM serve.
 *
 *   {"model", "query", "documents": [string | ids, ...], "top_n",
 *    "return_documents", "pooling", "layer"}
 *   -> {"model", "object": "rerank", "results": [{"index", "relevance_score",
 *       "document": {"text"}}], "usage": {"prompt_tokens", "total_tokens"}}
 *
 * hearth has no rerank head (a cross-encoder's classifier): the score is the
 * cosine similarity of the query's and the document's embeddings, computed
 * exactly as /v1/embeddings computes them with the same "pooling" and
 * "layer" (all of them one batch of scheduler requests), in [-1, 1].
 * Results are sorted by score, highest first (ties: the lower index first),
 * the first top_n of them (default: all). "document" is there when
 * return_documents (default true) and the document was a string.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "usage.h"

struct rerank_hit {
	int32_t index;
	double score;
};

static int rerank_cmp(const void *a, const void *b)
{
	const struct rerank_hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The query followed by the documents as one list of inputs; false after an error reply. */
static bool rerank_inputs(struct served_model *sm, json_t *body, struct embed_inputs *in, struct reply *rp)
{
	json_t *q = json_object_get(body, "query"), *docs = json_object_get(body, "documents");
	if (!q || !json_is_string(q)) {
		reply_error(rp, 400, "invalid_request_error", "query", "invalid_value", "'query' must be a string");
		return false;
	}
	if (!json_is_array(docs) || json_array_size(docs) == 0) {
		reply_error(rp, 400, "invalid_request_error", "documents", "invalid_value",
			    "'documents' must be a non-empty array of strings");
		return false;
	}
	if (json_array_size(docs) > EMBED_MAX_INPUTS - 1) { /* the query is one of the inputs */
		reply_error(rp, 400, "invalid_request_error", "documents", "invalid_value",
			    "'documents' has %zu documents; at most %d", json_array_size(docs), EMBED_MAX_INPUTS - 1);
		return false;
	}
	json_t *all = json_array();
	bool ok = all && json_array_append(all, q) == 0 && json_array_extend(all, docs) == 0;
	if (!ok) {
		json_decref(all);
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	/* a single document that is an array of ids would read as one input of ids: keep lists of lists */
	ok = embed_inputs_parse(sm, all, "documents", in, rp);
	json_decref(all);
	return ok;
}

/* "top_n" (default: all n) and "return_documents"; false after an error reply. */
static bool rerank_opts(json_t *body, int32_t n, int32_t *top_n, bool *ret_docs, struct reply *rp)
{
	json_t *t = json_object_get(body, "top_n");
	*top_n = n;
	*ret_docs = true;
	if (t && !json_is_null(t)) {
		if (!json_is_integer(t) || json_integer_value(t) < 1) {
			reply_error(rp, 400, "invalid_request_error", "top_n", "invalid_value",
				    "'top_n' must be a positive integer");
			return false;
		}
		if (json_integer_value(t) < n)
			*top_n = (int32_t)json_integer_value(t);
	}
	return params_bool(body, "return_documents", ret_docs, rp);
}

static json_t *rerank_results(json_t *docs, const struct rerank_hit *hit, int32_t top_n, bool ret_docs)
{
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t k = 0; ok && k < top_n; k++) {
		json_t *r = json_pack("{s:i, s:f}", "index", hit[k].index, "relevance_score", hit[k].score);
		json_t *d = json_array_get(docs, (size_t)hit[k].index);
		if (r && ret_docs && json_is_string(d))
			r = jsonb_done(r, jsonb_set(r, "document", json_pack("{s:O}", "text", d)));
		ok = jsonb_add(arr, r);
	}
	return jsonb_done(arr, ok);
}

void api_rerank(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	struct embed_inputs in = { 0 };
	struct embed_opts o = { .none_ok = false };
	struct rerank_hit *hit = NULL;
	float *vec = NULL, **at = NULL;
	int32_t top_n;
	bool ret_docs;
	struct served_model *sm = api_model_acquire(srv, body, rp, NULL);
	struct usage_mark mark;
	if (!sm)
		return;
	usage_mark_now(&mark, sm);
	const size_t E = (size_t)hearth_model_n_embd(sm->model);
	if (!embed_opts_parse(sm, body, &o, rp) || !rerank_inputs(sm, body, &in, rp) ||
	    !rerank_opts(body, in.n - 1, &top_n, &ret_docs, rp))
		goto out;
	if (!(vec = malloc((size_t)in.n * E * sizeof *vec)) || !(hit = malloc((size_t)in.n * sizeof *hit)) ||
	    !(at = malloc((size_t)in.n * sizeof *at))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		goto out;
	}
	for (int32_t i = 0; i < in.n; i++)
		at[i] = vec + (size_t)i * E;
	if (!embed_run(sm, call, &in, &o, at, rp))
		goto out;
	int64_t n_tok = 0;
	for (int32_t i = 0; i < in.n; i++) {
		embed_normalize(vec + (size_t)i * E, (int32_t)E);
		n_tok += in.n_ids[i];
	}
	for (int32_t d = 0; d < in.n - 1; d++) {
		const float *a = vec, *b = vec + (size_t)(d + 1) * E;
		double dot = 0;
		for (size_t j = 0; j < E; j++)
			dot += (double)a[j] * b[j];
		hit[d] = (struct rerank_hit){ d, dot };
	}
	qsort(hit, (size_t)(in.n - 1), sizeof *hit, rerank_cmp);
	json_t *res = rerank_results(json_object_get(body, "documents"), hit, top_n, ret_docs);
	reply_json(rp, 200, res ? json_pack("{s:s, s:s, s:o, s:{s:I, s:I}}", "model", sm->name, "object", "rerank",
					    "results", res, "usage", "prompt_tokens", (json_int_t)n_tok, "total_tokens",
					    (json_int_t)n_tok)
				: NULL);
	if (rp->status == 200)
		usage_note_simple(srv, call, sm, "rerank", n_tok, 0, &mark);
out:
	free(at);
	free(hit);
	free(vec);
	embed_inputs_free(&in);
	models_release(&srv->models, sm, -1);
}
