/* kern.c - the scalar reference kernels, and the kernel table: those, with
 * the AVX2 / AVX-512 entries of this CPU put over them once (kern_select).
 *
 * Reference dot products: F32 x F32, F16 x F16 and BF16 x BF16 accumulate in
 * float; quantized weights take 8-bit quantized activations (see below).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../base/cpu.h"
#include "../tensor/quant-ref.h"
#include "attn-tile.h"
#include "kern.h"
#include "logit-row.h"

static void f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *y); }
static void f32_from_float(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *x); }

static void f16_to_float(const void *x, float *y, int64_t n) { dequantize_row_ref(HEARTH_TYPE_F16, x, y, n); }
static void f16_from_float(const float *x, void *y, int64_t n) { quantize_row_ref(HEARTH_TYPE_F16, x, y, n); }
static void bf16_to_float(const void *x, float *y, int64_t n) { dequantize_row_ref(HEARTH_TYPE_BF16, x, y, n); }
static void bf16_from_float(const float *x, void *y, int64_t n) { quantize_row_ref(HEARTH_TYPE_BF16, x, y, n); }

static void vec_dot_f32(int64_t n, float *s, const void *vx, const void *vy)
{
	const float *x = vx, *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += x[i] * y[i];
	*s = sum;
}

static void vec_dot_f16(int64_t n, float *s, const void *vx, const void *vy)
{
	const hfp16 *x = vx, *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += fp16_to_f32(x[i]) * fp16_to_f32(y[i]);
	*s = sum;
}

static void vec_dot_bf16(int64_t n, float *s, const void *vx, const void *vy)
{
	const hbf16 *x = vx, *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += bf16_to_f32(x[i]) * bf16_to_f32(y[i]);
	*s = sum;
}

/*
 * Quantized weights: as llama.cpp, the activations are first quantized to
 * 8-bit blocks (q8_0 for q4_0/q5_0/q8_0, q8_1 for q4_1/q5_1, q8_K for the
 * K-quants), then each block contributes d_w * d_x * sum(q_w * q_x)
 * (plus the weights' offset term). The legacy types below sum integers per
 * block; the K-quants dequantize both blocks and sum their products, which
 * is the same value up to float rounding.
 */

/* 4-bit / 5-bit values of a q4_0/q4_1/q5_0/q5_1 block, without offset. */
static void unpack_q4(const uint8_t *qs, int8_t *q)
{
	for (int j = 0; j < 16; j++) {
		q[j] = (int8_t)(qs[j] & 0x0f);
		q[j + 16] = (int8_t)(qs[j] >> 4);
	}
}

static void unpack_q5(const uint8_t *qs, const uint8_t qh_bytes[4], int8_t *q)
{
	uint32_t qh;
	memcpy(&qh, qh_bytes, 4);
	for (int j = 0; j < 16; j++) {
		q[j] = (int8_t)((qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10));
		q[j + 16] = (int8_t)((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
	}
}

static int dot_i8(const int8_t *a, const int8_t *b, int n, int offset)
{
	int s = 0;
	for (int j = 0; j < n; j++)
		s += (a[j] - offset) * b[j];
	return s;
}

static void vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_0 *x = vx;
	const struct block_q8_0 *y = vy;
	int8_t q[32];
	float sum = 0;
	for (int64_t i = 0; i < n / QK4_0; i++) {
		unpack_q4(x[i].qs, q);
		sum += fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d) * (float)dot_i8(q, y[i].qs, 32, 8);
	}
	*s = sum;
}

static void vec_dot_q5_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q5_0 *x = vx;
	const struct block_q8_0 *y = vy;
	int8_t q[32];
	float sum = 0;
	for (int64_t i = 0; i < n / QK5_0; i++) {
		unpack_q5(x[i].qs, x[i].qh, q);
		sum += fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d) * (float)dot_i8(q, y[i].qs, 32, 16);
	}
	*s = sum;
}

