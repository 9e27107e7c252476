/*
 * avx512vnni.c - kernels using AVX-512 VNNI's dpbusd (unsigned x signed byte
 * dot products into int32, one instruction) on 256-bit vectors (AVX512VL).
 * This file alone is compiled with those flags; kern.c installs its kernels
 * only on CPUs that have them, over the AVX2 ones.
 *
 * q4_0 weights stay unsigned (0..15): sum((q - 8) * y) = sum(q * y) - 8 * sum(y),
 * and sum(y) is one more dpbusd against a vector of eights, or comes with the
 * activations (planar q8_0 carries each block's sum). The K-quants' packed
 * layouts are in avx512vnni-kquants.c.
 */
#include <immintrin.h>
#include <string.h>

#include "../../tensor/qtype.h"
#include "../attn-tile.h"
#include "../logit-row.h"
#include "../kern.h"
#include "packed-gemm.h"

static inline float hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline __m256i nibbles(const uint8_t *qs)
{
	const __m128i t = _mm_loadu_si128((const __m128i *)qs);
	const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* ---- q4_0 x q8_0 planar: a register tile of R weight rows x T tokens -------
 *
 * Activations come as QTYPE_Q8_0P: a row's n int8 values, then its n/32 block
 * scales as floats, so that two blocks load as one 64-byte vector. Each step
 * takes two blocks of R rows and T tokens: R*T dpbusd, and the -8 offset of
 * q4_0 through one dpbusd of the activations against eights, shared by rows.
 */

/* 64 bytes: two q4_0 blocks' values, each as low nibbles then high nibbles. */
static inline __m512i nibbles2(const struct block_q4_0 *x)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(nibbles(x[0].qs)), nibbles(x[1].qs), 1);
}

/* 16 floats: a eight times, then b eight times. */
static inline __m512 pair(float a, float b)
{
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)), _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

/* One row, one token, 256-bit: the decoding case. */
static void vec_dot_q4_0_q8_0p(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_0 *x = vx;
	const int8_t *q = vy;
	const float *d = (const float *)(q + n);
	const __m256i eight = _mm256_set1_epi8(8);
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 2 <= n / QK4_0; i += 2) {
		const __m256i y0 = _mm256_loadu_si256((const __m256i *)(q + 32 * i));
		const __m256i y1 = _mm256_loadu_si256((const __m256i *)(q + 32 * i + 32));
		const __m256i p0 = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles(x[i].qs), y0),
						    _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, y0));
		const __m256i p1 = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles(x[i + 1].qs), y1),
						    _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, y1));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * d[i]), _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i + 1].d) * d[i + 1]), _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < n / QK4_0; i++) {
		const __m256i y0 = _mm256_loadu_si256((const __m256i *)(q + 32 * i));
		const __m256i p0 = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles(x[i].qs), y0),
						    _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, y0));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * d[i]), _mm256_cvtepi32_ps(p0), acc0);
	}
	*s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- MXFP4: E2M1 values through a table, an E8M0 scale a block ----------
 *
 * The table gives each nibble's doubled E2M1 value plus 12 (0..24: dpbusd
 * wants unsigned weights), the 12 comes back through the activations' sums,
 * and the block's scale is 2^(e - 128) (halved for the doubled values). */

static inline __m256i fp4_table256(void)
{
	return _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12, 13, 14, 15, 16, 18, 20,
				24, 12, 11, 10, 9, 8, 6, 4, 0);
}

/* 2^(e - 128) exactly (subnormal for e < 2). */
static inline float e8m0_half(uint8_t e)
{
	const uint32_t bits = e >= 2 ? (uint32_t)(e - 1) << 23 : 0x00200000u << e;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* One row, one token, 256-bit: the decoding case. */
static void vec_dot_mxfp4_q8_0p(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_mxfp4 *x = vx;
	const int8_t *q = vy;
	const float *d = (const float *)(q + n);
	const __m256i twelve = _mm256_set1_epi8(12), table = fp4_table256();
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK_MXFP4; i++) {
		const __m256i y = _mm256_loadu_si256((const __m256i *)(q + 32 * i));
		const __m256i w = _mm256_shuffle_epi8(table, nibbles(x[i].qs));
		const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w, y),
						   _mm256_dpbusd_epi32(_mm256_setzero_si256(), twelve, y));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_half(x[i].e) * d[i]), _mm256_cvtepi32_ps(p), acc);
	}
	*s = hsum_ps(acc);
}

