/*
 * lora-apply.c - the adapters' low-rank products over a batch (S-LoRA's
 * split): the base product runs once for every row of the batch, then each
 * row that has adapters gets, for each of them in order,
 *
 *   u = A x          (rank dot products of n_in)
 *   y += c * B u     (n_out dot products of rank; c = scale * alpha / rank)
 *
 * in f32, with the kernels' f32 dot product. An expert stack's rows (grouped
 * by expert, as forward.c runs them) take the A and B of each row's expert. A row's arithmetic is the same
 * whatever else is in the batch and however the threads split it: rows are
 * dealt to threads whole, or, when there are fewer rows than threads, every
 * thread computes u (the same bits) and takes a slice of y.
 */
#include <stddef.h>

#include "../base/thread.h"
#include "../kern/kern.h"
#include "lora.h"

/* Below this many multiply-adds a batch's products run on the calling thread. */
#define LORA_INLINE_MACS (1 << 16)

struct apply_task {
	const struct fwd_lora *const *sets;
	const int32_t *expert; /* [n_rows] each row's expert, or NULL: a matrix */
	int n_rows, il, role;
	const float *x;
	int64_t n_in;
	float *y;
	int64_t n_out;
};

static const struct lora_mat *mat_of(const struct hearth_lora *a, const int32_t *expert, int i, int il, int role)
{
	if (expert)
		return lora_exp_mat(a, il, (enum lora_exp_role)role, expert[i]);
	return il < 0 ? lora_global_mat(a, role) : lora_layer_mat(a, il, (enum lora_role)role);
}

/* Row i: outputs o0 .. o1 - 1 of every adapter's product. */
static void apply_row(const struct apply_task *t, int i, int64_t o0, int64_t o1)
{
	const struct fwd_lora *set = t->sets[i];
	const kern_vec_dot_fn dot = kern_ops(HEARTH_TYPE_F32)->vec_dot;
	const float *x = t->x + (size_t)i * (size_t)t->n_in;
	float *y = t->y + (size_t)i * (size_t)t->n_out;
	float u[LORA_MAX_RANK];
	for (int32_t k = 0; k < set->n; k++) {
		const struct lora_mat *m = mat_of(set->ad[k], t->expert, i, t->il, t->role);
		if (!m)
			continue;
		const float c = set->scale[k] * m->s;
		for (int32_t r = 0; r < m->rank; r++)
			dot(t->n_in, &u[r], m->a + (size_t)r * (size_t)t->n_in, x);
		for (int64_t o = o0; o < o1; o++) {
			float v;
			dot(m->rank, &v, m->b + (size_t)o * (size_t)m->rank, u);
			y[o] += c * v;
		}
	}
}

static void apply_run(void *arg, int ith, int nth)
{
	const struct apply_task *t = arg;
	if (t->n_rows >= nth) {
		for (int i = t->n_rows * ith / nth; i < t->n_rows * (ith + 1) / nth; i++)
			if (t->sets[i])
				apply_row(t, i, 0, t->n_out);
		return;
	}
	for (int i = 0; i < t->n_rows; i++)
		if (t->sets[i])
			apply_row(t, i, t->n_out * ith / nth, t->n_out * (ith + 1) / nth);
}

static void apply_rows(struct pool *pool, const struct fwd_lora *const *sets, const int32_t *expert, int n_rows, int il,
		       int role, const float *x, int64_t n_in, float *y, int64_t n_out)
{
	int64_t macs = 0;
	for (int i = 0; i < n_rows; i++)
		for (int32_t k = 0; sets[i] && k < sets[i]->n; k++) {
			const struct lora_mat *m = mat_of(sets[i]->ad[k], expert, i, il, role);
			if (m)
				macs += (int64_t)m->rank * (n_in + n_out);
		}
	if (!macs)
		return;
	struct apply_task t = { sets, expert, n_rows, il, role, x, n_in, y, n_out };
	if (macs <= LORA_INLINE_MACS)
		apply_run(&t, 0, 1);
	else
		pool_run(pool, apply_run, &t);
}

void lora_apply(struct pool *pool, const struct fwd_lora *const *sets, int n_rows, int il, int role, const float *x,
		int64_t n_in, float *y, int64_t n_out)
{
	apply_rows(pool, sets, NULL, n_rows, il, role, x, n_in, y, n_out);
}

void lora_apply_exps(struct pool *pool, const struct fwd_lora *const *sets, const int32_t *expert, int n_rows, int il,
		     int role, const float *x, int64_t n_in, float *y, int64_t n_out)
{
	apply_rows(pool, sets, expert, n_rows, il, role, x, n_in, y, n_out);
}

void lora_apply_embd(const struct fwd_lora *const *sets, int n_rows, const int32_t *tokens, float *x, int64_t n_embd)
{
	const kern_vec_dot_fn dot = kern_ops(HEARTH_TYPE_F32)->vec_dot;
	for (int i = 0; i < n_rows; i++)
		for (int32_t k = 0; sets[i] && k < sets[i]->n; k++) {
			const struct lora_mat *m = lora_global_mat(sets[i]->ad[k], LORA_TOK_EMBD);
			if (!m)
				continue;
			const float c = sets[i]->scale[k] * m->s, *u = m->a + (size_t)tokens[i] * (size_t)m->rank;
			for (int64_t e = 0; e < n_embd; e++) {
				float v;
				dot(m->rank, &v, m->b + (size_t)e * (size_t)m->rank, u);
				x[(size_t)i * (size_t)n_embd + (size_t)e] += c * v;
			}
		}
}
