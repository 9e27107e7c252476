/* fuzz-dataset.c - libFuzzer target: the fuzzer's bytes as a fine-tuning
 * JSONL file (hearth_dataset_load, as hearth finetune reads it) for
 * tiny-qwen2.f32, whose chat template (ChatML) renders the conversations, or
 * (inputs of odd size) tiny-qwen3.f32, whose template drops the reasoning of
 * past turns so that conversations split into one example per trained turn;
 * then the split and sequence packing (hearth_dataset_pack) of what loaded.
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a refused input gives a negative code, recorded in err, whose message
 *    names the input, and no dataset;
 *  - an accepted one: the stats add up (examples of both splits, tokens,
 *    trained tokens), every example is 1..max_tokens tokens of the
 *    vocabulary with loss flags 0 or 1, none on its first token and at least
 *    one elsewhere, from a line of the file; packing the training split into
 *    rows uses every example once, each row within n_ctx with positions
 *    restarting at 0 per example; an order naming no example is refused.
 * Seeds: tests/fuzz/corpus/dataset/ (conversations, prompt/completion lines,
 * "weight", "tools", bad lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_TOKENS 48
#define N_CTX 20

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hearth_model *models[2], *model; /* qwen2, qwen3; the input's */
static struct fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	if (hearth_model_load(&models[0], fuzz_fixture("models/tiny-qwen2.f32.gguf"), &mp, &err) ||
	    hearth_model_load(&models[1], fuzz_fixture("models/tiny-qwen3.f32.gguf"), &mp, &err)) {
		fprintf(stderr, "fuzz-dataset: %s (the fixtures: ../shared/fixtures or $HEARTH_FIXTURES)\n", err.msg);
		exit(1);
	}
	fuzz_file_init(&file, "fuzz-dataset");
	return 0;
}

/* Every example of split s; the sums of their tokens and trained tokens added to *tok, *trained. */
static void check_split(const struct hearth_dataset *d, enum hearth_split s, int32_t count, int64_t *tok,
			int64_t *trained)
{
	const int32_t n_vocab = hearth_model_n_vocab(model);
	for (int32_t i = 0; i < count; i++) {
		const uint8_t *loss;
		int32_t n, line;
		const int32_t *ids = hearth_dataset_example(d, s, i, &loss, &n, &line);
		FUZZ_CHECK(ids && loss, "split %d example %d of %d missing", (int)s, i, count);
		FUZZ_CHECK(n >= 2 && n <= MAX_TOKENS, "example %d has %d tokens", i, n);
		FUZZ_CHECK(line >= 1, "example %d from line %d", i, line);
		FUZZ_CHECK(loss[0] == 0, "example %d is trained on its first token", i);
		int32_t k = 0;
		for (int32_t t = 0; t < n; t++) {
			FUZZ_CHECK(ids[t] >= 0 && ids[t] < n_vocab, "example %d token %d is %d", i, t, ids[t]);
			FUZZ_CHECK(loss[t] <= 1, "example %d loss flag %d is %d", i, t, loss[t]);
			k += loss[t];
		}
		FUZZ_CHECK(k >= 1, "example %d has no trained token", i);
		*tok += n;
		*trained += k;
	}
	FUZZ_CHECK(hearth_dataset_example(d, s, count, &(const uint8_t *){ NULL }, &(int32_t){ 0 }, NULL) == NULL,
		   "an example past the split's %d", count);
}

/* Packs the training split in reverse order: every example once, rows within N_CTX. */
static void check_pack(const struct hearth_dataset *d, int32_t n_train)
{
	int32_t *order = malloc(((size_t)n_train + 1) * sizeof *order);
	FUZZ_CHECK(order != NULL, "out of memory");
	for (int32_t i = 0; i < n_train; i++)
		order[i] = n_train - 1 - i;
	int32_t ids[N_CTX], pos[N_CTX], next = 0, n_out = 0, rows = 0;
	uint8_t loss[N_CTX];
	struct hearth_err err = { 0 };
	while (next < n_train) {
		const int32_t before = next;
		FUZZ_CHECK(hearth_dataset_pack(d, HEARTH_SPLIT_TRAIN, order, n_train, &next, N_CTX, ids, loss, pos, &n_out,
					       &err) == 0, "pack: %s", err.msg);
		FUZZ_CHECK(next > before && n_out >= 1 && n_out <= N_CTX, "a row of %d slots took %d examples", n_out,
			   next - before);
		FUZZ_CHECK(pos[0] == 0, "a row starts at position %d", pos[0]);
		for (int32_t k = 1; k < n_out; k++)
			FUZZ_CHECK(pos[k] == 0 || pos[k] == pos[k - 1] + 1, "slot %d at position %d after %d", k, pos[k],
				   pos[k - 1]);
		rows++;
	}
	FUZZ_CHECK(rows <= n_train, "%d rows for %d examples", rows, n_train);
	FUZZ_CHECK(hearth_dataset_pack(d, HEARTH_SPLIT_TRAIN, order, n_train, &next, N_CTX, ids, loss, pos, &n_out,
				       &err) == 0 && n_out == 0, "packing past the end gave %d slots", n_out);
	next = 0;
	order[0] = n_train; /* no such example */
	fuzz_check_err(hearth_dataset_pack(d, HEARTH_SPLIT_TRAIN, order, 1, &next, N_CTX, ids, loss, pos, &n_out, &err),
		       &err, NULL);
	free(order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_dataset_params p = hearth_dataset_default_params();
	struct hearth_dataset *d = NULL;
	struct hearth_err err = { 0 };
	p.valid_fraction = 0.25f;
	p.seed = size;
	p.max_tokens = MAX_TOKENS;
	model = models[size & 1];
	fuzz_file_set(&file, data, size);
	const int rc = hearth_dataset_load(&d, model, file.path, &p, &err);
	if (rc) {
		FUZZ_CHECK(d == NULL, "a refused dataset was returned");
		fuzz_check_err(rc, &err, file.path);
		return 0;
	}
	struct hearth_dataset_stats st;
	hearth_dataset_stats(d, &st);
	FUZZ_CHECK(st.n_train >= 1 && st.n_valid >= 0 && st.lines >= 1, "stats: %d lines, %d train, %d valid", st.lines,
		   st.n_train, st.n_valid);
	FUZZ_CHECK(st.n_valid <= (st.n_train + st.n_valid + 1) / 2, "%d of %d held out", st.n_valid,
		   st.n_train + st.n_valid);
	int64_t tok = 0, trained = 0;
	check_split(d, HEARTH_SPLIT_TRAIN, st.n_train, &tok, &trained);
	check_split(d, HEARTH_SPLIT_VALID, st.n_valid, &tok, &trained);
	FUZZ_CHECK(tok == st.tokens && trained == st.loss_tokens, "tokens %lld/%lld, trained %lld/%lld", (long long)tok,
		   (long long)st.tokens, (long long)trained, (long long)st.loss_tokens);
	check_pack(d, st.n_train);
	hearth_dataset_free(d);
	return 0;
}
