/*
 * moe.c - see moe.h. The stacked expert tensors are [n_in, n_out, n_expert]:
 * expert e's matrix is the e-th run of n_out rows, so a view of it is an
 * ordinary matrix that the kernels (and their packed layouts) take as is.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../base/err.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "moe.h"


/* Keys that ask for what hearth's experts do not do: a value above max is refused. */
static const struct {
	const char *key;
	float max;
} unsupported_keys[] = {
	{ "expert_shared_count", 0 }, /* shared experts */
	{ "expert_group_count", 1 },  /* expert groups (DeepSeek-V3's selection) */
	{ "swiglu_clamp_exp", 0 },    /* a clamped SwiGLU in llama's MoE FFN */
};

int moe_load_hparams(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	int rc;

	h->n_expert = h->n_expert_used = 0;
	h->moe_w_scale = 1.0f;
	if ((rc = model_hparam_i32(m, "expert_count", &h->n_expert, false, err)) ||
	    (rc = model_hparam_i32(m, "expert_used_count", &h->n_expert_used, false, err)))
		return rc;
	if (h->n_expert == 0 && h->n_expert_used == 0)
		return 0;
	if (h->n_expert < 1 || h->n_expert > MOE_MAX_EXPERTS || h->n_expert_used < 1 || h->n_expert_used > h->n_expert)
		return err_set(err, HEARTH_EBADGGUF, "%s: %d experts with %d used per token: expected 1 <= used <= experts <= %d",
			       m->gguf->path, h->n_expert, h->n_expert_used, MOE_MAX_EXPERTS);
	/* absent: as llama.cpp, qwen3moe's experts share feed_forward_length, others use it whole */
	h->n_ff_exp = strcmp(m->arch, "qwen3moe") ? h->n_ff : h->n_ff / h->n_expert_used;
	if ((rc = model_hparam_i32(m, "expert_feed_forward_length", &h->n_ff_exp, false, err)))
		return rc;
	if (h->n_ff_exp < 1 || h->n_ff_exp > (1 << 20))
		return err_set(err, HEARTH_EBADGGUF, "%s: expert_feed_forward_length %d is out of range", m->gguf->path,
			       h->n_ff_exp);
	for (size_t i = 0; i < sizeof unsupported_keys / sizeof unsupported_keys[0]; i++) {
		char key[96];
		float v = 0;
		int64_t iv = 0;
		snprintf(key, sizeof key, "%s.%s", m->arch, unsupported_keys[i].key);
		if (gguf_find_key(m->gguf, key) < 0)
			continue;
		/* a number (integer or float) up to max asks for nothing; anything else is refused */
		if ((gguf_get_f32(m->gguf, key, &v, err) && gguf_get_i64(m->gguf, key, &iv, err)) ||
		    v > unsupported_keys[i].max || (float)iv > unsupported_keys[i].max || v < 0 || iv < 0)
			return err_set(err, HEARTH_EUNSUPPORTED, "%s: '%s' is not supported", m->gguf->path, key);
	}
	return 0;
}

/* A bias of an expert stack: [n_out, n_expert] f32, optional. */
static int bind_bias(struct hearth_model *m, struct tensor *t, const char *fmt, int il, int64_t n_out,
		     struct hearth_err *err)
{
	int rc = model_tensor(m, t, fmt, il, n_out, m->hp.n_expert, TENSOR_OPTIONAL, err);
	if (rc == 0 && t->data && t->type != HEARTH_TYPE_F32)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' is %s; biases must be f32", m->gguf->path, t->name,
			       hearth_type_name(t->type));
	return rc;
}

/* Points views[e] at expert e's slice of the stack t. */
static void make_views(const struct tensor *t, struct tensor *views, int n_expert)
{
	const size_t slice = qtype_row_size(t->type, t->ne[0]) * (size_t)t->ne[1];
	for (int e = 0; e < n_expert; e++) {
		views[e] = *t;
		views[e].ne[2] = 1;
		views[e].data = (const char *)t->data + (size_t)e * slice;
		views[e].packed = NULL;
	}
}

