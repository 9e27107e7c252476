/*
 * test-models.c - the fixture models against llama.cpp's reference outputs
 * (refs/<model>.jsonl, see ../shared/fixtures/PROVENANCE.md) and against
 * llama2.c's own float32 run of the TinyStories checkpoint.
 *
 * Per prompt: the prompt ids must match exactly; the top-8 logits at every
 * position and all logits at the last position must match within the type's
 * tolerance; the greedy continuation must match, except that on quantized
 * types a divergence is accepted at a step where our own top-2 logit gap is
 * below the tolerance (there the two engines' rounding legitimately decides).
 *
 * Tolerances, from measurement (max / mean absolute logit error over all
 * prompts, top-8 logits at every position and all logits at the last):
 *  - f32: hearth matches llama2.c's own float32 run of the same checkpoint to
 *    1.7e-5 (test_model_llama2c), while llama.cpp differs from that float32
 *    run by up to 7.6e-3 on one prompt; against llama.cpp we measure at most
 *    2.0e-2 (mean 2e-3) and allow 3e-2. Greedy steps whose top-2 gap is below
 *    1e-2 (llama.cpp's own float error) may go either way.
 *  - f16 7.9e-3 -> 2e-2 (same near-tie rule); bf16 3.7e-2 -> 6e-2, and with
 *    bf16's 8-bit mantissa a greedy step within that error (4e-2) may go either way.
 *  - quantized: both engines quantize activations to 8 bits (q8_0/q8_1/q8_K)
 *    inside the dot products, so the float differences above move some
 *    activations across a rounding boundary, and these random-weight models
 *    amplify that: measured max 0.12-0.24 (mean 0.026-0.042), where the
 *    quantization itself moves logits by 0.14-2.1 from the f32 model (the
 *    engines agree to about 6% of the quantization error). Allowed: about 1.5x
 *    the measured max, and a mean bound that catches systematic errors.
 *    Greedy may diverge at a step whose top-2 gap is below the max tolerance.
 *  - gemma3, phi3, glm4, chatglm (their features: GeGLU, post norms, sliding
 *    windows, LongRoPE, partial rotary, fused tensors) fall in the same
 *    classes: f32 max 6.1e-3 .. 1.0e-2 (mean 1.0e-3 .. 1.7e-3), q4_k_m max
 *    0.16 .. 0.22 (mean 0.034 .. 0.045), so the same tolerances hold. Greedy
 *    continuations in f32 match llama.cpp's in full but at two near ties
 *    (gemma3 step 26, top-2 gap 0.0017; phi3 step 0, gap 0.0005), each
 *    printed where it happens. (llama.cpp computes
 *    GELU through an f16 table; hearth computes it in float, well inside f32's
 *    tolerance.) With gemma3's sliding window ignored, f32 errors reach 6.5.
 *  - mixtures of experts (qwen3moe, mixtral, gpt-oss): the same classes
 *    (f32 max 7.0e-3 .. 1.5e-2, mean 7.6e-4 .. 2.3e-3; q4_k_m / mxfp4_moe max
 *    0.13 .. 0.26, mean 0.025 .. 0.043) except where a router is nearly tied:
 *    the rounding differences above then pick another expert in one engine,
 *    and that position's logits move by up to 1.5 (qwen3moe q4_k_m, a margin
 *    of 0.0038 between the last chosen and first left-out router logit;
 *    mixtral q4_k_m 0.62 at 0.024; a greedy step of gpt-oss f32 at 0.0005).
 *    The test recomputes every router's margins through the context's tap
 *    (router_tap) and exempts such positions from the max tolerance (not from
 *    the mean): margins under 0.03 on the quantized files (the largest flip
 *    seen, 0.024, and some room: 10, 24 and 34 positions of qwen3moe,
 *    mixtral and gpt-oss), under 1e-3 on gpt-oss f32 (9 positions). gpt-oss
 *    with its sliding window ignored errs by 4-7 past position 16.
 */
#include <jansson.h>
#include <stdlib.h>

#include "../../src/gguf/gguf.h"
#include "../harness.h"

