/*
 * forward.c - inference contexts: the KV cache and the batched forward pass.
 *
 * One decode call runs the model over a batch of B tokens at positions
 * n_past .. n_past+B-1 (longer inputs are cut into n_batch chunks):
 *
 *   x = embed(tokens)                                      [B, n_embd]
 *   per layer:  h = rms_norm(x) * attn_norm
 *               q,k,v = h Wq (+bq), h Wk (+bk), h Wv (+bv)  (qwen3: per-head q/k norm)
 *               rope(q, k); append k, v to the cache
 *               x += attention(q, cache[0 .. pos]) Wo       (causal, GQA)
 *               h = rms_norm(x) * ffn_norm
 *               x += (silu(h Wgate) * (h Wup)) Wdown
 *   logits = rms_norm(x) * output_norm  Woutput
 *
 * Every matrix product reads each weight row once for the whole batch.
 * The KV cache is one allocation per K and V: [n_layer][n_ctx][n_head_kv*head_dim]
 * in F16 or F32. Scratch buffers are sized for n_batch tokens at creation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/thread.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "blocks.h"
#include "model.h"

struct hearth_context {
	struct hearth_model *m;
	int32_t n_ctx, n_batch, n_past;
	int cache_type;
	void *k_cache, *v_cache;
	int64_t kv_k, kv_v;    /* floats per position per layer: n_head_kv * head_dim */
	struct pool *pool;
	/* scratch for n_batch tokens */
	float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
	void *xq;              /* activations converted to a weight's dot type */
	float *scores;         /* n_threads x n_ctx */
	/* logits of the last decode */
	float *logits;
	int32_t n_logits, logits_first; /* rows kept, input index of the first */
	size_t logits_cap;
};

struct hearth_context_params hearth_context_default_params(void)
{
	return (struct hearth_context_params){ .n_ctx = 0, .n_batch = 512, .n_threads = 0,
					       .cache_type = HEARTH_TYPE_F16 };
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

int hearth_context_new(struct hearth_context **out, struct hearth_model *m, const struct hearth_context_params *p,
		       struct hearth_err *err)
{
	struct hearth_context_params d = p ? *p : hearth_context_default_params();
	const struct hparams *h = &m->hp;
	struct hearth_context *c;
	int rc;

	*out = NULL;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "context: the model was loaded vocabulary-only");
	if (d.cache_type != HEARTH_TYPE_F16 && d.cache_type != HEARTH_TYPE_F32)
		return err_set(err, HEARTH_EINVAL, "context: cache type must be f16 or f32");
	if (d.n_ctx < 0 || d.n_batch < 0 || d.n_threads < 0 || d.n_threads > 512)
		return err_set(err, HEARTH_EINVAL, "context: negative n_ctx, n_batch or n_threads");
	if (d.n_ctx == 0)
		d.n_ctx = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
	if (d.n_ctx > (1 << 22))
		return err_set(err, HEARTH_EINVAL, "context: n_ctx %d is too large", d.n_ctx);
	if (d.n_batch == 0)
		d.n_batch = 512;
	if (d.n_batch > d.n_ctx)
		d.n_batch = d.n_ctx;
	if (d.n_threads == 0)
		d.n_threads = cpu_count();

	if (!(c = calloc(1, sizeof *c)))
		return err_set(err, HEARTH_ENOMEM, "context: out of memory");
	c->m = m;
	c->n_ctx = d.n_ctx;
	c->n_batch = d.n_batch;
	c->cache_type = d.cache_type;
	c->kv_k = (int64_t)h->n_head_kv * h->head_dim_k;
	c->kv_v = (int64_t)h->n_head_kv * h->head_dim_v;
	if ((rc = pool_new(&c->pool, d.n_threads, err)))
		goto fail;

	const size_t esz = d.cache_type == HEARTH_TYPE_F16 ? 2 : 4;
	const size_t cells = (size_t)h->n_layer * (size_t)c->n_ctx;
	c->k_cache = calloc(cells, (size_t)c->kv_k * esz);
	c->v_cache = calloc(cells, (size_t)c->kv_v * esz);

