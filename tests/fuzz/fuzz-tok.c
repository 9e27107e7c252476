/* fuzz-tok.c - libFuzzer target: the tokenizers, the detokenizer and the
 * streaming detokenizer on the fuzzer's bytes.
 *
 * At start-up it loads vocabularies of every kind hearth has from the fixtures
 * (SentencePiece-style llama-spm and phi-3; byte-level BPE with the llama3,
 * qwen2 (NFC), deepseek-v3, gpt-2, deepseek-llm, deepseek-coder, falcon and
 * starcoder pre-tokenizers). An input is one flag byte then the text:
 *   bits 0-3  the vocabulary (modulo their count)
 *   bit 4     add_special      bit 5  parse_special      bit 6  detokenize with special
 * The text's bytes are also read as token ids (three bytes each, some past the
 * vocabulary's end) for the detokenizers alone.
 *
 * Properties checked, besides the sanitizers:
 *  - tokenizing succeeds and every id is inside the vocabulary; add_special
 *    only puts BOS in front and EOS behind, as the vocabulary asks;
 *  - the streaming detokenizer hands out the concatenation of the pieces
 *    (hearth_token_to_piece), each hand-out ending on a character boundary when
 *    the whole is UTF-8; hearth_detokenize gives the same text but for the
 *    one leading space SentencePiece adds (dropped from the first piece when
 *    the vocabulary adds a space prefix); ids outside the vocabulary are an
 *    error there and nothing in the stream;
 *  - round trip: detokenizing the ids of a valid UTF-8 text (with special
 *    when special tokens were parsed) gives the text back (SentencePiece: with
 *    U+2581 as a space), and for any text tokenizing that result again gives the
 *    same ids. Qwen's tokenizer normalizes to NFC, so there only the second
 *    holds. SentencePiece texts that hold a special token are left out: the text
 *    after it gets a space prefix, as in llama.cpp; so are texts with a byte that a
 *    byte-level vocabulary has no symbol for (falcon, starcoder lack some), which
 *    is dropped, and byte-level texts holding a user-defined token whose text is of
 *    the byte alphabet but stands for other bytes ("\xc3\xb5" decodes to byte 0xf5,
 *    as Hugging Face decodes it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/model/model.h"
#include "common.h"

static const char *const vocab_files[] = {
	"vocab/ggml-vocab-llama-spm.gguf",   "vocab/ggml-vocab-phi-3.gguf",        "vocab/hf-llama3.vocab.gguf",
	"vocab/hf-qwen3.vocab.gguf",         "vocab/hf-deepseek-v3.vocab.gguf",    "vocab/ggml-vocab-gpt-2.gguf",
	"vocab/ggml-vocab-deepseek-llm.gguf", "vocab/ggml-vocab-deepseek-coder.gguf", "vocab/ggml-vocab-falcon.gguf",
	"vocab/ggml-vocab-starcoder.gguf",
};
#define N_VOCABS (sizeof vocab_files / sizeof vocab_files[0])

static struct hearth_model *models[N_VOCABS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_model_params p = hearth_model_default_params();
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	p.vocab_only = true;
	for (size_t i = 0; i < N_VOCABS; i++) {
		struct hearth_err err = { 0 };
		if (hearth_model_load(&models[i], fuzz_fixture(vocab_files[i]), &p, &err)) {
			fprintf(stderr, "fuzz-tok: %s (the fixtures: ../shared/fixtures or $HEARTH_FIXTURES)\n", err.msg);
			exit(1);
		}
	}
	return 0;
}

static bool is_utf8(const char *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if (!(k = hearth_utf8_valid(s + i, n - i)))
			return false;
	return true;
}

static bool same_ids(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static int32_t *tokenize(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			 bool parse_special, int32_t *n)
{
	struct hearth_err err = { 0 };
	int32_t *ids = NULL;
	int rc = hearth_tokenize(m, text, len, add_special, parse_special, &ids, n, &err);
	FUZZ_CHECK(rc == 0, "tokenize: %s", err.msg);
	for (int32_t i = 0; i < *n; i++)
		FUZZ_CHECK(ids[i] >= 0 && ids[i] < hearth_model_n_vocab(m), "id %d", ids[i]);
	return ids;
}

static char *detokenize(const struct hearth_model *m, const int32_t *ids, int32_t n, bool special, size_t *len)
{
	struct hearth_err err = { 0 };
	char *s = NULL;
	int rc = hearth_detokenize(m, ids, n, special, &s, len, &err);
	FUZZ_CHECK(rc == 0, "detokenize: %s", err.msg);
	return s;
}

/* add_special adds BOS in front and EOS behind as the vocabulary asks, nothing else. */
static void check_add_special(const struct hearth_model *m, const char *text, size_t len, bool ps,
			      const int32_t *ids, int32_t n)
{
	const struct tok_vocab *v = &m->vocab;
	int32_t nw;
	int32_t *with = tokenize(m, text, len, true, ps, &nw);
	const int32_t head = v->add_bos ? 1 : 0, tail = v->add_eos ? 1 : 0;
	FUZZ_CHECK(nw == n + head + tail, "%d ids with add_special, %d without", nw, n);
	FUZZ_CHECK(!head || with[0] == v->bos, "first id %d, BOS %d", with[0], v->bos);
	FUZZ_CHECK(!tail || with[nw - 1] == v->eos, "last id %d, EOS %d", with[nw - 1], v->eos);
	FUZZ_CHECK(same_ids(with + head, nw - head - tail, ids, n), "add_special changed the text's ids");
	free(with);
}

