/* tmm.c - products with a frozen base weight, forward and backward (see
 * train-ops.h).
 *
 * The weight is read as its file stores it, dequantized a few rows at a time
 * into the calling thread's scratch; the activations stay f32. The forward
 * splits the output rows over the threads (each output element is one dot
 * product, whoever computes it); the backward splits the input columns, in
 * whole blocks of the weight's type, so that each thread dequantizes only
 * its own blocks of every row and adds the rows into its columns of dx in
 * row order: the same bits whatever the number of threads.
 */
#include <stddef.h>

#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "train-ops.h"

#define TMM_ROWS 16 /* weight rows dequantized at a time */

int64_t tmm_scratch_floats(int64_t n_in) { return TMM_ROWS * n_in; }

struct tmm_task {
	const struct tensor *w;
	const float *in;  /* x (forward) or dy (backward) */
	float *out;       /* y or dx */
	int n;
	float *scratch;
	int64_t per_thread;
};

/* sum a[i] b[i] with eight running sums (a fixed order: the same bits on any thread) */
static float dot(const float *a, const float *b, int64_t n)
{
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += a[i + k] * b[i + k];
	for (; i < n; i++)
		s[0] += a[i] * b[i];
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void forward_run(void *arg, int ith, int nth)
{
	const struct tmm_task *t = arg;
	const struct tensor *w = t->w;
	const int64_t n_in = w->ne[0], n_out = w->ne[1];
	const int64_t r0 = n_out * ith / nth, r1 = n_out * (ith + 1) / nth;
	const size_t row = qtype_row_size(w->type, n_in);
	const kern_to_float_fn to_float = kern_ops(w->type)->to_float;
	float *buf = t->scratch + (size_t)ith * (size_t)t->per_thread;

	for (int64_t c = r0; c < r1; c += TMM_ROWS) {
		const int nr = (int)(r1 - c < TMM_ROWS ? r1 - c : TMM_ROWS);
		for (int k = 0; k < nr; k++)
			to_float((const char *)w->data + (size_t)(c + k) * row, buf + (size_t)k * (size_t)n_in, n_in);
		for (int i = 0; i < t->n; i++) {
			const float *x = t->in + (size_t)i * (size_t)n_in;
			float *y = t->out + (size_t)i * (size_t)n_out + (size_t)c;
			for (int k = 0; k < nr; k++)
				y[k] = dot(buf + (size_t)k * (size_t)n_in, x, n_in);
		}
	}
}

/* dx[0..cw) += sum over k < nr of dy[k] w[k][0..cw), the rows in order k
 * (eight columns at a time held in registers across the rows) */
static void add_rows(const float *dy, const float *w, int nr, int64_t cw, float *dx)
{
	int64_t j = 0;
	for (; j + 8 <= cw; j += 8) {
		float s[8];
		for (int q = 0; q < 8; q++)
			s[q] = dx[j + q];
		for (int k = 0; k < nr; k++)
			for (int q = 0; q < 8; q++)
				s[q] += dy[k] * w[(size_t)k * (size_t)cw + (size_t)(j + q)];
		for (int q = 0; q < 8; q++)
			dx[j + q] = s[q];
	}
	for (; j < cw; j++) {
		float s = dx[j];
		for (int k = 0; k < nr; k++)
			s += dy[k] * w[(size_t)k * (size_t)cw + (size_t)j];
		dx[j] = s;
	}
}

static void backward_run(void *arg, int ith, int nth)
{
	const struct tmm_task *t = arg;
	const struct tensor *w = t->w;
	const int64_t n_in = w->ne[0], n_out = w->ne[1];
	const int64_t blck = qtype_info(w->type)->blck_size, nb = n_in / blck;
	const int64_t c0 = nb * ith / nth * blck, c1 = nb * (ith + 1) / nth * blck, cw = c1 - c0;
	const size_t row = qtype_row_size(w->type, n_in), off = qtype_row_size(w->type, c0);
	const kern_to_float_fn to_float = kern_ops(w->type)->to_float;
	float *buf = t->scratch + (size_t)ith * (size_t)t->per_thread;

	if (cw <= 0)
		return;
	for (int64_t r = 0; r < n_out; r += TMM_ROWS) {
		const int nr = (int)(n_out - r < TMM_ROWS ? n_out - r : TMM_ROWS);
		for (int k = 0; k < nr; k++)
			to_float((const char *)w->data + (size_t)(r + k) * row + off, buf + (size_t)k * (size_t)cw, cw);
		for (int i = 0; i < t->n; i++)
			add_rows(t->in + (size_t)i * (size_t)n_out + (size_t)r, buf, nr, cw,
				 t->out + (size_t)i * (size_t)n_in + (size_t)c0);
	}
}

void tmm_forward(struct pool *p, float *scratch, const struct tensor *w, const float *x, int n, float *y)
{
	struct tmm_task t = { w, x, y, n, scratch, tmm_scratch_floats(w->ne[0]) };
	train_run(p, forward_run, &t, (int64_t)n * w->ne[0] * w->ne[1]);
}

void tmm_backward(struct pool *p, float *scratch, const struct tensor *w, const float *dy, int n, float *dx)
{
	struct tmm_task t = { w, dy, dx, n, scratch, tmm_scratch_floats(w->ne[0]) };
	train_run(p, backward_run, &t, (int64_t)n * w->ne[0] * w->ne[1]);
}
