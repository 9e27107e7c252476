/*
 * forward.c - the batched forward pass (see forward.h).
 *
 *   x = embed(tokens) (* embd_scale)                       [B, n_embd]
 *   per layer:  h = rms_norm(x) * attn_norm
 *               q,k,v = h Wq (+bq), h Wk (+bk), h Wv (+bv)  (qwen3, gemma3: per-head q/k norm)
 *               rope(q, k) at each token's position; k, v -> the paged cache
 *               a = attention(q, own sequence's cache[w .. pos]) Wo   (causal, GQA;
 *                   w = 0, or pos - n_swa + 1 in a sliding-window layer;
 *                   gpt-oss: a sink logit per head joins each softmax)
 *               x += a (post-norm: x += rms_norm(a) * attn_post_norm)
 *               h = rms_norm(x) * ffn_norm
 *               f = (act(h Wgate) * (h Wup)) Wdown         (act: silu, or gelu),
 *                   or the mixture of the experts the router picks (see
 *                   moe.h; grouped by expert)
 *               x += f (post-norm: x += rms_norm(f) * ffn_post_norm)
 *               x += strength * dir[il]  (a steered sequence's control vector, in its layer range)
 *   logits = rms_norm(x[out_rows]) * output_norm  Woutput  (soft-capped: c tanh(logits / c))
 *
 * LoRA adapters (lora.h): after each product with a matrix some token's
 * adapters adapt (q, k, v, o, gate, up, down, the output head), each such
 * token's rows get every adapter's low-rank product added (lora_apply); an
 * expert stack's adapters add, to each (token, expert) row, that expert's
 * product (lora_apply_exps); and
 * the token embedding's adapters join the looked-up rows before the scale;
 * tokens without adapters are untouched, so a batch may mix any adapters.
 *
 * A tap (fwd_set_tap), when set, sees the input of every weight product
 * before it runs, and an expert tap (fwd_set_expert_tap) each expert's rows
 * (importance matrices collect through them); a layer function
 * (fwd_set_layer_fn) sees x after every layer (hidden states, the logit lens).
 */
#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/thread.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "blocks.h"
#include "forward.h"
#include "lora.h"
#include "moe.h"

/* An attention job: a run of one sequence's consecutive positions in the batch. */
struct attn_job {
	int i0, n_tok; /* batch entries i0 .. i0 + n_tok - 1 */
};

/* A thread's attention buffers: a job's rows and a tile of the cache. */
struct attn_scratch {
	float *q, *o, *mx, *l; /* [rows][dk], [rows][dv], [rows], [rows] */
	int32_t *n;            /* [rows] */
	float *kt, *krow;      /* a tile as float: [dk][ATTN_TILE] keys, then [ATTN_TILE][dv] values; [dk] */
};

struct fwd {
	const struct hearth_model *m;
	struct kv_cache *kv;
	int32_t n_batch;
	struct pool *pool;
	/* scratch for n_batch tokens */
	float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
	void *xq;      /* activations converted to a weight's dot type */
	struct attn_job *attn_jobs; /* [n_batch] */
	int n_attn_jobs, attn_tok;  /* jobs of this batch; most tokens per job */
	struct attn_scratch *attn_scratch; /* per thread */
	const struct fwd_batch *b; /* the batch being run */
	const float *xq_of;        /* the activations xq holds (NULL: none) ... */
	int xq_type;               /* ... in this dot type */
	hearth_matmul_tap_fn tap;  /* sees each product's input (NULL: none) */
	void *tap_data;
	hearth_expert_tap_fn expert_tap; /* sees each expert's rows (NULL: none) */
	void *expert_tap_data;
	/* mixture of experts: a batch's n * n_expert_used (token, slot) pairs,
	 * grouped by expert into rows (expert e's are rows moe_off[e] ..
	 * moe_off[e] + moe_count[e] - 1, in token order) */
	float *moe_logits;          /* [n_batch][n_expert] router logits */
	int32_t *moe_ids;           /* [n_batch][n_expert_used] chosen experts, best first */
	float *moe_w;               /* [n_batch][n_expert_used] their weights */
	int32_t *moe_row;           /* [n_batch][n_expert_used] each pair's row */
	int32_t *moe_tok, *moe_slot; /* [rows]: each row's token and slot (for the expert tap) */
	int32_t *moe_count, *moe_off, *moe_next; /* [n_expert] */
	float *moe_x, *moe_y;       /* [rows][n_embd]: the rows' inputs, their experts' outputs */
	float *moe_g, *moe_u;       /* [rows][n_ff_exp]: gate (then the activation), up */
	float *moe_scratch;         /* [n_expert] per thread */
	struct mm_part *moe_parts;  /* [2 n_expert] */
	int32_t *moe_exp;           /* [rows]: each row's expert */
	const struct fwd_lora **moe_lora; /* [rows]: each row's token's adapters (a batch with adapters) */
	const float *rope_factors; /* rope frequency factors (n_rot/2), or NULL */
	fwd_layer_fn layer_fn;     /* sees the residual stream after each layer (NULL: none) */
	void *layer_data;
	const struct fwd_lora **lora_rows; /* [n_batch] the adapters of each output row */
};

