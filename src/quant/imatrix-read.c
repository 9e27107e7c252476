/* imatrix-read.c - see imatrix-read.h. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../gguf/gguf.h"
#include "imatrix-read.h"

#define IMATRIX_MAX_COUNT 9007199254740992.0 /* 2^53: counts are integers held in f32 */

void imatrix_read_free(struct imatrix_data *im)
{
	if (!im)
		return;
	for (int64_t i = 0; i < im->n_entries; i++) {
		free(im->entries[i].name);
		free(im->entries[i].values);
	}
	free(im->entries);
	strmap_free(&im->index);
	free(im->dataset);
	free(im);
}

const struct imatrix_entry *imatrix_read_find(const struct imatrix_data *im, const char *name)
{
	const int32_t i = im && im->n_entries ? strmap_get(&im->index, name, strlen(name)) : -1;
	return i >= 0 ? &im->entries[i] : NULL;
}

/* A new entry `name` (len bytes) of n values, or the existing one of that
 * name with its values replaced (a later entry wins, as in llama.cpp). */
static struct imatrix_entry *entry_add(struct imatrix_data *im, const char *name, size_t len, int64_t n)
{
	int32_t i = strmap_get(&im->index, name, len);
	struct imatrix_entry *e;
	if (i >= 0) {
		e = &im->entries[i];
		free(e->values);
		e->values = NULL;
	} else {
		e = &im->entries[im->n_entries];
		if (!(e->name = malloc(len + 1)))
			return NULL;
		memcpy(e->name, name, len);
		e->name[len] = 0;
		if (strmap_put(&im->index, e->name, len, (int32_t)im->n_entries) < 0) {
			free(e->name);
			e->name = NULL;
			return NULL;
		}
		im->n_entries++;
	}
	e->n = n;
	e->values = malloc((size_t)n * sizeof *e->values);
	return e->values ? e : NULL;
}

static int check_finite(const struct imatrix_entry *e, const char *path, struct hearth_err *err)
{
	for (int64_t i = 0; i < e->n; i++)
		if (!isfinite(e->values[i]))
			return err_set(err, HEARTH_EINVAL, "%s: entry '%s' has a non-finite value at %" PRId64, path,
				       e->name, i);
	return 0;
}

/* ---- legacy .dat ---------------------------------------------------------- */

struct cur {
	const uint8_t *p;
	size_t left;
};

static bool rd_i32(struct cur *c, int32_t *v)
{
	if (c->left < 4)
		return false;
	memcpy(v, c->p, 4);
	c->p += 4;
	c->left -= 4;
	return true;
}

/* One entry: name, ncall, nval, values (divided by ncall when it is positive). */
static int legacy_entry(struct imatrix_data *im, struct cur *c, int32_t k, const char *path, struct hearth_err *err)
{
	int32_t len, ncall, nval;
	if (!rd_i32(c, &len) || len < 0 || (size_t)len > c->left)
		return err_set(err, HEARTH_EINVAL, "%s: entry %d: name length runs past the end of the file", path, k);
	const char *name = (const char *)c->p;
	const size_t name_len = strnlen(name, (size_t)len); /* llama.cpp stops at a NUL too */
	c->p += len;
	c->left -= (size_t)len;
	if (!rd_i32(c, &ncall) || !rd_i32(c, &nval))
		return err_set(err, HEARTH_EINVAL, "%s: entry %d ('%.*s') is truncated", path, k, (int)name_len, name);
	if (nval < 1 || (size_t)nval > c->left / 4)
		return err_set(err, HEARTH_EINVAL, "%s: entry %d ('%.*s') claims %d values, the file has room for %zu",
			       path, k, (int)name_len, name, nval, c->left / 4);
	struct imatrix_entry *e = entry_add(im, name, name_len, nval);
	if (!e)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	memcpy(e->values, c->p, (size_t)nval * 4);
	c->p += (size_t)nval * 4;
	c->left -= (size_t)nval * 4;
	if (ncall > 0)
		for (int32_t i = 0; i < nval; i++)
			e->values[i] = e->values[i] / (float)ncall;
	return check_finite(e, path, err);
}