/* 32 bytes: a q5_0 or q5_1 block's values 0..31 (fifth bit j of qh on value j). */
static inline __m256i q5_values(const uint8_t *qs, const uint8_t *qh_bytes)
{
	uint32_t qh;
	memcpy(&qh, qh_bytes, 4);
	const __m256i v = nibbles(qs);
	return _mm256_mask_add_epi8(v, (__mmask32)qh, v, _mm256_set1_epi8(16));
}

/* One q5_0 row against planar q8_0 activations (rows that are not packed):
 * the -16 offset is -2 * sum(y) in each of the 8 lanes of a block's sums. */
static void vec_dot_q5_0_q8_0p(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q5_0 *x = vx;
	const int8_t *q = vy;
	const float *d = (const float *)(q + n);
	const int32_t *sums = (const int32_t *)(d + n / QK5_0);
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 2 <= n / QK5_0; i += 2) {
		const __m256i p0 = _mm256_dpbusd_epi32(_mm256_set1_epi32(-2 * sums[i]), q5_values(x[i].qs, x[i].qh),
						       _mm256_loadu_si256((const __m256i *)(q + 32 * i)));
		const __m256i p1 = _mm256_dpbusd_epi32(_mm256_set1_epi32(-2 * sums[i + 1]), q5_values(x[i + 1].qs, x[i + 1].qh),
						       _mm256_loadu_si256((const __m256i *)(q + 32 * i + 32)));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * d[i]), _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i + 1].d) * d[i + 1]), _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < n / QK5_0; i++) {
		const __m256i p0 = _mm256_dpbusd_epi32(_mm256_set1_epi32(-2 * sums[i]), q5_values(x[i].qs, x[i].qh),
						       _mm256_loadu_si256((const __m256i *)(q + 32 * i)));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * d[i]), _mm256_cvtepi32_ps(p0), acc0);
	}
	*s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* One q4_1 or q5_1 (five) row against planar q8_1 activations: a block adds
 * d dy sum(q y) + m s. */
static inline __attribute__((always_inline)) void dot_q8_1p(bool five, int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_1 *x4 = vx;
	const struct block_q5_1 *x5 = vx;
	const int8_t *q = vy;
	const float *d = (const float *)(q + n), *ys = d + n / QK4_1;
	__m256 acc = _mm256_setzero_ps();
	float ms = 0;
	for (int64_t i = 0; i < n / QK4_1; i++) {
		const __m256i v = five ? q5_values(x5[i].qs, x5[i].qh) : nibbles(x4[i].qs);
		const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), v, _mm256_loadu_si256((const __m256i *)(q + 32 * i)));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(five ? x5[i].d : x4[i].d) * d[i]), _mm256_cvtepi32_ps(p), acc);
		ms += _cvtsh_ss(five ? x5[i].m : x4[i].m) * ys[i];
	}
	*s = hsum_ps(acc) + ms;
}

static void vec_dot_q4_1_q8_1p(int64_t n, float *s, const void *vx, const void *vy) { dot_q8_1p(false, n, s, vx, vy); }
static void vec_dot_q5_1_q8_1p(int64_t n, float *s, const void *vx, const void *vy) { dot_q8_1p(true, n, s, vx, vy); }

static inline __attribute__((always_inline)) void tile_q4_0(int R, int T, int64_t n, const struct block_q4_0 *const *x,
							    const int8_t *const *yq, float *const *out)
{
	const int64_t nb = n / QK4_0;
	const float *yd[4];
	__m512 acc[2][4];
	const __m512i e8 = _mm512_set1_epi8(8);
	for (int t = 0; t < T; t++)
		yd[t] = (const float *)(yq[t] + n);
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm512_setzero_ps();
	int64_t b = 0;
	for (; b + 2 <= nb; b += 2) {
		__m512i q[2];
		__m512 dx[2];
		for (int r = 0; r < R; r++) {
			q[r] = nibbles2(x[r] + b);
			dx[r] = pair(_cvtsh_ss(x[r][b].d), _cvtsh_ss(x[r][b + 1].d));
		}
		for (int t = 0; t < T; t++) {
			const __m512i yv = _mm512_loadu_si512((const void *)(yq[t] + 32 * b));
			const __m512i s8 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), e8, yv);
			const __m512 dy = pair(yd[t][b], yd[t][b + 1]);
			for (int r = 0; r < R; r++) {
				const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], yv), s8);
				acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dx[r], dy), _mm512_cvtepi32_ps(p), acc[r][t]);
			}
		}
	}
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++) {
			float s = _mm512_reduce_add_ps(acc[r][t]);
			if (b < nb) { /* an odd last block */
				const __m256i yv = _mm256_loadu_si256((const __m256i *)(yq[t] + 32 * b));
				const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles(x[r][b].qs), yv),
								   _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), yv));
				s += _cvtsh_ss(x[r][b].d) * yd[t][b] * hsum_ps(_mm256_cvtepi32_ps(p));
			}
			*out[r * 4 + t] = s;
		}
}