struct ref_case {
	const char *file; /* under models/ and refs/ */
	double tol;       /* max |logit error| */
	double mean_tol;  /* mean |logit error| */
	double tie;       /* greedy may diverge where the top-2 gap is below this */
	double route_tie; /* mixtures of experts: a position where some layer's router
			   * ranks its last chosen expert within this (in router logit)
			   * of the first left out may pick the other expert, and is
			   * then exempt from tol (and greedy may diverge there) */
};

#define F32 3e-2, 5e-3, 1e-2, 0
#define ROUTE_TIE 3e-2
static const struct ref_case cases[] = {
	{ "stories260K.f32", F32 },
	{ "tiny-llama-spm.f32", F32 },
	{ "tiny-llama-spm.f16", 2e-2, 5e-3, 1e-2, 0 },
	{ "tiny-llama-spm.bf16", 6e-2, 1.5e-2, 4e-2, 0 },
	{ "tiny-llama-spm.q8_0", 0.25, 0.06, 0.25, 0 },
	{ "tiny-llama-spm.q4_0", 0.25, 0.06, 0.25, 0 },
	{ "tiny-llama-spm.q4_1", 0.25, 0.06, 0.25, 0 },
	{ "tiny-llama-spm.q5_0", 0.25, 0.06, 0.25, 0 },
	{ "tiny-llama-spm.q5_1", 0.25, 0.06, 0.25, 0 },
	{ "tiny-llama-spm.q2_k", 0.3, 0.07, 0.3, 0 },
	{ "tiny-llama-spm.q3_k_m", 0.3, 0.07, 0.3, 0 },
	{ "tiny-llama-spm.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-llama-spm.q5_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-llama-spm.q6_k", 0.35, 0.07, 0.35, 0 },
	{ "tiny-llama3.f32", F32 },
	{ "tiny-llama3.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-qwen2.f32", F32 },
	{ "tiny-qwen2.q8_0", 0.25, 0.06, 0.25, 0 },
	{ "tiny-qwen2.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-qwen3.f32", F32 },
	{ "tiny-qwen3.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-qwen3.q6_k", 0.35, 0.07, 0.35, 0 },
	{ "tiny-qwen3moe.f32", F32 },
	{ "tiny-qwen3moe.q4_k_m", 0.35, 0.07, 0.35, ROUTE_TIE },
	{ "tiny-mixtral.f32", F32 },
	{ "tiny-mixtral.q4_k_m", 0.35, 0.07, 0.35, ROUTE_TIE },
	{ "tiny-gpt-oss.f32", 3e-2, 5e-3, 1e-2, 1e-3 },
	{ "tiny-gpt-oss.mxfp4_moe", 0.35, 0.07, 0.35, ROUTE_TIE },
	{ "tiny-gemma3.f32", F32 },
	{ "tiny-gemma3.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-phi3.f32", F32 },
	{ "tiny-phi3.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-glm4.f32", F32 },
	{ "tiny-glm4.q4_k_m", 0.35, 0.07, 0.35, 0 },
	{ "tiny-chatglm.f32", F32 },
	{ "tiny-chatglm.q4_k_m", 0.35, 0.07, 0.35, 0 },
};
#undef F32
#undef ROUTE_TIE

static int argmax2(const float *l, int n, float *gap)
{
	int a = 0, b = -1;
	for (int i = 1; i < n; i++) {
		if (l[i] > l[a]) {
			b = a;
			a = i;
		} else if (b < 0 || l[i] > l[b]) {
			b = i;
		}
	}
	*gap = b >= 0 ? l[a] - l[b] : INFINITY;
	return a;
}

/* ---- router margins, seen through the context's tap ----------------------------
 *
 * For a mixture of experts the test recomputes each layer's router logits
 * from the router's input (the tap) and the router weights in the file, and
 * keeps per position the smallest margin between the last chosen and the
 * first left-out expert over the layers. */
struct router_probe {
	struct hearth_gguf *g;
	int n_layer, n_expert, n_used;
	int32_t pos0;    /* position of the decode's first row */
	int32_t cap;
	double *margin;  /* [cap] smallest margin per position */
};

