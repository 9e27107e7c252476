/* lora.h - LoRA adapters inside the library (see hearth_lora in hearth.h).
 *
 * Ownership: struct hearth_lora owns f32 copies of every pair's A and B
 * (struct lora_pair) and a table of views, one per (layer, role) the forward
 * pass multiplies with, pointing into them: the parts of a fused base matrix
 * (attn_qkv; ffn_up holding gate and up) view the rows of B that belong to
 * each part. Read-only after load; refs counts the loader's reference and
 * every request's and context's.
 */
#ifndef HEARTH_LORA_H
#define HEARTH_LORA_H

#include <stdatomic.h>
#include <stdint.h>

#include "hearth.h"
#include "forward.h"

struct pool;

#define LORA_MAX_RANK 4096

/* The products an adapter may change: per layer, then the two global ones. */
enum lora_role { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_LAYER_ROLE };
enum { LORA_OUTPUT = 0, LORA_TOK_EMBD = 1 };

/* One adapted product: y[n_out] += s * B (A x). */
struct lora_mat {
	const float *a; /* [rank][n_in]; token embedding: [n_vocab][rank] (row = token) */
	const float *b; /* [n_out][rank]: the rows of this part of the base matrix */
	int32_t rank;
	int64_t n_in, n_out;
	float s;        /* alpha / rank, or 1 when the file gives no alpha */
};

/* The expert stacks an adapter may change, per layer (ffn_*_exps). */
enum lora_exp_role { LORA_EXP_GATE, LORA_EXP_UP, LORA_EXP_DOWN, LORA_N_EXP_ROLE };

/* A lora_a / lora_b pair as loaded. An expert stack's pair holds one A and
 * one B per expert, expert after expert: lora_a ne [n_in, rank, n_expert],
 * lora_b ne [rank, n_out, n_expert] (llama.cpp's layout for *_exps). */
struct lora_pair {
	char *name;         /* the base tensor's */
	float *a, *b;       /* as in the file, converted to f32 */
	int64_t ne_a[2], ne_b[2];
	int64_t n_expert;   /* 1: a matrix; else the stack's experts */
};

struct hearth_lora {
	atomic_int refs;
	const struct hearth_model *m;
	float alpha;
	int32_t n_pairs;
	struct lora_pair *pairs;           /* [n_pairs] */
	struct lora_mat *layer;            /* [n_layer][LORA_N_LAYER_ROLE] (a NULL: not adapted) */
	struct lora_mat *exps;             /* [n_layer][LORA_N_EXP_ROLE][n_expert] each expert's (a NULL: not
					    * adapted); NULL when the model has no experts */
	int32_t n_expert;                  /* the model's experts (0: none) */
	struct lora_mat global[2];         /* LORA_OUTPUT, LORA_TOK_EMBD */
	uint8_t digest[32];
};

/* The adapted product of role at layer il, or NULL. */
static inline const struct lora_mat *lora_layer_mat(const struct hearth_lora *a, int il, enum lora_role role)
{
	const struct lora_mat *m = &a->layer[(size_t)il * LORA_N_LAYER_ROLE + role];
	return m->a ? m : NULL;
}
/* Expert e's adapted product of role at layer il, or NULL. */
static inline const struct lora_mat *lora_exp_mat(const struct hearth_lora *a, int il, enum lora_exp_role role, int e)
{
	if (!a->exps)
		return NULL;
	const struct lora_mat *m = &a->exps[((size_t)il * LORA_N_EXP_ROLE + role) * (size_t)a->n_expert + (size_t)e];
	return m->a ? m : NULL;
}
static inline const struct lora_mat *lora_global_mat(const struct hearth_lora *a, int which)
{
	return a->global[which].a ? &a->global[which] : NULL;
}

void lora_ref(struct hearth_lora *a);
/* Checks n uses against m and fills *out, taking a reference to each adapter
 * (uses of scale 0 are left out: they change nothing). HEARTH_EINVAL names
 * the problem; nothing is held then. */
int lora_use_resolve(const struct hearth_lora_use *use, int32_t n, const struct hearth_model *m,
		     struct fwd_lora *out, struct hearth_err *err);
/* Drops the references *l holds; *l becomes empty. */
void lora_use_release(struct fwd_lora *l);

/* lora-apply.c: the adapters' low-rank products over a batch.
 * Rows i = 0 .. n_rows - 1 of x (n_in floats each) and y (n_out each) belong
 * to sets[i] (NULL: none); y[i] += every adapter's product of role at layer
 * il (global: il < 0 and role the LORA_OUTPUT slot). What a row gets depends
 * only on its own x and set, never on the other rows. */
void lora_apply(struct pool *pool, const struct fwd_lora *const *sets, int n_rows, int il, int role, const float *x,
		int64_t n_in, float *y, int64_t n_out);
/* The same for the rows of an expert stack: row i belongs to sets[i] and goes
 * through expert expert[i]; y[i] += every adapter's product of that expert's
 * role (enum lora_exp_role) at layer il. Rows are independent as above. */
void lora_apply_exps(struct pool *pool, const struct fwd_lora *const *sets, const int32_t *expert, int n_rows, int il,
		     int role, const float *x, int64_t n_in, float *y, int64_t n_out);
/* The token embedding's adapters: x[i] (n_embd) += each adapter's B A[tokens[i]]. */
void lora_apply_embd(const struct fwd_lora *const *sets, int n_rows, const int32_t *tokens, float *x, int64_t n_embd);

#endif /* HEARTH_LORA_H */
