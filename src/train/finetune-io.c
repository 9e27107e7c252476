/* finetune-io.c - a fine-tuning run's files: the adapter (llama.cpp's GGUF
 * LoRA format) and checkpoints (hearth_finetune_save, _checkpoint, _resume).
 *
 * A checkpoint is a GGUF file holding what the adapter file holds (with
 * general.type "hearth.finetune.checkpoint", so no loader takes it for an
 * adapter) and, per adapter tensor T, AdamW's moments "T.m" and "T.v"; the
 * run's place in
 *   hearth.finetune.state   i64 [step, epoch, next, tokens_total, n_steps, seed]
 *   hearth.finetune.params  the params a resumed run must share, one key each
 *   hearth.finetune.model_digest, .data_digest   u8 [32]
 * Both files are written under a temporary name, then renamed over path. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "finetune.h"

#define CKPT_TYPE "hearth.finetune.checkpoint"
#define CKPT_STATE "hearth.finetune.state"
#define CKPT_N_STATE 6
#define CKPT_MODEL "hearth.finetune.model_digest"
#define CKPT_DATA "hearth.finetune.data_digest"

/* The params a resumed run must share: key, value as a double. */
struct ckpt_param {
	const char *key;
	double v;
};
#define CKPT_N_PARAMS 12

static void params_list(const struct hearth_finetune_params *p, struct ckpt_param *out)
{
	const struct ckpt_param l[CKPT_N_PARAMS] = {
		{ "hearth.finetune.targets", p->trainer.targets },     { "hearth.finetune.rank", p->trainer.rank },
		{ "hearth.finetune.alpha", p->trainer.alpha },         { "hearth.finetune.n_ctx", p->trainer.n_ctx },
		{ "hearth.finetune.lr", p->lr },
		{ "hearth.finetune.min_lr_ratio", p->min_lr_ratio },   { "hearth.finetune.warmup", p->warmup },
		{ "hearth.finetune.epochs", p->epochs },               { "hearth.finetune.max_steps", (double)p->max_steps },
		{ "hearth.finetune.batch_rows", p->batch_rows },       { "hearth.finetune.grad_accum", p->grad_accum },
		{ "hearth.finetune.weight_decay", p->weight_decay },
	};
	memcpy(out, l, sizeof l);
}

/* The adapter tensors (and with moments, AdamW's) into w. Names are kept by
 * the writer; the data pointers must live until it writes. */
static int add_tensors(struct hearth_finetune *ft, struct gguf_writer *w, bool moments, char (*names)[128])
{
	int rc = 0;
	for (int32_t i = 0; i < ft->n_lora && !rc; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		/* an expert stack: [.., .., n_expert] (llama.cpp's *_exps layout) */
		const int64_t ne_a[3] = { lt.n_in, lt.rank, lt.n_expert }, ne_b[3] = { lt.rank, lt.n_out, lt.n_expert };
		const int n_dims = lt.n_expert > 1 ? 3 : 2;
		const size_t na = (size_t)lt.rank * (size_t)lt.n_in * (size_t)lt.n_expert, o = ft->off[i];
		const struct { const char *suffix; const int64_t *ne; const float *data; } t[6] = {
			{ "lora_a", ne_a, lt.a }, { "lora_b", ne_b, lt.b },
			{ "lora_a.m", ne_a, ft->mom1 + o }, { "lora_b.m", ne_b, ft->mom1 + o + na },
			{ "lora_a.v", ne_a, ft->mom2 + o }, { "lora_b.v", ne_b, ft->mom2 + o + na },
		};
		for (int k = 0; k < (moments ? 6 : 2) && !rc; k++) {
			char *name = names[(size_t)i * 6 + (size_t)k];
			snprintf(name, 128, "%s.%s", lt.weight, t[k].suffix);
			rc = gguf_writer_add_tensor(w, name, HEARTH_TYPE_F32, n_dims, t[k].ne, t[k].data);
		}
	}
	return rc;
}

static int add_run_state(struct hearth_finetune *ft, struct gguf_writer *w)
{
	const int64_t state[CKPT_N_STATE] = { ft->step, ft->epoch, ft->next, ft->tokens_total, ft->n_steps,
					      (int64_t)ft->p.trainer.seed };
	struct ckpt_param pl[CKPT_N_PARAMS];
	params_list(&ft->p, pl);
	int rc = gguf_writer_set_arr(w, CKPT_STATE, HEARTH_GGUF_I64, state, CKPT_N_STATE);
	for (int k = 0; k < CKPT_N_PARAMS && !rc; k++)
		rc = gguf_writer_set_arr(w, pl[k].key, HEARTH_GGUF_F64, &pl[k].v, 1);
	if (!rc)
		rc = gguf_writer_set_arr(w, CKPT_MODEL, HEARTH_GGUF_U8, ft->model_digest, FINETUNE_DIGEST_SIZE);
	if (!rc)
		rc = gguf_writer_set_arr(w, CKPT_DATA, HEARTH_GGUF_U8, ft->data_digest, FINETUNE_DIGEST_SIZE);
	return rc;
}

