/*
 * hf-model.c - hearth_convert_hf(): a Hugging Face model folder (config.json,
 * tokenizer, safetensors) to a GGUF as llama.cpp's convert_hf_to_gguf.py
 * writes it.
 *
 * Flow: read config.json (hf-config.c) and the tokenizer (hf-vocab.c); open
 * the safetensors (safetensors.c); plan every output tensor — its GGUF name
 * (the table below), shape (reversed: GGUF counts the innermost dimension
 * first), type and source — in the python's order (a generated rope_freqs
 * first, then shard by shard, by name within a shard); write the metadata and
 * the header, then fill each tensor from its source while the file is written
 * (gguf_writer_add_tensor_fill): one output tensor and one row of floats in
 * memory at a time, the source pages released after each tensor. MoE experts
 * (Mixtral's block_sparse_moe.experts.E.w1/w2/w3, Qwen3-MoE's
 * mlp.experts.E.gate/up/down_proj) are stacked into one tensor per layer and
 * kind (ffn_gate_exps, ...: expert e is slice e of ne[2]) when a layer's last
 * one is met, as the python does.
 *
 * Layouts: llama's attention uses rope on adjacent pairs (0,1), (2,3), ... of
 * each head, Hugging Face's on halves (i, i + head_dim/2). The python's
 * LlamaModel.permute reorders the rows of q_proj (n_head heads) and k_proj
 * (n_head_kv heads) so the two agree: within a head, output row 2i + j is
 * input row j * head_dim/2 + i (j = 0, 1). qwen2 and qwen3 use halves in
 * llama.cpp too and are written as they are.
 *
 * Types (the python's prepare_tensors): 1-D tensors, *_norm.weight, MoE
 * routers and anything not named *.weight (biases) are F32; the other matrices take the
 * file type's (f32, f16, bf16, q8_0; q8_0 rows that do not split into 32-blocks
 * fall back to f16). Values pass through f32, so bf16 -> bf16 and f16 -> f16
 * are exact.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "../tensor/quant-ref.h"
#include "hf-config.h"
#include "hf-vocab.h"
#include "safetensors.h"

#define QUANT_VERSION 2 /* general.quantization_version */

struct plan {
	char name[96];
	const struct safetensors_tensor *src; /* NULL: gen */
	const struct safetensors_tensor **stack; /* n_stack experts stacked along ne[2] (src = the first) */
	int64_t n_stack;
	const float *gen;                     /* generated data (rope_freqs), F32 */
	int type, n_dims;
	int64_t ne[4];
	int64_t perm_heads; /* > 0: permute dim-0 rows for this many heads */
};

struct convert {
	const char *dir;
	struct hf_config cfg;
	struct hf_vocab *vocab;
	struct safetensors_set st;
	struct plan *plans;
	int64_t n_plans;
	float *rope_freqs;
	float *row; /* one row of f32, the longest */
	int64_t row_cap;
	int64_t *n_experts_seen; /* per layer: expert tensors met so far */
	const struct safetensors_tensor **stacks; /* 3 * n_expert per layer, carved for the plans */
	const struct hearth_convert_params *p;
};

struct hearth_convert_params hearth_convert_default_params(void)
{
	return (struct hearth_convert_params){ .ftype = -1 };
}

/* Hugging Face name (after "model.layers.N." for per-layer ones) -> GGUF name. */
static const struct {
	const char *hf, *gguf;
} global_names[] = {
	{ "model.embed_tokens", "token_embd" },
	{ "model.norm", "output_norm" },
	{ "lm_head", "output" },
}, layer_names[] = {
	{ "input_layernorm", "attn_norm" },
	{ "post_attention_layernorm", "ffn_norm" },
	{ "self_attn.q_proj", "attn_q" },
	{ "self_attn.k_proj", "attn_k" },
	{ "self_attn.v_proj", "attn_v" },
	{ "self_attn.o_proj", "attn_output" },
	{ "self_attn.q_norm", "attn_q_norm" }, /* qwen3 */
	{ "self_attn.k_norm", "attn_k_norm" }, /* qwen3 */
	{ "mlp.gate_proj", "ffn_gate" },
	{ "mlp.up_proj", "ffn_up" },
	{ "mlp.down_proj", "ffn_down" },
	{ "block_sparse_moe.gate", "ffn_gate_inp" }, /* mixtral's router */
	{ "mlp.gate", "ffn_gate_inp" },              /* qwen3moe's router */
};

