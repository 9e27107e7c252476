/*
 * gguf-write.c - writes GGUF v3 files (layout in gguf.c) that llama.cpp loads.
 *
 * Metadata is serialized into a growing byte buffer as it is set; tensor data
 * is referenced, not copied, and streamed to the file by gguf_writer_write().
 * A tensor may instead be produced by a fill callback while the file is
 * written: the header (every tensor's shape, type and offset) goes first,
 * then each such tensor is filled into one reusable buffer the size of the
 * largest and written, so memory stays about one tensor, not the model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../tensor/qtype.h"
#include "gguf.h"

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
};

struct wtensor {
	char *name;
	int type, n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	const void *data;        /* NULL: produced by fill */
	gguf_tensor_fill_fn fill;
	void *fill_user;
	uint64_t nbytes, offset;
};

struct gguf_writer {
	struct wbuf kv;
	uint64_t n_kv;
	uint32_t alignment;
	struct wtensor *tensors;
	size_t n_tensors, cap_tensors;
};

static void wb_put(struct wbuf *b, const void *src, size_t n)
{
	if (b->oom || n == 0) /* src may be NULL then (no metadata yet) */
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void wb_u32(struct wbuf *b, uint32_t v) { wb_put(b, &v, 4); }
static void wb_u64(struct wbuf *b, uint64_t v) { wb_put(b, &v, 8); }
static void wb_str(struct wbuf *b, const char *s)
{
	size_t n = strlen(s);
	wb_u64(b, n);
	wb_put(b, s, n);
}

int gguf_writer_new(struct gguf_writer **out, struct hearth_err *err)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return err_set(err, HEARTH_ENOMEM, "gguf writer: out of memory");
	(*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
	return 0;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_tensors; i++)
		free(w->tensors[i].name);
	free(w->tensors);
	free(w->kv.p);
	free(w);
}

static void kv_head(struct gguf_writer *w, const char *key, int type)
{
	wb_str(&w->kv, key);
	wb_u32(&w->kv, (uint32_t)type);
	w->n_kv++;
}

static int kv_done(struct gguf_writer *w) { return w->kv.oom ? HEARTH_ENOMEM : 0; }

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	if (strcmp(key, "general.alignment") == 0) {
		if (v == 0 || (v & (v - 1)))
			return HEARTH_EINVAL;
		w->alignment = v;
	}
	kv_head(w, key, HEARTH_GGUF_U32);
	wb_u32(&w->kv, v);
	return kv_done(w);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	kv_head(w, key, HEARTH_GGUF_I32);
	wb_put(&w->kv, &v, 4);
	return kv_done(w);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
	kv_head(w, key, HEARTH_GGUF_F32);
	wb_put(&w->kv, &v, 4);
	return kv_done(w);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;
	kv_head(w, key, HEARTH_GGUF_BOOL);
	wb_put(&w->kv, &b, 1);
	return kv_done(w);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
	kv_head(w, key, HEARTH_GGUF_STRING);
	wb_str(&w->kv, v);
	return kv_done(w);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
	kv_head(w, key, HEARTH_GGUF_ARRAY);
	wb_u32(&w->kv, HEARTH_GGUF_STRING);
	wb_u64(&w->kv, n);
	for (uint64_t i = 0; i < n; i++)
		wb_str(&w->kv, v[i]);
	return kv_done(w);
}

