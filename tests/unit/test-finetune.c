/* test-finetune.c - fine-tuning runs (hearth_finetune_*): the loss on a
 * dataset written here falls by a stated margin and held-out prompts are
 * then answered as trained (greedy decoding with the saved adapter loaded
 * by hearth_lora_load; not without it), in f32 and over a quantized base;
 * checkpoint + resume reproduce an uninterrupted run's losses bit for bit;
 * checkpoints of other params, datasets and models are refused; the saved
 * adapter has llama.cpp's LoRA layout and loads (hearth_lora_load). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../harness.h"
#include "../../src/gguf/gguf.h"

#define FT_LINES 32

/* Prompt/completion lines of one pattern: "Q: <two words>\nA:" -> " It is
 * blue." whatever the words (the answer is learnt, the words vary). */
static const char *write_pattern(const char *name, int n)
{
	static const char *const words[] = { "apple", "river", "stone", "cloud", "green", "table", "music", "paper",
					     "light", "house", "train", "water", "sugar", "glass", "tiger", "dream" };
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (!f)
		return path;
	for (int i = 0; i < n; i++)
		fprintf(f, "{\"prompt\": \"Q: %s %s\\nA:\", \"completion\": \" It is blue.\"}\n", words[i % 16],
			words[(i * 7 + 3) % 16]);
	fclose(f);
	return path;
}

static struct hearth_model *load_model(const char *rel)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture(rel), &mp, &err), err);
	return m;
}

static struct hearth_dataset *load_data(const struct hearth_model *m, const char *path, float valid)
{
	struct hearth_dataset_params dp = hearth_dataset_default_params();
	dp.valid_fraction = valid;
	dp.seed = 7;
	struct hearth_err err = { 0 };
	struct hearth_dataset *d = NULL;
	T_OK(hearth_dataset_load(&d, m, path, &dp, &err), err);
	return d;
}

static struct hearth_finetune_params small_params(void)
{
	struct hearth_finetune_params p = hearth_finetune_default_params();
	p.trainer.rank = 4;
	p.trainer.alpha = 8;
	p.trainer.n_ctx = 64;
	p.trainer.n_threads = 2;
	p.trainer.seed = 3;
	p.trainer.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_ATTN_V | HEARTH_TRAIN_ATTN_OUT | HEARTH_TRAIN_FFN_DOWN;
	p.lr = 1e-2f;
	p.warmup = 2;
	p.epochs = 3;
	p.batch_rows = 1;
	p.grad_accum = 2;
	return p;
}

/* Runs ft to its end; the losses in losses[0 .. n) (n <= cap), their count. */
static int64_t run_all(struct hearth_finetune *ft, double *losses, int64_t cap)
{
	struct hearth_err err = { 0 };
	int64_t n = 0;
	while (!hearth_finetune_done(ft)) {
		struct hearth_finetune_report r;
		int rc = hearth_finetune_step(ft, &r, &err);
		T_OK(rc, err);
		if (rc)
			break;
		T_EQ_I64(r.step, hearth_finetune_step_index(ft));
		if (n < cap)
			losses[n] = r.loss;
		n++;
	}
	return n;
}

/* Greedy answers on the validation split: every trained token of every
 * held-out example has probability > 1/2 given the tokens before it (so it
 * is the argmax, and greedy decoding from the prompt produces exactly the
 * trained completion and its end). Checked one position at a time. */
static void check_greedy(struct hearth_finetune *ft, const struct hearth_dataset *d)
{
	struct hearth_trainer *t = hearth_finetune_trainer(ft);
	struct hearth_dataset_stats st;
	hearth_dataset_stats(d, &st);
	T_TRUE(st.n_valid >= 3);
	int n_checked = 0;
	for (int32_t i = 0; i < st.n_valid; i++) {
		const uint8_t *loss;
		int32_t n;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_VALID, i, &loss, &n, NULL);
		int32_t labels[64];
		T_TRUE(ids && n <= 64);
		for (int32_t k = 1; ids && k < n && n <= 64; k++) {
			if (!loss[k])
				continue;
			for (int32_t j = 0; j < n; j++)
				labels[j] = j == k - 1 ? ids[k] : -1;
			const struct hearth_train_batch b = { .n = k, .tokens = ids, .labels = labels };
			double l = 0;
			struct hearth_err err = { 0 };
			T_OK(hearth_trainer_run(t, &b, false, &l, NULL, &err), err);
			if (!(l < log(2.0)))
				T_FAIL("held-out example %d token %d: p = %.3f, not the greedy choice", i, k, exp(-l));
			n_checked++;
		}
	}
	T_TRUE(n_checked >= 3 * 4);
}

