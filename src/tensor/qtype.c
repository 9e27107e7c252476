/* qtype.c - the type table and scalar half/bfloat16 conversions. */
#include <string.h>

#include "qtype.h"

static const struct qtype_info qtypes[HEARTH_TYPE_COUNT] = {
	[HEARTH_TYPE_F32] = { "f32", 1, sizeof(float), false, false },
	[HEARTH_TYPE_F16] = { "f16", 1, sizeof(hfp16), false, false },
	[HEARTH_TYPE_BF16] = { "bf16", 1, sizeof(hbf16), false, false },
	[HEARTH_TYPE_Q4_0] = { "q4_0", QK4_0, sizeof(struct block_q4_0), true, false },
	[HEARTH_TYPE_Q4_1] = { "q4_1", QK4_1, sizeof(struct block_q4_1), true, false },
	[HEARTH_TYPE_Q5_0] = { "q5_0", QK5_0, sizeof(struct block_q5_0), true, false },
	[HEARTH_TYPE_Q5_1] = { "q5_1", QK5_1, sizeof(struct block_q5_1), true, false },
	[HEARTH_TYPE_Q8_0] = { "q8_0", QK8_0, sizeof(struct block_q8_0), true, false },
	[HEARTH_TYPE_Q8_1] = { "q8_1", QK8_1, sizeof(struct block_q8_1), true, false },
	[HEARTH_TYPE_Q2_K] = { "q2_K", QK_K, sizeof(struct block_q2_K), true, false },
	[HEARTH_TYPE_Q3_K] = { "q3_K", QK_K, sizeof(struct block_q3_K), true, false },
	[HEARTH_TYPE_Q4_K] = { "q4_K", QK_K, sizeof(struct block_q4_K), true, false },
	[HEARTH_TYPE_Q5_K] = { "q5_K", QK_K, sizeof(struct block_q5_K), true, false },
	[HEARTH_TYPE_Q6_K] = { "q6_K", QK_K, sizeof(struct block_q6_K), true, false },
	[HEARTH_TYPE_Q8_K] = { "q8_K", QK_K, sizeof(struct block_q8_K), true, false },
	[HEARTH_TYPE_MXFP4] = { "mxfp4", QK_MXFP4, sizeof(struct block_mxfp4), true, false },
	[QTYPE_F16F] = { "f16f", 1, sizeof(float), false, true },
	[QTYPE_Q8_0P] = { "q8_0p", QK8_0, QK8_0 + sizeof(float) + sizeof(int32_t), true, true },
	[QTYPE_Q8_1P] = { "q8_1p", QK8_1, QK8_1 + 2 * sizeof(float), true, true },
};

const struct qtype_info *qtype_info(int type)
{
	if (type < 0 || type >= HEARTH_TYPE_COUNT || !qtypes[type].name)
		return NULL;
	return &qtypes[type];
}

const char *hearth_type_name(int type)
{
	const struct qtype_info *q = qtype_info(type);
	return q ? q->name : NULL;
}

size_t qtype_row_size(int type, int64_t n)
{
	const struct qtype_info *q = qtype_info(type);
	return (size_t)(n / q->blck_size) * q->type_size;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

float fp16_to_f32(hfp16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;

	if (exp == 0x1f) /* inf / nan */
		return bits_f32(sign | 0x7f800000 | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return bits_f32(sign);
		/* subnormal: man * 2^-24 */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

hfp16 f32_to_fp16(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t absx = x & 0x7fffffff;

	if (absx >= 0x7f800000) /* inf or nan */
		return (hfp16)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
	if (absx >= 0x477ff000) /* rounds to >= 65520: overflow to inf */
		return (hfp16)(sign | 0x7c00);
	if (absx < 0x38800000) { /* below the smallest normal half: subnormal or zero */
		float v = bits_f32(absx) * 16777216.0f; /* in units of 2^-24 */
		/* round half to even via the float adder */
		uint32_t m = (uint32_t)(v + 8388608.0f) - 8388608u;
		return (hfp16)(sign | m);
	}
	uint32_t mant_odd = (absx >> 13) & 1;
	absx += 0xfff + mant_odd; /* round to nearest even at bit 13 */
	return (hfp16)(sign | (((absx >> 13) - (112 << 10)) & 0x7fff));
}

hbf16 f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffff) > 0x7f800000) /* nan: keep it quiet */
		return (hbf16)((x >> 16) | 64);
	return (hbf16)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
