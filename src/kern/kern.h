/* kern.h - the per-type kernel table: how each tensor type converts to float
 * and takes a dot product with activations.
 *
 * A matrix product over weights of type T first converts the activations to
 * ops[T].dot_type (once per row of activations), then takes the dot products
 * with the most specific entry T has: gemm_packed over a matrix repacked at
 * load, else gemm, else vec_dot4 / vec_dot per weight row. The table starts
 * as the scalar reference kernels (quant-ref.c, kern.c); at the first call
 * of kern_ops(), the AVX2 and AVX-512 files replace entries when the CPU has
 * those instruction sets (see kern_isa).
 */
#ifndef HEARTH_KERN_H
#define HEARTH_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "gemm-f32.h"

typedef void (*kern_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*kern_from_float_fn)(const float *x, void *y, int64_t n);
/* *s = dot of n elements: x of the weight type, y of dot_type. */
typedef void (*kern_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
/* Four dots of one weight row x with activation rows y, y + y_stride, ...
 * (bytes apart); s[k * s_stride] gets the k-th. Optional: a matrix product
 * uses it to unpack each weight block once for four tokens. */
typedef void (*kern_vec_dot4_fn)(int64_t n, float *s, size_t s_stride, const void *x, const void *y, size_t y_stride);
/* A block of a matrix product: for weight rows r0..r1 (w_row bytes apart) and
 * n_tok activation rows (a_row bytes apart, of dot_type), y[t * y_stride + r]
 * = dot(row r, activation t). Optional: a kernel that tiles rows x tokens. */
typedef void (*kern_gemm_fn)(int64_t n, const void *w, size_t w_row, int64_t r0, int64_t r1, const void *a,
			     size_t a_row, int n_tok, float *y, size_t y_stride);
/* Weights repacked at load for a kernel's layout: pack_rows rows at a time
 * (rows must be a multiple), pack_size bytes for rows x n; gemm_packed then
 * takes the packed matrix, with r0 and r1 multiples of pack_rows. */
typedef size_t (*kern_pack_size_fn)(int64_t rows, int64_t n);
typedef void (*kern_pack_fn)(const void *w, int64_t rows, int64_t n, void *out);
typedef void (*kern_gemm_packed_fn)(int64_t n, const void *packed, int64_t r0, int64_t r1, const void *a, size_t a_row,
				    int n_tok, float *y, size_t y_stride);

struct qtype_ops {
	kern_to_float_fn to_float;
	int dot_type;
	kern_from_float_fn dot_from_float; /* F32 -> dot_type */
	kern_vec_dot_fn vec_dot;
	kern_from_float_fn from_float; /* F32 -> the type itself (KV cache types only) */
	kern_vec_dot4_fn vec_dot4; /* NULL: use vec_dot four times */
	kern_gemm_fn gemm;         /* NULL: use vec_dot4 / vec_dot */
	int pack_rows;             /* 0: no packed layout */
	kern_pack_size_fn pack_size;
	kern_pack_fn pack;
	kern_gemm_packed_fn gemm_packed;
};

/* Streaming attention over one tile of ATTN_TILE key positions (see
 * attn-tile.h): Q [M][dk] scaled query rows, n[m] the tile positions row m
 * sees (0..ATTN_TILE), Kt [dk][ATTN_TILE] the keys transposed (unseen
 * positions zero), V [ATTN_TILE][dv]; updates each row's running max mx,
 * sum l and unnormalized output O [M][dv]. */
#define ATTN_TILE 64
typedef void (*kern_attn_tile_fn)(int M, int dk, int dv, const float *Q, const int32_t *n, const float *Kt,
				  const float *V, float *mx, float *l, float *O);

/* The same tile with keys and values read from an f16 cache in chunks of
 * ATTN_CHUNK positions: position c * ATTN_CHUNK + p's key element d is
 * Kc[c][d * k_ld + p] and its value element j is Vc[c][p * v_ld + j]; a chunk
 * past every row's n may be NULL, and positions of a chunk past every row's n
 * are not used. scratch holds (dk + dv) * ATTN_TILE floats for kernels that
 * convert the tile to float (the reference). Same bits as attn_tile on the
 * tile converted to float. */
#define ATTN_CHUNK 16
typedef void (*kern_attn_tile_f16_fn)(int M, int dk, int dv, const float *Q, const int32_t *n,
				      const uint16_t *const *Kc, size_t k_ld, const uint16_t *const *Vc, size_t v_ld,
				      float *mx, float *l, float *O, float *scratch);

/* Kernels that are not per tensor type. */
typedef void (*kern_swiglu_fn)(float *gate, const float *up, int64_t n); /* gate = silu(gate) * up */
typedef void (*kern_softcap_fn)(float *x, int64_t n, float c);             /* x = c tanh(x / c), c > 0 */
/* Passes over a row of logits (see logit-row.h): its extremes and the first
 * index of the largest, NaNs skipped (returns whether there was a NaN or an
 * infinity); the indices of the elements >= thr; y[i] = exp((x[i] - m) *
 * scale) when y is not NULL, returning their sum. */
typedef int (*kern_row_minmax_fn)(const float *x, int64_t n, float *mn, float *mx, int64_t *imax);
typedef int64_t (*kern_row_collect_fn)(const float *x, int64_t n, float thr, int32_t *out);
typedef float (*kern_row_exp_sum_fn)(const float *x, int64_t n, float m, float scale, float *y);
struct kern_fns {
	kern_attn_tile_fn attn_tile;
	kern_attn_tile_f16_fn attn_tile_f16;
	kern_swiglu_fn swiglu;
	kern_swiglu_fn geglu;        /* gate = gelu(gate) * up (tanh GELU) */
	kern_softcap_fn softcap;     /* soft-capped attention scores (gemma2) */
	kern_row_minmax_fn row_minmax;
	kern_row_collect_fn row_collect;
	kern_row_exp_sum_fn row_exp_sum;
	kern_gemm_nt_fn gemm_nt;     /* training's f32 products (gemm-f32.h) */
	kern_gemm_nn_fn gemm_nn;
};

/* The ops of type, or NULL when hearth cannot compute with it. The first
 * call picks the kernels for this CPU (see kern_isa). */
const struct qtype_ops *kern_ops(int type);
/* The scalar reference ops, whatever the CPU: the oracle for tests. */
const struct qtype_ops *kern_ops_ref(int type);
/* "scalar", "avx2" or "avx512vnni": the instruction set kern_ops() uses.
 * HEARTH_CPU=scalar|avx2 in the environment caps it. */
const char *kern_isa(void);
/* The type-independent kernels for this CPU, and the scalar reference ones. */
const struct kern_fns *kern_fns(void);
const struct kern_fns *kern_fns_ref(void);

#ifdef HEARTH_HAVE_AVX2
void kern_register_avx2(struct qtype_ops *ops, struct kern_fns *fns);
void kern_register_avx2_gemm_f32(struct kern_fns *fns); /* gemm_nt, gemm_nn */
void kern_register_avx2_dequant(struct qtype_ops *ops);   /* q4_K, q6_K to_float */
#endif /* HEARTH_HAVE_AVX2 */
#ifdef HEARTH_HAVE_AVX512VNNI
void kern_register_avx512vnni(struct qtype_ops *ops, struct kern_fns *fns);
void kern_register_avx512vnni_kquants(struct qtype_ops *ops); /* the K-quants' packed layouts */
void kern_register_avx512_attn(struct kern_fns *fns);          /* attention over an f16 cache */
#endif /* HEARTH_HAVE_AVX512VNNI */
#ifdef HEARTH_HAVE_AVX512BF16
void kern_register_avx512bf16(struct qtype_ops *ops);
#endif /* HEARTH_HAVE_AVX512BF16 */

#endif /* HEARTH_KERN_H */
