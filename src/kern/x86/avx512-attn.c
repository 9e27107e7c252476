/*
 * avx512-attn.c - the streaming-attention tile read straight from an f16
 * cache (kern_attn_tile_f16_fn), AVX-512: a chunk of 16 key positions is one
 * vector, converted in the register it is loaded into.
 *
 * The arithmetic is attn_tile_impl's, lane for lane and in the same order
 * (attn-tile.h), so the bits are the reference's:
 *   scores  s[p] = fma(q[d], k[d][p], s[p]) for d = 0, 1, ...
 *   max     per lane over the chunks, then over the lanes in order
 *   weights e[p] = attn_expf(s[p] - max), zero where unseen; their sum per
 *           lane over the chunks, then a fixed tree over the lanes
 *   output  o[j] = fma(e[p], v[p][j], o[j] * alpha) for p = 0, 1, ...
 * Rows go two at a time, sharing every load and conversion of the keys and
 * values; the output's accumulators stay in registers while the positions
 * pass (one chain per 16 columns per row). Shapes it does not cover (value
 * widths that are not a multiple of 16) are converted and run through the
 * plain tile instead.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../attn-tile.h"
#include "../kern.h"

#define CH ATTN_CHUNK
#define NCH (ATTN_TILE / ATTN_CHUNK)
#define INLINE static inline __attribute__((always_inline))

_Static_assert(CH == 16, "a chunk of key positions is one 16-lane vector");

/* attn_expf on 16 lanes: the same operations in the same order. max and min
 * return their second operand when either is a NaN, as the scalar clamps do. */
INLINE __m512 exp16(__m512 x)
{
	x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
	x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
	const __m512 shift = _mm512_set1_ps(12582912.0f);
	const __m512 kf = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), shift);
	const __m512 k = _mm512_sub_ps(kf, shift);
	const __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f),
					  _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), x));
	__m512 p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	const __m512i ki = _mm512_sub_epi32(_mm512_castps_si512(kf), _mm512_set1_epi32(0x4b400000));
	return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(ki, 23)));
}

/* The sum of 16 lanes by attn_tile_impl's tree: 8 + 8, 4 + 4, 2 + 2, 1 + 1. */
INLINE float tree_sum16(__m512 a)
{
	const __m256 lo = _mm512_castps512_ps256(a);
	const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
	const __m256 s8 = _mm256_add_ps(lo, hi);
	const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
	const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

INLINE __m512 load_h(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* Scores of R rows over the first NC chunks: s[r][c] = q_r K_c (zero past NC). */
INLINE void scores(int R, int NC, int dk, const float *Q, const uint16_t *const *Kc, size_t k_ld, __m512 s[2][NCH])
{
	for (int r = 0; r < R; r++)
		for (int c = 0; c < NCH; c++)
			s[r][c] = _mm512_setzero_ps();
	for (int d = 0; d < dk; d++) {
		__m512 q[2];
		for (int r = 0; r < R; r++)
			q[r] = _mm512_set1_ps(Q[(size_t)r * (size_t)dk + (size_t)d]);
		for (int c = 0; c < NC; c++) {
			const __m512 k = load_h(Kc[c] + (size_t)d * k_ld);
			for (int r = 0; r < R; r++)
				s[r][c] = _mm512_fmadd_ps(q[r], k, s[r][c]);
		}
	}
}

/* One row's online-softmax step on its scores s (nc chunks computed, n
 * positions seen): e gets the weights, mx and l move on; returns alpha, the
 * factor the row's output is rescaled by. */
INLINE float softmax_step(const __m512 s[NCH], int nc, int n, float *e, float *mx, float *l)
{
	__m512 w[NCH];
	for (int c = 0; c < NCH; c++) {
		const int left = n - c * CH;
		const __mmask16 seen = left >= CH ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
		w[c] = c < nc ? _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), seen, s[c]) : _mm512_set1_ps(-INFINITY);
	}
	__m512 acc = w[0];
	for (int c = 1; c < NCH; c++) /* acc = w > acc ? w : acc */
		acc = _mm512_mask_mov_ps(acc, _mm512_cmp_ps_mask(w[c], acc, _CMP_GT_OQ), w[c]);
	float lanes[CH], mnew = *mx;
	_mm512_storeu_ps(lanes, acc);
	for (int i = 0; i < CH; i++)
		mnew = lanes[i] > mnew ? lanes[i] : mnew;
	const float alpha = attn_expf(*mx - mnew);
	const __m512 m = _mm512_set1_ps(mnew);
	__m512 sum = _mm512_setzero_ps();
	for (int c = 0; c < NCH; c++) {
		const int left = n - c * CH;
		const __mmask16 seen = left >= CH ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
		const __m512 ec = seen ? _mm512_maskz_mov_ps(seen, exp16(_mm512_sub_ps(w[c], m))) : _mm512_setzero_ps();
		_mm512_storeu_ps(e + c * CH, ec);
		sum = c == 0 ? ec : _mm512_add_ps(sum, ec);
	}
	*mx = mnew;
	*l = *l * alpha + tree_sum16(sum);
	return alpha;
}

/* Output columns j0 .. j0 + 16 NJ of R rows: o = o alpha + sum over
 * positions p0 .. p1 of e[p] v[p] (alpha 1 and o read back when p0 > 0). */
