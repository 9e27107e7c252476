/*
 * tok.c - vocabulary loading, the special-token partition and the front door
 * of tokenization; token pieces for detokenization.
 *
 * Encoding a text:
 *   1. occurrences of special tokens (leftmost, longest first) are ready
 *      tokens; control tokens only when parse_special, user-defined always;
 *   2. the text fragments between them go to the SPM or BPE encoder (SPM: spaces
 *      become U+2581, and a fragment at the start or after a special token gets a
 *      leading space when the vocabulary asks for a space prefix);
 *   3. BOS / EOS are added when add_special and the vocabulary asks for them.
 * Everything goes in text order, one special token, fragment, SPM piece or
 * BPE word at a time, and the first id past the caller's limit ends it
 * (HEARTH_ETOOBIG); a piece or word so long that its ids alone cannot fit is
 * refused before it is merged (tok_ids_room).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../base/err.h"
#include "../base/log.h"
#include "tok.h"

int tok_ids_push(struct tok_ids *ids, int32_t id)
{
	if (ids->n >= ids->n_max)
		return HEARTH_ETOOBIG;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 64;
		int32_t *v = realloc(ids->v, cap * sizeof *v);
		if (!v)
			return HEARTH_ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

int tok_ids_room(const struct tok_vocab *v, const struct tok_ids *ids, const char *text, size_t len)
{
	size_t n = len;
	for (size_t i = 0; v->any_idless && i < len; i++)
		n -= v->idless[(unsigned char)text[i]];
	return (n + v->max_in_per_tok - 1) / v->max_in_per_tok > ids->n_max - ids->n ? HEARTH_ETOOBIG : 0;
}

/* Fills max_in_per_tok and idless (see tok_vocab). An id the encoders give
 * stands for a token's text (SPM) or its bytes (BPE), a byte (<0xXX>), or,
 * the unknown token, one character of at most 4 bytes. */
