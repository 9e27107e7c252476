/*
 * avx2.c - AVX2 + FMA + F16C kernels (this file alone is compiled with those
 * flags; kern.c installs them only on CPUs that have them).
 *
 * Integer dot products follow the scalar reference exactly per block
 * (8-bit activations, integer sums); only the order of the float additions
 * across blocks differs, so results agree to float rounding.
 */
#include <immintrin.h>
#include <string.h>

#include "../../tensor/qtype.h"
#include "../attn-tile.h"
#include "../logit-row.h"
#include "../kern.h"

static inline float hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

static inline float h2f(hfp16 h) { return _cvtsh_ss(h); }

/* 32 nibbles: low halves (elements 0..15) then high halves (16..31). */
static inline __m256i nibbles(const uint8_t *qs)
{
	const __m128i t = _mm_loadu_si128((const __m128i *)qs);
	const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* The weight types whose blocks of 32 take q8_0 activations. */
enum blk32 { BLK_Q8_0, BLK_Q4_0, BLK_MXFP4 };

/* 2^(e - 128), MXFP4's halved E8M0 scale (subnormal for e < 2). */
static inline float e8m0_half(uint8_t e)
{
	const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* Signed values and scale of weight block i: q4_0 (nibbles - 8), q8_0, or
 * MXFP4 (nibbles looked up among the doubled E2M1 values). */
static inline __m256i block_values(const void *x, int64_t i, enum blk32 kind)
{
	if (kind == BLK_Q4_0)
		return _mm256_sub_epi8(nibbles(((const struct block_q4_0 *)x)[i].qs), _mm256_set1_epi8(8));
	if (kind == BLK_MXFP4) {
		const __m256i lut = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
						     0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
		return _mm256_shuffle_epi8(lut, nibbles(((const struct block_mxfp4 *)x)[i].qs));
	}
	return _mm256_loadu_si256((const __m256i *)((const struct block_q8_0 *)x)[i].qs);
}

static inline float block_scale(const void *x, int64_t i, enum blk32 kind)
{
	if (kind == BLK_MXFP4)
		return e8m0_half(((const struct block_mxfp4 *)x)[i].e);
	return h2f(kind == BLK_Q4_0 ? ((const struct block_q4_0 *)x)[i].d : ((const struct block_q8_0 *)x)[i].d);
}

/* One q4_0, q8_0 or MXFP4 row against K q8_0 activation rows (K = 1: a plain
 * dot; K = 4: each weight block unpacked once for four tokens). Even and odd
 * blocks sum in two float chains, added at the end: the same order for any
 * K, so that a token's result does not depend on how many share the call. */
static inline __attribute__((always_inline)) void dotk_q8_0_act(int K, enum blk32 kind, int64_t n, float *s,
								size_t s_stride, const void *x, const void *vy,
								size_t y_stride)
{
	const struct block_q8_0 *y[4];
	__m256 acc[4][2];
	for (int k = 0; k < K; k++) {
		y[k] = (const struct block_q8_0 *)((const char *)vy + (size_t)k * y_stride);
		acc[k][0] = acc[k][1] = _mm256_setzero_ps();
	}
	for (int64_t i = 0; i < n / QK8_0; i++) {
		const __m256i qx = block_values(x, i, kind);
		const __m256i ax = _mm256_sign_epi8(qx, qx);
		const float dx = block_scale(x, i, kind);
		for (int k = 0; k < K; k++) {
			const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[k][i].qs), qx);
			const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
			acc[k][i & 1] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y[k][i].d)), _mm256_cvtepi32_ps(p), acc[k][i & 1]);
		}
	}
	for (int k = 0; k < K; k++)
		s[(size_t)k * s_stride] = hsum_ps(_mm256_add_ps(acc[k][0], acc[k][1]));
}

static void vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	dotk_q8_0_act(1, BLK_Q4_0, n, s, 0, vx, vy, 0);
}

static void vec_dot_q8_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	dotk_q8_0_act(1, BLK_Q8_0, n, s, 0, vx, vy, 0);
}

static void vec_dot_mxfp4_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	dotk_q8_0_act(1, BLK_MXFP4, n, s, 0, vx, vy, 0);
}

static void vec_dot4_q4_0_q8_0(int64_t n, float *s, size_t s_stride, const void *vx, const void *vy, size_t y_stride)
{
	dotk_q8_0_act(4, BLK_Q4_0, n, s, s_stride, vx, vy, y_stride);
}

static void vec_dot4_q8_0_q8_0(int64_t n, float *s, size_t s_stride, const void *vx, const void *vy, size_t y_stride)
{
	dotk_q8_0_act(4, BLK_Q8_0, n, s, s_stride, vx, vy, y_stride);
}

