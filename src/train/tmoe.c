/* tmoe.c - a mixture-of-experts feed-forward block, forward and backward
 * (see train-ops.h; the inference's block: forward.c's ffn_moe, moe.h).
 *
 * For each token x (a row of the normed residual stream):
 *
 *   l = x Wr^T (+ br)                           router logits, one per expert
 *   ids = the top k of the scores, w = their weights (moe_route: softmax over
 *         all, sigmoid, or softmax over the chosen; renormalized; scaled)
 *   out = sum over slots k of w_k (y_k + bd[ids_k]),
 *   y_k = act(x Wg[e]^T + bg[e], x Wu[e]^T + bu[e]) Wd[e]^T,   e = ids_k
 *
 * The (token, slot) pairs are grouped by expert into rows, as the inference
 * groups them, so each expert's matrices are read once per pass for all the
 * rows routed to it. The choice of experts is piecewise constant in x: the
 * backward goes through the chosen experts and through the weights of the
 * chosen (into the router's logits and back through Wr), not through the
 * choice itself.
 *
 * Backward, per token, with d = d loss / d out:
 *   dw_k = d . (y_k + bd)          dy_k = w_k d
 *   the experts' products and activation back to dx (per row, then added
 *   to the row's token in slot order)
 *   dw -> d scores (scale, then the normalization's jacobian:
 *         ds_k = dw_k / S - (sum_j dw_j s_j) / S^2, S = sum_j s_j)
 *      -> d logits (softmax over all: p_e (ds_e - sum_j p_j ds_j), with ds
 *         zero off the chosen; sigmoid: s (1 - s) ds; softmax over the
 *         chosen: s_k (ds_k - sum_j s_j ds_j))
 *   dx += dl Wr
 *
 * The clamped SwiGLU of gpt-oss (MOE_ACT_SWIGLU_OAI), with a = 1.702:
 *   gc = min(g, 7), uc = clamp(u, -7, 7), h = gc sigmoid(a gc) (uc + 1)
 *   dg = dh (uc + 1) sg (1 + a gc (1 - sg)) where g < 7, else 0
 *   du = dh gc sg where -7 <= u <= 7, else 0            (sg = sigmoid(a gc))
 *
 * Adapters on the experts' stacks (tmoe_forward_lora): expert e's rows get
 * s B_e A_e x added to their gate, up and down products before the biases;
 * the backward runs tlora's on each expert's rows, so A_e and B_e take the
 * gradients of the rows routed to e only.
 *
 * The per-token loops run on the calling thread (their work is the
 * products' over n_embd); the products split over the pool as tmm does: the
 * same bits with any number of threads.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "../model/moe.h"
#include "train-ops.h"

#define TMOE_MAX_USED MOE_MAX_EXPERTS /* n_expert_used <= n_expert <= MOE_MAX_EXPERTS (moe_load_hparams) */

/* ---- the activation ------------------------------------------------------------ */

void tmoe_act_forward(enum moe_act act, const float *g, const float *u, int64_t n, float *h)
{
	memcpy(h, g, (size_t)n * sizeof *h);
	moe_act_rows(act, h, u, n); /* the inference's: the same bits as decoding */
}

void tmoe_act_backward(struct pool *p, enum moe_act act, const float *g, const float *u, const float *dh, int64_t n,
		       float *dg, float *du)
{
	if (act == MOE_ACT_SILU) {
		tswiglu_backward(p, g, u, dh, n, dg, du);
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		const float gc = g[i] < MOE_OAI_LIMIT ? g[i] : MOE_OAI_LIMIT;
		const float uc = u[i] < -MOE_OAI_LIMIT ? -MOE_OAI_LIMIT : u[i] > MOE_OAI_LIMIT ? MOE_OAI_LIMIT : u[i];
		const float sg = 1.0f / (1.0f + expf(-MOE_OAI_ALPHA * gc));
		dg[i] = g[i] < MOE_OAI_LIMIT ? dh[i] * (uc + 1.0f) * sg * (1.0f + MOE_OAI_ALPHA * gc * (1.0f - sg)) : 0.0f;
		du[i] = u[i] >= -MOE_OAI_LIMIT && u[i] <= MOE_OAI_LIMIT ? dh[i] * gc * sg : 0.0f;
	}
}

/* ---- the routing ---------------------------------------------------------------- */

/* The chosen experts' scores before normalization and scale (s[k]), and for
 * a softmax over all experts the probabilities p[X] (else p untouched). */
