/* test-qtype.c - tensor types: half/bfloat16 conversion, every type's
 * dequantize + dot against a double-precision reference, and quantization
 * round-trip error bounds. */
#include <stdlib.h>

#include "../../src/kern/kern.h"
#include "../../src/tensor/quant-ref.h"
#include "../harness.h"

static uint64_t rng_state = 42;

static uint32_t rnd_u32(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

/* approximately N(0, 1) */
static float rnd_normal(void)
{
	float s = 0;
	for (int i = 0; i < 12; i++)
		s += (float)rnd_u32() / 2147483648.0f;
	return s - 6.0f;
}

void test_fp16_conversions(void)
{
	/* every half converts to float and back to itself (NaN stays NaN) */
	for (uint32_t h = 0; h < 65536; h++) {
		float f = fp16_to_f32((hfp16)h);
		hfp16 back = f32_to_fp16(f);
		if (isnan(f)) {
			if ((back & 0x7c00) != 0x7c00 || !(back & 0x3ff)) {
				T_FAIL("half 0x%04x: NaN came back as 0x%04x", h, back);
				break;
			}
		} else if (back != h) {
			T_FAIL("half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
			break;
		}
	}
	T_NEAR(fp16_to_f32(0x3c00), 1.0, 0);
	T_NEAR(fp16_to_f32(0xc000), -2.0, 0);
	T_NEAR(fp16_to_f32(0x0001), 5.960464477539063e-08, 0);
	T_EQ_I64(f32_to_fp16(65520.0f), 0x7c00);           /* rounds to infinity */
	T_EQ_I64(f32_to_fp16(1.0f + 1.0f / 2048), 0x3c00); /* ties to even */
	T_EQ_I64(f32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);
	T_EQ_I64(f32_to_fp16(1e-8f), 0);
	T_EQ_I64(f32_to_bf16(1.0f), 0x3f80);
	T_NEAR(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625, 0);
	T_EQ_I64(f32_to_bf16(1.00390625f), 0x3f80); /* ties to even */
}

static const int all_types[] = {
	HEARTH_TYPE_F32, HEARTH_TYPE_F16, HEARTH_TYPE_BF16, HEARTH_TYPE_Q8_0, HEARTH_TYPE_Q4_0,
	HEARTH_TYPE_Q4_1, HEARTH_TYPE_Q5_0, HEARTH_TYPE_Q5_1, HEARTH_TYPE_Q2_K, HEARTH_TYPE_Q3_K,
	HEARTH_TYPE_Q4_K, HEARTH_TYPE_Q5_K, HEARTH_TYPE_Q6_K, HEARTH_TYPE_MXFP4,
};

/* Random bytes for blocks hearth does not quantize, with sane scales. */
static void random_blocks(int type, void *dst, int64_t n)
{
	const struct qtype_info *q = qtype_info(type);
	size_t bytes = qtype_row_size(type, n);
	uint8_t *b = dst;
	for (size_t i = 0; i < bytes; i++)
		b[i] = (uint8_t)rnd_u32();
	for (int64_t k = 0; k < n / q->blck_size; k++) {
		uint8_t *blk = b + (size_t)k * q->type_size;
		hfp16 d = f32_to_fp16(0.01f + (float)(rnd_u32() % 100) / 5000.0f);
		if (type == HEARTH_TYPE_Q2_K) {
			memcpy(blk + 16 + 64, &d, 2);
			memcpy(blk + 16 + 64 + 2, &d, 2);
		} else if (type == HEARTH_TYPE_Q3_K) {
			memcpy(blk + 32 + 64 + 12, &d, 2);
		} else if (type == HEARTH_TYPE_Q5_K) {
			memcpy(blk, &d, 2);
			memcpy(blk + 2, &d, 2);
		} else if (type == HEARTH_TYPE_Q6_K) {
			memcpy(blk + 128 + 64 + 16, &d, 2);
		}
	}
}

void test_qtype_dequant_dot(void)
{
	for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
		const int type = all_types[t];
		const struct qtype_info *q = qtype_info(type);
		const struct qtype_ops *ops = kern_ops(type);
		T_TRUE(q && ops);
		if (!q || !ops)
			continue;
		for (int n_blocks = 1; n_blocks <= 9; n_blocks += 4) {
			const int64_t n = (int64_t)n_blocks * q->blck_size;
			float *src = malloc((size_t)n * sizeof *src), *w = malloc((size_t)n * sizeof *w);
			float *x = malloc((size_t)n * sizeof *x);
			void *wq = malloc(qtype_row_size(type, n)), *xq = malloc(qtype_row_size(ops->dot_type, n) + 1);
			for (int64_t i = 0; i < n; i++) {
				src[i] = rnd_normal();
				x[i] = rnd_normal();
			}
			if (quantize_supported(type))
				quantize_row_ref(type, src, wq, n);
			else
				random_blocks(type, wq, n);
			T_EQ_I64(dequantize_row_ref(type, wq, w, n), 0);
			/* the table's to_float is the reference dequantizer */
			float *w2 = malloc((size_t)n * sizeof *w2);
			ops->to_float(wq, w2, n);
			T_TRUE(memcmp(w, w2, (size_t)n * sizeof *w) == 0);
			free(w2);
			/* dot against double: the activations go through the dot type first */
			float *xr = malloc((size_t)n * sizeof *xr);
			ops->dot_from_float(x, xq, n);
			dequantize_row_ref(ops->dot_type, xq, xr, n);
			double want = 0, mag = 0;
			for (int64_t i = 0; i < n; i++) {
				want += (double)w[i] * xr[i];
				mag += fabs((double)w[i] * xr[i]);
			}
			float got;
			ops->vec_dot(n, &got, wq, xq);
			/* q8_1 carries d * sum(q) rounded to f16 for the offset term, as llama.cpp's */
			const double rel = ops->dot_type == HEARTH_TYPE_Q8_1 || ops->dot_type == QTYPE_Q8_1P ? 2e-3 : 1e-5;
			if (!(fabs(got - want) <= rel * mag + 1e-6))
				T_FAIL("%s, n=%" PRId64 ": dot %.7g, double reference %.7g", q->name, n, (double)got, want);
			for (int64_t i = 0; i < n; i++)
				if (!isfinite(w[i])) {
					T_FAIL("%s: non-finite dequantized value", q->name);
					break;
				}
			free(xr);
			free(src);
			free(w);
			free(x);
			free(wq);
			free(xq);
		}
	}
	/* one hand-made q4_0 block: d = 0.5, nibbles 0..15 -> (q - 8) * 0.5 */
	struct block_q4_0 b;
	float y[32];
	b.d = f32_to_fp16(0.5f);
	for (int j = 0; j < 16; j++)
		b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
	dequantize_row_q4_0(&b, y, 32);
	T_NEAR(y[0], -4.0, 0);
	T_NEAR(y[15], 3.5, 0);
	T_NEAR(y[16], 3.5, 0);
	T_NEAR(y[31], -4.0, 0);
}

/* A kernel's matrix block for 1..5 rows x 1..9 tokens against its own single dots. */
static void check_gemm(const char *name, int type, const struct qtype_ops *ops, int n)
{
	enum { R = 5, T = 9 };
	const size_t wrow = qtype_row_size(type, n), arow = qtype_row_size(ops->dot_type, n);
	char *w = malloc(R * wrow), *a = malloc(T * arow);
	float *f = malloc((size_t)n * sizeof *f), y[T * R], one;
	for (int r = 0; r < R; r++) {
		for (int i = 0; i < n; i++)
			f[i] = rnd_normal();
		if (quantize_supported(type))
			quantize_row_ref(type, f, w + r * wrow, n);
		else
			random_blocks(type, w + r * wrow, n);
	}
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < n; i++)
			f[i] = rnd_normal();
		ops->dot_from_float(f, a + t * arow, n);
	}
	for (int nr = 1; nr <= R; nr++)
		for (int nt = 1; nt <= T; nt++) {
			for (int i = 0; i < T * R; i++)
				y[i] = NAN;
			ops->gemm(n, w, wrow, 0, nr, a, arow, nt, y, R);
			for (int t = 0; t < nt; t++)
				for (int r = 0; r < nr; r++) {
					float alone[R]; /* the token by itself: batching must not change a bit */
					ops->gemm(n, w, wrow, 0, nr, a + t * arow, arow, 1, alone, 1);
					if (memcmp(&alone[r], &y[t * R + r], sizeof alone[r])) {
						T_FAIL("%s n=%d gemm %dx%d: [%d,%d] %.9g in the batch, %.9g alone", name, n, nr, nt, r, t,
						       (double)y[t * R + r], (double)alone[r]);
						goto out;
					}
					ops->vec_dot(n, &one, w + r * wrow, a + t * arow);
					if (!(fabsf(y[t * R + r] - one) <= 1e-4f * (fabsf(one) + 1))) {
						T_FAIL("%s n=%d gemm %dx%d: [%d,%d] %.7g, dot %.7g", name, n, nr, nt, r, t,
						       (double)y[t * R + r], (double)one);
						goto out;
					}
				}
		}
