/*
 * bpe.c - byte-level BPE (tokenizer.ggml.model = "gpt2").
 *
 * Text is split into words by the pre-tokenizer; each word's bytes are mapped
 * to GPT-2's printable byte alphabet; then, within the word, the adjacent
 * pair with the lowest merge rank is merged until no listed merge applies
 * (ties: leftmost). With ignore_merges, a word that is itself a token is
 * taken whole. A final symbol that is not a token is emitted byte by byte.
 */
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "mergeq.h"
#include "tok.h"

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves; the
 * 68 others (0x00-0x20, 0x7f-0xa0, 0xad), in order, map to U+0100 and up. */
static uint32_t byte_cp(uint8_t b)
{
	if (b <= 0x20)
		return 256u + b;
	if (b >= 0x7f && b <= 0xa0)
		return 256u + 33 + (b - 0x7fu);
	if (b == 0xad)
		return 256u + 67;
	return b;
}

/* The byte a code point of the alphabet stands for, or -1. */
static int cp_byte(uint32_t cp)
{
	if (cp < 256)
		return (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) ? -1 : (int)cp;
	cp -= 256;
	if (cp <= 32)
		return (int)cp;
	if (cp <= 66)
		return (int)(0x7f + cp - 33);
	return cp == 67 ? 0xad : -1;
}

int bpe_byte_to_utf8(uint8_t b, char out[4])
{
	uint32_t cp = byte_cp(b);
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

size_t bpe_decode_text(const char *text, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)text[i];
		size_t k = utf8_seq_len(c);
		if (k > len - i)
			k = len - i;
		uint32_t cp = 0;
		if (k == 1)
			cp = c;
		else if (k == 2)
			cp = ((uint32_t)(c & 0x1f) << 6) | ((unsigned char)text[i + 1] & 0x3f);
		int b = k <= 2 ? cp_byte(cp) : -1;
		if (b >= 0) {
			out[o++] = (char)b;
		} else { /* not of the byte alphabet: keep as is */
			memcpy(out + o, text + i, k);
			o += k;
		}
		i += k;
	}
	return o;
}

static int try_pair(const struct tok_vocab *v, struct merge_sym *s, int left, int right, struct mergeq *q,
		    char **key, size_t *key_cap)
{
	if (left < 0 || right < 0)
		return 0;
	size_t n = s[left].n + 1 + s[right].n;
	if (n > *key_cap) {
		char *k = realloc(*key, 2 * n);
		if (!k)
			return -1;
		*key = k;
		*key_cap = 2 * n;
	}
	memcpy(*key, s[left].text, s[left].n);
	(*key)[s[left].n] = ' ';
	memcpy(*key + s[left].n + 1, s[right].text, s[right].n);
	int32_t rank = strmap_get(&v->merges, *key, n);
	if (rank < 0)
		return 0;
	struct merge_cand c = { -(float)rank, left, right, s[left].n + s[right].n };
	return mergeq_push(q, c);
}

/* Merges one byte-encoded word and appends its tokens. */
static int encode_word(const struct tok_vocab *v, const char *w, size_t len, struct mergeq *q, char **key,
		       size_t *key_cap, struct tok_ids *out)
{
	struct merge_sym *s = NULL;
	int n, rc = HEARTH_ENOMEM;

	if (v->ignore_merges) {
		int32_t id = strmap_get(&v->by_text, w, len);
		if (id >= 0)
			return tok_ids_push(out, id);
	}
	if ((n = merge_syms_init(w, len, &s)) < 0)
		return HEARTH_ENOMEM;
	q->n = 0;
	for (int i = 1; i < n; i++)
		if (try_pair(v, s, i - 1, i, q, key, key_cap))
			goto out;
	while (q->n) {
		struct merge_cand c = mergeq_pop(q);
		struct merge_sym *l = &s[c.left], *r = &s[c.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != c.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = c.left;
		if (try_pair(v, s, l->prev, c.left, q, key, key_cap) || try_pair(v, s, c.left, l->next, q, key, key_cap))
			goto out;
	}
	for (int i = 0; i != -1 && n > 0; i = s[i].next) {
		int32_t id = strmap_get(&v->by_text, s[i].text, s[i].n);
		if (id >= 0) {
			if (tok_ids_push(out, id))
				goto out;
			continue;
		}
		for (size_t j = 0; j < s[i].n; j++) { /* as llama.cpp: single raw bytes */
			int32_t b = strmap_get(&v->by_text, s[i].text + j, 1);
			if (b >= 0 && tok_ids_push(out, b))
				goto out;
		}
	}
	rc = 0;
out:
	free(s);
	return rc;
}

int bpe_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out)
{
	struct pretok_span *spans = NULL;
	struct mergeq q = { 0 };
	size_t n_spans = 0, key_cap = 0, wcap = 0;
	char *key = NULL, *w = NULL;
	int rc;

	if ((rc = pretok_split(&v->pre, text, len, &spans, &n_spans)))
		return rc;
	for (size_t i = 0; i < n_spans && !rc; i++) {
		const unsigned char *src = (const unsigned char *)text + spans[i].off;
		size_t wl = 0;
		if (2 * spans[i].len > wcap) {
			char *nw = realloc(w, 4 * spans[i].len);
			if (!nw) {
				rc = HEARTH_ENOMEM;
				break;
			}
			w = nw;
			wcap = 4 * spans[i].len;
		}
		for (size_t j = 0; j < spans[i].len; j++)
			wl += (size_t)bpe_byte_to_utf8(src[j], w + wl);
		rc = encode_word(v, w, wl, &q, &key, &key_cap, out);
	}
	free(spans);
	free(q.v);
	free(key);
	free(w);
	return rc;
}
