/* test-attn.c - the streaming-attention tile: the kernels in use give the
 * scalar reference's bits, and both match a double-precision softmax
 * attention computed the plain way, over several tiles, partly masked rows
 * and head widths that are not multiples of the vector width. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/kern/kern.h"
#include "../../src/tensor/qtype.h"
#include "../harness.h"

static uint64_t rng = 7;

static float rnd(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* Runs rows over a context of L positions through tiles with fn; row m sees
 * positions 0 .. vis[m]-1. Output: O / l. */
static void run(kern_attn_tile_fn fn, int M, int dk, int dv, int L, const float *Q, const int32_t *vis, const float *K,
		const float *V, float *out)
{
	float *kt = calloc((size_t)dk * ATTN_TILE, sizeof *kt), *vt = calloc((size_t)ATTN_TILE * (size_t)dv, sizeof *vt);
	float *mx = malloc((size_t)M * sizeof *mx), *l = calloc((size_t)M, sizeof *l);
	float *O = calloc((size_t)M * (size_t)dv, sizeof *O);
	int32_t *n = malloc((size_t)M * sizeof *n);
	for (int m = 0; m < M; m++)
		mx[m] = -INFINITY;
	for (int t0 = 0; t0 < L; t0 += ATTN_TILE) {
		const int np = L - t0 < ATTN_TILE ? L - t0 : ATTN_TILE;
		memset(kt, 0, (size_t)dk * ATTN_TILE * sizeof *kt);
		for (int p = 0; p < np; p++) {
			for (int d = 0; d < dk; d++)
				kt[d * ATTN_TILE + p] = K[(size_t)(t0 + p) * (size_t)dk + (size_t)d];
			memcpy(vt + (size_t)p * (size_t)dv, V + (size_t)(t0 + p) * (size_t)dv, (size_t)dv * sizeof *vt);
		}
		for (int m = 0; m < M; m++) {
			const int s = vis[m] - t0;
			n[m] = s < 0 ? 0 : s > ATTN_TILE ? ATTN_TILE : s;
		}
		fn(M, dk, dv, Q, n, kt, vt, mx, l, O);
	}
	for (int m = 0; m < M; m++)
		for (int j = 0; j < dv; j++)
			out[m * dv + j] = O[m * dv + j] / l[m];
	free(kt);
	free(vt);
	free(mx);
	free(l);
	free(O);
	free(n);
}

