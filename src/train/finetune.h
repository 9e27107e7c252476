/* finetune.h - the fine-tuning run object, shared by the files that make
 * it up (finetune.c: the schedule, steps and validation; finetune-io.c: the
 * adapter and checkpoint files). Its API: hearth.h, hearth_finetune_*.
 *
 * Memory (owner: the run, sized at creation): the optimizer's state, three
 * floats per adapter parameter (the averaged gradient, AdamW's two moments)
 * in one allocation laid out adapter by adapter, a then b; the rows of one
 * step (ids, loss flags, labels, positions: rows_per_step * n_ctx each). */
#ifndef HEARTH_FINETUNE_H
#define HEARTH_FINETUNE_H

#include "hearth.h"
#include "adamw.h"

#define FINETUNE_DIGEST_SIZE 32

struct hearth_finetune {
	const struct hearth_model *m;
	const struct hearth_dataset *d;
	struct hearth_finetune_params p;
	struct hearth_trainer *t;
	struct adamw opt;
	int32_t n_train, n_valid, n_lora;
	int32_t n_ctx, rows_per_step;
	/* where the run stands */
	int64_t step, n_steps;
	int32_t epoch;   /* of the current order */
	int32_t next;    /* the next example in order */
	int64_t tokens_total;
	int32_t *order;  /* [n_train] epoch's shuffled training examples */
	/* optimizer: per adapter i, a's floats at off[i], b's right after */
	size_t *off;     /* [n_lora] */
	size_t n_params;
	float *state;    /* [3][n_params]: grad, m, v */
	float *grad, *mom1, *mom2;
	/* one step's rows */
	int32_t *ids, *labels, *pos; /* [rows_per_step][n_ctx] */
	uint8_t *loss;
	int32_t *row_n, *row_lab;   /* [rows_per_step] slots filled, labelled slots */
	uint8_t model_digest[FINETUNE_DIGEST_SIZE], data_digest[FINETUNE_DIGEST_SIZE];
};

/* The order of the training examples in epoch e (a permutation of 0 .. n_train - 1). */
void finetune_order(const struct hearth_finetune *ft, int32_t e, int32_t *order);

#endif /* HEARTH_FINETUNE_H */