	const size_t B = (size_t)c->n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff;
	const size_t QK = (size_t)h->n_head * (size_t)h->head_dim_k, OV = (size_t)h->n_head * (size_t)h->head_dim_v;
	c->x = malloc(B * E * sizeof(float));
	c->xb = malloc(B * max_sz(E, OV) * sizeof(float));
	c->q = malloc(B * QK * sizeof(float));
	c->k = malloc(B * (size_t)c->kv_k * sizeof(float));
	c->v = malloc(B * (size_t)c->kv_v * sizeof(float));
	c->att = malloc(B * OV * sizeof(float));
	c->hb = malloc(B * F * sizeof(float));
	c->hb2 = malloc(B * F * sizeof(float));
	/* widest activation row in the widest dot type (f32) */
	c->xq = malloc(B * max_sz(max_sz(E, F), OV) * sizeof(float) + 64);
	c->scores = malloc((size_t)pool_size(c->pool) * (size_t)c->n_ctx * sizeof(float));
	if (!c->k_cache || !c->v_cache || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
	    !c->xq || !c->scores) {
		rc = err_set(err, HEARTH_ENOMEM, "context: out of memory for a %d-token cache", c->n_ctx);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	hearth_context_free(c);
	return rc;
}

void hearth_context_free(struct hearth_context *c)
{
	if (!c)
		return;
	pool_free(c->pool);
	free(c->k_cache);
	free(c->v_cache);
	free(c->x);
	free(c->xb);
	free(c->q);
	free(c->k);
	free(c->v);
	free(c->att);
	free(c->hb);
	free(c->hb2);
	free(c->xq);
	free(c->scores);
	free(c->logits);
	free(c);
}

int32_t hearth_context_n_ctx(const struct hearth_context *c) { return c->n_ctx; }
int32_t hearth_context_n_past(const struct hearth_context *c) { return c->n_past; }

void hearth_context_truncate(struct hearth_context *c, int32_t n_keep)
{
	if (n_keep < 0)
		n_keep = 0;
	if (n_keep < c->n_past)
		c->n_past = n_keep;
}

/* ---- matrix products ------------------------------------------------------ */

struct matmul_task {
	const struct tensor *w;
	const struct qtype_ops *ops;
	const void *xq;  /* n_tok rows of the dot type */
	size_t xq_row;   /* bytes per row of xq */
	size_t w_row;    /* bytes per weight row */
	int n_tok;
	float *y;        /* [n_tok, n_out] */
};

static void matmul_run(void *arg, int ith, int nth)
{
	const struct matmul_task *t = arg;
	const int64_t n_in = t->w->ne[0], n_out = t->w->ne[1];
	const int64_t per = (n_out + nth - 1) / nth, r0 = per * ith, r1 = r0 + per < n_out ? r0 + per : n_out;
	for (int64_t r = r0; r < r1; r++) {
		const char *wr = (const char *)t->w->data + (size_t)r * t->w_row;
		for (int i = 0; i < t->n_tok; i++)
			t->ops->vec_dot(n_in, &t->y[(size_t)i * (size_t)n_out + (size_t)r], wr,
					(const char *)t->xq + (size_t)i * t->xq_row);
	}
}

/* y[n_tok, ne1] = x[n_tok, ne0] W^T */
static void matmul(struct hearth_context *c, const struct tensor *w, const float *x, int n_tok, float *y)
{
	const struct qtype_ops *ops = kern_ops(w->type);
	const int64_t n_in = w->ne[0];
	struct matmul_task t = { .w = w, .ops = ops, .xq = c->xq, .n_tok = n_tok, .y = y };
	t.xq_row = qtype_row_size(ops->dot_type, n_in);
	t.w_row = qtype_row_size(w->type, n_in);
	for (int i = 0; i < n_tok; i++)
		ops->dot_from_float(x + (size_t)i * (size_t)n_in, (char *)c->xq + (size_t)i * t.xq_row, n_in);
	pool_run(c->pool, matmul_run, &t);
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

struct attn_task {
	struct hearth_context *c;
	int il, n_tok;
};

static float *kv_row(const struct hearth_context *c, void *cache, int64_t width, int il, int32_t pos, size_t esz)
{
	return (float *)((char *)cache + (((size_t)il * (size_t)c->n_ctx + (size_t)pos) * (size_t)width) * esz);
}

static float cache_get(const void *row, int f16, int64_t i)
{
	return f16 ? fp16_to_f32(((const hfp16 *)row)[i]) : ((const float *)row)[i];
}

/* Each (token, head) pair: softmax(q k^T / sqrt(d)) over positions 0..pos, times V. */
static void attn_run(void *arg, int ith, int nth)
{
	const struct attn_task *t = arg;
	struct hearth_context *c = t->c;
	const struct hparams *h = &c->m->hp;
	const int f16 = c->cache_type == HEARTH_TYPE_F16;
	const size_t esz = f16 ? 2 : 4;
	const int dk = h->head_dim_k, dv = h->head_dim_v, group = h->n_head / h->n_head_kv;
	const float scale = 1.0f / sqrtf((float)dk);
	float *sc = c->scores + (size_t)ith * (size_t)c->n_ctx;

	for (int job = ith; job < t->n_tok * h->n_head; job += nth) {
		const int i = job / h->n_head, hd = job % h->n_head, kvh = hd / group;
		const int32_t pos = c->n_past + i;
		const float *q = c->q + ((size_t)i * (size_t)h->n_head + (size_t)hd) * (size_t)dk;
		float *out = c->att + ((size_t)i * (size_t)h->n_head + (size_t)hd) * (size_t)dv;
		for (int32_t p = 0; p <= pos; p++) {
			const void *kr = (const char *)kv_row(c, c->k_cache, c->kv_k, t->il, p, esz) + (size_t)kvh * dk * esz;
			float s = 0;
			for (int d = 0; d < dk; d++)
				s += q[d] * cache_get(kr, f16, d);
			sc[p] = s * scale;
		}
		block_softmax(sc, pos + 1);
		for (int d = 0; d < dv; d++)
			out[d] = 0;
		for (int32_t p = 0; p <= pos; p++) {
			const void *vr = (const char *)kv_row(c, c->v_cache, c->kv_v, t->il, p, esz) + (size_t)kvh * dv * esz;
			const float a = sc[p];
			for (int d = 0; d < dv; d++)
				out[d] += a * cache_get(vr, f16, d);
		}
	}
}

static void cache_store(struct hearth_context *c, int il, int n_tok)
{
	const size_t esz = c->cache_type == HEARTH_TYPE_F16 ? 2 : 4;
	for (int i = 0; i < n_tok; i++) {
		void *kd = kv_row(c, c->k_cache, c->kv_k, il, c->n_past + i, esz);
		void *vd = kv_row(c, c->v_cache, c->kv_v, il, c->n_past + i, esz);
		const float *ks = c->k + (size_t)i * (size_t)c->kv_k, *vs = c->v + (size_t)i * (size_t)c->kv_v;
		if (c->cache_type == HEARTH_TYPE_F16) {
			for (int64_t j = 0; j < c->kv_k; j++)
				((hfp16 *)kd)[j] = f32_to_fp16(ks[j]);
			for (int64_t j = 0; j < c->kv_v; j++)
				((hfp16 *)vd)[j] = f32_to_fp16(vs[j]);
		} else {
			memcpy(kd, ks, (size_t)c->kv_k * sizeof(float));
			memcpy(vd, vs, (size_t)c->kv_v * sizeof(float));
		}
	}
}

/* ---- the forward pass ----------------------------------------------------------- */

/* Runs n_tok (<= n_batch) tokens; writes logits for rows [first_logit, n_tok) to out. */
static void forward_chunk(struct hearth_context *c, const int32_t *tokens, int n_tok, int first_logit, float *out)
{
	const struct hearth_model *m = c->m;
	const struct hparams *h = &m->hp;
	const int64_t E = h->n_embd, F = h->n_ff, dk = h->head_dim_k;
	const int64_t QK = (int64_t)h->n_head * dk;
	const struct qtype_ops *eops = kern_ops(m->tok_embd.type);
	const size_t erow = qtype_row_size(m->tok_embd.type, E);
	const float *ff = m->rope_freqs.data;

	for (int i = 0; i < n_tok; i++)
		eops->to_float((const char *)m->tok_embd.data + (size_t)tokens[i] * erow, c->x + (size_t)i * (size_t)E, E);

	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		for (int i = 0; i < n_tok; i++)
			block_rms_norm(c->x + i * E, l->attn_norm.data, c->xb + i * E, E, h->rms_eps);
		matmul(c, &l->wq, c->xb, n_tok, c->q);
		matmul(c, &l->wk, c->xb, n_tok, c->k);
		matmul(c, &l->wv, c->xb, n_tok, c->v);
		add_bias(c->q, &l->bq, n_tok, QK);
		add_bias(c->k, &l->bk, n_tok, c->kv_k);
		add_bias(c->v, &l->bv, n_tok, c->kv_v);
		for (int i = 0; i < n_tok; i++) {
			float *q = c->q + i * QK, *k = c->k + i * c->kv_k;
			if (l->q_norm.data)
				for (int hd = 0; hd < h->n_head; hd++)
					block_rms_norm(q + hd * dk, l->q_norm.data, q + hd * dk, dk, h->rms_eps);
			if (l->k_norm.data)
				for (int hd = 0; hd < h->n_head_kv; hd++)
					block_rms_norm(k + hd * dk, l->k_norm.data, k + hd * dk, dk, h->rms_eps);
			block_rope(q, h->n_head, (int)dk, h->n_rot, c->n_past + i, h, ff);
			block_rope(k, h->n_head_kv, (int)dk, h->n_rot, c->n_past + i, h, ff);
		}
		cache_store(c, il, n_tok);
		struct attn_task at = { c, il, n_tok };
		pool_run(c->pool, attn_run, &at);
		matmul(c, &l->wo, c->att, n_tok, c->xb);
		add_bias(c->xb, &l->bo, n_tok, E);
		for (int64_t j = 0; j < (int64_t)n_tok * E; j++)
			c->x[j] += c->xb[j];

		for (int i = 0; i < n_tok; i++)
			block_rms_norm(c->x + i * E, l->ffn_norm.data, c->xb + i * E, E, h->rms_eps);
		matmul(c, &l->ffn_gate, c->xb, n_tok, c->hb);
		matmul(c, &l->ffn_up, c->xb, n_tok, c->hb2);
		block_swiglu(c->hb, c->hb2, (int64_t)n_tok * F);
		matmul(c, &l->ffn_down, c->hb, n_tok, c->xb);
		for (int64_t j = 0; j < (int64_t)n_tok * E; j++)
			c->x[j] += c->xb[j];
	}
	if (first_logit >= n_tok)
		return;
	const int n_out = n_tok - first_logit;
	for (int i = 0; i < n_out; i++)
		block_rms_norm(c->x + (first_logit + i) * E, m->output_norm.data, c->xb + i * E, E, h->rms_eps);
	matmul(c, &m->output, c->xb, n_out, out);
}

int hearth_decode(struct hearth_context *c, const int32_t *tokens, int32_t n, bool all_logits, struct hearth_err *err)
{
	const int32_t V = c->m->hp.n_vocab;
	if (n <= 0)
		return err_set(err, HEARTH_EINVAL, "decode: no tokens");
	if (n > c->n_ctx - c->n_past)
		return err_set(err, HEARTH_ECTXFULL, "decode: %d tokens do not fit: %d of the context's %d are used", n,
			       c->n_past, c->n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= V)
			return err_set(err, HEARTH_EINVAL, "decode: token id %d is outside the vocabulary (0..%d)", tokens[i],
				       V - 1);
	const int32_t keep = all_logits ? n : 1;
	const size_t need = (size_t)keep * (size_t)V;
	if (need > c->logits_cap) {
		float *l = realloc(c->logits, need * sizeof *l);
		if (!l)
			return err_set(err, HEARTH_ENOMEM, "decode: out of memory for %d rows of logits", keep);
		c->logits = l;
		c->logits_cap = need;
	}
	c->n_logits = keep;
	c->logits_first = n - keep;
	for (int32_t done = 0; done < n;) {
		const int32_t nb = n - done < c->n_batch ? n - done : c->n_batch;
		/* rows of this chunk whose logits are kept */
		int32_t first = c->logits_first - done;
		if (first < 0)
			first = 0;
		float *out = first < nb ? c->logits + (size_t)(done + first - c->logits_first) * (size_t)V : NULL;
		forward_chunk(c, tokens + done, nb, first, out);
		c->n_past += nb;
		done += nb;
	}
	return 0;
}

const float *hearth_get_logits(const struct hearth_context *c, int32_t i)
{
	if (i < 0)
		i = c->logits_first + c->n_logits - 1;
	if (!c->logits || i < c->logits_first || i >= c->logits_first + c->n_logits)
		return NULL;
	return c->logits + (size_t)(i - c->logits_first) * (size_t)c->m->hp.n_vocab;
}