static void gemm_q4_0_q8_0p(int64_t n, const void *w, size_t w_row, int64_t r0, int64_t r1, const void *a,
			    size_t a_row, int n_tok, float *y, size_t y_stride)
{
	for (int t0 = 0; t0 < n_tok; t0 += 4) {
		const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
		const int8_t *yq[4];
		for (int t = 0; t < T; t++)
			yq[t] = (const int8_t *)a + (size_t)(t0 + t) * a_row;
		for (int64_t r = r0; r < r1; r += 2) {
			const int R = r + 2 <= r1 ? 2 : 1;
			const struct block_q4_0 *x[2];
			float *out[8];
			for (int i = 0; i < R; i++) {
				x[i] = (const struct block_q4_0 *)((const char *)w + (size_t)(r + i) * w_row);
				for (int t = 0; t < T; t++)
					out[i * 4 + t] = &y[(size_t)(t0 + t) * y_stride + (size_t)(r + i)];
			}
			/* constant R and T, so that the tile lives in registers; every
			 * count goes through the tile, whose sums for one token do not
			 * depend on the others: a batch gives each token's lone result */
			switch (R * 4 + T) {
			case 12: tile_q4_0(2, 4, n, x, yq, out); break;
			case 11: tile_q4_0(2, 3, n, x, yq, out); break;
			case 10: tile_q4_0(2, 2, n, x, yq, out); break;
			case 9: tile_q4_0(2, 1, n, x, yq, out); break;
			case 8: tile_q4_0(1, 4, n, x, yq, out); break;
			case 7: tile_q4_0(1, 3, n, x, yq, out); break;
			case 6: tile_q4_0(1, 2, n, x, yq, out); break;
			default: tile_q4_0(1, 1, n, x, yq, out); break;
			}
		}
	}
}

/* 0.5 with the sign of each lane of t (round half away from zero, then truncate). */
static inline __m512 copysign_half(__m512 t)
{
	const __m512i sign = _mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32((int)0x80000000u));
	return _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(0.5f))));
}

/* Planar activations, rounded as the reference's q8_0 and q8_1 (scales
 * f16-rounded), with each block's sum of values (q81 false: q8_0 planar) or
 * its d * sum rounded to f16 as q8_1's s (q81: q8_1 planar). */
static inline __attribute__((always_inline)) void planar_from_float(const float *x, void *vy, int64_t n, bool q81)
{
	int8_t *q = vy;
	float *d = (float *)(q + n);
	int32_t *sums = (int32_t *)(d + n / QK8_0);
	float *s = d + n / QK8_0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		const __m512 v0 = _mm512_loadu_ps(x + 32 * i), v1 = _mm512_loadu_ps(x + 32 * i + 16);
		const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
		const float di = _cvtsh_ss(_cvtss_sh(amax / 127, _MM_FROUND_TO_NEAREST_INT));
		const float id = amax / 127 ? 1.0f / (amax / 127) : 0.0f;
		d[i] = di;
		const __m512 vid = _mm512_set1_ps(id);
		__m512 t0 = _mm512_mul_ps(v0, vid), t1 = _mm512_mul_ps(v1, vid);
		t0 = _mm512_add_ps(t0, copysign_half(t0));
		t1 = _mm512_add_ps(t1, copysign_half(t1));
		/* clamped to the bytes stored, so that the sums are theirs: a NaN or
		 * infinite activation converts to INT_MIN, whose sums would wrap */
		const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
		const __m512i i0 = _mm512_max_epi32(lo, _mm512_min_epi32(hi, _mm512_cvttps_epi32(t0)));
		const __m512i i1 = _mm512_max_epi32(lo, _mm512_min_epi32(hi, _mm512_cvttps_epi32(t1)));
		_mm_storeu_si128((__m128i *)(q + 32 * i), _mm512_cvtsepi32_epi8(i0));
		_mm_storeu_si128((__m128i *)(q + 32 * i + 16), _mm512_cvtsepi32_epi8(i1));
		const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
		if (q81)
			s[i] = _cvtsh_ss(_cvtss_sh((float)sum * (amax / 127), _MM_FROUND_TO_NEAREST_INT));
		else
			sums[i] = sum;
	}
}

static void q8_0p_from_float(const float *x, void *y, int64_t n) { planar_from_float(x, y, n, false); }
static void q8_1p_from_float(const float *x, void *y, int64_t n) { planar_from_float(x, y, n, true); }

