/* tattn.c - causal attention with grouped keys, forward and backward (see
 * train-ops.h). For query row i of head h (key head kh = h / G):
 *
 *   p_j = softmax_j(s_j),  s_j = scale q_i . k_j   (j = lo[i] .. i)
 *   o_i = sum_j p_j v_j
 *
 *   dp_j = do_i . v_j,  ds_j = p_j (dp_j - sum_k p_k dp_k)
 *   dq_i = scale sum_j ds_j k_j
 *
 * Soft-capped scores (gemma2): s_j = c tanh(scale q_i . k_j / c), and ds_j
 * takes the factor 1 - (s_j / c)^2 before it reaches q and k. A sink
 * (gpt-oss): the head's logit z joins the softmax's denominator as a key
 * without a value, p_j = exp(s_j) / (sum_k exp(s_k) + exp(z)); the formulas
 * above hold as they are (the sink's dp is 0), and z gets no gradient (it
 * is frozen). A sliding window is the caller's lo[i].
 *   dk_j = scale sum_(h in kh's group, i sees j) ds_ij q_i
 *   dv_j = sum_(h in kh's group, i sees j) p_ij do_i
 *
 * The backward recomputes the probabilities (the forward keeps none between
 * layers). Rows (h, i) are split over the threads for the forward and for
 * dq; rows (kh, j) for dk and dv, which sum over their group's queries in a
 * fixed order: no two threads write one element.
 */
#include <math.h>

#include "train-ops.h"

struct tattn_task {
	const struct tattn *a;
	const float *q, *k, *v, *do_;
	float *o, *dq, *dk, *dv;
};

/* Row i's head h of x [n][nh][d]. */
static const float *row(const float *x, int i, int nh, int h, int d)
{
	return x + ((size_t)i * (size_t)nh + (size_t)h) * (size_t)d;
}

/* The score of query (h, i) for key j (soft-capped when the layer caps). */
static float score(const struct tattn *a, const float *qi, const float *k, int kh, int j)
{
	const float s = train_dot(qi, row(k, j, a->n_kv, kh, a->dk), a->dk) * a->scale;
	return a->softcap > 0 ? a->softcap * tanhf(s / a->softcap) : s;
}

/* Row (h, i)'s probabilities into a->p (positions lo[i] .. i). */
static float *probs(const struct tattn *a, const float *q, const float *k, int h, int i)
{
	const int kh = h / (a->n_head / a->n_kv);
	float *p = a->p + ((size_t)h * (size_t)a->n + (size_t)i) * (size_t)a->n;
	const float *qi = row(q, i, a->n_head, h, a->dk);
	float mx = a->sinks ? a->sinks[h] : -INFINITY;
	for (int j = a->lo[i]; j <= i; j++) {
		p[j] = score(a, qi, k, kh, j);
		mx = p[j] > mx ? p[j] : mx;
	}
	double sum = a->sinks ? exp((double)a->sinks[h] - mx) : 0;
	for (int j = a->lo[i]; j <= i; j++) {
		p[j] = expf(p[j] - mx);
		sum += p[j];
	}
	const float inv = (float)(1.0 / sum);
	for (int j = a->lo[i]; j <= i; j++)
		p[j] *= inv;
	return p;
}

static void forward_run(void *arg, int ith, int nth)
{
	const struct tattn_task *t = arg;
	const struct tattn *a = t->a;
	const int64_t rows = (int64_t)a->n_head * a->n, G = a->n_head / a->n_kv;
	for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++) {
		const int h = (int)(r / a->n), i = (int)(r % a->n), kh = (int)(h / G);
		const float *p = probs(a, t->q, t->k, h, i);
		float *o = t->o + ((size_t)i * (size_t)a->n_head + (size_t)h) * (size_t)a->dv;
		for (int d = 0; d < a->dv; d++)
			o[d] = 0;
		for (int j = a->lo[i]; j <= i; j++) {
			train_axpy(o, p[j], row(t->v, j, a->n_kv, kh, a->dv), a->dv);
		}
	}
}