static void vec_dot4_mxfp4_q8_0(int64_t n, float *s, size_t s_stride, const void *vx, const void *vy, size_t y_stride)
{
	dotk_q8_0_act(4, BLK_MXFP4, n, s, s_stride, vx, vy, y_stride);
}

/* ---- q4_1, q5_0, q5_1 ------------------------------------------------------
 * 32 values a block: 4-bit nibbles (low halves are values 0..15, high halves
 * 16..31), for the 5-bit types plus bit j of the 32-bit qh as value j's
 * fifth bit. q5_0 is offset by -16; q4_1 and q5_1 carry a minimum m instead,
 * whose term m * s comes with the q8_1 activations (s = d * sum(y)). */

/* 32 bytes: 0x10 where bit j of the 32-bit word at qh is set, else 0. */
static inline __m256i fifth_bits(const uint8_t *qh)
{
	uint32_t w;
	memcpy(&w, qh, 4);
	const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)w),
						   _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
								     0x0101010101010101, 0x0000000000000000));
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
	return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

/* One block's integer dot: unsigned values (with offset 16 for q5_0, as signed) against 32 activations. */
static inline __m256i block_dot_u(__m256i v, const int8_t *yq, bool offset16)
{
	const __m256i y = _mm256_loadu_si256((const __m256i *)yq);
	if (offset16) {
		const __m256i q = _mm256_sub_epi8(v, _mm256_set1_epi8(16));
		return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)), _mm256_set1_epi16(1));
	}
	return _mm256_madd_epi16(_mm256_maddubs_epi16(v, y), _mm256_set1_epi16(1));
}

/* q4_1 or q5_1 (five: with the fifth bits) against q8_1 activations. */
static inline __attribute__((always_inline)) void dot_q8_1_act(bool five, int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_1 *x4 = vx;
	const struct block_q5_1 *x5 = vx;
	const struct block_q8_1 *y = vy;
	__m256 acc = _mm256_setzero_ps();
	float ms = 0;
	for (int64_t i = 0; i < n / QK4_1; i++) {
		const __m256i v = five ? _mm256_or_si256(nibbles(x5[i].qs), fifth_bits(x5[i].qh)) : nibbles(x4[i].qs);
		const float d = h2f(five ? x5[i].d : x4[i].d), m = h2f(five ? x5[i].m : x4[i].m);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d * h2f(y[i].d)), _mm256_cvtepi32_ps(block_dot_u(v, y[i].qs, false)), acc);
		ms += m * h2f(y[i].s);
	}
	*s = hsum_ps(acc) + ms;
}

static void vec_dot_q4_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) { dot_q8_1_act(false, n, s, vx, vy); }
static void vec_dot_q5_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) { dot_q8_1_act(true, n, s, vx, vy); }

static void vec_dot_q5_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q5_0 *x = vx;
	const struct block_q8_0 *y = vy;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK5_0; i++) {
		const __m256i v = _mm256_or_si256(nibbles(x[i].qs), fifth_bits(x[i].qh));
		const __m256i p = block_dot_u(v, y[i].qs, true);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = hsum_ps(acc);
}

/* ---- q2_K and q3_K -------------------------------------------------------------
 * 256 values a block in two chunks of 128: 32 bytes of 2-bit values, one
 * shift (0, 2, 4, 6) per 32 consecutive values, each 16 with their own scale.
 * maddubs gives sums of pairs as int16 (the first 16 values in the low
 * 128-bit half, the next 16 in the high), and madd against the two scales
 * completes 8 int32 sums. q2_K: scale and min of 4 bits each, the min term
 * through the activations' 16-value sums; q3_K: signed 6-bit scales, and a
 * third bit (hmask) whose absence subtracts 4. */

/* 16 int16 lanes: a in the low 128-bit half, b in the high one. */
static inline __m256i two_scales(int a, int b)
{
	return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

static void vec_dot_q2_K_q8_K(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q2_K *x = vx;
	const struct block_q8_K *y = vy;
	const __m256i m3 = _mm256_set1_epi8(3);
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int summ = 0;
		for (int j = 0; j < 16; j++)
			summ += (x[i].scales[j] >> 4) * y[i].bsums[j];
		__m256i acc = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
			for (int sh = 0; sh < 4; sh++) {
				const int is = 8 * c + 2 * sh;
				const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), m3);
				const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * c + 32 * sh));
				const __m256i sc = two_scales(x[i].scales[is] & 0xf, x[i].scales[is + 1] & 0xf);
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(v, yv), sc));
			}
		}
		sum += y[i].d * h2f(x[i].d) * (float)hsum_epi32(acc) - y[i].d * h2f(x[i].dmin) * (float)summ;
	}
	*s = sum;
}

