/*
 * hf-vocab.c - `hearth convert --vocab-only`: a Hugging Face tokenizer folder
 * (tokenizer.json, plus tokenizer_config.json and config.json when present)
 * to a vocabulary-only GGUF with the keys llama.cpp's converter writes.
 *
 * Two kinds of BPE tokenizer are understood:
 *   - byte-level BPE (a ByteLevel pre-tokenizer or decoder): model "gpt2",
 *     tokens, token types and merges; the pre type (tokenizer.ggml.pre) is
 *     told from the pre-tokenizer's split regexes, normalizer and
 *     ignore_merges (pretok_detect), never from a file or folder name;
 *   - SentencePiece-style BPE (spaces become U+2581 by a normalizer or a
 *     Metaspace pre-tokenizer, usually with byte fallback): model "llama",
 *     scores, token types, add_space_prefix. The merges are written too:
 *     llama.cpp merges by score (derived here from the merge ranks), hearth
 *     by the ranks themselves, which is exactly Hugging Face's rule.
 * Anything else (Unigram, WordPiece, unknown normalizers or splits) is an error
 * that names the part, never a silent approximation.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "../tok/pretok.h"
#include "../tok/tok.h"
#include "hf-vocab.h"

#define MAX_TOKENS (1 << 22) /* 16x the largest real vocabulary (Gemma 3: 262k) */

struct hf_vocab {
	char path[4096]; /* dir/tokenizer.json, for messages */
	json_t *tj, *tcfg, *mcfg;
	int32_t n_vocab;
	const char **text; /* borrowed from tj, or from owned[] */
	size_t *len;
	int32_t *type;
	char **owned;      /* [PADn] names and joined merges */
	size_t n_owned, cap_owned;
	const char **merges;
	size_t *merge_len;
	size_t n_merges;
	bool spm, space_prefix;
	int add_bos, add_eos; /* -1: not known */
	int32_t bos, eos, unk, pad;
	const char *pre;
};

/* flags: tokenizer_config.json may hold integers past 64 bits
 * (model_max_length 1e30), read there as reals; see json_int. */
static int load_json(const char *dir, const char *name, bool required, size_t flags, json_t **out,
		     struct hearth_err *err)
{
	char p[4096];
	json_error_t je;
	FILE *f;
	*out = NULL;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (!(f = fopen(p, "rb"))) {
		if (!required)
			return 0;
		return err_set(err, HEARTH_EIO, "%s: cannot open (a Hugging Face tokenizer folder holds tokenizer.json)", p);
	}
	*out = json_loadf(f, JSON_ALLOW_NUL | flags, &je);
	fclose(f);
	if (!*out)
		return err_set(err, HEARTH_EINVAL, "%s: line %d: %s", p, je.line, je.text);
	if (!json_is_object(*out))
		return err_set(err, HEARTH_EINVAL, "%s: not a JSON object", p);
	return 0;
}