static int write_file(struct hearth_finetune *ft, const char *path, bool checkpoint, struct hearth_err *err)
{
	struct gguf_writer *w = NULL;
	char (*names)[128] = calloc((size_t)ft->n_lora * 6, sizeof *names);
	const size_t tmp_len = strlen(path) + 32;
	char *tmp = malloc(tmp_len);
	int rc;
	if (!names || !tmp) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if ((rc = gguf_writer_new(&w, err)))
		goto out;
	if (gguf_writer_set_str(w, "general.architecture", hearth_model_arch(ft->m)) ||
	    gguf_writer_set_str(w, "general.type", checkpoint ? CKPT_TYPE : "adapter") ||
	    gguf_writer_set_str(w, "adapter.type", "lora") ||
	    gguf_writer_set_f32(w, "adapter.lora.alpha", ft->p.trainer.alpha) ||
	    (checkpoint && add_run_state(ft, w)) || add_tensors(ft, w, checkpoint, names)) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory building the file", path);
		goto out;
	}
	snprintf(tmp, tmp_len, "%s.tmp-%ld", path, (long)getpid());
	if ((rc = gguf_writer_write(w, tmp, err)))
		goto out_unlink;
	if (rename(tmp, path)) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
		goto out_unlink;
	}
	goto out;
out_unlink:
	unlink(tmp);
out:
	gguf_writer_free(w);
	free(names);
	free(tmp);
	return rc;
}

int hearth_finetune_save(struct hearth_finetune *ft, const char *path, struct hearth_err *err)
{
	return write_file(ft, path, false, err);
}

int hearth_finetune_checkpoint(struct hearth_finetune *ft, const char *path, struct hearth_err *err)
{
	return write_file(ft, path, true, err);
}

/* ---- resume ---------------------------------------------------------------- */

static int check_digest(const struct hearth_gguf *g, const char *key, const uint8_t *want, const char *what,
			struct hearth_err *err)
{
	const struct gguf_kv *kv;
	int rc = gguf_get_arr(g, key, HEARTH_GGUF_U8, &kv, err);
	if (rc == HEARTH_ENOTFOUND || (!rc && kv->arr_n != FINETUNE_DIGEST_SIZE))
		return err_set(err, HEARTH_EBADGGUF, "%s: checkpoint without a valid %s", g->path, key);
	if (rc)
		return rc;
	if (memcmp(kv->arr, want, FINETUNE_DIGEST_SIZE))
		return err_set(err, HEARTH_EINVAL, "%s: the checkpoint was made with another %s", g->path, what);
	return 0;
}

static int check_params(const struct hearth_finetune *ft, const struct hearth_gguf *g, struct hearth_err *err)
{
	struct ckpt_param pl[CKPT_N_PARAMS];
	params_list(&ft->p, pl);
	for (int k = 0; k < CKPT_N_PARAMS; k++) {
		const struct gguf_kv *kv;
		int rc = gguf_get_arr(g, pl[k].key, HEARTH_GGUF_F64, &kv, err);
		if (rc == HEARTH_ENOTFOUND || (!rc && kv->arr_n != 1))
			return err_set(err, HEARTH_EBADGGUF, "%s: checkpoint without a valid %s", g->path, pl[k].key);
		if (rc)
			return rc;
		const double v = gguf_arr_f64(kv, 0);
		if (v != pl[k].v)
			return err_set(err, HEARTH_EINVAL, "%s: the checkpoint was made with %s = %g, this run has %g",
				       g->path, pl[k].key + strlen("hearth.finetune."), v, pl[k].v);
	}
	return 0;
}

/* Checks the values of tensor name: finite, and with nonneg (a second moment) >= 0: a
 * run resumed from other values would train on NaNs. Read by memcpy: the data may be unaligned. */
static int check_values(const struct hearth_gguf *g, const char *name, const uint8_t *data, size_t n, bool nonneg,
			struct hearth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		float v;
		memcpy(&v, data + i * sizeof v, sizeof v);
		if (!isfinite(v) || (nonneg && v < 0))
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' holds %g at %zu, not a%s value", g->path,
				       name, (double)v, i, nonneg ? " finite, nonnegative" : " finite");
	}
	return 0;
}

/* Checks that tensor name is f32 [ne0 x ne1] (ne2 > 1: [ne0 x ne1 x ne2])
 * with values check_values accepts; then (dst not NULL) copies it there. */
static int read_tensor(const struct hearth_gguf *g, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, float *dst,
		       bool nonneg, struct hearth_err *err)
{
	const int64_t i = gguf_find_tensor(g, name);
	if (i < 0)
		return err_set(err, HEARTH_EINVAL, "%s: the checkpoint has no tensor '%s' (made for other targets?)",
			       g->path, name);
	const struct gguf_tensor *t = &g->tensors[i];
	if (t->type != HEARTH_TYPE_F32 || t->n_dims != (ne2 > 1 ? 3 : 2) || t->ne[0] != ne0 || t->ne[1] != ne1 ||
	    t->ne[2] != ne2)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is not f32 [%lld x %lld x %lld]", g->path, name,
			       (long long)ne0, (long long)ne1, (long long)ne2);
	const size_t n = (size_t)ne0 * (size_t)ne1 * (size_t)ne2;
	if (dst)
		memcpy(dst, t->data, n * sizeof *dst);
	return dst ? 0 : check_values(g, name, t->data, n, nonneg, err);
}

