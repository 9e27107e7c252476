/*
 * gguf.c - bounded GGUF reader over a read-only mmap.
 *
 * Byte layout (all integers little-endian):
 *
 *   u32 magic "GGUF" | u32 version (2, 3) | u64 n_tensors | u64 n_kv
 *   n_kv x  { str key | u32 vtype | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32)
 *   data section: tensor bytes at data_start + offset (offset % alignment == 0)
 *
 *   str   = u64 length | bytes (no NUL)
 *   value = scalar of vtype | str | array: u32 elem_type, u64 n, n elements
 *
 * Every count, length, dimension, size and offset read from the file is
 * checked against what is left of the file before it is used, and every
 * size computation is overflow-checked: a malformed file yields one error
 * naming the file and the problem, never a read outside the mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/strmap.h"
#include "../tensor/qtype.h"
#include "gguf.h"

/* A cursor owns the bounds so checks cannot be forgotten. */
struct rd {
	const uint8_t *p;
	size_t pos, size;
	const char *path;
	struct hearth_err *err;
};

static size_t rd_left(const struct rd *r) { return r->size - r->pos; }

static int rd_bytes(struct rd *r, void *dst, size_t n, const char *what)
{
	if (n > rd_left(r))
		return err_set(r->err, HEARTH_EBADGGUF, "%s: file ends inside %s (offset %zu)", r->path, what, r->pos);
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what) { return rd_bytes(r, v, 4, what); }
static int rd_u64(struct rd *r, uint64_t *v, const char *what) { return rd_bytes(r, v, 8, what); }

static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
	int rc = rd_u64(r, &s->n, what);
	if (rc)
		return rc;
	if (s->n > rd_left(r))
		return err_set(r->err, HEARTH_EBADGGUF, "%s: %s length %" PRIu64 " exceeds the rest of the file", r->path,
			       what, s->n);
	s->p = (const char *)r->p + r->pos;
	r->pos += s->n;
	return 0;
}

static char *str_dup(struct gguf_str s)
{
	char *d = malloc(s.n + 1);
	if (d) {
		memcpy(d, s.p, s.n);
		d[s.n] = 0;
	}
	return d;
}

/* Size in the file of one scalar of vtype, 0 for string/array/unknown. */
static size_t vtype_size(int t)
{
	switch (t) {
	case HEARTH_GGUF_U8: case HEARTH_GGUF_I8: case HEARTH_GGUF_BOOL: return 1;
	case HEARTH_GGUF_U16: case HEARTH_GGUF_I16: return 2;
	case HEARTH_GGUF_U32: case HEARTH_GGUF_I32: case HEARTH_GGUF_F32: return 4;
	case HEARTH_GGUF_U64: case HEARTH_GGUF_I64: case HEARTH_GGUF_F64: return 8;
	}
	return 0;
}

static const char *vtype_name(int t)
{
	static const char *names[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32",
				       "bool", "string", "array", "u64", "i64", "f64" };
	return t >= 0 && t <= HEARTH_GGUF_F64 ? names[t] : "?";
}

/* Decodes one scalar from raw little-endian bytes into kv->v. */
static void scalar_decode(struct gguf_kv *kv, const uint8_t *b)
{
	switch (kv->type) {
	case HEARTH_GGUF_U8: kv->v.u = b[0]; break;
	case HEARTH_GGUF_I8: kv->v.i = (int8_t)b[0]; break;
	case HEARTH_GGUF_BOOL: kv->v.b = b[0] != 0; break;
	case HEARTH_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
	case HEARTH_GGUF_I16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
	case HEARTH_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
	case HEARTH_GGUF_I32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
	case HEARTH_GGUF_F32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
	case HEARTH_GGUF_U64: memcpy(&kv->v.u, b, 8); break;
	case HEARTH_GGUF_I64: memcpy(&kv->v.i, b, 8); break;
	case HEARTH_GGUF_F64: memcpy(&kv->v.f, b, 8); break;
	}
}