/* ---- q4_0, q5_0, q8_0, q4_1, q5_1 repacked: 16 rows side by side -------------
 *
 * Per group of 16 rows and per block of 32 values: the 16 rows' scales (f16,
 * as in the file), then the values, laid out so that one 64-byte vector holds
 * 4 consecutive values 4k..4k+3 of each of the 16 rows in 16 int32 lanes:
 * dpbusd against the 4 matching activation bytes (broadcast) sums 16 rows at
 * once, and one fmadd scales all 16, so that the float work is shared by 16
 * rows instead of done per row. The values are unsigned (dpbusd wants one
 * side so); their offset o comes back through the activations' block sums,
 * sum((q - o) y) = sum(q y) - o sum(y).
 *   q4_0: 4 chunks of 8 consecutive values v0..v7: for each of the 16 rows,
 *         4 bytes (v0|v4<<4, v1|v5<<4, v2|v6<<4, v3|v7<<4); a mask gives
 *         v0..v3 of all 16 rows, a shift and a mask v4..v7. o = 8.
 *   q5_0: 5 chunks of 5-bit values (packed-gemm.h, q5_pack_row). o = 16.
 *   q8_0: 8 chunks of 4 values, each plus 128. o = 128.
 *   mxfp4: as q4_0, the nibbles looked up in the E2M1 table (plus 12: o = 12),
 *         and in place of the f16 scales the 16 rows' E8M0 bytes (16 unused).
 *   q4_1, q5_1: the 16 rows' minimums m (f16) after the scales, then the
 *         values as q4_0's or q5_0's, without offset: a block adds
 *         d dy sum(q y) + m s, with s = dy sum(y) from q8_1 planar activations.
 * The same bytes as the file's blocks (16 x 18, 16 x 22, 16 x 34, 16 x 20,
 * 16 x 24).
 */

/* Bytes per 16 rows x 1 block of the layout with bits (4, 5 or 8) a value,
 * with minimums (q4_1, q5_1) or without. */
static inline int64_t planar_block(int bits, bool mins)
{
	return PACK_SCALES * (mins ? 2 : 1) + (bits == 8 ? 512 : 256) + (bits == 5 ? 64 : 0);
}

/* Block b of a row: its scale and minimum (the file's f16; m 0 without)
 * and its 32 values as the unsigned bytes the tiles take (q4_0 and q4_1
 * 0..15, q5_0 and q5_1 0..31, q8_0 plus 128). */
static void legacy_block(int type, const void *row, int64_t b, hfp16 *d, hfp16 *m, uint8_t v[32])
{
	const uint8_t *qs, *qh = NULL;
	*m = 0;
	if (type == HEARTH_TYPE_Q4_0) {
		const struct block_q4_0 *x = (const struct block_q4_0 *)row + b;
		*d = x->d;
		qs = x->qs;
	} else if (type == HEARTH_TYPE_Q5_0) {
		const struct block_q5_0 *x = (const struct block_q5_0 *)row + b;
		*d = x->d;
		qs = x->qs;
		qh = x->qh;
	} else if (type == HEARTH_TYPE_Q4_1) {
		const struct block_q4_1 *x = (const struct block_q4_1 *)row + b;
		*d = x->d;
		*m = x->m;
		qs = x->qs;
	} else if (type == HEARTH_TYPE_Q5_1) {
		const struct block_q5_1 *x = (const struct block_q5_1 *)row + b;
		*d = x->d;
		*m = x->m;
		qs = x->qs;
		qh = x->qh;
	} else if (type == HEARTH_TYPE_MXFP4) {
		const struct block_mxfp4 *x = (const struct block_mxfp4 *)row + b;
		*d = 0; /* its scale is its E8M0 byte: pack_planar stores that */
		qs = x->qs;
	} else {
		const struct block_q8_0 *x = (const struct block_q8_0 *)row + b;
		*d = x->d;
		for (int e = 0; e < 32; e++)
			v[e] = (uint8_t)(x->qs[e] + 128);
		return;
	}
	uint32_t h = 0; /* bit j: the fifth bit of value j */
	if (qh)
		memcpy(&h, qh, 4);
	for (int e = 0; e < 16; e++) {
		v[e] = (uint8_t)((qs[e] & 0x0f) | ((h >> e) & 1) << 4);
		v[e + 16] = (uint8_t)((qs[e] >> 4) | ((h >> (e + 16)) & 1) << 4);
	}
}

