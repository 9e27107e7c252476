/* test-tok-max.c - tokenizing with a ceiling (hearth_tokenize_max): the
 * same ids as hearth_tokenize up to the limit, for every kind of vocabulary,
 * HEARTH_ETOOBIG one past it, and work before a refusal that does not grow
 * with the text (counted, not timed). */
#include <stdlib.h>

#include "../../src/model/model.h"
#include "../harness.h"

/* Every kind: SentencePiece with pairs from scores, byte-level BPE with one
 * to six regexes, with ignore_merges, with NFC. */
static const char *const vocabs[] = {
	"vocab/ggml-vocab-llama-spm.gguf",    "vocab/ggml-vocab-phi-3.gguf",      "models/tiny-llama-spm.f32.gguf",
	"vocab/ggml-vocab-gpt-2.gguf",        "vocab/ggml-vocab-starcoder.gguf",  "vocab/ggml-vocab-falcon.gguf",
	"vocab/ggml-vocab-deepseek-llm.gguf", "vocab/ggml-vocab-deepseek-coder.gguf",
	"vocab/hf-llama3.vocab.gguf",         "vocab/hf-qwen3.vocab.gguf",        "vocab/hf-deepseek-v3.vocab.gguf",
};

static const char *const texts[] = {
	"Hello world! The quick brown fox jumps over the lazy dog.",
	"你好，世界！今天天气很好，我们去公园散步吧。 and back to English, 12345 digits",
	"<|im_start|>user\nhi <s> there</s><|im_end|>\n<|im_start|>assistant\n",
	"  leading spaces, tabs\t\tand e\xcc\x81 a decomposed e, \xff invalid bytes",
	"x",
	"",
};

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (*n = (size_t)ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc(*n + 1)) && fread(b, 1, *n, f) != *n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

/* Checks hearth_tokenize_max against hearth_tokenize on one text at the
 * limits n_full + 1, n_full, n_full - 1 and 0. */
static void check_text(const char *vocab, struct hearth_model *m, const char *text, size_t len, bool add_special)
{
	struct hearth_err err = { 0 };
	int32_t *full = NULL, n_full = 0;
	T_OK(hearth_tokenize(m, text, len, add_special, true, &full, &n_full, &err), err);
	const int32_t limits[] = { n_full + 1, n_full, n_full - 1, n_full / 2, 0 };
	for (size_t k = 0; full && k < sizeof limits / sizeof limits[0]; k++) {
		const int32_t max = limits[k];
		int32_t *ids = (int32_t *)&err, n = -1;
		if (max < 0)
			continue;
		int rc = hearth_tokenize_max(m, text, len, add_special, true, max, &ids, &n, &err);
		if (max >= n_full) {
			if (rc || n != n_full || memcmp(ids, full, (size_t)n * sizeof *ids))
				T_FAIL("%s: '%.40s' at limit %d: not the %d ids of hearth_tokenize (%s)", vocab, text, max,
				       n_full, rc ? err.msg : "other ids");
		} else {
			char want[64];
			snprintf(want, sizeof want, "limit of %d tokens", max);
			if (rc != HEARTH_ETOOBIG || ids || n != 0 || !strstr(err.msg, want))
				T_FAIL("%s: '%.40s' (%d ids) at limit %d: %s, not HEARTH_ETOOBIG naming the limit", vocab, text,
				       n_full, max, rc ? err.msg : "ids");
		}
		free(rc ? NULL : ids);
	}
	free(full);
}

void test_tok_max_same_ids(void)
{
	size_t n_mixed = 0;
	char *mixed = slurp("bench/text/mixed-zh-en.txt", &n_mixed);
	T_TRUE(mixed != NULL);
	for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
		struct hearth_model *m = t_load_vocab(vocabs[v]);
		for (size_t i = 0; m && i < sizeof texts / sizeof texts[0]; i++)
			for (int add = 0; add < 2; add++)
				check_text(vocabs[v], m, texts[i], strlen(texts[i]), add);
		if (m && mixed)
			check_text(vocabs[v], m, mixed, n_mixed, true);
		hearth_model_free(m);
	}
	free(mixed);
}

/* The encoders' work before the answer for text at limit n_max. */
static struct tok_ids work(const struct hearth_model *m, const char *text, size_t len, size_t n_max, int *rc)
{
	struct tok_ids ids = { 0 };
	struct hearth_err err = { 0 };
	*rc = tok_encode(&m->vocab, text, len, true, true, NULL, 0, n_max, &ids, &err);
	free(ids.v);
	ids.v = NULL;
	return ids;
}

void test_tok_max_bounded(void)
{
	static const char *const some[] = { "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-falcon.gguf",
					    "vocab/hf-qwen3.vocab.gguf", "vocab/hf-deepseek-v3.vocab.gguf" };
	enum { LIMIT = 1000, SHORT = 4, LONG = 40 };
	size_t n = 0;
	char *one = slurp("bench/text/mixed-zh-en.txt", &n);
	char *text = one ? malloc(n * LONG) : NULL;
	T_TRUE(text != NULL);
	if (!text) {
		free(one);
		return;
	}
	for (int k = 0; k < LONG; k++)
		memcpy(text + (size_t)k * n, one, n);
	for (size_t v = 0; v < sizeof some / sizeof some[0]; v++) {
		struct hearth_model *m = t_load_vocab(some[v]);
		if (!m)
			continue;
		int rc_short, rc_long, rc_word;
		struct tok_ids w_short = work(m, text, n * SHORT, LIMIT, &rc_short);
		struct tok_ids w_long = work(m, text, n * LONG, LIMIT, &rc_long);
		T_EQ_I64(rc_short, HEARTH_ETOOBIG);
		T_EQ_I64(rc_long, HEARTH_ETOOBIG);
		/* the same words split and merged, whatever text follows them, and no
		 * more merged than 1000 ids stand for */
		const size_t per = m->vocab.max_in_per_tok;
		if (w_short.n_split != w_long.n_split || w_short.n_merged != w_long.n_merged || w_long.n_split >= n * SHORT ||
		    w_long.n_merged > (size_t)(LIMIT + 1) * per)
			T_FAIL("%s: %zu bytes split, %zu merged for %zu bytes of text; %zu, %zu for %zu", some[v],
			       w_short.n_split, w_short.n_merged, n * SHORT, w_long.n_split, w_long.n_merged, n * LONG);
		/* one word longer than 1000 ids can stand for: refused before merging */
		const size_t n_word = (size_t)(LIMIT + 1) * per;
		char *word = malloc(n_word);
		T_TRUE(word != NULL);
		if (word) {
			memset(word, 'a', n_word);
			T_EQ_I64(work(m, word, n_word, LIMIT, &rc_word).n_merged, 0);
			T_EQ_I64(rc_word, HEARTH_ETOOBIG);
			/* but as long a text of ASCII bytes the vocabulary has no id for (falcon's
			 * control characters) gives no ids: it fits */
			for (int b = 1; b < 0x80; b++)
				if (m->vocab.idless[b]) {
					memset(word, b, n_word);
					(void)work(m, word, n_word, LIMIT, &rc_word);
					T_EQ_I64(rc_word, 0);
					break;
				}
			free(word);
		}
		printf("     %-36s %zu bytes split, %zu merged before refusing %zu or %zu bytes (at most %zu per id)\n",
		       some[v], w_long.n_split, w_long.n_merged, n * SHORT, n * LONG, per);
		hearth_model_free(m);
	}
	free(one);
	free(text);
}