void fwd_set_n_ctx_seq(struct fwd *f, int32_t n_ctx_seq)
{
	f->rope_factors = block_rope_factors(f->m, n_ctx_seq);
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static int moe_alloc(struct fwd *f, size_t B, size_t X, size_t K, size_t E, size_t FX);

int fwd_new(struct fwd **out, const struct hearth_model *m, struct kv_cache *kv, int32_t n_batch, int n_threads,
	    struct hearth_err *err)
{
	const struct hparams *h = &m->hp;
	struct fwd *f = calloc(1, sizeof *f);
	int rc;

	*out = NULL;
	if (!f)
		return err_set(err, HEARTH_ENOMEM, "forward: out of memory");
	f->m = m;
	f->kv = kv;
	f->n_batch = n_batch;
	f->rope_factors = block_rope_factors(m, (int64_t)kv->n_blocks * kv->block_size);
	if ((rc = pool_new(&f->pool, n_threads, err))) {
		free(f);
		return rc;
	}
	const size_t B = (size_t)n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff;
	const size_t QK = (size_t)h->n_head * (size_t)h->head_dim_k, OV = (size_t)h->n_head * (size_t)h->head_dim_v;
	f->x = malloc(B * E * sizeof(float));
	f->xb = malloc(B * max_sz(E, OV) * sizeof(float));
	f->q = malloc(B * QK * sizeof(float));
	f->k = malloc(B * (size_t)kv->width_k * sizeof(float));
	f->v = malloc(B * (size_t)kv->width_v * sizeof(float));
	f->att = malloc(B * OV * sizeof(float));
	f->hb = malloc(B * F * sizeof(float));
	f->hb2 = malloc(B * F * sizeof(float));
	/* widest activation row in the widest dot type (f32), for every row of
	 * a product (a token's, or a (token, expert) pair's) */
	const size_t X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, FX = (size_t)h->n_ff_exp;
	const size_t rows_max = X ? B * K : B;
	f->xq = malloc(rows_max * max_sz(max_sz(max_sz(E, F), OV), FX) * sizeof(float) + 64);
	if (X && (rc = moe_alloc(f, B, X, K, E, FX))) {
		fwd_free(f);
		return err_set(err, HEARTH_ENOMEM, "forward: out of memory for the experts of a batch of %d tokens", n_batch);
	}
	/* a job holds up to 64 query rows (at least one token's group of heads) */
	const int G = h->n_head / h->n_head_kv;
	f->attn_tok = G >= 64 ? 1 : 64 / G;
	const size_t rows = (size_t)f->attn_tok * (size_t)G, dk = (size_t)h->head_dim_k, dv = (size_t)h->head_dim_v;
	f->attn_jobs = malloc(B * sizeof *f->attn_jobs);
	f->lora_rows = malloc(B * sizeof *f->lora_rows);
	f->attn_scratch = calloc((size_t)pool_size(f->pool), sizeof *f->attn_scratch);
	bool scratch_ok = f->attn_scratch != NULL;
	for (int i = 0; scratch_ok && i < pool_size(f->pool); i++) {
		struct attn_scratch *w = &f->attn_scratch[i];
		w->q = malloc(rows * dk * sizeof(float));
		w->o = malloc(rows * dv * sizeof(float));
		w->mx = malloc(rows * sizeof(float));
		w->l = malloc(rows * sizeof(float));
		w->n = malloc(rows * sizeof(int32_t));
		w->kt = malloc((dk + dv) * ATTN_TILE * sizeof(float));
		w->krow = malloc(dk * sizeof(float));
		scratch_ok = w->q && w->o && w->mx && w->l && w->n && w->kt && w->krow;
	}
	if (!scratch_ok || !f->attn_jobs || !f->lora_rows || !f->x || !f->xb || !f->q || !f->k || !f->v || !f->att || !f->hb || !f->hb2 || !f->xq) {
		fwd_free(f);
		return err_set(err, HEARTH_ENOMEM, "forward: out of memory for a batch of %d tokens", n_batch);
	}
	*out = f;
	return 0;
}

void fwd_free(struct fwd *f)
{
	if (!f)
		return;
	free(f->x);
	free(f->xb);
	free(f->q);
	free(f->k);
	free(f->v);
	free(f->att);
	free(f->hb);
	free(f->hb2);
	free(f->xq);
	free(f->attn_jobs);
	free(f->lora_rows);
	for (int i = 0; f->attn_scratch && i < pool_size(f->pool); i++) {
		struct attn_scratch *w = &f->attn_scratch[i];
		free(w->q);
		free(w->o);
		free(w->mx);
		free(w->l);
		free(w->n);
		free(w->kt);
		free(w->krow);
	}
	free(f->attn_scratch);
	void *moe[] = { f->moe_logits, f->moe_ids, f->moe_w, f->moe_row, f->moe_tok, f->moe_slot, f->moe_count,
			f->moe_off, f->moe_next, f->moe_x, f->moe_y, f->moe_g, f->moe_u, f->moe_scratch, f->moe_parts,
			f->moe_exp, (void *)f->moe_lora };
	for (size_t i = 0; i < sizeof moe / sizeof moe[0]; i++)
		free(moe[i]);
	pool_free(f->pool);
	free(f);
}

int32_t fwd_n_batch(const struct fwd *f) { return f->n_batch; }

void fwd_set_tap(struct fwd *f, hearth_matmul_tap_fn fn, void *user_data)
{
	f->tap = fn;
	f->tap_data = user_data;
}

void fwd_set_expert_tap(struct fwd *f, hearth_expert_tap_fn fn, void *user_data)
{
	f->expert_tap = fn;
	f->expert_tap_data = user_data;
}

struct pool *fwd_pool(struct fwd *f) { return f->pool; }

void fwd_set_layer_fn(struct fwd *f, fwd_layer_fn fn, void *data)
{
	f->layer_fn = fn;
	f->layer_data = data;
}

/* ---- matrix products ------------------------------------------------------ */

/* One weight matrix of a product: y[n_tok, ne1] = x[n_tok, ne0] W^T. */
struct mm_part {
	const struct tensor *w;
	const struct qtype_ops *ops;
	size_t w_row;   /* bytes per weight row */
	const void *xq; /* n_tok rows of the dot type, xq_row bytes each */
	size_t xq_row;
	int n_tok;
	float *y;
	int64_t unit;   /* rows per piece: MM_UNIT, or the packed layout's group */
	int64_t units;  /* pieces */
};

/* Products of one activation matrix with up to three weights (q, k, v; gate,
 * up), or of each expert's rows with its matrices, run as one task: threads
 * take chunks of rows from counters shared by all (see matmul_run), so a core
 * that falls behind (a busy neighbour, a slower memory channel) just takes
 * fewer chunks, and the whole task costs one meeting of the threads. */
#define MM_UNIT 16
#define MM_REGIONS 64
struct matmul_task {
	struct mm_part *part;
	int n_part;
	int64_t chunk;   /* units per grab */
	int64_t total;   /* units over all parts */
	int n_region;    /* contiguous regions of units, one per thread */
	struct {
		_Alignas(64) atomic_llong next; /* a line each: threads grab at once */
		int64_t end;
	} region[MM_REGIONS];
};

/* Rows r0 .. r1 of one part. */
static void mm_rows(const struct mm_part *p, int64_t r0, int64_t r1)
{
	const int64_t n_in = p->w->ne[0], n_out = p->w->ne[1];
	if (p->w->packed) {
		p->ops->gemm_packed(n_in, p->w->packed, r0, r1, p->xq, p->xq_row, p->n_tok, p->y, (size_t)n_out);
		return;
	}
	if (p->ops->gemm) {
		p->ops->gemm(n_in, p->w->data, p->w_row, r0, r1, p->xq, p->xq_row, p->n_tok, p->y, (size_t)n_out);
		return;
	}
	/* the weights of these rows stay in cache while every token passes */
	int i = 0;
	if (p->ops->vec_dot4)
		for (; i + 4 <= p->n_tok; i += 4)
			for (int64_t r = r0; r < r1; r++)
				p->ops->vec_dot4(n_in, &p->y[(size_t)i * (size_t)n_out + (size_t)r], (size_t)n_out,
						 (const char *)p->w->data + (size_t)r * p->w_row, (const char *)p->xq + (size_t)i * p->xq_row,
						 p->xq_row);
	for (; i < p->n_tok; i++)
		for (int64_t r = r0; r < r1; r++)
			p->ops->vec_dot(n_in, &p->y[(size_t)i * (size_t)n_out + (size_t)r], (const char *)p->w->data + (size_t)r * p->w_row,
					(const char *)p->xq + (size_t)i * p->xq_row);
}

/* Units u0 .. u1 (over all parts). */
static void mm_units(const struct matmul_task *t, int64_t u0, int64_t u1)
{
	for (int k = 0; k < t->n_part && u0 < u1; k++) { /* the range may span parts */
		const struct mm_part *p = &t->part[k];
		if (u0 < p->units) {
			const int64_t e = u1 < p->units ? u1 : p->units, n_out = p->w->ne[1];
			mm_rows(p, u0 * p->unit, e * p->unit < n_out ? e * p->unit : n_out);
			u0 = e;
		}
		u0 -= p->units;
		u1 -= p->units;
	}
}

/* Each thread owns one contiguous region of the rows and takes its chunks in
 * order, so its weights stream from memory as one run and the prefetchers
 * stay ahead (chunks dealt alternately to the threads restarted the stream at
 * every chunk: decoding ran up to a fifth slower whenever the memory had
 * bandwidth to spare); a thread done with its own region takes chunks from
 * the others', so a slower core is helped instead of waited for. */
static void matmul_run(void *arg, int ith, int nth)
{
	struct matmul_task *t = arg;
	(void)nth;
	for (int k = 0; k < t->n_region; k++) {
		const int r = (ith + k) % t->n_region;
		for (;;) {
			const int64_t u0 = atomic_fetch_add_explicit(&t->region[r].next, t->chunk, memory_order_relaxed);
			if (u0 >= t->region[r].end)
				break;
			mm_units(t, u0, u0 + t->chunk < t->region[r].end ? u0 + t->chunk : t->region[r].end);
		}
	}
}

/* Elementwise work this small runs on the calling thread: cheaper than a
 * meeting of the threads, each of which is a chance to wait for one that the
 * OS has preempted (a decoding token of a mixture of experts converts and
 * activates a few expert rows per layer). */
#define INLINE_ELEMS (1 << 15)

struct quant_task {
	const struct qtype_ops *ops;
	const float *x;
	void *xq;
	int64_t n_in;
	size_t xq_row;
	int n_tok;
};

static void quant_run(void *arg, int ith, int nth)
{
	const struct quant_task *t = arg;
	for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++)
		t->ops->dot_from_float(t->x + (size_t)i * (size_t)t->n_in, (char *)t->xq + (size_t)i * t->xq_row, t->n_in);
}

