/* test-lora.c - LoRA adapters: llama.cpp's GGUF LoRA format read (every
 * malformed case refused, naming the tensor); an adapter of scale 0 giving
 * the base logits bit for bit; an adapter giving the logits of the model with
 * the adapter merged into its weights (hearth_lora_export), on a model with
 * separate matrices and on one with fused ones (chatglm's attn_qkv and
 * gate+up); in the scheduler, two adapters and none in one batch each giving
 * exactly what it gets alone, and the prefix cache never lending blocks
 * computed with one adapter to a request with another (or none). The same on
 * mixtures of experts with adapters on the experts' stacks (one A and B per
 * expert, llama.cpp's *_exps.weight.lora_a [n_in, rank, n_expert] and
 * lora_b [rank, n_out, n_expert]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fault.h"
#include "../harness.h"
#include "../../src/gguf/gguf.h"
#include "../../src/model/model.h"
#include "../../src/tensor/qtype.h"

#define MODEL "models/tiny-llama-spm.f32.gguf"
#define FUSED "models/tiny-chatglm.f32.gguf"
#define QWEN3MOE "models/tiny-qwen3moe.f32.gguf"

/* An adapter file to write; the zero value of each field is a good file. */
struct ad_spec {
	const char *arch;            /* general.architecture (NULL: the model's) */
	const char *type;            /* general.type (NULL: "adapter") */
	const char *const *targets;  /* base tensors adapted */
	int n_targets;
	int rank;                    /* 0: 4 */
	float alpha;                 /* written when not 0 */
	uint32_t seed;
	float amp;                   /* values in [-amp, amp] (0: 0.05) */
	int a_extra;                 /* added to lora_a's rank dimension (a shape mismatch) */
	int in_extra;                /* added to lora_a's n_in (a shape mismatch) */
	int x_extra;                 /* added to an expert stack's n_expert in lora_b (a shape mismatch) */
	bool flat;                   /* an expert stack's pair written as 2-D matrices */
	bool skip_b;                 /* leave the first target's lora_b out */
	bool skip_a;                 /* leave the first target's lora_a out */
	bool nan;                    /* a NaN in the first lora_b */
	bool alora;                  /* adapter.alora.invocation_tokens written */
	const char *extra;           /* another tensor of this name */
	bool misalign;               /* general.alignment 1 and a 2-byte norm first: the pairs' data unaligned */
	int wtype;                   /* HEARTH_TYPE_F32 (0) or F16 */
};

static float rnd(uint32_t *s, float amp)
{
	*s = *s * 1664525u + 1013904223u;
	return amp * ((float)(*s >> 8) / (float)(1u << 24) * 2.0f - 1.0f);
}

/* Writes tensor name of ne0 x ne1 (x ne2 when ne2 > 1) random values (or NaN
 * at 0) as sp->wtype. */