/* A whole number read as integer or real, in [0, limit). */
static bool json_int(const json_t *v, int64_t limit, int64_t *out)
{
	double d = json_number_value(v);
	if (!json_is_number(v) || d < 0 || d >= (double)limit || d != (double)(int64_t)d)
		return false;
	*out = (int64_t)d;
	return true;
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool is_type(const json_t *o, const char *type)
{
	const char *t = str_of(o, "type");
	return t && strcmp(t, type) == 0;
}

static int own(struct hf_vocab *c, char *s)
{
	if (!s)
		return HEARTH_ENOMEM;
	if (c->n_owned == c->cap_owned) {
		size_t cap = c->cap_owned ? 2 * c->cap_owned : 1024;
		char **v = realloc(c->owned, cap * sizeof *v);
		if (!v) {
			free(s);
			return HEARTH_ENOMEM;
		}
		c->owned = v;
		c->cap_owned = cap;
	}
	c->owned[c->n_owned++] = s;
	return 0;
}

/* A token given as a string or as {"content": ...} (tokenizer_config.json). */
static const char *token_content(const json_t *v)
{
	return json_is_object(v) ? str_of(v, "content") : json_string_value(v);
}

static int32_t id_of(const struct hf_vocab *c, const char *text)
{
	if (!text)
		return -1;
	size_t n = strlen(text);
	for (int32_t i = 0; i < c->n_vocab; i++) /* once per special id: a scan is fine */
		if (c->text[i] && c->len[i] == n && memcmp(c->text[i], text, n) == 0)
			return i;
	return -1;
}

static int set_token(struct hf_vocab *c, int64_t id, const char *text, size_t len, struct hearth_err *err)
{
	if (id < 0 || id >= c->n_vocab)
		return err_set(err, HEARTH_EINVAL, "%s: token id %lld is out of range", c->path, (long long)id);
	c->text[id] = text;
	c->len[id] = len;
	return 0;
}

static int read_tokens(struct hf_vocab *c, struct hearth_err *err)
{
	json_t *model = json_object_get(c->tj, "model"), *vocab = json_object_get(model, "vocab");
	json_t *added = json_object_get(c->tj, "added_tokens"), *v;
	const char *key;
	size_t i;
	int64_t max_id = -1;
	int rc;

	if (!json_is_object(vocab))
		return err_set(err, HEARTH_EINVAL, "%s: model.vocab is not an object of token -> id", c->path);
	json_object_foreach(vocab, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_TOKENS)
			return err_set(err, HEARTH_EINVAL, "%s: model.vocab['%s'] is not a token id", c->path, key);
		if (json_integer_value(v) > max_id)
			max_id = json_integer_value(v);
	}
	if (added && !json_is_array(added))
		return err_set(err, HEARTH_EINVAL, "%s: added_tokens is not an array", c->path);
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");
		if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= MAX_TOKENS ||
		    !json_is_string(json_object_get(v, "content")))
			return err_set(err, HEARTH_EINVAL, "%s: added_tokens[%zu] needs an id and a content", c->path, i);
		if (json_integer_value(id) > max_id)
			max_id = json_integer_value(id);
	}
	if (max_id < 0)
		return err_set(err, HEARTH_EINVAL, "%s: the vocabulary is empty", c->path);
	c->n_vocab = (int32_t)max_id + 1;
	/* a model whose embedding has more rows than the tokenizer has tokens */
	int64_t vs;
	if (json_int(json_object_get(c->mcfg, "vocab_size"), MAX_TOKENS, &vs) && vs > c->n_vocab)
		c->n_vocab = (int32_t)vs;

	size_t n = (size_t)c->n_vocab;
	c->text = calloc(n, sizeof *c->text);
	c->len = calloc(n, sizeof *c->len);
	c->type = calloc(n, sizeof *c->type);
	if (!c->text || !c->len || !c->type)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->path);
	json_object_foreach(vocab, key, v) {
		if (c->text[json_integer_value(v)])
			return err_set(err, HEARTH_EINVAL, "%s: token id %lld is given twice in model.vocab", c->path,
				       (long long)json_integer_value(v));
		if ((rc = set_token(c, json_integer_value(v), key, strlen(key), err)))
			return rc;
		c->type[json_integer_value(v)] = TOK_TYPE_NORMAL;
	}
	json_array_foreach(added, i, v) {
		json_t *ct = json_object_get(v, "content");
		int64_t id = json_integer_value(json_object_get(v, "id"));
		if ((rc = set_token(c, id, json_string_value(ct), json_string_length(ct), err)))
			return rc;
		c->type[id] = json_is_true(json_object_get(v, "special")) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
	}
	for (int32_t t = 0; t < c->n_vocab; t++) {
		if (c->text[t]) {
			if (c->spm && c->type[t] == TOK_TYPE_NORMAL && tok_byte_of_text(c->text[t], c->len[t]) >= 0)
				c->type[t] = TOK_TYPE_BYTE;
			continue;
		}
		char pad[32]; /* ids no token claims, as llama.cpp names them */
		snprintf(pad, sizeof pad, "[PAD%d]", (int)t);
		if ((rc = own(c, strdup(pad))))
			return err_set(err, rc, "%s: out of memory", c->path);
		c->text[t] = c->owned[c->n_owned - 1];
		c->len[t] = strlen(pad);
		c->type[t] = TOK_TYPE_UNUSED;
	}
	const char *unk = str_of(model, "unk_token");
	if (unk && (c->unk = id_of(c, unk)) >= 0)
		c->type[c->unk] = TOK_TYPE_UNKNOWN;
	return 0;
}

