/* test-model.c - synthetic models of each architecture, written by hearth's
 * own writer: batching and chunking never change results, F16 and F32 caches
 * agree, threads agree, and broken models fail with clear errors. */
#include <stdlib.h>

#include "../harness.h"
#include "../synth.h"

/* Logits of every position: as one batch of chunks of n_batch, or one token at a time. */
static float *run(struct hearth_model *m, const int32_t *ids, int n, int n_batch, int cache, int threads, bool one_by_one)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int V = hearth_model_n_vocab(m);
	float *out = malloc((size_t)n * (size_t)V * sizeof *out);
	cp.n_ctx = 64;
	cp.n_batch = n_batch;
	cp.cache_type = cache;
	cp.n_threads = threads;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c || !out) {
		free(out);
		return NULL;
	}
	if (one_by_one) {
		for (int i = 0; i < n; i++) {
			T_OK(hearth_decode(c, &ids[i], 1, false, &err), err);
			memcpy(out + (size_t)i * V, hearth_get_logits(c, -1), (size_t)V * sizeof *out);
		}
	} else {
		T_OK(hearth_decode(c, ids, n, true, &err), err);
		for (int i = 0; i < n; i++)
			memcpy(out + (size_t)i * V, hearth_get_logits(c, i), (size_t)V * sizeof *out);
	}
	/* a context that is full refuses more and stays usable */
	int32_t many[64] = { 0 };
	T_EQ_I64(hearth_decode(c, many, 64, false, &err), HEARTH_ECTXFULL);
	T_EQ_I64(hearth_context_n_past(c), n);
	int32_t bad = 100000;
	T_EQ_I64(hearth_decode(c, &bad, 1, false, &err), HEARTH_EINVAL);
	hearth_context_free(c);
	return out;
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - b[i]));
	return m;
}

