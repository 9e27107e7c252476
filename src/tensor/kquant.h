/* kquant.h - the K-quant quantizers (q2_K, q3_K, q4_K, q5_K, q6_K), with and
 * without importance weights; see kquant.c. */
#ifndef HEARTH_KQUANT_H
#define HEARTH_KQUANT_H

#include <stdint.h>

#include "qtype.h"

/* Quantizes n floats (a multiple of QK_K) of x into K-quant type `type`.
 * qw NULL: llama.cpp's reference quantizer. qw non-NULL: its weighted one,
 * with qw[i] the importance of x[i] (n values, >= 0). Returns 0, or
 * HEARTH_EUNSUPPORTED for a type that is not a K-quant. */
int kquant_quantize(int type, const float *x, void *y, int64_t n, const float *qw);

#endif /* HEARTH_KQUANT_H */
