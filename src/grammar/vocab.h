/* vocab.h - a vocabulary's token bytes, sorted, for the token mask.
 *
 * Sorting the pieces makes them the preorder of a byte trie: a token shares
 * lcp[i] leading bytes with the one before it, so a walk keeps the matcher
 * states of the shared prefix and steps only the bytes that differ, and a
 * prefix the grammar refuses rules out every token that follows with at
 * least that prefix (mask.c). Built from the public tokenizer API; depends
 * on the vocabulary only, not on a grammar. Immutable after gvocab_build.
 */
#ifndef HEARTH_GVOCAB_H
#define HEARTH_GVOCAB_H

#include <stdint.h>

#include "hearth.h"

enum gv_kind { GV_NEVER = 0, GV_TEXT, GV_EOG };

struct gvocab {
	int32_t n_vocab;
	uint8_t *kind;    /* [n_vocab] enum gv_kind: control and empty tokens are never allowed */
	uint32_t *off;    /* [n_vocab] piece at bytes + off[id], len[id] bytes */
	uint32_t *len;
	uint8_t *bytes;
	int32_t *sorted;  /* [n_sorted] the GV_TEXT ids by piece bytes */
	uint32_t *lcp;    /* [n_sorted] bytes shared with the previous one (0 for the first) */
	int32_t n_sorted;
	uint32_t max_len; /* the longest piece */
	uint64_t n_bytes; /* of all pieces */
	/* [n_vocab] for a piece of plain characters only (anything but '"', '\\' and
	 * controls below 0x20; UTF-8 that may stop inside its last character): its
	 * characters, the incomplete last one counted (at most 255); else 0 */
	uint8_t *plain;
	int32_t eog;      /* an end-of-generation token (the EOS when it is one), -1 if none */
};

int gvocab_build(const struct hearth_model *m, struct gvocab **out, struct hearth_err *err);
void gvocab_free(struct gvocab *v);

#endif /* HEARTH_GVOCAB_H */
