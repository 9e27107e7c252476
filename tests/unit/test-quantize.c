/* test-quantize.c - `hearth quantize` against llama-quantize's own files.
 *
 * The fixtures' quantized models were written by llama-quantize from the F32
 * ones (PROVENANCE.md). hearth quantizes the same F32 files and compares tensor
 * for tensor: the 32-block types (q8_0, q4_0, q4_1, q5_0, q5_1) byte for byte;
 * the K-quant recipes by each tensor's type and by its squared error against
 * the F32 source, which must be within 1% of llama-quantize's. The q4_k_m
 * output must load and generate; bad input must fail with a message that
 * names it and leave no output file.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../../src/gguf/gguf.h"
#include "../../src/quant/quant.h"
#include "../../src/tensor/quant-ref.h"

static int quantize(const char *in_rel, const char *out, int ftype, bool pure)
{
	struct hearth_quantize_params p = hearth_quantize_default_params();
	struct hearth_err err = { 0 };
	char in[512];
	snprintf(in, sizeof in, "%s", fixture(in_rel));
	p.ftype = ftype;
	p.pure = pure;
	p.n_threads = 2;
	const int rc = hearth_quantize(in, out, &p, &err);
	T_OK(rc, err);
	return rc;
}

static struct hearth_gguf *open_gguf(const char *path)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_gguf_open(&g, path, &err), err);
	return g;
}

static int64_t n_elems(const struct gguf_tensor *t)
{
	return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Sum of squared differences between a tensor and the f32 source. */
static double sq_error(const struct gguf_tensor *t, const struct gguf_tensor *src)
{
	const int64_t n = n_elems(t);
	float *f = malloc((size_t)n * sizeof *f);
	double e = 0;
	if (!f || dequantize_row_ref(t->type, t->data, f, n)) {
		free(f);
		return NAN;
	}
	const float *x = src->data;
	for (int64_t i = 0; i < n; i++)
		e += ((double)f[i] - x[i]) * ((double)f[i] - x[i]);
	free(f);
	return e;
}

/* Compares ours with llama-quantize's file ref tensor by tensor: types always;
 * bytes when exact, else the error against f32 (within 1%). Returns the
 * number of tensors whose bytes are identical. */
static int compare(const char *ours_path, const char *ref_rel, const char *f32_rel, bool exact)
{
	struct hearth_gguf *a = open_gguf(ours_path), *b = open_gguf(fixture(ref_rel)), *s = open_gguf(fixture(f32_rel));
	int n_same = 0;
	double worst = 0, sum_a = 0, sum_b = 0;
	if (!a || !b || !s)
		goto out;
	T_EQ_I64(a->n_tensors, b->n_tensors);
	for (int64_t i = 0; i < b->n_tensors; i++) {
		const struct gguf_tensor *tb = &b->tensors[i];
		const int64_t ia = gguf_find_tensor(a, tb->name), is = gguf_find_tensor(s, tb->name);
		T_TRUE(ia >= 0 && is >= 0);
		if (ia < 0 || is < 0)
			continue;
		const struct gguf_tensor *ta = &a->tensors[ia];
		if (ta->type != tb->type) {
			T_FAIL("%s: tensor '%s' is %s, llama-quantize wrote %s", ref_rel, tb->name,
			       hearth_type_name(ta->type), hearth_type_name(tb->type));
			continue;
		}
		const bool same = ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, tb->nbytes);
		n_same += same;
		if (exact && !same)
			T_FAIL("%s: tensor '%s' (%s) differs from llama-quantize's bytes", ref_rel, tb->name,
			       hearth_type_name(tb->type));
		if (exact || tb->type == HEARTH_TYPE_F32)
			continue;
		const double ea = sq_error(ta, &s->tensors[is]), eb = sq_error(tb, &s->tensors[is]);
		const double ratio = eb > 0 ? ea / eb : (ea > 0 ? INFINITY : 1);
		sum_a += ea;
		sum_b += eb;
		worst = fabs(ratio - 1) > worst ? fabs(ratio - 1) : worst;
		if (!(ratio <= 1.01))
			T_FAIL("%s: tensor '%s' error %.6e is %.3f%% above llama-quantize's %.6e", ref_rel, tb->name, ea,
			       100 * (ratio - 1), eb);
	}
	printf("     %-28s %d of %" PRId64 " tensors byte-identical to llama-quantize's%s", ref_rel, n_same,
	       b->n_tensors, exact ? "\n" : "");
	if (!exact)
		printf("; squared error vs f32 %.6e, llama-quantize's %.6e, largest per-tensor difference %.3f%%\n",
		       sum_a, sum_b, 100 * worst);