/* Converts x to the dot type of ops unless xq holds it already: products of
 * the same x reuse the conversion until a step writes new activations. */
static void quantize(struct fwd *f, const struct qtype_ops *ops, const float *x, int64_t n_in, int n_tok)
{
	if (f->xq_of == x && f->xq_type == ops->dot_type)
		return;
	struct quant_task q = { ops, x, f->xq, n_in, qtype_row_size(ops->dot_type, n_in), n_tok };
	if (n_tok < 2 || (int64_t)n_tok * n_in <= INLINE_ELEMS)
		quant_run(&q, 0, 1);
	else
		pool_run(f->pool, quant_run, &q);
	f->xq_of = x;
	f->xq_type = ops->dot_type;
}

/* The experts' scratch for B tokens of K of X experts; 0 or HEARTH_ENOMEM. */
static int moe_alloc(struct fwd *f, size_t B, size_t X, size_t K, size_t E, size_t FX)
{
	f->moe_logits = malloc(B * X * sizeof(float));
	f->moe_ids = malloc(B * K * sizeof(int32_t));
	f->moe_w = malloc(B * K * sizeof(float));
	f->moe_row = malloc(B * K * sizeof(int32_t));
	f->moe_tok = malloc(B * K * sizeof(int32_t));
	f->moe_slot = malloc(B * K * sizeof(int32_t));
	f->moe_count = malloc(X * sizeof(int32_t));
	f->moe_off = malloc(X * sizeof(int32_t));
	f->moe_next = malloc(X * sizeof(int32_t));
	f->moe_x = malloc(B * K * E * sizeof(float));
	f->moe_y = malloc(B * K * E * sizeof(float));
	f->moe_g = malloc(B * K * FX * sizeof(float));
	f->moe_u = malloc(B * K * FX * sizeof(float));
	f->moe_scratch = malloc((size_t)pool_size(f->pool) * X * sizeof(float));
	f->moe_parts = malloc(2 * X * sizeof(struct mm_part));
	f->moe_exp = malloc(B * K * sizeof(int32_t));
	f->moe_lora = malloc(B * K * sizeof *f->moe_lora);
	bool ok = f->moe_exp && f->moe_lora && f->moe_logits && f->moe_ids && f->moe_w && f->moe_row && f->moe_tok && f->moe_slot && f->moe_count &&
		  f->moe_off && f->moe_next && f->moe_x && f->moe_y && f->moe_g && f->moe_u && f->moe_scratch && f->moe_parts;
	return ok ? 0 : HEARTH_ENOMEM;
}

/* Runs the parts (their activations converted) as one task on the pool. */
static void matmul_parts(struct fwd *f, struct mm_part *part, int n_part)
{
	struct matmul_task t = { .part = part, .n_part = n_part };
	for (int k = 0; k < n_part; k++) {
		struct mm_part *p = &part[k];
		p->ops = kern_ops(p->w->type);
		p->w_row = qtype_row_size(p->w->type, p->w->ne[0]);
		p->unit = p->w->packed ? p->ops->pack_rows : MM_UNIT;
		p->units = (p->w->ne[1] + p->unit - 1) / p->unit;
		t.total += p->units;
	}
	/* about 32 grabs per thread: the last grab of a slower thread is
	 * what the others wait for (eight per thread left 5% of decoding
	 * waiting, 32 leave 3%) */
	const int64_t nth = pool_size(f->pool);
	t.chunk = t.total / (32 * nth) > 1 ? t.total / (32 * nth) : 1;
	t.n_region = nth < MM_REGIONS ? (int)nth : MM_REGIONS;
	for (int r = 0; r < t.n_region; r++) {
		atomic_init(&t.region[r].next, t.total * r / t.n_region);
		t.region[r].end = t.total * (r + 1) / t.n_region;
	}
	pool_run(f->pool, matmul_run, &t);
}

/* y_k[n_tok, ne1] = x[n_tok, ne0] W_k^T for n weights with the same input
 * width; those whose kernels take the same activation type run as one task. */
static void matmul_n(struct fwd *f, int n, const struct tensor *const *w, const float *x, int n_tok, float *const *y)
{
	const int64_t n_in = w[0]->ne[0];
	if (f->tap)
		for (int k = 0; k < n; k++) /* the parts of a fused matrix share its name: one call */
			if (k == 0 || strcmp(w[k]->name, w[k - 1]->name) != 0)
				f->tap(w[k]->name, x, n_in, n_tok, f->tap_data);
	for (int k = 0; k < n;) {
		const struct qtype_ops *ops = kern_ops(w[k]->type);
		struct mm_part part[3];
		int n_part = 0;
		quantize(f, ops, x, n_in, n_tok);
		for (; k < n && n_part < 3 && kern_ops(w[k]->type)->dot_type == ops->dot_type; k++)
			part[n_part++] = (struct mm_part){ .w = w[k], .xq = f->xq, .n_tok = n_tok, .y = y[k],
							   .xq_row = qtype_row_size(ops->dot_type, n_in) };
		matmul_parts(f, part, n_part);
	}
}

static void matmul(struct fwd *f, const struct tensor *w, const float *x, int n_tok, float *y)
{
	matmul_n(f, 1, &w, x, n_tok, &y);
}

/* y (the product of the batch's rows x with w) += the low-rank products of
 * the adapters of each row's sequence that adapt w (role at layer il). */
static void adapt(struct fwd *f, int il, enum lora_role role, const struct tensor *w, const float *x, float *y)
{
	if (f->b->lora)
		lora_apply(f->pool, f->b->lora, f->b->n, il, role, x, w->ne[0], y, w->ne[1]);
}