static int read_value(struct rd *r, struct gguf_kv *kv)
{
	uint8_t b[8];
	size_t sz;
	int rc;

	if (kv->type == HEARTH_GGUF_STRING)
		return rd_str(r, &kv->str, "a string value");
	if (kv->type != HEARTH_GGUF_ARRAY) {
		sz = vtype_size(kv->type);
		if (!sz)
			return err_set(r->err, HEARTH_EBADGGUF, "%s: key '%s' has unknown value type %d", r->path,
				       kv->key, kv->type);
		if ((rc = rd_bytes(r, b, sz, "a metadata value")))
			return rc;
		scalar_decode(kv, b);
		return 0;
	}

	uint32_t at;
	if ((rc = rd_u32(r, &at, "an array type")) || (rc = rd_u64(r, &kv->arr_n, "an array length")))
		return rc;
	kv->arr_type = (int)at;
	if (at == HEARTH_GGUF_ARRAY)
		return err_set(r->err, HEARTH_EBADGGUF, "%s: key '%s' is an array of arrays (not supported)", r->path,
			       kv->key);
	if (at == HEARTH_GGUF_STRING) {
		/* each element takes at least its 8-byte length */
		if (kv->arr_n > rd_left(r) / 8)
			return err_set(r->err, HEARTH_EBADGGUF, "%s: key '%s' claims %" PRIu64
				       " strings, more than the file can hold", r->path, kv->key, kv->arr_n);
		struct gguf_str *s = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *s);
		if (!s)
			return err_set(r->err, HEARTH_ENOMEM, "%s: out of memory for key '%s'", r->path, kv->key);
		kv->arr = s;
		for (uint64_t i = 0; i < kv->arr_n; i++)
			if ((rc = rd_str(r, &s[i], "a string array element")))
				return rc;
		return 0;
	}
	sz = vtype_size(kv->arr_type);
	if (!sz)
		return err_set(r->err, HEARTH_EBADGGUF, "%s: key '%s' is an array of unknown type %d", r->path, kv->key,
			       kv->arr_type);
	if (kv->arr_n > rd_left(r) / sz)
		return err_set(r->err, HEARTH_EBADGGUF, "%s: key '%s' array of %" PRIu64 " elements exceeds the file",
			       r->path, kv->key, kv->arr_n);
	kv->arr = malloc(kv->arr_n ? kv->arr_n * sz : 1);
	if (!kv->arr)
		return err_set(r->err, HEARTH_ENOMEM, "%s: out of memory for key '%s'", r->path, kv->key);
	return rd_bytes(r, kv->arr, kv->arr_n * sz, "an array");
}

static int read_kvs(struct rd *r, struct hearth_gguf *g, uint64_t n_kv)
{
	struct strmap *seen = &g->kv_index;
	int rc;

	/* a key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes */
	if (n_kv > rd_left(r) / 13)
		return err_set(r->err, HEARTH_EBADGGUF, "%s: header claims %" PRIu64 " metadata keys, more than the file can hold",
			       r->path, n_kv);
	g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
	if (!g->kv || strmap_init(seen, n_kv))
		return err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
	for (uint64_t i = 0; i < n_kv; i++) {
		struct gguf_kv *kv = &g->kv[i];
		struct gguf_str key;
		uint32_t t;
		if ((rc = rd_str(r, &key, "a metadata key")))
			return rc;
		if (!(kv->key = str_dup(key))) {
			rc = err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
			return rc;
		}
		g->n_kv = (int64_t)i + 1;
		if (strlen(kv->key) != key.n) {
			rc = err_set(r->err, HEARTH_EBADGGUF, "%s: metadata key %" PRIu64 " contains a NUL byte", r->path, i);
			return rc;
		}
		if ((rc = strmap_put(seen, kv->key, key.n, (int32_t)i))) {
			if (rc == 1)
				rc = err_set(r->err, HEARTH_EBADGGUF, "%s: duplicate metadata key '%s'", r->path, kv->key);
			else
				rc = err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
			return rc;
		}
		if ((rc = rd_u32(r, &t, "a metadata type")))
			return rc;
		kv->type = (int)t;
		kv->arr_type = -1;
		if ((rc = read_value(r, kv)))
			return rc;
	}
	return 0;
}

