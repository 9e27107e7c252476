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

/* Five-bit values, 32 of each of 16 rows in 5 chunks of 64 bytes (q5_0,
 * q5_1 and each q5_K sub-block): chunk m (0..3) holds, in the 4 bytes of
 * row r, values 4m..4m+3 (5 bits each) with the high 3 bits of values
 * 16+4m..16+4m+3 above them; chunk 4, in byte i of row r, the low 2 bits of
 * values 16+4m+i as bits 2m, 2m+1. So that vector k (values 4k..4k+3 of all
 * 16 rows) is a mask of one chunk (k < 4), or a mask, a shift and a merge
 * with chunk 4 shifted. */
static inline void q5_pack_row(uint8_t *p, int r, const uint8_t v[32])
{
	for (int i = 0; i < 4; i++) {
		uint8_t lo = 0;
		for (int m = 0; m < 4; m++) {
			p[64 * m + 4 * r + i] = (uint8_t)(v[4 * m + i] | (v[16 + 4 * m + i] >> 2) << 5);
			lo |= (uint8_t)((v[16 + 4 * m + i] & 3) << (2 * m));
		}
		p[256 + 4 * r + i] = lo;
	}
}

/* Vector k (0..7) of the layout above at p: values 4k..4k+3 of 16 rows, 0..31. */
static inline __m512i q5_vector(const uint8_t *p, int k)
{
	const __m512i x = _mm512_loadu_si512((const void *)(p + 64 * (k % 4)));
	if (k < 4)
		return _mm512_and_si512(x, _mm512_set1_epi8(0x1f));
	/* high 3 bits from chunk k - 4 (masked first: the 16-bit shift brings in
	 * nothing), low 2 from chunk 4 */
	const __m512i lo = _mm512_loadu_si512((const void *)(p + 256));
	return _mm512_ternarylogic_epi32(_mm512_srli_epi16(_mm512_and_si512(x, _mm512_set1_epi8((char)0xe0)), 3),
					 k > 4 ? _mm512_srli_epi16(lo, 2 * (k - 4)) : lo, _mm512_set1_epi8(0x03),
					 0xf8); /* a | (b & c) */
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