static void route_scores(const struct hparams *h, const float *logits, const int32_t *ids, double *s, float *p)
{
	const int X = h->n_expert, K = h->n_expert_used;
	double mx = -INFINITY, sum = 0;
	switch (h->moe_gating) {
	case MOE_GATING_SOFTMAX:
		for (int e = 0; e < X; e++)
			mx = logits[e] > mx ? logits[e] : mx;
		for (int e = 0; e < X; e++)
			sum += exp(logits[e] - mx);
		for (int e = 0; e < X; e++)
			p[e] = (float)(exp(logits[e] - mx) / sum);
		for (int k = 0; k < K; k++)
			s[k] = p[ids[k]];
		break;
	case MOE_GATING_SIGMOID:
		for (int k = 0; k < K; k++)
			s[k] = 1.0 / (1.0 + exp(-(double)logits[ids[k]]));
		break;
	case MOE_GATING_SOFTMAX_CHOSEN:
		for (int k = 0; k < K; k++)
			mx = logits[ids[k]] > mx ? logits[ids[k]] : mx;
		for (int k = 0; k < K; k++)
			sum += exp(logits[ids[k]] - mx);
		for (int k = 0; k < K; k++)
			s[k] = exp(logits[ids[k]] - mx) / sum;
		break;
	}
}

void tmoe_route_backward(const struct hparams *h, const float *logits, const int32_t *ids, const float *dw,
			 float *scratch, float *dlogits)
{
	const int X = h->n_expert, K = h->n_expert_used;
	double s[TMOE_MAX_USED], ds[TMOE_MAX_USED];
	assert(K <= TMOE_MAX_USED);
	route_scores(h, logits, ids, s, scratch);
	/* through the scale and the renormalization */
	double sum = 0, dot = 0;
	for (int k = 0; k < K; k++) {
		ds[k] = (double)dw[k] * h->moe_w_scale;
		sum += s[k];
		dot += ds[k] * s[k];
	}
	for (int k = 0; k < K; k++)
		if (h->moe_norm_w)
			ds[k] = (float)sum < MOE_NORM_MIN ? ds[k] / MOE_NORM_MIN : ds[k] / sum - dot / (sum * sum);
	/* through the scores */
	memset(dlogits, 0, (size_t)X * sizeof *dlogits);
	dot = 0;
	switch (h->moe_gating) {
	case MOE_GATING_SOFTMAX:
		for (int k = 0; k < K; k++)
			dot += s[k] * ds[k];
		for (int e = 0; e < X; e++)
			dlogits[e] = (float)(-scratch[e] * dot);
		for (int k = 0; k < K; k++)
			dlogits[ids[k]] = (float)(s[k] * (ds[k] - dot));
		break;
	case MOE_GATING_SIGMOID:
		for (int k = 0; k < K; k++)
			dlogits[ids[k]] = (float)(ds[k] * s[k] * (1 - s[k]));
		break;
	case MOE_GATING_SOFTMAX_CHOSEN:
		for (int k = 0; k < K; k++)
			dot += s[k] * ds[k];
		for (int k = 0; k < K; k++)
			dlogits[ids[k]] = (float)(s[k] * (ds[k] - dot));
		break;
	}
}

/* ---- the block ------------------------------------------------------------------- */

/* Groups the n tokens' (token, slot) pairs by expert (a->count, off, row, tok). */
static void group(const struct hparams *h, struct tmoe_acts *a, int32_t *next, int n)
{
	const int K = h->n_expert_used, X = h->n_expert;
	memset(a->count, 0, (size_t)X * sizeof *a->count);
	for (int q = 0; q < n * K; q++)
		a->count[a->ids[q]]++;
	for (int e = 0, at = 0; e < X; e++) {
		a->off[e] = at;
		at += a->count[e];
	}
	for (int e = 0; e < X; e++)
		next[e] = a->off[e];
	for (int q = 0; q < n * K; q++) {
		const int32_t r = a->row[q] = next[a->ids[q]]++;
		a->tok[r] = q / K;
	}
}

/* Adds expert e's bias b [n_expert][width] (if any) to each of its rows of y. */
static void add_bias(const struct tmoe_acts *a, const struct tensor *b, int X, int64_t width, float *y)
{
	if (!b->data)
		return;
	for (int e = 0; e < X; e++)
		for (int64_t r = a->off[e]; r < a->off[e] + a->count[e]; r++)
			for (int64_t j = 0; j < width; j++)
				y[r * width + j] += ((const float *)b->data)[e * width + j];
}

/* y's rows of each expert e += the adapter view lx[e]'s product of x's rows
 * (width n_in; u: each row's A x kept). */