/* A growable byte buffer. */
struct bytes {
	char *p;
	size_t n, cap;
};

/* Room for n more bytes (and a NUL) at b->p + b->n. */
static char *bytes_room(struct bytes *b, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = 2 * (b->n + n + 1);
		FUZZ_CHECK((b->p = realloc(b->p, b->cap)) != NULL, "out of memory");
	}
	return b->p + b->n;
}

static void bytes_add(struct bytes *b, const char *s, size_t n)
{
	if (n)
		memcpy(bytes_room(b, n), s, n);
	b->n += n;
}

/* Does hearth_detokenize drop the first piece's leading space (SentencePiece's prefix)? */
static bool drops_space(const struct hearth_model *m, int32_t first, const struct bytes *pieces)
{
	const struct tok_vocab *v = &m->vocab;
	return first >= 0 && v->kind == TOK_SPM && v->add_space_prefix && v->type[first] == TOK_TYPE_NORMAL &&
	       pieces->p[0] == ' ';
}

/* ids through the streaming detokenizer and hearth_token_to_piece. */
struct streamed {
	struct bytes pieces, stream; /* the pieces concatenated; what the stream handed out */
	size_t *ends, n_ends;        /* where each hand-out ended in stream */
	int32_t *in, n_in;           /* the ids inside the vocabulary */
	int32_t first;               /* the first id with a piece, or -1 */
};

static void stream_ids(const struct hearth_model *m, const int32_t *ids, int32_t n, bool special, struct streamed *r)
{
	struct hearth_err err = { 0 };
	struct hearth_detok *d = NULL;
	size_t k;
	memset(r, 0, sizeof *r);
	r->ends = malloc(((size_t)n + 1) * sizeof *r->ends);
	r->in = malloc(((size_t)n + 1) * sizeof *r->in);
	r->first = -1;
	FUZZ_CHECK(r->ends && r->in, "out of memory");
	FUZZ_CHECK(hearth_detok_new(&d, m, special, &err) == 0, "detok_new: %s", err.msg);
	for (int32_t i = 0; i < n; i++) {
		const int np = hearth_token_to_piece(m, ids[i], special, NULL, 0);
		const char *out = hearth_detok_push(d, ids[i], &k);
		if (ids[i] < 0 || ids[i] >= hearth_model_n_vocab(m)) {
			FUZZ_CHECK(np == HEARTH_EINVAL, "piece of id %d: %d", ids[i], np);
			FUZZ_CHECK(k == 0 && out, "id %d outside the vocabulary streamed %zu bytes", ids[i], k);
			continue;
		}
		FUZZ_CHECK(np >= 0, "piece of id %d: %d", ids[i], np);
		r->in[r->n_in++] = ids[i];
		if (np > 0 && r->first < 0)
			r->first = ids[i];
		FUZZ_CHECK(hearth_token_to_piece(m, ids[i], special, bytes_room(&r->pieces, (size_t)np), (size_t)np) == np,
			   "piece of id %d changed size", ids[i]);
		r->pieces.n += (size_t)np;
		bytes_add(&r->stream, out, k);
		r->ends[r->n_ends++] = r->stream.n;
	}
	const char *rest = hearth_detok_flush(d, &k);
	bytes_add(&r->stream, rest, k);
	r->ends[r->n_ends++] = r->stream.n;
	bytes_room(&r->pieces, 0);
	bytes_room(&r->stream, 0);
	hearth_detok_free(d);
}

/* The stream, the pieces and hearth_detokenize agree on ids (some may be outside the vocabulary). */
static void check_detok(const struct hearth_model *m, const int32_t *ids, int32_t n, bool special)
{
	struct hearth_err err = { 0 };
	struct streamed r;
	size_t len;
	stream_ids(m, ids, n, special, &r);
	FUZZ_CHECK(r.stream.n == r.pieces.n && memcmp(r.stream.p, r.pieces.p, r.pieces.n) == 0,
		   "streamed %zu bytes, the pieces are %zu", r.stream.n, r.pieces.n);
	if (is_utf8(r.pieces.p, r.pieces.n))
		for (size_t e = 0, at = 0; e < r.n_ends; at = r.ends[e++])
			FUZZ_CHECK(is_utf8(r.stream.p + at, r.ends[e] - at), "hand-out %zu is not whole characters", e);
	char *s = detokenize(m, r.in, r.n_in, special, &len);
	const size_t skip = drops_space(m, r.first, &r.pieces) ? 1 : 0;
	FUZZ_CHECK(len + skip == r.pieces.n && memcmp(s, r.pieces.p + skip, len) == 0 && s[len] == 0,
		   "detokenize gave %zu bytes, the pieces are %zu", len, r.pieces.n);
	free(s);
	if (r.n_in < n) {
		s = NULL;
		int rc = hearth_detokenize(m, ids, n, special, &s, &len, &err);
		FUZZ_CHECK(rc == HEARTH_EINVAL && s == NULL, "detokenize of ids outside the vocabulary: %d", rc);
		fuzz_check_err(rc, &err, "detokenize");
	}
	free(r.pieces.p);
	free(r.stream.p);
	free(r.ends);
	free(r.in);
}

