/* train-ops.h - the operations of a training pass, each as a forward and a
 * backward in f32 (src/train/: one file per operation, the file's name is
 * its prefix; trainer.c composes them into a model).
 *
 * Shapes are row-major: a matrix [n][m] is n rows of m floats. A backward
 * takes the gradient of the loss with respect to the operation's output
 * (dy) and what the forward kept, and writes (=) or adds (+=, where said)
 * the gradients with respect to its inputs.
 *
 * Threads: the functions that take a struct pool split their work over it
 * by output element, in an order that does not depend on the number of
 * threads, so the result is the same bits with 1 or n threads. They are
 * called by the pool's owner, one at a time.
 */
#ifndef HEARTH_TRAIN_OPS_H
#define HEARTH_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/model.h"

#include "../base/thread.h"

/* Runs fn over the pool, or on the calling thread alone when the work (about
 * the multiply-adds) is too small to pay for a meeting of the threads: the
 * operations split their work so that the result is the same either way. */
#define TRAIN_INLINE_WORK (1 << 16)
static inline void train_run(struct pool *p, pool_task_fn fn, void *arg, int64_t work)
{
	if (work < TRAIN_INLINE_WORK || pool_size(p) < 2)
		fn(arg, 0, 1);
	else
		pool_run(p, fn, arg);
}

/* ---- vector helpers (tattn.c, tlora.c) -------------------------------------- */

/* sum a[i] b[i] with eight running sums, combined in a fixed order (the
 * same bits on any thread; eight independent chains, not one long one) */
