/*
 * api-attribute.c - POST /v1/attribute: how much each prompt token drives
 * the log-probability of a given completion (hearth_attribute).
 *
 *   {"model", "prompt" | "messages", "completion",
 *    "method": "gradient_x_input" | "integrated_gradients", "steps"}
 *   -> {"object": "attribution", "model", "method", ("steps",)
 *      "tokens": [{"id", "token", "score"}] (the prompt's), "completion_logprob", "usage"}
 *
 * The prompt and completion are read as /v1/score reads them (score_read);
 * "messages" instead of "prompt" are rendered through the chat template with
 * the generation prompt, as /v1/chat/completions renders them, and the
 * completion then follows them (a string tokenized alone, without BOS).
 *
 * The work is not the scheduler's: a trainer (the library's training pass,
 * forward then backward to the input embeddings) is made for the request,
 * sized to its tokens, on the scheduler's thread count, and freed after it.
 * Making one costs well under a pass (0.1 ms for 16 tokens, 8.5 ms for 2048
 * on tiny-qwen2), while a trainer kept per model would hold the activations
 * of the longest request allowed (about 1.9 MB a token for qwen2.5-0.5b)
 * for as long as the model stays loaded. One attribution runs per model at
 * a time (sm->attributions); the others wait their turn, within the
 * request's deadline, while requests to the model's scheduler go on. The
 * work is bounded by ATTR_MAX_TOKENS (and the per-request context) and
 * ATTR_MAX_STEPS passes, and stops (between two layers of a pass) as soon
 * as the client leaves or the request's deadline passes.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "openai.h"
#include "usage.h"

#define ATTR_MAX_TOKENS 2048   /* prompt + completion, also fewer than the per-request context */
#define ATTR_MAX_STEPS 64      /* integrated gradients: passes besides the first */
#define ATTR_DEFAULT_STEPS 16
#define ATTR_WAIT_SLICE_S 0.25 /* waiting for the model's turn: how often the client is checked */

struct attr_req {
	bool ig;                /* integrated gradients (else gradient x input) */
	int32_t steps;          /* ig: 1..ATTR_MAX_STEPS */
	int32_t *p_ids, n_p;    /* the prompt's tokens */
	int32_t *c_ids, n_c;    /* the completion's */
};

/* "method" and "steps"; false after a 400 naming the field. */
static bool attr_method(json_t *body, struct attr_req *a, struct reply *rp)
{
	json_t *m = json_object_get(body, "method"), *s = json_object_get(body, "steps");
	if (m && !json_is_null(m)) {
		const char *v = json_string_value(m);
		if (!v || (strcmp(v, "gradient_x_input") && strcmp(v, "integrated_gradients"))) {
			reply_error(rp, 400, "invalid_request_error", "method", "invalid_value",
				    "'method' must be \"gradient_x_input\" or \"integrated_gradients\"");
			return false;
		}
		a->ig = !strcmp(v, "integrated_gradients");
	}
	a->steps = a->ig ? ATTR_DEFAULT_STEPS : 0;
	if (!s || json_is_null(s))
		return true;
	if (!a->ig) {
		reply_error(rp, 400, "invalid_request_error", "steps", "invalid_value",
			    "'steps' applies to \"method\": \"integrated_gradients\" only");
		return false;
	}
	if (!json_is_integer(s) || json_integer_value(s) < 1 || json_integer_value(s) > ATTR_MAX_STEPS) {
		reply_error(rp, 400, "invalid_request_error", "steps", "invalid_value",
			    "'steps' must be an integer from 1 to %d", ATTR_MAX_STEPS);
		return false;
	}
	a->steps = (int32_t)json_integer_value(s);
	return true;
}

/* The prompt from "messages": rendered with the generation prompt; its ids
 * into a->p_ids. False after an error reply. */
