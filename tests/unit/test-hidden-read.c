/* test-hidden-read.c - hearth_request_hidden_read: a request's hidden states
 * read while it runs (what a stream sends) are, position for position, the
 * ones kept at its end; reads never pass what is kept. */
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

#define N_GEN 6

void test_hidden_read(void)
{
	static const int32_t layers[] = { 1, -1 }, prompt[] = { 1, 40, 51, 62, 73, 84, 95 };
	const int32_t n_prompt = (int32_t)(sizeof prompt / sizeof prompt[0]);
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_sched *s = NULL;
	struct hearth_request *r = NULL;
	struct hearth_token_event ev;
	float *seen = NULL, *tmp = NULL;
	sp.n_ctx = 128;
	sp.n_ctx_seq = 64;
	sp.n_threads = 2;
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen2.f32.gguf"), &mp, &err), err);
	if (!m)
		return;
	const size_t per_pos = 2 * (size_t)hearth_model_n_embd(m);
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	p.prompt = prompt;
	p.n_prompt = n_prompt;
	p.max_tokens = N_GEN;
	p.ignore_eos = true;
	p.sampling.temp = 0;
	p.hidden_layers = layers;
	p.n_hidden_layers = 2;
	seen = calloc((size_t)(n_prompt + N_GEN) * per_pos, sizeof *seen);
	tmp = calloc((size_t)(n_prompt + N_GEN) * per_pos, sizeof *tmp);
	if (!s || !seen || !tmp)
		goto out;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	int32_t got = 0, n_gen = 0;
	while (r && hearth_request_next(r, &ev, 20000) == 0) {
		if (ev.id < 0)
			continue;
		n_gen++;
		/* what the g-th token's event vouches for: the prompt, then one position per later token */
		const int32_t want = n_prompt + n_gen - 1;
		const int32_t n = hearth_request_hidden_read(r, got, want - got, seen + (size_t)got * per_pos);
		T_EQ_I64(n, want - got);
		got += n;
		T_TRUE(hearth_request_hidden_read(r, got + N_GEN + 2, 1, tmp) == 0); /* past what is kept: nothing */
	}
	T_EQ_I64(n_gen, N_GEN);
	T_EQ_I64(got, n_prompt + N_GEN - 1);
	T_EQ_I64(hearth_request_n_hidden(r), got);
	/* after the end: the same rows as hearth_request_hidden gives, and as one read of them all */
	for (int32_t pos = 0; pos < got; pos++)
		for (int k = 0; k < 2; k++) {
			const float *h = hearth_request_hidden(r, k, pos);
			T_TRUE(h && !memcmp(h, seen + (size_t)pos * per_pos + (size_t)k * (per_pos / 2),
					    per_pos / 2 * sizeof *h));
		}
	T_EQ_I64(hearth_request_hidden_read(r, 0, got + 5, tmp), got);
	T_TRUE(!memcmp(tmp, seen, (size_t)got * per_pos * sizeof *tmp));
	T_EQ_I64(hearth_request_hidden_read(r, -1, 2, tmp), 0);
	T_EQ_I64(hearth_request_hidden_read(r, got, 1, tmp), 0);
out:
	hearth_request_free(r);
	hearth_sched_free(s);
	hearth_model_free(m);
	free(seen);
	free(tmp);
}
