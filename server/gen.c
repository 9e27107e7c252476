/*
 * gen.c - one generation: its request submitted to the scheduler, and its
 * token events turned into UTF-8 text (decoded safely), logprobs and a finish
 * reason. Stop strings are cut out, and held back while they might still be
 * forming, so they never reach a stream.
 */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "openai.h"

/* Bytes at the end of text that could still grow into a stop string. */
static size_t stop_holdback(const struct params *p, const char *text, size_t len)
{
	size_t hold = 0;
	for (int i = 0; i < p->n_stops; i++) {
		const size_t sl = strlen(p->stops[i]);
		for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
			if (memcmp(text + len - k, p->stops[i], k) == 0) {
				hold = k;
				break;
			}
	}
	return hold;
}

/* Applies one event to g. */
/* Keeps the logprobs of ev; false when out of memory. */
static bool gen_keep_logprob(struct gen *g, const struct hearth_token_event *ev, size_t text_offset)
{
	if (g->n_lps >= 1u << 20)
		return true; /* more than a context holds: not kept */
	if (g->n_lps == g->cap_lps) {
		size_t c = g->cap_lps ? 2 * g->cap_lps : 32;
		struct tok_lp *l = realloc(g->lps, c * sizeof *l);
		if (!l)
			return false;
		g->lps = l;
		g->cap_lps = c;
	}
	struct tok_lp *l = &g->lps[g->n_lps++];
	l->id = ev->id;
	l->lp = ev->logprob;
	l->n_top = ev->n_top;
	memcpy(l->top_ids, ev->top_ids, sizeof l->top_ids);
	memcpy(l->top_lp, ev->top_logprobs, sizeof l->top_lp);
	l->text_offset = text_offset; /* echoed prompt text included */
	l->entropy = ev->entropy;
	l->rank = ev->rank;
	l->no_lp = false;
	return true;
}

/* Where the first stop string in g's text starts, looking only where one
 * could end in the bytes from `before` on; SIZE_MAX when none. */
static size_t gen_find_stop(const struct params *p, const struct gen *g, size_t before)
{
	size_t longest = 0, cut = SIZE_MAX;
	for (int i = 0; i < p->n_stops; i++)
		longest = strlen(p->stops[i]) > longest ? strlen(p->stops[i]) : longest;
	size_t from = before > longest - 1 ? before - (longest - 1) : 0;
	for (int i = 0; i < p->n_stops; i++) {
		const size_t sl = strlen(p->stops[i]);
		for (size_t at = from; at + sl <= g->len && at < cut; at++)
			if (!memcmp(g->text + at, p->stops[i], sl))
				cut = at;
	}
	return cut;
}

/* Ends g early: it could not keep what the model produced. */
void gen_fail(struct gen *g)
{
	g->failed = true;
	hearth_request_cancel(g->req);
}

/* Keeps a scored prompt token (echo with logprobs) at its offset in the
 * echoed text; false when out of memory. */
static bool gen_echo_keep(struct gen *g, const struct hearth_token_event *ev)
{
	size_t k = 0;
	(void)hearth_detok_push(g->echo_dt, ev->id, &k);
	const bool ok = gen_keep_logprob(g, ev, g->echo_off > g->echo_lead ? g->echo_off - g->echo_lead : 0);
	g->echo_off += k;
	return ok;
}

