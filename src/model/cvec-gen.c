/*
 * cvec-gen.c - a control vector from contrastive prompts (hearth_cvec_compute).
 *
 * The hidden state after block N is read through the matmul tap where the
 * next product takes it: blk.(N+1)'s attention projection sees
 * rms_norm(x_N) * attn_norm, the output head rms_norm(x_last) * output_norm.
 * Dividing the gain out leaves x_N / rms(x_N): the residual's direction, with
 * its per-token scale removed. Per prompt the states are averaged over its
 * tokens (BOS left out); directions are then unit length, as llama.cpp's
 * cvector-generator writes them, so only their direction matters.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "cvec.h"
#include "model.h"

#define PCA_ITERS 200

/* What the tap gathers for the prompt being run: per N in 1..L-1 the sum of
 * its tokens' states. */
struct gather {
	const struct hearth_model *m;
	double *sum;     /* [L][E] */
	int32_t skip;    /* leading rows not counted (BOS) */
};

/* The block N whose output weight's input is, or -1. */
static int32_t state_layer(const struct hearth_model *m, const char *weight, const float **gain)
{
	const int32_t L = m->hp.n_layer;
	for (int32_t il = 2; il < L; il++)
		if (!strcmp(weight, m->layers[il].wq.name)) {
			*gain = m->layers[il].attn_norm.data;
			return il - 1;
		}
	if (!strcmp(weight, m->output.name)) {
		*gain = m->output_norm.data;
		return L - 1;
	}
	return -1;
}

static void gather_tap(const char *weight, const float *x, int64_t n_in, int32_t n_tokens, void *user_data)
{
	struct gather *g = user_data;
	const float *gain = NULL;
	const int32_t N = state_layer(g->m, weight, &gain);
	if (N < 1 || n_in != g->m->hp.n_embd)
		return;
	double *s = g->sum + (size_t)N * (size_t)n_in;
	for (int32_t t = g->skip; t < n_tokens; t++)
		for (int64_t j = 0; j < n_in; j++) {
			const float w = gain ? gain[j] : 1.0f;
			s[j] += fabsf(w) > 1e-12f ? (double)x[(size_t)t * (size_t)n_in + (size_t)j] / w : 0.0;
		}
}

/* Runs prompt through c; its per-layer mean states into mean ([L][E]). */
static int prompt_states(struct hearth_context *c, struct gather *g, const char *text, double *mean,
			 struct hearth_err *err)
{
	const int32_t L = g->m->hp.n_layer, E = g->m->hp.n_embd;
	int32_t *ids = NULL, n = 0;
	int rc = hearth_tokenize(g->m, text, strlen(text), true, false, &ids, &n, err);
	if (rc)
		return rc;
	g->skip = n > 1 && ids[0] == hearth_token_bos(g->m) ? 1 : 0;
	if (n - g->skip < 1 || n > hearth_context_n_ctx(c)) {
		rc = err_set(err, HEARTH_EINVAL, "steer: the prompt \"%.40s\" has %d tokens (1 to %d fit)", text, n,
			     hearth_context_n_ctx(c));
		goto out;
	}
	memset(g->sum, 0, (size_t)L * (size_t)E * sizeof *g->sum);
	hearth_context_truncate(c, 0);
	if ((rc = hearth_decode(c, ids, n, true, err))) /* all logits: the head sees every row */
		goto out;
	for (size_t k = 0; k < (size_t)L * (size_t)E; k++)
		mean[k] = g->sum[k] / (n - g->skip);
out:
	free(ids);
	return rc;
}

static void unit(double *v, int64_t n)
{
	double s = 0;
	for (int64_t j = 0; j < n; j++)
		s += v[j] * v[j];
	if (s > 0)
		for (int64_t j = 0; j < n; j++)
			v[j] /= sqrt(s);
}

/* The first principal component of the rows d (n of E), by power iteration
 * on d^T d, signed to agree with mean. Into v. */
static void pca(const double *d, int32_t n, int64_t E, const double *mean, double *v, double *tmp)
{
	memcpy(v, mean, (size_t)E * sizeof *v);
	unit(v, E);
	for (int it = 0; it < PCA_ITERS; it++) {
		memset(tmp, 0, (size_t)E * sizeof *tmp);
		for (int32_t i = 0; i < n; i++) {
			double p = 0;
			for (int64_t j = 0; j < E; j++)
				p += d[(size_t)i * (size_t)E + (size_t)j] * v[j];
			for (int64_t j = 0; j < E; j++)
				tmp[j] += p * d[(size_t)i * (size_t)E + (size_t)j];
		}
		memcpy(v, tmp, (size_t)E * sizeof *v);
		unit(v, E);
	}
	double dot = 0;
	for (int64_t j = 0; j < E; j++)
		dot += v[j] * mean[j];
	if (dot < 0)
		for (int64_t j = 0; j < E; j++)
			v[j] = -v[j];
}

