/* test-steer.c - control vectors: llama.cpp's GGUF format read (sums and
 * scales, every malformed case refused by name) and written; steering on
 * stories260K shifting the logits the way its contrastive prompts point, and
 * no steering (no vector, strength 0, an empty layer range) giving the
 * unsteered logits bit for bit; in the scheduler, steered and unsteered
 * requests in one batch each getting exactly what they get alone, and the
 * prefix cache never lending unsteered blocks to a steered request. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "../../src/gguf/gguf.h"
#include "../../src/model/model.h"

#define MODEL "models/stories260K.f32.gguf"

/* Writes a control-vector file: n tensors named names[i], f32 of ne[i] values v(i, j) = base + i + j / 64. */
static void write_vec(const char *path, int n, const char *const *names, const int64_t *ne, int type, int n_dims,
		      float base)
{
	struct gguf_writer *w = NULL;
	struct hearth_err err = { 0 };
	float *data = calloc((size_t)n * 4096, sizeof *data);
	T_OK(gguf_writer_new(&w, &err), err);
	if (!w || !data)
		goto out;
	gguf_writer_set_str(w, "general.architecture", "controlvector");
	gguf_writer_set_i32(w, "controlvector.layer_count", n);
	for (int i = 0; i < n; i++) {
		float *d = data + (size_t)i * 4096;
		for (int64_t j = 0; j < ne[i] && j < 4096; j++)
			d[j] = base + (float)i + (float)j / 64.0f;
		int64_t shape[2] = { ne[i], 1 };
		if (n_dims == 2) {
			shape[0] = ne[i] / 2;
			shape[1] = 2;
		}
		gguf_writer_add_tensor(w, names[i], type, n_dims, shape, d);
	}
	T_OK(gguf_writer_write(w, path, &err), err);
out:
	gguf_writer_free(w);
	free(data);
}

/* Loading path into a fresh vector fails with HEARTH_EBADGGUF and a message containing want. */
static void expect_refused(const struct hearth_model *m, const char *path, const char *want)
{
	struct hearth_cvec *cv = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_cvec_new(&cv, m, &err), err);
	if (!cv)
		return;
	const int rc = hearth_cvec_add_file(cv, path, 1.0f, &err);
	T_EQ_I64(rc, HEARTH_EBADGGUF);
	if (!strstr(err.msg, want))
		T_FAIL("refusing %s: message \"%s\" does not say \"%s\"", path, err.msg, want);
	/* nothing was added */
	for (int32_t il = 1; il < hearth_model_n_layer(m); il++)
		for (int32_t j = 0; j < hearth_model_n_embd(m); j++)
			if (hearth_cvec_direction(cv, il)[j] != 0.0f) {
				T_FAIL("%s: layer %d changed by a refused file", path, il);
				il = hearth_model_n_layer(m);
				break;
			}
	hearth_cvec_free(cv);
}