static int32_t argmax(const float *l, int32_t n)
{
	int32_t b = 0;
	for (int32_t i = 1; i < n; i++)
		if (l[i] > l[b])
			b = i;
	return b;
}

/* Greedy decoding through the engine with the saved adapter loaded
 * (hearth_lora_load) or without it: how many held-out examples come out
 * exactly as trained (every completion token, the end of sequence included). */
static int greedy_answers(struct hearth_model *m, const struct hearth_dataset *d, const char *adapter)
{
	struct hearth_context_params cp = hearth_context_default_params();
	cp.n_ctx = 128;
	cp.n_threads = 2;
	struct hearth_context *c = NULL;
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	int n_right = -1;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		return -1;
	if (adapter) {
		T_OK(hearth_lora_load(&a, m, adapter, &err), err);
		const struct hearth_lora_use use = { a, 1.0f };
		if (!a || hearth_context_set_lora(c, &use, 1, &err))
			goto out;
	}
	struct hearth_dataset_stats st;
	hearth_dataset_stats(d, &st);
	n_right = 0;
	for (int32_t i = 0; i < st.n_valid; i++) {
		const uint8_t *loss;
		int32_t n, k = 0;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_VALID, i, &loss, &n, NULL);
		while (k < n && !loss[k])
			k++; /* ids[0 .. k): the prompt; ids[k .. n): the trained completion */
		hearth_context_truncate(c, 0);
		bool right = k > 0 && k < n && !hearth_decode(c, ids, k, false, &err);
		for (int32_t t = k; right && t < n; t++) {
			const int32_t next = argmax(hearth_get_logits(c, -1), hearth_model_n_vocab(m));
			right = next == ids[t] && (t + 1 == n || !hearth_decode(c, &next, 1, false, &err));
		}
		n_right += right;
	}
out:
	hearth_lora_free(a);
	hearth_context_free(c);
	return n_right;
}

static void train_and_check_p(const char *model, double margin, const struct hearth_finetune_params *pp)
{
	struct hearth_model *m = load_model(model);
	if (!m)
		return;
	struct hearth_dataset *d = load_data(m, write_pattern("ft-pattern.jsonl", FT_LINES), 0.125f);
	struct hearth_finetune_params p = *pp;
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	if (d)
		T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	if (ft) {
		double v0, v1, losses[256];
		T_OK(hearth_finetune_validate(ft, &v0, &err), err);
		const int64_t n = run_all(ft, losses, 256);
		T_EQ_I64(n, hearth_finetune_n_steps(ft));
		T_TRUE(n >= 12 && n <= 256);
		T_OK(hearth_finetune_validate(ft, &v1, &err), err);
		double first = 0, last = 0;
		for (int k = 0; k < 3 && n >= 6; k++) {
			first += losses[k] / 3;
			last += losses[n - 1 - k] / 3;
		}
		fprintf(stderr, "  %s: %lld steps, train loss %.3f -> %.3f, validation %.3f -> %.3f\n", model,
			(long long)n, first, last, v0, v1);
		/* the stated margin: the last steps' loss below margin times the first ones' */
		if (!(last < margin * first))
			T_FAIL("train loss %.4f -> %.4f, not below %.2f of the start", first, last, margin);
		T_TRUE(v1 < margin * v0);
		check_greedy(ft, d);
		/* the saved adapter in the engine: every held-out prompt answered as trained, none without it */
		char path[400];
		snprintf(path, sizeof path, "%s", tmp_path("ft-learnt.gguf"));
		T_OK(hearth_finetune_save(ft, path, &err), err);
		struct hearth_dataset_stats st;
		hearth_dataset_stats(d, &st);
		T_EQ_I64(greedy_answers(m, d, path), st.n_valid);
		T_EQ_I64(greedy_answers(m, d, NULL), 0);
	}
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
}

static void train_and_check(const char *model, double margin)
{
	const struct hearth_finetune_params p = small_params();
	train_and_check_p(model, margin, &p);
}

/* The trainer's loss on example ids[0 .. n) (labels: loss[]) against the
 * cross-entropy of the engine's logits with the adapter at path loaded,
 * within tol (relative). */
