/* fuzz-lora.c - libFuzzer target: the fuzzer's bytes as a LoRA adapter file
 * for tiny-llama-spm.f32 (hearth_lora_load: llama.cpp's GGUF LoRA format
 * checked against the base model).
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a refused input gives a negative code, recorded in err, whose message
 *    names the input, and no adapter;
 *  - an accepted one adapts at least one matrix and runs: a one-token decode
 *    with it at scale 1 succeeds (its values are finite, but large ones may
 *    overflow the model's activations, as they would in llama.cpp: the
 *    logits themselves are not checked).
 * Seeds: tests/fuzz/corpus/lora/ (adapters of rank 1 and 2 for the model).
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hearth_model *model;
static struct hearth_context *ctx;
static struct fuzz_file file;

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
	if (hearth_model_load(&model, fuzz_fixture("models/tiny-llama-spm.f32.gguf"), &mp, &err) ||
	    hearth_context_new(&ctx, model, &cp, &err)) {
		fprintf(stderr, "fuzz-lora: %s (the fixtures: ../shared/fixtures or $HEARTH_FIXTURES)\n", err.msg);
		exit(1);
	}
	fuzz_file_init(&file, "fuzz-lora");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_lora *a = NULL;
	struct hearth_err err = { 0 };
	fuzz_file_set(&file, data, size);
	const int rc = hearth_lora_load(&a, model, file.path, &err);
	if (rc) {
		FUZZ_CHECK(a == NULL, "a refused adapter was returned");
		fuzz_check_err(rc, &err, file.path);
		return 0;
	}
	FUZZ_CHECK(hearth_lora_n_pairs(a) >= 1, "an accepted adapter with %d pairs", hearth_lora_n_pairs(a));
	const struct hearth_lora_use use = { a, 1.0f };
	const int32_t tok = 1;
	FUZZ_CHECK(hearth_context_set_lora(ctx, &use, 1, &err) == 0, "set_lora: %s", err.msg);
	hearth_context_truncate(ctx, 0);
	FUZZ_CHECK(hearth_decode(ctx, &tok, 1, false, &err) == 0, "decode: %s", err.msg);
	FUZZ_CHECK(hearth_get_logits(ctx, -1) != NULL, "no logits after a decode");
	FUZZ_CHECK(hearth_context_set_lora(ctx, NULL, 0, &err) == 0, "set_lora: %s", err.msg);
	hearth_lora_free(a);
	return 0;
}
