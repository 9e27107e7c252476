/* test-train-model.c - the whole training pass (hearth_trainer_*):
 *
 *  - its loss and gradients against a reference model written here in
 *    double precision from the model's tensors (dequantized by the scalar
 *    reference), the gradients against central finite differences of that
 *    reference: LoRA A and B entries picked at random over every adapter,
 *    and input-embedding entries; synthetic llama, qwen2 (biases) and qwen3
 *    (q/k norms) models in f32 and quantized, and fixture models;
 *  - its loss against the cross-entropy of hearth_decode's logits;
 *  - one thread against four (the same bits);
 *  - what it refuses.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/kern/kern.h"
#include "../../src/model/blocks.h"
#include "../../src/model/model.h"
#include "../../src/tensor/qtype.h"
#include "../harness.h"
#include "../ref-moe.h"
#include "../synth.h"

#define N_TOK 7
#define N_PICK 12       /* entries of A, of B and of the embeddings checked per model */
#define FD_H 1e-4
#define LOSS_TOL 2e-5   /* trainer (f32) against the double reference, relative */
#define GRAD_TOL 1e-4   /* f32 gradients through the model against double differences (measured: at most 7e-6) */

/* two packed sequences, labels on most positions */
static const int32_t toks[N_TOK] = { 1, 70, 81, 92, 1, 103, 114 };
static const int32_t pos7[N_TOK] = { 0, 1, 2, 3, 0, 1, 2 };
static const int32_t lab7[N_TOK] = { 70, 81, -1, 50, 103, 114, 60 };

static uint64_t rng = 99;
static double rnd(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng >> 40) / (double)(1 << 24) * 2.0 - 1.0;
}
static uint32_t rnd_u(uint32_t n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng >> 33) % n;
}

/* ---- the reference: the model in double ------------------------------------------ */

struct ref_lora {
	int il, role, rank;
	char name[96];     /* the base tensor's (a fused one's parts share it) */
	int64_t n_in, n_out, n_expert; /* n_expert > 1: an expert stack's (a, b: one matrix per expert) */
	double scale, *a, *b;
	struct ref_moe_lora moe; /* an expert stack's, handed to its layer's ref_moe (a, b the same) */
};

struct ref {
	const struct hearth_model *m;
	double **w;     /* [n_layer * 7 + 1]: the layers' matrices, then the output head */
	struct ref_lora *lora;
	int n_lora;
	float *cs;      /* rope (cos, sin) by position: [n_layer][N_TOK][n_rot] (each layer's rope) */
	double *embd;   /* [N_TOK][E]: the input embeddings */
	struct ref_moe *moe; /* [n_layer]: the layers' mixtures of experts (NULL: dense) */
	uint64_t *choice;    /* the experts chosen by the last ref_loss (a hash) */
	uint64_t choice0;    /* ... by the unperturbed reference */
};

static double *dequant(const struct tensor *t)
{
	const int64_t n_in = t->ne[0], n_out = t->ne[1];
	double *d = malloc((size_t)(n_in * n_out) * sizeof *d);
	float *row = malloc((size_t)n_in * sizeof *row);
	for (int64_t r = 0; r < n_out; r++) {
		kern_ops_ref(t->type)->to_float((const char *)t->data + (size_t)r * qtype_row_size(t->type, n_in), row, n_in);
		for (int64_t i = 0; i < n_in; i++)
			d[r * n_in + i] = row[i];
	}
	free(row);
	return d;
}

static const struct tensor *role_w(const struct layer *l, int role)
{
	const struct tensor *w[7] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down };
	return w[role];
}

/* The adapter of role at layer il (il < 0: the output head's), and the
 * role's first row in it (a part of a fused tensor: its rows' offset from
 * the first part's), or NULL. */
static const struct ref_lora *ref_find_lora(const struct ref *r, int il, int role, int64_t *r0)
{
	*r0 = 0;
	for (int k = 0; k < r->n_lora; k++) {
		const struct ref_lora *lo = &r->lora[k];
		if (il < 0 || lo->il < 0) {
			if (il < 0 && lo->il < 0)
				return lo;
			continue;
		}
		if (lo->il != il)
			continue;
		const struct layer *l = &r->m->layers[il];
		const struct tensor *t = role_w(l, role);
		if (strcmp(t->name, lo->name))
			continue;
		const char *first = t->data;
		for (int r2 = 0; r2 < 7; r2++)
			if (role_w(l, r2)->name && !strcmp(role_w(l, r2)->name, lo->name) &&
			    (const char *)role_w(l, r2)->data < first)
				first = role_w(l, r2)->data;
		*r0 = (int64_t)(((const char *)t->data - first) / qtype_row_size(t->type, t->ne[0]));
		return lo;
	}
	return NULL;
}

/* y[n][n_out] = x W^T (+ lora) (+ bias) */
static void ref_linear(const struct ref *r, int il, int role, const struct tensor *bias, const double *x, int n,
		       double *y)
{
	const struct tensor *t = il < 0 ? &r->m->output : role_w(&r->m->layers[il], role);
	const double *w = r->w[il < 0 ? r->m->hp.n_layer * 7 : il * 7 + role];
	const int64_t n_in = t->ne[0], n_out = t->ne[1];
	int64_t r0 = 0;
	const struct ref_lora *lo = ref_find_lora(r, il, role, &r0);
	for (int i = 0; i < n; i++) {
		const double *xi = x + i * n_in;
		double u[64];
		for (int k = 0; lo && k < lo->rank; k++) {
			u[k] = 0;
			for (int64_t j = 0; j < n_in; j++)
				u[k] += lo->a[k * n_in + j] * xi[j];
		}
		for (int64_t o = 0; o < n_out; o++) {
			double s = 0;
			for (int64_t j = 0; j < n_in; j++)
				s += w[o * n_in + j] * xi[j];
			for (int k = 0; lo && k < lo->rank; k++)
				s += lo->scale * lo->b[(r0 + o) * lo->rank + k] * u[k];
			if (bias && bias->data)
				s += ((const float *)bias->data)[o];
			y[i * n_out + o] = s;
		}
	}
}

static void ref_norm(const double *x, const float *w, int n, int64_t d, double eps, double *y)
{
	for (int i = 0; i < n; i++) {
		double ss = 0;
		for (int64_t j = 0; j < d; j++)
			ss += x[i * d + j] * x[i * d + j];
		const double s = 1.0 / sqrt(ss / d + eps);
		for (int64_t j = 0; j < d; j++)
			y[i * d + j] = x[i * d + j] * s * (w ? w[j] : 1.0f);
	}
}

