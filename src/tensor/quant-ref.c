/*
 * quant-ref.c - scalar reference (de)quantization for every tensor type.
 *
 * Dequantizers follow the block layouts of qtype.h bit for bit. Quantizers
 * are simple and deterministic: per block (or sub-block) scales from the
 * extreme values, rounded to nearest. The K-quant quantizers choose scales
 * from min/max rather than by llama.cpp's iterative error search, so their
 * error is somewhat larger than llama-quantize's; the layout is identical.
 */
#include <math.h>
#include <string.h>

#include "../base/err.h"
#include "kquant.h"
#include "quant-fit.h"
#include "quant-ref.h"

/* ---- dequantization ----------------------------------------------------- */

void dequantize_row_q4_0(const struct block_q4_0 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
		const float d = fp16_to_f32(x[i].d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			y[j] = ((x[i].qs[j] & 0x0f) - 8) * d;
			y[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
		}
	}
}

void dequantize_row_q4_1(const struct block_q4_1 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
		const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
		for (int j = 0; j < QK4_1 / 2; j++) {
			y[j] = (x[i].qs[j] & 0x0f) * d + m;
			y[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
		}
	}
}

void dequantize_row_q5_0(const struct block_q5_0 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
		const float d = fp16_to_f32(x[i].d);
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		for (int j = 0; j < QK5_0 / 2; j++) {
			const int h0 = ((qh >> j) << 4) & 0x10;
			const int h1 = (qh >> (j + 12)) & 0x10;
			y[j] = (((x[i].qs[j] & 0x0f) | h0) - 16) * d;
			y[j + QK5_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
		}
	}
}

void dequantize_row_q5_1(const struct block_q5_1 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
		const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
		uint32_t qh;
		memcpy(&qh, x[i].qh, 4);
		for (int j = 0; j < QK5_1 / 2; j++) {
			const int h0 = ((qh >> j) << 4) & 0x10;
			const int h1 = (qh >> (j + 12)) & 0x10;
			y[j] = ((x[i].qs[j] & 0x0f) | h0) * d + m;
			y[j + QK5_1 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
		}
	}
}

void dequantize_row_q8_0(const struct block_q8_0 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
		const float d = fp16_to_f32(x[i].d);
		for (int j = 0; j < QK8_0; j++)
			y[j] = x[i].qs[j] * d;
	}
}

void dequantize_row_q8_1(const struct block_q8_1 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
		const float d = fp16_to_f32(x[i].d);
		for (int j = 0; j < QK8_1; j++)
			y[j] = x[i].qs[j] * d;
	}
}

void dequantize_row_q8_K(const struct block_q8_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K)
		for (int j = 0; j < QK_K; j++)
			y[j] = x[i].d * x[i].qs[j];
}

void dequantize_row_q2_K(const struct block_q2_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		int is = 0;
		for (int c = 0; c < QK_K; c += 128, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int half = 0; half < 2; half++) {
					const uint8_t sc = x[i].scales[is++];
					const float dl = d * (sc & 0xf), ml = dmin * (sc >> 4);
					for (int l = 0; l < 16; l++)
						*y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
				}
			}
		}
	}
}

/* Unpacks the 16 6-bit signed scales of a q3_K block (stored offset by 32). */
void dequantize_q3_K_scales(const uint8_t packed[12], int8_t sc[16])
{
	for (int j = 0; j < 16; j++) {
		int lo = j < 8 ? (packed[j] & 0xf) : (packed[j - 8] >> 4);
		int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
		sc[j] = (int8_t)((lo | (hi << 4)) - 32);
	}
}

void dequantize_row_q3_K(const struct block_q3_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = fp16_to_f32(x[i].d);
		const uint8_t *q = x[i].qs, *hm = x[i].hmask;
		int8_t sc[16];
		uint8_t m = 1;
		int is = 0;
		dequantize_q3_K_scales(x[i].scales, sc);
		for (int c = 0; c < QK_K; c += 128, q += 32) {
			for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
				for (int half = 0; half < 2; half++) {
					const float dl = d * sc[is++];
					for (int l = 16 * half; l < 16 * half + 16; l++)
						*y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
				}
			}
		}
	}
}