static void input_per_id(struct tok_vocab *v)
{
	v->max_in_per_tok = 4;
	for (int32_t i = 0; i < v->n_vocab; i++) {
		v->max_in_per_tok = v->text_len[i] > v->max_in_per_tok ? v->text_len[i] : v->max_in_per_tok;
		v->max_in_per_tok = v->piece_len[i] > v->max_in_per_tok ? v->piece_len[i] : v->max_in_per_tok;
	}
	for (int b = 0; b < 256; b++) {
		v->idless[b] = v->kind == TOK_BPE ? v->byte_sym[b] < 0 : v->byte_tok[b] < 0 && v->unk < 0;
		v->any_idless |= v->idless[b];
	}
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int tok_byte_of_text(const char *text, size_t len)
{
	if (len != 6 || memcmp(text, "<0x", 3) != 0 || text[5] != '>')
		return -1;
	const int hi = hex_digit(text[3]), lo = hex_digit(text[4]);
	return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

static int get_id(const struct hearth_gguf *g, const char *key, int32_t n_vocab, int32_t *out,
		  struct hearth_err *err)
{
	int64_t v;
	int rc = gguf_get_i64(g, key, &v, err);
	if (rc == HEARTH_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v < 0 || v >= n_vocab) {
		/* llama.cpp's converters sometimes write ids past a trimmed vocabulary */
		HLOG_WARN("%s: %s = %" PRId64 " is outside the vocabulary of %d; ignored", g->path, key, v, n_vocab);
		*out = -1;
		return 0;
	}
	*out = (int32_t)v;
	return 0;
}

static int get_flag(const struct hearth_gguf *g, const char *key, bool *out, struct hearth_err *err)
{
	int rc = gguf_get_bool(g, key, out, err);
	return rc == HEARTH_ENOTFOUND ? 0 : rc;
}

static bool text_is(const struct tok_vocab *v, int32_t id, const char *s)
{
	size_t n = strlen(s);
	return v->text_len[id] == n && memcmp(v->text[id], s, n) == 0;
}

/* Texts of tokens that end a turn in common chat formats. */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
	"<|end_of_text|>", "<EOT>",
	"<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>", /* DeepSeek's, with fullwidth bars */
};

static int build_pieces(struct tok_vocab *v)
{
	v->piece = calloc((size_t)v->n_vocab, sizeof *v->piece);
	v->piece_len = calloc((size_t)v->n_vocab, sizeof *v->piece_len);
	if (!v->piece || !v->piece_len)
		return HEARTH_ENOMEM;
	for (int32_t i = 0; i < v->n_vocab; i++) {
		const char *t = v->text[i];
		size_t n = v->text_len[i], o = 0;
		char *p = malloc(n + 1);
		int byte;
		if (!p)
			return HEARTH_ENOMEM;
		int type = v->type[i];
		/* Hugging Face runs user-defined tokens through the decoder as well:
		 * U+2581 becomes a space; byte-level text maps back to bytes when
		 * every character is of the byte alphabet (else it stays as it is) */
		if (type == TOK_TYPE_USER_DEFINED && (v->kind == TOK_SPM || bpe_text_in_alphabet(t, n)))
			type = TOK_TYPE_NORMAL;
		switch (type) {
		case TOK_TYPE_NORMAL:
			if (v->kind == TOK_BPE) {
				o = bpe_decode_text(t, n, p);
				break;
			}
			for (size_t j = 0; j < n;) { /* U+2581 -> ' ' */
				if (n - j >= 3 && memcmp(t + j, "\xe2\x96\x81", 3) == 0) {
					p[o++] = ' ';
					j += 3;
				} else {
					p[o++] = t[j++];
				}
			}
			break;
		case TOK_TYPE_BYTE:
			if ((byte = tok_byte_of_text(t, n)) >= 0)
				p[o++] = (char)byte;
			break;
		case TOK_TYPE_CONTROL:
		case TOK_TYPE_UNKNOWN:
		case TOK_TYPE_USER_DEFINED:
			memcpy(p, t, n);
			o = n;
			break;
		default: /* unused / undefined: no text */
			break;
		}
		p[o] = 0;
		v->piece[i] = p;
		v->piece_len[i] = (uint32_t)o;
		if (o > v->max_piece_len)
			v->max_piece_len = (uint32_t)o;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The characters that some token holds right before an inner U+2581. */
static void spm_find_glue(struct tok_vocab *v)
{
	v->spm_split = true;
	for (int32_t t = 0; t < v->n_vocab && v->spm_split; t++) {
		const char *s = v->text[t];
		size_t n = v->text_len[t], k;
		uint32_t prev = 0x2581;
		for (size_t i = 0; i < n; i += k) {
			uint32_t cp = utf8_cp(s + i, n - i, &k);
			if (cp == 0x2581 && prev != 0x2581) {
				int g = 0;
				while (g < v->n_glue && v->glue[g] != prev)
					g++;
				if (g == v->n_glue) {
					if (g == (int)(sizeof v->glue / sizeof v->glue[0])) {
						v->spm_split = false; /* too many: merge each text whole */
						break;
					}
					v->glue[v->n_glue++] = prev;
				}
			}
			prev = cp;
		}
	}
}

int tok_vocab_load(struct tok_vocab *v, const struct hearth_gguf *g, struct hearth_err *err)
{
	const struct gguf_kv *tokens, *scores = NULL, *types = NULL, *merges = NULL;
	struct gguf_str model, pre;
	char name[64];
	int rc;

	memset(v, 0, sizeof *v);
	v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = -1;
	for (int i = 0; i < 256; i++)
		v->byte_tok[i] = -1;

	rc = gguf_get_str(g, "tokenizer.ggml.model", &model, err);
	if (rc == HEARTH_ENOTFOUND)
		return err_set(err, HEARTH_EBADGGUF, "%s: no tokenizer (tokenizer.ggml.model is missing)", g->path);
	if (rc)
		return rc;
	snprintf(name, sizeof name, "%.*s", (int)(model.n < 63 ? model.n : 63), model.p);
	if (strcmp(name, "llama") == 0) {
		v->kind = TOK_SPM;
		v->bos = 1;
		v->eos = 2;
		v->unk = 0;
		v->add_bos = true;
		v->add_space_prefix = true;
	} else if (strcmp(name, "gpt2") == 0) {
		v->kind = TOK_BPE;
	} else {
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tokenizer model '%s' is not supported (llama, gpt2 are)",
			       g->path, name);
	}

	rc = gguf_get_arr(g, "tokenizer.ggml.tokens", HEARTH_GGUF_STRING, &tokens, err);
	if (rc == HEARTH_ENOTFOUND)
		return err_set(err, HEARTH_EBADGGUF, "%s: tokenizer.ggml.tokens is missing", g->path);
	if (rc)
		return rc;
	if (tokens->arr_n == 0 || tokens->arr_n > INT32_MAX / 2)
		return err_set(err, HEARTH_EBADGGUF, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries", g->path,
			       tokens->arr_n);
	v->n_vocab = (int32_t)tokens->arr_n;
	if ((rc = gguf_get_arr(g, "tokenizer.ggml.scores", HEARTH_GGUF_F32, &scores, err)) && rc != HEARTH_ENOTFOUND)
		return rc;
	if ((rc = gguf_get_arr(g, "tokenizer.ggml.token_type", HEARTH_GGUF_I32, &types, err)) && rc != HEARTH_ENOTFOUND)
		return rc;
	if ((scores && scores->arr_n != tokens->arr_n) || (types && types->arr_n != tokens->arr_n))
		return err_set(err, HEARTH_EBADGGUF, "%s: tokenizer scores/token_type counts differ from the %d tokens",
			       g->path, v->n_vocab);

	size_t nv = (size_t)v->n_vocab;
	v->text = malloc(nv * sizeof *v->text);
	v->text_len = malloc(nv * sizeof *v->text_len);
	v->score = calloc(nv, sizeof *v->score);
	v->type = malloc(nv);
	v->is_eog = calloc(nv, sizeof *v->is_eog);
	if (!v->text || !v->text_len || !v->score || !v->type || !v->is_eog || strmap_init(&v->by_text, nv))
		goto oom;
	const struct gguf_str *ts = tokens->arr;
	for (int32_t i = 0; i < v->n_vocab; i++) {
		if (ts[i].n > UINT32_MAX)
			return err_set(err, HEARTH_EBADGGUF, "%s: token %d is too long", g->path, i);
		v->text[i] = ts[i].p;
		v->text_len[i] = (uint32_t)ts[i].n;
		v->score[i] = scores ? (float)gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
		int64_t t = types ? gguf_arr_i64(types, (uint64_t)i) : TOK_TYPE_NORMAL;
		v->type[i] = (uint8_t)(t >= 0 && t <= TOK_TYPE_BYTE ? t : TOK_TYPE_UNDEFINED);
		/* a text listed twice maps to its last id, as in llama.cpp */
		if (strmap_set(&v->by_text, ts[i].p, ts[i].n, i))
			goto oom;
		if (v->kind == TOK_SPM && v->type[i] == TOK_TYPE_BYTE) {
			int b = tok_byte_of_text(ts[i].p, ts[i].n);
			if (b >= 0)
				v->byte_tok[b] = i;
		}
	}

	if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", v->n_vocab, &v->bos, err)) ||
	    (rc = get_id(g, "tokenizer.ggml.eos_token_id", v->n_vocab, &v->eos, err)) ||
	    (rc = get_id(g, "tokenizer.ggml.eot_token_id", v->n_vocab, &v->eot, err)) ||
	    (rc = get_id(g, "tokenizer.ggml.eom_token_id", v->n_vocab, &v->eom, err)) ||
	    (rc = get_id(g, "tokenizer.ggml.unknown_token_id", v->n_vocab, &v->unk, err)) ||
	    (rc = get_id(g, "tokenizer.ggml.padding_token_id", v->n_vocab, &v->pad, err)))
		return rc;
	if (v->bos >= v->n_vocab)
		v->bos = -1;
	if (v->eos >= v->n_vocab)
		v->eos = -1;
	if (v->unk >= v->n_vocab)
		v->unk = -1;

	if (v->kind == TOK_BPE) {
		rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
		if (rc && rc != HEARTH_ENOTFOUND)
			return rc;
		if (rc == HEARTH_ENOTFOUND) {
			HLOG_WARN("%s: tokenizer.ggml.pre is missing; using the 'default' pre-tokenizer", g->path);
			snprintf(name, sizeof name, "default");
		} else {
			snprintf(name, sizeof name, "%.*s", (int)(pre.n < 63 ? pre.n : 63), pre.p);
		}
		if ((rc = pretok_init(&v->pre, name, g->path, err)))
			return rc;
		v->ignore_merges = v->pre.ignore_merges;
		v->add_bos = v->pre.add_bos;
	}
	/* merges: required for byte-level BPE; SentencePiece vocabularies converted
	 * from Hugging Face carry them too (else pairs come from the scores) */
	rc = gguf_get_arr(g, "tokenizer.ggml.merges", HEARTH_GGUF_STRING, &merges, err);
	if (rc == HEARTH_ENOTFOUND && v->kind == TOK_BPE)
		return err_set(err, HEARTH_EBADGGUF, "%s: tokenizer.ggml.merges is missing", g->path);
	if (rc && rc != HEARTH_ENOTFOUND)
		return rc;
	if (tok_pairs_build(&v->pairs, v, merges ? merges->arr : NULL, merges ? merges->arr_n : 0))
		goto oom;
	if (v->kind == TOK_SPM)
		spm_find_glue(v);
	for (int b = 0; b < 256; b++) {
		char u[4];
		int k = bpe_byte_to_utf8((uint8_t)b, u);
		v->byte_sym[b] = strmap_get(&v->by_text, u, (size_t)k);
		if (b < 128) {
			u[0] = (char)b;
			v->ascii_sym[b] = strmap_get(&v->by_text, u, 1);
		}
	}
	if ((rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) ||
	    (rc = get_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) ||
	    (rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)))
		return rc;
	if (v->add_bos && v->bos < 0)
		v->add_bos = false;
	if (v->add_eos && v->eos < 0)
		v->add_eos = false;

	/* end-of-generation tokens: eos, eot, eom and the known turn enders */
	for (int32_t i = 0; i < v->n_vocab; i++)
		for (size_t k = 0; k < sizeof eog_texts / sizeof eog_texts[0]; k++)
			if (text_is(v, i, eog_texts[k])) {
				v->is_eog[i] = true;
				v->type[i] = TOK_TYPE_CONTROL;
				if (v->eot < 0 && k != 5)
					v->eot = i;
			}
	if (v->eos >= 0)
		v->is_eog[v->eos] = true;
	if (v->eot >= 0)
		v->is_eog[v->eot] = true;
	if (v->eom >= 0)
		v->is_eog[v->eom] = true;

	/* special tokens: a map, and per first byte the lengths to try */
	uint32_t *lens = malloc(nv * sizeof *lens);
	uint32_t count[256] = { 0 };
	if (!lens || strmap_init(&v->special, 64)) {
		free(lens);
		goto oom;
	}
	size_t n_lens = 0;
	for (int32_t i = 0; i < v->n_vocab; i++)
		if ((v->type[i] == TOK_TYPE_CONTROL || v->type[i] == TOK_TYPE_USER_DEFINED ||
		     v->type[i] == TOK_TYPE_UNKNOWN) && v->text_len[i] > 0) {
			if (strmap_set(&v->special, v->text[i], v->text_len[i], i)) {
				free(lens);
				goto oom;
			}
			lens[n_lens++] = ((uint32_t)(unsigned char)v->text[i][0] << 24) | (0xffffffu - (v->text_len[i] & 0xffffffu));
		}
	qsort(lens, n_lens, sizeof *lens, cmp_u32);
	v->special_len = malloc((n_lens + 1) * sizeof *v->special_len);
	if (!v->special_len) {
		free(lens);
		goto oom;
	}
	size_t n_distinct = 0;
	for (size_t i = 0; i < n_lens; i++) {
		if (i > 0 && lens[i] == lens[i - 1])
			continue;
		count[lens[i] >> 24]++;
		v->special_len[n_distinct++] = 0xffffffu - (lens[i] & 0xffffffu);
	}
	free(lens);
	for (int b = 0; b < 256; b++)
		v->special_off[b + 1] = v->special_off[b] + count[b];

	if (build_pieces(v))
		goto oom;
	input_per_id(v);
	return 0;
oom:
	return err_set(err, HEARTH_ENOMEM, "%s: out of memory loading the vocabulary", g->path);
}