static void ref_rope(const struct ref *r, int il, double *x, int nh)
{
	const struct hparams *h = &r->m->hp;
	const int hd = h->head_dim_k, nr = h->n_rot;
	for (int i = 0; i < N_TOK; i++)
		for (int hh = 0; hh < nh; hh++) {
			double *v = x + ((size_t)i * nh + hh) * hd;
			const float *cs = r->cs + ((size_t)il * N_TOK + (size_t)pos7[i]) * nr;
			for (int i0 = 0; i0 < nr; i0 += 2) {
				const int a = h->rope_type == ROPE_NEOX ? i0 / 2 : i0, b = h->rope_type == ROPE_NEOX ? i0 / 2 + nr / 2 : i0 + 1;
				const double x0 = v[a], x1 = v[b];
				v[a] = x0 * cs[i0] - x1 * cs[i0 + 1];
				v[b] = x0 * cs[i0 + 1] + x1 * cs[i0];
			}
		}
}

/* The first row that row i sees in layer l: its sequence's start, or its window's. */
static int ref_first(const struct layer *l, int i)
{
	const int lo = i - pos7[i];
	return l->n_swa > 0 && i - l->n_swa + 1 > lo ? i - l->n_swa + 1 : lo;
}

/* A score through gemma2's soft-cap (when the model caps). */
static double ref_cap(double s, double c)
{
	return c > 0 ? c * tanh(s / c) : s;
}

static void ref_attn(const struct hparams *h, const struct layer *l, const double *q, const double *k, const double *v,
		     double *o)
{
	const float *sinks = l->attn_sinks.data;
	const int nh = h->n_head, nkv = h->n_head_kv, dk = h->head_dim_k, dv = h->head_dim_v, G = nh / nkv;
	const double scale = h->attn_scale > 0 ? h->attn_scale : 1.0 / sqrt(dk);
	for (int i = 0; i < N_TOK; i++)
		for (int hh = 0; hh < nh; hh++) {
			double s[N_TOK], mx = sinks ? sinks[hh] : -INFINITY, z = 0;
			const int lo = ref_first(l, i);
			for (int j = lo; j <= i; j++) {
				s[j] = 0;
				for (int d = 0; d < dk; d++)
					s[j] += q[((size_t)i * nh + hh) * dk + d] * k[((size_t)j * nkv + hh / G) * dk + d];
				s[j] = ref_cap(s[j] * scale, h->attn_softcap);
				mx = fmax(mx, s[j]);
			}
			z = sinks ? exp(sinks[hh] - mx) : 0;
			for (int j = lo; j <= i; j++)
				z += exp(s[j] - mx);
			for (int d = 0; d < dv; d++) {
				double acc = 0;
				for (int j = lo; j <= i; j++)
					acc += exp(s[j] - mx) / z * v[((size_t)j * nkv + hh / G) * dv + d];
				o[((size_t)i * nh + hh) * dv + d] = acc;
			}
		}
}

/* g = act(g) u: SiLU, or GELU (tanh form) for gemma. */
static void ref_act(const struct hparams *h, double *g, const double *u, int64_t n)
{
	for (int64_t j = 0; j < n; j++)
		g[j] = (h->ffn_act == FFN_GELU ? 0.5 * g[j] * (1 + tanh(sqrt(2 / M_PI) * (g[j] + 0.044715 * g[j] * g[j] * g[j])))
					       : g[j] / (1 + exp(-g[j]))) *
		       u[j];
}

/* x += t, or x += rms_norm(t) post (gemma2/3, glm4's post-norms; t overwritten). */
static void ref_residual(const struct hparams *h, const struct tensor *post, double *t, double *x)
{
	const int64_t E = h->n_embd;
	if (post->data)
		ref_norm(t, post->data, N_TOK, E, h->rms_eps, t);
	for (int64_t j = 0; j < N_TOK * E; j++)
		x[j] += t[j];
}

static double ref_loss(const struct ref *r)
{
	const struct hearth_model *m = r->m;
	const struct hparams *h = &m->hp;
	const int64_t E = h->n_embd, QK = (int64_t)h->n_head * h->head_dim_k, KV = (int64_t)h->n_head_kv * h->head_dim_k;
	const int64_t VV = (int64_t)h->n_head_kv * h->head_dim_v, F = h->n_ff, V = h->n_vocab, n = N_TOK;
	double *x = malloc(n * E * sizeof *x), *xn = malloc(n * E * sizeof *xn), *t = malloc(n * E * sizeof *t);
	double *q = malloc(n * QK * sizeof *q), *k = malloc(n * KV * sizeof *k), *v = malloc(n * VV * sizeof *v);
	double *att = malloc(n * QK * sizeof *att), *g = malloc(n * F * sizeof *g), *u = malloc(n * F * sizeof *u);
	double *lg = malloc(V * sizeof *lg), loss = 0;
	int n_lab = 0;
	*r->choice = 0;
	for (int64_t j = 0; j < n * E; j++)
		x[j] = r->embd[j] * h->embd_scale;
	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		ref_norm(x, l->attn_norm.data, N_TOK, E, h->rms_eps, xn);
		ref_linear(r, il, 0, &l->bq, xn, N_TOK, q);
		ref_linear(r, il, 1, &l->bk, xn, N_TOK, k);
		ref_linear(r, il, 2, &l->bv, xn, N_TOK, v);
		if (l->q_norm.data)
			ref_norm(q, l->q_norm.data, N_TOK * h->n_head, h->head_dim_k, h->rms_eps, q);
		if (l->k_norm.data)
			ref_norm(k, l->k_norm.data, N_TOK * h->n_head_kv, h->head_dim_k, h->rms_eps, k);
		ref_rope(r, il, q, h->n_head);
		ref_rope(r, il, k, h->n_head_kv);
		ref_attn(h, l, q, k, v, att);
		ref_linear(r, il, 3, &l->bo, att, N_TOK, t);
		ref_residual(h, &l->attn_post_norm, t, x);
		ref_norm(x, l->ffn_norm.data, N_TOK, E, h->rms_eps, xn);
		if (r->moe) {
			ref_moe_run(&r->moe[il], xn, N_TOK, t, r->choice);
		} else {
			ref_linear(r, il, 4, NULL, xn, N_TOK, g);
			ref_linear(r, il, 5, NULL, xn, N_TOK, u);
			ref_act(h, g, u, n * F);
			ref_linear(r, il, 6, NULL, g, N_TOK, t);
		}
		ref_residual(h, &l->ffn_post_norm, t, x);
	}
	ref_norm(x, m->output_norm.data, N_TOK, E, h->rms_eps, xn);
	for (int i = 0; i < N_TOK; i++) {
		if (lab7[i] < 0)
			continue;
		ref_linear(r, -1, 0, NULL, xn + i * E, 1, lg);
		for (int64_t j = 0; j < V; j++)
			lg[j] = ref_cap(lg[j], h->final_softcap);
		double mx = -INFINITY, z = 0;
		for (int64_t j = 0; j < V; j++)
			mx = fmax(mx, lg[j]);
		for (int64_t j = 0; j < V; j++)
			z += exp(lg[j] - mx);
		loss -= lg[lab7[i]] - mx - log(z);
		n_lab++;
	}
	free(x), free(xn), free(t), free(q), free(k), free(v), free(att), free(g), free(u), free(lg);
	return loss / n_lab;
}

