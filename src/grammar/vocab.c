/* vocab.c - the sorted token pieces of vocab.h. */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "vocab.h"

#define GV_MAX_PIECE 4096 /* longer pieces are never allowed (no real vocabulary has one) */


static int cmp_piece(const struct gvocab *v, int32_t a, int32_t b)
{
	const uint32_t la = v->len[a], lb = v->len[b];
	int c = memcmp(v->bytes + v->off[a], v->bytes + v->off[b], la < lb ? la : lb);
	return c ? c : la < lb ? -1 : la > lb ? 1 : a < b ? -1 : a > b;
}

/* Sorts ids by piece (merge sort with a scratch array: no global comparator context). */
static void sort_ids(const struct gvocab *v, int32_t *ids, int32_t *tmp, int32_t n)
{
	if (n < 2)
		return;
	const int32_t h = n / 2;
	sort_ids(v, ids, tmp, h);
	sort_ids(v, ids + h, tmp, n - h);
	int32_t i = 0, j = h, k = 0;
	while (i < h && j < n)
		tmp[k++] = cmp_piece(v, ids[i], ids[j]) <= 0 ? ids[i++] : ids[j++];
	while (i < h)
		tmp[k++] = ids[i++];
	while (j < n)
		tmp[k++] = ids[j++];
	memcpy(ids, tmp, (size_t)n * sizeof *ids);
}

/* See gvocab.plain: a piece that a string-like state takes whole when it may
 * take that many plain characters in a row (mask.c). */
static uint8_t plain_count(const uint8_t *p, uint32_t n)
{
	uint32_t i = 0, k = 0;
	while (i < n) {
		const uint8_t b = p[i];
		if (b < 0x80) {
			if (b < 0x20 || b == '"' || b == '\\')
				return 0;
			i++;
		} else {
			const uint32_t seq = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
			if (!seq)
				return 0;
			for (uint32_t j = 1; j < seq && i + j < n; j++) {
				const uint8_t c = p[i + j];
				if ((c & 0xc0) != 0x80)
					return 0;
				/* the second byte's range: no overlong form, no surrogate, nothing past U+10FFFF */
				if (j == 1 && ((b == 0xe0 && c < 0xa0) || (b == 0xed && c > 0x9f) || (b == 0xf0 && c < 0x90) ||
					       (b == 0xf4 && c > 0x8f)))
					return 0;
			}
			i += seq;
		}
		if (++k > 255)
			return 0;
	}
	return (uint8_t)k;
}

int gvocab_build(const struct hearth_model *m, struct gvocab **out, struct hearth_err *err)
{
	const int32_t n = hearth_model_n_vocab(m);
	struct gvocab *v = calloc(1, sizeof *v);
	char *piece = malloc(GV_MAX_PIECE);
	int32_t *tmp = NULL;
	size_t total = 0, cap = 1 << 20;
	*out = NULL;
	if (!v || !piece)
		goto out_nomem;
	v->n_vocab = n;
	v->eog = -1;
	v->kind = calloc((size_t)n, 1);
	v->off = calloc((size_t)n, sizeof *v->off);
	v->len = calloc((size_t)n, sizeof *v->len);
	v->bytes = malloc(cap);
	v->sorted = malloc((size_t)n * sizeof *v->sorted);
	v->lcp = malloc((size_t)n * sizeof *v->lcp);
	tmp = malloc((size_t)n * sizeof *tmp);
	v->plain = calloc((size_t)n, 1);
	if (!v->plain || !v->kind || !v->off || !v->len || !v->bytes || !v->sorted || !v->lcp || !tmp)
		goto out_nomem;
	const int32_t eos = hearth_token_eos(m);
	if (eos >= 0 && eos < n && hearth_token_is_eog(m, eos))
		v->eog = eos;
	for (int32_t id = 0; id < n; id++) {
		if (hearth_token_is_eog(m, id)) {
			v->kind[id] = GV_EOG;
			if (v->eog < 0)
				v->eog = id;
			continue;
		}
		if (hearth_token_is_control(m, id))
			continue;
		const int k = hearth_token_to_piece(m, id, false, piece, GV_MAX_PIECE);
		if (k <= 0 || k > GV_MAX_PIECE)
			continue;
		if (total + (size_t)k > cap) {
			cap *= 2;
			uint8_t *b = realloc(v->bytes, cap);
			if (!b)
				goto out_nomem;
			v->bytes = b;
		}
		memcpy(v->bytes + total, piece, (size_t)k);
		v->off[id] = (uint32_t)total;
		v->len[id] = (uint32_t)k;
		total += (size_t)k;
		v->kind[id] = GV_TEXT;
		v->plain[id] = plain_count((const uint8_t *)piece, (uint32_t)k);
		v->sorted[v->n_sorted++] = id;
		if ((uint32_t)k > v->max_len)
			v->max_len = (uint32_t)k;
	}
	sort_ids(v, v->sorted, tmp, v->n_sorted);
	for (int32_t i = 0; i < v->n_sorted; i++) {
		uint32_t l = 0;
		if (i > 0) {
			const int32_t a = v->sorted[i - 1], b = v->sorted[i];
			const uint32_t lim = v->len[a] < v->len[b] ? v->len[a] : v->len[b];
			while (l < lim && v->bytes[v->off[a] + l] == v->bytes[v->off[b] + l])
				l++;
		}
		v->lcp[i] = l;
	}
	free(tmp);
	free(piece);
	*out = v;
	return 0;
out_nomem:
	free(tmp);
	free(piece);
	gvocab_free(v);
	return err_set(err, HEARTH_ENOMEM, "grammar: out of memory for a vocabulary of %d tokens", n);
}

void gvocab_free(struct gvocab *v)
{
	if (!v)
		return;
	free(v->kind);
	free(v->off);
	free(v->len);
	free(v->bytes);
	free(v->sorted);
	free(v->lcp);
	free(v->plain);
	free(v);
}
