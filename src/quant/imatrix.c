/*
 * imatrix.c - collecting an importance matrix as llama.cpp's llama-imatrix
 * does: a tap on the context (hearth_context_set_tap) receives the input of
 * every weight product, and for the weights of the transformer blocks (and
 * output.weight when asked) adds each token's squared activations to the
 * weight's per-column sums and counts the tokens.
 *
 * What llama-imatrix does and this copies: the sums are float, added token by
 * token in order; a product over fewer than 16 tokens is not collected (it
 * skips them to leave single-token decodes out); only names starting with
 * "blk." and, with process_output, exactly "output.weight" are collected (a
 * tied head, token_embd.weight, never is).
 *
 * Mixtures of experts: each stacked expert weight (blk.N.ffn_{gate,up,down}_exps,
 * n_expert matrices) has sums and a count per expert, fed by the expert tap
 * with the rows routed to each expert, as llama-imatrix collects its
 * MUL_MAT_ID products: from products of any size (no 16-token threshold),
 * and within one decode in its order, by slot (the router's choice rank),
 * then by token. The router (ffn_gate_inp) is an ordinary weight.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../model/model.h"
#include "imatrix.h"

#define IMATRIX_MIN_TOKENS 16 /* llama-imatrix's threshold */

struct hearth_imatrix_params hearth_imatrix_default_params(void)
{
	return (struct hearth_imatrix_params){ .chunk_size = 512, .process_output = false };
}

/* The weights collected: every block's products, and the output head when asked. */
static int32_t collect_list(const struct hearth_model *m, bool process_output, const struct tensor **ts)
{
	int32_t n = 0;
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		const struct tensor *w[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down,
					     &l->ffn_gate_inp, &l->ffn_gate_exps, &l->ffn_up_exps, &l->ffn_down_exps };
		for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
			if (!w[k]->data || !w[k]->name) /* an optional weight this model lacks */
				continue;
			if (ts)
				ts[n] = w[k];
			n++;
		}
	}
	if (process_output && m->output.name && !strcmp(m->output.name, "output.weight")) {
		if (ts)
			ts[n] = &m->output;
		n++;
	}
	return n;
}

int hearth_imatrix_new(struct hearth_imatrix **out, const struct hearth_model *m,
		       const struct hearth_imatrix_params *p, struct hearth_err *err)
{
	struct hearth_imatrix *im;
	const struct tensor **ts = NULL;
	size_t n_sums = 0;
	int rc;

	*out = NULL;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "imatrix: the model was loaded vocabulary-only");
	if (p && p->chunk_size < 1)
		return err_set(err, HEARTH_EINVAL, "imatrix: chunk size %d", p->chunk_size);
	if (!(im = calloc(1, sizeof *im)))
		return err_set(err, HEARTH_ENOMEM, "imatrix: out of memory");
	im->p = p ? *p : hearth_imatrix_default_params();
	im->n = collect_list(m, im->p.process_output, NULL);
	if (!(ts = malloc((size_t)im->n * sizeof *ts)) || !(im->e = calloc((size_t)im->n, sizeof *im->e)) ||
	    strmap_init(&im->index, (size_t)im->n)) {
		rc = err_set(err, HEARTH_ENOMEM, "imatrix: out of memory for %d weights", im->n);
		goto fail;
	}
	collect_list(m, im->p.process_output, ts);
	size_t n_counts = 0;
	for (int32_t i = 0; i < im->n; i++) { /* shapes of a loaded model: products cannot overflow */
		n_sums += (size_t)ts[i]->ne[0] * (size_t)ts[i]->ne[2];
		n_counts += (size_t)ts[i]->ne[2];
	}
	if (!(im->mem = calloc(n_sums ? n_sums : 1, sizeof *im->mem)) ||
	    !(im->counts = calloc(n_counts ? n_counts : 1, sizeof *im->counts))) {
		rc = err_set(err, HEARTH_ENOMEM, "imatrix: out of memory for %zu sums", n_sums);
		goto fail;
	}
	n_sums = n_counts = 0;
	for (int32_t i = 0; i < im->n; i++) {
		struct imatrix_entry *e = &im->e[i];
		e->name = ts[i]->name;
		e->n_in = ts[i]->ne[0];
		e->n_mat = (int32_t)ts[i]->ne[2];
		e->sums = im->mem + n_sums;
		e->counts = im->counts + n_counts;
		n_sums += (size_t)e->n_in * (size_t)e->n_mat;
		n_counts += (size_t)e->n_mat;
		if (strmap_put(&im->index, e->name, strlen(e->name), i) < 0) {
			rc = err_set(err, HEARTH_ENOMEM, "imatrix: out of memory");
			goto fail;
		}
	}
	free(ts);
	*out = im;
	return 0;