/* Expert matrices, stacked into one tensor per layer and kind, in the order
 * the python writes them. */
static const struct {
	int moe;
	const char *hf[3], *gguf[3];
} expert_names[] = {
	{ HF_MOE_MIXTRAL, { "w1", "w2", "w3" }, { "ffn_gate_exps", "ffn_down_exps", "ffn_up_exps" } },
	{ HF_MOE_QWEN, { "down_proj", "gate_proj", "up_proj" }, { "ffn_down_exps", "ffn_gate_exps", "ffn_up_exps" } },
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* Tensors the python drops. */
static bool skipped(const char *name)
{
	return ends_with(name, ".attention.masked_bias") || ends_with(name, ".attention.bias") ||
	       ends_with(name, ".rotary_emb.inv_freq");
}

/* A whole number at *s (no sign, no leading zero) followed by '.'; advances past the dot. */
static bool take_index(const char **s, long *out)
{
	char *end;
	if (**s < '0' || **s > '9' || ((*s)[0] == '0' && (*s)[1] != '.'))
		return false;
	*out = strtol(*s, &end, 10);
	if (*end != '.' || *out > 1000000)
		return false;
	*s = end + 1;
	return true;
}

/* Maps name to out ("" when the tensor is not written); perm_heads set for llama's q/k. */
static int map_name(const struct convert *c, const char *name, char *out, size_t size, int64_t *perm_heads,
		    struct hearth_err *err)
{
	const char *suffix = ends_with(name, ".weight") ? ".weight" : ends_with(name, ".bias") ? ".bias" : NULL;
	size_t stem = suffix ? strlen(name) - strlen(suffix) : 0;
	*out = 0;
	*perm_heads = 0;
	if (skipped(name))
		return 0;
	for (size_t i = 0; suffix && i < sizeof global_names / sizeof global_names[0]; i++)
		if (strlen(global_names[i].hf) == stem && !strncmp(name, global_names[i].hf, stem)) {
			if (!strcmp(global_names[i].gguf, "output") && c->cfg.tied)
				return 0; /* tied: transformers ignores lm_head and uses the embedding */
			snprintf(out, size, "%s%s", global_names[i].gguf, suffix);
			return 0;
		}
	const char *rest = name + 13;
	long il;
	if (suffix && !strncmp(name, "model.layers.", 13)) {
		if (take_index(&rest, &il) && (size_t)(rest - name) <= stem) {
			size_t n = stem - (size_t)(rest - name);
			for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++) {
				if (strlen(layer_names[i].hf) != n || strncmp(rest, layer_names[i].hf, n))
					continue;
				if (il >= c->cfg.n_layer)
					return err_set(err, HEARTH_EINVAL, "%s: tensor '%s' is in layer %ld of %lld (num_hidden_layers)",
						       c->dir, name, il, (long long)c->cfg.n_layer);
				if (!c->cfg.qk_norm && (!strcmp(layer_names[i].gguf, "attn_q_norm") ||
							!strcmp(layer_names[i].gguf, "attn_k_norm")))
					break; /* q/k norms only in qwen3 */
				if (!strcmp(layer_names[i].gguf, "ffn_gate_inp") &&
				    (c->cfg.moe != HF_MOE_MIXTRAL || strncmp(rest, "block_sparse_moe.", 17)) &&
				    (c->cfg.moe != HF_MOE_QWEN || strncmp(rest, "mlp.", 4)))
					break; /* routers only in MoE models, each family's own */
				snprintf(out, size, "blk.%ld.%s%s", il, layer_names[i].gguf, suffix);
				if (c->cfg.permute_qk && !strcmp(layer_names[i].gguf, "attn_q"))
					*perm_heads = c->cfg.n_head;
				if (c->cfg.permute_qk && !strcmp(layer_names[i].gguf, "attn_k"))
					*perm_heads = c->cfg.n_head_kv;
				return 0;
			}
		}
	}
	return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' has no GGUF name for %s (%s)", c->dir, name,
		       c->cfg.arch, c->cfg.hf_arch);
}

