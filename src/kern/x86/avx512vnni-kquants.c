/*
 * avx512vnni-kquants.c - the K-quant weights (256-value blocks, q8_K
 * activations) repacked 16 rows side by side for AVX-512 VNNI, as
 * avx512vnni.c does for the 32-value types: each 64-byte vector of values
 * holds 4 consecutive values of each of 16 rows in 16 int32 lanes, so that
 * dpbusd against 4 activation bytes (broadcast) sums 16 rows at once, and the
 * sub-block scales, the minimums and the block scale are applied to 16 rows
 * per instruction. Values are unsigned (dpbusd wants one side so); offsets and
 * minimums come back through q8_K's sums of 16 activations (bsums).
 * Compiled with avx512vnni.c's flags; kern.c installs these over the AVX2
 * single-row dots on the same CPUs.
 */
#include <immintrin.h>
#include <string.h>

#include "../../tensor/qtype.h"
#include "../kern.h"
#include "packed-gemm.h"

/* ---- q4_K repacked: 16 rows side by side --------------------------------------
 *
 * Per group of 16 rows and per 256-value block: the rows' d and dmin (f16),
 * their 8 sub-block scales as bytes ([sub-block][row]) and mins as bytes in
 * pairs of sub-blocks ([pair][row][2], for one dpwssd per pair), then
 * per sub-block 4 chunks laid out as q4_0's packed chunks. Activations stay
 * q8_K. Per sub-block j, dpbusd gives S_j = sum(q * y) for 16 rows at once;
 * the block's value is d * dy * sum_j sc_j S_j - dmin * dy * sum_j m_j Y_j,
 * with Y_j the activations' sum over the sub-block (from q8_K's bsums).
 */
#define PACKK_BLOCK (2 * PACK_SCALES + 2 * 8 * PACK_ROWS + 8 * 4 * 64) /* 37 cache lines */

static size_t pack_size_q4_K(int64_t rows, int64_t n) { return (size_t)(rows / PACK_ROWS) * (size_t)(n / QK_K) * PACKK_BLOCK; }

/* Row r's d, dmin, sub-block scales and mins (q4_K's and q5_K's 12 bytes
 * of 6-bit values) into the first 320 bytes of a packed block. */
static void pack_k4_header(uint8_t *pb, int r, const hfp16 *d, const hfp16 *dmin, const uint8_t q[12])
{
	memcpy(pb + 2 * r, d, 2);
	memcpy(pb + 32 + 2 * r, dmin, 2);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		if (j < 4) {
			sc = q[j] & 63;
			m = q[j + 4] & 63;
		} else {
			sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
			m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
		}
		pb[64 + 16 * j + r] = sc;
		pb[192 + 32 * (j / 2) + 2 * r + j % 2] = m; /* mins in pairs of sub-blocks */
	}
}

static void pack_q4_K(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / QK_K;
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * PACKK_BLOCK;
			for (int r = 0; r < PACK_ROWS; r++) {
				const struct block_q4_K *x = (const struct block_q4_K *)vw + (size_t)(PACK_ROWS * g + r) * (size_t)nb + b;
				pack_k4_header(pb, r, &x->d, &x->dmin, x->scales);
				for (int j = 0; j < 8; j++) {
					/* the 32 values of sub-block j: low or high nibbles of qs[32 (j/2) ...] */
					uint8_t v[32];
					for (int l = 0; l < 32; l++)
						v[l] = j % 2 ? x->qs[32 * (j / 2) + l] >> 4 : x->qs[32 * (j / 2) + l] & 0xf;
					for (int c = 0; c < 4; c++)
						for (int i = 0; i < 4; i++)
							pb[320 + 256 * j + 64 * c + 4 * r + i] = (uint8_t)(v[8 * c + i] | (v[8 * c + 4 + i] << 4));
				}
			}
		}
}

/* The minimums' sums of q4_K and q5_K block b for T tokens: per row
 * sum_j m_j Y_j, two sub-blocks per dpwssd (16-bit pairs; Y_j, a sum of 32
 * activations, fits). */
static inline __attribute__((always_inline)) void k4_min_sums(int T, const uint8_t *pb, const struct block_q8_K *const *yb,
							      int64_t b, __m512i *imin)
{
	for (int t = 0; t < T; t++)
		imin[t] = _mm512_setzero_si512();
	for (int jp = 0; jp < 4; jp++) {
		const __m512i mn = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(pb + 192 + 32 * jp)));
		for (int t = 0; t < T; t++) {
			const int16_t *bs = yb[t][b].bsums + 4 * jp;
			const uint32_t y2 = (uint16_t)(bs[0] + bs[1]) | (uint32_t)(uint16_t)(bs[2] + bs[3]) << 16;
			imin[t] = _mm512_dpwssd_epi32(imin[t], mn, _mm512_set1_epi32((int32_t)y2));
		}
	}
}

