/* tnorm.c - RMS norm, forward and backward (see train-ops.h).
 *
 *   y_j = x_j r w_j,  r = (sum_k x_k^2 / d + eps)^(-1/2)
 *   dx_j = r w_j dy_j - x_j r^3 / d * sum_k dy_k w_k x_k
 *
 * The forward is the inference's block_rms_norm, so that the training pass
 * computes what decoding computes; the backward's sums are in double.
 */
#include <math.h>

#include "../model/blocks.h"
#include "train-ops.h"

struct tnorm_task {
	const float *x, *w, *dy;
	float *out;
	int n;
	int64_t d;
	float eps;
	bool add;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tnorm_task *t = arg;
	for (int i = t->n * ith / nth; i < t->n * (ith + 1) / nth; i++)
		block_rms_norm(t->x + (size_t)i * (size_t)t->d, t->w, t->out + (size_t)i * (size_t)t->d, t->d, t->eps);
}

void tnorm_forward(struct pool *p, const float *x, const float *w, int n, int64_t d, float eps, float *y)
{
	struct tnorm_task t = { .x = x, .w = w, .out = y, .n = n, .d = d, .eps = eps };
	train_run(p, forward_run, &t, (int64_t)n * d);
}

static void backward_row(const float *x, const float *w, const float *dy, int64_t d, float eps, bool add, float *dx)
{
	double ss = 0, gx = 0;
	for (int64_t j = 0; j < d; j++) {
		ss += (double)x[j] * x[j];
		gx += (double)dy[j] * (w ? w[j] : 1.0f) * x[j];
	}
	const double r = 1.0 / sqrt(ss / (double)d + eps), c = gx * r * r * r / (double)d;
	for (int64_t j = 0; j < d; j++) {
		const float g = (float)(r * (w ? w[j] : 1.0f) * dy[j] - c * x[j]);
		dx[j] = add ? dx[j] + g : g;
	}
}

static void backward_run(void *arg, int ith, int nth)
{
	const struct tnorm_task *t = arg;
	for (int i = t->n * ith / nth; i < t->n * (ith + 1) / nth; i++) {
		const size_t o = (size_t)i * (size_t)t->d;
		backward_row(t->x + o, t->w, t->dy + o, t->d, t->eps, t->add, t->out + o);
	}
}

void tnorm_backward(struct pool *p, const float *x, const float *w, const float *dy, int n, int64_t d, float eps,
		    bool add, float *dx)
{
	struct tnorm_task t = { .x = x, .w = w, .dy = dy, .out = dx, .n = n, .d = d, .eps = eps, .add = add };
	train_run(p, backward_run, &t, 4 * (int64_t)n * d);
}
