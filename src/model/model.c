/*
 * model.c - loading a model from GGUF: architecture dispatch, shared
 * hyper-parameters, tensor binding with shape checks; the public model and
 * tokenizer accessors.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../base/bigmem.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "blocks.h"
#include "model.h"
#include "moe.h"

struct arch_entry {
	const char *name;
	int (*load)(struct hearth_model *m, struct hearth_err *err);
};

static const struct arch_entry archs[] = {
	{ "llama", arch_llama_load },
	{ "qwen2", arch_qwen2_load },
	{ "qwen3", arch_qwen3_load },
	{ "qwen3moe", arch_qwen3moe_load },
	{ "gpt-oss", arch_gpt_oss_load },
	{ "gemma3", arch_gemma3_load },
	{ "phi3", arch_phi3_load },
	{ "glm4", arch_glm4_load },
	{ "chatglm", arch_chatglm_load },
	{ "gemma2", arch_gemma2_load },
};

struct hearth_model_params hearth_model_default_params(void)
{
	return (struct hearth_model_params){ .vocab_only = false, .no_repack = false };
}

int model_hparam_i32(struct hearth_model *m, const char *suffix, int32_t *out, bool required, struct hearth_err *err)
{
	char key[128];
	int64_t v;
	snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
	int rc = gguf_get_i64(m->gguf, key, &v, err);
	if (rc == HEARTH_ENOTFOUND)
		return required ? err_set(err, HEARTH_EBADGGUF, "%s: required key '%s' is missing", m->gguf->path, key) : 0;
	if (rc == HEARTH_EBADGGUF && gguf_find_key(m->gguf, key) >= 0 &&
	    m->gguf->kv[gguf_find_key(m->gguf, key)].type == HEARTH_GGUF_ARRAY)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: per-layer values for '%s' are not supported", m->gguf->path, key);
	if (rc)
		return rc;
	if (v < 0 || v > INT32_MAX)
		return err_set(err, HEARTH_EBADGGUF, "%s: '%s' = %" PRId64 " is out of range", m->gguf->path, key, v);
	*out = (int32_t)v;
	return 0;
}

int model_hparam_f32(struct hearth_model *m, const char *suffix, float *out, bool required, struct hearth_err *err)
{
	char key[128];
	snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
	int rc = gguf_get_f32(m->gguf, key, out, err);
	if (rc == HEARTH_ENOTFOUND)
		return required ? err_set(err, HEARTH_EBADGGUF, "%s: required key '%s' is missing", m->gguf->path, key) : 0;
	return rc;
}

int model_tensor3(struct hearth_model *m, struct tensor *t, const char *fmt, int il, int64_t ne0, int64_t ne1,
		  int64_t ne2, enum tensor_flags flags, struct hearth_err *err)
{
	char name[128];
	int64_t i;

	assert(ne2 >= 1 && (ne1 > 0 || ne2 == 1));
	memset(t, 0, sizeof *t);
	snprintf(name, sizeof name, fmt, il);
	if ((i = gguf_find_tensor(m->gguf, name)) < 0) {
		if (flags & TENSOR_OPTIONAL)
			return 0;
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is missing", m->gguf->path, name);
	}
	const struct gguf_tensor *g = &m->gguf->tensors[i];
	bool want_vec = ne1 == 0;
	int64_t want1 = want_vec ? 1 : ne1;
	if (g->ne[0] != ne0 || g->ne[1] != want1 || g->ne[2] != ne2 || g->ne[3] != 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
			       "], expected [%" PRId64 ", %" PRId64 ", %" PRId64 "]", m->gguf->path, name, g->ne[0], g->ne[1],
			       g->ne[2], g->ne[3], ne0, want1, ne2);
	if (want_vec && g->type != HEARTH_TYPE_F32)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' is %s; norms and biases must be f32", m->gguf->path,
			       name, hearth_type_name(g->type));
	if (!kern_ops(g->type))
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' has type %s, which hearth cannot compute with",
			       m->gguf->path, name, hearth_type_name(g->type));
	if ((uintptr_t)g->data % 4)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' data is not 4-byte aligned", m->gguf->path, name);
	t->name = g->name;
	t->type = g->type;
	for (int d = 0; d < 4; d++)
		t->ne[d] = g->ne[d];
	t->data = g->data;
	return 0;
}

int model_tensor(struct hearth_model *m, struct tensor *t, const char *fmt, int il, int64_t ne0, int64_t ne1,
		 enum tensor_flags flags, struct hearth_err *err)
{
	return model_tensor3(m, t, fmt, il, ne0, ne1, 1, flags, err);
}

int32_t model_layer_swa(const struct hearth_model *m, int32_t *out)
{
	int32_t w = 0;
	for (int il = 0; il < m->hp.n_layer; il++) {
		out[il] = m->layers[il].n_swa;
		w = out[il] > w ? out[il] : w;
	}
	return w;
}

bool model_hparam_has(const struct hearth_model *m, const char *suffix)
{
	char key[128];
	snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
	return gguf_find_key(m->gguf, key) >= 0;
}

void model_tensor_rows(const struct tensor *whole, struct tensor *part, int64_t r0, int64_t n)
{
	const bool vec = whole->ne[1] == 1;
	assert(whole->data && r0 >= 0 && n > 0 && r0 + n <= (vec ? whole->ne[0] : whole->ne[1]));
	*part = *whole;
	if (vec) {
		part->ne[0] = n;
		part->data = (const float *)whole->data + r0;
	} else {
		part->ne[1] = n;
		part->data = (const char *)whole->data + (size_t)r0 * qtype_row_size(whole->type, whole->ne[0]);
	}
}

/* Binds a layer's q, k, v projections and biases: separate tensors, or one
 * fused attn_qkv (rows q, then k, then v) and its optional bias. */
