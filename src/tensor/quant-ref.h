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
 * Q4_0, Q4_1, Q5_0, Q5_1, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (the K-quants and MXFP4 as
 * llama.cpp's reference quantizers compute them), and the activation types Q8_1, Q8_K,
 * QTYPE_Q8_0P, QTYPE_Q8_1P, QTYPE_F16F (others: HEARTH_EUNSUPPORTED). */
int quantize_row_ref(int type, const float *x, void *y, int64_t n);
/* Quantizes one row of n floats as llama-quantize does with an importance
 * matrix: qw[i] (>= 0) weighs x[i]'s error. q4_0, q4_1, q5_0, q5_1 and the
 * K-quants have weighted quantizers; other types ignore qw (as q8_0 does in
 * llama.cpp); qw NULL is quantize_row_ref(). The 32-block types use the
 * row's mean square, so n must be exactly one row. */
int quantize_row_imat(int type, const float *x, void *y, int64_t n, const float *qw);
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
void dequantize_row_mxfp4(const struct block_mxfp4 *x, float *y, int64_t n);
/* An MXFP4 nibble's value (doubled E2M1: 0, +-1 .. +-12), and the float
 * 2^(e - 128) that multiplies it (half the E8M0 scale 2^(e - 127)). */
float mxfp4_value(int nibble);
float mxfp4_scale_half(uint8_t e);
/* Sub-block j's (0..7) 6-bit scale and min from a q4_K / q5_K block's 12 bytes. */
void dequantize_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m);
/* The 16 signed 6-bit scales of a q3_K block from its 12 bytes. */
void dequantize_q3_K_scales(const uint8_t packed[12], int8_t sc[16]);

#endif /* HEARTH_QUANT_REF_H */