static int read_tensor_infos(struct rd *r, struct hearth_gguf *g, uint64_t n_tensors)
{
	struct strmap *seen = &g->tensor_index;
	int rc;

	/* minimum: name length 8 + n_dims 4 + one dim 8 + type 4 + offset 8 */
	if (n_tensors > rd_left(r) / 32)
		return err_set(r->err, HEARTH_EBADGGUF, "%s: header claims %" PRIu64 " tensors, more than the file can hold",
			       r->path, n_tensors);
	g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
	if (!g->tensors || strmap_init(seen, n_tensors))
		return err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
	for (uint64_t i = 0; i < n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		struct gguf_str name;
		uint32_t n_dims, type;
		if ((rc = rd_str(r, &name, "a tensor name")))
			return rc;
		if (!(t->name = str_dup(name))) {
			rc = err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
			return rc;
		}
		g->n_tensors = (int64_t)i + 1;
		if (strlen(t->name) != name.n || name.n == 0) {
			rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor %" PRIu64 " has an empty name or a NUL in it",
				     r->path, i);
			return rc;
		}
		if ((rc = strmap_put(seen, t->name, name.n, (int32_t)i))) {
			if (rc == 1)
				rc = err_set(r->err, HEARTH_EBADGGUF, "%s: duplicate tensor name '%s'", r->path, t->name);
			else
				rc = err_set(r->err, HEARTH_ENOMEM, "%s: out of memory", r->path);
			return rc;
		}
		if ((rc = rd_u32(r, &n_dims, "a tensor's dimension count")))
			return rc;
		if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
			rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor '%s' has %u dimensions (1 to %d allowed)",
				     r->path, t->name, n_dims, GGUF_MAX_DIMS);
			return rc;
		}
		t->n_dims = (int)n_dims;
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			t->ne[d] = 1;
		for (uint32_t d = 0; d < n_dims; d++) {
			uint64_t ne;
			if ((rc = rd_u64(r, &ne, "a tensor dimension")))
				return rc;
			if (ne > INT64_MAX / 2) {
				rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor '%s' dimension %u is absurd (%" PRIu64 ")",
					     r->path, t->name, d, ne);
				return rc;
			}
			t->ne[d] = (int64_t)ne;
		}
		if ((rc = rd_u32(r, &type, "a tensor type")) || (rc = rd_u64(r, &t->offset, "a tensor offset")))
			return rc;
		t->type = (int)type;
		const struct qtype_info *q = qtype_info(t->type);
		if (!q || q->internal) {
			rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor '%s' has unknown or unsupported type %u",
				     r->path, t->name, type);
			return rc;
		}
		if (t->ne[0] % q->blck_size) {
			rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor '%s' row of %" PRId64
				     " elements is not a multiple of the %s block size %d",
				     r->path, t->name, t->ne[0], q->name, q->blck_size);
			return rc;
		}
		/* nbytes = row_size * ne1 * ne2 * ne3, overflow-checked */
		uint64_t nb = (uint64_t)(t->ne[0] / q->blck_size) * q->type_size;
		if (t->ne[0] && nb / q->type_size != (uint64_t)(t->ne[0] / q->blck_size))
			goto overflow;
		for (int d = 1; d < GGUF_MAX_DIMS; d++) {
			if (t->ne[d] && nb > UINT64_MAX / (uint64_t)t->ne[d])
				goto overflow;
			nb *= (uint64_t)t->ne[d];
		}
		t->nbytes = nb;
		continue;
overflow:
		rc = err_set(r->err, HEARTH_EBADGGUF, "%s: tensor '%s' size overflows", r->path, t->name);
		return rc;
	}
	return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a, *y = *(const struct gguf_tensor *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places tensors in the data section: aligned, inside the file, not overlapping. */
static int place_tensors(struct hearth_gguf *g, struct hearth_err *err)
{
	uint64_t data_size = g->size - g->data_offset;
	struct gguf_tensor **by_off;

	for (int64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		if (t->offset % g->alignment)
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
				       g->path, t->name, t->offset, g->alignment);
		if (t->offset > data_size || t->nbytes > data_size - t->offset)
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' ends past the end of the file (%" PRIu64 " + %" PRIu64 " > %" PRIu64 ")",
				       g->path, t->name, g->data_offset + t->offset, t->nbytes, (uint64_t)g->size);
		t->data = g->map + g->data_offset + t->offset;
	}
	if (g->n_tensors < 2)
		return 0;
	by_off = malloc((size_t)g->n_tensors * sizeof *by_off);
	if (!by_off)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", g->path);
	for (int64_t i = 0; i < g->n_tensors; i++)
		by_off[i] = &g->tensors[i];
	qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_by_offset);
	for (int64_t i = 1; i < g->n_tensors; i++) {
		const struct gguf_tensor *a = by_off[i - 1], *b = by_off[i];
		if (a->offset + a->nbytes > b->offset) {
			int rc = err_set(err, HEARTH_EBADGGUF, "%s: tensors '%s' and '%s' overlap", g->path, a->name, b->name);
			free(by_off);
			return rc;
		}
	}
	free(by_off);
	return 0;
}

