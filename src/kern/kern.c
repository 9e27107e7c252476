/* kern.c - the kernel table, filled with the scalar reference kernels.
 *
 * Reference dot products: F32 x F32, F16 x F16 and BF16 x BF16 accumulate in
 * float; quantized weights are dequantized block by block and dotted with F32
 * activations (activations are not quantized here, so results are the exact
 * dot of the dequantized weights, up to float rounding).
 */
#include <string.h>

#include "../tensor/quant-ref.h"
#include "kern.h"

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

/* Dequantize one block at a time into a stack buffer, then dot with floats. */
#define DEFINE_QUANT_REF(name, TYPE, block_t, QK)                                              \
	static void name##_to_float(const void *x, float *y, int64_t n)                        \
	{                                                                                      \
		dequantize_row_##name(x, y, n);                                                \
	}                                                                                      \
	static void vec_dot_##name##_f32(int64_t n, float *s, const void *vx, const void *vy) \
	{                                                                                      \
		const block_t *x = vx;                                                         \
		const float *y = vy;                                                           \
		float buf[QK], sum = 0;                                                        \
		for (int64_t ib = 0; ib < n / (QK); ib++) {                                    \
			dequantize_row_##name(&x[ib], buf, QK);                                \
			for (int j = 0; j < (QK); j++)                                         \
				sum += buf[j] * y[ib * (QK) + j];                              \
		}                                                                              \
		*s = sum;                                                                      \
	}

DEFINE_QUANT_REF(q4_0, HEARTH_TYPE_Q4_0, struct block_q4_0, QK4_0)
DEFINE_QUANT_REF(q4_1, HEARTH_TYPE_Q4_1, struct block_q4_1, QK4_1)
DEFINE_QUANT_REF(q5_0, HEARTH_TYPE_Q5_0, struct block_q5_0, QK5_0)
DEFINE_QUANT_REF(q5_1, HEARTH_TYPE_Q5_1, struct block_q5_1, QK5_1)
DEFINE_QUANT_REF(q8_0, HEARTH_TYPE_Q8_0, struct block_q8_0, QK8_0)
DEFINE_QUANT_REF(q2_K, HEARTH_TYPE_Q2_K, struct block_q2_K, QK_K)
DEFINE_QUANT_REF(q3_K, HEARTH_TYPE_Q3_K, struct block_q3_K, QK_K)
DEFINE_QUANT_REF(q4_K, HEARTH_TYPE_Q4_K, struct block_q4_K, QK_K)
DEFINE_QUANT_REF(q5_K, HEARTH_TYPE_Q5_K, struct block_q5_K, QK_K)
DEFINE_QUANT_REF(q6_K, HEARTH_TYPE_Q6_K, struct block_q6_K, QK_K)

#define QENTRY(name) { name##_to_float, HEARTH_TYPE_F32, f32_from_float, vec_dot_##name##_f32 }

static const struct qtype_ops ops_ref[HEARTH_TYPE_COUNT] = {
	[HEARTH_TYPE_F32] = { f32_to_float, HEARTH_TYPE_F32, f32_from_float, vec_dot_f32 },
	[HEARTH_TYPE_F16] = { f16_to_float, HEARTH_TYPE_F16, f16_from_float, vec_dot_f16 },
	[HEARTH_TYPE_BF16] = { bf16_to_float, HEARTH_TYPE_BF16, bf16_from_float, vec_dot_bf16 },
	[HEARTH_TYPE_Q4_0] = QENTRY(q4_0),
	[HEARTH_TYPE_Q4_1] = QENTRY(q4_1),
	[HEARTH_TYPE_Q5_0] = QENTRY(q5_0),
	[HEARTH_TYPE_Q5_1] = QENTRY(q5_1),
	[HEARTH_TYPE_Q8_0] = QENTRY(q8_0),
	[HEARTH_TYPE_Q2_K] = QENTRY(q2_K),
	[HEARTH_TYPE_Q3_K] = QENTRY(q3_K),
	[HEARTH_TYPE_Q4_K] = QENTRY(q4_K),
	[HEARTH_TYPE_Q5_K] = QENTRY(q5_K),
	[HEARTH_TYPE_Q6_K] = QENTRY(q6_K),
};

const struct qtype_ops *kern_ops(int type)
{
	if (type < 0 || type >= HEARTH_TYPE_COUNT || !ops_ref[type].vec_dot)
		return NULL;
	return &ops_ref[type];
}