static void lora_rows(struct pool *p, const struct tmoe_acts *a, const struct tlora *lx, int X, const float *x,
		      int64_t n_in, float *u, float *y, int64_t n_out)
{
	if (!lx)
		return;
	const int64_t R = lx[0].rank;
	for (int e = 0; e < X; e++)
		if (a->count[e])
			tlora_forward(p, &lx[e], x + (size_t)a->off[e] * (size_t)n_in, a->count[e], u + (size_t)a->off[e] * R,
				      y + (size_t)a->off[e] * (size_t)n_out);
}

/* The backward of lora_rows: each view's ga, gb += its rows'; dx rows += theirs. */
static void lora_rows_back(struct pool *p, const struct tmoe_acts *a, const struct tlora *lx, int X, const float *x,
			   int64_t n_in, const float *u, const float *dy, int64_t n_out, float *du, float *dx)
{
	if (!lx)
		return;
	const int64_t R = lx[0].rank;
	for (int e = 0; e < X; e++)
		if (a->count[e]) {
			const size_t o = (size_t)a->off[e];
			tlora_backward(p, &lx[e], x + o * (size_t)n_in, u + o * (size_t)R, dy + o * (size_t)n_out, a->count[e],
				       du + o * (size_t)R, dx + o * (size_t)n_in);
		}
}

void tmoe_forward(struct pool *p, float *mm, const struct hparams *h, const struct layer *l, const float *x, int n,
		  struct tmoe_acts *a, const struct tmoe_scratch *s, float *out)
{
	tmoe_forward_lora(p, mm, h, l, NULL, x, n, a, s, out);
}

void tmoe_forward_lora(struct pool *p, float *mm, const struct hparams *h, const struct layer *l,
		       const struct tmoe_lora *lo, const float *x, int n, struct tmoe_acts *a, const struct tmoe_scratch *s,
		       float *out)
{
	const struct tlora *lg = lo ? lo->x[0] : NULL, *lu = lo ? lo->x[1] : NULL, *ld = lo ? lo->x[2] : NULL;
	const int K = h->n_expert_used, X = h->n_expert;
	const int64_t E = h->n_embd, F = h->n_ff_exp, rows = (int64_t)n * K;
	const float *bd = l->ffn_down_exps_b.data;

	tmm_forward(p, mm, &l->ffn_gate_inp, x, n, a->logits);
	for (int i = 0; i < n; i++) {
		float *li = a->logits + (size_t)i * (size_t)X;
		if (l->ffn_gate_inp_b.data)
			for (int e = 0; e < X; e++)
				li[e] += ((const float *)l->ffn_gate_inp_b.data)[e];
		moe_route(h, li, s->route, a->ids + (size_t)i * K, a->w + (size_t)i * K);
	}
	float *xr = lg || lu ? a->xr : s->rows; /* kept for the adapters' backward */
	group(h, a, s->next, n);
	for (int64_t r = 0; r < rows; r++)
		memcpy(xr + r * E, x + (size_t)a->tok[r] * (size_t)E, (size_t)E * sizeof *xr);
	for (int e = 0; e < X; e++)
		if (a->count[e]) {
			tmm_forward(p, mm, &l->exp_gate[e], xr + (size_t)a->off[e] * E, a->count[e], a->g + (size_t)a->off[e] * F);
			tmm_forward(p, mm, &l->exp_up[e], xr + (size_t)a->off[e] * E, a->count[e], a->u + (size_t)a->off[e] * F);
		}
	lora_rows(p, a, lg, X, xr, E, lg ? a->lu[0] : NULL, a->g, F);
	lora_rows(p, a, lu, X, xr, E, lu ? a->lu[1] : NULL, a->u, F);
	add_bias(a, &l->ffn_gate_exps_b, X, F, a->g);
	add_bias(a, &l->ffn_up_exps_b, X, F, a->u);
	tmoe_act_forward(h->moe_act, a->g, a->u, rows * F, a->act);
	for (int e = 0; e < X; e++)
		if (a->count[e])
			tmm_forward(p, mm, &l->exp_down[e], a->act + (size_t)a->off[e] * F, a->count[e], a->y + (size_t)a->off[e] * E);
	lora_rows(p, a, ld, X, a->act, F, ld ? a->lu[2] : NULL, a->y, E);
	/* each token's experts weighted, added in the chosen order (as the inference) */
	for (int i = 0; i < n; i++) {
		float *o = out + (size_t)i * (size_t)E;
		for (int k = 0; k < K; k++) {
			const int32_t q = i * K + k, r = a->row[q];
			const float *y = a->y + (size_t)r * (size_t)E, *b = bd ? bd + (size_t)a->ids[q] * (size_t)E : NULL;
			for (int64_t j = 0; j < E; j++) {
				const float v = (b ? y[j] + b[j] : y[j]) * a->w[q];
				o[j] = k ? o[j] + v : v;
			}
		}
	}
}

