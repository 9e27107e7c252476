/*
 * sched.c - continuous batching: one thread, one forward pass per step over
 * every active request.
 *
 * A request holds its tokens (prompt, then what it generated); the paged KV
 * cache holds the first seq.n_tokens of them. Each step gives every running
 * request the tokens it has not computed yet, within the step's budget of
 * n_batch tokens: one for those decoding (served first, so long prompts
 * cannot starve them), then chunks of prompts. While requests are decoding,
 * prompt chunks are also held to a time budget (chunked prefill): a step
 * with prompt tokens may take about twice a decode-only step, from running
 * averages of the decode step's time and a prompt token's cost, so that a
 * long prompt arriving does not stall the streams. A request whose chunk reaches
 * its last token gets logits, samples, and appends the new token, which the
 * next step computes. Prefill and decode are the same thing.
 *
 * Admission is first come, first served, while fewer than n_parallel run and
 * the cache has blocks for the prompt; a new request first takes the longest
 * cached prefix of its prompt that a request with the same cache salt
 * computed (the salt is the root of its block names). When a decode finds the cache full, the most
 * recently admitted other request is preempted: its blocks are released
 * (they stay findable by their prefix names) and it goes back to the front
 * of the queue, to resume from its tokens later. Results never depend on
 * batching: every row of every kernel is computed independently.
 *
 * Scoring (score_from) asks for the logits of prompt positions too: each
 * position whose logits score the prompt token after it gets an output row,
 * at most SCORE_ROWS a step (a longer scored span takes several steps), and
 * is never taken from the prefix cache; its event is queued before the
 * request's first generated token.
 *
 * Threads: s->mu guards the waiting queue and quit; r->mu guards a request's
 * events and its link to the scheduler. Lock order: r->mu before s->mu; the
 * scheduler never holds s->mu while taking r->mu.
 */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/err.h"
#include "../base/log.h"
#include "../base/thread.h"
#include "../base/sha256.h"
#include "../model/cvec.h"
#include "../model/forward.h"
#include "../model/lora.h"
#include "../model/state.h"

enum req_state { REQ_WAITING, REQ_RUNNING, REQ_DONE };

struct hearth_request {
	atomic_int refs;            /* the owner's and the scheduler's */
	atomic_bool cancel;
	atomic_int cached;          /* prompt tokens taken from the prefix cache */
	int32_t *tokens;            /* prompt, then generated */
	int32_t n_prompt, n_tokens, cap_tokens;
	int32_t max_tokens, n_gen, top_logprobs;
	bool ignore_eos, uncertainty, score_only;
	struct fwd_steer steer;     /* its control vector (steer.dir NULL: none) */
	uint8_t steer_digest[SHA256_SIZE]; /* cvec_steer_digest of steer: names its blocks and saved state */
	struct fwd_lora lora;       /* its adapters (references held until freed; n 0: none) */
	int32_t score_next;         /* the next prompt token to score (n_prompt: none left) */
	int32_t *bias_ids;
	float *bias;
	int32_t n_bias;
	struct hearth_sampler *smpl;
	struct hearth_grammar *grammar; /* the sampler follows it; owned */
	struct hearth_state *seed;   /* saved rows of a prefix of the prompt, owned until admitted */
	bool save_state;             /* on a normal finish, save the computed sequence into saved */
	struct hearth_state *saved;  /* under mu: what was saved, until the owner takes it */
	/* hidden states after layers hid_layers[k] (resolved) of every computed
	 * position, [hid_cap][n_hid_layers][n_embd]; the scheduler writes each
	 * position once, the owner reads after the final event, or while it runs
	 * through hearth_request_hidden_read (under mu: the scheduler moves
	 * hidden and counts n_hidden under it too) */
	int32_t *hid_layers, n_hid_layers;
	float *hidden;
	int32_t hid_cap, n_hidden;   /* positions allocated / computed */
	int32_t n_embd;
	double t_submit, deadline;
	_Atomic double t_start;
	/* scheduler thread only */
	enum req_state state;
	struct kv_seq seq;
	struct hearth_request *next; /* waiting queue */
	uint64_t admitted;           /* admission order, for preemption */
	/* events, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hearth_token_event *ev;
	size_t n_ev, cap_ev, n_read;
	bool final;                  /* the last event is queued */
	struct hearth_sched *s;      /* NULL once the scheduler let go */
};

struct hearth_sched {
	struct hearth_model *m;
	struct hearth_sched_params p;
	struct kv_cache kv;
	struct fwd *fwd;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit;
	struct hearth_request *wait_head, *wait_tail;
	/* scheduler thread only */
	struct hearth_request **running;
	int32_t n_running;
	uint64_t n_admitted;
	int32_t *b_tokens, *b_pos, *b_rows;
	struct kv_seq **b_seqs;
	const struct fwd_steer **b_steer; /* each token's request's steering, or NULL */
	const struct fwd_lora **b_lora;   /* each token's request's adapters, or NULL */
	struct hearth_request **b_out; /* request of each output row */
	struct hearth_token_event *b_ev; /* the token sampled (or scored) for each output row */
	bool *b_score;                 /* the output row scores a prompt token */
	struct hearth_request **b_hid; /* [n_batch] the request wanting each entry's hidden states, or NULL */
	int32_t *b_grp;                /* the output row's request, numbered in the step: rows of one request
					* are sampled by one thread, in order */
	double t_decode;               /* running average of a decode-only step, s (0: none yet) */
	double t_prompt_tok;           /* running average cost of a prompt token in a step, s (0: none yet) */
	float *logits;                 /* [n_parallel + SCORE_ROWS][n_vocab] */
	/* counters others read */
	atomic_int n_waiting, n_running_pub, n_blocks_used, last_batch_tokens, last_batch_seqs;
	atomic_uint_fast64_t prefix_queries, prefix_hits, prompt_tokens, generation_tokens, steps;
	_Atomic double t_heartbeat;
	atomic_bool alive;
};

double hearth_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct hearth_sched_params hearth_sched_default_params(void)
{
	return (struct hearth_sched_params){ .n_ctx = 0, .n_ctx_seq = 0, .n_parallel = 4, .n_batch = 512,
					     .n_threads = 0, .max_queue = 256, .block_size = 16,
					     .cache_type = HEARTH_TYPE_F16 };
}

/* ---- requests ------------------------------------------------------------------ */

struct hearth_request_params hearth_request_default_params(void)
{
	return (struct hearth_request_params){ .max_tokens = -1, .sampling = hearth_sampler_default_params(),
					       .top_logprobs = -1 };
}

