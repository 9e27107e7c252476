/*
 * avx2-dequant.c - K-quant rows to float with AVX2 (this file alone is
 * compiled with those flags; kern.c installs them only on CPUs that have
 * them). Training reads every frozen weight through to_float (src/train/
 * tmm.c), twice a step.
 *
 * The same bits as the reference (src/tensor/quant-ref.c): each value is the
 * reference's expression evaluated in the same order, a rounded multiply and
 * then a rounded subtract (no FMA), on integers converted exactly.
 */
#include <immintrin.h>

#include "../../tensor/qtype.h"
#include "../../tensor/quant-ref.h"
#include "../kern.h"

/* y[0..8) = d * (float)q[0..8) - m, q eight bytes: unsigned, with the
 * subtraction (q4_K); else signed, without it (q6_K) */
static inline void put8(float *y, __m128i q, int sgn, float d, float m)
{
	const __m256i w = sgn ? _mm256_cvtepi8_epi32(q) : _mm256_cvtepu8_epi32(q);
	const __m256 v = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(w));
	_mm256_storeu_ps(y, sgn ? v : _mm256_sub_ps(v, _mm256_set1_ps(m)));
}

/* 32 bytes to 32 floats, d and m for the bytes 0..15 (d0, m0) and 16..31 (d1, m1) */
static inline void put32(float *y, __m256i q, int sgn, float d0, float m0, float d1, float m1)
{
	const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
	put8(y, lo, sgn, d0, m0);
	put8(y + 8, _mm_unpackhi_epi64(lo, lo), sgn, d0, m0);
	put8(y + 16, hi, sgn, d1, m1);
	put8(y + 24, _mm_unpackhi_epi64(hi, hi), sgn, d1, m1);
}

static void q4_K_to_float(const void *vx, float *y, int64_t n)
{
	const struct block_q4_K *x = vx;
	const __m256i low4 = _mm256_set1_epi8(0x0f);
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = _cvtsh_ss(x[i].d), dmin = _cvtsh_ss(x[i].dmin);
		const uint8_t *q = x[i].qs;
		for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
			uint8_t sc, m;
			dequantize_k4_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			dequantize_k4_scale_min(j + 1, x[i].scales, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;
			const __m256i b = _mm256_loadu_si256((const __m256i *)q);
			put32(y, _mm256_and_si256(b, low4), 0, d1, m1, d1, m1);
			put32(y + 32, _mm256_and_si256(_mm256_srli_epi16(b, 4), low4), 0, d2, m2, d2, m2);
		}
	}
}

static void q6_K_to_float(const void *vx, float *y, int64_t n)
{
	const struct block_q6_K *x = vx;
	const __m256i low4 = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = _cvtsh_ss(x[i].d);
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int c = 0; c < QK_K; c += 128, y += 128, ql += 64, qh += 32, sc += 8) {
			const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
			const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
			const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), two));
			const __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), two));
			const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(h, two));
			const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
							   _mm256_and_si256(_mm256_srli_epi16(h, 2), two));
			put32(y, _mm256_sub_epi8(q1, off), 1, d * sc[0], 0.0f, d * sc[1], 0.0f);
			put32(y + 32, _mm256_sub_epi8(q2, off), 1, d * sc[2], 0.0f, d * sc[3], 0.0f);
			put32(y + 64, _mm256_sub_epi8(q3, off), 1, d * sc[4], 0.0f, d * sc[5], 0.0f);
			put32(y + 96, _mm256_sub_epi8(q4, off), 1, d * sc[6], 0.0f, d * sc[7], 0.0f);
		}
	}
}

void kern_register_avx2_dequant(struct qtype_ops *ops)
{
	ops[HEARTH_TYPE_Q4_K].to_float = q4_K_to_float;
	ops[HEARTH_TYPE_Q6_K].to_float = q6_K_to_float;
}
