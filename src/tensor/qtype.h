/* qtype.h - tensor element types: block layouts and the type table.
 *
 * Block layouts are exactly those of GGUF files written by llama.cpp's quantizer
 * (ggml-common.h), pinned by _Static_assert. Quantized types store ne[0]
 * elements of a row as ne[0]/blck_size consecutive blocks.
 */
#ifndef HEARTH_QTYPE_H
#define HEARTH_QTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

typedef uint16_t hfp16; /* IEEE half, raw bits */
typedef uint16_t hbf16; /* bfloat16, raw bits */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define QK_MXFP4 32
#define K_SCALE_SIZE 12

struct block_q4_0 { hfp16 d; uint8_t qs[QK4_0 / 2]; };
struct block_q4_1 { hfp16 d, m; uint8_t qs[QK4_1 / 2]; };
struct block_q5_0 { hfp16 d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct block_q5_1 { hfp16 d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct block_q8_0 { hfp16 d; int8_t qs[QK8_0]; };
struct block_q8_1 { hfp16 d, s; int8_t qs[QK8_1]; };
struct block_q2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; hfp16 d, dmin; };
struct block_q3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; hfp16 d; };
struct block_q4_K { hfp16 d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct block_q5_K { hfp16 d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct block_q6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; hfp16 d; };
struct block_q8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
/* OCP microscaling FP4: a shared power-of-two scale (E8M0 exponent e) and 32
 * E2M1 values as nibbles (elements j and j + 16 in byte j, low nibble first) */
struct block_mxfp4 { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; };

_Static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "q4_0 block layout");
_Static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "q4_1 block layout");
_Static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "q5_0 block layout");
_Static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "q5_1 block layout");
_Static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "q8_0 block layout");
_Static_assert(sizeof(struct block_q8_1) == 4 + QK8_1, "q8_1 block layout");
_Static_assert(sizeof(struct block_q2_K) == QK_K / 16 + QK_K / 4 + 4, "q2_K block layout");
_Static_assert(sizeof(struct block_q3_K) == QK_K / 8 + QK_K / 4 + 12 + 2, "q3_K block layout");
_Static_assert(sizeof(struct block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "q4_K block layout");
_Static_assert(sizeof(struct block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2, "q5_K block layout");
_Static_assert(sizeof(struct block_q6_K) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "q6_K block layout");
_Static_assert(sizeof(struct block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "q8_K block layout");
_Static_assert(sizeof(struct block_mxfp4) == 1 + QK_MXFP4 / 2, "mxfp4 block layout");

/* Activation layouts used only inside hearth (never in files): numbered in
 * GGML's gaps (36-38: types GGML removed, never valid in a file). */
#define QTYPE_F16F 38  /* f16 activations held as floats: each value rounded to f16,
			* stored as f32 (kernels broadcast them without converting) */
#define QTYPE_Q8_0P 36 /* q8_0 planar: a row's int8 values, then its block scales as
			* floats, then each block's sum of values as int32 */
#define QTYPE_Q8_1P 37 /* q8_1 planar: a row's int8 values, then its block scales as
			* floats, then each block's s (d * sum of values, rounded to
			* f16 as q8_1's) as floats */

struct qtype_info {
	const char *name;  /* NULL: not a type hearth knows */
	int blck_size;     /* elements per block */
	size_t type_size;  /* bytes per block */
	bool is_quantized;
	bool internal;     /* not a file type: GGUF tensors may not use it */
};

/* The entry for type, or NULL when type is outside the table or unknown. */
const struct qtype_info *qtype_info(int type);
/* Bytes of a row of n elements (n a multiple of the block size). */
size_t qtype_row_size(int type, int64_t n);

/* half/bfloat16 conversions (exact, round to nearest even). */
float fp16_to_f32(hfp16 h);
hfp16 f32_to_fp16(float f);
static inline float bf16_to_f32(hbf16 h)
{
	union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
	return v.f;
}
hbf16 f32_to_bf16(float f);

#endif /* HEARTH_QTYPE_H */