int gguf_writer_set_arr_strn(struct gguf_writer *w, const char *key, const char *const *v, const size_t *len,
			     uint64_t n)
{
	kv_head(w, key, HEARTH_GGUF_ARRAY);
	wb_u32(&w->kv, HEARTH_GGUF_STRING);
	wb_u64(&w->kv, n);
	for (uint64_t i = 0; i < n; i++) {
		wb_u64(&w->kv, len[i]);
		wb_put(&w->kv, v[i], len[i]);
	}
	return kv_done(w);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n)
{
	size_t sz;
	switch (elem_type) {
	case HEARTH_GGUF_U8: case HEARTH_GGUF_I8: case HEARTH_GGUF_BOOL: sz = 1; break;
	case HEARTH_GGUF_U16: case HEARTH_GGUF_I16: sz = 2; break;
	case HEARTH_GGUF_U32: case HEARTH_GGUF_I32: case HEARTH_GGUF_F32: sz = 4; break;
	case HEARTH_GGUF_U64: case HEARTH_GGUF_I64: case HEARTH_GGUF_F64: sz = 8; break;
	default: return HEARTH_EINVAL;
	}
	kv_head(w, key, HEARTH_GGUF_ARRAY);
	wb_u32(&w->kv, (uint32_t)elem_type);
	wb_u64(&w->kv, n);
	wb_put(&w->kv, data, sz * n);
	return kv_done(w);
}

int gguf_writer_set_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
	const char *key = kv->key;
	switch (kv->type) {
	case HEARTH_GGUF_U32: return gguf_writer_set_u32(w, key, (uint32_t)kv->v.u);
	case HEARTH_GGUF_STRING:
		kv_head(w, key, HEARTH_GGUF_STRING);
		wb_u64(&w->kv, kv->str.n);
		wb_put(&w->kv, kv->str.p, kv->str.n);
		return kv_done(w);
	case HEARTH_GGUF_ARRAY:
		if (kv->arr_type == HEARTH_GGUF_STRING) {
			const struct gguf_str *v = kv->arr;
			kv_head(w, key, HEARTH_GGUF_ARRAY);
			wb_u32(&w->kv, HEARTH_GGUF_STRING);
			wb_u64(&w->kv, kv->arr_n);
			for (uint64_t i = 0; i < kv->arr_n; i++) {
				wb_u64(&w->kv, v[i].n);
				wb_put(&w->kv, v[i].p, v[i].n);
			}
			return kv_done(w);
		}
		return gguf_writer_set_arr(w, key, kv->arr_type, kv->arr, kv->arr_n);
	}
	/* the other scalars: the value in its own width, little-endian as read */
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; int32_t i32; float f32; uint64_t u64; int64_t i64;
		double f64; } v;
	size_t n;
	switch (kv->type) {
	case HEARTH_GGUF_U8: v.u8 = (uint8_t)kv->v.u; n = 1; break;
	case HEARTH_GGUF_I8: v.i8 = (int8_t)kv->v.i; n = 1; break;
	case HEARTH_GGUF_BOOL: v.u8 = kv->v.b; n = 1; break;
	case HEARTH_GGUF_U16: v.u16 = (uint16_t)kv->v.u; n = 2; break;
	case HEARTH_GGUF_I16: v.i16 = (int16_t)kv->v.i; n = 2; break;
	case HEARTH_GGUF_I32: v.i32 = (int32_t)kv->v.i; n = 4; break;
	case HEARTH_GGUF_F32: v.f32 = (float)kv->v.f; n = 4; break;
	case HEARTH_GGUF_U64: v.u64 = kv->v.u; n = 8; break;
	case HEARTH_GGUF_I64: v.i64 = kv->v.i; n = 8; break;
	case HEARTH_GGUF_F64: v.f64 = kv->v.f; n = 8; break;
	default: return HEARTH_EINVAL;
	}
	kv_head(w, key, kv->type);
	wb_put(&w->kv, &v, n);
	return kv_done(w);
}