out:
	free(w);
	free(a);
	free(f);
}

/* A packed layout's matrix product against the scalar reference's dots and
 * the kernel's own single dots: the rows of groups 1 and 2 of three (the
 * steps between groups), every token count up to past a full 8-token tile.
 * Weights come from the reference quantizer (random blocks for the types it
 * does not write, and for every other q6_K row: its int8 scales and 6-bit
 * values over their whole range, -128 included); each token's activations are converted by the reference
 * both into the kernel's layout and into the reference's dot type, so that
 * both dots see the same values. The bound is the single dots' one: relative
 * to the sum of the products' magnitudes. */
static void check_packed(const char *name, int type, const struct qtype_ops *ops, const struct qtype_ops *ref, int n)
{
	const int G = ops->pack_rows, R = 3 * G, T = 11;
	const size_t wrow = qtype_row_size(type, n), arow = qtype_row_size(ops->dot_type, n);
	const size_t rrow = qtype_row_size(ref->dot_type, n);
	char *w = malloc((size_t)R * wrow), *a = malloc((size_t)T * arow), *ar = malloc((size_t)T * rrow);
	void *packed = malloc(ops->pack_size(R, n));
	float *f = malloc((size_t)n * sizeof *f), *y = malloc((size_t)T * (size_t)R * sizeof *y);
	float *alone = malloc((size_t)T * (size_t)R * sizeof *alone), one, want;
	float *wf = malloc((size_t)R * (size_t)n * sizeof *wf), *af = malloc((size_t)T * (size_t)n * sizeof *af);
	for (int r = 0; r < R; r++) {
		for (int i = 0; i < n; i++)
			f[i] = rnd_normal();
		if (quantize_supported(type) && !(type == HEARTH_TYPE_Q6_K && r % 2))
			quantize_row_ref(type, f, w + (size_t)r * wrow, n);
		else
			random_blocks(type, w + (size_t)r * wrow, n);
		dequantize_row_ref(type, w + (size_t)r * wrow, wf + (size_t)r * (size_t)n, n);
	}
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < n; i++)
			f[i] = rnd_normal() * (i % 7 == 0 ? 4.0f : 1.0f);
		T_EQ_I64(quantize_row_ref(ops->dot_type, f, a + (size_t)t * arow, n), 0);
		ref->dot_from_float(f, ar + (size_t)t * rrow, n);
		dequantize_row_ref(ref->dot_type, ar + (size_t)t * rrow, af + (size_t)t * (size_t)n, n);
	}
	ops->pack(w, R, n, packed);
	for (int t = 0; t < T; t++) /* each token by itself: batching must not change a bit */
		ops->gemm_packed(n, packed, G, R, a + (size_t)t * arow, arow, 1, alone + (size_t)t * (size_t)R, (size_t)R);
	for (int nt = 1; nt <= T; nt++) {
		for (int i = 0; i < T * R; i++)
			y[i] = NAN;
		ops->gemm_packed(n, packed, G, R, a, arow, nt, y, (size_t)R); /* groups 1 and 2 */
		for (int t = 0; t < nt; t++)
			for (int r = G; r < R; r++) {
				const float got = y[t * R + r];
				if (memcmp(&alone[t * R + r], &got, sizeof got)) {
					T_FAIL("%s n=%d packed, %d tokens: [%d,%d] %.9g in the batch, %.9g alone", name, n, nt, r, t,
					       (double)got, (double)alone[t * R + r]);
					goto out;
				}
				float mag = 0;
				for (int i = 0; i < n; i++)
					mag += fabsf(wf[(size_t)r * (size_t)n + (size_t)i] * af[(size_t)t * (size_t)n + (size_t)i]);
				ref->vec_dot(n, &want, w + (size_t)r * wrow, ar + (size_t)t * rrow);
				if (!(fabsf(got - want) <= 1e-5f * mag + 1e-6f)) {
					T_FAIL("%s n=%d packed, %d tokens: [%d,%d] %.7g, reference dot %.7g", name, n, nt, r, t,
					       (double)got, (double)want);
					goto out;
				}
				ops->vec_dot(n, &one, w + (size_t)r * wrow, a + (size_t)t * arow);
				if (!(fabsf(got - one) <= 1e-5f * mag + 1e-6f)) {
					T_FAIL("%s n=%d packed, %d tokens: [%d,%d] %.7g, dot %.7g", name, n, nt, r, t, (double)got,
					       (double)one);
					goto out;
				}
			}
	}
	for (int i = 0; i < T * R; i++) /* rows outside r0..r1 are not written */
		if (i % R < G && !isnan(y[i])) {
			T_FAIL("%s n=%d packed: row %d written outside the rows asked for", name, n, i % R);
			break;
		}
