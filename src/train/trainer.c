/* trainer.c - the training pass of a model: forward keeping activations,
 * then backward to the LoRA adapters and the input embeddings (see hearth.h,
 * hearth_trainer_*; the operations: train-ops.h). It computes what
 * forward.c computes:
 *
 *   x_0 = embed(tokens) (* embd_scale)       or the caller's embeddings
 *   layer il (x = x_il):
 *     xn   = rms_norm(x) attn_norm
 *     q, k, v = xn W (+ s B A xn) (+ bias)   (qwen3, gemma3: per-head rms norms of q, k)
 *     q, k = rope(q, k) (the layer's rope: base, scale, YaRN; LongRoPE factors)
 *     att = attention(q, k, v)   (a window in local layers; gemma2: capped scores; gpt-oss: sinks)
 *     ao = att Wo (+ lora) (+ bias);  xmid = x + ao  (post-norm: x + rms_norm(ao) attn_post_norm)
 *     xn2  = rms_norm(xmid) ffn_norm
 *     g, u = xn2 Wgate, xn2 Wup (+ lora);  h = act(g) u  (silu, or gelu: gemma)
 *     fo = h Wdown (+ lora);  x_(il+1) = xmid + fo  (post-norm as above, ffn_post_norm)
 *       or, a mixture of experts (qwen3moe, llama with experts; tmoe.c):
 *     fo = sum over the chosen experts of weight * expert(xn2)
 *   loss = mean over labelled rows of -log softmax(cap(rms_norm(x_L) output_norm Wout))[label]
 *          (cap: c tanh(l / c) with gemma's final soft-capping, else none)
 *
 * A fused matrix (attn_qkv; ffn_up holding gate and up) has one adapter over
 * all its rows; the layer's products use views of it (struct tlora sharing
 * A and its gradient, each with its part's rows of B), so A's gradient is
 * the sum over the parts.
 *
 * A mixture of experts' gate, up and down stacks, when targeted, have one
 * adapter per stack holding an A and a B per expert (llama.cpp's layout for
 * *_exps: [n_expert][rank][n_in], [n_expert][n_out][rank]); tmoe.c uses its
 * per-expert views (struct tlora of n_expert 1 into the stack's), so expert
 * e's A and B learn from the rows routed to e.
 *
 * Memory (the owner is the trainer; sizes fixed at creation for n_ctx
 * tokens): the parameters and their gradients in one allocation; the
 * activations of every layer in another (x_il, xn, q/k before their norms,
 * q, k, v, att, xmid, xn2, g, u, h, the outputs before post-norms, each
 * adapter's A x), about n_ctx (4 n_embd + 3 n_ff + 2 q + 2 k + v + att)
 * floats a layer (2 n_embd more with post-norms; a mixture of experts
 * instead of g, u, h: the router's logits, the chosen experts and their
 * weights, and per (token, chosen expert) gate, up, act and the expert's
 * output, n_ctx (n_expert + k (3 n_ff_exp + n_embd + 4))); the
 * backward's scratch (one layer's gradients, the attention's probabilities
 * and score gradients, n_head n_ctx^2 floats each) in a third.
 *
 * Weights are read from the model's mapping (struct tensor's data), not
 * from the kernels' repacked copies: a matrix the loader repacked had its
 * mapped pages given back, and they come back from the file when read here.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/thread.h"
#include "../model/blocks.h"
#include "../tensor/qtype.h"
#include "../kern/kern.h"
#include "train-ops.h"
#include "trainer.h"

#define N_ROLE 7      /* q k v out gate up down */
#define HEAD_ROWS 32  /* labelled rows through the output head at a time */
#define TRAIN_MAX_CTX 65536
#define TRAIN_MAX_RANK 1024

struct tacts { /* one layer's activations, each [n_ctx][width] */
	float *x, *xn, *qraw, *kraw, *q, *k, *v, *att, *xmid, *xn2, *g, *u, *h;
	float *ao, *fo; /* attention and FFN outputs before their post-norms (NULL: none) */
	float *lu[N_ROLE]; /* adapters' A x: [n_ctx][rank] */
	struct tmoe_acts moe; /* a mixture of experts' (then g, u, h are NULL) */
};

struct hearth_trainer {
	const struct hearth_model *m;
	struct hearth_trainer_params p;
	struct pool *pool;
	int64_t E, QK, KV, VV, OV, F, V;
	struct tlora *lora; /* [n_lora] */
	int32_t n_lora;
	struct tlora *views; /* [n_layer][N_ROLE]: each role's part of its adapter (the whole, unless fused) */
	struct tlora **lmap; /* [n_layer][N_ROLE]: a layer's adapter view of a role, or NULL */
	struct tlora *lout;  /* the output head's adapter, or NULL */
	struct tlora *xviews; /* [n_layer][3][n_expert]: each expert's view of a stack's adapter (gate, up, down) */
	struct tmoe_lora *xmap; /* [n_layer]: a layer's stacks' views, or NULL when no stack is adapted */
	float *params;       /* a, b, ga, gb of every adapter */
	float *acts_mem;
	struct tacts *acts;  /* [n_layer], then acts[n_layer].x = the last layer's output */
	float *scratch_mem;
	float *dx, *dxn, *dq, *dk, *dv, *datt, *dg, *du, *dh, *tmp, *ldu, *mm;
	float *hu;           /* [HEAD_ROWS][rank]: the output adapter's A x */
	float *xf, *dxf, *logits; /* head: [HEAD_ROWS][E], [HEAD_ROWS][E], [HEAD_ROWS][V] */
	float *dlogits;      /* [HEAD_ROWS][V] with a final soft-cap (the capped logits stay), else NULL */
	float *cs_mem;       /* the rope tables, one per distinct layer rope: [n_ctx][n_rot] each */
	const float **cs;    /* [n_layer]: layer il's table */
	int32_t *pos, *lo0, *lo, *rows, *labels; /* [n_ctx] each: a pass's positions, rows' sequence starts,
						    first visible rows (the layer's), labelled rows */
	struct tattn attn;
	hearth_trainer_stop_fn stop; /* asked before each layer of a pass (NULL: never) */
	void *stop_data;
	struct tmoe_scratch ms; /* a mixture of experts' backward */
};