void test_steer_file(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_cvec *cv = NULL, *back = NULL;
	mp.vocab_only = false;
	T_OK(hearth_model_load(&m, fixture(MODEL), &mp, &err), err);
	if (!m)
		return;
	const int32_t L = hearth_model_n_layer(m), E = hearth_model_n_embd(m);
	T_TRUE(L >= 4 && E <= 4096);
	if (L < 4 || E > 4096)
		goto out;
	const char *good[] = { "direction.1", "direction.2" }, *other[] = { "direction.2", "direction.3" };
	const int64_t ne2[] = { E, E };
	const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf");
	write_vec(a, 2, good, ne2, HEARTH_TYPE_F32, 1, 1.0f);
	write_vec(b, 2, other, ne2, HEARTH_TYPE_F32, 1, -3.0f); /* layer 2 in both files */

	/* a * 0.5 + b * 2: llama.cpp's sum of scaled files */
	T_OK(hearth_cvec_new(&cv, m, &err), err);
	if (!cv)
		goto out;
	T_OK(hearth_cvec_add_file(cv, a, 0.5f, &err), err);
	T_OK(hearth_cvec_add_file(cv, b, 2.0f, &err), err);
	T_TRUE(hearth_cvec_direction(cv, 0) == NULL && hearth_cvec_direction(cv, L) == NULL);
	for (int32_t j = 0; j < E; j++) {
		const float x = (float)j / 64.0f;
		T_NEAR(hearth_cvec_direction(cv, 1)[j], 0.5f * (1.0f + x), 1e-6);
		T_NEAR(hearth_cvec_direction(cv, 2)[j], 0.5f * (2.0f + x) + 2.0f * (-3.0f + x), 1e-5);
		if (L > 3)
			T_NEAR(hearth_cvec_direction(cv, 3)[j], 2.0f * (-2.0f + x), 1e-5);
		for (int32_t il = 4; il < L; il++)
			T_TRUE(hearth_cvec_direction(cv, il)[j] == 0.0f);
	}
	/* written as cvector-generator writes, read back the same */
	const char *w = tmp_path("w.gguf");
	T_OK(hearth_cvec_write(cv, w, "stories", &err), err);
	T_OK(hearth_cvec_new(&back, m, &err), err);
	if (back) {
		T_OK(hearth_cvec_add_file(back, w, 1.0f, &err), err);
		for (int32_t il = 1; il < L; il++)
			T_TRUE(memcmp(hearth_cvec_direction(back, il), hearth_cvec_direction(cv, il), (size_t)E * 4) == 0);
	}
	struct hearth_gguf *g = NULL;
	T_OK(hearth_gguf_open(&g, w, &err), err);
	if (g) {
		struct gguf_str s = { 0 };
		int64_t n = 0;
		T_OK(gguf_get_str(g, "general.architecture", &s, &err), err);
		T_TRUE(s.n == 13 && memcmp(s.p, "controlvector", 13) == 0);
		T_OK(gguf_get_i64(g, "controlvector.layer_count", &n, &err), err);
		T_EQ_I64(n, L - 1);
		T_EQ_I64(g->n_tensors, L - 1);
		T_TRUE(gguf_find_tensor(g, "direction.1") >= 0 && gguf_find_tensor(g, "direction.0") < 0);
		hearth_gguf_close(g);
	}

	/* malformed files: refused, naming the problem, the vector untouched */
	const char *p = tmp_path("bad.gguf");
	char last[32];
	snprintf(last, sizeof last, "direction.%d", L);
	const int64_t small[] = { E - 1 }, one[] = { E };
	write_vec(p, 1, good, small, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "n_embd");
	write_vec(p, 1, (const char *[]){ "direction.0" }, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "outside 1..");
	write_vec(p, 1, (const char *[]){ last }, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "outside 1..");
	write_vec(p, 1, (const char *[]){ "direction.-1" }, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "not named direction.N");
	write_vec(p, 1, (const char *[]){ "direction.1x" }, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "not named direction.N");
	write_vec(p, 1, (const char *[]){ "blk.1.weight" }, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "not named direction.N");
	write_vec(p, 1, good, one, HEARTH_TYPE_F16, 1, 1.0f);
	expect_refused(m, p, "not f32");
	write_vec(p, 1, good, one, HEARTH_TYPE_F32, 2, 1.0f);
	expect_refused(m, p, "dimensions");
	write_vec(p, 0, good, one, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "no direction tensors");
	/* a good tensor then a bad one: the good one is not added either */
	write_vec(p, 2, (const char *[]){ "direction.1", "direction.0" }, ne2, HEARTH_TYPE_F32, 1, 1.0f);
	expect_refused(m, p, "outside 1..");
	/* not GGUF at all */
	FILE *f = fopen(p, "wb");
	if (f) {
		fputs("not a gguf file at all, just some text", f);
		fclose(f);
	}
	expect_refused(m, p, "");
	/* a direction by hand: layer range checked */
	T_EQ_I64(hearth_cvec_add(cv, 0, hearth_cvec_direction(cv, 1), 1.0f, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_cvec_add(cv, L, hearth_cvec_direction(cv, 1), 1.0f, &err), HEARTH_EINVAL);
out:
	hearth_cvec_free(cv);
	hearth_cvec_free(back);
	hearth_model_free(m);
}

/* ---- steering a context ---------------------------------------------------- */

/* Logits after prompt with steering st (NULL: none) into out (n_vocab floats). */
static void logits_of(struct hearth_model *m, const int32_t *ids, int32_t n, const struct hearth_steering *st,
		      float *out)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_err err = { 0 };
	cp.n_ctx = 64;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		return;
	T_OK(hearth_context_set_steering(c, st, &err), err);
	T_OK(hearth_decode(c, ids, n, false, &err), err);
	const float *l = hearth_get_logits(c, -1);
	if (l)
		memcpy(out, l, (size_t)hearth_model_n_vocab(m) * sizeof *out);
	hearth_context_free(c);
}

