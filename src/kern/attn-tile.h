/*
 * attn-tile.h - one tile of streaming attention (online softmax) and the
 * SwiGLU activation, in plain C that the compiler vectorizes. Each instruction-set file includes it and
 * compiles it with its own flags (kern.c: the portable reference). Every lane
 * does the same operations in the same order whatever the vector width, and
 * multiply-adds are explicit fmaf (one rounding, an instruction where the CPU
 * has FMA), so all builds give the same bits.
 *
 * A tile is ATTN_TILE key positions. For each of M query rows (already
 * scaled by 1/sqrt(d)), with n[m] of the tile's positions visible to it:
 *   s = q K^T,  mx' = max(mx, s),  e = exp(s - mx'),
 *   O = O exp(mx - mx') + e V,     l = l exp(mx - mx') + sum(e)
 * so that after the last tile the output row is O / l, without ever holding
 * a row of scores longer than a tile.
 */
#ifndef HEARTH_ATTN_TILE_H
#define HEARTH_ATTN_TILE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kern.h"

#define ATTN_LANES 16

/* exp(x) within about 2 ulp for x in [-87, 88]; below that a tiny positive
 * number (the softmax weights it scales are then lost to rounding anyway).
 * Defined for every float: a NaN (from NaN or infinite weights) gives a NaN. */
static inline float attn_expf(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
	const float kf = x * 1.44269504f + shift;
	const float k = kf - shift;
	const float r = fmaf(-k, 1.42860677e-6f, fmaf(-k, 0.693145752f, x)); /* ln 2 in two parts */
	float p = 1.0f / 720;
	p = fmaf(p, r, 1.0f / 120);
	p = fmaf(p, r, 1.0f / 24);
	p = fmaf(p, r, 1.0f / 6);
	p = fmaf(p, r, 0.5f);
	p = fmaf(p, r, 1.0f);
	p = fmaf(p, r, 1.0f);
	uint32_t ki, bits; /* unsigned: wraps, never overflows, when x is a NaN */
	memcpy(&ki, &kf, 4);
	ki -= 0x4b400000u; /* the integer k (two's complement), from kf's mantissa */
	memcpy(&bits, &p, 4);
	bits += ki << 23;
	memcpy(&p, &bits, 4);
	return p;
}

static inline void attn_tile_impl(int M, int dk, int dv, const float *Q, const int32_t *n, const float *Kt,
				  const float *V, float *mx, float *l, float *O)
{
	for (int m = 0; m < M; m++) {
		const int nm = n[m];
		if (nm <= 0)
			continue;
		const float *q = Q + (size_t)m * (size_t)dk;
		float s[ATTN_TILE], acc[ATTN_LANES];
		for (int p = 0; p < ATTN_TILE; p++)
			s[p] = 0;
		for (int d = 0; d < dk; d++) {
			const float qd = q[d];
			const float *k = Kt + (size_t)d * ATTN_TILE;
			for (int p = 0; p < ATTN_TILE; p++)
				s[p] = fmaf(qd, k[p], s[p]);
		}
		for (int p = nm; p < ATTN_TILE; p++)
			s[p] = -INFINITY;
		for (int i = 0; i < ATTN_LANES; i++)
			acc[i] = s[i];
		for (int c = ATTN_LANES; c < ATTN_TILE; c += ATTN_LANES)
			for (int i = 0; i < ATTN_LANES; i++)
				acc[i] = s[c + i] > acc[i] ? s[c + i] : acc[i];
		float mnew = mx[m];
		for (int i = 0; i < ATTN_LANES; i++)
			mnew = acc[i] > mnew ? acc[i] : mnew;
		const float alpha = attn_expf(mx[m] - mnew);
		for (int p = 0; p < ATTN_TILE; p++)
			s[p] = attn_expf(s[p] - mnew);
		for (int p = nm; p < ATTN_TILE; p++)
			s[p] = 0;
		for (int i = 0; i < ATTN_LANES; i++)
			acc[i] = s[i];
		for (int c = ATTN_LANES; c < ATTN_TILE; c += ATTN_LANES)
			for (int i = 0; i < ATTN_LANES; i++)
				acc[i] += s[c + i];
		for (int w = ATTN_LANES / 2; w > 0; w /= 2) /* a fixed tree: the same sum at any width */
			for (int i = 0; i < w; i++)
				acc[i] += acc[i + w];
		mx[m] = mnew;
		l[m] = l[m] * alpha + acc[0];
		/* the output row a vector's width at a time, so that its running sum
		 * stays in a register while every position passes */
		float *o = O + (size_t)m * (size_t)dv;
		int j0 = 0;
		for (; j0 + ATTN_LANES <= dv; j0 += ATTN_LANES) {
			float a[ATTN_LANES];
			for (int i = 0; i < ATTN_LANES; i++)
				a[i] = o[j0 + i] * alpha;
			for (int p = 0; p < nm; p++) {
				const float e = s[p];
				const float *v = V + (size_t)p * (size_t)dv + j0;
				for (int i = 0; i < ATTN_LANES; i++)
					a[i] = fmaf(e, v[i], a[i]);
			}
			for (int i = 0; i < ATTN_LANES; i++)
				o[j0 + i] = a[i];
		}
		for (int j = j0; j < dv; j++) { /* a width that is not a multiple of the lanes */
			float a = o[j] * alpha;
			for (int p = 0; p < nm; p++)
				a = fmaf(s[p], V[(size_t)p * (size_t)dv + (size_t)j], a);
			o[j] = a;
		}
	}
}