static void req_unref(struct hearth_request *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	hearth_sampler_free(r->smpl);
	hearth_grammar_free(r->grammar);
	hearth_state_free(r->seed);
	hearth_state_free(r->saved);
	free(r->tokens);
	free(r->bias_ids);
	free(r->bias);
	free(r->ev);
	free(r->hid_layers);
	free(r->hidden);
	lora_use_release(&r->lora);
	free(r);
}

/* Queues an event for the owner (from the scheduler thread). The
 * queue (allocated at submit) always keeps a free slot for the final event,
 * so that one is always queued; false when the queue could not grow for
 * another event, which then is not queued: the caller must end the request. */
static bool req_push(struct hearth_request *r, const struct hearth_token_event *ev)
{
	bool queued = true;
	pthread_mutex_lock(&r->mu);
	assert(r->n_ev < r->cap_ev);
	if (!ev->finish && r->n_ev + 1 == r->cap_ev) {
		struct hearth_token_event *e = realloc(r->ev, 2 * r->cap_ev * sizeof *e);
		if (e) {
			r->ev = e;
			r->cap_ev *= 2;
		} else {
			queued = false;
		}
	}
	if (queued) {
		r->ev[r->n_ev++] = *ev;
		if (ev->finish)
			r->final = true;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return queued;
}

/* Saves the positions of r the cache holds (its prompt, and what it generated
 * that was computed) for its owner; a failure leaves none saved (logged). */
static void save_state(struct hearth_sched *s, struct hearth_request *r)
{
	struct hearth_err err = { 0 };
	struct hearth_state *st = NULL;
	const int32_t n = r->seq.n_tokens < r->n_tokens ? r->seq.n_tokens : r->n_tokens;
	if (n <= 0 || state_build(&st, s->m, &s->kv, &r->seq, r->tokens, n, NULL, r->steer_digest, &err)) {
		HLOG_WARN("sched: the request's state was not saved: %s", err.code ? err.msg : "nothing computed");
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->saved = st;
	pthread_mutex_unlock(&r->mu);
}

/* Ends a request the scheduler holds: cache released, final event queued
 * after the scheduler let go of it, scheduler's hold dropped. */
static void req_end(struct hearth_sched *s, struct hearth_request *r, const struct hearth_token_event *ev)
{
	if (r->save_state && (ev->finish == HEARTH_FINISH_STOP || ev->finish == HEARTH_FINISH_LENGTH))
		save_state(s, r);
	kv_seq_free(&s->kv, &r->seq);
	r->state = REQ_DONE;
	pthread_mutex_lock(&r->mu);
	r->s = NULL;
	pthread_mutex_unlock(&r->mu);
	(void)req_push(r, ev); /* a final event: always queued */
	req_unref(r);
}

static void req_finish(struct hearth_sched *s, struct hearth_request *r, int finish)
{
	struct hearth_token_event ev = { .id = -1, .finish = finish, .t = hearth_now() };
	req_end(s, r, &ev);
}

/* Can p's prefix state seed its prompt: of this model and cache, its tokens a prefix of the prompt? */
static int seed_check(const struct hearth_sched *s, const struct hearth_request_params *p, struct hearth_err *err)
{
	const struct hearth_state *st = p->prefix_state;
	int rc;
	if ((rc = state_check_fits(st, s->m, &s->kv, err)))
		return rc;
	if (st->n_tokens > p->n_prompt || memcmp(st->tokens, p->prompt, (size_t)st->n_tokens * sizeof *st->tokens))
		return err_set(err, HEARTH_EINVAL, "request: the prompt does not start with the saved state's %d tokens",
			       st->n_tokens);
	return 0;
}

/* The root of a request's block names: its cache salt, and when it is
 * steered a digest of what steers it (directions, strength, layers), so that
 * only requests steered alike share cached blocks. */
static int steer_root_name(const struct hearth_request_params *p, const struct fwd_steer *st,
			   const uint8_t digest[SHA256_SIZE], struct kv_name *out, struct hearth_err *err)
{
	if (!st->dir)
		return kv_cache_root_name(p->cache_salt, p->cache_salt_size, out, err);
	static const char tag[] = "hearth steering";
	uint8_t *salt = malloc(p->cache_salt_size + sizeof tag + SHA256_SIZE);
	int rc;
	if (!salt)
		return err_set(err, HEARTH_ENOMEM, "request: out of memory");
	if (p->cache_salt_size)
		memcpy(salt, p->cache_salt, p->cache_salt_size);
	memcpy(salt + p->cache_salt_size, tag, sizeof tag);
	memcpy(salt + p->cache_salt_size + sizeof tag, digest, SHA256_SIZE);
	rc = kv_cache_root_name(salt, p->cache_salt_size + sizeof tag + SHA256_SIZE, out, err);
	free(salt);
	return rc;
}

/* The root of a request's block names with adapters: its cache salt
 * followed by each adapter's digest and scale, so that only requests with
 * the same adapters share cached blocks; then steering's (steer_root_name). */
static int lora_root_name(const struct hearth_request_params *p, const struct fwd_lora *l,
			  const struct fwd_steer *st, const uint8_t steer_digest[SHA256_SIZE], struct kv_name *out,
			  struct hearth_err *err)
{
	if (!l->n)
		return steer_root_name(p, st, steer_digest, out, err);
	static const char tag[] = "hearth lora";
	const size_t per = 32 + sizeof(float), size = p->cache_salt_size + sizeof tag + (size_t)l->n * per;
	uint8_t *salt = malloc(size);
	if (!salt)
		return err_set(err, HEARTH_ENOMEM, "request: out of memory");
	if (p->cache_salt_size)
		memcpy(salt, p->cache_salt, p->cache_salt_size);
	memcpy(salt + p->cache_salt_size, tag, sizeof tag);
	for (int32_t k = 0; k < l->n; k++) {
		uint8_t *at = salt + p->cache_salt_size + sizeof tag + (size_t)k * per;
		memcpy(at, hearth_lora_digest(l->ad[k]), 32);
		memcpy(at + 32, &l->scale[k], sizeof(float));
	}
	struct hearth_request_params q = *p;
	q.cache_salt = salt;
	q.cache_salt_size = size;
	const int rc = steer_root_name(&q, st, steer_digest, out, err);
	free(salt);
	return rc;
}

/* The layers a request asks hidden states of, and their most memory. */
static int hidden_check(const struct hearth_sched *s, const struct hearth_request_params *p, struct hearth_err *err)
{
	const int32_t L = s->m->hp.n_layer;
	if (p->n_hidden_layers < 0 || p->n_hidden_layers > L || (p->n_hidden_layers && !p->hidden_layers))
		return err_set(err, HEARTH_EINVAL, "request: %d hidden layers asked for, the model has %d",
			       p->n_hidden_layers, L);
	for (int32_t k = 0; k < p->n_hidden_layers; k++)
		if (p->hidden_layers[k] < -L || p->hidden_layers[k] >= L)
			return err_set(err, HEARTH_EINVAL, "request: hidden layer %d is outside %d..%d", p->hidden_layers[k],
				       -L, L - 1);
	const size_t per_pos = (size_t)p->n_hidden_layers * (size_t)s->m->hp.n_embd;
	if (per_pos && (size_t)s->p.n_ctx_seq > SIZE_MAX / sizeof(float) / per_pos)
		return err_set(err, HEARTH_ETOOBIG, "request: hidden states of %d layers over %d positions overflow",
			       p->n_hidden_layers, s->p.n_ctx_seq);
	return 0;
}

int hearth_sched_submit(struct hearth_sched *s, const struct hearth_request_params *p, struct hearth_request **out,
			struct hearth_err *err)
{
	struct hearth_request *r;
	int rc;

	*out = NULL;
	if (!p->prompt || p->n_prompt < 1)
		return err_set(err, HEARTH_EINVAL, "request: the prompt is empty");
	if (p->n_prompt >= s->p.n_ctx_seq)
		return err_set(err, HEARTH_ETOOBIG, "request: the prompt has %d tokens; this model's maximum context "
			       "length is %d tokens", p->n_prompt, s->p.n_ctx_seq);
	if (p->top_logprobs > HEARTH_MAX_TOP_LOGPROBS || p->n_bias < 0 || (p->n_bias && (!p->bias_ids || !p->bias)))
		return err_set(err, HEARTH_EINVAL, "request: bad logprobs or logit bias");
	if (p->score_from < 0 || (p->score_from > 0 && p->score_from >= p->n_prompt + 1))
		return err_set(err, HEARTH_EINVAL, "request: score_from %d is outside the prompt (%d tokens)",
			       p->score_from, p->n_prompt);
	for (int32_t i = 0; i < p->n_prompt; i++)
		if (p->prompt[i] < 0 || p->prompt[i] >= s->m->hp.n_vocab)
			return err_set(err, HEARTH_EINVAL, "request: token id %d is outside the vocabulary", p->prompt[i]);
	for (int32_t i = 0; i < p->n_bias; i++)
		if (p->bias_ids[i] < 0 || p->bias_ids[i] >= s->m->hp.n_vocab || !isfinite(p->bias[i]))
			return err_set(err, HEARTH_EINVAL, "request: logit bias for token %d is invalid", p->bias_ids[i]);
	if (p->cache_salt_size > 0 && !p->cache_salt)
		return err_set(err, HEARTH_EINVAL, "request: cache_salt is NULL but cache_salt_size is %zu",
			       p->cache_salt_size);
	if (p->prefix_state && (rc = seed_check(s, p, err)))
		return rc;
	if ((rc = hidden_check(s, p, err)))
		return rc;
	if (!(r = calloc(1, sizeof *r)))
		return err_set(err, HEARTH_ENOMEM, "request: out of memory");
	atomic_init(&r->refs, 2);
	r->cap_tokens = s->p.n_ctx_seq;
	r->tokens = malloc((size_t)r->cap_tokens * sizeof *r->tokens);
	r->bias_ids = malloc(((size_t)p->n_bias + 1) * sizeof *r->bias_ids);
	r->bias = malloc(((size_t)p->n_bias + 1) * sizeof *r->bias);
	r->cap_ev = 16;
	r->ev = malloc(r->cap_ev * sizeof *r->ev);
	r->n_hid_layers = p->n_hidden_layers;
	r->n_embd = s->m->hp.n_embd;
	r->hid_layers = malloc(((size_t)p->n_hidden_layers + 1) * sizeof *r->hid_layers);
	if (!r->tokens || !r->bias_ids || !r->bias || !r->ev || !r->hid_layers) {
		rc = err_set(err, HEARTH_ENOMEM, "request: out of memory");
		goto fail;
	}
	if ((rc = hearth_sampler_new(&r->smpl, &p->sampling, s->m->hp.n_vocab, err)))
		goto fail;
	/* the salt becomes the root of the request's block names; the request is
	 * not queued yet, so this thread may still set its sequence */
	if ((rc = cvec_steer_resolve(&p->steering, s->m, &r->steer, err)) ||
	    (rc = cvec_steer_digest(&r->steer, &s->m->hp, r->steer_digest, err)) ||
	    (rc = lora_use_resolve(p->lora, p->n_lora, s->m, &r->lora, err)) ||
	    (rc = lora_root_name(p, &r->lora, &r->steer, r->steer_digest, &r->seq.root, err)))
		goto fail;
	/* a saved prefix is used only by a request steered as it was computed */
	if (p->prefix_state && (rc = state_check_steering(p->prefix_state, r->steer_digest, err)))
		goto fail;
	memcpy(r->tokens, p->prompt, (size_t)p->n_prompt * sizeof *r->tokens);
	memcpy(r->bias_ids, p->bias_ids ? p->bias_ids : r->bias_ids, (size_t)p->n_bias * sizeof *r->bias_ids);
	memcpy(r->bias, p->bias ? p->bias : r->bias, (size_t)p->n_bias * sizeof *r->bias);
	for (int32_t i = 0; i < p->n_prompt; i++)
		hearth_sampler_accept(r->smpl, p->prompt[i]);
	if (p->grammar && (rc = hearth_sampler_set_grammar(r->smpl, p->grammar, NULL, err)))
		goto fail; /* after the prompt: the grammar sees the answer only */
	r->n_prompt = r->n_tokens = p->n_prompt;
	for (int32_t k = 0; k < p->n_hidden_layers; k++)
		r->hid_layers[k] = p->hidden_layers[k] < 0 ? s->m->hp.n_layer + p->hidden_layers[k] : p->hidden_layers[k];
	r->n_bias = p->n_bias;
	r->max_tokens = p->max_tokens;
	r->top_logprobs = p->top_logprobs;
	r->ignore_eos = p->ignore_eos;
	r->seed = p->prefix_state; /* owned once queued (the fail path below does not free it) */
	r->save_state = p->save_state;
	r->uncertainty = p->uncertainty;
	r->score_only = p->score_only;
	r->score_next = p->score_from > 0 ? p->score_from : p->n_prompt;
	r->t_submit = hearth_now();
	r->deadline = p->timeout_s > 0 ? r->t_submit + p->timeout_s : 0;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->s = s;

	pthread_mutex_lock(&s->mu);
	if (s->quit) {
		rc = err_set(err, HEARTH_ESHUTDOWN, "request: the server is shutting down");
	} else if (atomic_load(&s->n_waiting) >= s->p.max_queue) {
		rc = err_set(err, HEARTH_EBUSY, "request: %d requests are already waiting", s->p.max_queue);
	} else {
		if (s->wait_tail)
			s->wait_tail->next = r;
		else
			s->wait_head = r;
		s->wait_tail = r;
		atomic_fetch_add(&s->n_waiting, 1);
		pthread_cond_signal(&s->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
		goto fail;
	}
	r->grammar = p->grammar; /* taken over */
	*out = r;
	return 0;
fail:
	lora_use_release(&r->lora);
	hearth_sampler_free(r->smpl);
	free(r->hid_layers);
	free(r->tokens);
	free(r->bias_ids);
	free(r->bias);
	free(r->ev);
	free(r);
	return rc;
}

int hearth_request_next(struct hearth_request *r, struct hearth_token_event *ev, int timeout_ms)
{
	int rc = 0;
	struct timespec until;
	if (timeout_ms > 0) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&r->mu);
	while (r->n_read == r->n_ev) {
		if (r->final) {
			rc = HEARTH_ENOTFOUND;
			break;
		}
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 ? pthread_cond_timedwait(&r->cv, &r->mu, &until) : pthread_cond_wait(&r->cv, &r->mu))) {
			if (r->n_read == r->n_ev)
				rc = r->final ? HEARTH_ENOTFOUND : HEARTH_ETIMEDOUT;
			break;
		}
	}
	if (rc == 0)
		*ev = r->ev[r->n_read++];
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void hearth_request_cancel(struct hearth_request *r)
{
	atomic_store(&r->cancel, true);
	pthread_mutex_lock(&r->mu);
	if (r->s) { /* wake the scheduler so that it acts now */
		pthread_mutex_lock(&r->s->mu);
		pthread_cond_signal(&r->s->cv);
		pthread_mutex_unlock(&r->s->mu);
	}
	pthread_mutex_unlock(&r->mu);
}

void hearth_request_free(struct hearth_request *r)
{
	if (!r)
		return;
	hearth_request_cancel(r);
	req_unref(r);
}

int32_t hearth_request_cached_tokens(const struct hearth_request *r) { return atomic_load(&r->cached); }

struct hearth_state *hearth_request_take_state(struct hearth_request *r)
{
	pthread_mutex_lock(&r->mu);
	struct hearth_state *st = r->saved;
	r->saved = NULL;
	pthread_mutex_unlock(&r->mu);
	return st;
}
double hearth_request_t_submit(const struct hearth_request *r) { return r->t_submit; }
double hearth_request_t_start(const struct hearth_request *r) { return atomic_load(&((struct hearth_request *)r)->t_start); }

int32_t hearth_request_n_hidden(const struct hearth_request *r) { return r->n_hidden; }

int32_t hearth_request_hidden_read(struct hearth_request *r, int32_t pos, int32_t n, float *out)
{
	pthread_mutex_lock(&r->mu); /* the scheduler moves r->hidden (hidden_grow) and counts n_hidden under it */
	const int32_t have = r->n_hidden;
	if (pos < 0 || n < 0 || pos > have)
		n = 0;
	else if (n > have - pos)
		n = have - pos;
	if (n > 0)
		memcpy(out, r->hidden + (size_t)pos * (size_t)r->n_hid_layers * (size_t)r->n_embd,
		       (size_t)n * (size_t)r->n_hid_layers * (size_t)r->n_embd * sizeof *out);
	pthread_mutex_unlock(&r->mu);
	return n;
}

const float *hearth_request_hidden(const struct hearth_request *r, int32_t k, int32_t pos)
{
	if (k < 0 || k >= r->n_hid_layers || pos < 0 || pos >= r->n_hidden)
		return NULL;
	return r->hidden + ((size_t)pos * (size_t)r->n_hid_layers + (size_t)k) * (size_t)r->n_embd;
}

/* ---- the loop -------------------------------------------------------------------- */

/* Takes a request off the queue into the running set, if the cache can hold
 * the rest of its tokens. Called with s->mu held. */
static bool try_admit(struct hearth_sched *s, struct hearth_request *r)
{
	/* reuse whole cached blocks, but compute at least the last token for its
	 * logits, and every position whose logits score a prompt token */
	int32_t upto = r->n_tokens - 1;
	if (r->score_next < r->n_prompt && r->score_next - 1 < upto)
		upto = r->score_next - 1;
	if (r->n_hid_layers) /* hidden states of every position: computed, none adopted */
		upto = 0;
	int32_t got = kv_seq_adopt_prefix(&s->kv, &r->seq, r->tokens, r->n_tokens, upto);
	int32_t need = kv_seq_blocks_needed(&s->kv, &r->seq, r->n_tokens - got + 1);
	if (need > s->kv.n_free && s->n_running > 0) {
		kv_seq_release(&s->kv, &r->seq);
		s->kv.queries -= (uint64_t)r->n_tokens; /* not a query after all */
		s->kv.hits -= (uint64_t)got;
		return false;
	}
	if (r->seed) { /* restore what the cache did not have of the saved prefix */
		/* as adoption: the last token and scored positions are computed */
		const int32_t n_use = r->seed->n_tokens < upto ? r->seed->n_tokens : upto;
		if (n_use > r->seq.n_tokens &&
		    kv_state_put(&s->kv, &r->seq, r->tokens, r->seed->rows, r->seed->n_tokens, r->seed->local_from,
				 n_use - r->seq.n_tokens))
			HLOG_DEBUG("sched: no room to restore a saved prefix (or its sliding window); it is computed "
				   "instead");
		got = r->seq.n_tokens;
		hearth_state_free(r->seed);
		r->seed = NULL;
	}
	if (r->state == REQ_WAITING && atomic_load(&r->t_start) == 0) {
		atomic_store(&r->cached, got);
		atomic_store(&r->t_start, hearth_now());
	}
	r->state = REQ_RUNNING;
	r->admitted = ++s->n_admitted;
	s->running[s->n_running++] = r;
	return true;
}

/* Moves waiting requests: cancelled or expired ones out, then admits in order. */
static void admit(struct hearth_sched *s, struct hearth_request **dead, int *n_dead, int max_dead)
{
	const double now = hearth_now();
	struct hearth_request **pp = &s->wait_head, *prev = NULL;
	while (*pp) {
		struct hearth_request *r = *pp;
		bool gone = atomic_load(&r->cancel) || (r->deadline && now > r->deadline) || s->quit;
		if (gone && *n_dead < max_dead) {
			*pp = r->next;
			dead[(*n_dead)++] = r;
		} else if (!gone && s->n_running < s->p.n_parallel && prev == NULL && try_admit(s, r)) {
			*pp = r->next; /* admitted: strictly in order, so only from the head */
		} else {
			prev = r;
			pp = &r->next;
			continue;
		}
		r->next = NULL;
		atomic_fetch_sub(&s->n_waiting, 1);
	}
	s->wait_tail = NULL;
	for (struct hearth_request *r = s->wait_head; r; r = r->next)
		s->wait_tail = r;
}

static void remove_running(struct hearth_sched *s, int32_t i)
{
	memmove(&s->running[i], &s->running[i + 1], (size_t)(s->n_running - i - 1) * sizeof *s->running);
	s->n_running--;
}

/* Frees cache for r by sending the latest admitted other request back to the
 * queue's front. False when r is alone. */
static bool preempt_for(struct hearth_sched *s, struct hearth_request *r)
{
	int32_t victim = -1;
	for (int32_t i = 0; i < s->n_running; i++)
		if (s->running[i] != r && (victim < 0 || s->running[i]->admitted > s->running[victim]->admitted))
			victim = i;
	if (victim < 0)
		return false;
	struct hearth_request *v = s->running[victim];
	remove_running(s, victim);
	kv_seq_release(&s->kv, &v->seq);
	v->state = REQ_WAITING;
	pthread_mutex_lock(&s->mu);
	v->next = s->wait_head;
	s->wait_head = v;
	if (!s->wait_tail)
		s->wait_tail = v;
	atomic_fetch_add(&s->n_waiting, 1);
	pthread_mutex_unlock(&s->mu);
	HLOG_DEBUG("sched: preempted a request to free KV cache");
	return true;
}

/* Chooses r's next token from its logits row l (bias added in place), with
 * its log-probabilities when asked. Touches only r's own state, so that the
 * rows of a batch are sampled in parallel. */
static void sample_row(struct hearth_request *r, float *l, struct hearth_token_event *ev)
{
	memset(ev, 0, sizeof *ev);
	for (int32_t i = 0; i < r->n_bias; i++)
		l[r->bias_ids[i]] += r->bias[i];
	ev->id = hearth_sampler_sample(r->smpl, l);
	hearth_sampler_accept(r->smpl, ev->id);
	if (r->top_logprobs >= 0)
		ev->n_top = hearth_sampler_logprobs(r->smpl, l, ev->id, r->top_logprobs, &ev->logprob, ev->top_ids,
						    ev->top_logprobs);
	if (r->uncertainty)
		hearth_sampler_uncertainty(r->smpl, l, ev->id, &ev->entropy, &ev->rank);
	ev->t = hearth_now();
}

/* Scores prompt token `at` of r from the logits row l of the position before
 * it: its log-probability (always), best tokens and uncertainty as asked. */
static void score_row(struct hearth_request *r, const float *l, int32_t at, struct hearth_token_event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->id = r->tokens[at];
	ev->prompt = true;
	ev->n_top = hearth_sampler_logprobs(r->smpl, l, ev->id, r->top_logprobs > 0 ? r->top_logprobs : 0,
					    &ev->logprob, ev->top_ids, ev->top_logprobs);
	if (r->uncertainty)
		hearth_sampler_uncertainty(r->smpl, l, ev->id, &ev->entropy, &ev->rank);
	ev->t = hearth_now();
}

struct sample_task {
	struct hearth_sched *s;
	int32_t n_out;
};

static void sample_run(void *arg, int ith, int nth)
{
	const struct sample_task *t = arg;
	struct hearth_sched *s = t->s;
	const size_t V = (size_t)s->m->hp.n_vocab;
	for (int32_t o = 0; o < t->n_out; o++) {
		struct hearth_request *r = s->b_out[o];
		float *l = s->logits + (size_t)o * V;
		if (s->b_grp[o] % nth != ith)
			continue;
		if (s->b_score[o])
			score_row(r, l, s->b_pos[s->b_rows[o]] + 1, &s->b_ev[o]);
		else if (!r->score_only)
			sample_row(r, l, &s->b_ev[o]);
	}
}

/* Hands r the token sampled for it; false when r finished. */
static bool take_token(struct hearth_sched *s, struct hearth_request *r, struct hearth_token_event *ev)
{
	if (!r->ignore_eos && hearth_token_is_eog(s->m, ev->id)) {
		req_finish(s, r, HEARTH_FINISH_STOP);
		return false;
	}
	r->tokens[r->n_tokens++] = ev->id;
	r->n_gen++;
	atomic_fetch_add(&s->generation_tokens, 1);
	if ((r->max_tokens >= 0 && r->n_gen >= r->max_tokens) || r->n_tokens >= s->p.n_ctx_seq) {
		ev->finish = HEARTH_FINISH_LENGTH;
		req_end(s, r, ev);
		return false;
	}
	if (r->grammar && hearth_sampler_grammar_done(r->smpl)) { /* nothing may follow: as if end of text came */
		ev->finish = HEARTH_FINISH_STOP;
		req_end(s, r, ev);
		return false;
	}
	if (!req_push(r, ev)) { /* out of memory for its events */
		req_finish(s, r, HEARTH_FINISH_ERROR);
		return false;
	}
	return true;
}

#define PREFILL_MIN 16     /* prompt tokens a step may always take */
#define PREFILL_FIRST 64   /* before any step was timed */
#define PREFILL_SHARE 1.0  /* prompt work per step, in decode steps */

/* Prompt tokens this step may take beside n_decoding decoding requests. */
static int32_t prefill_budget(const struct hearth_sched *s, int32_t n_decoding)
{
	const int32_t B = s->p.n_batch;
	if (n_decoding == 0)
		return B;
	if (s->t_decode <= 0 || s->t_prompt_tok <= 0)
		return PREFILL_FIRST < B ? PREFILL_FIRST : B;
	const double n = PREFILL_SHARE * s->t_decode / s->t_prompt_tok;
	return n < PREFILL_MIN ? PREFILL_MIN : n > B ? B : (int32_t)n;
}

/* Updates the running averages prefill_budget() reads from a step's time. */
static void step_timed(struct hearth_sched *s, double t, int32_t n_decoding, int32_t n_prompt)
{
	const double a = 0.2;
	if (n_prompt == 0 && n_decoding > 0) {
		s->t_decode = s->t_decode > 0 ? (1 - a) * s->t_decode + a * t : t;
	} else if (n_prompt > 0 && n_decoding > 0 && s->t_decode > 0) {
		double c = (t - s->t_decode) / n_prompt;
		c = c > 0 ? c : 0;
		s->t_prompt_tok = s->t_prompt_tok > 0 ? (1 - a) * s->t_prompt_tok + a * c : c;
	} else if (n_prompt > 0 && n_decoding == 0) {
		const double c = t / n_prompt;
		s->t_prompt_tok = s->t_prompt_tok > 0 ? (1 - a) * s->t_prompt_tok + a * c : c;
	}
}

/* Output rows a step may give to scored prompt tokens (beside one per
 * request): each holds a row of logits, so this bounds the memory scoring
 * takes; a long scored prompt is computed this many positions a step. */
#define SCORE_ROWS 32

/* What a step's batch holds beside its tokens. */
struct batch_counts {
	int32_t n_decoding; /* requests with one token to compute */
	int32_t n_chunk;    /* tokens of longer runs (prompts, or a preempted request's redo) */
	int32_t n_prompt;   /* tokens that are prompt tokens */
	int32_t n_score;    /* output rows that score prompt tokens */
	int32_t n_hid;      /* entries whose hidden states are kept */
};

/* How many of r's next n tokens (from position seq.n_tokens) this step can
 * take when each position whose logits score a prompt token needs one of
 * the SCORE_ROWS - used rows left: n, or fewer. */
static int32_t score_fit(const struct hearth_request *r, int32_t n, int32_t used)
{
	if (r->score_next >= r->n_prompt)
		return n;
	const int32_t p0 = r->seq.n_tokens, first = r->score_next - 1 > p0 ? r->score_next - 1 : p0;
	const int32_t end = p0 + n < r->n_prompt - 1 ? p0 + n : r->n_prompt - 1; /* scoring positions end before it */
	if (end - first <= SCORE_ROWS - used)
		return n;
	return first + (SCORE_ROWS - used) - p0;
}

/* Room for r's hidden states of n_pos positions. */
static int hidden_grow(const struct hearth_sched *s, struct hearth_request *r, int32_t n_pos)
{
	if (n_pos <= r->hid_cap)
		return 0;
	int32_t cap = r->hid_cap ? r->hid_cap : 64;
	while (cap < n_pos)
		cap = cap > s->p.n_ctx_seq / 2 ? s->p.n_ctx_seq : cap * 2;
	/* hidden_check bounded n_ctx_seq * n_hid_layers * n_embd floats */
	pthread_mutex_lock(&r->mu); /* hearth_request_hidden_read may be copying from it */
	float *h = realloc(r->hidden, (size_t)cap * (size_t)r->n_hid_layers * (size_t)s->m->hp.n_embd * sizeof *h);
	if (h) {
		r->hidden = h;
		r->hid_cap = cap;
	}
	pthread_mutex_unlock(&r->mu);
	return h ? 0 : HEARTH_ENOMEM;
}

/* fwd_layer_fn: copies the rows of the requests that asked for layer il. */
static void hidden_take(int il, const float *x, const struct fwd_batch *b, void *data)
{
	const struct hearth_sched *s = data;
	const size_t E = (size_t)s->m->hp.n_embd;
	for (int32_t i = 0; i < b->n; i++) {
		struct hearth_request *r = s->b_hid[i];
		if (r && b->pos[i] < r->n_hidden)
			continue; /* kept already (a preempted request's redo gives the same rows): it may be being read */
		for (int32_t k = 0; r && k < r->n_hid_layers; k++)
			if (r->hid_layers[k] == il)
				memcpy(r->hidden + ((size_t)b->pos[i] * (size_t)r->n_hid_layers + (size_t)k) * E,
				       x + (size_t)i * E, E * sizeof *x);
	}
}

/* Adds an output row for batch entry i of r. */
static void out_row(struct hearth_sched *s, struct fwd_batch *b, struct hearth_request *r, int32_t i, bool score)
{
	s->b_grp[b->n_out] = b->n_out > 0 && s->b_out[b->n_out - 1] == r ? s->b_grp[b->n_out - 1]
			     : b->n_out > 0 ? s->b_grp[b->n_out - 1] + 1 : 0;
	s->b_rows[b->n_out] = i;
	s->b_score[b->n_out] = score;
	s->b_out[b->n_out++] = r;
}

/* Puts each running request's next tokens in the batch: one for those
 * decoding, then chunks of the others within the prefill budget. False when
 * a full cache made it preempt or drop a request (the caller starts over). */
static bool fill_batch(struct hearth_sched *s, struct fwd_batch *b, struct batch_counts *c)
{
	const int32_t B = s->p.n_batch;
	int32_t budget = B;
	b->n = b->n_out = 0;
	b->steer = NULL; /* set when a steered request joins */
	b->lora = NULL;  /* set when a request with adapters joins */
	*c = (struct batch_counts){ 0 };
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			budget = prefill_budget(s, c->n_decoding);
		for (int32_t i = 0; i < s->n_running && b->n < B && (pass == 0 || c->n_chunk < budget); i++) {
			struct hearth_request *r = s->running[i];
			const int32_t todo = r->n_tokens - r->seq.n_tokens;
			if (todo <= 0 || (pass == 0) != (todo == 1))
				continue;
			int32_t n = todo < B - b->n ? todo : B - b->n;
			if (pass == 1 && n > budget - c->n_chunk)
				n = budget - c->n_chunk;
			if ((n = score_fit(r, n, c->n_score)) <= 0)
				continue;
			if (r->n_hid_layers && hidden_grow(s, r, r->seq.n_tokens + n)) {
				remove_running(s, i);
				req_finish(s, r, HEARTH_FINISH_ERROR);
				return false;
			}
			const int rc = kv_seq_reserve(&s->kv, &r->seq, n);
			if (rc == HEARTH_ENOMEM) { /* for its block table: it cannot go on */
				remove_running(s, i);
				req_finish(s, r, HEARTH_FINISH_ERROR);
				return false;
			}
			if (rc) {
				if (!preempt_for(s, r)) { /* alone, and the cache cannot hold it */
					remove_running(s, i);
					req_finish(s, r, HEARTH_FINISH_LENGTH);
				}
				return false;
			}
			for (int32_t k = 0; k < n; k++) {
				const int32_t pos = r->seq.n_tokens + k;
				s->b_tokens[b->n] = r->tokens[pos];
				s->b_pos[b->n] = pos;
				s->b_seqs[b->n] = &r->seq;
				s->b_steer[b->n] = r->steer.dir ? &r->steer : NULL;
				b->steer = r->steer.dir ? s->b_steer : b->steer;
				s->b_lora[b->n] = r->lora.n ? &r->lora : NULL;
				b->lora = r->lora.n ? s->b_lora : b->lora;
				s->b_hid[b->n] = r->n_hid_layers ? r : NULL;
				c->n_hid += r->n_hid_layers > 0;
				c->n_prompt += pos < r->n_prompt;
				if (pos + 1 >= r->score_next && pos + 1 < r->n_prompt) {
					out_row(s, b, r, b->n, true);
					c->n_score++;
				}
				b->n++;
			}
			if (pass == 0)
				c->n_decoding++;
			else
				c->n_chunk += n;
			if (n == todo)
				out_row(s, b, r, b->n - 1, false);
		}
	}
	return true;
}