void tok_vocab_free(struct tok_vocab *v)
{
	if (v->piece)
		for (int32_t i = 0; i < v->n_vocab; i++)
			free(v->piece[i]);
	free(v->piece);
	free(v->piece_len);
	free(v->text);
	free(v->text_len);
	free(v->score);
	free(v->type);
	free(v->is_eog);
	free(v->special_len);
	strmap_free(&v->special);
	strmap_free(&v->by_text);
	tok_pairs_free(&v->pairs);
	pretok_free(&v->pre);
	memset(v, 0, sizeof *v);
}

/* Text that may not become special tokens: sorted, disjoint byte ranges, and
 * the first that may still matter to a search going forward. */
struct plain_cursor {
	const struct hearth_span *s;
	size_t n, k;
};

/* Whether text[at..at+n) overlaps a plain range; moves the cursor past the
 * ranges that end at or before at (searches only go forward). */
static bool overlaps_plain(struct plain_cursor *pc, size_t at, size_t n)
{
	while (pc->k < pc->n && pc->s[pc->k].off + pc->s[pc->k].len <= at)
		pc->k++;
	return pc->k < pc->n && pc->s[pc->k].off < at + n;
}

/* Finds the first special-token text in text[from..len): leftmost and, at
 * one place, the longest token (Hugging Face's rule for added tokens).
 * Control and unknown tokens only when parse_special; user-defined ones
 * always; none that overlaps a plain range. True with its place, id and
 * length; false when there is none. */
