/* tswiglu.c - the SwiGLU activation h = silu(g) u, forward and backward (see
 * train-ops.h). The forward is the inference's kernel (the same bits as
 * decoding); with sg = sigmoid(g):
 *
 *   dg = dh u sg (1 + g (1 - sg)),   du = dh g sg
 */
#include <math.h>
#include <string.h>

#include "../kern/kern.h"
#include "train-ops.h"

struct tswiglu_task {
	const float *g, *u, *dh;
	float *h, *dg, *du;
	int64_t n;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tswiglu_task *t = arg;
	const int64_t e0 = t->n * ith / nth, e1 = t->n * (ith + 1) / nth;
	memcpy(t->h + e0, t->g + e0, (size_t)(e1 - e0) * sizeof *t->h);
	kern_fns()->swiglu(t->h + e0, t->u + e0, e1 - e0);
}

void tswiglu_forward(struct pool *p, const float *g, const float *u, int64_t n, float *h)
{
	struct tswiglu_task t = { .g = g, .u = u, .h = h, .n = n };
	train_run(p, forward_run, &t, 8 * n);
}

static void backward_run(void *arg, int ith, int nth)
{
	const struct tswiglu_task *t = arg;
	for (int64_t e = t->n * ith / nth; e < t->n * (ith + 1) / nth; e++) {
		const float g = t->g[e], sg = 1.0f / (1.0f + expf(-g)), dh = t->dh[e];
		t->dg[e] = dh * t->u[e] * sg * (1.0f + g * (1.0f - sg));
		t->du[e] = dh * g * sg;
	}
}

void tswiglu_backward(struct pool *p, const float *g, const float *u, const float *dh, int64_t n, float *dg,
		      float *du)
{
	struct tswiglu_task t = { .g = g, .u = u, .dh = dh, .dg = dg, .du = du, .n = n };
	train_run(p, backward_run, &t, 16 * n);
}