static void pack_planar(int type, int bits, bool mins, const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / 32;
	const size_t row = qtype_row_size(type, n);
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * (size_t)planar_block(bits, mins);
			uint8_t *pv = pb + PACK_SCALES * (mins ? 2 : 1);
			for (int r = 0; r < PACK_ROWS; r++) {
				hfp16 d, m;
				uint8_t v[32];
				const char *rp = (const char *)vw + (size_t)(PACK_ROWS * g + r) * row;
				legacy_block(type, rp, b, &d, &m, v);
				if (type == HEARTH_TYPE_MXFP4) /* the 16 rows' E8M0 bytes, then 16 unused */
					pb[r] = ((const struct block_mxfp4 *)rp)[b].e;
				else
					memcpy(pb + 2 * r, &d, 2);
				if (mins)
					memcpy(pb + PACK_SCALES + 2 * r, &m, 2);
				if (bits == 5) {
					q5_pack_row(pv, r, v);
					continue;
				}
				for (int k = 0; k < 8; k++)
					for (int i = 0; i < 4; i++) {
						const int j = 4 * r + i; /* the byte of the row's value in a chunk */
						if (bits == 8)
							pv[64 * k + j] = v[4 * k + i];
						else if (k % 2 == 0)
							pv[64 * (k / 2) + j] = (uint8_t)(v[4 * k + i] | v[4 * k + 4 + i] << 4);
					}
			}
		}
}

static size_t pack_size_planar(int bits, bool mins, int64_t rows, int64_t n)
{
	return (size_t)(rows / PACK_ROWS) * (size_t)(n / 32) * (size_t)planar_block(bits, mins);
}

static size_t pack_size_q4_0(int64_t rows, int64_t n) { return pack_size_planar(4, false, rows, n); }
static void pack_mxfp4(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_MXFP4, 4, false, w, rows, n, out); }
static size_t pack_size_q5_0(int64_t rows, int64_t n) { return pack_size_planar(5, false, rows, n); }
static size_t pack_size_q8_0(int64_t rows, int64_t n) { return pack_size_planar(8, false, rows, n); }
static size_t pack_size_q4_1(int64_t rows, int64_t n) { return pack_size_planar(4, true, rows, n); }
static size_t pack_size_q5_1(int64_t rows, int64_t n) { return pack_size_planar(5, true, rows, n); }
static void pack_q4_0(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_Q4_0, 4, false, w, rows, n, out); }
static void pack_q5_0(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_Q5_0, 5, false, w, rows, n, out); }
static void pack_q8_0(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_Q8_0, 8, false, w, rows, n, out); }
static void pack_q4_1(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_Q4_1, 4, true, w, rows, n, out); }
static void pack_q5_1(const void *w, int64_t rows, int64_t n, void *out) { pack_planar(HEARTH_TYPE_Q5_1, 5, true, w, rows, n, out); }

/* The tile of the layouts above: 16 rows x T tokens over planar q8_0
 * activations (planar q8_1 with mins), bits (4, 5 or 8) a value. Each vector
 * of values is made once and taken by every token at once, so that only the
 * tokens' sums stay in registers. */
static inline __attribute__((always_inline)) void planar_tile(int T, int bits, bool mins, bool fp4, int64_t nb,
							      const uint8_t *P, const int8_t *const *yq, float *const *out)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f);
	const __m512i table = _mm512_broadcast_i32x4(_mm256_castsi256_si128(fp4_table256()));
	const int64_t block = planar_block(bits, mins), V = PACK_SCALES * (mins ? 2 : 1); /* where the values start */
	const int32_t offset = fp4 ? 12 : mins ? 0 : bits == 4 ? 8 : bits == 5 ? 16 : 128;
	const int C = chains(T);
	const float *yd[8], *yms[8]; /* q8_1 planar: s, after the scales */
	const int32_t *ys[8]; /* q8_0 planar: the sums, after the scales */
	__m512 facc[8];
	for (int t = 0; t < T; t++) {
		yd[t] = (const float *)(yq[t] + nb * QK8_0);
		ys[t] = (const int32_t *)(yd[t] + nb);
		yms[t] = yd[t] + nb;
		facc[t] = _mm512_setzero_ps();
	}
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *pb = P + (size_t)b * (size_t)block;
		prefetch_ahead(pb, block);
		__m512i acc[8][CHAINS_MAX];
		for (int t = 0; t < T; t++) {
			acc[t][0] = mins ? _mm512_setzero_si512() : _mm512_set1_epi32(-offset * ys[t][b]);
			for (int c = 1; c < C; c++)
				acc[t][c] = _mm512_setzero_si512();
		}
		for (int k = 0; k < 8; k++) { /* w: values 4k..4k+3 of each of the 16 rows */
			__m512i w;
			if (bits == 8) {
				w = _mm512_loadu_si512((const void *)(pb + V + 64 * k));
			} else if (bits == 4) {
				const __m512i x = _mm512_loadu_si512((const void *)(pb + V + 64 * (k / 2)));
				w = _mm512_and_si512(k % 2 ? _mm512_srli_epi16(x, 4) : x, m4);
				if (fp4)
					w = _mm512_shuffle_epi8(table, w);
			} else {
				w = q5_vector(pb + V, k);
			}
			for (int t = 0; t < T; t++) {
				int32_t four;
				memcpy(&four, yq[t] + 32 * b + 4 * k, 4);
				acc[t][k % C] = _mm512_dpbusd_epi32(acc[t][k % C], w, _mm512_set1_epi32(four));
			}
		}
		/* 2^(e - 128) by scalef, exact also where it is subnormal */
		const __m512 dw = fp4 ? _mm512_scalef_ps(_mm512_set1_ps(1.0f),
							 _mm512_cvtepi32_ps(_mm512_sub_epi32(
								 _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)pb)),
								 _mm512_set1_epi32(128))))
				      : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
		const __m512 mw = mins ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pb + PACK_SCALES))) : dw;
		for (int t = 0; t < T; t++) {
			facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_chains(acc[t], C)), _mm512_mul_ps(dw, _mm512_set1_ps(yd[t][b])),
						  facc[t]);
			if (mins)
				facc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(yms[t][b]), facc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], facc[t]);
}