/* Adds sign times the mean of the token embeddings of text's tokens (no BOS) into acc
 * (n_embd floats), and those tokens' mean logit in l (when l is not NULL) into *score. */
static void contrast(struct hearth_model *m, const char *text, float sign, float *acc, const float *l, double *score)
{
	struct hearth_err err = { 0 };
	int32_t *ids = NULL, n = 0;
	const int64_t E = m->hp.n_embd;
	T_OK(hearth_tokenize(m, text, strlen(text), false, false, &ids, &n, &err), err);
	T_TRUE(m->tok_embd.type == HEARTH_TYPE_F32 && n > 0);
	if (m->tok_embd.type != HEARTH_TYPE_F32 || n <= 0)
		goto out;
	const float *emb = m->tok_embd.data;
	for (int32_t i = 0; i < n; i++) {
		for (int64_t j = 0; acc && j < E; j++)
			acc[j] += sign * emb[(size_t)ids[i] * (size_t)E + (size_t)j] / (float)n;
		if (l)
			*score += sign * l[ids[i]] / n;
	}
out:
	free(ids);
}

static const char *const positive = " cat kitten purr meow", *const negative = " dog puppy bark woof";

/* (mean logit of the positive words' tokens) - (the negative words'), after prompt steered by st. */
static double shift(struct hearth_model *m, const int32_t *ids, int32_t n, const struct hearth_steering *st,
		    float *l)
{
	double score = 0;
	logits_of(m, ids, n, st, l);
	contrast(m, positive, 1.0f, NULL, l, &score);
	contrast(m, negative, -1.0f, NULL, l, &score);
	return score;
}