static void adapter_matches_trainer_tol(struct hearth_model *m, struct hearth_trainer *t, const char *path,
					const int32_t *ids, const uint8_t *loss, int32_t n, double tol)
{
	struct hearth_context_params cp = hearth_context_default_params();
	cp.n_ctx = 128;
	cp.n_threads = 2;
	cp.cache_type = HEARTH_TYPE_F32;
	struct hearth_context *c = NULL;
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	int32_t labels[64];
	T_TRUE(n <= 64);
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	T_OK(hearth_lora_load(&a, m, path, &err), err);
	const struct hearth_lora_use use = { a, 1.0f };
	if (!c || !a || n > 64 || hearth_context_set_lora(c, &use, 1, &err))
		goto out;
	T_OK(hearth_decode(c, ids, n - 1, true, &err), err);
	double ce = 0;
	int n_lab = 0;
	const int32_t V = hearth_model_n_vocab(m);
	for (int32_t i = 0; i + 1 < n; i++) {
		labels[i] = loss[i + 1] ? ids[i + 1] : -1;
		if (labels[i] < 0)
			continue;
		const float *l = hearth_get_logits(c, i);
		double mx = -INFINITY, z = 0;
		for (int32_t j = 0; j < V; j++)
			mx = l[j] > mx ? l[j] : mx;
		for (int32_t j = 0; j < V; j++)
			z += exp(l[j] - mx);
		ce -= l[labels[i]] - mx - log(z);
		n_lab++;
	}
	ce /= n_lab;
	const struct hearth_train_batch b = { .n = n - 1, .tokens = ids, .labels = labels };
	double tl = 0;
	T_OK(hearth_trainer_run(t, &b, false, &tl, NULL, &err), err);
	fprintf(stderr, "  adapter served: loss %.7f, trainer %.7f, relative difference %.2e\n", ce, tl, fabs(tl - ce) / ce);
	T_NEAR(tl, ce, tol * ce);
out:
	hearth_lora_free(a);
	hearth_context_free(c);
}

static void adapter_matches_trainer(struct hearth_model *m, struct hearth_trainer *t, const char *path, const int32_t *ids,
				    const uint8_t *loss, int32_t n)
{
	adapter_matches_trainer_tol(m, t, path, ids, loss, n, 1e-5);
}

/* phi3 stores q, k, v as one attn_qkv and gate, up as one ffn_up: targets
 * q, v and up train one adapter on each fused matrix (all its rows); the
 * run learns, the saved adapter loads in the engine and gives the loss the
 * trainer computes, and it answers the held-out prompts as trained. */
void test_finetune_fused(void)
{
	struct hearth_finetune_params p = small_params();
	p.trainer.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_ATTN_V | HEARTH_TRAIN_FFN_UP;
	struct hearth_model *m = load_model("models/tiny-phi3.f32.gguf");
	struct hearth_dataset *d = m ? load_data(m, write_pattern("ft-fused.jsonl", 8), 0.25f) : NULL;
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	if (d)
		T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	if (ft) {
		struct hearth_trainer *t = hearth_finetune_trainer(ft);
		T_EQ_I64(hearth_trainer_n_lora(t), 2 * hearth_model_n_layer(m));
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(t, 0, &lt);
		T_TRUE(!strcmp(lt.weight, "blk.0.attn_qkv.weight"));
		hearth_trainer_lora(t, 1, &lt);
		T_TRUE(!strcmp(lt.weight, "blk.0.ffn_up.weight"));
		struct hearth_finetune_report r;
		for (int k = 0; k < 4; k++)
			T_OK(hearth_finetune_step(ft, &r, &err), err);
		const char *path = tmp_path("ft-fused.gguf");
		T_OK(hearth_finetune_save(ft, path, &err), err);
		const uint8_t *loss;
		int32_t n;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_VALID, 0, &loss, &n, NULL);
		T_TRUE(ids != NULL);
		if (ids)
			adapter_matches_trainer(m, t, path, ids, loss, n);
	}
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
	train_and_check_p("models/tiny-phi3.f32.gguf", 0.1, &p);
}

void test_finetune_learns(void)
{
	train_and_check("models/tiny-qwen2.f32.gguf", 0.1);
}

void test_finetune_learns_quantized(void)
{
	train_and_check("models/tiny-qwen2.q4_k_m.gguf", 0.1);
}

/* A mixture of experts (attention adapters; gradients through the routing and the experts). */
void test_finetune_learns_moe(void)
{
	struct hearth_finetune_params p = small_params();
	p.trainer.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_ATTN_K | HEARTH_TRAIN_ATTN_V | HEARTH_TRAIN_ATTN_OUT;
	train_and_check_p("models/tiny-qwen3moe.q4_k_m.gguf", 0.1, &p);
}