/* The end of q4_K / q5_K block b for T tokens: facc += d d_y isum - dmin d_y
 * (the minimums' sums). */
static inline __attribute__((always_inline)) void k4_block_end(int T, const uint8_t *pb,
							       const struct block_q8_K *const *yb, int64_t b,
							       const __m512i *isum, __m512 *facc)
{
	__m512i imin[4];
	k4_min_sums(T, pb, yb, b, imin);
	const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
	const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pb + 32)));
	for (int t = 0; t < T; t++) {
		const __m512 dy = _mm512_set1_ps(yb[t][b].d);
		facc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[t]), facc[t]);
		facc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(imin[t]), facc[t]);
	}
}

static inline __attribute__((always_inline)) void packedk_tile(int T, int64_t nb, const uint8_t *P,
							       const struct block_q8_K *const *yb, float *const *out)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f), mf0 = _mm512_set1_epi8((char)0xf0);
	__m512 facc[4];
	for (int t = 0; t < T; t++)
		facc[t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *pb = P + (size_t)b * PACKK_BLOCK;
		prefetch_ahead(pb, PACKK_BLOCK);
		/* per row, in integers: sum_j sc_j S_j and sum_j m_j Y_j (at most
		 * 8 * 63 * 32 * 15 * 127 and 8 * 63 * 32 * 127: no overflow) */
		__m512i isum[4];
		for (int t = 0; t < T; t++)
			isum[t] = _mm512_setzero_si512();
		for (int j = 0; j < 8; j++) {
			/* chains: low nibbles, and high nibbles kept in place (16 times
			 * their value, so no shift per vector; one per sub-block) */
			__m512i lo[4][2], hi[4][2];
			for (int t = 0; t < T; t++)
				lo[t][0] = lo[t][1] = hi[t][0] = hi[t][1] = _mm512_setzero_si512();
			for (int c = 0; c < 4; c++) {
				const __m512i x = _mm512_loadu_si512((const void *)(pb + 320 + 256 * j + 64 * c));
				const __m512i xl = _mm512_and_si512(x, m4), xh = _mm512_and_si512(x, mf0);
				for (int t = 0; t < T; t++) {
					int32_t f0, f1;
					const int k = T >= 4 ? 0 : c & 1;
					memcpy(&f0, yb[t][b].qs + 32 * j + 8 * c, 4);
					memcpy(&f1, yb[t][b].qs + 32 * j + 8 * c + 4, 4);
					lo[t][k] = _mm512_dpbusd_epi32(lo[t][k], xl, _mm512_set1_epi32(f0));
					hi[t][k] = _mm512_dpbusd_epi32(hi[t][k], xh, _mm512_set1_epi32(f1));
				}
			}
			const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(pb + 64 + 16 * j)));
			for (int t = 0; t < T; t++) {
				const __m512i S = _mm512_add_epi32(_mm512_add_epi32(lo[t][0], lo[t][1]),
								   _mm512_srai_epi32(_mm512_add_epi32(hi[t][0], hi[t][1]), 4));
				isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(S, sc));
			}
		}
		k4_block_end(T, pb, yb, b, isum, facc);
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], facc[t]);
}

#define q4_K_tile(T, n, P, act, out) packedk_tile(T, (n) / QK_K, P, act, out)
#define q4_K_group(n) ((n) / QK_K * PACKK_BLOCK)
DEFINE_PACKED_GEMM(gemm_packed_q4_K, q4_K_group, const struct block_q8_K *, 4, q4_K_tile)

/* ---- q5_K repacked: 16 rows side by side --------------------------------------
 *
 * Per group of 16 rows and per 256-value block: q4_K's first 320 bytes (d,
 * dmin, sub-block scales and mins), then per sub-block of 32 values the 5
 * chunks of 5-bit values of packed-gemm.h (q5_pack_row). 2.3% more bytes
 * than the file's 16 x 176 (the scales and mins as bytes). The block's value
 * is d * dy * sum_j sc_j S_j - dmin * dy * sum_j m_j Y_j, as q4_K's.
 */
#define PACK5K_BLOCK (2 * PACK_SCALES + 2 * 8 * PACK_ROWS + 8 * 5 * 64) /* 45 cache lines */

