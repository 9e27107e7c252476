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

/* The byte the character at text stands for, or -1; its length in *k. */
static int alphabet_byte(const char *text, size_t len, size_t *k)
{
	uint32_t cp = utf8_cp(text, len, k);
	return *k <= 2 ? cp_byte(cp) : -1;
}

bool bpe_text_in_alphabet(const char *text, size_t len)
{
	size_t k;
	for (size_t i = 0; i < len; i += k)
		if (alphabet_byte(text + i, len - i, &k) < 0)
			return false;
	return true;
}

size_t bpe_decode_text(const char *text, size_t len, char *out)
{
	size_t o = 0, k;
	for (size_t i = 0; i < len; i += k) {
		int b = alphabet_byte(text + i, len - i, &k);
		if (b >= 0) {
			out[o++] = (char)b;
		} else { /* not of the byte alphabet: keep as is */
			memcpy(out + o, text + i, k);
			o += k;
		}
	}
	return o;
}

/* Merges one word (raw bytes) and appends its tokens. w_mapped is the word in
 * the byte alphabet, needed only to look a whole word up (ignore_merges). */
static int encode_word(const struct tok_vocab *v, struct merge_ws *w, const unsigned char *word, size_t len,
		       const char *mapped, size_t mapped_len, struct tok_ids *out)
{
	int rc;
	if (v->ignore_merges) {
		int32_t id = strmap_get(&v->by_text, mapped, mapped_len);
		if (id >= 0)
			return tok_ids_push(out, id);
	}
	if ((rc = tok_ids_room(v, out, (const char *)word, len)))
		return rc; /* more ids than the limit leaves: not worth merging */
	if (merge_ws_reserve(w, len))
		return HEARTH_ENOMEM;
	out->n_merged += len;
	for (size_t i = 0; i < len; i++) {
		w->s[i].id = v->byte_sym[word[i]];
		w->s[i].off = (uint32_t)i;
		w->s[i].len = 1;
	}
	if (tok_merge(v, w, (int)len))
		return HEARTH_ENOMEM;
	for (int i = 0; i != -1 && len > 0; i = w->s[i].next)
		if (w->s[i].id >= 0 && (rc = tok_ids_push(out, w->s[i].id))) /* a byte with no token: dropped */
			return rc;
	return 0;
}

/* Words come from the pre-tokenizer one at a time, so that encoding stops
 * at the first one past out's limit without splitting the rest. */
int bpe_encode(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len, struct tok_ids *out)
{
	struct pretok_iter it;
	struct pretok_span word;
	size_t wcap = 0;
	char *mapped = NULL;
	int rc;

	if ((rc = pretok_iter_init(&it, &v->pre, text, len)))
		return rc;
	while (!rc && pretok_iter_next(&it, &word)) {
		const unsigned char *src = (const unsigned char *)text + word.off;
		size_t wl = 0;
		out->n_split += word.len;
		if (word.len > INT32_MAX / 4) {
			rc = HEARTH_ENOMEM;
			break;
		}
		if (v->ignore_merges) {
			if (2 * word.len > wcap) {
				char *nw = realloc(mapped, 4 * word.len);
				if (!nw) {
					rc = HEARTH_ENOMEM;
					break;
				}
				mapped = nw;
				wcap = 4 * word.len;
			}
			for (size_t j = 0; j < word.len; j++)
				wl += (size_t)bpe_byte_to_utf8(src[j], mapped + wl);
		}
		rc = encode_word(v, w, src, word.len, mapped, wl, out);
	}
	pretok_iter_free(&it);
	free(mapped);
	return rc;
}
