/*
 * lora-export.c - adapters merged into a copy of the base model's GGUF
 * (llama.cpp's export-lora): every adapted matrix W becomes
 *
 *   W + sum_k scale_k * alpha_k / rank_k * B_k A_k      (token embedding: row t += c B A[t])
 *
 * (an expert stack: each expert's slice with that expert's B_e A_e), computed
 * in f32 from the base dequantized, and stored as f32 when the base
 * tensor is f32, else as f16 (quantized bases are not requantized: the
 * merged file is larger, and exact up to f16 rounding). Every other tensor
 * and every key is copied as it is. Merged tensors are produced while the
 * file is written, one at a time (gguf_writer_add_tensor_fill).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "lora.h"
#include "model.h"

struct merge {
	const struct gguf_tensor *base;
	const struct lora_pair *pair[HEARTH_MAX_LORAS]; /* NULL: adapter k leaves it alone */
	float c[HEARTH_MAX_LORAS];                      /* scale * alpha / rank */
	bool embd;                                      /* the token embedding's orientation */
};

struct export_job {
	const struct fwd_lora *set;
	struct merge *merges;   /* [n_merges], in the order the writer numbers fill tensors */
	int64_t *index;         /* writer tensor index -> merge, -1: copied */
	int64_t n_merges;
};

/* Adds adapter k's product to row o of W (n_in floats); an expert stack's
 * row o is row o % n_out of expert o / n_out, which takes that expert's pair. */
static void merge_row(const struct merge *mg, int k, int64_t o, float *w, int64_t n_in)
{
	const struct lora_pair *p = mg->pair[k];
	const int64_t rank = p->ne_b[0];
	const float c = mg->c[k];
	if (p->n_expert > 1) {
		const int64_t n_out = p->ne_b[1], e = o / n_out;
		const float *a = p->a + (size_t)e * (size_t)rank * (size_t)n_in;
		const float *b = p->b + ((size_t)e * (size_t)n_out + (size_t)(o % n_out)) * (size_t)rank;
		for (int64_t i = 0; i < n_in; i++) {
			float s = 0;
			for (int64_t r = 0; r < rank; r++)
				s += b[r] * a[(size_t)r * (size_t)n_in + (size_t)i];
			w[i] += c * s;
		}
		return;
	}
	if (mg->embd) { /* W [n_vocab][n_embd]: row o is token o; A [n_vocab][rank], B [n_embd][rank] */
		const float *a = p->a + (size_t)o * (size_t)rank;
		for (int64_t e = 0; e < n_in; e++) {
			float s = 0;
			for (int64_t r = 0; r < rank; r++)
				s += p->b[(size_t)e * (size_t)rank + (size_t)r] * a[r];
			w[e] += c * s;
		}
		return;
	}
	const float *b = p->b + (size_t)o * (size_t)rank; /* W [n_out][n_in]: A [rank][n_in], B [n_out][rank] */
	for (int64_t i = 0; i < n_in; i++) {
		float s = 0;
		for (int64_t r = 0; r < rank; r++)
			s += b[r] * p->a[(size_t)r * (size_t)n_in + (size_t)i];
		w[i] += c * s;
	}
}

static int export_fill(void *user, int64_t i_tensor, void *dst, uint64_t nbytes, struct hearth_err *err)
{
	const struct export_job *job = user;
	const struct merge *mg = &job->merges[job->index[i_tensor]];
	const struct gguf_tensor *t = mg->base;
	const int64_t n_in = t->ne[0], n_rows = t->ne[1] * t->ne[2]; /* a stack: its experts' rows one after another */
	const int out_type = t->type == HEARTH_TYPE_F32 ? HEARTH_TYPE_F32 : HEARTH_TYPE_F16;
	const size_t in_row = qtype_row_size(t->type, n_in), out_row = qtype_row_size(out_type, n_in);
	float *w = malloc((size_t)n_in * sizeof *w);
	if (!w)
		return err_set(err, HEARTH_ENOMEM, "export: out of memory for a row of '%s'", t->name);
	(void)nbytes;
	for (int64_t o = 0; o < n_rows; o++) {
		kern_ops(t->type)->to_float((const char *)t->data + (size_t)o * in_row, w, n_in);
		for (int k = 0; k < job->set->n; k++)
			if (mg->pair[k])
				merge_row(mg, k, o, w, n_in);
		kern_ops(out_type)->from_float(w, (char *)dst + (size_t)o * out_row, n_in);
	}
	free(w);
	return 0;
}

/* Fills the merge of base tensor t (false: no adapter of the set adapts it). */
static bool merge_of(const struct fwd_lora *set, const struct hearth_model *m, const struct gguf_tensor *t,
		     struct merge *mg)
{
	bool any = false;
	*mg = (struct merge){ .base = t, .embd = strcmp(t->name, m->tok_embd.name) == 0 };
	for (int k = 0; k < set->n; k++)
		for (int32_t i = 0; i < set->ad[k]->n_pairs; i++) {
			const struct lora_pair *p = &set->ad[k]->pairs[i];
			if (strcmp(p->name, t->name) == 0) {
				const float alpha = set->ad[k]->alpha;
				mg->pair[k] = p;
				mg->c[k] = set->scale[k] * (alpha != 0 ? alpha / (float)p->ne_b[0] : 1.0f);
				any = true;
			}
		}
	return any;
}

static int export_write(const struct hearth_model *m, struct export_job *job, const char *path, struct hearth_err *err)
{
	const struct hearth_gguf *g = m->gguf;
	struct gguf_writer *w = NULL;
	int rc;
	if ((rc = gguf_writer_new(&w, err)))
		return rc;
	for (int64_t i = 0; i < g->n_kv; i++)
		if (gguf_writer_set_kv(w, &g->kv[i])) {
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			goto out_free;
		}
	for (int64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		struct merge *mg = &job->merges[job->n_merges];
		if (merge_of(job->set, m, t, mg)) {
			const int out_type = t->type == HEARTH_TYPE_F32 ? HEARTH_TYPE_F32 : HEARTH_TYPE_F16;
			job->index[i] = job->n_merges++;
			rc = gguf_writer_add_tensor_fill(w, t->name, out_type, t->n_dims, t->ne, export_fill, job);
		} else {
			job->index[i] = -1;
			rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
		}
		if (rc) {
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			goto out_free;
		}
	}
	rc = gguf_writer_write(w, path, err);
out_free:
	gguf_writer_free(w);
	return rc;
}

int hearth_lora_export(const struct hearth_model *m, const struct hearth_lora_use *use, int32_t n, const char *path,
		       struct hearth_err *err)
{
	struct fwd_lora set;
	struct export_job job = { .set = &set };
	int rc;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "export: the model was loaded without its weights");
	if ((rc = lora_use_resolve(use, n, m, &set, err)))
		return rc;
	const size_t tmp_len = strlen(path) + 32;
	char *tmp = malloc(tmp_len);
	job.merges = malloc(((size_t)m->gguf->n_tensors + 1) * sizeof *job.merges);
	job.index = malloc(((size_t)m->gguf->n_tensors + 1) * sizeof *job.index);
	if (!tmp || !job.merges || !job.index) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
		goto out_free;
	}
	snprintf(tmp, tmp_len, "%s.tmp-%ld", path, (long)getpid());
	rc = export_write(m, &job, tmp, err);
	if (!rc && rename(tmp, path))
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
	if (rc)
		unlink(tmp);
out_free:
	free(tmp);
	free(job.merges);
	free(job.index);
	lora_use_release(&set);
	return rc;
}