static size_t pack_size_q5_K(int64_t rows, int64_t n) { return (size_t)(rows / PACK_ROWS) * (size_t)(n / QK_K) * PACK5K_BLOCK; }

static void pack_q5_K(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / QK_K;
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * PACK5K_BLOCK;
			for (int r = 0; r < PACK_ROWS; r++) {
				const struct block_q5_K *x = (const struct block_q5_K *)vw + (size_t)(PACK_ROWS * g + r) * (size_t)nb + b;
				pack_k4_header(pb, r, &x->d, &x->dmin, x->scales);
				for (int j = 0; j < 8; j++) {
					/* sub-block j: nibbles of qs[32 (j/2) ...] (low for even j), fifth bits j of qh */
					uint8_t v[32];
					for (int l = 0; l < 32; l++) {
						const uint8_t q = x->qs[32 * (j / 2) + l];
						v[l] = (uint8_t)((j % 2 ? q >> 4 : q & 0xf) | ((x->qh[l] >> j) & 1) << 4);
					}
					q5_pack_row(pb + 320 + 320 * j, r, v);
				}
			}
		}
}

static inline __attribute__((always_inline)) void packed5k_tile(int T, int64_t nb, const uint8_t *P,
								const struct block_q8_K *const *yb, float *const *out)
{
	const int C = chains(T);
	__m512 facc[4];
	for (int t = 0; t < T; t++)
		facc[t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *pb = P + (size_t)b * PACK5K_BLOCK;
		prefetch_ahead(pb, PACK5K_BLOCK);
		/* per row, in integers: sum_j sc_j S_j (at most 8 * 63 * 32 * 31 * 128: no overflow) */
		__m512i isum[4];
		for (int t = 0; t < T; t++)
			isum[t] = _mm512_setzero_si512();
		for (int j = 0; j < 8; j++) {
			__m512i acc[4][CHAINS_MAX];
			for (int t = 0; t < T; t++)
				for (int c = 0; c < C; c++)
					acc[t][c] = _mm512_setzero_si512();
			for (int k = 0; k < 8; k++) { /* values 4k..4k+3 of sub-block j, of 16 rows */
				const __m512i w = q5_vector(pb + 320 + 320 * j, k);
				for (int t = 0; t < T; t++) {
					int32_t four;
					memcpy(&four, yb[t][b].qs + 32 * j + 4 * k, 4);
					acc[t][k % C] = _mm512_dpbusd_epi32(acc[t][k % C], w, _mm512_set1_epi32(four));
				}
			}
			const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(pb + 64 + 16 * j)));
			for (int t = 0; t < T; t++)
				isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sum_chains(acc[t], C), sc));
		}
		k4_block_end(T, pb, yb, b, isum, facc);
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], facc[t]);
}

#define q5_K_tile(T, n, P, act, out) packed5k_tile(T, (n) / QK_K, P, act, out)
#define q5_K_group(n) ((n) / QK_K * PACK5K_BLOCK)
DEFINE_PACKED_GEMM(gemm_packed_q5_K, q5_K_group, const struct block_q8_K *, 4, q5_K_tile)

/* ---- q6_K repacked: 16 rows side by side --------------------------------------
 *
 * 16 sub-blocks of 16 values, each value 6 bits (4 low bits in ql, 2 high in
 * qh) standing for value - 32, each sub-block with an int8 scale. The tile
 * takes the values unsigned, u = 0..63: per sub-block S = sum(u y), and the
 * block is d dy sum_sb sc_sb (S_sb - 32 Y_sb), with Y_sb the activations'
 * sum over the sub-block (q8_K's bsums).
 *
 * Per group of 16 rows and per 256-value block: the rows' d (f16); the
 * sub-block scales as bytes in pairs of sub-blocks ([pair][row][2], as
 * q3_K's); then per pair of sub-blocks (32 values, vectors k = 0..7 of values
 * 4k..4k+3) six chunks, in the 4 bytes of each row:
 *   chunk m (0..3): u(k=m) | high 2 bits of u(4+m) << 6
 *   chunk 4: low 4 bits of u(4) | low 4 bits of u(5) << 4
 *   chunk 5: low 4 bits of u(6) | low 4 bits of u(7) << 4
 * so that vectors 0..3 are a mask of one chunk, 4..7 a nibble merged with a
 * shifted top. The file's bytes (16 x 210).
 *
 * S can reach 16 * 63 * 128 (18 bits), too wide for q3_K's 16-bit pairs; so
 * each S goes into dpwssd as the pair (S & 0xff, S >> 8) (one byte shuffle)
 * against the scale pair (sc, 256 sc), two sub-blocks a pair of dpwssd; the
 * offsets sum_sb sc_sb Y_sb by dpwssd of the scale pair with the Y pair.
 */
