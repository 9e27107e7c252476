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
static void q3_K_scales(const uint8_t packed[12], int8_t sc[16])
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
		q3_K_scales(x[i].scales, sc);
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
static void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
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
			k4_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(j + 1, x[i].scales, &sc, &m);
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
			k4_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(j + 1, x[i].scales, &sc, &m);
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

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The K-quants below follow llama.cpp's reference quantizers step for step
 * (ggml-quants.c quantize_row_q{2,3,4,5,6}_K_ref; the searches are in
 * quant-fit.c), with the same float operations in the same order, so that
 * `hearth quantize` lands where llama-quantize does. */

static int nearest(float v) { return qfit_nearest(v); }

/* Sub-block scales and mins of a q4_K / q5_K block as 6-bit values of
 * d = max_scale/63 and dmin = max_min/63, packed into 12 bytes; then each
 * value requantized against the stored scales into L (0..nmax). */
static void kq_pack_scales(const float *x, int nmax, const float scales[8], const float mins[8], uint8_t packed[12],
			   hfp16 *d_out, hfp16 *dmin_out, uint8_t *L)
{
	float max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		max_scale = scales[j] > max_scale ? scales[j] : max_scale;
		max_min = mins[j] > max_min ? mins[j] : max_min;
	}
	const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	for (int j = 0; j < 8; j++) {
		const uint8_t ls = (uint8_t)(nearest(inv_scale * scales[j]) > 63 ? 63 : nearest(inv_scale * scales[j]));
		const uint8_t lm = (uint8_t)(nearest(inv_min * mins[j]) > 63 ? 63 : nearest(inv_min * mins[j]));
		if (j < 4) {
			packed[j] = ls;
			packed[j + 4] = lm;
		} else {
			packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
			packed[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	*d_out = f32_to_fp16(max_scale / 63.f);
	*dmin_out = f32_to_fp16(max_min / 63.f);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		k4_scale_min(j, packed, &sc, &m);
		const float d = fp16_to_f32(*d_out) * sc;
		if (!d)
			continue;
		const float dm = fp16_to_f32(*dmin_out) * m;
		for (int ii = 0; ii < 32; ii++)
			L[32 * j + ii] = (uint8_t)clampi(nearest((x[32 * j + ii] + dm) / d), 0, nmax);
	}
}

/* q4_K / q5_K sub-block fits: weights av_x + |x| (av_x the block's RMS). */
static void kq_fit_subblocks(const float *x, int nmax, float rmin, int nstep, uint8_t *L, float scales[8],
			     float mins[8])
{
	uint8_t Laux[32];
	float w[32];
	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		const float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			w[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = qfit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
	}
}

/* q4_K: 8 sub-blocks of 32, x ~ d*sc[j]*q - dmin*m[j], sc and m 6-bit. */
static void quantize_row_q4_K(const float *x, struct block_q4_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		uint8_t L[QK_K];
		float scales[8], mins[8];
		memset(y[i].scales, 0, sizeof y[i].scales);
		kq_fit_subblocks(x, 15, -1.f, 20, L, scales, mins);
		kq_pack_scales(x, 15, scales, mins, y[i].scales, &y[i].d, &y[i].dmin, L);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
	}
}

/* q5_K: as q4_K with 5-bit values, the fifth bits in qh. */
static void quantize_row_q5_K(const float *x, struct block_q5_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		uint8_t L[QK_K];
		float scales[8], mins[8];
		memset(y[i].scales, 0, sizeof y[i].scales);
		kq_fit_subblocks(x, 31, -0.5f, 15, L, scales, mins);
		kq_pack_scales(x, 31, scales, mins, y[i].scales, &y[i].d, &y[i].dmin, L);
		memset(y[i].qh, 0, sizeof y[i].qh);
		uint8_t *ql = y[i].qs, u1 = 1, u2 = 2;
		for (int c = 0; c < 4; c++, ql += 32, u1 <<= 2, u2 <<= 2)
			for (int l = 0; l < 32; l++) {
				int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
				if (l1 > 15) {
					l1 -= 16;
					y[i].qh[l] |= u1;
				}
				if (l2 > 15) {
					l2 -= 16;
					y[i].qh[l] |= u2;
				}
				ql[l] = (uint8_t)(l1 | (l2 << 4));
			}
	}
}

