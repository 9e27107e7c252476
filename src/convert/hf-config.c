/*
 * hf-config.c - config.json to GGUF hyperparameters, as llama.cpp's
 * convert_hf_to_gguf.py (TextModel.set_gguf_parameters, LlamaModel,
 * Qwen2Model, Qwen3Model, Qwen2MoeModel for Qwen3-MoE) writes them.
 *
 * The python reads config.json through transformers' AutoConfig, which fills
 * the defaults of the model's config class for keys the file leaves out; the
 * few that matter here are restated (rope_theta 10000, rms_norm_eps 1e-6,
 * num_key_value_heads = num_attention_heads, tie_word_embeddings false).
 * Unknown architectures are errors, never guesses.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../base/err.h"
#include "../base/log.h"
#include "hf-config.h"

static const struct {
	const char *hf_arch, *arch;
	bool permute, qk_norm;
	int moe;
} archs[] = {
	{ "LlamaForCausalLM", "llama", true, false, HF_MOE_NONE },
	{ "LLaMAForCausalLM", "llama", true, false, HF_MOE_NONE },
	{ "MistralForCausalLM", "llama", true, false, HF_MOE_NONE },
	{ "MixtralForCausalLM", "llama", true, false, HF_MOE_MIXTRAL },
	{ "Qwen2ForCausalLM", "qwen2", false, false, HF_MOE_NONE },
	{ "Qwen3ForCausalLM", "qwen3", false, true, HF_MOE_NONE },
	{ "Qwen3MoeForCausalLM", "qwen3moe", false, true, HF_MOE_QWEN },
};

#define MAX_DIM (1 << 24) /* any one hyperparameter: 16M (largest real n_ctx: 10M) */

/* A whole number in [lo, MAX_DIM], integer or real; *out untouched when absent. */
static int get_int(const json_t *o, const char *key, int64_t lo, bool required, int64_t *out, const char *path,
		   struct hearth_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return required ? err_set(err, HEARTH_EINVAL, "%s: '%s' is missing", path, key) : 0;
	double d = json_number_value(v);
	if (!json_is_number(v) || d != floor(d) || d < (double)lo || d > MAX_DIM)
		return err_set(err, HEARTH_EINVAL, "%s: '%s' is not a whole number in [%lld, %d]", path, key, (long long)lo,
			       MAX_DIM);
	*out = (int64_t)d;
	return 0;
}

static int get_real(const json_t *o, const char *key, double *out, const char *path, struct hearth_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return err_set(err, HEARTH_EINVAL, "%s: '%s' is not a number", path, key);
	*out = json_number_value(v);
	return 0;
}

static int read_rope(struct hf_config *c, const json_t *cfg, const char *path, struct hearth_err *err)
{
	json_t *rp = json_object_get(cfg, "rope_parameters");
	int rc;
	if (!json_is_object(rp))
		rp = json_object_get(cfg, "rope_scaling");
	if (json_is_object(json_object_get(rp, "full_attention")))
		rp = json_object_get(rp, "full_attention");
	c->rope_theta = 10000.0;
	c->yarn_ext = c->yarn_attn = c->yarn_beta_fast = c->yarn_beta_slow = NAN;
	c->low_freq_factor = 1.0;
	c->high_freq_factor = 4.0;
	if ((rc = get_real(cfg, "rope_theta", &c->rope_theta, path, err)))
		return rc;
	if (!json_is_object(rp))
		return 0;
	const char *type = json_string_value(json_object_get(rp, "rope_type"));
	if (!type)
		type = json_string_value(json_object_get(rp, "type"));
	snprintf(c->rope_type, sizeof c->rope_type, "%s", type ? type : "");
	json_t *a = json_object_get(rp, "attention_factor");
	if ((rc = get_real(rp, "rope_theta", &c->rope_theta, path, err)) ||
	    (rc = get_real(rp, "factor", &c->factor, path, err)) ||
	    (rc = get_int(rp, "original_max_position_embeddings", 1, false, &c->orig_ctx, path, err)) ||
	    (rc = get_real(rp, "extrapolation_factor", &c->yarn_ext, path, err)) ||
	    (rc = get_real(rp, a ? "attention_factor" : "attn_factor", &c->yarn_attn, path, err)) ||
	    (rc = get_real(rp, "beta_fast", &c->yarn_beta_fast, path, err)) ||
	    (rc = get_real(rp, "beta_slow", &c->yarn_beta_slow, path, err)) ||
	    (rc = get_real(rp, "low_freq_factor", &c->low_freq_factor, path, err)) ||
	    (rc = get_real(rp, "high_freq_factor", &c->high_freq_factor, path, err)))
		return rc;
	if (!strcmp(c->rope_type, "yarn") && c->factor != 0 && !c->orig_ctx)
		return err_set(err, HEARTH_EINVAL, "%s: yarn rope scaling needs original_max_position_embeddings", path);
	if (!strcasecmp(c->rope_type, "llama3") && (c->factor == 0 || !c->orig_ctx)) {
		/* the python's defaults */
		if (c->factor == 0)
			c->factor = 8.0;
		if (!c->orig_ctx)
			c->orig_ctx = 8192;
	}
	return 0;
}