out:
	free(w);
	free(a);
	free(ar);
	free(packed);
	free(f);
	free(y);
	free(alone);
	free(wf);
	free(af);
}

/* The types with a packed layout where the CPU has AVX-512 VNNI (so that
 * test_kern_isa_vs_ref checks each against the reference). */
void test_kern_packed_layouts(void)
{
	static const int types[] = { HEARTH_TYPE_F16,  HEARTH_TYPE_Q8_0, HEARTH_TYPE_Q4_0, HEARTH_TYPE_Q5_0,
				     HEARTH_TYPE_Q4_1, HEARTH_TYPE_Q5_1, HEARTH_TYPE_Q2_K, HEARTH_TYPE_Q3_K,
				     HEARTH_TYPE_Q4_K, HEARTH_TYPE_Q5_K, HEARTH_TYPE_Q6_K, HEARTH_TYPE_MXFP4 };
	if (strcmp(kern_isa(), "avx512vnni"))
		return;
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		const struct qtype_ops *ops = kern_ops(types[t]);
		if (!(ops->pack && ops->pack_rows == 16 && ops->pack_size && ops->gemm_packed))
			T_FAIL("%s: no packed layout", hearth_type_name(types[t]));
	}
}

/* Every kernel the CPU runs against the scalar reference, at every tail length. */
void test_kern_isa_vs_ref(void)
{
	printf("     kernels in use: %s\n", kern_isa());
	for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
		const int type = all_types[t];
		const struct qtype_info *q = qtype_info(type);
		const struct qtype_ops *ops = kern_ops(type), *ref = kern_ops_ref(type);
		/* every tail length up to 9 blocks (80 values for plain floats), and one
		 * long row: past the stretches kernels convert activations in */
		const int max_n = q->blck_size == 1 ? 80 : 9 * q->blck_size, long_n = q->blck_size == 1 ? 601 : 21 * q->blck_size;
		for (int n = q->blck_size; n <= long_n; n = n + q->blck_size <= max_n ? n + q->blck_size : n < long_n ? long_n : long_n + 1) {
			float *src = malloc((size_t)n * sizeof *src), *x = malloc((size_t)n * sizeof *x);
			float *w1 = malloc((size_t)n * sizeof *w1), *w2 = malloc((size_t)n * sizeof *w2);
			void *wq = malloc(qtype_row_size(type, n)), *xq = malloc(qtype_row_size(ops->dot_type, n) + 1);
			void *xr = malloc(qtype_row_size(ops->dot_type, n) + 1);
			for (int i = 0; i < n; i++) {
				src[i] = rnd_normal();
				x[i] = rnd_normal() * (i % 7 == 0 ? 4.0f : 1.0f);
			}
			if (quantize_supported(type))
				quantize_row_ref(type, src, wq, n);
			else
				random_blocks(type, wq, n);
			ops->to_float(wq, w1, n);
			ref->to_float(wq, w2, n);
			if (memcmp(w1, w2, (size_t)n * sizeof *w1))
				T_FAIL("%s n=%d: to_float differs from the reference", q->name, n);
			/* activation conversion: the same values (in the kernel's own layout
			 * when it has one), up to a rounding tie */
			ops->dot_from_float(x, xq, n);
			ref->dot_from_float(x, xr, n);
			float *a1 = malloc((size_t)n * sizeof *a1), *a2 = malloc((size_t)n * sizeof *a2);
			dequantize_row_ref(ops->dot_type, xq, a1, n);
			dequantize_row_ref(ref->dot_type, xr, a2, n);
			int differ = 0;
			for (int i = 0; i < n; i++)
				differ += a1[i] != a2[i];
			if (differ > n / 64)
				T_FAIL("%s n=%d: %d activations converted differently", q->name, n, differ);
			/* q8_K has no rounding freedom: the reference's bytes exactly */
			if (ops->dot_type == HEARTH_TYPE_Q8_K && memcmp(xq, xr, qtype_row_size(HEARTH_TYPE_Q8_K, n)))
				T_FAIL("%s n=%d: q8_K activations differ from the reference's bytes", q->name, n);
			/* the dot, each on its own conversion (the same values) */
			float got, want, mag = 0;
			if (ops->dot_type == ref->dot_type && !differ)
				ops->vec_dot(n, &got, wq, xr);
			else
				ops->vec_dot(n, &got, wq, xq);
			ref->vec_dot(n, &want, wq, xr);
			for (int i = 0; i < n; i++)
				mag += fabsf(w2[i] * a2[i]);
			if (!(fabsf(got - want) <= 1e-5f * mag + 1e-6f))
				T_FAIL("%s n=%d: kernel dot %.7g, reference %.7g", q->name, n, (double)got, (double)want);
			if (ops->gemm) /* tiles of rows x tokens against single dots */
				check_gemm(q->name, type, ops, n);
			if (ops->pack)
				check_packed(q->name, type, ops, ref, n);
			if (ops->vec_dot4) { /* four rows of activations at a stride */
				const size_t row = qtype_row_size(ops->dot_type, n);
				char *ys = malloc(4 * row);
				float s4[8], s1;
				for (int k = 0; k < 4; k++)
					memcpy(ys + k * row, xr, row);
				ops->vec_dot4(n, s4, 2, wq, ys, row);
				ops->vec_dot(n, &s1, wq, xr);
				for (int k = 0; k < 4; k++)
					if (memcmp(&s4[2 * k], &s1, sizeof s1))
						T_FAIL("%s n=%d: vec_dot4 row %d %.9g, vec_dot %.9g (batching must not change a bit)", q->name,
						       n, k, (double)s4[2 * k], (double)s1);
					else if (!(fabsf(s4[2 * k] - want) <= 1e-5f * mag + 1e-6f))
						T_FAIL("%s n=%d: vec_dot4 row %d %.7g, reference %.7g", q->name, n, k, (double)s4[2 * k],
						       (double)want);
				free(ys);
			}
			free(a1);
			free(a2);
			free(src);
			free(x);
			free(w1);
			free(w2);
			free(wq);
			free(xq);
			free(xr);
		}
	}
}