static int read_legacy(struct imatrix_data *im, const uint8_t *buf, size_t size, const char *path,
		       struct hearth_err *err)
{
	struct cur c = { buf, size };
	int32_t n_entries, rc;
	if (!rd_i32(&c, &n_entries) || n_entries < 1)
		return err_set(err, HEARTH_EINVAL, "%s: not an imatrix file (no entries)", path);
	if ((size_t)n_entries > c.left / 16) /* an entry takes at least 16 bytes */
		return err_set(err, HEARTH_EINVAL, "%s: claims %d entries, the file has room for %zu", path, n_entries,
			       c.left / 16);
	if (!(im->entries = calloc((size_t)n_entries, sizeof *im->entries)) ||
	    strmap_init(&im->index, (size_t)n_entries))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	for (int32_t k = 0; k < n_entries; k++)
		if ((rc = legacy_entry(im, &c, k, path, err)))
			return rc;
	/* optional trailer: chunk count, then a dataset name */
	int32_t n_chunks, len;
	if (rd_i32(&c, &n_chunks)) {
		im->chunk_count = n_chunks;
		if (rd_i32(&c, &len) && len > 0 && (size_t)len <= c.left) {
			if (!(im->dataset = malloc((size_t)len + 1)))
				return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			memcpy(im->dataset, c.p, (size_t)len);
			im->dataset[len] = 0;
		}
	}
	im->legacy = true;
	return 0;
}

/* ---- GGUF ----------------------------------------------------------------- */

/* The length of name without suffix, or 0 when name does not end with it. */
static size_t strip(const char *name, const char *suffix)
{
	const size_t n = strlen(name), ns = strlen(suffix);
	return n > ns && !strcmp(name + n - ns, suffix) ? n - ns : 0;
}

static int64_t n_elements(const struct gguf_tensor *t)
{
	return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* the reader bounded each tensor by the file */
}

/* Entry from the pair sums / counts: sums[j*ne0 + i] / round(counts[j]), 1 where the count is 0. */
static int gguf_entry(struct imatrix_data *im, const char *name, size_t len, const struct gguf_tensor *sums,
		      const struct gguf_tensor *counts, const char *path, struct hearth_err *err)
{
	const int64_t nval = n_elements(sums), ncounts = n_elements(counts);
	if (sums->type != HEARTH_TYPE_F32 || counts->type != HEARTH_TYPE_F32)
		return err_set(err, HEARTH_EINVAL, "%s: '%.*s': sums and counts must be f32 (they are %s and %s)", path,
			       (int)len, name, hearth_type_name(sums->type), hearth_type_name(counts->type));
	if (ncounts < 1 || nval < 1 || nval % ncounts)
		return err_set(err, HEARTH_EINVAL, "%s: '%.*s': %" PRId64 " sums do not split into %" PRId64
			       " counts", path, (int)len, name, nval, ncounts);
	const int64_t ne0 = nval / ncounts;
	const float *s = sums->data, *cnt = counts->data;
	struct imatrix_entry *e = entry_add(im, name, len, nval);
	if (!e)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	for (int64_t j = 0; j < ncounts; j++) {
		float c;
		memcpy(&c, cnt + j, sizeof c);
		if (!(c >= 0 && c <= IMATRIX_MAX_COUNT))
			return err_set(err, HEARTH_EINVAL, "%s: '%s': count %" PRId64 " is %g", path, e->name, j, (double)c);
		const float count = (float)llroundf(c);
		for (int64_t i = 0; i < ne0; i++) {
			float v;
			memcpy(&v, s + j * ne0 + i, sizeof v);
			e->values[j * ne0 + i] = count > 0.0f ? v / count : 1;
		}
	}
	return check_finite(e, path, err);
}