static int bind_qkv(struct hearth_model *m, struct layer *l, int il, int64_t E, int64_t QK, int64_t KK, int64_t VV,
		    struct hearth_err *err)
{
	struct tensor w, b;
	int rc;
	if ((rc = model_tensor(m, &w, "blk.%d.attn_qkv.weight", il, E, QK + KK + VV, TENSOR_OPTIONAL, err)))
		return rc;
	if (!w.data) {
		if ((rc = model_tensor(m, &l->wq, "blk.%d.attn_q.weight", il, E, QK, TENSOR_REQUIRED, err)) ||
		    (rc = model_tensor(m, &l->wk, "blk.%d.attn_k.weight", il, E, KK, TENSOR_REQUIRED, err)) ||
		    (rc = model_tensor(m, &l->wv, "blk.%d.attn_v.weight", il, E, VV, TENSOR_REQUIRED, err)) ||
		    (rc = model_tensor(m, &l->bq, "blk.%d.attn_q.bias", il, QK, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->bk, "blk.%d.attn_k.bias", il, KK, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->bv, "blk.%d.attn_v.bias", il, VV, 0, TENSOR_OPTIONAL, err)))
			return rc;
		return 0;
	}
	model_tensor_rows(&w, &l->wq, 0, QK);
	model_tensor_rows(&w, &l->wk, QK, KK);
	model_tensor_rows(&w, &l->wv, QK + KK, VV);
	if ((rc = model_tensor(m, &b, "blk.%d.attn_qkv.bias", il, QK + KK + VV, 0, TENSOR_OPTIONAL, err)))
		return rc;
	if (b.data) {
		model_tensor_rows(&b, &l->bq, 0, QK);
		model_tensor_rows(&b, &l->bk, QK, KK);
		model_tensor_rows(&b, &l->bv, QK + KK, VV);
	}
	return 0;
}

/* Binds a layer's FFN gate and up projections: separate, or one ffn_up of
 * 2 n_ff rows with the gate's first (phi3, glm4, chatglm). */
static int bind_gate_up(struct hearth_model *m, struct layer *l, int il, int64_t E, int64_t F, struct hearth_err *err)
{
	struct tensor w;
	int rc;
	if ((rc = model_tensor(m, &l->ffn_gate, "blk.%d.ffn_gate.weight", il, E, F, TENSOR_OPTIONAL, err)))
		return rc;
	if (l->ffn_gate.data)
		return model_tensor(m, &l->ffn_up, "blk.%d.ffn_up.weight", il, E, F, TENSOR_REQUIRED, err);
	if ((rc = model_tensor(m, &w, "blk.%d.ffn_up.weight", il, E, 2 * F, TENSOR_OPTIONAL, err)))
		return rc;
	if (!w.data)
		return err_set(err, HEARTH_EBADGGUF, "%s: layer %d has neither blk.%d.ffn_gate.weight nor a fused "
			       "blk.%d.ffn_up.weight of %" PRId64 " rows", m->gguf->path, il, il, il, 2 * F);
	model_tensor_rows(&w, &l->ffn_gate, 0, F);
	model_tensor_rows(&w, &l->ffn_up, F, F);
	return 0;
}

