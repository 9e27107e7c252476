/*
 * avx512vnni.c - kernels using AVX-512 VNNI's dpbusd (unsigned x signed byte
 * dot products into int32, one instruction) on 256-bit vectors (AVX512VL).
 * This file alone is compiled with those flags; kern.c installs its kernels
 * only on CPUs that have them, over the AVX2 ones.
 *
 * q4_0 weights stay unsigned (0..15): sum((q - 8) * y) = sum(q * y) - 8 * sum(y),
 * and sum(y) is one more dpbusd against a vector of ones.
 */
#include <immintrin.h>

#include "../../tensor/qtype.h"
#include "../kern.h"

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

static void vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_0 *x = vx;
	const struct block_q8_0 *y = vy;
	const __m256i eight = _mm256_set1_epi8(8);
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK4_0; i++) {
		const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
		const __m256i sxy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles(x[i].qs), qy);
		const __m256i s8y = _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, qy);
		const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
		acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(sxy, s8y)), acc);
	}
	*s = hsum_ps(acc);
}

static void vec_dot4_q4_0_q8_0(int64_t n, float *s, size_t s_stride, const void *vx, const void *vy, size_t y_stride)
{
	const struct block_q4_0 *x = vx;
	const struct block_q8_0 *y[4];
	const __m256i eight = _mm256_set1_epi8(8);
	__m256 acc[4];
	for (int k = 0; k < 4; k++) {
		y[k] = (const struct block_q8_0 *)((const char *)vy + (size_t)k * y_stride);
		acc[k] = _mm256_setzero_ps();
	}
	for (int64_t i = 0; i < n / QK4_0; i++) {
		const __m256i qx = nibbles(x[i].qs);
		const float dx = _cvtsh_ss(x[i].d);
		for (int k = 0; k < 4; k++) {
			const __m256i qy = _mm256_loadu_si256((const __m256i *)y[k][i].qs);
			const __m256i sxy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qx, qy);
			const __m256i s8y = _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, qy);
			acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * _cvtsh_ss(y[k][i].d)),
						 _mm256_cvtepi32_ps(_mm256_sub_epi32(sxy, s8y)), acc[k]);
		}
	}
	for (int k = 0; k < 4; k++)
		s[(size_t)k * s_stride] = hsum_ps(acc[k]);
}

void kern_register_avx512vnni(struct qtype_ops *ops)
{
	ops[HEARTH_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0;
	ops[HEARTH_TYPE_Q4_0].vec_dot4 = vec_dot4_q4_0_q8_0;
}