static int read_config(struct hf_config *c, const json_t *cfg, const char *path, struct hearth_err *err)
{
	json_t *archs_v = json_object_get(cfg, "architectures");
	const char *a = json_string_value(json_array_get(archs_v, 0));
	int rc;

	if (!a)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: no 'architectures' list naming the model class", path);
	snprintf(c->hf_arch, sizeof c->hf_arch, "%s", a);
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(a, archs[i].hf_arch)) {
			c->arch = archs[i].arch;
			c->permute_qk = archs[i].permute;
			c->qk_norm = archs[i].qk_norm;
			c->moe = archs[i].moe;
		}
	if (!c->arch)
		return err_set(err, HEARTH_EUNSUPPORTED,
			       "%s: architecture '%.64s' is not supported (LlamaForCausalLM, MistralForCausalLM, "
			       "MixtralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM)",
			       path, a);
	c->rms_eps = 1e-6;
	if ((rc = get_int(cfg, "num_hidden_layers", 1, true, &c->n_layer, path, err)) ||
	    (rc = get_int(cfg, "hidden_size", 1, true, &c->n_embd, path, err)) ||
	    (rc = get_int(cfg, "intermediate_size", 1, true, &c->n_ff, path, err)) ||
	    (rc = get_int(cfg, "num_attention_heads", 1, true, &c->n_head, path, err)) ||
	    (rc = get_int(cfg, "head_dim", 1, false, &c->head_dim, path, err)) ||
	    (rc = get_int(cfg, "max_position_embeddings", 1, false, &c->n_ctx, path, err)) ||
	    (rc = get_int(cfg, "vocab_size", 1, false, &c->n_vocab, path, err)) ||
	    (rc = get_real(cfg, "rms_norm_eps", &c->rms_eps, path, err)))
		return rc;
	c->n_head_kv = c->n_head;
	if ((rc = get_int(cfg, "num_key_value_heads", 1, false, &c->n_head_kv, path, err)) ||
	    (rc = get_int(cfg, c->moe == HF_MOE_MIXTRAL ? "num_local_experts" : "num_experts", 1, c->moe != 0,
			  &c->n_expert, path, err)) ||
	    (rc = get_int(cfg, "num_experts_per_tok", 1, c->moe != 0, &c->n_expert_used, path, err)) ||
	    (c->moe == HF_MOE_QWEN && (rc = get_int(cfg, "moe_intermediate_size", 1, true, &c->n_ff_exp, path, err))))
		return rc;
	if (c->n_expert_used > c->n_expert)
		return err_set(err, HEARTH_EINVAL, "%s: num_experts_per_tok %lld is more than the %lld experts", path,
			       (long long)c->n_expert_used, (long long)c->n_expert);
	if (c->n_head % c->n_head_kv)
		return err_set(err, HEARTH_EINVAL, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
			       path, (long long)c->n_head, (long long)c->n_head_kv);
	if (!c->head_dim && c->n_embd % c->n_head)
		return err_set(err, HEARTH_EINVAL, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", path,
			       (long long)c->n_embd, (long long)c->n_head);
	c->tied = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
	return read_rope(c, cfg, path, err);
}

int hf_config_load(struct hf_config *c, const char *dir, struct hearth_err *err)
{
	char path[4096];
	json_error_t je;

	memset(c, 0, sizeof *c);
	if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
		return err_set(err, HEARTH_EINVAL, "%s: path too long", dir);
	json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
	if (!cfg)
		return err_set(err, HEARTH_EINVAL, "%s: %s (line %d)", path, je.text, je.line);
	int rc = json_is_object(cfg) ? read_config(c, cfg, path, err)
				     : err_set(err, HEARTH_EINVAL, "%s: not a JSON object", path);
	json_decref(cfg);
	return rc;
}

int64_t hf_config_head_dim(const struct hf_config *c)
{
	return c->head_dim ? c->head_dim : c->n_embd / c->n_head;
}

static int set_u32(struct gguf_writer *w, const char *arch, const char *key, int64_t v)
{
	char k[128];
	snprintf(k, sizeof k, "%s.%s", arch, key);
	return gguf_writer_set_u32(w, k, (uint32_t)v);
}

static int set_f32(struct gguf_writer *w, const char *arch, const char *key, double v)
{
	char k[128];
	snprintf(k, sizeof k, "%s.%s", arch, key);
	return gguf_writer_set_f32(w, k, (float)v);
}