/* The tiles as the packed loops call them (n values a row) and the bytes of
 * a group of 16 rows, per layout. */
#define q4_0_tile(T, n, P, act, out) planar_tile(T, 4, false, false, (n) / 32, P, act, out)
#define q5_0_tile(T, n, P, act, out) planar_tile(T, 5, false, false, (n) / 32, P, act, out)
#define q8_0_tile(T, n, P, act, out) planar_tile(T, 8, false, false, (n) / 32, P, act, out)
#define q4_1_tile(T, n, P, act, out) planar_tile(T, 4, true, false, (n) / 32, P, act, out)
#define q5_1_tile(T, n, P, act, out) planar_tile(T, 5, true, false, (n) / 32, P, act, out)
#define mxfp4_tile(T, n, P, act, out) planar_tile(T, 4, false, true, (n) / 32, P, act, out)
#define q4_0_group(n) ((n) / 32 * planar_block(4, false))
#define q5_0_group(n) ((n) / 32 * planar_block(5, false))
#define q8_0_group(n) ((n) / 32 * planar_block(8, false))
#define q4_1_group(n) ((n) / 32 * planar_block(4, true))
#define q5_1_group(n) ((n) / 32 * planar_block(5, true))

DEFINE_PACKED_GEMM(gemm_packed_q4_0, q4_0_group, const int8_t *, 8, q4_0_tile)
DEFINE_PACKED_GEMM(gemm_packed_mxfp4, q4_0_group, const int8_t *, 8, mxfp4_tile)
DEFINE_PACKED_GEMM(gemm_packed_q5_0, q5_0_group, const int8_t *, 8, q5_0_tile)
DEFINE_PACKED_GEMM(gemm_packed_q8_0, q8_0_group, const int8_t *, 8, q8_0_tile)
DEFINE_PACKED_GEMM(gemm_packed_q4_1, q4_1_group, const int8_t *, 8, q4_1_tile)
DEFINE_PACKED_GEMM(gemm_packed_q5_1, q5_1_group, const int8_t *, 8, q5_1_tile)
/* One q8_0 row against planar activations (rows that are not packed). */
static void vec_dot_q8_0_q8_0p(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q8_0 *x = vx;
	const int8_t *q = vy;
	const float *d = (const float *)(q + n);
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK8_0; i++) {
		const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
		const __m256i qy = _mm256_loadu_si256((const __m256i *)(q + 32 * i));
		const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * d[i]), _mm256_cvtepi32_ps(p), acc);
	}
	*s = hsum_ps(acc);
}

/* ---- f16 repacked: 16 rows side by side -------------------------------------
 *
 * Per group of 16 rows: for each column k, the 16 rows' values (32 bytes),
 * so one load and one conversion give a column of 16 rows as floats, and a
 * multiply-add with the broadcast activation adds it to 16 sums at once.
 * The same bytes as the file. Activations are rounded to f16 as llama.cpp
 * rounds them, but held as floats (QTYPE_F16F) to be broadcast as they are.
 * Each token keeps two float chains (even and odd columns) whatever the
 * tile's token count, so that batching does not change its sums.
 */

static size_t pack_size_f16(int64_t rows, int64_t n) { return (size_t)rows * (size_t)n * sizeof(hfp16); }