static bool next_special(const struct tok_vocab *v, const char *text, size_t len, size_t from, bool parse_special,
			 struct plain_cursor *pc, size_t *at, int32_t *id, uint32_t *id_len)
{
	for (size_t i = from; i < len; i++) {
		unsigned char b = (unsigned char)text[i];
		for (uint32_t k = v->special_off[b]; k < v->special_off[b + 1]; k++) {
			uint32_t L = v->special_len[k];
			if (L > len - i)
				continue;
			int32_t t = strmap_get(&v->special, text + i, L);
			if (t >= 0 && (parse_special || v->type[t] == TOK_TYPE_USER_DEFINED) && !overlaps_plain(pc, i, L)) {
				*at = i;
				*id = t;
				*id_len = L;
				return true;
			}
		}
	}
	return false;
}

/* NFC-inert characters (below U+30000): ones NFC keeps as they are and that
 * never join the character before them (combining class 0, not the second of
 * a composition). A text changes under NFC only around the others, so only
 * those places go through utf8proc. A singleton built once per process. */
#define NFC_MAP_END 0x30000u
static struct {
	pthread_once_t once;
	uint8_t bit[NFC_MAP_END / 8];
} nfc_inert_map = { .once = PTHREAD_ONCE_INIT };

static void nfc_inert_init(void)
{
	for (uint32_t cp = 0; cp < NFC_MAP_END; cp++) {
		const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
		bool second = p->comb_index != UINT16_MAX && (p->comb_index & 0x8000);
		bool jamo_vt = (cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11a8 && cp <= 0x11c2); /* composed by rule */
		bool changes = false;
		if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0 && !(cp >= 0xd800 && cp <= 0xdfff)) {
			/* canonical decompositions: most recompose, singletons and exclusions do not */
			utf8proc_uint8_t u[4], *norm = NULL;
			utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, u);
			utf8proc_ssize_t m = utf8proc_map(u, k, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
			changes = m != k || memcmp(norm, u, (size_t)k) != 0;
			free(norm);
		}
		bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
		if (p->combining_class == 0 && !second && !jamo_vt && !changes && !surrogate)
			nfc_inert_map.bit[cp >> 3] |= (uint8_t)(1u << (cp & 7));
	}
}

