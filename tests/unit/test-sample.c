/* test-sample.c - the sampler: greedy is argmax, seeds reproduce, the
 * filters keep what they promise, penalties push repeated tokens down. */
#include <stdlib.h>

#include "../harness.h"

static int32_t draw(const struct hearth_sampler_params *p, const float *logits, int n_vocab)
{
	struct hearth_err err = { 0 };
	struct hearth_sampler *s = NULL;
	T_OK(hearth_sampler_new(&s, p, n_vocab, &err), err);
	int32_t id = s ? hearth_sampler_sample(s, logits) : -1;
	hearth_sampler_free(s);
	return id;
}

void test_sampler(void)
{
	enum { V = 100 };
	float logits[V];
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_err err = { 0 };
	for (int i = 0; i < V; i++)
		logits[i] = (float)((i * 37) % V) / 10.0f; /* a permutation: max at i with i*37%100 == 99 */
	int best = 0;
	for (int i = 0; i < V; i++)
		if (logits[i] > logits[best])
			best = i;

	p.temp = 0;
	T_EQ_I64(draw(&p, logits, V), best);
	p = hearth_sampler_default_params();
	p.top_k = 1;
	T_EQ_I64(draw(&p, logits, V), best);

	/* same seed, same sequence; another seed, (almost surely) another */
	p = hearth_sampler_default_params();
	p.temp = 1.5f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0;
	struct hearth_sampler *a = NULL, *b = NULL, *c = NULL;
	p.seed = 7;
	T_OK(hearth_sampler_new(&a, &p, V, &err), err);
	T_OK(hearth_sampler_new(&b, &p, V, &err), err);
	p.seed = 8;
	T_OK(hearth_sampler_new(&c, &p, V, &err), err);
	int same_ab = 0, same_ac = 0, distinct = 0, seen[V] = { 0 };
	for (int i = 0; a && b && c && i < 200; i++) {
		int32_t x = hearth_sampler_sample(a, logits), y = hearth_sampler_sample(b, logits);
		int32_t z = hearth_sampler_sample(c, logits);
		same_ab += x == y;
		same_ac += x == z;
		T_TRUE(x >= 0 && x < V);
		if (!seen[x]++)
			distinct++;
	}
	T_EQ_I64(same_ab, 200);
	T_TRUE(same_ac < 200);
	T_TRUE(distinct > 5); /* temperature 1.5 over 100 tokens spreads */
	hearth_sampler_free(a);
	hearth_sampler_free(b);
	hearth_sampler_free(c);

	/* top-k 3: only the three best tokens ever come out */
	p = hearth_sampler_default_params();
	p.top_k = 3;
	p.top_p = 1;
	p.min_p = 0;
	p.temp = 5;
	T_OK(hearth_sampler_new(&a, &p, V, &err), err);
	for (int i = 0; a && i < 300; i++) {
		int32_t x = hearth_sampler_sample(a, logits);
		T_TRUE(logits[x] >= 9.7f);
	}
	hearth_sampler_free(a);

	/* min-p 0.5: tokens at least half as likely as the best */
	float two[V];
	for (int i = 0; i < V; i++)
		two[i] = -10;
	two[3] = 1.0f;
	two[4] = 1.0f - 0.5f; /* p ratio e^-0.5 = 0.61: kept */
	two[5] = 1.0f - 2.0f; /* ratio 0.14: dropped */
	p = hearth_sampler_default_params();
	p.top_k = 0;
	p.top_p = 1;
	p.min_p = 0.5f;
	p.temp = 1;
	T_OK(hearth_sampler_new(&a, &p, V, &err), err);
	int got4 = 0;
	for (int i = 0; a && i < 300; i++) {
		int32_t x = hearth_sampler_sample(a, two);
		T_TRUE(x == 3 || x == 4);
		got4 += x == 4;
	}
	T_TRUE(got4 > 0);
	hearth_sampler_free(a);

	/* repetition penalty: a repeated best token loses to the runner-up */
	float pen[V];
	for (int i = 0; i < V; i++)
		pen[i] = 0;
	pen[10] = 2.0f;
	pen[11] = 1.5f;
	p = hearth_sampler_default_params();
	p.temp = 0;
	p.repeat_penalty = 1.5f;
	T_OK(hearth_sampler_new(&a, &p, V, &err), err);
	if (a) {
		T_EQ_I64(hearth_sampler_sample(a, pen), 10);
		hearth_sampler_accept(a, 10);
		T_EQ_I64(hearth_sampler_sample(a, pen), 11);
	}
	hearth_sampler_free(a);
	/* presence penalty likewise */
	p.repeat_penalty = 1;
	p.presence_penalty = 1.0f;
	T_OK(hearth_sampler_new(&a, &p, V, &err), err);
	if (a) {
		hearth_sampler_accept(a, 10);
		T_EQ_I64(hearth_sampler_sample(a, pen), 11);
	}
	hearth_sampler_free(a);

	p = hearth_sampler_default_params();
	p.temp = NAN;
	T_EQ_I64(hearth_sampler_new(&a, &p, V, &err), HEARTH_EINVAL);
}