static void vec_dot_q8_0_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q8_0 *x = vx;
	const struct block_q8_0 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_0; i++)
		sum += fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d) * (float)dot_i8(x[i].qs, y[i].qs, 32, 0);
	*s = sum;
}

static void vec_dot_mxfp4_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_mxfp4 *x = vx;
	const struct block_q8_0 *y = vy;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_MXFP4; i++) {
		int si = 0;
		for (int j = 0; j < QK_MXFP4 / 2; j++)
			si += y[i].qs[j] * (int)mxfp4_value(x[i].qs[j] & 15) +
			      y[i].qs[j + QK_MXFP4 / 2] * (int)mxfp4_value(x[i].qs[j] >> 4);
		sum += fp16_to_f32(y[i].d) * mxfp4_scale_half(x[i].e) * (float)si;
	}
	*s = sum;
}

static void mxfp4_to_float(const void *x, float *y, int64_t n) { dequantize_row_mxfp4(x, y, n); }

static void vec_dot_q4_1_q8_1(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q4_1 *x = vx;
	const struct block_q8_1 *y = vy;
	int8_t q[32];
	float sum = 0;
	for (int64_t i = 0; i < n / QK4_1; i++) {
		unpack_q4(x[i].qs, q);
		sum += fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d) * (float)dot_i8(q, y[i].qs, 32, 0) +
		       fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
	}
	*s = sum;
}

static void vec_dot_q5_1_q8_1(int64_t n, float *s, const void *vx, const void *vy)
{
	const struct block_q5_1 *x = vx;
	const struct block_q8_1 *y = vy;
	int8_t q[32];
	float sum = 0;
	for (int64_t i = 0; i < n / QK5_1; i++) {
		unpack_q5(x[i].qs, x[i].qh, q);
		sum += fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d) * (float)dot_i8(q, y[i].qs, 32, 0) +
		       fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
	}
	*s = sum;
}

#define DEFINE_K_REF(name, block_t)                                                            \
	static void name##_to_float(const void *x, float *y, int64_t n)                        \
	{                                                                                      \
		dequantize_row_##name(x, y, n);                                                \
	}                                                                                      \
	static void vec_dot_##name##_q8_K(int64_t n, float *s, const void *vx, const void *vy) \
	{                                                                                      \
		const block_t *x = vx;                                                         \
		const struct block_q8_K *y = vy;                                               \
		float w[QK_K], sum = 0;                                                        \
		for (int64_t i = 0; i < n / QK_K; i++) {                                       \
			float bs = 0;                                                          \
			dequantize_row_##name(&x[i], w, QK_K);                                 \
			for (int j = 0; j < QK_K; j++)                                         \
				bs += w[j] * y[i].qs[j];                                       \
			sum += bs * y[i].d;                                                    \
		}                                                                              \
		*s = sum;                                                                      \
	}

DEFINE_K_REF(q2_K, struct block_q2_K)
DEFINE_K_REF(q3_K, struct block_q3_K)
DEFINE_K_REF(q4_K, struct block_q4_K)
DEFINE_K_REF(q5_K, struct block_q5_K)
DEFINE_K_REF(q6_K, struct block_q6_K)

#define LEGACY_TO_FLOAT(name) \
	static void name##_to_float(const void *x, float *y, int64_t n) { dequantize_row_##name(x, y, n); }
LEGACY_TO_FLOAT(q4_0)
LEGACY_TO_FLOAT(q4_1)
LEGACY_TO_FLOAT(q5_0)
LEGACY_TO_FLOAT(q5_1)
LEGACY_TO_FLOAT(q8_0)

static void q8_0_from_float(const float *x, void *y, int64_t n) { quantize_row_ref(HEARTH_TYPE_Q8_0, x, y, n); }
static void q8_1_from_float(const float *x, void *y, int64_t n) { quantize_row_ref(HEARTH_TYPE_Q8_1, x, y, n); }
static void q8_K_from_float(const float *x, void *y, int64_t n) { quantize_row_ref(HEARTH_TYPE_Q8_K, x, y, n); }