void test_kern_attn(void)
{
	static const int shapes[][4] = { /* M, dk, dv, L */
		{ 1, 64, 64, 1 }, { 8, 64, 64, 17 }, { 64, 64, 64, 200 }, { 5, 128, 128, 64 },
		{ 3, 80, 96, 130 }, { 16, 32, 48, 65 }, { 2, 256, 256, 300 }, { 8, 16, 16, 17 }, { 1, 16, 16, 17 }, { 34, 16, 16, 17 },
	};
	for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
		const int M = shapes[c][0], dk = shapes[c][1], dv = shapes[c][2], L = shapes[c][3];
		float *Q = malloc((size_t)M * (size_t)dk * sizeof *Q), *K = malloc((size_t)L * (size_t)dk * sizeof *K);
		float *V = malloc((size_t)L * (size_t)dv * sizeof *V);
		float *o1 = malloc((size_t)M * (size_t)dv * sizeof *o1), *o2 = malloc((size_t)M * (size_t)dv * sizeof *o2);
		int32_t *vis = malloc((size_t)M * sizeof *vis);
		for (int i = 0; i < M * dk; i++)
			Q[i] = rnd() * 3.0f / sqrtf((float)dk); /* scores of a few units: a peaked softmax */
		for (int i = 0; i < L * dk; i++)
			K[i] = rnd() * 3.0f;
		for (int i = 0; i < L * dv; i++)
			V[i] = rnd();
		for (int m = 0; m < M; m++) /* causal-like: later rows see more */
			vis[m] = L - (M - 1 - m) * L / (2 * M) > 0 ? L - (M - 1 - m) * L / (2 * M) : 1;
		run(kern_fns()->attn_tile, M, dk, dv, L, Q, vis, K, V, o1);
		run(kern_fns_ref()->attn_tile, M, dk, dv, L, Q, vis, K, V, o2);
		if (memcmp(o1, o2, (size_t)M * (size_t)dv * sizeof *o1))
			T_FAIL("attn tile M=%d dk=%d dv=%d L=%d: %s kernel differs from the reference", M, dk, dv, L, kern_isa());
		/* rows share loads in blocks: a row alone must give the same bits */
		for (int m = 0; m < M; m++) {
			float *alone = malloc((size_t)dv * sizeof *alone);
			run(kern_fns()->attn_tile, 1, dk, dv, L, Q + (size_t)m * (size_t)dk, &vis[m], K, V, alone);
			if (memcmp(alone, o1 + (size_t)m * (size_t)dv, (size_t)dv * sizeof *alone))
				T_FAIL("attn tile M=%d dk=%d dv=%d L=%d: row %d alone differs from the row among %d", M, dk, dv, L,
				       m, M);
			free(alone);
		}
		double worst = 0;
		for (int m = 0; m < M; m++) {
			double *w = malloc((size_t)vis[m] * sizeof *w), mxs = -INFINITY, sum = 0;
			for (int p = 0; p < vis[m]; p++) {
				double s = 0;
				for (int d = 0; d < dk; d++)
					s += (double)Q[m * dk + d] * K[(size_t)p * (size_t)dk + (size_t)d];
				w[p] = s;
				mxs = s > mxs ? s : mxs;
			}
			for (int p = 0; p < vis[m]; p++)
				sum += (w[p] = exp(w[p] - mxs));
			for (int j = 0; j < dv; j++) {
				double o = 0;
				for (int p = 0; p < vis[m]; p++)
					o += w[p] / sum * V[(size_t)p * (size_t)dv + (size_t)j];
				const double e = fabs(o - o2[m * dv + j]);
				worst = e > worst ? e : worst;
			}
			free(w);
		}
		if (!(worst < 4e-6))
			T_FAIL("attn tile M=%d dk=%d dv=%d L=%d: off the double-precision attention by %.3g", M, dk, dv, L, worst);
		free(Q);
		free(K);
		free(V);
		free(o1);
		free(o2);
		free(vis);
	}
}

/* Runs M rows over L positions of an f16 cache through fn's f16 tiles:
 * keys in chunks [d][k_ld] of ATTN_CHUNK positions, values in rows v_ld
 * apart (stale data past L, chunks past every row's end not given). mx, l
 * and the unnormalized O come back. */
static void run_f16(kern_attn_tile_f16_fn fn, int M, int dk, int dv, int L, size_t k_ld, size_t v_ld, const float *Q,
		    const int32_t *vis, const hfp16 *K, const hfp16 *V, float *mx, float *l, float *O)
{
	float *scratch = malloc((size_t)(dk + dv) * ATTN_TILE * sizeof *scratch);
	int32_t *n = malloc((size_t)M * sizeof *n);
	for (int m = 0; m < M; m++) {
		mx[m] = -INFINITY;
		l[m] = 0;
	}
	memset(O, 0, (size_t)M * (size_t)dv * sizeof *O);
	int last = 0;
	for (int m = 0; m < M; m++)
		last = vis[m] > last ? vis[m] : last;
	for (int t0 = 0; t0 < last; t0 += ATTN_TILE) {
		const uint16_t *kc[ATTN_TILE / ATTN_CHUNK], *vc[ATTN_TILE / ATTN_CHUNK];
		for (int c = 0; c < ATTN_TILE / ATTN_CHUNK; c++) {
			const int p = t0 + c * ATTN_CHUNK;
			kc[c] = p < last ? K + (size_t)(p / ATTN_CHUNK) * (size_t)dk * k_ld : NULL;
			vc[c] = p < last ? V + (size_t)p * v_ld : NULL;
		}
		for (int m = 0; m < M; m++) {
			const int s = vis[m] - t0;
			n[m] = s < 0 ? 0 : s > ATTN_TILE ? ATTN_TILE : s;
		}
		fn(M, dk, dv, Q, n, kc, k_ld, vc, v_ld, mx, l, O, scratch);
	}
	(void)L;
	free(scratch);
	free(n);
}

