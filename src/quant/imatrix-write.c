/*
 * imatrix-write.c - an importance matrix to a file, in the two formats
 * llama-imatrix writes:
 *
 * GGUF (its default): metadata general.type = "imatrix", imatrix.datasets
 * (array of the text files' names), imatrix.chunk_count (u32: the most tokens
 * any weight (or expert) saw, in whole chunks) and imatrix.chunk_size (u32);
 * then, for each weight in name order, two f32 tensors: "<weight>.in_sum2" of
 * n_in elements (the raw sums of squared activations) and "<weight>.counts"
 * of one element (the tokens summed); for stacked experts, [n_in, n_expert]
 * and [1, n_expert], expert by expert.
 *
 * .dat (legacy, --output-format dat), all numbers native int32 / float32:
 *   n_entries; per weight in name order: name length, name bytes, ncall (its
 *   most tokens of one expert in chunks, rounded up), n_in * n_expert, then
 *   those floats sum / count * ncall (an expert that saw nothing: ncall);
 *   then the chunk count, and the last dataset's name (length, bytes).
 *
 * Weights no product fed (count 0) are left out of both, as llama-imatrix
 * never creates entries for them; a weight with some experts unused is
 * written whole, as llama-imatrix writes "partial data".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "imatrix.h"

/* The most rows any matrix of e saw. */
static int64_t max_count(const struct imatrix_entry *e)
{
	int64_t m = 0;
	for (int32_t x = 0; x < e->n_mat; x++)
		m = e->counts[x] > m ? e->counts[x] : m;
	return m;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp((*(const struct imatrix_entry *const *)a)->name, (*(const struct imatrix_entry *const *)b)->name);
}

/* The entries that saw tokens, sorted by name (*out malloc'd, *n of them);
 * *max_all: the most tokens any (expert) saw. */
static int sorted_entries(const struct hearth_imatrix *im, const struct imatrix_entry ***out, int32_t *n,
			  int64_t *max_all)
{
	const struct imatrix_entry **v = malloc(((size_t)im->n + 1) * sizeof *v);
	if (!v)
		return HEARTH_ENOMEM;
	*n = 0;
	*max_all = 0;
	for (int32_t i = 0; i < im->n; i++) {
		const int64_t c = max_count(&im->e[i]);
		if (c > 0) {
			v[(*n)++] = &im->e[i];
			*max_all = c > *max_all ? c : *max_all;
		}
	}
	qsort(v, (size_t)*n, sizeof *v, cmp_entry);
	*out = v;
	return 0;
}

