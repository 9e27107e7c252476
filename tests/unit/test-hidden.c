/* test-hidden.c - hidden states and the logit lens (hearth_context_set_hidden,
 * hearth_get_hidden, hearth_context_logit_lens) on synthetic models.
 *
 * The independent check: synth writes tensors in order from one random
 * stream (embedding, output norm, output head, then layer by layer), so a
 * model of k layers is the first k layers of a deeper model of the same seed.
 * The deep model's state after layer k-1 through the logit lens must then be
 * the shallow model's logits, computed by the ordinary pass of another file. */
#include <stdlib.h>

#include "../harness.h"
#include "../synth.h"

#define N_IN 7
#define N_LAYER 3

static const int32_t ids[N_IN] = { 1, 40, 51, 62, 73, 84, 95 };

static struct hearth_model *load(const struct synth_spec *spec, int n_layer, const char *name)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct synth_spec s = *spec;
	s.n_layer = n_layer;
	T_OK(synth_model_write(tmp_path(name), &s, &err), err);
	T_OK(hearth_model_load(&m, tmp_path(name), &mp, &err), err);
	return m;
}

static struct hearth_context *ctx(struct hearth_model *m, int n_batch)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	cp.n_ctx = 32;
	cp.n_batch = n_batch;
	cp.n_threads = 2;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	return c;
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d = fmax(d, fabs((double)a[i] - b[i]));
	return d;
}

/* All N_IN logits rows of a fresh decode of ids on m (n_batch 4: chunks of 4 and 3). */
static float *logits_of(struct hearth_model *m)
{
	struct hearth_err err = { 0 };
	struct hearth_context *c = ctx(m, 4);
	const size_t V = (size_t)hearth_model_n_vocab(m);
	float *out = malloc(N_IN * V * sizeof *out);
	if (!c || !out) {
		hearth_context_free(c);
		free(out);
		return NULL;
	}
	T_OK(hearth_decode(c, ids, N_IN, true, &err), err);
	for (int i = 0; i < N_IN; i++)
		memcpy(out + i * V, hearth_get_logits(c, i), V * sizeof *out);
	hearth_context_free(c);
	return out;
}

/* The rows of layer slot k of c's last decode, copied out. */
static float *rows_of(const struct hearth_context *c, int k, size_t E)
{
	float *x = malloc(N_IN * E * sizeof *x);
	for (int i = 0; x && i < N_IN; i++) {
		const float *h = hearth_get_hidden(c, k, i);
		T_TRUE(h != NULL);
		if (h)
			memcpy(x + i * E, h, E * sizeof *x);
	}
	return x;
}

static void check_spec(const struct synth_spec *spec)
{
	struct hearth_err err = { 0 };
	char name[64];
	snprintf(name, sizeof name, "hidden-%s-%d.gguf", spec->arch, N_LAYER);
	struct hearth_model *deep = load(spec, N_LAYER, name);
	struct hearth_context *c = deep ? ctx(deep, 4) : NULL;
	if (!c) {
		hearth_model_free(deep);
		return;
	}
	const size_t E = (size_t)hearth_model_n_embd(deep), V = (size_t)hearth_model_n_vocab(deep);
	const int32_t layers[] = { 0, -2, -1 }; /* 0, 1, 2 */
	T_OK(hearth_context_set_hidden(c, layers, 3, &err), err);
	T_OK(hearth_decode(c, ids, N_IN, true, &err), err);
	float *lens = malloc(N_IN * V * sizeof *lens);
	float *want = logits_of(deep);
	for (int k = 0; k < 3 && lens && want; k++) {
		float *x = rows_of(c, k, E);
		T_OK(hearth_context_logit_lens(c, x, N_IN, lens, &err), err);
		if (k == 2) { /* the last layer: the model's own logits, bit for bit */
			for (int i = 0; i < N_IN; i++)
				if (memcmp(lens + i * V, hearth_get_logits(c, i), V * sizeof *lens))
					T_FAIL("%s: lens of the last layer, row %d, differs from the logits", spec->arch, i);
		} else { /* a shallower model of the same seed: its logits */
			snprintf(name, sizeof name, "hidden-%s-%d.gguf", spec->arch, k + 1);
			struct hearth_model *shallow = load(spec, k + 1, name);
			float *ref = shallow ? logits_of(shallow) : NULL;
			if (ref && memcmp(ref, lens, N_IN * V * sizeof *ref))
				T_FAIL("%s: lens after layer %d vs a %d-layer model: max diff %.3g", spec->arch, k, k + 1,
				       max_diff(ref, lens, N_IN * V));
			free(ref);
			hearth_model_free(shallow);
		}
		/* the lens does not disturb decoding: c's logits stay the fresh ones */
		T_TRUE(memcmp(want + (N_IN - 1) * V, hearth_get_logits(c, -1), V * sizeof *want) == 0);
		free(x);
	}
	/* batched = one at a time (to rounding: other kernels take one row) */
	struct hearth_context *one = ctx(deep, 1);
	if (one) {
		T_OK(hearth_context_set_hidden(one, layers, 3, &err), err);
		double d = 0;
		for (int i = 0; i < N_IN; i++) {
			T_OK(hearth_decode(one, &ids[i], 1, false, &err), err);
			for (int k = 0; k < 3; k++) {
				const float *a = hearth_get_hidden(one, k, -1), *b = hearth_get_hidden(c, k, i);
				T_TRUE(a && b && hearth_get_hidden(one, k, 1) == NULL);
				if (a && b)
					d = fmax(d, max_diff(a, b, E));
			}
		}
		if (d > 1e-4)
			T_FAIL("%s: hidden states batched vs one at a time differ by %.3g", spec->arch, d);
	}
	hearth_context_free(one);
	free(lens);
	free(want);
	hearth_context_free(c);
	hearth_model_free(deep);
}

