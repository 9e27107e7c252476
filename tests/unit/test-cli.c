/* test-cli.c - the hearth command as a user meets it: help, exit codes for
 * bad flags and values (2), file errors (1), and the JSON outputs. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "../harness.h"

/* Runs "$HEARTH_BIN args" (stderr kept with stdout when with_stderr), returns
 * the exit code; stdout (cut at cap) in out. */
static int vsh(char *out, size_t cap, bool with_stderr, const char *fmt, va_list ap)
{
	char args[2048], cmd[2400];
	const char *bin = getenv("HEARTH_BIN");
	vsnprintf(args, sizeof args, fmt, ap);
	snprintf(cmd, sizeof cmd, "%s %s %s", bin ? bin : "build/hearth", args, with_stderr ? "2>&1" : "2>/dev/null");
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	if (!p)
		return -1;
	if (out && cap) {
		n = fread(out, 1, cap - 1, p);
		out[n] = 0;
	} else {
		char sink[4096];
		while (fread(sink, 1, sizeof sink, p) > 0)
			;
	}
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vsh(out, cap, false, fmt, ap);
	va_end(ap);
	return rc;
}

/* As sh, with stderr in out too. */
static int sh2(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh2(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vsh(out, cap, true, fmt, ap);
	va_end(ap);
	return rc;
}

void test_cli(void)
{
	static char out[1 << 20];
	const char *stories = fixture("models/stories260K.f32.gguf");
	const char *qwen = fixture("models/tiny-qwen2.f32.gguf");

	T_EQ_I64(sh(out, sizeof out, "--help"), 0);
	T_TRUE(strstr(out, "run") != NULL);
	T_EQ_I64(sh(NULL, 0, "%s", ""), 2);
	T_EQ_I64(sh(NULL, 0, "frobnicate"), 2);
	const char *cmds[] = { "run", "chat", "inspect", "tokenize", "detokenize" };
	for (size_t i = 0; i < 5; i++) {
		T_EQ_I64(sh(out, sizeof out, "%s --help", cmds[i]), 0);
		T_TRUE(strstr(out, "usage") != NULL);
		T_EQ_I64(sh(NULL, 0, "%s --no-such-flag", cmds[i]), 2);
	}
	T_EQ_I64(sh(NULL, 0, "run -m %s -n abc", stories), 2);
	T_EQ_I64(sh(NULL, 0, "run -m %s --temp -1", stories), 2);
	T_EQ_I64(sh(NULL, 0, "run -m %s --top-p 1.5", stories), 2);
	T_EQ_I64(sh(NULL, 0, "run -m %s --cache-type q9", stories), 2);
	T_EQ_I64(sh(NULL, 0, "run -m %s -c", stories), 2);
	T_EQ_I64(sh(NULL, 0, "run -p hi"), 2);
	/* no prompt at all is a usage error, not a silent empty prompt; -f - reads stdin */
	T_EQ_I64(sh2(out, sizeof out, "run -m %s -n 2 < /dev/null", stories), 2);
	T_TRUE(strstr(out, "-p TEXT or -f FILE") != NULL);
	T_EQ_I64(sh(out, sizeof out, "run -m %s -f - -n 1 --temp 0 --json < /dev/null", stories), 0);
	T_TRUE(strstr(out, "\"prompt_ids\":[1]") != NULL);
	T_EQ_I64(sh(NULL, 0, "run -m /nonexistent.gguf -p hi"), 1);
	T_EQ_I64(sh(NULL, 0, "inspect /nonexistent.gguf"), 1);
	T_EQ_I64(sh(NULL, 0, "detokenize -m %s 1 x", stories), 2);

	/* greedy run: reproducible and as llama.cpp continues it */
	T_EQ_I64(sh(out, sizeof out, "run -m %s -p 'Once upon a time' -n 8 --temp 0 --json -t 2", stories), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	T_TRUE(j != NULL);
	json_t *ids = json_object_get(j, "ids");
	T_EQ_I64(json_array_size(ids), 8);
	T_EQ_I64(json_integer_value(json_array_get(ids, 0)), 432);
	T_EQ_I64(json_array_size(json_object_get(j, "prompt_ids")), 5);
	T_TRUE(strncmp(json_string_value(json_object_get(j, "text")), ", there was", 11) == 0);
	json_decref(j);
	/* seeded sampling reproduces */
	char a[4096], b[4096];
	T_EQ_I64(sh(a, sizeof a, "run -m %s -p 'Lily' -n 16 --seed 5 --temp 1 --json", stories), 0);
	T_EQ_I64(sh(b, sizeof b, "run -m %s -p 'Lily' -n 16 --seed 5 --temp 1 --json", stories), 0);
	T_STR_EQ(a, b);
	/* a q8_0 KV cache: where the heads allow it, and a clear refusal where not (8-wide heads) */
	T_EQ_I64(sh(NULL, 0, "run -m %s -p 'Hello' -n 4 --temp 0 --cache-type q8_0", qwen), 0);
	T_EQ_I64(sh(NULL, 0, "run -m %s -p 'Once' -n 4 --cache-type q8_0", stories), 1);
	/* a prompt longer than the context is refused cleanly */
	T_EQ_I64(sh(NULL, 0, "run -m %s -p 'Once upon a time there was a girl' -c 4 -n 1", stories), 1);

	/* tokenize / detokenize, also on vocabulary-only files */
	T_EQ_I64(sh(out, sizeof out, "tokenize -m %s 'Once upon a time'", stories), 0);
	T_STR_EQ(out, "[1,403,407,261,378]\n");
	T_EQ_I64(sh(out, sizeof out, "tokenize -m %s --no-bos 'Once upon a time'", stories), 0);
	T_STR_EQ(out, "[403,407,261,378]\n");
	T_EQ_I64(sh(out, sizeof out, "tokenize -m %s --special '<|im_start|>user'", qwen), 0);
	T_STR_EQ(out, "[2049,872]\n");
	T_EQ_I64(sh(out, sizeof out, "detokenize -m %s 403 407 261 378", stories), 0);
	T_STR_EQ(out, "Once upon a time\n");
	T_EQ_I64(sh(out, sizeof out, "tokenize -m %s 'Hello world'", fixture("vocab/hf-qwen3.vocab.gguf")), 0);
	T_STR_EQ(out, "[9707,1879]\n");
	FILE *f = fopen(tmp_path("lines.jsonl"), "w");
	if (f) {
		fputs("\"Hello world\"\n\"\\u4f60\\u597d\"\n", f);
		fclose(f);
	}
	T_EQ_I64(sh(out, sizeof out, "tokenize -m %s --jsonl < %s", fixture("vocab/hf-qwen3.vocab.gguf"),
		    tmp_path("lines.jsonl")), 0);
	T_STR_EQ(out, "[9707,1879]\n[108386]\n");
	f = fopen(tmp_path("lines.jsonl"), "w");
	if (f) {
		fputs("not json\n", f);
		fclose(f);
	}
	T_EQ_I64(sh(NULL, 0, "tokenize -m %s --jsonl < %s", fixture("vocab/hf-qwen3.vocab.gguf"), tmp_path("lines.jsonl")), 1);

	/* inspect: people and programs */
	T_EQ_I64(sh(out, sizeof out, "inspect %s", stories), 0);
	T_TRUE(strstr(out, "general.architecture") && strstr(out, "token_embd.weight"));
	T_EQ_I64(sh(out, sizeof out, "inspect --json %s", qwen), 0);
	j = json_loads(out, 0, &je);
	T_TRUE(j != NULL);
	T_STR_EQ(json_string_value(json_object_get(json_object_get(j, "metadata"), "general.architecture")), "qwen2");
	T_TRUE(json_array_size(json_object_get(j, "tensors")) > 10);
	T_EQ_I64(json_array_size(json_object_get(json_object_get(j, "metadata"), "tokenizer.ggml.tokens")),
		 2051);
	json_decref(j);

	/* chat: one turn through stdin */
	f = fopen(tmp_path("chat.txt"), "w");
	if (f) {
		fputs("hello\n", f);
		fclose(f);
	}
	T_EQ_I64(sh(out, sizeof out, "chat -m %s -n 4 --temp 0 < %s", qwen, tmp_path("chat.txt")), 0);
	T_TRUE(strncmp(out, "> ", 2) == 0);
	/* a conversation longer than the context: the oldest turns go, the chat goes on;
	 * a message too long for the context alone is not sent, and the chat goes on */
	f = fopen(tmp_path("chat.txt"), "w");
	if (f) {
		for (int i = 0; i < 8; i++)
			fprintf(f, "tell me about the number %d and the colours of the sea in the morning\n", i);
		for (int i = 0; i < 60; i++)
			fputs("a very long message ", f);
		fputs("\nand one more short one\n", f);
		fclose(f);
	}
	T_EQ_I64(sh2(out, sizeof out, "chat -m %s -c 96 -n 6 --temp 0 < %s", qwen, tmp_path("chat.txt")), 0);
	T_TRUE(strstr(out, "left the conversation") != NULL);
	T_TRUE(strstr(out, "[not sent: ") != NULL);
	{
		int prompts = 0;
		for (const char *q = out; (q = strstr(q, "> ")) != NULL; q += 2)
			prompts++;
		T_TRUE(prompts >= 11); /* every line read, and the prompt after the last one */
	}

	/* bench: JSON with both rates, also on a context already holding tokens (-d) */
	T_EQ_I64(sh(out, sizeof out, "bench -m %s -t 1 -p 8 -n 4 -d 40 -r 1 --json", stories), 0);
	j = json_loads(out, 0, NULL);
	T_TRUE(j != NULL);
	T_EQ_I64(json_integer_value(json_object_get(j, "depth")), 40);
	T_TRUE(json_real_value(json_object_get(json_object_get(j, "pp"), "tokens_per_s")) > 0);
	T_TRUE(json_real_value(json_object_get(json_object_get(j, "tg"), "tokens_per_s")) > 0);
	json_decref(j);
	T_EQ_I64(sh(NULL, 0, "bench -m %s -d -3", stories), 2);
}

/* perplexity: llama.cpp's llama-perplexity on the same model, text and
 * settings (-c 128 -b 128 -t 2, F16 KV cache; fixtures/PROVENANCE.md) reports
 * "Final estimate: PPL = 3.8475 +/- 0.36726" over 5 chunks. hearth's logits
 * differ from llama.cpp's only by float rounding, so 0.5% is generous; the
 * uncertainty is checked as well, to the same relative tolerance. */
void test_cli_perplexity(void)
{
	static char out[1 << 16];
	const char *stories = fixture("models/stories260K.f32.gguf");
	const char *text = fixture("text/tinystory.txt");
	double ppl = 0, sd = 0;

	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s -f %s -c 128 -b 128 -t 2", stories, text), 0);
	T_TRUE(strncmp(out, "[1]", 3) == 0);
	T_TRUE(strstr(out, ",[5]") != NULL && strstr(out, ",[6]") == NULL); /* a running estimate per chunk */
	const char *fin = strstr(out, "Final estimate: PPL = ");
	T_TRUE(fin != NULL);
	if (!fin)
		return;
	T_EQ_I64(sscanf(fin, "Final estimate: PPL = %lf +/- %lf", &ppl, &sd), 2);
	T_NEAR(ppl, 3.8475, 3.8475 * 0.005);
	T_NEAR(sd, 0.36726, 0.36726 * 0.005);
	/* the format is llama.cpp's: 4 decimals, then 5 */
	T_TRUE(strchr(fin, '\n') != NULL && strchr(fin, '\n') - fin == (long)strlen("Final estimate: PPL = 3.8475 +/- 0.36726"));
	/* smaller batches give the same number */
	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s -f %s -c 128 -b 48", stories, text), 0);
	fin = strstr(out, "Final estimate: PPL = ");
	T_TRUE(fin != NULL && sscanf(fin, "Final estimate: PPL = %lf", &sd) == 1 && fabs(sd - ppl) < 1e-3);

	/* too short: 729 tokens, a context of 512 needs 1024 (llama-perplexity asks for two chunks) */
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s -f %s -c 512", stories, text), 1);
	T_TRUE(strstr(out, "only 729 tokens") != NULL);
	T_TRUE(strstr(out, "needs at least 1024") != NULL);
	T_TRUE(strstr(out, "Final estimate") == NULL);
	/* usage errors */
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s", stories), 2);
	T_EQ_I64(sh(NULL, 0, "perplexity -f %s", text), 2);
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s -f %s -c 0", stories, text), 2);
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s -f %s --bogus", stories, text), 2);
	T_EQ_I64(sh(out, sizeof out, "perplexity --help"), 0);
	T_TRUE(strstr(out, "usage") != NULL);
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s -f /nonexistent/text.txt", stories), 1);
}

/* Writes n bytes of data to path; false on failure. */
static bool write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(data, 1, n, f) == n;
	if (f)
		ok = !fclose(f) && ok;
	return ok;
}

/* The number after "label" in out, or NAN. */
static double number_after(const char *out, const char *label)
{
	const char *p = strstr(out, label);
	double v;
	return p && sscanf(p + strlen(label), "%lf", &v) == 1 ? v : NAN;
}

/* perplexity --kl-divergence-base / --kl-divergence: the base file has
 * llama-perplexity's layout (tiny-llama-spm: 512 tokens, 5 chunks of 128
 * from tinystory.txt, 63 scored positions each, rows of 2 + 2 + 512 words),
 * the model against itself gives a KL divergence of 0 (the rows' 16-bit
 * rounding leaves |KLD| < 1e-4) and the same top token everywhere, its q4_0
 * and q4_K_M quantizations a positive one: 0.1265 and 0.0922 measured, the
 * same as llama-perplexity gives for them on this base (0.1265, 0.0923).
 * Truncated, padded, foreign and mismatched base files are refused. */
void test_cli_kld(void)
{
	static char out[1 << 16];
	const char *f32 = fixture("models/tiny-llama-spm.f32.gguf"), *q4_0 = fixture("models/tiny-llama-spm.q4_0.gguf");
	const char *q4_k = fixture("models/tiny-llama-spm.q4_k_m.gguf"), *qwen = fixture("models/tiny-qwen2.f32.gguf");
	const char *text = fixture("text/tinystory.txt");
	char base[512], bad[512], other[512];
	const long rows = 5 * 63, row_bytes = (2 * 256 + 4) * 2, size = 20 + 5 * 128 * 4 + rows * row_bytes;
	snprintf(base, sizeof base, "%s", tmp_path("base.kld"));
	snprintf(bad, sizeof bad, "%s", tmp_path("bad.kld"));

	/* the base: perplexity as usual, and the file */
	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s -f %s -c 128 -t 2 --kl-divergence-base %s", f32, text, base), 0);
	T_TRUE(strstr(out, "Final estimate: PPL = ") != NULL);
	FILE *f = fopen(base, "rb");
	static char data[400000];
	size_t n = f ? fread(data, 1, sizeof data, f) : 0;
	if (f)
		fclose(f);
	T_EQ_I64(n, size);
	if ((long)n != size)
		return;
	int32_t head[3];
	memcpy(head, data + 8, sizeof head);
	T_TRUE(memcmp(data, "_logits_", 8) == 0);
	T_EQ_I64(head[0], 128);
	T_EQ_I64(head[1], 512);
	T_EQ_I64(head[2], 5);

	/* the model against itself */
	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence -t 2", f32, base), 0);
	T_TRUE(strstr(out, "chunk             PPL") != NULL);
	T_NEAR(number_after(out, "Mean    KLD:"), 0, 1e-4);
	T_NEAR(number_after(out, "Maximum KLD:"), 0, 1e-4);
	T_NEAR(number_after(out, "Same top p:"), 100, 1e-9);
	T_NEAR(number_after(out, "Mean ln(PPL(Q)/PPL(base))     :"), 0, 1e-4);
	T_NEAR(number_after(out, "Mean PPL(base)                :"), 3317.71, 0.1);
	/* its quantizations: a positive KLD, fewer top tokens in common */
	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence -f %s", q4_0, base, text), 0);
	T_NEAR(number_after(out, "Mean    KLD:"), 0.1265, 0.002);
	T_NEAR(number_after(out, "Same top p:"), 67.6, 1.5);
	T_NEAR(number_after(out, "Mean ln(PPL(Q)/PPL(base))     :"), 0.0916, 0.003);
	T_TRUE(strstr(out, "99.9%   KLD:") && strstr(out, "Median  KLD:") && strstr(out, "RMS \xce\x94p    :"));
	T_EQ_I64(sh(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence -c 128 -b 32", q4_k, base),
		 0);
	T_NEAR(number_after(out, "Mean    KLD:"), 0.0922, 0.002);
	/* --chunks: fewer positions than the statistics want (100): the table only */
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence --chunks 1", q4_0, base), 0);
	T_TRUE(strstr(out, "   1 ") != NULL && strstr(out, "   2 ") == NULL && strstr(out, "Mean    KLD") == NULL);

	/* refused: another context, another text, another vocabulary */
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence -c 256", q4_0, base), 1);
	T_TRUE(strstr(out, "chunks of 128 tokens") != NULL);
	snprintf(other, sizeof other, "%s", tmp_path("other.txt"));
	T_TRUE(write_bytes(other, "Once upon a time there was a tiny model. It was not the text at all.", 69));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence -f %s", q4_0, base, other), 1);
	T_TRUE(strstr(out, "does not give the tokens") != NULL);
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", qwen, base), 1);
	T_TRUE(strstr(out, "vocabulary of 512 tokens") != NULL);
	/* refused: truncated (in the header, the tokens, the rows), padded, not a base file */
	const long cuts[] = { 0, 10, 19, 20 + 128 * 4, size - row_bytes, size - 1 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		T_TRUE(write_bytes(bad, data, (size_t)cuts[i]));
		T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
		T_TRUE(strstr(out, "too short") != NULL || strstr(out, "truncated") != NULL);
		T_TRUE(strstr(out, "Mean    KLD") == NULL);
	}
	data[size] = 0;
	T_TRUE(write_bytes(bad, data, (size_t)size + 1));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
	T_TRUE(strstr(out, "1 bytes after the last chunk") != NULL);
	data[0] = 'X';
	T_TRUE(write_bytes(bad, data, (size_t)size));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
	T_TRUE(strstr(out, "not a base file") != NULL);
	data[0] = '_';
	/* counts that would overflow or promise more than the file holds */
	const int32_t huge[3] = { 128, 512, INT32_MAX };
	memcpy(data + 8, huge, sizeof huge);
	T_TRUE(write_bytes(bad, data, (size_t)size));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
	T_TRUE(strstr(out, "truncated") != NULL);
	memcpy(data + 8, head, sizeof head);
	/* a token outside the vocabulary; a row whose scale is not a number */
	const int32_t tok = 512;
	memcpy(data + 20 + 7 * 4, &tok, sizeof tok);
	T_TRUE(write_bytes(bad, data, (size_t)size));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
	T_TRUE(strstr(out, "token 7 is 512, outside the vocabulary") != NULL);
	memcpy(data + 20 + 7 * 4, data + 20 + 6 * 4, sizeof tok);
	const float nan_scale = NAN;
	memcpy(data + 20 + 5 * 128 * 4 + 3 * row_bytes, &nan_scale, sizeof nan_scale);
	T_TRUE(write_bytes(bad, data, (size_t)size));
	T_EQ_I64(sh2(out, sizeof out, "perplexity -m %s --kl-divergence-base %s --kl-divergence", q4_0, bad), 1);
	T_TRUE(strstr(out, "chunk 1: ") != NULL && strstr(out, "scale nan") != NULL);
	/* usage: --kl-divergence needs the base; a base that cannot be written leaves nothing */
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s --kl-divergence", q4_0), 2);
	T_EQ_I64(sh(NULL, 0, "perplexity -m %s -f %s -c 128 --kl-divergence-base /nonexistent/dir/x.kld", f32, text), 1);
}

/* The JSON text of key in the GGUF at path ("" when absent or unreadable). */
static const char *gguf_value(const char *path, const char *key)
{
	static char json[512];
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	json[0] = 0;
	if (hearth_gguf_open(&g, path, &err))
		return json;
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++)
		if (!strcmp(hearth_gguf_key(g, i), key))
			hearth_gguf_kv_json(g, i, -1, json, sizeof json);
	hearth_gguf_close(g);
	return json;
}

static int64_t gguf_n_tensors(const char *path)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	if (hearth_gguf_open(&g, path, &err))
		return -1;
	const int64_t n = hearth_gguf_n_tensors(g);
	hearth_gguf_close(g);
	return n;
}