static const struct qtype_ops ops_ref[HEARTH_TYPE_COUNT] = {
	[HEARTH_TYPE_F32] = { .to_float = f32_to_float, .dot_type = HEARTH_TYPE_F32, .dot_from_float = f32_from_float, .vec_dot = vec_dot_f32, .from_float = f32_from_float },
	[HEARTH_TYPE_F16] = { .to_float = f16_to_float, .dot_type = HEARTH_TYPE_F16, .dot_from_float = f16_from_float, .vec_dot = vec_dot_f16, .from_float = f16_from_float },
	[HEARTH_TYPE_BF16] = { .to_float = bf16_to_float, .dot_type = HEARTH_TYPE_BF16, .dot_from_float = bf16_from_float, .vec_dot = vec_dot_bf16 },
	[HEARTH_TYPE_Q4_0] = { .to_float = q4_0_to_float, .dot_type = HEARTH_TYPE_Q8_0, .dot_from_float = q8_0_from_float, .vec_dot = vec_dot_q4_0_q8_0 },
	[HEARTH_TYPE_Q4_1] = { .to_float = q4_1_to_float, .dot_type = HEARTH_TYPE_Q8_1, .dot_from_float = q8_1_from_float, .vec_dot = vec_dot_q4_1_q8_1 },
	[HEARTH_TYPE_Q5_0] = { .to_float = q5_0_to_float, .dot_type = HEARTH_TYPE_Q8_0, .dot_from_float = q8_0_from_float, .vec_dot = vec_dot_q5_0_q8_0 },
	[HEARTH_TYPE_Q5_1] = { .to_float = q5_1_to_float, .dot_type = HEARTH_TYPE_Q8_1, .dot_from_float = q8_1_from_float, .vec_dot = vec_dot_q5_1_q8_1 },
	[HEARTH_TYPE_Q8_0] = { .to_float = q8_0_to_float, .dot_type = HEARTH_TYPE_Q8_0, .dot_from_float = q8_0_from_float, .vec_dot = vec_dot_q8_0_q8_0, .from_float = q8_0_from_float },
	[HEARTH_TYPE_MXFP4] = { .to_float = mxfp4_to_float, .dot_type = HEARTH_TYPE_Q8_0, .dot_from_float = q8_0_from_float, .vec_dot = vec_dot_mxfp4_q8_0 },
	[HEARTH_TYPE_Q2_K] = { .to_float = q2_K_to_float, .dot_type = HEARTH_TYPE_Q8_K, .dot_from_float = q8_K_from_float, .vec_dot = vec_dot_q2_K_q8_K },
	[HEARTH_TYPE_Q3_K] = { .to_float = q3_K_to_float, .dot_type = HEARTH_TYPE_Q8_K, .dot_from_float = q8_K_from_float, .vec_dot = vec_dot_q3_K_q8_K },
	[HEARTH_TYPE_Q4_K] = { .to_float = q4_K_to_float, .dot_type = HEARTH_TYPE_Q8_K, .dot_from_float = q8_K_from_float, .vec_dot = vec_dot_q4_K_q8_K },
	[HEARTH_TYPE_Q5_K] = { .to_float = q5_K_to_float, .dot_type = HEARTH_TYPE_Q8_K, .dot_from_float = q8_K_from_float, .vec_dot = vec_dot_q5_K_q8_K },
	[HEARTH_TYPE_Q6_K] = { .to_float = q6_K_to_float, .dot_type = HEARTH_TYPE_Q8_K, .dot_from_float = q8_K_from_float, .vec_dot = vec_dot_q6_K_q8_K },
};