/* Adapters on the experts' stacks (gate, up, down of a mixture of experts):
 * one entry per stack with an A and a B per expert; the saved file has
 * llama.cpp's 3-D layout, loads in the engine and gives the trainer's loss;
 * a checkpoint resumes to the same next step's loss; the run learns. */
static void finetune_experts(const char *model, bool quantized, bool learn)
{
	struct hearth_finetune_params p = small_params();
	p.trainer.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_FFN_GATE | HEARTH_TRAIN_FFN_UP | HEARTH_TRAIN_FFN_DOWN;
	struct hearth_model *m = load_model(model);
	struct hearth_dataset *d = m ? load_data(m, write_pattern("ft-exps.jsonl", 8), 0.25f) : NULL;
	struct hearth_finetune *ft = NULL, *ft2 = NULL;
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	if (d)
		T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	if (d)
		T_OK(hearth_finetune_new(&ft2, m, d, &p, &err), err);
	if (!ft || !ft2)
		goto out;
	struct hearth_trainer *t = hearth_finetune_trainer(ft);
	struct hearth_lora_tensor l1;
	hearth_trainer_lora(t, 1, &l1); /* blk.0.ffn_gate_exps.weight */
	const int32_t X = l1.n_expert;
	T_TRUE(X > 1 && !strcmp(l1.weight, "blk.0.ffn_gate_exps.weight"));
	T_EQ_I64(hearth_trainer_n_lora(t), 4 * hearth_model_n_layer(m));
	struct hearth_finetune_report r, r2;
	for (int k = 0; k < 2; k++) /* of 3 */
		T_OK(hearth_finetune_step(ft, &r, &err), err);
	const char *path = tmp_path("ft-exps.gguf"), *ckpt = tmp_path("ft-exps.ckpt");
	T_OK(hearth_finetune_save(ft, path, &err), err);
	T_OK(hearth_finetune_checkpoint(ft, ckpt, &err), err);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	for (int32_t i = 0; g && i < hearth_trainer_n_lora(t); i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(t, i, &lt);
		const bool stack = strstr(lt.weight, "_exps.weight") != NULL;
		T_EQ_I64(lt.n_expert, stack ? X : 1);
		char name[160];
		snprintf(name, sizeof name, "%s.lora_b", lt.weight);
		const int64_t ib = gguf_find_tensor(g, name);
		T_TRUE(ib >= 0);
		if (ib < 0)
			continue;
		const struct gguf_tensor *b = &g->tensors[ib];
		T_EQ_I64(b->n_dims, stack ? 3 : 2);
		T_TRUE(b->ne[0] == lt.rank && b->ne[1] == lt.n_out && b->ne[2] == lt.n_expert);
		const size_t nb = (size_t)lt.rank * (size_t)lt.n_out * (size_t)lt.n_expert;
		T_TRUE(memcmp(b->data, lt.b, nb * sizeof(float)) == 0);
		if (stack) { /* the experts the pattern's tokens reach have learnt: B_e moved from zero */
			int moved = 0;
			for (int32_t e = 0; e < X; e++)
				for (size_t k = 0; k < nb / (size_t)X; k++)
					if (lt.b[(size_t)e * (nb / (size_t)X) + k] != 0) {
						moved++;
						break;
					}
			T_TRUE(moved > 0);
		}
	}
	const uint8_t *loss;
	int32_t n;
	const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_VALID, 0, &loss, &n, NULL);
	T_TRUE(ids != NULL);
	if (ids)
		/* a quantized base: the engine's products take activations quantized to the
		 * kernels' dot type, the trainer's stay f32 (as test-train-model's loss_vs_decode) */
		adapter_matches_trainer_tol(m, t, path, ids, loss, n, quantized ? 5e-3 : 1e-5);
	/* the checkpoint (3-D moments too) resumes to the uninterrupted run's next loss */
	T_OK(hearth_finetune_resume(ft2, ckpt, &err), err);
	T_OK(hearth_finetune_step(ft, &r, &err), err);
	T_OK(hearth_finetune_step(ft2, &r2, &err), err);
	T_TRUE(r.loss == r2.loss);
out:
	hearth_gguf_close(g);
	hearth_finetune_free(ft);
	hearth_finetune_free(ft2);
	hearth_dataset_free(d);
	hearth_model_free(m);
	if (learn)
		train_and_check_p(model, 0.1, &p);
}