/* Each layer's rope (cos, sin) for positions 0 .. N_TOK - 1: the layer's
 * base, scale and YaRN ramp, and the frequency factors forward.c picks for
 * the trainer's context (64: LongRoPE's short factors unless the original
 * context is shorter). */
static float *ref_rope_tables(const struct hearth_model *m)
{
	const struct hparams *h = &m->hp;
	const float *ff = m->rope_freqs.data ? m->rope_freqs.data
			  : m->rope_long.data && 64 > h->n_ctx_orig ? m->rope_long.data : m->rope_short.data;
	float *cs = malloc((size_t)h->n_layer * N_TOK * h->n_rot * sizeof *cs);
	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		struct hparams hl = *h;
		hl.rope_base = l->rope_base;
		hl.rope_freq_scale = l->rope_freq_scale;
		hl.yarn_corr[0] = l->yarn_corr[0];
		hl.yarn_corr[1] = l->yarn_corr[1];
		hl.yarn_mscale = l->yarn_mscale;
		for (int p = 0; p < N_TOK; p++)
			block_rope_cs(p, h->n_rot, &hl, ff, cs + ((size_t)il * N_TOK + (size_t)p) * h->n_rot);
	}
	return cs;
}

/* The reference's mixtures of experts, when the model has them. */
static void ref_init_moe(struct ref *r)
{
	const struct hearth_model *m = r->m;
	r->choice = calloc(1, sizeof *r->choice);
	if (m->hp.n_expert == 0)
		return;
	r->moe = calloc((size_t)m->hp.n_layer, sizeof *r->moe);
	for (int il = 0; il < m->hp.n_layer; il++)
		ref_moe_init(&r->moe[il], m, il);
}

/* The reference of model m with trainer tr's adapters (copied as doubles). */
static void ref_init(struct ref *r, const struct hearth_model *m, struct hearth_trainer *tr, const float *embd)
{
	const struct hparams *h = &m->hp;
	memset(r, 0, sizeof *r);
	r->m = m;
	r->w = calloc((size_t)h->n_layer * 7 + 1, sizeof *r->w);
	for (int il = 0; il < h->n_layer; il++)
		for (int role = 0; role < 7; role++)
			r->w[il * 7 + role] = role_w(&m->layers[il], role)->data ? dequant(role_w(&m->layers[il], role)) : NULL;
	r->w[h->n_layer * 7] = dequant(&m->output);
	ref_init_moe(r);
	r->n_lora = hearth_trainer_n_lora(tr);
	r->lora = calloc((size_t)r->n_lora + 1, sizeof *r->lora);
	for (int i = 0; i < r->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(tr, i, &lt);
		struct ref_lora *rl = &r->lora[i];
		rl->il = -1; /* the output head, unless a layer's name matches */
		snprintf(rl->name, sizeof rl->name, "%s", lt.weight);
		for (int il = 0; il < h->n_layer; il++)
			for (int role = 6; role >= 0; role--) /* a fused tensor: its first role */
				if (role_w(&m->layers[il], role)->name && !strcmp(role_w(&m->layers[il], role)->name, lt.weight))
					rl->il = il, rl->role = role;
		rl->rank = lt.rank;
		rl->n_in = lt.n_in;
		rl->n_out = lt.n_out;
		rl->n_expert = lt.n_expert;
		rl->scale = lt.scale;
		rl->a = malloc((size_t)(lt.rank * lt.n_in * lt.n_expert) * sizeof(double));
		rl->b = malloc((size_t)(lt.rank * lt.n_out * lt.n_expert) * sizeof(double));
		for (int64_t j = 0; j < lt.rank * lt.n_in * lt.n_expert; j++)
			rl->a[j] = lt.a[j];
		for (int64_t j = 0; j < lt.rank * lt.n_out * lt.n_expert; j++)
			rl->b[j] = lt.b[j];
		rl->moe = (struct ref_moe_lora){ .rank = lt.rank, .scale = lt.scale, .a = rl->a, .b = rl->b };
		for (int il = 0; lt.n_expert > 1 && il < h->n_layer; il++) { /* an expert stack: its layer's mixture */
			const struct layer *l = &m->layers[il];
			const struct tensor *st[3] = { &l->ffn_gate_exps, &l->ffn_up_exps, &l->ffn_down_exps };
			for (int j = 0; j < 3; j++)
				if (st[j]->name && !strcmp(st[j]->name, lt.weight))
					rl->il = il, rl->role = 4 + j, r->moe[il].lo[j] = &rl->moe;
		}
	}
	r->cs = ref_rope_tables(m);
	r->embd = malloc((size_t)N_TOK * h->n_embd * sizeof *r->embd);
	for (int64_t j = 0; j < (int64_t)N_TOK * h->n_embd; j++)
		r->embd[j] = embd[j];
}

static void ref_free(struct ref *r)
{
	for (int i = 0; i <= r->m->hp.n_layer * 7; i++)
		free(r->w[i]);
	for (int i = 0; i < r->n_lora; i++)
		free(r->lora[i].a), free(r->lora[i].b);
	for (int il = 0; r->moe && il < r->m->hp.n_layer; il++)
		ref_moe_free(&r->moe[il]);
	free(r->w), free(r->lora), free(r->cs), free(r->embd), free(r->moe), free(r->choice);
}

/* d ref_loss / d *x by central differences; NAN when a perturbation
 * changes a token's choice of experts (the loss is not smooth there). */
static double fd(struct ref *r, double *x)
{
	const double keep = *x;
	*x = keep + FD_H;
	const double lp = ref_loss(r);
	const bool flip = *r->choice != r->choice0;
	*x = keep - FD_H;
	const double lm = ref_loss(r);
	*x = keep;
	return flip || *r->choice != r->choice0 ? NAN : (lp - lm) / (2 * FD_H);
}

/* ---- checks ------------------------------------------------------------------------- */

static struct hearth_trainer *trainer(const struct hearth_model *m, uint32_t targets, int n_threads)
{
	struct hearth_trainer_params p = hearth_trainer_default_params();
	struct hearth_err err = { 0 };
	struct hearth_trainer *t = NULL;
	p.targets = targets;
	p.rank = 4;
	p.n_ctx = 64;
	p.n_threads = n_threads;
	T_OK(hearth_trainer_new(&t, m, &p, &err), err);
	if (!t)
		return NULL;
	/* B random too, so that A has gradients */
	rng = 5;
	for (int i = 0; i < hearth_trainer_n_lora(t); i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(t, i, &lt);
		for (int64_t j = 0; j < lt.rank * lt.n_out * lt.n_expert; j++)
			lt.b[j] = (float)(rnd() * 0.3);
	}
	return t;
}

