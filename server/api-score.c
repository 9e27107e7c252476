/*
 * api-score.c - POST /v1/score: the log-probability of a given completion
 * after a prompt, token by token, without sampling.
 *
 *   {"model", "prompt", "completion", "uncertainty", "steering"}  prompt and completion:
 *   strings or arrays of token ids
 *   -> {"object": "score", "model", "tokens": [{"id", "token", "logprob"
 *      (, "entropy", "rank")}], "total_logprob", "usage"}
 *
 * The prompt is tokenized as /v1/completions tokenizes it (BOS when the
 * vocabulary adds one, special-token text parsed). When both are strings,
 * their concatenation is tokenized as one text and the completion's tokens
 * are those after the longest prefix it shares with the prompt's own tokens
 * (a word cut between the two is scored whole, as the model would read it;
 * a SentencePiece vocabulary would otherwise begin the completion with a
 * space of its own); a completion string after prompt ids is tokenized
 * alone without BOS. The two go to the scheduler as one prompt whose tokens
 * from the completion's first on are scored (score_from), generating
 * nothing (score_only): one request like any other, bounded by the same
 * context and body limits. docs/API.md has the details and an example.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "usage.h"

static bool score_ids_of(struct served_model *sm, json_t *v, const char *key, bool bos, int32_t max, int32_t **ids,
			 int32_t *n, struct reply *rp);

bool score_ids(struct served_model *sm, json_t *body, const char *key, bool bos, int32_t max, int32_t **ids, int32_t *n,
	       struct reply *rp)
{
	json_t *v = json_object_get(body, key);
	return score_ids_of(sm, v, key, bos, max, ids, n, rp);
}

/* The completion when prompt and completion are both strings: the joined
 * text's tokens after the prefix shared with the prompt's tokens p_ids
 * (*n_p may shrink to that prefix); false after an error reply. */
static bool score_joined(struct served_model *sm, json_t *body, int32_t max, int32_t **p_ids, int32_t *n_p,
			 int32_t **c_ids, int32_t *n_c, struct reply *rp)
{
	json_t *p = json_object_get(body, "prompt"), *c = json_object_get(body, "completion");
	const size_t lp = json_string_length(p), lc = json_string_length(c);
	int32_t *j_ids = NULL, n_j = 0, k = 0;
	char *text;
	if (lc == 0) {
		reply_error(rp, 400, "invalid_request_error", "completion", "invalid_value", "The completion is empty");
		return false;
	}
	if (!(text = malloc(lp + lc + 1))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	memcpy(text, json_string_value(p), lp);
	memcpy(text + lp, json_string_value(c), lc + 1);
	json_t *joined = json_stringn(text, lp + lc);
	free(text);
	bool ok = joined && score_ids_of(sm, joined, "completion", true, max, &j_ids, &n_j, rp);
	json_decref(joined);
	if (!ok) {
		if (!joined)
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	while (k < *n_p && k < n_j && (*p_ids)[k] == j_ids[k])
		k++;
	if (k == 0 && *n_p > 0 && n_j > 0) /* nothing shared (no BOS, the first word runs on): one token of prompt */
		k = 1;
	*n_p = k;
	*n_c = n_j - k;
	if (!(*c_ids = malloc(((size_t)*n_c + 1) * sizeof **c_ids))) {
		free(j_ids);
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	memcpy(*c_ids, j_ids + k, (size_t)*n_c * sizeof **c_ids);
	memcpy(*p_ids, j_ids, (size_t)k * sizeof **p_ids); /* the joined text's own tokens for the prompt part */
	free(j_ids);
	return true;
}

static bool score_ids_of(struct served_model *sm, json_t *v, const char *key, bool bos, int32_t max, int32_t **ids,
			 int32_t *n, struct reply *rp)
{
	struct hearth_err err = { 0 };
	json_t *e;
	const int32_t n_vocab = hearth_model_n_vocab(sm->model);
	size_t i;
	*ids = NULL;
	*n = 0;
	if (!v || json_is_null(v)) {
		reply_error(rp, 400, "invalid_request_error", key, "missing_required_parameter",
			    "Missing required parameter: '%s'", key);
		return false;
	}
	if (json_is_string(v)) {
		int rc = hearth_tokenize_max(sm->model, json_string_value(v), json_string_length(v), bos, true, max, ids, n,
					     &err);
		if (rc == HEARTH_ETOOBIG)
			reply_error(rp, 400, "invalid_request_error", key, "context_length_exceeded",
				    "This model's maximum context length is %d tokens; the %s is longer.", max + 1, key);
		else if (rc)
			reply_lib_error(rp, rc, key, &err);
		return rc == 0;
	}
	if (!json_is_array(v)) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_type",
			    "'%s' must be a string or an array of token ids", key);
		return false;
	}
	if (json_array_size(v) > (size_t)max) {
		reply_error(rp, 400, "invalid_request_error", key, "context_length_exceeded",
			    "This model's maximum context length is %d tokens; the %s has %zu.", max + 1, key,
			    json_array_size(v));
		return false;
	}
	if (!(*ids = malloc((json_array_size(v) + 1) * sizeof **ids))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= n_vocab) {
			free(*ids);
			*ids = NULL;
			reply_error(rp, 400, "invalid_request_error", key, "invalid_value",
				    "%s[%zu] must be an integer token id from 0 to %d", key, i, n_vocab - 1);
			return false;
		}
		(*ids)[(*n)++] = (int32_t)json_integer_value(e);
	}
	return true;
}