void test_finetune_experts(void)
{
	finetune_experts("models/tiny-qwen3moe.f32.gguf", false, false);
	finetune_experts("models/tiny-gpt-oss.mxfp4_moe.gguf", true, false);
	finetune_experts("models/tiny-mixtral.q4_k_m.gguf", true, true);
}

/* Stops a run after k steps with a checkpoint, resumes it in a new run and
 * goes to the end: the losses are the uninterrupted run's, bit for bit. */
void test_finetune_resume(void)
{
	struct hearth_model *m = load_model("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	struct hearth_dataset *d = load_data(m, write_pattern("ft-resume.jsonl", 16), 0);
	struct hearth_finetune_params p = small_params();
	p.trainer.n_ctx = 24; /* two examples a row: 8 rows, 4 steps an epoch */
	p.epochs = 2;
	p.warmup = 1;
	p.weight_decay = 0.01f;
	const char *ckpt = tmp_path("ft-resume.ckpt");
	struct hearth_err err = { 0 };
	struct hearth_finetune *a = NULL, *b = NULL, *c = NULL;
	double la[64] = { 0 }, lb[64] = { 0 };
	if (!d)
		goto out;
	T_OK(hearth_finetune_new(&a, m, d, &p, &err), err);
	T_OK(hearth_finetune_new(&b, m, d, &p, &err), err);
	T_OK(hearth_finetune_new(&c, m, d, &p, &err), err);
	if (!a || !b || !c)
		goto out;
	const int64_t n = run_all(a, la, 64);
	T_TRUE(n >= 8 && n <= 64);
	/* stop in the middle of the first epoch: the order and the moments both matter */
	const int64_t k = n / 2 - 1;
	for (int64_t s = 0; s < k; s++) {
		struct hearth_finetune_report r;
		T_OK(hearth_finetune_step(b, &r, &err), err);
		lb[s] = r.loss;
	}
	T_OK(hearth_finetune_checkpoint(b, ckpt, &err), err);
	T_OK(hearth_finetune_resume(c, ckpt, &err), err);
	T_EQ_I64(hearth_finetune_step_index(c), k);
	const int64_t rest = run_all(c, lb + k, 64 - k);
	T_EQ_I64(k + rest, n);
	T_TRUE(memcmp(la, lb, (size_t)n * sizeof *la) == 0);
	for (int64_t s = 0; s < n; s++)
		if (la[s] != lb[s])
			T_FAIL("step %lld: loss %.17g uninterrupted, %.17g resumed", (long long)s + 1, la[s], lb[s]);
	/* a run already under way is not resumed over */
	T_EQ_I64(hearth_finetune_resume(c, ckpt, &err), HEARTH_EINVAL);
	struct hearth_finetune_report r;
	T_EQ_I64(hearth_finetune_step(c, &r, &err), HEARTH_EINVAL); /* done */
out:
	hearth_finetune_free(a);
	hearth_finetune_free(b);
	hearth_finetune_free(c);
	hearth_dataset_free(d);
	hearth_model_free(m);
}

static void expect_refused(const struct hearth_model *m, const struct hearth_dataset *d,
			   const struct hearth_finetune_params *p, const char *ckpt, int code, const char *what)
{
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_finetune_new(&ft, m, d, p, &err), err);
	if (!ft)
		return;
	T_EQ_I64(hearth_finetune_resume(ft, ckpt, &err), code);
	if (!strstr(err.msg, what))
		T_FAIL("resume refused with '%s', which does not name '%s'", err.msg, what);
	T_EQ_I64(hearth_finetune_step_index(ft), 0);
	hearth_finetune_free(ft);
}

/* A checkpoint of other params, another dataset or another model is refused
 * with a message naming the difference; so are an adapter file and a cut file. */