static int add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
		      struct wtensor **out)
{
	const struct qtype_info *q = qtype_info(type);
	if (!q || q->internal || n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] % q->blck_size)
		return HEARTH_EINVAL;
	for (int d = 0; d < n_dims; d++)
		if (ne[d] < 0)
			return HEARTH_EINVAL;
	if (w->n_tensors == w->cap_tensors) {
		size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
		struct wtensor *t = realloc(w->tensors, cap * sizeof *t);
		if (!t)
			return HEARTH_ENOMEM;
		w->tensors = t;
		w->cap_tensors = cap;
	}
	struct wtensor *t = &w->tensors[w->n_tensors];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return HEARTH_ENOMEM;
	t->type = type;
	t->n_dims = n_dims;
	t->nbytes = qtype_row_size(type, ne[0]);
	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		t->ne[d] = d < n_dims ? ne[d] : 1;
		if (d > 0 && t->ne[d] && t->nbytes > UINT64_MAX / 2 / (uint64_t)t->ne[d]) {
			free(t->name);
			return HEARTH_ETOOBIG;
		}
		if (d > 0)
			t->nbytes *= (uint64_t)t->ne[d];
	}
	w->n_tensors++;
	*out = t;
	return 0;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
			   const void *data)
{
	struct wtensor *t;
	int rc = add_tensor(w, name, type, n_dims, ne, &t);
	if (!rc)
		t->data = data;
	return rc;
}

int gguf_writer_add_tensor_fill(struct gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
				gguf_tensor_fill_fn fill, void *user)
{
	struct wtensor *t;
	int rc = add_tensor(w, name, type, n_dims, ne, &t);
	if (!rc) {
		t->fill = fill;
		t->fill_user = user;
	}
	return rc;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, struct hearth_err *err)
{
	static const uint8_t zeros[256];
	struct wbuf head = { 0 };
	uint64_t off = 0;
	uint64_t fill_max = 0;
	void *fill_buf = NULL;
	FILE *f;
	int rc = 0;

	if (w->kv.oom)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory while building metadata", path);
	wb_u32(&head, GGUF_MAGIC);
	wb_u32(&head, 3);
	wb_u64(&head, w->n_tensors);
	wb_u64(&head, w->n_kv);
	wb_put(&head, w->kv.p, w->kv.n);
	for (size_t i = 0; i < w->n_tensors; i++) {
		struct wtensor *t = &w->tensors[i];
		wb_str(&head, t->name);
		wb_u32(&head, (uint32_t)t->n_dims);
		for (int d = 0; d < t->n_dims; d++)
			wb_u64(&head, (uint64_t)t->ne[d]);
		wb_u32(&head, (uint32_t)t->type);
		t->offset = off;
		wb_u64(&head, off);
		off += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
	}
	wb_put(&head, zeros, (w->alignment - head.n % w->alignment) % w->alignment);
	if (head.oom) {
		free(head.p);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory while building the header", path);
	}
	for (size_t i = 0; i < w->n_tensors; i++)
		if (w->tensors[i].fill && w->tensors[i].nbytes > fill_max)
			fill_max = w->tensors[i].nbytes;
	if (fill_max && (fill_max > SIZE_MAX || !(fill_buf = malloc((size_t)fill_max)))) {
		free(head.p);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory for a tensor of %llu bytes", path,
			       (unsigned long long)fill_max);
	}
	f = fopen(path, "wb");
	if (!f) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot create: %s", path, strerror(errno));
		goto out;
	}
	if (fwrite(head.p, 1, head.n, f) != head.n)
		goto out_werr;
	for (size_t i = 0; i < w->n_tensors; i++) {
		struct wtensor *t = &w->tensors[i];
		const void *data = t->data;
		if (t->fill) {
			if ((rc = t->fill(t->fill_user, (int64_t)i, fill_buf, t->nbytes, err)))
				goto out;
			data = fill_buf;
		}
		if (t->nbytes && fwrite(data, 1, t->nbytes, f) != t->nbytes)
			goto out_werr;
		size_t pad = (w->alignment - t->nbytes % w->alignment) % w->alignment;
		while (pad > 0) {
			size_t k = pad < sizeof zeros ? pad : sizeof zeros;
			if (fwrite(zeros, 1, k, f) != k)
				goto out_werr;
			pad -= k;
		}
	}
	if (fclose(f)) {
		f = NULL;
		goto out_werr;
	}
	f = NULL;
	goto out;
out_werr:
	rc = err_set(err, HEARTH_EIO, "%s: write failed: %s", path, strerror(errno));
out:
	if (f)
		fclose(f);
	free(fill_buf);
	free(head.p);
	return rc;
}