/* The type a tensor is written in (the python's rules, see the file comment). */
static int out_type(int ftype, const char *name, int n_dims, int64_t ne0)
{
	if (n_dims <= 1 || ends_with(name, "_norm.weight") || !ends_with(name, ".weight") || strstr(name, ".ffn_gate_inp."))
		return HEARTH_TYPE_F32;
	switch (ftype) {
	case HEARTH_FTYPE_ALL_F32: return HEARTH_TYPE_F32;
	case HEARTH_FTYPE_BF16: return HEARTH_TYPE_BF16;
	case HEARTH_FTYPE_Q8_0: return ne0 % QK8_0 ? HEARTH_TYPE_F16 : HEARTH_TYPE_Q8_0;
	default: return HEARTH_TYPE_F16;
	}
}

/* convert_hf_to_gguf.py's "auto": the first weight matrix in bf16 or f16 decides; else f16. */
static int auto_ftype(const struct safetensors_set *st)
{
	for (int64_t i = 0; i < st->n_tensors; i++) {
		const struct safetensors_tensor *t = &st->tensors[i];
		if (t->n_dims >= 2 && t->type == HEARTH_TYPE_BF16)
			return HEARTH_FTYPE_BF16;
		if (t->n_dims >= 2 && t->type == HEARTH_TYPE_F16)
			return HEARTH_FTYPE_F16;
	}
	return HEARTH_FTYPE_F16;
}

/* Is name one expert's matrix ("model.layers.IL.mlp.experts.E.KIND.weight")? */
static bool expert_of(const struct convert *c, const char *name, long *il, long *e, int *kind)
{
	const char *mid = c->cfg.moe == HF_MOE_MIXTRAL ? "block_sparse_moe.experts." : "mlp.experts.";
	if (!c->cfg.moe || strncmp(name, "model.layers.", 13))
		return false;
	name += 13;
	if (!take_index(&name, il) || strncmp(name, mid, strlen(mid)))
		return false;
	name += strlen(mid);
	if (!take_index(&name, e))
		return false;
	for (size_t k = 0; k < sizeof expert_names / sizeof expert_names[0]; k++)
		for (int j = 0; expert_names[k].moe == c->cfg.moe && j < 3; j++) {
			const size_t n = strlen(expert_names[k].hf[j]);
			if (!strncmp(name, expert_names[k].hf[j], n) && !strcmp(name + n, ".weight")) {
				*kind = j;
				return true;
			}
		}
	return false;
}

static const char *expert_gguf(const struct convert *c, int kind)
{
	for (size_t k = 0; k < sizeof expert_names / sizeof expert_names[0]; k++)
		if (expert_names[k].moe == c->cfg.moe)
			return expert_names[k].gguf[kind];
	return NULL;
}

