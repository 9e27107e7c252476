/* test-sample-select.c - the sampler's filters keep exactly the tokens a full
 * sort of the vocabulary would keep: top-k, then top-p on the softmax of the
 * top-k set, then min-p, over rows of many shapes (peaked, flat, tied,
 * all equal, with infinities and NaNs) and sizes; the row kernels agree with
 * the reference ones bit for bit; logprobs match a double-precision softmax. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../../src/kern/kern.h"
#include "../../src/sample/sampler.h"
#include "../harness.h"

struct cand {
	float l;
	int32_t id;
};

static int by_best(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->l != y->l)
		return x->l > y->l ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* A uniform double in [0, 1) from a small LCG: reproducible rows. */
static double unif(uint64_t *st)
{
	*st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(*st >> 11) * (1.0 / 9007199254740992.0);
}

static float gauss(uint64_t *st)
{
	const double u = unif(st) + 1e-12, v = unif(st);
	return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

enum { N_KINDS = 8 };

/* Row kind k of V logits. */
static void make_row(int kind, int V, uint64_t *st, float *l)
{
	for (int i = 0; i < V; i++) {
		switch (kind) {
		case 0: l[i] = 0.05f * gauss(st); break;              /* nearly flat */
		case 1: l[i] = gauss(st); break;
		case 2: l[i] = 3.5f * gauss(st); break;               /* a real model's spread */
		case 3: l[i] = 15.0f * gauss(st); break;              /* very peaked */
		case 4: l[i] = (float)(int)(unif(st) * 4); break;     /* four values: ties everywhere */
		case 5: l[i] = 1.25f; break;                          /* all equal */
		case 6: l[i] = (float)(int)(unif(st) * 3) * 1e30f; break; /* far apart */
		default:                                              /* with infinities and NaNs */
			l[i] = gauss(st);
			if (i % 7 == 3)
				l[i] = -INFINITY;
			if (i % 11 == 5)
				l[i] = NAN;
			if (i == V / 2 && V > 2)
				l[i] = INFINITY;
			break;
		}
	}
}

/* The tokens kept, by a full sort; false when the top-p cut falls within
 * rounding of the boundary (either answer is right). */
static bool reference(const struct cand *sorted, int V, const struct hearth_sampler_params *p, char *keep)
{
	const float max = sorted[0].l;
	int n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
	double z = 0;
	for (int i = 0; i < n; i++)
		z += exp((double)sorted[i].l - max);
	int np = n, nm = n;
	bool clear = true;
	if (p->top_p < 1) {
		const double need = (double)p->top_p * z;
		double cum = 0;
		for (int i = 0; i < n; i++) {
			const double prev = cum;
			cum += exp((double)sorted[i].l - max);
			if (cum >= need || i == n - 1) {
				np = i + 1;
				clear = fabs(cum - need) > 1e-5 * z && (i == 0 || fabs(need - prev) > 1e-5 * z);
				break;
			}
		}
	}
	if (p->min_p > 0) {
		const float cut = fminf(max + logf(p->min_p), max);
		nm = 0;
		while (nm < n && sorted[nm].l >= cut)
			nm++;
	}
	n = n < np ? n : np;
	n = n < nm ? n : nm;
	memset(keep, 0, (size_t)V);
	for (int i = 0; i < n; i++)
		keep[sorted[i].id] = 1;
	return clear;
}

static float sanitized(float x) { return x != x ? -FLT_MAX : x > FLT_MAX ? FLT_MAX : x < -FLT_MAX ? -FLT_MAX : x; }

/* Compares the sampler's kept set with the reference for every parameter set. */
static void check_row(const float *l, int V, int kind, int *checked, int *unclear)
{
	struct cand *c = malloc((size_t)V * sizeof *c);
	char *want = malloc((size_t)V), *got = malloc((size_t)V);
	T_TRUE(c && want && got);
	if (!c || !want || !got)
		goto out;
	for (int i = 0; i < V; i++)
		c[i] = (struct cand){ sanitized(l[i]), i };
	qsort(c, (size_t)V, sizeof *c, by_best);
	const int ks[] = { 0, 1, 7, 40, V - 1, V, V + 5 };
	const float ps[] = { 1.0f, 0.95f, 0.5f, 0.0f };
	const float mps[] = { 0.0f, 0.05f, 0.9f, 1.0f, 3.0f };
	for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
		for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
			for (size_t d = 0; d < sizeof mps / sizeof mps[0]; d++) {
				struct hearth_sampler_params p = hearth_sampler_default_params();
				struct hearth_err err = { 0 };
				struct hearth_sampler *s = NULL;
				p.top_k = ks[a];
				p.top_p = ps[b];
				p.min_p = mps[d];
				T_OK(hearth_sampler_new(&s, &p, V, &err), err);
				if (!s)
					continue;
				if (!reference(c, V, &p, want)) {
					(*unclear)++;
					hearth_sampler_free(s);
					continue;
				}
				const int32_t *kept;
				const size_t n = sampler_kept(s, l, &kept);
				memset(got, 0, (size_t)V);
				for (size_t i = 0; i < n; i++) {
					const int32_t id = kept ? kept[i] : (int32_t)i;
					T_TRUE(id >= 0 && id < V && !got[id]);
					if (id >= 0 && id < V)
						got[id] = 1;
				}
				if (memcmp(got, want, (size_t)V))
					T_FAIL("row kind %d, V %d, top_k %d, top_p %g, min_p %g: kept %zu tokens, "
					       "a full sort keeps others", kind, V, p.top_k, (double)p.top_p, (double)p.min_p, n);
				/* a drawn token is one of the kept */
				const int32_t x = hearth_sampler_sample(s, l);
				T_TRUE(x >= 0 && x < V && want[x]);
				(*checked)++;
				hearth_sampler_free(s);
			}
out:
	free(c);
	free(want);
	free(got);
}

void test_sampler_select(void)
{
	const int sizes[] = { 1, 2, 3, 31, 1000, 20000 };
	uint64_t st = 42;
	int checked = 0, unclear = 0;
	for (size_t v = 0; v < sizeof sizes / sizeof sizes[0]; v++) {
		const int V = sizes[v];
		float *l = malloc((size_t)V * sizeof *l);
		T_TRUE(l != NULL);
		for (int kind = 0; l && kind < N_KINDS; kind++) {
			make_row(kind, V, &st, l);
			check_row(l, V, kind, &checked, &unclear);
		}
		free(l);
	}
	if (unclear * 10 > checked)
		T_FAIL("%d of %d cases fell on a rounding boundary", unclear, checked + unclear);
}

/* The row kernels of this CPU give the reference's bits. */
void test_sampler_row_kernels(void)
{
	const struct kern_fns *k = kern_fns(), *ref = kern_fns_ref();
	uint64_t st = 7;
	enum { V = 5003 };
	float *l = malloc(V * sizeof *l), *y1 = malloc(V * sizeof *y1), *y2 = malloc(V * sizeof *y2);
	int32_t *i1 = malloc(V * sizeof *i1), *i2 = malloc(V * sizeof *i2);
	T_TRUE(l && y1 && y2 && i1 && i2);
	for (int kind = 0; l && y1 && y2 && i1 && i2 && kind < N_KINDS; kind++) {
		make_row(kind, V, &st, l);
		for (int n = 0; n <= V; n += n < 40 ? 1 : 997) {
			float mn1, mx1, mn2, mx2;
			int64_t a1, a2;
			const int bad1 = k->row_minmax(l, n, &mn1, &mx1, &a1), bad2 = ref->row_minmax(l, n, &mn2, &mx2, &a2);
			T_TRUE(bad1 == bad2 && a1 == a2 && !memcmp(&mn1, &mn2, 4) && !memcmp(&mx1, &mx2, 4));
			if (kind == 7)
				continue; /* the weights of a row with NaNs are NaN */
			const float m = n ? mx2 : 0, thr = m - 1.5f;
			const int64_t c1 = k->row_collect(l, n, thr, i1), c2 = ref->row_collect(l, n, thr, i2);
			T_TRUE(c1 == c2 && !memcmp(i1, i2, (size_t)c1 * sizeof *i1));
			const float s1 = k->row_exp_sum(l, n, m, 1.0f / 0.7f, y1), s2 = ref->row_exp_sum(l, n, m, 1.0f / 0.7f, y2);
			T_TRUE(!memcmp(&s1, &s2, 4) && !memcmp(y1, y2, (size_t)n * sizeof *y1));
			double exact = 0;
			for (int i = 0; i < n; i++)
				exact += exp(((double)l[i] - m) / 0.7);
			T_NEAR(s2, exact, 1e-5 * exact + 1e-30);
		}
	}
	free(l);
	free(y1);
	free(y2);
	free(i1);
	free(i2);
}

/* Logprobs: a double-precision log-softmax, the top ones best first. */
void test_sampler_logprobs(void)
{
	enum { V = 3001, TOP = 20 };
	uint64_t st = 99;
	float *l = malloc(V * sizeof *l);
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_err err = { 0 };
	struct hearth_sampler *s = NULL;
	T_OK(hearth_sampler_new(&s, &p, V, &err), err);
	for (int kind = 1; l && s && kind < 5; kind++) {
		make_row(kind, V, &st, l);
		float max = l[0];
		for (int i = 1; i < V; i++)
			max = l[i] > max ? l[i] : max;
		double z = 0;
		for (int i = 0; i < V; i++)
			z += exp((double)l[i] - max);
		const double lse = max + log(z);
		float lp = 0, top_lp[TOP];
		int32_t top[TOP];
		T_EQ_I64(hearth_sampler_logprobs(s, l, 17, TOP, &lp, top, top_lp), TOP);
		T_NEAR(lp, l[17] - lse, 1e-4);
		for (int j = 0; j < TOP; j++) {
			int better = 0; /* tokens strictly before top[j] in best-first order */
			for (int i = 0; i < V; i++)
				better += l[i] > l[top[j]] || (l[i] == l[top[j]] && i < top[j]);
			T_EQ_I64(better, j);
			T_NEAR(top_lp[j], l[top[j]] - lse, 1e-4);
		}
	}
	hearth_sampler_free(s);
	free(l);
}