/* The f16 tile, read from the cache: the kernel in use gives the reference's
 * bits (running max, sum and output) over rows that see different numbers
 * of positions (some none of a tile), odd row counts, chunk and row strides
 * wider than the data, stale cache data (NaN included) past the end, and
 * widths that are not multiples of the vector width; the reference equals
 * the float tile on the converted data. */
void test_kern_attn_f16(void)
{
	static const int shapes[][6] = { /* M, dk, dv, L, k_ld, v_ld extra */
		{ 1, 64, 64, 1, 16, 0 }, { 8, 64, 64, 17, 32, 192 }, { 7, 64, 64, 200, 16, 64 }, { 5, 128, 128, 64, 48, 0 },
		{ 3, 80, 96, 130, 16, 32 }, { 16, 32, 48, 65, 16, 0 }, { 2, 256, 256, 300, 16, 256 }, { 9, 16, 16, 17, 64, 16 },
		{ 14, 64, 64, 1000, 16, 448 }, { 4, 64, 80, 40, 32, 0 },
	};
	for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
		const int M = shapes[c][0], dk = shapes[c][1], dv = shapes[c][2], L = shapes[c][3];
		const size_t k_ld = (size_t)shapes[c][4], v_ld = (size_t)(dv + shapes[c][5]);
		const int Lr = (L + ATTN_CHUNK - 1) / ATTN_CHUNK * ATTN_CHUNK; /* whole chunks: stale past L */
		float *Q = malloc((size_t)M * (size_t)dk * sizeof *Q);
		hfp16 *K = malloc((size_t)Lr * (size_t)dk * k_ld / ATTN_CHUNK * sizeof *K), *V = malloc((size_t)Lr * v_ld * sizeof *V);
		float *Kf = malloc((size_t)L * (size_t)dk * sizeof *Kf), *Vf = malloc((size_t)L * (size_t)dv * sizeof *Vf);
		int32_t *vis = malloc((size_t)M * sizeof *vis);
		float *mx[3], *l[3], *O[3];
		for (int k = 0; k < 3; k++) {
			mx[k] = malloc((size_t)M * sizeof *mx[k]);
			l[k] = malloc((size_t)M * sizeof *l[k]);
			O[k] = malloc((size_t)M * (size_t)dv * sizeof *O[k]);
		}
		for (int i = 0; i < M * dk; i++)
			Q[i] = rnd() * 3.0f / sqrtf((float)dk);
		for (size_t i = 0; i < (size_t)Lr * (size_t)dk * k_ld / ATTN_CHUNK; i++)
			K[i] = 0x7e00; /* NaN: stale data the kernel must not let through */
		for (size_t i = 0; i < (size_t)Lr * v_ld; i++)
			V[i] = 0x7e00;
		for (int p = 0; p < L; p++) {
			for (int d = 0; d < dk; d++) {
				const hfp16 h = f32_to_fp16(rnd() * 3.0f);
				K[(size_t)(p / ATTN_CHUNK) * (size_t)dk * k_ld + (size_t)d * k_ld + (size_t)(p % ATTN_CHUNK)] = h;
				Kf[(size_t)p * (size_t)dk + (size_t)d] = fp16_to_f32(h);
			}
			for (int j = 0; j < dv; j++) {
				const hfp16 h = f32_to_fp16(rnd());
				V[(size_t)p * v_ld + (size_t)j] = h;
				Vf[(size_t)p * (size_t)dv + (size_t)j] = fp16_to_f32(h);
			}
		}
		for (int m = 0; m < M; m++) /* causal-like, and every third row short (none of later tiles) */
			vis[m] = m % 3 == 1 ? 1 + m % 7 : L - (M - 1 - m) * L / (2 * M) > 0 ? L - (M - 1 - m) * L / (2 * M) : 1;
		run_f16(kern_fns()->attn_tile_f16, M, dk, dv, L, k_ld, v_ld, Q, vis, K, V, mx[0], l[0], O[0]);
		run_f16(kern_fns_ref()->attn_tile_f16, M, dk, dv, L, k_ld, v_ld, Q, vis, K, V, mx[1], l[1], O[1]);
		if (memcmp(O[0], O[1], (size_t)M * (size_t)dv * sizeof *O[0]) || memcmp(mx[0], mx[1], (size_t)M * sizeof *mx[0]) ||
		    memcmp(l[0], l[1], (size_t)M * sizeof *l[0]))
			T_FAIL("attn f16 tile M=%d dk=%d dv=%d L=%d: %s kernel differs from the reference", M, dk, dv, L, kern_isa());
		float *out = malloc((size_t)M * (size_t)dv * sizeof *out);
		bool finite = true;
		for (int i = 0; i < M * dv; i++)
			finite = finite && isfinite(O[0][i]);
		if (!finite)
			T_FAIL("attn f16 tile M=%d dk=%d dv=%d L=%d: stale cache data reached the output", M, dk, dv, L);
		run(kern_fns_ref()->attn_tile, M, dk, dv, L, Q, vis, Kf, Vf, out);
		for (int i = 0; i < M * dv; i++)
			O[1][i] /= l[1][i / dv];
		if (memcmp(out, O[1], (size_t)M * (size_t)dv * sizeof *out))
			T_FAIL("attn f16 tile M=%d dk=%d dv=%d L=%d: the reference differs from the float tile", M, dk, dv, L);
		free(out);
		for (int k = 0; k < 3; k++) {
			free(mx[k]);
			free(l[k]);
			free(O[k]);
		}
		free(Q);
		free(K);
		free(V);
		free(Kf);
		free(Vf);
		free(vis);
	}
}