/* One step: the batch, the pass, the samples. False when there was nothing to do. */
static bool step(struct hearth_sched *s)
{
	const double now = hearth_now();
	struct fwd_batch b = { .tokens = s->b_tokens, .seq = s->b_seqs, .pos = s->b_pos, .out_rows = s->b_rows };
	struct batch_counts c;

	/* drop cancelled and expired requests */
	for (int32_t i = 0; i < s->n_running;) {
		struct hearth_request *r = s->running[i];
		bool cancel = atomic_load(&r->cancel), late = r->deadline && now > r->deadline;
		if (cancel || late) {
			remove_running(s, i);
			req_finish(s, r, cancel ? HEARTH_FINISH_CANCELLED : HEARTH_FINISH_TIMEOUT);
		} else {
			i++;
		}
	}
	/* a full cache preempts a request and starts the batch over */
	while (!fill_batch(s, &b, &c))
		;
	if (b.n == 0)
		return false;

	const double t0 = hearth_now();
	fwd_set_layer_fn(s->fwd, c.n_hid ? hidden_take : NULL, s); /* nothing spent unless asked */
	fwd_run(s->fwd, &b, s->logits);
	for (int32_t i = 0; c.n_hid && i < b.n; i++)
		if (s->b_hid[i] && s->b_pos[i] >= s->b_hid[i]->n_hidden) {
			pthread_mutex_lock(&s->b_hid[i]->mu); /* hearth_request_hidden_read reads it */
			s->b_hid[i]->n_hidden = s->b_pos[i] + 1;
			pthread_mutex_unlock(&s->b_hid[i]->mu);
		}
	step_timed(s, hearth_now() - t0, c.n_decoding, c.n_chunk);

	/* the cache now holds these tokens; publish the full blocks */
	for (int32_t j = 0; j < s->n_running; j++) {
		struct hearth_request *r = s->running[j];
		int32_t n = 0;
		for (int32_t i = 0; i < b.n; i++)
			n += s->b_seqs[i] == &r->seq;
		if (n)
			kv_seq_commit(&s->kv, &r->seq, r->tokens, n);
	}
	atomic_fetch_add(&s->prompt_tokens, (uint64_t)c.n_prompt);
	struct sample_task st = { .s = s, .n_out = b.n_out };
	if (b.n_out > 1)
		pool_run(fwd_pool(s->fwd), sample_run, &st);
	else
		sample_run(&st, 0, 1);
	int32_t ended = -1; /* the group of a request ended by one of its rows */
	for (int32_t o = 0; o < b.n_out; o++) {
		struct hearth_request *r = s->b_out[o];
		int32_t j = 0, fin = 0;
		if (s->b_grp[o] == ended)
			continue;
		if (s->b_score[o]) {
			if (req_push(r, &s->b_ev[o])) {
				r->score_next++;
				continue;
			}
			fin = HEARTH_FINISH_ERROR; /* out of memory for its events */
		} else if (r->score_only) {
			fin = HEARTH_FINISH_LENGTH; /* scored: nothing to generate */
		} else if (take_token(s, r, &s->b_ev[o])) {
			continue;
		}
		while (s->running[j] != r)
			j++;
		remove_running(s, j);
		if (fin)
			req_finish(s, r, fin);
		ended = s->b_grp[o];
	}
	atomic_store(&s->last_batch_tokens, b.n);
	atomic_store(&s->last_batch_seqs, b.n_out);
	atomic_fetch_add(&s->steps, 1);
	return true;
}