fail:
	free(ts);
	hearth_imatrix_free(im);
	return rc;
}

void hearth_imatrix_free(struct hearth_imatrix *im)
{
	if (!im)
		return;
	strmap_free(&im->index);
	free(im->e);
	free(im->mem);
	free(im->counts);
	free(im);
}

/* sums[j] += row[j]^2, in float as llama-imatrix adds. */
static void add_row(float *sums, const float *row, int64_t n_in)
{
	for (int64_t j = 0; j < n_in; j++)
		sums[j] += row[j] * row[j];
}

/* The tap: adds x's rows to the weight's sums. */
static void imatrix_tap(const char *weight, const float *x, int64_t n_in, int32_t n_tokens, void *user_data)
{
	struct hearth_imatrix *im = user_data;
	if (n_tokens < IMATRIX_MIN_TOKENS)
		return;
	const int32_t i = strmap_get(&im->index, weight, strlen(weight));
	if (i < 0)
		return;
	struct imatrix_entry *e = &im->e[i];
	if (n_in != e->n_in || e->n_mat != 1) {
		im->bad = im->bad ? im->bad : e->name;
		return;
	}
	for (int32_t t = 0; t < n_tokens; t++)
		add_row(e->sums, x + (size_t)t * (size_t)n_in, n_in);
	e->counts[0] += n_tokens;
}

/* The expert tap: adds the rows routed to expert to its sums, slot by slot. */
static void imatrix_expert_tap(const char *weight, int32_t expert, int32_t n_expert, const float *x, int64_t n_in,
			       int32_t n_rows, const int32_t *tokens, const int32_t *slots, void *user_data)
{
	struct hearth_imatrix *im = user_data;
	(void)tokens; /* ascending: the order within a slot */
	const int32_t i = strmap_get(&im->index, weight, strlen(weight));
	if (i < 0)
		return;
	struct imatrix_entry *e = &im->e[i];
	if (n_in != e->n_in || n_expert != e->n_mat || expert < 0 || expert >= n_expert) {
		im->bad = im->bad ? im->bad : e->name;
		return;
	}
	int32_t max_slot = 0;
	for (int32_t r = 0; r < n_rows; r++)
		max_slot = slots[r] > max_slot ? slots[r] : max_slot;
	float *sums = e->sums + (size_t)expert * (size_t)n_in;
	for (int32_t s = 0; s <= max_slot; s++)
		for (int32_t r = 0; r < n_rows; r++)
			if (slots[r] == s)
				add_row(sums, x + (size_t)r * (size_t)n_in, n_in);
	e->counts[expert] += n_rows;
}

void hearth_imatrix_attach(struct hearth_imatrix *im, struct hearth_context *c)
{
	hearth_context_set_tap(c, imatrix_tap, im);
	hearth_context_set_expert_tap(c, imatrix_expert_tap, im);
}

int hearth_imatrix_get_expert(const struct hearth_imatrix *im, const char *weight, int32_t expert,
			      const float **sums, int64_t *n_in, int64_t *count, int32_t *n_expert)
{
	const int32_t i = strmap_get(&im->index, weight, strlen(weight));
	if (i < 0)
		return HEARTH_ENOTFOUND;
	const struct imatrix_entry *e = &im->e[i];
	if (expert < 0 || expert >= e->n_mat)
		return HEARTH_EINVAL;
	*sums = e->sums + (size_t)expert * (size_t)e->n_in;
	*n_in = e->n_in;
	*count = e->counts[expert];
	*n_expert = e->n_mat;
	return 0;
}

int hearth_imatrix_get(const struct hearth_imatrix *im, const char *weight, const float **sums, int64_t *n_in,
		       int64_t *count)
{
	int32_t n_expert;
	return hearth_imatrix_get_expert(im, weight, 0, sums, n_in, count, &n_expert);
}

int hearth_imatrix_check(const struct hearth_imatrix *im, struct hearth_err *err)
{
	if (im->bad)
		return err_set(err, HEARTH_EINVAL, "imatrix: '%s' was fed an input of another width than its own: "
			       "the context runs another model", im->bad);
	for (int32_t i = 0; i < im->n; i++)
		for (int64_t j = 0; j < im->e[i].n_in * im->e[i].n_mat; j++)
			if (!isfinite(im->e[i].sums[j]))
				return err_set(err, HEARTH_EINVAL, "imatrix: '%s' column %lld: the sum of squared "
					       "activations is %g", im->e[i].name, (long long)j, (double)im->e[i].sums[j]);
	return 0;
}
