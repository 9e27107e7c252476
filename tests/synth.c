/* synth.c - see synth.h. Weights are N(0, 1/fan_in) like the fixtures'. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/gguf/gguf.h"
#include "../src/quant/quant.h"
#include "../src/tensor/quant-ref.h"
#include "synth.h"

struct synth {
	struct gguf_writer *w;
	void **bufs;
	int n_bufs;
	uint64_t rng;
	int round_to; /* synth_spec.round_to */
};

/* About N(0, 1): a sum of four uniforms, rescaled (fast enough for 1B-weight models). */
static float gauss(uint64_t *s)
{
	float u = 0;
	for (int i = 0; i < 4; i++) {
		*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
		u += (float)(*s >> 40) * (1.0f / 16777216.0f);
	}
	return (u - 2.0f) * 1.7320508f;
}

/* The type llama-quantize stores a K-quant as when rows of ne0 do not split
 * into 256-blocks (its fallback, the library's recipe); other types as they are. */
static int fit_type(int type, int64_t ne0)
{
	const int fb = quant_fallback_type(type, ne0);
	return fb < 0 ? type : fb;
}

/* A tensor of ne0 x ne1 x ne2 (ne1 0: a vector); ne2 > 1 stacks matrices. */
static int add3(struct synth *y, const char *name, int type, int64_t ne0, int64_t ne1, int64_t ne2, float scale,
		float offset)
{
	type = fit_type(type, ne0);
	int64_t n = ne0 * (ne1 ? ne1 : 1) * ne2;
	float *f = malloc((size_t)n * sizeof *f);
	void *q = malloc(qtype_row_size(type, ne0) * (size_t)(ne1 ? ne1 : 1) * (size_t)ne2);
	void **nb = realloc(y->bufs, (size_t)(y->n_bufs + 1) * sizeof *nb);
	if (!f || !q || !nb) {
		free(f);
		free(q);
		return HEARTH_ENOMEM;
	}
	y->bufs = nb;
	y->bufs[y->n_bufs++] = q;
	for (int64_t i = 0; i < n; i++) {
		f[i] = offset + scale * gauss(&y->rng);
		if (y->round_to == HEARTH_TYPE_BF16)
			f[i] = bf16_to_f32(f32_to_bf16(f[i]));
		else if (y->round_to == HEARTH_TYPE_F16)
			f[i] = fp16_to_f32(f32_to_fp16(f[i]));
	}
	quantize_row_ref(type, f, q, n);
	free(f);
	int64_t ne[3] = { ne0, ne1, ne2 };
	return gguf_writer_add_tensor(y->w, name, type, ne2 > 1 ? 3 : ne1 ? 2 : 1, ne, q);
}

static int add(struct synth *y, const char *name, int type, int64_t ne0, int64_t ne1, float scale, float offset)
{
	return add3(y, name, type, ne0, ne1, 1, scale, offset);
}

/* Layers that the K_M mixes give q6_K for attn_v and ffn_down. */
static bool more_bits(const struct synth_spec *s, int il)
{
	return s->k_m_mix && quant_use_more_bits(il, s->n_layer);
}