static int check_hparams(struct hearth_model *m, struct hearth_err *err)
{
	const struct hparams *h = &m->hp;
	const char *p = m->gguf->path;
	if (h->n_embd < 1 || h->n_embd > (1 << 17) || h->n_layer < 1 || h->n_layer > 1024 || h->n_ff < 1 ||
	    h->n_ff > (1 << 20) || h->n_head < 1 || h->n_head > 4096 || h->n_head_kv < 1 || h->n_head % h->n_head_kv)
		return err_set(err, HEARTH_EBADGGUF, "%s: inconsistent hyper-parameters (n_embd %d, n_layer %d, n_ff %d, "
			       "n_head %d, n_head_kv %d)", p, h->n_embd, h->n_layer, h->n_ff, h->n_head, h->n_head_kv);
	if (h->head_dim_k < 2 || h->head_dim_k > 4096 || h->head_dim_v < 1 || h->head_dim_v > 4096 ||
	    h->n_rot < 0 || h->n_rot > h->head_dim_k || h->n_rot % 2)
		return err_set(err, HEARTH_EBADGGUF, "%s: inconsistent head sizes (key %d, value %d, rope dims %d)", p,
			       h->head_dim_k, h->head_dim_v, h->n_rot);
	if (!(h->rms_eps > 0 && h->rms_eps < 1) || !(h->rope_base > 0) || !(h->rope_freq_scale > 0))
		return err_set(err, HEARTH_EBADGGUF, "%s: bad norm epsilon %g or rope base %g", p, (double)h->rms_eps,
			       (double)h->rope_base);
	return 0;
}

/* Layer il's gated feed-forward matrices (gate and up separate or fused). */
static int bind_dense_ffn(struct hearth_model *m, int il, struct hearth_err *err)
{
	struct layer *l = &m->layers[il];
	const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
	int rc;
	if ((rc = bind_gate_up(m, l, il, E, F, err)))
		return rc;
	return model_tensor(m, &l->ffn_down, "blk.%d.ffn_down.weight", il, F, E, TENSOR_REQUIRED, err);
}

/* The YaRN ramp's ends (dimension pairs) and magnitude for a rope base and
 * frequency scale (see load_yarn). */
static void yarn_constants(const struct hparams *h, float rope_base, float freq_scale, float corr[2], float *mscale)
{
	const float beta_fast = 32.0f, beta_slow = 1.0f, pi = 3.14159265358979323846f;
	const float n_dims = (float)h->n_rot, base = logf(rope_base), n_ctx_orig = (float)h->yarn_n_ctx_orig;
	const float lo = floorf(n_dims * logf(n_ctx_orig / (beta_fast * 2 * pi)) / (2 * base));
	const float hi = ceilf(n_dims * logf(n_ctx_orig / (beta_slow * 2 * pi)) / (2 * base));
	corr[0] = lo > 0 ? lo : 0;
	corr[1] = hi < n_dims - 1 ? hi : n_dims - 1;
	*mscale = h->yarn_attn_factor * (1.0f + 0.1f * logf(1.0f / freq_scale));
}

/* YaRN's constants, as llama.cpp derives them: the ramp between the
 * dimensions whose rotations complete beta_fast (32) and beta_slow (1) turns
 * within the original context, and the magnitude 1 + 0.1 ln(factor) (llama.cpp
 * passes an attention factor that cancels its own, then multiplies by
 * rope.scaling.attn_factor). */
static int load_yarn(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	int32_t n_ctx_orig = h->n_ctx_train;
	float attn_factor = 1.0f;
	int rc;
	if ((rc = model_hparam_i32(m, "rope.scaling.original_context_length", &n_ctx_orig, false, err)) ||
	    (rc = model_hparam_f32(m, "rope.scaling.attn_factor", &attn_factor, false, err)))
		return rc;
	if (n_ctx_orig < 1 || !(attn_factor > 0) || h->n_rot < 2 || !(h->rope_base > 1))
		return err_set(err, HEARTH_EBADGGUF, "%s: bad YaRN parameters (original context %d, attn_factor %g)",
			       m->gguf->path, n_ctx_orig, (double)attn_factor);
	h->yarn_n_ctx_orig = n_ctx_orig;
	h->yarn_attn_factor = attn_factor;
	h->rope_ext_factor = 1.0f;
	yarn_constants(h, h->rope_base, h->rope_freq_scale, h->yarn_corr, &h->yarn_mscale);
	return 0;
}