/* Scale and min of sub-block j (0..7) of a q4_K / q5_K block, 6 bits each. */
void dequantize_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

void dequantize_row_q4_K(const struct block_q4_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		for (int j = 0; j < 8; j += 2, q += 32) {
			uint8_t sc, m;
			dequantize_k4_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			dequantize_k4_scale_min(j + 1, x[i].scales, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (q[l] >> 4) - m2;
		}
	}
}

void dequantize_row_q5_K(const struct block_q5_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
		const uint8_t *ql = x[i].qs, *qh = x[i].qh;
		uint8_t u1 = 1, u2 = 2;
		for (int j = 0; j < 8; j += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
			uint8_t sc, m;
			dequantize_k4_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			dequantize_k4_scale_min(j + 1, x[i].scales, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
		}
	}
}

void dequantize_row_q6_K(const struct block_q6_K *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++) {
		const float d = fp16_to_f32(x[i].d);
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int c = 0; c < QK_K; c += 128, y += 128, ql += 64, qh += 32, sc += 8) {
			for (int l = 0; l < 32; l++) {
				const int is = l / 16;
				const int q1 = (int8_t)((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
				const int q2 = (int8_t)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
				const int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				const int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l] = d * sc[is] * q1;
				y[l + 32] = d * sc[is + 2] * q2;
				y[l + 64] = d * sc[is + 4] * q3;
				y[l + 96] = d * sc[is + 6] * q4;
			}
		}
	}
}

/* E2M1 values, doubled (the block scale is halved to match). */
static const int8_t mxfp4_values[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };

float mxfp4_value(int nibble) { return mxfp4_values[nibble & 15]; }

float mxfp4_scale_half(uint8_t e) { return ldexpf(1.0f, (int)e - 128); }

void dequantize_row_mxfp4(const struct block_mxfp4 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_MXFP4; i++) {
		const float d = mxfp4_scale_half(x[i].e);
		for (int j = 0; j < QK_MXFP4 / 2; j++) {
			y[i * QK_MXFP4 + j] = mxfp4_values[x[i].qs[j] & 15] * d;
			y[i * QK_MXFP4 + j + QK_MXFP4 / 2] = mxfp4_values[x[i].qs[j] >> 4] * d;
		}
	}
}

int dequantize_row_ref(int type, const void *x, float *y, int64_t n)
{
	switch (type) {
	case HEARTH_TYPE_F32: memcpy(y, x, (size_t)n * sizeof *y); return 0;
	case HEARTH_TYPE_F16:
		for (int64_t i = 0; i < n; i++)
			y[i] = fp16_to_f32(((const hfp16 *)x)[i]);
		return 0;
	case HEARTH_TYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			y[i] = bf16_to_f32(((const hbf16 *)x)[i]);
		return 0;
	case HEARTH_TYPE_Q4_0: dequantize_row_q4_0(x, y, n); return 0;
	case HEARTH_TYPE_Q4_1: dequantize_row_q4_1(x, y, n); return 0;
	case HEARTH_TYPE_Q5_0: dequantize_row_q5_0(x, y, n); return 0;
	case HEARTH_TYPE_Q5_1: dequantize_row_q5_1(x, y, n); return 0;
	case HEARTH_TYPE_Q8_0: dequantize_row_q8_0(x, y, n); return 0;
	case HEARTH_TYPE_Q8_1: dequantize_row_q8_1(x, y, n); return 0;
	case HEARTH_TYPE_Q8_K: dequantize_row_q8_K(x, y, n); return 0;
	case HEARTH_TYPE_MXFP4: dequantize_row_mxfp4(x, y, n); return 0;
	case QTYPE_F16F: memcpy(y, x, (size_t)n * sizeof *y); return 0;
	case QTYPE_Q8_0P:
	case QTYPE_Q8_1P: { /* values, then the block scales */
		const int8_t *q = x;
		float d;
		for (int64_t i = 0; i < n; i++) {
			memcpy(&d, q + n + (i / QK8_0) * (int64_t)sizeof d, sizeof d);
			y[i] = q[i] * d;
		}
		return 0;
	}
	case HEARTH_TYPE_Q2_K: dequantize_row_q2_K(x, y, n); return 0;
	case HEARTH_TYPE_Q3_K: dequantize_row_q3_K(x, y, n); return 0;
	case HEARTH_TYPE_Q4_K: dequantize_row_q4_K(x, y, n); return 0;
	case HEARTH_TYPE_Q5_K: dequantize_row_q5_K(x, y, n); return 0;
	case HEARTH_TYPE_Q6_K: dequantize_row_q6_K(x, y, n); return 0;
	}
	return HEARTH_EUNSUPPORTED;
}