static void router_tap(const char *weight, const float *x, int64_t n_in, int32_t n_tok, void *ud)
{
	struct router_probe *p = ud;
	int il;
	char bias[96];
	if (sscanf(weight, "blk.%d.ffn_gate_inp.weight", &il) != 1)
		return;
	const int64_t wi = gguf_find_tensor(p->g, weight);
	if (wi < 0 || p->g->tensors[wi].type != HEARTH_TYPE_F32 || p->g->tensors[wi].ne[0] != n_in)
		return; /* (the fixtures' routers are f32) */
	const struct gguf_tensor *w = &p->g->tensors[wi];
	snprintf(bias, sizeof bias, "blk.%d.ffn_gate_inp.bias", il);
	const int64_t bi = gguf_find_tensor(p->g, bias);
	const float *b = bi >= 0 ? p->g->tensors[bi].data : NULL;
	for (int32_t t = 0; t < n_tok && p->pos0 + t < p->cap; t++) {
		double s[512];
		for (int e = 0; e < p->n_expert; e++) {
			const float *row = (const float *)w->data + (size_t)e * (size_t)n_in;
			double v = b ? b[e] : 0;
			for (int64_t j = 0; j < n_in; j++)
				v += (double)row[j] * x[(size_t)t * (size_t)n_in + (size_t)j];
			s[e] = v;
		}
		for (int i = 1; i < p->n_expert; i++) /* descending */
			for (int k = i; k > 0 && s[k - 1] < s[k]; k--) {
				const double tmp = s[k];
				s[k] = s[k - 1];
				s[k - 1] = tmp;
			}
		const double margin = s[p->n_used - 1] - s[p->n_used];
		double *m = &p->margin[p->pos0 + t];
		*m = margin < *m ? margin : *m;
	}
}

/* A probe for m's file when it has experts, else NULL. */
static struct router_probe *probe_new(const char *path, int32_t cap)
{
	struct hearth_err err = { 0 };
	struct router_probe *p = calloc(1, sizeof *p);
	struct gguf_str arch;
	char key[96];
	int64_t v;
	if (!p || hearth_gguf_open(&p->g, path, &err) || gguf_get_str(p->g, "general.architecture", &arch, &err))
		goto none;
	snprintf(key, sizeof key, "%.*s.expert_count", (int)arch.n, arch.p);
	if (gguf_get_i64(p->g, key, &v, &err) || v < 2 || v > 512)
		goto none;
	p->n_expert = (int)v;
	snprintf(key, sizeof key, "%.*s.expert_used_count", (int)arch.n, arch.p);
	if (gguf_get_i64(p->g, key, &v, &err) || v < 1 || v >= p->n_expert)
		goto none;
	p->n_used = (int)v;
	p->cap = cap;
	if (!(p->margin = malloc((size_t)cap * sizeof *p->margin)))
		goto none;
	for (int32_t i = 0; i < cap; i++)
		p->margin[i] = INFINITY;
	return p;
none:
	if (p)
		hearth_gguf_close(p->g);
	free(p);
	return NULL;
}

static void probe_free(struct router_probe *p)
{
	if (!p)
		return;
	hearth_gguf_close(p->g);
	free(p->margin);
	free(p);
}

/* Is position pos's routing a near tie for rc? */
static bool route_tie(const struct router_probe *p, const struct ref_case *rc, int32_t pos)
{
	return p && pos >= 0 && pos < p->cap && p->margin[pos] < rc->route_tie;
}

struct err_stats {
	double max, sum;
	long n;
	long n_tie_pos; /* positions exempt for a router near tie */
	int n_ties; /* greedy continuations that diverged at a near tie */
};

