/* fuzz-lora-moe.c - libFuzzer target: the fuzzer's bytes as a LoRA adapter
 * file for the mixtures of experts tiny-qwen3moe.f32, tiny-gpt-oss.f32 and
 * tiny-mixtral.f32 (llama) (hearth_lora_load against each: the file's
 * general.architecture picks the one that can accept it), so that adapters on the experts' stacks
 * (blk.N.ffn_{gate,up,down}_exps.weight.lora_a [n_in, rank, n_expert],
 * .lora_b [rank, n_out, n_expert]) are read, checked and applied.
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a refused input gives a negative code, recorded in err, whose message
 *    names the input, and no adapter;
 *  - an accepted one adapts at least one matrix or stack and runs: a
 *    three-token decode with it at scale 1 (the router sends the tokens to
 *    several experts) succeeds; for one accepted input in four (by its middle
 *    byte), merging it into the model (hearth_lora_export) into a file of a
 *    temporary directory succeeds too. The logits themselves are not checked
 *    (large adapter values may overflow the activations, as in llama.cpp).
 * Seeds: build-fuzz/seeds/lora-moe/ (mkseeds: good and broken stack
 * adapters for the three models) and tests/fuzz/corpus/lora-moe/. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_MODELS 3
static const char *const fixtures[N_MODELS] = { "models/tiny-qwen3moe.f32.gguf", "models/tiny-gpt-oss.f32.gguf",
						"models/tiny-mixtral.f32.gguf" };
static struct hearth_model *models[N_MODELS];
static struct hearth_context *ctxs[N_MODELS];
static struct fuzz_file file;
static char tmp_root[200]; /* $TMPDIR or /tmp: exports go to a directory made there and removed after each */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	cp.n_ctx = 16;
	cp.n_threads = 1;
	for (int i = 0; i < N_MODELS; i++)
		if (hearth_model_load(&models[i], fuzz_fixture(fixtures[i]), &mp, &err) ||
		    hearth_context_new(&ctxs[i], models[i], &cp, &err)) {
			fprintf(stderr, "fuzz-lora-moe: %s (the fixtures: ../shared/fixtures or $HEARTH_FIXTURES)\n",
				err.msg);
			exit(1);
		}
	fuzz_file_init(&file, "fuzz-lora-moe");
	const char *tmp = getenv("TMPDIR");
	snprintf(tmp_root, sizeof tmp_root, "%s", tmp && *tmp ? tmp : "/tmp");
	return 0;
}

/* The accepted adapter a of model i applied: a decode, and (export set) a merge. */
static void apply(int i, struct hearth_lora *a, bool export)
{
	struct hearth_err err = { 0 };
	const struct hearth_lora_use use = { a, 1.0f };
	const int32_t toks[3] = { 1, 100, 400 }; /* within every vocabulary (mixtral: 512) */
	FUZZ_CHECK(hearth_context_set_lora(ctxs[i], &use, 1, &err) == 0, "set_lora: %s", err.msg);
	hearth_context_truncate(ctxs[i], 0);
	FUZZ_CHECK(hearth_decode(ctxs[i], toks, 3, false, &err) == 0, "decode: %s", err.msg);
	FUZZ_CHECK(hearth_get_logits(ctxs[i], -1) != NULL, "no logits after a decode");
	FUZZ_CHECK(hearth_context_set_lora(ctxs[i], NULL, 0, &err) == 0, "set_lora: %s", err.msg);
	if (export) {
		char dir[256], path[300];
		snprintf(dir, sizeof dir, "%s/fuzz-lora-moe-XXXXXX", tmp_root);
		if (!mkdtemp(dir)) {
			perror("fuzz-lora-moe: mkdtemp");
			abort();
		}
		snprintf(path, sizeof path, "%s/merged.gguf", dir);
		const int rc = hearth_lora_export(models[i], &use, 1, path, &err);
		unlink(path);
		rmdir(dir);
		FUZZ_CHECK(rc == 0, "export: %s", err.msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_set(&file, data, size);
	for (int i = 0; i < N_MODELS; i++) {
		struct hearth_lora *a = NULL;
		struct hearth_err err = { 0 };
		const int rc = hearth_lora_load(&a, models[i], file.path, &err);
		if (rc) {
			FUZZ_CHECK(a == NULL, "a refused adapter was returned");
			fuzz_check_err(rc, &err, file.path);
			continue;
		}
		FUZZ_CHECK(hearth_lora_n_pairs(a) >= 1, "an accepted adapter with %d pairs", hearth_lora_n_pairs(a));
		apply(i, a, data[size / 2] % 4 == 0); /* size >= 1: the file was read */
		hearth_lora_free(a);
	}
	return 0;
}
