/* test-dataset.c - fine-tuning examples from JSON Lines (hearth_dataset_*):
 * the trained tokens of conversations (ChatML, and Qwen3's template that
 * rewrites past turns), prompt/completion lines, "weight": 0, bad lines named
 * by number, the seeded validation split, cutting and sequence packing. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

static struct hearth_model *load_fixture(const char *rel)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture(rel), &mp, &err), err);
	return m;
}

static const char *write_lines(const char *name, const char *text)
{
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

/* The text of the tokens of example i whose loss flag is flag, concatenated. */
static char *text_of(const struct hearth_model *m, const struct hearth_dataset *d, int32_t i, uint8_t flag)
{
	const uint8_t *loss;
	int32_t n;
	const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_TRAIN, i, &loss, &n, NULL);
	int32_t *pick = malloc((size_t)n * sizeof *pick + 1);
	int32_t k = 0;
	for (int32_t t = 0; ids && pick && t < n; t++)
		if (loss[t] == flag)
			pick[k++] = ids[t];
	char *out = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_detokenize(m, pick, k, true, &out, NULL, &err), err);
	free(pick);
	return out;
}

static struct hearth_dataset *load_ds(const struct hearth_model *m, const char *path,
				      const struct hearth_dataset_params *p)
{
	struct hearth_dataset *d = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_dataset_load(&d, m, path, p, &err), err);
	return d;
}

#define CONVO                                                                                                   \
	"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"<think>r</think>yo\"}," \
	"{\"role\":\"user\",\"content\":\"again <|im_start|>\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}\n"

/* ChatML: one example; its tokens are the whole render's tokens, and the
 * trained ones are exactly the two replies with their closing markup. */
void test_dataset_chatml(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	struct hearth_dataset *d = load_ds(m, write_lines("ds-chatml.jsonl", "\n" CONVO "\n"), NULL);
	if (d) {
		struct hearth_dataset_stats st;
		hearth_dataset_stats(d, &st);
		T_EQ_I64(st.lines, 1);
		T_EQ_I64(st.n_train, 1);
		T_EQ_I64(st.n_split, 0);
		char *trained = text_of(m, d, 0, 1);
		T_STR_EQ(trained, "<think>r</think>yo<|im_end|>\nok<|im_end|>\n");
		free(trained);
		/* the same ids as the render tokenized in one piece */
		struct hearth_chat *c = NULL;
		struct hearth_chat_params cp = hearth_chat_default_params();
		struct hearth_err err = { 0 };
		T_OK(hearth_chat_new(m, &cp, &c, &err), err);
		const char *vars = strchr(CONVO, '{');
		struct hearth_chat_prompt p;
		T_OK(hearth_chat_apply(c, vars, strlen(vars), NULL, 1 << 20, &p, &err), err);
		const uint8_t *loss;
		int32_t n, line;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_TRAIN, 0, &loss, &n, &line);
		T_EQ_I64(line, 2);
		T_EQ_I64(n, p.n_ids);
		T_TRUE(ids && n == p.n_ids && !memcmp(ids, p.ids, (size_t)n * sizeof *ids));
		/* content's "<|im_start|>" stayed text: the control token appears once per turn only */
		const int32_t im_start = hearth_token_find(m, "<|im_start|>");
		int k = 0;
		for (int32_t t = 0; ids && t < n; t++)
			k += ids[t] == im_start;
		T_EQ_I64(k, 5); /* system, user, assistant, user, assistant */
		hearth_chat_prompt_free(&p);
		hearth_chat_free(c);
		T_TRUE(hearth_dataset_example(d, HEARTH_SPLIT_TRAIN, 1, &loss, &n, NULL) == NULL);
		T_TRUE(hearth_dataset_example(d, HEARTH_SPLIT_VALID, 0, &loss, &n, NULL) == NULL);
	}
	hearth_dataset_free(d);
	hearth_model_free(m);
}

/* Qwen3's template drops the reasoning of past turns: each trained turn
 * becomes an example of its own, rendered up to that turn. */
void test_dataset_rewritten_turns(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen3.f32.gguf");
	if (!m)
		return;
	struct hearth_dataset *d = load_ds(m, write_lines("ds-qwen3.jsonl", CONVO), NULL);
	if (d) {
		struct hearth_dataset_stats st;
		hearth_dataset_stats(d, &st);
		T_EQ_I64(st.n_split, 1);
		T_EQ_I64(st.n_train, 2);
		char *a = text_of(m, d, 0, 1), *b = text_of(m, d, 1, 1), *ctx = text_of(m, d, 1, 0);
		T_STR_EQ(a, "<think>\nr\n</think>\n\nyo<|im_end|>\n");
		T_TRUE(b && strstr(b, "ok<|im_end|>") && !strstr(b, "yo"));
		T_TRUE(ctx && strstr(ctx, "yo<|im_end|>") && !strstr(ctx, "<think>\nr")); /* the past turn, rewritten */
		free(a);
		free(b);
		free(ctx);
	}
	hearth_dataset_free(d);
	hearth_model_free(m);
}