static void publish_stats(struct hearth_sched *s)
{
	atomic_store(&s->n_running_pub, s->n_running);
	atomic_store(&s->n_blocks_used, kv_cache_used(&s->kv));
	atomic_store(&s->prefix_queries, s->kv.queries);
	atomic_store(&s->prefix_hits, s->kv.hits);
	atomic_store(&s->t_heartbeat, hearth_now());
}

static void *sched_main(void *arg)
{
	struct hearth_sched *s = arg;
	enum { MAX_DEAD = 64 };
	struct hearth_request *dead[MAX_DEAD];

	atomic_store(&s->alive, true);
	for (;;) {
		int n_dead = 0;
		pthread_mutex_lock(&s->mu);
		admit(s, dead, &n_dead, MAX_DEAD);
		bool quit = s->quit, queued = s->wait_head != NULL;
		pthread_mutex_unlock(&s->mu);
		for (int i = 0; i < n_dead; i++) {
			struct hearth_request *r = dead[i];
			req_finish(s, r, atomic_load(&r->cancel) || quit ? HEARTH_FINISH_CANCELLED : HEARTH_FINISH_TIMEOUT);
		}
		if (quit && !queued)
			break;
		if (quit)
			continue;
		bool worked = step(s);
		publish_stats(s);
		if (!worked && n_dead == 0) {
			pthread_mutex_lock(&s->mu);
			if (!s->quit && !s->wait_head) {
				struct timespec until;
				clock_gettime(CLOCK_REALTIME, &until);
				until.tv_nsec += 100 * 1000000L; /* heartbeat and deadlines */
				if (until.tv_nsec >= 1000000000L) {
					until.tv_sec++;
					until.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&s->cv, &s->mu, &until);
			}
			pthread_mutex_unlock(&s->mu);
		}
	}
	while (s->n_running > 0) {
		struct hearth_request *r = s->running[s->n_running - 1];
		s->n_running--;
		req_finish(s, r, HEARTH_FINISH_CANCELLED);
	}
	publish_stats(s);
	atomic_store(&s->alive, false);
	return NULL;
}

