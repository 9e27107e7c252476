/*
 * spm.c - SentencePiece-style tokenization (tokenizer.ggml.model = "llama").
 *
 * The text (spaces already escaped to U+2581 by tok.c) starts as one symbol
 * per UTF-8 character. Repeatedly, the adjacent pair whose concatenation is a
 * vocabulary token with the highest score is merged (ties: leftmost). Symbols
 * left that are not tokens fall back to their bytes' <0xXX> tokens.
 */
#include <stdlib.h>

#include "hearth.h"
#include "mergeq.h"
#include "tok.h"

static int try_pair(const struct tok_vocab *v, struct merge_sym *s, int left, int right, struct mergeq *q)
{
	if (left < 0 || right < 0)
		return 0;
	size_t n = s[left].n + s[right].n;
	/* the two symbols are adjacent in the text */
	int32_t id = strmap_get(&v->by_text, s[left].text, n);
	if (id < 0)
		return 0;
	struct merge_cand c = { v->score[id], left, right, n };
	return mergeq_push(q, c);
}

int spm_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out)
{
	struct merge_sym *s = NULL;
	struct mergeq q = { 0 };
	int n = merge_syms_init(text, len, &s), rc = HEARTH_ENOMEM;

	if (n < 0)
		return HEARTH_ENOMEM;
	for (int i = 1; i < n; i++)
		if (try_pair(v, s, i - 1, i, &q))
			goto out;
	while (q.n) {
		struct merge_cand c = mergeq_pop(&q);
		struct merge_sym *l = &s[c.left], *r = &s[c.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != c.size)
			continue; /* stale */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = c.left;
		if (try_pair(v, s, l->prev, c.left, &q) || try_pair(v, s, c.left, l->next, &q))
			goto out;
	}
	for (int i = 0; i != -1 && n > 0; i = s[i].next) {
		int32_t id = strmap_get(&v->by_text, s[i].text, s[i].n);
		if (id >= 0) {
			if (tok_ids_push(out, id))
				goto out;
			continue;
		}
		for (size_t j = 0; j < s[i].n; j++) {
			int32_t b = v->byte_tok[(unsigned char)s[i].text[j]];
			if (b < 0)
				b = v->unk;
			if (b >= 0 && tok_ids_push(out, b))
				goto out;
		}
	}
	rc = 0;
out:
	free(s);
	free(q.v);
	return rc;
}