/* ---- quantization ------------------------------------------------------- */

/* The element of largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n)
{
	float amax = 0, max = 0;
	for (int j = 0; j < n; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	return max;
}

/* v rounded half away from zero, as int8: |v| < 127.5 for finite activations;
 * beyond, and for a NaN (NaN or infinite activations), saturated (NaN: -128,
 * as the AVX-512 conversion gives) instead of an out-of-range conversion. */
static int8_t round_i8(float v)
{
	if (v >= -127.5f && v < 127.5f)
		return (int8_t)roundf(v);
	return v > 0 ? 127 : -128;
}

static void quantize_row_q8_0(const float *x, struct block_q8_0 *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		const float amax = fabsf(signed_absmax(x, QK8_0));
		const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
		y[i].d = f32_to_fp16(d);
		for (int j = 0; j < QK8_0; j++)
			y[i].qs[j] = round_i8(x[j] * id);
	}
}

/* Activations for q4_1 / q5_1 weights: as q8_0, plus s = d * sum(q) for the
 * weights' offset term. */
static void quantize_row_q8_1(const float *x, struct block_q8_1 *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		const float amax = fabsf(signed_absmax(x, QK8_1));
		const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
		int sum = 0;
		y[i].d = f32_to_fp16(d);
		for (int j = 0; j < QK8_1; j++) {
			y[i].qs[j] = round_i8(x[j] * id);
			sum += y[i].qs[j];
		}
		y[i].s = f32_to_fp16((float)sum * d);
	}
}

/* Activations for K-quant weights: 256 values, a float scale set by the
 * element of largest magnitude (mapped to -127), rounded to nearest even,
 * and sums of each 16 for the weights' minimum terms. */
static void quantize_row_q8_K(const float *x, struct block_q8_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		const float max = signed_absmax(x, QK_K);
		memset(&y[i], 0, sizeof y[i]);
		if (max == 0)
			continue;
		const float iscale = -127.0f / max;
		for (int j = 0; j < QK_K; j++) {
			long v = lrintf(iscale * x[j]);
			y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
		}
		for (int j = 0; j < QK_K / 16; j++) {
			int sum = 0;
			for (int k = 0; k < 16; k++)
				sum += y[i].qs[16 * j + k];
			y[i].bsums[j] = (int16_t)sum;
		}
		y[i].d = 1 / iscale;
	}
}

/* 4/5-bit symmetric: q in [0, 2^bits) around the middle value. */
static void quantize_sym(const float *x, int bits, uint8_t *q, float *d_out)
{
	const int mid = 1 << (bits - 1), top = (1 << bits) - 1;
	const float d = signed_absmax(x, 32) / -mid, id = d ? 1.0f / d : 0.0f;
	for (int j = 0; j < 32; j++) {
		int v = (int)(x[j] * id + mid + 0.5f);
		q[j] = (uint8_t)(v < 0 ? 0 : v > top ? top : v);
	}
	*d_out = d;
}