static int parse(struct hearth_gguf *g, struct hearth_err *err)
{
	struct rd r = { .p = g->map, .size = g->size, .path = g->path, .err = err };
	uint32_t magic;
	uint64_t n_tensors, n_kv;
	int rc;

	if (g->size < 4 || (memcpy(&magic, g->map, 4), magic != GGUF_MAGIC))
		return err_set(err, HEARTH_EBADGGUF, "%s: not a GGUF file (bad magic)", g->path);
	r.pos = 4;
	if ((rc = rd_u32(&r, &g->version, "the header")))
		return rc;
	if (g->version != 2 && g->version != 3)
		return err_set(err, HEARTH_EBADGGUF, "%s: GGUF version %u is not supported (2 and 3 are)", g->path,
			       g->version);
	if ((rc = rd_u64(&r, &n_tensors, "the header")) || (rc = rd_u64(&r, &n_kv, "the header")))
		return rc;
	if ((rc = read_kvs(&r, g, n_kv)) || (rc = read_tensor_infos(&r, g, n_tensors)))
		return rc;

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	int64_t ia = gguf_find_key(g, "general.alignment");
	if (ia >= 0) {
		const struct gguf_kv *kv = &g->kv[ia];
		if (kv->type != HEARTH_GGUF_U32 || kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
			return err_set(err, HEARTH_EBADGGUF, "%s: general.alignment must be a power-of-two u32", g->path);
		g->alignment = kv->v.u;
	}
	uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
	if (g->n_tensors > 0 && pad > rd_left(&r))
		return err_set(err, HEARTH_EBADGGUF, "%s: file ends before the tensor data section", g->path);
	g->data_offset = r.pos + (pad <= rd_left(&r) ? pad : rd_left(&r));
	return place_tensors(g, err);
}

int hearth_gguf_open(struct hearth_gguf **out, const char *path, struct hearth_err *err)
{
	struct hearth_gguf *g;
	struct stat st;
	int fd, rc;

	*out = NULL;
	g = calloc(1, sizeof *g);
	if (!g || !(g->path = strdup(path))) {
		free(g);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	}
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot open: %s", path, strerror(errno));
		goto out_free;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = err_set(err, HEARTH_EIO, "%s: not a regular file", path);
		goto out_close;
	}
	g->size = (size_t)st.st_size;
	if (g->size == 0) {
		rc = err_set(err, HEARTH_EBADGGUF, "%s: empty file", path);
		goto out_close;
	}
	void *map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		const int e = errno; /* ENOMEM: out of address space or mappings, not an I/O error */
		rc = err_set(err, e == ENOMEM ? HEARTH_ENOMEM : HEARTH_EIO, "%s: cannot map: %s", path, strerror(e));
		goto out_close;
	}
	g->map = map;
	close(fd);
	if ((rc = parse(g, err)))
		goto out_free;
	*out = g;
	return 0;
out_close:
	close(fd);
out_free:
	hearth_gguf_close(g);
	return rc;
}

void hearth_gguf_close(struct hearth_gguf *g)
{
	if (!g)
		return;
	for (int64_t i = 0; i < g->n_kv; i++) {
		free(g->kv[i].key);
		free(g->kv[i].arr);
	}
	free(g->kv);
	for (int64_t i = 0; i < g->n_tensors; i++)
		free(g->tensors[i].name);
	free(g->tensors);
	strmap_free(&g->kv_index);
	strmap_free(&g->tensor_index);
	if (g->map)
		munmap((void *)g->map, g->size);
	free(g->path);
	free(g);
}

int64_t gguf_find_key(const struct hearth_gguf *g, const char *key)
{
	return strmap_get(&g->kv_index, key, strlen(key));
}

int64_t gguf_find_tensor(const struct hearth_gguf *g, const char *name)
{
	return strmap_get(&g->tensor_index, name, strlen(name));
}

static bool vtype_is_int(int t)
{
	return t == HEARTH_GGUF_U8 || t == HEARTH_GGUF_I8 || t == HEARTH_GGUF_U16 || t == HEARTH_GGUF_I16 ||
	       t == HEARTH_GGUF_U32 || t == HEARTH_GGUF_I32 || t == HEARTH_GGUF_U64 || t == HEARTH_GGUF_I64;
}

static bool vtype_is_signed(int t)
{
	return t == HEARTH_GGUF_I8 || t == HEARTH_GGUF_I16 || t == HEARTH_GGUF_I32 || t == HEARTH_GGUF_I64;
}