/* imatrix: stories260K (5 layers, tied output) over tinystory.txt in chunks of
 * 128: llama-imatrix's file (70 tensors: 7 weights a layer, sums and counts),
 * its keys, and the perplexity it prints (the same as perplexity's). */
void test_cli_imatrix(void)
{
	static char out[1 << 16];
	const char *stories = fixture("models/stories260K.f32.gguf");
	const char *text = fixture("text/tinystory.txt");
	char path[512], dat[512], want[600];
	snprintf(path, sizeof path, "%s", tmp_path("im.gguf"));
	snprintf(dat, sizeof dat, "%s", tmp_path("im.dat"));

	T_EQ_I64(sh(out, sizeof out, "imatrix -m %s -f %s -c 128 -t 2 -o %s", stories, text, path), 0);
	T_TRUE(strncmp(out, "[1]", 3) == 0 && strstr(out, ",[5]") != NULL);
	T_NEAR(number_after(out, "Final estimate: PPL = "), 3.8473, 0.0005);
	T_EQ_I64(gguf_n_tensors(path), 70);
	T_STR_EQ(gguf_value(path, "general.type"), "\"imatrix\"");
	T_STR_EQ(gguf_value(path, "imatrix.chunk_count"), "5");
	T_STR_EQ(gguf_value(path, "imatrix.chunk_size"), "128");
	snprintf(want, sizeof want, "[\"%s\"]", text);
	T_STR_EQ(gguf_value(path, "imatrix.datasets"), want);
	/* fewer chunks, a later start, batches of 32, no perplexity, the legacy format */
	T_EQ_I64(sh(out, sizeof out, "imatrix -m %s -f %s -c 128 -b 32 --chunks 2 --chunk 1 --no-ppl -o %s", stories,
		    text, path), 0);
	T_TRUE(strstr(out, "Final estimate") == NULL);
	T_STR_EQ(gguf_value(path, "imatrix.chunk_count"), "2");
	T_EQ_I64(sh(NULL, 0, "imatrix -m %s -f %s -c 128 --output-format dat -o %s", stories, text, dat), 0);
	FILE *f = fopen(dat, "rb");
	int32_t n_entries = 0;
	T_TRUE(f && fread(&n_entries, 4, 1, f) == 1);
	if (f)
		fclose(f);
	T_EQ_I64(n_entries, 35);
	/* errors: too short a text, usage */
	T_EQ_I64(sh2(out, sizeof out, "imatrix -m %s -f %s -c 512 -o %s", stories, text, path), 1);
	T_TRUE(strstr(out, "only 729 tokens") != NULL);
	T_EQ_I64(sh2(out, sizeof out, "imatrix -m %s -f %s -c 128 --chunk 4 -o %s", stories, text, path), 1);
	T_EQ_I64(sh(NULL, 0, "imatrix -m %s", stories), 2);
	T_EQ_I64(sh(NULL, 0, "imatrix -m %s -f %s --output-format bin", stories, text), 2);
	T_EQ_I64(sh(NULL, 0, "imatrix -m %s -f %s -c 2", stories, text), 2);
	T_EQ_I64(sh(out, sizeof out, "imatrix --help"), 0);
	T_TRUE(strstr(out, "usage") != NULL);
}

