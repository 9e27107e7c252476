/* recipe.c - see quant.h. */
#include <stdio.h>
#include <string.h>

#include "../tensor/qtype.h"
#include "quant.h"

enum quant_cat { CAT_OTHER, CAT_TOKEN_EMBD, CAT_OUTPUT, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_Q, CAT_ATTN_OUTPUT,
		 CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN };

static bool has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* The broad role llama-quantize gives a tensor name (first match wins). */
static enum quant_cat category(const char *name)
{
	if (!strcmp(name, "output.weight"))
		return CAT_OUTPUT;
	if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
		return CAT_TOKEN_EMBD;
	if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") || has(name, "attn_v.weight"))
		return CAT_ATTN_V;
	if (has(name, "attn_k.weight"))
		return CAT_ATTN_K;
	if (has(name, "attn_q.weight"))
		return CAT_ATTN_Q;
	if (has(name, "attn_output.weight"))
		return CAT_ATTN_OUTPUT;
	if (has(name, "ffn_up"))
		return CAT_FFN_UP;
	if (has(name, "ffn_gate"))
		return CAT_FFN_GATE;
	if (has(name, "ffn_down"))
		return CAT_FFN_DOWN;
	return CAT_OTHER;
}

bool quant_is_attn_v(const char *name) { return category(name) == CAT_ATTN_V; }

int quant_ftype_base_type(int ftype)
{
	switch (ftype) {
	case HEARTH_FTYPE_ALL_F32: return HEARTH_TYPE_F32;
	case HEARTH_FTYPE_F16: return HEARTH_TYPE_F16;
	case HEARTH_FTYPE_BF16: return HEARTH_TYPE_BF16;
	case HEARTH_FTYPE_Q4_0: return HEARTH_TYPE_Q4_0;
	case HEARTH_FTYPE_Q4_1: return HEARTH_TYPE_Q4_1;
	case HEARTH_FTYPE_Q5_0: return HEARTH_TYPE_Q5_0;
	case HEARTH_FTYPE_Q5_1: return HEARTH_TYPE_Q5_1;
	case HEARTH_FTYPE_Q8_0: return HEARTH_TYPE_Q8_0;
	case HEARTH_FTYPE_Q4_K_S: case HEARTH_FTYPE_Q4_K_M: return HEARTH_TYPE_Q4_K;
	case HEARTH_FTYPE_Q5_K_S: case HEARTH_FTYPE_Q5_K_M: return HEARTH_TYPE_Q5_K;
	case HEARTH_FTYPE_Q6_K: return HEARTH_TYPE_Q6_K;
	case HEARTH_FTYPE_Q2_K: return HEARTH_TYPE_Q2_K;
	case HEARTH_FTYPE_Q3_K_S: case HEARTH_FTYPE_Q3_K_M: case HEARTH_FTYPE_Q3_K_L: return HEARTH_TYPE_Q3_K;
	case HEARTH_FTYPE_MXFP4_MOE: return HEARTH_TYPE_MXFP4;
	}
	return -1;
}