struct hearth_trainer_params hearth_trainer_default_params(void)
{
	return (struct hearth_trainer_params){ .targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_ATTN_K | HEARTH_TRAIN_ATTN_V |
							  HEARTH_TRAIN_ATTN_OUT,
					       .rank = 8, .alpha = 16, .n_ctx = 512, .n_threads = 0, .seed = 42 };
}

/* ---- creation ----------------------------------------------------------------- */

/* Whether the pass here computes what the model's forward computes. */
static int check_model(const struct hearth_model *m, struct hearth_err *err)
{
	const struct hparams *h = &m->hp;
	const char *a = m->arch;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "trainer: the model was loaded vocabulary only");
	static const char *const archs[] = { "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "chatglm", "glm4",
					     "qwen3moe", "gpt-oss" };
	bool known = false;
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		known |= strcmp(a, archs[i]) == 0;
	if (!known)
		return err_set(err, HEARTH_EUNSUPPORTED, "trainer: architecture '%s' has no backward pass yet (llama, qwen2, "
			       "qwen3, gemma2, gemma3, phi3, chatglm, glm4, qwen3moe, gpt-oss)", a);
	if ((h->ffn_act != FFN_SILU && h->ffn_act != FFN_GELU) || h->embd_scale <= 0 || h->n_rot % 2 ||
	    h->n_rot > h->head_dim_k)
		return err_set(err, HEARTH_EUNSUPPORTED, "trainer: '%s' uses a feature without a backward pass", a);
	for (int il = 0; il < h->n_layer; il++)
		if (!m->layers[il].ffn_gate.data && !m->layers[il].exp_gate)
			return err_set(err, HEARTH_EUNSUPPORTED, "trainer: layer %d of '%s' has no gated feed-forward", il, a);
	return 0;
}

/* The layer's weight of a role. */
static const struct tensor *role_weight(const struct layer *l, int role)
{
	const struct tensor *w[N_ROLE] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down };
	return w[role];
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* The roles of layer l whose weight is (a part of) the same tensor as
 * role r's (one role unless fused): its first part (the lowest rows), r's
 * first row in it and its rows over all parts. */
struct fused {
	int first;
	int64_t r0, n_rows;
	bool targeted; /* some part's target bit is set */
};
static struct fused fused_of(const struct layer *l, int r, uint32_t targets)
{
	const struct tensor *w = role_weight(l, r);
	struct fused f = { .first = r };
	if (!w->data) /* no such matrix (a mixture of experts' ffn roles) */
		return f;
	for (int r2 = 0; r2 < N_ROLE; r2++) {
		const struct tensor *w2 = role_weight(l, r2);
		if (r2 != r && (!w2->data || strcmp(w2->name, w->name) != 0))
			continue; /* another tensor, or none */
		f.n_rows += w2->ne[1];
		f.targeted |= (targets & (1u << r2)) != 0;
		if ((const char *)w2->data < (const char *)role_weight(l, f.first)->data)
			f.first = r2;
	}
	const size_t row = qtype_row_size(w->type, w->ne[0]);
	f.r0 = (int64_t)(((const char *)w->data - (const char *)role_weight(l, f.first)->data) / row);
	return f;
}

/* Adds an adapter of rank R on weight w with n_out rows (n_expert > 1: on
 * the expert stack w, one per expert); returns it. */
static struct tlora *add_lora(struct hearth_trainer *t, const struct tensor *w, int64_t n_out, int32_t n_expert,
			      size_t *total)
{
	const int R = t->p.rank;
	struct tlora *lo = &t->lora[t->n_lora++];
	lo->w = w;
	snprintf(lo->name, sizeof lo->name, "%s", w->name);
	lo->n_in = w->ne[0];
	lo->n_out = n_out;
	lo->rank = R;
	lo->scale = t->p.alpha / (float)R;
	lo->n_expert = n_expert;
	*total += 2 * (size_t)R * (size_t)(lo->n_in + lo->n_out) * (size_t)n_expert;
	return lo;
}

/* The expert stack of role r (gate, up, down) of a mixture-of-experts layer. */
static const struct tensor *stack_of(const struct layer *l, int r)
{
	const struct tensor *w[3] = { &l->ffn_gate_exps, &l->ffn_up_exps, &l->ffn_down_exps };
	assert(r >= 4 && r < N_ROLE);
	return w[r - 4];
}

/* The per-expert views of the stack adapters (owner: a role's adapter + 1). */
static int make_expert_views(struct hearth_trainer *t, const int32_t *owner, struct hearth_err *err)
{
	const struct hearth_model *m = t->m;
	const int L = m->hp.n_layer, X = m->hp.n_expert;
	if (X <= 0 || !(t->p.targets & (HEARTH_TRAIN_FFN_GATE | HEARTH_TRAIN_FFN_UP | HEARTH_TRAIN_FFN_DOWN)))
		return 0;
	t->xviews = calloc((size_t)L * 3 * (size_t)X, sizeof *t->xviews);
	t->xmap = calloc((size_t)L, sizeof *t->xmap);
	if (!t->xviews || !t->xmap)
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
	for (int il = 0; il < L; il++) {
		const struct layer *l = &m->layers[il];
		for (int r = 4; r < N_ROLE && l->exp_gate; r++) {
			const int32_t k = owner[il * N_ROLE + r];
			if (!k)
				continue;
			const struct tlora *st = &t->lora[k - 1];
			const struct tensor *ev[3] = { l->exp_gate, l->exp_up, l->exp_down };
			struct tlora *v = &t->xviews[((size_t)il * 3 + (size_t)(r - 4)) * (size_t)X];
			const size_t na = (size_t)st->rank * (size_t)st->n_in, nb = (size_t)st->rank * (size_t)st->n_out;
			for (int e = 0; e < X; e++) {
				v[e] = *st;
				v[e].w = &ev[r - 4][e];
				v[e].n_expert = 1;
				v[e].a += (size_t)e * na;
				v[e].ga += (size_t)e * na;
				v[e].b += (size_t)e * nb;
				v[e].gb += (size_t)e * nb;
			}
			t->xmap[il].x[r - 4] = v;
		}
	}
	return 0;
}


/* The machine's memory in bytes (0 when unknown): a larger allocation could
 * succeed (overcommit) and the process be killed when its pages are touched. */