void test_qtype_quantize(void)
{
	static const struct {
		int type;
		double max_rel_rmse; /* RMS error over RMS of the data, for N(0,1) data */
	} bounds[] = {
		{ HEARTH_TYPE_F16, 5e-4 }, { HEARTH_TYPE_BF16, 4e-3 }, { HEARTH_TYPE_Q8_0, 0.01 },
		{ HEARTH_TYPE_Q6_K, 0.03 }, { HEARTH_TYPE_Q5_0, 0.05 }, { HEARTH_TYPE_Q5_1, 0.05 },
		{ HEARTH_TYPE_Q4_0, 0.1 }, { HEARTH_TYPE_Q4_1, 0.1 }, { HEARTH_TYPE_Q4_K, 0.1 },
		{ HEARTH_TYPE_Q5_K, 0.05 }, { HEARTH_TYPE_Q3_K, 0.2 }, { HEARTH_TYPE_Q2_K, 0.4 },
		{ HEARTH_TYPE_MXFP4, 0.2 },
	};
	const int64_t n = 4096;
	float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
	void *q = malloc(qtype_row_size(HEARTH_TYPE_F32, n));
	for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
		const int type = bounds[b].type;
		double se = 0, ss = 0;
		for (int64_t i = 0; i < n; i++)
			x[i] = rnd_normal() * (i % 512 < 32 ? 10.0f : 1.0f); /* some blocks with a larger range */
		T_EQ_I64(quantize_row_ref(type, x, q, n), 0);
		T_EQ_I64(dequantize_row_ref(type, q, y, n), 0);
		for (int64_t i = 0; i < n; i++) {
			se += (double)(x[i] - y[i]) * (x[i] - y[i]);
			ss += (double)x[i] * x[i];
		}
		double rel = sqrt(se / ss);
		printf("     quantize %-5s relative RMS error %.5f (bound %g)\n", hearth_type_name(type), rel,
		       bounds[b].max_rel_rmse);
		T_TRUE(rel < bounds[b].max_rel_rmse);
		/* all zeros stay zeros */
		memset(x, 0, n * sizeof *x);
		quantize_row_ref(type, x, q, n);
		dequantize_row_ref(type, q, y, n);
		for (int64_t i = 0; i < n; i++)
			if (y[i] != 0) {
				T_FAIL("%s: zeros came back as %g", hearth_type_name(type), (double)y[i]);
				break;
			}
	}
	T_EQ_I64(quantize_row_ref(5 /* no such type */, x, q, 256), HEARTH_EUNSUPPORTED);
	free(x);
	free(y);
	free(q);
}