static int read_merges(struct hf_vocab *c, struct hearth_err *err)
{
	json_t *merges = json_object_get(json_object_get(c->tj, "model"), "merges"), *m;
	size_t i;
	if (!json_is_array(merges))
		return err_set(err, HEARTH_EINVAL, "%s: model.merges is missing", c->path);
	c->n_merges = json_array_size(merges);
	c->merges = malloc((c->n_merges + 1) * sizeof *c->merges);
	c->merge_len = malloc((c->n_merges + 1) * sizeof *c->merge_len);
	if (!c->merges || !c->merge_len)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->path);
	json_array_foreach(merges, i, m) {
		if (json_is_string(m)) { /* "left right" */
			c->merges[i] = json_string_value(m);
			c->merge_len[i] = json_string_length(m);
			continue;
		}
		json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
		if (!json_is_array(m) || json_array_size(m) != 2 || !json_is_string(l) || !json_is_string(r))
			return err_set(err, HEARTH_EINVAL, "%s: model.merges[%zu] is not a pair of tokens", c->path, i);
		size_t ln = json_string_length(l), rn = json_string_length(r);
		char *s = malloc(ln + rn + 2);
		if (own(c, s))
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->path);
		memcpy(s, json_string_value(l), ln);
		s[ln] = ' ';
		memcpy(s + ln + 1, json_string_value(r), rn);
		s[ln + rn + 1] = 0;
		c->merges[i] = s;
		c->merge_len[i] = ln + rn + 1;
	}
	return 0;
}

/* Does o, or any member of a Sequence o, have the given type? */
static bool has_part(const json_t *o, const char *list, const char *type)
{
	json_t *v;
	size_t i;
	if (is_type(o, type))
		return true;
	if (is_type(o, "Sequence"))
		json_array_foreach(json_object_get(o, list), i, v)
			if (has_part(v, list, type))
				return true;
	return false;
}

static int unsupported(const struct hf_vocab *c, const char *what, const json_t *o, struct hearth_err *err)
{
	char *dump = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
	int rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: %s %.300s is not supported", c->path, what,
			 dump ? dump : "(?)");
	free(dump);
	return rc;
}

/* One step of a byte-level pre-tokenizer as a regex of the split chain;
 * ByteLevel without its regex only maps bytes and adds nothing. */
