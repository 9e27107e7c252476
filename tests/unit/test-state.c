/* test-state.c - saved sequence state: a restored context continues exactly
 * as the one that was saved (logits bit for bit, greedy continuation), and
 * truncated, corrupt, padded or foreign files are refused with a message. */
#include <stdlib.h>

#include "../harness.h"
#include "../synth.h"
#include "../tests.h"

#define N_PROMPT 45 /* more than a 32-token context block: a full block and a partial one */
#define N_GEN 8

static const struct synth_spec spec = { .arch = "qwen3", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
					.n_ff = 128, .head_dim = 32, .wtype = HEARTH_TYPE_F32, .tied = true,
					.seed = 11 };

static struct hearth_model *load(const char *path)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	return m;
}

static struct hearth_context *ctx(struct hearth_model *m, int cache_type)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	cp.n_ctx = 128;
	cp.n_threads = 1;
	cp.cache_type = cache_type;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	return c;
}

static int32_t argmax(const float *l, int32_t n)
{
	int32_t best = 0;
	for (int32_t i = 1; i < n; i++)
		if (l[i] > l[best])
			best = i;
	return best;
}

/* Greedy continuation of c for N_GEN tokens into out, with the logits each
 * step chose from (the current ones first) into rows. */
static void greedy(struct hearth_context *c, int32_t n_vocab, int32_t *out, float *rows)
{
	struct hearth_err err = { 0 };
	for (int i = 0; i < N_GEN; i++) {
		const float *l = hearth_get_logits(c, -1);
		T_TRUE(l != NULL);
		if (!l)
			return;
		memcpy(rows + (size_t)i * (size_t)n_vocab, l, (size_t)n_vocab * sizeof *l);
		out[i] = argmax(l, n_vocab);
		T_OK(hearth_decode(c, &out[i], 1, false, &err), err);
	}
}

static void prompt_tokens(int32_t *p, int32_t n_vocab)
{
	for (int i = 0; i < N_PROMPT; i++)
		p[i] = (i * 37 + 5) % n_vocab;
}

/* Saves after the prompt, restores into a fresh context, continues: the same
 * logits and tokens as the context that never saved. */
static void round_trip(struct hearth_model *m, int cache_type)
{
	const int32_t V = hearth_model_n_vocab(m);
	struct hearth_err err = { 0 };
	int32_t prompt[N_PROMPT], want[N_GEN], got[N_GEN];
	float *want_rows = calloc((size_t)N_GEN * (size_t)V, sizeof(float));
	float *got_rows = calloc((size_t)N_GEN * (size_t)V, sizeof(float));
	struct hearth_state *st = NULL, *st2 = NULL;
	prompt_tokens(prompt, V);

	struct hearth_context *a = ctx(m, cache_type), *b = ctx(m, cache_type), *c = ctx(m, cache_type);
	if (!a || !b || !c || !want_rows || !got_rows)
		goto out;
	T_OK(hearth_decode(a, prompt, N_PROMPT, false, &err), err);
	greedy(a, V, want, want_rows);

	T_OK(hearth_decode(b, prompt, N_PROMPT, false, &err), err);
	T_OK(hearth_context_state_get(b, &st, &err), err);
	if (!st)
		goto out;
	T_OK(hearth_state_write(st, tmp_path("s.state"), &err), err);
	T_OK(hearth_state_read(&st2, tmp_path("s.state"), &err), err);
	if (!st2)
		goto out;
	int32_t n = 0;
	const int32_t *toks = hearth_state_tokens(st2, &n);
	T_EQ_I64(n, N_PROMPT);
	T_TRUE(n == N_PROMPT && !memcmp(toks, prompt, sizeof prompt));
	T_EQ_I64(hearth_state_size(st2), hearth_state_size(st));
	T_OK(hearth_state_check(st2, m, &err), err);

	T_OK(hearth_context_state_set(c, st2, &err), err);
	T_EQ_I64(hearth_context_n_past(c), N_PROMPT);
	greedy(c, V, got, got_rows);
	T_TRUE(!memcmp(want, got, sizeof want));
	T_TRUE(!memcmp(want_rows, got_rows, (size_t)N_GEN * (size_t)V * sizeof(float)));

	/* a state saved without fresh logits restores without them: decode the last token again */
	hearth_context_truncate(b, N_PROMPT - 1);
	hearth_state_free(st);
	st = NULL;
	T_OK(hearth_context_state_get(b, &st, &err), err);
	if (st) {
		T_OK(hearth_context_state_set(c, st, &err), err);
		T_TRUE(hearth_get_logits(c, -1) == NULL);
		T_OK(hearth_decode(c, &prompt[N_PROMPT - 1], 1, false, &err), err);
		greedy(c, V, got, got_rows);
		T_TRUE(!memcmp(want, got, sizeof want));
	}
out:
	hearth_state_free(st);
	hearth_state_free(st2);
	hearth_context_free(a);
	hearth_context_free(b);
	hearth_context_free(c);
	free(want_rows);
	free(got_rows);
}