/* One expert's matrix; once a layer has all 3 x n_expert, its three stacked tensors are planned. */
static int plan_expert(struct convert *c, const struct safetensors_tensor *t, long il, long e, int kind, int ftype,
		       struct hearth_err *err)
{
	const int64_t ne = c->cfg.n_expert;
	if (il >= c->cfg.n_layer || e >= ne)
		return err_set(err, HEARTH_EINVAL, "%s: tensor '%s' is outside %lld layers of %lld experts", t->file, t->name,
			       (long long)c->cfg.n_layer, (long long)ne);
	if (t->type < 0 || t->n_dims != 2)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' is not a matrix of F32, F16 or BF16 (%s, %d dims)",
			       t->file, t->name, t->dtype, t->n_dims);
	const struct safetensors_tensor **slot = c->stacks + ((size_t)il * 3 + (size_t)kind) * (size_t)ne;
	slot[e] = t;
	if (++c->n_experts_seen[il] < 3 * ne)
		return 0;
	for (int k = 0; k < 3; k++) {
		const struct safetensors_tensor **st = c->stacks + ((size_t)il * 3 + (size_t)k) * (size_t)ne;
		struct plan *p = &c->plans[c->n_plans];
		for (int64_t x = 1; x < ne; x++)
			if (st[x]->shape[0] != st[0]->shape[0] || st[x]->shape[1] != st[0]->shape[1])
				return err_set(err, HEARTH_EINVAL, "%s: tensor '%s' differs in shape from '%s'", st[x]->file,
					       st[x]->name, st[0]->name);
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "blk.%ld.%s.weight", il, expert_gguf(c, k));
		p->src = st[0];
		p->stack = st;
		p->n_stack = ne;
		p->n_dims = 3;
		p->ne[0] = st[0]->shape[1];
		p->ne[1] = st[0]->shape[0];
		p->ne[2] = ne;
		p->ne[3] = 1;
		p->type = out_type(ftype, p->name, 3, p->ne[0]);
		if (p->ne[0] > c->row_cap)
			c->row_cap = p->ne[0];
		c->n_plans++;
	}
	return 0;
}

static int plan_tensor(struct convert *c, const struct safetensors_tensor *t, int ftype, struct hearth_err *err)
{
	long il, e;
	int kind;
	if (expert_of(c, t->name, &il, &e, &kind))
		return plan_expert(c, t, il, e, kind, ftype, err);

	struct plan *p = &c->plans[c->n_plans];
	int rc;
	memset(p, 0, sizeof *p);
	if ((rc = map_name(c, t->name, p->name, sizeof p->name, &p->perm_heads, err)) || !p->name[0])
		return rc;
	if (t->type < 0)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (hearth converts F32, F16, BF16)",
			       t->file, t->name, t->dtype);
	if (t->n_dims > 4)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' has %d dims (GGUF holds at most 4)", t->file,
			       t->name, t->n_dims);
	p->src = t;
	p->n_dims = t->n_dims ? t->n_dims : 1;
	for (int d = 0; d < 4; d++)
		p->ne[d] = d < t->n_dims ? t->shape[t->n_dims - 1 - d] : 1;
	if (p->perm_heads && (t->shape[0] % (2 * p->perm_heads) || t->n_dims > 2))
		return err_set(err, HEARTH_EINVAL, "%s: tensor '%s' has %lld rows: not %lld heads of an even size", t->file,
			       t->name, (long long)t->shape[0], (long long)p->perm_heads);
	if (!strcmp(p->name, "token_embd.weight") && (t->n_dims != 2 || t->shape[0] != hf_vocab_n_tokens(c->vocab)))
		return err_set(err, HEARTH_EINVAL, "%s: tensor '%s' has %lld rows but the tokenizer has %d tokens", t->file,
			       t->name, (long long)t->shape[0], (int)hf_vocab_n_tokens(c->vocab));
	p->type = out_type(ftype, p->name, p->n_dims, p->ne[0]);
	if (p->ne[0] > c->row_cap)
		c->row_cap = p->ne[0];
	c->n_plans++;
	return 0;
}

