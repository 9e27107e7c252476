/* tgeglu.c - the GELU-gated activation h = gelu(g) u (gemma), forward and
 * backward (see train-ops.h). The forward is the inference's kernel, GELU in
 * its tanh form written as a sigmoid: gelu(g) = g sigmoid(z) with
 * z = 2 sqrt(2/pi) (g + 0.044715 g^3). With sz = sigmoid(z):
 *
 *   gelu'(g) = sz + g sz (1 - sz) dz/dg,  dz/dg = 2 sqrt(2/pi) (1 + 3 0.044715 g^2)
 *   dg = dh u gelu'(g),  du = dh gelu(g)
 */
#include <math.h>
#include <string.h>

#include "../kern/kern.h"
#include "train-ops.h"

#define TGELU_K 1.5957691216f /* 2 sqrt(2/pi), the kernel's constant */
#define TGELU_C 0.044715f

struct tgeglu_task {
	const float *g, *u, *dh;
	float *h, *dg, *du;
	int64_t n;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tgeglu_task *t = arg;
	const int64_t e0 = t->n * ith / nth, e1 = t->n * (ith + 1) / nth;
	memcpy(t->h + e0, t->g + e0, (size_t)(e1 - e0) * sizeof *t->h);
	kern_fns()->geglu(t->h + e0, t->u + e0, e1 - e0);
}

void tgeglu_forward(struct pool *p, const float *g, const float *u, int64_t n, float *h)
{
	struct tgeglu_task t = { .g = g, .u = u, .h = h, .n = n };
	train_run(p, forward_run, &t, 10 * n);
}

static void backward_run(void *arg, int ith, int nth)
{
	const struct tgeglu_task *t = arg;
	for (int64_t e = t->n * ith / nth; e < t->n * (ith + 1) / nth; e++) {
		const float g = t->g[e], z = TGELU_K * (g + TGELU_C * g * g * g), sz = 1.0f / (1.0f + expf(-z));
		const float dz = TGELU_K * (1.0f + 3.0f * TGELU_C * g * g), dh = t->dh[e];
		t->dg[e] = dh * t->u[e] * (sz + g * sz * (1.0f - sz) * dz);
		t->du[e] = dh * g * sz;
	}
}

void tgeglu_backward(struct pool *p, const float *g, const float *u, const float *dh, int64_t n, float *dg,
		     float *du)
{
	struct tgeglu_task t = { .g = g, .u = u, .dh = dh, .dg = dg, .du = du, .n = n };
	train_run(p, backward_run, &t, 20 * n);
}
