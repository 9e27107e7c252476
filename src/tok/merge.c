/*
 * merge.c - the merge loop shared by the SPM and BPE encoders, over token ids.
 *
 * A word starts as a list of symbols, each a token id (-1: a character the
 * vocabulary lacks, which never merges). The pair table maps two adjacent ids
 * to the id they merge into and a priority; the queue always merges the pair
 * of highest priority, ties to the leftmost, until no pair is in the table.
 *
 * The table is built once per vocabulary:
 *   - from tokenizer.ggml.merges when present: merge r has priority -r
 *     (Hugging Face's BPE rule, byte-level and SentencePiece-style alike);
 *   - else (SentencePiece GGUFs) from the scores: every split of a token's
 *     text into two tokens is a pair with the token's score as its priority,
 *     which is SentencePiece's rule of merging into the best-scoring token.
 *     Tokens over SPLIT_MAX bytes are left out of it: real vocabularies have
 *     none (pieces are a few characters), and splitting one costs its length
 *     squared, which a crafted file must not turn into a hang at load.
 */
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "tok.h"

#define SPLIT_MAX 256

static size_t slot_of(uint64_t key, size_t cap)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

/* Adds l,r -> out unless the pair is there already (the first one wins). */
static void pairs_add(struct tok_pairs *p, int32_t l, int32_t r, int32_t out, float prio)
{
	uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
	size_t i = slot_of(key, p->cap);
	while (p->slot[i].id >= 0) {
		if (p->slot[i].key == key)
			return;
		i = (i + 1) & (p->cap - 1);
	}
	p->slot[i] = (struct tok_pair){ key, prio, out };
	p->n++;
}

static int pairs_alloc(struct tok_pairs *p, size_t n)
{
	p->cap = 16;
	while (p->cap < 2 * n + 1)
		p->cap *= 2;
	if (!(p->slot = malloc(p->cap * sizeof *p->slot)))
		return HEARTH_ENOMEM;
	for (size_t i = 0; i < p->cap; i++)
		p->slot[i].id = -1;
	return 0;
}

static int fill_dense(struct tok_pairs *p)
{
	if (!(p->dense = malloc(256 * 256 * sizeof *p->dense)))
		return HEARTH_ENOMEM;
	for (size_t i = 0; i < 256 * 256; i++)
		p->dense[i].id = -1;
	for (size_t i = 0; i < p->cap; i++) {
		uint64_t l = p->slot[i].key >> 32, r = p->slot[i].key & 0xffffffffu;
		if (p->slot[i].id >= 0 && l < 256 && r < 256)
			p->dense[l * 256 + r] = p->slot[i];
	}
	return 0;
}

static int build(struct tok_pairs *p, const struct tok_vocab *v, const struct gguf_str *merges, size_t n_merges);

int tok_pairs_build(struct tok_pairs *p, const struct tok_vocab *v, const struct gguf_str *merges, size_t n_merges)
{
	int rc = build(p, v, merges, n_merges);
	return rc ? rc : fill_dense(p);
}

static int build(struct tok_pairs *p, const struct tok_vocab *v, const struct gguf_str *merges, size_t n_merges)
{
	memset(p, 0, sizeof *p);
	if (merges) {
		char *buf = NULL;
		size_t cap = 0;
		if (pairs_alloc(p, n_merges))
			return HEARTH_ENOMEM;
		for (size_t r = 0; r < n_merges; r++) {
			const char *m = merges[r].p, *sp = memchr(m, ' ', merges[r].n);
			if (!sp)
				continue;
			size_t ln = (size_t)(sp - m), rn = merges[r].n - ln - 1;
			int32_t l = strmap_get(&v->by_text, m, ln), rt = strmap_get(&v->by_text, sp + 1, rn);
			if (l < 0 || rt < 0)
				continue;
			if (ln + rn > cap) {
				char *b = realloc(buf, cap = 2 * (ln + rn));
				if (!b) {
					free(buf);
					return HEARTH_ENOMEM;
				}
				buf = b;
			}
			memcpy(buf, m, ln);
			memcpy(buf + ln, sp + 1, rn);
			int32_t out = strmap_get(&v->by_text, buf, ln + rn);
			if (out >= 0)
				pairs_add(p, l, rt, out, -(float)r);
		}
		free(buf);
		return 0;
	}
	/* from scores: count the splits first to size the table */
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && pairs_alloc(p, n))
			return HEARTH_ENOMEM;
		for (int32_t t = 0; t < v->n_vocab; t++) {
			const char *s = v->text[t];
			size_t len = v->text_len[t];
			if (len < 2 || len > SPLIT_MAX || strmap_get(&v->by_text, s, len) != t) /* twice: its last id */
				continue;
			for (size_t k = utf8_seq_len((unsigned char)s[0]); k < len; k += utf8_seq_len((unsigned char)s[k])) {
				int32_t l = strmap_get(&v->by_text, s, k), r = strmap_get(&v->by_text, s + k, len - k);
				if (l < 0 || r < 0)
					continue;
				if (pass == 0)
					n++;
				else
					pairs_add(p, l, r, t, v->score[t]);
			}
		}
	}
	return 0;
}