static int plan_all(struct convert *c, int ftype, struct hearth_err *err)
{
	int rc;
	if (!(c->plans = calloc((size_t)c->st.n_tensors + 1, sizeof *c->plans)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->dir);
	if (hf_config_has_rope_freqs(&c->cfg)) {
		const int64_t n = hf_config_head_dim(&c->cfg) / 2;
		struct plan *p = &c->plans[c->n_plans++];
		if (!(c->rope_freqs = malloc((size_t)n * sizeof *c->rope_freqs)))
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->dir);
		hf_config_rope_freqs(&c->cfg, c->rope_freqs);
		snprintf(p->name, sizeof p->name, "rope_freqs.weight");
		p->gen = c->rope_freqs;
		p->type = HEARTH_TYPE_F32;
		p->n_dims = 1;
		p->ne[0] = n;
		p->ne[1] = p->ne[2] = p->ne[3] = 1;
	}
	if (c->cfg.moe) {
		const size_t n = (size_t)c->cfg.n_layer * 3 * (size_t)c->cfg.n_expert;
		c->n_experts_seen = calloc((size_t)c->cfg.n_layer, sizeof *c->n_experts_seen);
		c->stacks = calloc(n, sizeof *c->stacks);
		if (!c->n_experts_seen || !c->stacks)
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->dir);
	}
	for (int64_t i = 0; i < c->st.n_tensors; i++)
		if ((rc = plan_tensor(c, &c->st.tensors[i], ftype, err)))
			return rc;
	for (int64_t il = 0; c->cfg.moe && il < c->cfg.n_layer; il++)
		if (c->n_experts_seen[il] % (3 * c->cfg.n_expert))
			return err_set(err, HEARTH_EINVAL, "%s: layer %lld has %lld of its 3 x %lld expert matrices", c->dir,
				       (long long)il, (long long)c->n_experts_seen[il], (long long)c->cfg.n_expert);
	if (!(c->row = malloc((size_t)(c->row_cap ? c->row_cap : 1) * sizeof *c->row)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->dir);
	return 0;
}

/* Row r (row_len elements) of a source tensor as floats; the data may be unaligned. */
static void load_row(const struct safetensors_tensor *t, int64_t r, int64_t row_len, float *out)
{
	const int size = t->type == HEARTH_TYPE_F32 ? 4 : 2;
	const uint8_t *src = t->data + (uint64_t)r * (uint64_t)row_len * (uint64_t)size;
	if (t->type == HEARTH_TYPE_F32) {
		memcpy(out, src, (size_t)row_len * 4);
		return;
	}
	for (int64_t i = 0; i < row_len; i++) {
		uint16_t h;
		memcpy(&h, src + 2 * i, 2);
		out[i] = t->type == HEARTH_TYPE_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
	}
}

/* The source row that output row r comes from (LlamaModel.permute). */
static int64_t perm_src(int64_t r, int64_t rows, int64_t n_heads)
{
	const int64_t hd = rows / n_heads, h = r / hd, i = (r % hd) / 2, j = r % 2;
	return h * hd + j * (hd / 2) + i;
}

/* Converts source t (count elements) into dst in the plan's type. */
static int fill_from(struct convert *c, const struct plan *p, const struct safetensors_tensor *t, int64_t count,
		     uint8_t *dst, uint64_t nbytes, struct hearth_err *err)
{
	int rc = 0;
	if (t->type == p->type && !p->perm_heads) {
		memcpy(dst, t->data, (size_t)nbytes); /* same bytes: F32, F16 or BF16 kept */
	} else {
		/* permuted tensors move whole dim-0 slices; the others go row by row of ne[0] */
		const int64_t rows = p->perm_heads ? t->shape[0] : count ? count / p->ne[0] : 0;
		const int64_t row_len = rows ? count / rows : 0;
		const size_t row_size = qtype_row_size(p->type, row_len);
		for (int64_t r = 0; r < rows && !rc; r++) {
			load_row(t, p->perm_heads ? perm_src(r, rows, p->perm_heads) : r, row_len, c->row);
			rc = quantize_row_ref(p->type, c->row, dst + (size_t)r * row_size, row_len);
		}
		if (rc)
			return err_set(err, rc, "%s: tensor '%s' cannot be converted to %s", t->file, t->name,
				       hearth_type_name(p->type));
	}
	safetensors_release(t);
	return 0;
}