/* Pulls the "ids" array of a --json line out of out (NULL when absent). */
static const char *ids_of(const char *out)
{
	const char *p = strstr(out, "\"ids\":");
	return p ? p : "";
}

void test_cli_prompt_cache(void)
{
	static char want[1 << 16], got[1 << 16], out[1 << 16];
	const char *qwen = fixture("models/tiny-qwen3.f32.gguf"), *other = fixture("models/tiny-qwen3.q6_k.gguf");
	const char *pc = tmp_path("prompt.state"), *p1 = "Once upon a time there was a little fox who lived";
	char cut[600];

	/* without a cache, the reference continuations */
	T_EQ_I64(sh(want, sizeof want, "run -m %s -p '%s' -n 12 --temp 0 --json", qwen, p1), 0);
	/* first run: the file does not exist, is written after the prompt; the second restores it */
	T_EQ_I64(sh(got, sizeof got, "run -m %s -p '%s' -n 12 --temp 0 --json --prompt-cache %s", qwen, p1, pc), 0);
	T_STR_EQ(ids_of(got), ids_of(want));
	T_EQ_I64(sh2(got, sizeof got, "run -m %s -p '%s' -n 12 --temp 0 --json --prompt-cache %s", qwen, p1, pc), 0);
	T_TRUE(strstr(got, "prompt cache: restored") != NULL);
	T_STR_EQ(ids_of(got), ids_of(want));
	/* a longer prompt reuses the saved prefix and evaluates the rest */
	T_EQ_I64(sh(want, sizeof want, "run -m %s -p '%s in a wood' -n 12 --temp 0 --json", qwen, p1), 0);
	T_EQ_I64(sh2(got, sizeof got, "run -m %s -p '%s in a wood' -n 12 --temp 0 --json --prompt-cache %s", qwen, p1,
		     pc), 0);
	T_TRUE(strstr(got, "prompt cache: restored") != NULL);
	T_STR_EQ(ids_of(got), ids_of(want));
	/* another model's state and a truncated file are refused (exit 1, the reason on stderr) */
	T_EQ_I64(sh2(out, sizeof out, "run -m %s -p hi -n 2 --prompt-cache %s", other, pc), 1);
	T_TRUE(strstr(out, "another model") != NULL);
	snprintf(cut, sizeof cut, "head -c 300 %s > %s", pc, tmp_path("cut.state"));
	T_EQ_I64(system(cut), 0);
	T_EQ_I64(sh2(out, sizeof out, "run -m %s -p hi -n 2 --prompt-cache %s", qwen, tmp_path("cut.state")), 1);
	T_TRUE(strstr(out, "truncated") != NULL);
}

