/*
 * select.c - radix selection of a best-first prefix of a row of logits.
 *
 * A candidate's key is its gap g = max - logit (0 for the best). A pass sorts
 * the candidates into NB buckets of equal width over [lo, lo + span) by g (the
 * last bucket also takes everything beyond), counting them and summing their
 * weights; the buckets before the one where the wanted count or weight is
 * reached are taken whole, the ones after are dropped, and the next pass
 * refines that one bucket. The bucket of g never decreases as g grows, so the
 * buckets respect the best-first order; candidates with equal logits share
 * a bucket, and the last few (or an unsplittable run of equal gaps) are
 * sorted, ties by id.
 */
#include <stdbool.h>
#include <math.h>
#include <string.h>

#include "select.h"

#define NB 256           /* buckets per pass */
#define SPAN_MAX 32.0f   /* the widest gap range a pass splits evenly; beyond it, the last bucket */
#define SORT_BELOW 48    /* candidates left that are sorted instead of split */
#define MAX_PASSES 12    /* then sort whatever is left (equal or nearly equal logits) */

static inline bool better(const float *l, int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); }

/* Heap sort; the heap's root is its worst candidate, so the array ends best first. */
static void sift_down(const float *l, int32_t *ids, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && better(l, ids[c], ids[c + 1]))
			c++; /* the worse child */
		if (!better(l, ids[root], ids[c]))
			return;
		const int32_t t = ids[root];
		ids[root] = ids[c];
		ids[c] = t;
		root = c;
	}
}

void sel_sort(const float *l, int32_t *ids, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(l, ids, i, n);
	for (size_t end = n; end > 1; end--) {
		const int32_t t = ids[0];
		ids[0] = ids[end - 1];
		ids[end - 1] = t;
		sift_down(l, ids, 0, end - 1);
	}
}

static inline int bucket_of(float g, float lo, float scale)
{
	const float f = (g - lo) * scale;
	if (!(f < (float)NB))
		return NB - 1; /* beyond the span (or a gap that overflowed) */
	return f > 0 ? (int)f : 0;
}

struct pass {
	float lo, scale;
	bool by_weight;
	double need;   /* still wanted, in candidates or in weight */
	size_t n_out;  /* taken so far */
};

/* One pass over the candidates (ids[0..n), or 0..n-1 when ids is NULL):
 * whole buckets before the crossing one go to out, the crossing bucket's
 * candidates to next (which may be ids itself). Returns the crossing bucket
 * with its size in *n_next, or -1 when the candidates do not reach the need
 * (then all of them went to out). */
static int pass_run(const struct sel_row *r, struct pass *p, const int32_t *ids, size_t n, int32_t *out,
		    int32_t *next, size_t *n_next)
{
	uint32_t cnt[4][NB];
	double wsum[4][NB];
	memset(cnt, 0, sizeof cnt);
	if (p->by_weight)
		memset(wsum, 0, sizeof wsum);
	const float *l = r->l, m = r->max, lo = p->lo, scale = p->scale;
	for (size_t i = 0; i < n; i++) { /* four histograms: consecutive candidates rarely wait on each other */
		const int32_t id = ids ? ids[i] : (int32_t)i;
		const int b = bucket_of(m - l[id], lo, scale);
		cnt[i & 3][b]++;
		if (p->by_weight)
			wsum[i & 3][b] += r->w[id];
	}
	double acc = 0;
	int cross = -1;
	for (int b = 0; b < NB && cross < 0; b++) {
		const uint32_t c = cnt[0][b] + cnt[1][b] + cnt[2][b] + cnt[3][b];
		const double mass = p->by_weight ? (wsum[0][b] + wsum[1][b]) + (wsum[2][b] + wsum[3][b]) : (double)c;
		if (c && acc + mass >= p->need)
			cross = b;
		else
			acc += mass;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const int32_t id = ids ? ids[i] : (int32_t)i;
		const int b = bucket_of(m - l[id], lo, scale);
		if (cross < 0 || b < cross)
			out[p->n_out++] = id;
		else if (b == cross)
			next[k++] = id;
	}
	p->need -= acc;
	*n_next = k;
	return cross;
}

/* The last step: sorts the candidates left and takes them until the need is met. */
static void take_sorted(const struct sel_row *r, struct pass *p, int32_t *ids, size_t n, int32_t *out)
{
	sel_sort(r->l, ids, n);
	double acc = 0;
	for (size_t i = 0; i < n && (i == 0 || acc < p->need); i++) {
		out[p->n_out++] = ids[i];
		acc += p->by_weight ? (double)r->w[ids[i]] : 1.0;
	}
}

size_t sel_prefix(const struct sel_row *r, const int32_t *ids, size_t n_ids, bool by_weight, double need,
		  int32_t *out, int32_t *tmp)
{
	struct pass p = { .by_weight = by_weight, .need = need };
	float lo = 0, hi = r->max - r->min;
	const int32_t *cur = ids;
	size_t n = n_ids;
	for (int i = 0;; i++) {
		float span = hi - lo;
		span = span < SPAN_MAX ? span : SPAN_MAX;
		p.lo = lo;
		p.scale = (float)NB / span;
		if (n <= SORT_BELOW || i == MAX_PASSES || !(span > 0) || !(p.scale < INFINITY)) {
			if (cur != tmp) { /* the first pass: sort a copy */
				for (size_t j = 0; j < n; j++)
					tmp[j] = cur ? cur[j] : (int32_t)j;
			}
			take_sorted(r, &p, tmp, n, out);
			return p.n_out;
		}
		size_t n_next;
		const int b = pass_run(r, &p, cur, n, out, tmp, &n_next);
		if (b < 0)
			return p.n_out;
		const float new_lo = lo + (float)b / p.scale;
		hi = b == NB - 1 ? hi : lo + (float)(b + 1) / p.scale;
		lo = new_lo;
		cur = tmp;
		n = n_next;
	}
}