static void *add_rand3(struct gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
		       const struct ad_spec *sp, uint32_t *seed, bool nan)
{
	const size_t n = (size_t)ne0 * (size_t)ne1 * (size_t)ne2;
	float *v = malloc(n * sizeof *v);
	uint16_t *h = malloc(n * sizeof *h);
	if (!v || !h) {
		free(v);
		free(h);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = rnd(seed, sp->amp ? sp->amp : 0.05f);
	if (nan)
		v[0] = NAN;
	const int64_t ne[3] = { ne0, ne1, ne2 };
	const int n_dims = ne2 > 1 ? 3 : 2;
	if (sp->wtype == HEARTH_TYPE_F16) {
		for (size_t i = 0; i < n; i++)
			h[i] = f32_to_fp16(v[i]);
		gguf_writer_add_tensor(w, name, HEARTH_TYPE_F16, n_dims, ne, h);
		free(v);
		return h;
	}
	gguf_writer_add_tensor(w, name, HEARTH_TYPE_F32, n_dims, ne, v);
	free(h);
	return v;
}

static void *add_rand(struct gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, const struct ad_spec *sp,
		      uint32_t *seed, bool nan)
{
	return add_rand3(w, name, ne0, ne1, 1, sp, seed, nan);
}

/* Writes the adapter sp for m at path. */
static void write_adapter(const struct hearth_model *m, const char *path, const struct ad_spec *sp)
{
	struct gguf_writer *w = NULL;
	struct hearth_err err = { 0 };
	void *keep[64] = { 0 };
	int n_keep = 0;
	uint32_t seed = sp->seed * 2654435761u + 1;
	char name[160];
	T_OK(gguf_writer_new(&w, &err), err);
	if (!w)
		return;
	gguf_writer_set_str(w, "general.type", sp->type ? sp->type : "adapter");
	gguf_writer_set_str(w, "general.architecture", sp->arch ? sp->arch : m->arch);
	gguf_writer_set_str(w, "adapter.type", "lora");
	if (sp->alpha != 0)
		gguf_writer_set_f32(w, "adapter.lora.alpha", sp->alpha);
	if (sp->alora)
		gguf_writer_set_arr(w, "adapter.alora.invocation_tokens", HEARTH_GGUF_U32, (const uint32_t[]){ 5, 6 }, 2);
	if (sp->misalign) {
		gguf_writer_set_u32(w, "general.alignment", 1);
		keep[n_keep++] = add_rand3(w, "blk.0.pad_norm.weight", 1, 1, 1, &(struct ad_spec){ .wtype = HEARTH_TYPE_F16 },
					   &seed, false);
	}
	const int rank = sp->rank ? sp->rank : 4;
	for (int k = 0; k < sp->n_targets && n_keep + 2 < 64; k++) {
		const int64_t i = gguf_find_tensor(m->gguf, sp->targets[k]);
		/* an unknown base: any shape (the loader must say it is not in the model) */
		const int64_t n_in = i >= 0 ? m->gguf->tensors[i].ne[0] : 16, n_out = i >= 0 ? m->gguf->tensors[i].ne[1] : 16;
		const bool embd = strcmp(sp->targets[k], "token_embd.weight") == 0;
		/* an expert stack [n_in, n_out, X]: lora_a [n_in, rank, X], lora_b [rank, n_out, X] */
		const int64_t X = i >= 0 && m->gguf->tensors[i].n_dims == 3 && !sp->flat ? m->gguf->tensors[i].ne[2] : 1;
		snprintf(name, sizeof name, "%s.lora_a", sp->targets[k]);
		if (!(k == 0 && sp->skip_a))
			keep[n_keep++] = embd ? add_rand(w, name, rank + sp->a_extra, n_out + sp->in_extra, sp, &seed, false)
					      : add_rand3(w, name, n_in + sp->in_extra, rank + sp->a_extra, X, sp, &seed, false);
		snprintf(name, sizeof name, "%s.lora_b", sp->targets[k]);
		if (!(k == 0 && sp->skip_b))
			keep[n_keep++] = add_rand3(w, name, rank, embd ? n_in : n_out, X > 1 ? X + sp->x_extra : 1, sp, &seed,
						   k == 0 && sp->nan);
	}
	if (sp->extra)
		keep[n_keep++] = add_rand(w, sp->extra, 4, 4, sp, &seed, false);
	T_OK(gguf_writer_write(w, path, &err), err);
	gguf_writer_free(w);
	for (int k = 0; k < n_keep; k++)
		free(keep[k]);
}

/* Loading path fails with code and a message containing want. */
static void expect_refused(const struct hearth_model *m, const char *path, int code, const char *want)
{
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	const int rc = hearth_lora_load(&a, m, path, &err);
	if (rc != code || a || !strstr(err.msg, want))
		T_FAIL("loading %s: %s (%s), expected %s with \"%s\"", path, err.msg, hearth_err_name(rc),
		       hearth_err_name(code), want);
	hearth_lora_free(a);
}

static const char *const all_targets[] = {
	"blk.0.attn_q.weight",   "blk.0.attn_k.weight",   "blk.0.attn_v.weight",   "blk.0.attn_output.weight",
	"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight",   "blk.0.ffn_down.weight", "blk.1.attn_q.weight",
	"blk.1.ffn_down.weight", "output.weight",         "token_embd.weight",
};
#define N_ALL ((int)(sizeof all_targets / sizeof all_targets[0]))

static struct hearth_model *load_abs(const char *path)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_model *m = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	return m;
}