/* SwiGLU: the kernel in use gives the reference's bits, both within float
 * rounding of silu(g) * u computed in double, over the whole range (large
 * negative and positive gates included) and every tail length. */
void test_kern_swiglu(void)
{
	for (int n = 1; n <= 70; n++) {
		float g1[70], g2[70], u[70];
		for (int i = 0; i < n; i++) {
			g1[i] = g2[i] = rnd() * (i % 5 == 0 ? 120.0f : 8.0f);
			u[i] = rnd() * 2.0f;
		}
		kern_fns()->swiglu(g1, u, n);
		kern_fns_ref()->swiglu(g2, u, n);
		if (memcmp(g1, g2, (size_t)n * sizeof *g1))
			T_FAIL("swiglu n=%d: %s kernel differs from the reference", n, kern_isa());
	}
	for (int i = 0; i < 2000; i++) {
		float g = rnd() * 100.0f, u = 1.0f, out = g;
		kern_fns_ref()->swiglu(&out, &u, 1);
		const double want = (double)g / (1.0 + exp(-(double)g));
		if (!(fabs(out - want) <= 4e-7 * fabs(want) + 1e-30))
			T_FAIL("swiglu(%.9g) = %.9g, want %.9g", (double)g, (double)out, want);
	}
}

/* GeGLU: the kernel in use gives the reference's bits, both within a few
 * float roundings of gelu(g) * u in its tanh form computed in double. */
void test_kern_geglu(void)
{
	for (int n = 1; n <= 70; n++) {
		float g1[70], g2[70], u[70];
		for (int i = 0; i < n; i++) {
			g1[i] = g2[i] = rnd() * (i % 5 == 0 ? 120.0f : 8.0f);
			u[i] = rnd() * 2.0f;
		}
		kern_fns()->geglu(g1, u, n);
		kern_fns_ref()->geglu(g2, u, n);
		if (memcmp(g1, g2, (size_t)n * sizeof *g1))
			T_FAIL("geglu n=%d: %s kernel differs from the reference", n, kern_isa());
	}
	for (int i = 0; i < 2000; i++) {
		float g = rnd() * (i % 2 ? 100.0f : 4.0f), u = 1.0f, out = g;
		kern_fns_ref()->geglu(&out, &u, 1);
		const double x = g, want = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
		if (!(fabs(out - want) <= 1e-6 * fabs(x) + 1e-30))
			T_FAIL("geglu(%.9g) = %.9g, want %.9g", (double)g, (double)out, want);
	}
	float g[4] = { NAN, INFINITY, -INFINITY, -NAN }, u[4] = { 1, 1, 1, 1 };
	kern_fns()->geglu(g, u, 4);
	T_TRUE(isnan(g[0]) && isnan(g[3]));
}

