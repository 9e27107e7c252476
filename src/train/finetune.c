/* finetune.c - a fine-tuning run (hearth_finetune_*): the epochs' seeded
 * orders, packing into rows, gradient accumulation, AdamW on every adapter
 * tensor under the warm-up + cosine schedule, validation.
 *
 * A step packs up to rows_per_step rows from the epoch's order, runs each
 * row forward and backward alone (a row is one trainer pass: its examples
 * attend only to themselves), and averages the rows' gradients weighted by
 * their trained tokens, so that the update follows the mean loss over every
 * trained token of the step whatever the packing made of the rows. Every
 * sum runs in a fixed order: a run is reproducible bit for bit with the same
 * threads (the trainer's passes split work by thread).
 *
 * The number of steps is known at creation: each epoch's order is packed
 * once (lengths only matter) to count its rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/err.h"
#include "../base/sha256.h"
#include "../model/model.h"
#include "finetune.h"

#define FT_MAX_ROWS_PER_STEP 65536
#define FT_MAX_SLOTS (1 << 26) /* tokens of one step's rows (ids, labels, positions: 12 bytes each) */

struct hearth_finetune_params hearth_finetune_default_params(void)
{
	return (struct hearth_finetune_params){ .trainer = hearth_trainer_default_params(), .lr = 1e-4f,
						.min_lr_ratio = 0.1f, .warmup = 0, .epochs = 1, .max_steps = 0,
						.batch_rows = 1, .grad_accum = 1, .weight_decay = 0 };
}

static uint64_t mix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