int model_layer_rope(struct hearth_model *m, struct layer *l, float base, float freq_scale, struct hearth_err *err)
{
	if (!(base > 0) || isinf(base) || (m->hp.rope_ext_factor != 0.0f && !(base > 1)))
		return err_set(err, HEARTH_EBADGGUF, "%s: rope base %g is not usable%s", m->gguf->path, (double)base,
			       m->hp.rope_ext_factor != 0.0f ? " with YaRN" : "");
	l->rope_base = base;
	l->rope_freq_scale = freq_scale;
	if (m->hp.rope_ext_factor != 0.0f)
		yarn_constants(&m->hp, base, freq_scale, l->yarn_corr, &l->yarn_mscale);
	return 0;
}

int model_load_transformer(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	struct gguf_str scaling;
	int rc;

	h->n_ctx_train = 2048;
	h->rope_base = 10000.0f;
	h->rope_freq_scale = 1.0f;
	h->rms_eps = 1e-5f;
	h->rope_attn_factor = 1.0f;
	h->embd_scale = 1.0f;
	h->pooling = -1;
	h->attn_scale = 0.0f;
	h->final_softcap = 0.0f;
	h->attn_softcap = 0.0f;
	h->ffn_act = FFN_SILU;
	if ((rc = model_hparam_i32(m, "context_length", &h->n_ctx_train, false, err)) ||
	    (rc = model_hparam_i32(m, "pooling_type", &h->pooling, false, err)) ||
	    (rc = model_hparam_i32(m, "embedding_length", &h->n_embd, true, err)) ||
	    (rc = model_hparam_i32(m, "block_count", &h->n_layer, true, err)) ||
	    (rc = model_hparam_i32(m, "feed_forward_length", &h->n_ff, true, err)) ||
	    (rc = model_hparam_i32(m, "attention.head_count", &h->n_head, true, err)))
		return rc;
	h->n_head_kv = h->n_head;
	if ((rc = model_hparam_i32(m, "attention.head_count_kv", &h->n_head_kv, false, err)) ||
	    (rc = model_hparam_f32(m, "attention.layer_norm_rms_epsilon", &h->rms_eps, true, err)) ||
	    (rc = model_hparam_f32(m, "rope.freq_base", &h->rope_base, false, err)))
		return rc;
	if (h->n_head < 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: attention.head_count is %d", m->gguf->path, h->n_head);
	h->head_dim_k = h->n_embd / h->n_head;
	if ((rc = model_hparam_i32(m, "attention.key_length", &h->head_dim_k, false, err)))
		return rc;
	h->head_dim_v = h->head_dim_k;
	if ((rc = model_hparam_i32(m, "attention.value_length", &h->head_dim_v, false, err)))
		return rc;
	h->n_rot = h->head_dim_k;
	if ((rc = model_hparam_i32(m, "rope.dimension_count", &h->n_rot, false, err)))
		return rc;

	char key[96];
	snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch);
	rc = gguf_get_str(m->gguf, key, &scaling, err);
	if (rc && rc != HEARTH_ENOTFOUND)
		return rc;
	if (rc == 0 && !(scaling.n == 4 && memcmp(scaling.p, "none", 4) == 0)) {
		const bool yarn = scaling.n == 4 && memcmp(scaling.p, "yarn", 4) == 0;
		if (!yarn && !(scaling.n == 6 && memcmp(scaling.p, "linear", 6) == 0))
			return err_set(err, HEARTH_EUNSUPPORTED, "%s: rope scaling '%.*s' is not supported (none, linear, yarn are)",
				       m->gguf->path, (int)(scaling.n > 32 ? 32 : scaling.n), scaling.p);
		float factor = 1.0f;
		if ((rc = model_hparam_f32(m, "rope.scaling.factor", &factor, false, err)))
			return rc;
		if (!(factor > 0))
			return err_set(err, HEARTH_EBADGGUF, "%s: rope.scaling.factor is %g", m->gguf->path, (double)factor);
		h->rope_freq_scale = 1.0f / factor;
		if (yarn && (rc = load_yarn(m, err)))
			return rc;
	}
	if ((rc = check_hparams(m, err)) || (rc = moe_load_hparams(m, err)))
		return rc;
	h->n_vocab = m->vocab.n_vocab;
	h->n_ctx_orig = h->n_ctx_train;

	const int64_t E = h->n_embd, V = h->n_vocab;
	const int64_t QK = (int64_t)h->n_head * h->head_dim_k, KK = (int64_t)h->n_head_kv * h->head_dim_k;
	const int64_t VV = (int64_t)h->n_head_kv * h->head_dim_v, OV = (int64_t)h->n_head * h->head_dim_v;
	if ((rc = model_tensor(m, &m->tok_embd, "token_embd.weight", 0, E, V, TENSOR_REQUIRED, err)) ||
	    (rc = model_tensor(m, &m->output_norm, "output_norm.weight", 0, E, 0, TENSOR_REQUIRED, err)) ||
	    (rc = model_tensor(m, &m->output, "output.weight", 0, E, V, TENSOR_OPTIONAL, err)) ||
	    (rc = model_tensor(m, &m->rope_freqs, "rope_freqs.weight", 0, h->n_rot / 2, 0, TENSOR_OPTIONAL, err)))
		return rc;
	if (!m->output.data)
		m->output = m->tok_embd; /* tied */

	m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
	if (!m->layers)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", m->gguf->path);
	for (int il = 0; il < h->n_layer; il++) {
		struct layer *l = &m->layers[il];
		if ((rc = model_layer_rope(m, l, h->rope_base, h->rope_freq_scale, err)))
			return rc;
		if ((rc = model_tensor(m, &l->attn_norm, "blk.%d.attn_norm.weight", il, E, 0, TENSOR_REQUIRED, err)) ||
		    (rc = bind_qkv(m, l, il, E, QK, KK, VV, err)) ||
		    (rc = model_tensor(m, &l->wo, "blk.%d.attn_output.weight", il, OV, E, TENSOR_REQUIRED, err)) ||
		    (rc = model_tensor(m, &l->bo, "blk.%d.attn_output.bias", il, E, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->q_norm, "blk.%d.attn_q_norm.weight", il, h->head_dim_k, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->k_norm, "blk.%d.attn_k_norm.weight", il, h->head_dim_k, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->attn_sinks, "blk.%d.attn_sinks.weight", il, h->n_head, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->attn_post_norm, "blk.%d.post_attention_norm.weight", il, E, 0, TENSOR_OPTIONAL, err)) ||
		    (rc = model_tensor(m, &l->ffn_norm, m->ffn_norm_name ? m->ffn_norm_name : "blk.%d.ffn_norm.weight", il, E, 0,
				       TENSOR_REQUIRED, err)) ||
		    (rc = model_tensor(m, &l->ffn_post_norm, "blk.%d.post_ffw_norm.weight", il, E, 0, TENSOR_OPTIONAL, err)))
			return rc;
		if ((rc = h->n_expert > 0 ? moe_bind_layer(m, il, err) : bind_dense_ffn(m, il, err)))
			return rc;
	}
	return 0;
}

