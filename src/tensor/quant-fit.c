/* quant-fit.c - see quant-fit.h. Every sum below accumulates in float in
 * index order, as llama.cpp's does: a different order moves a few scales by
 * an ulp and the quantized bytes with them. */
#include <math.h>
#include <string.h>

#include "quant-fit.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

int qfit_nearest(float v) { return (int)lrintf(v); }

/* The element of largest magnitude, with its sign; *amax gets its magnitude. */
static float signed_max(int n, const float *x, float *amax)
{
	float max = 0;
	*amax = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > *amax) {
			*amax = fabsf(x[i]);
			max = x[i];
		}
	return max;
}

/* Weighted sums sum(w*x*l) and sum(w*l*l) for levels at inverse scale iscale. */
static void sym_sums(int n, int nmax, const float *x, const float *qw, float iscale, float *sumlx, float *suml2)
{
	*sumlx = *suml2 = 0;
	for (int i = 0; i < n; i++) {
		const int l = clampi(qfit_nearest(iscale * x[i]), -nmax, nmax - 1);
		const float w = qw ? qw[i] : x[i] * x[i];
		*sumlx += w * x[i] * l;
		*suml2 += w * l * l;
	}
}

float qfit_sym(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
	float amax;
	const float max = signed_max(n, x, &amax);
	if (amax < QFIT_GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	float iscale = -nmax / max, sumlx, suml2;
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(clampi(qfit_nearest(iscale * x[i]), -nmax, nmax - 1) + nmax);
	sym_sums(n, nmax, x, qw, iscale, &sumlx, &suml2);
	float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -(nmax + 0.1f * is) / max;
		sym_sums(n, nmax, x, qw, iscale, &sumlx, &suml2);
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++)
				L[i] = (int8_t)(nmax + clampi(qfit_nearest(iscale * x[i]), -nmax, nmax - 1));
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

float qfit_sym_refine(int n, int nmax, const float *x, int8_t *L)
{
	float amax;
	const float max = signed_max(n, x, &amax);
	if (amax < QFIT_GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	const float iscale = -nmax / max;
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		const int l = clampi(qfit_nearest(iscale * x[i]), -nmax, nmax - 1);
		const float w = x[i] * x[i];
		L[i] = (int8_t)l;
		sumlx += w * x[i] * l;
		suml2 += w * l * l;
	}
	for (int itry = 0; itry < 5; itry++) {
		int n_changed = 0;
		for (int i = 0; i < n; i++) {
			const float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * L[i];
			if (!(slx > 0))
				continue;
			float sl2 = suml2 - w * L[i] * L[i];
			const int new_l = clampi(qfit_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
			if (new_l == L[i])
				continue;
			slx += w * x[i] * new_l;
			sl2 += w * new_l * new_l;
			if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
				L[i] = (int8_t)new_l;
				sumlx = slx;
				suml2 = sl2;
				n_changed++;
			}
		}
		if (!n_changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* The weighted error of x against scale*L + min. */
static float affine_err(int n, const float *x, const float *w, const uint8_t *L, float scale, float min, bool use_mad)
{
	float err = 0;
	for (int i = 0; i < n; i++) {
		float diff = scale * L[i] + min - x[i];
		diff = use_mad ? fabsf(diff) : diff * diff;
		err += w[i] * diff;
	}
	return err;
}

float qfit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *Laux,
		  float rmin, float rdelta, int nstep, bool use_mad)
{
	float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += w[i];
		sum_x += w[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*neg_min = -min;
		return 0.f;
	}
	float iscale = nmax / (max - min), scale = 1 / iscale;
	for (int i = 0; i < n; i++)
		L[i] = (uint8_t)clampi(qfit_nearest(iscale * (x[i] - min)), 0, nmax);
	float best = affine_err(n, x, w, L, scale, min, use_mad);
	for (int is = 0; is <= nstep; is++) {
		iscale = (rmin + rdelta * is + nmax) / (max - min);
		float sum_l = 0, sum_l2 = 0, sum_xl = 0;
		for (int i = 0; i < n; i++) {
			const int l = clampi(qfit_nearest(iscale * (x[i] - min)), 0, nmax);
			Laux[i] = (uint8_t)l;
			sum_l += w[i] * l;
			sum_l2 += w[i] * l * l;
			sum_xl += w[i] * l * x[i];
		}
		const float D = sum_w * sum_l2 - sum_l * sum_l;
		if (!(D > 0))
			continue;
		float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
		float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
		if (this_min > 0) {
			this_min = 0;
			this_scale = sum_xl / sum_l2;
		}
		const float err = affine_err(n, x, w, Laux, this_scale, this_min, use_mad);
		if (err < best) {
			memcpy(L, Laux, (size_t)n);
			best = err;
			scale = this_scale;
			min = this_min;
		}
	}
	*neg_min = -min;
	return scale;
}

/* sum(w * (x - scale*l)^2) for the levels at inverse scale iscale (capped at nmax). */
static float pos_mse(int n, int nmax, const float *x, const float *w, float iscale)
{
	const float scale = 1 / iscale;
	float mse = 0;
	for (int i = 0; i < n; i++) {
		int l = qfit_nearest(iscale * x[i]);
		l = l < nmax ? l : nmax;
		const float diff = x[i] - scale * l;
		mse += w[i] * diff * diff;
	}
	return mse;
}

/* Up to 5 rounds of moving single levels while the weighted fit improves. */
static float pos_refine(int n, int nmax, const float *x, uint8_t *L, const float *w, float sumlx, float suml2)
{
	for (int itry = 0; itry < 5; itry++) {
		int n_changed = 0;
		for (int i = 0; i < n; i++) {
			float slx = sumlx - w[i] * x[i] * L[i], sl2 = suml2 - w[i] * L[i] * L[i];
			if (!(slx > 0 && sl2 > 0))
				continue;
			int new_l = qfit_nearest(x[i] * sl2 / slx);
			new_l = new_l < nmax ? new_l : nmax;
			if (new_l == L[i])
				continue;
			slx += w[i] * x[i] * new_l;
			sl2 += w[i] * new_l * new_l;
			if (slx * slx * suml2 > sumlx * sumlx * sl2) {
				L[i] = (uint8_t)new_l;
				sumlx = slx;
				suml2 = sl2;
				n_changed++;
			}
		}
		if (!n_changed)
			break;
	}
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float qfit_pos(int n, int nmax, const float *x, uint8_t *L, const float *w)
{
	float max = 0;
	for (int i = 0; i < n; i++)
		max = max > x[i] ? max : x[i];
	if (max < QFIT_GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	float iscale = nmax / max;
	for (int i = 0; i < n; i++)
		L[i] = (uint8_t)qfit_nearest(iscale * x[i]);
	const float scale = 1 / iscale;
	float best_mse = 0;
	for (int i = 0; i < n; i++) {
		const float diff = x[i] - scale * L[i];
		best_mse += w[i] * diff * diff;
	}
	for (int is = -4; is <= 4; is++) {
		if (is == 0)
			continue;
		const float iscale_is = (0.1f * is + nmax) / max, mse = pos_mse(n, nmax, x, w, iscale_is);
		if (mse < best_mse) {
			best_mse = mse;
			iscale = iscale_is;
		}
	}
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = qfit_nearest(iscale * x[i]);
		l = l < nmax ? l : nmax;
		L[i] = (uint8_t)l;
		sumlx += w[i] * x[i] * l;
		suml2 += w[i] * l * l;
	}
	return pos_refine(n, nmax, x, L, w, sumlx, suml2);
}