void test_steer_logits(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_cvec *cv = NULL;
	int32_t *ids = NULL, n = 0;
	float *base = NULL, *l = NULL, *dir = NULL;
	const char *text = "Once upon a time, there was a little girl. She saw a";
	T_OK(hearth_model_load(&m, fixture(MODEL), &mp, &err), err);
	if (!m)
		return;
	const int32_t V = hearth_model_n_vocab(m), L = hearth_model_n_layer(m), E = hearth_model_n_embd(m);
	base = calloc((size_t)V, sizeof *base);
	l = calloc((size_t)V, sizeof *l);
	dir = calloc((size_t)E, sizeof *dir);
	T_OK(hearth_cvec_new(&cv, m, &err), err);
	T_OK(hearth_tokenize(m, text, strlen(text), true, false, &ids, &n, &err), err);
	if (!base || !l || !dir || !cv || n < 2)
		goto out;
	/* the vector: positive minus negative prompts' mean token embedding, every layer */
	contrast(m, positive, 1.0f, dir, NULL, NULL);
	contrast(m, negative, -1.0f, dir, NULL, NULL);
	for (int32_t il = 1; il < L; il++)
		T_OK(hearth_cvec_add(cv, il, dir, 1.0f, &err), err);

	const double s0 = shift(m, ids, n, NULL, base);
	/* no steering, three ways: the same logits, bit for bit */
	struct hearth_steering st = { .cvec = cv, .strength = 0.0f };
	shift(m, ids, n, &st, l);
	T_TRUE(memcmp(l, base, (size_t)V * sizeof *l) == 0);
	st = (struct hearth_steering){ .cvec = NULL, .strength = 3.0f };
	shift(m, ids, n, &st, l);
	T_TRUE(memcmp(l, base, (size_t)V * sizeof *l) == 0);
	st = (struct hearth_steering){ .cvec = cv, .strength = 3.0f, .layer_start = L, .layer_end = L };
	shift(m, ids, n, &st, l); /* block L does not exist: nothing is added */
	T_TRUE(memcmp(l, base, (size_t)V * sizeof *l) == 0);

	/* towards the positive words, and away with a negative strength */
	st = (struct hearth_steering){ .cvec = cv, .strength = 2.0f };
	const double up = shift(m, ids, n, &st, l);
	T_TRUE(memcmp(l, base, (size_t)V * sizeof *l) != 0);
	st.strength = -2.0f;
	const double down = shift(m, ids, n, &st, l);
	if (!(up > s0 + 0.5 && down < s0 - 0.5))
		T_FAIL("steering shifts positive - negative logits from %.4f to %.4f (+2) and %.4f (-2)", s0, up, down);
	/* one layer only moves less than all of them, but moves */
	st = (struct hearth_steering){ .cvec = cv, .strength = 2.0f, .layer_start = L - 1, .layer_end = L - 1 };
	const double last = shift(m, ids, n, &st, l);
	if (!(last > s0 && last < up))
		T_FAIL("the last layer alone shifts to %.4f (none %.4f, all %.4f)", last, s0, up);

	/* bad steering */
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	cp.n_ctx = 32;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (c) {
		st = (struct hearth_steering){ .cvec = cv, .strength = NAN };
		T_EQ_I64(hearth_context_set_steering(c, &st, &err), HEARTH_EINVAL);
		st = (struct hearth_steering){ .cvec = cv, .strength = 1.0f, .layer_start = 3, .layer_end = 2 };
		T_EQ_I64(hearth_context_set_steering(c, &st, &err), HEARTH_EINVAL);
		st = (struct hearth_steering){ .cvec = cv, .strength = 1.0f, .layer_end = L + 1 };
		T_EQ_I64(hearth_context_set_steering(c, &st, &err), HEARTH_EINVAL);
		hearth_context_free(c);
	}
out:
	free(ids);
	free(base);
	free(l);
	free(dir);
	hearth_cvec_free(cv);
	hearth_model_free(m);
}

/* ---- steering in the scheduler ----------------------------------------------- */

#define GEN 12

struct answer {
	int32_t n, ids[GEN];
	float lp[GEN];
};

static struct hearth_request *submit(struct hearth_sched *s, const int32_t *ids, int32_t n,
				     const struct hearth_steering *st)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *r = NULL;
	struct hearth_err err = { 0 };
	p.prompt = ids;
	p.n_prompt = n;
	p.max_tokens = GEN;
	p.ignore_eos = true;
	p.top_logprobs = 0;
	p.sampling.temp = 0;
	if (st)
		p.steering = *st;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

static void collect(struct hearth_request *r, struct answer *a)
{
	struct hearth_token_event ev;
	memset(a, 0, sizeof *a);
	while (r && hearth_request_next(r, &ev, 20000) == 0)
		if (ev.id >= 0 && a->n < GEN) {
			a->ids[a->n] = ev.id;
			a->lp[a->n++] = ev.logprob;
		}
	hearth_request_free(r);
	T_EQ_I64(a->n, GEN);
}

static struct hearth_sched *sched_new(struct hearth_model *m)
{
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_sched *s = NULL;
	struct hearth_err err = { 0 };
	sp.n_parallel = 3;
	sp.n_ctx_seq = 128;
	sp.block_size = 8;
	sp.n_threads = 2;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	return s;
}