static struct hearth_model *load(const char *rel)
{
	return load_abs(fixture(rel));
}

void test_lora_file(void)
{
	struct hearth_model *m = load(MODEL);
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	if (!m)
		return;
	const char *p = tmp_path("a.gguf");
	write_adapter(m, p, &(struct ad_spec){ .targets = all_targets, .n_targets = N_ALL, .alpha = 8, .rank = 4,
					       .extra = "blk.0.attn_norm.weight" /* skipped, as llama.cpp does */ });
	T_OK(hearth_lora_load(&a, m, p, &err), err);
	if (a) {
		T_EQ_I64(hearth_lora_n_pairs(a), N_ALL);
		T_TRUE(hearth_lora_alpha(a) == 8.0f);
		hearth_lora_free(a);
		a = NULL;
	}
	/* f16 tensors read too */
	write_adapter(m, p, &(struct ad_spec){ .targets = all_targets, .n_targets = 2, .wtype = HEARTH_TYPE_F16 });
	T_OK(hearth_lora_load(&a, m, p, &err), err);
	hearth_lora_free(a);

	const char *const q[] = { "blk.0.attn_q.weight", "blk.0.attn_k.weight" };
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .arch = "qwen2" });
	expect_refused(m, p, HEARTH_EBADGGUF, "general.architecture is 'qwen2', expected 'llama'");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .type = "model" });
	expect_refused(m, p, HEARTH_EBADGGUF, "general.type is 'model'");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .skip_b = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "'blk.0.attn_q.weight.lora_a' has no blk.0.attn_q.weight.lora_b");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .skip_a = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "'blk.0.attn_q.weight.lora_b' has no blk.0.attn_q.weight.lora_a");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .a_extra = 1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit base tensor 'blk.0.attn_q.weight'");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .in_extra = 32 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit base tensor 'blk.0.attn_q.weight'");
	const char *const e[] = { "token_embd.weight" };
	write_adapter(m, p, &(struct ad_spec){ .targets = e, .n_targets = 1, .in_extra = 1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit base tensor 'token_embd.weight'");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .nan = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "tensor 'blk.0.attn_q.weight.lora_b' holds a non-finite value");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .extra = "blk.0.attn_q.weight.lora_c" });
	expect_refused(m, p, HEARTH_EBADGGUF, "'blk.0.attn_q.weight.lora_c' is neither a lora_a nor a lora_b");
	const char *const missing[] = { "blk.99.attn_q.weight" };
	write_adapter(m, p, &(struct ad_spec){ .targets = missing, .n_targets = 1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "adapts 'blk.99.attn_q.weight', which the base model");
	const char *const norm[] = { "output_norm.weight" }; /* a vector: not a matrix product */
	write_adapter(m, p, &(struct ad_spec){ .targets = norm, .n_targets = 1 });
	expect_refused(m, p, HEARTH_EUNSUPPORTED, "matrices and experts' stacks only");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 2, .alora = true });
	expect_refused(m, p, HEARTH_EUNSUPPORTED, "activated LoRA");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 0 });
	expect_refused(m, p, HEARTH_EBADGGUF, "no lora_a / lora_b tensors");
	write_adapter(m, p, &(struct ad_spec){ .targets = q, .n_targets = 1, .rank = 5000 / 64 * 64 });
	expect_refused(m, p, HEARTH_EBADGGUF, "rank 4992, outside 1..4096");
	FILE *f = fopen(p, "wb");
	if (f) {
		fputs("not a gguf file", f);
		fclose(f);
	}
	expect_refused(m, p, HEARTH_EBADGGUF, "");
	hearth_model_free(m);
}

static const char *const exps_targets[] = {
	"blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight", "blk.0.ffn_down_exps.weight",
	"blk.1.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight",
	"blk.0.attn_q.weight",        "blk.1.attn_output.weight",
};
#define N_EXPS ((int)(sizeof exps_targets / sizeof exps_targets[0]))