/* Soft-capping (gemma2's attention scores): the kernel in use gives the
 * reference's bits; the reference is within a few float roundings of
 * c tanh(x / c) in double, on both sides of its switch between forms
 * (|x / c| = 0.25), bounded by c, and odd; infinities give +-c, a NaN stays. */
void test_kern_softcap(void)
{
	const float caps[] = { 50.0f, 30.0f, 1.0f };
	for (int n = 1; n <= 70; n++) {
		float a[70], b[70];
		for (int i = 0; i < n; i++)
			a[i] = b[i] = rnd() * (i % 5 == 0 ? 400.0f : i % 3 ? 20.0f : 0.5f);
		kern_fns()->softcap(a, n, caps[n % 3]);
		kern_fns_ref()->softcap(b, n, caps[n % 3]);
		if (memcmp(a, b, (size_t)n * sizeof *a))
			T_FAIL("softcap n=%d: %s kernel differs from the reference", n, kern_isa());
	}
	double worst = 0;
	for (int i = 0; i < 20000; i++) {
		const float c = caps[i % 3];
		const float x = rnd() * c * (i % 4 == 0 ? 0.6f : i % 4 == 1 ? 4.0f : i % 4 == 2 ? 0.02f : 40.0f);
		float out = x, neg = -x;
		kern_fns_ref()->softcap(&out, 1, c);
		kern_fns_ref()->softcap(&neg, 1, c);
		const double want = c * tanh((double)x / c);
		const double err = fabs(out - want) / (fabs(want) + 1e-30);
		worst = err > worst ? err : worst;
		if (!(err <= 4e-7) || fabs(out) > c || neg != -out)
			T_FAIL("softcap(%.9g, %g) = %.9g, want %.9g", (double)x, (double)c, (double)out, want);
	}
	if (!(worst > 0))
		T_FAIL("softcap: no rounding anywhere: the check is not checking");
	float x[4] = { NAN, INFINITY, -INFINITY, 0.0f };
	kern_fns()->softcap(x, 4, 50.0f);
	T_TRUE(isnan(x[0]) && x[1] == 50.0f && x[2] == -50.0f && x[3] == 0.0f);
}

/* Non-finite inputs (a model file may hold NaN or infinite weights): the
 * kernels stay defined (no integer overflow inside exp, which the sanitizer
 * build aborts on), a NaN stays a NaN, and a row without one is untouched. */
void test_kern_nonfinite(void)
{
	const struct kern_fns *fns[2] = { kern_fns(), kern_fns_ref() };
	for (int k = 0; k < 2; k++) {
		float g[4] = { NAN, INFINITY, -INFINITY, -NAN }, u[4] = { 1, 1, 1, 1 };
		fns[k]->swiglu(g, u, 4);
		T_TRUE(isnan(g[0]) && isnan(g[3]));
		enum { DK = 16, L = 3 };
		float Q[2 * DK], K[L * DK], V[L * DK], out[2 * DK], alone[DK];
		int32_t vis[2] = { L, L };
		for (int i = 0; i < 2 * DK; i++)
			Q[i] = rnd();
		for (int i = 0; i < L * DK; i++)
			K[i] = V[i] = rnd();
		Q[3] = NAN;
		K[DK + 5] = INFINITY;
		run(fns[k]->attn_tile, 2, DK, DK, L, Q, vis, K, V, out);
		run(fns[k]->attn_tile, 1, DK, DK, L, Q + DK, vis, K, V, alone);
		T_TRUE(isnan(out[0]));
		T_TRUE(memcmp(out + DK, alone, sizeof alone) == 0);
	}
}