static bool same(const struct answer *a, const struct answer *b)
{
	return a->n == b->n && memcmp(a->ids, b->ids, sizeof a->ids) == 0 && memcmp(a->lp, b->lp, sizeof a->lp) == 0;
}

void test_steer_sched(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_cvec *cv = NULL;
	struct hearth_sched *s = NULL;
	int32_t *ids = NULL, n = 0;
	float *dir = NULL;
	const char *text = "Once upon a time, there was a little girl named Lily. She loved to play outside. One day";
	T_OK(hearth_model_load(&m, fixture(MODEL), &mp, &err), err);
	if (!m)
		return;
	const int32_t L = hearth_model_n_layer(m);
	dir = calloc((size_t)hearth_model_n_embd(m), sizeof *dir);
	T_OK(hearth_cvec_new(&cv, m, &err), err);
	T_OK(hearth_tokenize(m, text, strlen(text), true, false, &ids, &n, &err), err);
	if (!dir || !cv || n < 16)
		goto out;
	contrast(m, positive, 1.0f, dir, NULL, NULL);
	contrast(m, negative, -1.0f, dir, NULL, NULL);
	for (int32_t il = 1; il < L; il++)
		T_OK(hearth_cvec_add(cv, il, dir, 1.0f, &err), err);
	const struct hearth_steering st[3] = {
		{ .cvec = NULL },
		{ .cvec = cv, .strength = 2.0f },
		{ .cvec = cv, .strength = -1.5f, .layer_start = 2, .layer_end = 3 },
	};
	struct answer alone[3], together[3], again;

	for (int k = 0; k < 3; k++) { /* each alone, in a scheduler of its own */
		if (!(s = sched_new(m)))
			goto out;
		collect(submit(s, ids, n, &st[k]), &alone[k]);
		hearth_sched_free(s);
	}
	T_TRUE(!same(&alone[0], &alone[1]) && !same(&alone[0], &alone[2]) && !same(&alone[1], &alone[2]));
	/* all three in one batch: each its own answer, bit for bit */
	if (!(s = sched_new(m)))
		goto out;
	struct hearth_request *r[3];
	for (int k = 0; k < 3; k++)
		r[k] = submit(s, ids, n, &st[k]);
	for (int k = 0; k < 3; k++)
		collect(r[k], &together[k]);
	for (int k = 0; k < 3; k++)
		if (!same(&together[k], &alone[k]))
			T_FAIL("request %d (strength %.1f) in a shared batch differs from alone", k, st[k].strength);
	/* the prompt's blocks are cached now, for each steering apart: the
	 * same again gives the same, and strength 0 is the unsteered answer */
	collect(submit(s, ids, n, &st[1]), &again);
	T_TRUE(same(&again, &alone[1]));
	collect(submit(s, ids, n, &(struct hearth_steering){ .cvec = cv, .strength = 0.0f }), &again);
	T_TRUE(same(&again, &alone[0]));
	/* the same steering with its layer range spelled out */
	collect(submit(s, ids, n, &(struct hearth_steering){ .cvec = cv, .strength = 2.0f, .layer_start = 1,
							       .layer_end = L - 1 }), &again);
	T_TRUE(same(&again, &alone[1]));
	hearth_sched_free(s);
	/* unsteered first: its cached prompt blocks are not lent to a steered request */
	if (!(s = sched_new(m)))
		goto out;
	collect(submit(s, ids, n, &st[0]), &again);
	T_TRUE(same(&again, &alone[0]));
	collect(submit(s, ids, n, &st[2]), &again);
	T_TRUE(same(&again, &alone[2]));
	/* bad steering */
	struct hearth_request_params bad = hearth_request_default_params();
	struct hearth_request *rb = NULL;
	bad.prompt = ids;
	bad.n_prompt = n;
	bad.steering = (struct hearth_steering){ .cvec = cv, .strength = INFINITY };
	T_EQ_I64(hearth_sched_submit(s, &bad, &rb, &err), HEARTH_EINVAL);
	bad.steering = (struct hearth_steering){ .cvec = cv, .strength = 1.0f, .layer_start = L, .layer_end = 1 };
	T_EQ_I64(hearth_sched_submit(s, &bad, &rb, &err), HEARTH_EINVAL);
	T_TRUE(rb == NULL);
	hearth_sched_free(s);
out:
	free(ids);
	free(dir);
	hearth_cvec_free(cv);
	hearth_model_free(m);
}