void test_hidden_lens(void)
{
	static const struct synth_spec specs[] = {
		{ .arch = "llama", .n_embd = 64, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .wtype = HEARTH_TYPE_F32, .rope_freqs = true, .seed = 21 },
		{ .arch = "qwen3", .n_embd = 64, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_Q8_0, .tied = true, .seed = 22 },
		/* final soft-capping: the lens caps as the logits are */
		{ .arch = "gemma2", .n_embd = 64, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_F32, .tied = true, .n_swa = 4, .seed = 23 },
	};
	for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++)
		check_spec(&specs[s]);
}

/* Bad layer lists are refused and change nothing; with none asked, nothing is kept. */
void test_hidden_errors(void)
{
	static const struct synth_spec spec = { .arch = "llama", .n_embd = 64, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .wtype = HEARTH_TYPE_F32, .seed = 24 };
	struct hearth_err err = { 0 };
	struct hearth_model *m = load(&spec, 2, "hidden-err.gguf");
	struct hearth_context *c = m ? ctx(m, 8) : NULL;
	if (!c) {
		hearth_model_free(m);
		return;
	}
	const int32_t ok[] = { -1 }, high[] = { 0, 2 }, low[] = { -3 }, many[] = { 0, 1, 1 };
	T_OK(hearth_context_set_hidden(c, ok, 1, &err), err);
	T_EQ_I64(hearth_context_set_hidden(c, high, 2, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "layer 2") != NULL);
	T_EQ_I64(hearth_context_set_hidden(c, low, 1, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_context_set_hidden(c, many, 3, &err), HEARTH_EINVAL);
	T_EQ_I64(hearth_context_set_hidden(c, ok, -1, &err), HEARTH_EINVAL);
	T_OK(hearth_decode(c, ids, 3, false, &err), err);
	T_TRUE(hearth_get_hidden(c, 0, 2) != NULL); /* still layer -1 */
	T_TRUE(hearth_get_hidden(c, 0, 3) == NULL);
	T_TRUE(hearth_get_hidden(c, 1, 0) == NULL);
	T_TRUE(hearth_get_hidden(c, -1, 0) == NULL);
	T_EQ_I64(hearth_context_logit_lens(c, NULL, 0, NULL, &err), HEARTH_EINVAL);
	T_OK(hearth_context_set_hidden(c, NULL, 0, &err), err);
	T_OK(hearth_decode(c, ids + 3, 2, false, &err), err);
	T_TRUE(hearth_get_hidden(c, 0, 0) == NULL);
	hearth_context_free(c);
	hearth_model_free(m);
}

/* ---- from the scheduler ---------------------------------------------------------- */

#define N_GEN 4

struct sched_run {
	int32_t toks[N_IN + N_GEN];
	int n_gen;
	float *hidden; /* [positions][2][E] */
	int32_t n_hidden;
};

static struct hearth_request *sched_submit(struct hearth_sched *s, const int32_t *prompt, int n, bool hidden)
{
	static const int32_t layers[] = { 0, -1 };
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_request *r = NULL;
	p.prompt = prompt;
	p.n_prompt = n;
	p.max_tokens = N_GEN;
	p.ignore_eos = true;
	p.sampling.temp = 0;
	if (hidden) {
		p.hidden_layers = layers;
		p.n_hidden_layers = 2;
	}
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

/* Reads r to its end; copies what it kept. */
static void sched_collect(struct hearth_request *r, size_t E, struct sched_run *out)
{
	struct hearth_token_event ev;
	memset(out, 0, sizeof *out);
	memcpy(out->toks, ids, sizeof ids);
	while (r && hearth_request_next(r, &ev, 20000) == 0)
		if (ev.id >= 0 && out->n_gen < N_GEN)
			out->toks[N_IN + out->n_gen++] = ev.id;
	out->n_hidden = r ? hearth_request_n_hidden(r) : 0;
	out->hidden = malloc(((size_t)out->n_hidden * 2 + 1) * E * sizeof *out->hidden);
	for (int32_t pos = 0; out->hidden && pos < out->n_hidden; pos++)
		for (int k = 0; k < 2; k++) {
			const float *h = hearth_request_hidden(r, k, pos);
			T_TRUE(h != NULL);
			if (h)
				memcpy(out->hidden + ((size_t)pos * 2 + (size_t)k) * E, h, E * sizeof *h);
		}
	if (r) {
		T_TRUE(hearth_request_hidden(r, 2, 0) == NULL && hearth_request_hidden(r, 0, out->n_hidden) == NULL);
	}
	hearth_request_free(r);
}

/* A request's hidden states: every position but the last generated one, the
 * same alone and batched with a request that asks for none (whose tokens do
 * not change), and the same as a context's. */
void test_hidden_sched(void)
{
	static const struct synth_spec spec = { .arch = "qwen2", .n_embd = 64, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .wtype = HEARTH_TYPE_F32, .seed = 25 };
	struct hearth_err err = { 0 };
	struct hearth_model *m = load(&spec, 3, "hidden-sched.gguf");
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_sched *s = NULL;
	sp.n_ctx = 256;
	sp.n_threads = 2;
	sp.cache_type = HEARTH_TYPE_F32;
	if (!m)
		return;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	if (!s) {
		hearth_model_free(m);
		return;
	}
	const size_t E = (size_t)hearth_model_n_embd(m);
	const int32_t other[] = { 1, 90, 91, 92, 93, 94, 95, 96, 97, 98 };
	struct sched_run alone, plain, batched, other_alone, other_batched;
	sched_collect(sched_submit(s, ids, N_IN, true), E, &alone);
	sched_collect(sched_submit(s, ids, N_IN, false), E, &plain);
	sched_collect(sched_submit(s, other, 10, false), E, &other_alone);
	struct hearth_request *a = sched_submit(s, ids, N_IN, true), *b = sched_submit(s, other, 10, false);
	sched_collect(a, E, &batched);
	sched_collect(b, E, &other_batched);

	T_EQ_I64(alone.n_gen, N_GEN);
	T_EQ_I64(alone.n_hidden, N_IN + N_GEN - 1);
	T_EQ_I64(plain.n_hidden, 0);
	T_TRUE(memcmp(alone.toks, plain.toks, sizeof alone.toks) == 0);
	T_TRUE(memcmp(other_alone.toks, other_batched.toks, sizeof other_alone.toks) == 0);
	T_EQ_I64(batched.n_hidden, alone.n_hidden);
	if (alone.hidden && batched.hidden && batched.n_hidden == alone.n_hidden)
		T_TRUE(memcmp(alone.hidden, batched.hidden, (size_t)alone.n_hidden * 2 * E * sizeof(float)) == 0);

	/* a context over the same tokens */
	struct hearth_context *c = ctx(m, 16);
	const int32_t layers[] = { 0, 2 };
	if (c && alone.hidden && alone.n_hidden == N_IN + N_GEN - 1) {
		T_OK(hearth_context_set_hidden(c, layers, 2, &err), err);
		T_OK(hearth_decode(c, alone.toks, alone.n_hidden, false, &err), err);
		double d = 0;
		for (int32_t pos = 0; pos < alone.n_hidden; pos++)
			for (int k = 0; k < 2; k++) {
				const float *h = hearth_get_hidden(c, k, pos);
				if (h)
					d = fmax(d, max_diff(h, alone.hidden + ((size_t)pos * 2 + (size_t)k) * E, E));
			}
		if (d > 1e-5)
			T_FAIL("scheduler vs context hidden states differ by %.3g", d);
	}
	hearth_context_free(c);

	/* bad layer lists are refused */
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *r = NULL;
	const int32_t bad[] = { 3 };
	p.prompt = ids;
	p.n_prompt = N_IN;
	p.hidden_layers = bad;
	p.n_hidden_layers = 1;
	T_EQ_I64(hearth_sched_submit(s, &p, &r, &err), HEARTH_EINVAL);
	p.hidden_layers = NULL;
	T_EQ_I64(hearth_sched_submit(s, &p, &r, &err), HEARTH_EINVAL);
	T_TRUE(r == NULL);
	free(alone.hidden);
	free(plain.hidden);
	free(batched.hidden);
	free(other_alone.hidden);
	free(other_batched.hidden);
	hearth_sched_free(s);
	hearth_model_free(m);
}