/* The scheduler's cache: one spare block per request (a sequence's last
 * block is partly empty); local layers (sliding windows) keep, per request,
 * about a window and a few blocks, plus a batch (see kv-cache.h). */
static int sched_cache_init(struct hearth_sched *s, struct hearth_err *err)
{
	const struct hparams *h = &s->m->hp;
	const struct hearth_sched_params *p = &s->p;
	int32_t *swa = malloc((size_t)h->n_layer * sizeof *swa);
	if (!swa)
		return err_set(err, HEARTH_ENOMEM, "scheduler: out of memory");
	const int32_t w = model_layer_swa(s->m, swa), total = p->n_ctx + p->n_parallel * p->block_size;
	const int64_t local = (int64_t)p->n_parallel * ((int64_t)w + 4 * p->block_size) + p->n_batch;
	const int rc = kv_cache_init_swa(&s->kv, h->n_layer, (int64_t)h->n_head_kv * h->head_dim_k,
					 (int64_t)h->n_head_kv * h->head_dim_v, total, p->block_size, p->cache_type,
					 w ? swa : NULL, local < total ? (int32_t)local : total, err);
	free(swa);
	return rc;
}

int hearth_sched_new(struct hearth_sched **out, struct hearth_model *m, const struct hearth_sched_params *params,
		     struct hearth_err *err)
{
	struct hearth_sched_params p = params ? *params : hearth_sched_default_params();
	const struct hparams *h = &m->hp;
	struct hearth_sched *s;
	int rc;