/* Expert stacks' adapters: read, and every malformed stack refused by name. */
void test_lora_exps_file(void)
{
	struct hearth_model *m = load(QWEN3MOE);
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	if (!m)
		return;
	const char *p = tmp_path("a.gguf");
	write_adapter(m, p, &(struct ad_spec){ .targets = exps_targets, .n_targets = N_EXPS, .alpha = 8 });
	T_OK(hearth_lora_load(&a, m, p, &err), err);
	if (a)
		T_EQ_I64(hearth_lora_n_pairs(a), N_EXPS);
	hearth_lora_free(a);
	a = NULL;
	write_adapter(m, p, &(struct ad_spec){ .targets = exps_targets, .n_targets = 3, .wtype = HEARTH_TYPE_F16 });
	T_OK(hearth_lora_load(&a, m, p, &err), err);
	hearth_lora_free(a);
	const char *const *t = exps_targets + 2; /* ffn_down_exps [128, 256, 8] first */
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .x_extra = 1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit expert stack 'blk.0.ffn_down_exps.weight' [128, 256, 8]");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .x_extra = -1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit expert stack 'blk.0.ffn_down_exps.weight'");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .a_extra = 1 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit expert stack");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .in_extra = 32 });
	expect_refused(m, p, HEARTH_EBADGGUF, "do not fit expert stack");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .flat = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "tensor 'blk.0.ffn_down_exps.weight.lora_a' has 2 dimensions, not 3");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 2, .nan = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "tensor 'blk.0.ffn_down_exps.weight.lora_b' holds a non-finite value");
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 1, .rank = 5000 / 64 * 64 });
	expect_refused(m, p, HEARTH_EBADGGUF, "rank 4992, outside 1..4096");
	/* found by fuzz-lora-moe: f32 data 2 bytes off alignment (general.alignment 1) was read in place */
	write_adapter(m, p, &(struct ad_spec){ .targets = t, .n_targets = 1, .misalign = true });
	expect_refused(m, p, HEARTH_EBADGGUF, "tensor 'blk.0.ffn_down_exps.weight.lora_a' data is not 4-byte aligned");
	hearth_model_free(m);
}

/* ---- logits of a context ------------------------------------------------------ */

static const int32_t prompt[] = { 1, 15, 40, 77, 9, 120, 33, 64, 201, 5, 17, 88 };
#define N_PROMPT ((int32_t)(sizeof prompt / sizeof prompt[0]))

/* All logits of the prompt (N_PROMPT rows) under n adapters into out. */
static void logits_of(struct hearth_model *m, const struct hearth_lora_use *use, int32_t n, float *out)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_err err = { 0 };
	cp.n_ctx = 64;
	cp.n_threads = 2;
	cp.n_batch = 5; /* several passes, the last rows of one batch continuing the cache */
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		return;
	T_OK(hearth_context_set_lora(c, use, n, &err), err);
	T_OK(hearth_decode(c, prompt, N_PROMPT, true, &err), err);
	const int32_t V = hearth_model_n_vocab(m);
	for (int32_t i = 0; i < N_PROMPT; i++) {
		const float *l = hearth_get_logits(c, i);
		if (l)
			memcpy(out + (size_t)i * (size_t)V, l, (size_t)V * sizeof *out);
	}
	hearth_context_free(c);
}

/* With adapters, the logit lens over the last layer's states gives the logits, bit for bit. */
static void check_lens(struct hearth_model *m, const struct hearth_lora_use *use, int32_t n)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_err err = { 0 };
	const int32_t V = hearth_model_n_vocab(m), E = hearth_model_n_embd(m), last = -1;
	float *x = malloc((size_t)N_PROMPT * (size_t)E * sizeof *x), *l = malloc((size_t)N_PROMPT * (size_t)V * sizeof *l);
	cp.n_ctx = 64;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c || !x || !l)
		goto out;
	T_OK(hearth_context_set_lora(c, use, n, &err), err);
	T_OK(hearth_context_set_hidden(c, &last, 1, &err), err);
	T_OK(hearth_decode(c, prompt, N_PROMPT, true, &err), err);
	for (int32_t i = 0; i < N_PROMPT; i++)
		if (hearth_get_hidden(c, 0, i))
			memcpy(x + (size_t)i * (size_t)E, hearth_get_hidden(c, 0, i), (size_t)E * sizeof *x);
	T_OK(hearth_context_logit_lens(c, x, N_PROMPT, l, &err), err);
	for (int32_t i = 0; i < N_PROMPT; i++)
		if (!hearth_get_logits(c, i) || memcmp(l + (size_t)i * (size_t)V, hearth_get_logits(c, i), (size_t)V * sizeof *l)) {
			T_FAIL("the logit lens of row %d with adapters is not its logits", i);
			break;
		}