/* "weight": 0 turns are context; prompt/completion lines train the
 * completion and EOS. */
void test_dataset_weights_and_plain(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	const char *lines =
		"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\",\"weight\":0},"
		"{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}\n"
		"{\"prompt\":\"Q: 2+2? A:\",\"completion\":\" 4 <|im_end|>\"}\n";
	struct hearth_dataset *d = load_ds(m, write_lines("ds-weights.jsonl", lines), NULL);
	if (d) {
		char *t0 = text_of(m, d, 0, 1), *t1 = text_of(m, d, 1, 1), *p1 = text_of(m, d, 1, 0);
		T_STR_EQ(t0, "d<|im_end|>\n");
		char eos[64] = "";
		hearth_token_to_piece(m, hearth_token_eos(m), true, eos, sizeof eos - 1);
		char want[128];
		snprintf(want, sizeof want, " 4 <|im_end|>%s", eos);
		T_STR_EQ(t1, want);
		T_STR_EQ(p1, "Q: 2+2? A:");
		/* the completion's "<|im_end|>" is text, not the control token */
		const uint8_t *loss;
		int32_t n;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_TRAIN, 1, &loss, &n, NULL);
		const int32_t im_end = hearth_token_find(m, "<|im_end|>");
		for (int32_t t = 0; ids && t < n; t++)
			T_TRUE(ids[t] != im_end || (hearth_token_eos(m) == im_end && t == n - 1));
		free(t0);
		free(t1);
		free(p1);
	}
	hearth_dataset_free(d);
	hearth_model_free(m);
}

/* Each bad line fails the load with its number and what is wrong. */
void test_dataset_bad_lines(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ CONVO "\n{\"messages\": [\n", ":3: not valid JSON" },
		{ CONVO "[1, 2]\n", ":2: an example must be a JSON object" },
		{ CONVO "{\"text\": \"x\"}\n", ":2: an example needs 'messages'" },
		{ "{\"prompt\": \"x\", \"completion\": 3}\n", ":1: 'prompt' and 'completion' must both be strings" },
		{ "{\"messages\": []}\n", ":1: 'messages' must be a non-empty array" },
		{ "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", ":1: the conversation has no assistant" },
		{ "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\", \"weight\": 2}]}\n", "'weight' must be 0 or 1" },
		{ "{\"messages\": [{\"content\": \"x\"}]}\n", "messages[0] must be an object with a string 'role'" },
		{ "\n\n", "no example with a trained token" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hearth_dataset *d = NULL;
		struct hearth_err err = { 0 };
		const int rc = hearth_dataset_load(&d, m, write_lines("ds-bad.jsonl", cases[i].text), NULL, &err);
		T_TRUE(rc < 0 && d == NULL);
		if (!strstr(err.msg, cases[i].want))
			fprintf(stderr, "  case %zu: got '%s', want '%s'\n", i, err.msg, cases[i].want);
		T_TRUE(strstr(err.msg, cases[i].want) != NULL);
	}
	struct hearth_dataset *d = NULL;
	struct hearth_err err = { 0 };
	T_TRUE(hearth_dataset_load(&d, m, tmp_path("ds-absent.jsonl"), NULL, &err) == HEARTH_ENOTFOUND);
	struct hearth_dataset_params p = hearth_dataset_default_params();
	p.valid_fraction = 0.9f;
	T_TRUE(hearth_dataset_load(&d, m, write_lines("ds-ok.jsonl", CONVO), &p, &err) == HEARTH_EINVAL);
	hearth_model_free(m);
}

/* Bytes fputs cannot write: a line of NUL bytes is no blank line but a bad
 * one, named by its number (it was skipped as blank: strchr finds the
 * terminator of its set). */
void test_dataset_nul_bytes(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	static const char text[] = CONVO "\0\0\n" CONVO;
	const char *path = tmp_path("ds-nul.jsonl");
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (f) {
		fwrite(text, 1, sizeof text - 1, f);
		fclose(f);
	}
	struct hearth_dataset *d = NULL;
	struct hearth_err err = { 0 };
	T_EQ_I64(hearth_dataset_load(&d, m, path, NULL, &err), HEARTH_EINVAL);
	T_TRUE(d == NULL);
	if (!strstr(err.msg, ":2: not valid JSON"))
		fprintf(stderr, "  got '%s'\n", err.msg);
	T_TRUE(strstr(err.msg, ":2: not valid JSON") != NULL);
	hearth_model_free(m);
}

/* An example cut to max_tokens keeps the memory of its max_tokens, not of
 * the whole line it came from (a file of long lines held all their tokens). */