/* The map's answer; call only after nfc_inert_init has run. */
static bool inert_bit(uint32_t cp)
{
	return cp < NFC_MAP_END && (nfc_inert_map.bit[cp >> 3] >> (cp & 7) & 1);
}

bool tok_nfc_inert(uint32_t cp)
{
	pthread_once(&nfc_inert_map.once, nfc_inert_init);
	return inert_bit(cp);
}

/* NFC of valid UTF-8 text into *out (malloc'd), or *out = NULL when the text
 * is already NFC by the quick rule above. */
static int nfc_text(const char *text, size_t len, char **out, size_t *out_len)
{
	char *o = NULL;
	size_t n = 0, copied = 0, prev = 0;
	*out = NULL;
	pthread_once(&nfc_inert_map.once, nfc_inert_init);
	for (size_t i = 0; i < len;) {
		size_t k;
		if (inert_bit(utf8_cp(text + i, len - i, &k))) {
			prev = i;
			i += k;
			continue;
		}
		/* the region: the character before (a starter it may join) up to the next inert one */
		size_t a = i > copied ? prev : i, b = i + k;
		while (b < len) {
			size_t kb;
			if (inert_bit(utf8_cp(text + b, len - b, &kb)))
				break;
			b += kb;
		}
		utf8proc_uint8_t *norm = NULL;
		utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text + a, (utf8proc_ssize_t)(b - a), &norm,
						  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		if (!o)
			o = malloc(4 * len + 4); /* NFC grows a text at most threefold */
		if (m < 0 || !o || (size_t)m > 3 * (b - a)) {
			free(norm);
			free(o);
			return HEARTH_ENOMEM;
		}
		memcpy(o + n, text + copied, a - copied);
		n += a - copied;
		memcpy(o + n, norm, (size_t)m);
		n += (size_t)m;
		free(norm);
		copied = prev = i = b;
	}
	if (o) {
		memcpy(o + n, text + copied, len - copied);
		n += len - copied;
		*out = o;
		*out_len = n;
	}
	return 0;
}