static int fill(void *user, int64_t i_tensor, void *dst, uint64_t nbytes, struct hearth_err *err)
{
	struct convert *c = user;
	const struct plan *p = &c->plans[i_tensor];
	const struct safetensors_tensor *t = p->src;
	const int64_t count = p->ne[0] * p->ne[1] * p->ne[2] * p->ne[3];
	int rc;

	if (p->gen) {
		memcpy(dst, p->gen, (size_t)nbytes);
	} else if (p->stack) { /* each expert is one slice of ne[2] */
		for (int64_t e = 0; e < p->n_stack; e++)
			if ((rc = fill_from(c, p, p->stack[e], count / p->n_stack,
					    (uint8_t *)dst + (size_t)e * (size_t)(nbytes / (uint64_t)p->n_stack),
					    nbytes / (uint64_t)p->n_stack, err)))
				return rc;
	} else if ((rc = fill_from(c, p, t, count, dst, nbytes, err))) {
		return rc;
	}
	if (c->p->on_tensor) {
		struct hearth_convert_tensor info = { .name = p->name, .src_name = t ? t->name : "",
						      .src_dtype = t ? t->dtype : "F32", .n_dims = p->n_dims,
						      .type = p->type, .index = i_tensor, .n_tensors = c->n_plans };
		memcpy(info.ne, p->ne, sizeof info.ne);
		c->p->on_tensor(&info, c->p->user_data);
	}
	return 0;
}

static int write_file(struct convert *c, int ftype, const char *path, struct hearth_err *err)
{
	struct gguf_writer *w;
	char base[256]; /* the folder's own name, as Path.name gives it */
	size_t n = strlen(c->dir);
	int rc;

	while (n > 1 && c->dir[n - 1] == '/')
		n--;
	const char *b = c->dir + n;
	while (b > c->dir && b[-1] != '/')
		b--;
	snprintf(base, sizeof base, "%.*s", (int)(c->dir + n - b), b);
	if ((rc = gguf_writer_new(&w, err)))
		return rc;
	rc = gguf_writer_set_str(w, "general.architecture", c->cfg.arch);
	rc = rc ? rc : gguf_writer_set_str(w, "general.type", "model");
	rc = rc ? rc : gguf_writer_set_str(w, "general.name", base);
	rc = rc ? rc : hf_config_write_keys(&c->cfg, w, ftype);
	rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION);
	for (int64_t i = 0; i < c->n_plans && !rc; i++) {
		const struct plan *p = &c->plans[i];
		rc = gguf_writer_add_tensor_fill(w, p->name, p->type, p->n_dims, p->ne, fill, c);
	}
	if (rc)
		rc = err_set(err, rc, "%s: cannot describe the output (%s)", path, hearth_err_name(rc));
	else if (!(rc = hf_vocab_write_keys(c->vocab, w, path, err)))
		rc = gguf_writer_write(w, path, err);
	gguf_writer_free(w);
	return rc;
}

int hearth_convert_hf(const char *hf_dir, const char *out_path, const struct hearth_convert_params *p,
		      struct hearth_err *err)
{
	const struct hearth_convert_params defaults = hearth_convert_default_params();
	struct convert c = { .dir = hf_dir, .p = p ? p : &defaults };
	char tmp[4096];
	int rc, ftype = c.p->ftype;

	if (ftype != -1 && ftype != HEARTH_FTYPE_ALL_F32 && ftype != HEARTH_FTYPE_F16 && ftype != HEARTH_FTYPE_BF16 &&
	    ftype != HEARTH_FTYPE_Q8_0)
		return err_set(err, HEARTH_EINVAL, "convert: file type %d is not one of f32, f16, bf16, q8_0", ftype);
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= sizeof tmp)
		return err_set(err, HEARTH_EINVAL, "%s: path too long", out_path);
	if ((rc = hf_config_load(&c.cfg, hf_dir, err)) || (rc = hf_vocab_load(&c.vocab, hf_dir, err)))
		goto out;
	if ((rc = safetensors_open_dir(&c.st, hf_dir, err)))
		goto out;
	if (ftype == -1)
		ftype = auto_ftype(&c.st);
	if ((rc = plan_all(&c, ftype, err)))
		goto out_close;
	if ((rc = write_file(&c, ftype, tmp, err))) {
		remove(tmp);
		goto out_close;
	}
	if (rename(tmp, out_path)) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it", out_path, tmp);
		remove(tmp);
	}
out_close:
	safetensors_close(&c.st);
out:
	hf_vocab_free(c.vocab);
	free(c.plans);
	free(c.rope_freqs);
	free(c.row);
	free(c.n_experts_seen);
	free(c.stacks);
	return rc;
}