static int pre_step(const struct hf_vocab *c, const json_t *p, const char **chain, int *n, struct hearth_err *err)
{
	const char *re = NULL;
	if (is_type(p, "Split")) {
		const char *beh = str_of(p, "behavior");
		re = str_of(json_object_get(p, "pattern"), "Regex");
		if (!re || !beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(p, "invert")))
			return unsupported(c, "pre-tokenizer split", p, err);
	} else if (is_type(p, "ByteLevel")) {
		if (json_is_true(json_object_get(p, "add_prefix_space")))
			return unsupported(c, "pre-tokenizer ByteLevel with add_prefix_space", p, err);
		if (json_is_false(json_object_get(p, "use_regex")))
			return 0;
		re = pretok_gpt2_regex();
	} else if (is_type(p, "Digits")) {
		re = json_is_true(json_object_get(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
	} else if (is_type(p, "Punctuation")) {
		re = pretok_punct_regex();
	} else {
		return unsupported(c, "pre-tokenizer", p, err);
	}
	if (*n == PRETOK_MAX_REGEX)
		return unsupported(c, "pre-tokenizer (too many steps)", p, err);
	chain[(*n)++] = re;
	return 0;
}

/* Byte-level BPE: the split chain and flags name the pre type. */
static int detect_pre(struct hf_vocab *c, struct hearth_err *err)
{
	json_t *pre = json_object_get(c->tj, "pre_tokenizer"), *norm = json_object_get(c->tj, "normalizer"), *p;
	const char *chain[PRETOK_MAX_REGEX];
	int n = 0, rc;
	bool nfc = false;
	size_t i;

	if (is_type(pre, "Sequence")) {
		json_array_foreach(json_object_get(pre, "pretokenizers"), i, p)
			if ((rc = pre_step(c, p, chain, &n, err)))
				return rc;
	} else if (pre && !json_is_null(pre) && (rc = pre_step(c, pre, chain, &n, err))) {
		return rc;
	}
	if (is_type(norm, "NFC")) {
		nfc = true;
	} else if (is_type(norm, "Sequence")) {
		json_array_foreach(json_object_get(norm, "normalizers"), i, p) {
			if (!is_type(p, "NFC"))
				return unsupported(c, "normalizer", p, err);
			nfc = true;
		}
	} else if (norm && !json_is_null(norm)) {
		return unsupported(c, "normalizer", norm, err);
	}
	bool ignore = json_is_true(json_object_get(json_object_get(c->tj, "model"), "ignore_merges"));
	if (!(c->pre = pretok_detect(chain, n, ignore, nfc))) {
		char msg[1024] = "";
		size_t o = 0;
		for (int k = 0; k < n && o < sizeof msg; k++)
			o += (size_t)snprintf(msg + o, sizeof msg - o, " /%s/", chain[k]);
		return err_set(err, HEARTH_EUNSUPPORTED,
			       "%s: the pre-tokenizer (splits:%s%s; ignore_merges %s) is not one hearth knows", c->path,
			       n ? msg : " none", nfc ? "; NFC" : "", ignore ? "true" : "false");
	}
	return 0;
}

static bool is_replace_space(const json_t *o)
{
	const char *s = str_of(json_object_get(o, "pattern"), "String"), *to = str_of(o, "content");
	return is_type(o, "Replace") && s && to && !strcmp(s, " ") && !strcmp(to, "\xe2\x96\x81");
}

/* SentencePiece-style: spaces must become U+2581; a prefix may be added. */
static int check_spm(struct hf_vocab *c, struct hearth_err *err)
{
	json_t *norm = json_object_get(c->tj, "normalizer"), *pre = json_object_get(c->tj, "pre_tokenizer"), *p;
	json_t *arr = is_type(norm, "Sequence") ? json_object_get(norm, "normalizers") : NULL;
	bool escaped = false;
	size_t i, n = arr ? json_array_size(arr) : (norm && !json_is_null(norm));

	for (i = 0; i < n; i++) {
		p = arr ? json_array_get(arr, i) : norm;
		const char *pp = str_of(p, "prepend");
		if (is_type(p, "Prepend") && pp && !strcmp(pp, "\xe2\x96\x81") && !escaped)
			c->space_prefix = true;
		else if (is_replace_space(p))
			escaped = true;
		else
			return unsupported(c, "normalizer", p, err);
	}
	if (is_type(pre, "Metaspace")) {
		const char *rep = str_of(pre, "replacement"), *scheme = str_of(pre, "prepend_scheme");
		if (!rep || strcmp(rep, "\xe2\x96\x81") || json_is_true(json_object_get(pre, "split")) || escaped)
			return unsupported(c, "pre-tokenizer", pre, err);
		escaped = true;
		/* "first" prefixes only the text's start: hearth, like llama.cpp,
		 * also prefixes text after a special token */
		c->space_prefix = scheme ? strcmp(scheme, "never") != 0 : json_is_true(json_object_get(pre, "add_prefix_space"));
	} else if (is_type(pre, "Split") && escaped) {
		/* splitting on ' ' after spaces became U+2581 splits nothing */
		const char *s = str_of(json_object_get(pre, "pattern"), "String");
		if (!s || strcmp(s, " "))
			return unsupported(c, "pre-tokenizer", pre, err);
	} else if (pre && !json_is_null(pre)) {
		return unsupported(c, "pre-tokenizer", pre, err);
	}
	if (!escaped)
		return err_set(err, HEARTH_EUNSUPPORTED,
			       "%s: a BPE tokenizer that is neither byte-level (ByteLevel) nor SentencePiece-style "
			       "(spaces as U+2581) is not supported",
			       c->path);
	return 0;
}

/* add_bos/add_eos from tokenizer_config.json, else from the post-processor. */
static void read_specials(struct hf_vocab *c)
{
	static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "pad_token" };
	int32_t *ids[] = { &c->bos, &c->eos, &c->unk, &c->pad };
	static const char *const cfg_ids[] = { "bos_token_id", "eos_token_id", NULL, "pad_token_id" };
	for (size_t k = 0; k < 4; k++) {
		int32_t id = id_of(c, token_content(json_object_get(c->tcfg, keys[k])));
		json_t *ci = cfg_ids[k] ? json_object_get(c->mcfg, cfg_ids[k]) : NULL;
		if (json_is_array(ci))
			ci = json_array_get(ci, 0);
		int64_t cid;
		if (id < 0 && json_int(ci, c->n_vocab, &cid))
			id = (int32_t)cid;
		if (id >= 0)
			*ids[k] = id;
	}
	json_t *pp = json_object_get(c->tj, "post_processor"), *single = json_object_get(pp, "single");
	if (is_type(pp, "TemplateProcessing") && json_array_size(single) > 0) {
		json_t *first = json_object_get(json_array_get(single, 0), "SpecialToken");
		json_t *last = json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken");
		c->add_bos = first != NULL;
		c->add_eos = last != NULL;
		if (first && c->bos < 0)
			c->bos = id_of(c, str_of(first, "id"));
		if (last && c->eos < 0)
			c->eos = id_of(c, str_of(last, "id"));
	} else {
		c->add_bos = c->add_eos = 0;
	}
	json_t *ab = json_object_get(c->tcfg, "add_bos_token"), *ae = json_object_get(c->tcfg, "add_eos_token");
	if (json_is_boolean(ab))
		c->add_bos = json_is_true(ab);
	if (json_is_boolean(ae))
		c->add_eos = json_is_true(ae);
}