/* Hugging Face normalizes Qwen's input to NFC (composed characters) before
 * splitting. */
static int bpe_encode_nfc(const struct tok_vocab *v, struct merge_ws *w, const char *text, size_t len,
			  struct tok_ids *out)
{
	char *norm;
	size_t n;
	int rc = nfc_text(text, len, &norm, &n);
	if (rc)
		return rc;
	if (!norm)
		return bpe_encode(v, w, text, len, out);
	rc = bpe_encode(v, w, norm, n, out);
	free(norm);
	return rc;
}

/* Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (as Rust's
 * String::from_utf8_lossy, Python's errors="replace" and WHATWG decoders do):
 * the text Hugging Face's tokenizers would see. NULL when text is valid. */
static char *utf8_lossy(const char *text, size_t len, size_t *out_len, int *rc)
{
	size_t i = 0, k;
	*rc = 0;
	while (i < len && (k = hearth_utf8_valid(text + i, len - i)) > 0)
		i += k;
	if (i == len)
		return NULL;
	char *o = malloc(3 * len + 1);
	size_t n = 0;
	if (!o) {
		*rc = HEARTH_ENOMEM;
		return NULL;
	}
	memcpy(o, text, i);
	n = i;
	while (i < len) {
		if ((k = hearth_utf8_valid(text + i, len - i)) > 0) {
			memcpy(o + n, text + i, k);
			n += k;
			i += k;
			continue;
		}
		/* the longest prefix of a well-formed sequence, at least one byte */
		unsigned char c = (unsigned char)text[i];
		size_t want = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 1;
		size_t j = 1;
		while (j < want && i + j < len) {
			unsigned char d = (unsigned char)text[i + j];
			unsigned char lo = 0x80, hi = 0xbf;
			if (j == 1)
				lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80, hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
			if (d < lo || d > hi)
				break;
			j++;
		}
		memcpy(o + n, "\xef\xbf\xbd", 3);
		n += 3;
		i += j;
	}
	*out_len = n;
	return o;
}

