/* quant-ref.h - scalar reference quantize / dequantize / dot: the oracle that
 * every faster kernel is tested against. Portable C, no intrinsics. */
#ifndef HEARTH_QUANT_REF_H
#define HEARTH_QUANT_REF_H

#include <stdint.h>

#include "qtype.h"

/* Dequantizes n elements (a multiple of the block size) of type into y.
 * Returns 0, or HEARTH_EUNSUPPORTED for a type without a dequantizer. */
int dequantize_row_ref(int type, const void *x, float *y, int64_t n);
/* Quantizes n floats into type. Supported targets: F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (the K-quants as
 * llama.cpp's reference quantizers compute them), and the activation types Q8_1, Q8_K,
 * QTYPE_Q8_0P, QTYPE_Q8_1P, QTYPE_F16F (others: HEARTH_EUNSUPPORTED). */
int quantize_row_ref(int type, const float *x, void *y, int64_t n);
/* True when quantize_row_ref() supports type. */
int quantize_supported(int type);

void dequantize_row_q4_0(const struct block_q4_0 *x, float *y, int64_t n);
void dequantize_row_q4_1(const struct block_q4_1 *x, float *y, int64_t n);
void dequantize_row_q5_0(const struct block_q5_0 *x, float *y, int64_t n);
void dequantize_row_q5_1(const struct block_q5_1 *x, float *y, int64_t n);
void dequantize_row_q8_0(const struct block_q8_0 *x, float *y, int64_t n);
void dequantize_row_q8_1(const struct block_q8_1 *x, float *y, int64_t n);
void dequantize_row_q8_K(const struct block_q8_K *x, float *y, int64_t n);
void dequantize_row_q2_K(const struct block_q2_K *x, float *y, int64_t n);
void dequantize_row_q3_K(const struct block_q3_K *x, float *y, int64_t n);
void dequantize_row_q4_K(const struct block_q4_K *x, float *y, int64_t n);
void dequantize_row_q5_K(const struct block_q5_K *x, float *y, int64_t n);
void dequantize_row_q6_K(const struct block_q6_K *x, float *y, int64_t n);

#endif /* HEARTH_QUANT_REF_H */
