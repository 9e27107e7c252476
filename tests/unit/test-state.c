/* test-state.c - saved sequence state: a restored context continues exactly
 * as the one that was saved (logits bit for bit, greedy continuation), and
 * truncated, corrupt, padded or foreign files are refused with a message. */
#include <stdlib.h>

#include "../../src/base/sha256.h"
#include "../../src/model/state.h"
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

/* Recomputes the trailing SHA-256 of a state image of n bytes. */
static void rehash(uint8_t *b, size_t n)
{
	struct hearth_err err = { 0 };
	struct sha256 *h = NULL;
	T_OK(sha256_new(&h, &err), err);
	if (!h)
		return;
	sha256_begin(h);
	sha256_update(h, b, n - 32);
	T_OK(sha256_end(h, b + n - 32), err);
	sha256_free(h);
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

	/* a version 1 file (before sliding windows), its checksum intact: refused, and it says why */
	b[8] = 1;
	rehash(b, n);
	write_bytes(tmp_path("t.state"), b, n);
	refused(tmp_path("t.state"), HEARTH_EUNSUPPORTED, "version 1 is not supported");
	/* nor version 2 (sliding windows without the steering digest) */
	b[8] = 2;
	rehash(b, n);
	write_bytes(tmp_path("t.state"), b, n);
	refused(tmp_path("t.state"), HEARTH_EUNSUPPORTED, "version 2 is not supported");
out:
	free(b);
	hearth_state_free(st);
	hearth_context_free(c);
	hearth_context_free(c32);
	hearth_context_free(oc);
	hearth_model_free(m);
	hearth_model_free(o);
}

/* ---- the scheduler: save a request's state, seed a later one with it ---- */

static struct hearth_sched *sched(struct hearth_model *m)
{
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_err err = { 0 };
	struct hearth_sched *s = NULL;
	sp.n_ctx_seq = 128;
	sp.n_parallel = 2;
	sp.n_threads = 1;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	return s;
}

/* Runs a greedy request to its end; its tokens into ids (*n of them, at most
 * N_GEN), the state it saved into *saved when save, its cached prompt tokens
 * into *cached. */
static int run_req(struct hearth_sched *s, const int32_t *prompt, int32_t n_prompt, int32_t max_tokens,
		   struct hearth_state *seed, bool save, const char *salt, int32_t *ids, int32_t *n,
		   struct hearth_state **saved, int32_t *cached, struct hearth_err *err)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *r = NULL;
	struct hearth_token_event ev;
	p.prompt = prompt;
	p.n_prompt = n_prompt;
	p.max_tokens = max_tokens;
	p.sampling.temp = 0;
	p.prefix_state = seed;
	p.save_state = save;
	p.cache_salt = salt;
	p.cache_salt_size = salt ? strlen(salt) : 0;
	int rc = hearth_sched_submit(s, &p, &r, err);
	if (rc)
		return rc;
	*n = 0;
	while (hearth_request_next(r, &ev, 20000) == 0)
		if (ev.id >= 0 && *n < N_GEN)
			ids[(*n)++] = ev.id;
	if (saved)
		*saved = hearth_request_take_state(r);
	if (cached)
		*cached = hearth_request_cached_tokens(r);
	hearth_request_free(r);
	return 0;
}