/* Does ids hold a special token (after which SentencePiece adds a space)? */
static bool has_special(const struct hearth_model *m, const int32_t *ids, int32_t n)
{
	for (int32_t i = 0; i < n; i++) {
		const int t = m->vocab.type[ids[i]];
		if (t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN)
			return true;
	}
	return false;
}

/* SentencePiece reads U+2581 as a space: text with them replaced. */
static char *spm_unescape(const char *text, size_t len, size_t *out_len)
{
	char *o = malloc(len + 1);
	size_t n = 0;
	FUZZ_CHECK(o != NULL, "out of memory");
	for (size_t i = 0; i < len;) {
		if (len - i >= 3 && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
			o[n++] = ' ';
			i += 3;
		} else {
			o[n++] = text[i++];
		}
	}
	*out_len = n;
	return o;
}

/* Does ids hold a user-defined token that decodes to other bytes than its text? */
static bool has_recoded(const struct hearth_model *m, const int32_t *ids, int32_t n)
{
	const struct tok_vocab *v = &m->vocab;
	for (int32_t i = 0; i < n; i++) {
		const int32_t t = ids[i];
		if (v->type[t] == TOK_TYPE_USER_DEFINED &&
		    (v->piece_len[t] != v->text_len[t] || memcmp(v->piece[t], v->text[t], v->text_len[t]) != 0))
			return true;
	}
	return false;
}

/* Has the byte-level vocabulary a symbol for every byte of text (and of the
 * U+FFFD that invalid UTF-8 becomes)? A byte without one is dropped. */
static bool bytes_covered(const struct tok_vocab *v, const char *text, size_t len)
{
	if (v->kind != TOK_BPE)
		return true;
	for (size_t i = 0; i < len; i++)
		if (v->byte_sym[(unsigned char)text[i]] < 0)
			return false;
	return is_utf8(text, len) || (v->byte_sym[0xef] >= 0 && v->byte_sym[0xbf] >= 0 && v->byte_sym[0xbd] >= 0);
}

/* Text -> ids -> text -> ids; ps: special tokens parsed, and detokenized as text. */
static void check_round_trip(const struct hearth_model *m, const char *text, size_t len, bool ps, const int32_t *ids,
			     int32_t n)
{
	const struct tok_vocab *v = &m->vocab;
	size_t back_len;
	if ((v->kind == TOK_SPM && has_special(m, ids, n)) || has_recoded(m, ids, n) || !bytes_covered(v, text, len))
		return;
	char *back = detokenize(m, ids, n, ps, &back_len);
	if (!v->pre.nfc && is_utf8(text, len)) {
		size_t want_len = len;
		char *want = v->kind == TOK_SPM ? spm_unescape(text, len, &want_len) : NULL;
		const char *w = want ? want : text;
		FUZZ_CHECK(back_len == want_len && memcmp(back, w, want_len) == 0,
			   "%zu bytes of text came back as %zu: '%.*s'", want_len, back_len, (int)back_len, back);
		free(want);
	}
	int32_t n2;
	int32_t *ids2 = tokenize(m, back, back_len, false, ps, &n2);
	FUZZ_CHECK(same_ids(ids, n, ids2, n2), "the detokenized text tokenizes to other ids (%d, %d before)", n2, n);
	free(ids2);
	free(back);
}

/* The input's bytes as ids, three bytes each; some fall past the vocabulary. */
static int32_t *ids_of_bytes(const struct hearth_model *m, const uint8_t *b, size_t size, int32_t *n)
{
	const uint32_t range = (uint32_t)hearth_model_n_vocab(m) + 2;
	int32_t *ids = malloc((size / 3 + 1) * sizeof *ids);
	FUZZ_CHECK(ids != NULL, "out of memory");
	*n = 0;
	for (size_t i = 0; i + 3 <= size; i += 3)
		ids[(*n)++] = (int32_t)(((uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16) % range);
	return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct hearth_model *m = models[(data[0] & 15) % N_VOCABS];
	const bool add_special = data[0] & 16, ps = data[0] & 32, special = data[0] & 64;
	const char *text = (const char *)data + 1;
	const size_t len = size - 1;
	int32_t n;
	int32_t *ids = tokenize(m, text, len, add_special, ps, &n);
	if (add_special) {
		free(ids);
		ids = tokenize(m, text, len, false, ps, &n);
		check_add_special(m, text, len, ps, ids, n);
	}
	check_detok(m, ids, n, special);
	check_round_trip(m, text, len, ps, ids, n);
	free(ids);
	ids = ids_of_bytes(m, data + 1, len, &n);
	check_detok(m, ids, n, special);
	free(ids);
	return 0;
}