/* The tokens' embedding rows (as the trainer's input). */
static float *embd_rows(const struct hearth_model *m)
{
	const int64_t E = m->hp.n_embd;
	float *e = malloc((size_t)(N_TOK * E) * sizeof *e);
	for (int i = 0; i < N_TOK; i++)
		kern_ops_ref(m->tok_embd.type)->to_float((const char *)m->tok_embd.data + (size_t)toks[i] * qtype_row_size(m->tok_embd.type, E),
						       e + i * E, E);
	return e;
}

/* Loss, LoRA and embedding gradients of m against the double reference. */
static void check_grads(const char *what, const struct hearth_model *m, int n_pick)
{
	struct hearth_err err = { 0 };
	const int64_t E = m->hp.n_embd;
	const bool tied = m->output.data == m->tok_embd.data;
	/* every matrix (the head: unless tied; a mixture of experts: its experts' stacks) */
	const uint32_t targets = tied ? 0x7f : 0xff;
	struct hearth_trainer *t = trainer(m, targets, 2);
	if (!t)
		return;
	float *embd = embd_rows(m), *ge = malloc((size_t)(N_TOK * E) * sizeof *ge);
	struct hearth_train_batch b = { .n = N_TOK, .tokens = toks, .labels = lab7, .pos = pos7 };
	double loss = 0;
	T_OK(hearth_trainer_run(t, &b, true, &loss, ge, &err), err);
	struct ref r;
	ref_init(&r, m, t, embd);
	const double rl = ref_loss(&r);
	r.choice0 = *r.choice;
	T_NEAR(loss, rl, LOSS_TOL * fabs(rl));
	double max_num[3] = { 0 }, max_diff[3] = { 0 };
	int skipped = 0;
	for (int k = 0; k < 3 * n_pick; k++) {
		const int kind = k / n_pick; /* A, B, embeddings */
		double *x, an;
		if (kind < 2) {
			const int i = (int)rnd_u((uint32_t)r.n_lora);
			struct hearth_lora_tensor lt;
			hearth_trainer_lora(t, i, &lt);
			const int64_t n = (kind == 0 ? lt.rank * lt.n_in : lt.rank * lt.n_out) * lt.n_expert;
			const int64_t j = rnd_u((uint32_t)n);
			x = kind == 0 ? &r.lora[i].a[j] : &r.lora[i].b[j];
			an = kind == 0 ? lt.grad_a[j] : lt.grad_b[j];
		} else {
			const int64_t j = rnd_u((uint32_t)(N_TOK * E));
			x = &r.embd[j];
			an = ge[j];
		}
		const double num = fd(&r, x);
		if (isnan(num)) {
			skipped++;
			continue;
		}
		max_num[kind] = fmax(max_num[kind], fabs(num));
		max_diff[kind] = fmax(max_diff[kind], fabs(num - an));
	}
	int stack_nonzero = 0; /* the experts' stacks: a few entries of each's A and B, by name */
	for (int i = 0; i < r.n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(t, i, &lt);
		if (lt.n_expert == 1)
			continue;
		T_TRUE(r.lora[i].il >= 0 && r.lora[i].role >= 4 && strstr(lt.weight, "_exps.weight"));
		for (int k = 0; k < 4; k++) {
			const int kind = k & 1;
			const int64_t j = rnd_u((uint32_t)((kind ? lt.n_out : lt.n_in) * lt.rank * lt.n_expert));
			const double num = fd(&r, kind ? &r.lora[i].b[j] : &r.lora[i].a[j]);
			if (isnan(num)) {
				skipped++;
				continue;
			}
			stack_nonzero += num != 0;
			max_num[kind] = fmax(max_num[kind], fabs(num));
			max_diff[kind] = fmax(max_diff[kind], fabs(num - (kind ? lt.grad_b[j] : lt.grad_a[j])));
		}
	}
	if (m->hp.n_expert)
		T_TRUE(stack_nonzero > 0);
	if (!tied) { /* the output head's adapter: a few entries of its B, by name */
		struct hearth_lora_tensor lt;
		const int i = r.n_lora - 1;
		hearth_trainer_lora(t, i, &lt);
		T_TRUE(r.lora[i].il == -1 && !strcmp(lt.weight, m->output.name));
		for (int k = 0; k < 4; k++) {
			const int64_t j = rnd_u((uint32_t)(lt.rank * lt.n_out));
			const double num = fd(&r, &r.lora[i].b[j]);
			if (isnan(num)) {
				skipped++;
				continue;
			}
			max_num[1] = fmax(max_num[1], fabs(num));
			max_diff[1] = fmax(max_diff[1], fabs(num - lt.grad_b[j]));
		}
	}
	const char *names[3] = { "dA", "dB", "d embeddings" };
	for (int kind = 0; kind < 3; kind++) {
		const double rel = max_diff[kind] / (max_num[kind] > 0 ? max_num[kind] : 1);
		fprintf(stderr, "    %-22s %-13s relative error %.2e (largest %.3g)\n", what, names[kind], rel, max_num[kind]);
		T_TRUE(rel < GRAD_TOL);
		T_TRUE(max_num[kind] > 0);
	}
	fprintf(stderr, "    %-22s loss %.9f, reference %.9f\n", what, loss, rl);
	if (skipped) /* a difference across a change of experts measures the jump, not the gradient */
		fprintf(stderr, "    %-22s %d differences skipped: a perturbation changed a choice of experts\n", what, skipped);
	T_TRUE(skipped <= n_pick / 2 + (m->hp.n_expert ? 2 * m->hp.n_layer : 0));
	ref_free(&r);
	free(embd), free(ge);
	hearth_trainer_free(t);
}

static struct hearth_model *synth(const char *arch, int wtype, int head_dim, bool rope_freqs, const char *file)
{
	struct synth_spec s = { .arch = arch, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
				.head_dim = head_dim, .wtype = wtype, .embd_type = HEARTH_TYPE_F32, .seed = 3,
				.rope_freqs = rope_freqs };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(synth_model_write(tmp_path(file), &s, &err), err);
	T_OK(hearth_model_load(&m, tmp_path(file), &mp, &err), err);
	return m;
}