/* q6_K: 16 sub-blocks of 16, x ~ d*sc[j]*(q-32), sc 8-bit signed. */
static void quantize_row_q6_K(const float *x, struct block_q6_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float scale[16], max_scale = 0, max_abs = 0;
		int8_t L[QK_K];
		uint8_t q[QK_K];
		for (int j = 0; j < 16; j++) {
			scale[j] = qfit_sym(16, 32, x + 16 * j, L + 16 * j, NULL);
			if (fabsf(scale[j]) > max_abs) {
				max_abs = fabsf(scale[j]);
				max_scale = scale[j];
			}
		}
		if (max_abs < QFIT_GROUP_MAX_EPS) {
			memset(&y[i], 0, sizeof y[i]);
			continue;
		}
		const float iscale = -128.f / max_scale;
		y[i].d = f32_to_fp16(1 / iscale);
		for (int j = 0; j < 16; j++) {
			const int s = nearest(iscale * scale[j]);
			y[i].scales[j] = (int8_t)(s < 127 ? s : 127);
		}
		for (int j = 0; j < 16; j++) {
			const float d = fp16_to_f32(y[i].d) * y[i].scales[j];
			if (!d)
				continue;
			for (int l = 0; l < 16; l++)
				L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / d), -32, 31) + 32);
		}
		for (int j = 0; j < QK_K; j++)
			q[j] = (uint8_t)L[j];
		for (int c = 0; c < 2; c++) {
			uint8_t *ql = y[i].ql + 64 * c, *qh = y[i].qh + 32 * c;
			const uint8_t *Q = q + 128 * c;
			for (int l = 0; l < 32; l++) {
				const uint8_t q1 = Q[l], q2 = Q[l + 32], q3 = Q[l + 64], q4 = Q[l + 96];
				ql[l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
				ql[l + 32] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
				qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
			}
		}
	}
}

/* Packs 2-bit levels: byte l of each 32-byte group holds values l, l+32,
 * l+64, l+96 of its 128 (q2_K and q3_K's low bits). */
static void pack_2bit(const uint8_t L[QK_K], uint8_t qs[QK_K / 4])
{
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* q2_K's 4-bit sub-block scales (low nibbles) or mins (high nibbles) of
 * max/15; returns max/15, the block's d or dmin. */
static float q2_K_pack4(const float v[16], float max, uint8_t scales[16], int shift)
{
	if (!(max > 0))
		return 0.f;
	const float iscale = 15.f / max;
	for (int j = 0; j < 16; j++)
		scales[j] |= (uint8_t)((unsigned)nearest(iscale * v[j]) << shift);
	return max / 15.f;
}

/* Levels 0..3 against the stored scales and mins (the requantize step). */
static void q2_K_requantize(const float *x, const struct block_q2_K *b, uint8_t L[QK_K])
{
	const float d_all = fp16_to_f32(b->d), m_all = fp16_to_f32(b->dmin);
	for (int j = 0; j < QK_K / 16; j++) {
		const float d = d_all * (b->scales[j] & 0xF);
		if (!d)
			continue;
		const float dm = m_all * (b->scales[j] >> 4);
		for (int ii = 0; ii < 16; ii++)
			L[16 * j + ii] = (uint8_t)clampi(nearest((x[16 * j + ii] + dm) / d), 0, 3);
	}
}

/* q2_K: 16 sub-blocks of 16, x ~ d*sc[j]*q - dmin*m[j], q 2-bit, sc and m
 * 4-bit; each sub-block fitted by absolute error weighted by |x|. */
static void quantize_row_q2_K(const float *x, struct block_q2_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		uint8_t L[QK_K], Laux[16];
		float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
		for (int j = 0; j < 16; j++) {
			for (int l = 0; l < 16; l++)
				w[l] = fabsf(x[16 * j + l]);
			scales[j] = qfit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
			max_scale = scales[j] > max_scale ? scales[j] : max_scale;
			max_min = mins[j] > max_min ? mins[j] : max_min;
		}
		memset(y[i].scales, 0, sizeof y[i].scales);
		y[i].d = f32_to_fp16(q2_K_pack4(scales, max_scale, y[i].scales, 0));
		y[i].dmin = f32_to_fp16(q2_K_pack4(mins, max_min, y[i].scales, 4));
		q2_K_requantize(x, &y[i], L);
		pack_2bit(L, y[i].qs);
	}
}