out:
	hearth_gguf_close(a);
	hearth_gguf_close(b);
	hearth_gguf_close(s);
	return n_same;
}

void test_quantize_exact(void)
{
	static const struct { const char *f32, *ref; int ftype; bool pure; } cases[] = {
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q8_0.gguf", HEARTH_FTYPE_Q8_0, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q4_0.gguf", HEARTH_FTYPE_Q4_0, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q4_1.gguf", HEARTH_FTYPE_Q4_1, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q5_0.gguf", HEARTH_FTYPE_Q5_0, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q5_1.gguf", HEARTH_FTYPE_Q5_1, true },
		{ "models/tiny-qwen2.f32.gguf", "models/tiny-qwen2.q8_0.gguf", HEARTH_FTYPE_Q8_0, false },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q2_k.gguf", HEARTH_FTYPE_Q2_K, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q3_k_m.gguf", HEARTH_FTYPE_Q3_K_M, true },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const char *out = tmp_path("quant-exact.gguf");
		if (quantize(cases[c].f32, out, cases[c].ftype, cases[c].pure))
			continue;
		compare(out, cases[c].ref, cases[c].f32, true);
		/* metadata: every key of the input, then the two llama-quantize sets */
		struct hearth_gguf *a = open_gguf(out), *s = open_gguf(fixture(cases[c].f32));
		if (a && s) {
			struct hearth_err err = { 0 };
			int64_t v = -1;
			for (int64_t i = 0; i < s->n_kv; i++)
				if (strcmp(s->kv[i].key, "general.file_type"))
					T_TRUE(gguf_find_key(a, s->kv[i].key) >= 0);
			T_OK(gguf_get_i64(a, "general.file_type", &v, &err), err);
			T_EQ_I64(v, cases[c].ftype);
			T_OK(gguf_get_i64(a, "general.quantization_version", &v, &err), err);
			T_EQ_I64(v, 2);
		}
		hearth_gguf_close(a);
		hearth_gguf_close(s);
		unlink(out);
	}
}

void test_quantize_kquants(void)
{
	static const struct { const char *f32, *ref; int ftype; bool pure; } cases[] = {
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q5_k_m.gguf", HEARTH_FTYPE_Q5_K_M, true },
		{ "models/tiny-llama-spm.f32.gguf", "models/tiny-llama-spm.q6_k.gguf", HEARTH_FTYPE_Q6_K, true },
		{ "models/tiny-qwen2.f32.gguf", "models/tiny-qwen2.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-qwen3.f32.gguf", "models/tiny-qwen3.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-qwen3.f32.gguf", "models/tiny-qwen3.q6_k.gguf", HEARTH_FTYPE_Q6_K, false },
		{ "models/tiny-llama3.f32.gguf", "models/tiny-llama3.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-gemma3.f32.gguf", "models/tiny-gemma3.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-phi3.f32.gguf", "models/tiny-phi3.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-glm4.f32.gguf", "models/tiny-glm4.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-chatglm.f32.gguf", "models/tiny-chatglm.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-qwen3moe.f32.gguf", "models/tiny-qwen3moe.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-mixtral.f32.gguf", "models/tiny-mixtral.q4_k_m.gguf", HEARTH_FTYPE_Q4_K_M, false },
		{ "models/tiny-gpt-oss.f32.gguf", "models/tiny-gpt-oss.mxfp4_moe.gguf", HEARTH_FTYPE_MXFP4_MOE, false },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		if (t_sanitized() && c > 3)
			break; /* the sanitizer run checks the first few */
		const char *out = tmp_path("quant-k.gguf");
		if (quantize(cases[c].f32, out, cases[c].ftype, cases[c].pure))
			continue;
		compare(out, cases[c].ref, cases[c].f32, false);
		unlink(out);
	}
}