static void add_bias(float *y, const struct tensor *b, int n_tok, int64_t n)
{
	if (!b->data)
		return;
	const float *bv = b->data;
	for (int i = 0; i < n_tok; i++)
		for (int64_t j = 0; j < n; j++)
			y[(size_t)i * (size_t)n + (size_t)j] += bv[j];
}

/* ---- attention -------------------------------------------------------------- */

/* Queries are taken in jobs: a run of consecutive positions of one sequence
 * (a chunk of a prompt, or one decoding token) times one KV head, whose
 * group of query heads shares the keys. A job walks its sequence's cache in
 * tiles of ATTN_TILE positions (fixed by absolute position, so a query's
 * arithmetic does not depend on what else is in the batch), converts each
 * tile's K (transposed) and V to float once for all its rows, and updates
 * every row's online softmax. No buffer grows with the context. */
_Static_assert(KV_CHUNK == ATTN_CHUNK, "a transposed key block reads in the attention tile's chunks");

struct attn_task {
	struct fwd *f;
	int il;
};

/* Positions ahead whose cache rows a job asks for while converting: a head's
 * slice of a row is a few cache lines among other heads', which the hardware
 * prefetcher does not run ahead of. */
#define ATTN_PREFETCH 32

/* What one job needs to walk the cache: its sequence, layer, KV head, the
 * last position its rows see and the layer's window (0: none). */
struct attn_walk {
	const struct kv_seq *s;
	int il, kvh, M;
	int32_t p0, last;
	int32_t n_swa;
};

/* The first position that position p attends to. */
static int32_t attn_first(const struct attn_walk *a, int32_t p)
{
	return a->n_swa > 0 && p >= a->n_swa ? p - a->n_swa + 1 : 0;
}

/* The first tile a job reads: tiles wholly before every row's window are
 * skipped (their cache blocks are not read). */
static int32_t attn_start(const struct attn_walk *a)
{
	return attn_first(a, a->p0) / ATTN_TILE * ATTN_TILE;
}

/* Row r of a job sees positions attn_first(p) .. p, p = p0 + r / G: how many
 * of tile t0's, counted from the tile's start. A row whose window starts
 * after t0 gets 0 here (the tile kernels only cut a tile's end); when its
 * window starts inside the tile, the return value says so and attn_edges
 * runs that part of the tile for it. */
static bool attn_seen(const struct attn_walk *a, int G, int32_t t0, int32_t *n)
{
	bool edge = false;
	for (int r = 0; r < a->M; r++) {
		const int32_t p = a->p0 + r / G, seen = p + 1 - t0, lo = attn_first(a, p) - t0;
		n[r] = seen < 0 ? 0 : seen > ATTN_TILE ? ATTN_TILE : seen;
		if (lo > 0) {
			edge |= lo < n[r];
			n[r] = 0;
		}
	}
	return edge;
}

/* Positions p_first .. p_first + np - 1 of the job's head as float, into
 * tile columns off .. off + np - 1 (off + np <= ATTN_TILE; the other columns
 * zero): keys transposed into kt [dk][ATTN_TILE], values into v
 * [ATTN_TILE][dv]; from either cache layout. */
static void attn_load(struct fwd *f, const struct attn_walk *a, int32_t p_first, int off, int np, float *kt, float *v,
		      float *krow)
{
	const struct kv_cache *kv = f->kv;
	const struct hparams *h = &f->m->hp;
	const struct qtype_ops *ops = kern_ops(kv->type);
	const int dk = h->head_dim_k, dv = h->head_dim_v;
	const size_t koff = qtype_row_size(kv->type, (int64_t)a->kvh * dk), voff = qtype_row_size(kv->type, (int64_t)a->kvh * dv);
	const size_t kbytes = qtype_row_size(kv->type, dk), vbytes = qtype_row_size(kv->type, dv);
	const int32_t last = p_first + np - 1;
	for (int p = 0; p < np; p++) {
		const int32_t pos = p_first + p;
		if (pos + ATTN_PREFETCH <= last) { /* short strided rows: ask for them ahead */
			const char *kp = (const char *)kv_cache_k(kv, a->s, a->il, pos + ATTN_PREFETCH) + koff;
			const char *vp = (const char *)kv_cache_v(kv, a->s, a->il, pos + ATTN_PREFETCH) + voff;
			for (size_t o = 0; o < kbytes && !kv->k_transposed; o += 64)
				__builtin_prefetch(kp + o);
			for (size_t o = 0; o < vbytes; o += 64)
				__builtin_prefetch(vp + o);
		}
		if (kv->k_transposed) { /* f16, element d block_size elements after element d - 1 */
			const uint16_t *col = (const uint16_t *)kv_cache_k(kv, a->s, a->il, pos) +
					      (size_t)a->kvh * (size_t)dk * (size_t)kv->block_size;
			for (int d = 0; d < dk; d++)
				ops->to_float(col + (size_t)d * (size_t)kv->block_size, &krow[d], 1);
		} else {
			ops->to_float((const char *)kv_cache_k(kv, a->s, a->il, pos) + koff, krow, dk);
		}
		for (int d = 0; d < dk; d++)
			kt[(size_t)d * ATTN_TILE + (size_t)(off + p)] = krow[d];
		ops->to_float((const char *)kv_cache_v(kv, a->s, a->il, pos) + voff, v + (size_t)(off + p) * (size_t)dv, dv);
	}
	for (int d = 0; d < dk; d++) {
		memset(kt + (size_t)d * ATTN_TILE, 0, (size_t)off * sizeof(float));
		memset(kt + (size_t)d * ATTN_TILE + off + np, 0, (size_t)(ATTN_TILE - off - np) * sizeof(float));
	}
	memset(v, 0, (size_t)off * (size_t)dv * sizeof *v);
}

/* Leading positions of tile t0 that no row of the job attends to: before
 * the earliest window (their cache blocks may be given back), not read. */
static int attn_skip(const struct attn_walk *a, int32_t t0, int np)
{
	const int32_t first = attn_first(a, a->p0);
	return first <= t0 ? 0 : first - t0 < np ? first - t0 : np;
}

/* The rows whose window starts inside tile t0 after its first position:
 * one token's G rows at a time, over the positions they see of the tile
 * (from their window's start), loaded to the start of a float tile. What a
 * row computes depends only on its position, the window and the cache, not
 * on the rest of the batch. */
static void attn_edges(struct fwd *f, const struct attn_walk *a, struct attn_scratch *w, int32_t t0)
{
	const struct hparams *h = &f->m->hp;
	const int dk = h->head_dim_k, dv = h->head_dim_v, G = h->n_head / h->n_head_kv;
	for (int r0 = 0; r0 < a->M; r0 += G) {
		const int32_t p = a->p0 + r0 / G, lo = attn_first(a, p);
		if (lo <= t0 || lo >= t0 + ATTN_TILE)
			continue;
		const int32_t end = p < t0 + ATTN_TILE - 1 ? p : t0 + ATTN_TILE - 1, np = end - lo + 1;
		attn_load(f, a, lo, 0, np, w->kt, w->kt + (size_t)dk * ATTN_TILE, w->krow);
		for (int g = 0; g < G; g++)
			w->n[r0 + g] = np;
		kern_fns()->attn_tile(G, dk, dv, w->q + (size_t)r0 * (size_t)dk, w->n + r0, w->kt,
				      w->kt + (size_t)dk * ATTN_TILE, w->mx + r0, w->l + r0, w->o + (size_t)r0 * (size_t)dv);
	}
}

