/* test-model-norepack.c - a model loaded with no_repack (the weights as the
 * file stores them, no copies for the decoding kernels) decodes what the
 * repacked one decodes, and trains with the same bits. */
#include <math.h>
#include <stdlib.h>

#include "../harness.h"

/* The logits of 5 tokens (the last row) into out[n_vocab]; a training pass's loss. */
static void run(const char *file, bool no_repack, float *out, double *loss)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_trainer_params tp = hearth_trainer_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	struct hearth_trainer *t = NULL;
	const int32_t ids[5] = { 1, 300, 301, 302, 303 }, labels[5] = { 300, 301, 302, 303, 304 };
	mp.no_repack = no_repack;
	cp.n_ctx = 32;
	cp.n_threads = 1;
	tp.n_ctx = 8;
	tp.n_threads = 1;
	T_OK(hearth_model_load(&m, fixture(file), &mp, &err), err);
	if (m)
		T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (c && !hearth_decode(c, ids, 5, false, &err)) {
		const float *l = hearth_get_logits(c, -1);
		for (int32_t j = 0; j < hearth_model_n_vocab(m); j++)
			out[j] = l[j];
	}
	if (m)
		T_OK(hearth_trainer_new(&t, m, &tp, &err), err);
	const struct hearth_train_batch b = { .n = 5, .tokens = ids, .labels = labels };
	if (t)
		T_OK(hearth_trainer_run(t, &b, false, loss, NULL, &err), err);
	hearth_trainer_free(t);
	hearth_context_free(c);
	hearth_model_free(m);
}

void test_model_no_repack(void)
{
	const char *files[] = { "models/tiny-qwen2.q4_k_m.gguf", "models/tiny-llama-spm.q6_k.gguf",
				"models/tiny-qwen3moe.q4_k_m.gguf" };
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		enum { VMAX = 1 << 18 };
		float *a = calloc(VMAX, sizeof *a), *b = calloc(VMAX, sizeof *b);
		double la = 0, lb = 0;
		run(files[f], false, a, &la);
		run(files[f], true, b, &lb);
		double worst = 0, top = 0;
		for (int j = 0; j < VMAX; j++) {
			worst = fmax(worst, fabs((double)a[j] - b[j]));
			top = fmax(top, fabs((double)a[j]));
		}
		fprintf(stderr, "    %-36s logits: largest difference %.2e (largest logit %.2f); loss %.9f, %.9f\n",
			files[f] + 7, worst, top, la, lb);
		T_TRUE(top > 0);
		T_TRUE(worst <= 1e-4 * top);
		T_TRUE(la == lb && la > 0);
		free(a);
		free(b);
	}
}
