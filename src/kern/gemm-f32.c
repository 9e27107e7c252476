/* gemm-f32.c - the portable reference of the training products (see
 * gemm-f32.h): the same blocking as the SIMD kernels (a panel transposed so
 * that GEMM_F32_ROWS weight rows are side by side, tiles of tokens), written
 * in plain C whose inner loops the compiler vectorizes across the panel's
 * rows or the tile's columns, with a multiply and an add per term.
 */
#include "gemm-f32.h"

#define NT_TOKENS 4 /* tokens of a gemm_nt tile */
#define NN_COLS 64  /* columns of a gemm_nn tile */

/* panel[k][r] = w[r][k], rows nr.. zero */
static void transpose(int64_t nk, int nr, const float *w, float *panel)
{
	for (int64_t k = 0; k < nk; k++)
		for (int r = 0; r < GEMM_F32_ROWS; r++)
			panel[k * GEMM_F32_ROWS + r] = r < nr ? w[(size_t)r * (size_t)nk + (size_t)k] : 0.0f;
}

void gemm_f32_nt_ref(int64_t nk, int nr, const float *w, const float *x, size_t x_ld, int n, float *y, size_t y_ld,
		     float *scratch)
{
	transpose(nk, nr, w, scratch);
	for (int i0 = 0; i0 < n; i0 += NT_TOKENS) {
		const int mr = n - i0 < NT_TOKENS ? n - i0 : NT_TOKENS;
		float acc[NT_TOKENS][GEMM_F32_ROWS] = { { 0 } };
		for (int64_t k = 0; k < nk; k++) {
			const float *p = scratch + k * GEMM_F32_ROWS;
			for (int i = 0; i < mr; i++) {
				const float xv = x[(size_t)(i0 + i) * x_ld + (size_t)k];
				for (int r = 0; r < GEMM_F32_ROWS; r++)
					acc[i][r] += xv * p[r];
			}
		}
		for (int i = 0; i < mr; i++)
			for (int r = 0; r < nr; r++)
				y[(size_t)(i0 + i) * y_ld + (size_t)r] = acc[i][r];
	}
}

void gemm_f32_nn_ref(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n, float *y,
		     size_t y_ld)
{
	for (int64_t c0 = 0; c0 < nc; c0 += NN_COLS) {
		const int cw = (int)(nc - c0 < NN_COLS ? nc - c0 : NN_COLS);
		for (int i = 0; i < n; i++) {
			float acc[NN_COLS];
			float *yi = y + (size_t)i * y_ld + (size_t)c0;
			for (int c = 0; c < cw; c++)
				acc[c] = yi[c];
			for (int r = 0; r < nr; r++) {
				const float av = a[(size_t)i * a_ld + (size_t)r];
				const float *wr = w + (size_t)r * w_ld + (size_t)c0;
				for (int c = 0; c < cw; c++)
					acc[c] += av * wr[c];
			}
			for (int c = 0; c < cw; c++)
				yi[c] = acc[c];
		}
	}
}