	*out = NULL;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "scheduler: the model was loaded vocabulary-only");
	if (p.n_parallel < 1 || p.n_parallel > 1024 || p.n_batch < 0 || p.n_ctx < 0 || p.n_ctx_seq < 0 ||
	    p.max_queue < 0 || p.block_size < 1 || p.block_size > 1024 || p.n_threads < 0 ||
	    (p.cache_type != HEARTH_TYPE_F16 && p.cache_type != HEARTH_TYPE_F32 && p.cache_type != HEARTH_TYPE_Q8_0))
		return err_set(err, HEARTH_EINVAL, "scheduler: bad parameters");
	if (p.cache_type == HEARTH_TYPE_Q8_0 && (h->head_dim_k % 32 || h->head_dim_v % 32))
		return err_set(err, HEARTH_EINVAL, "scheduler: a q8_0 cache needs head sizes in multiples of 32 (this "
			       "model's are %d and %d)", h->head_dim_k, h->head_dim_v);
	if (p.n_ctx_seq == 0)
		p.n_ctx_seq = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
	if (p.n_ctx == 0)
		p.n_ctx = p.n_parallel * p.n_ctx_seq;
	if (p.n_ctx_seq > p.n_ctx)
		p.n_ctx_seq = p.n_ctx;
	if (p.n_batch == 0)
		p.n_batch = 512;
	if (p.n_batch < p.n_parallel)
		p.n_batch = p.n_parallel;
	if (p.n_threads == 0)
		p.n_threads = cpu_count();
	if (!(s = calloc(1, sizeof *s)))
		return err_set(err, HEARTH_ENOMEM, "scheduler: out of memory");
	s->m = m;
	s->p = p;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((rc = sched_cache_init(s, err)) ||
	    (rc = fwd_new(&s->fwd, m, &s->kv, p.n_batch, p.n_threads, err)))
		goto fail;
	fwd_set_n_ctx_seq(s->fwd, p.n_ctx_seq);
	s->running = calloc((size_t)p.n_parallel, sizeof *s->running);
	s->b_tokens = malloc((size_t)p.n_batch * sizeof *s->b_tokens);
	s->b_pos = malloc((size_t)p.n_batch * sizeof *s->b_pos);
	const size_t n_rows = (size_t)p.n_parallel + SCORE_ROWS; /* output rows a step may have */
	s->b_rows = malloc(n_rows * sizeof *s->b_rows);
	s->b_seqs = malloc((size_t)p.n_batch * sizeof *s->b_seqs);
	s->b_steer = malloc((size_t)p.n_batch * sizeof *s->b_steer);
	s->b_lora = malloc((size_t)p.n_batch * sizeof *s->b_lora);
	s->b_out = malloc(n_rows * sizeof *s->b_out);
	s->b_ev = malloc(n_rows * sizeof *s->b_ev);
	s->b_score = malloc(n_rows * sizeof *s->b_score);
	s->b_hid = malloc((size_t)p.n_batch * sizeof *s->b_hid);
	s->b_grp = malloc(n_rows * sizeof *s->b_grp);
	s->logits = malloc(n_rows * (size_t)h->n_vocab * sizeof *s->logits);
	if (!s->running || !s->b_tokens || !s->b_pos || !s->b_rows || !s->b_seqs || !s->b_steer || !s->b_lora || !s->b_out || !s->b_ev ||
	    !s->b_score || !s->b_hid || !s->b_grp || !s->logits) {
		rc = err_set(err, HEARTH_ENOMEM, "scheduler: out of memory");
		goto fail;
	}
	publish_stats(s);
	if (pthread_create(&s->thread, NULL, sched_main, s)) {
		rc = err_set(err, HEARTH_ENOMEM, "scheduler: cannot start its thread");
		goto fail;
	}
	s->started = true;
	*out = s;
	return 0;
