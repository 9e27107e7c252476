/* kquant.c - the K-quant quantizers, q2_K to q6_K: super-blocks of 256
 * values in sub-blocks of 16 or 32, each sub-block with its own scale (and
 * minimum), the scales themselves quantized against one f16 super-scale.
 *
 * Each type has two paths, as llama.cpp's quantize_qX_K has:
 *   - no importance weights: the reference quantizer (ggml-quants.c
 *     quantize_row_qX_K_ref), fits weighted by the values themselves;
 *   - importance weights qw (one per column, from an imatrix): the weighted
 *     quantizer (quantize_row_qX_K_impl), fits weighted by
 *     qw * sqrt(sigma^2 + x^2) and sub-block scales fitted by the sum of
 *     their weights (q6_K weighs by qw alone).
 * Both follow llama.cpp step for step, with the same float operations in the
 * same order (the searches are in quant-fit.c), so that `hearth quantize`
 * writes the bytes llama-quantize writes. Pure functions: any thread.
 */
#include <math.h>
#include <string.h>

#include "kquant.h"
#include "quant-fit.h"
#include "quant-ref.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int nearest(float v) { return qfit_nearest(v); }

/* Packs 2-bit levels: byte l of each 32-byte group holds values l, l+32,
 * l+64, l+96 of its 128 (q2_K and q3_K's low bits). */
static void pack_2bit(const uint8_t L[QK_K], uint8_t qs[QK_K / 4])
{
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* sum(x^2) over one super-block. */
static float block_sum_x2(const float *x)
{
	float s = 0;
	for (int j = 0; j < QK_K; j++)
		s += x[j] * x[j];
	return s;
}

/* Importance weights of n values: qw * sqrt(sigma2 + x^2); returns their sum. */
static float imat_weights(int n, const float *x, const float *qw, float sigma2, float *w)
{
	float sum = 0;
	for (int l = 0; l < n; l++)
		w[l] = qw[l] * sqrtf(sigma2 + x[l] * x[l]);
	for (int l = 0; l < n; l++)
		sum += w[l];
	return sum;
}

/* ---- q2_K: x ~ d*sc[j]*q - dmin*m[j], q 2-bit, sc and m 4-bit ---------- */

/* 4-bit sub-block scales (low nibbles) or mins (high nibbles) of max/15;
 * returns max/15, the block's d or dmin. */
static float q2_K_pack4(const float v[16], float max, uint8_t scales[16], int shift)
{
	if (!(max > 0))
		return 0.f;
	const float iscale = 15.f / max;
	for (int j = 0; j < 16; j++)
		scales[j] |= (uint8_t)((unsigned)nearest(iscale * v[j]) << shift);
	return max / 15.f;
}

/* Levels 0..3 against the stored scales and mins, then packed. */
static void q2_K_finish(const float *x, struct block_q2_K *b, uint8_t L[QK_K])
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
	pack_2bit(L, b->qs);
}

/* Reference: sub-blocks fitted by absolute error weighted by |x|. */
static void q2_K_ref(const float *x, struct block_q2_K *y)
{
	uint8_t L[QK_K], Laux[16];
	float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
	for (int j = 0; j < 16; j++) {
		for (int l = 0; l < 16; l++)
			w[l] = fabsf(x[16 * j + l]);
		scales[j] = qfit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
		max_scale = scales[j] > max_scale ? scales[j] : max_scale;
		max_min = mins[j] > max_min ? mins[j] : max_min;
	}
	memset(y->scales, 0, sizeof y->scales);
	y->d = f32_to_fp16(q2_K_pack4(scales, max_scale, y->scales, 0));
	y->dmin = f32_to_fp16(q2_K_pack4(mins, max_min, y->scales, 4));
	q2_K_finish(x, y, L);
}

static void q2_K_imat(const float *x, struct block_q2_K *y, const float *qw)
{
	uint8_t L[QK_K], Laux[16], Ls[16], Lm[16];
	float w[16], sw[16], mins[16], scales[16];
	const float sigma2 = block_sum_x2(x) / QK_K;
	for (int j = 0; j < 16; j++) {
		sw[j] = imat_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
		scales[j] = qfit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
	}
	y->d = f32_to_fp16(qfit_pos(16, 15, scales, Ls, sw));
	y->dmin = f32_to_fp16(qfit_pos(16, 15, mins, Lm, sw));
	for (int j = 0; j < 16; j++)
		y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
	q2_K_finish(x, y, L);
}

/* ---- q3_K: x ~ d*sc[j]*q, q 3-bit signed (-4..3), sc 6-bit signed ------ */

/* Sets sub-block j's 6-bit scale code l (0..63) in the 12 packed bytes. */
static void q3_K_set_scale(uint8_t packed[12], int j, int l)
{
	if (j < 8)
		packed[j] = (uint8_t)(l & 0xF);
	else
		packed[j - 8] |= (uint8_t)((l & 0xF) << 4);
	packed[j % 4 + 8] |= (uint8_t)((unsigned)(l >> 4) << (2 * (j / 4)));
}