/* The 16 signed 6-bit scales of a q3_K block (stored offset by 32). */
static inline void q3_scales(const uint8_t packed[12], int sc[16])
{
	for (int j = 0; j < 16; j++) {
		const int lo = j < 8 ? (packed[j] & 0xf) : (packed[j - 8] >> 4);
		const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
		sc[j] = (lo | (hi << 4)) - 32;
	}
}

static void vec_dot_q3_K_q8_K(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q3_K *x = vx;
	const struct block_q8_K *y = vy;
	const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sc[16];
		q3_scales(x[i].scales, sc);
		const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
		__m256i acc = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
			for (int sh = 0; sh < 4; sh++) {
				const int is = 8 * c + 2 * sh;
				const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * c + sh)));
				const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), m3);
				/* 4 where the high bit is clear: value = v - that */
				const __m256i neg = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256()), four);
				const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * c + 32 * sh));
				const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(v, yv), _mm256_maddubs_epi16(neg, yv));
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, two_scales(sc[is], sc[is + 1])));
			}
		}
		sum += y[i].d * h2f(x[i].d) * (float)hsum_epi32(acc);
	}
	*s = sum;
}

/* Scales and mins of the 8 sub-blocks of a q4_K block. */
static inline void k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			sc[j] = q[j] & 63;
			mn[j] = q[j + 4] & 63;
		} else {
			sc[j] = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
			mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
		}
	}
}

/* One q4_K or q5_K block (qh NULL: q4_K) against a q8_K block, before the
 * float scales: sum_j sc_j * S_j (returned) and sum_j m_j * Y_j (*summ).
 * q5_K adds a fifth bit per value, bit j of qh[l] for sub-block j, so each
 * value is nibble | bit << 4, at most 31. */
static inline __attribute__((always_inline)) int k_block_dot(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
							    const struct block_q8_K *y, int *summ)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
	uint8_t sc[8], mn[8];
	k4_scales(scales, sc, mn);
	*summ = 0;
	for (int j = 0; j < 8; j++)
		*summ += mn[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
	const __m256i h = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
	__m256i acc = _mm256_setzero_si256();
	for (int c = 0; c < 4; c++) {
		const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
		__m256i lo = _mm256_and_si256(q4, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
		if (qh) { /* 16-bit shifts: bit 2c (2c + 1) of every byte lands in that byte's bit 0 */
			lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c), one), 4));
			hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c + 1), one), 4));
		}
		const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c));
		const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c + 32));
		const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(sc[2 * c]));
		const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(sc[2 * c + 1]));
		acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
	}
	return hsum_epi32(acc);
}

/* q4_K or q5_K (five: with the fifth bits) against q8_K activations. */
static inline __attribute__((always_inline)) void dot_k_act(bool five, int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_K *x4 = vx;
	const struct block_q5_K *x5 = vx;
	const struct block_q8_K *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int summ;
		const int isum = five ? k_block_dot(x5[i].scales, x5[i].qs, x5[i].qh, &y[i], &summ)
				      : k_block_dot(x4[i].scales, x4[i].qs, NULL, &y[i], &summ);
		const float d = h2f(five ? x5[i].d : x4[i].d), dmin = h2f(five ? x5[i].dmin : x4[i].dmin);
		sum += y[i].d * d * (float)isum - y[i].d * dmin * (float)summ;
	}
	*s = sum;
}

static void vec_dot_q4_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) { dot_k_act(false, n, s, vx, vy); }
static void vec_dot_q5_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) { dot_k_act(true, n, s, vx, vy); }

static void vec_dot_q6_K_q8_K(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q6_K *x = vx;
	const struct block_q8_K *y = vy;
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		const int8_t *sc = x[i].scales;
		int off = 0; /* the -32 offset, through the activation sums */
		for (int j = 0; j < 16; j++)
			off += sc[j] * y[i].bsums[j];
		__m256i acc = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++) {
			const uint8_t *ql = x[i].ql + 64 * c, *qh = x[i].qh + 32 * c;
			const int8_t *q8 = y[i].qs + 128 * c;
			const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
			const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
			q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
			for (int k = 0; k < 4; k++) {
				const __m256i yv = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
				const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[8 * c + 2 * k + 1]),
								     _mm_set1_epi16(sc[8 * c + 2 * k]));
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), scv));
			}
		}
		sum += y[i].d * h2f(x[i].d) * (float)(hsum_epi32(acc) - 32 * off);
	}
	*s = sum;
}