/* The tile of an f16 cache (kern_attn_tile_f16_fn) the plain way: converted
 * into scratch with h2f (keys transposed, chunks not given as zero), then
 * run through tile. */
static inline void attn_tile_f16_convert(int M, int dk, int dv, const float *Q, const int32_t *n,
					 const uint16_t *const *Kc, size_t k_ld, const uint16_t *const *Vc, size_t v_ld,
					 float *mx, float *l, float *O, float *scratch, kern_to_float_fn h2f,
					 kern_attn_tile_fn tile)
{
	float *kt = scratch, *v = scratch + (size_t)dk * ATTN_TILE;
	for (int c = 0; c < ATTN_TILE / ATTN_CHUNK; c++) {
		for (int d = 0; d < dk; d++) {
			float *dst = kt + (size_t)d * ATTN_TILE + (size_t)c * ATTN_CHUNK;
			if (Kc[c])
				h2f(Kc[c] + (size_t)d * k_ld, dst, ATTN_CHUNK);
			else
				memset(dst, 0, ATTN_CHUNK * sizeof *dst);
		}
		for (int p = 0; p < ATTN_CHUNK; p++) {
			float *dst = v + (size_t)(c * ATTN_CHUNK + p) * (size_t)dv;
			if (Vc[c])
				h2f(Vc[c] + (size_t)p * v_ld, dst, dv);
			else
				memset(dst, 0, (size_t)dv * sizeof *dst);
		}
	}
	tile(M, dk, dv, Q, n, kt, v, mx, l, O);
}

/* gate = silu(gate) * up = gate / (1 + exp(-gate)) * up, elementwise. */
static inline void swiglu_impl(float *gate, const float *up, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		gate[i] = gate[i] / (1.0f + attn_expf(-gate[i])) * up[i];
}

/* gate = gelu(gate) * up, GELU in its tanh form: x/2 (1 + tanh(y)) with
 * y = sqrt(2/pi) (x + 0.044715 x^3), computed as x / (1 + exp(-2y)) (the
 * same function) so that it vectorizes as SwiGLU does. */
static inline void geglu_impl(float *gate, const float *up, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		const float x = gate[i], y2 = 1.5957691216f * fmaf(0.044715f * x, x * x, x); /* 2y */
		gate[i] = x / (1.0f + attn_expf(-y2)) * up[i];
	}
}

/* x = c tanh(x / c) elementwise (c > 0): attention scores soft-capped at c
 * (gemma2). tanh(y) is an odd polynomial below |y| = 0.25 (where the other
 * form would cancel), else sign(y) (1 - e) / (1 + e) with e = exp(-2|y|);
 * both are computed and one chosen, so that it vectorizes. Within a few ulp
 * of c tanh(x / c); +-infinity gives +-c, a NaN stays a NaN. */
static inline void softcap_impl(float *x, int64_t n, float c)
{
	const float inv = 1.0f / c;
	for (int64_t i = 0; i < n; i++) {
		const float y = x[i] * inv, a = fabsf(y), y2 = y * y;
		float p = 62.0f / 2835; /* tanh's Taylor series to y^9 */
		p = fmaf(p, y2, -17.0f / 315);
		p = fmaf(p, y2, 2.0f / 15);
		p = fmaf(p, y2, -1.0f / 3);
		const float small = fmaf(p * y2, y, y);
		const float e = attn_expf(-2.0f * a), big = copysignf((1.0f - e) / (1.0f + e), y);
		x[i] = c * (a < 0.25f ? small : big);
	}
}

/* Soft-capping with the including file's flags. */
#define DEFINE_SOFTCAP_KERNEL(softcap_name) \
	static void softcap_name(float *x, int64_t n, float c) { softcap_impl(x, n, c); }

/* GeGLU with the including file's flags. */
#define DEFINE_GEGLU_KERNEL(geglu_name) \
	static void geglu_name(float *gate, const float *up, int64_t n) { geglu_impl(gate, up, n); }

/* The two kernels with the including file's flags, as kern_fns takes them. */
#define DEFINE_ATTN_KERNELS(attn_name, swiglu_name)                                                          \
	static void attn_name(int M, int dk, int dv, const float *Q, const int32_t *n, const float *Kt,       \
			      const float *V, float *mx, float *l, float *O)                                  \
	{                                                                                                     \
		attn_tile_impl(M, dk, dv, Q, n, Kt, V, mx, l, O);                                             \
	}                                                                                                     \
	static void swiglu_name(float *gate, const float *up, int64_t n) { swiglu_impl(gate, up, n); }

/* An f16 tile that converts with h2f and runs attn_name. */
#define DEFINE_ATTN_F16_CONVERT(name, h2f, attn_name)                                                        \
	static void name(int M, int dk, int dv, const float *Q, const int32_t *n, const uint16_t *const *Kc,  \
			 size_t k_ld, const uint16_t *const *Vc, size_t v_ld, float *mx, float *l, float *O,  \
			 float *scratch)                                                                      \
	{                                                                                                     \
		attn_tile_f16_convert(M, dk, dv, Q, n, Kc, k_ld, Vc, v_ld, mx, l, O, scratch, h2f, attn_name); \
	}

#endif /* HEARTH_ATTN_TILE_H */
