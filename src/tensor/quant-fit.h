/* quant-fit.h - the scale searches behind the K-quants and the weighted
 * (importance-matrix) quantizers: given a small group of values, choose a
 * scale (and an offset) and integer levels that minimize a weighted error.
 *
 * They restate llama.cpp's ggml-quants.c searches (make_qx_quants,
 * make_q3_quants, make_qkx2_quants / make_qkx3_quants, make_qp_quants) with
 * the same float operations in the same order, so that quantized bytes land
 * where llama-quantize puts them. Pure functions: safe from any thread.
 */
#ifndef HEARTH_QUANT_FIT_H
#define HEARTH_QUANT_FIT_H

#include <stdbool.h>
#include <stdint.h>

/* A group of values whose magnitudes are all below this counts as zeros. */
#define QFIT_GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, as an int (|v| well inside int range). */
int qfit_nearest(float v);

/* Symmetric fit to levels -nmax..nmax-1, stored in L as 0..2*nmax-1: tries
 * the inverse scale -nmax/max and 18 neighbours, keeping the least-squares
 * scale with the best weighted fit; weights qw, or x^2 when qw is NULL.
 * Returns the scale (0 for an all-zero group). */
float qfit_sym(int n, int nmax, const float *x, int8_t *L, const float *qw);

/* q3_K's symmetric fit: nmax/max, then up to 5 rounds of moving single
 * levels while the x^2-weighted fit improves. L as for qfit_sym. */
float qfit_sym_refine(int n, int nmax, const float *x, int8_t *L);

/* Affine fit x ~ scale*L - neg_min with L in 0..nmax, weighted by w (n
 * values): tries nstep+1 inverse scales (rmin + rdelta*is + nmax)/(max-min)
 * and keeps the least-squares scale and offset with the smallest weighted
 * error (absolute error when use_mad, else squared). The offset is never
 * positive. Laux: n bytes of scratch. Returns the scale. */
float qfit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *Laux,
		  float rmin, float rdelta, int nstep, bool use_mad);

/* Fit of non-negative values (sub-block scales) to levels 0..nmax with a
 * positive scale, weighted by w: 9 trial scales, then up to 5 rounds of
 * single-level moves. L may wrap for negative inputs, as llama.cpp's does.
 * Returns the scale. */
float qfit_pos(int n, int nmax, const float *x, uint8_t *L, const float *w);

#endif /* HEARTH_QUANT_FIT_H */