out:
	hearth_context_free(c);
	free(x);
	free(l);
}

/* The largest |a - b| over n, relative to the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0, mx = 1e-30;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs((double)b[i]));
	}
	return d / mx;
}

/* On model rel: the adapter over targets against the model merged with it. */
static void check_merged(const char *rel, const char *const *targets, int n_targets)
{
	struct hearth_model *m = load(rel), *merged = NULL;
	struct hearth_lora *a = NULL, *b = NULL;
	struct hearth_err err = { 0 };
	float *base = NULL, *l = NULL, *lm = NULL;
	if (!m)
		return;
	const int32_t V = hearth_model_n_vocab(m);
	const size_t n = (size_t)N_PROMPT * (size_t)V;
	base = calloc(n, sizeof *base);
	l = calloc(n, sizeof *l);
	lm = calloc(n, sizeof *lm);
	const char *pa = tmp_path("a.gguf"), *pb = tmp_path("b.gguf"), *pm = tmp_path("merged.gguf");
	write_adapter(m, pa, &(struct ad_spec){ .targets = targets, .n_targets = n_targets, .alpha = 8, .seed = 1 });
	write_adapter(m, pb, &(struct ad_spec){ .targets = targets, .n_targets = 2, .rank = 8, .seed = 2 });
	T_OK(hearth_lora_load(&a, m, pa, &err), err);
	T_OK(hearth_lora_load(&b, m, pb, &err), err);
	if (!base || !l || !lm || !a || !b)
		goto out;
	logits_of(m, NULL, 0, base);
	/* scale 0: the base, bit for bit */
	logits_of(m, (struct hearth_lora_use[]){ { a, 0.0f } }, 1, l);
	T_TRUE(memcmp(l, base, n * sizeof *l) == 0);
	/* two adapters against the model with both merged */
	const struct hearth_lora_use use[2] = { { a, 0.7f }, { b, -1.3f } };
	logits_of(m, use, 2, l);
	const double moved = rel_diff(l, base, n);
	if (!(moved > 1e-3))
		T_FAIL("%s: the adapters move the logits by %.3g only", rel, moved);
	check_lens(m, use, 2);
	T_OK(hearth_lora_export(m, use, 2, pm, &err), err);
	if (!(merged = load_abs(pm)))
		goto out;
	logits_of(merged, NULL, 0, lm);
	const double d = rel_diff(l, lm, n);
	fprintf(stderr, "  %s: the adapters move the logits by %.3g; applied vs merged: %.3g (relative)\n", rel, moved, d);
	if (!(d < 1e-4 && d < moved / 100))
		T_FAIL("%s: adapters applied vs merged differ by %.3g (relative), moved %.3g", rel, d, moved);
out:
	free(base);
	free(l);
	free(lm);
	hearth_lora_free(a);
	hearth_lora_free(b);
	hearth_model_free(merged);
	hearth_model_free(m);
}

void test_lora_logits(void)
{
	check_merged(MODEL, all_targets, N_ALL);
	/* fused matrices: each part's rows of lora_b */
	const char *const fused[] = { "blk.0.attn_qkv.weight", "blk.0.ffn_up.weight", "blk.1.attn_output.weight",
				      "blk.1.ffn_down.weight", "output.weight" };
	check_merged(FUSED, fused, 5);
}

/* Expert stacks' adapters against the merged model, on each family with experts. */
void test_lora_exps_logits(void)
{
	check_merged(QWEN3MOE, exps_targets, N_EXPS);
	check_merged("models/tiny-mixtral.f32.gguf", exps_targets, N_EXPS);
	check_merged("models/tiny-gpt-oss.f32.gguf", exps_targets, N_EXPS); /* with the experts' biases */
}