/* The bytes of t's packed copy (64-byte multiples), or 0 when its kernels
 * have no packed layout for it. */
static size_t packed_bytes(const struct tensor *t)
{
	const struct qtype_ops *ops = kern_ops(t->type);
	if (!t->data || !ops->pack || t->ne[1] % ops->pack_rows)
		return 0;
	return (ops->pack_size(t->ne[1], t->ne[0]) + 63) / 64 * 64;
}

/* Repacks a matrix for its kernels into dst (packed_bytes(t) of them). The
 * mmapped original is never read again: its whole pages go back to the OS. */
static void pack_tensor(struct tensor *t, uint8_t *dst)
{
	kern_ops(t->type)->pack(t->data, t->ne[1], t->ne[0], dst);
	t->packed = dst;
	/* the original's pages will not be read again: give them back */
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	const uintptr_t start = ((uintptr_t)t->data + page - 1) / page * page;
	const uintptr_t end = ((uintptr_t)t->data + qtype_row_size(t->type, t->ne[0]) * (size_t)t->ne[1]) / page * page;
	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

/* The matrices that may be packed, in a fixed order (each expert's slice is
 * a matrix of its own); returns their count. */
static int packable(struct hearth_model *m, struct tensor **ts, int cap)
{
	int n = 0;
	for (int il = 0; il < m->hp.n_layer; il++) {
		struct layer *l = &m->layers[il];
		struct tensor *lt[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down };
		for (size_t i = 0; i < sizeof lt / sizeof lt[0] && n < cap; i++)
			ts[n++] = lt[i];
		for (int e = 0; l->exp_gate && e < m->hp.n_expert && n + 3 <= cap; e++) {
			ts[n++] = &l->exp_gate[e];
			ts[n++] = &l->exp_up[e];
			ts[n++] = &l->exp_down[e];
		}
	}
	/* the output head: tied heads keep the embedding rows unpacked for lookups */
	if (m->output.data != m->tok_embd.data && n < cap)
		ts[n++] = &m->output;
	return n;
}

/* Packs every matrix that has a packed layout into one buffer of huge pages
 * (the decoding loop streams all of them per token). */
static int pack_weights(struct hearth_model *m, struct hearth_err *err)
{
	const int cap = (7 + 3 * m->hp.n_expert) * m->hp.n_layer + 1;
	struct tensor **ts = malloc((size_t)cap * sizeof *ts);
	if (!ts)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", m->gguf->path);
	const int n = packable(m, ts, cap);
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += packed_bytes(ts[i]);
	if (total) {
		if (!(m->packed_mem = bigmem_alloc(total))) {
			free(ts);
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory repacking %.1f MiB of weights", m->gguf->path,
				       (double)total / 1048576.0);
		}
		m->packed_size = total;
		size_t at = 0;
		for (int i = 0; i < n; i++) {
			const size_t bytes = packed_bytes(ts[i]);
			if (bytes) {
				pack_tensor(ts[i], (uint8_t *)m->packed_mem + at);
				at += bytes;
			}
		}
	}
	free(ts);
	return 0;
}