/* Sets q3_K sub-block j's 6-bit scale code l (0..63) in the 12 packed bytes. */
static void q3_K_set_scale(uint8_t packed[12], int j, int l)
{
	if (j < 8)
		packed[j] = (uint8_t)(l & 0xF);
	else
		packed[j - 8] |= (uint8_t)((l & 0xF) << 4);
	packed[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

/* Levels -4..3 (stored +4) against the stored scales, then split into the
 * high-bit mask and the 2-bit values. */
static void q3_K_finish(const float *x, struct block_q3_K *b, int8_t L[QK_K])
{
	int8_t sc[16];
	uint8_t q[QK_K];
	q3_K_scales(b->scales, sc);
	for (int j = 0; j < 16; j++) {
		const float d = fp16_to_f32(b->d) * sc[j];
		if (!d)
			continue;
		for (int ii = 0; ii < 16; ii++)
			L[16 * j + ii] = (int8_t)(clampi(nearest(x[16 * j + ii] / d), -4, 3) + 4);
	}
	memset(b->hmask, 0, sizeof b->hmask);
	for (int j = 0; j < QK_K; j++) {
		q[j] = (uint8_t)L[j];
		if (q[j] > 3) {
			b->hmask[j % (QK_K / 8)] |= (uint8_t)(1u << (j / (QK_K / 8)));
			q[j] -= 4;
		}
	}
	pack_2bit(q, b->qs);
}

/* q3_K: 16 sub-blocks of 16, x ~ d*sc[j]*q, q 3-bit signed (-4..3), sc
 * 6-bit signed. */
static void quantize_row_q3_K(const float *x, struct block_q3_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		int8_t L[QK_K];
		float scales[16], max_scale = 0, amax = 0;
		for (int j = 0; j < 16; j++) {
			scales[j] = qfit_sym_refine(16, 4, x + 16 * j, L + 16 * j);
			if (fabsf(scales[j]) > amax) {
				amax = fabsf(scales[j]);
				max_scale = scales[j];
			}
		}
		memset(y[i].scales, 0, sizeof y[i].scales);
		if (max_scale) {
			const float iscale = -32.f / max_scale;
			for (int j = 0; j < 16; j++)
				q3_K_set_scale(y[i].scales, j, clampi((int8_t)nearest(iscale * scales[j]), -32, 31) + 32);
			y[i].d = f32_to_fp16(1 / iscale);
		} else {
			y[i].d = f32_to_fp16(0.f);
		}
		q3_K_finish(x, &y[i], L);
	}
}

int quantize_supported(int type)
{
	switch (type) {
	case HEARTH_TYPE_F32: case HEARTH_TYPE_F16: case HEARTH_TYPE_BF16: case HEARTH_TYPE_Q8_0:
	case HEARTH_TYPE_Q4_0: case HEARTH_TYPE_Q4_1: case HEARTH_TYPE_Q5_0: case HEARTH_TYPE_Q5_1:
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
	case HEARTH_TYPE_Q8_1: case HEARTH_TYPE_Q8_K:
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
	case HEARTH_TYPE_Q4_1: quantize_row_q4_1(x, y, n); return 0;
	case HEARTH_TYPE_Q5_0: quantize_row_q5_0(x, y, n); return 0;
	case HEARTH_TYPE_Q5_1: quantize_row_q5_1(x, y, n); return 0;
	case HEARTH_TYPE_Q2_K: quantize_row_q2_K(x, y, n); return 0;
	case HEARTH_TYPE_Q3_K: quantize_row_q3_K(x, y, n); return 0;
	case HEARTH_TYPE_Q4_K: quantize_row_q4_K(x, y, n); return 0;
	case HEARTH_TYPE_Q5_K: quantize_row_q5_K(x, y, n); return 0;
	case HEARTH_TYPE_Q6_K: quantize_row_q6_K(x, y, n); return 0;
	}
	return HEARTH_EUNSUPPORTED;
}