void test_dataset_cut_memory(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	const char *path = tmp_path("ds-long.jsonl");
	FILE *f = fopen(path, "wb");
	T_TRUE(f != NULL);
	if (f) {
		fputs("{\"prompt\": \"a\", \"completion\": \"", f);
		for (int i = 0; i < 40000; i++)
			fputs(" w", f);
		fputs("\"}\n", f);
		fclose(f);
	}
	struct hearth_dataset_params p = hearth_dataset_default_params();
	p.max_tokens = 8;
	struct hearth_dataset *d = load_ds(m, path, &p);
	if (d) {
		struct hearth_dataset_stats st;
		hearth_dataset_stats(d, &st);
		T_EQ_I64(st.n_cut, 1);
		const uint8_t *loss;
		int32_t n;
		const int32_t *ids = hearth_dataset_example(d, HEARTH_SPLIT_TRAIN, 0, &loss, &n, NULL);
		T_EQ_I64(n, 8);
		T_TRUE(ids && malloc_usable_size((void *)ids) < 1024 && malloc_usable_size((void *)loss) < 1024);
		hearth_dataset_free(d);
	}
	hearth_model_free(m);
}

/* The split is seeded and covers every example once; cutting and packing. */
void test_dataset_split_pack(void)
{
	struct hearth_model *m = load_fixture("models/tiny-qwen2.f32.gguf");
	if (!m)
		return;
	char lines[4096] = "";
	for (int i = 0; i < 10; i++) {
		char l[160];
		snprintf(l, sizeof l, "{\"prompt\":\"question %d is\",\"completion\":\" answer %d%s\"}\n", i, i,
			 i == 9 ? " and a much longer tail of words for this one" : "");
		strcat(lines, l);
	}
	const char *path = write_lines("ds-split.jsonl", lines);
	struct hearth_dataset_params p = hearth_dataset_default_params();
	p.valid_fraction = 0.3f;
	p.seed = 7;
	struct hearth_dataset *a = load_ds(m, path, &p), *b = load_ds(m, path, &p);
	p.max_tokens = 6;
	struct hearth_dataset *cut = load_ds(m, path, &p);
	if (a && b && cut) {
		struct hearth_dataset_stats st;
		hearth_dataset_stats(a, &st);
		T_EQ_I64(st.n_train, 7);
		T_EQ_I64(st.n_valid, 3);
		int seen[11] = { 0 };
		for (int s = 0; s < 2; s++)
			for (int32_t i = 0; i < (s ? 3 : 7); i++) {
				const uint8_t *l1, *l2;
				int32_t n1, n2, line1, line2;
				const int32_t *x = hearth_dataset_example(a, (enum hearth_split)s, i, &l1, &n1, &line1);
				const int32_t *y = hearth_dataset_example(b, (enum hearth_split)s, i, &l2, &n2, &line2);
				T_TRUE(x && y && n1 == n2 && line1 == line2 && !memcmp(x, y, (size_t)n1 * sizeof *x));
				if (line1 >= 1 && line1 <= 10)
					seen[line1]++;
			}
		for (int i = 1; i <= 10; i++)
			T_EQ_I64(seen[i], 1);
		hearth_dataset_stats(cut, &st);
		T_EQ_I64(st.n_cut, 10);
		T_TRUE(st.tokens == 6 * 10 - 6 * st.n_dropped);
		/* packing: whole examples, positions restart, the long one cut to a row */
		int32_t order[7], next = 0, n_out = 0, rows = 0, total = 0, ids[24], pos[24];
		uint8_t loss[24];
		for (int i = 0; i < 7; i++)
			order[i] = 6 - i;
		struct hearth_err err = { 0 };
		int32_t want_total = 0;
		for (int i = 0; i < 7; i++) {
			const uint8_t *l;
			int32_t n;
			hearth_dataset_example(a, HEARTH_SPLIT_TRAIN, i, &l, &n, NULL);
			want_total += n < 24 ? n : 24;
		}
		while (next < 7) {
			const int32_t before = next;
			T_OK(hearth_dataset_pack(a, HEARTH_SPLIT_TRAIN, order, 7, &next, 24, ids, loss, pos, &n_out, &err), err);
			T_TRUE(next > before && n_out > 0 && n_out <= 24);
			const uint8_t *l;
			int32_t n;
			const int32_t *first = hearth_dataset_example(a, HEARTH_SPLIT_TRAIN, order[before], &l, &n, NULL);
			T_TRUE(pos[0] == 0 && first && ids[0] == first[0]);
			for (int32_t t = 1; t < n_out; t++)
				T_TRUE(pos[t] == 0 || pos[t] == pos[t - 1] + 1);
			total += n_out;
			rows++;
			if (rows > 7)
				break;
		}
		T_EQ_I64(total, want_total);
		T_TRUE(rows >= 2);
		order[0] = 99;
		next = 0;
		T_TRUE(hearth_dataset_pack(a, HEARTH_SPLIT_TRAIN, order, 1, &next, 24, ids, loss, pos, &n_out, &err) ==
		       HEARTH_EINVAL);
	}
	hearth_dataset_free(a);
	hearth_dataset_free(b);
	hearth_dataset_free(cut);
	hearth_model_free(m);
}
