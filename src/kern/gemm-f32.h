/* gemm-f32.h - the f32 matrix products of training (src/train/tmm.c) over a
 * panel of weight rows that the caller has dequantized: the portable
 * reference kernels (gemm-f32.c) and the contract that the per-ISA ones
 * (x86/avx2-gemm-f32.c) keep. The entries in use are kern_fns()->gemm_nt and
 * ->gemm_nn.
 *
 * Summation order: every output element is one running sum over the inner
 * index in increasing order (from 0 for gemm_nt, from the element's old
 * value for gemm_nn), whatever n, nr, nc and wherever the element falls in
 * the kernel's tiles. So a caller that splits the elements over threads gets
 * the same bits with any number of threads, and the same bits whether it
 * hands the inner index over in one panel or several in order (gemm_nn).
 * The reference rounds each product and each sum; the FMA kernels round once
 * per multiply-add. Both are recursive sums of the same terms, so they agree
 * within 2 * n_terms * FLT_EPSILON * sum |term| (tests/unit/test-train-ops.c).
 */
#ifndef HEARTH_GEMM_F32_H
#define HEARTH_GEMM_F32_H

#include <stddef.h>
#include <stdint.h>

/* Rows of a gemm_nt panel: nr <= GEMM_F32_ROWS. */
#define GEMM_F32_ROWS 16

/* y[i * y_ld + r] = sum over k < nk of x[i * x_ld + k] * w[r * nk + k], for
 * i < n and r < nr (<= GEMM_F32_ROWS); w is nr rows of nk floats, contiguous.
 * scratch: GEMM_F32_NT_SCRATCH(nk) floats (the panel transposed, aligned by the kernel). */
#define GEMM_F32_NT_SCRATCH(nk) (GEMM_F32_ROWS * (nk) + GEMM_F32_ROWS)
typedef void (*kern_gemm_nt_fn)(int64_t nk, int nr, const float *w, const float *x, size_t x_ld, int n, float *y,
				size_t y_ld, float *scratch);
/* y[i * y_ld + c] += sum over r < nr, in order, of a[i * a_ld + r] * w[r * w_ld + c],
 * for i < n and c < nc. */
typedef void (*kern_gemm_nn_fn)(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n,
				float *y, size_t y_ld);

void gemm_f32_nt_ref(int64_t nk, int nr, const float *w, const float *x, size_t x_ld, int n, float *y, size_t y_ld,
		     float *scratch);
void gemm_f32_nn_ref(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n, float *y,
		     size_t y_ld);

#endif /* HEARTH_GEMM_F32_H */