int hearth_model_load(struct hearth_model **out, const char *path, const struct hearth_model_params *params,
		      struct hearth_err *err)
{
	struct hearth_model *m;
	struct gguf_str arch, tmpl;
	int rc;

	*out = NULL;
	if (!(m = calloc(1, sizeof *m)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	m->vocab_only = params && params->vocab_only;
	if ((rc = hearth_gguf_open(&m->gguf, path, err)))
		goto fail;
	if ((rc = tok_vocab_load(&m->vocab, m->gguf, err)))
		goto fail;
	rc = gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, err);
	if (rc && rc != HEARTH_ENOTFOUND)
		goto fail;
	if (rc == 0) {
		if (!(m->chat_template = malloc(tmpl.n + 1))) {
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			goto fail;
		}
		memcpy(m->chat_template, tmpl.p, tmpl.n);
		m->chat_template[tmpl.n] = 0;
	}
	rc = gguf_get_str(m->gguf, "general.architecture", &arch, err);
	if (rc == HEARTH_ENOTFOUND && m->vocab_only) {
		snprintf(m->arch, sizeof m->arch, "none");
		*out = m;
		return 0;
	}
	if (rc == HEARTH_ENOTFOUND)
		rc = err_set(err, HEARTH_EBADGGUF, "%s: general.architecture is missing", path);
	if (rc)
		goto fail;
	snprintf(m->arch, sizeof m->arch, "%.*s", (int)(arch.n < 31 ? arch.n : 31), arch.p);
	m->hp.n_vocab = m->vocab.n_vocab;
	if (m->vocab_only) {
		*out = m;
		return 0;
	}
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
		if (strcmp(archs[i].name, m->arch) == 0) {
			if ((rc = archs[i].load(m, err)) || (!(params && params->no_repack) && (rc = pack_weights(m, err))))
				goto fail;
			*out = m;
			return 0;
		}
	}
	rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3, phi3, "
		     "glm4, chatglm, gemma2, qwen3moe, gpt-oss are)", path,
		     m->arch);
fail:
	hearth_model_free(m);
	return rc;
}

void hearth_model_free(struct hearth_model *m)
{
	if (!m)
		return;
	tok_vocab_free(&m->vocab);
	bigmem_free(m->packed_mem, m->packed_size);
	free(m->layers);
	free(m->expert_views);
	free(m->chat_template);
	hearth_gguf_close(m->gguf);
	free(m);
}

const char *hearth_model_arch(const struct hearth_model *m) { return m->arch; }
const char *hearth_model_chat_template(const struct hearth_model *m) { return m->chat_template; }
int32_t hearth_model_n_vocab(const struct hearth_model *m) { return m->vocab.n_vocab; }
int32_t hearth_model_n_ctx_train(const struct hearth_model *m) { return m->hp.n_ctx_train; }
int32_t hearth_model_n_embd(const struct hearth_model *m) { return m->hp.n_embd; }
int32_t hearth_model_n_layer(const struct hearth_model *m) { return m->hp.n_layer; }

int hearth_model_pooling(const struct hearth_model *m)
{
	return m->hp.pooling >= HEARTH_POOLING_NONE && m->hp.pooling <= HEARTH_POOLING_LAST ? m->hp.pooling : -1;
}