void test_state_round_trip(void)
{
	struct hearth_err err = { 0 };
	T_OK(synth_model_write(tmp_path("m.gguf"), &spec, &err), err);
	struct hearth_model *m = load(tmp_path("m.gguf"));
	if (!m)
		return;
	const int types[] = { HEARTH_TYPE_F16, HEARTH_TYPE_F32, HEARTH_TYPE_Q8_0 };
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		round_trip(m, types[i]);
	hearth_model_free(m);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (f) {
		T_EQ_I64(fwrite(data, 1, n, f), n);
		fclose(f);
	}
}

static void *read_bytes(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	void *b = malloc(*n);
	if (b && fread(b, 1, *n, f) != *n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

/* Expects reading path to fail with code and a message containing needle. */
static void refused(const char *path, int code, const char *needle)
{
	struct hearth_err err = { 0 };
	struct hearth_state *st = NULL;
	T_EQ_I64(hearth_state_read(&st, path, &err), code);
	T_TRUE(st == NULL);
	if (!strstr(err.msg, needle))
		T_FAIL("message '%s' lacks '%s'", err.msg, needle);
	hearth_state_free(st);
}

void test_state_refused(void)
{
	struct hearth_err err = { 0 };
	struct synth_spec other = spec;
	other.seed = 12; /* the same shapes, other weights */
	T_OK(synth_model_write(tmp_path("m.gguf"), &spec, &err), err);
	T_OK(synth_model_write(tmp_path("o.gguf"), &other, &err), err);
	struct hearth_model *m = load(tmp_path("m.gguf")), *o = load(tmp_path("o.gguf"));
	struct hearth_context *c = m ? ctx(m, HEARTH_TYPE_F16) : NULL, *oc = o ? ctx(o, HEARTH_TYPE_F16) : NULL;
	struct hearth_context *c32 = m ? ctx(m, HEARTH_TYPE_F32) : NULL;
	struct hearth_state *st = NULL;
	int32_t prompt[N_PROMPT];
	size_t n = 0;
	uint8_t *b = NULL;
	if (!c || !oc || !c32)
		goto out;
	prompt_tokens(prompt, hearth_model_n_vocab(m));
	T_OK(hearth_decode(c, prompt, N_PROMPT, false, &err), err);
	T_OK(hearth_context_state_get(c, &st, &err), err);
	if (!st)
		goto out;
	T_OK(hearth_state_write(st, tmp_path("s.state"), &err), err);

	/* another model with the same shapes: refused by the check and by a restore */
	T_EQ_I64(hearth_state_check(st, o, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "another model") != NULL);
	T_EQ_I64(hearth_context_state_set(oc, st, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "another model") != NULL);
	T_EQ_I64(hearth_context_n_past(oc), 0);
	/* the same model, another cache type */
	T_EQ_I64(hearth_context_state_set(c32, st, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "f16") != NULL);

	if (!(b = read_bytes(tmp_path("s.state"), &n)) || n < 200)
		goto out;
	refused(tmp_path("none.state"), HEARTH_ENOTFOUND, "none.state");
	write_bytes(tmp_path("t.state"), b, n - 1);
	refused(tmp_path("t.state"), HEARTH_EINVAL, "truncated");
	write_bytes(tmp_path("t.state"), b, 50);
	refused(tmp_path("t.state"), HEARTH_EINVAL, "too short");
	b[n / 2] ^= 1; /* a flipped bit in the rows */
	write_bytes(tmp_path("t.state"), b, n);
	refused(tmp_path("t.state"), HEARTH_EINVAL, "corrupt");
	b[n / 2] ^= 1;
	b[0] = 'X';
	write_bytes(tmp_path("t.state"), b, n);
	refused(tmp_path("t.state"), HEARTH_EINVAL, "magic");
	b[0] = 'H';
	/* every header byte changed in turn: refused, never a crash or a huge allocation */
	for (size_t i = 8; i < 96; i++) {
		struct hearth_state *bad = NULL;
		const uint8_t keep = b[i];
		b[i] ^= 0xA5;
		T_TRUE(hearth_state_parse(&bad, b, n, "mutated", &err) != 0);
		T_TRUE(bad == NULL);
		hearth_state_free(bad);
		b[i] = keep;
	}
	struct hearth_state *good = NULL;
	T_OK(hearth_state_parse(&good, b, n, "intact", &err), err);
	hearth_state_free(good);
out:
	free(b);
	hearth_state_free(st);
	hearth_context_free(c);
	hearth_context_free(c32);
	hearth_context_free(oc);
	hearth_model_free(m);
	hearth_model_free(o);
}