/* 4/5-bit affine: q in [0, 2^bits), x ~ q*d + min. */
static void quantize_affine(const float *x, int bits, uint8_t *q, float *d_out, float *m_out)
{
	const int top = (1 << bits) - 1;
	float lo = x[0], hi = x[0];
	for (int j = 1; j < 32; j++) {
		lo = x[j] < lo ? x[j] : lo;
		hi = x[j] > hi ? x[j] : hi;
	}
	const float d = (hi - lo) / top, id = d ? 1.0f / d : 0.0f;
	for (int j = 0; j < 32; j++) {
		int v = (int)((x[j] - lo) * id + 0.5f);
		q[j] = (uint8_t)(v < 0 ? 0 : v > top ? top : v);
	}
	*d_out = d;
	*m_out = lo;
}

static void pack_nibbles(const uint8_t q[32], uint8_t qs[16])
{
	for (int j = 0; j < 16; j++)
		qs[j] = (uint8_t)((q[j] & 0xf) | ((q[j + 16] & 0xf) << 4));
}

static void pack_high_bits(const uint8_t q[32], uint8_t qh[4])
{
	uint32_t h = 0;
	for (int j = 0; j < 32; j++)
		h |= (uint32_t)((q[j] >> 4) & 1) << j;
	memcpy(qh, &h, 4);
}

/* The nearest of the 16 values (times d) to v; the lowest index among equals. */
static uint8_t mxfp4_nearest(float v, float d)
{
	uint8_t best = 0;
	float best_err = fabsf(mxfp4_values[0] * d - v);
	for (uint8_t i = 1; i < 16; i++) {
		const float e = fabsf(mxfp4_values[i] * d - v);
		if (e < best_err) {
			best = i;
			best_err = e;
		}
	}
	return best;
}

/* As llama.cpp: the scale puts the block's largest magnitude in [4, 8) x 2^k
 * (the largest value, 6, is reached by rounding), each value the nearest. */
static void quantize_row_mxfp4(const float *x, struct block_mxfp4 *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_MXFP4; i++) {
		const float *xb = x + i * QK_MXFP4;
		float amax = 0;
		for (int j = 0; j < QK_MXFP4; j++)
			amax = amax < fabsf(xb[j]) ? fabsf(xb[j]) : amax;
		y[i].e = amax > 0 ? (uint8_t)(floorf(log2f(amax)) - 2 + 127) : 0;
		const float d = mxfp4_scale_half(y[i].e);
		for (int j = 0; j < QK_MXFP4 / 2; j++)
			y[i].qs[j] = (uint8_t)(mxfp4_nearest(xb[j], d) | mxfp4_nearest(xb[j + QK_MXFP4 / 2], d) << 4);
	}
}

static void quantize_row_q4_0(const float *x, struct block_q4_0 *y, int64_t n)
{
	uint8_t q[32];
	float d;
	for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
		quantize_sym(x, 4, q, &d);
		y[i].d = f32_to_fp16(d);
		pack_nibbles(q, y[i].qs);
	}
}

static void quantize_row_q4_1(const float *x, struct block_q4_1 *y, int64_t n)
{
	uint8_t q[32];
	float d, m;
	for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
		quantize_affine(x, 4, q, &d, &m);
		y[i].d = f32_to_fp16(d);
		y[i].m = f32_to_fp16(m);
		pack_nibbles(q, y[i].qs);
	}
}

static void quantize_row_q5_0(const float *x, struct block_q5_0 *y, int64_t n)
{
	uint8_t q[32];
	float d;
	for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
		quantize_sym(x, 5, q, &d);
		y[i].d = f32_to_fp16(d);
		pack_nibbles(q, y[i].qs);
		pack_high_bits(q, y[i].qh);
	}
}

static void quantize_row_q5_1(const float *x, struct block_q5_1 *y, int64_t n)
{
	uint8_t q[32];
	float d, m;
	for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
		quantize_affine(x, 5, q, &d, &m);
		y[i].d = f32_to_fp16(d);
		y[i].m = f32_to_fp16(m);
		pack_nibbles(q, y[i].qs);
		pack_high_bits(q, y[i].qh);
	}
}