/* ---- the scheduler ----------------------------------------------------------------- */

#define GEN 10

struct answer {
	int32_t n, ids[GEN];
	float lp[GEN];
};

static struct hearth_request *submit(struct hearth_sched *s, const struct hearth_lora_use *use, int32_t n)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *r = NULL;
	struct hearth_err err = { 0 };
	p.prompt = prompt;
	p.n_prompt = N_PROMPT;
	p.max_tokens = GEN;
	p.ignore_eos = true;
	p.top_logprobs = 0;
	p.sampling.temp = 0;
	p.lora = use;
	p.n_lora = n;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

/* The answer; *cached: prompt tokens taken from the prefix cache. */
static void collect(struct hearth_request *r, struct answer *a, int32_t *cached)
{
	struct hearth_token_event ev;
	memset(a, 0, sizeof *a);
	while (r && hearth_request_next(r, &ev, 20000) == 0)
		if (ev.id >= 0 && a->n < GEN) {
			a->ids[a->n] = ev.id;
			a->lp[a->n++] = ev.logprob;
		}
	if (cached)
		*cached = r ? hearth_request_cached_tokens(r) : -1;
	hearth_request_free(r);
	T_EQ_I64(a->n, GEN);
}

static struct hearth_sched *sched_new(struct hearth_model *m)
{
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_sched *s = NULL;
	struct hearth_err err = { 0 };
	sp.n_parallel = 3;
	sp.n_ctx_seq = 64;
	sp.block_size = 4;
	sp.n_threads = 2;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	return s;
}

static bool same(const struct answer *a, const struct answer *b)
{
	return a->n == b->n && memcmp(a->ids, b->ids, sizeof a->ids) == 0 && memcmp(a->lp, b->lp, sizeof a->lp) == 0;
}

/* On model rel, adapters over targets: none, a and b in one batch each give
 * what they give alone, and the prefix cache keeps them apart. */
static void check_sched(const char *rel, const char *const *targets, int n_targets, int b_skip)
{
	struct hearth_model *m = load(rel);
	struct hearth_lora *a = NULL, *b = NULL;
	struct hearth_sched *s = NULL;
	struct hearth_err err = { 0 };
	if (!m)
		return;
	const char *pa = tmp_path("a.gguf"), *pb = tmp_path("b.gguf");
	write_adapter(m, pa, &(struct ad_spec){ .targets = targets, .n_targets = n_targets, .alpha = 8, .seed = 3,
						.amp = 0.2f });
	write_adapter(m, pb, &(struct ad_spec){ .targets = targets + b_skip, .n_targets = n_targets - b_skip, .seed = 4,
						.amp = 0.2f });
	T_OK(hearth_lora_load(&a, m, pa, &err), err);
	T_OK(hearth_lora_load(&b, m, pb, &err), err);
	if (!a || !b)
		goto out;
	const struct hearth_lora_use ua = { a, 1.0f }, ub = { b, 1.0f };
	const struct hearth_lora_use *use[3] = { NULL, &ua, &ub };
	struct answer alone[3], together[3], again;
	int32_t cached;
	for (int k = 0; k < 3; k++) { /* each alone, in a scheduler of its own */
		if (!(s = sched_new(m)))
			goto out;
		collect(submit(s, use[k], use[k] ? 1 : 0), &alone[k], NULL);
		hearth_sched_free(s);
	}
	T_TRUE(!same(&alone[0], &alone[1]) && !same(&alone[0], &alone[2]) && !same(&alone[1], &alone[2]));
	/* all three in one batch: each its own answer, bit for bit */
	if (!(s = sched_new(m)))
		goto out;
	struct hearth_request *r[3];
	for (int k = 0; k < 3; k++)
		r[k] = submit(s, use[k], use[k] ? 1 : 0);
	/* the loader's references may go while requests run: they hold their own */
	hearth_lora_free(b);
	b = NULL;
	for (int k = 0; k < 3; k++)
		collect(r[k], &together[k], NULL);
	for (int k = 0; k < 3; k++)
		if (!same(&together[k], &alone[k]))
			T_FAIL("request %d in a shared batch differs from alone", k);
	/* the prompt is cached now, once per adapter: each gets its own again, from the cache */
	collect(submit(s, &ua, 1), &again, &cached);
	T_TRUE(same(&again, &alone[1]));
	T_TRUE(cached > 0);
	collect(submit(s, NULL, 0), &again, &cached);
	T_TRUE(same(&again, &alone[0]));
	/* scale 0 is no adapter: the base's blocks and answer */
	collect(submit(s, (struct hearth_lora_use[]){ { a, 0.0f } }, 1), &again, &cached);
	T_TRUE(same(&again, &alone[0]) && cached > 0);
	/* another scale of a: not the blocks of scale 1 */
	collect(submit(s, (struct hearth_lora_use[]){ { a, 0.5f } }, 1), &again, &cached);
	T_TRUE(!same(&again, &alone[1]) && !same(&again, &alone[0]));
	T_EQ_I64(cached, 0);
	/* bad uses refused */
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *bad = NULL;
	p.prompt = prompt;
	p.n_prompt = N_PROMPT;
	p.lora = (struct hearth_lora_use[]){ { a, NAN } };
	p.n_lora = 1;
	T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_EINVAL);
	p.n_lora = HEARTH_MAX_LORAS + 1;
	T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_EINVAL);
	T_TRUE(bad == NULL);
	hearth_sched_free(s);