/* Applies one event to g. */
static void gen_event(struct served_model *sm, const struct params *p, struct gen *g, const struct hearth_token_event *ev)
{
	if (ev->prompt) {
		if (!g->stopped && !g->failed && g->echo_dt && !gen_echo_keep(g, ev))
			gen_fail(g);
	} else if (ev->id >= 0 && !g->stopped && !g->failed) {
		size_t k;
		const char *piece = hearth_detok_push(g->dt, ev->id, &k);
		const size_t before = g->len;
		if (g->t_first == 0)
			g->t_first = ev->t;
		else
			metrics_inter_token(sm->metrics, ev->t - g->t_last);
		g->t_last = ev->t;
		g->n_gen++;
		if (((p->logprobs || p->uncertainty) && !gen_keep_logprob(g, ev, before)) || buf_append(&g->text, &g->len, &g->cap, piece, k)) {
			gen_fail(g);
		} else if (p->n_stops) {
			size_t cut = gen_find_stop(p, g, before);
			if (cut != SIZE_MAX) {
				g->len = cut;
				g->text[cut] = 0;
				g->stopped = true;
				hearth_request_cancel(g->req);
			}
		}
	}
	if (ev->finish) {
		if (!g->stopped && !g->failed) {
			size_t k;
			const char *rest = hearth_detok_flush(g->dt, &k);
			if (buf_append(&g->text, &g->len, &g->cap, rest, k))
				g->failed = true;
		}
		g->finish = g->failed ? HEARTH_FINISH_ERROR : g->stopped ? HEARTH_FINISH_STOP : ev->finish;
	}
}

/* Bytes of g's text safe to send now. */
size_t gen_sendable(const struct params *p, const struct gen *g)
{
	if (g->finish)
		return g->len;
	size_t hold = stop_holdback(p, g->text ? g->text : "", g->len);
	return g->len - hold;
}

void gen_free(struct served_model *sm, struct gen *g)
{
	if (g->req && !g->finish) /* the client left before the end */
		metrics_request_done(sm->metrics, "abort", g->n_prompt, g->n_gen, 0, -1, hearth_now() - g->t_submit);
	hearth_request_free(g->req);
	hearth_detok_free(g->dt);
	hearth_detok_free(g->echo_dt);
	free(g->text);
	free(g->lps);
	free(g->prompt_text);
	memset(g, 0, sizeof *g);
}

/* How many bytes the prompt's detokenized text drops at its start (a
 * SentencePiece vocabulary's leading space) against its tokens' pieces: the
 * first few tokens' pieces against their text (0 when unknown). */
static size_t echo_lead(struct served_model *sm, const int32_t *ids, int32_t n)
{
	struct hearth_err err = { 0 };
	struct hearth_detok *d = NULL;
	size_t lead = 0, pieces = 0, k, len = 0;
	char *text = NULL;
	if (hearth_detok_new(&d, sm->model, false, &err))
		return 0;
	for (int32_t j = 1; j <= n && j <= 8; j++) { /* until the text is not empty */
		(void)hearth_detok_push(d, ids[j - 1], &k);
		pieces += k;
		if (hearth_detokenize(sm->model, ids, j, false, &text, &len, &err))
			break;
		free(text);
		if (len > 0) {
			lead = pieces > len ? pieces - len : 0;
			break;
		}
	}
	hearth_detok_free(d);
	return lead;
}