/* Every adapter tensor and moment; with copy, into the run (only after a
 * pass without has found them all: a refused file changes nothing). */
static int read_tensors(struct hearth_finetune *ft, const struct hearth_gguf *g, bool copy, struct hearth_err *err)
{
	char name[160];
	int rc = 0;
	for (int32_t i = 0; i < ft->n_lora && !rc; i++) {
		struct hearth_lora_tensor lt;
		hearth_trainer_lora(ft->t, i, &lt);
		const size_t na = (size_t)lt.rank * (size_t)lt.n_in * (size_t)lt.n_expert, o = ft->off[i];
		const struct { const char *suffix; int64_t ne0, ne1; float *dst; } t[6] = {
			{ "lora_a", lt.n_in, lt.rank, lt.a }, { "lora_b", lt.rank, lt.n_out, lt.b },
			{ "lora_a.m", lt.n_in, lt.rank, ft->mom1 + o }, { "lora_b.m", lt.rank, lt.n_out, ft->mom1 + o + na },
			{ "lora_a.v", lt.n_in, lt.rank, ft->mom2 + o }, { "lora_b.v", lt.rank, lt.n_out, ft->mom2 + o + na },
		};
		for (int k = 0; k < 6 && !rc; k++) {
			snprintf(name, sizeof name, "%s.%s", lt.weight, t[k].suffix);
			rc = read_tensor(g, name, t[k].ne0, t[k].ne1, lt.n_expert, copy ? t[k].dst : NULL, k >= 4, err);
		}
	}
	return rc;
}

static int read_state(struct hearth_finetune *ft, const struct hearth_gguf *g, struct hearth_err *err)
{
	const struct gguf_kv *kv;
	int rc = gguf_get_arr(g, CKPT_STATE, HEARTH_GGUF_I64, &kv, err);
	if (rc == HEARTH_ENOTFOUND || (!rc && kv->arr_n != CKPT_N_STATE))
		return err_set(err, HEARTH_EBADGGUF, "%s: checkpoint without a valid %s", g->path, CKPT_STATE);
	if (rc)
		return rc;
	const int64_t step = gguf_arr_i64(kv, 0), epoch = gguf_arr_i64(kv, 1), next = gguf_arr_i64(kv, 2),
		      tokens = gguf_arr_i64(kv, 3), n_steps = gguf_arr_i64(kv, 4);
	const uint64_t seed = (uint64_t)gguf_arr_i64(kv, 5);
	if (seed != ft->p.trainer.seed)
		return err_set(err, HEARTH_EINVAL, "%s: the checkpoint was made with seed = %llu, this run has %llu", g->path,
			       (unsigned long long)seed, (unsigned long long)ft->p.trainer.seed);
	const int32_t n_epochs = ft->p.epochs ? ft->p.epochs : INT32_MAX;
	if (n_steps != ft->n_steps || step < 0 || step > n_steps || epoch < 0 || epoch >= n_epochs || next < 0 ||
	    next > ft->n_train || tokens < 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: checkpoint state out of range (step %lld of %lld, epoch %lld, "
			       "example %lld of %d)", g->path, (long long)step, (long long)n_steps, (long long)epoch,
			       (long long)next, ft->n_train);
	ft->step = step;
	ft->epoch = (int32_t)epoch;
	ft->next = (int32_t)next;
	ft->tokens_total = tokens;
	finetune_order(ft, ft->epoch, ft->order);
	return 0;
}

int hearth_finetune_resume(struct hearth_finetune *ft, const char *path, struct hearth_err *err)
{
	if (ft->step != 0)
		return err_set(err, HEARTH_EINVAL, "%s: resume needs a new run (this one is at step %lld)", path,
			       (long long)ft->step);
	struct hearth_gguf *g = NULL;
	int rc = hearth_gguf_open(&g, path, err);
	if (rc)
		return rc;
	struct gguf_str s;
	if (gguf_get_str(g, "general.type", &s, err) || s.n != strlen(CKPT_TYPE) || memcmp(s.p, CKPT_TYPE, s.n)) {
		rc = err_set(err, HEARTH_EBADGGUF, "%s: not a hearth fine-tuning checkpoint (general.type)", path);
		goto out;
	}
	if ((rc = check_digest(g, CKPT_MODEL, ft->model_digest, "model", err)) ||
	    (rc = check_digest(g, CKPT_DATA, ft->data_digest, "dataset", err)) || (rc = check_params(ft, g, err)) ||
	    (rc = read_tensors(ft, g, false, err)) || (rc = read_state(ft, g, err)))
		goto out;
	read_tensors(ft, g, true, err); /* found and checked above: cannot fail */
out:
	hearth_gguf_close(g);
	return rc;
}
