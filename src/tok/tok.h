/* tok.h - the vocabulary of a model and the tokenizers over it.
 *
 * struct tok_vocab is loaded from a GGUF's tokenizer.ggml.* keys. Token texts
 * point into the GGUF mapping, which must outlive the vocabulary. Read-only
 * after load: encoding and decoding are safe from many threads.
 *
 *   tok.c  vocabulary, special-token partition, front door, pieces
 *   spm.c  SentencePiece-style: characters, merges, byte fallback
 *   bpe.c  byte-level BPE over pre-tokenized words
 *   merge.c  the merge loop both share, over token ids
 */
#ifndef HEARTH_TOK_H
#define HEARTH_TOK_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/strmap.h"
#include "../base/utf8.h"
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

/* (left id, right id) -> merged id and priority (see merge.c). */
struct tok_pair {
	uint64_t key; /* left id << 32 | right id */
	float prio;
	int32_t id;   /* the merged token; -1: empty slot */
};
struct tok_pairs {
	struct tok_pair *slot;
	size_t cap, n;
	/* pairs of ids below 256 (the byte-level alphabet's, in every known
	 * byte-level vocabulary) in a dense table: a word's first merges */
	struct tok_pair *dense; /* [256 * 256], key unused */
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
	uint32_t max_piece_len;  /* the longest piece */
	/* the most bytes of encoder input (BPE: a word's bytes; SPM: escaped text)
	 * that one id can stand for, and the bytes that may give no id at all
	 * (BPE: no byte token; SPM: no <0xXX> and no unknown token): a text of n
	 * bytes, k of them such, gives at least (n - k) / max_in_per_tok ids */
	uint32_t max_in_per_tok;
	bool any_idless;
	bool idless[256];
	struct strmap by_text;   /* token text -> id */
	struct tok_pairs pairs;  /* what merges into what, at which priority */
	int32_t byte_sym[256];   /* BPE: id of the byte-level character for byte b (or -1) */
	int32_t ascii_sym[128];  /* SPM: id of a one-character ASCII token (or -1) */
	/* SPM: a text splits into pieces merged apart before each U+2581 that follows
	 * another character, unless some token holds that character then U+2581 */
	bool spm_split;
	int n_glue;
	uint32_t glue[16];       /* those characters (code points) */
	struct strmap special;   /* text -> id of control, user-defined and unknown tokens */
	uint32_t *special_len;   /* for each first byte b, the lengths of the special texts */
	uint32_t special_off[257]; /* starting with b, longest first: [special_off[b], special_off[b+1]) */
	int32_t byte_tok[256];   /* SPM: id of <0xXX> (or -1) */
	int32_t bos, eos, eot, eom, unk, pad;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	struct pretok pre;       /* BPE only */
};

int tok_vocab_load(struct tok_vocab *v, const struct hearth_gguf *g, struct hearth_err *err);
/* The byte that a byte token's text "<0xHH>" (two hex digits, len bytes, no
 * NUL needed) stands for, or -1 when the text is not one. */
int tok_byte_of_text(const char *text, size_t len);
void tok_vocab_free(struct tok_vocab *v);

/* The ids an encode call produces: a growable buffer with a ceiling. */
struct tok_ids {
	int32_t *v;
	size_t n, cap;
	size_t n_max;  /* pushing one more than this many is HEARTH_ETOOBIG */
	/* the encoders' work, in bytes (tests read it): words the pre-tokenizer
	 * handed out (BPE) or pieces cut (SPM), and of those, what was merged */
	size_t n_split, n_merged;
};
/* Appends id: 0, HEARTH_ENOMEM, or HEARTH_ETOOBIG when ids holds n_max already. */
int tok_ids_push(struct tok_ids *ids, int32_t id);
/* HEARTH_ETOOBIG when merging text[0..len) (encoder input) must give more
 * ids than ids has room for (see tok_vocab.max_in_per_tok), else 0. */
int tok_ids_room(const struct tok_vocab *v, const struct tok_ids *ids, const char *text, size_t len);

/* Encodes text (see hearth_tokenize_max) into out, at most n_max ids. The
 * text is encoded in order and the encoders stop at the first id past n_max.
 * No special token is recognized where it would overlap one of the n_plain
 * sorted, disjoint ranges of plain (see hearth_tokenize_chat). */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
	       const struct hearth_span *plain, size_t n_plain, size_t n_max, struct tok_ids *out,
	       struct hearth_err *err);

/* Does NFC keep code point cp as it is, whatever comes before it? */
bool tok_nfc_inert(uint32_t cp);

/* The merge loop (merge.c). A symbol is a token id (-1: a character the
 * vocabulary lacks; -2: merged away) over bytes [off, off+len) of the word. */
struct merge_sym {
	int32_t id;
	int prev, next;
	uint32_t off, len;
};
struct merge_cand {
	float prio;
	int left;
	int32_t lid, rid, out;
};
struct merge_ws { /* reusable buffers of one encode call */
	struct merge_sym *s;
	size_t cap_s;
	struct merge_cand *q;
	size_t n_q, cap_q;
};
/* merges is tokenizer.ggml.merges ("left right") or NULL: pairs from the scores. */
int tok_pairs_build(struct tok_pairs *p, const struct tok_vocab *v, const struct gguf_str *merges, size_t n_merges);
void tok_pairs_free(struct tok_pairs *p);
int merge_ws_reserve(struct merge_ws *w, size_t n);
void merge_ws_free(struct merge_ws *w);
/* Links s[0..n) into a list and merges it; the result is the list from s[0]. */
int tok_merge(const struct tok_vocab *v, struct merge_ws *w, int n);

/* The encoders proper, on raw text without special tokens. */
int spm_encode(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len, struct tok_ids *out);
int bpe_encode(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len, struct tok_ids *out);
/* BPE byte-level alphabet: UTF-8 of the code point standing for byte b. */
int bpe_byte_to_utf8(uint8_t b, char out[4]);
/* Decodes a byte-level token text into raw bytes (out has room for len bytes). */
size_t bpe_decode_text(const char *text, size_t len, char *out);
/* Is every character of text one of the byte alphabet's? */
bool bpe_text_in_alphabet(const char *text, size_t len);

#endif /* HEARTH_TOK_H */