#define PACK6_BLOCK (PACK_SCALES + 16 * PACK_ROWS + 8 * 6 * 64) /* the file's 16 x 210 bytes */

static size_t pack_size_q6_K(int64_t rows, int64_t n) { return (size_t)(rows / PACK_ROWS) * (size_t)(n / QK_K) * PACK6_BLOCK; }

/* Six chunks of 6-bit values (the layout above) for row r: v the pair's 32 values. */
static void pack_q6_pair(uint8_t *p, int r, const uint8_t v[32])
{
	for (int i = 0; i < 4; i++) {
		const uint8_t *u = v + i; /* u[4 k]: value 4k + i, of vector k */
		for (int m = 0; m < 4; m++)
			p[64 * m + 4 * r + i] = (uint8_t)(u[4 * m] | (u[16 + 4 * m] >> 4) << 6);
		p[256 + 4 * r + i] = (uint8_t)((u[16] & 0xf) | (u[20] & 0xf) << 4);
		p[320 + 4 * r + i] = (uint8_t)((u[24] & 0xf) | (u[28] & 0xf) << 4);
	}
}

static void pack_q6_K(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / QK_K;
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * PACK6_BLOCK;
			for (int r = 0; r < PACK_ROWS; r++) {
				const struct block_q6_K *x = (const struct block_q6_K *)vw + (size_t)(PACK_ROWS * g + r) * (size_t)nb + b;
				uint8_t u[QK_K];
				memcpy(pb + 2 * r, &x->d, 2);
				for (int sb = 0; sb < 16; sb++)
					pb[PACK_SCALES + 32 * (sb / 2) + 2 * r + sb % 2] = (uint8_t)x->scales[sb];
				for (int c = 0; c < 2; c++) /* the file's layout, as dequantize_row_q6_K reads it */
					for (int l = 0; l < 32; l++) {
						const uint8_t *ql = x->ql + 64 * c, *qh = x->qh + 32 * c;
						u[128 * c + l] = (uint8_t)((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4));
						u[128 * c + l + 32] = (uint8_t)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4));
						u[128 * c + l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
						u[128 * c + l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
					}
				for (int pr = 0; pr < 8; pr++)
					pack_q6_pair(pb + PACK_SCALES + 256 + 384 * pr, r, u + 32 * pr);
			}
		}
}

/* Vector k (0..7) of a pair's six chunks at p: values 4k..4k+3 of 16 rows, 0..63. */
static inline __m512i q6_vector(const uint8_t *p, int k)
{
	const __m512i x = _mm512_loadu_si512((const void *)(p + 64 * (k % 4)));
	if (k < 4)
		return _mm512_and_si512(x, _mm512_set1_epi8(0x3f));
	/* the top 2 bits to bits 4-5 (masked first: the 16-bit shift brings in
	 * nothing), the low 4 from a nibble of chunk 4 or 5 */
	const __m512i hi = _mm512_srli_epi16(_mm512_and_si512(x, _mm512_set1_epi8((char)0xc0)), 2);
	const __m512i nib = _mm512_loadu_si512((const void *)(p + (k < 6 ? 256 : 320)));
	return _mm512_ternarylogic_epi32(hi, k % 2 ? _mm512_srli_epi16(nib, 4) : nib, _mm512_set1_epi8(0x0f),
					 0xf8); /* a | (b & c) */
}