/* ---- a vector from contrastive prompts ------------------------------------------ */

void test_steer_compute(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	int32_t *ids = NULL, n = 0;
	float *l = NULL;
	const char *pos[] = { "The cat sat on the mat and the cat said meow.", "Lily had a little kitten. The kitten liked to purr.",
			      "The cat and the kitten played with a ball of yarn." };
	const char *neg[] = { "The dog sat on the mat and the dog said woof.", "Lily had a little puppy. The puppy liked to bark.",
			      "The dog and the puppy played with a big stick." };
	const char *text = "Once upon a time, there was a little girl. She saw a";
	T_OK(hearth_model_load(&m, fixture(MODEL), &mp, &err), err);
	if (!m)
		return;
	const int32_t L = hearth_model_n_layer(m), E = hearth_model_n_embd(m);
	l = calloc((size_t)hearth_model_n_vocab(m), sizeof *l);
	T_OK(hearth_tokenize(m, text, strlen(text), true, false, &ids, &n, &err), err);
	const double s0 = shift(m, ids, n, NULL, l);
	for (int method = HEARTH_CVEC_MEAN; method <= HEARTH_CVEC_PCA && l; method++) {
		struct hearth_cvec *cv = NULL;
		T_OK(hearth_cvec_compute(&cv, m, pos, 3, neg, 3, method, 2, &err), err);
		if (!cv)
			continue;
		for (int32_t il = 1; il < L; il++) { /* unit directions, as llama.cpp writes them */
			double s = 0;
			for (int32_t j = 0; j < E; j++)
				s += (double)hearth_cvec_direction(cv, il)[j] * hearth_cvec_direction(cv, il)[j];
			T_NEAR(s, 1.0, 1e-4);
		}
		struct hearth_steering st = { .cvec = cv, .strength = 4.0f };
		const double up = shift(m, ids, n, &st, l);
		st.strength = -4.0f;
		const double down = shift(m, ids, n, &st, l);
		if (!(up > s0 + 0.2 && down < s0 - 0.2))
			T_FAIL("%s: positive - negative logits %.4f unsteered, %.4f at +4, %.4f at -4",
			       method ? "pca" : "mean", s0, up, down);
		/* deterministic: the same prompts give the same vector */
		struct hearth_cvec *again = NULL;
		T_OK(hearth_cvec_compute(&again, m, pos, 3, neg, 3, method, 1, &err), err);
		if (again)
			for (int32_t il = 1; il < L; il++)
				T_TRUE(memcmp(hearth_cvec_direction(again, il), hearth_cvec_direction(cv, il),
					      (size_t)E * sizeof(float)) == 0);
		hearth_cvec_free(again);
		hearth_cvec_free(cv);
	}
	/* refused: no prompts, unpaired pca, unknown method */
	struct hearth_cvec *cv = NULL;
	T_EQ_I64(hearth_cvec_compute(&cv, m, pos, 0, neg, 3, HEARTH_CVEC_MEAN, 1, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_cvec_compute(&cv, m, pos, 3, neg, 2, HEARTH_CVEC_PCA, 1, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_cvec_compute(&cv, m, pos, 3, neg, 3, 7, 1, &err), HEARTH_EINVAL);
	T_TRUE(cv == NULL);
	free(ids);
	free(l);
	hearth_model_free(m);
}