/* The greedy continuation of ids on the model at path. */
static void greedy(const char *path, int32_t *ids, int n_prompt, int n_gen)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	if (m)
		T_OK(hearth_context_new(&c, m, &cp, &err), err);
	for (int i = 0; c && i < n_gen; i++) {
		if (hearth_decode(c, i ? ids + n_prompt + i - 1 : ids, i ? 1 : n_prompt, false, &err)) {
			T_FAIL("decode: %s", err.msg);
			break;
		}
		const float *l = hearth_get_logits(c, -1);
		int best = 0;
		for (int32_t v = 1; v < hearth_model_n_vocab(m); v++)
			best = l[v] > l[best] ? v : best;
		T_TRUE(isfinite(l[best]));
		ids[n_prompt + i] = best;
	}
	hearth_context_free(c);
	hearth_model_free(m);
}

void test_quantize_generates(void)
{
	const char *out = tmp_path("quant-gen.gguf");
	if (quantize("models/tiny-qwen2.f32.gguf", out, HEARTH_FTYPE_Q4_K_M, false))
		return;
	int32_t a[12] = { 100, 200, 300, 400 }, b[12] = { 100, 200, 300, 400 };
	greedy(out, a, 4, 8);
	greedy(fixture("models/tiny-qwen2.q4_k_m.gguf"), b, 4, 8);
	int same = 0;
	while (same < 8 && a[4 + same] == b[4 + same])
		same++;
	printf("     tiny-qwen2 q4_k_m: hearth's file and llama-quantize's agree on %d of 8 greedy tokens\n", same);
	T_TRUE(same >= 1);
	unlink(out);
}

void test_quantize_errors(void)
{
	struct hearth_quantize_params p = hearth_quantize_default_params();
	struct hearth_err err = { 0 };
	const char *out = tmp_path("quant-bad.gguf");

	/* not a GGUF */
	T_EQ_I64(hearth_quantize(fixture("PROVENANCE.md"), out, &p, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "PROVENANCE.md") != NULL);
	T_TRUE(access(out, F_OK) != 0);
	/* an unknown file type, and unknown names */
	p.ftype = 99;
	T_EQ_I64(hearth_quantize(fixture("models/tiny-qwen2.f32.gguf"), out, &p, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "99") != NULL);
	T_EQ_I64(hearth_quantize_ftype_parse("q9_z"), -1);
	T_EQ_I64(hearth_quantize_ftype_parse("Q4_K_M"), HEARTH_FTYPE_Q4_K_M);
	T_EQ_I64(hearth_type_parse("q6_k"), HEARTH_TYPE_Q6_K);
	T_EQ_I64(hearth_type_parse("nope"), -1);
	/* a type hearth cannot write */
	p = hearth_quantize_default_params();
	p.output_tensor_type = HEARTH_TYPE_Q8_1;
	T_EQ_I64(hearth_quantize(fixture("models/tiny-qwen2.f32.gguf"), out, &p, &err), HEARTH_EUNSUPPORTED);
	T_TRUE(strstr(err.msg, "q8_1") != NULL);
	T_TRUE(access(out, F_OK) != 0);
	/* missing input */
	p = hearth_quantize_default_params();
	T_TRUE(hearth_quantize("/nonexistent/in.gguf", out, &p, &err) != 0);
	T_TRUE(strstr(err.msg, "/nonexistent/in.gguf") != NULL);
	T_TRUE(access(out, F_OK) != 0);
	/* the recipe's pieces */
	T_EQ_I64(quant_fallback_type(HEARTH_TYPE_Q4_K, 128), HEARTH_TYPE_Q5_0);
	T_EQ_I64(quant_fallback_type(HEARTH_TYPE_Q5_K, 96), HEARTH_TYPE_Q5_1);
	T_EQ_I64(quant_fallback_type(HEARTH_TYPE_Q6_K, 64), HEARTH_TYPE_Q8_0);
	T_EQ_I64(quant_fallback_type(HEARTH_TYPE_Q4_K, 48), HEARTH_TYPE_F16);
	T_EQ_I64(quant_fallback_type(HEARTH_TYPE_Q4_0, 48), -1);
	T_TRUE(!quant_tensor_allowed("blk.0.attn_norm.weight", 2));
	T_TRUE(!quant_tensor_allowed("blk.0.ffn_gate_inp.weight", 2));
	T_TRUE(!quant_tensor_allowed("blk.0.attn_q.bias", 1));
	T_TRUE(quant_tensor_allowed("blk.0.attn_q.weight", 2));
}

