/*
 * cvec.c - control vectors: llama.cpp's GGUF format read and written, and a
 * request's steering checked against the model.
 *
 * File layout (what llama.cpp's common_control_vector_load reads and its
 * cvector-generator writes):
 *   general.architecture = "controlvector", controlvector.model_hint (string),
 *   controlvector.layer_count (i32: tensors written)
 *   tensors "direction.N": f32, 1-D, n_embd values, N >= 1; several tensors
 *   direction.N is added to the output of block N (GGUF names are unique:
 *   one tensor per layer in a file; files add up).
 * Loading checks every tensor before it changes the vector, so a bad file
 * leaves the vector as it was.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/sha256.h"
#include "../gguf/gguf.h"
#include "cvec.h"
#include "model.h"

int hearth_cvec_new(struct hearth_cvec **out, const struct hearth_model *m, struct hearth_err *err)
{
	*out = NULL;
	const int32_t L = m->hp.n_layer;
	const int64_t E = m->hp.n_embd;
	if (L < 1 || E < 1)
		return err_set(err, HEARTH_EINVAL, "control vector: the model has %d layers of width %lld", L, (long long)E);
	struct hearth_cvec *cv = calloc(1, sizeof *cv);
	if (!cv || !(cv->dir = calloc((size_t)L * (size_t)E, sizeof *cv->dir))) {
		free(cv);
		return err_set(err, HEARTH_ENOMEM, "control vector: out of memory for %d x %lld floats", L, (long long)E);
	}
	cv->n_layer = L;
	cv->n_embd = E;
	*out = cv;
	return 0;
}

void hearth_cvec_free(struct hearth_cvec *cv)
{
	if (!cv)
		return;
	free(cv->dir);
	free(cv);
}

const float *hearth_cvec_direction(const struct hearth_cvec *cv, int32_t il)
{
	return il >= 1 && il < cv->n_layer ? cv->dir + (size_t)il * (size_t)cv->n_embd : NULL;
}

int hearth_cvec_add(struct hearth_cvec *cv, int32_t il, const float *dir, float scale, struct hearth_err *err)
{
	if (il < 1 || il >= cv->n_layer)
		return err_set(err, HEARTH_EINVAL, "control vector: layer %d is outside 1..%d", il, cv->n_layer - 1);
	float *d = cv->dir + (size_t)il * (size_t)cv->n_embd;
	for (int64_t j = 0; j < cv->n_embd; j++)
		d[j] += dir[j] * scale;
	return 0;
}

/* N of a tensor named "direction.N" (decimal digits only), or -1. */
static long direction_index(const char *name)
{
	static const char prefix[] = "direction.";
	if (strncmp(name, prefix, sizeof prefix - 1) != 0)
		return -1;
	const char *p = name + sizeof prefix - 1;
	if (*p < '0' || *p > '9')
		return -1;
	long n = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((n = n * 10 + (*p - '0')) > 1000000)
			return -1;
	return *p ? -1 : n;
}

/* Tensor t of path's file, checked: its layer in *il. */
static int check_tensor(const struct hearth_cvec *cv, const char *path, const struct gguf_tensor *t, int32_t *il,
			struct hearth_err *err)
{
	const long n = direction_index(t->name);
	if (n < 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is not named direction.N", path, t->name);
	if (n == 0 || n >= cv->n_layer)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s': layer %ld is outside 1..%d (the model has %d layers)",
			       path, t->name, n, cv->n_layer - 1, cv->n_layer);
	if (t->type != HEARTH_TYPE_F32)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is of type %d, not f32", path, t->name, t->type);
	if (t->n_dims != 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has %d dimensions, not 1", path, t->name, t->n_dims);
	if (t->ne[0] != cv->n_embd)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has %lld values; the model's n_embd is %lld", path,
			       t->name, (long long)t->ne[0], (long long)cv->n_embd);
	float v;
	for (int64_t j = 0; j < t->ne[0]; j++) {
		memcpy(&v, (const char *)t->data + (size_t)j * sizeof v, sizeof v);
		if (!isfinite(v))
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' holds a non-finite value at %lld", path,
				       t->name, (long long)j);
	}
	*il = (int32_t)n;
	return 0;
}

