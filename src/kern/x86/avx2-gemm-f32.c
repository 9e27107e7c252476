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

/* The tiles' accumulators are named variables, not arrays (an array of
 * registers is kept in memory by the compilers): ACC(X) applies X to the
 * six rows, each under "if (m > i)", which inlining with a constant m
 * removes. */
#define ACC(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* y[i][0..nr) for m (<= MR, a constant where inlined) tokens from x */
ALWAYS_INLINE void nt_tile(int m, int64_t nk, const float *panel, const float *x, size_t x_ld, float *y, size_t y_ld,
			   int nr)
{
#define NT_ZERO(i) __m256 a##i = _mm256_setzero_ps(), b##i = a##i;
	ACC(NT_ZERO)
	const float *xs[MR];
	for (int i = 0; i < MR; i++)
		xs[i] = x + (size_t)(i < m ? i : 0) * x_ld;
	for (int64_t k = 0; k < nk; k++) {
		const __m256 w0 = _mm256_load_ps(panel + k * GEMM_F32_ROWS);
		const __m256 w1 = _mm256_load_ps(panel + k * GEMM_F32_ROWS + 8);
#define NT_FMA(i)                                                    \
	if (m > i) {                                                 \
		const __m256 v = _mm256_broadcast_ss(xs[i] + k);     \
		a##i = _mm256_fmadd_ps(v, w0, a##i);                 \
		b##i = _mm256_fmadd_ps(v, w1, b##i);                 \
	}
		ACC(NT_FMA)
	}
#define NT_STORE(i)                                                              \
	if (m > i) {                                                             \
		float *yi = y + (size_t)i * y_ld;                                \
		if (nr == GEMM_F32_ROWS) {                                       \
			_mm256_storeu_ps(yi, a##i);                              \
			_mm256_storeu_ps(yi + 8, b##i);                          \
		} else {                                                         \
			float t[GEMM_F32_ROWS];                                  \
			_mm256_storeu_ps(t, a##i);                               \
			_mm256_storeu_ps(t + 8, b##i);                           \
			for (int r = 0; r < nr; r++)                             \
				yi[r] = t[r];                                    \
		}                                                                \
	}
	ACC(NT_STORE)
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
#define NN_LOAD(i)                                                                      \
	__m256 a##i = _mm256_setzero_ps(), b##i = a##i;                                 \
	if (m > i) {                                                                    \
		a##i = _mm256_loadu_ps(y + (size_t)i * y_ld);                           \
		b##i = _mm256_loadu_ps(y + (size_t)i * y_ld + 8);                       \
	}
	ACC(NN_LOAD)
	for (int r = 0; r < nr; r++) {
		const __m256 w0 = _mm256_loadu_ps(w + (size_t)r * w_ld);
		const __m256 w1 = _mm256_loadu_ps(w + (size_t)r * w_ld + 8);
#define NN_FMA(i)                                                                       \
	if (m > i) {                                                                    \
		const __m256 v = _mm256_broadcast_ss(a + (size_t)i * a_ld + (size_t)r); \
		a##i = _mm256_fmadd_ps(v, w0, a##i);                                    \
		b##i = _mm256_fmadd_ps(v, w1, b##i);                                    \
	}
		ACC(NN_FMA)
	}
#define NN_STORE(i)                                                                     \
	if (m > i) {                                                                    \
		_mm256_storeu_ps(y + (size_t)i * y_ld, a##i);                           \
		_mm256_storeu_ps(y + (size_t)i * y_ld + 8, b##i);                       \
	}
	ACC(NN_STORE)
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

#define NN_BLOCK 256 /* columns of the panel that stay in L1 while every token tile passes */

/* column blocks outside; in each, tiles of MR tokens (their rows of a are
 * read once per block), 16 columns inside */
static void gemm_nn(int64_t nc, int nr, const float *w, size_t w_ld, const float *a, size_t a_ld, int n, float *y,
		    size_t y_ld)
{
	const int64_t nc16 = nc / 16 * 16;
	for (int64_t c0 = 0; c0 < nc16; c0 += NN_BLOCK) {
		const int64_t c1 = nc16 - c0 < NN_BLOCK ? nc16 : c0 + NN_BLOCK;
		for (int i = 0; i < n; i += MR) {
			const int m = n - i < MR ? n - i : MR;
			const float *ai = a + (size_t)i * a_ld;
			float *yi = y + (size_t)i * y_ld;
			for (int64_t c = c0; c < c1; c += 16)
				switch (m) {
				case 6: nn_tile16(6, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				case 5: nn_tile16(5, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				case 4: nn_tile16(4, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				case 3: nn_tile16(3, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				case 2: nn_tile16(2, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				default: nn_tile16(1, nr, w + c, w_ld, ai, a_ld, yi + c, y_ld); break;
				}
		}
	}
	if (nc16 < nc)
		nn_tail(nc - nc16, nr, w + nc16, w_ld, a, a_ld, n, y + nc16, y_ld);
}

void kern_register_avx2_gemm_f32(struct kern_fns *fns)
{
	fns->gemm_nt = gemm_nt;
	fns->gemm_nn = gemm_nn;
}