/* One type's activation conversion and products over activations holding a
 * NaN and an infinity (n values; rows weight rows when it has a packed layout). */
static void nonfinite_one(const struct qtype_ops *ops, int type, bool ref)
{
	enum { N = 256, ROWS = 16 };
	float x[N], w[N * ROWS], y[ROWS], s;
	for (int i = 0; i < N; i++)
		x[i] = rnd_normal();
	for (int i = 0; i < N * ROWS; i++)
		w[i] = rnd_normal();
	x[3] = NAN;
	x[40] = INFINITY;
	int8_t *a = malloc(qtype_row_size(ops->dot_type, N) + 64);
	void *wq = malloc(qtype_row_size(type, N) * ROWS);
	ops->dot_from_float(x, a, N);
	if (ops->dot_type == QTYPE_Q8_0P) { /* planar: the block sums are the stored bytes' */
		int32_t sums[N / 32];
		memcpy(sums, a + N + N / 32 * sizeof(float), sizeof sums);
		for (int b = 0; b < N / 32; b++) {
			int32_t want = 0;
			for (int i = 0; i < 32; i++)
				want += a[32 * b + i];
			T_EQ_I64(sums[b], want);
		}
	}
	if (ref && ops->dot_type == HEARTH_TYPE_Q8_0) /* saturated, not an out-of-range conversion */
		T_EQ_I64(((const struct block_q8_0 *)a)[0].qs[3], -128);
	if (quantize_supported(type))
		quantize_row_ref(type, w, wq, N * ROWS);
	else
		random_blocks(type, wq, N * ROWS);
	ops->vec_dot(N, &s, wq, a);
	if (!ref && ops->pack_rows && ROWS % ops->pack_rows == 0) {
		void *packed = malloc(ops->pack_size(ROWS, N));
		ops->pack(wq, ROWS, N, packed);
		ops->gemm_packed(N, packed, 0, ROWS, a, qtype_row_size(ops->dot_type, N), 1, y, ROWS);
		free(packed);
	}
	free(wq);
	free(a);
}