fail:
	hearth_sched_free(s);
	return rc;
}

void hearth_sched_free(struct hearth_sched *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->started)
		pthread_join(s->thread, NULL);
	/* the loop drained the queue and the running set before it ended */
	fwd_free(s->fwd);
	kv_cache_free(&s->kv);
	free(s->running);
	free(s->b_tokens);
	free(s->b_pos);
	free(s->b_rows);
	free(s->b_seqs);
	free(s->b_steer);
	free(s->b_lora);
	free(s->b_out);
	free(s->b_ev);
	free(s->b_score);
	free(s->b_hid);
	free(s->b_grp);
	free(s->logits);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

struct hearth_sched_params hearth_sched_params_used(const struct hearth_sched *s) { return s->p; }

void hearth_sched_stats(const struct hearth_sched *cs, struct hearth_sched_stats *st)
{
	struct hearth_sched *s = (struct hearth_sched *)cs; /* atomics are read, not changed */
	st->n_waiting = atomic_load(&s->n_waiting);
	st->n_running = atomic_load(&s->n_running_pub);
	st->n_blocks = s->kv.n_blocks;
	st->block_size = s->kv.block_size;
	st->n_blocks_used = atomic_load(&s->n_blocks_used);
	st->last_batch_tokens = atomic_load(&s->last_batch_tokens);
	st->last_batch_seqs = atomic_load(&s->last_batch_seqs);
	st->prefix_queries = atomic_load(&s->prefix_queries);
	st->prefix_hits = atomic_load(&s->prefix_hits);
	st->prompt_tokens = atomic_load(&s->prompt_tokens);
	st->generation_tokens = atomic_load(&s->generation_tokens);
	st->steps = atomic_load(&s->steps);
	st->t_heartbeat = atomic_load(&s->t_heartbeat);
	st->alive = atomic_load(&s->alive);
}
