/* mergeq.h - the priority queue of candidate merges shared by spm.c and bpe.c:
 * highest priority first, ties to the leftmost pair. Internal to tok/. */
#ifndef HEARTH_MERGEQ_H
#define HEARTH_MERGEQ_H

#include <stdlib.h>

struct merge_cand {
	float prio;    /* SPM: token score; BPE: -rank */
	int left, right;
	size_t size;   /* bytes of the merged text (stale entries no longer match) */
};

struct mergeq {
	struct merge_cand *v;
	size_t n, cap;
};

/* A symbol: one piece of the word being merged, in a linked list. */
struct merge_sym {
	const char *text;
	size_t n; /* 0: merged away */
	int prev, next;
};

static inline int mergeq_before(const struct merge_cand *a, const struct merge_cand *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static inline int mergeq_push(struct mergeq *q, struct merge_cand c)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;
		struct merge_cand *v = realloc(q->v, cap * sizeof *v);
		if (!v)
			return -1;
		q->v = v;
		q->cap = cap;
	}
	size_t i = q->n++;
	while (i > 0 && mergeq_before(&c, &q->v[(i - 1) / 2])) {
		q->v[i] = q->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->v[i] = c;
	return 0;
}

static inline struct merge_cand mergeq_pop(struct mergeq *q)
{
	struct merge_cand top = q->v[0], last = q->v[--q->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->n)
			break;
		if (c + 1 < q->n && mergeq_before(&q->v[c + 1], &q->v[c]))
			c++;
		if (!mergeq_before(&q->v[c], &last))
			break;
		q->v[i] = q->v[c];
		i = c;
	}
	if (q->n)
		q->v[i] = last;
	return top;
}

static inline size_t utf8_seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* Splits text into one symbol per UTF-8 character (a truncated sequence at the
 * end is one symbol). *syms is malloc'd; returns the count or -1. */
static inline int merge_syms_init(const char *text, size_t len, struct merge_sym **syms)
{
	struct merge_sym *s = malloc((len ? len : 1) * sizeof *s);
	int n = 0;
	if (!s)
		return -1;
	for (size_t off = 0; off < len; n++) {
		size_t k = utf8_seq_len((unsigned char)text[off]);
		if (k > len - off)
			k = len - off;
		s[n].text = text + off;
		s[n].n = k;
		s[n].prev = n - 1;
		off += k;
		s[n].next = off == len ? -1 : n + 1;
	}
	*syms = s;
	return n;
}

#endif /* HEARTH_MERGEQ_H */