/* ---- f32, f16, bf16: widened to float, eight at a time ---------------------- */
static inline __m256 f32x8(const float *x) { return _mm256_loadu_ps(x); }
static inline __m256 f16x8(const hfp16 *x) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)); }
/* a bfloat16 is the top half of a float, so widening is a shift */
static inline __m256 bf16x8(const hbf16 *x)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x)), 16));
}
static inline float f32_1(float x) { return x; }

/* vec_dot_NAME (two FMA chains of eight, a scalar tail) and NAME_to_float. */
#define DEFINE_FLOAT_KERNELS(name, elem_t, load8, one)                                      \
	static void vec_dot_##name(int64_t n, float *s, const void *vx, const void *vy)     \
	{                                                                                   \
		const elem_t *x = vx, *y = vy;                                              \
		__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();              \
		int64_t i = 0;                                                              \
		for (; i + 16 <= n; i += 16) {                                              \
			acc0 = _mm256_fmadd_ps(load8(x + i), load8(y + i), acc0);           \
			acc1 = _mm256_fmadd_ps(load8(x + i + 8), load8(y + i + 8), acc1);   \
		}                                                                           \
		float sum = hsum_ps(_mm256_add_ps(acc0, acc1));                             \
		for (; i < n; i++)                                                          \
			sum += one(x[i]) * one(y[i]);                                       \
		*s = sum;                                                                   \
	}                                                                                   \
	static void name##_to_float(const void *vx, float *y, int64_t n)                    \
	{                                                                                   \
		const elem_t *x = vx;                                                       \
		int64_t i = 0;                                                              \
		for (; i + 8 <= n; i += 8)                                                  \
			_mm256_storeu_ps(y + i, load8(x + i));                              \
		for (; i < n; i++)                                                          \
			y[i] = one(x[i]);                                                   \
	}

DEFINE_FLOAT_KERNELS(f32, float, f32x8, f32_1)
DEFINE_FLOAT_KERNELS(f16, hfp16, f16x8, h2f)
DEFINE_FLOAT_KERNELS(bf16, hbf16, bf16x8, bf16_to_f32)

static void f16_from_float(const float *x, void *vy, int64_t n)
{
	hfp16 *y = vy;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = (hfp16)_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* q8_0 activations: as the reference (amax / 127, rounded half away from zero). */
static void q8_0_from_float(const float *x, void *vy, int64_t n)
{
	struct block_q8_0 *y = vy;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		__m256 v[4], amax = _mm256_setzero_ps();
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
		}
		__m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
		m = _mm_max_ps(m, _mm_movehl_ps(m, m));
		m = _mm_max_ss(m, _mm_movehdup_ps(m));
		const float d = _mm_cvtss_f32(m) / 127, id = d ? 1.0f / d : 0.0f;
		y[i].d = (hfp16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f);
		int32_t q[32];
		for (int k = 0; k < 4; k++) {
			/* round half away from zero: trunc(x + copysign(0.5, x)) */
			__m256 t = _mm256_mul_ps(v[k], vid);
			t = _mm256_add_ps(t, _mm256_or_ps(_mm256_and_ps(t, sign), half));
			_mm256_storeu_si256((__m256i *)(q + 8 * k), _mm256_cvttps_epi32(t));
		}
		for (int j = 0; j < 32; j++)
			y[i].qs[j] = (int8_t)q[j];
	}
}

/* q8_K activations, bit for bit the reference's: the scale from the value of
 * largest magnitude (the first such, with its sign), values rounded to the
 * nearest (even on ties, as lrintf), sums of each 16. */
static void q8_K_from_float(const float *x, void *vy, int64_t n)
{
	struct block_q8_K *y = vy;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m256 am = _mm256_setzero_ps();
		for (int v = 0; v < QK_K / 8; v++)
			am = _mm256_max_ps(am, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * v)));
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		const float amax = _mm_cvtss_f32(m4);
		memset(&y[i], 0, sizeof y[i]);
		if (amax == 0)
			continue;
		float max = 0;
		for (int v = 0; v < QK_K / 8; v++) {
			const int eq = _mm256_movemask_ps(
				_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * v)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
			if (eq) {
				max = x[8 * v + __builtin_ctz((unsigned)eq)];
				break;
			}
		}
		const float iscale = -127.0f / max;
		for (int v = 0; v < QK_K / 16; v++) {
			__m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_set1_ps(iscale), _mm256_loadu_ps(x + 16 * v)));
			__m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_set1_ps(iscale), _mm256_loadu_ps(x + 16 * v + 8)));
			q0 = _mm256_min_epi32(q0, _mm256_set1_epi32(127));
			q1 = _mm256_min_epi32(q1, _mm256_set1_epi32(127));
			/* int32 -> int16 -> int8, lanes back in order */
			const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xd8);
			const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
			_mm_storeu_si128((__m128i *)(y[i].qs + 16 * v), b);
			y[i].bsums[v] = (int16_t)hsum_epi32(_mm256_add_epi32(q0, q1));
		}
		y[i].d = 1 / iscale;
	}
}