/* s->rows (the rows' d loss / d their output) -> d loss / d the rows' input (s->rows again). */
static void experts_backward(struct pool *p, float *mm, const struct hparams *h, const struct layer *l,
			     const struct tmoe_lora *lo, const struct tmoe_acts *a, const struct tmoe_scratch *s, int n)
{
	const struct tlora *lg = lo ? lo->x[0] : NULL, *lu = lo ? lo->x[1] : NULL, *ld = lo ? lo->x[2] : NULL;
	const int X = h->n_expert;
	const int64_t E = h->n_embd, F = h->n_ff_exp, rows = (int64_t)n * h->n_expert_used;
	memset(s->dact, 0, (size_t)rows * (size_t)F * sizeof(float));
	for (int e = 0; e < X; e++)
		if (a->count[e])
			tmm_backward(p, mm, &l->exp_down[e], s->rows + (size_t)a->off[e] * E, a->count[e],
				     s->dact + (size_t)a->off[e] * F);
	lora_rows_back(p, a, ld, X, a->act, F, ld ? a->lu[2] : NULL, s->rows, E, s->ldu, s->dact);
	tmoe_act_backward(p, h->moe_act, a->g, a->u, s->dact, rows * F, s->dg, s->du);
	memset(s->rows, 0, (size_t)rows * (size_t)E * sizeof(float));
	for (int e = 0; e < X; e++)
		if (a->count[e]) {
			float *dx = s->rows + (size_t)a->off[e] * E;
			tmm_backward(p, mm, &l->exp_gate[e], s->dg + (size_t)a->off[e] * F, a->count[e], dx);
			tmm_backward(p, mm, &l->exp_up[e], s->du + (size_t)a->off[e] * F, a->count[e], dx);
		}
	lora_rows_back(p, a, lg, X, a->xr, E, lg ? a->lu[0] : NULL, s->dg, F, s->ldu, s->rows);
	lora_rows_back(p, a, lu, X, a->xr, E, lu ? a->lu[1] : NULL, s->du, F, s->ldu, s->rows);
}

void tmoe_backward(struct pool *p, float *mm, const struct hparams *h, const struct layer *l, const struct tmoe_acts *a,
		   const float *dout, int n, const struct tmoe_scratch *s, float *dx)
{
	tmoe_backward_lora(p, mm, h, l, NULL, a, dout, n, s, dx);
}

void tmoe_backward_lora(struct pool *p, float *mm, const struct hparams *h, const struct layer *l,
			const struct tmoe_lora *lo, const struct tmoe_acts *a, const float *dout, int n,
			const struct tmoe_scratch *s, float *dx)
{
	const int K = h->n_expert_used, X = h->n_expert;
	const int64_t E = h->n_embd;
	const float *bd = l->ffn_down_exps_b.data;

	/* d weights, and the rows' output gradients w_k d */
	for (int q = 0; q < n * K; q++) {
		const float *d = dout + (size_t)(q / K) * (size_t)E, *y = a->y + (size_t)a->row[q] * (size_t)E;
		const float *b = bd ? bd + (size_t)a->ids[q] * (size_t)E : NULL;
		float *dy = s->rows + (size_t)a->row[q] * (size_t)E;
		double dot = 0;
		for (int64_t j = 0; j < E; j++) {
			dot += (double)d[j] * (b ? y[j] + b[j] : y[j]);
			dy[j] = d[j] * a->w[q];
		}
		s->dw[q] = (float)dot;
	}
	experts_backward(p, mm, h, l, lo, a, s, n);
	/* each token's rows, added in slot order */
	for (int i = 0; i < n; i++) {
		float *o = dx + (size_t)i * (size_t)E;
		for (int k = 0; k < K; k++) {
			const float *r = s->rows + (size_t)a->row[i * K + k] * (size_t)E;
			for (int64_t j = 0; j < E; j++)
				o[j] = k ? o[j] + r[j] : r[j];
		}
	}
	/* the routing weights: into the logits, back through the router */
	for (int i = 0; i < n; i++)
		tmoe_route_backward(h, a->logits + (size_t)i * (size_t)X, a->ids + (size_t)i * K, s->dw + (size_t)i * K,
				    s->route, s->dlogits + (size_t)i * (size_t)X);
	tmm_backward(p, mm, &l->ffn_gate_inp, s->dlogits, n, dx);
}