static int write_rope_scaling(const struct hf_config *c, struct gguf_writer *w)
{
	const char *a = c->arch, *t = c->rope_type;
	char k[128];
	int rc = 0;
	snprintf(k, sizeof k, "%s.rope.scaling.type", a);
	if (!strcmp(t, "linear") && c->factor != 0) {
		rc = gguf_writer_set_str(w, k, "linear");
		rc = rc ? rc : set_f32(w, a, "rope.scaling.factor", c->factor);
	} else if (!strcmp(t, "yarn") && c->factor != 0) {
		rc = gguf_writer_set_str(w, k, "yarn");
		rc = rc ? rc : set_f32(w, a, "rope.scaling.factor", c->factor);
		rc = rc ? rc : set_u32(w, a, "rope.scaling.original_context_length", c->orig_ctx);
		if (!isnan(c->yarn_ext))
			rc = rc ? rc : set_f32(w, a, "rope.scaling.yarn_ext_factor", c->yarn_ext);
		if (!isnan(c->yarn_attn))
			rc = rc ? rc : set_f32(w, a, "rope.scaling.yarn_attn_factor", c->yarn_attn);
		if (!isnan(c->yarn_beta_fast))
			rc = rc ? rc : set_f32(w, a, "rope.scaling.yarn_beta_fast", c->yarn_beta_fast);
		if (!isnan(c->yarn_beta_slow))
			rc = rc ? rc : set_f32(w, a, "rope.scaling.yarn_beta_slow", c->yarn_beta_slow);
	} else if (!strcmp(t, "su") || !strcmp(t, "longrope")) {
		rc = gguf_writer_set_str(w, k, "longrope");
	} else if (*t && strcmp(t, "dynamic") && strcasecmp(t, "llama3") && strcmp(t, "default")) {
		HLOG_WARN("config.json: unknown rope type '%s' ignored (as convert_hf_to_gguf.py does)", t);
	}
	return rc;
}

int hf_config_write_keys(const struct hf_config *c, struct gguf_writer *w, int ftype)
{
	const char *a = c->arch;
	int rc = set_u32(w, a, "block_count", c->n_layer);
	if (c->n_ctx)
		rc = rc ? rc : set_u32(w, a, "context_length", c->n_ctx);
	rc = rc ? rc : set_u32(w, a, "embedding_length", c->n_embd);
	rc = rc ? rc : set_u32(w, a, "feed_forward_length", c->n_ff);
	rc = rc ? rc : set_u32(w, a, "attention.head_count", c->n_head);
	rc = rc ? rc : set_u32(w, a, "attention.head_count_kv", c->n_head_kv);
	rc = rc ? rc : write_rope_scaling(c, w);
	rc = rc ? rc : set_f32(w, a, "rope.freq_base", c->rope_theta);
	rc = rc ? rc : set_f32(w, a, "attention.layer_norm_rms_epsilon", c->rms_eps);
	if (c->n_expert)
		rc = rc ? rc : set_u32(w, a, "expert_count", c->n_expert);
	if (c->n_expert_used)
		rc = rc ? rc : set_u32(w, a, "expert_used_count", c->n_expert_used);
	if (c->head_dim) {
		rc = rc ? rc : set_u32(w, a, "attention.key_length", c->head_dim);
		rc = rc ? rc : set_u32(w, a, "attention.value_length", c->head_dim);
	}
	rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype);
	if (c->n_ff_exp) /* Qwen2MoeModel adds it */
		rc = rc ? rc : set_u32(w, a, "expert_feed_forward_length", c->n_ff_exp);
	if (!strcmp(a, "llama")) { /* LlamaModel adds these two */
		if (c->n_vocab)
			rc = rc ? rc : set_u32(w, a, "vocab_size", c->n_vocab);
		rc = rc ? rc : set_u32(w, a, "rope.dimension_count", hf_config_head_dim(c));
	}
	return rc;
}

bool hf_config_has_rope_freqs(const struct hf_config *c)
{
	return !strcmp(c->arch, "llama") && !strcasecmp(c->rope_type, "llama3");
}

/* LlamaModel.generate_extra_tensors: per frequency, 1 for short wavelengths,
 * factor for long ones, a smooth blend between; float32 throughout as torch's. */
void hf_config_rope_freqs(const struct hf_config *c, float *out)
{
	const int64_t dim = hf_config_head_dim(c);
	const float factor = (float)c->factor, lo = (float)c->low_freq_factor, hi = (float)c->high_freq_factor;
	const float old_ctx = (float)c->orig_ctx;
	const float lo_wavelen = (float)((double)c->orig_ctx / c->low_freq_factor);
	const float hi_wavelen = (float)((double)c->orig_ctx / c->high_freq_factor);
	for (int64_t i = 0; i < dim / 2; i++) {
		const float freq = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)dim);
		const float wavelen = (float)(2 * M_PI) / freq;
		if (wavelen < hi_wavelen) {
			out[i] = 1.0f;
		} else if (wavelen > lo_wavelen) {
			out[i] = factor;
		} else {
			const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
			out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
		}
	}
}
