/* mkseeds.c - writes the generated seeds of the fuzz targets with hearth's own
 * GGUF writer: `mkseeds DIR` fills DIR/gguf/ (make fuzz-build runs it into
 * build-fuzz/seeds/). Nothing here is copied from a fixture.
 *
 * The models are as small as the loader accepts (n_embd 8, or 32 for the
 * block types) so that the fuzzer's mutations land on headers and metadata
 * more than on weights: one per architecture (llama with a SentencePiece
 * vocabulary, qwen2 with biases and a byte-level BPE one, qwen3 with q/k norms
 * in q8_0, llama in q4_0 whose matrices get repacked), two vocabulary-only
 * files, and one file with a value of every metadata type. DIR/checkpoint/:
 * checkpoints of the run of ckpt-run.h (fuzz-checkpoint resumes them) at
 * steps 0, 1, 3 and its end, and its adapter file. DIR/lora-moe/: LoRA
 * adapters on the experts' stacks of the MoE fixtures tiny-qwen3moe.f32,
 * tiny-gpt-oss.f32 and tiny-mixtral.f32 (shapes read from the fixtures,
 * skipped when they are absent), good ones and broken ones (another n_expert,
 * n_ff or rank in one of the pair, a matrix for a stack, non-finite values,
 * an unadaptable base, data off alignment).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../src/gguf/gguf.h"
#include "../../src/tensor/quant-ref.h"
#include "ckpt-run.h"

#define MAX_BUFS 64

struct seed {
	struct gguf_writer *w;
	void *bufs[MAX_BUFS]; /* tensor data, alive until the file is written */
	int n_bufs;
	uint64_t rng;
};

struct tok {
	const char *text;
	int type; /* tokenizer.ggml.token_type */
};

static float rnd(struct seed *s)
{
	s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)(s->rng >> 40) / 16777216.0f - 0.5f;
}

/* A tensor of ne0 x ne1 (ne1 0: a vector) with values offset + noise. */
static void tensor(struct seed *s, const char *name, int type, int64_t ne0, int64_t ne1, float offset)
{
	const int64_t n = ne0 * (ne1 ? ne1 : 1);
	float *f = malloc((size_t)n * sizeof *f);
	void *q = malloc(qtype_row_size(type, ne0) * (size_t)(ne1 ? ne1 : 1));
	if (!f || !q || s->n_bufs == MAX_BUFS) {
		fprintf(stderr, "mkseeds: out of memory\n");
		exit(1);
	}
	for (int64_t i = 0; i < n; i++)
		f[i] = offset + 0.2f * rnd(s);
	quantize_row_ref(type, f, q, n);
	free(f);
	s->bufs[s->n_bufs++] = q;
	int64_t ne[2] = { ne0, ne1 };
	gguf_writer_add_tensor(s->w, name, type, ne1 ? 2 : 1, ne, q);
}

static void vocab(struct seed *s, const char *model, const char *pre, const struct tok *t, int n,
		  const char *const *merges, int n_merges)
{
	const char *text[32];
	int32_t type[32];
	float score[32];
	for (int i = 0; i < n && i < 32; i++) {
		text[i] = t[i].text;
		type[i] = t[i].type;
		score[i] = -(float)i;
	}
	gguf_writer_set_str(s->w, "tokenizer.ggml.model", model);
	if (pre)
		gguf_writer_set_str(s->w, "tokenizer.ggml.pre", pre);
	gguf_writer_set_arr_str(s->w, "tokenizer.ggml.tokens", text, (uint64_t)n);
	gguf_writer_set_arr(s->w, "tokenizer.ggml.token_type", HEARTH_GGUF_I32, type, (uint64_t)n);
	if (merges)
		gguf_writer_set_arr_str(s->w, "tokenizer.ggml.merges", merges, (uint64_t)n_merges);
	else
		gguf_writer_set_arr(s->w, "tokenizer.ggml.scores", HEARTH_GGUF_F32, score, (uint64_t)n);
	gguf_writer_set_u32(s->w, "tokenizer.ggml.bos_token_id", 1);
	gguf_writer_set_u32(s->w, "tokenizer.ggml.eos_token_id", 2);
}