static inline __attribute__((always_inline)) void packed6_tile(int T, int64_t nb, const uint8_t *P,
							       const struct block_q8_K *const *yb, float *const *out)
{
	/* per 32-bit lane: bytes (s0, s1, s2, s3) of S to the 16-bit pair (s0, s1 | s2 << 8) = (S & 0xff, S >> 8);
	 * the scale pair (c0, c1) as 16-bit to (c0, c0 << 8) and (c1, c1 << 8) */
	const __m512i split = _mm512_broadcast_i32x4(_mm_setr_epi32(0x02018000, 0x06058004, 0x0a098008, 0x0e0d800c));
	const __m512i dup0 = _mm512_broadcast_i32x4(_mm_setr_epi32(0x00800100, 0x04800504, 0x08800908, 0x0c800d0c));
	const __m512i dup1 = _mm512_broadcast_i32x4(_mm_setr_epi32(0x02800302, 0x06800706, 0x0a800b0a, 0x0e800f0e));
	/* independent dpbusd chains per sub-block and token: with one or two tokens
	 * (decoding) a single chain's latency, not the weights' bytes, sets the pace */
	const int C = T == 1 ? CHAINS_MAX : T == 2 ? 2 : 1;
	__m512 facc[4];
	for (int t = 0; t < T; t++)
		facc[t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *pb = P + (size_t)b * PACK6_BLOCK;
		prefetch_ahead(pb, PACK6_BLOCK);
		/* per row: sum_sb sc_sb S_sb and sum_sb sc_sb Y_sb (at most 16 * 128 * 129024: no overflow) */
		__m512i isum[4][2], ioff[4]; /* isum: the two sub-blocks of a pair apart when C > 1 */
		for (int t = 0; t < T; t++)
			isum[t][0] = isum[t][1] = ioff[t] = _mm512_setzero_si512();
		for (int pr = 0; pr < 8; pr++) {
			const uint8_t *pv = pb + PACK_SCALES + 256 + 384 * pr;
			__m512i S[4][2][CHAINS_MAX]; /* per token, the pair's two sub-blocks: C chains each */
			for (int t = 0; t < T; t++)
				for (int c = 0; c < C; c++)
					S[t][0][c] = S[t][1][c] = _mm512_setzero_si512();
			for (int k = 0; k < 8; k++) {
				const __m512i w = q6_vector(pv, k);
				for (int t = 0; t < T; t++) {
					int32_t four;
					memcpy(&four, yb[t][b].qs + 32 * pr + 4 * k, 4);
					S[t][k / 4][k % C] = _mm512_dpbusd_epi32(S[t][k / 4][k % C], w, _mm512_set1_epi32(four));
				}
			}
			const __m512i sc = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(pb + PACK_SCALES + 32 * pr)));
			const __m512i sc0 = _mm512_shuffle_epi8(sc, dup0), sc1 = _mm512_shuffle_epi8(sc, dup1);
			for (int t = 0; t < T; t++) {
				int32_t y2; /* the pair's Y, as two 16-bit sums */
				memcpy(&y2, yb[t][b].bsums + 2 * pr, 4);
				const __m512i S0 = sum_chains(S[t][0], C);
				const __m512i S1 = sum_chains(S[t][1], C);
				isum[t][0] = _mm512_dpwssd_epi32(isum[t][0], _mm512_shuffle_epi8(S0, split), sc0);
				isum[t][C > 1] = _mm512_dpwssd_epi32(isum[t][C > 1], _mm512_shuffle_epi8(S1, split), sc1);
				ioff[t] = _mm512_dpwssd_epi32(ioff[t], sc, _mm512_set1_epi32(y2));
			}
		}
		const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
		for (int t = 0; t < T; t++) { /* the offsets are -32 each */
			const __m512i is = C > 1 ? _mm512_add_epi32(isum[t][0], isum[t][1]) : isum[t][0];
			const __m512i tot = _mm512_sub_epi32(is, _mm512_slli_epi32(ioff[t], 5));
			facc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(yb[t][b].d)), _mm512_cvtepi32_ps(tot), facc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], facc[t]);
}

#define q6_K_tile(T, n, P, act, out) packed6_tile(T, (n) / QK_K, P, act, out)
#define q6_K_group(n) ((n) / QK_K * PACK6_BLOCK)
DEFINE_PACKED_GEMM(gemm_packed_q6_K, q6_K_group, const struct block_q8_K *, 4, q6_K_tile)

