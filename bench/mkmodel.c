/* mkmodel.c - writes synthetic models of real shapes with random weights,
 * using hearth's own GGUF writer and quantizer, for benchmarks.
 *
 *   mkmodel SHAPE TYPE OUT.gguf      SHAPE: tinyllama-1.1b | qwen2.5-0.5b | llama3.2-1b | llama2-7b | llama3-8b
 *                                           | gemma3-1b
 *                                           | olmoe-1b-7b (OLMoE's shape as qwen3moe: 64 experts, 8 used)
 *                                    TYPE: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k q4_k_m
 *
 * q4_k writes every 2-D tensor in q4_K (a "pure" file); q4_k_m is llama.cpp's Q4_K_M
 * mix: q6_K for output.weight (the embedding when tied) and for attn_v and ffn_down
 * in the first and last eighth of the layers and every third layer between, q4_K
 * elsewhere. As llama-quantize does, K-quants of rows that do not split into
 * 256-blocks (qwen2.5-0.5b's 896) become q5_0 (from q4_K) or q8_0 (from q6_K).
 */
#include <stdio.h>
#include <string.h>

#include "../tests/synth.h"

static const struct {
	const char *name;
	struct synth_spec s;
} shapes[] = {
	{ "tinyllama-1.1b", { .arch = "llama", .n_embd = 2048, .n_layer = 22, .n_head = 32, .n_head_kv = 4, .n_ff = 5632,
			      .n_vocab = 32000, .seed = 11 } },
	{ "qwen2.5-0.5b", { .arch = "qwen2", .n_embd = 896, .n_layer = 24, .n_head = 14, .n_head_kv = 2, .n_ff = 4864,
			    .n_vocab = 151936, .tied = true, .seed = 12 } },
	{ "llama3.2-1b", { .arch = "llama", .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8, .n_ff = 8192,
			   .n_vocab = 128256, .tied = true, .seed = 14 } },
	{ "llama2-7b", { .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 32, .n_ff = 11008,
			 .n_vocab = 32000, .seed = 15 } },
	{ "llama3-8b", { .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8, .n_ff = 14336,
			 .n_vocab = 128256, .seed = 13 } },
	/* Gemma 3 1B: 4 heads of 256, one KV head, window 512 on five layers of six */
	{ "gemma3-1b", { .arch = "gemma3", .n_embd = 1152, .n_layer = 26, .n_head = 4, .n_head_kv = 1, .n_ff = 6912,
			 .head_dim = 256, .n_vocab = 262144, .tied = true, .n_swa = 512, .seed = 16 } },
	/* OLMoE-1B-7B's shape (n_embd 2048, 16 layers of 64 experts of width 1024, 8 used; 16 heads of 128)
	 * in the qwen3moe layout (per-head q/k norms where OLMoE norms all heads at once: the same work) */
	{ "olmoe-1b-7b", { .arch = "qwen3moe", .n_embd = 2048, .n_layer = 16, .n_head = 16, .n_head_kv = 16, .n_ff = 1024,
			   .n_vocab = 50304, .n_expert = 64, .n_expert_used = 8, .seed = 16 } },
};

static const struct {
	const char *name;
	int type;
} types[] = {
	{ "f32", HEARTH_TYPE_F32 }, { "f16", HEARTH_TYPE_F16 }, { "bf16", HEARTH_TYPE_BF16 }, { "q8_0", HEARTH_TYPE_Q8_0 },
	{ "q4_0", HEARTH_TYPE_Q4_0 }, { "q4_1", HEARTH_TYPE_Q4_1 }, { "q5_0", HEARTH_TYPE_Q5_0 }, { "q5_1", HEARTH_TYPE_Q5_1 },
	{ "q4_k", HEARTH_TYPE_Q4_K }, { "q6_k", HEARTH_TYPE_Q6_K }, { "q4_k_m", HEARTH_TYPE_Q4_K },
};

int main(int argc, char **argv)
{
	struct hearth_err err = { 0 };
	if (argc != 4) {
		fprintf(stderr, "usage: mkmodel SHAPE TYPE OUT.gguf\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		if (strcmp(argv[1], shapes[i].name))
			continue;
		for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
			if (strcmp(argv[2], types[k].name))
				continue;
			struct synth_spec s = shapes[i].s;
			s.wtype = types[k].type;
			s.k_m_mix = !strcmp(types[k].name, "q4_k_m");
			if (synth_model_write(argv[3], &s, &err)) {
				fprintf(stderr, "mkmodel: %s\n", err.msg[0] ? err.msg : hearth_strerror(err.code));
				return 1;
			}
			return 0;
		}
		fprintf(stderr, "mkmodel: unknown type '%s'\n", argv[2]);
		return 2;
	}
	fprintf(stderr, "mkmodel: unknown shape '%s'\n", argv[1]);
	return 2;
}