/* A SentencePiece-style vocabulary: specials, byte fallback for a few bytes, merges by score. */
static const struct tok spm_toks[] = {
	{ "<unk>", 2 }, { "<s>", 3 }, { "</s>", 3 }, { "<0x0A>", 6 }, { "<0xFF>", 6 }, { "<0xC3>", 6 },
	{ "\xe2\x96\x81", 1 }, { "a", 1 }, { "b", 1 }, { "\xe2\x96\x81" "a", 1 }, { "ab", 1 },
	{ "\xe2\x96\x81" "ab", 1 }, { "<|im_start|>", 3 }, { "<user>", 4 }, { "\xc3\xa9", 1 }, { "", 5 },
};
/* A byte-level BPE vocabulary: 'G with a dot' (U+0120) is the space of the byte alphabet. */
static const struct tok bpe_toks[] = {
	{ "!", 1 }, { "<|endoftext|>", 3 }, { "<|im_end|>", 3 }, { "a", 1 }, { "b", 1 }, { "\xc4\xa0", 1 },
	{ "\xc4\xa0" "a", 1 }, { "ab", 1 }, { "\xc4\xa0" "ab", 1 }, { "1", 1 }, { "\xc4\x8a", 1 },
	{ "<|im_start|>", 3 }, { "<tool>", 4 }, { "\xc3\x83", 1 }, { "\xc2\xa9", 1 }, { "\xc3\x83\xc2\xa9", 1 },
};
static const char *const bpe_merges[] = {
	"\xc4\xa0 a", "a b", ("\xc4\xa0" "a b"), "\xc3\x83 \xc2\xa9", "no such", "broken",
};

