/*
 * avx512bf16.c - bf16 weights on CPUs with AVX-512 BF16: vdpbf16ps multiplies
 * pairs of bfloat16 values and adds both products to float sums, 32 products
 * per instruction. This file alone is compiled with those flags; kern.c
 * installs it only where CPUID reports AVX512_BF16, on top of the AVX-512
 * VNNI kernels.
 *
 * Layout, per group of 16 rows: for each pair of columns (k, k + 1), each
 * row's two values (4 bytes), so one 64-byte load holds a column pair of 16
 * rows and one vdpbf16ps against the broadcast activation pair adds it to 16
 * sums. The same bytes as the file (an odd last column is padded with zero).
 * Activations are bf16 rows, as for the other bf16 kernels. Each token keeps
 * two chains (even and odd column pairs) whatever the tile's token count, so
 * batching does not change its sums.
 */
#include <immintrin.h>
#include <string.h>

#include "../../tensor/qtype.h"
#include "../kern.h"
#include "packed-gemm.h"

static size_t pack_size_bf16(int64_t rows, int64_t n) { return (size_t)rows * (size_t)((n + 1) / 2 * 2) * sizeof(hbf16); }

static void pack_bf16(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const hbf16 *w = vw;
	hbf16 *out = vout;
	const int64_t pairs = (n + 1) / 2;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t p = 0; p < pairs; p++)
			for (int r = 0; r < PACK_ROWS; r++)
				for (int e = 0; e < 2; e++) {
					const int64_t k = 2 * p + e;
					out[(((size_t)g * (size_t)pairs + (size_t)p) * PACK_ROWS + (size_t)r) * 2 + (size_t)e] =
						k < n ? w[(size_t)(PACK_ROWS * g + r) * (size_t)n + (size_t)k] : 0;
				}
}

/* The activation pair (k, k + 1) as one 32-bit word; past the row's end, zero. */
static inline int32_t act_pair(const hbf16 *a, int64_t k, int64_t n)
{
	uint32_t lo = a[k], hi = k + 1 < n ? a[k + 1] : 0;
	return (int32_t)(lo | hi << 16);
}

static inline __attribute__((always_inline)) void bf16_tile(int T, int64_t n, const hbf16 *P, const hbf16 *const *act,
							    float *const *out)
{
	const int64_t pairs = (n + 1) / 2;
	__m512 acc[8][2]; /* up to 8 tokens a tile */
	for (int t = 0; t < T; t++)
		acc[t][0] = acc[t][1] = _mm512_setzero_ps();
	int64_t p = 0;
	for (; p + 2 <= pairs - 1; p += 2) { /* whole pairs, two at a time; the last pair below */
		const __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void *)(P + (size_t)p * 2 * PACK_ROWS));
		const __m512bh w1 = (__m512bh)_mm512_loadu_si512((const void *)(P + (size_t)(p + 1) * 2 * PACK_ROWS));
		for (int t = 0; t < T; t++) {
			int32_t a0, a1;
			memcpy(&a0, act[t] + 2 * p, 4);
			memcpy(&a1, act[t] + 2 * p + 2, 4);
			acc[t][0] = _mm512_dpbf16_ps(acc[t][0], w0, (__m512bh)_mm512_set1_epi32(a0));
			acc[t][1] = _mm512_dpbf16_ps(acc[t][1], w1, (__m512bh)_mm512_set1_epi32(a1));
		}
	}
	for (; p < pairs; p++) { /* the rest, the last pair possibly half past the row */
		const __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void *)(P + (size_t)p * 2 * PACK_ROWS));
		for (int t = 0; t < T; t++)
			acc[t][p % 2] = _mm512_dpbf16_ps(acc[t][p % 2], w0, (__m512bh)_mm512_set1_epi32(act_pair(act[t], 2 * p, n)));
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], _mm512_add_ps(acc[t][0], acc[t][1]));
}

#define bf16_tile_bytes(T, n, P, act, out) bf16_tile(T, n, (const hbf16 *)(P), act, out)
#define bf16_group(n) (((n) + 1) / 2 * 2 * PACK_ROWS * (int64_t)sizeof(hbf16))
DEFINE_PACKED_GEMM(gemm_packed_bf16, bf16_group, const hbf16 *, 8, bf16_tile_bytes)

void kern_register_avx512bf16(struct qtype_ops *ops)
{
	ops[HEARTH_TYPE_BF16].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_BF16].pack_size = pack_size_bf16;
	ops[HEARTH_TYPE_BF16].pack = pack_bf16;
	ops[HEARTH_TYPE_BF16].gemm_packed = gemm_packed_bf16;
}
