/*
 * avx2-gemm-f32.c - the training products of gemm-f32.h with AVX2 + FMA
 * (this file alone is compiled with those flags; kern.c installs them only
 * on CPUs that have them).
 *
 * Register-blocked tiles: gemm_nt holds a tile of up to 6 tokens x 16 weight
 * rows (12 accumulators) and, per inner index k, loads the 16 rows' values
 * from the transposed panel once and broadcasts each token's x[k]; gemm_nn
 * holds 6 tokens x 16 columns and walks the panel's rows. Every element is
 * one FMA chain over the inner index in order, in the tiles' tails too
 * (scalar FMAs there), so the bits do not depend on the element's place.
 */
#include <immintrin.h>

#include "../gemm-f32.h"
#include "../kern.h"

#define MR 6 /* tokens of a tile */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* panel[k][r] = w[r][k] for the GEMM_F32_ROWS rows (rows nr.. zero), eight
 * k at a time through 8x8 transposes of registers */
static void transpose(int64_t nk, int nr, const float *w, float *panel)
{
	int64_t k = 0;
	if (nr == GEMM_F32_ROWS)
		for (; k + 8 <= nk; k += 8)
			for (int h = 0; h < 2; h++) {
				__m256 r[8], t[8];
				for (int j = 0; j < 8; j++)
					r[j] = _mm256_loadu_ps(w + (size_t)(h * 8 + j) * (size_t)nk + (size_t)k);
				for (int j = 0; j < 8; j += 2) {
					t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
					t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
				}
				for (int j = 0; j < 8; j += 4) {
					r[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
					r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xee);
					r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
					r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xee);
				}
				/* r[0..3]: k+0,k+1,k+2,k+3 of rows 0-3 | 4-7 lanes ... as 128-bit halves */
				for (int j = 0; j < 4; j++) {
					const __m256 lo = _mm256_permute2f128_ps(r[j], r[j + 4], 0x20);
					const __m256 hi = _mm256_permute2f128_ps(r[j], r[j + 4], 0x31);
					_mm256_storeu_ps(panel + (k + j) * GEMM_F32_ROWS + h * 8, lo);
					_mm256_storeu_ps(panel + (k + j + 4) * GEMM_F32_ROWS + h * 8, hi);
				}
			}
	for (; k < nk; k++)
		for (int r = 0; r < GEMM_F32_ROWS; r++)
			panel[k * GEMM_F32_ROWS + r] = r < nr ? w[(size_t)r * (size_t)nk + (size_t)k] : 0.0f;
}

/* y[i][0..nr) for m (<= MR, a constant where inlined) tokens from x */
ALWAYS_INLINE void nt_tile(int m, int64_t nk, const float *panel, const float *x, size_t x_ld, float *y, size_t y_ld,
			   int nr)
{
	__m256 c0[MR], c1[MR];
	for (int i = 0; i < m; i++)
		c0[i] = c1[i] = _mm256_setzero_ps();
	for (int64_t k = 0; k < nk; k++) {
		const __m256 w0 = _mm256_load_ps(panel + k * GEMM_F32_ROWS);
		const __m256 w1 = _mm256_load_ps(panel + k * GEMM_F32_ROWS + 8);
		for (int i = 0; i < m; i++) {
			const __m256 b = _mm256_broadcast_ss(x + (size_t)i * x_ld + (size_t)k);
			c0[i] = _mm256_fmadd_ps(b, w0, c0[i]);
			c1[i] = _mm256_fmadd_ps(b, w1, c1[i]);
		}
	}
	for (int i = 0; i < m; i++) {
		float *yi = y + (size_t)i * y_ld;
		if (nr == GEMM_F32_ROWS) {
			_mm256_storeu_ps(yi, c0[i]);
			_mm256_storeu_ps(yi + 8, c1[i]);
		} else {
			float t[GEMM_F32_ROWS];
			_mm256_storeu_ps(t, c0[i]);
			_mm256_storeu_ps(t + 8, c1[i]);
			for (int r = 0; r < nr; r++)
				yi[r] = t[r];
		}
	}
}