int hearth_cvec_add_file(struct hearth_cvec *cv, const char *path, float scale, struct hearth_err *err)
{
	struct hearth_gguf *g = NULL;
	int rc;
	if (!isfinite(scale))
		return err_set(err, HEARTH_EINVAL, "%s: the scale is not a finite number", path);
	if ((rc = hearth_gguf_open(&g, path, err)))
		return rc;
	if (g->n_tensors == 0) {
		rc = err_set(err, HEARTH_EBADGGUF, "%s: no direction tensors", path);
		goto out_close;
	}
	int32_t il;
	for (int64_t i = 0; i < g->n_tensors; i++) /* all checked before any is added */
		if ((rc = check_tensor(cv, path, &g->tensors[i], &il, err)))
			goto out_close;
	for (int64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		float *d = cv->dir + (size_t)direction_index(t->name) * (size_t)cv->n_embd, v;
		for (int64_t j = 0; j < cv->n_embd; j++) {
			memcpy(&v, (const char *)t->data + (size_t)j * sizeof v, sizeof v); /* the mapping may be unaligned */
			d[j] += v * scale;
		}
	}
out_close:
	hearth_gguf_close(g);
	return rc;
}

static int write_file(const struct hearth_cvec *cv, const char *path, const char *model_hint, struct hearth_err *err)
{
	struct gguf_writer *w = NULL;
	char name[32];
	int rc;
	if ((rc = gguf_writer_new(&w, err)))
		return rc;
	if (gguf_writer_set_str(w, "general.architecture", "controlvector") ||
	    gguf_writer_set_str(w, "controlvector.model_hint", model_hint ? model_hint : "") ||
	    gguf_writer_set_i32(w, "controlvector.layer_count", cv->n_layer - 1)) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
		goto out_free;
	}
	for (int32_t il = 1; il < cv->n_layer; il++) {
		snprintf(name, sizeof name, "direction.%d", il);
		const int64_t ne[1] = { cv->n_embd };
		if (gguf_writer_add_tensor(w, name, HEARTH_TYPE_F32, 1, ne, cv->dir + (size_t)il * (size_t)cv->n_embd)) {
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			goto out_free;
		}
	}
	rc = gguf_writer_write(w, path, err);
out_free:
	gguf_writer_free(w);
	return rc;
}

int hearth_cvec_write(const struct hearth_cvec *cv, const char *path, const char *model_hint, struct hearth_err *err)
{
	const size_t tmp_len = strlen(path) + 32;
	char *tmp = malloc(tmp_len);
	if (!tmp)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	snprintf(tmp, tmp_len, "%s.tmp-%ld", path, (long)getpid());
	int rc = write_file(cv, tmp, model_hint, err);
	if (!rc && rename(tmp, path))
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int cvec_steer_resolve(const struct hearth_steering *s, const struct hearth_model *m, struct fwd_steer *out,
		       struct hearth_err *err)
{
	*out = (struct fwd_steer){ 0 };
	if (!s || !s->cvec || s->strength == 0.0f)
		return 0;
	const struct hearth_cvec *cv = s->cvec;
	if (!isfinite(s->strength))
		return err_set(err, HEARTH_EINVAL, "steering: the strength is not a finite number");
	if (cv->n_layer != m->hp.n_layer || cv->n_embd != m->hp.n_embd)
		return err_set(err, HEARTH_EINVAL, "steering: the vector is for %d layers of %lld, the model has %d of %lld",
			       cv->n_layer, (long long)cv->n_embd, m->hp.n_layer, (long long)m->hp.n_embd);
	const int32_t il0 = s->layer_start <= 0 ? 1 : s->layer_start;
	const int32_t il1 = s->layer_end <= 0 ? cv->n_layer - 1 : s->layer_end;
	if (il1 > cv->n_layer || il0 > il1)
		return err_set(err, HEARTH_EINVAL, "steering: layers %d..%d are not a range within 1..%d", il0, il1,
			       cv->n_layer - 1);
	*out = (struct fwd_steer){ .dir = cv->dir, .strength = s->strength, .il0 = il0, .il1 = il1 };
	return 0;
}

int cvec_steer_digest(const struct fwd_steer *st, const struct hparams *hp, uint8_t out[32], struct hearth_err *err)
{
	struct sha256 *h = NULL;
	int rc;
	memset(out, 0, 32);
	if (!st->dir)
		return 0;
	if ((rc = sha256_new(&h, err)))
		return rc;
	sha256_begin(h);
	sha256_update(h, &st->strength, sizeof st->strength);
	sha256_update(h, &st->il0, sizeof st->il0);
	sha256_update(h, &st->il1, sizeof st->il1);
	const int32_t il1 = st->il1 < hp->n_layer - 1 ? st->il1 : hp->n_layer - 1;
	if (il1 >= st->il0) /* the rows in force */
		sha256_update(h, st->dir + (size_t)st->il0 * (size_t)hp->n_embd,
			      (size_t)(il1 - st->il0 + 1) * (size_t)hp->n_embd * sizeof *st->dir);
	rc = sha256_end(h, out);
	sha256_free(h);
	if (rc)
		return err_set(err, rc, "steering: hashing it failed");
	out[0] |= !(out[0] | out[1] | out[2] | out[3]); /* never all zero: that means none */
	return 0;
}
