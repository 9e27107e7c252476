/* tok.h - the vocabulary of a model and the tokenizers over it.
 *
 * struct tok_vocab is loaded from a GGUF's tokenizer.ggml.* keys. Token texts
 * point into the GGUF mapping, which must outlive the vocabulary. Read-only
 * after load: encoding and decoding are safe from many threads.
 *
 *   tok.c  vocabulary, special-token partition, front door, pieces
 *   spm.c  SentencePiece-style merges by score with byte fallback
 *   bpe.c  byte-level BPE merges by rank over pre-tokenized words
 */
#ifndef HEARTH_TOK_H
#define HEARTH_TOK_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/strmap.h"
#include "../gguf/gguf.h"
#include "pretok.h"

enum tok_kind { TOK_SPM, TOK_BPE };

/* tokenizer.ggml.token_type values */
enum tok_type {
	TOK_TYPE_UNDEFINED = 0,
	TOK_TYPE_NORMAL = 1,
	TOK_TYPE_UNKNOWN = 2,
	TOK_TYPE_CONTROL = 3,
	TOK_TYPE_USER_DEFINED = 4,
	TOK_TYPE_UNUSED = 5,
	TOK_TYPE_BYTE = 6,
};

struct tok_vocab {
	enum tok_kind kind;
	int32_t n_vocab;
	const char **text;   /* [n_vocab] token text as stored (not NUL-terminated) */
	uint32_t *text_len;
	float *score;        /* [n_vocab] SPM merge priority (0 when absent) */
	uint8_t *type;       /* [n_vocab] enum tok_type */
	bool *is_eog;        /* [n_vocab] */
	char **piece;        /* [n_vocab] the bytes a token stands for (malloc'd) */
	uint32_t *piece_len;
	struct strmap by_text;   /* token text -> id */
	struct strmap merges;    /* BPE: "left right" -> rank */
	int32_t *special;        /* ids of control/user-defined/unknown tokens, longest text first */
	int32_t n_special;
	int32_t byte_tok[256];   /* SPM: id of <0xXX> (or -1) */
	int32_t bos, eos, eot, eom, unk, pad;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	struct pretok pre;       /* BPE only */
};

int tok_vocab_load(struct tok_vocab *v, const struct hearth_gguf *g, struct hearth_err *err);
void tok_vocab_free(struct tok_vocab *v);

/* Growable id buffer used by the encoders. */
struct tok_ids {
	int32_t *v;
	size_t n, cap;
};
int tok_ids_push(struct tok_ids *ids, int32_t id);

/* Encodes text (see hearth_tokenize). */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
	       struct tok_ids *out, struct hearth_err *err);

/* The encoders proper, on raw text without special tokens. */
int spm_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out);
int bpe_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out);
/* BPE byte-level alphabet: UTF-8 of the code point standing for byte b. */
int bpe_byte_to_utf8(uint8_t b, char out[4]);
/* Decodes a byte-level token text into raw bytes (out has room for len bytes). */
size_t bpe_decode_text(const char *text, size_t len, char *out);

#endif /* HEARTH_TOK_H */