/* The whole file at path (*size bytes, NUL after them), or NULL. */
static char *cli_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	long n;
	if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)n + 1)) && fread(b, 1, (size_t)n, f) == (size_t)n) {
		b[n] = 0;
		*size = (size_t)n;
	} else {
		free(b);
		b = NULL;
	}
	if (f)
		fclose(f);
	return b;
}

/* --dump-layers: a .npy file whose header and values are the prompt's hidden
 * states as the library gives them. */
void test_cli_dump_layers(void)
{
	static char out[1 << 16];
	const char *qwen = fixture("models/tiny-qwen3.f32.gguf"), *npy = tmp_path("layers.npy");
	T_EQ_I64(sh(out, sizeof out, "run -m %s -p 'Once upon a time' -n 1 --temp 0 --json --dump-layers 1,-1 --dump-file %s",
		    qwen, npy), 0);
	json_t *j = json_loads(out, 0, NULL);
	json_t *ids_j = json_object_get(j, "prompt_ids");
	const int32_t n = (int32_t)json_array_size(ids_j);
	int32_t ids[64];
	T_TRUE(n > 1 && n <= 64);
	for (int32_t i = 0; i < n && i < 64; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(ids_j, (size_t)i));
	json_decref(j);

	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	const int32_t layers[] = { 1, -1 };
	T_OK(hearth_model_load(&m, qwen, &mp, &err), err);
	if (m)
		T_OK(hearth_context_new(&c, m, &cp, &err), err);
	size_t size = 0;
	char *file = cli_file(npy, &size);
	if (!c || !file || n < 2 || n > 64)
		goto out;
	T_OK(hearth_context_set_hidden(c, layers, 2, &err), err);
	T_OK(hearth_decode(c, ids, n, false, &err), err);
	const int32_t E = hearth_model_n_embd(m);
	const size_t hlen = (size_t)(unsigned char)file[8] | (size_t)(unsigned char)file[9] << 8;
	char shape[96];
	snprintf(shape, sizeof shape, "'shape': (2, %d, %d)", n, E);
	T_TRUE(size > 10 && memcmp(file, "\x93NUMPY\x01\x00", 8) == 0 && (10 + hlen) % 64 == 0);
	T_TRUE(strstr(file + 10, shape) != NULL && strstr(file + 10, "'<f4'") != NULL);
	T_EQ_I64((int64_t)size, (int64_t)(10 + hlen + (size_t)2 * (size_t)n * (size_t)E * 4));
	double d = 0;
	for (int k = 0; k < 2 && size == 10 + hlen + (size_t)2 * (size_t)n * (size_t)E * 4; k++)
		for (int32_t i = 0; i < n; i++) {
			const float *h = hearth_get_hidden(c, k, i);
			for (int32_t e = 0; h && e < E; e++) {
				float v;
				memcpy(&v, file + 10 + hlen + (((size_t)k * (size_t)n + (size_t)i) * (size_t)E + (size_t)e) * 4, 4);
				d = fmax(d, fabs((double)v - h[e]));
			}
		}
	if (d > 1e-5)
		T_FAIL("dumped hidden states differ from the library's by %.3g", d);
	/* bad lists and lone flags are usage errors */
	T_EQ_I64(sh(out, sizeof out, "run -m %s -p hi -n 1 --dump-layers 99 --dump-file %s", qwen, npy), 2);
	T_EQ_I64(sh(out, sizeof out, "run -m %s -p hi -n 1 --dump-layers 0", qwen), 2);
	T_EQ_I64(sh(out, sizeof out, "run -m %s -p hi -n 1 --dump-layers 0,x --dump-file %s", qwen, npy), 2);
out:
	free(file);
	hearth_context_free(c);
	hearth_model_free(m);
}