/* ---- q3_K and q2_K repacked: 16 rows side by side -----------------------------
 *
 * q3_K: 16 sub-blocks of 16 values, each value 2 bits plus a high bit (hmask)
 * whose absence subtracts 4, each sub-block with a signed 6-bit scale. The
 * tile takes the values unsigned, u = 0..7 (value + 4): per sub-block
 * S = sum(u y), and the block is d dy sum_sb sc_sb (S_sb - 4 Y_sb), with Y_sb
 * the activations' sum over the sub-block (q8_K's bsums).
 *
 * Per group of 16 rows and per 256-value block: the rows' d (f16); the
 * sub-block scales as bytes in pairs of sub-blocks ([pair][row][2]: one
 * sign extension gives both scales of a row as a 16-bit pair); then per
 * pair of sub-blocks (32 values, vectors k = 0..7 of values 4k..4k+3) three
 * chunks, in the 4 bytes of each row:
 *   chunk 0: u(k=0) | u(1) << 3 | low 2 bits of u(2) << 6
 *   chunk 1: u(3) | u(4) << 3 | low 2 bits of u(5) << 6
 *   chunk 2: u(6) | u(7) << 3 | high bit of u(5) << 6 | high bit of u(2) << 7
 * so that each vector is a mask (and a shift) of one chunk, or two shifted
 * chunks merged (u(2), u(5)). 3.6% more bytes than the file's 16 x 110 (the
 * scales as bytes).
 *
 * q2_K: 16 sub-blocks of 16 values of 2 bits, each sub-block with a 4-bit
 * scale sc and a 4-bit minimum m; the block is d dy sum_sb sc_sb S_sb -
 * dmin dy sum_sb m_sb Y_sb. Per group of 16 rows and per block: the rows' d
 * and dmin (f16), the file's scale bytes (sc | m << 4) in pairs of
 * sub-blocks ([pair][row][2]), then per pair two chunks of 2-bit values:
 * chunk h, in the 4 bytes of each row, vectors 4h..4h+3 as bits 0-1, 2-3,
 * 4-5, 6-7. The file's bytes (16 x 84).
 *
 * Per pair, S of both sub-blocks (|S| < 16 * 7 * 128, 16 bits) go as one
 * 16-bit pair into one dpwssd with the scale pair; the offsets (q3_K) or the
 * minimums (q2_K) sum_sb c_sb Y_sb by dpwssd of the pair of c with the Y
 * pair.
 */
#define PACK3K_BLOCK (PACK_SCALES + 16 * PACK_ROWS + 8 * 3 * 64) /* 1824 bytes */
#define PACK2K_BLOCK (2 * PACK_SCALES + 16 * PACK_ROWS + 8 * 2 * 64) /* 1344 bytes */

static size_t pack_size_q3_K(int64_t rows, int64_t n) { return (size_t)(rows / PACK_ROWS) * (size_t)(n / QK_K) * PACK3K_BLOCK; }

/* Three chunks of 3-bit values (the layout above) for row r: v the pair's 32 values. */
static void pack_q3_pair(uint8_t *p, int r, const uint8_t v[32])
{
	for (int i = 0; i < 4; i++) {
		const uint8_t *u = v + i; /* u[4 k]: value 4k + i, of vector k */
		p[4 * r + i] = (uint8_t)(u[0] | u[4] << 3 | (u[8] & 3) << 6);
		p[64 + 4 * r + i] = (uint8_t)(u[12] | u[16] << 3 | (u[20] & 3) << 6);
		p[128 + 4 * r + i] = (uint8_t)(u[24] | u[28] << 3 | (u[20] >> 2) << 6 | (u[8] >> 2) << 7);
	}
}

static void pack_q3_K(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / QK_K;
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * PACK3K_BLOCK;
			for (int r = 0; r < PACK_ROWS; r++) {
				const struct block_q3_K *x = (const struct block_q3_K *)vw + (size_t)(PACK_ROWS * g + r) * (size_t)nb + b;
				uint8_t u[QK_K];
				memcpy(pb + 2 * r, &x->d, 2);
				for (int sb = 0; sb < 16; sb++) { /* the file's 6-bit scales, stored plus 32 */
					const int lo = sb < 8 ? x->scales[sb] & 0xf : x->scales[sb - 8] >> 4;
					const int hi = (x->scales[8 + sb % 4] >> (2 * (sb / 4))) & 3;
					pb[PACK_SCALES + 32 * (sb / 2) + 2 * r + sb % 2] = (uint8_t)(int8_t)((lo | hi << 4) - 32);
				}
				/* value 128c + 32s + l: bits 2s of qs[32c + l], high bit c*4 + s of hmask[l] */
				for (int c = 0; c < 2; c++)
					for (int sh = 0; sh < 4; sh++)
						for (int l = 0; l < 32; l++)
							u[128 * c + 32 * sh + l] = (uint8_t)(((x->qs[32 * c + l] >> (2 * sh)) & 3) |
											     ((x->hmask[l] >> (4 * c + sh)) & 1) << 2);
				for (int pr = 0; pr < 8; pr++)
					pack_q3_pair(pb + PACK_SCALES + 256 + 192 * pr, r, u + 32 * pr);
			}
		}
}