/* Non-finite activations (from NaN or infinite weights in a model file), with
 * the kernels in use and the reference: planar q8_0 activations carry block
 * sums equal to their stored bytes' sums (not the wrapped sums of out-of-range
 * conversions), the reference's q8_0 saturates instead of converting a NaN to
 * int8, and the products over them stay defined (the sanitizer build aborts on
 * an integer overflow or an out-of-range conversion). */
void test_kern_nonfinite_activations(void)
{
	static const int types[] = { HEARTH_TYPE_Q4_0, HEARTH_TYPE_Q8_0, HEARTH_TYPE_Q4_1, HEARTH_TYPE_Q5_0,
				     HEARTH_TYPE_Q5_1, HEARTH_TYPE_Q2_K, HEARTH_TYPE_Q3_K, HEARTH_TYPE_Q4_K,
				     HEARTH_TYPE_Q5_K, HEARTH_TYPE_Q6_K, HEARTH_TYPE_F16, HEARTH_TYPE_MXFP4 };
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		nonfinite_one(kern_ops(types[t]), types[t], false);
		nonfinite_one(kern_ops_ref(types[t]), types[t], true);
	}
}

/* MXFP4 by hand: E2M1 nibbles (doubled: 0, 1, 2, 3, 4, 6, 8, 12, then the
 * negatives) times 2^(e - 128); byte j holds elements j and j + 16. */
