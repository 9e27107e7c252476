/*
 * sampler.c - choosing the next token from logits.
 *
 * The chain, in llama.cpp's default order: repetition / frequency / presence
 * penalties over the last repeat_last_n accepted tokens, then (unless greedy)
 * top-k, top-p, min-p on the softmax of the penalized logits, then temperature
 * and a draw from the remaining distribution with a seeded generator.
 * Greedy (temp <= 0) takes the argmax after penalties.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"

struct cand {
	int32_t id;
	float logit;
	float p;
};

struct hearth_sampler {
	struct hearth_sampler_params p;
	int32_t n_vocab;
	struct cand *cand;   /* [n_vocab] */
	int32_t *count;      /* [n_vocab] occurrences in the penalty window */
	int32_t *hist;       /* accepted tokens */
	size_t n_hist, cap_hist;
	uint64_t rng;
};

struct hearth_sampler_params hearth_sampler_default_params(void)
{
	return (struct hearth_sampler_params){ .temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
					       .repeat_penalty = 1.0f, .repeat_last_n = 64,
					       .frequency_penalty = 0.0f, .presence_penalty = 0.0f, .seed = 0 };
}

int hearth_sampler_new(struct hearth_sampler **out, const struct hearth_sampler_params *p, int32_t n_vocab,
		       struct hearth_err *err)
{
	struct hearth_sampler *s;
	*out = NULL;
	if (n_vocab <= 0)
		return err_set(err, HEARTH_EINVAL, "sampler: vocabulary size %d", n_vocab);
	if (!(isfinite(p->temp) && isfinite(p->top_p) && isfinite(p->min_p) && isfinite(p->repeat_penalty) &&
	      p->repeat_penalty > 0 && isfinite(p->frequency_penalty) && isfinite(p->presence_penalty)))
		return err_set(err, HEARTH_EINVAL, "sampler: temperature, top-p, min-p and penalties must be finite "
			       "(and the repeat penalty positive)");
	if (!(s = calloc(1, sizeof *s)))
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory");
	s->p = *p;
	s->n_vocab = n_vocab;
	s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
	s->count = calloc((size_t)n_vocab, sizeof *s->count);
	if (!s->cand || !s->count) {
		hearth_sampler_free(s);
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory");
	}
	s->rng = p->seed ^ 0x9e3779b97f4a7c15ULL;
	*out = s;
	return 0;
}

void hearth_sampler_free(struct hearth_sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s->count);
	free(s->hist);
	free(s);
}

void hearth_sampler_accept(struct hearth_sampler *s, int32_t id)
{
	if (id < 0 || id >= s->n_vocab)
		return;
	if (s->n_hist == s->cap_hist) {
		size_t cap = s->cap_hist ? 2 * s->cap_hist : 256;
		int32_t *h = realloc(s->hist, cap * sizeof *h);
		if (!h)
			return; /* penalties then see a shorter history */
		s->hist = h;
		s->cap_hist = cap;
	}
	s->hist[s->n_hist++] = id;
}

/* splitmix64: a uniform double in [0, 1). */
static double rng_uniform(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int by_logit_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void apply_penalties(struct hearth_sampler *s)
{
	const struct hearth_sampler_params *p = &s->p;
	if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
		return;
	size_t n = s->n_hist;
	if (p->repeat_last_n >= 0 && (size_t)p->repeat_last_n < n)
		n = (size_t)p->repeat_last_n;
	const int32_t *h = s->hist + (s->n_hist - n);
	for (size_t i = 0; i < n; i++)
		s->count[h[i]]++;
	for (size_t i = 0; i < n; i++) {
		int32_t id = h[i];
		int32_t c = s->count[id];
		if (c == 0)
			continue; /* already applied */
		struct cand *cd = &s->cand[id];
		cd->logit = cd->logit > 0 ? cd->logit / p->repeat_penalty : cd->logit * p->repeat_penalty;
		cd->logit -= (float)c * p->frequency_penalty + p->presence_penalty;
		s->count[id] = 0;
	}
}

/* softmax over cand[0..n) (sorted, best first) into .p */
static void softmax_sorted(struct cand *c, size_t n)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		c[i].p = expf(c[i].logit - c[0].logit);
		sum += c[i].p;
	}
	for (size_t i = 0; i < n; i++)
		c[i].p = (float)(c[i].p / sum);
}

int32_t hearth_sampler_sample(struct hearth_sampler *s, const float *logits)
{
	const struct hearth_sampler_params *p = &s->p;
	for (int32_t i = 0; i < s->n_vocab; i++)
		s->cand[i] = (struct cand){ i, logits[i], 0 };
	apply_penalties(s);

	if (p->temp <= 0) {
		int32_t best = 0;
		for (int32_t i = 1; i < s->n_vocab; i++)
			if (s->cand[i].logit > s->cand[best].logit)
				best = i;
		return best;
	}
	qsort(s->cand, (size_t)s->n_vocab, sizeof *s->cand, by_logit_desc);
	size_t n = (size_t)s->n_vocab;
	if (p->top_k > 0 && (size_t)p->top_k < n)
		n = (size_t)p->top_k;
	softmax_sorted(s->cand, n);
	if (p->top_p < 1.0f) {
		double cum = 0;
		for (size_t i = 0; i < n; i++) {
			cum += s->cand[i].p;
			if (cum >= p->top_p) {
				n = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0.0f) {
		const float cut = p->min_p * s->cand[0].p;
		size_t k = 1;
		while (k < n && s->cand[k].p >= cut)
			k++;
		n = k;
	}
	for (size_t i = 0; i < n; i++)
		s->cand[i].logit /= p->temp;
	softmax_sorted(s->cand, n);
	double r = rng_uniform(&s->rng), cum = 0;
	for (size_t i = 0; i < n; i++) {
		cum += s->cand[i].p;
		if (r < cum)
			return s->cand[i].id;
	}
	return s->cand[n - 1].id;
}
