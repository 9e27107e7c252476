/* vocab.c - the sorted token pieces of vocab.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "vocab.h"

#define GV_MAX_PIECE 4096 /* longer pieces are never allowed (no real vocabulary has one) */


/* The first 8 bytes of a piece, big-endian: their order is the bytes' order (ties go to cmp_piece). */
static uint64_t piece_key(const struct gvocab *v, int32_t id)
{
	uint64_t k = 0;
	for (uint32_t i = 0; i < 8; i++)
		k = k << 8 | (i < v->len[id] ? v->bytes[v->off[id] + i] : 0);
	return k;
}

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

struct kid {
	uint64_t key;
	int32_t id;
};

/* v->sorted by piece: a radix sort of the 8-byte keys, then each run of equal keys by the whole piece. */
static bool sort_pieces(struct gvocab *v, int32_t *tmp)
{
	const size_t n = (size_t)v->n_sorted;
	struct kid *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
	if (!a || !b) {
		free(a);
		free(b);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		a[i] = (struct kid){ piece_key(v, v->sorted[i]), v->sorted[i] };
	for (int shift = 0; shift < 64; shift += 8) {
		size_t count[257] = { 0 };
		for (size_t i = 0; i < n; i++)
			count[((a[i].key >> shift) & 255) + 1]++;
		for (int d = 0; d < 256; d++)
			count[d + 1] += count[d];
		for (size_t i = 0; i < n; i++) /* stable: ids stay in order within a digit */
			b[count[(a[i].key >> shift) & 255]++] = a[i];
		struct kid *t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < n; i++)
		v->sorted[i] = a[i].id;
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].key == a[i].key; j++)
			;
		sort_ids(v, v->sorted + i, tmp, (int32_t)(j - i));
	}
	free(a);
	free(b);
	return true;
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
	if (!sort_pieces(v, tmp))
		goto out_nomem;
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
	v->n_bytes = total;
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