void test_train_grad_synth(void)
{
	const struct { const char *arch; int wtype, head_dim; bool rope_freqs; const char *what; } cases[] = {
		{ "llama", HEARTH_TYPE_F32, 0, true, "llama f32" },
		{ "qwen2", HEARTH_TYPE_F32, 0, false, "qwen2 f32 (biases)" },
		{ "qwen3", HEARTH_TYPE_F32, 32, false, "qwen3 f32 (q/k norms)" },
		{ "llama", HEARTH_TYPE_Q4_0, 0, false, "llama q4_0" },
		{ "qwen3", HEARTH_TYPE_Q8_0, 32, false, "qwen3 q8_0" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hearth_model *m = synth(cases[i].arch, cases[i].wtype, cases[i].head_dim, cases[i].rope_freqs, "train.gguf");
		if (m)
			check_grads(cases[i].what, m, N_PICK);
		hearth_model_free(m);
	}
}

void test_train_grad_fixtures(void)
{
	const char *files[] = { "models/tiny-llama3.f32.gguf", "models/tiny-qwen2.q4_k_m.gguf", "models/tiny-qwen3.f32.gguf" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		T_OK(hearth_model_load(&m, fixture(files[i]), &mp, &err), err);
		if (m)
			check_grads(files[i] + 7, m, N_PICK / 2); /* large vocabularies: each difference costs more */
		hearth_model_free(m);
	}
}

/* The other dense architectures: gemma2 (synthetic: GeGLU, post-norms,
 * capped scores and logits, a window of 2 on its local layer), gemma3
 * (q/k norms, windows, per-layer rope), phi3 (fused qkv and gate+up,
 * LongRoPE), chatglm (fused qkv with bias, partial rope), glm4 (post-norms,
 * fused gate+up): f32 and quantized. */
void test_train_grad_dense(void)
{
	struct synth_spec sp = { .arch = "gemma2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
				 .wtype = HEARTH_TYPE_F32, .embd_type = HEARTH_TYPE_F32, .seed = 3, .n_swa = 2 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	for (int k = 0; k < 2; k++) {
		sp.wtype = k ? HEARTH_TYPE_Q8_0 : HEARTH_TYPE_F32;
		T_OK(synth_model_write(tmp_path("train-g2.gguf"), &sp, &err), err);
		T_OK(hearth_model_load(&m, tmp_path("train-g2.gguf"), &mp, &err), err);
		if (m) {
			T_TRUE(m->layers[0].n_swa == 2 && m->hp.attn_softcap > 0 && m->hp.final_softcap > 0);
			check_grads(k ? "gemma2 q8_0 (synth)" : "gemma2 f32 (synth)", m, N_PICK);
		}
		hearth_model_free(m);
		m = NULL;
	}
	const char *files[] = { "models/tiny-gemma3.f32.gguf", "models/tiny-gemma3.q4_k_m.gguf", "models/tiny-phi3.f32.gguf",
				"models/tiny-phi3.q4_k_m.gguf", "models/tiny-chatglm.f32.gguf", "models/tiny-chatglm.q4_k_m.gguf",
				"models/tiny-glm4.f32.gguf", "models/tiny-glm4.q4_k_m.gguf" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		T_OK(hearth_model_load(&m, fixture(files[i]), &mp, &err), err);
		if (m)
			check_grads(files[i] + 7, m, N_PICK / 2);
		hearth_model_free(m);
		m = NULL;
	}
}

/* The trainer's loss on model m against the cross-entropy of hearth_decode's
 * logits on the same tokens. */
static void loss_vs_decode(const char *what, struct hearth_model *m)
{
	const int32_t ids[6] = { 1, 300, 301, 302, 303, 304 }, labels[6] = { 300, 301, 302, 303, 304, 305 };
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	cp.n_ctx = 32;
	cp.n_threads = 2;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	T_OK(hearth_decode(c, ids, 6, true, &err), err);
	const int32_t V = hearth_model_n_vocab(m);
	double ce = 0;
	for (int i = 0; i < 6; i++) {
		const float *l = hearth_get_logits(c, i);
		double mx = -INFINITY, z = 0;
		for (int32_t j = 0; j < V; j++)
			mx = fmax(mx, l[j]);
		for (int32_t j = 0; j < V; j++)
			z += exp(l[j] - mx);
		ce -= l[labels[i]] - mx - log(z);
	}
	ce /= 6;
	struct hearth_trainer *t = trainer(m, 0, 2);
	struct hearth_train_batch b = { .n = 6, .tokens = ids, .labels = labels };
	double loss = 0;
	T_OK(hearth_trainer_run(t, &b, false, &loss, NULL, &err), err);
	fprintf(stderr, "    %-32s decode %.7f  trainer %.7f  relative difference %.2e\n", what, ce, loss, fabs(loss - ce) / ce);
	/* f32 weights: float rounding apart; quantized: the kernels round
	 * activations to 8 bits (measured: at most 3.0e-3, gemma3 q4_k_m) */
	T_NEAR(loss, ce, (qtype_info(m->layers[0].wq.type)->is_quantized ? 5e-3 : 1e-6) * ce);
	hearth_trainer_free(t);
	hearth_context_free(c);
}

/* Mixtures of experts (qwen3moe; llama with experts: Mixtral), f32 and
 * quantized: attention and output-head adapters and the input embeddings,
 * whose gradients go through the routing weights and the chosen experts. */
void test_train_grad_moe(void)
{
	const char *files[] = { "models/tiny-qwen3moe.f32.gguf", "models/tiny-qwen3moe.q4_k_m.gguf",
				"models/tiny-mixtral.f32.gguf", "models/tiny-mixtral.q4_k_m.gguf", "models/tiny-gpt-oss.f32.gguf",
				"models/tiny-gpt-oss.mxfp4_moe.gguf" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		T_OK(hearth_model_load(&m, fixture(files[i]), &mp, &err), err);
		if (m) {
			T_TRUE(m->hp.n_expert > 0);
			check_grads(files[i] + 7, m, N_PICK / 2);
		}
		hearth_model_free(m);
	}
}

/* The trainer's loss is the cross-entropy of what decoding computes. */
void test_train_loss_vs_decode(void)
{
	const char *files[] = { "models/tiny-llama-spm.f32.gguf", "models/tiny-qwen2.f32.gguf", "models/tiny-qwen3.f32.gguf",
				"models/tiny-llama3.q4_k_m.gguf", "models/tiny-qwen3.q6_k.gguf", "models/tiny-gemma3.f32.gguf",
				"models/tiny-phi3.f32.gguf", "models/tiny-chatglm.f32.gguf", "models/tiny-glm4.f32.gguf",
				"models/tiny-gemma3.q4_k_m.gguf", "models/tiny-phi3.q4_k_m.gguf", "models/tiny-qwen3moe.f32.gguf",
				"models/tiny-mixtral.f32.gguf", "models/tiny-qwen3moe.q4_k_m.gguf", "models/tiny-mixtral.q4_k_m.gguf",
				"models/tiny-gpt-oss.f32.gguf", "models/tiny-gpt-oss.mxfp4_moe.gguf" };
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		T_OK(hearth_model_load(&m, fixture(files[f]), &mp, &err), err);
		if (m)
			loss_vs_decode(files[f] + 7, m);
		hearth_model_free(m);
	}
}

/* The same for synthetic gemma2 and gemma3 with windows of 2 and 3 positions
 * (the six tokens cross them) and gemma2's capped scores and logits. */
void test_train_loss_vs_decode_swa(void)
{
	const struct { const char *arch; int n_swa; } cases[] = { { "gemma2", 2 }, { "gemma3", 3 } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct synth_spec sp = { .arch = cases[i].arch, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
					 .n_ff = 96, .wtype = HEARTH_TYPE_F32, .embd_type = HEARTH_TYPE_F32, .seed = 7,
					 .n_vocab = 400, .n_swa = cases[i].n_swa };
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		T_OK(synth_model_write(tmp_path("train-swa.gguf"), &sp, &err), err);
		T_OK(hearth_model_load(&m, tmp_path("train-swa.gguf"), &mp, &err), err);
		if (m) {
			T_TRUE(m->layers[0].n_swa == cases[i].n_swa);
			loss_vs_decode(cases[i].arch, m);
		}
		hearth_model_free(m);
	}
}

/* Gradients with one thread and with four: the same bits (a model and a
 * sequence large enough that every operation runs on the pool). */
void test_train_threads(void)
{
	struct synth_spec sp = { .arch = "qwen3", .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512,
				 .head_dim = 64, .wtype = HEARTH_TYPE_Q8_0, .embd_type = HEARTH_TYPE_F32, .seed = 4 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(synth_model_write(tmp_path("train-t.gguf"), &sp, &err), err);
	T_OK(hearth_model_load(&m, tmp_path("train-t.gguf"), &mp, &err), err);
	if (!m)
		return;
	enum { N = 48 };
	int32_t ids[N], lab[N], pos[N];
	for (int i = 0; i < N; i++) {
		ids[i] = 3 + (i * 37) % 250;
		lab[i] = i % 3 ? 3 + ((i + 1) * 37) % 250 : -1;
		pos[i] = i < 30 ? i : i - 30;
	}
	const size_t E = (size_t)m->hp.n_embd;
	struct hearth_trainer *t1 = trainer(m, 0xff, 1), *t4 = trainer(m, 0xff, 4);
	float *g1 = malloc(N * E * sizeof *g1), *g4 = malloc(N * E * sizeof *g4);
	struct hearth_train_batch b = { .n = N, .tokens = ids, .labels = lab, .pos = pos };
	double l1 = 0, l4 = 0;
	if (!t1 || !t4)
		goto out;
	T_OK(hearth_trainer_run(t1, &b, true, &l1, g1, &err), err);
	T_OK(hearth_trainer_run(t4, &b, true, &l4, g4, &err), err);
	T_TRUE(l1 == l4);
	T_TRUE(memcmp(g1, g4, N * E * sizeof *g1) == 0);
	for (int i = 0; i < hearth_trainer_n_lora(t1); i++) {
		struct hearth_lora_tensor a, c;
		hearth_trainer_lora(t1, i, &a);
		hearth_trainer_lora(t4, i, &c);
		T_TRUE(memcmp(a.grad_a, c.grad_a, (size_t)(a.rank * a.n_in) * sizeof(float)) == 0);
		T_TRUE(memcmp(a.grad_b, c.grad_b, (size_t)(a.rank * a.n_out) * sizeof(float)) == 0);
	}
	/* gradients add up over passes until zeroed */
	struct hearth_lora_tensor a;
	hearth_trainer_lora(t1, 3, &a);
	const float g0 = a.grad_b[5];
	T_TRUE(g0 != 0);
	T_OK(hearth_trainer_run(t1, &b, true, &l1, NULL, &err), err);
	T_NEAR(a.grad_b[5], 2 * g0, 1e-6 * fabs(g0));
	hearth_trainer_zero_grad(t1);
	T_TRUE(a.grad_b[5] == 0 && a.grad_a[0] == 0);
out:
	free(g1), free(g4);
	hearth_trainer_free(t1);
	hearth_trainer_free(t4);
	hearth_model_free(m);
}

/* gpt-oss's attention (its FFN is a mixture of experts, refused): a
 * synthetic llama given, in memory, a sink logit per head, a window of 2
 * positions on layer 0, and per-layer rope with YaRN (layer 0: its own base,
 * frequency scale 1/4 and ramp; layer 1: the model's), before any pass or
 * context reads them. Gradients against the double reference, and the loss
 * against decoding's (which reads the same fields). */
void test_train_attn_gptoss(void)
{
	struct synth_spec sp = { .arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
				 .wtype = HEARTH_TYPE_F32, .embd_type = HEARTH_TYPE_F32, .seed = 11, .n_vocab = 400 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	static float sinks[2][4] = { { 0.5f, -1.0f, 2.0f, 0.0f }, { 1.5f, 0.25f, -0.5f, 3.0f } };
	T_OK(synth_model_write(tmp_path("train-oss.gguf"), &sp, &err), err);
	T_OK(hearth_model_load(&m, tmp_path("train-oss.gguf"), &mp, &err), err);
	if (!m)
		return;
	for (int il = 0; il < 2; il++) {
		struct layer *l = &m->layers[il];
		l->attn_sinks = (struct tensor){ .data = sinks[il], .type = HEARTH_TYPE_F32, .ne = { 4, 1 } };
	}
	m->layers[0].n_swa = 2;
	m->hp.rope_ext_factor = 1.0f;
	m->layers[0].rope_base = 5000.0f;
	m->layers[0].rope_freq_scale = 0.25f;
	m->layers[0].yarn_corr[0] = 2.0f;
	m->layers[0].yarn_corr[1] = 6.0f;
	m->layers[0].yarn_mscale = 1.1f;
	check_grads("llama + gpt-oss attention", m, N_PICK);
	loss_vs_decode("llama + gpt-oss attention", m);
	hearth_model_free(m);
}

/* One thread against four on gemma2 (GeGLU, post-norms, capped scores and
 * logits, a window) and on phi3 (fused adapters: A's gradient summed over
 * the parts): the same bits. */
void test_train_threads_dense(void)
{
	struct synth_spec sp = { .arch = "gemma2", .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512,
				 .wtype = HEARTH_TYPE_Q8_0, .embd_type = HEARTH_TYPE_F32, .seed = 4, .n_swa = 9 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *ms[2] = { NULL, NULL };
	T_OK(synth_model_write(tmp_path("train-t2.gguf"), &sp, &err), err);
	T_OK(hearth_model_load(&ms[0], tmp_path("train-t2.gguf"), &mp, &err), err);
	T_OK(hearth_model_load(&ms[1], fixture("models/tiny-phi3.q4_k_m.gguf"), &mp, &err), err);
	enum { N = 48 };
	int32_t ids[N], lab[N], pos[N];
	for (int i = 0; i < N; i++) {
		ids[i] = 3 + (i * 37) % 250;
		lab[i] = i % 3 ? 3 + ((i + 1) * 37) % 250 : -1;
		pos[i] = i < 30 ? i : i - 30;
	}
	for (int k = 0; k < 2; k++) {
		const struct hearth_model *m = ms[k];
		if (!m)
			continue;
		const size_t E = (size_t)m->hp.n_embd;
		struct hearth_trainer *t1 = trainer(m, 0x7f, 1), *t4 = trainer(m, 0x7f, 4);
		float *g1 = malloc(N * E * sizeof *g1), *g4 = malloc(N * E * sizeof *g4);
		struct hearth_train_batch b = { .n = N, .tokens = ids, .labels = lab, .pos = pos };
		double l1 = 0, l4 = 0;
		if (t1 && t4) {
			T_OK(hearth_trainer_run(t1, &b, true, &l1, g1, &err), err);
			T_OK(hearth_trainer_run(t4, &b, true, &l4, g4, &err), err);
			T_TRUE(l1 == l4);
			T_TRUE(memcmp(g1, g4, N * E * sizeof *g1) == 0);
			for (int i = 0; i < hearth_trainer_n_lora(t1); i++) {
				struct hearth_lora_tensor a, c;
				hearth_trainer_lora(t1, i, &a);
				hearth_trainer_lora(t4, i, &c);
				T_TRUE(memcmp(a.grad_a, c.grad_a, (size_t)(a.rank * a.n_in) * sizeof(float)) == 0);
				T_TRUE(memcmp(a.grad_b, c.grad_b, (size_t)(a.rank * a.n_out) * sizeof(float)) == 0);
			}
		}
		if (k == 1 && t1) { /* phi3: one adapter per fused matrix (qkv, o, gate+up, down) a layer */
			struct hearth_lora_tensor a;
			hearth_trainer_lora(t1, 0, &a);
			T_EQ_I64(hearth_trainer_n_lora(t1), 4 * m->hp.n_layer);
			T_TRUE(strcmp(a.weight, "blk.0.attn_qkv.weight") == 0);
			T_EQ_I64(a.n_out, m->layers[0].wq.ne[1] + m->layers[0].wk.ne[1] + m->layers[0].wv.ne[1]);
		}
		free(g1), free(g4);
		hearth_trainer_free(t1);
		hearth_trainer_free(t4);
	}
	hearth_model_free(ms[0]);
	hearth_model_free(ms[1]);
}

/* A mixture of experts' pass with one thread and with four: the same bits
 * (48 tokens, so that the experts' rows and the router run on the pool). */
void test_train_threads_moe(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen3moe.q4_k_m.gguf"), &mp, &err), err);
	if (!m)
		return;
	enum { N = 48 };
	int32_t ids[N], lab[N];
	for (int i = 0; i < N; i++) {
		ids[i] = 3 + (i * 37) % 250;
		lab[i] = i % 3 ? 3 + ((i + 1) * 37) % 250 : -1;
	}
	const size_t E = (size_t)m->hp.n_embd;
	struct hearth_trainer *t1 = trainer(m, 0x0f, 1), *t4 = trainer(m, 0x0f, 4);
	float *g1 = malloc(N * E * sizeof *g1), *g4 = malloc(N * E * sizeof *g4);
	struct hearth_train_batch b = { .n = N, .tokens = ids, .labels = lab };
	double l1 = 0, l4 = 0;
	if (t1 && t4) {
		T_OK(hearth_trainer_run(t1, &b, true, &l1, g1, &err), err);
		T_OK(hearth_trainer_run(t4, &b, true, &l4, g4, &err), err);
		T_TRUE(l1 == l4);
		T_TRUE(memcmp(g1, g4, N * E * sizeof *g1) == 0);
		for (int i = 0; i < hearth_trainer_n_lora(t1); i++) {
			struct hearth_lora_tensor a, c;
			hearth_trainer_lora(t1, i, &a);
			hearth_trainer_lora(t4, i, &c);
			T_TRUE(memcmp(a.grad_a, c.grad_a, (size_t)(a.rank * a.n_in) * sizeof(float)) == 0);
			T_TRUE(memcmp(a.grad_b, c.grad_b, (size_t)(a.rank * a.n_out) * sizeof(float)) == 0);
		}
	}
	free(g1), free(g4);
	hearth_trainer_free(t1);
	hearth_trainer_free(t4);
	hearth_model_free(m);
}

void test_train_errors(void)
{
	struct hearth_err err = { 0 };
	struct hearth_model *m = synth("llama", HEARTH_TYPE_F32, 0, false, "train-e.gguf");
	struct hearth_trainer *t = NULL;
	if (!m)
		return;
	struct hearth_trainer_params p = hearth_trainer_default_params();
	p.rank = 0;
	T_EQ_I64(hearth_trainer_new(&t, m, &p, &err), HEARTH_EINVAL);
	p = hearth_trainer_default_params();
	p.targets = 1u << 8;
	T_EQ_I64(hearth_trainer_new(&t, m, &p, &err), HEARTH_EINVAL);
	/* 65536 tokens: the attention's n_head x n_ctx^2 buffers exceed any test machine's memory */
	p = hearth_trainer_default_params();
	p.n_ctx = 65536;
	T_EQ_I64(hearth_trainer_new(&t, m, &p, &err), HEARTH_ENOMEM);
	T_TRUE(strstr(err.msg, "more than this machine's") != NULL);
	T_TRUE(t == NULL);
	p = hearth_trainer_default_params();
	p.n_ctx = 8;
	T_OK(hearth_trainer_new(&t, m, &p, &err), err);
	double loss;
	const int32_t bad_tok[2] = { 1, 5000 }, ok_tok[2] = { 1, 2 }, no_lab[2] = { -1, -1 }, lab[2] = { 2, -1 };
	const int32_t bad_lab[2] = { 9999, -1 }, bad_pos[2] = { 0, 2 }, many[9] = { 0 };
	struct hearth_train_batch b = { .n = 2, .tokens = bad_tok, .labels = lab };
	T_EQ_I64(hearth_trainer_run(t, &b, true, &loss, NULL, &err), HEARTH_EINVAL);
	b.tokens = ok_tok;
	b.labels = no_lab;
	T_EQ_I64(hearth_trainer_run(t, &b, true, &loss, NULL, &err), HEARTH_EINVAL);
	b.labels = bad_lab;
	T_EQ_I64(hearth_trainer_run(t, &b, true, &loss, NULL, &err), HEARTH_EINVAL);
	b.labels = lab;
	b.pos = bad_pos;
	T_EQ_I64(hearth_trainer_run(t, &b, true, &loss, NULL, &err), HEARTH_EINVAL);
	b.pos = NULL;
	T_OK(hearth_trainer_run(t, &b, true, &loss, NULL, &err), err);
	b.n = 9;
	b.tokens = b.labels = many;
	T_EQ_I64(hearth_trainer_run(t, &b, true, &loss, NULL, &err), HEARTH_EINVAL);
	hearth_trainer_free(t);
	hearth_model_free(m);
	struct hearth_model_params mp = hearth_model_default_params();
	/* an adapter on a head that is the embedding matrix */
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen3.f32.gguf"), &mp, &err), err);
	if (m) {
		T_TRUE(m->output.data == m->tok_embd.data);
		p = hearth_trainer_default_params();
		p.targets = HEARTH_TRAIN_OUTPUT;
		T_EQ_I64(hearth_trainer_new(&t, m, &p, &err), HEARTH_EUNSUPPORTED);
	}
	hearth_model_free(m);
	/* a mixture of experts: an adapter per stack, one A and B per expert, in llama.cpp's layout */
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen3moe.f32.gguf"), &mp, &err), err);
	if (m) {
		p = hearth_trainer_default_params();
		p.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_FFN_UP;
		T_OK(hearth_trainer_new(&t, m, &p, &err), err);
		if (t) {
			struct hearth_lora_tensor lt;
			T_EQ_I64(hearth_trainer_n_lora(t), 2 * m->hp.n_layer);
			hearth_trainer_lora(t, 1, &lt);
			T_TRUE(!strcmp(lt.weight, "blk.0.ffn_up_exps.weight"));
			T_EQ_I64(lt.n_expert, m->hp.n_expert);
			T_EQ_I64(lt.n_in, m->hp.n_embd);
			T_EQ_I64(lt.n_out, m->hp.n_ff_exp);
			hearth_trainer_lora(t, 0, &lt);
			T_EQ_I64(lt.n_expert, 1);
		}
		hearth_trainer_free(t);
		t = NULL;
	}
	hearth_model_free(m);
	/* a model loaded for its vocabulary only */
	mp.vocab_only = true;
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen2.f32.gguf"), &mp, &err), err);
	if (m) {
		T_EQ_I64(hearth_trainer_new(&t, m, NULL, &err), HEARTH_EINVAL);
		T_TRUE(strstr(err.msg, "vocabulary only") != NULL);
		T_TRUE(t == NULL);
	}
	hearth_model_free(m);
}

/* log p(completion | prompt) with the prompt's embedding rows scaled by
 * s[i] (the trainer's pass, loss only). */
static double logprob_scaled(struct hearth_trainer *t, const struct hearth_model *m, const int32_t *ids, int np, int nc,
			     const float *s)
{
	struct hearth_err err = { 0 };
	const int n = np + nc - 1;
	const int64_t E = m->hp.n_embd;
	float *e = malloc((size_t)(n * E) * sizeof *e);
	int32_t lab[16];
	for (int i = 0; i < n; i++) {
		kern_ops_ref(m->tok_embd.type)->to_float((const char *)m->tok_embd.data + (size_t)ids[i] * qtype_row_size(m->tok_embd.type, E),
						       e + i * E, E);
		for (int64_t j = 0; i < np && j < E; j++)
			e[i * E + j] *= s[i];
		lab[i] = i >= np - 1 ? ids[i + 1] : -1;
	}
	struct hearth_train_batch b = { .n = n, .tokens = ids, .labels = lab, .embd = e };
	double loss = 0;
	T_OK(hearth_trainer_run(t, &b, false, &loss, NULL, &err), err);
	free(e);
	return -loss * nc;
}

/* d/da log p with the prompt's rows scaled by a, by central differences */
static double dlogprob_da(struct hearth_trainer *t, const struct hearth_model *m, const int32_t *ids, int np, int nc,
			  double a)
{
	float s[16] = { 0 };
	const double h = 1e-2;
	for (int i = 0; i < np; i++)
		s[i] = (float)(a + h);
	const double up = logprob_scaled(t, m, ids, np, nc, s);
	for (int i = 0; i < np; i++)
		s[i] = (float)(a - h);
	return (up - logprob_scaled(t, m, ids, np, nc, s)) / (2 * h);
}

/* Gradient x input against differences of the log-probability when a
 * prompt row is scaled; integrated gradients of two steps against the
 * differences at the two midpoints of the path. */
void test_train_attribute(void)
{
	struct hearth_err err = { 0 };
	struct hearth_model *m = synth("llama", HEARTH_TYPE_F32, 0, false, "train-a.gguf");
	if (!m)
		return;
	struct hearth_trainer *t = trainer(m, 0, 2);
	enum { NP = 5, NC = 3 };
	const int32_t ids[NP + NC] = { 1, 100, 101, 102, 103, 200, 201, 202 };
	float gxi[NP], ig[NP], ones[NP], s[NP];
	double lp = 0, lp_ig = 0;
	T_OK(hearth_attribute(t, ids, NP, ids + NP, NC, 0, gxi, &lp, &err), err);
	for (int i = 0; i < NP; i++)
		ones[i] = 1;
	T_NEAR(lp, logprob_scaled(t, m, ids, NP, NC, ones), 1e-5 * fabs(lp));
	double max_s = 0, max_d = 0;
	for (int i = 0; i < NP; i++) { /* d/de log p(row i * (1 + e)) = gradient x input of row i */
		const double h = 1e-2;
		memcpy(s, ones, sizeof s);
		s[i] = (float)(1 + h);
		const double up = logprob_scaled(t, m, ids, NP, NC, s);
		s[i] = (float)(1 - h);
		const double down = logprob_scaled(t, m, ids, NP, NC, s);
		const double num = (up - down) / (2 * h);
		max_s = fmax(max_s, fabs(num));
		max_d = fmax(max_d, fabs(num - gxi[i]));
	}
	fprintf(stderr, "    gradient x input against differences: relative error %.2e (largest %.3g)\n", max_d / max_s, max_s);
	T_TRUE(max_d < 1e-2 * max_s && max_s > 0);
	/* two steps: the mean of d/da log p at a = 1/4 and 3/4 */
	T_OK(hearth_attribute(t, ids, NP, ids + NP, NC, 2, ig, &lp_ig, &err), err);
	double sum = 0;
	for (int i = 0; i < NP; i++)
		sum += ig[i];
	const double mid = (dlogprob_da(t, m, ids, NP, NC, 0.25) + dlogprob_da(t, m, ids, NP, NC, 0.75)) / 2;
	fprintf(stderr, "    integrated gradients (2 steps): sum %.6f, differences %.6f\n", sum, mid);
	T_NEAR(sum, mid, 1e-2 * fabs(mid));
	T_NEAR(lp_ig, lp, 1e-12);
	T_EQ_I64(hearth_attribute(t, ids, 0, ids, NC, 0, gxi, NULL, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_attribute(t, ids, NP, ids, NC, -1, gxi, NULL, &err), HEARTH_EINVAL);
	hearth_trainer_free(t);
	hearth_model_free(m);
}