static void hparams(struct seed *s, const char *arch, int n_embd, int n_head, int n_head_kv, int n_ff, int head_dim)
{
	char key[96];
	gguf_writer_set_str(s->w, "general.architecture", arch);
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
	gguf_writer_set_u32(s->w, KEY("context_length"), 64);
	gguf_writer_set_u32(s->w, KEY("embedding_length"), (uint32_t)n_embd);
	gguf_writer_set_u32(s->w, KEY("block_count"), 1);
	gguf_writer_set_u32(s->w, KEY("feed_forward_length"), (uint32_t)n_ff);
	gguf_writer_set_u32(s->w, KEY("attention.head_count"), (uint32_t)n_head);
	gguf_writer_set_u32(s->w, KEY("attention.head_count_kv"), (uint32_t)n_head_kv);
	gguf_writer_set_f32(s->w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
	gguf_writer_set_f32(s->w, KEY("rope.freq_base"), 10000.0f);
	if (head_dim)
		gguf_writer_set_u32(s->w, KEY("attention.key_length"), (uint32_t)head_dim);
#undef KEY
}

/* The tensors of a one-layer model; wtype for the matrices. */
static void weights(struct seed *s, const char *arch, int wtype, int E, int V, int QK, int KV, int F, int hd)
{
	tensor(s, "token_embd.weight", wtype, E, V, 0);
	tensor(s, "output_norm.weight", HEARTH_TYPE_F32, E, 0, 1);
	if (strcmp(arch, "llama") == 0)
		tensor(s, "output.weight", wtype, E, V, 0);
	tensor(s, "blk.0.attn_norm.weight", HEARTH_TYPE_F32, E, 0, 1);
	tensor(s, "blk.0.attn_q.weight", wtype, E, QK, 0);
	tensor(s, "blk.0.attn_k.weight", wtype, E, KV, 0);
	tensor(s, "blk.0.attn_v.weight", wtype, E, KV, 0);
	tensor(s, "blk.0.attn_output.weight", wtype, QK, E, 0);
	if (strcmp(arch, "qwen2") == 0) {
		tensor(s, "blk.0.attn_q.bias", HEARTH_TYPE_F32, QK, 0, 0);
		tensor(s, "blk.0.attn_k.bias", HEARTH_TYPE_F32, KV, 0, 0);
		tensor(s, "blk.0.attn_v.bias", HEARTH_TYPE_F32, KV, 0, 0);
	}
	if (strcmp(arch, "qwen3") == 0) {
		tensor(s, "blk.0.attn_q_norm.weight", HEARTH_TYPE_F32, hd, 0, 1);
		tensor(s, "blk.0.attn_k_norm.weight", HEARTH_TYPE_F32, hd, 0, 1);
	}
	tensor(s, "blk.0.ffn_norm.weight", HEARTH_TYPE_F32, E, 0, 1);
	tensor(s, "blk.0.ffn_gate.weight", wtype, E, F, 0);
	tensor(s, "blk.0.ffn_up.weight", wtype, E, F, 0);
	tensor(s, "blk.0.ffn_down.weight", wtype, F, E, 0);
}

static void write_seed(struct seed *s, const char *dir, const char *name)
{
	char path[1024];
	struct hearth_err err = { 0 };
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (gguf_writer_write(s->w, path, &err)) {
		fprintf(stderr, "mkseeds: %s\n", err.msg);
		exit(1);
	}
	gguf_writer_free(s->w);
	for (int i = 0; i < s->n_bufs; i++)
		free(s->bufs[i]);
	memset(s, 0, sizeof *s);
}

static void start(struct seed *s, uint64_t seed)
{
	struct hearth_err err = { 0 };
	memset(s, 0, sizeof *s);
	s->rng = seed;
	if (gguf_writer_new(&s->w, &err)) {
		fprintf(stderr, "mkseeds: %s\n", err.msg);
		exit(1);
	}
}

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void models(const char *dir)
{
	struct seed s;

	start(&s, 1); /* llama, SentencePiece, f32, GQA, untied output */
	hparams(&s, "llama", 8, 2, 1, 16, 0);
	vocab(&s, "llama", NULL, spm_toks, N_OF(spm_toks), NULL, 0);
	gguf_writer_set_bool(s.w, "tokenizer.ggml.add_space_prefix", true);
	gguf_writer_set_str(s.w, "tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
	weights(&s, "llama", HEARTH_TYPE_F32, 8, N_OF(spm_toks), 8, 4, 16, 4);
	write_seed(&s, dir, "llama-spm-f32.gguf");

	start(&s, 2); /* qwen2, byte-level BPE, f16, biases, tied output */
	hparams(&s, "qwen2", 8, 2, 2, 8, 0);
	vocab(&s, "gpt2", "qwen2", bpe_toks, N_OF(bpe_toks), bpe_merges, N_OF(bpe_merges));
	weights(&s, "qwen2", HEARTH_TYPE_F16, 8, N_OF(bpe_toks), 8, 8, 8, 4);
	write_seed(&s, dir, "qwen2-bpe-f16.gguf");

	start(&s, 3); /* qwen3, q8_0, key_length 16 > n_embd / n_head, q/k norms */
	hparams(&s, "qwen3", 32, 4, 2, 32, 16);
	vocab(&s, "gpt2", "llama-bpe", bpe_toks, N_OF(bpe_toks), bpe_merges, N_OF(bpe_merges));
	weights(&s, "qwen3", HEARTH_TYPE_Q8_0, 32, N_OF(bpe_toks), 64, 32, 32, 16);
	write_seed(&s, dir, "qwen3-q8_0.gguf");

	start(&s, 4); /* llama, q4_0: 16-row matrices get repacked */
	hparams(&s, "llama", 32, 2, 1, 32, 0);
	vocab(&s, "llama", NULL, spm_toks, N_OF(spm_toks), NULL, 0);
	weights(&s, "llama", HEARTH_TYPE_Q4_0, 32, N_OF(spm_toks), 32, 16, 32, 16);
	write_seed(&s, dir, "llama-q4_0.gguf");
}

static void vocabs(const char *dir)
{
	struct seed s;

	start(&s, 5); /* no architecture: loads with vocab_only only */
	vocab(&s, "llama", NULL, spm_toks, N_OF(spm_toks), NULL, 0);
	write_seed(&s, dir, "vocab-spm.gguf");

	start(&s, 6);
	gguf_writer_set_str(s.w, "general.architecture", "deepseek2");
	vocab(&s, "gpt2", "deepseek-v3", bpe_toks, N_OF(bpe_toks), bpe_merges, N_OF(bpe_merges));
	gguf_writer_set_bool(s.w, "tokenizer.ggml.add_bos_token", true);
	write_seed(&s, dir, "vocab-bpe.gguf");
}

/* A value of every metadata type, arrays of each, two tensors, alignment 64. */
static void every_type(const char *dir)
{
	static const uint8_t raw[8 * 3] = { 1, 0x80, 0xff, 7, 0, 0, 0, 0x7f, 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	static const int types[] = { HEARTH_GGUF_U8, HEARTH_GGUF_I8, HEARTH_GGUF_U16, HEARTH_GGUF_I16,
				     HEARTH_GGUF_U32, HEARTH_GGUF_I32, HEARTH_GGUF_F32, HEARTH_GGUF_BOOL,
				     HEARTH_GGUF_U64, HEARTH_GGUF_I64, HEARTH_GGUF_F64 };
	const char *strs[] = { "a", "", "\xe6\x97\xa5\xe6\x9c\xac", "q\"uote\\", "\x01\x7f" };
	struct seed s;
	char key[64];

	start(&s, 7);
	gguf_writer_set_u32(s.w, "general.alignment", 64);
	gguf_writer_set_str(s.w, "general.name", "every type \xe2\x96\x81\n");
	gguf_writer_set_i32(s.w, "t.i32", -7);
	gguf_writer_set_f32(s.w, "t.f32", -0.25f);
	gguf_writer_set_bool(s.w, "t.bool", true);
	gguf_writer_set_arr_str(s.w, "t.strs", strs, N_OF(strs));
	for (int i = 0; i < N_OF(types); i++) {
		snprintf(key, sizeof key, "t.arr%d", types[i]);
		gguf_writer_set_arr(s.w, key, types[i], raw, 3);
	}
	tensor(&s, "a", HEARTH_TYPE_F32, 4, 3, 0);
	tensor(&s, "b", HEARTH_TYPE_Q8_0, 32, 0, 0);
	tensor(&s, "c", HEARTH_TYPE_BF16, 2, 0, 0);
	write_seed(&s, dir, "every-type.gguf");
}

/* the fixture chat templates (../shared/fixtures/templates) as seeds of fuzz-jinja */
static void templates(const char *root)
{
	const char *fix = getenv("HEARTH_FIXTURES");
	char src[1024], dst[1024], dir[1024];
	snprintf(dir, sizeof dir, "%s/jinja", root);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		perror(dir);
		return;
	}
	snprintf(src, sizeof src, "%s/templates/templates.json", fix ? fix : "../shared/fixtures");
	FILE *list = fopen(src, "rb");
	if (!list) {
		fprintf(stderr, "mkseeds: %s: no templates to seed fuzz-jinja with\n", src);
		return;
	}
	char line[4096];
	while (fgets(line, sizeof line, list)) {
		char *f = strstr(line, "\"file\": \"templates/");
		if (!f)
			continue;
		f += strlen("\"file\": \"");
		char *e = strchr(f, '"');
		if (!e)
			continue;
		*e = 0;
		snprintf(src, sizeof src, "%s/templates/%s", fix ? fix : "../shared/fixtures", f);
		snprintf(dst, sizeof dst, "%s/%s", dir, strrchr(f, '/') + 1);
		FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
		char buf[65536];
		for (size_t n; in && out && (n = fread(buf, 1, sizeof buf, in)) > 0;)
			fwrite(buf, 1, n, out);
		if (in)
			fclose(in);
		if (out)
			fclose(out);
	}
	fclose(list);
}

/* Checkpoints of the run of ckpt-run.h, written by the library, as seeds of fuzz-checkpoint. */
static void checkpoints(const char *root)
{
	const char *fix = getenv("HEARTH_FIXTURES");
	char dir[1024], path[1200], model_path[1024], data_path[1024];
	struct hearth_model *m = NULL;
	struct hearth_dataset *d = NULL;
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	snprintf(dir, sizeof dir, "%s/checkpoint", root);
	snprintf(model_path, sizeof model_path, "%s/%s", fix ? fix : "../shared/fixtures", CKPT_RUN_MODEL);
	snprintf(data_path, sizeof data_path, "%s/ckpt-run.jsonl", root);
	FILE *f = fopen(data_path, "wb");
	if ((mkdir(dir, 0755) && errno != EEXIST) || !f) {
		perror(f ? dir : data_path);
		if (f)
			fclose(f);
		return;
	}
	fputs(ckpt_run_data, f);
	fclose(f);
	int rc = ckpt_run_open(&m, &d, model_path, data_path, &err);
	if (!rc)
		rc = ckpt_run_new(&ft, m, d, &err);
	for (int64_t step = 0; !rc; step++) {
		if (step == 0 || step == 1 || step == 3 || hearth_finetune_done(ft)) {
			snprintf(path, sizeof path, "%s/step%lld.ckpt", dir, (long long)step);
			rc = hearth_finetune_checkpoint(ft, path, &err);
		}
		if (rc || hearth_finetune_done(ft))
			break;
		struct hearth_finetune_report r;
		rc = hearth_finetune_step(ft, &r, &err);
	}
	snprintf(path, sizeof path, "%s/adapter.gguf", dir);
	if (!rc)
		rc = hearth_finetune_save(ft, path, &err);
	if (rc)
		fprintf(stderr, "mkseeds: no checkpoint seeds for fuzz-checkpoint: %s\n", err.msg);
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
	remove(data_path);
}

/* ---- LoRA adapters on the experts' stacks ------------------------------------ */

/* A tensor of ne0 x ne1 x ne2 (n_dims 3 when ne2 > 1 or three is set) of
 * values amp * noise, the first one bad when bad is not 0. */
static void tensor3(struct seed *s, const char *name, int type, const int64_t ne[3], bool three, float amp, float bad)
{
	const int64_t n = ne[0] * ne[1] * ne[2];
	float *f = malloc((size_t)n * sizeof *f);
	void *q = malloc(qtype_row_size(type, ne[0]) * (size_t)(ne[1] * ne[2]));
	if (!f || !q || s->n_bufs == MAX_BUFS) {
		fprintf(stderr, "mkseeds: out of memory\n");
		exit(1);
	}
	for (int64_t i = 0; i < n; i++)
		f[i] = amp * rnd(s);
	if (bad != 0)
		f[0] = bad;
	quantize_row_ref(type, f, q, n);
	free(f);
	s->bufs[s->n_bufs++] = q;
	gguf_writer_add_tensor(s->w, name, type, ne[2] > 1 || three ? 3 : 2, ne, q);
}

/* One adapter pair of a lora_moe seed: base tensor target, and how its
 * tensors differ from a good pair of the rank. */
struct pair_spec {
	const char *target;
	int rank, type_a, type_b;
	int64_t d_a[3], d_b[3]; /* added to lora_a's, lora_b's ne */
	bool flat;              /* 2-D tensors for a stack (its first expert) */
	float bad_b;            /* the first value of lora_b (0: a good one) */
};

/* Writes an adapter for the model of arch whose tensors g has, of the pairs
 * ps; misaligned: general.alignment 1 and a 2-byte tensor (a skipped norm)
 * first, so that the f32 data of the pairs is not 4-byte aligned. */
static void lora_seed(const char *dir, const char *file, const struct hearth_gguf *g, const char *arch, float alpha,
		      const struct pair_spec *ps, int n, bool misaligned)
{
	struct seed s;
	char name[256];
	start(&s, 100 + (uint64_t)n);
	gguf_writer_set_str(s.w, "general.type", "adapter");
	gguf_writer_set_str(s.w, "general.architecture", arch);
	gguf_writer_set_str(s.w, "adapter.type", "lora");
	if (alpha != 0)
		gguf_writer_set_f32(s.w, "adapter.lora.alpha", alpha);
	if (misaligned) {
		gguf_writer_set_u32(s.w, "general.alignment", 1);
		tensor3(&s, "blk.0.pad_norm.weight", HEARTH_TYPE_F16, (const int64_t[3]){ 1, 1, 1 }, false, 0.1f, 0);
	}
	for (int k = 0; k < n; k++) {
		const struct pair_spec *p = &ps[k];
		const int64_t i = gguf_find_tensor(g, p->target);
		if (i < 0) {
			fprintf(stderr, "mkseeds: the fixture %s has no %s\n", g->path, p->target);
			exit(1);
		}
		const int64_t *W = g->tensors[i].ne, X = p->flat ? 1 : W[2];
		const int64_t a[3] = { W[0] + p->d_a[0], p->rank + p->d_a[1], X + p->d_a[2] };
		const int64_t b[3] = { p->rank + p->d_b[0], W[1] + p->d_b[1], X + p->d_b[2] };
		snprintf(name, sizeof name, "%s.lora_a", p->target);
		tensor3(&s, name, p->type_a, a, g->tensors[i].n_dims == 3 && !p->flat, 0.1f, 0);
		snprintf(name, sizeof name, "%s.lora_b", p->target);
		tensor3(&s, name, p->type_b, b, g->tensors[i].n_dims == 3 && !p->flat, 0.1f, p->bad_b);
	}
	write_seed(&s, dir, file);
}

#define F32 HEARTH_TYPE_F32
static void lora_moe_model(const char *dir, const char *fixture, const char *arch, const char *tag)
{
	char rel[1024], file[256];
	const char *root = getenv("HEARTH_FIXTURES");
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	snprintf(rel, sizeof rel, "%s/models/%s", root && *root ? root : "../shared/fixtures", fixture);
	if (hearth_gguf_open(&g, rel, &err)) {
		fprintf(stderr, "mkseeds: lora-moe seeds of %s skipped: %s\n", arch, err.msg);
		return;
	}
	const char *G = "blk.0.ffn_gate_exps.weight", *U = "blk.0.ffn_up_exps.weight", *D = "blk.0.ffn_down_exps.weight";
#define P(t, r, ta, tb) .target = (t), .rank = (r), .type_a = (ta), .type_b = (tb)
	const struct pair_spec all[] = { { P(G, 1, F32, F32) }, { P(U, 1, F32, F32) }, { P(D, 1, F32, F32) } };
	const struct pair_spec mixed[] = { { P("blk.0.attn_q.weight", 2, F32, F32) },
					   { P(D, 2, HEARTH_TYPE_F16, HEARTH_TYPE_BF16) } };
	const struct pair_spec q8[] = { { P(U, 1, HEARTH_TYPE_Q8_0, F32) } };
	const struct pair_spec broken[][1] = {
		{ { P(D, 1, F32, F32), .d_b = { 0, 0, 1 } } },                     /* lora_b of n_expert + 1 */
		{ { P(D, 1, F32, F32), .d_a = { 0, 0, -1 }, .d_b = { 0, 0, -1 } } }, /* both of n_expert - 1 */
		{ { P(G, 2, F32, F32), .d_b = { -1, 0, 0 } } },                    /* rank 2 in lora_a, 1 in lora_b */
		{ { P(G, 1, F32, F32), .d_b = { 0, 32, 0 } } },                    /* another n_ff */
		{ { P(U, 1, F32, F32), .d_a = { 32, 0, 0 } } },                    /* another n_embd */
		{ { P(D, 1, F32, F32), .flat = true } },                           /* matrices for a stack */
		{ { P(D, 1, F32, F32), .bad_b = 1.0f / 0.0f } },                   /* an infinity */
		{ { P("blk.0.ffn_gate_inp.weight", 1, F32, F32) } },               /* the router: not adapted */
	};
#undef P
	snprintf(file, sizeof file, "%s-exps-rank1.gguf", tag);
	lora_seed(dir, file, g, arch, 0, all, N_OF(all), false);
	snprintf(file, sizeof file, "%s-down-misaligned.gguf", tag);
	lora_seed(dir, file, g, arch, 0, all + 2, 1, true);
	snprintf(file, sizeof file, "%s-attn-down-rank2.gguf", tag);
	lora_seed(dir, file, g, arch, 4, mixed, N_OF(mixed), false);
	snprintf(file, sizeof file, "%s-up-q8_0.gguf", tag);
	lora_seed(dir, file, g, arch, 1, q8, N_OF(q8), false);
	for (int k = 0; k < N_OF(broken); k++) {
		snprintf(file, sizeof file, "%s-broken-%d.gguf", tag, k);
		lora_seed(dir, file, g, arch, 0, broken[k], 1, false);
	}
	hearth_gguf_close(g);
}

static void lora_moe(const char *root)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/lora-moe", root);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		perror(dir);
		exit(1);
	}
	lora_moe_model(dir, "tiny-qwen3moe.f32.gguf", "qwen3moe", "qwen3moe");
	lora_moe_model(dir, "tiny-gpt-oss.f32.gguf", "gpt-oss", "gpt-oss");
	lora_moe_model(dir, "tiny-mixtral.f32.gguf", "llama", "mixtral");
}
#undef F32

int main(int argc, char **argv)
{
	char dir[1024];
	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s/gguf", argv[1]);
	if ((mkdir(argv[1], 0755) && errno != EEXIST) || (mkdir(dir, 0755) && errno != EEXIST)) {
		perror(dir);
		return 1;
	}
	hearth_log_set(NULL, NULL);
	models(dir);
	vocabs(dir);
	every_type(dir);
	templates(argv[1]);
	checkpoints(argv[1]);
	lora_moe(argv[1]);
	return 0;
}
