/* tsoftcap.c - soft-capping y = c tanh(x / c) (gemma's final logits), forward
 * and backward in place (see train-ops.h): dx = dy (1 - (y / c)^2).
 */
#include <math.h>

#include "train-ops.h"

struct tsoftcap_task {
	float *x;
	const float *y;
	int64_t n;
	float c;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tsoftcap_task *t = arg;
	const float inv = 1.0f / t->c;
	for (int64_t e = t->n * ith / nth; e < t->n * (ith + 1) / nth; e++)
		t->x[e] = t->c * tanhf(t->x[e] * inv);
}

void tsoftcap_forward(struct pool *p, float *x, int64_t n, float c)
{
	struct tsoftcap_task t = { .x = x, .n = n, .c = c };
	train_run(p, forward_run, &t, 20 * n);
}

static void backward_run(void *arg, int ith, int nth)
{
	const struct tsoftcap_task *t = arg;
	const float inv = 1.0f / t->c;
	for (int64_t e = t->n * ith / nth; e < t->n * (ith + 1) / nth; e++) {
		const float r = t->y[e] * inv;
		t->x[e] *= 1.0f - r * r;
	}
}

void tsoftcap_backward(struct pool *p, const float *y, float *dy, int64_t n, float c)
{
	struct tsoftcap_task t = { .x = dy, .y = y, .n = n, .c = c };
	train_run(p, backward_run, &t, 4 * n);
}