/* The mixes' choices on model facts the fixtures do not have (70B GQA,
 * falcon, 8 experts, 32 layers), as llama.cpp's llama_tensor_get_type makes
 * them for the same facts. */
static int pick(struct quant_recipe *r, const char *name, int64_t ne0)
{
	const int64_t ne[4] = { ne0, 256, 1, 1 };
	return quant_tensor_type(r, name, 2, ne, HEARTH_TYPE_F32);
}

static struct quant_recipe recipe(int ftype, int n_layer)
{
	struct quant_recipe r = { .ftype = ftype, .output_type = -1, .embd_type = -1, .n_layer = n_layer,
				  .n_attn_v = n_layer, .n_gqa = 1 };
	return r;
}

void test_quantize_recipes(void)
{
	char name[64];
	struct quant_recipe r = recipe(HEARTH_FTYPE_Q2_K, 32);
	/* q2_K: attn_v q3_K (q4_K with GQA >= 4), ffn_down and attn_output q3_K, output q6_K */
	T_EQ_I64(pick(&r, "blk.0.attn_v.weight", 4096), HEARTH_TYPE_Q3_K);
	r.n_gqa = 4;
	T_EQ_I64(pick(&r, "blk.1.attn_v.weight", 4096), HEARTH_TYPE_Q4_K);
	T_EQ_I64(pick(&r, "blk.0.ffn_down.weight", 4096), HEARTH_TYPE_Q3_K);
	T_EQ_I64(pick(&r, "blk.0.attn_output.weight", 4096), HEARTH_TYPE_Q3_K);
	T_EQ_I64(pick(&r, "blk.0.attn_q.weight", 4096), HEARTH_TYPE_Q2_K);
	T_EQ_I64(pick(&r, "output.weight", 4096), HEARTH_TYPE_Q6_K);
	T_EQ_I64(pick(&r, "blk.0.attn_q.weight", 4000), HEARTH_TYPE_Q4_0); /* rows not of 256: fallback */
	/* q3_K_M on 32 layers: attn_v q5_K twice then q4_K; ffn_down q5_K below n/16, then q4_K */
	r = recipe(HEARTH_FTYPE_Q3_K_M, 32);
	for (int il = 0; il < 32; il++) {
		snprintf(name, sizeof name, "blk.%d.attn_v.weight", il);
		T_EQ_I64(pick(&r, name, 4096), il < 2 ? HEARTH_TYPE_Q5_K : HEARTH_TYPE_Q4_K);
		snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
		T_EQ_I64(pick(&r, name, 4096), il < 2 ? HEARTH_TYPE_Q5_K : HEARTH_TYPE_Q4_K);
	}
	T_EQ_I64(pick(&r, "blk.3.attn_output.weight", 4096), HEARTH_TYPE_Q4_K);
	/* falcon under q3_K_M: ffn_down q3_K except where use_more_bits */
	r = recipe(HEARTH_FTYPE_Q3_K_M, 32);
	r.falcon = true;
	for (int il = 0; il < 32; il++) {
		snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
		const int want = il < 2 ? HEARTH_TYPE_Q5_K : quant_use_more_bits(il, 32) ? HEARTH_TYPE_Q4_K : HEARTH_TYPE_Q3_K;
		T_EQ_I64(pick(&r, name, 4096), want);
	}
	T_EQ_I64(pick(&r, "output.weight", 4096), HEARTH_TYPE_Q8_0);
	/* q3_K_L: attn_v, ffn_down, attn_output q5_K (falcon: ffn_down and attn_output q4_K) */
	r = recipe(HEARTH_FTYPE_Q3_K_L, 32);
	T_EQ_I64(pick(&r, "blk.7.attn_v.weight", 4096), HEARTH_TYPE_Q5_K);
	T_EQ_I64(pick(&r, "blk.7.ffn_down.weight", 4096), HEARTH_TYPE_Q5_K);
	T_EQ_I64(pick(&r, "blk.7.attn_output.weight", 4096), HEARTH_TYPE_Q5_K);
	r.falcon = true;
	T_EQ_I64(pick(&r, "blk.8.ffn_down.weight", 4096), HEARTH_TYPE_Q4_K);
	T_EQ_I64(pick(&r, "blk.8.attn_output.weight", 4096), HEARTH_TYPE_Q4_K);
	/* q3_K_S: the base type, except the 70B attn_v rule and the 8-expert rules */
	r = recipe(HEARTH_FTYPE_Q3_K_S, 80);
	T_EQ_I64(pick(&r, "blk.0.attn_v.weight", 8192), HEARTH_TYPE_Q3_K);
	T_EQ_I64(pick(&r, "blk.0.ffn_down.weight", 8192), HEARTH_TYPE_Q3_K);
	r.is_70b = true;
	T_EQ_I64(pick(&r, "blk.1.attn_v.weight", 8192), HEARTH_TYPE_Q5_K);
	r = recipe(HEARTH_FTYPE_Q3_K_S, 32);
	r.n_expert = 8;
	T_EQ_I64(pick(&r, "blk.0.attn_v.weight", 4096), HEARTH_TYPE_Q8_0);
	T_EQ_I64(pick(&r, "blk.0.attn_k.weight", 4096), HEARTH_TYPE_Q8_0);
	T_EQ_I64(pick(&r, "blk.0.attn_output.weight", 4096), HEARTH_TYPE_Q5_K);
	r.ftype = HEARTH_FTYPE_Q3_K_L; /* not among the 8-expert attn_output types */
	T_EQ_I64(pick(&r, "blk.1.attn_output.weight", 4096), HEARTH_TYPE_Q3_K);
	/* with an importance matrix, q4_0 / q5_0 give the first eighth's ffn_down q4_1 / q5_1 */
	r = recipe(HEARTH_FTYPE_Q4_0, 16);
	r.has_imatrix = true;
	T_EQ_I64(pick(&r, "blk.0.ffn_down.weight", 4096), HEARTH_TYPE_Q4_1);
	T_EQ_I64(pick(&r, "blk.1.ffn_down.weight", 4096), HEARTH_TYPE_Q4_1);
	T_EQ_I64(pick(&r, "blk.2.ffn_down.weight", 4096), HEARTH_TYPE_Q4_0);
	r = recipe(HEARTH_FTYPE_Q5_0, 16);
	T_EQ_I64(pick(&r, "blk.0.ffn_down.weight", 4096), HEARTH_TYPE_Q5_0); /* no imatrix: no change */
	r = recipe(HEARTH_FTYPE_Q5_0, 16);
	r.has_imatrix = true;
	T_EQ_I64(pick(&r, "blk.0.ffn_down.weight", 4096), HEARTH_TYPE_Q5_1);
}

