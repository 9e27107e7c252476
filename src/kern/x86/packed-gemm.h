/*
 * packed-gemm.h - the loops around the tiles of layouts that keep 16 weight
 * rows side by side (avx512vnni.c, avx512vnni-kquants.c, avx512bf16.c):
 * groups of 16 rows, tokens up to TMAX at a time, each tile instantiated with
 * a constant token count so that its accumulators live in registers; and what
 * the tiles share. For files compiled with AVX-512 (F) at least.
 */
#ifndef HEARTH_PACKED_GEMM_H
#define HEARTH_PACKED_GEMM_H

#include <immintrin.h>
#include <stdint.h>

#define PACK_ROWS 16 /* as the packed loops take them */
#define PACK_SCALES (PACK_ROWS * 2) /* bytes of the 16 rows' f16 block scales, as in the file */

/* Bytes ahead of the packed weights being read that a tile asks for: what
 * must be in flight for the arithmetic of a few tokens (batched decoding,
 * short prompts) to overlap the fetching instead of waiting for it. */
#define PREFETCH_AHEAD 4096

static inline void prefetch_ahead(const uint8_t *p, int64_t bytes)
{
	for (int64_t o = 0; o < bytes; o += 64)
		_mm_prefetch((const char *)(p + PREFETCH_AHEAD + o), _MM_HINT_T0);
}

/* Independent dpbusd accumulators per token: a chain of dependent dpbusd
 * runs at one per latency (several cycles), so with few tokens in a tile
 * (decoding) the sums are split over chains and added at the end. */
#define CHAINS_MAX 4
static inline int chains(int T) { return T >= 4 ? 1 : T == 1 ? 4 : 2; }

static inline __m512i sum_chains(const __m512i *acc, int n)
{
	__m512i s = acc[0];
	for (int c = 1; c < n; c++)
		s = _mm512_add_epi32(s, acc[c]);
	return s;
}

/* tile(T, ...) with T a constant: T_ in 1..8. */
#define TILE_CALL_8(T_, tile, ...)                          \
	switch (T_) {                                        \
	case 8: tile(8, __VA_ARGS__); break;                 \
	case 7: tile(7, __VA_ARGS__); break;                 \
	case 6: tile(6, __VA_ARGS__); break;                 \
	case 5: tile(5, __VA_ARGS__); break;                 \
	case 4: tile(4, __VA_ARGS__); break;                 \
	case 3: tile(3, __VA_ARGS__); break;                 \
	case 2: tile(2, __VA_ARGS__); break;                 \
	default: tile(1, __VA_ARGS__); break;                \
	}
/* tile(T, ...) with T a constant: T_ in 1..4. */
#define TILE_CALL_4(T_, tile, ...)                          \
	switch (T_) {                                        \
	case 4: tile(4, __VA_ARGS__); break;                 \
	case 3: tile(3, __VA_ARGS__); break;                 \
	case 2: tile(2, __VA_ARGS__); break;                 \
	default: tile(1, __VA_ARGS__); break;                \
	}

/* name(n, packed, r0, r1, a, a_row, n_tok, y, y_stride): rows r0..r1 (multiples
 * of 16) of a packed matrix whose groups of 16 rows are group_bytes(n) apart,
 * against n_tok activation rows of type act_t (a_row bytes apart), into y.
 * tile(T, n, group, act, out) takes one group and T tokens. */
#define DEFINE_PACKED_GEMM(name, group_bytes, act_t, TMAX, tile)                                             \
	static void name(int64_t n, const void *packed, int64_t r0, int64_t r1, const void *a, size_t a_row,  \
			 int n_tok, float *y, size_t y_stride)                                                  \
	{                                                                                                     \
		for (int64_t g = r0 / 16; g < r1 / 16; g++) {                                                 \
			const uint8_t *P = (const uint8_t *)packed + (size_t)g * (size_t)(group_bytes(n));    \
			for (int t0 = 0; t0 < n_tok; t0 += (TMAX)) {                                          \
				const int T = n_tok - t0 < (TMAX) ? n_tok - t0 : (TMAX);                      \
				act_t act[TMAX];                                                              \
				float *out[TMAX];                                                             \
				for (int t = 0; t < T; t++) {                                                 \
					act[t] = (act_t)((const char *)a + (size_t)(t0 + t) * a_row);         \
					out[t] = y + (size_t)(t0 + t) * y_stride + (size_t)(g * 16);          \
				}                                                                             \
				TILE_CALL_##TMAX(T, tile, n, P, act, out)                                     \
			}                                                                                     \
		}                                                                                             \
	}

#endif /* HEARTH_PACKED_GEMM_H */