/* The scored tokens as the reply's "tokens"; *total gets their sum. */
static json_t *score_tokens(struct served_model *sm, const struct hearth_token_event *ev, int32_t n, bool unc,
			    double *total)
{
	json_t *arr = json_array();
	bool ok = arr != NULL;
	*total = 0;
	for (int32_t i = 0; ok && i < n; i++) {
		char buf[256];
		int k = hearth_token_to_piece(sm->model, ev[i].id, true, buf, sizeof buf);
		k = k < 0 ? 0 : k > (int)sizeof buf ? (int)sizeof buf : k;
		json_t *t = json_pack("{s:i, s:o, s:f}", "id", ev[i].id, "token", jsonb_str(buf, (size_t)k), "logprob",
				      (double)ev[i].logprob);
		if (t && unc)
			t = jsonb_done(t, jsonb_set(t, "entropy", json_real(ev[i].entropy)) &&
						  jsonb_set(t, "rank", json_integer(ev[i].rank)));
		ok = jsonb_add(arr, t);
		*total += ev[i].logprob;
	}
	return jsonb_done(arr, ok);
}

/* Submits the scoring request and waits for its n_score events (ev); false
 * after an error reply. */
static bool score_run(struct served_model *sm, const struct call *call, const int32_t *ids, int32_t n,
		      int32_t n_prompt, bool unc, const struct hearth_steering *steer, struct hearth_token_event *ev,
		      struct reply *rp)
{
	struct hearth_request_params rq = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_request *req;
	char *salt = NULL;
	int32_t got = 0;
	int finish = 0;
	rq.prompt = ids;
	rq.n_prompt = n;
	rq.score_from = n_prompt;
	rq.score_only = true;
	rq.uncertainty = unc;
	rq.steering = *steer;
	rq.sampling.temp = 0;
	rq.timeout_s = sm->srv->request_timeout_s;
	if (call->tenant && (salt = malloc(strlen(call->tenant) + 2))) { /* the tenant's cache, as params.c names it */
		memcpy(salt, call->tenant, strlen(call->tenant));
		memcpy(salt + strlen(call->tenant), "\n", 2);
		rq.cache_salt = salt;
		rq.cache_salt_size = strlen(salt);
	} else if (call->tenant) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	int rc = hearth_sched_submit(sm->sched, &rq, &req, &err);
	free(salt);
	if (rc == HEARTH_EBUSY) {
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "queue_full",
			    "The server is busy: too many requests are waiting. Retry shortly.");
		rp->retry_after = 1;
		return false;
	}
	if (rc) {
		reply_lib_error(rp, rc, "completion", &err);
		return false;
	}
	for (;;) {
		struct hearth_token_event e;
		rc = hearth_request_next(req, &e, 250);
		if (rc == HEARTH_ETIMEDOUT) {
			if (client_gone(call->fd))
				hearth_request_cancel(req);
			continue;
		}
		if (rc)
			break;
		if (e.prompt && got < n - n_prompt)
			ev[got++] = e;
		if (e.finish) {
			finish = e.finish;
			break;
		}
	}
	hearth_request_free(req);
	if (finish == HEARTH_FINISH_LENGTH && got == n - n_prompt)
		return true;
	if (finish == HEARTH_FINISH_TIMEOUT)
		reply_error(rp, 504, "timeout", NULL, "timeout", "The request took longer than the server allows");
	else
		reply_error(rp, 500, "server_error", NULL, NULL, "the model could not finish scoring the request");
	return false;
}