/* chat --prompt-cache: the same answers without a cache, with a new one
 * (saved after each turn) and restored from it; another model's is refused. */
void test_cli_chat_prompt_cache(void)
{
	static char want[1 << 16], got[1 << 16], out[1 << 16];
	const char *qwen = fixture("models/tiny-qwen3.f32.gguf"), *other = fixture("models/tiny-qwen3.q6_k.gguf");
	const char *pc = tmp_path("chat.state"), *in = tmp_path("chat-cache.txt");
	FILE *f = fopen(in, "w");
	T_TRUE(f != NULL);
	if (!f)
		return;
	fputs("Hello there\nTell me more about it\nAnd then?\n", f);
	fclose(f);
	remove(pc);
	T_EQ_I64(sh(want, sizeof want, "chat -m %s -n 6 --temp 0 < %s", qwen, in), 0);
	T_TRUE(strlen(want) > 6);
	T_EQ_I64(sh2(got, sizeof got, "chat -m %s -n 6 --temp 0 --prompt-cache %s < %s", qwen, pc, in), 0);
	T_TRUE(strstr(got, "prompt cache: restored") == NULL); /* nothing to restore the first time */
	T_EQ_I64(sh(got, sizeof got, "chat -m %s -n 6 --temp 0 --prompt-cache %s < %s", qwen, pc, in), 0);
	T_STR_EQ(got, want);
	T_EQ_I64(sh2(out, sizeof out, "chat -m %s -n 6 --temp 0 --prompt-cache %s < %s", qwen, pc, in), 0);
	T_TRUE(strstr(out, "prompt cache: restored") != NULL);
	T_EQ_I64(sh(got, sizeof got, "chat -m %s -n 6 --temp 0 --prompt-cache %s < %s", qwen, pc, in), 0);
	T_STR_EQ(got, want); /* restored from the whole saved conversation: the same answers */
	T_EQ_I64(sh2(out, sizeof out, "chat -m %s -n 2 --prompt-cache %s < %s", other, pc, in), 1);
	T_TRUE(strstr(out, "another model") != NULL);
}

