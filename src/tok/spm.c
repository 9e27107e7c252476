/*
 * spm.c - SentencePiece-style tokenization (tokenizer.ggml.model = "llama").
 *
 * The text (spaces already escaped to U+2581 by tok.c) starts as one symbol
 * per UTF-8 character; merge.c merges them (by the vocabulary's merge ranks
 * when it has merges, else by the scores of the tokens they make). Symbols
 * left that are not tokens fall back to their bytes' <0xXX> tokens, or to
 * the unknown token.
 */
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "tok.h"

/* Merges text[0..len) as one piece and appends its tokens. */
static int encode_piece(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len,
			struct tok_ids *out)
{
	int n = 0, rc;
	out->n_split += len;
	if ((rc = tok_ids_room(v, out, text, len)))
		return rc; /* more ids than the limit leaves: not worth merging */
	if (merge_ws_reserve(w, len ? len : 1))
		return HEARTH_ENOMEM;
	out->n_merged += len;
	for (size_t off = 0; off < len; n++) {
		unsigned char c = (unsigned char)text[off];
		size_t k = utf8_seq_len(c);
		if (k > len - off)
			k = len - off;
		w->s[n].id = c < 0x80 ? v->ascii_sym[c] : strmap_get(&v->by_text, text + off, k);
		w->s[n].off = (uint32_t)off;
		w->s[n].len = (uint32_t)k;
		off += k;
	}
	if (tok_merge(v, w, n))
		return HEARTH_ENOMEM;
	for (int i = 0; i != -1 && n > 0; i = w->s[i].next) {
		const struct merge_sym *s = &w->s[i];
		if (s->id >= 0) {
			if ((rc = tok_ids_push(out, s->id)))
				return rc;
			continue;
		}
		for (uint32_t j = 0; j < s->len; j++) {
			int32_t b = v->byte_tok[(unsigned char)text[s->off + j]];
			if (b < 0)
				b = v->unk;
			if (b >= 0 && (rc = tok_ids_push(out, b)))
				return rc;
		}
	}
	return 0;
}

/* Is text[at] a U+2581 that no token joins to the character before it? */
static bool cut_before(const struct tok_vocab *v, const char *text, size_t at, size_t prev_at)
{
	static const char sp[] = "\xe2\x96\x81";
	if (memcmp(text + at, sp, 3) != 0 || (at - prev_at == 3 && memcmp(text + prev_at, sp, 3) == 0))
		return false;
	size_t k;
	uint32_t cp = utf8_cp(text + prev_at, at - prev_at, &k);
	for (int g = 0; g < v->n_glue; g++)
		if (v->glue[g] == cp)
			return false;
	return true;
}

int spm_encode(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len, struct tok_ids *out)
{
	int rc;
	if (len > INT32_MAX / 2)
		return HEARTH_ENOMEM;
	/* merges never cross the cuts, so merging the pieces apart gives the same
	 * tokens as merging the text whole, with far smaller queues; pieces go in
	 * order, so encoding stops at the first one past out's limit */
	size_t start = 0, prev = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq_len((unsigned char)text[i]);
		if (i > start && v->spm_split && len - i >= 3 && cut_before(v, text, i, prev)) {
			if ((rc = encode_piece(v, w, text + start, i - start, out)))
				return rc;
			start = i;
		}
		prev = i;
		i += k < len - i ? k : len - i;
	}
	return encode_piece(v, w, text + start, len - start, out);
}
