/* pretok.h - pre-tokenization: splitting text into words by a chain of regexes
 * before byte-level BPE, chosen by the vocabulary's tokenizer.ggml.pre.
 *
 * Each regex of the chain splits every fragment left by the previous one into
 * its matches and the text between them (Hugging Face's "Isolated" behaviour).
 * Regexes run on PCRE2 with UTF and Unicode properties. Read-only after init.
 */
#ifndef HEARTH_PRETOK_H
#define HEARTH_PRETOK_H

#include <stdbool.h>
#include <stddef.h>

#include "hearth.h"

#define PRETOK_MAX_REGEX 8

struct pretok {
	const char *name;                 /* the pre type's aliases, canonical first */
	bool ignore_merges;               /* a word that is a token is taken whole */
	bool add_bos;                     /* the default for tokenizer.ggml.add_bos_token */
	bool nfc;                         /* normalize text to NFC before splitting */
	int n_regex;
	void *code[PRETOK_MAX_REGEX];     /* pcre2_code_8 * */
};

struct pretok_span {
	size_t off, len;
};

/* Compiles the chain for pre type name ("llama-bpe", "qwen2", ...).
 * HEARTH_EUNSUPPORTED (naming it) for an unknown type. */
int pretok_init(struct pretok *p, const char *name, const char *path, struct hearth_err *err);
void pretok_free(struct pretok *p);
/* The pre type (its aliases, canonical first) whose split chain is regex[0..n),
 * written as in a Hugging Face tokenizer.json (each Split's regex; ByteLevel
 * with use_regex as pretok_gpt2_regex(); Digits as \p{N} or \p{N}+), with the
 * same ignore_merges and NFC normalization; NULL when no known type is. */
const char *pretok_detect(const char *const *regex, int n, bool ignore_merges, bool nfc);
/* GPT-2's split regex: what Hugging Face's ByteLevel pre-tokenizer applies. */
const char *pretok_gpt2_regex(void);
/* What Hugging Face's Punctuation pre-tokenizer splits off, as a regex. */
const char *pretok_punct_regex(void);
/* Splitting text into words, one at a time, in order (see pretok.c). */
struct pretok_level {
	size_t off, len;      /* the span of the text this level splits */
	size_t pos, last;     /* where the next search starts; the end of the last match */
	struct pretok_span pending; /* a match found after a gap, handed out next */
	bool done;
};
struct pretok_iter {
	const struct pretok *p;   /* NULL: ended (no regexes) */
	const char *text;
	size_t len;
	int depth;                /* the level now splitting */
	struct pretok_level lv[PRETOK_MAX_REGEX];
	void *md[PRETOK_MAX_REGEX]; /* pcre2_match_data_8 * */
};
/* Starts splitting text[0..len) (which must outlive the iterator). 0 or HEARTH_ENOMEM. */
int pretok_iter_init(struct pretok_iter *it, const struct pretok *p, const char *text, size_t len);
/* The next word; false when none is left. */
bool pretok_iter_next(struct pretok_iter *it, struct pretok_span *word);
void pretok_iter_free(struct pretok_iter *it);

#endif /* HEARTH_PRETOK_H */