int hearth_cvec_compute(struct hearth_cvec **out, struct hearth_model *m, const char *const *pos, int32_t n_pos,
			const char *const *neg, int32_t n_neg, int method, int32_t n_threads, struct hearth_err *err)
{
	const int32_t L = m->hp.n_layer;
	const int64_t E = m->hp.n_embd;
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_cvec *cv = NULL;
	double *pos_states = NULL, *neg_states = NULL, *one = NULL, *v = NULL, *tmp = NULL, *d = NULL;
	struct gather g = { .m = m };
	int rc;

	*out = NULL;
	if (method != HEARTH_CVEC_MEAN && method != HEARTH_CVEC_PCA)
		return err_set(err, HEARTH_EINVAL, "steer: unknown method %d", method);
	if (n_pos < 1 || n_neg < 1 || n_pos > 100000 || n_neg > 100000)
		return err_set(err, HEARTH_EINVAL, "steer: %d positive and %d negative prompts (1 to 100000 each)", n_pos,
			       n_neg);
	if (method == HEARTH_CVEC_PCA && n_pos != n_neg)
		return err_set(err, HEARTH_EINVAL, "steer: pca pairs the prompts: %d positive, %d negative", n_pos, n_neg);
	if (L < 2)
		return err_set(err, HEARTH_EINVAL, "steer: the model has %d layer: nothing to steer", L);
	const size_t LE = (size_t)L * (size_t)E;
	const size_t n_keep = method == HEARTH_CVEC_PCA ? (size_t)n_pos : 1; /* per-prompt states kept */
	pos_states = calloc(n_keep * LE, sizeof *pos_states);
	neg_states = calloc(n_keep * LE, sizeof *neg_states);
	one = calloc(LE, sizeof *one);
	g.sum = calloc(LE, sizeof *g.sum);
	v = calloc((size_t)E, sizeof *v);
	tmp = calloc((size_t)E, sizeof *tmp);
	d = calloc(n_keep * (size_t)E, sizeof *d);
	if (!pos_states || !neg_states || !one || !g.sum || !v || !tmp || !d) {
		rc = err_set(err, HEARTH_ENOMEM, "steer: out of memory");
		goto out;
	}
	cp.n_threads = n_threads;
	cp.n_ctx = 512;
	if ((rc = hearth_context_new(&c, m, &cp, err)) || (rc = hearth_cvec_new(&cv, m, err)))
		goto out;
	hearth_context_set_tap(c, gather_tap, &g);
	for (int side = 0; side < 2; side++) {
		const char *const *texts = side ? neg : pos;
		const int32_t n = side ? n_neg : n_pos;
		double *states = side ? neg_states : pos_states;
		for (int32_t i = 0; i < n; i++) {
			if ((rc = prompt_states(c, &g, texts[i], one, err)))
				goto out;
			double *dst = states + (n_keep > 1 ? (size_t)i * LE : 0);
			for (size_t k = 0; k < LE; k++)
				dst[k] += n_keep > 1 ? one[k] : one[k] / n;
		}
	}
	for (int32_t N = 1; N < L; N++) {
		double *mean = one; /* reused: the mean difference of layer N */
		for (int64_t j = 0; j < E; j++) {
			double a = 0, b = 0;
			for (size_t i = 0; i < n_keep; i++) {
				a += pos_states[i * LE + (size_t)N * (size_t)E + (size_t)j];
				b += neg_states[i * LE + (size_t)N * (size_t)E + (size_t)j];
			}
			mean[j] = (a - b) / (double)n_keep;
		}
		if (method == HEARTH_CVEC_PCA) {
			/* the pairs' differences at layer N */
			for (size_t i = 0; i < n_keep; i++)
				for (int64_t j = 0; j < E; j++)
					d[i * (size_t)E + (size_t)j] = pos_states[i * LE + (size_t)N * (size_t)E + (size_t)j] -
								       neg_states[i * LE + (size_t)N * (size_t)E + (size_t)j];
			pca(d, (int32_t)n_keep, E, mean, v, tmp);
		} else {
			memcpy(v, mean, (size_t)E * sizeof *v);
			unit(v, E);
		}
		float *dir = cv->dir + (size_t)N * (size_t)E;
		for (int64_t j = 0; j < E; j++)
			dir[j] = (float)v[j];
	}
	*out = cv;
	cv = NULL;
out:
	hearth_context_free(c);
	hearth_cvec_free(cv);
	free(pos_states);
	free(neg_states);
	free(one);
	free(g.sum);
	free(v);
	free(tmp);
	free(d);
	return rc;
}