/* the multiply-adds of a forward: each row over up to n positions, q . k and p v */
static int64_t work(const struct tattn *a)
{
	return (int64_t)a->n_head * a->n * a->n / 2 * (a->dk + a->dv);
}

void tattn_forward(struct pool *p, const struct tattn *a, const float *q, const float *k, const float *v, float *o)
{
	struct tattn_task t = { .a = a, .q = q, .k = k, .v = v, .o = o };
	train_run(p, forward_run, &t, work(a));
}

/* Rows (h, i): probabilities, the scores' gradients, dq. */
static void backward_queries(void *arg, int ith, int nth)
{
	const struct tattn_task *t = arg;
	const struct tattn *a = t->a;
	const int64_t rows = (int64_t)a->n_head * a->n, G = a->n_head / a->n_kv;
	for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++) {
		const int h = (int)(r / a->n), i = (int)(r % a->n), kh = (int)(h / G);
		const float *p = probs(a, t->q, t->k, h, i), *doi = row(t->do_, i, a->n_head, h, a->dv);
		float *ds = a->ds + ((size_t)h * (size_t)a->n + (size_t)i) * (size_t)a->n;
		double pdp = 0;
		for (int j = a->lo[i]; j <= i; j++) {
			ds[j] = train_dot(doi, row(t->v, j, a->n_kv, kh, a->dv), a->dv); /* dp_j for now */
			pdp += (double)p[j] * ds[j];
		}
		float *dq = t->dq + ((size_t)i * (size_t)a->n_head + (size_t)h) * (size_t)a->dk;
		for (int d = 0; d < a->dk; d++)
			dq[d] = 0;
		const float *qi = row(t->q, i, a->n_head, h, a->dk);
		for (int j = a->lo[i]; j <= i; j++) {
			ds[j] = p[j] * (ds[j] - (float)pdp);
			if (a->softcap > 0) {
				const float y = score(a, qi, t->k, kh, j) / a->softcap;
				ds[j] *= 1.0f - y * y;
			}
			train_axpy(dq, ds[j] * a->scale, row(t->k, j, a->n_kv, kh, a->dk), a->dk);
		}
	}
}

/* Rows (kh, j): dk and dv. */
static void backward_keys(void *arg, int ith, int nth)
{
	const struct tattn_task *t = arg;
	const struct tattn *a = t->a;
	const int64_t rows = (int64_t)a->n_kv * a->n;
	const int G = a->n_head / a->n_kv;
	for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++) {
		const int kh = (int)(r / a->n), j = (int)(r % a->n);
		float *dk = (float *)row(t->dk, j, a->n_kv, kh, a->dk), *dv = (float *)row(t->dv, j, a->n_kv, kh, a->dv);
		for (int d = 0; d < a->dk; d++)
			dk[d] = 0;
		for (int d = 0; d < a->dv; d++)
			dv[d] = 0;
		for (int h = kh * G; h < (kh + 1) * G; h++)
			for (int i = j; i < a->n; i++) {
				if (a->lo[i] > j)
					continue;
				const size_t at = ((size_t)h * (size_t)a->n + (size_t)i) * (size_t)a->n + (size_t)j;
				const float gs = a->ds[at] * a->scale, pp = a->p[at];
				train_axpy(dk, gs, row(t->q, i, a->n_head, h, a->dk), a->dk);
				train_axpy(dv, pp, row(t->do_, i, a->n_head, h, a->dv), a->dv);
			}
	}
}

void tattn_backward(struct pool *p, const struct tattn *a, const float *q, const float *k, const float *v,
		    const float *do_, float *dq, float *dk, float *dv)
{
	struct tattn_task t = { .a = a, .q = q, .k = k, .v = v, .do_ = do_, .dq = dq, .dk = dk, .dv = dv };
	train_run(p, backward_queries, &t, 2 * work(a));
	train_run(p, backward_keys, &t, work(a));
}