void test_state_sched(void)
{
	struct hearth_err err = { 0 };
	struct synth_spec other = spec;
	other.seed = 12;
	T_OK(synth_model_write(tmp_path("m.gguf"), &spec, &err), err);
	T_OK(synth_model_write(tmp_path("o.gguf"), &other, &err), err);
	struct hearth_model *m = load(tmp_path("m.gguf")), *o = load(tmp_path("o.gguf"));
	struct hearth_sched *s1 = NULL, *s2 = NULL, *s3 = NULL;
	struct hearth_state *st = NULL, *rd = NULL;
	int32_t q[N_PROMPT + 10], want[N_GEN], got[N_GEN], n_want = 0, n_got = 0, cached = -1, n = 0;
	if (!m || !o)
		goto out;
	for (int i = 0; i < N_PROMPT + 10; i++)
		q[i] = (i * 37 + 5) % hearth_model_n_vocab(m); /* prompt_tokens' prompt, then more */

	/* the server's POST /v1/cache: the prompt computed and saved (max_tokens 0: one token, not computed) */
	if (!(s1 = sched(m)))
		goto out;
	T_OK(run_req(s1, q, N_PROMPT, 0, NULL, true, "key-1", got, &n_got, &st, NULL, &err), err);
	T_TRUE(st != NULL);
	if (!st)
		goto out;
	hearth_state_tokens(st, &n);
	T_EQ_I64(n, N_PROMPT);
	hearth_sched_free(s1); /* a restart: nothing survives but the file */
	s1 = NULL;
	T_OK(hearth_state_write(st, tmp_path("sched.state"), &err), err);
	T_OK(hearth_state_read(&rd, tmp_path("sched.state"), &err), err);

	/* the reference: a fresh scheduler, no state */
	if (!(s2 = sched(m)) || !(s3 = sched(m)) || !rd)
		goto out;
	T_OK(run_req(s2, q, N_PROMPT + 10, N_GEN, NULL, false, "key-1", want, &n_want, NULL, &cached, &err), err);
	T_EQ_I64(cached, 0);
	/* seeded with the state: its 45 tokens restored, the same continuation */
	T_OK(run_req(s3, q, N_PROMPT + 10, N_GEN, rd, false, "key-1", got, &n_got, NULL, &cached, &err), err);
	rd = NULL; /* taken over */
	T_EQ_I64(cached, N_PROMPT);
	T_EQ_I64(n_got, n_want);
	T_TRUE(n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want));

	/* the same prompt as the state: all but the last token restored; the same answer as computing it */
	T_OK(hearth_state_read(&rd, tmp_path("sched.state"), &err), err);
	T_OK(run_req(s2, q, N_PROMPT, N_GEN, NULL, false, "key-2", want, &n_want, NULL, &cached, &err), err);
	T_OK(run_req(s3, q, N_PROMPT, N_GEN, rd, false, "key-3", got, &n_got, NULL, &cached, &err), err);
	rd = NULL;
	T_EQ_I64(cached, N_PROMPT - 1);
	T_TRUE(n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want));

	/* refused: a prompt that does not start with the state's tokens, another model's state */
	T_OK(hearth_state_read(&rd, tmp_path("sched.state"), &err), err);
	q[3]++;
	T_EQ_I64(run_req(s3, q, N_PROMPT + 10, 1, rd, false, NULL, got, &n_got, NULL, NULL, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "does not start with") != NULL);
	q[3]--;
	hearth_sched_free(s2);
	s2 = sched(o);
	if (s2) {
		T_EQ_I64(run_req(s2, q, N_PROMPT + 10, 1, rd, false, NULL, got, &n_got, NULL, NULL, &err), HEARTH_EINVAL);
		T_TRUE(strstr(err.msg, "another model") != NULL);
	}
out:
	hearth_state_free(st);
	hearth_state_free(rd);
	hearth_sched_free(s1);
	hearth_sched_free(s2);
	hearth_sched_free(s3);
	hearth_model_free(m);
	hearth_model_free(o);
}

/* ---- sliding windows: local layers save only the blocks their window holds ---- */

#define N_LONG 100 /* six windows of 16, three 32-token context blocks */

/* Saves tiny model path's context after a N_LONG-token prompt, restores it
 * into a fresh context and into a used one: the same logits, bit for bit, and
 * the same greedy tokens as the context that never saved. */
static void swa_round_trip(const char *path, int cache_type, int32_t n_local_want)
{
	struct hearth_model *m = load(fixture(path));
	struct hearth_err err = { 0 };
	struct hearth_state *st = NULL, *st2 = NULL, *again = NULL;
	int32_t prompt[N_LONG], want[N_GEN], got[N_GEN];
	if (!m)
		return;
	const int32_t V = hearth_model_n_vocab(m);
	float *want_rows = calloc((size_t)N_GEN * (size_t)V, sizeof(float));
	float *got_rows = calloc((size_t)N_GEN * (size_t)V, sizeof(float));
	struct hearth_context *a = ctx(m, cache_type), *b = ctx(m, cache_type), *c = ctx(m, cache_type);
	if (!a || !b || !c || !want_rows || !got_rows)
		goto out;
	for (int i = 0; i < N_LONG; i++)
		prompt[i] = 3 + (i * 37) % 500;
	T_OK(hearth_decode(a, prompt, N_LONG, false, &err), err);
	greedy(a, V, want, want_rows);

	T_OK(hearth_decode(b, prompt, N_LONG, false, &err), err);
	T_OK(hearth_context_state_get(b, &st, &err), err);
	if (!st)
		goto out;
	/* the local layers' rows from the first block their window keeps: window 16
	 * at position 100 starts in block 2 of 32, one block of slack before it */
	T_EQ_I64(st->n_swa, 16);
	T_EQ_I64(st->n_layer_local, n_local_want);
	T_EQ_I64(st->local_from, 32);
	T_OK(hearth_state_write(st, tmp_path("swa.state"), &err), err);
	T_OK(hearth_state_read(&st2, tmp_path("swa.state"), &err), err);
	if (!st2)
		goto out;
	T_EQ_I64(hearth_state_size(st2), hearth_state_size(st));

	/* into c after it decoded something else past its window: truncated, then restored */
	T_OK(hearth_decode(c, prompt + 7, 60, false, &err), err);
	T_OK(hearth_context_state_set(c, st2, &err), err);
	T_EQ_I64(hearth_context_n_past(c), N_LONG);
	/* saved again, it is the same file */
	T_OK(hearth_context_state_get(c, &again, &err), err);
	T_TRUE(again && hearth_state_size(again) == hearth_state_size(st) &&
	       !memcmp(again->buf, st->buf, hearth_state_size(st)));
	greedy(c, V, got, got_rows);
	T_TRUE(!memcmp(want, got, sizeof want));
	T_TRUE(!memcmp(want_rows, got_rows, (size_t)N_GEN * (size_t)V * sizeof(float)));
out:
	hearth_state_free(st);
	hearth_state_free(st2);
	hearth_state_free(again);
	hearth_context_free(a);
	hearth_context_free(b);
	hearth_context_free(c);
	hearth_model_free(m);
	free(want_rows);
	free(got_rows);
}