static int write_gguf(const struct hearth_imatrix *im, const char *path, const char *const *datasets,
		      size_t n_datasets, struct hearth_err *err)
{
	const struct imatrix_entry **v = NULL;
	struct gguf_writer *w = NULL;
	float *counts = NULL;
	int32_t n = 0;
	int64_t max_all;
	size_t n_counts = 0;
	char name[512];
	int rc;

	if ((rc = sorted_entries(im, &v, &n, &max_all)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	for (int32_t i = 0; i < n; i++)
		n_counts += (size_t)v[i]->n_mat;
	if (!(counts = malloc((n_counts + 1) * sizeof *counts))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if ((rc = gguf_writer_new(&w, err)))
		goto out;
	rc = gguf_writer_set_str(w, "general.type", "imatrix");
	rc = rc ? rc : gguf_writer_set_arr_str(w, "imatrix.datasets", datasets, n_datasets);
	rc = rc ? rc : gguf_writer_set_u32(w, "imatrix.chunk_count", (uint32_t)(max_all / im->p.chunk_size));
	rc = rc ? rc : gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t)im->p.chunk_size);
	n_counts = 0;
	for (int32_t i = 0; !rc && i < n; i++) {
		const int n_dims = v[i]->n_mat > 1 ? 2 : 1; /* as ggml drops a trailing 1 */
		const int64_t ne_sums[2] = { v[i]->n_in, v[i]->n_mat }, ne_counts[2] = { 1, v[i]->n_mat };
		float *c = counts + n_counts; /* the writer keeps the pointer until it writes */
		for (int32_t x = 0; x < v[i]->n_mat; x++)
			c[x] = (float)v[i]->counts[x];
		n_counts += (size_t)v[i]->n_mat;
		if ((size_t)snprintf(name, sizeof name, "%s.in_sum2", v[i]->name) >= sizeof name) {
			rc = err_set(err, HEARTH_EINVAL, "%s: weight name '%s' is too long", path, v[i]->name);
			goto out;
		}
		rc = gguf_writer_add_tensor(w, name, HEARTH_TYPE_F32, n_dims, ne_sums, v[i]->sums);
		snprintf(name, sizeof name, "%s.counts", v[i]->name);
		rc = rc ? rc : gguf_writer_add_tensor(w, name, HEARTH_TYPE_F32, n_dims, ne_counts, c);
	}
	if (rc) {
		rc = err_set(err, rc, "%s: out of memory while building the file", path);
		goto out;
	}
	rc = gguf_writer_write(w, path, err);
out:
	gguf_writer_free(w);
	free(counts);
	free(v);
	return rc;
}

/* The legacy format's body to f. */
static bool write_dat_body(FILE *f, const struct imatrix_entry *const *v, int32_t n, int64_t max_all,
			   int32_t chunk_size, const char *dataset)
{
	bool ok = fwrite(&n, 4, 1, f) == 1;
	for (int32_t i = 0; ok && i < n; i++) {
		const int32_t len = (int32_t)strlen(v[i]->name), nval = (int32_t)(v[i]->n_in * v[i]->n_mat);
		const int32_t ncall = (int32_t)((max_count(v[i]) + chunk_size - 1) / chunk_size);
		ok = fwrite(&len, 4, 1, f) == 1 && fwrite(v[i]->name, 1, (size_t)len, f) == (size_t)len &&
		     fwrite(&ncall, 4, 1, f) == 1 && fwrite(&nval, 4, 1, f) == 1;
		for (int32_t j = 0; ok && j < nval; j++) {
			const int64_t c = v[i]->counts[j / v[i]->n_in];
			const float x = (c ? v[i]->sums[j] / (float)c : 1.0f) * (float)ncall;
			ok = fwrite(&x, 4, 1, f) == 1;
		}
	}
	const int32_t chunks = (int32_t)(max_all / chunk_size), dlen = dataset ? (int32_t)strlen(dataset) : 0;
	return ok && fwrite(&chunks, 4, 1, f) == 1 && fwrite(&dlen, 4, 1, f) == 1 &&
	       fwrite(dataset ? dataset : "", 1, (size_t)dlen, f) == (size_t)dlen;
}

static int write_dat(const struct hearth_imatrix *im, const char *path, const char *dataset, struct hearth_err *err)
{
	const struct imatrix_entry **v = NULL;
	int32_t n = 0;
	int64_t max_all;
	FILE *f;
	if (sorted_entries(im, &v, &n, &max_all))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	if (!(f = fopen(path, "wb"))) {
		free(v);
		return err_set(err, HEARTH_EIO, "%s: cannot create: %s", path, strerror(errno));
	}
	bool ok = write_dat_body(f, v, n, max_all, im->p.chunk_size, dataset);
	ok = !fclose(f) && ok;
	free(v);
	return ok ? 0 : err_set(err, HEARTH_EIO, "%s: cannot write: %s", path, strerror(errno));
}

int hearth_imatrix_write(const struct hearth_imatrix *im, const char *path, int format,
			 const char *const *datasets, size_t n_datasets, struct hearth_err *err)
{
	if (format != HEARTH_IMATRIX_GGUF && format != HEARTH_IMATRIX_DAT)
		return err_set(err, HEARTH_EINVAL, "%s: unknown imatrix format %d", path, format);
	for (size_t i = 0; i < n_datasets; i++)
		if (strlen(datasets[i]) > INT32_MAX / 2)
			return err_set(err, HEARTH_EINVAL, "%s: dataset name %zu is too long", path, i);
	const size_t tmp_len = strlen(path) + 32;
	char *tmp = malloc(tmp_len);
	if (!tmp)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	snprintf(tmp, tmp_len, "%s.tmp-%ld", path, (long)getpid());
	int rc = format == HEARTH_IMATRIX_GGUF ? write_gguf(im, tmp, datasets, n_datasets, err)
					       : write_dat(im, tmp, n_datasets ? datasets[n_datasets - 1] : NULL, err);
	if (!rc && rename(tmp, path))
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}