void test_model_synthetic(void)
{
	static const struct synth_spec specs[] = {
		{ .arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .wtype = HEARTH_TYPE_F32, .rope_freqs = true, .seed = 1 },
		{ .arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 4, .n_ff = 96, .wtype = HEARTH_TYPE_Q8_0, .tied = true, .seed = 2 },
		{ .arch = "qwen2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .wtype = HEARTH_TYPE_F16, .tied = true, .seed = 3 },
		{ .arch = "qwen3", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_F32, .tied = true, .seed = 4 },
		{ .arch = "llama", .n_embd = 256, .n_layer = 1, .n_head = 4, .n_head_kv = 1, .n_ff = 256, .wtype = HEARTH_TYPE_Q4_K, .seed = 5 },
		{ .arch = "qwen3", .n_embd = 256, .n_layer = 1, .n_head = 2, .n_head_kv = 1, .n_ff = 256, .head_dim = 128, .wtype = HEARTH_TYPE_Q6_K, .seed = 6 },
		{ .arch = "llama", .n_embd = 64, .n_layer = 1, .n_head = 4, .n_head_kv = 2, .n_ff = 64, .wtype = HEARTH_TYPE_Q4_0, .seed = 7 },
		/* a window of 4 that chunks of 5 cut anywhere */
		{ .arch = "gemma3", .n_embd = 64, .n_layer = 7, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_F32, .tied = true, .n_swa = 4, .seed = 8 },
		/* soft-capped attention (a cap of 1 that binds) on every other layer's window of 4 */
		{ .arch = "gemma2", .n_embd = 64, .n_layer = 3, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_F32, .tied = true, .n_swa = 4, .seed = 10 },
	};
	const int32_t ids[] = { 1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190 };
	const int n = (int)(sizeof ids / sizeof ids[0]);

	for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		char name[64];
		snprintf(name, sizeof name, "synth-%zu.gguf", s);
		T_OK(synth_model_write(tmp_path(name), &specs[s], &err), err);
		T_OK(hearth_model_load(&m, tmp_path(name), &mp, &err), err);
		if (!m)
			continue;
		T_STR_EQ(hearth_model_arch(m), specs[s].arch);
		const size_t sz = (size_t)n * (size_t)hearth_model_n_vocab(m);
		float *batch = run(m, ids, n, 512, HEARTH_TYPE_F32, 1, false);
		float *single = run(m, ids, n, 512, HEARTH_TYPE_F32, 1, true);
		float *chunked = run(m, ids, n, 5, HEARTH_TYPE_F32, 2, false);
		float *f16 = run(m, ids, n, 512, HEARTH_TYPE_F16, 2, false);
		/* a q8_0 cache needs head widths in 32s */
		const int hd = specs[s].head_dim ? specs[s].head_dim : specs[s].n_embd / specs[s].n_head;
		float *q8 = hd % 32 ? NULL : run(m, ids, n, 5, HEARTH_TYPE_Q8_0, 2, false);
		if (q8) {
			const bool flt = specs[s].wtype == HEARTH_TYPE_F32 || specs[s].wtype == HEARTH_TYPE_F16;
			double dq = max_diff(batch, q8, sz);
			if (dq > (flt ? 0.2 : 0.6))
				T_FAIL("%s %s: q8_0 cache differs by %.3f", specs[s].arch, hearth_type_name(specs[s].wtype), dq);
			free(q8);
		}
		if (batch && single && chunked && f16) {
			double d1 = max_diff(batch, single, sz), d2 = max_diff(batch, chunked, sz), d3 = max_diff(batch, f16, sz);
			/* an f16 cache rounds K and V; quantized types then also round
			 * some activations the other way */
			const double f16_tol = specs[s].wtype == HEARTH_TYPE_F32 || specs[s].wtype == HEARTH_TYPE_F16 ? 0.05 : 0.5;
			if (d1 > 1e-4 || d2 > 1e-4 || d3 > f16_tol)
				T_FAIL("%s %s: batch vs one-by-one %.2e, vs chunked+threads %.2e, f16 cache %.2e",
				       specs[s].arch, hearth_type_name(specs[s].wtype), d1, d2, d3);
			bool finite = true;
			for (size_t i = 0; i < sz; i++)
				finite &= isfinite(batch[i]);
			T_TRUE(finite);
		}
		free(batch);
		free(single);
		free(chunked);
		free(f16);
		hearth_model_free(m);
	}

	/* broken models: each a clear error naming the file and what is wrong */
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct synth_spec bad = specs[0];
	bad.skip_ffn_down = true;
	T_OK(synth_model_write(tmp_path("bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "blk.0.ffn_down.weight") && strstr(err.msg, "bad.gguf"));
	bad = specs[0];
	bad.arch = "qwen2";
	bad.skip_bias = true;
	T_OK(synth_model_write(tmp_path("bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "bias") != NULL);
	bad.arch = "gemma9";
	T_OK(synth_model_write(tmp_path("bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("bad.gguf"), &mp, &err), HEARTH_EUNSUPPORTED);
	T_TRUE(strstr(err.msg, "gemma9") != NULL);
	bad = specs[0];
	bad.n_head_kv = 3; /* 4 heads do not split into 3 groups */
	T_OK(synth_model_write(tmp_path("bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(m == NULL);

	/* a context whose cache cannot fit in this machine: refused up front, by size */
	struct synth_spec wide = { .arch = "llama", .n_embd = 256, .n_layer = 64, .n_head = 4, .n_head_kv = 4, .n_ff = 256,
				   .wtype = HEARTH_TYPE_Q8_0, .seed = 9 };
	T_OK(synth_model_write(tmp_path("wide.gguf"), &wide, &err), err);
	T_OK(hearth_model_load(&m, tmp_path("wide.gguf"), &mp, &err), err);
	if (m) { /* 4M positions x 64 layers x 1 KiB of f16 K and V: 256 GiB */
		struct hearth_context_params cp = hearth_context_default_params();
		struct hearth_context *c = NULL;
		cp.n_ctx = 1 << 22;
		T_EQ_I64(hearth_context_new(&c, m, &cp, &err), HEARTH_ENOMEM);
		T_TRUE(c == NULL && strstr(err.msg, "kv cache") && strstr(err.msg, "GiB"));
		hearth_model_free(m);
	}
}