static void pack_f16(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const hfp16 *w = vw;
	hfp16 *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t k = 0; k < n; k++)
			for (int r = 0; r < PACK_ROWS; r++)
				out[((size_t)g * (size_t)n + (size_t)k) * PACK_ROWS + (size_t)r] = w[(size_t)(PACK_ROWS * g + r) * (size_t)n + (size_t)k];
}

static inline __attribute__((always_inline)) void f16_tile(int T, int64_t n, const hfp16 *P, const float *const *act,
							   float *const *out)
{
	__m512 acc[8][2]; /* up to 8 tokens a tile */
	for (int t = 0; t < T; t++)
		acc[t][0] = acc[t][1] = _mm512_setzero_ps();
	int64_t k = 0;
	for (; k + 2 <= n; k += 2) {
		prefetch_ahead((const uint8_t *)(P + (size_t)k * PACK_ROWS), 64); /* two columns: one line */
		const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(P + (size_t)k * PACK_ROWS)));
		const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(P + (size_t)(k + 1) * PACK_ROWS)));
		for (int t = 0; t < T; t++) {
			acc[t][0] = _mm512_fmadd_ps(w0, _mm512_set1_ps(act[t][k]), acc[t][0]);
			acc[t][1] = _mm512_fmadd_ps(w1, _mm512_set1_ps(act[t][k + 1]), acc[t][1]);
		}
	}
	if (k < n) { /* an odd last column */
		const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(P + (size_t)k * PACK_ROWS)));
		for (int t = 0; t < T; t++)
			acc[t][0] = _mm512_fmadd_ps(w0, _mm512_set1_ps(act[t][k]), acc[t][0]);
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], _mm512_add_ps(acc[t][0], acc[t][1]));
}

/* Activations for f16 weights: rounded to f16 as llama.cpp's are, kept as floats. */
static void f16f_from_float(const float *x, void *vy, int64_t n)
{
	float *y = vy;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
	for (; i < n; i++)
		y[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

/* One f16 row (not packed) against f16-rounded float activations. */
static void vec_dot_f16_f16f(int64_t n, float *s, const void *vx, const void *vy)
{
	const hfp16 *x = vx;
	const float *y = vy;
	__m512 acc = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), _mm512_loadu_ps(y + i), acc);
	float sum = _mm512_reduce_add_ps(acc);
	for (; i < n; i++)
		sum += _cvtsh_ss(x[i]) * y[i];
	*s = sum;
}

#define f16_tile_bytes(T, n, P, act, out) f16_tile(T, n, (const hfp16 *)(P), act, out)
#define f16_group(n) ((n) * PACK_ROWS * (int64_t)sizeof(hfp16))
DEFINE_PACKED_GEMM(gemm_packed_f16, f16_group, const float *, 8, f16_tile_bytes)

DEFINE_ATTN_KERNELS(attn_tile, swiglu)
DEFINE_GEGLU_KERNEL(geglu)
DEFINE_SOFTCAP_KERNEL(softcap)
DEFINE_ROW_KERNELS(row_minmax, row_exp_sum)

/* The indices of the elements >= thr, sixteen compared at once; the hits are
 * compressed in a register and stored whole (the next store overwrites what
 * lies past them; out has room, as k <= i). */
static int64_t row_collect(const float *x, int64_t n, float thr, int32_t *out)
{
	const __m512 t = _mm512_set1_ps(thr);
	const __m512i step = _mm512_set1_epi32(16);
	__m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	int64_t k = 0, i = 0;
	for (; i + 16 <= n; i += 16) {
		const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), t, _CMP_GE_OQ);
		if (m) {
			_mm512_storeu_si512(out + k, _mm512_maskz_compress_epi32(m, idx));
			k += __builtin_popcount(m);
		}
		idx = _mm512_add_epi32(idx, step);
	}
	for (; i < n; i++) {
		out[k] = (int32_t)i;
		k += x[i] >= thr;
	}
	return k;
}