/* Levels -4..3 (stored +4) against the stored scales, then split into the
 * high-bit mask and the 2-bit values. */
static void q3_K_finish(const float *x, struct block_q3_K *b, int8_t L[QK_K])
{
	int8_t sc[16];
	uint8_t q[QK_K];
	dequantize_q3_K_scales(b->scales, sc);
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

static void q3_K_ref(const float *x, struct block_q3_K *y)
{
	int8_t L[QK_K];
	float scales[16], max_scale = 0, amax = 0;
	for (int j = 0; j < 16; j++) {
		scales[j] = qfit_sym_refine(16, 4, x + 16 * j, L + 16 * j);
		if (fabsf(scales[j]) > amax) {
			amax = fabsf(scales[j]);
			max_scale = scales[j];
		}
	}
	memset(y->scales, 0, sizeof y->scales);
	if (max_scale) {
		const float iscale = -32.f / max_scale;
		for (int j = 0; j < 16; j++)
			q3_K_set_scale(y->scales, j, clampi((int8_t)nearest(iscale * scales[j]), -32, 31) + 32);
		y->d = f32_to_fp16(1 / iscale);
	} else {
		y->d = f32_to_fp16(0.f);
	}
	q3_K_finish(x, y, L);
}

static void q3_K_imat(const float *x, struct block_q3_K *y, const float *qw)
{
	int8_t L[QK_K], Ls[16];
	float w[16], sw[16], scales[16];
	const float sigma2 = 2 * block_sum_x2(x) / QK_K;
	for (int j = 0; j < 16; j++) {
		sw[j] = imat_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
		scales[j] = qfit_sym(16, 4, x + 16 * j, L + 16 * j, w);
	}
	memset(y->scales, 0, sizeof y->scales);
	const float d_block = qfit_sym(16, 32, scales, Ls, sw);
	for (int j = 0; j < 16; j++)
		q3_K_set_scale(y->scales, j, Ls[j]);
	y->d = f32_to_fp16(d_block);
	q3_K_finish(x, y, L);
}

/* ---- q4_K / q5_K: x ~ d*sc[j]*q - dmin*m[j], sc and m 6-bit ------------ */

/* Stores sub-block j's 6-bit scale and min codes in the 12 packed bytes. */
static void k4_set(uint8_t packed[12], int j, uint8_t ls, uint8_t lm)
{
	if (j < 4) {
		packed[j] = ls;
		packed[j + 4] = lm;
	} else {
		packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
		packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
		packed[j] |= (uint8_t)((lm >> 4) << 6);
	}
}

/* Levels 0..nmax of each value against the stored scales and mins. */
static void k4_levels(const float *x, int nmax, const uint8_t packed[12], hfp16 d16, hfp16 dmin16, uint8_t *L)
{
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		dequantize_k4_scale_min(j, packed, &sc, &m);
		const float d = fp16_to_f32(d16) * sc;
		if (!d)
			continue;
		const float dm = fp16_to_f32(dmin16) * m;
		for (int ii = 0; ii < 32; ii++)
			L[32 * j + ii] = (uint8_t)clampi(nearest((x[32 * j + ii] + dm) / d), 0, nmax);
	}
}

/* Reference fits (weights av_x + |x|, av_x the sub-block's RMS), then the
 * scales and mins as 6-bit codes of their maxima / 63; fills L. */
static void k4_ref(const float *x, int nmax, float rmin, int nstep, uint8_t packed[12], hfp16 *d, hfp16 *dmin,
		   uint8_t L[QK_K])
{
	uint8_t Laux[32];
	float w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		const float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			w[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = qfit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
		max_scale = scales[j] > max_scale ? scales[j] : max_scale;
		max_min = mins[j] > max_min ? mins[j] : max_min;
	}
	const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	memset(packed, 0, 12);
	for (int j = 0; j < 8; j++) {
		const int ls = nearest(inv_scale * scales[j]), lm = nearest(inv_min * mins[j]);
		k4_set(packed, j, (uint8_t)(ls > 63 ? 63 : ls), (uint8_t)(lm > 63 ? 63 : lm));
	}
	*d = f32_to_fp16(max_scale / 63.f);
	*dmin = f32_to_fp16(max_min / 63.f);
	k4_levels(x, nmax, packed, *d, *dmin, L);
}

/* Weighted fits, then the scales and mins fitted to 6 bits by the sums of
 * their weights (q5_K caps the codes at 63, q4_K does not); fills L. */