static inline float train_dot(const float *a, const float *b, int64_t n)
{
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += a[i + k] * b[i + k];
	for (; i < n; i++)
		s[0] += a[i] * b[i];
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* y[i] += c x[i] (eight at a time, a shape the compilers vectorize at -O2
 * without a check for overlap; each element's operations are unchanged) */
static inline void train_axpy(float *restrict y, float c, const float *restrict x, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			y[i + k] += c * x[i + k];
	for (; i < n; i++)
		y[i] += c * x[i];
}

/* ---- tmm.c: products with a frozen base weight of any hearth type --------- */

/* A weight W [n_out][n_in] (struct tensor: ne[0] = n_in, ne[1] = n_out) is
 * read through its type's dequantization, block by block, by rows: the
 * activations stay in f32 (no conversion to the kernels' dot type), so the
 * product is a smooth function of x. scratch: tmm_scratch_floats(n_in)
 * floats per thread of the pool, thread ith's at scratch + ith * that. */
int64_t tmm_scratch_floats(int64_t n_in);
/* y[n][n_out] = x[n][n_in] W^T. */
void tmm_forward(struct pool *p, float *scratch, const struct tensor *w, const float *x, int n, float *y);
/* dx[n][n_in] += dy[n][n_out] W. */
void tmm_backward(struct pool *p, float *scratch, const struct tensor *w, const float *dy, int n, float *dx);

/* ---- tlora.c: a low-rank delta on a weight: y += scale * (x A^T) B^T -------- */

struct tlora {
	char name[96];         /* the base weight's name ("blk.0.attn_q.weight") */
	const struct tensor *w; /* the base weight (of a fused one: a part, see trainer.c) */
	int64_t n_in, n_out;
	int32_t rank;
	float scale;           /* alpha / rank */
	float *a, *b;          /* [rank][n_in], [n_out][rank] */
	float *ga, *gb;        /* their gradients, same shapes */
	int32_t n_expert;      /* 1; an expert stack's adapter: a, b, ga, gb hold n_expert of those, expert after
				* expert (its per-expert views, each of n_expert 1, point into them) */
};
/* y[n][n_out] += scale * u B^T with u[n][rank] = x A^T (u kept for the backward). */
void tlora_forward(struct pool *p, const struct tlora *l, const float *x, int n, float *u, float *y);
/* Adds to ga, gb and to dx[n][n_in] the gradients of y's (dy); du: [n][rank] scratch. */
void tlora_backward(struct pool *p, const struct tlora *l, const float *x, const float *u, const float *dy, int n,
		    float *du, float *dx);

/* ---- tnorm.c: RMS norm ----------------------------------------------------- */

/* y = x / rms(x) * w for each of n rows of width d (as the inference's block_rms_norm). */
void tnorm_forward(struct pool *p, const float *x, const float *w, int n, int64_t d, float eps, float *y);
/* dx (+= when add, else =) the gradient through the norm of rows x with weight w (may be NULL). */
void tnorm_backward(struct pool *p, const float *x, const float *w, const float *dy, int n, int64_t d, float eps,
		    bool add, float *dx);

/* ---- trope.c: rotary position embedding ------------------------------------ */

/* Rotates (inverse: by the transpose) the first n_rot dims of each of the
 * n_heads heads of width head_dim of every row i of x [n][n_heads * head_dim]
 * by the (cos, sin) pairs of row i's position: cs + pos[i] * n_rot. */
void trope_apply(struct pool *p, float *x, int n, int n_heads, int head_dim, int n_rot, enum rope_type type,
		 const float *cs, const int32_t *pos, bool inverse);

/* ---- tswiglu.c: the gated activation h = silu(g) * u ------------------------ */

void tswiglu_forward(struct pool *p, const float *g, const float *u, int64_t n, float *h);
/* dg = dh * u * silu'(g), du = dh * silu(g). */
void tswiglu_backward(struct pool *p, const float *g, const float *u, const float *dh, int64_t n, float *dg,
		      float *du);

/* ---- tgeglu.c: the GELU-gated activation h = gelu(g) * u (tanh GELU) ------- */

void tgeglu_forward(struct pool *p, const float *g, const float *u, int64_t n, float *h);
/* dg = dh * u * gelu'(g), du = dh * gelu(g). */
void tgeglu_backward(struct pool *p, const float *g, const float *u, const float *dh, int64_t n, float *dg,
		     float *du);

/* ---- tsoftcap.c: soft-capping y = c tanh(x / c), in place ------------------- */

void tsoftcap_forward(struct pool *p, float *x, int64_t n, float c);
/* dy (in place) becomes the gradient with respect to x, from the outputs y. */
void tsoftcap_backward(struct pool *p, const float *y, float *dy, int64_t n, float c);

/* ---- tattn.c: causal attention with grouped keys ---------------------------- */

/* One pass's attention: row i (of n) of q [n][n_head][dk] attends to rows
 * lo[i] .. i of k [n][n_kv][dk] and v [n][n_kv][dv] (query head h reads key
 * head h / (n_head / n_kv)), softmax((q . k) * scale). */
struct tattn {
	int n, n_head, n_kv, dk, dv;
	float scale;
	float softcap;       /* > 0: scores become softcap tanh(s / softcap) (gemma2) */
	const float *sinks;  /* [n_head] sink logits joining each denominator (gpt-oss), or NULL */
	const int32_t *lo;   /* [n] each row's first visible row (its sequence's start, or its window's) */
	float *p;  /* [n_head][n][n] scratch: the probabilities */
	float *ds; /* [n_head][n][n] scratch: the scores' gradients */
};
/* o [n][n_head][dv]; leaves the probabilities in a->p. */
void tattn_forward(struct pool *p, const struct tattn *a, const float *q, const float *k, const float *v, float *o);
/* From do_ [n][n_head][dv] writes (=) dq, dk, dv (shapes of q, k, v). */
void tattn_backward(struct pool *p, const struct tattn *a, const float *q, const float *k, const float *v,
		    const float *do_, float *dq, float *dk, float *dv);

/* ---- tloss.c: log-softmax cross-entropy ------------------------------------- */

/* Over n rows of logits [n][n_vocab] with labels[i] (0 <= label < n_vocab):
 * returns sum_i -log softmax(row i)[labels[i]] (in double), and when dlogits
 * is not NULL writes there weight * d/dlogits of that sum (may alias logits). */
double tloss_forward_backward(struct pool *p, const float *logits, const int32_t *labels, int n, int64_t n_vocab,
			      float weight, float *dlogits);

/* ---- tmoe.c: a mixture-of-experts feed-forward block ------------------------ */

/* What one layer's forward keeps for its backward (owner: the caller; sizes
 * for n_ctx tokens, K = n_expert_used, X = n_expert, rows = n_ctx K). The
 * (token, slot) pairs are grouped by expert into rows: expert e's are rows
 * off[e] .. off[e] + count[e] - 1, in token order. */
struct tmoe_acts {
	float *logits;         /* [n_ctx][X]: the router's logits (+ its bias) */
	int32_t *ids;          /* [n_ctx][K]: the chosen experts, best first */
	float *w;              /* [n_ctx][K]: their weights */
	int32_t *row;          /* [n_ctx][K]: each pair's row */
	int32_t *tok;          /* [rows]: each row's token */
	int32_t *off, *count;  /* [X] */
	float *g, *u, *act;    /* [rows][n_ff_exp]: gate, up (biases added), act(gate, up) */
	float *y;              /* [rows][n_embd]: each row's expert output (the down bias not added) */
	/* with adapters on the experts' stacks (NULL where none): */
	float *xr;             /* [rows][n_embd]: the rows' inputs (gate or up adapted) */
	float *lu[3];          /* [rows][rank]: gate's, up's, down's A x of each row */
};
/* A layer's adapters on the experts' stacks: gate, up, down, each NULL or
 * [n_expert] per-expert views (struct tlora of n_expert 1). */
struct tmoe_lora {
	const struct tlora *x[3];
};
/* Scratch shared by the layers. */
struct tmoe_scratch {
	float *rows;            /* [rows][n_embd]: the rows' inputs (forward), their gradients (backward) */
	float *dact, *dg, *du;  /* [rows][n_ff_exp] */
	float *dw;              /* [n_ctx][K] */
	float *dlogits;         /* [n_ctx][X] */
	float *route;           /* [X] */
	int32_t *next;          /* [X] */
	float *ldu;             /* [rows][rank]: the adapters' backward scratch (NULL: no adapters) */
};

/* h[n] = act(g, u) (moe.h's moe_act_rows: the inference's bits). */
void tmoe_act_forward(enum moe_act act, const float *g, const float *u, int64_t n, float *h);
/* dg, du (=) from dh through the activation at (g, u); MOE_ACT_SWIGLU_OAI's
 * clamps pass no gradient where they clamp. */
void tmoe_act_backward(struct pool *p, enum moe_act act, const float *g, const float *u, const float *dh, int64_t n,
		       float *dg, float *du);
/* One token: dlogits[X] (=) from dw[K], the gradient of its weights as
 * moe_route made them from logits (the choice ids held fixed); scratch: X floats. */
void tmoe_route_backward(const struct hparams *h, const float *logits, const int32_t *ids, const float *dw,
			 float *scratch, float *dlogits);
/* out[n][n_embd] (=) the block of layer l over x[n][n_embd]; fills a. mm: tmm's
 * scratch for n_in up to max(n_embd, n_ff_exp). */
void tmoe_forward(struct pool *p, float *mm, const struct hparams *h, const struct layer *l, const float *x, int n,
		  struct tmoe_acts *a, const struct tmoe_scratch *s, float *out);
/* dx[n][n_embd] (=) d loss / d x from dout, d loss / d out. */
void tmoe_backward(struct pool *p, float *mm, const struct hparams *h, const struct layer *l, const struct tmoe_acts *a,
		   const float *dout, int n, const struct tmoe_scratch *s, float *dx);
/* The same with adapters lo on the experts' stacks (NULL: none): each row
 * routed to expert e gets scale B_e A_e x added to its gate, up and down
 * products (before the experts' biases, as the inference adds them), and
 * the backward adds to each expert's ga, gb the gradients of its rows.
 * a->xr, a->lu and s->ldu must be there for the adapted stacks. */
void tmoe_forward_lora(struct pool *p, float *mm, const struct hparams *h, const struct layer *l,
		       const struct tmoe_lora *lo, const float *x, int n, struct tmoe_acts *a, const struct tmoe_scratch *s,
		       float *out);
void tmoe_backward_lora(struct pool *p, float *mm, const struct hparams *h, const struct layer *l,
			const struct tmoe_lora *lo, const struct tmoe_acts *a, const float *dout, int n,
			const struct tmoe_scratch *s, float *dx);

#endif /* HEARTH_TRAIN_OPS_H */