/* Submits prompt ids; false after an error reply. */
bool gen_start(struct served_model *sm, const struct params *p, struct gen *g, const int32_t *ids, int32_t n,
		      int choice, const char *what, struct reply *rp)
{
	struct hearth_request_params rq = hearth_request_default_params();
	struct hearth_err err = { 0 };
	const int32_t max_len = sm->sp.n_ctx_seq;

	if (n < 1) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value", "The prompt is empty");
		return false;
	}
	if (n >= max_len || (p->max_tokens > 0 && (int64_t)n + p->max_tokens > max_len)) {
		reply_error(rp, 400, "invalid_request_error", what, "context_length_exceeded",
			    "This model's maximum context length is %d tokens. However, you requested %lld tokens "
			    "(%d in the %s, %d in the completion). Please reduce the length of the %s or completion.",
			    max_len, (long long)n + (p->max_tokens > 0 ? p->max_tokens : 0), n, what,
			    p->max_tokens > 0 ? p->max_tokens : 0, what);
		return false;
	}
	rq.prompt = ids;
	rq.n_prompt = n;
	rq.max_tokens = p->max_tokens;
	rq.sampling = p->sp;
	rq.sampling.seed += (uint64_t)choice; /* n choices: n different draws */
	rq.bias_ids = p->bias_ids;
	rq.bias = p->bias;
	rq.n_bias = p->n_bias;
	rq.top_logprobs = p->logprobs ? p->top_logprobs : -1;
	rq.timeout_s = sm->srv->request_timeout_s;
	rq.ignore_eos = p->ignore_eos;
	rq.uncertainty = p->uncertainty;
	rq.hidden_layers = p->hidden.layers;
	rq.n_hidden_layers = p->hidden.n;
	if (p->echo && p->logprobs) /* every prompt token after the first, scored */
		rq.score_from = 1;
	rq.score_only = p->max_tokens == 0; /* with echo only (params.c) */
	rq.cache_salt = p->salt;
	rq.cache_salt_size = p->salt_len;
	rq.steering = p->steering;
	rq.lora = p->n_lora ? &p->lora : NULL;
	rq.n_lora = p->n_lora;
	g->n_prompt = n;
	g->t_submit = hearth_now();
	if (hearth_detok_new(&g->dt, sm->model, false, &err) ||
	    (rq.score_from && hearth_detok_new(&g->echo_dt, sm->model, false, &err))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "%s", err.msg);
		return false;
	}
	if (rq.score_from) { /* the first prompt token: echoed, nothing before it to score it */
		g->echo_lead = echo_lead(sm, ids, n);
		struct hearth_token_event first = { .id = ids[0] };
		if (!gen_echo_keep(g, &first) || g->n_lps != 1) {
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			return false;
		}
		g->lps[0].no_lp = true;
	}
	if (p->cache_name && !cache_seed(sm, p->tenant, p->cache_name, &p->steering, ids, n, &rq.prefix_state, rp))
		return false;
	if (!constrain_grammar(sm, p, &rq.grammar, rp)) {
		hearth_state_free(rq.prefix_state);
		return false;
	}
	int rc = hearth_sched_submit(sm->sched, &rq, &g->req, &err);
	if (rc) {
		hearth_grammar_free(rq.grammar); /* still ours */
		hearth_state_free(rq.prefix_state);
	}
	if (rc == HEARTH_EBUSY) {
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "queue_full",
			    "The server is busy: too many requests are waiting. Retry shortly.");
		rp->retry_after = 1;
	} else if (rc == HEARTH_ESHUTDOWN) {
		reply_error(rp, 503, "service_unavailable", NULL, "draining", "The server is shutting down");
	} else if (rc == HEARTH_ETOOBIG) {
		reply_error(rp, 400, "invalid_request_error", what, "context_length_exceeded", "%s", err.msg);
	} else if (rc) {
		reply_lib_error(rp, rc, NULL, &err);
	}
	return rc == 0;
}

/* Waits for g's next event (checking that the client is still there);
 * false when the request is over. */
bool gen_wait(struct served_model *sm, const struct params *p, struct gen *g, int fd)
{
	struct hearth_token_event ev;
	for (;;) {
		int rc = hearth_request_next(g->req, &ev, 250);
		if (rc == 0) {
			gen_event(sm, p, g, &ev);
			/* checked after each token too: while the answer is held back (a tool
			 * call being written) nothing is sent, so no failed write tells */
			if (!ev.finish && client_gone(fd))
				hearth_request_cancel(g->req);
			if (ev.finish) {
				g->cached = hearth_request_cached_tokens(g->req);
				double t0 = hearth_request_t_start(g->req);
				const char *why = g->finish == HEARTH_FINISH_CANCELLED && !g->stopped ? "abort" : shape_finish_name(g->finish);
				metrics_request_done(sm->metrics, why, g->n_prompt, g->n_gen,
						     (t0 > 0 ? t0 : hearth_now()) - g->t_submit,
						     g->t_first > 0 ? g->t_first - g->t_submit : -1, hearth_now() - g->t_submit);
			}
			return !ev.finish;
		}
		if (rc == HEARTH_ENOTFOUND)
			return false;
		if (client_gone(fd))
			hearth_request_cancel(g->req); /* the final event follows */
	}
}