static void gemm_nt(int64_t nk, int nr, const float *w, const float *x, size_t x_ld, int n, float *y, size_t y_ld,
		    float *scratch)
{
	/* the panel's rows are 64 bytes: aligned loads once scratch is */
	float *panel = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
	transpose(nk, nr, w, panel);
	int i = 0;
	for (; i + MR <= n; i += MR)
		nt_tile(MR, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr);
	switch (n - i) {
	case 5: nt_tile(5, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr); break;
	case 4: nt_tile(4, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr); break;
	case 3: nt_tile(3, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr); break;
	case 2: nt_tile(2, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr); break;
	case 1: nt_tile(1, nk, panel, x + (size_t)i * x_ld, x_ld, y + (size_t)i * y_ld, y_ld, nr); break;
	default: break;
	}
}

/* y[i][0..16) += for m tokens, the rows of w in order */
ALWAYS_INLINE void nn_tile16(int m, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, float *y,
			     size_t y_ld)
{
	__m256 c0[MR], c1[MR];
	for (int i = 0; i < m; i++) {
		c0[i] = _mm256_loadu_ps(y + (size_t)i * y_ld);
		c1[i] = _mm256_loadu_ps(y + (size_t)i * y_ld + 8);
	}
	for (int r = 0; r < nr; r++) {
		const __m256 w0 = _mm256_loadu_ps(w + (size_t)r * w_ld);
		const __m256 w1 = _mm256_loadu_ps(w + (size_t)r * w_ld + 8);
		for (int i = 0; i < m; i++) {
			const __m256 b = _mm256_broadcast_ss(a + (size_t)i * a_ld + (size_t)r);
			c0[i] = _mm256_fmadd_ps(b, w0, c0[i]);
			c1[i] = _mm256_fmadd_ps(b, w1, c1[i]);
		}
	}
	for (int i = 0; i < m; i++) {
		_mm256_storeu_ps(y + (size_t)i * y_ld, c0[i]);
		_mm256_storeu_ps(y + (size_t)i * y_ld + 8, c1[i]);
	}
}

/* the same for fewer than 16 columns, one at a time */
static void nn_tail(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n, float *y,
		    size_t y_ld)
{
	for (int i = 0; i < n; i++)
		for (int64_t c = 0; c < nc; c++) {
			__m128 s = _mm_set_ss(y[(size_t)i * y_ld + (size_t)c]);
			for (int r = 0; r < nr; r++)
				s = _mm_fmadd_ss(_mm_set_ss(a[(size_t)i * a_ld + (size_t)r]),
						 _mm_set_ss(w[(size_t)r * w_ld + (size_t)c]), s);
			y[(size_t)i * y_ld + (size_t)c] = _mm_cvtss_f32(s);
		}
}

static void gemm_nn(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n, float *y,
		    size_t y_ld)
{
	int64_t c = 0;
	for (; c + 16 <= nc; c += 16) {
		int i = 0;
		for (; i + MR <= n; i += MR)
			nn_tile16(MR, nr, w + c, w_ld, a + (size_t)i * a_ld, a_ld, y + (size_t)i * y_ld + (size_t)c, y_ld);
		const float *ai = a + (size_t)i * a_ld;
		float *yi = y + (size_t)i * y_ld + (size_t)c;
		switch (n - i) {
		case 5: nn_tile16(5, nr, w + c, w_ld, ai, a_ld, yi, y_ld); break;
		case 4: nn_tile16(4, nr, w + c, w_ld, ai, a_ld, yi, y_ld); break;
		case 3: nn_tile16(3, nr, w + c, w_ld, ai, a_ld, yi, y_ld); break;
		case 2: nn_tile16(2, nr, w + c, w_ld, ai, a_ld, yi, y_ld); break;
		case 1: nn_tile16(1, nr, w + c, w_ld, ai, a_ld, yi, y_ld); break;
		default: break;
		}
	}
	if (c < nc)
		nn_tail(nc - c, nr, w + c, w_ld, a, a_ld, n, y + c, y_ld);
}

void kern_register_avx2_gemm_f32(struct kern_fns *fns)
{
	fns->gemm_nt = gemm_nt;
	fns->gemm_nn = gemm_nn;
}