void tok_pairs_free(struct tok_pairs *p)
{
	free(p->slot);
	free(p->dense);
	memset(p, 0, sizeof *p);
}

static bool pairs_get(const struct tok_pairs *p, int32_t l, int32_t r, int32_t *out, float *prio)
{
	if (!p->n || l < 0 || r < 0)
		return false;
	if (l < 256 && r < 256) {
		const struct tok_pair *d = &p->dense[l * 256 + r];
		*out = d->id;
		*prio = d->prio;
		return d->id >= 0;
	}
	uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
	for (size_t i = slot_of(key, p->cap); p->slot[i].id >= 0; i = (i + 1) & (p->cap - 1))
		if (p->slot[i].key == key) {
			*out = p->slot[i].id;
			*prio = p->slot[i].prio;
			return true;
		}
	return false;
}

/* ---- the queue --------------------------------------------------------- */

static bool before(const struct merge_cand *a, const struct merge_cand *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static int push(struct merge_ws *w, const struct tok_vocab *v, int left)
{
	int right = left >= 0 ? w->s[left].next : -1;
	struct merge_cand c;
	if (right < 0 || !pairs_get(&v->pairs, w->s[left].id, w->s[right].id, &c.out, &c.prio))
		return 0;
	c.left = left;
	c.lid = w->s[left].id;
	c.rid = w->s[right].id;
	if (w->n_q == w->cap_q) {
		size_t cap = w->cap_q ? 2 * w->cap_q : 256;
		struct merge_cand *q = realloc(w->q, cap * sizeof *q);
		if (!q)
			return HEARTH_ENOMEM;
		w->q = q;
		w->cap_q = cap;
	}
	size_t i = w->n_q++;
	while (i > 0 && before(&c, &w->q[(i - 1) / 2])) {
		w->q[i] = w->q[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->q[i] = c;
	return 0;
}

static struct merge_cand pop(struct merge_ws *w)
{
	struct merge_cand top = w->q[0], last = w->q[--w->n_q];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->n_q)
			break;
		if (c + 1 < w->n_q && before(&w->q[c + 1], &w->q[c]))
			c++;
		if (!before(&w->q[c], &last))
			break;
		w->q[i] = w->q[c];
		i = c;
	}
	if (w->n_q)
		w->q[i] = last;
	return top;
}

int merge_ws_reserve(struct merge_ws *w, size_t n)
{
	if (n <= w->cap_s)
		return 0;
	struct merge_sym *s = realloc(w->s, n * sizeof *s);
	if (!s)
		return HEARTH_ENOMEM;
	w->s = s;
	w->cap_s = n;
	return 0;
}

void merge_ws_free(struct merge_ws *w)
{
	free(w->s);
	free(w->q);
	memset(w, 0, sizeof *w);
}

int tok_merge(const struct tok_vocab *v, struct merge_ws *w, int n)
{
	w->n_q = 0;
	for (int i = 0; i < n; i++) {
		w->s[i].prev = i - 1;
		w->s[i].next = i + 1 < n ? i + 1 : -1;
	}
	for (int i = 0; i + 1 < n; i++)
		if (push(w, v, i))
			return HEARTH_ENOMEM;
	while (w->n_q) {
		struct merge_cand c = pop(w);
		struct merge_sym *l = &w->s[c.left];
		if (l->id != c.lid || l->next < 0 || w->s[l->next].id != c.rid)
			continue; /* stale: one side has merged since */
		struct merge_sym *r = &w->s[l->next];
		l->id = c.out;
		l->len += r->len;
		l->next = r->next;
		if (r->next >= 0)
			w->s[r->next].prev = c.left;
		r->id = -2; /* merged away */
		if (push(w, v, l->prev) || push(w, v, c.left))
			return HEARTH_ENOMEM;
	}
	return 0;
}
