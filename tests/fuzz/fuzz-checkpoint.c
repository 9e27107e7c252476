/* fuzz-checkpoint.c - libFuzzer target: the fuzzer's bytes as a checkpoint
 * file given to hearth_finetune_resume (hearth finetune --resume) for the
 * run of ckpt-run.h (stories260K.f32, a six-example dataset).
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a refused input gives a negative code, recorded in err, whose message
 *    names the input, and leaves the run as it was: at step 0, epoch 0,
 *    example 0, with the same adapter weights and AdamW moments, bit for bit;
 *  - an accepted one puts the run at a step within its plan, in an epoch
 *    of it, with the epoch's order a permutation and every adapter weight
 *    and moment finite (second moments >= 0); the run is then made anew.
 * Seeds: build-fuzz/seeds/checkpoint/ (mkseeds: checkpoints of this run at
 * steps 0, 1, 3 and its end, and its adapter file, written by the library). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/train/finetune.h"
#include "ckpt-run.h"
#include "common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hearth_model *model;
static struct hearth_dataset *dataset;
static struct hearth_finetune *run;
static float *snapshot; /* the new run's adapters and moments */
static size_t n_snapshot;
static struct fuzz_file file;

/* The run's adapter weights, then its moments, into dst (NULL: only counts); the count. */
static size_t collect(float *dst)
{
	size_t k = 0;
	for (int32_t i = 0; i < run->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(run->t, i, &lt);
		const size_t na = (size_t)lt.rank * (size_t)lt.n_in, nb = (size_t)lt.rank * (size_t)lt.n_out;
		if (dst) {
			memcpy(dst + k, lt.a, na * sizeof *dst);
			memcpy(dst + k + na, lt.b, nb * sizeof *dst);
		}
		k += na + nb;
	}
	if (dst) {
		memcpy(dst + k, run->mom1, run->n_params * sizeof *dst);
		memcpy(dst + k + run->n_params, run->mom2, run->n_params * sizeof *dst);
	}
	return k + 2 * run->n_params;
}

static void new_run(void)
{
	struct hearth_err err = { 0 };
	hearth_finetune_free(run);
	run = NULL;
	FUZZ_CHECK(ckpt_run_new(&run, model, dataset, &err) == 0, "a new run: %s", err.msg);
}

/* An accepted checkpoint: the run's place within its plan, the epoch's order
 * a permutation, the weights and moments finite, the second moments >= 0.
 * (No step is taken: one costs a forward and backward pass, too slow here.) */
static void check_accepted(void)
{
	const int64_t step = hearth_finetune_step_index(run);
	FUZZ_CHECK(step >= 0 && step <= run->n_steps, "resumed at step %lld of %lld", (long long)step,
		   (long long)run->n_steps);
	FUZZ_CHECK(run->epoch >= 0 && (run->p.epochs == 0 || run->epoch < run->p.epochs), "resumed in epoch %d",
		   run->epoch);
	FUZZ_CHECK(run->next >= 0 && run->next <= run->n_train, "resumed at example %d of %d", run->next,
		   run->n_train);
	uint8_t *seen = calloc((size_t)run->n_train, 1);
	FUZZ_CHECK(seen != NULL, "out of memory");
	for (int32_t i = 0; i < run->n_train; i++) {
		const int32_t k = run->order[i];
		FUZZ_CHECK(k >= 0 && k < run->n_train && !seen[k], "order[%d] = %d", i, k);
		seen[k] = 1;
	}
	free(seen);
	float *now = malloc(n_snapshot * sizeof *now);
	FUZZ_CHECK(now != NULL, "out of memory");
	collect(now);
	const size_t n_v = run->n_params, n_v0 = n_snapshot - n_v;
	for (size_t i = 0; i < n_snapshot; i++)
		FUZZ_CHECK(isfinite(now[i]) && (i < n_v0 || now[i] >= 0), "value %zu of the resumed run is %g", i,
			   (double)now[i]);
	free(now);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_err err = { 0 };
	struct fuzz_file data;
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	fuzz_file_init(&data, "fuzz-checkpoint-data");
	fuzz_file_set(&data, (const uint8_t *)ckpt_run_data, sizeof ckpt_run_data - 1);
	if (ckpt_run_open(&model, &dataset, fuzz_fixture(CKPT_RUN_MODEL), data.path, &err) ||
	    ckpt_run_new(&run, model, dataset, &err)) {
		fprintf(stderr, "fuzz-checkpoint: %s (the fixtures: ../shared/fixtures or $HEARTH_FIXTURES)\n", err.msg);
		exit(1);
	}
	n_snapshot = collect(NULL);
	snapshot = malloc(n_snapshot * sizeof *snapshot);
	if (!snapshot)
		abort();
	collect(snapshot);
	fuzz_file_init(&file, "fuzz-checkpoint");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_err err = { 0 };
	fuzz_file_set(&file, data, size);
	const int rc = hearth_finetune_resume(run, file.path, &err);
	if (rc) {
		fuzz_check_err(rc, &err, file.path);
		FUZZ_CHECK(run->step == 0 && run->epoch == 0 && run->next == 0 && run->tokens_total == 0,
			   "a refused checkpoint moved the run to step %lld, epoch %d, example %d", (long long)run->step,
			   run->epoch, run->next);
		float *now = malloc(n_snapshot * sizeof *now);
		FUZZ_CHECK(now != NULL, "out of memory");
		collect(now);
		FUZZ_CHECK(memcmp(now, snapshot, n_snapshot * sizeof *now) == 0,
			   "a refused checkpoint changed the adapters or moments");
		free(now);
		return 0;
	}
	check_accepted();
	new_run();
	return 0;
}
