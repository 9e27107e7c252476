/* test-score.c - per-token uncertainty and prompt scoring: the entropy and
 * rank hearth_sampler_uncertainty gives against a computation in double by
 * hand (ties, non-finite logits, a 150k vocabulary); the scheduler's scored
 * prompt tokens (score_from, score_only) against the log-softmax of a plain
 * context's logits at every position, alone, in chunks, beside other
 * requests, under preemption and after the prefix cache holds the prompt. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../harness.h"

/* -sum p ln p, the rank of id (ties by lower id) and ln p(id), in double, non-finite logits as the sampler reads them. */
static void by_hand(const float *l, int32_t n, int32_t id, double *h, int32_t *rank, double *lp)
{
	double mx = -INFINITY, z = 0, s = 0;
	float *c = malloc((size_t)n * sizeof *c);
	if (!c)
		return;
	for (int32_t i = 0; i < n; i++) {
		c[i] = l[i] != l[i] ? -FLT_MAX : l[i] > FLT_MAX ? FLT_MAX : l[i] < -FLT_MAX ? -FLT_MAX : l[i];
		mx = c[i] > mx ? c[i] : mx;
	}
	for (int32_t i = 0; i < n; i++)
		z += exp(c[i] - mx);
	for (int32_t i = 0; i < n; i++) {
		const double p = exp(c[i] - mx) / z;
		if (p > 0)
			s -= p * log(p);
	}
	*h = s;
	*rank = 1;
	for (int32_t i = 0; i < n; i++)
		*rank += c[i] > c[id] || (c[i] == c[id] && i < id);
	*lp = c[id] - mx - log(z);
	free(c);
}

static void check_row(struct hearth_sampler *s, const float *l, int32_t n, int32_t id, double tol)
{
	double h, lp;
	int32_t rank, got_rank = -1;
	float got_h = -1;
	by_hand(l, n, id, &h, &rank, &lp);
	hearth_sampler_uncertainty(s, l, id, &got_h, &got_rank);
	T_EQ_I64(got_rank, rank);
	if (!(fabs(got_h - h) <= tol * (1 + h)))
		T_FAIL("entropy %.7f, by hand %.7f (id %d of %d)", got_h, h, id, n);
	T_TRUE(got_h >= 0);
}

void test_sampler_uncertainty(void)
{
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_err err = { 0 };
	struct hearth_sampler *s = NULL;

	/* small rows: ties share a logit and are ranked by id */
	const float small[7] = { 1.0f, 3.0f, 3.0f, -2.0f, 0.5f, 3.0f, -40.0f };
	T_OK(hearth_sampler_new(&s, &p, 7, &err), err);
	if (!s)
		return;
	for (int32_t id = 0; id < 7; id++)
		check_row(s, small, 7, id, 1e-5);
	int32_t r = 0;
	hearth_sampler_uncertainty(s, small, 5, NULL, &r);
	T_EQ_I64(r, 3); /* 1 and 2 tie with it and come first */
	hearth_sampler_uncertainty(s, small, 1, NULL, &r);
	T_EQ_I64(r, 1);
	hearth_sampler_uncertainty(s, small, 6, NULL, &r);
	T_EQ_I64(r, 7);
	/* uniform: ln n; one certain token: 0 */
	const float flat[7] = { 2, 2, 2, 2, 2, 2, 2 };
	float h = -1;
	hearth_sampler_uncertainty(s, flat, 0, &h, NULL);
	T_TRUE(fabsf(h - logf(7)) < 1e-5f);
	const float sure[7] = { 0, 0, 200, 0, 0, 0, 0 };
	hearth_sampler_uncertainty(s, sure, 2, &h, &r);
	T_TRUE(h >= 0 && h < 1e-6f);
	T_EQ_I64(r, 1);
	/* non-finite logits are read as the sampler reads them */
	const float odd[7] = { NAN, INFINITY, -INFINITY, 1, 1, 0, NAN };
	for (int32_t id = 0; id < 7; id++)
		check_row(s, odd, 7, id, 1e-5);
	hearth_sampler_free(s);

	/* a Qwen-sized vocabulary of random logits */
	enum { V = 151936 };
	float *big = malloc(V * sizeof *big);
	T_TRUE(big != NULL);
	if (!big)
		return;
	uint64_t x = 88172645463325252ull;
	for (int32_t i = 0; i < V; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		big[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 24.0 - 12.0);
	}
	big[777] = 14.0f;
	T_OK(hearth_sampler_new(&s, &p, V, &err), err);
	if (s) {
		check_row(s, big, V, 777, 1e-4);
		check_row(s, big, V, 4242, 1e-4);
		check_row(s, big, V, V - 1, 1e-4);
		/* the logprob of the same pass agrees with hearth_sampler_logprobs' */
		double hh, lp;
		int32_t rank;
		float lp_lib = 0;
		by_hand(big, V, 4242, &hh, &rank, &lp);
		hearth_sampler_logprobs(s, big, 4242, 0, &lp_lib, NULL, NULL);
		T_TRUE(fabs(lp_lib - lp) < 1e-4);
	}
	hearth_sampler_free(s);
	free(big);
}

/* ---- scheduler ------------------------------------------------------------ */

enum { MAX_P = 96 };

/* The plain context's log-probability, entropy and rank of every prompt token given those before it. */
struct ref {
	double lp[MAX_P], h[MAX_P];
	int32_t rank[MAX_P];
};

static void reference(struct hearth_model *m, const int32_t *ids, int32_t n, struct ref *out)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int32_t V = hearth_model_n_vocab(m);
	cp.n_ctx = 256;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		return;
	T_OK(hearth_decode(c, ids, n, true, &err), err);
	for (int32_t k = 1; k < n; k++) {
		const float *l = hearth_get_logits(c, k - 1);
		T_TRUE(l != NULL);
		if (l)
			by_hand(l, V, ids[k], &out->h[k], &out->rank[k], &out->lp[k]);
	}
	hearth_context_free(c);
}