void hearth_model_final_norm(const struct hearth_model *m, const float *x, float *out)
{
	block_rms_norm(x, m->output_norm.data, out, m->hp.n_embd, m->hp.rms_eps);
}

uint64_t hearth_model_n_params(const struct hearth_model *m)
{
	uint64_t n = 0;
	for (int64_t i = 0; i < m->gguf->n_tensors; i++) {
		const struct gguf_tensor *t = &m->gguf->tensors[i];
		n += (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
	}
	return n;
}

uint64_t hearth_model_size(const struct hearth_model *m)
{
	uint64_t n = 0;
	for (int64_t i = 0; i < m->gguf->n_tensors; i++)
		n += m->gguf->tensors[i].nbytes;
	return n;
}

/* ---- tokenizer front door ------------------------------------------------- */

int32_t hearth_token_bos(const struct hearth_model *m) { return m->vocab.bos; }
int32_t hearth_token_eos(const struct hearth_model *m) { return m->vocab.eos; }
bool hearth_vocab_add_bos(const struct hearth_model *m) { return m->vocab.add_bos; }

bool hearth_token_is_eog(const struct hearth_model *m, int32_t id)
{
	return id >= 0 && id < m->vocab.n_vocab && m->vocab.is_eog[id];
}

bool hearth_token_is_control(const struct hearth_model *m, int32_t id)
{
	return id >= 0 && id < m->vocab.n_vocab && m->vocab.type[id] == TOK_TYPE_CONTROL;
}

int32_t hearth_token_find(const struct hearth_model *m, const char *text)
{
	return strmap_get(&m->vocab.by_text, text, strlen(text));
}

int hearth_tokenize(const struct hearth_model *m, const char *text, size_t len, bool add_special,
		    bool parse_special, int32_t **out, int32_t *n_out, struct hearth_err *err)
{
	return hearth_tokenize_max(m, text, len, add_special, parse_special, INT32_MAX, out, n_out, err);
}

/* tok_encode into a malloc'd array for the public functions. */
static int tokenize_into(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			 bool parse_special, const struct hearth_span *plain, size_t n_plain, int32_t max_tokens,
			 int32_t **out, int32_t *n_out, struct hearth_err *err)
{
	struct tok_ids ids = { 0 };
	*out = NULL;
	*n_out = 0;
	if (max_tokens < 0)
		return err_set(err, HEARTH_EINVAL, "tokenize: the limit %d is negative", max_tokens);
	int rc = tok_encode(&m->vocab, text, len, add_special, parse_special, plain, n_plain, (size_t)max_tokens, &ids, err);
	if (rc) {
		free(ids.v);
		return rc;
	}
	*out = ids.v ? ids.v : calloc(1, sizeof **out);
	*n_out = (int32_t)ids.n;
	return *out ? 0 : err_set(err, HEARTH_ENOMEM, "tokenize: out of memory");
}

int hearth_tokenize_max(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			bool parse_special, int32_t max_tokens, int32_t **out, int32_t *n_out, struct hearth_err *err)
{
	return tokenize_into(m, text, len, add_special, parse_special, NULL, 0, max_tokens, out, n_out, err);
}

int hearth_tokenize_chat(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			 const struct hearth_span *plain, size_t n_plain, int32_t max_tokens, int32_t **out,
			 int32_t *n_out, struct hearth_err *err)
{
	*out = NULL;
	*n_out = 0;
	for (size_t i = 0; i < n_plain; i++) /* sorted, disjoint, inside the text */
		if (plain[i].off > len || plain[i].len > len - plain[i].off ||
		    (i > 0 && plain[i].off < plain[i - 1].off + plain[i - 1].len))
			return err_set(err, HEARTH_EINVAL,
				       "tokenize: plain range %zu (%zu bytes at %zu) is out of order or past the %zu-byte text",
				       i, plain[i].len, plain[i].off, len);
	return tokenize_into(m, text, len, add_special, true, plain, n_plain, max_tokens, out, n_out, err);
}

/* The bytes of id, or NULL (and *n = 0) when it prints nothing. */
static const char *piece_of(const struct tok_vocab *v, int32_t id, bool special, size_t *n)
{
	uint8_t t = v->type[id];
	*n = 0;
	if (!special && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN))
		return NULL;
	*n = v->piece_len[id];
	return v->piece[id];
}