INLINE void weigh_values(int R, int NJ, int j0, int p0, int p1, const float *const *e, const float *alpha, float *const *o,
			 const uint16_t *const *Vc, size_t v_ld)
{
	__m512 a[2][4];
	for (int r = 0; r < R; r++)
		for (int j = 0; j < NJ; j++)
			a[r][j] = p0 > 0 ? _mm512_loadu_ps(o[r] + j0 + j * CH)
					 : _mm512_mul_ps(_mm512_loadu_ps(o[r] + j0 + j * CH), _mm512_set1_ps(alpha[r]));
	for (int p = p0; p < p1; p++) {
		const uint16_t *v = Vc[p / CH] + (size_t)(p % CH) * v_ld + j0;
		__m512 w[2];
		for (int r = 0; r < R; r++)
			w[r] = _mm512_set1_ps(e[r][p]);
		for (int j = 0; j < NJ; j++) {
			const __m512 x = load_h(v + j * CH);
			for (int r = 0; r < R; r++)
				a[r][j] = _mm512_fmadd_ps(w[r], x, a[r][j]);
		}
	}
	for (int r = 0; r < R; r++)
		for (int j = 0; j < NJ; j++)
			_mm512_storeu_ps(o[r] + j0 + j * CH, a[r][j]);
}

/* All output columns of R rows over positions p0 .. p1, 64 columns at a time. */
INLINE void weigh_all(int R, int dv, int p0, int p1, const float *const *e, const float *alpha, float *const *o,
		      const uint16_t *const *Vc, size_t v_ld)
{
	int j0 = 0;
	for (; j0 + 4 * CH <= dv; j0 += 4 * CH)
		weigh_values(R, 4, j0, p0, p1, e, alpha, o, Vc, v_ld);
	switch ((dv - j0) / CH) {
	case 3: weigh_values(R, 3, j0, p0, p1, e, alpha, o, Vc, v_ld); break;
	case 2: weigh_values(R, 2, j0, p0, p1, e, alpha, o, Vc, v_ld); break;
	case 1: weigh_values(R, 1, j0, p0, p1, e, alpha, o, Vc, v_ld); break;
	default: break;
	}
}

/* R (1 or 2) rows that each see at least one position. */
INLINE void tile_rows(int R, int dk, int dv, const float *Q, const int32_t *n, const uint16_t *const *Kc, size_t k_ld,
		      const uint16_t *const *Vc, size_t v_ld, float *mx, float *l, float *O)
{
	int nmax = n[0], nmin = n[0];
	for (int r = 1; r < R; r++) {
		nmax = n[r] > nmax ? n[r] : nmax;
		nmin = n[r] < nmin ? n[r] : nmin;
	}
	const int nc = (nmax + CH - 1) / CH;
	__m512 s[2][NCH];
	switch (nc) {
	case 1: scores(R, 1, dk, Q, Kc, k_ld, s); break;
	case 2: scores(R, 2, dk, Q, Kc, k_ld, s); break;
	case 3: scores(R, 3, dk, Q, Kc, k_ld, s); break;
	default: scores(R, 4, dk, Q, Kc, k_ld, s); break;
	}
	_Alignas(64) float e[2][ATTN_TILE];
	float alpha[2], *o[2];
	const float *ep[2];
	for (int r = 0; r < R; r++) {
		alpha[r] = softmax_step(s[r], nc, n[r], e[r], &mx[r], &l[r]);
		o[r] = O + (size_t)r * (size_t)dv;
		ep[r] = e[r];
	}
	weigh_all(R, dv, 0, nmin, ep, alpha, o, Vc, v_ld);
	for (int r = 0; r < R; r++) /* the positions only some rows see */
		if (n[r] > nmin)
			weigh_all(1, dv, nmin, n[r], &ep[r], &alpha[r], &o[r], Vc, v_ld);
}

static void attn_tile_f16(int M, int dk, int dv, const float *Q, const int32_t *n, const uint16_t *const *Kc,
			  size_t k_ld, const uint16_t *const *Vc, size_t v_ld, float *mx, float *l, float *O,
			  float *scratch);

/* f16 to float, 16 at a time: the fallback's conversion. */
static void h2f(const void *x, float *y, int64_t n)
{
	const uint16_t *h = x;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, load_h(h + i));
	for (; i < n; i++)
		y[i] = _cvtsh_ss(h[i]);
}

static void attn_tile_plain(int M, int dk, int dv, const float *Q, const int32_t *n, const float *Kt, const float *V,
			    float *mx, float *l, float *O)
{
	attn_tile_impl(M, dk, dv, Q, n, Kt, V, mx, l, O);
}

static void attn_tile_f16(int M, int dk, int dv, const float *Q, const int32_t *n, const uint16_t *const *Kc,
			  size_t k_ld, const uint16_t *const *Vc, size_t v_ld, float *mx, float *l, float *O,
			  float *scratch)
{
	if (dv % CH) {
		attn_tile_f16_convert(M, dk, dv, Q, n, Kc, k_ld, Vc, v_ld, mx, l, O, scratch, h2f, attn_tile_plain);
		return;
	}
	int m = 0;
	while (m < M) {
		if (n[m] <= 0) { /* a row that sees nothing of this tile is left as it is */
			m++;
			continue;
		}
		const size_t qo = (size_t)m * (size_t)dk, oo = (size_t)m * (size_t)dv;
		if (m + 1 < M && n[m + 1] > 0) {
			tile_rows(2, dk, dv, Q + qo, n + m, Kc, k_ld, Vc, v_ld, mx + m, l + m, O + oo);
			m += 2;
		} else {
			tile_rows(1, dk, dv, Q + qo, n + m, Kc, k_ld, Vc, v_ld, mx + m, l + m, O + oo);
			m++;
		}
	}
}

void kern_register_avx512_attn(struct kern_fns *fns) { fns->attn_tile_f16 = attn_tile_f16; }