/* The tiles of a transposed f16 cache, read in place: chunk c of a tile is
 * ATTN_CHUNK positions of one block (the block size is a multiple). */
static void attn_tiles_f16(struct fwd *f, const struct attn_walk *a, struct attn_scratch *w)
{
	const struct kv_cache *kv = f->kv;
	const struct hparams *h = &f->m->hp;
	const int dk = h->head_dim_k, dv = h->head_dim_v, G = h->n_head / h->n_head_kv;
	const kern_attn_tile_f16_fn tile = kern_fns()->attn_tile_f16;
	const size_t koff = (size_t)a->kvh * (size_t)dk * (size_t)kv->block_size, voff = (size_t)a->kvh * (size_t)dv;
	for (int32_t t0 = attn_start(a); t0 <= a->last; t0 += ATTN_TILE) {
		const uint16_t *kc[ATTN_TILE / ATTN_CHUNK], *vc[ATTN_TILE / ATTN_CHUNK];
		const int32_t first = attn_first(a, a->p0);
		for (int c = 0; c < ATTN_TILE / ATTN_CHUNK; c++) { /* chunks before every window: not read */
			const int32_t pos = t0 + c * ATTN_CHUNK;
			const bool used = pos <= a->last && pos + ATTN_CHUNK > first;
			kc[c] = used ? (const uint16_t *)kv_cache_k(kv, a->s, a->il, pos) + koff : NULL;
			vc[c] = used ? (const uint16_t *)kv_cache_v(kv, a->s, a->il, pos) + voff : NULL;
		}
		const bool edge = attn_seen(a, G, t0, w->n);
		if (first <= t0) /* else no row sees the tile from its start: attn_seen gave every n 0 */
			tile(a->M, dk, dv, w->q, w->n, kc, (size_t)kv->block_size, vc, (size_t)kv->width_v, w->mx, w->l,
			     w->o, w->kt);
		if (edge)
			attn_edges(f, a, w, t0);
	}
}

/* The tiles of any other cache: each converted to float (keys transposed)
 * once for all the job's rows. */
static void attn_tiles_convert(struct fwd *f, const struct attn_walk *a, struct attn_scratch *w)
{
	const struct hparams *h = &f->m->hp;
	const kern_attn_tile_fn tile = kern_fns()->attn_tile;
	const int dk = h->head_dim_k, dv = h->head_dim_v, G = h->n_head / h->n_head_kv;
	float *kt = w->kt, *v = w->kt + (size_t)dk * ATTN_TILE;
	for (int32_t t0 = attn_start(a); t0 <= a->last; t0 += ATTN_TILE) {
		const int np = a->last + 1 - t0 < ATTN_TILE ? a->last + 1 - t0 : ATTN_TILE, skip = attn_skip(a, t0, np);
		const bool edge = attn_seen(a, G, t0, w->n);
		if (skip == 0) { /* else no row sees the tile from its start */
			attn_load(f, a, t0, 0, np, kt, v, w->krow);
			tile(a->M, dk, dv, w->q, w->n, kt, v, w->mx, w->l, w->o);
		}
		if (edge)
			attn_edges(f, a, w, t0);
	}
}

/* Attention with soft-capped scores (gemma2): s = c tanh(s / c) before the
 * softmax. The tile kernels do not cap, so these layers take this path:
 * each tile converted to float, each row's visible positions (its window's
 * included) scored, capped (kern_fns' softcap) and folded into its online
 * softmax (kern_fns' row_exp_sum). */
static void attn_tiles_softcap(struct fwd *f, const struct attn_walk *a, struct attn_scratch *w)
{
	const struct hparams *h = &f->m->hp;
	const int dk = h->head_dim_k, dv = h->head_dim_v, G = h->n_head / h->n_head_kv;
	const float c = h->attn_softcap;
	const struct kern_fns *kf = kern_fns();
	float *kt = w->kt, *v = w->kt + (size_t)dk * ATTN_TILE, s[ATTN_TILE], ex[ATTN_TILE];
	for (int32_t t0 = attn_start(a); t0 <= a->last; t0 += ATTN_TILE) {
		const int np = a->last + 1 - t0 < ATTN_TILE ? a->last + 1 - t0 : ATTN_TILE, skip = attn_skip(a, t0, np);
		attn_load(f, a, t0 + skip, skip, np - skip, kt, v, w->krow);
		for (int r = 0; r < a->M; r++) {
			const int32_t p = a->p0 + r / G, lo0 = attn_first(a, p) - t0, hi = p - t0 + 1;
			const int lo = lo0 > 0 ? lo0 : 0, n = hi < np ? hi : np;
			if (lo >= n)
				continue;
			const float *q = w->q + (size_t)r * (size_t)dk;
			for (int j = lo; j < n; j++)
				s[j] = 0;
			for (int d = 0; d < dk; d++) { /* a key dimension at a time: positions side by side */
				const float qd = q[d], *k = kt + (size_t)d * ATTN_TILE;
				for (int j = lo; j < n; j++)
					s[j] = fmaf(qd, k[j], s[j]);
			}
			kf->softcap(s + lo, n - lo, c);
			float mnew = w->mx[r];
			for (int j = lo; j < n; j++)
				mnew = s[j] > mnew ? s[j] : mnew;
			const float alpha = expf(w->mx[r] - mnew);
			const float sum = kf->row_exp_sum(s + lo, n - lo, mnew, 1.0f, ex + lo);
			float *o = w->o + (size_t)r * (size_t)dv;
			for (int d = 0; d < dv; d++)
				o[d] *= alpha;
			for (int j = lo; j < n; j++)
				for (int d = 0; d < dv; d++)
					o[d] = fmaf(ex[j], v[(size_t)j * (size_t)dv + (size_t)d], o[d]);
			w->l[r] = w->l[r] * alpha + sum;
			w->mx[r] = mnew;
		}
	}
}