void finetune_order(const struct hearth_finetune *ft, int32_t e, int32_t *order)
{
	uint64_t s = ft->p.trainer.seed ^ (0xF17E7E5EULL * (uint64_t)(e + 1));
	for (int32_t i = 0; i < ft->n_train; i++)
		order[i] = i;
	for (int32_t i = ft->n_train - 1; i > 0; i--) { /* Fisher-Yates */
		const int32_t j = (int32_t)(mix64(&s) % (uint64_t)(i + 1));
		const int32_t x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
}

static int check_params(const struct hearth_finetune_params *p, struct hearth_err *err)
{
	if (!(p->lr > 0 && p->lr < 1e3f) || !(p->min_lr_ratio >= 0 && p->min_lr_ratio <= 1))
		return err_set(err, HEARTH_EINVAL, "finetune: lr must be in (0, 1000) and min_lr_ratio in [0, 1]");
	if (p->warmup < 0 || p->epochs < 0 || p->max_steps < 0 || (p->epochs == 0 && p->max_steps == 0))
		return err_set(err, HEARTH_EINVAL, "finetune: warmup, epochs and max_steps must be >= 0, with epochs or max_steps > 0");
	if (p->epochs > 1000000 || p->max_steps > INT64_C(1) << 40)
		return err_set(err, HEARTH_EINVAL, "finetune: %d epochs or %lld steps is too many", p->epochs,
			       (long long)p->max_steps);
	if (p->batch_rows < 1 || p->grad_accum < 1 ||
	    (int64_t)p->batch_rows * p->grad_accum > FT_MAX_ROWS_PER_STEP)
		return err_set(err, HEARTH_EINVAL, "finetune: batch_rows and grad_accum must be >= 1, their product <= %d",
			       FT_MAX_ROWS_PER_STEP);
	if ((int64_t)p->batch_rows * p->grad_accum * p->trainer.n_ctx > FT_MAX_SLOTS)
		return err_set(err, HEARTH_EINVAL, "finetune: a step of %d x %d rows of %d tokens is over %d slots",
			       p->batch_rows, p->grad_accum, p->trainer.n_ctx, FT_MAX_SLOTS);
	if (!(p->weight_decay >= 0 && p->weight_decay <= 1))
		return err_set(err, HEARTH_EINVAL, "finetune: weight_decay must be in [0, 1]");
	if (p->trainer.targets == 0)
		return err_set(err, HEARTH_EINVAL, "finetune: no target matrices: nothing to train");
	return 0;
}

/* The model's identity: architecture, shapes, the adapted matrices' names,
 * shapes, the types of its matrices, and the values of its norm weights (which differ between
 * any two trainings of the same shape). */
static int digest_model(struct hearth_finetune *ft, struct sha256 *h)
{
	const struct hearth_model *m = ft->m;
	sha256_begin(h);
	sha256_update(h, m->arch, strlen(m->arch) + 1);
	const int32_t dims[] = { m->hp.n_vocab, m->hp.n_embd, m->hp.n_layer, m->hp.n_ff, m->hp.n_head, m->hp.n_head_kv };
	sha256_update(h, dims, sizeof dims);
	for (int32_t i = 0; i < ft->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		sha256_update(h, lt.weight, strlen(lt.weight) + 1);
		const int64_t shape[3] = { lt.n_in, lt.n_out, lt.n_expert };
		sha256_update(h, shape, lt.n_expert > 1 ? sizeof shape : 2 * sizeof shape[0]); /* matrices: as before stacks */
	}
	for (int32_t il = -1; il < m->hp.n_layer; il++) {
		const struct layer *l = il < 0 ? NULL : &m->layers[il];
		const struct tensor *w = l ? &l->attn_norm : &m->output_norm;
		const int types[] = { w->type, l ? l->wq.type : m->tok_embd.type, l ? l->wk.type : m->output.type,
				      l ? l->wv.type : 0, l ? l->wo.type : 0, l ? l->ffn_gate.type : 0,
				      l ? l->ffn_up.type : 0, l ? l->ffn_down.type : 0 };
		sha256_update(h, types, sizeof types);
		if (w->data && w->type == HEARTH_TYPE_F32)
			sha256_update(h, w->data, (size_t)w->ne[0] * sizeof(float));
	}
	return sha256_end(h, ft->model_digest);
}

/* The dataset's identity: every example's tokens and loss flags, both splits. */
static int digest_data(struct hearth_finetune *ft, struct sha256 *h)
{
	sha256_begin(h);
	for (int s = 0; s < 2; s++) {
		const enum hearth_split sp = s ? HEARTH_SPLIT_VALID : HEARTH_SPLIT_TRAIN;
		for (int32_t i = 0;; i++) {
			const uint8_t *loss;
			int32_t n;
			const int32_t *ids = hearth_dataset_example(ft->d, sp, i, &loss, &n, NULL);
			if (!ids)
				break;
			sha256_update(h, &n, sizeof n);
			sha256_update(h, ids, (size_t)n * sizeof *ids);
			sha256_update(h, loss, (size_t)n);
		}
	}
	return sha256_end(h, ft->data_digest);
}

static int make_digests(struct hearth_finetune *ft, struct hearth_err *err)
{
	struct sha256 *h = NULL;
	int rc = sha256_new(&h, err);
	if (rc)
		return rc;
	if (digest_model(ft, h) || digest_data(ft, h))
		rc = err_set(err, HEARTH_ENOMEM, "finetune: out of memory for a digest");
	sha256_free(h);
	return rc;
}

/* Packs row r of the step from the order at ft->next; fills its labels:
 * labels[i] = ids[i + 1] where that token is trained, else -1. */
static int pack_row(struct hearth_finetune *ft, enum hearth_split s, const int32_t *order, int32_t n_order,
		    int32_t *next, int32_t r, struct hearth_err *err)
{
	const size_t o = (size_t)r * (size_t)ft->n_ctx;
	int32_t n = 0;
	int rc = hearth_dataset_pack(ft->d, s, order, n_order, next, ft->n_ctx, ft->ids + o, ft->loss + o, ft->pos + o,
				     &n, err);
	if (rc)
		return rc;
	int32_t lab = 0;
	for (int32_t i = 0; i < n; i++) {
		const bool on = i + 1 < n && ft->loss[o + i + 1] && ft->pos[o + i + 1] != 0;
		ft->labels[o + i] = on ? ft->ids[o + i + 1] : -1;
		lab += on;
	}
	ft->row_n[r] = n;
	ft->row_lab[r] = lab;
	return 0;
}

/* Rows of epoch e's order. */
static int count_rows(struct hearth_finetune *ft, int32_t e, int64_t *rows, struct hearth_err *err)
{
	finetune_order(ft, e, ft->order);
	*rows = 0;
	for (int32_t next = 0; next < ft->n_train; (*rows)++) {
		int rc = pack_row(ft, HEARTH_SPLIT_TRAIN, ft->order, ft->n_train, &next, 0, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int plan_steps(struct hearth_finetune *ft, struct hearth_err *err)
{
	const struct hearth_finetune_params *p = &ft->p;
	if (p->epochs == 0) {
		ft->n_steps = p->max_steps;
		return 0;
	}
	ft->n_steps = 0;
	for (int32_t e = 0; e < p->epochs && (p->max_steps == 0 || ft->n_steps < p->max_steps); e++) {
		int64_t rows;
		int rc = count_rows(ft, e, &rows, err);
		if (rc)
			return rc;
		ft->n_steps += (rows + ft->rows_per_step - 1) / ft->rows_per_step;
	}
	if (p->max_steps && ft->n_steps > p->max_steps)
		ft->n_steps = p->max_steps;
	return 0;
}

static int alloc_state(struct hearth_finetune *ft, struct hearth_err *err)
{
	ft->n_lora = hearth_trainer_n_lora(ft->t);
	if (!(ft->off = calloc((size_t)ft->n_lora, sizeof *ft->off)))
		return err_set(err, HEARTH_ENOMEM, "finetune: out of memory");
	for (int32_t i = 0; i < ft->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		ft->off[i] = ft->n_params;
		ft->n_params += (size_t)lt.rank * (size_t)(lt.n_in + lt.n_out) * (size_t)lt.n_expert;
	}
	const size_t slots = (size_t)ft->rows_per_step * (size_t)ft->n_ctx;
	ft->state = calloc(3 * ft->n_params, sizeof *ft->state);
	ft->order = malloc((size_t)ft->n_train * sizeof *ft->order);
	ft->ids = malloc(slots * sizeof *ft->ids);
	ft->labels = malloc(slots * sizeof *ft->labels);
	ft->pos = malloc(slots * sizeof *ft->pos);
	ft->loss = malloc(slots);
	ft->row_n = calloc((size_t)ft->rows_per_step, sizeof *ft->row_n);
	ft->row_lab = calloc((size_t)ft->rows_per_step, sizeof *ft->row_lab);
	if (!ft->state || !ft->order || !ft->ids || !ft->labels || !ft->pos || !ft->loss || !ft->row_n || !ft->row_lab)
		return err_set(err, HEARTH_ENOMEM, "finetune: out of memory for %zu optimizer floats and %zu slots",
			       3 * ft->n_params, slots);
	ft->grad = ft->state;
	ft->mom1 = ft->state + ft->n_params;
	ft->mom2 = ft->state + 2 * ft->n_params;
	return 0;
}

int hearth_finetune_new(struct hearth_finetune **out, const struct hearth_model *m, const struct hearth_dataset *d,
			const struct hearth_finetune_params *p, struct hearth_err *err)
{
	*out = NULL;
	struct hearth_finetune_params dp = hearth_finetune_default_params();
	if (!p)
		p = &dp;
	int rc = check_params(p, err);
	if (rc)
		return rc;
	struct hearth_dataset_stats st;
	hearth_dataset_stats(d, &st);
	if (st.n_train < 1)
		return err_set(err, HEARTH_EINVAL, "finetune: the dataset has no training example");
	struct hearth_finetune *ft = calloc(1, sizeof *ft);
	if (!ft)
		return err_set(err, HEARTH_ENOMEM, "finetune: out of memory");
	ft->m = m;
	ft->d = d;
	ft->p = *p;
	ft->opt = adamw_default();
	ft->opt.weight_decay = p->weight_decay;
	ft->n_train = st.n_train;
	ft->n_valid = st.n_valid;
	ft->n_ctx = p->trainer.n_ctx;
	ft->rows_per_step = p->batch_rows * p->grad_accum;
	if ((rc = hearth_trainer_new(&ft->t, m, &p->trainer, err)) || (rc = alloc_state(ft, err)) ||
	    (rc = make_digests(ft, err)) || (rc = plan_steps(ft, err)))
		goto out_free;
	finetune_order(ft, 0, ft->order);
	*out = ft;
	return 0;
out_free:
	hearth_finetune_free(ft);
	return rc;
}

void hearth_finetune_free(struct hearth_finetune *ft)
{
	if (!ft)
		return;
	hearth_trainer_free(ft->t);
	free(ft->off);
	free(ft->state);
	free(ft->order);
	free(ft->ids);
	free(ft->labels);
	free(ft->pos);
	free(ft->loss);
	free(ft->row_n);
	free(ft->row_lab);
	free(ft);
}

bool hearth_finetune_done(const struct hearth_finetune *ft)
{
	return ft->step >= ft->n_steps;
}

int64_t hearth_finetune_n_steps(const struct hearth_finetune *ft)
{
	return ft->n_steps;
}

int64_t hearth_finetune_step_index(const struct hearth_finetune *ft)
{
	return ft->step;
}

struct hearth_trainer *hearth_finetune_trainer(struct hearth_finetune *ft)
{
	return ft->t;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs row r (with backward when grad_weight > 0, adding grad_weight times
 * its gradients into ft->grad); its mean loss in *loss. */
static int run_row(struct hearth_finetune *ft, int32_t r, float grad_weight, double *loss, struct hearth_err *err)
{
	const size_t o = (size_t)r * (size_t)ft->n_ctx;
	const struct hearth_train_batch b = { .n = ft->row_n[r], .tokens = ft->ids + o, .labels = ft->labels + o,
					      .pos = ft->pos + o };
	const bool backward = grad_weight > 0;
	if (backward)
		hearth_trainer_zero_grad(ft->t);
	int rc = hearth_trainer_run(ft->t, &b, backward, loss, NULL, err);
	if (rc || !backward)
		return rc;
	for (int32_t i = 0; i < ft->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		const size_t X = (size_t)lt.n_expert;
		const size_t na = (size_t)lt.rank * (size_t)lt.n_in * X, nb = (size_t)lt.rank * (size_t)lt.n_out * X;
		float *g = ft->grad + ft->off[i];
		for (size_t k = 0; k < na; k++)
			g[k] += grad_weight * lt.grad_a[k];
		for (size_t k = 0; k < nb; k++)
			g[na + k] += grad_weight * lt.grad_b[k];
	}
	return 0;
}

static void apply_update(struct hearth_finetune *ft, float lr)
{
	for (int32_t i = 0; i < ft->n_lora; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		const size_t X = (size_t)lt.n_expert;
		const size_t na = (size_t)lt.rank * (size_t)lt.n_in * X, nb = (size_t)lt.rank * (size_t)lt.n_out * X;
		const size_t o = ft->off[i];
		adamw_step(&ft->opt, ft->step + 1, lr, lt.a, ft->grad + o, ft->mom1 + o, ft->mom2 + o, na);
		adamw_step(&ft->opt, ft->step + 1, lr, lt.b, ft->grad + o + na, ft->mom1 + o + na, ft->mom2 + o + na, nb);
	}
}

int hearth_finetune_step(struct hearth_finetune *ft, struct hearth_finetune_report *r, struct hearth_err *err)
{
	if (hearth_finetune_done(ft))
		return err_set(err, HEARTH_EINVAL, "finetune: the run is done (%lld steps)", (long long)ft->n_steps);
	const double t0 = now_s();
	if (ft->next >= ft->n_train) {
		ft->epoch++;
		ft->next = 0;
		finetune_order(ft, ft->epoch, ft->order);
	}
	int32_t n_rows = 0;
	int64_t n_tok = 0, n_lab = 0;
	int rc;
	while (n_rows < ft->rows_per_step && ft->next < ft->n_train) {
		if ((rc = pack_row(ft, HEARTH_SPLIT_TRAIN, ft->order, ft->n_train, &ft->next, n_rows, err)))
			return rc;
		n_tok += ft->row_n[n_rows];
		n_lab += ft->row_lab[n_rows];
		n_rows++;
	}
	memset(ft->grad, 0, ft->n_params * sizeof *ft->grad);
	double loss_sum = 0;
	for (int32_t k = 0; k < n_rows; k++) {
		double loss;
		if (!ft->row_lab[k])
			continue; /* every trained token of its examples was cut away */
		if ((rc = run_row(ft, k, (float)ft->row_lab[k] / (float)n_lab, &loss, err)))
			return rc;
		loss_sum += loss * ft->row_lab[k];
	}
	const float lr = lr_at(ft->p.lr, ft->step + 1, ft->p.warmup, ft->n_steps, ft->p.min_lr_ratio);
	if (n_lab)
		apply_update(ft, lr);
	hearth_trainer_zero_grad(ft->t);
	ft->step++;
	ft->tokens_total += n_tok;
	if (r)
		*r = (struct hearth_finetune_report){ .step = ft->step, .n_steps = ft->n_steps, .epoch = ft->epoch,
						      .loss = n_lab ? loss_sum / (double)n_lab : 0, .lr = lr,
						      .n_tokens = n_tok, .n_loss_tokens = n_lab,
						      .tokens_total = ft->tokens_total, .seconds = now_s() - t0 };
	return 0;
}

int hearth_finetune_validate(struct hearth_finetune *ft, double *loss, struct hearth_err *err)
{
	*loss = 0;
	if (ft->n_valid < 1)
		return err_set(err, HEARTH_EINVAL, "finetune: the dataset has no validation example");
	int32_t *order = malloc((size_t)ft->n_valid * sizeof *order);
	if (!order)
		return err_set(err, HEARTH_ENOMEM, "finetune: out of memory");
	for (int32_t i = 0; i < ft->n_valid; i++)
		order[i] = i;
	double sum = 0;
	int64_t n_lab = 0;
	int rc = 0;
	for (int32_t next = 0; next < ft->n_valid;) {
		double l;
		if ((rc = pack_row(ft, HEARTH_SPLIT_VALID, order, ft->n_valid, &next, 0, err)))
			break;
		if (!ft->row_lab[0])
			continue;
		if ((rc = run_row(ft, 0, 0, &l, err)))
			break;
		sum += l * ft->row_lab[0];
		n_lab += ft->row_lab[0];
	}
	free(order);
	if (!rc && n_lab == 0)
		rc = err_set(err, HEARTH_EINVAL, "finetune: the validation split has no trained token");
	if (!rc)
		*loss = sum / (double)n_lab;
	return rc;
}