/* run --uncertainty: one line per token when not on a terminal, arrays with
 * --json; the values are the sampler's (greedy: rank 1), the text unchanged. */
void test_cli_uncertainty(void)
{
	static char plain[1 << 16], lines[1 << 16], js[1 << 16];
	const char *stories = fixture("models/stories260K.f32.gguf");
	T_EQ_I64(sh(plain, sizeof plain, "run -m %s -p 'Once upon a time' -n 6 --temp 0 --json", stories), 0);
	T_EQ_I64(sh(js, sizeof js, "run -m %s -p 'Once upon a time' -n 6 --temp 0 --json --uncertainty", stories), 0);
	T_EQ_I64(sh(lines, sizeof lines, "run -m %s -p 'Once upon a time' -n 6 --temp 0 --uncertainty", stories), 0);
	json_t *a = json_loads(plain, 0, NULL), *b = json_loads(js, 0, NULL);
	T_TRUE(a && b);
	if (!a || !b)
		goto out;
	T_TRUE(json_equal(json_object_get(a, "ids"), json_object_get(b, "ids")));
	json_t *ent = json_object_get(b, "entropy"), *rank = json_object_get(b, "rank");
	T_EQ_I64(json_array_size(ent), 6);
	T_EQ_I64(json_array_size(rank), 6);
	/* the first token after "Once upon a time": the server's documented entropy (docs/API.md) */
	T_TRUE(fabs(json_number_value(json_array_get(ent, 0)) - 0.15659666) < 1e-6);
	char text[4096] = "";
	size_t n_text = 0;
	int n_lines = 0;
	for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n"), n_lines++) {
		int idx = -1, r = 0;
		double e = -1;
		char *q = NULL;
		T_EQ_I64(sscanf(line, "%d\t%lf\t%d\t", &idx, &e, &r), 3);
		T_EQ_I64(idx, n_lines);
		T_TRUE(fabs(e - json_number_value(json_array_get(ent, (size_t)n_lines))) < 1e-4);
		T_EQ_I64(r, json_integer_value(json_array_get(rank, (size_t)n_lines)));
		T_EQ_I64(r, 1);
		json_t *piece = (q = strrchr(line, '\t')) ? json_loads(q + 1, JSON_DECODE_ANY, NULL) : NULL;
		T_TRUE(json_is_string(piece));
		if (json_is_string(piece) && n_text + json_string_length(piece) < sizeof text) {
			memcpy(text + n_text, json_string_value(piece), json_string_length(piece));
			n_text += json_string_length(piece);
			text[n_text] = 0;
		}
		json_decref(piece);
	}
	T_EQ_I64(n_lines, 6);
	T_STR_EQ(text, json_string_value(json_object_get(a, "text")));
out:
	json_decref(a);
	json_decref(b);
}