static void attn_run(void *arg, int ith, int nth)
{
	const struct attn_task *t = arg;
	struct fwd *f = t->f;
	const struct fwd_batch *b = f->b;
	const struct hparams *h = &f->m->hp;
	const int dk = h->head_dim_k, dv = h->head_dim_v, G = h->n_head / h->n_head_kv;
	const float scale = h->attn_scale > 0 ? h->attn_scale : 1.0f / sqrtf((float)dk);
	struct attn_scratch *w = &f->attn_scratch[ith];

	for (int job = ith; job < f->n_attn_jobs * h->n_head_kv; job += nth) {
		const struct attn_job *j = &f->attn_jobs[job / h->n_head_kv];
		const struct attn_walk a = { .s = b->seq[j->i0], .il = t->il, .kvh = job % h->n_head_kv, .M = j->n_tok * G,
					     .p0 = b->pos[j->i0], .last = b->pos[j->i0] + j->n_tok - 1,
					     .n_swa = f->m->layers[t->il].n_swa };
		for (int r = 0; r < a.M; r++) { /* row r: token r / G, head kvh * G + r % G */
			const float *q = f->q + ((size_t)(j->i0 + r / G) * (size_t)h->n_head + (size_t)(a.kvh * G + r % G)) * (size_t)dk;
			for (int d = 0; d < dk; d++)
				w->q[(size_t)r * (size_t)dk + (size_t)d] = q[d] * scale;
			w->mx[r] = -INFINITY;
			w->l[r] = 0;
		}
		memset(w->o, 0, (size_t)a.M * (size_t)dv * sizeof *w->o);
		if (h->attn_softcap > 0)
			attn_tiles_softcap(f, &a, w);
		else if (f->kv->k_transposed)
			attn_tiles_f16(f, &a, w);
		else
			attn_tiles_convert(f, &a, w);
		const float *sinks = f->m->layers[t->il].attn_sinks.data;
		for (int r = 0; r < a.M; r++) {
			float *out = f->att + ((size_t)(j->i0 + r / G) * (size_t)h->n_head + (size_t)(a.kvh * G + r % G)) * (size_t)dv;
			float inv = 1.0f / w->l[r];
			if (sinks) { /* the head's sink logit joins the denominator (nothing joins the sum of values) */
				const float sk = sinks[a.kvh * G + r % G], m = w->mx[r] > sk ? w->mx[r] : sk;
				const float keep = expf(w->mx[r] - m);
				inv = keep / (w->l[r] * keep + expf(sk - m));
			}
			for (int d = 0; d < dv; d++)
				out[d] = w->o[(size_t)r * (size_t)dv + (size_t)d] * inv;
		}
	}
}

/* Splits the batch into attention jobs: runs of consecutive positions of one
 * sequence, at most attn_tok tokens each. */
static void attn_plan(struct fwd *f)
{
	const struct fwd_batch *b = f->b;
	f->n_attn_jobs = 0;
	for (int i = 0; i < b->n;) {
		int n = 1;
		while (i + n < b->n && n < f->attn_tok && b->seq[i + n] == b->seq[i] && b->pos[i + n] == b->pos[i] + n)
			n++;
		f->attn_jobs[f->n_attn_jobs++] = (struct attn_job){ i, n };
		i += n;
	}
}

/* ---- per-token steps, split by tokens over the pool -------------------------- */

enum step { STEP_ATTN_IN, STEP_QK, STEP_FFN_IN, STEP_SWIGLU, STEP_RESIDUAL };

struct step_task {
	struct fwd *f;
	enum step step;
	int il;
};

/* A key row into the cache at dst: a row, or a column of a transposed block. */
static void store_k(const struct kv_cache *kv, const struct qtype_ops *cops, const float *k, void *dst)
{
	if (!kv->k_transposed) {
		cops->from_float(k, dst, kv->width_k);
		return;
	}
	uint16_t h[64], *col = dst;
	for (int64_t i0 = 0; i0 < kv->width_k; i0 += 64) {
		const int64_t n = kv->width_k - i0 < 64 ? kv->width_k - i0 : 64;
		cops->from_float(k + i0, h, n);
		for (int64_t i = 0; i < n; i++)
			col[(size_t)(i0 + i) * (size_t)kv->block_size] = h[i];
	}
}

/* Tokens i0 .. i1 of the batch: one step of layer il. */
static void step_rows(struct fwd *f, enum step step, int il, int i0, int i1)
{
	const struct hearth_model *m = f->m;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	const int64_t E = h->n_embd, dk = h->head_dim_k;
	const int64_t QK = (int64_t)h->n_head * dk, KK = f->kv->width_k, VV = f->kv->width_v;
	const struct kv_cache *kv = f->kv;
	const struct qtype_ops *cops = kern_ops(kv->type);
	const struct hparams hl = block_layer_rope(m, il);

	for (int i = i0; i < i1; i++) {
		float *x = f->x + i * E, *xb = f->xb + i * E;
		switch (step) {
		case STEP_ATTN_IN:
			block_rms_norm(x, l->attn_norm.data, xb, E, h->rms_eps);
			break;
		case STEP_QK: { /* biases, q/k norms, rotary positions, then K and V into the cache */
			float *q = f->q + i * QK, *k = f->k + i * KK, *v = f->v + i * VV;
			add_bias(q, &l->bq, 1, QK);
			add_bias(k, &l->bk, 1, KK);
			add_bias(v, &l->bv, 1, VV);
			if (l->q_norm.data)
				for (int hd = 0; hd < h->n_head; hd++)
					block_rms_norm(q + hd * dk, l->q_norm.data, q + hd * dk, dk, h->rms_eps);
			if (l->k_norm.data)
				for (int hd = 0; hd < h->n_head_kv; hd++)
					block_rms_norm(k + hd * dk, l->k_norm.data, k + hd * dk, dk, h->rms_eps);
			block_rope(q, h->n_head, (int)dk, h->n_rot, f->b->pos[i], &hl, f->rope_factors);
			block_rope(k, h->n_head_kv, (int)dk, h->n_rot, f->b->pos[i], &hl, f->rope_factors);
			store_k(kv, cops, k, kv_cache_k(kv, f->b->seq[i], il, f->b->pos[i]));
			cops->from_float(v, kv_cache_v(kv, f->b->seq[i], il, f->b->pos[i]), VV);
			break;
		}
		case STEP_FFN_IN: /* the attention output joins the residual stream */
			add_bias(xb, &l->bo, 1, E);
			if (l->attn_post_norm.data)
				block_rms_norm(xb, l->attn_post_norm.data, xb, E, h->rms_eps);
			for (int64_t j = 0; j < E; j++)
				x[j] += xb[j];
			block_rms_norm(x, l->ffn_norm.data, xb, E, h->rms_eps);
			break;
		case STEP_SWIGLU: /* split by elements instead: see step_run */
			break;
		case STEP_RESIDUAL: {
			if (l->ffn_post_norm.data)
				block_rms_norm(xb, l->ffn_post_norm.data, xb, E, h->rms_eps);
			for (int64_t j = 0; j < E; j++)
				x[j] += xb[j];
			const struct fwd_steer *sv = f->b->steer ? f->b->steer[i] : NULL;
			if (sv && il >= sv->il0 && il <= sv->il1) /* the sequence's control vector */
				for (int64_t j = 0; j < E; j++)
					x[j] += sv->strength * sv->dir[il * E + j];
			break;
		}
		}
	}
}

static void step_run(void *arg, int ith, int nth)
{
	const struct step_task *t = arg;
	const int n = t->f->b->n;
	if (t->step == STEP_SWIGLU) { /* elementwise: split the elements, even of one token */
		const int64_t total = (int64_t)n * t->f->m->hp.n_ff, e0 = total * ith / nth, e1 = total * (ith + 1) / nth;
		const struct kern_fns *k = kern_fns();
		(t->f->m->hp.ffn_act == FFN_GELU ? k->geglu : k->swiglu)(t->f->hb + e0, t->f->hb2 + e0, e1 - e0);
		return;
	}
	step_rows(t->f, t->step, t->il, n * ith / nth, n * (ith + 1) / nth);
}