static double machine_bytes(void)
{
	const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	return pages > 0 && page > 0 ? (double)pages * (double)page : 0;
}

/* The adapters: one per layer and targeted weight tensor (a fused one once,
 * when any of its parts is targeted), in role order, then the head's;
 * parameters carved from one allocation; A uniform in +-1/sqrt(n_in), B
 * zero. Then each role's view (see the file's header). */
static int make_lora(struct hearth_trainer *t, struct hearth_err *err)
{
	const struct hearth_model *m = t->m;
	const int L = m->hp.n_layer, R = t->p.rank;
	size_t total = 0;
	int32_t *owner = calloc((size_t)L * N_ROLE, sizeof *owner); /* a role's adapter + 1, or 0 */
	t->lmap = calloc((size_t)L * N_ROLE, sizeof *t->lmap);
	t->views = calloc((size_t)L * N_ROLE, sizeof *t->views);
	t->lora = calloc((size_t)L * N_ROLE + 1, sizeof *t->lora);
	if (!t->lmap || !t->lora || !t->views || !owner) {
		free(owner);
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
	}
	for (int il = 0; il < L; il++)
		for (int r = 0; r < N_ROLE; r++) {
			const struct layer *l = &m->layers[il];
			if (r >= 4 && l->exp_gate) { /* an expert stack */
				if (t->p.targets & (1u << r)) {
					const struct tensor *w = stack_of(l, r);
					add_lora(t, w, w->ne[1], m->hp.n_expert, &total);
					owner[il * N_ROLE + r] = t->n_lora;
				}
				continue;
			}
			const struct fused f = fused_of(l, r, t->p.targets);
			if (!f.targeted)
				continue;
			if (f.first == r) /* the tensor's first part makes its adapter */
				add_lora(t, role_weight(l, r), f.n_rows, 1, &total);
			assert(f.first <= r); /* fused parts come in role order */
			owner[il * N_ROLE + r] = f.first == r ? t->n_lora : owner[il * N_ROLE + f.first];
		}
	if (t->p.targets & HEARTH_TRAIN_OUTPUT)
		t->lout = add_lora(t, &m->output, m->output.ne[1], 1, &total);
	if (machine_bytes() > 0 && (double)total * sizeof(float) > machine_bytes()) {
		free(owner);
		return err_set(err, HEARTH_ENOMEM, "trainer: the adapters and their gradients need %.1f GiB, more than this "
			       "machine's %.1f GiB (a lower rank or fewer targets)", (double)total * sizeof(float) / 1073741824.0,
			       machine_bytes() / 1073741824.0);
	}
	if (total && !(t->params = calloc(total, sizeof(float)))) {
		free(owner);
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory for %zu adapter floats", total);
	}
	float *at = t->params;
	uint64_t s = t->p.seed;
	for (int32_t i = 0; i < t->n_lora; i++) {
		struct tlora *lo = &t->lora[i];
		const size_t X = (size_t)lo->n_expert;
		const size_t na = (size_t)R * (size_t)lo->n_in * X, nb = (size_t)R * (size_t)lo->n_out * X;
		lo->a = at;
		lo->b = at + na;
		lo->ga = at + na + nb;
		lo->gb = at + 2 * na + nb;
		at += 2 * (na + nb);
		const float bound = 1.0f / sqrtf((float)lo->n_in);
		for (size_t j = 0; j < na; j++)
			lo->a[j] = ((float)(splitmix(&s) >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * bound;
	}
	for (int il = 0; il < L; il++)
		for (int r = 0; r < N_ROLE; r++) {
			const int32_t k = owner[il * N_ROLE + r];
			if (!k || (r >= 4 && m->layers[il].exp_gate)) /* none, or a stack (make_expert_views) */
				continue;
			const struct tensor *w = role_weight(&m->layers[il], r);
			const struct fused f = fused_of(&m->layers[il], r, t->p.targets);
			struct tlora *v = &t->views[il * N_ROLE + r];
			*v = t->lora[k - 1];
			v->w = w;
			v->n_out = w->ne[1];
			v->b += (size_t)f.r0 * (size_t)R;
			v->gb += (size_t)f.r0 * (size_t)R;
			t->lmap[il * N_ROLE + r] = v;
		}
	const int rc = make_expert_views(t, owner, err);
	free(owner);
	return rc;
}

/* Where the carving stands: floats used from base (NULL base: only counts,
 * with no arithmetic on the null pointer, which is undefined). */
struct carver {
	float *base;
	size_t used;
};

/* Carves n floats from at (NULL when it only counts). */
static float *carve(struct carver *at, size_t n)
{
	float *p = at->base ? at->base + at->used : NULL;
	at->used += n;
	return p;
}

/* Carves n int32s from the float allocation *at (allocated storage takes the
 * type it is written with; the two types have one size and alignment). */
static int32_t *carve_i32(struct carver *at, size_t n)
{
	_Static_assert(sizeof(int32_t) == sizeof(float), "int32 slots carved from floats");
	return (int32_t *)(void *)carve(at, n);
}

/* Carves a mixture of experts' activations for C tokens. */
static void carve_moe(const struct hparams *h, struct carver *at, size_t C, struct tmoe_acts *a)
{
	const size_t X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, F = (size_t)h->n_ff_exp;
	a->logits = carve(at, C * X);
	a->ids = carve_i32(at, C * K);
	a->w = carve(at, C * K);
	a->row = carve_i32(at, C * K);
	a->tok = carve_i32(at, C * K);
	a->off = carve_i32(at, X);
	a->count = carve_i32(at, X);
	a->g = carve(at, C * K * F);
	a->u = carve(at, C * K * F);
	a->act = carve(at, C * K * F);
	a->y = carve(at, C * K * (size_t)h->n_embd);
}

/* Lays out the activations (base NULL: measures); returns the floats used. */
static size_t layout_acts(struct hearth_trainer *t, float *base)
{
	const struct hearth_model *m = t->m;
	const size_t C = (size_t)t->p.n_ctx, E = (size_t)t->E, R = (size_t)t->p.rank;
	struct carver at = { base, 0 };
	for (int il = 0; il <= m->hp.n_layer; il++) {
		struct tacts *a = &t->acts[il];
		a->x = carve(&at, C * E);
		if (il == m->hp.n_layer)
			break;
		const struct layer *l = &m->layers[il];
		a->xn = carve(&at, C * E);
		a->qraw = l->q_norm.data ? carve(&at, C * (size_t)t->QK) : NULL;
		a->kraw = l->k_norm.data ? carve(&at, C * (size_t)t->KV) : NULL;
		a->q = carve(&at, C * (size_t)t->QK);
		a->k = carve(&at, C * (size_t)t->KV);
		a->v = carve(&at, C * (size_t)t->VV);
		a->att = carve(&at, C * (size_t)t->OV);
		a->xmid = carve(&at, C * E);
		a->xn2 = carve(&at, C * E);
		if (l->exp_gate) {
			carve_moe(&m->hp, &at, C, &a->moe);
			const struct tmoe_lora *xl = t->xmap ? &t->xmap[il] : NULL;
			const size_t rows = C * (size_t)m->hp.n_expert_used;
			a->moe.xr = xl && (xl->x[0] || xl->x[1]) ? carve(&at, rows * E) : NULL;
			for (int j = 0; j < 3; j++)
				a->moe.lu[j] = xl && xl->x[j] ? carve(&at, rows * R) : NULL;
		} else {
			a->g = carve(&at, C * (size_t)t->F);
			a->u = carve(&at, C * (size_t)t->F);
			a->h = carve(&at, C * (size_t)t->F);
		}
		a->ao = l->attn_post_norm.data ? carve(&at, C * E) : NULL;
		a->fo = l->ffn_post_norm.data ? carve(&at, C * E) : NULL;
		for (int r = 0; r < N_ROLE; r++)
			a->lu[r] = t->lmap[il * N_ROLE + r] ? carve(&at, C * R) : NULL;
	}
	return at.used;
}

/* Lays out the backward's scratch (base NULL: measures). */
static size_t layout_scratch(struct hearth_trainer *t, float *base)
{
	const size_t C = (size_t)t->p.n_ctx, E = (size_t)t->E, nh = (size_t)t->m->hp.n_head;
	const struct hparams *h = &t->m->hp;
	int64_t wide = t->E > t->OV ? (t->E > t->F ? t->E : t->F) : (t->OV > t->F ? t->OV : t->F);
	wide = h->n_expert > 0 && h->n_ff_exp > wide ? h->n_ff_exp : wide;
	struct carver at = { base, 0 };
	if (h->n_expert > 0) {
		const size_t X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, F = (size_t)h->n_ff_exp;
		t->ms.rows = carve(&at, C * K * E);
		t->ms.dact = carve(&at, C * K * F);
		t->ms.dg = carve(&at, C * K * F);
		t->ms.du = carve(&at, C * K * F);
		t->ms.dw = carve(&at, C * K);
		t->ms.dlogits = carve(&at, C * X);
		t->ms.route = carve(&at, X);
		t->ms.next = carve_i32(&at, X);
		t->ms.ldu = t->xmap ? carve(&at, C * K * (size_t)t->p.rank) : NULL;
	}
	t->dx = carve(&at, C * E);
	t->dxn = carve(&at, C * E);
	t->tmp = carve(&at, C * E);
	t->dq = carve(&at, C * (size_t)t->QK);
	t->dk = carve(&at, C * (size_t)t->KV);
	t->dv = carve(&at, C * (size_t)t->VV);
	t->datt = carve(&at, C * (size_t)t->OV);
	t->dg = carve(&at, C * (size_t)t->F);
	t->du = carve(&at, C * (size_t)t->F);
	t->dh = carve(&at, C * (size_t)t->F);
	t->ldu = carve(&at, C * (size_t)t->p.rank);
	t->hu = carve(&at, HEAD_ROWS * (size_t)t->p.rank);
	t->mm = carve(&at, (size_t)pool_size(t->pool) * (size_t)tmm_scratch_floats(wide));
	t->xf = carve(&at, HEAD_ROWS * E);
	t->dxf = carve(&at, HEAD_ROWS * E);
	t->logits = carve(&at, HEAD_ROWS * (size_t)t->V);
	t->attn.p = carve(&at, nh * C * C);
	t->attn.ds = carve(&at, nh * C * C);
	t->dlogits = t->m->hp.final_softcap > 0 ? carve(&at, HEAD_ROWS * (size_t)t->V) : NULL;
	return at.used;
}

/* Allocates n floats into *out after checking the count against overflow. */
static int alloc_floats(float **out, size_t n, const char *what, struct hearth_err *err)
{
	if (n > SIZE_MAX / sizeof(float) || !(*out = malloc(n * sizeof(float))))
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory for %s (%.1f MiB)", what,
			       (double)n * sizeof(float) / 1048576.0);
	return 0;
}

/* Refuses activations and scratch larger than the machine's memory: the
 * allocation could succeed (overcommit) and the process be killed when the
 * pages are touched. */
static int check_memory(struct hearth_trainer *t, struct hearth_err *err)
{
	const double need = ((double)layout_acts(t, NULL) + (double)layout_scratch(t, NULL)) * sizeof(float);
	const double have = machine_bytes();
	if (have > 0 && need > have)
		return err_set(err, HEARTH_ENOMEM, "trainer: %d tokens need %.1f GiB of activations, more than this "
			       "machine's %.1f GiB", t->p.n_ctx, need / 1073741824.0, have / 1073741824.0);
	return 0;
}

static int check_params(const struct hearth_trainer_params *p, struct hearth_err *err)
{
	if (p->rank < 1 || p->rank > TRAIN_MAX_RANK)
		return err_set(err, HEARTH_EINVAL, "trainer: rank %d is outside 1..%d", p->rank, TRAIN_MAX_RANK);
	if (p->n_ctx < 1 || p->n_ctx > TRAIN_MAX_CTX)
		return err_set(err, HEARTH_EINVAL, "trainer: n_ctx %d is outside 1..%d", p->n_ctx, TRAIN_MAX_CTX);
	if (p->n_threads < 0 || p->n_threads > 512)
		return err_set(err, HEARTH_EINVAL, "trainer: n_threads %d is outside 0..512", p->n_threads);
	if (p->targets & ~((unsigned)HEARTH_TRAIN_OUTPUT * 2 - 1))
		return err_set(err, HEARTH_EINVAL, "trainer: unknown target bits 0x%x", p->targets);
	if (!isfinite(p->alpha))
		return err_set(err, HEARTH_EINVAL, "trainer: alpha is not finite");
	return 0;
}

static bool same_rope(const struct hparams *a, const struct hparams *b)
{
	return a->rope_base == b->rope_base && a->rope_freq_scale == b->rope_freq_scale &&
	       a->yarn_corr[0] == b->yarn_corr[0] && a->yarn_corr[1] == b->yarn_corr[1] && a->yarn_mscale == b->yarn_mscale;
}

/* The rope (cos, sin) tables for n_ctx positions: one per distinct layer
 * rope (filled once), layers sharing it pointing to it; the frequency
 * factors forward.c uses for a context of n_ctx tokens. */
static int make_rope(struct hearth_trainer *t, struct hearth_err *err)
{
	const struct hearth_model *m = t->m;
	const int L = m->hp.n_layer, nr = m->hp.n_rot;
	const size_t per = (size_t)t->p.n_ctx * (size_t)nr;
	const float *ff = block_rope_factors(m, t->p.n_ctx);
	int n_tab = 0;
	int *tab = calloc((size_t)L, sizeof *tab);
	t->cs = calloc((size_t)L, sizeof *t->cs);
	if (!tab || !t->cs) {
		free(tab);
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
	}
	for (int il = 0; il < L; il++) {
		const struct hparams a = block_layer_rope(m, il);
		tab[il] = n_tab;
		for (int j = 0; j < il; j++) {
			const struct hparams b = block_layer_rope(m, j);
			if (same_rope(&a, &b)) {
				tab[il] = tab[j];
				break;
			}
		}
		n_tab += tab[il] == n_tab;
	}
	int rc = alloc_floats(&t->cs_mem, (size_t)n_tab * per + 1, "the rope tables", err);
	for (int il = 0, done = 0; il < L && !rc; il++) {
		float *cs = t->cs_mem + (size_t)tab[il] * per;
		t->cs[il] = cs;
		if (tab[il] < done) /* a table an earlier layer filled */
			continue;
		done++;
		const struct hparams hl = block_layer_rope(m, il);
		for (int32_t pp = 0; pp < t->p.n_ctx; pp++)
			block_rope_cs(pp, nr, &hl, ff, cs + (size_t)pp * (size_t)nr);
	}
	free(tab);
	return rc;
}

int hearth_trainer_new(struct hearth_trainer **out, const struct hearth_model *m, const struct hearth_trainer_params *p,
		       struct hearth_err *err)
{
	const struct hearth_trainer_params d = p ? *p : hearth_trainer_default_params();
	struct hearth_trainer *t;
	int rc;

	*out = NULL;
	if ((rc = check_params(&d, err)) || (rc = check_model(m, err)))
		return rc;
	if ((d.targets & HEARTH_TRAIN_OUTPUT) && m->output.data == m->tok_embd.data)
		return err_set(err, HEARTH_EUNSUPPORTED, "trainer: the output head shares the token embedding matrix: no adapter on it yet");
	/* the attention's two [n_head][n_ctx][n_ctx] buffers bound n_ctx first */
	if ((double)m->hp.n_head * d.n_ctx * d.n_ctx * 2 * sizeof(float) > (double)SIZE_MAX / 4)
		return err_set(err, HEARTH_ENOMEM, "trainer: n_ctx %d is too large for the attention's buffers", d.n_ctx);
	if (!(t = calloc(1, sizeof *t)))
		return err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
	const struct hparams *h = &m->hp;
	t->m = m;
	t->p = d;
	t->E = h->n_embd;
	t->QK = (int64_t)h->n_head * h->head_dim_k;
	t->KV = (int64_t)h->n_head_kv * h->head_dim_k;
	t->VV = (int64_t)h->n_head_kv * h->head_dim_v;
	t->OV = (int64_t)h->n_head * h->head_dim_v;
	t->F = h->n_ff;
	t->V = h->n_vocab;
	if ((rc = pool_new(&t->pool, d.n_threads ? d.n_threads : cpu_count(), err)))
		goto fail;
	if ((rc = make_lora(t, err)))
		goto fail;
	if (!(t->acts = calloc((size_t)h->n_layer + 1, sizeof *t->acts))) {
		rc = err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
		goto fail;
	}
	if ((rc = check_memory(t, err)) ||
	    (rc = alloc_floats(&t->acts_mem, layout_acts(t, NULL), "the activations", err)) ||
	    (rc = alloc_floats(&t->scratch_mem, layout_scratch(t, NULL), "the backward's scratch", err)))
		goto fail;
	layout_acts(t, t->acts_mem);
	layout_scratch(t, t->scratch_mem);
	t->pos = malloc(5 * (size_t)d.n_ctx * sizeof *t->pos);
	if (!t->pos) {
		rc = err_set(err, HEARTH_ENOMEM, "trainer: out of memory");
		goto fail;
	}
	t->lo0 = t->pos + d.n_ctx;
	t->lo = t->lo0 + d.n_ctx;
	t->rows = t->lo + d.n_ctx;
	t->labels = t->rows + d.n_ctx;
	if ((rc = make_rope(t, err)))
		goto fail;
	*out = t;
	return 0;
fail:
	hearth_trainer_free(t);
	return rc;
}

void hearth_trainer_free(struct hearth_trainer *t)
{
	if (!t)
		return;
	pool_free(t->pool);
	free(t->lora);
	free(t->views);
	free(t->lmap);
	free(t->xviews);
	free(t->xmap);
	free(t->cs_mem);
	free(t->cs);
	free(t->params);
	free(t->acts);
	free(t->acts_mem);
	free(t->scratch_mem);
	free(t->pos);
	free(t);
}

int32_t hearth_trainer_n_lora(const struct hearth_trainer *t) { return t->n_lora; }

const struct hearth_model *trainer_model(const struct hearth_trainer *t) { return t->m; }

int32_t trainer_n_ctx(const struct hearth_trainer *t) { return t->p.n_ctx; }

void hearth_trainer_lora(struct hearth_trainer *t, int32_t i, struct hearth_lora_tensor *out)
{
	const struct tlora *l = &t->lora[i];
	*out = (struct hearth_lora_tensor){ .weight = l->name, .n_in = l->n_in, .n_out = l->n_out, .rank = l->rank,
					    .scale = l->scale, .a = l->a, .b = l->b, .grad_a = l->ga, .grad_b = l->gb,
					    .n_expert = l->n_expert };
}

void hearth_trainer_set_stop(struct hearth_trainer *t, hearth_trainer_stop_fn fn, void *data)
{
	t->stop = fn;
	t->stop_data = data;
}

/* Whether the caller's stop check asks the pass to end (an error set then). */
static bool stopped(const struct hearth_trainer *t, int il, bool backward, struct hearth_err *err)
{
	if (!t->stop || !t->stop(t->stop_data))
		return false;
	err_set(err, HEARTH_ESHUTDOWN, "trainer: the pass was stopped before layer %d of the %s", il,
		backward ? "backward" : "forward");
	return true;
}

void hearth_trainer_zero_grad(struct hearth_trainer *t)
{
	for (int32_t i = 0; i < t->n_lora; i++) {
		const struct tlora *l = &t->lora[i];
		memset(l->ga, 0, (size_t)l->rank * (size_t)l->n_in * (size_t)l->n_expert * sizeof(float));
		memset(l->gb, 0, (size_t)l->rank * (size_t)l->n_out * (size_t)l->n_expert * sizeof(float));
	}
}

/* ---- the forward --------------------------------------------------------------- */

/* y = x W^T (+ the adapter) (+ bias) for n rows; u keeps the adapter's A x. */
static void linear(struct hearth_trainer *t, const struct tensor *w, const struct tlora *lo, float *u,
		   const struct tensor *bias, const float *x, int n, float *y)
{
	tmm_forward(t->pool, t->mm, w, x, n, y);
	if (lo)
		tlora_forward(t->pool, lo, x, n, u, y);
	if (bias && bias->data) {
		const float *b = bias->data;
		for (int i = 0; i < n; i++)
			for (int64_t j = 0; j < w->ne[1]; j++)
				y[(size_t)i * (size_t)w->ne[1] + (size_t)j] += b[j];
	}
}

static void add_rows(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

/* Layer il's attention: each row's first visible row (its sequence's
 * start, or its window's: a row at position p sees p - n_swa + 1 .. p),
 * soft-cap and sinks. */
static void attn_setup(struct hearth_trainer *t, int il, int n)
{
	const struct layer *l = &t->m->layers[il];
	for (int i = 0; i < n; i++)
		t->lo[i] = l->n_swa > 0 && i - l->n_swa + 1 > t->lo0[i] ? i - l->n_swa + 1 : t->lo0[i];
	t->attn.softcap = t->m->hp.attn_softcap;
	t->attn.sinks = l->attn_sinks.data;
}

/* A block's output o joins the residual stream: y = x + o, or with a
 * post-norm (kept: o into keep) y = x + rms_norm(o) post. */
static void residual(struct hearth_trainer *t, const struct tensor *post, float *o, float *keep, const float *x,
		     int n, float *y)
{
	const size_t nE = (size_t)n * (size_t)t->E;
	if (post->data) {
		memcpy(keep, o, nE * sizeof(float));
		tnorm_forward(t->pool, keep, post->data, n, t->E, t->m->hp.rms_eps, o);
	}
	add_rows(y, x, o, nE);
}

/* The gradient with respect to a block's output from dy, that of the
 * residual stream after it: dy itself, or through the post-norm into t->tmp. */
static const float *residual_back(struct hearth_trainer *t, const struct tensor *post, const float *keep,
				  const float *dy, int n)
{
	if (!post->data)
		return dy;
	tnorm_backward(t->pool, keep, post->data, dy, n, t->E, t->m->hp.rms_eps, false, t->tmp);
	return t->tmp;
}

/* The attention half of layer il: xmid = x + attention(rms_norm(x)). */
static void attn_forward(struct hearth_trainer *t, int il, int n)
{
	const struct hearth_model *m = t->m;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	struct tacts *a = &t->acts[il];
	struct tlora *const *lm = &t->lmap[il * N_ROLE];

	attn_setup(t, il, n);
	tnorm_forward(t->pool, a->x, l->attn_norm.data, n, t->E, h->rms_eps, a->xn);
	linear(t, &l->wq, lm[0], a->lu[0], &l->bq, a->xn, n, a->q);
	linear(t, &l->wk, lm[1], a->lu[1], &l->bk, a->xn, n, a->k);
	linear(t, &l->wv, lm[2], a->lu[2], &l->bv, a->xn, n, a->v);
	if (a->qraw) {
		memcpy(a->qraw, a->q, (size_t)n * (size_t)t->QK * sizeof(float));
		tnorm_forward(t->pool, a->qraw, l->q_norm.data, n * h->n_head, h->head_dim_k, h->rms_eps, a->q);
	}
	if (a->kraw) {
		memcpy(a->kraw, a->k, (size_t)n * (size_t)t->KV * sizeof(float));
		tnorm_forward(t->pool, a->kraw, l->k_norm.data, n * h->n_head_kv, h->head_dim_k, h->rms_eps, a->k);
	}
	trope_apply(t->pool, a->q, n, h->n_head, h->head_dim_k, h->n_rot, h->rope_type, t->cs[il], t->pos, false);
	trope_apply(t->pool, a->k, n, h->n_head_kv, h->head_dim_k, h->n_rot, h->rope_type, t->cs[il], t->pos, false);
	tattn_forward(t->pool, &t->attn, a->q, a->k, a->v, a->att);
	linear(t, &l->wo, lm[3], a->lu[3], &l->bo, a->att, n, t->tmp);
	residual(t, &l->attn_post_norm, t->tmp, a->ao, a->x, n, a->xmid);
}

/* The feed-forward half of layer il: x_(il+1) = xmid + ffn(rms_norm(xmid)). */
static void ffn_forward(struct hearth_trainer *t, int il, int n)
{
	const struct hearth_model *m = t->m;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	struct tacts *a = &t->acts[il];
	struct tlora *const *lm = &t->lmap[il * N_ROLE];

	tnorm_forward(t->pool, a->xmid, l->ffn_norm.data, n, t->E, h->rms_eps, a->xn2);
	if (l->exp_gate) {
		tmoe_forward_lora(t->pool, t->mm, h, l, t->xmap ? &t->xmap[il] : NULL, a->xn2, n, &a->moe, &t->ms, t->tmp);
		residual(t, &l->ffn_post_norm, t->tmp, a->fo, a->xmid, n, t->acts[il + 1].x);
		return;
	}
	linear(t, &l->ffn_gate, lm[4], a->lu[4], NULL, a->xn2, n, a->g);
	linear(t, &l->ffn_up, lm[5], a->lu[5], NULL, a->xn2, n, a->u);
	(h->ffn_act == FFN_GELU ? tgeglu_forward : tswiglu_forward)(t->pool, a->g, a->u, (int64_t)n * t->F, a->h);
	linear(t, &l->ffn_down, lm[6], a->lu[6], NULL, a->h, n, t->tmp);
	residual(t, &l->ffn_post_norm, t->tmp, a->fo, a->xmid, n, t->acts[il + 1].x);
}

/* ---- the backward -------------------------------------------------------------- */

/* dx += dy W (+ the adapter's; its gradients added) for n rows of input x. */
static void linear_back(struct hearth_trainer *t, const struct tensor *w, const struct tlora *lo, const float *u,
			const float *x, const float *dy, int n, float *dx)
{
	tmm_backward(t->pool, t->mm, w, dy, n, dx);
	if (lo)
		tlora_backward(t->pool, lo, x, u, dy, n, t->ldu, dx);
}

/* The feed-forward half's backward: t->dx: d loss / d x_(il+1) in, d loss / d xmid out. */
static void ffn_backward(struct hearth_trainer *t, int il, int n)
{
	const struct hearth_model *m = t->m;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	const struct tacts *a = &t->acts[il];
	struct tlora *const *lm = &t->lmap[il * N_ROLE];

	/* the FFN: dx is also d loss / d (its output) */
	if (l->exp_gate) {
		tmoe_backward_lora(t->pool, t->mm, h, l, t->xmap ? &t->xmap[il] : NULL, &a->moe,
				   residual_back(t, &l->ffn_post_norm, a->fo, t->dx, n), n, &t->ms, t->dxn);
		tnorm_backward(t->pool, a->xmid, l->ffn_norm.data, t->dxn, n, t->E, h->rms_eps, true, t->dx);
		return;
	}
	memset(t->dh, 0, (size_t)n * (size_t)t->F * sizeof(float));
	linear_back(t, &l->ffn_down, lm[6], a->lu[6], a->h, residual_back(t, &l->ffn_post_norm, a->fo, t->dx, n), n, t->dh);
	(h->ffn_act == FFN_GELU ? tgeglu_backward : tswiglu_backward)(t->pool, a->g, a->u, t->dh, (int64_t)n * t->F, t->dg,
								     t->du);
	memset(t->dxn, 0, (size_t)n * (size_t)t->E * sizeof(float));
	linear_back(t, &l->ffn_gate, lm[4], a->lu[4], a->xn2, t->dg, n, t->dxn);
	linear_back(t, &l->ffn_up, lm[5], a->lu[5], a->xn2, t->du, n, t->dxn);
	tnorm_backward(t->pool, a->xmid, l->ffn_norm.data, t->dxn, n, t->E, h->rms_eps, true, t->dx);
}

/* The attention half's backward: t->dx: d loss / d xmid in, d loss / d x_il out. */
static void attn_backward(struct hearth_trainer *t, int il, int n)
{
	const struct hearth_model *m = t->m;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	const struct tacts *a = &t->acts[il];
	struct tlora *const *lm = &t->lmap[il * N_ROLE];

	/* dx is also d loss / d (att Wo), or that of its post-norm */
	attn_setup(t, il, n);
	memset(t->datt, 0, (size_t)n * (size_t)t->OV * sizeof(float));
	linear_back(t, &l->wo, lm[3], a->lu[3], a->att, residual_back(t, &l->attn_post_norm, a->ao, t->dx, n), n, t->datt);
	tattn_backward(t->pool, &t->attn, a->q, a->k, a->v, t->datt, t->dq, t->dk, t->dv);
	trope_apply(t->pool, t->dq, n, h->n_head, h->head_dim_k, h->n_rot, h->rope_type, t->cs[il], t->pos, true);
	trope_apply(t->pool, t->dk, n, h->n_head_kv, h->head_dim_k, h->n_rot, h->rope_type, t->cs[il], t->pos, true);
	if (a->qraw)
		tnorm_backward(t->pool, a->qraw, l->q_norm.data, t->dq, n * h->n_head, h->head_dim_k, h->rms_eps, false, t->dq);
	if (a->kraw)
		tnorm_backward(t->pool, a->kraw, l->k_norm.data, t->dk, n * h->n_head_kv, h->head_dim_k, h->rms_eps, false,
			       t->dk);
	memset(t->dxn, 0, (size_t)n * (size_t)t->E * sizeof(float));
	linear_back(t, &l->wq, lm[0], a->lu[0], a->xn, t->dq, n, t->dxn);
	linear_back(t, &l->wk, lm[1], a->lu[1], a->xn, t->dk, n, t->dxn);
	linear_back(t, &l->wv, lm[2], a->lu[2], a->xn, t->dv, n, t->dxn);
	tnorm_backward(t->pool, a->x, l->attn_norm.data, t->dxn, n, t->E, h->rms_eps, true, t->dx);
}

/* The output head over the labelled rows, HEAD_ROWS at a time: the loss sum
 * and, with backward, t->dx = d loss / d x_L (weight: 1 / labelled rows). */
static double head(struct hearth_trainer *t, int n, int n_lab, bool backward)
{
	const struct hearth_model *m = t->m;
	const int64_t E = t->E;
	const float *xl = t->acts[m->hp.n_layer].x;
	const float weight = 1.0f / (float)n_lab;
	double sum = 0;
	if (backward)
		memset(t->dx, 0, (size_t)n * (size_t)E * sizeof(float));
	for (int r0 = 0; r0 < n_lab; r0 += HEAD_ROWS) {
		const int nr = n_lab - r0 < HEAD_ROWS ? n_lab - r0 : HEAD_ROWS;
		for (int k = 0; k < nr; k++)
			memcpy(t->tmp + (size_t)k * (size_t)E, xl + (size_t)t->rows[r0 + k] * (size_t)E, (size_t)E * sizeof(float));
		tnorm_forward(t->pool, t->tmp, m->output_norm.data, nr, E, m->hp.rms_eps, t->xf);
		tmm_forward(t->pool, t->mm, &m->output, t->xf, nr, t->logits);
		if (t->lout)
			tlora_forward(t->pool, t->lout, t->xf, nr, t->hu, t->logits);
		const float cap = m->hp.final_softcap;
		float *dl = cap > 0 ? t->dlogits : t->logits; /* the capped logits stay for the cap's backward */
		if (cap > 0)
			tsoftcap_forward(t->pool, t->logits, (int64_t)nr * t->V, cap);
		sum += tloss_forward_backward(t->pool, t->logits, t->labels + r0, nr, t->V, weight, backward ? dl : NULL);
		if (!backward)
			continue;
		if (cap > 0)
			tsoftcap_backward(t->pool, t->logits, dl, (int64_t)nr * t->V, cap);
		memset(t->dxf, 0, (size_t)nr * (size_t)E * sizeof(float));
		tmm_backward(t->pool, t->mm, &m->output, dl, nr, t->dxf);
		if (t->lout)
			tlora_backward(t->pool, t->lout, t->xf, t->hu, dl, nr, t->ldu, t->dxf);
		tnorm_backward(t->pool, t->tmp, m->output_norm.data, t->dxf, nr, E, m->hp.rms_eps, false, t->xf);
		for (int k = 0; k < nr; k++)
			memcpy(t->dx + (size_t)t->rows[r0 + k] * (size_t)E, t->xf + (size_t)k * (size_t)E, (size_t)E * sizeof(float));
	}
	return sum;
}

/* ---- a pass ---------------------------------------------------------------------- */

/* Checks the batch and fills positions, first visible rows, labelled rows;
 * returns the number of labelled rows, or a negative HEARTH_E*. */
static int prepare(struct hearth_trainer *t, const struct hearth_train_batch *b, struct hearth_err *err)
{
	const int32_t V = t->m->hp.n_vocab;
	int n_lab = 0;
	if (!b || b->n < 1 || b->n > t->p.n_ctx)
		return err_set(err, HEARTH_EINVAL, "trainer: batch of %d tokens (1..%d)", b ? b->n : 0, t->p.n_ctx);
	if ((!b->tokens && !b->embd) || !b->labels)
		return err_set(err, HEARTH_EINVAL, "trainer: a batch needs tokens (or embeddings) and labels");
	for (int i = 0; i < b->n; i++) {
		if (b->tokens && (b->tokens[i] < 0 || b->tokens[i] >= V))
			return err_set(err, HEARTH_EINVAL, "trainer: token %d at %d is outside the vocabulary (%d)", b->tokens[i], i, V);
		if (b->labels[i] < -1 || b->labels[i] >= V)
			return err_set(err, HEARTH_EINVAL, "trainer: label %d at %d is outside the vocabulary (%d)", b->labels[i], i, V);
		const int32_t p = b->pos ? b->pos[i] : i;
		if (p != 0 && (i == 0 || p != t->pos[i - 1] + 1))
			return err_set(err, HEARTH_EINVAL, "trainer: position %d at %d neither starts a sequence (0) nor follows %d", p,
				       i, i ? t->pos[i - 1] : -1);
		t->pos[i] = p;
		t->lo0[i] = i - p;
		if (b->labels[i] >= 0) {
			t->rows[n_lab] = i;
			t->labels[n_lab++] = b->labels[i];
		}
	}
	if (n_lab == 0)
		return err_set(err, HEARTH_EINVAL, "trainer: no position of the batch has a label");
	return n_lab;
}

/* x_0: the tokens' embedding rows or the caller's, times the model's scale. */
static void embed(struct hearth_trainer *t, const struct hearth_train_batch *b)
{
	const struct hearth_model *m = t->m;
	const int64_t E = t->E;
	const size_t erow = qtype_row_size(m->tok_embd.type, E);
	float *x = t->acts[0].x;
	for (int i = 0; i < b->n; i++) {
		float *xi = x + (size_t)i * (size_t)E;
		if (b->embd)
			memcpy(xi, b->embd + (size_t)i * (size_t)E, (size_t)E * sizeof(float));
		else
			kern_ops(m->tok_embd.type)->to_float((const char *)m->tok_embd.data + (size_t)b->tokens[i] * erow, xi, E);
		if (m->hp.embd_scale != 1.0f)
			for (int64_t j = 0; j < E; j++)
				xi[j] *= m->hp.embd_scale;
	}
}

int hearth_trainer_run(struct hearth_trainer *t, const struct hearth_train_batch *b, bool backward, double *loss,
		       float *grad_embd, struct hearth_err *err)
{
	const struct hparams *h = &t->m->hp;
	const int n_lab = prepare(t, b, err);
	if (n_lab < 0)
		return n_lab;
	const int n = b->n;
	t->attn = (struct tattn){ .n = n, .n_head = h->n_head, .n_kv = h->n_head_kv, .dk = h->head_dim_k, .dv = h->head_dim_v,
				  .scale = h->attn_scale > 0 ? h->attn_scale : 1.0f / sqrtf((float)h->head_dim_k),
				  .lo = t->lo, .p = t->attn.p, .ds = t->attn.ds };
	embed(t, b);
	for (int il = 0; il < h->n_layer; il++) {
		if (stopped(t, il, false, err))
			return HEARTH_ESHUTDOWN;
		attn_forward(t, il, n);
		ffn_forward(t, il, n);
	}
	*loss = head(t, n, n_lab, backward) / n_lab;
	if (!backward)
		return 0;
	for (int il = h->n_layer - 1; il >= 0; il--) {
		if (stopped(t, il, true, err))
			return HEARTH_ESHUTDOWN;
		ffn_backward(t, il, n);
		attn_backward(t, il, n);
	}
	if (grad_embd)
		for (size_t j = 0; j < (size_t)n * (size_t)t->E; j++)
			grad_embd[j] = t->dx[j] * h->embd_scale;
	return 0;
}