static void k4_imat(const float *x, int nmax, bool cap, const float *qw, uint8_t packed[12], hfp16 *d, hfp16 *dmin,
		    uint8_t L[QK_K])
{
	uint8_t Laux[32], Ls[8], Lm[8];
	float w[32], sw[8], scales[8], mins[8];
	const float sigma2 = 2 * block_sum_x2(x) / QK_K;
	for (int j = 0; j < 8; j++) {
		sw[j] = imat_weights(32, x + 32 * j, qw + 32 * j, sigma2, w);
		scales[j] = qfit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
	}
	const float d_block = qfit_pos(8, 63, scales, Ls, sw), m_block = qfit_pos(8, 63, mins, Lm, sw);
	memset(packed, 0, 12);
	for (int j = 0; j < 8; j++)
		k4_set(packed, j, cap && Ls[j] > 63 ? 63 : Ls[j], cap && Lm[j] > 63 ? 63 : Lm[j]);
	*d = f32_to_fp16(d_block);
	*dmin = f32_to_fp16(m_block);
	k4_levels(x, nmax, packed, *d, *dmin, L);
}

static void q4_K_block(const float *x, struct block_q4_K *y, const float *qw)
{
	uint8_t L[QK_K];
	if (qw)
		k4_imat(x, 15, false, qw, y->scales, &y->d, &y->dmin, L);
	else
		k4_ref(x, 15, -1.f, 20, y->scales, &y->d, &y->dmin, L);
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++)
			y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

/* As q4_K with 5-bit values, the fifth bits in qh. */
static void q5_K_block(const float *x, struct block_q5_K *y, const float *qw)
{
	uint8_t L[QK_K];
	if (qw)
		k4_imat(x, 31, true, qw, y->scales, &y->d, &y->dmin, L);
	else
		k4_ref(x, 31, -0.5f, 15, y->scales, &y->d, &y->dmin, L);
	memset(y->qh, 0, sizeof y->qh);
	uint8_t *ql = y->qs, u1 = 1, u2 = 2;
	for (int c = 0; c < 4; c++, ql += 32, u1 <<= 2, u2 <<= 2)
		for (int l = 0; l < 32; l++) {
			int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
			if (l1 > 15) {
				l1 -= 16;
				y->qh[l] |= u1;
			}
			if (l2 > 15) {
				l2 -= 16;
				y->qh[l] |= u2;
			}
			ql[l] = (uint8_t)(l1 | (l2 << 4));
		}
}

/* ---- q6_K: x ~ d*sc[j]*(q-32), q 6-bit, sc 8-bit signed ------------------ */

static void q6_K_pack(const int8_t L[QK_K], struct block_q6_K *y)
{
	for (int c = 0; c < 2; c++) {
		uint8_t *ql = y->ql + 64 * c, *qh = y->qh + 32 * c;
		const int8_t *Q = L + 128 * c;
		for (int l = 0; l < 32; l++) {
			const uint8_t q1 = (uint8_t)Q[l], q2 = (uint8_t)Q[l + 32], q3 = (uint8_t)Q[l + 64],
				      q4 = (uint8_t)Q[l + 96];
			ql[l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
			ql[l + 32] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
			qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
		}
	}
}

/* Sub-blocks fitted by x^2 (reference) or by qw (weighted). */
static void q6_K_block(const float *x, struct block_q6_K *y, const float *qw)
{
	float scale[16], max_scale = 0, max_abs = 0;
	int8_t L[QK_K];
	for (int j = 0; j < 16; j++) {
		scale[j] = qfit_sym(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : NULL);
		if (fabsf(scale[j]) > max_abs) {
			max_abs = fabsf(scale[j]);
			max_scale = scale[j];
		}
	}
	if (max_abs < QFIT_GROUP_MAX_EPS) {
		memset(y, 0, sizeof *y);
		return;
	}
	const float iscale = -128.f / max_scale;
	y->d = f32_to_fp16(1 / iscale);
	for (int j = 0; j < 16; j++) {
		const int s = nearest(iscale * scale[j]);
		y->scales[j] = (int8_t)(s < 127 ? s : 127);
	}
	for (int j = 0; j < 16; j++) {
		const float d = fp16_to_f32(y->d) * y->scales[j];
		if (!d)
			continue;
		for (int l = 0; l < 16; l++)
			L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / d), -32, 31) + 32);
	}
	q6_K_pack(L, y);
}

int kquant_quantize(int type, const float *x, void *vy, int64_t n, const float *qw)
{
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		const float *w = qw ? qw + i * QK_K : NULL;
		switch (type) {
		case HEARTH_TYPE_Q2_K:
			if (w)
				q2_K_imat(x, (struct block_q2_K *)vy + i, w);
			else
				q2_K_ref(x, (struct block_q2_K *)vy + i);
			break;
		case HEARTH_TYPE_Q3_K:
			if (w)
				q3_K_imat(x, (struct block_q3_K *)vy + i, w);
			else
				q3_K_ref(x, (struct block_q3_K *)vy + i);
			break;
		case HEARTH_TYPE_Q4_K: q4_K_block(x, (struct block_q4_K *)vy + i, w); break;
		case HEARTH_TYPE_Q5_K: q5_K_block(x, (struct block_q5_K *)vy + i, w); break;
		case HEARTH_TYPE_Q6_K: q6_K_block(x, (struct block_q6_K *)vy + i, w); break;
		default: return HEARTH_EUNSUPPORTED;
		}
	}
	return 0;
}
