/* ckpt-run.h - the fine-tuning run that fuzz-checkpoint resumes into and
 * mkseeds writes the checkpoints of: one model, one dataset, one set of
 * params, so that a seed checkpoint passes the digest and params checks and
 * the fuzzer's mutations reach the state and tensor checks behind them.
 * Header-only (static functions): mkseeds and the target are separate programs. */
#ifndef HEARTH_FUZZ_CKPT_RUN_H
#define HEARTH_FUZZ_CKPT_RUN_H

#include <stdio.h>

#include "hearth.h"

#define CKPT_RUN_MODEL "models/stories260K.f32.gguf"

/* Six examples, conversations and prompt/completion lines. */
static const char ckpt_run_data[] =
	"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n"
	"{\"prompt\":\"Q: red\\nA:\",\"completion\":\" It is blue.\"}\n"
	"{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"2+2\"},"
	"{\"role\":\"assistant\",\"content\":\"4\"},{\"role\":\"user\",\"content\":\"and 3+3\"},"
	"{\"role\":\"assistant\",\"content\":\"6\"}]}\n"
	"{\"prompt\":\"Q: sky\\nA:\",\"completion\":\" It is blue.\"}\n"
	"{\"prompt\":\"Q: sea\\nA:\",\"completion\":\" It is blue.\"}\n"
	"{\"messages\":[{\"role\":\"user\",\"content\":\"name?\"},{\"role\":\"assistant\",\"content\":\"hearth\"}]}\n";

static struct hearth_finetune_params ckpt_run_params(void)
{
	struct hearth_finetune_params p = hearth_finetune_default_params();
	p.trainer.rank = 2;
	p.trainer.alpha = 4;
	p.trainer.n_ctx = 16;
	p.trainer.n_threads = 1;
	p.trainer.seed = 5;
	p.trainer.targets = HEARTH_TRAIN_ATTN_Q | HEARTH_TRAIN_ATTN_V;
	p.lr = 1e-2f;
	p.epochs = 2;
	p.batch_rows = 1;
	p.grad_accum = 1;
	return p;
}

/* The model, the dataset read from data_path (holding ckpt_run_data) and a
 * new run over them; 0 or the library's error in err. */
static int ckpt_run_open(struct hearth_model **m, struct hearth_dataset **d, const char *model_path,
			 const char *data_path, struct hearth_err *err)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_dataset_params dp = hearth_dataset_default_params();
	dp.valid_fraction = 0.2f;
	dp.seed = 1;
	int rc = hearth_model_load(m, model_path, &mp, err);
	if (!rc)
		rc = hearth_dataset_load(d, *m, data_path, &dp, err);
	return rc;
}

static int ckpt_run_new(struct hearth_finetune **ft, const struct hearth_model *m, const struct hearth_dataset *d,
			struct hearth_err *err)
{
	const struct hearth_finetune_params p = ckpt_run_params();
	return hearth_finetune_new(ft, m, d, &p, err);
}

#endif /* HEARTH_FUZZ_CKPT_RUN_H */