DEFINE_ATTN_KERNELS(attn_tile, swiglu)
DEFINE_GEGLU_KERNEL(geglu)
DEFINE_SOFTCAP_KERNEL(softcap)
DEFINE_ATTN_F16_CONVERT(attn_tile_f16, f16_to_float, attn_tile)
DEFINE_ROW_KERNELS(row_minmax, row_exp_sum)

/* The indices of the elements >= thr: eight compared at once, the hits taken from the mask. */
static int64_t row_collect(const float *x, int64_t n, float thr, int32_t *out)
{
	const __m256 t = _mm256_set1_ps(thr);
	int64_t k = 0, i = 0;
	for (; i + 8 <= n; i += 8) {
		unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_GE_OQ));
		while (m) {
			out[k++] = (int32_t)(i + __builtin_ctz(m));
			m &= m - 1;
		}
	}
	for (; i < n; i++) {
		out[k] = (int32_t)i;
		k += x[i] >= thr;
	}
	return k;
}

void kern_register_avx2(struct qtype_ops *ops, struct kern_fns *fns)
{
	fns->attn_tile = attn_tile;
	fns->attn_tile_f16 = attn_tile_f16;
	fns->swiglu = swiglu;
	fns->geglu = geglu;
	fns->softcap = softcap;
	fns->row_minmax = row_minmax;
	fns->row_collect = row_collect;
	fns->row_exp_sum = row_exp_sum;
	ops[HEARTH_TYPE_F32].vec_dot = vec_dot_f32;
	ops[HEARTH_TYPE_F32].to_float = f32_to_float;
	ops[HEARTH_TYPE_BF16].vec_dot = vec_dot_bf16;
	ops[HEARTH_TYPE_BF16].to_float = bf16_to_float;
	ops[HEARTH_TYPE_F16].vec_dot = vec_dot_f16;
	ops[HEARTH_TYPE_F16].to_float = f16_to_float;
	ops[HEARTH_TYPE_F16].dot_from_float = f16_from_float;
	ops[HEARTH_TYPE_F16].from_float = f16_from_float;
	ops[HEARTH_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0;
	ops[HEARTH_TYPE_Q4_0].vec_dot4 = vec_dot4_q4_0_q8_0;
	ops[HEARTH_TYPE_Q8_0].vec_dot4 = vec_dot4_q8_0_q8_0;
	ops[HEARTH_TYPE_MXFP4].vec_dot = vec_dot_mxfp4_q8_0;
	ops[HEARTH_TYPE_MXFP4].vec_dot4 = vec_dot4_mxfp4_q8_0;
	ops[HEARTH_TYPE_MXFP4].dot_from_float = q8_0_from_float;
	ops[HEARTH_TYPE_Q4_0].dot_from_float = q8_0_from_float;
	ops[HEARTH_TYPE_Q5_0].dot_from_float = q8_0_from_float;
	ops[HEARTH_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0;
	ops[HEARTH_TYPE_Q8_0].dot_from_float = q8_0_from_float;
	ops[HEARTH_TYPE_Q8_0].from_float = q8_0_from_float;
	ops[HEARTH_TYPE_Q4_K].vec_dot = vec_dot_q4_K_q8_K;
	ops[HEARTH_TYPE_Q5_K].vec_dot = vec_dot_q5_K_q8_K;
	ops[HEARTH_TYPE_Q4_1].vec_dot = vec_dot_q4_1_q8_1;
	ops[HEARTH_TYPE_Q2_K].vec_dot = vec_dot_q2_K_q8_K;
	ops[HEARTH_TYPE_Q3_K].vec_dot = vec_dot_q3_K_q8_K;
	ops[HEARTH_TYPE_Q5_0].vec_dot = vec_dot_q5_0_q8_0;
	ops[HEARTH_TYPE_Q5_1].vec_dot = vec_dot_q5_1_q8_1;
	for (int t = 0; t < HEARTH_TYPE_COUNT; t++)
		if (ops[t].dot_type == HEARTH_TYPE_Q8_K)
			ops[t].dot_from_float = q8_K_from_float;
	ops[HEARTH_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K;
}