/* SPM scores: merges earlier in the list win, so a token made by merge r
 * scores -r; tokens no merge makes score below all of them. */
static int spm_scores(const struct hf_vocab *c, float **out, struct hearth_err *err)
{
	struct strmap by_text;
	float *score = malloc((size_t)c->n_vocab * sizeof *score);
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	if (!score || strmap_init(&by_text, (size_t)c->n_vocab)) {
		free(score);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", c->path);
	}
	for (int32_t t = 0; t < c->n_vocab; t++) {
		score[t] = -(float)c->n_merges - 1.0f;
		if (strmap_put(&by_text, c->text[t], c->len[t], t) < 0)
			rc = HEARTH_ENOMEM;
	}
	for (size_t r = 0; r < c->n_merges && !rc; r++) {
		const char *m = c->merges[r], *sp = memchr(m, ' ', c->merge_len[r]);
		if (!sp)
			continue;
		size_t ln = (size_t)(sp - m), rn = c->merge_len[r] - ln - 1;
		if (ln + rn > cap) {
			char *b = realloc(buf, cap = 2 * (ln + rn));
			if (!b) {
				rc = HEARTH_ENOMEM;
				break;
			}
			buf = b;
		}
		memcpy(buf, m, ln);
		memcpy(buf + ln, sp + 1, rn);
		int32_t t = strmap_get(&by_text, buf, ln + rn);
		if (t >= 0 && score[t] < -(float)r)
			score[t] = -(float)r;
	}
	free(buf);
	strmap_free(&by_text);
	if (rc) {
		free(score);
		return err_set(err, rc, "%s: out of memory", c->path);
	}
	*out = score;
	return 0;
}

static const char *arch_of(const struct hf_vocab *c)
{
	static const struct {
		const char *model_type, *arch;
	} map[] = { { "llama", "llama" }, { "mistral", "llama" }, { "qwen2", "qwen2" }, { "qwen3", "qwen3" },
		    { "gemma", "gemma" },  { "gemma2", "gemma2" },  { "gemma3", "gemma3" }, { "gemma3_text", "gemma3" },
		    { "phi3", "phi3" },    { "deepseek_v3", "deepseek2" }, { "glm4", "glm4" } };
	const char *mt = str_of(c->mcfg, "model_type");
	for (size_t i = 0; mt && i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(mt, map[i].model_type))
			return map[i].arch;
	return "llama";
}

int hf_vocab_write_keys(const struct hf_vocab *c, struct gguf_writer *w, const char *out_path, struct hearth_err *err)
{
	float *score = NULL;
	int rc;

	if (c->spm && (rc = spm_scores(c, &score, err)))
		return rc;
	rc = gguf_writer_set_str(w, "tokenizer.ggml.model", c->spm ? "llama" : "gpt2");
	char pre[64]; /* the canonical name: the first of the type's aliases */
	snprintf(pre, sizeof pre, "%.*s", c->spm ? 7 : (int)strcspn(c->pre, " "), c->spm ? "default" : c->pre);
	rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
	rc = rc ? rc : gguf_writer_set_arr_strn(w, "tokenizer.ggml.tokens", c->text, c->len, (uint64_t)c->n_vocab);
	rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HEARTH_GGUF_I32, c->type, (uint64_t)c->n_vocab);
	if (score)
		rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.scores", HEARTH_GGUF_F32, score, (uint64_t)c->n_vocab);
	rc = rc ? rc : gguf_writer_set_arr_strn(w, "tokenizer.ggml.merges", c->merges, c->merge_len, c->n_merges);
	if (c->bos >= 0)
		rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos);
	if (c->eos >= 0)
		rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos);
	if (c->unk >= 0)
		rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)c->unk);
	if (c->pad >= 0)
		rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)c->pad);
	rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", c->add_bos > 0);
	rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", c->add_eos > 0);
	if (c->spm)
		rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", c->space_prefix);
	json_t *tmpl = json_object_get(c->tcfg, "chat_template"), *t;
	size_t i;
	if (json_is_string(tmpl)) {
		rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.chat_template", json_string_value(tmpl));
	} else if (json_is_array(tmpl)) { /* named templates: "default" is the chat template */
		json_array_foreach(tmpl, i, t) {
			const char *name = str_of(t, "name"), *body = str_of(t, "template");
			char key[256];
			if (!name || !body)
				continue;
			if (!strcmp(name, "default"))
				snprintf(key, sizeof key, "tokenizer.chat_template");
			else
				snprintf(key, sizeof key, "tokenizer.chat_template.%s", name);
			rc = rc ? rc : gguf_writer_set_str(w, key, body);
		}
	}
	free(score);
	return rc ? err_set(err, rc, "%s: out of memory", out_path) : 0;
}