/* Rows are split over the threads; every thread count writes the same bytes. */
void test_quantize_threads(void)
{
	static const int n_threads[] = { 1, 3, 4 };
	struct hearth_err err = { 0 };
	void *first = NULL;
	size_t first_n = 0;
	for (size_t k = 0; k < sizeof n_threads / sizeof n_threads[0]; k++) {
		struct hearth_quantize_params p = hearth_quantize_default_params();
		const char *out = tmp_path("quant-threads.gguf");
		p.ftype = HEARTH_FTYPE_Q3_K_M;
		p.n_threads = n_threads[k];
		const int rc = hearth_quantize(fixture("models/tiny-qwen2.f32.gguf"), out, &p, &err);
		T_OK(rc, err);
		if (rc)
			break;
		FILE *f = fopen(out, "rb");
		T_TRUE(f != NULL);
		if (!f)
			break;
		fseek(f, 0, SEEK_END);
		const size_t n = (size_t)ftell(f);
		rewind(f);
		void *buf = malloc(n);
		T_TRUE(buf && fread(buf, 1, n, f) == n);
		fclose(f);
		unlink(out);
		if (!first) {
			first = buf;
			first_n = n;
			continue;
		}
		T_EQ_I64((int64_t)n, (int64_t)first_n);
		if (n == first_n && memcmp(buf, first, n))
			T_FAIL("%d threads wrote other bytes than 1 thread", n_threads[k]);
		free(buf);
	}
	free(first);
}