static bool attr_chat_prompt(struct served_model *sm, json_t *body, struct attr_req *a, struct reply *rp)
{
	struct hearth_chat_prompt pr = { 0 };
	struct chat_tools tc;
	json_t *vars = NULL;
	bool ok = chat_vars_build(body, &vars, &tc, rp) && api_chat_prompt(sm, vars, &pr, rp);
	if (ok && !(a->p_ids = malloc(((size_t)pr.n_ids + 1) * sizeof *a->p_ids))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		ok = false;
	}
	if (ok) {
		memcpy(a->p_ids, pr.ids, (size_t)pr.n_ids * sizeof *a->p_ids);
		a->n_p = pr.n_ids;
	}
	json_decref(vars);
	hearth_chat_prompt_free(&pr);
	return ok;
}

/* The prompt and completion's tokens, within the limit; false after an error reply. */
static bool attr_inputs(struct served_model *sm, json_t *body, struct attr_req *a, struct reply *rp)
{
	/* as /v1/score: fewer tokens than the per-request context (the tokenizer's messages say so) */
	const int32_t ctx = sm->sp.n_ctx_seq - 1, limit = ctx < ATTR_MAX_TOKENS ? ctx : ATTR_MAX_TOKENS;
	json_t *msgs = json_object_get(body, "messages");
	if (msgs && json_object_get(body, "prompt")) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
			    "Give either 'prompt' or 'messages', not both");
		return false;
	}
	if (!msgs) {
		if (!score_read(sm, body, ctx, &a->p_ids, &a->n_p, &a->c_ids, &a->n_c, rp))
			return false;
	} else if (!attr_chat_prompt(sm, body, a, rp) ||
		   !score_ids(sm, body, "completion", false, ctx, &a->c_ids, &a->n_c, rp)) {
		return false;
	} else if (a->n_p < 1 || a->n_c < 1) {
		reply_error(rp, 400, "invalid_request_error", a->n_p < 1 ? "messages" : "completion", "invalid_value",
			    a->n_p < 1 ? "The messages render to no tokens" : "The completion is empty");
		return false;
	}
	if ((int64_t)a->n_p + a->n_c > limit) {
		reply_error(rp, 400, "invalid_request_error", "completion", "context_length_exceeded",
			    "Attribution takes at most %d tokens of prompt and completion together on this model; "
			    "you gave %d (%d in the prompt, %d in the completion).", limit, a->n_p + a->n_c, a->n_p, a->n_c);
		return false;
	}
	return true;
}

/* Waits for the model's turn (sm->attributions) until the request's deadline
 * or the client leaves; true when it holds it (sem_post to give it back);
 * false after an error reply. */
static bool attr_wait_turn(struct served_model *sm, const struct call *call, double t_start, struct reply *rp)
{
	const double limit_s = sm->srv->request_timeout_s;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		const double at = (double)ts.tv_nsec / 1e9 + ATTR_WAIT_SLICE_S;
		ts.tv_sec += (time_t)at;
		ts.tv_nsec = (long)((at - floor(at)) * 1e9);
		if (!sem_timedwait(&sm->attributions, &ts))
			return true;
		if (errno != ETIMEDOUT && errno != EINTR)
			break;
		if (client_gone(call->fd)) {
			reply_error(rp, 400, "invalid_request_error", NULL, "client_closed", "The client left");
			return false;
		}
		if (limit_s > 0 && hearth_now() - t_start > limit_s) {
			reply_error(rp, 504, "timeout", NULL, "timeout",
				    "The request waited longer than the server allows for an attribution on this model to end");
			return false;
		}
	}
	reply_error(rp, 500, "server_error", NULL, NULL, "waiting for the model's turn failed");
	return false;
}

/* What ends an attribution early: the client leaving, or the deadline. */
struct attr_watch {
	int fd;
	double deadline;  /* hearth_now() seconds, or 0: none */
	bool gone, late;  /* what stopped it */
};

static int attr_stop(void *data)
{
	struct attr_watch *w = data;
	w->gone = client_gone(w->fd);
	w->late = !w->gone && w->deadline > 0 && hearth_now() > w->deadline;
	return w->gone || w->late;
}

/* Runs the attribution on a trainer made for it: scores[n_p] and *logprob;
 * false after an error reply (a model the trainer refuses: 400; the client
 * gone: 400; past the deadline: 504). */