/* Vector k (0..7) of a pair's three chunks at p: values 4k..4k+3 of 16 rows, 0..7. */
static inline __m512i q3_vector(const uint8_t *p, int k)
{
	const __m512i m7 = _mm512_set1_epi8(7), m38 = _mm512_set1_epi8(0x38);
	const __m512i x = _mm512_loadu_si512((const void *)(p + 64 * (k / 3)));
	if (k % 3 == 0)
		return _mm512_and_si512(x, m7);
	if (k % 3 == 1) /* masked first: the 16-bit shift brings in nothing */
		return _mm512_srli_epi16(_mm512_and_si512(x, m38), 3);
	/* k = 2 or 5: low 2 bits from the top of chunk k / 3, the high bit from chunk 2 */
	const __m512i h = _mm512_loadu_si512((const void *)(p + 128));
	const __m512i hb = k == 2 ? _mm512_srli_epi16(_mm512_and_si512(h, _mm512_set1_epi8((char)0x80)), 5)
				  : _mm512_srli_epi16(_mm512_and_si512(h, _mm512_set1_epi8(0x40)), 4);
	return _mm512_ternarylogic_epi32(_mm512_srli_epi16(x, 6), hb, _mm512_set1_epi8(0x03), 0xe4); /* c ? a : b */
}

static void pack_q2_K(const void *vw, int64_t rows, int64_t n, void *vout)
{
	const int64_t nb = n / QK_K;
	uint8_t *out = vout;
	for (int64_t g = 0; g < rows / PACK_ROWS; g++)
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *pb = out + ((size_t)g * (size_t)nb + (size_t)b) * PACK2K_BLOCK;
			for (int r = 0; r < PACK_ROWS; r++) {
				const struct block_q2_K *x = (const struct block_q2_K *)vw + (size_t)(PACK_ROWS * g + r) * (size_t)nb + b;
				uint8_t u[QK_K];
				memcpy(pb + 2 * r, &x->d, 2);
				memcpy(pb + PACK_SCALES + 2 * r, &x->dmin, 2);
				for (int sb = 0; sb < 16; sb++)
					pb[2 * PACK_SCALES + 32 * (sb / 2) + 2 * r + sb % 2] = x->scales[sb];
				/* value 128c + 32s + l: bits 2s of qs[32c + l] */
				for (int c = 0; c < 2; c++)
					for (int sh = 0; sh < 4; sh++)
						for (int l = 0; l < 32; l++)
							u[128 * c + 32 * sh + l] = (x->qs[32 * c + l] >> (2 * sh)) & 3;
				for (int pr = 0; pr < 8; pr++) {
					uint8_t *p = pb + 2 * PACK_SCALES + 256 + 128 * pr;
					const uint8_t *v = u + 32 * pr;
					for (int i = 0; i < 4; i++)
						for (int h = 0; h < 2; h++)
							p[64 * h + 4 * r + i] = (uint8_t)(v[16 * h + i] | v[16 * h + 4 + i] << 2 | v[16 * h + 8 + i] << 4 |
											  v[16 * h + 12 + i] << 6);
				}
			}
		}
}

static size_t pack_size_q2_K(int64_t rows, int64_t n) { return (size_t)(rows / PACK_ROWS) * (size_t)(n / QK_K) * PACK2K_BLOCK; }

/* Vector k (0..7) of a pair's two chunks at p: values 4k..4k+3 of 16 rows, 0..3. */
static inline __m512i q2_vector(const uint8_t *p, int k)
{
	const __m512i x = _mm512_loadu_si512((const void *)(p + 64 * (k / 4)));
	return _mm512_and_si512(k % 4 ? _mm512_srli_epi16(x, 2 * (k % 4)) : x, _mm512_set1_epi8(3));
}