static void check_prompt(struct hearth_model *m, const struct ref_case *rc, json_t *ref, struct err_stats *stats,
			 struct router_probe *probe)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *ctx = NULL;
	const char *prompt = json_string_value(json_object_get(ref, "prompt"));
	json_t *pids = json_object_get(ref, "prompt_ids"), *top = json_object_get(ref, "top_logits");
	json_t *last = json_object_get(ref, "last_logits"), *greedy = json_object_get(ref, "greedy_ids");
	int32_t *ids = NULL, n = 0;
	const int V = hearth_model_n_vocab(m);

	if (!prompt || !json_is_array(pids) || !json_is_array(top) || !json_is_array(last) || !json_is_array(greedy)) {
		T_FAIL("%s: malformed reference line", rc->file);
		return;
	}
	T_OK(hearth_tokenize(m, prompt, strlen(prompt), true, true, &ids, &n, &err), err);
	T_EQ_I64(n, json_array_size(pids));
	for (int i = 0; i < n && i < (int)json_array_size(pids); i++)
		if (ids[i] != json_integer_value(json_array_get(pids, (size_t)i))) {
			T_FAIL("%s: prompt id %d is %d, llama.cpp has %d (prompt '%s')", rc->file, i, ids[i],
			       (int)json_integer_value(json_array_get(pids, (size_t)i)), prompt);
			break;
		}
	/* run on llama.cpp's ids, so that logits are compared even if tokenization differs */
	n = (int32_t)json_array_size(pids);
	int32_t *rids = malloc((size_t)(n + 64) * sizeof *rids);
	for (int i = 0; i < n; i++)
		rids[i] = (int32_t)json_integer_value(json_array_get(pids, (size_t)i));
	cp.n_ctx = n + 64;
	cp.cache_type = HEARTH_TYPE_F32;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&ctx, m, &cp, &err), err);
	if (!ctx)
		goto out;
	if (probe) {
		for (int32_t i = 0; i < probe->cap; i++)
			probe->margin[i] = INFINITY;
		probe->pos0 = 0;
		hearth_context_set_tap(ctx, router_tap, probe);
	}
	T_OK(hearth_decode(ctx, rids, n, true, &err), err);
	double worst = 0;
	int worst_pos = -1, worst_id = -1;
	for (int i = 0; i < n; i++) {
		const float *l = hearth_get_logits(ctx, i);
		json_t *row = json_array_get(top, (size_t)i);
		const bool tie = route_tie(probe, rc, i);
		for (size_t k = 0; l && k < json_array_size(row); k++) {
			json_t *pair = json_array_get(row, k);
			int id = (int)json_integer_value(json_array_get(pair, 0));
			double e = fabs(l[id] - json_number_value(json_array_get(pair, 1)));
			stats->sum += e;
			stats->n++;
			if (e > worst && !tie) {
				worst = e;
				worst_pos = i;
				worst_id = id;
			}
			stats->n_tie_pos += tie && k == 0;
		}
	}
	const float *l = hearth_get_logits(ctx, -1);
	T_EQ_I64(json_array_size(last), V);
	for (int i = 0; l && i < V && i < (int)json_array_size(last); i++) {
		double e = fabs(l[i] - json_number_value(json_array_get(last, (size_t)i)));
		stats->sum += e;
		stats->n++;
		if (e > worst && !route_tie(probe, rc, n - 1)) {
			worst = e;
			worst_pos = n - 1;
			worst_id = i;
		}
	}
	stats->max = worst > stats->max ? worst : stats->max;
	if (worst > rc->tol)
		T_FAIL("%s: position %d token %d: logit error %.5f over the tolerance %g (router margin %.4f) ('%s')", rc->file,
		       worst_pos, worst_id, worst, rc->tol, probe ? probe->margin[worst_pos] : INFINITY, prompt);
	for (size_t g = 0; g < json_array_size(greedy); g++) {
		float gap;
		int want = (int)json_integer_value(json_array_get(greedy, g));
		int got = argmax2(hearth_get_logits(ctx, -1), V, &gap);
		if (got != want) {
			if (gap < rc->tie || route_tie(probe, rc, n - 1 + (int32_t)g)) {
				stats->n_ties++;
				printf("     %s: greedy step %zu: %d, llama.cpp %d at a top-2 gap of %.4f (router margin %.4f): a near "
				       "tie\n", rc->file, g, got, want, gap, probe ? probe->margin[n - 1 + (int32_t)g] : INFINITY);
				break; /* a near tie: the engines' rounding decides */
			}
			T_FAIL("%s: greedy step %zu gives %d, llama.cpp %d (top-2 gap %.4f, router margin %.4f) for '%s'", rc->file,
			       g, got, want, gap, probe ? probe->margin[n - 1 + (int32_t)g] : INFINITY, prompt);
			break;
		}
		if (hearth_token_is_eog(m, got))
			break;
		if (probe)
			probe->pos0 = n + (int32_t)g;
		T_OK(hearth_decode(ctx, &got, 1, false, &err), err);
	}
out:
	hearth_context_free(ctx);
	free(rids);
	free(ids);
}