/* ---- weighted (importance-matrix) quantization of the 32-blocks --------- */

/* As llama.cpp's quantize_row_q{4,5}_{0,1}_impl: each block fitted with
 * weights qw * sqrt(sigma^2 + x^2), sigma^2 the row's mean square; q4_0 and
 * q5_0 symmetric (the scale search of the K-quants), q4_1 and q5_1 affine. */

static float row_sigma2(const float *x, int64_t n)
{
	float sum_x2 = 0;
	for (int64_t j = 0; j < n; j++)
		sum_x2 += x[j] * x[j];
	return sum_x2 / n;
}

static void block_weights(const float *xb, const float *qw, float sigma2, float w[32])
{
	for (int j = 0; j < 32; j++)
		w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

/* Symmetric 4-bit (nmax 8) or 5-bit (nmax 16) blocks of one row. */
static void imat_sym_row(const float *x, void *vy, int64_t n, const float *qw, int nmax)
{
	const float sigma2 = row_sigma2(x, n);
	float w[32];
	int8_t L[32];
	uint8_t q[32];
	for (int64_t ib = 0; ib < n / 32; ib++) {
		block_weights(x + 32 * ib, qw + 32 * ib, sigma2, w);
		const float d = qfit_sym(32, nmax, x + 32 * ib, L, w);
		for (int j = 0; j < 32; j++)
			q[j] = (uint8_t)L[j];
		if (nmax == 8) {
			struct block_q4_0 *y = (struct block_q4_0 *)vy + ib;
			y->d = f32_to_fp16(d);
			pack_nibbles(q, y->qs);
		} else {
			struct block_q5_0 *y = (struct block_q5_0 *)vy + ib;
			y->d = f32_to_fp16(d);
			pack_nibbles(q, y->qs);
			pack_high_bits(q, y->qh);
		}
	}
}

/* Affine 4-bit (nmax 15) or 5-bit (nmax 31) blocks of one row. */
static void imat_affine_row(const float *x, void *vy, int64_t n, const float *qw, int nmax)
{
	const float sigma2 = row_sigma2(x, n);
	float w[32], neg_min;
	uint8_t L[32], Laux[32];
	for (int64_t ib = 0; ib < n / 32; ib++) {
		block_weights(x + 32 * ib, qw + 32 * ib, sigma2, w);
		const float d = qfit_affine(32, nmax, x + 32 * ib, w, L, &neg_min, Laux, -0.9f, 0.05f, 36, false);
		if (nmax == 15) {
			struct block_q4_1 *y = (struct block_q4_1 *)vy + ib;
			y->d = f32_to_fp16(d);
			y->m = f32_to_fp16(-neg_min);
			pack_nibbles(L, y->qs);
		} else {
			struct block_q5_1 *y = (struct block_q5_1 *)vy + ib;
			y->d = f32_to_fp16(d);
			y->m = f32_to_fp16(-neg_min);
			pack_nibbles(L, y->qs);
			pack_high_bits(L, y->qh);
		}
	}
}

int quantize_row_imat(int type, const float *x, void *y, int64_t n, const float *qw)
{
	if (!qw)
		return quantize_row_ref(type, x, y, n);
	switch (type) {
	case HEARTH_TYPE_Q4_0: imat_sym_row(x, y, n, qw, 8); return 0;
	case HEARTH_TYPE_Q5_0: imat_sym_row(x, y, n, qw, 16); return 0;
	case HEARTH_TYPE_Q4_1: imat_affine_row(x, y, n, qw, 15); return 0;
	case HEARTH_TYPE_Q5_1: imat_affine_row(x, y, n, qw, 31); return 0;
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
		return kquant_quantize(type, x, y, n, qw);
	}
	return quantize_row_ref(type, x, y, n); /* q8_0, f16, ...: no weighted variant, as in llama.cpp */
}

int quantize_supported(int type)
{
	switch (type) {
	case HEARTH_TYPE_F32: case HEARTH_TYPE_F16: case HEARTH_TYPE_BF16: case HEARTH_TYPE_Q8_0:
	case HEARTH_TYPE_Q4_0: case HEARTH_TYPE_Q4_1: case HEARTH_TYPE_Q5_0: case HEARTH_TYPE_Q5_1:
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
	case HEARTH_TYPE_Q8_1: case HEARTH_TYPE_Q8_K: case HEARTH_TYPE_MXFP4:
	case QTYPE_Q8_0P: case QTYPE_Q8_1P: case QTYPE_F16F:
		return 1;
	}
	return 0;
}

int quantize_row_ref(int type, const float *x, void *y, int64_t n)
{
	switch (type) {
	case HEARTH_TYPE_F32: memcpy(y, x, (size_t)n * sizeof *x); return 0;
	case HEARTH_TYPE_F16:
		for (int64_t i = 0; i < n; i++)
			((hfp16 *)y)[i] = f32_to_fp16(x[i]);
		return 0;
	case HEARTH_TYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			((hbf16 *)y)[i] = f32_to_bf16(x[i]);
		return 0;
	case HEARTH_TYPE_Q8_0: quantize_row_q8_0(x, y, n); return 0;
	case HEARTH_TYPE_Q8_1: quantize_row_q8_1(x, y, n); return 0;
	case HEARTH_TYPE_Q8_K: quantize_row_q8_K(x, y, n); return 0;
	case QTYPE_F16F:
		for (int64_t i = 0; i < n; i++)
			((float *)y)[i] = fp16_to_f32(f32_to_fp16(x[i]));
		return 0;
	case QTYPE_Q8_0P: { /* as q8_0, laid out as values, scales (f16-rounded, as q8_0's), sums */
		int8_t *q = y;
		for (int64_t i = 0; i < n / QK8_0; i++) {
			struct block_q8_0 b;
			int32_t sum = 0;
			quantize_row_q8_0(x + i * QK8_0, &b, QK8_0);
			memcpy(q + i * QK8_0, b.qs, QK8_0);
			for (int j = 0; j < QK8_0; j++)
				sum += b.qs[j];
			const float d = fp16_to_f32(b.d);
			memcpy(q + n + i * (int64_t)sizeof d, &d, sizeof d);
			memcpy(q + n + n / QK8_0 * (int64_t)sizeof d + i * (int64_t)sizeof sum, &sum, sizeof sum);
		}
		return 0;
	}
	case QTYPE_Q8_1P: { /* as q8_1, laid out as values, scales, s (both f16-rounded, as q8_1's) */
		int8_t *q = y;
		for (int64_t i = 0; i < n / QK8_1; i++) {
			struct block_q8_1 b;
			quantize_row_q8_1(x + i * QK8_1, &b, QK8_1);
			memcpy(q + i * QK8_1, b.qs, QK8_1);
			const float d = fp16_to_f32(b.d), sum = fp16_to_f32(b.s);
			memcpy(q + n + i * (int64_t)sizeof d, &d, sizeof d);
			memcpy(q + n + n / QK8_1 * (int64_t)sizeof d + i * (int64_t)sizeof sum, &sum, sizeof sum);
		}
		return 0;
	}
	case HEARTH_TYPE_Q4_0: quantize_row_q4_0(x, y, n); return 0;
	case HEARTH_TYPE_MXFP4: quantize_row_mxfp4(x, y, n); return 0;
	case HEARTH_TYPE_Q4_1: quantize_row_q4_1(x, y, n); return 0;
	case HEARTH_TYPE_Q5_0: quantize_row_q5_0(x, y, n); return 0;
	case HEARTH_TYPE_Q5_1: quantize_row_q5_1(x, y, n); return 0;
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
		return kquant_quantize(type, x, y, n, NULL);
	}
	return HEARTH_EUNSUPPORTED;
}
