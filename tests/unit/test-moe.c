/* test-moe.c - mixtures of experts: the router's arithmetic against values
 * worked by hand, and the fixture MoE models giving the same bits whether a
 * prompt runs as one batch, in chunks on two threads, or a token at a time. */
#include <stdlib.h>

#include "../../src/model/moe.h"
#include "../harness.h"
#include "../synth.h"

void test_moe_route(void)
{
	struct hparams h = { .n_expert = 4, .n_expert_used = 2, .moe_gating = MOE_GATING_SOFTMAX, .moe_norm_w = true,
			     .moe_w_scale = 1.0f };
	const float logits[4] = { 0.5f, 2.0f, -1.0f, 1.0f };
	float scratch[4], w[2];
	int32_t ids[2];

	/* softmax, top 2 (experts 1 and 3), renormalized: e^2 / (e^2 + e^1) */
	moe_route(&h, logits, scratch, ids, w);
	T_EQ_I64(ids[0], 1);
	T_EQ_I64(ids[1], 3);
	T_TRUE(fabs(w[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6 && fabs(w[0] + w[1] - 1.0) < 1e-6);
	/* without renormalization: the softmax over all four */
	h.moe_norm_w = false;
	moe_route(&h, logits, scratch, ids, w);
	const double z = exp(0.5) + exp(2.0) + exp(-1.0) + exp(1.0);
	T_TRUE(fabs(w[0] - exp(2.0) / z) < 1e-6 && fabs(w[1] - exp(1.0) / z) < 1e-6);
	/* gpt-oss: a softmax over the chosen logits only, then a scale */
	h.moe_gating = MOE_GATING_SOFTMAX_CHOSEN;
	h.moe_w_scale = 2.0f;
	moe_route(&h, logits, scratch, ids, w);
	T_TRUE(fabs(w[0] - 2.0 / (1.0 + exp(-1.0))) < 1e-6 && fabs(w[0] + w[1] - 2.0) < 1e-6);
	/* sigmoid scores; equal scores go to the lower index */
	const float even[4] = { 0.25f, 1.0f, 1.0f, 1.0f };
	h.moe_gating = MOE_GATING_SIGMOID;
	h.moe_w_scale = 1.0f;
	moe_route(&h, even, scratch, ids, w);
	T_EQ_I64(ids[0], 1);
	T_EQ_I64(ids[1], 2);
	T_TRUE(fabs(w[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6);
	/* a NaN logit is never preferred */
	const float nan_first[4] = { NAN, 0.0f, 1.0f, -1.0f };
	h.moe_gating = MOE_GATING_SOFTMAX_CHOSEN;
	moe_route(&h, nan_first, scratch, ids, w);
	T_EQ_I64(ids[0], 2);
	T_EQ_I64(ids[1], 1);
}

void test_moe_act(void)
{
	float g[4] = { 1.0f, 10.0f, -3.0f, 0.0f };
	const float u[4] = { 0.5f, 9.0f, -8.0f, 2.0f };
	moe_act_rows(MOE_ACT_SWIGLU_OAI, g, u, 4);
	/* g = min(gate, 7), u = clamp(up, -7, 7): g sigmoid(1.702 g) (u + 1) */
	T_TRUE(fabs(g[0] - 1.0 / (1.0 + exp(-1.702)) * 1.5) < 1e-6);
	T_TRUE(fabs(g[1] - 7.0 / (1.0 + exp(-1.702 * 7)) * 8.0) < 1e-5);
	T_TRUE(fabs(g[2] - -3.0 / (1.0 + exp(1.702 * 3)) * -6.0) < 1e-6);
	T_TRUE(g[3] == 0.0f);
}

/* Logits of every position of ids: one batch, chunks of 3 on two threads, or one by one. */
static float *run(struct hearth_model *m, const int32_t *ids, int n, int n_batch, int threads, bool one_by_one)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int V = hearth_model_n_vocab(m);
	float *out = malloc((size_t)n * (size_t)V * sizeof *out);
	cp.n_ctx = 64;
	cp.n_batch = n_batch;
	cp.n_threads = threads;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c || !out) {
		free(out);
		hearth_context_free(c);
		return NULL;
	}
	for (int i = 0; i < n; i += one_by_one ? 1 : n) {
		T_OK(hearth_decode(c, &ids[i], one_by_one ? 1 : n, !one_by_one, &err), err);
		for (int k = 0; k < (one_by_one ? 1 : n); k++)
			memcpy(out + (size_t)(i + k) * V, hearth_get_logits(c, one_by_one ? -1 : k), (size_t)V * sizeof *out);
	}
	hearth_context_free(c);
	return out;
}

void test_moe_batch_bits(void)
{
	static const char *const models[] = { "models/tiny-qwen3moe.f32.gguf", "models/tiny-qwen3moe.q4_k_m.gguf",
					      "models/tiny-mixtral.f32.gguf", "models/tiny-mixtral.q4_k_m.gguf" };
	const int32_t ids[] = { 1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 220 };
	const int n = (int)(sizeof ids / sizeof ids[0]);
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		T_OK(hearth_model_load(&m, fixture(models[i]), &mp, &err), err);
		if (!m)
			continue;
		const size_t sz = (size_t)n * (size_t)hearth_model_n_vocab(m) * sizeof(float);
		float *batch = run(m, ids, n, 512, 1, false), *chunked = run(m, ids, n, 3, 2, false);
		float *single = run(m, ids, n, 512, 2, true);
		T_TRUE(batch && chunked && single);
		if (batch && chunked && single && (memcmp(batch, chunked, sz) || memcmp(batch, single, sz)))
			T_FAIL("%s: the logits differ between one batch, chunks on two threads and one token at a time",
			       models[i]);
		free(batch);
		free(chunked);
		free(single);
		hearth_model_free(m);
	}
}

/* A synthetic qwen3moe (8 experts, 2 used): runs with the same bits batched
 * and alone; broken files are clear errors naming what is wrong. */
void test_moe_synthetic(void)
{
	const struct synth_spec spec = { .arch = "qwen3moe", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
					 .n_ff = 32, .head_dim = 32, .wtype = HEARTH_TYPE_Q8_0, .n_expert = 8,
					 .n_expert_used = 2, .seed = 21 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	const int32_t ids[] = { 1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130 };
	const int n = (int)(sizeof ids / sizeof ids[0]);

	T_OK(synth_model_write(tmp_path("moe.gguf"), &spec, &err), err);
	T_OK(hearth_model_load(&m, tmp_path("moe.gguf"), &mp, &err), err);
	if (m) {
		const size_t sz = (size_t)n * (size_t)hearth_model_n_vocab(m) * sizeof(float);
		float *batch = run(m, ids, n, 512, 2, false), *single = run(m, ids, n, 512, 1, true);
		T_TRUE(batch && single && memcmp(batch, single, sz) == 0);
		free(batch);
		free(single);
		hearth_model_free(m);
		m = NULL;
	}
	/* more experts used than there are */
	struct synth_spec bad = spec;
	bad.n_expert_used = 9;
	T_OK(synth_model_write(tmp_path("moe-bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("moe-bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "9 used") != NULL && strstr(err.msg, "moe-bad.gguf") != NULL);
	/* a missing expert stack is named */
	bad = spec;
	bad.skip_ffn_down = true;
	T_OK(synth_model_write(tmp_path("moe-bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("moe-bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "blk.0.ffn_down_exps.weight") != NULL);
	/* shared experts are refused by name */
	bad = spec;
	bad.n_expert_shared = 1;
	T_OK(synth_model_write(tmp_path("moe-bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("moe-bad.gguf"), &mp, &err), HEARTH_EUNSUPPORTED);
	T_TRUE(strstr(err.msg, "qwen3moe.expert_shared_count") != NULL);
	/* qwen3moe without experts */
	bad = spec;
	bad.n_expert = bad.n_expert_used = 0;
	T_OK(synth_model_write(tmp_path("moe-bad.gguf"), &bad, &err), err);
	T_EQ_I64(hearth_model_load(&m, tmp_path("moe-bad.gguf"), &mp, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "expert_count") != NULL);
	T_TRUE(m == NULL);
}