out:
	hearth_lora_free(a);
	hearth_lora_free(b);
	hearth_model_free(m);
}

void test_lora_sched(void)
{
	check_sched(MODEL, all_targets, N_ALL, 3);
}

/* The experts' adapters: the batch's rows go to experts and adapters of any mix. */
void test_lora_exps_sched(void)
{
	check_sched(QWEN3MOE, exps_targets, 6, 1); /* the experts' stacks only */
	check_sched("models/tiny-gpt-oss.mxfp4_moe.gguf", exps_targets, N_EXPS, 3);
}

/* ---- allocation failures --------------------------------------------------------- */

struct load_ctx {
	const struct hearth_model *m;
	const char *path;
	uint8_t digest[32];
	int32_t n_pairs;
};

/* Loading an adapter: every failed allocation is HEARTH_ENOMEM with nothing
 * handed out (and nothing leaked, under ASan); a success is the same adapter. */
static int path_lora_load(void *ctx, bool first, struct hearth_err *err)
{
	struct load_ctx *c = ctx;
	struct hearth_lora *a = (struct hearth_lora *)c; /* must come back NULL on failure */
	const int rc = hearth_lora_load(&a, c->m, c->path, err);
	fault_disarm();
	if (rc)
		return a == NULL ? rc : FAULT_WRONG;
	if (first) {
		memcpy(c->digest, hearth_lora_digest(a), 32);
		c->n_pairs = hearth_lora_n_pairs(a);
	}
	const bool ok = c->n_pairs == hearth_lora_n_pairs(a) && memcmp(c->digest, hearth_lora_digest(a), 32) == 0;
	hearth_lora_free(a);
	return ok ? 0 : FAULT_WRONG;
}

void test_lora_fault(void)
{
	struct hearth_model *m = load(MODEL);
	if (!m)
		return;
	struct load_ctx c = { .m = m, .path = tmp_path("a.gguf") };
	write_adapter(m, c.path, &(struct ad_spec){ .targets = all_targets, .n_targets = N_ALL, .alpha = 4 });
	fault_sweep("load an adapter", path_lora_load, &c);
	T_EQ_I64(c.n_pairs, N_ALL);
	hearth_model_free(m);
	/* with experts' stacks */
	if (!(m = load(QWEN3MOE)))
		return;
	c = (struct load_ctx){ .m = m, .path = tmp_path("a.gguf") };
	write_adapter(m, c.path, &(struct ad_spec){ .targets = exps_targets, .n_targets = N_EXPS, .alpha = 4 });
	fault_sweep("load an adapter on experts' stacks", path_lora_load, &c);
	T_EQ_I64(c.n_pairs, N_EXPS);
	hearth_model_free(m);
}