bool score_read(struct served_model *sm, json_t *body, int32_t max, int32_t **p_ids, int32_t *n_p, int32_t **c_ids,
		int32_t *n_c, struct reply *rp)
{
	const bool strings = json_is_string(json_object_get(body, "prompt")) &&
			     json_is_string(json_object_get(body, "completion"));
	if (!score_ids(sm, body, "prompt", true, max, p_ids, n_p, rp) ||
	    !(strings ? score_joined(sm, body, max, p_ids, n_p, c_ids, n_c, rp)
		      : score_ids(sm, body, "completion", false, max, c_ids, n_c, rp)))
		return false;
	if (*n_p < 1) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value",
			    "The prompt has no tokens: the completion's first token needs one before it");
		return false;
	}
	if (*n_c < 1) {
		reply_error(rp, 400, "invalid_request_error", "completion", "invalid_value", "The completion is empty");
		return false;
	}
	return true;
}

void api_score(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	int32_t *p_ids = NULL, *c_ids = NULL, *ids = NULL, n_p = 0, n_c = 0;
	struct hearth_token_event *ev = NULL;
	bool unc = false;
	struct hearth_steering steer;
	struct served_model *sm = api_model_acquire(srv, body, rp, NULL);
	struct usage_mark mark;
	if (!sm)
		return;
	usage_mark_now(&mark, sm);
	/* a request holds at most n_ctx_seq - 1 prompt tokens (hearth_sched_submit) */
	const int32_t max = sm->sp.n_ctx_seq - 1;
	if (!params_bool(body, "uncertainty", &unc, rp) || !steer_parse(sm, body, &steer, rp) ||
	    !score_read(sm, body, max, &p_ids, &n_p, &c_ids, &n_c, rp))
		goto out;
	if (n_p + n_c > max) {
		reply_error(rp, 400, "invalid_request_error", "completion", "context_length_exceeded",
			    "This model's maximum context length is %d tokens. However, you requested %d tokens "
			    "(%d in the prompt, %d in the completion).", max + 1, n_p + n_c, n_p, n_c);
		goto out;
	}
	if (!(ids = malloc((size_t)(n_p + n_c) * sizeof *ids)) || !(ev = malloc((size_t)n_c * sizeof *ev))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		goto out;
	}
	memcpy(ids, p_ids, (size_t)n_p * sizeof *ids);
	memcpy(ids + n_p, c_ids, (size_t)n_c * sizeof *ids);
	if (!score_run(sm, call, ids, n_p + n_c, n_p, unc, &steer, ev, rp))
		goto out;
	double total;
	json_t *toks = score_tokens(sm, ev, n_c, unc, &total);
	reply_json(rp, 200, toks ? json_pack("{s:s, s:s, s:o, s:f, s:{s:i, s:i, s:i}}", "object", "score", "model",
					     sm->name, "tokens", toks, "total_logprob", total, "usage", "prompt_tokens",
					     n_p, "completion_tokens", n_c, "total_tokens", n_p + n_c)
				 : NULL);
	if (rp->status == 200)
		usage_note_simple(srv, call, sm, "score", n_p, n_c, &mark);
out:
	free(ev);
	free(ids);
	free(p_ids);
	free(c_ids);
	models_release(&srv->models, sm, -1);
}