void test_qtype_mxfp4(void)
{
	struct block_mxfp4 b = { .e = 128 };
	float y[32];
	for (int j = 0; j < 16; j++)
		b.qs[j] = (uint8_t)(j | (15 - j) << 4);
	dequantize_row_mxfp4(&b, y, 32);
	static const float v[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };
	for (int j = 0; j < 16; j++) {
		T_NEAR(y[j], v[j], 0);
		T_NEAR(y[j + 16], v[15 - j], 0);
	}
	b.e = 125; /* a scale of 1/8 */
	dequantize_row_mxfp4(&b, y, 32);
	T_NEAR(y[7], 1.5, 0);
	b.e = 0; /* the smallest scale, 2^-128: subnormal, still exact */
	dequantize_row_mxfp4(&b, y, 32);
	T_NEAR(y[1], ldexp(1.0, -128), 0);
	/* the quantizer: the largest magnitude sets e = floor(log2 amax) - 2 + 127 */
	float x[32] = { 0 };
	x[3] = 6.0f;   /* log2 6 = 2.58: e = 127, scale 1/2, 6 is the value 12 */
	x[20] = -1.1f; /* nearest: -1 (value -2) */
	quantize_row_ref(HEARTH_TYPE_MXFP4, x, &b, 32);
	T_EQ_I64(b.e, 127);
	T_EQ_I64(b.qs[3] & 15, 7);
	T_EQ_I64(b.qs[4] >> 4, 10);
}