/* The tile of q3_K or q2_K (q2). */
static inline __attribute__((always_inline)) void packed_k16_tile(int T, bool q2, int64_t nb, const uint8_t *P,
								  const struct block_q8_K *const *yb, float *const *out)
{
	const int64_t block = q2 ? PACK2K_BLOCK : PACK3K_BLOCK, head = q2 ? 2 * PACK_SCALES : PACK_SCALES;
	__m512 facc[4];
	for (int t = 0; t < T; t++)
		facc[t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *pb = P + (size_t)b * (size_t)block;
		prefetch_ahead(pb, block);
		/* per row: sum_sb sc_sb S_sb and sum_sb c_sb Y_sb (at most 16 * 32 * 14336: no overflow) */
		__m512i isum[4], ioff[4];
		for (int t = 0; t < T; t++)
			isum[t] = ioff[t] = _mm512_setzero_si512();
		for (int pr = 0; pr < 8; pr++) {
			const uint8_t *pv = pb + head + 256 + (q2 ? 128 : 192) * pr;
			__m512i S[4][2]; /* per token, the pair's two sub-blocks: one chain each */
			for (int t = 0; t < T; t++)
				S[t][0] = S[t][1] = _mm512_setzero_si512();
			for (int k = 0; k < 8; k++) {
				const __m512i w = q2 ? q2_vector(pv, k) : q3_vector(pv, k);
				for (int t = 0; t < T; t++) {
					int32_t four;
					memcpy(&four, yb[t][b].qs + 32 * pr + 4 * k, 4);
					S[t][k / 4] = _mm512_dpbusd_epi32(S[t][k / 4], w, _mm512_set1_epi32(four));
				}
			}
			/* 16-bit pairs per row: the scales, and the offsets' or minimums' factors */
			const __m256i raw = _mm256_loadu_si256((const __m256i *)(pb + head + 32 * pr));
			__m512i sc, c;
			if (q2) {
				const __m512i u = _mm512_cvtepu8_epi16(raw);
				sc = _mm512_and_si512(u, _mm512_set1_epi16(0x0f));
				c = _mm512_srli_epi16(u, 4);
			} else {
				sc = c = _mm512_cvtepi8_epi16(raw);
			}
			for (int t = 0; t < T; t++) {
				int32_t y2; /* the pair's Y, as two 16-bit sums */
				memcpy(&y2, yb[t][b].bsums + 2 * pr, 4);
				const __m512i s2 = _mm512_mask_blend_epi16(0xaaaaaaaa, S[t][0], _mm512_slli_epi32(S[t][1], 16));
				isum[t] = _mm512_dpwssd_epi32(isum[t], s2, sc);
				ioff[t] = _mm512_dpwssd_epi32(ioff[t], c, _mm512_set1_epi32(y2));
			}
		}
		const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pb));
		const __m512 dmin = q2 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pb + PACK_SCALES))) : d;
		for (int t = 0; t < T; t++) {
			const __m512 dy = _mm512_set1_ps(yb[t][b].d);
			if (q2) {
				facc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[t]), facc[t]);
				facc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(ioff[t]), facc[t]);
			} else { /* the offsets are -4 each */
				const __m512i tot = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(ioff[t], 2));
				facc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(tot), facc[t]);
			}
		}
	}
	for (int t = 0; t < T; t++)
		_mm512_storeu_ps(out[t], facc[t]);
}

#define q3_K_tile(T, n, P, act, out) packed_k16_tile(T, false, (n) / QK_K, P, act, out)
#define q2_K_tile(T, n, P, act, out) packed_k16_tile(T, true, (n) / QK_K, P, act, out)
#define q3_K_group(n) ((n) / QK_K * PACK3K_BLOCK)
#define q2_K_group(n) ((n) / QK_K * PACK2K_BLOCK)
DEFINE_PACKED_GEMM(gemm_packed_q3_K, q3_K_group, const struct block_q8_K *, 4, q3_K_tile)
DEFINE_PACKED_GEMM(gemm_packed_q2_K, q2_K_group, const struct block_q8_K *, 4, q2_K_tile)

void kern_register_avx512vnni_kquants(struct qtype_ops *ops)
{
	ops[HEARTH_TYPE_Q2_K].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q2_K].pack_size = pack_size_q2_K;
	ops[HEARTH_TYPE_Q2_K].pack = pack_q2_K;
	ops[HEARTH_TYPE_Q2_K].gemm_packed = gemm_packed_q2_K;

	ops[HEARTH_TYPE_Q3_K].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q3_K].pack_size = pack_size_q3_K;
	ops[HEARTH_TYPE_Q3_K].pack = pack_q3_K;
	ops[HEARTH_TYPE_Q3_K].gemm_packed = gemm_packed_q3_K;

	ops[HEARTH_TYPE_Q4_K].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q4_K].pack_size = pack_size_q4_K;
	ops[HEARTH_TYPE_Q4_K].pack = pack_q4_K;
	ops[HEARTH_TYPE_Q4_K].gemm_packed = gemm_packed_q4_K;

	ops[HEARTH_TYPE_Q5_K].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q5_K].pack_size = pack_size_q5_K;
	ops[HEARTH_TYPE_Q5_K].pack = pack_q5_K;
	ops[HEARTH_TYPE_Q5_K].gemm_packed = gemm_packed_q5_K;

	ops[HEARTH_TYPE_Q6_K].pack_rows = PACK_ROWS;
	ops[HEARTH_TYPE_Q6_K].pack_size = pack_size_q6_K;
	ops[HEARTH_TYPE_Q6_K].pack = pack_q6_K;
	ops[HEARTH_TYPE_Q6_K].gemm_packed = gemm_packed_q6_K;
}

