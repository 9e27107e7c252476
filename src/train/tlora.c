/* tlora.c - a LoRA delta on a frozen weight, forward and backward (see
 * train-ops.h). With u = x A^T (rank values per token):
 *
 *   y  += s u B^T                 (s = alpha / rank)
 *   dB += s dy^T u                dA += du^T x       with du = s dy B
 *   dx += du A
 *
 * Per-token work splits over the threads by token, dB by its rows, dA by
 * its columns: each element is summed in token order by one thread.
 */
#include "train-ops.h"

struct tlora_task {
	const struct tlora *l;
	const float *x, *u, *dy;
	float *du, *y, *dx;
	int n;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tlora_task *t = arg;
	const struct tlora *l = t->l;
	const int R = l->rank;
	for (int i = t->n * ith / nth; i < t->n * (ith + 1) / nth; i++) {
		const float *x = t->x + (size_t)i * (size_t)l->n_in;
		float *u = (float *)t->u + (size_t)i * (size_t)R, *y = t->y + (size_t)i * (size_t)l->n_out;
		for (int k = 0; k < R; k++)
			u[k] = train_dot(l->a + (size_t)k * (size_t)l->n_in, x, l->n_in);
		for (int64_t o = 0; o < l->n_out; o++)
			y[o] += l->scale * train_dot(l->b + (size_t)o * (size_t)R, u, R);
	}
}

void tlora_forward(struct pool *p, const struct tlora *l, const float *x, int n, float *u, float *y)
{
	struct tlora_task t = { .l = l, .x = x, .u = u, .y = y, .n = n };
	train_run(p, forward_run, &t, (int64_t)n * l->rank * (l->n_in + l->n_out));
}

/* du and dx of each token */
static void backward_tokens(void *arg, int ith, int nth)
{
	const struct tlora_task *t = arg;
	const struct tlora *l = t->l;
	const int R = l->rank;
	for (int i = t->n * ith / nth; i < t->n * (ith + 1) / nth; i++) {
		const float *dy = t->dy + (size_t)i * (size_t)l->n_out;
		float *du = t->du + (size_t)i * (size_t)R, *dx = t->dx + (size_t)i * (size_t)l->n_in;
		for (int k = 0; k < R; k++)
			du[k] = 0;
		for (int64_t o = 0; o < l->n_out; o++) {
			const float g = l->scale * dy[o], *b = l->b + (size_t)o * (size_t)R;
			for (int k = 0; k < R; k++)
				du[k] += g * b[k];
		}
		for (int k = 0; k < R; k++)
			train_axpy(dx, du[k], l->a + (size_t)k * (size_t)l->n_in, l->n_in);
	}
}

/* dB's rows o0 .. o1 and dA's columns j0 .. j1 of this thread */
static void backward_params(void *arg, int ith, int nth)
{
	const struct tlora_task *t = arg;
	const struct tlora *l = t->l;
	const int R = l->rank;
	const int64_t o0 = l->n_out * ith / nth, o1 = l->n_out * (ith + 1) / nth;
	const int64_t j0 = l->n_in * ith / nth, j1 = l->n_in * (ith + 1) / nth;
	for (int64_t o = o0; o < o1; o++) {
		float *gb = l->gb + (size_t)o * (size_t)R;
		for (int i = 0; i < t->n; i++) {
			const float g = l->scale * t->dy[(size_t)i * (size_t)l->n_out + (size_t)o];
			const float *u = t->u + (size_t)i * (size_t)R;
			for (int k = 0; k < R; k++)
				gb[k] += g * u[k];
		}
	}
	for (int i = 0; i < t->n; i++) {
		const float *x = t->x + (size_t)i * (size_t)l->n_in, *du = t->du + (size_t)i * (size_t)R;
		for (int k = 0; k < R; k++)
			train_axpy(l->ga + (size_t)k * (size_t)l->n_in + j0, du[k], x + j0, j1 - j0);
	}
}

void tlora_backward(struct pool *p, const struct tlora *l, const float *x, const float *u, const float *dy, int n,
		    float *du, float *dx)
{
	struct tlora_task t = { .l = l, .x = x, .u = u, .dy = dy, .du = du, .dx = dx, .n = n };
	const int64_t work = (int64_t)n * l->rank * (l->n_in + l->n_out);
	train_run(p, backward_tokens, &t, work);
	train_run(p, backward_params, &t, work);
}