/* A step over the whole batch: on the pool when there are tokens to share. */
static void step(struct fwd *f, enum step s, int il)
{
	f->xq_of = NULL; /* steps write the activations */
	if (f->b->n < 2 && s != STEP_SWIGLU) {
		step_rows(f, s, il, 0, f->b->n);
		return;
	}
	struct step_task t = { f, s, il };
	pool_run(f->pool, step_run, &t);
}

/* ---- mixture of experts ------------------------------------------------------ */

/* Each expert's matrix is read once for all the batch rows routed to it: the
 * rows are grouped by expert, and the products of every expert with its rows
 * run as one task (matmul_parts), split over the threads by weight rows
 * whatever the number of experts in use. A row's sums are those of a lone
 * token (the kernels' sums do not depend on the other rows), and a token's
 * experts are added in its chosen order, so batching changes no bit. */

enum moe_phase { MOE_ROUTE, MOE_GATHER, MOE_ACT, MOE_COMBINE };

struct moe_task {
	struct fwd *f;
	const struct layer *l;
	enum moe_phase phase;
};

/* Tokens i0 .. i1: route them, gather their rows, or add up their experts. */
static void moe_tokens(struct fwd *f, const struct layer *l, enum moe_phase phase, int i0, int i1, int ith)
{
	const struct hparams *h = &f->m->hp;
	const int K = h->n_expert_used, X = h->n_expert;
	const int64_t E = h->n_embd;
	const float *bd = l->ffn_down_exps_b.data;
	for (int i = i0; i < i1; i++) {
		const int32_t *ids = f->moe_ids + (size_t)i * K, *row = f->moe_row + (size_t)i * K;
		const float *w = f->moe_w + (size_t)i * K;
		float *xb = f->xb + (size_t)i * E;
		if (phase == MOE_ROUTE) {
			moe_route(h, f->moe_logits + (size_t)i * X, f->moe_scratch + (size_t)ith * X, f->moe_ids + (size_t)i * K,
				  f->moe_w + (size_t)i * K);
		} else if (phase == MOE_GATHER) {
			for (int k = 0; k < K; k++)
				memcpy(f->moe_x + (size_t)row[k] * E, xb, (size_t)E * sizeof *xb);
		} else { /* MOE_COMBINE: weight each expert's output (with its bias), add in the chosen order */
			for (int k = 0; k < K; k++) {
				const float *y = f->moe_y + (size_t)row[k] * E, *b = bd ? bd + (size_t)ids[k] * E : NULL;
				for (int64_t j = 0; j < E; j++) {
					const float v = (b ? y[j] + b[j] : y[j]) * w[k];
					xb[j] = k ? xb[j] + v : v;
				}
			}
		}
	}
}

/* Rows r0 .. r1 of the grouped buffers: biases, then the gated activation. */
static void moe_act(struct fwd *f, const struct layer *l, int64_t r0, int64_t r1)
{
	const struct hparams *h = &f->m->hp;
	const int64_t F = h->n_ff_exp;
	const float *bg = l->ffn_gate_exps_b.data, *bu = l->ffn_up_exps_b.data;
	if (bg || bu) {
		for (int e = 0; e < h->n_expert; e++) {
			const int64_t a = f->moe_off[e] > r0 ? f->moe_off[e] : r0;
			const int64_t z = f->moe_off[e] + f->moe_count[e] < r1 ? f->moe_off[e] + f->moe_count[e] : r1;
			for (int64_t r = a; r < z; r++)
				for (int64_t j = 0; j < F; j++) {
					if (bg)
						f->moe_g[r * F + j] += bg[e * F + j];
					if (bu)
						f->moe_u[r * F + j] += bu[e * F + j];
				}
		}
	}
	moe_act_rows(h->moe_act, f->moe_g + r0 * F, f->moe_u + r0 * F, (r1 - r0) * F);
}

static void moe_run(void *arg, int ith, int nth)
{
	const struct moe_task *t = arg;
	const int n = t->f->b->n;
	if (t->phase == MOE_ACT) {
		const int64_t rows = (int64_t)n * t->f->m->hp.n_expert_used;
		moe_act(t->f, t->l, rows * ith / nth, rows * (ith + 1) / nth);
		return;
	}
	moe_tokens(t->f, t->l, t->phase, n * ith / nth, n * (ith + 1) / nth, ith);
}

static void moe_phase(struct fwd *f, const struct layer *l, enum moe_phase phase)
{
	struct moe_task t = { f, l, phase };
	const int64_t rows = (int64_t)f->b->n * f->m->hp.n_expert_used;
	if (phase == MOE_ACT && rows * f->m->hp.n_ff_exp <= INLINE_ELEMS)
		moe_act(f, l, 0, rows);
	else if (f->b->n < 2 && phase != MOE_ACT)
		moe_tokens(f, l, phase, 0, f->b->n, 0);
	else
		pool_run(f->pool, moe_run, &t);
}

/* Groups the batch's (token, slot) pairs by expert: counts, offsets, rows. */
static void moe_group(struct fwd *f)
{
	const struct hparams *h = &f->m->hp;
	const int K = h->n_expert_used, X = h->n_expert, n = f->b->n;
	memset(f->moe_count, 0, (size_t)X * sizeof *f->moe_count);
	for (int p = 0; p < n * K; p++)
		f->moe_count[f->moe_ids[p]]++;
	for (int e = 0, at = 0; e < X; e++) {
		f->moe_off[e] = f->moe_next[e] = at;
		at += f->moe_count[e];
	}
	for (int p = 0; p < n * K; p++) {
		const int32_t r = f->moe_row[p] = f->moe_next[f->moe_ids[p]]++;
		f->moe_tok[r] = p / K;
		f->moe_slot[r] = p % K;
		f->moe_exp[r] = f->moe_ids[p];
		if (f->b->lora)
			f->moe_lora[r] = f->b->lora[p / K];
	}
}

/* Shows the expert tap each expert's rows of x for w (its per-expert views). */
static void moe_tap(struct fwd *f, const struct tensor *w, const float *x)
{
	const int X = f->m->hp.n_expert;
	const int64_t n_in = w[0].ne[0];
	for (int e = 0; e < X; e++)
		if (f->moe_count[e])
			f->expert_tap(w[e].name, e, X, x + (size_t)f->moe_off[e] * (size_t)n_in, n_in, f->moe_count[e],
				      f->moe_tok + f->moe_off[e], f->moe_slot + f->moe_off[e], f->expert_tap_data);
}

/* y rows = x rows times each expert's matrix wa[e] (and wb[e] into yb: gate
 * and up), for the experts in use, as few tasks as the dot types allow. */
static void moe_products(struct fwd *f, const struct tensor *wa, const struct tensor *wb, const float *x, float *ya,
			 float *yb)
{
	const struct hparams *h = &f->m->hp;
	const int rows = f->b->n * h->n_expert_used;
	const int64_t n_in = wa[0].ne[0];
	const struct tensor *w[2] = { wa, wb };
	float *y[2] = { ya, yb };
	f->xq_of = NULL; /* x was just written */
	if (f->expert_tap) {
		moe_tap(f, wa, x);
		if (wb)
			moe_tap(f, wb, x);
	}
	for (int k = 0; k < (wb ? 2 : 1);) {
		const struct qtype_ops *ops = kern_ops(w[k][0].type);
		const size_t xq_row = qtype_row_size(ops->dot_type, n_in);
		int n_part = 0;
		quantize(f, ops, x, n_in, rows);
		for (; k < (wb ? 2 : 1) && kern_ops(w[k][0].type)->dot_type == ops->dot_type; k++)
			for (int e = 0; e < h->n_expert; e++)
				if (f->moe_count[e])
					f->moe_parts[n_part++] = (struct mm_part){
						.w = &w[k][e], .xq = (const char *)f->xq + (size_t)f->moe_off[e] * xq_row, .xq_row = xq_row,
						.n_tok = f->moe_count[e], .y = y[k] + (size_t)f->moe_off[e] * (size_t)w[k][e].ne[1] };
		matmul_parts(f, f->moe_parts, n_part);
	}
}