int32_t hf_vocab_n_tokens(const struct hf_vocab *c)
{
	return c->n_vocab;
}

static int write_gguf(struct hf_vocab *c, const char *dir, const char *out_path, struct hearth_err *err)
{
	struct gguf_writer *w;
	int rc;

	if ((rc = gguf_writer_new(&w, err)))
		return rc;
	const char *base = strrchr(dir, '/');
	base = base && base[1] ? base + 1 : dir;
	rc = gguf_writer_set_str(w, "general.architecture", arch_of(c));
	rc = rc ? rc : gguf_writer_set_str(w, "general.name", base);
	if (rc)
		rc = err_set(err, rc, "%s: out of memory", out_path);
	else if (!(rc = hf_vocab_write_keys(c, w, out_path, err)))
		rc = gguf_writer_write(w, out_path, err);
	gguf_writer_free(w);
	return rc;
}

void hf_vocab_free(struct hf_vocab *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_owned; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->text);
	free(c->len);
	free(c->type);
	free(c->merges);
	free(c->merge_len);
	json_decref(c->tj);
	json_decref(c->tcfg);
	json_decref(c->mcfg);
	free(c);
}

int hf_vocab_load(struct hf_vocab **out, const char *dir, struct hearth_err *err)
{
	struct hf_vocab *c = calloc(1, sizeof *c);
	int rc;

	*out = NULL;
	if (!c)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", dir);
	c->bos = c->eos = c->unk = c->pad = c->add_bos = c->add_eos = -1;
	snprintf(c->path, sizeof c->path, "%s/tokenizer.json", dir);
	if ((rc = load_json(dir, "tokenizer.json", true, 0, &c->tj, err)) ||
	    (rc = load_json(dir, "tokenizer_config.json", false, JSON_DECODE_INT_AS_REAL, &c->tcfg, err)) ||
	    (rc = load_json(dir, "config.json", false, JSON_DECODE_INT_AS_REAL, &c->mcfg, err)))
		goto out;
	json_t *model = json_object_get(c->tj, "model");
	const char *type = str_of(model, "type");
	if (!type || strcmp(type, "BPE")) {
		rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: model type '%s' is not supported (hearth converts BPE tokenizers)",
			     c->path, type ? type : "(none)");
		goto out;
	}
	const char *cont = str_of(model, "continuing_subword_prefix"), *eow = str_of(model, "end_of_word_suffix");
	json_t *dropout = json_object_get(model, "dropout");
	if ((cont && *cont) || (eow && *eow) || (json_is_number(dropout) && json_number_value(dropout) > 0)) {
		rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: BPE with a subword prefix, word suffix or dropout is not supported",
			     c->path);
		goto out;
	}
	bool bytelevel = has_part(json_object_get(c->tj, "pre_tokenizer"), "pretokenizers", "ByteLevel") ||
			 has_part(json_object_get(c->tj, "decoder"), "decoders", "ByteLevel");
	c->spm = !bytelevel;
	if ((rc = c->spm ? check_spm(c, err) : detect_pre(c, err)) || (rc = read_tokens(c, err)) ||
	    (rc = read_merges(c, err)))
		goto out;
	read_specials(c);
out:
	if (rc)
		hf_vocab_free(c);
	else
		*out = c;
	return rc;
}

int hearth_convert_hf_vocab(const char *dir, const char *out_path, struct hearth_err *err)
{
	struct hf_vocab *c;
	int rc = hf_vocab_load(&c, dir, err);
	if (!rc)
		rc = write_gguf(c, dir, out_path, err);
	hf_vocab_free(c);
	return rc;
}
