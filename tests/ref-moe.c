/* ref-moe.c - see ref-moe.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kern/kern.h"
#include "../src/tensor/qtype.h"
#include "ref-moe.h"

static double *dequant(const struct tensor *t)
{
	const int64_t n_in = t->ne[0], n_out = t->ne[1];
	double *d = malloc((size_t)(n_in * n_out) * sizeof *d);
	float *row = malloc((size_t)n_in * sizeof *row);
	for (int64_t r = 0; r < n_out; r++) {
		kern_ops_ref(t->type)->to_float((const char *)t->data + (size_t)r * qtype_row_size(t->type, n_in), row, n_in);
		for (int64_t i = 0; i < n_in; i++)
			d[r * n_in + i] = row[i];
	}
	free(row);
	return d;
}

void ref_moe_init(struct ref_moe *r, const struct hearth_model *m, int il)
{
	const int X = m->hp.n_expert;
	r->h = &m->hp;
	r->l = &m->layers[il];
	r->lo[0] = r->lo[1] = r->lo[2] = NULL;
	r->wr = dequant(&r->l->ffn_gate_inp);
	r->wg = calloc((size_t)X, sizeof *r->wg);
	r->wu = calloc((size_t)X, sizeof *r->wu);
	r->wd = calloc((size_t)X, sizeof *r->wd);
	for (int e = 0; e < X; e++) {
		r->wg[e] = dequant(&r->l->exp_gate[e]);
		r->wu[e] = dequant(&r->l->exp_up[e]);
		r->wd[e] = dequant(&r->l->exp_down[e]);
	}
}

void ref_moe_free(struct ref_moe *r)
{
	for (int e = 0; r->wg && e < r->h->n_expert; e++)
		free(r->wg[e]), free(r->wu[e]), free(r->wd[e]);
	free(r->wr), free(r->wg), free(r->wu), free(r->wd);
}

void ref_moe_route(const struct hparams *h, const double *logits, int32_t *ids, double *w)
{
	const int X = h->n_expert, K = h->n_expert_used;
	double s[512], mx = -INFINITY, z = 0;
	for (int e = 0; e < X; e++)
		mx = fmax(mx, logits[e]);
	for (int e = 0; e < X; e++)
		z += exp(logits[e] - mx);
	for (int e = 0; e < X; e++)
		s[e] = h->moe_gating == MOE_GATING_SOFTMAX ? exp(logits[e] - mx) / z
		       : h->moe_gating == MOE_GATING_SIGMOID ? 1 / (1 + exp(-logits[e])) : logits[e];
	for (int k = 0; k < K; k++) { /* the best not yet taken, the lower index among equals */
		int best = -1;
		for (int e = 0; e < X; e++) {
			bool taken = false;
			for (int j = 0; j < k; j++)
				taken = taken || ids[j] == e;
			if (!taken && (best < 0 || s[e] > s[best]))
				best = e;
		}
		ids[k] = best;
		w[k] = s[best];
	}
	if (h->moe_gating == MOE_GATING_SOFTMAX_CHOSEN) {
		const double top = w[0];
		double zc = 0;
		for (int k = 0; k < K; k++)
			zc += exp(w[k] - top);
		for (int k = 0; k < K; k++)
			w[k] = exp(w[k] - top) / zc;
	}
	if (h->moe_norm_w) {
		double sum = 0;
		for (int k = 0; k < K; k++)
			sum += w[k];
		for (int k = 0; k < K; k++)
			w[k] /= fmax(sum, 6.103515625e-5);
	}
	for (int k = 0; k < K; k++)
		w[k] *= h->moe_w_scale;
}

double ref_moe_act(enum moe_act act, double g, double u)
{
	if (act == MOE_ACT_SILU)
		return g / (1 + exp(-g)) * u;
	const double x = fmin(g, 7.0), y = fmax(-7.0, fmin(u, 7.0));
	return x / (1 + exp(-1.702 * x)) * (y + 1);
}

/* y[n_out] = W x (+ b) */
static void mv(const double *w, const double *x, int64_t n_in, int64_t n_out, const float *b, double *y)
{
	for (int64_t o = 0; o < n_out; o++) {
		double s = b ? b[o] : 0;
		for (int64_t j = 0; j < n_in; j++)
			s += w[o * n_in + j] * x[j];
		y[o] = s;
	}
}

/* y[n_out] += expert e's adapter product of x (lo NULL: nothing). */
static void mv_lora(const struct ref_moe_lora *lo, int e, const double *x, int64_t n_in, int64_t n_out, double *y)
{
	if (!lo)
		return;
	const double *a = lo->a + (size_t)e * (size_t)lo->rank * (size_t)n_in;
	const double *b = lo->b + (size_t)e * (size_t)n_out * (size_t)lo->rank;
	double u[256];
	for (int k = 0; k < lo->rank && k < 256; k++) {
		u[k] = 0;
		for (int64_t j = 0; j < n_in; j++)
			u[k] += a[(size_t)k * (size_t)n_in + (size_t)j] * x[j];
	}
	for (int64_t o = 0; o < n_out; o++)
		for (int k = 0; k < lo->rank && k < 256; k++)
			y[o] += lo->scale * b[(size_t)o * (size_t)lo->rank + (size_t)k] * u[k];
}

void ref_moe_run(const struct ref_moe *r, const double *x, int n, double *out, uint64_t *choice)
{
	const struct hparams *h = r->h;
	const struct layer *l = r->l;
	const int X = h->n_expert, K = h->n_expert_used;
	const int64_t E = h->n_embd, F = h->n_ff_exp;
	const float *bg = l->ffn_gate_exps_b.data, *bu = l->ffn_up_exps_b.data, *bd = l->ffn_down_exps_b.data;
	double *lg = malloc((size_t)X * sizeof *lg), *g = malloc((size_t)F * sizeof *g), *u = malloc((size_t)F * sizeof *u);
	double *y = malloc((size_t)E * sizeof *y), w[512];
	int32_t ids[512];
	for (int i = 0; i < n; i++) {
		const double *xi = x + (size_t)i * (size_t)E;
		double *o = out + (size_t)i * (size_t)E;
		mv(r->wr, xi, E, X, l->ffn_gate_inp_b.data, lg);
		ref_moe_route(h, lg, ids, w);
		memset(o, 0, (size_t)E * sizeof *o);
		for (int k = 0; k < K; k++) {
			const int e = ids[k];
			*choice = *choice * 1000003u + (uint64_t)e + 1;
			mv(r->wg[e], xi, E, F, bg ? bg + (size_t)e * (size_t)F : NULL, g);
			mv(r->wu[e], xi, E, F, bu ? bu + (size_t)e * (size_t)F : NULL, u);
			mv_lora(r->lo[0], e, xi, E, F, g);
			mv_lora(r->lo[1], e, xi, E, F, u);
			for (int64_t j = 0; j < F; j++)
				g[j] = ref_moe_act(h->moe_act, g[j], u[j]);
			mv(r->wd[e], g, F, E, bd ? bd + (size_t)e * (size_t)E : NULL, y);
			mv_lora(r->lo[2], e, g, F, E, y);
			for (int64_t j = 0; j < E; j++)
				o[j] += w[k] * y[j];
		}
	}
	free(lg), free(g), free(u), free(y);
}