void test_finetune_resume_refused(void)
{
	struct hearth_model *m = load_model("models/tiny-qwen2.f32.gguf");
	struct hearth_model *m8 = load_model("models/tiny-qwen2.q8_0.gguf");
	if (!m || !m8)
		goto out_models;
	struct hearth_dataset *d = load_data(m, write_pattern("ft-ref.jsonl", 12), 0);
	struct hearth_dataset *d2 = load_data(m, write_pattern("ft-ref2.jsonl", 13), 0);
	struct hearth_dataset *d8 = load_data(m8, write_pattern("ft-ref8.jsonl", 12), 0);
	struct hearth_finetune_params p = small_params();
	p.epochs = 1;
	char ckpt[400], adapter[400], cut[400];
	snprintf(ckpt, sizeof ckpt, "%s", tmp_path("ft-ref.ckpt"));
	snprintf(adapter, sizeof adapter, "%s", tmp_path("ft-ref.gguf"));
	snprintf(cut, sizeof cut, "%s", tmp_path("ft-cut.ckpt"));
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	if (!d || !d2 || !d8)
		goto out;
	T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	if (!ft)
		goto out;
	struct hearth_finetune_report r;
	T_OK(hearth_finetune_step(ft, &r, &err), err);
	T_OK(hearth_finetune_checkpoint(ft, ckpt, &err), err);
	T_OK(hearth_finetune_save(ft, adapter, &err), err);
	struct hearth_finetune_params q = p;
	q.trainer.rank = 8;
	expect_refused(m, d, &q, ckpt, HEARTH_EINVAL, "rank = 4, this run has 8");
	q = p;
	q.trainer.seed = 4;
	expect_refused(m, d, &q, ckpt, HEARTH_EINVAL, "seed = 3, this run has 4");
	q = p;
	q.lr = 2e-2f;
	expect_refused(m, d, &q, ckpt, HEARTH_EINVAL, "lr");
	expect_refused(m, d2, &p, ckpt, HEARTH_EINVAL, "another dataset");
	expect_refused(m8, d8, &p, ckpt, HEARTH_EINVAL, "another model");
	expect_refused(m, d, &p, adapter, HEARTH_EBADGGUF, "not a hearth fine-tuning checkpoint");
	/* the checkpoint cut short */
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", ckpt, cut);
	T_EQ_I64(system(cmd), 0);
	struct hearth_finetune *x = NULL;
	T_OK(hearth_finetune_new(&x, m, d, &p, &err), err);
	if (x)
		T_TRUE(hearth_finetune_resume(x, cut, &err) < 0);
	hearth_finetune_free(x);
	/* no such file */
	expect_refused(m, d, &p, tmp_path("ft-none.ckpt"), HEARTH_EIO, "ft-none.ckpt");
out:
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_dataset_free(d2);
	hearth_dataset_free(d8);
out_models:
	hearth_model_free(m);
	hearth_model_free(m8);
}

/* Writes value v over element 0 of tensor name in the checkpoint file path. */
static void patch_tensor(const char *path, const char *name, float v)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		return;
	const int64_t i = gguf_find_tensor(g, name);
	T_TRUE(i >= 0);
	const long off = i >= 0 ? (long)((const uint8_t *)g->tensors[i].data - g->map) : -1;
	hearth_gguf_close(g);
	FILE *f = off >= 0 ? fopen(path, "r+b") : NULL;
	T_TRUE(f != NULL);
	if (f) {
		T_TRUE(fseek(f, off, SEEK_SET) == 0 && fwrite(&v, sizeof v, 1, f) == 1);
		fclose(f);
	}
}

/* A checkpoint whose values no run could have written (a NaN or infinite
 * weight or moment, a negative second moment) is refused naming the tensor:
 * AdamW would take the square root of it (found by fuzz-checkpoint). */
void test_finetune_resume_bad_values(void)
{
	struct hearth_model *m = load_model("models/stories260K.f32.gguf");
	if (!m)
		return;
	struct hearth_dataset *d = load_data(m, write_pattern("ft-vals.jsonl", 6), 0);
	struct hearth_finetune_params p = small_params();
	p.trainer.n_ctx = 16;
	p.epochs = 1;
	struct hearth_finetune *ft = NULL;
	struct hearth_err err = { 0 };
	if (d)
		T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	struct hearth_finetune_report r;
	char ckpt[400], cmd[1000];
	snprintf(ckpt, sizeof ckpt, "%s", tmp_path("ft-vals.ckpt"));
	if (ft)
		T_OK(hearth_finetune_step(ft, &r, &err), err);
	if (ft)
		T_OK(hearth_finetune_checkpoint(ft, ckpt, &err), err);
	struct hearth_finetune *x = NULL; /* unpatched, it resumes */
	if (ft)
		T_OK(hearth_finetune_new(&x, m, d, &p, &err), err);
	if (x)
		T_OK(hearth_finetune_resume(x, ckpt, &err), err);
	hearth_finetune_free(x);
	static const struct {
		const char *tensor;
		float v;
	} cases[] = {
		{ "blk.0.attn_q.weight.lora_a", NAN }, { "blk.0.attn_v.weight.lora_b", INFINITY },
		{ "blk.0.attn_q.weight.lora_b.m", -INFINITY }, { "blk.0.attn_v.weight.lora_a.v", -1.0f },
	};
	for (size_t i = 0; ft && i < sizeof cases / sizeof cases[0]; i++) {
		const char *bad = tmp_path("ft-vals-bad.ckpt");
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", ckpt, bad);
		T_EQ_I64(system(cmd), 0);
		patch_tensor(bad, cases[i].tensor, cases[i].v);
		expect_refused(m, d, &p, bad, HEARTH_EBADGGUF, cases[i].tensor);
	}
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
}