bool quant_use_more_bits(int il, int n_layer)
{
	return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

int quant_fallback_type(int type, int64_t ne0)
{
	const struct qtype_info *q = qtype_info(type);
	if (!q || ne0 % q->blck_size == 0)
		return type;
	int fb;
	switch (type) {
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: fb = HEARTH_TYPE_Q4_0; break;
	case HEARTH_TYPE_Q4_K: fb = HEARTH_TYPE_Q5_0; break;
	case HEARTH_TYPE_Q5_K: fb = HEARTH_TYPE_Q5_1; break;
	case HEARTH_TYPE_Q6_K: fb = HEARTH_TYPE_Q8_0; break;
	default: return -1; /* llama-quantize has no fallback either */
	}
	return ne0 % qtype_info(fb)->blck_size ? HEARTH_TYPE_F16 : fb;
}

bool quant_tensor_allowed(const char *name, int n_dims)
{
	static const char *const never[] = {
		"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
		"per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
		"indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
		"time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
		"time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
		"time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
		"time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
		"sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
	};
	const size_t n = strlen(name);
	if (n_dims < 2 || n < 6 || strcmp(name + n - 6, "weight"))
		return false;
	if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight"))
		return false;
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
		if (has(name, never[i]))
			return false;
	return true;
}

#define F(x) HEARTH_FTYPE_##x
#define T(x) HEARTH_TYPE_##x

/* The output matrix (and a tied embedding): q6_K unless asked otherwise. */
static int output_type(const struct quant_recipe *r, int64_t ne0, int t)
{
	if (r->output_type >= 0)
		return r->output_type;
	if (r->falcon || ne0 % qtype_info(t)->blck_size)
		return T(Q8_0);
	return t != T(Q8_0) ? T(Q6_K) : t;
}

/* attn_v and its fused kin: more bits where the mix says, counted in order. */
static int attn_v_type(struct quant_recipe *r, int t)
{
	const int f = r->ftype, i = r->i_attn_v++;
	if (f == F(Q2_K))
		t = r->n_gqa >= 4 ? T(Q4_K) : T(Q3_K);
	else if (f == F(Q3_K_M))
		t = i < 2 ? T(Q5_K) : T(Q4_K);
	else if (f == F(Q3_K_L))
		t = T(Q5_K);
	else if ((f == F(Q4_K_M) || f == F(Q5_K_M)) && quant_use_more_bits(i, r->n_attn_v))
		t = T(Q6_K);
	else if (f == F(Q4_K_S) && i < 4)
		t = T(Q5_K);
	if (r->is_70b && (t == T(Q3_K) || t == T(Q4_K)))
		t = T(Q5_K);
	if (r->n_expert == 8)
		t = T(Q8_0);
	return t;
}

/* ffn_down: by layer (from the name when the model has experts, whose
 * tensors need not come in layer order). */
static int ffn_down_type(struct quant_recipe *r, const char *name, int t)
{
	const int f = r->ftype, n = r->n_layer;
	int il = r->i_ffn_down++;
	if (r->n_expert > 1 && (sscanf(name, "blk.%d.", &il) != 1 || il < 0 || il >= n))
		il = r->i_ffn_down - 1;
	if (f == F(Q2_K))
		t = T(Q3_K);
	else if (f == F(Q3_K_M))
		t = il < n / 16 ? T(Q5_K) : !r->falcon || quant_use_more_bits(il, n) ? T(Q4_K) : T(Q3_K);
	else if (f == F(Q3_K_L))
		t = r->falcon ? T(Q4_K) : T(Q5_K);
	else if (f == F(Q4_K_M) && r->falcon)
		t = il < n / 16 ? T(Q6_K) : quant_use_more_bits(il, n) ? T(Q5_K) : T(Q4_K);
	else if (f == F(Q4_K_M))
		t = quant_use_more_bits(il, n) ? T(Q6_K) : t;
	else if (f == F(Q5_K_M) && quant_use_more_bits(il, n))
		t = T(Q6_K);
	else if (f == F(Q4_K_S) && !r->falcon && il < n / 8)
		t = T(Q5_K);
	else if ((f == F(Q4_0) || f == F(Q5_0)) && r->has_imatrix && il < n / 8)
		t = f == F(Q4_0) ? T(Q4_1) : T(Q5_1); /* llama.cpp's guard for the first ffn_down layers */
	return t;
}

static int attn_output_type(const struct quant_recipe *r, int t)
{
	const int f = r->ftype;
	if (r->falcon)
		return f == F(Q3_K_L) ? T(Q4_K) : t;
	if (r->n_expert == 8)
		return f == F(Q2_K) || f == F(Q3_K_S) || f == F(Q3_K_M) || f == F(Q4_K_S) || f == F(Q4_K_M) ? T(Q5_K) : t;
	return f == F(Q2_K) ? T(Q3_K) : f == F(Q3_K_M) ? T(Q4_K) : f == F(Q3_K_L) ? T(Q5_K) : t;
}

/* The mixes' choice for one tensor (llama.cpp's per-category rules for the
 * file types hearth writes); t is the base type on entry. */
static int mix_type(struct quant_recipe *r, const char *name, enum quant_cat cat, const int64_t *ne, int t)
{
	const int64_t ne0 = ne[0];
	if (r->ftype == F(MXFP4_MOE)) /* experts MXFP4; the rest, output included, q8_0 */
		return (cat == CAT_OUTPUT || (r->tied && cat == CAT_TOKEN_EMBD)) && r->output_type >= 0 ? r->output_type
		       : ne[2] > 1 ? T(MXFP4) : T(Q8_0);
	if (cat == CAT_OUTPUT || (r->tied && cat == CAT_TOKEN_EMBD))
		return output_type(r, ne0, t);
	switch (cat) {
	case CAT_TOKEN_EMBD: return r->embd_type >= 0 ? r->embd_type : t;
	case CAT_ATTN_V: return attn_v_type(r, t);
	case CAT_ATTN_K: return r->n_expert == 8 ? T(Q8_0) : t;
	case CAT_FFN_DOWN: return ffn_down_type(r, name, t);
	case CAT_ATTN_OUTPUT: return attn_output_type(r, t);
	default: return t;
	}
}

#undef F
#undef T

int quant_tensor_type(struct quant_recipe *r, const char *name, int n_dims, const int64_t *ne, int cur)
{
	if (!quant_tensor_allowed(name, n_dims))
		return cur;
	const enum quant_cat cat = category(name);
	if (r->embd_type >= 0 && cat == CAT_TOKEN_EMBD)
		return r->embd_type;
	if (r->output_type >= 0 && cat == CAT_OUTPUT)
		return r->output_type;
	int t = quant_ftype_base_type(r->ftype);
	if (!qtype_info(t)->is_quantized)
		return t;
	if (!r->pure)
		t = mix_type(r, name, cat, ne, t);
	return quant_fallback_type(t, ne[0]);
}