static int read_gguf(struct imatrix_data *im, const char *path, struct hearth_err *err)
{
	static const char *const keys[] = { "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size" };
	struct hearth_gguf *g = NULL;
	const struct gguf_kv *ds;
	int64_t v;
	int rc = hearth_gguf_open(&g, path, err);
	if (rc)
		return rc;
	for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !rc; k++)
		if (gguf_find_key(g, keys[k]) < 0)
			rc = err_set(err, HEARTH_EINVAL, "%s: not an imatrix file (no key %s)", path, keys[k]);
	if (!rc && g->n_tensors < 1)
		rc = err_set(err, HEARTH_EINVAL, "%s: the imatrix has no data", path);
	if (!rc && !gguf_get_arr(g, "imatrix.datasets", HEARTH_GGUF_STRING, &ds, NULL) && ds->arr_n > 0) {
		const struct gguf_str *str = ds->arr;
		if (!(im->dataset = strndup(str[0].p, (size_t)str[0].n)))
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	}
	if (!rc && !gguf_get_i64(g, "imatrix.chunk_count", &v, NULL) && v > 0 && v <= INT32_MAX)
		im->chunk_count = (int32_t)v;
	if (!rc && (!(im->entries = calloc((size_t)g->n_tensors, sizeof *im->entries)) ||
		    strmap_init(&im->index, (size_t)g->n_tensors)))
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	/* every "W.in_sum2" with its "W.counts", and no counts without sums */
	for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
		const char *name = g->tensors[i].name;
		size_t len = strip(name, ".in_sum2");
		char other[512];
		if (len && len < sizeof other - 8) {
			snprintf(other, sizeof other, "%.*s.counts", (int)len, name);
			const int64_t ic = gguf_find_tensor(g, other);
			rc = ic < 0 ? err_set(err, HEARTH_EINVAL, "%s: '%.*s' has sums but no counts", path, (int)len, name)
				    : gguf_entry(im, name, len, &g->tensors[i], &g->tensors[ic], path, err);
		} else if ((len = strip(name, ".counts")) && len < sizeof other - 8) {
			snprintf(other, sizeof other, "%.*s.in_sum2", (int)len, name);
			if (gguf_find_tensor(g, other) < 0)
				rc = err_set(err, HEARTH_EINVAL, "%s: '%.*s' has counts but no sums", path, (int)len, name);
		}
	}
	hearth_gguf_close(g);
	return rc;
}

/* ---- front door ---------------------------------------------------------- */

/* The whole file in memory (imatrix files are small: a few floats per column). */
static int slurp(const char *path, uint8_t **out, size_t *size, struct hearth_err *err)
{
	FILE *f = fopen(path, "rb");
	long n;
	if (!f)
		return err_set(err, HEARTH_EIO, "%s: cannot open the imatrix file", path);
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return err_set(err, HEARTH_EIO, "%s: cannot read the imatrix file", path);
	}
	if (!(*out = malloc(n ? (size_t)n : 1))) {
		fclose(f);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory for the imatrix file (%ld bytes)", path, n);
	}
	if (fread(*out, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(*out);
		*out = NULL;
		return err_set(err, HEARTH_EIO, "%s: cannot read the imatrix file", path);
	}
	fclose(f);
	*size = (size_t)n;
	return 0;
}

int imatrix_read(struct imatrix_data **out, const char *path, struct hearth_err *err)
{
	struct imatrix_data *im = calloc(1, sizeof *im);
	uint8_t *buf = NULL;
	size_t size = 0;
	int rc;
	*out = NULL;
	if (!im)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	if ((rc = slurp(path, &buf, &size, err)))
		goto out;
	if (size >= 4 && !memcmp(buf, "GGUF", 4)) {
		free(buf); /* the GGUF reader maps the file itself */
		buf = NULL;
		rc = read_gguf(im, path, err);
	} else {
		rc = read_legacy(im, buf, size, path, err);
	}
out:
	free(buf);
	if (rc) {
		imatrix_read_free(im);
		return rc;
	}
	*out = im;
	return 0;
}
