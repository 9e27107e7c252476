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
 * tied head, token_embd.weight, never is). hearth has no mixture-of-experts
 * model yet, so every entry is one matrix with one count.
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
		const struct tensor *w[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down };
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
	for (int32_t i = 0; i < im->n; i++)
		n_sums += (size_t)ts[i]->ne[0];
	if (!(im->mem = calloc(n_sums ? n_sums : 1, sizeof *im->mem))) {
		rc = err_set(err, HEARTH_ENOMEM, "imatrix: out of memory for %zu sums", n_sums);
		goto fail;
	}
	n_sums = 0;
	for (int32_t i = 0; i < im->n; i++) {
		struct imatrix_entry *e = &im->e[i];
		e->name = ts[i]->name;
		e->n_in = ts[i]->ne[0];
		e->sums = im->mem + n_sums;
		n_sums += (size_t)e->n_in;
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
	free(im);
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
	if (n_in != e->n_in) {
		im->bad = im->bad ? im->bad : e->name;
		return;
	}
	for (int32_t t = 0; t < n_tokens; t++) {
		const float *row = x + (size_t)t * (size_t)n_in;
		for (int64_t j = 0; j < n_in; j++)
			e->sums[j] += row[j] * row[j];
	}
	e->count += n_tokens;
}

void hearth_imatrix_attach(struct hearth_imatrix *im, struct hearth_context *c)
{
	hearth_context_set_tap(c, imatrix_tap, im);
}

int hearth_imatrix_get(const struct hearth_imatrix *im, const char *weight, const float **sums, int64_t *n_in,
		       int64_t *count)
{
	const int32_t i = strmap_get(&im->index, weight, strlen(weight));
	if (i < 0)
		return HEARTH_ENOTFOUND;
	*sums = im->e[i].sums;
	*n_in = im->e[i].n_in;
	*count = im->e[i].count;
	return 0;
}

int hearth_imatrix_check(const struct hearth_imatrix *im, struct hearth_err *err)
{
	if (im->bad)
		return err_set(err, HEARTH_EINVAL, "imatrix: '%s' was fed an input of another width than its own: "
			       "the context runs another model", im->bad);
	for (int32_t i = 0; i < im->n; i++)
		for (int64_t j = 0; j < im->e[i].n_in; j++)
			if (!isfinite(im->e[i].sums[j]))
				return err_set(err, HEARTH_EINVAL, "imatrix: '%s' column %lld: the sum of squared "
					       "activations is %g", im->e[i].name, (long long)j, (double)im->e[i].sums[j]);
	return 0;
}