static const struct gguf_kv *lookup(const struct hearth_gguf *g, const char *key)
{
	int64_t i = gguf_find_key(g, key);
	return i < 0 ? NULL : &g->kv[i];
}

static int wrong_type(const struct hearth_gguf *g, const struct gguf_kv *kv, const char *want, struct hearth_err *err)
{
	return err_set(err, HEARTH_EBADGGUF, "%s: key '%s' is %s, expected %s", g->path, kv->key, vtype_name(kv->type),
		       want);
}

int gguf_get_i64(const struct hearth_gguf *g, const char *key, int64_t *out, struct hearth_err *err)
{
	const struct gguf_kv *kv = lookup(g, key);
	if (!kv)
		return HEARTH_ENOTFOUND;
	if (!vtype_is_int(kv->type))
		return wrong_type(g, kv, "an integer", err);
	if (!vtype_is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX)
		return err_set(err, HEARTH_EBADGGUF, "%s: key '%s' value is out of range", g->path, key);
	*out = vtype_is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
	return 0;
}

int gguf_get_f32(const struct hearth_gguf *g, const char *key, float *out, struct hearth_err *err)
{
	const struct gguf_kv *kv = lookup(g, key);
	if (!kv)
		return HEARTH_ENOTFOUND;
	if (kv->type == HEARTH_GGUF_F32 || kv->type == HEARTH_GGUF_F64)
		*out = (float)kv->v.f;
	else if (vtype_is_int(kv->type))
		*out = vtype_is_signed(kv->type) ? (float)kv->v.i : (float)kv->v.u;
	else
		return wrong_type(g, kv, "a number", err);
	return 0;
}

int gguf_get_bool(const struct hearth_gguf *g, const char *key, bool *out, struct hearth_err *err)
{
	const struct gguf_kv *kv = lookup(g, key);
	if (!kv)
		return HEARTH_ENOTFOUND;
	if (kv->type != HEARTH_GGUF_BOOL)
		return wrong_type(g, kv, "bool", err);
	*out = kv->v.b;
	return 0;
}

int gguf_get_str(const struct hearth_gguf *g, const char *key, struct gguf_str *out, struct hearth_err *err)
{
	const struct gguf_kv *kv = lookup(g, key);
	if (!kv)
		return HEARTH_ENOTFOUND;
	if (kv->type != HEARTH_GGUF_STRING)
		return wrong_type(g, kv, "string", err);
	*out = kv->str;
	return 0;
}

int gguf_get_arr(const struct hearth_gguf *g, const char *key, int elem_type, const struct gguf_kv **out,
		 struct hearth_err *err)
{
	const struct gguf_kv *kv = lookup(g, key);
	if (!kv)
		return HEARTH_ENOTFOUND;
	if (kv->type != HEARTH_GGUF_ARRAY || kv->arr_type != elem_type)
		return err_set(err, HEARTH_EBADGGUF, "%s: key '%s' is not an array of %s", g->path, key,
			       vtype_name(elem_type));
	*out = kv;
	return 0;
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i)
{
	const uint8_t *b = (const uint8_t *)kv->arr + i * vtype_size(kv->arr_type);
	struct gguf_kv tmp = { .type = kv->arr_type };
	scalar_decode(&tmp, b);
	return vtype_is_signed(kv->arr_type) ? tmp.v.i : (int64_t)tmp.v.u;
}

double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i)
{
	const uint8_t *b = (const uint8_t *)kv->arr + i * vtype_size(kv->arr_type);
	struct gguf_kv tmp = { .type = kv->arr_type };
	scalar_decode(&tmp, b);
	if (kv->arr_type == HEARTH_GGUF_F32 || kv->arr_type == HEARTH_GGUF_F64)
		return tmp.v.f;
	if (kv->arr_type == HEARTH_GGUF_BOOL)
		return tmp.v.b;
	return vtype_is_signed(kv->arr_type) ? (double)tmp.v.i : (double)tmp.v.u;
}

/* ---- public inspection view ---------------------------------------------- */

uint32_t hearth_gguf_version(const struct hearth_gguf *g) { return g->version; }
int64_t hearth_gguf_n_kv(const struct hearth_gguf *g) { return g->n_kv; }
const char *hearth_gguf_key(const struct hearth_gguf *g, int64_t i) { return g->kv[i].key; }
int hearth_gguf_kv_type(const struct hearth_gguf *g, int64_t i) { return g->kv[i].type; }
int hearth_gguf_arr_type(const struct hearth_gguf *g, int64_t i) { return g->kv[i].arr_type; }
uint64_t hearth_gguf_arr_n(const struct hearth_gguf *g, int64_t i) { return g->kv[i].arr_n; }
int64_t hearth_gguf_n_tensors(const struct hearth_gguf *g) { return g->n_tensors; }

