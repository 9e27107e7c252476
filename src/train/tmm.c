/* tmm.c - products with a frozen base weight, forward and backward (see
 * train-ops.h).
 *
 * The weight is read as its file stores it, dequantized a panel of rows at a
 * time into the calling thread's scratch; the activations stay f32. The
 * products over a panel are the kernels' gemm_nt / gemm_nn (src/kern/
 * gemm-f32.h: register-blocked tiles of tokens x rows or columns, chosen for
 * the CPU), whose every output element is one sum in a fixed order. The
 * forward splits the output rows over the threads (each output element is a
 * sum over the input index, whoever computes it); the backward splits the
 * input columns, in whole blocks of the weight's type, so that each thread
 * dequantizes only its own blocks of every row and adds the rows into its
 * columns of dx in row order: the same bits whatever the number of threads.
 */
#include <stddef.h>

#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "train-ops.h"

#define TMM_BWD_ROWS 32 /* weight rows of a backward panel (their dx partial sums stay in registers) */
/* floats between a backward panel's rows past its width: rows a power of two
 * of bytes apart would fall in one set of the L1 cache (half the speed) */
#define TMM_BWD_PAD 16

/* forward: GEMM_F32_ROWS rows dequantized, then the kernel's transposed copy;
 * backward: TMM_BWD_ROWS rows of the thread's columns */
int64_t tmm_scratch_floats(int64_t n_in)
{
	const int64_t fwd = GEMM_F32_ROWS * n_in + GEMM_F32_NT_SCRATCH(n_in), bwd = TMM_BWD_ROWS * (n_in + TMM_BWD_PAD);
	return fwd > bwd ? fwd : bwd;
}

struct tmm_task {
	const struct tensor *w;
	const float *in;  /* x (forward) or dy (backward) */
	float *out;       /* y or dx */
	int n;
	float *scratch;
	int64_t per_thread;
};

static void forward_run(void *arg, int ith, int nth)
{
	const struct tmm_task *t = arg;
	const struct tensor *w = t->w;
	const int64_t n_in = w->ne[0], n_out = w->ne[1];
	const int64_t r0 = n_out * ith / nth, r1 = n_out * (ith + 1) / nth;
	const size_t row = qtype_row_size(w->type, n_in);
	const kern_to_float_fn to_float = kern_ops(w->type)->to_float;
	const kern_gemm_nt_fn gemm_nt = kern_fns()->gemm_nt;
	float *buf = t->scratch + (size_t)ith * (size_t)t->per_thread;
	float *panel = buf + (size_t)GEMM_F32_ROWS * (size_t)n_in;

	for (int64_t c = r0; c < r1; c += GEMM_F32_ROWS) {
		const int nr = (int)(r1 - c < GEMM_F32_ROWS ? r1 - c : GEMM_F32_ROWS);
		for (int k = 0; k < nr; k++)
			to_float((const char *)w->data + (size_t)(c + k) * row, buf + (size_t)k * (size_t)n_in, n_in);
		gemm_nt(n_in, nr, buf, t->in, (size_t)n_in, t->n, t->out + c, (size_t)n_out, panel);
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
	const kern_gemm_nn_fn gemm_nn = kern_fns()->gemm_nn;
	float *buf = t->scratch + (size_t)ith * (size_t)t->per_thread;
	const size_t ld = (size_t)cw + TMM_BWD_PAD;

	if (cw <= 0)
		return;
	for (int64_t r = 0; r < n_out; r += TMM_BWD_ROWS) {
		const int nr = (int)(n_out - r < TMM_BWD_ROWS ? n_out - r : TMM_BWD_ROWS);
		for (int k = 0; k < nr; k++)
			to_float((const char *)w->data + (size_t)(r + k) * row + off, buf + (size_t)k * ld, cw);
		gemm_nn(cw, nr, buf, ld, t->in + r, (size_t)n_out, t->n, t->out + c0, (size_t)n_in);
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