void test_model_refs(void)
{
	const char *only = getenv("HEARTH_REFS_ONLY"); /* a substring of the cases to run */
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		if (only && !strstr(cases[c].file, only))
			continue;
		char path[256], rpath[256];
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		snprintf(path, sizeof path, "%s", fixture("models/"));
		snprintf(path + strlen(path), sizeof path - strlen(path), "%s.gguf", cases[c].file);
		snprintf(rpath, sizeof rpath, "%s", fixture("refs/"));
		snprintf(rpath + strlen(rpath), sizeof rpath - strlen(rpath), "%s.jsonl", cases[c].file);
		T_OK(hearth_model_load(&m, path, &mp, &err), err);
		FILE *f = fopen(rpath, "r");
		T_TRUE(f != NULL);
		if (!m || !f) {
			if (f)
				fclose(f);
			hearth_model_free(m);
			continue;
		}
		char *line = NULL;
		size_t cap = 0;
		struct err_stats st = { 0 };
		struct router_probe *probe = cases[c].route_tie > 0 ? probe_new(path, 4096) : NULL;
		int n_prompts = 0;
		while (getline(&line, &cap, f) > 0) {
			json_error_t je;
			json_t *ref = json_loads(line, 0, &je);
			T_TRUE(ref != NULL);
			if (ref)
				check_prompt(m, &cases[c], ref, &st, probe);
			json_decref(ref);
			n_prompts++;
			if (t_sanitized() && n_prompts >= 1)
				break; /* the sanitizer run checks one prompt per model */
		}
		double mean = st.n ? st.sum / (double)st.n : 0.0;
		printf("     %-24s %d prompts, |logit error| max %.2e mean %.2e (tolerances %g, %g)%s", cases[c].file,
		       n_prompts, st.max, mean, cases[c].tol, cases[c].mean_tol, st.n_ties ? ", near-tie divergences above" : "");
		if (probe)
			printf(", %ld positions with a router near tie", st.n_tie_pos);
		printf("\n");
		if (cases[c].route_tie > 0)
			T_TRUE(probe != NULL);
		probe_free(probe);
		if (mean > cases[c].mean_tol)
			T_FAIL("%s: mean logit error %.4f over %g", cases[c].file, mean, cases[c].mean_tol);
		free(line);
		fclose(f);
		hearth_model_free(m);
	}
}

/* llama2.c's float32 run of the original checkpoint: greedy ids and logits. */
void test_model_llama2c(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *ctx = NULL;
	json_error_t je;
	json_t *g = json_load_file(fixture("llama2c/stories260K.golden.json"), 0, &je);
	FILE *f = fopen(fixture("llama2c/stories260K.logits-64x512.f32"), "rb");
	float *want = malloc(64 * 512 * sizeof *want);

	T_TRUE(g && f && want);
	if (!g || !f || !want)
		goto out;
	T_EQ_I64(fread(want, sizeof *want, 64 * 512, f), 64 * 512);
	T_OK(hearth_model_load(&m, fixture("models/stories260K.f32.gguf"), &mp, &err), err);
	cp.n_ctx = 256;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_context_new(&ctx, m, &cp, &err), err);
	if (!ctx)
		goto out;
	/* the golden file lists the token sequence llama2.c ran (prompt + generated) */
	json_t *toks = json_object_get(g, "sequence_ids");
	T_TRUE(json_is_array(toks));
	if (!json_is_array(toks))
		goto out;
	size_t n = json_array_size(toks) < 64 ? json_array_size(toks) : 64;
	double max_err = 0;
	for (size_t i = 0; i < n; i++) {
		int32_t id = (int32_t)json_integer_value(json_array_get(toks, i));
		T_OK(hearth_decode(ctx, &id, 1, false, &err), err);
		const float *l = hearth_get_logits(ctx, -1);
		for (int k = 0; l && k < 512; k++) {
			double e = fabs(l[k] - want[i * 512 + (size_t)k]);
			max_err = e > max_err ? e : max_err;
		}
	}
	printf("     llama2.c logits: %zu positions, max |error| %.2e\n", n, max_err);
	T_TRUE(max_err < 2e-3);
out:
	if (f)
		fclose(f);
	free(want);
	json_decref(g);
	hearth_context_free(ctx);
	hearth_model_free(m);
}