/* The adapter file: llama.cpp's keys, a and b in f32 of the documented shapes, the trained values. */
void test_finetune_save(void)
{
	struct hearth_model *m = load_model("models/tiny-llama3.f32.gguf");
	if (!m)
		return;
	struct hearth_dataset *d = load_data(m, write_pattern("ft-save.jsonl", 6), 0);
	struct hearth_finetune_params p = small_params();
	p.epochs = 1;
	const char *path = tmp_path("ft-save.gguf");
	struct hearth_finetune *ft = NULL;
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	if (d)
		T_OK(hearth_finetune_new(&ft, m, d, &p, &err), err);
	if (!ft)
		goto out;
	struct hearth_finetune_report r;
	T_OK(hearth_finetune_step(ft, &r, &err), err);
	T_OK(hearth_finetune_save(ft, path, &err), err);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		goto out;
	const char *const keys[3][2] = { { "general.type", "adapter" }, { "adapter.type", "lora" },
					 { "general.architecture", "llama" } };
	for (int k = 0; k < 3; k++) {
		struct gguf_str v = { 0 };
		T_OK(gguf_get_str(g, keys[k][0], &v, &err), err);
		T_TRUE(v.n == strlen(keys[k][1]) && v.p && !memcmp(v.p, keys[k][1], v.n));
	}
	float alpha = 0;
	T_OK(gguf_get_f32(g, "adapter.lora.alpha", &alpha, &err), err);
	T_NEAR(alpha, 8, 0);
	struct hearth_trainer *t = hearth_finetune_trainer(ft);
	const int32_t n_lora = hearth_trainer_n_lora(t);
	T_EQ_I64(n_lora, 4 * hearth_model_n_layer(m));
	T_EQ_I64(g->n_tensors, 2 * n_lora);
	int n_nonzero = 0;
	for (int32_t i = 0; i < n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(t, i, &lt);
		char name[160];
		snprintf(name, sizeof name, "%s.lora_a", lt.weight);
		int64_t ia = gguf_find_tensor(g, name);
		snprintf(name, sizeof name, "%s.lora_b", lt.weight);
		int64_t ib = gguf_find_tensor(g, name);
		T_TRUE(ia >= 0 && ib >= 0);
		if (ia < 0 || ib < 0)
			continue;
		const struct gguf_tensor *a = &g->tensors[ia], *b = &g->tensors[ib];
		T_EQ_I64(a->type, HEARTH_TYPE_F32);
		T_EQ_I64(b->type, HEARTH_TYPE_F32);
		T_EQ_I64(a->ne[0], lt.n_in);
		T_EQ_I64(a->ne[1], lt.rank);
		T_EQ_I64(b->ne[0], lt.rank);
		T_EQ_I64(b->ne[1], lt.n_out);
		const size_t nb = (size_t)lt.rank * (size_t)lt.n_out;
		T_TRUE(memcmp(a->data, lt.a, (size_t)lt.rank * (size_t)lt.n_in * sizeof(float)) == 0);
		T_TRUE(memcmp(b->data, lt.b, nb * sizeof(float)) == 0);
		for (size_t k = 0; k < nb; k++)
			n_nonzero += lt.b[k] != 0;
	}
	T_TRUE(n_nonzero > 0); /* one step moved B from zero */
	struct hearth_lora *a = NULL;
	T_OK(hearth_lora_load(&a, m, path, &err), err);
	if (a) {
		T_EQ_I64(hearth_lora_n_pairs(a), n_lora);
		T_NEAR(hearth_lora_alpha(a), 8, 0);
	}
	hearth_lora_free(a);
out:
	hearth_gguf_close(g);
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
}