/* SPM: ' ' -> U+2581, with an optional leading space. */
static char *spm_escape(const char *s, size_t n, bool prefix, size_t *out_len)
{
	char *e = malloc(3 * n + 4);
	size_t o = 0;
	if (!e)
		return NULL;
	if (prefix) {
		memcpy(e, "\xe2\x96\x81", 3);
		o = 3;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(e + o, "\xe2\x96\x81", 3);
			o += 3;
		} else {
			e[o++] = s[i];
		}
	}
	*out_len = o;
	return e;
}

/* Encodes text[0..len) that holds no special token; prefix: SPM's leading space. */
static int encode_fragment(const struct tok_vocab *v, struct merge_ws *ws, const char *text, size_t len, bool prefix,
			   struct tok_ids *out)
{
	if (v->kind == TOK_BPE)
		return v->pre.nfc ? bpe_encode_nfc(v, ws, text, len, out) : bpe_encode(v, ws, text, len, out);
	size_t n;
	char *e = spm_escape(text, len, prefix, &n);
	if (!e)
		return HEARTH_ENOMEM;
	int rc = spm_encode(v, ws, e, n, out);
	free(e);
	return rc;
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
	       const struct hearth_span *plain, size_t n_plain, size_t n_max, struct tok_ids *out, struct hearth_err *err)
{
	struct merge_ws ws = { 0 };
	struct plain_cursor pc = { plain, n_plain, 0 };
	bool prev_special = true;
	size_t fixed_len;
	int rc;

	out->n_max = n_max;
	if (len > (size_t)INT32_MAX / 4)
		return err_set(err, HEARTH_ETOOBIG, "tokenize: text of %zu bytes is too long", len);
	char *fixed = utf8_lossy(text, len, &fixed_len, &rc);
	struct hearth_span whole = { 0, 0 };
	if (rc)
		goto out;
	if (fixed) { /* offsets moved: with plain ranges, all of it is plain */
		text = fixed;
		len = fixed_len;
		whole.len = fixed_len;
		if (n_plain)
			pc = (struct plain_cursor){ &whole, 1, 0 };
	}
	if (add_special && v->add_bos && (rc = tok_ids_push(out, v->bos)))
		goto out;
	/* special tokens cut the text into fragments, encoded in order */
	for (size_t i = 0; i <= len;) {
		size_t at = len;
		int32_t id = -1;
		uint32_t id_len = 0;
		bool hit = next_special(v, text, len, i, parse_special, &pc, &at, &id, &id_len);
		if (at > i) {
			if ((rc = encode_fragment(v, &ws, text + i, at - i, v->add_space_prefix && prev_special, out)))
				goto out;
			prev_special = false;
		}
		if (!hit)
			break;
		if ((rc = tok_ids_push(out, id)))
			goto out;
		prev_special = true;
		i = at + id_len;
	}
	if (add_special && v->add_eos)
		rc = tok_ids_push(out, v->eos);
out:
	free(fixed);
	merge_ws_free(&ws);
	if (rc == HEARTH_ETOOBIG)
		return err_set(err, rc, "tokenize: the text is longer than the limit of %zu tokens", n_max);
	return rc ? err_set(err, rc, "tokenize: %s", hearth_strerror(rc)) : 0;
}