static struct hearth_request *submit_score(struct hearth_sched *s, const int32_t *ids, int32_t n, int32_t from,
					   int32_t max_tokens, bool only)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_request *r = NULL;
	p.prompt = ids;
	p.n_prompt = n;
	p.score_from = from;
	p.score_only = only;
	p.uncertainty = true;
	p.top_logprobs = 2;
	p.max_tokens = max_tokens;
	p.sampling.temp = 0;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

/* Reads r to its end: its scored tokens checked against ref, then how many tokens it generated. */
static int check_scored(struct hearth_request *r, const int32_t *ids, int32_t n, int32_t from, const struct ref *ref,
			const char *what)
{
	struct hearth_token_event ev;
	int32_t next = from;
	int n_gen = 0, finish = 0;
	while (r && hearth_request_next(r, &ev, 20000) == 0) {
		if (ev.prompt) {
			if (n_gen > 0 || next >= n || ev.id != ids[next]) {
				T_FAIL("%s: scored token %d out of order (id %d)", what, next, ev.id);
				break;
			}
			if (!(fabs(ev.logprob - ref->lp[next]) < 2e-4 && fabs(ev.entropy - ref->h[next]) < 2e-4 * (1 + ref->h[next]) &&
			      ev.rank == ref->rank[next]))
				T_FAIL("%s: token %d: logprob %.6f entropy %.6f rank %d, by hand %.6f %.6f %d", what, next,
				       ev.logprob, ev.entropy, ev.rank, ref->lp[next], ref->h[next], ref->rank[next]);
			if (ev.n_top != 2 || ev.top_logprobs[0] < ev.logprob - 1e-6f)
				T_FAIL("%s: token %d: top_logprobs", what, next);
			next++;
		} else if (ev.id >= 0) {
			n_gen++;
			T_TRUE(ev.rank == 1 && ev.entropy >= 0); /* greedy */
		}
		if (ev.finish)
			finish = ev.finish;
	}
	hearth_request_free(r);
	if (next != n)
		T_FAIL("%s: %d of %d prompt tokens scored", what, next - from, n - from);
	T_TRUE(finish == HEARTH_FINISH_LENGTH || finish == HEARTH_FINISH_STOP);
	return n_gen;
}

void test_sched_score(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	const char *text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun "
			   "with her friends. One day, she saw a big red ball in the park and ran to get it. Tom";
	int32_t *ids = NULL, n = 0;
	struct ref *ref = calloc(1, sizeof *ref);

	/* defaults: no scoring, no uncertainty */
	struct hearth_request_params d = hearth_request_default_params();
	T_TRUE(d.score_from == 0 && !d.score_only && !d.uncertainty);
	T_OK(hearth_model_load(&m, fixture("models/stories260K.f32.gguf"), &mp, &err), err);
	if (!m || !ref)
		goto out;
	T_OK(hearth_tokenize(m, text, strlen(text), true, false, &ids, &n, &err), err);
	T_TRUE(n > 40 && n <= MAX_P); /* more than one step's score rows */
	if (n <= 40 || n > MAX_P)
		goto out;
	reference(m, ids, n, ref);

	for (int pass = 0; pass < 2; pass++) {
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		sp.n_parallel = 3;
		sp.n_ctx_seq = 128;
		sp.n_ctx = pass == 0 ? 0 : 112;  /* pass 1: too small for three: preemption */
		sp.block_size = 8;
		sp.n_batch = pass == 0 ? 512 : 7; /* pass 1: prompts go in small chunks */
		sp.n_threads = 2;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (!s)
			continue;
		/* three at once: everything scored, a tail scored then generation, a tail only */
		struct hearth_request *a = submit_score(s, ids, n, 1, -1, true);
		struct hearth_request *b = submit_score(s, ids, n, n - 10, 6, false);
		struct hearth_request *c = submit_score(s, ids, n, 33, -1, true);
		T_EQ_I64(check_scored(a, ids, n, 1, ref, pass ? "small, all" : "all"), 0);
		T_EQ_I64(check_scored(b, ids, n, n - 10, ref, pass ? "small, tail + 6" : "tail + 6"), 6);
		T_EQ_I64(check_scored(c, ids, n, 33, ref, pass ? "small, from 33" : "from 33"), 0);
		/* the prompt's blocks are cached now: scored positions are computed anyway */
		struct hearth_request *e = submit_score(s, ids, n, n - 3, -1, true);
		T_EQ_I64(check_scored(e, ids, n, n - 3, ref, "cached"), 0);
		struct hearth_request *f = submit_score(s, ids, n, 2, -1, true);
		T_EQ_I64(check_scored(f, ids, n, 2, ref, "cached, all"), 0);
		/* nothing to score: ends at once with no token */
		struct hearth_request *g = submit_score(s, ids, 5, 5, -1, true);
		T_EQ_I64(check_scored(g, ids, 5, 5, ref, "none"), 0);
		/* bad requests */
		struct hearth_request_params bad = hearth_request_default_params();
		struct hearth_request *r = NULL;
		bad.prompt = ids;
		bad.n_prompt = 4;
		bad.score_from = 5;
		T_EQ_I64(hearth_sched_submit(s, &bad, &r, &err), HEARTH_EINVAL);
		bad.score_from = -1;
		T_EQ_I64(hearth_sched_submit(s, &bad, &r, &err), HEARTH_EINVAL);
		T_TRUE(r == NULL);
		hearth_sched_free(s);
	}
out:
	free(ids);
	free(ref);
	hearth_model_free(m);
}