/* Runs "$HEARTH_BIN args 2>&1" with its output in out; the exit code. */
static int run_cli(char *out, size_t cap, const char *args)
{
	char cmd[4608];
	const char *bin = getenv("HEARTH_BIN");
	snprintf(cmd, sizeof cmd, "%.400s %.4096s 2>&1", bin ? bin : "build/hearth", args);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	while (fgetc(p) != EOF)
		;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool same_file(const char *a, const char *b)
{
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

/* hearth finetune: usage errors, a bad line named by number, a run whose
 * adapter is an adapter, and a run stopped at a checkpoint and resumed that
 * writes the same adapter as the run straight through. */
void test_finetune_cli(void)
{
	static char out[1 << 16];
	char args[4096];
	char model[400], data[400], bad[400], a1[400], a2[400], ck[400]; /* tmp_path's buffer is reused */
	snprintf(model, sizeof model, "%s", fixture("models/tiny-qwen2.f32.gguf"));
	snprintf(data, sizeof data, "%s", write_pattern("ft-cli.jsonl", 16));
	snprintf(bad, sizeof bad, "%s", tmp_path("ft-bad.jsonl"));
	snprintf(a1, sizeof a1, "%s", tmp_path("ft-cli-1.gguf"));
	snprintf(a2, sizeof a2, "%s", tmp_path("ft-cli-2.gguf"));
	snprintf(ck, sizeof ck, "%s", tmp_path("ft-cli.ckpt"));
	FILE *f = fopen(bad, "wb");
	T_TRUE(f != NULL);
	if (!f)
		return;
	fputs("{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"a\", \"completion\": 3}\n", f);
	fclose(f);
	T_EQ_I64(run_cli(out, sizeof out, "finetune --help"), 0);
	T_TRUE(strstr(out, "--grad-accum") != NULL);
	T_EQ_I64(run_cli(out, sizeof out, "finetune -m x --data y"), 2);
	T_TRUE(strstr(out, "-o are required") != NULL);
	T_EQ_I64(run_cli(out, sizeof out, "finetune -m x --data y -o z --targets q,nope"), 2);
	T_EQ_I64(run_cli(out, sizeof out, "finetune -m x --data y -o z --lora-rank 0"), 2);
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s'", model, bad, a1);
	T_EQ_I64(run_cli(out, sizeof out, args), 1);
	if (!strstr(out, ":3:"))
		T_FAIL("the bad line's number is not in: %s", out);
	const char *common = "--ctx 32 --epochs 0 --steps 4 --lr 1e-2 -t 2 --lora-rank 4 --targets q,v --grad-accum 2";
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s' %s --valid-split 0.2 --valid-every 2", model,
		 data, a1, common);
	T_EQ_I64(run_cli(out, sizeof out, args), 0);
	T_TRUE(strstr(out, "step 4/4") != NULL && strstr(out, "validation loss") != NULL);
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_gguf_open(&g, a1, &err), err);
	struct gguf_str v = { 0 };
	if (g)
		T_OK(gguf_get_str(g, "general.type", &v, &err), err);
	T_TRUE(v.n == 7 && !memcmp(v.p, "adapter", 7));
	hearth_gguf_close(g);
	/* stopped after step 2 (a checkpoint; the adapter written as well), resumed to 4 */
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s' %s --valid-split 0.2 --checkpoint '%s' --checkpoint-every 2",
		 model, data, a2, common, ck);
	T_EQ_I64(run_cli(out, sizeof out, args), 0);
	remove(a2);
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s' %s --valid-split 0.2 --resume '%s'", model,
		 data, a2, common, ck);
	T_EQ_I64(run_cli(out, sizeof out, args), 0);
	T_TRUE(strstr(out, "resuming") != NULL && strstr(out, "step 3/4") != NULL && !strstr(out, "step 2/4"));
	T_TRUE(same_file(a1, a2));
	/* conversations, through the model's chat template */
	char chat[400];
	snprintf(chat, sizeof chat, "%s", tmp_path("ft-chat.jsonl"));
	if ((f = fopen(chat, "wb"))) {
		for (int i = 0; i < 4; i++)
			fprintf(f, "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
				   "{\"role\": \"user\", \"content\": \"Colour %d?\"}, "
				   "{\"role\": \"assistant\", \"content\": \"Blue.\"}]}\n", i);
		fclose(f);
	}
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s' --ctx 64 --steps 2 --epochs 0 -t 2", model,
		 chat, a2);
	T_EQ_I64(run_cli(out, sizeof out, args), 0);
	if (!strstr(out, "4 examples (4 train, 0 validation)") || !strstr(out, "step 2/2"))
		T_FAIL("chat run: %s", out);
	/* other options are refused by the checkpoint */
	snprintf(args, sizeof args, "finetune -m '%s' --data '%s' -o '%s' %s --lr 2e-2 --valid-split 0.2 --resume '%s'",
		 model, data, a2, common, ck);
	T_EQ_I64(run_cli(out, sizeof out, args), 1);
	T_TRUE(strstr(out, "lr") != NULL);
}