int moe_bind_layer(struct hearth_model *m, int il, struct hearth_err *err)
{
	const struct hparams *h = &m->hp;
	struct layer *l = &m->layers[il];
	const int64_t E = h->n_embd, F = h->n_ff_exp, X = h->n_expert;
	int rc;

	if (!m->expert_views &&
	    !(m->expert_views = calloc((size_t)h->n_layer * 3 * (size_t)X, sizeof *m->expert_views)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", m->gguf->path);
	if ((rc = model_tensor(m, &l->ffn_gate_inp, "blk.%d.ffn_gate_inp.weight", il, E, X, TENSOR_REQUIRED, err)) ||
	    (rc = model_tensor(m, &l->ffn_gate_inp_b, "blk.%d.ffn_gate_inp.bias", il, X, 0, TENSOR_OPTIONAL, err)) ||
	    (rc = model_tensor3(m, &l->ffn_gate_exps, "blk.%d.ffn_gate_exps.weight", il, E, F, X, TENSOR_REQUIRED, err)) ||
	    (rc = model_tensor3(m, &l->ffn_up_exps, "blk.%d.ffn_up_exps.weight", il, E, F, X, TENSOR_REQUIRED, err)) ||
	    (rc = model_tensor3(m, &l->ffn_down_exps, "blk.%d.ffn_down_exps.weight", il, F, E, X, TENSOR_REQUIRED, err)) ||
	    (rc = bind_bias(m, &l->ffn_gate_exps_b, "blk.%d.ffn_gate_exps.bias", il, F, err)) ||
	    (rc = bind_bias(m, &l->ffn_up_exps_b, "blk.%d.ffn_up_exps.bias", il, F, err)) ||
	    (rc = bind_bias(m, &l->ffn_down_exps_b, "blk.%d.ffn_down_exps.bias", il, E, err)))
		return rc;
	if (qtype_info(l->ffn_gate_exps.type)->is_quantized && E % qtype_info(l->ffn_gate_exps.type)->blck_size)
		return err_set(err, HEARTH_EBADGGUF, "%s: layer %d: experts' rows do not divide into blocks", m->gguf->path, il);
	struct tensor *v = m->expert_views + (size_t)il * 3 * (size_t)X;
	l->exp_gate = v;
	l->exp_up = v + X;
	l->exp_down = v + 2 * X;
	make_views(&l->ffn_gate_exps, l->exp_gate, (int)X);
	make_views(&l->ffn_up_exps, l->exp_up, (int)X);
	make_views(&l->ffn_down_exps, l->exp_down, (int)X);
	return 0;
}

/* The k largest of s[0..n), best first, the lower index first among equals. */
static void top_k(const float *s, int n, int k, int32_t *ids)
{
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < n; e++) {
			bool taken = false;
			for (int i = 0; i < j && !taken; i++)
				taken = ids[i] == e;
			if (!taken && (best < 0 || s[e] > s[best] || (isnan(s[best]) && !isnan(s[e]))))
				best = e;
		}
		ids[j] = best;
	}
}

/* y = softmax(x) over n (sum in double, as llama.cpp's CPU backend sums). */
static void softmax(const float *x, float *y, int n)
{
	float mx = -INFINITY;
	for (int i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	double sum = 0;
	for (int i = 0; i < n; i++) {
		y[i] = expf(x[i] - mx);
		sum += y[i];
	}
	const float inv = (float)(1.0 / sum);
	for (int i = 0; i < n; i++)
		y[i] *= inv;
}

void moe_route(const struct hparams *h, const float *logits, float *scratch, int32_t *ids, float *w)
{
	const int X = h->n_expert, K = h->n_expert_used;
	switch (h->moe_gating) {
	case MOE_GATING_SOFTMAX:
		softmax(logits, scratch, X);
		break;
	case MOE_GATING_SIGMOID:
		for (int e = 0; e < X; e++)
			scratch[e] = 1.0f / (1.0f + expf(-logits[e]));
		break;
	case MOE_GATING_SOFTMAX_CHOSEN:
		memcpy(scratch, logits, (size_t)X * sizeof *scratch);
		break;
	}
	top_k(scratch, X, K, ids);
	for (int k = 0; k < K; k++)
		w[k] = scratch[ids[k]];
	if (h->moe_gating == MOE_GATING_SOFTMAX_CHOSEN) {
		float tmp[MOE_MAX_EXPERTS];
		softmax(w, tmp, K);
		memcpy(w, tmp, (size_t)K * sizeof *w);
	}
	if (h->moe_norm_w) {
		double sum = 0;
		for (int k = 0; k < K; k++)
			sum += w[k];
		const float s = (float)sum < MOE_NORM_MIN ? MOE_NORM_MIN : (float)sum; /* as llama.cpp clamps */
		for (int k = 0; k < K; k++)
			w[k] /= s;
	}
	if (h->moe_w_scale != 1.0f)
		for (int k = 0; k < K; k++)
			w[k] *= h->moe_w_scale;
}

void moe_act_rows(enum moe_act act, float *gate, const float *up, int64_t n)
{
	if (act == MOE_ACT_SILU) {
		kern_fns()->swiglu(gate, up, n);
		return;
	}
	const float alpha = MOE_OAI_ALPHA, limit = MOE_OAI_LIMIT;
	for (int64_t i = 0; i < n; i++) {
		const float x = gate[i] < limit ? gate[i] : limit;
		const float y = up[i] < -limit ? -limit : up[i] > limit ? limit : up[i];
		gate[i] = x / (1.0f + expf(-alpha * x)) * (y + 1.0f);
	}
}