const struct qtype_ops *kern_ops_ref(int type)
{
	if (type < 0 || type >= HEARTH_TYPE_COUNT || !ops_ref[type].vec_dot)
		return NULL;
	return &ops_ref[type];
}

DEFINE_ATTN_KERNELS(attn_tile_ref, swiglu_ref)
DEFINE_GEGLU_KERNEL(geglu_ref)
DEFINE_SOFTCAP_KERNEL(softcap_ref)
DEFINE_ATTN_F16_CONVERT(attn_tile_f16_ref, f16_to_float, attn_tile_ref)
DEFINE_ROW_KERNELS(row_minmax_ref, row_exp_sum_ref)
static int64_t row_collect_ref(const float *x, int64_t n, float thr, int32_t *out) { return row_collect_impl(x, n, thr, out); }

static const struct kern_fns fns_ref = { .attn_tile = attn_tile_ref, .attn_tile_f16 = attn_tile_f16_ref, .swiglu = swiglu_ref, .geglu = geglu_ref,
					 .softcap = softcap_ref,
					 .row_minmax = row_minmax_ref, .row_collect = row_collect_ref,
					 .row_exp_sum = row_exp_sum_ref,
					 .gemm_nt = gemm_f32_nt_ref, .gemm_nn = gemm_f32_nn_ref };

const struct kern_fns *kern_fns_ref(void) { return &fns_ref; }

/* The kernel table in use: a singleton filled once from the reference and,
 * where the CPU has them, faster kernels. */
static struct {
	pthread_once_t once;
	struct qtype_ops ops[HEARTH_TYPE_COUNT];
	struct kern_fns fns;
	const char *isa;
} kern_table = { .once = PTHREAD_ONCE_INIT };

static void kern_select(void)
{
	const char *force = getenv("HEARTH_CPU");
	memcpy(kern_table.ops, ops_ref, sizeof ops_ref);
	kern_table.fns = fns_ref;
	kern_table.isa = "scalar";
	if (force && !strcmp(force, "scalar"))
		return;
	struct cpu_caps caps;
	cpu_caps_detect(&caps);
	(void)caps;
#ifdef HEARTH_HAVE_AVX2
	if (caps.avx2 && caps.fma && caps.f16c) {
		kern_register_avx2(kern_table.ops, &kern_table.fns);
		kern_register_avx2_gemm_f32(&kern_table.fns);
		kern_register_avx2_dequant(kern_table.ops);
		kern_table.isa = "avx2";
	}
#endif /* HEARTH_HAVE_AVX2 */
#ifdef HEARTH_HAVE_AVX512VNNI
	if (!(force && !strcmp(force, "avx2")) && !strcmp(kern_table.isa, "avx2") && caps.avx512f && caps.avx512bw &&
	    caps.avx512vl && caps.avx512vnni) {
		kern_register_avx512vnni(kern_table.ops, &kern_table.fns);
		kern_register_avx512vnni_kquants(kern_table.ops);
		kern_register_avx512_attn(&kern_table.fns);
		kern_table.isa = "avx512vnni";
	}
#endif /* HEARTH_HAVE_AVX512VNNI */
#ifdef HEARTH_HAVE_AVX512BF16
	if (!strcmp(kern_table.isa, "avx512vnni") && caps.avx512bf16)
		kern_register_avx512bf16(kern_table.ops); /* an addition: the ISA name stays */
#endif /* HEARTH_HAVE_AVX512BF16 */
}

const struct qtype_ops *kern_ops(int type)
{
	pthread_once(&kern_table.once, kern_select);
	if (type < 0 || type >= HEARTH_TYPE_COUNT || !kern_table.ops[type].vec_dot)
		return NULL;
	return &kern_table.ops[type];
}

const char *kern_isa(void)
{
	pthread_once(&kern_table.once, kern_select);
	return kern_table.isa;
}

const struct kern_fns *kern_fns(void)
{
	pthread_once(&kern_table.once, kern_select);
	return &kern_table.fns;
}