void test_state_swa(void)
{
	swa_round_trip("models/tiny-gemma3.f32.gguf", HEARTH_TYPE_F16, 3);
	swa_round_trip("models/tiny-gemma3.f32.gguf", HEARTH_TYPE_F32, 3);
	swa_round_trip("models/tiny-gpt-oss.f32.gguf", HEARTH_TYPE_F16, 1);
	swa_round_trip("models/tiny-gpt-oss.mxfp4_moe.gguf", HEARTH_TYPE_Q8_0, 1);

	/* a state of a model without windows does not restore into one with them */
	struct hearth_err err = { 0 };
	struct hearth_model *g = load(fixture("models/tiny-gemma3.f32.gguf"));
	struct hearth_state *st = NULL;
	T_OK(hearth_state_read(&st, tmp_path("swa.state"), &err), err); /* gpt-oss's */
	struct hearth_context *gc = g ? ctx(g, HEARTH_TYPE_Q8_0) : NULL;
	if (gc && st) {
		T_EQ_I64(hearth_context_state_set(gc, st, &err), HEARTH_EINVAL);
		T_TRUE(strstr(err.msg, "another model") != NULL);
	}
	hearth_state_free(st);
	hearth_context_free(gc);
	hearth_model_free(g);
}

/* The scheduler on gemma3 (window 16, blocks of 16): a request's saved
 * state seeds a later one after a restart, with the same continuation. */
void test_state_swa_sched(void)
{
	struct hearth_err err = { 0 };
	struct hearth_model *m = load(fixture("models/tiny-gemma3.f32.gguf"));
	struct hearth_sched *s1 = NULL, *s2 = NULL, *s3 = NULL;
	struct hearth_state *st = NULL, *rd = NULL;
	int32_t q[N_LONG + 10], want[N_GEN], got[N_GEN], n_want = 0, n_got = 0, cached = -1, n = 0;
	if (!m)
		return;
	for (int i = 0; i < N_LONG + 10; i++)
		q[i] = 3 + (i * 37) % 500;
	if (!(s1 = sched(m)))
		goto out;
	T_OK(run_req(s1, q, N_LONG, 0, NULL, true, "key-1", got, &n_got, &st, NULL, &err), err);
	T_TRUE(st != NULL);
	if (!st)
		goto out;
	hearth_state_tokens(st, &n);
	T_EQ_I64(n, N_LONG);
	T_TRUE(st->local_from > 0 && st->local_from <= N_LONG - 16);
	hearth_sched_free(s1);
	s1 = NULL;
	T_OK(hearth_state_write(st, tmp_path("swa-sched.state"), &err), err);
	T_OK(hearth_state_read(&rd, tmp_path("swa-sched.state"), &err), err);
	if (!(s2 = sched(m)) || !(s3 = sched(m)) || !rd)
		goto out;
	/* a longer prompt: all the state's tokens restored */
	T_OK(run_req(s2, q, N_LONG + 10, N_GEN, NULL, false, "key-1", want, &n_want, NULL, &cached, &err), err);
	T_EQ_I64(cached, 0);
	T_OK(run_req(s3, q, N_LONG + 10, N_GEN, rd, false, "key-1", got, &n_got, NULL, &cached, &err), err);
	rd = NULL;
	T_EQ_I64(cached, N_LONG);
	T_TRUE(n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want));
	/* the same prompt: all but its last token restored */
	T_OK(hearth_state_read(&rd, tmp_path("swa-sched.state"), &err), err);
	T_OK(run_req(s2, q, N_LONG, N_GEN, NULL, false, "key-2", want, &n_want, NULL, &cached, &err), err);
	T_OK(run_req(s3, q, N_LONG, N_GEN, rd, false, "key-3", got, &n_got, NULL, &cached, &err), err);
	rd = NULL;
	T_EQ_I64(cached, N_LONG - 1);
	T_TRUE(n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want));
out:
	hearth_state_free(st);
	hearth_state_free(rd);
	hearth_sched_free(s1);
	hearth_sched_free(s2);
	hearth_sched_free(s3);
	hearth_model_free(m);
}
