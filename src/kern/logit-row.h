/*
 * logit-row.h - passes over a row of logits for sampling: its smallest and
 * largest value, and exp((x - m) * scale) of every element with their sum.
 * Plain C that the compiler vectorizes, included by each instruction-set file
 * (kern.c: the portable reference) as attn-tile.h is: every lane does the same
 * operations in the same order whatever the vector width, and sums meet in a
 * fixed tree, so all builds give the same bits.
 */
#ifndef HEARTH_LOGIT_ROW_H
#define HEARTH_LOGIT_ROW_H

#include <math.h>
#include <stdint.h>

#include "attn-tile.h"

#define ROW_LANES 16

/* *mn and *mx of x[0..n) and *imax the first index of the largest, NaNs
 * skipped (*mn and *mx stay infinite when all are); returns whether there
 * was a NaN or an infinity. */
static inline int row_minmax_impl(const float *x, int64_t n, float *mn, float *mx, int64_t *imax)
{
	float lo[ROW_LANES], hi[ROW_LANES], bad[ROW_LANES];
	int32_t at[ROW_LANES];
	for (int i = 0; i < ROW_LANES; i++) {
		lo[i] = INFINITY;
		hi[i] = -INFINITY;
		bad[i] = 0;
		at[i] = -1;
	}
	int64_t j = 0;
	for (; j + ROW_LANES <= n; j += ROW_LANES)
		for (int i = 0; i < ROW_LANES; i++) {
			const float v = x[j + i];
			lo[i] = v < lo[i] ? v : lo[i];
			at[i] = v > hi[i] ? (int32_t)(j + i) : at[i];
			hi[i] = v > hi[i] ? v : hi[i];
			bad[i] += v * 0.0f; /* NaN for a NaN or an infinity */
		}
	float l0 = INFINITY, h0 = -INFINITY, b0 = 0;
	int64_t a0 = -1;
	for (int i = 0; i < ROW_LANES; i++) {
		l0 = lo[i] < l0 ? lo[i] : l0;
		b0 += bad[i];
		if (hi[i] > h0 || (hi[i] == h0 && at[i] < a0)) {
			h0 = hi[i];
			a0 = at[i];
		}
	}
	for (; j < n; j++) {
		l0 = x[j] < l0 ? x[j] : l0;
		a0 = x[j] > h0 ? j : a0;
		h0 = x[j] > h0 ? x[j] : h0;
		b0 += x[j] * 0.0f;
	}
	*mn = l0;
	*mx = h0;
	*imax = a0;
	return b0 != b0;
}

/* Writes the indices i with x[i] >= thr to out, in increasing order; returns how many. */
static inline int64_t row_collect_impl(const float *x, int64_t n, float thr, int32_t *out)
{
	int64_t k = 0;
	for (int64_t i = 0; i < n; i++) {
		out[k] = (int32_t)i;
		k += x[i] >= thr;
	}
	return k;
}

/* y[i] = exp((x[i] - m) * scale) when y is not NULL; returns the sum of all of them. */
static inline float row_exp_sum_impl(const float *x, int64_t n, float m, float scale, float *y)
{
	float acc[ROW_LANES];
	for (int i = 0; i < ROW_LANES; i++)
		acc[i] = 0;
	int64_t j = 0;
	for (; j + ROW_LANES <= n; j += ROW_LANES) {
		float e[ROW_LANES];
		for (int i = 0; i < ROW_LANES; i++) {
			e[i] = attn_expf((x[j + i] - m) * scale);
			acc[i] += e[i];
		}
		if (y)
			for (int i = 0; i < ROW_LANES; i++)
				y[j + i] = e[i];
	}
	for (; j < n; j++) {
		const float e = attn_expf((x[j] - m) * scale);
		acc[j % ROW_LANES] += e;
		if (y)
			y[j] = e;
	}
	for (int w = ROW_LANES / 2; w > 0; w /= 2) /* a fixed tree: the same sum at any width */
		for (int i = 0; i < w; i++)
			acc[i] += acc[i + w];
	return acc[0];
}

#define DEFINE_ROW_KERNELS(minmax_name, exp_sum_name)                                                      \
	static int minmax_name(const float *x, int64_t n, float *mn, float *mx, int64_t *imax)                \
	{                                                                                                     \
		return row_minmax_impl(x, n, mn, mx, imax);                                                   \
	}                                                                                                     \
	static float exp_sum_name(const float *x, int64_t n, float m, float scale, float *y)                  \
	{                                                                                                     \
		return row_exp_sum_impl(x, n, m, scale, y);                                                   \
	}

#endif /* HEARTH_LOGIT_ROW_H */