int synth_model_write(const char *path, const struct synth_spec *s, struct hearth_err *err)
{
	struct synth y = { .rng = s->seed * 2654435761u + 1, .round_to = s->round_to };
	char key[128], name[128];
	const char *a = s->arch;
	const bool gemma2 = !strcmp(a, "gemma2"), gemma = gemma2 || !strcmp(a, "gemma3");
	const int hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
	const int n_vocab = s->n_vocab > 259 ? s->n_vocab : 259;
	/* a tied embedding is the output matrix too: the mix's output type */
	const int etype = s->embd_type ? s->embd_type : s->k_m_mix && s->tied ? HEARTH_TYPE_Q6_K : s->wtype;
	const char **toks = malloc((size_t)n_vocab * sizeof *toks);
	float *scores = calloc((size_t)n_vocab, sizeof *scores);
	int32_t *types = malloc((size_t)n_vocab * sizeof *types);
	char (*bytes)[16] = malloc((size_t)n_vocab * sizeof *bytes);
	int rc;

	if (!toks || !scores || !types || !bytes) {
		rc = HEARTH_ENOMEM;
		goto out_names;
	}
	if ((rc = gguf_writer_new(&y.w, err)))
		goto out_names;
	toks[0] = "<unk>";
	toks[1] = "<s>";
	toks[2] = "</s>";
	types[0] = 2;
	types[1] = types[2] = 3;
	for (int b = 0; b < 256; b++) {
		snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
		toks[3 + b] = bytes[b];
		types[3 + b] = 6;
	}
	for (int i = 259; i < n_vocab; i++) {
		snprintf(bytes[i - 3], sizeof bytes[i - 3], "w%d", i);
		toks[i] = bytes[i - 3];
		types[i] = 1;
	}
	gguf_writer_set_str(y.w, "general.architecture", a);
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
	gguf_writer_set_u32(y.w, KEY("context_length"), 256);
	gguf_writer_set_u32(y.w, KEY("embedding_length"), (uint32_t)s->n_embd);
	gguf_writer_set_u32(y.w, KEY("block_count"), (uint32_t)s->n_layer);
	gguf_writer_set_u32(y.w, KEY("feed_forward_length"), (uint32_t)s->n_ff);
	gguf_writer_set_u32(y.w, KEY("attention.head_count"), (uint32_t)s->n_head);
	gguf_writer_set_u32(y.w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
	gguf_writer_set_f32(y.w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
	gguf_writer_set_f32(y.w, KEY("rope.freq_base"), gemma ? 1e6f : 10000.0f);
	if (s->head_dim) {
		gguf_writer_set_u32(y.w, KEY("attention.key_length"), (uint32_t)hd);
		gguf_writer_set_u32(y.w, KEY("attention.value_length"), (uint32_t)hd);
	}
	if (gemma) { /* as converted Gemma 2 and 3 files: no pattern key (2, 6) */
		gguf_writer_set_u32(y.w, KEY("attention.sliding_window"), (uint32_t)(s->n_swa ? s->n_swa : 512));
		if (!gemma2)
			gguf_writer_set_f32(y.w, KEY("rope.freq_base_swa"), 10000.0f);
	}
	if (gemma2) {
		/* Gemma 2 caps at 50; scores of random weights stay far below, so a
		 * cap that binds: */
		gguf_writer_set_f32(y.w, KEY("attn_logit_softcapping"), 1.0f);
		gguf_writer_set_f32(y.w, KEY("final_logit_softcapping"), 30.0f);
	}
	if (s->n_expert) {
		gguf_writer_set_u32(y.w, KEY("expert_count"), (uint32_t)s->n_expert);
		gguf_writer_set_u32(y.w, KEY("expert_used_count"), (uint32_t)s->n_expert_used);
		gguf_writer_set_u32(y.w, KEY("expert_feed_forward_length"), (uint32_t)s->n_ff);
	}
	if (s->n_expert_shared)
		gguf_writer_set_u32(y.w, KEY("expert_shared_count"), (uint32_t)s->n_expert_shared);
	gguf_writer_set_str(y.w, "tokenizer.ggml.model", "llama");
	gguf_writer_set_arr_str(y.w, "tokenizer.ggml.tokens", toks, n_vocab);
	gguf_writer_set_arr(y.w, "tokenizer.ggml.scores", HEARTH_GGUF_F32, scores, n_vocab);
	gguf_writer_set_arr(y.w, "tokenizer.ggml.token_type", HEARTH_GGUF_I32, types, n_vocab);
	gguf_writer_set_u32(y.w, "tokenizer.ggml.bos_token_id", 1);
	gguf_writer_set_u32(y.w, "tokenizer.ggml.eos_token_id", 2);
#undef KEY
	const int E = s->n_embd, QK = s->n_head * hd, KV = s->n_head_kv * hd;
	const float inv = 1.0f / sqrtf((float)E);
	rc = add(&y, "token_embd.weight", etype, E, n_vocab, 0.5f, 0);
	rc = rc ? rc : add(&y, "output_norm.weight", HEARTH_TYPE_F32, E, 0, 0.01f, 1);
	if (!s->tied)
		rc = rc ? rc : add(&y, "output.weight", s->k_m_mix ? HEARTH_TYPE_Q6_K : etype, E, n_vocab, 2 * inv, 0);
	if (s->rope_freqs)
		rc = rc ? rc : add(&y, "rope_freqs.weight", HEARTH_TYPE_F32, hd / 2, 0, 0.5f, 2);
	for (int il = 0; il < s->n_layer && !rc; il++) {
#define NAME(fmt) (snprintf(name, sizeof name, fmt, il), name)
		rc = rc ? rc : add(&y, NAME("blk.%d.attn_norm.weight"), HEARTH_TYPE_F32, E, 0, 0.01f, 1);
		rc = rc ? rc : add(&y, NAME("blk.%d.attn_q.weight"), s->wtype, E, QK, inv, 0);
		rc = rc ? rc : add(&y, NAME("blk.%d.attn_k.weight"), s->wtype, E, KV, inv, 0);
		rc = rc ? rc : add(&y, NAME("blk.%d.attn_v.weight"), more_bits(s, il) ? HEARTH_TYPE_Q6_K : s->wtype, E, KV, inv, 0);
		rc = rc ? rc : add(&y, NAME("blk.%d.attn_output.weight"), s->wtype, QK, E, 1.0f / sqrtf((float)QK), 0);
		if (!strcmp(a, "qwen2") && !s->skip_bias) {
			rc = rc ? rc : add(&y, NAME("blk.%d.attn_q.bias"), HEARTH_TYPE_F32, QK, 0, 0.1f, 0);
			rc = rc ? rc : add(&y, NAME("blk.%d.attn_k.bias"), HEARTH_TYPE_F32, KV, 0, 0.1f, 0);
			rc = rc ? rc : add(&y, NAME("blk.%d.attn_v.bias"), HEARTH_TYPE_F32, KV, 0, 0.1f, 0);
		}
		if (!strcmp(a, "qwen3") || !strcmp(a, "qwen3moe") || (gemma && !gemma2)) {
			rc = rc ? rc : add(&y, NAME("blk.%d.attn_q_norm.weight"), HEARTH_TYPE_F32, hd, 0, 0.01f, 1);
			rc = rc ? rc : add(&y, NAME("blk.%d.attn_k_norm.weight"), HEARTH_TYPE_F32, hd, 0, 0.01f, 1);
		}
		if (gemma) {
			rc = rc ? rc : add(&y, NAME("blk.%d.post_attention_norm.weight"), HEARTH_TYPE_F32, E, 0, 0.01f, 1);
			rc = rc ? rc : add(&y, NAME("blk.%d.post_ffw_norm.weight"), HEARTH_TYPE_F32, E, 0, 0.01f, 1);
		}
		rc = rc ? rc : add(&y, NAME("blk.%d.ffn_norm.weight"), HEARTH_TYPE_F32, E, 0, 0.01f, 1);
		if (s->n_expert) {
			const int X = s->n_expert;
			rc = rc ? rc : add(&y, NAME("blk.%d.ffn_gate_inp.weight"), HEARTH_TYPE_F32, E, X, inv, 0);
			rc = rc ? rc : add3(&y, NAME("blk.%d.ffn_gate_exps.weight"), s->wtype, E, s->n_ff, X, inv, 0);
			rc = rc ? rc : add3(&y, NAME("blk.%d.ffn_up_exps.weight"), s->wtype, E, s->n_ff, X, inv, 0);
			if (!s->skip_ffn_down)
				rc = rc ? rc : add3(&y, NAME("blk.%d.ffn_down_exps.weight"),
						    more_bits(s, il) ? HEARTH_TYPE_Q6_K : s->wtype, s->n_ff, E, X,
						    1.0f / sqrtf((float)s->n_ff), 0);
			continue;
		}
		rc = rc ? rc : add(&y, NAME("blk.%d.ffn_gate.weight"), s->wtype, E, s->n_ff, inv, 0);
		rc = rc ? rc : add(&y, NAME("blk.%d.ffn_up.weight"), s->wtype, E, s->n_ff, inv, 0);
		if (!s->skip_ffn_down)
			rc = rc ? rc : add(&y, NAME("blk.%d.ffn_down.weight"), more_bits(s, il) ? HEARTH_TYPE_Q6_K : s->wtype, s->n_ff, E,
					   1.0f / sqrtf((float)s->n_ff), 0);
#undef NAME
	}
	if (!rc)
		rc = gguf_writer_write(y.w, path, err);
	else
		rc = err ? (err->code = rc) : rc;
	for (int i = 0; i < y.n_bufs; i++)
		free(y.bufs[i]);
	free(y.bufs);
	gguf_writer_free(y.w);
out_names:
	free(toks);
	free(scores);
	free(types);
	free(bytes);
	return rc;
}