static bool attr_run(struct served_model *sm, const struct call *call, double t_start, const struct attr_req *a,
		     float *scores, double *logprob, struct reply *rp)
{
	const double limit_s = sm->srv->request_timeout_s;
	struct attr_watch w = { .fd = call->fd, .deadline = limit_s > 0 ? t_start + limit_s : 0 };
	struct hearth_trainer_params tp = hearth_trainer_default_params();
	struct hearth_trainer *t = NULL;
	struct hearth_err err = { 0 };
	tp.targets = 0; /* no adapter: the gradient with respect to the input embeddings only */
	tp.n_ctx = a->n_p + a->n_c - 1;
	tp.n_threads = sm->sp.n_threads;
	int rc = hearth_trainer_new(&t, sm->model, &tp, &err);
	if (rc == HEARTH_EUNSUPPORTED || (rc == HEARTH_EINVAL && !t)) {
		reply_error(rp, 400, "invalid_request_error", "model", "model_not_supported",
			    "Attribution is not available for this model: %s", err.msg);
		return false;
	}
	if (!rc) {
		hearth_trainer_set_stop(t, attr_stop, &w);
		rc = hearth_attribute(t, a->p_ids, a->n_p, a->c_ids, a->n_c, a->steps, scores, logprob, &err);
	}
	hearth_trainer_free(t);
	if (rc == HEARTH_ESHUTDOWN && w.gone)
		reply_error(rp, 400, "invalid_request_error", NULL, "client_closed", "The client left");
	else if (rc == HEARTH_ESHUTDOWN && w.late)
		reply_error(rp, 504, "timeout", NULL, "timeout",
			    "The attribution ran longer than the server allows a request (%.0f s)", limit_s);
	else if (rc)
		reply_lib_error(rp, rc, NULL, &err);
	return rc == 0;
}

/* The reply's object; NULL when out of memory. */
static json_t *attr_reply(struct served_model *sm, const struct attr_req *a, const float *scores, double logprob)
{
	json_t *toks = json_array(), *r;
	bool ok = toks != NULL;
	for (int32_t i = 0; ok && i < a->n_p; i++) {
		char buf[256];
		int k = hearth_token_to_piece(sm->model, a->p_ids[i], true, buf, sizeof buf);
		k = k < 0 ? 0 : k > (int)sizeof buf ? (int)sizeof buf : k;
		ok = jsonb_add(toks, json_pack("{s:i, s:o, s:f}", "id", a->p_ids[i], "token", jsonb_str(buf, (size_t)k),
					       "score", (double)scores[i]));
	}
	if (!(toks = jsonb_done(toks, ok)))
		return NULL;
	r = json_pack("{s:s, s:s, s:s, s:o, s:f, s:{s:i, s:i, s:i}}", "object", "attribution", "model", sm->name,
		      "method", a->ig ? "integrated_gradients" : "gradient_x_input", "tokens", toks,
		      "completion_logprob", logprob, "usage", "prompt_tokens", a->n_p, "completion_tokens", a->n_c,
		      "total_tokens", a->n_p + a->n_c);
	return r && a->ig ? jsonb_done(r, jsonb_set(r, "steps", json_integer(a->steps))) : r;
}

void api_attribute(struct server *srv, const struct call *call, struct reply *rp)
{
	const double t_start = hearth_now();
	struct attr_req a = { 0 };
	struct usage_mark mark;
	float *scores = NULL;
	double logprob = 0;
	struct served_model *sm = api_model_acquire_base(srv, call->body, rp);
	if (!sm)
		return;
	if (!attr_method(call->body, &a, rp) || !attr_inputs(sm, call->body, &a, rp))
		goto out;
	if (!(scores = malloc((size_t)a.n_p * sizeof *scores))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		goto out;
	}
	if (!attr_wait_turn(sm, call, t_start, rp))
		goto out;
	usage_mark_now(&mark, sm);
	const bool ok = attr_run(sm, call, t_start, &a, scores, &logprob, rp);
	sem_post(&sm->attributions);
	if (!ok)
		goto out;
	reply_json(rp, 200, attr_reply(sm, &a, scores, logprob));
	if (rp->status == 200)
		usage_note_simple(srv, call, sm, "attribute", a.n_p, a.n_c, &mark);
out:
	free(scores);
	free(a.p_ids);
	free(a.c_ids);
	models_release(&srv->models, sm, -1);
}