/* The grouped rows' products with the stack w (role at layer il) += each
 * row's token's adapters' products with the row's expert (before the
 * experts' biases, as llama.cpp's build_lora_mm_id adds them). */
static void adapt_exps(struct fwd *f, int il, enum lora_exp_role role, const struct tensor *w, const float *x, float *y)
{
	if (f->b->lora)
		lora_apply_exps(f->pool, f->moe_lora, f->moe_exp, f->b->n * f->m->hp.n_expert_used, il, role, x, w[0].ne[0],
				y, w[0].ne[1]);
}

/* xb = the mixture of experts of xb (the normed residual stream). */
static void ffn_moe(struct fwd *f, int il)
{
	const struct layer *l = &f->m->layers[il];
	const struct hparams *h = &f->m->hp;
	matmul(f, &l->ffn_gate_inp, f->xb, f->b->n, f->moe_logits);
	add_bias(f->moe_logits, &l->ffn_gate_inp_b, f->b->n, h->n_expert);
	moe_phase(f, l, MOE_ROUTE);
	moe_group(f);
	moe_phase(f, l, MOE_GATHER);
	moe_products(f, l->exp_gate, l->exp_up, f->moe_x, f->moe_g, f->moe_u);
	adapt_exps(f, il, LORA_EXP_GATE, l->exp_gate, f->moe_x, f->moe_g);
	adapt_exps(f, il, LORA_EXP_UP, l->exp_up, f->moe_x, f->moe_u);
	moe_phase(f, l, MOE_ACT);
	moe_products(f, l->exp_down, NULL, f->moe_g, f->moe_y, NULL);
	adapt_exps(f, il, LORA_EXP_DOWN, l->exp_down, f->moe_g, f->moe_y);
	moe_phase(f, l, MOE_COMBINE);
	f->xq_of = NULL; /* xb was written */
}

/* xb = the feed-forward block of xb. */
static void ffn(struct fwd *f, int il)
{
	const struct layer *l = &f->m->layers[il];
	if (f->m->hp.n_expert > 0) {
		ffn_moe(f, il);
		return;
	}
	matmul_n(f, 2, (const struct tensor *[]){ &l->ffn_gate, &l->ffn_up }, f->xb, f->b->n, (float *[]){ f->hb, f->hb2 });
	adapt(f, il, LORA_GATE, &l->ffn_gate, f->xb, f->hb);
	adapt(f, il, LORA_UP, &l->ffn_up, f->xb, f->hb2);
	step(f, STEP_SWIGLU, il);
	matmul(f, &l->ffn_down, f->hb, f->b->n, f->xb);
	adapt(f, il, LORA_DOWN, &l->ffn_down, f->hb, f->xb);
}

/* x = c tanh(x / c): logits bounded by c (gemma). */
static void softcap(float *x, int64_t n, float c)
{
	const float inv = 1.0f / c;
	for (int64_t i = 0; i < n; i++)
		x[i] = c * tanhf(x[i] * inv);
}

/* The output head over n rows of f->xb (already through the final norm);
 * sets: each row's adapters, or NULL: none. */
static void head(struct fwd *f, int n, const struct fwd_lora *const *sets, float *logits)
{
	const struct hparams *h = &f->m->hp;
	f->xq_of = NULL;
	matmul(f, &f->m->output, f->xb, n, logits);
	if (sets)
		lora_apply(f->pool, sets, n, -1, LORA_OUTPUT, f->xb, h->n_embd, logits, h->n_vocab);
	if (h->final_softcap > 0)
		softcap(logits, (int64_t)n * h->n_vocab, h->final_softcap);
}

/* ---- the pass ------------------------------------------------------------------- */

void fwd_run(struct fwd *f, const struct fwd_batch *b, float *logits)
{
	const struct hearth_model *m = f->m;
	const struct hparams *h = &m->hp;
	const int n = b->n;
	const int64_t E = h->n_embd;
	const struct qtype_ops *eops = kern_ops(m->tok_embd.type);
	const size_t erow = qtype_row_size(m->tok_embd.type, E);

	f->b = b;
	f->xq_of = NULL;
	attn_plan(f);
	for (int i = 0; i < n; i++) {
		float *x = f->x + i * E;
		eops->to_float((const char *)m->tok_embd.data + (size_t)b->tokens[i] * erow, x, E);
	}
	if (b->lora) /* the embedding's adapters join before the scale, as llama.cpp adds them */
		lora_apply_embd(b->lora, n, b->tokens, f->x, E);
	for (int i = 0; i < n && h->embd_scale != 1.0f; i++)
		for (int64_t j = 0; j < E; j++)
			f->x[i * E + j] *= h->embd_scale;

	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		step(f, STEP_ATTN_IN, il);
		matmul_n(f, 3, (const struct tensor *[]){ &l->wq, &l->wk, &l->wv }, f->xb, n, (float *[]){ f->q, f->k, f->v });
		adapt(f, il, LORA_Q, &l->wq, f->xb, f->q);
		adapt(f, il, LORA_K, &l->wk, f->xb, f->k);
		adapt(f, il, LORA_V, &l->wv, f->xb, f->v);
		step(f, STEP_QK, il);
		struct attn_task at = { f, il };
		pool_run(f->pool, attn_run, &at);
		matmul(f, &l->wo, f->att, n, f->xb);
		adapt(f, il, LORA_O, &l->wo, f->att, f->xb);
		step(f, STEP_FFN_IN, il);
		ffn(f, il);
		step(f, STEP_RESIDUAL, il);
		if (f->layer_fn)
			f->layer_fn(il, f->x, b, f->layer_data);
	}
	if (b->n_out > 0) {
		for (int i = 0; i < b->n_out; i++) {
			block_rms_norm(f->x + b->out_rows[i] * E, m->output_norm.data, f->xb + i * E, E, h->rms_eps);
			f->lora_rows[i] = b->lora ? b->lora[b->out_rows[i]] : NULL;
		}
		head(f, b->n_out, b->lora ? f->lora_rows : NULL, logits);
	}
	f->b = NULL;
}

void fwd_head(struct fwd *f, const float *x, int n, const struct fwd_lora *const *lora, float *logits)
{
	const struct hearth_model *m = f->m;
	const int64_t E = m->hp.n_embd;
	assert(n >= 1 && n <= f->n_batch && !f->b);
	for (int i = 0; i < n; i++)
		block_rms_norm(x + i * E, m->output_norm.data, f->xb + i * E, E, m->hp.rms_eps);
	head(f, n, lora, logits);
}