void hearth_gguf_tensor(const struct hearth_gguf *g, int64_t i, struct hearth_tensor_info *info)
{
	const struct gguf_tensor *t = &g->tensors[i];
	info->name = t->name;
	info->type = t->type;
	info->n_dims = t->n_dims;
	for (int d = 0; d < 4; d++)
		info->ne[d] = t->ne[d];
	info->offset = g->data_offset + t->offset;
	info->nbytes = t->nbytes;
}

/* Appends to buf (bounded); *len counts what was needed. */
static void put(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
	if (*len < size)
		memcpy(buf + *len, s, *len + n < size ? n : size - *len);
	*len += n;
}

/* A JSON string: quotes and backslashes escaped, control characters as \\u00XX,
 * and each byte that is not part of valid UTF-8 as \\ufffd (JSON text is UTF-8). */
static void put_json_str(char *buf, size_t size, size_t *len, const char *s, uint64_t n)
{
	char tmp[8];
	size_t k;
	put(buf, size, len, "\"", 1);
	for (uint64_t i = 0; i < n; i += k) {
		unsigned char c = (unsigned char)s[i];
		k = 1;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			put(buf, size, len, tmp, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\u%04x", c);
			put(buf, size, len, tmp, 6);
		} else if ((k = hearth_utf8_valid(s + i, n - i)) > 0) {
			put(buf, size, len, s + i, k);
		} else {
			put(buf, size, len, "\\ufffd", 6);
			k = 1;
		}
	}
	put(buf, size, len, "\"", 1);
}

static void put_scalar(char *buf, size_t size, size_t *len, const struct gguf_kv *kv)
{
	char tmp[64];
	int n;
	if (kv->type == HEARTH_GGUF_BOOL)
		n = snprintf(tmp, sizeof tmp, "%s", kv->v.b ? "true" : "false");
	else if ((kv->type == HEARTH_GGUF_F32 || kv->type == HEARTH_GGUF_F64) && !isfinite(kv->v.f))
		n = snprintf(tmp, sizeof tmp, "null"); /* JSON has no NaN or infinity */
	else if (kv->type == HEARTH_GGUF_F32 || kv->type == HEARTH_GGUF_F64)
		n = snprintf(tmp, sizeof tmp, "%.9g", kv->v.f);
	else if (vtype_is_signed(kv->type))
		n = snprintf(tmp, sizeof tmp, "%" PRId64, kv->v.i);
	else
		n = snprintf(tmp, sizeof tmp, "%" PRIu64, kv->v.u);
	put(buf, size, len, tmp, (size_t)n);
}

size_t hearth_gguf_kv_json(const struct hearth_gguf *g, int64_t i, int64_t max_items, char *buf, size_t size)
{
	const struct gguf_kv *kv = &g->kv[i];
	size_t len = 0;

	if (kv->type == HEARTH_GGUF_STRING) {
		put_json_str(buf, size, &len, kv->str.p, kv->str.n);
	} else if (kv->type != HEARTH_GGUF_ARRAY) {
		put_scalar(buf, size, &len, kv);
	} else {
		uint64_t n = kv->arr_n;
		bool cut = max_items >= 0 && n > (uint64_t)max_items;
		if (cut)
			n = (uint64_t)max_items;
		put(buf, size, &len, "[", 1);
		for (uint64_t j = 0; j < n; j++) {
			if (j)
				put(buf, size, &len, ",", 1);
			if (kv->arr_type == HEARTH_GGUF_STRING) {
				const struct gguf_str *s = &((const struct gguf_str *)kv->arr)[j];
				put_json_str(buf, size, &len, s->p, s->n);
			} else {
				struct gguf_kv tmp = { .type = kv->arr_type };
				scalar_decode(&tmp, (const uint8_t *)kv->arr + j * vtype_size(kv->arr_type));
				put_scalar(buf, size, &len, &tmp);
			}
		}
		if (cut)
			put(buf, size, &len, ",\"...\"", 6);
		put(buf, size, &len, "]", 1);
	}
	if (size)
		buf[len < size ? len : size - 1] = 0;
	return len;
}