int hearth_token_to_piece(const struct hearth_model *m, int32_t id, bool special, char *buf, size_t size)
{
	size_t n;
	if (id < 0 || id >= m->vocab.n_vocab)
		return HEARTH_EINVAL;
	const char *p = piece_of(&m->vocab, id, special, &n);
	if (n && size)
		memcpy(buf, p, n < size ? n : size);
	return (int)n;
}

int hearth_detokenize(const struct hearth_model *m, const int32_t *ids, int32_t n, bool special, char **out,
		      size_t *out_len, struct hearth_err *err)
{
	const struct tok_vocab *v = &m->vocab;
	size_t total = 1, o = 0;
	char *s;

	*out = NULL;
	for (int32_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= v->n_vocab)
			return err_set(err, HEARTH_EINVAL, "detokenize: token id %d is outside the vocabulary (0..%d)", ids[i],
				       v->n_vocab - 1);
		total += v->piece_len[ids[i]];
	}
	if (!(s = malloc(total)))
		return err_set(err, HEARTH_ENOMEM, "detokenize: out of memory");
	bool first = true;
	for (int32_t i = 0; i < n; i++) {
		size_t k;
		const char *p = piece_of(v, ids[i], special, &k);
		/* SentencePiece drops the one space it added in front of the text */
		if (first && k && v->kind == TOK_SPM && v->add_space_prefix && p[0] == ' ' &&
		    v->type[ids[i]] == TOK_TYPE_NORMAL) {
			p++;
			k--;
			first = false;
		}
		if (!k)
			continue; /* no piece (p may be NULL) */
		first = false;
		memcpy(s + o, p, k);
		o += k;
	}
	s[o] = 0;
	*out = s;
	if (out_len)
		*out_len = o;
	return 0;
}

/* ---- streaming detokenizer ---------------------------------------------------- */

/* After each push at most 3 bytes stay pending (the start of a character),
 * so buffers of the longest piece + 4 bytes, allocated up front, always
 * suffice: pushing never allocates and cannot fail. */
struct hearth_detok {
	const struct hearth_model *m;
	bool special;
	char *buf;    /* pending bytes, then the text handed out */
	size_t n, cap;
	char *ready;  /* returned to the caller */
};

int hearth_detok_new(struct hearth_detok **out, const struct hearth_model *m, bool special, struct hearth_err *err)
{
	struct hearth_detok *d = calloc(1, sizeof *d);
	*out = NULL;
	if (!d)
		return err_set(err, HEARTH_ENOMEM, "detokenizer: out of memory");
	d->m = m;
	d->special = special;
	d->cap = (size_t)m->vocab.max_piece_len + 4;
	d->buf = malloc(d->cap);
	d->ready = malloc(d->cap + 1);
	if (!d->buf || !d->ready) {
		hearth_detok_free(d);
		return err_set(err, HEARTH_ENOMEM, "detokenizer: out of memory");
	}
	*out = d;
	return 0;
}

void hearth_detok_free(struct hearth_detok *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d->ready);
	free(d);
}

/* Length of the prefix of s[0..n) that ends on a UTF-8 character boundary:
 * a trailing lead byte whose continuation bytes have not all arrived is held. */
static size_t utf8_complete_prefix(const char *s, size_t n)
{
	size_t i = n, back = 0;
	while (i > 0 && back < 4) {
		unsigned char c = (unsigned char)s[i - 1];
		if ((c & 0xc0) != 0x80) { /* a lead byte or ASCII */
			size_t need = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
			return back + 1 >= need ? n : i - 1;
		}
		i--;
		back++;
	}
	return n; /* no lead byte close by: invalid, pass it on */
}

static const char *hand_out(struct hearth_detok *d, size_t k, size_t *len)
{
	if (k) {
		memcpy(d->ready, d->buf, k);
		memmove(d->buf, d->buf + k, d->n - k);
	}
	d->ready[k] = 0;
	d->n -= k;
	*len = k;
	return d->ready;
}

const char *hearth_detok_push(struct hearth_detok *d, int32_t id, size_t *len)
{
	size_t k = 0;
	const char *p = NULL;
	if (id >= 0 && id < d->m->vocab.n_vocab)
		p = piece_of(&d->m->vocab, id, d->special, &k);
	assert(d->n <= 3 && d->n + k <= d->cap);
	if (k)
		memcpy(d->buf + d->n, p, k);
	d->n += k;
	return hand_out(d, utf8_complete_prefix(d->buf, d->n), len);
}

const char *hearth_detok_flush(struct hearth_detok *d, size_t *len)
{
	return hand_out(d, d->n, len);
}
