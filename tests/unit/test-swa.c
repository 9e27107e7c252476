/* test-swa.c - sliding-window attention (tiny-gemma3: window 16 on layers 0,
 * 1 and 3). Without an oracle: with every layer local, the last position's
 * logits depend on exactly the tokens from p - n_layer * (W - 1) on, the
 * receptive field of n_layer windows, on f32 and f16 caches (in-place and
 * converted tiles), decoded at once and in chunks. With the
 * file's layout, the f16 cache agrees with the f32 one. */
#include <stdlib.h>

#include "../../src/model/model.h"
#include "../harness.h"

enum { N_TOK = 100, WINDOW = 16 };

/* The logits of the last of ids[0..n) decoded in chunks of chunk (0: one batch). */
static void last_logits(struct hearth_model *m, const int32_t *ids, int n, int chunk, int cache, float *out)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	cp.n_ctx = 128;
	cp.cache_type = cache;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		return;
	const int step = chunk ? chunk : n;
	for (int i = 0; i < n; i += step)
		T_OK(hearth_decode(c, ids + i, n - i < step ? n - i : step, i + step >= n, &err), err);
	const float *l = hearth_get_logits(c, -1);
	if (l)
		memcpy(out, l, (size_t)hearth_model_n_vocab(m) * sizeof *out);
	hearth_context_free(c);
}

void test_swa_window(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture("models/tiny-gemma3.f32.gguf"), &mp, &err), err);
	if (!m)
		return;
	const int V = hearth_model_n_vocab(m), L = m->hp.n_layer;
	T_EQ_I64(m->layers[0].n_swa, WINDOW);
	T_EQ_I64(m->layers[2].n_swa, 0); /* pattern 3: every third layer global */
	T_EQ_I64(m->layers[3].n_swa, WINDOW);
	T_TRUE(m->layers[0].rope_base == 10000.0f && m->layers[2].rope_base == 1e6f);

	int32_t ids[N_TOK], alt[N_TOK];
	for (int i = 0; i < N_TOK; i++)
		ids[i] = 3 + (i * 37) % 500;
	float *base = malloc((size_t)V * sizeof *base), *got = malloc((size_t)V * sizeof *got);
	float *f16 = malloc((size_t)V * sizeof *f16);
	if (!base || !got || !f16)
		goto out;

	/* the file's layout: an f16 cache rounds K and V, no more */
	last_logits(m, ids, N_TOK, 0, HEARTH_TYPE_F32, base);
	last_logits(m, ids, N_TOK, 0, HEARTH_TYPE_F16, f16);
	double d = 0;
	for (int i = 0; i < V; i++)
		d = fmax(d, fabs((double)base[i] - f16[i]));
	T_TRUE(d < 0.05);

	for (int il = 0; il < L; il++)
		m->layers[il].n_swa = WINDOW;
	const int first = N_TOK - 1 - L * (WINDOW - 1); /* the first token the last position sees */
	const int caches[] = { HEARTH_TYPE_F32, HEARTH_TYPE_F16 }, chunks[] = { 0, 9 };
	for (size_t c = 0; c < 2; c++) {
		last_logits(m, ids, N_TOK, 0, caches[c], base);
		for (size_t k = 0; k < 2; k++) {
			/* tokens before the field do not matter, not by a bit */
			memcpy(alt, ids, sizeof ids);
			for (int i = 0; i < first; i++)
				alt[i] = 5 + (i * 11) % 400;
			last_logits(m, alt, N_TOK, chunks[k], caches[c], got);
			if (memcmp(base, got, (size_t)V * sizeof *got))
				T_FAIL("cache %d, chunks of %d: a token before the window changed the logits", caches[c], chunks[k]);
			/* the field's first token does */
			memcpy(alt, ids, sizeof ids);
			alt[first] = ids[first] == 7 ? 8 : 7;
			last_logits(m, alt, N_TOK, chunks[k], caches[c], got);
			T_TRUE(memcmp(base, got, (size_t)V * sizeof *got) != 0);
		}
	}
out:
	free(base);
	free(got);
	free(f16);
	hearth_model_free(m);
}

/* Logits of the last of n tokens through a context of n_ctx positions
 * decoding n_batch at a time; its n_past after truncating to keep[0], keep[1]. */
static float *long_run(struct hearth_model *m, const int32_t *ids, int n, int n_ctx, int n_batch, const int32_t *keep,
		       int32_t *kept)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int V = hearth_model_n_vocab(m);
	float *out = malloc((size_t)V * sizeof *out);
	cp.n_ctx = n_ctx;
	cp.n_batch = n_batch;
	cp.cache_type = HEARTH_TYPE_F16;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c || !out) {
		hearth_context_free(c);
		free(out);
		return NULL;
	}
	T_OK(hearth_decode(c, ids, n, false, &err), err);
	memcpy(out, hearth_get_logits(c, -1), (size_t)V * sizeof *out);
	for (int k = 0; k < 2; k++) {
		hearth_context_truncate(c, keep[k]);
		kept[k] = hearth_context_n_past(c);
	}
	/* and it goes on from there */
	T_OK(hearth_decode(c, ids, 40, false, &err), err);
	hearth_context_free(c);
	return out;
}

/* A context 600 positions long whose local layers keep only about 176 (a
 * batch of 32, the window of 16 and some blocks of 32): the same logits as
 * one that holds all 600 (batches of 600); stepping back a few tokens keeps
 * the context, stepping back past the window's blocks empties it. */
void test_swa_memory(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture("models/tiny-gemma3.f32.gguf"), &mp, &err), err);
	if (!m)
		return;
	enum { N = 600 };
	int32_t *ids = malloc(N * sizeof *ids), kept_small[2], kept_big[2];
	const int32_t keep[2] = { N - 5, N / 2 };
	for (int i = 0; ids && i < N; i++)
		ids[i] = 3 + (i * 53) % 509;
	const int V = hearth_model_n_vocab(m);
	float *small = ids ? long_run(m, ids, N, 1024, 32, keep, kept_small) : NULL;
	float *big = ids ? long_run(m, ids, N, 1024, N, keep, kept_big) : NULL;
	T_TRUE(small && big);
	double d = 0;
	for (int i = 0; small && big && i < V; i++)
		d = fmax(d, fabs((double)small[i] - big[i]));
	T_TRUE(d < 1e-4);
	T_EQ_I64(kept_small[0], N - 5);
	T_EQ_I64(kept_small[1], 0);
	free(small);
	free(big);
	free(ids);
	hearth_model_free(m);
}