void kern_register_avx512vnni(struct qtype_ops *ops, struct kern_fns *fns)
{
	fns->attn_tile = attn_tile;
	fns->swiglu = swiglu;
	fns->geglu = geglu;
	fns->softcap = softcap;
	fns->row_minmax = row_minmax;
	fns->row_collect = row_collect;
	fns->row_exp_sum = row_exp_sum;
	ops[HEARTH_TYPE_Q4_0].dot_type = QTYPE_Q8_0P;
	ops[HEARTH_TYPE_Q4_0].dot_from_float = q8_0p_from_float;
	ops[HEARTH_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0p;
	ops[HEARTH_TYPE_Q4_0].vec_dot4 = NULL;
	ops[HEARTH_TYPE_Q4_0].gemm = gemm_q4_0_q8_0p;
	ops[HEARTH_TYPE_Q4_0].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q4_0].pack_size = pack_size_q4_0;
	ops[HEARTH_TYPE_Q4_0].pack = pack_q4_0;
	ops[HEARTH_TYPE_Q4_0].gemm_packed = gemm_packed_q4_0;

	ops[HEARTH_TYPE_Q5_0].dot_type = QTYPE_Q8_0P;
	ops[HEARTH_TYPE_Q5_0].dot_from_float = q8_0p_from_float;
	ops[HEARTH_TYPE_Q5_0].vec_dot = vec_dot_q5_0_q8_0p;
	ops[HEARTH_TYPE_Q5_0].vec_dot4 = NULL;
	ops[HEARTH_TYPE_Q5_0].gemm = NULL;
	ops[HEARTH_TYPE_Q5_0].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q5_0].pack_size = pack_size_q5_0;
	ops[HEARTH_TYPE_Q5_0].pack = pack_q5_0;
	ops[HEARTH_TYPE_Q5_0].gemm_packed = gemm_packed_q5_0;

	ops[HEARTH_TYPE_Q4_1].dot_type = QTYPE_Q8_1P;
	ops[HEARTH_TYPE_Q4_1].dot_from_float = q8_1p_from_float;
	ops[HEARTH_TYPE_Q4_1].vec_dot = vec_dot_q4_1_q8_1p;
	ops[HEARTH_TYPE_Q4_1].vec_dot4 = NULL;
	ops[HEARTH_TYPE_Q4_1].gemm = NULL;
	ops[HEARTH_TYPE_Q4_1].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q4_1].pack_size = pack_size_q4_1;
	ops[HEARTH_TYPE_Q4_1].pack = pack_q4_1;
	ops[HEARTH_TYPE_Q4_1].gemm_packed = gemm_packed_q4_1;

	ops[HEARTH_TYPE_Q5_1].dot_type = QTYPE_Q8_1P;
	ops[HEARTH_TYPE_Q5_1].dot_from_float = q8_1p_from_float;
	ops[HEARTH_TYPE_Q5_1].vec_dot = vec_dot_q5_1_q8_1p;
	ops[HEARTH_TYPE_Q5_1].vec_dot4 = NULL;
	ops[HEARTH_TYPE_Q5_1].gemm = NULL;
	ops[HEARTH_TYPE_Q5_1].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q5_1].pack_size = pack_size_q5_1;
	ops[HEARTH_TYPE_Q5_1].pack = pack_q5_1;
	ops[HEARTH_TYPE_Q5_1].gemm_packed = gemm_packed_q5_1;

	ops[HEARTH_TYPE_Q8_0].dot_type = QTYPE_Q8_0P;
	ops[HEARTH_TYPE_Q8_0].dot_from_float = q8_0p_from_float;
	ops[HEARTH_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0p;
	ops[HEARTH_TYPE_Q8_0].vec_dot4 = NULL;
	ops[HEARTH_TYPE_Q8_0].gemm = NULL;
	ops[HEARTH_TYPE_Q8_0].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q8_0].pack_size = pack_size_q8_0;
	ops[HEARTH_TYPE_Q8_0].pack = pack_q8_0;
	ops[HEARTH_TYPE_Q8_0].gemm_packed = gemm_packed_q8_0;

	ops[HEARTH_TYPE_MXFP4].dot_type = QTYPE_Q8_0P;
	ops[HEARTH_TYPE_MXFP4].dot_from_float = q8_0p_from_float;
	ops[HEARTH_TYPE_MXFP4].vec_dot = vec_dot_mxfp4_q8_0p;
	ops[HEARTH_TYPE_MXFP4].vec_dot4 = NULL;
	ops[HEARTH_TYPE_MXFP4].gemm = NULL;
	ops[HEARTH_TYPE_MXFP4].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_MXFP4].pack_size = pack_size_q4_0;
	ops[HEARTH_TYPE_MXFP4].pack = pack_mxfp4;
	ops[HEARTH_TYPE_MXFP4].gemm_packed = gemm_packed_mxfp4;

	ops[HEARTH_TYPE_F16].dot_type = QTYPE_F16F;
	ops[HEARTH_TYPE_F16].dot_from_float = f16f_from_float;
	ops[HEARTH_TYPE_F16].vec_dot = vec_dot_f16_f16f;
	ops[HEARTH_TYPE_F16].vec_dot4 = NULL;
	ops[HEARTH_TYPE_F16].gemm = NULL;
	ops[HEARTH_TYPE_F16].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_F16].pack_size = pack_size_f16;
	ops[HEARTH_TYPE_F16].pack = pack_f16;
	ops[HEARTH_TYPE_F16].gemm_packed = gemm_packed_f16;
}
