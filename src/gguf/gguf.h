/* gguf.h - bounded GGUF reader (v2, v3) over a read-only mmap, and a writer.
 *
 * Ownership: struct hearth_gguf owns the mapping, the key strings and copies
 * of numeric arrays; string values and string-array elements point into the
 * mapping. Tensor data pointers point into the mapping and live as long as the
 * gguf object. Read-only after open: safe to share between threads.
 */
#ifndef HEARTH_GGUF_H
#define HEARTH_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "../base/strmap.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

struct gguf_str {
	const char *p; /* into the mapping, not NUL-terminated */
	uint64_t n;
};

struct gguf_kv {
	char *key; /* NUL-terminated copy */
	int type;  /* enum hearth_gguf_vtype */
	union {
		uint64_t u;
		int64_t i;
		double f;
		bool b;
	} v;                  /* scalars, widened */
	struct gguf_str str;  /* HEARTH_GGUF_STRING */
	int arr_type;         /* HEARTH_GGUF_ARRAY: element type */
	uint64_t arr_n;       /* element count */
	void *arr;            /* numeric: copy in the element's own width; strings: struct gguf_str[] */
};

struct gguf_tensor {
	char *name;
	int type;
	int n_dims;
	int64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
	uint64_t offset;           /* from the start of the data section */
	uint64_t nbytes;
	const void *data;          /* into the mapping */
};

struct hearth_gguf {
	char *path;
	const uint8_t *map;
	size_t size;
	uint32_t version;
	uint64_t alignment;
	uint64_t data_offset; /* file offset of the data section */
	int64_t n_kv;
	struct gguf_kv *kv;
	int64_t n_tensors;
	struct gguf_tensor *tensors;
	struct strmap kv_index;     /* key -> index into kv */
	struct strmap tensor_index; /* name -> index into tensors */
};

/* hearth_gguf_open / hearth_gguf_close are public (hearth.h). */
/* Index of key, or -1. */
int64_t gguf_find_key(const struct hearth_gguf *g, const char *key);
/* Index of tensor name, or -1. */
int64_t gguf_find_tensor(const struct hearth_gguf *g, const char *name);

/* Typed getters: 0 on success, HEARTH_ENOTFOUND when the key is absent (out
 * untouched), HEARTH_EBADGGUF (with a message naming the key) when the value
 * has a type that does not fit. Integers of any width convert when in range. */
int gguf_get_i64(const struct hearth_gguf *g, const char *key, int64_t *out, struct hearth_err *err);
int gguf_get_f32(const struct hearth_gguf *g, const char *key, float *out, struct hearth_err *err);
int gguf_get_bool(const struct hearth_gguf *g, const char *key, bool *out, struct hearth_err *err);
int gguf_get_str(const struct hearth_gguf *g, const char *key, struct gguf_str *out, struct hearth_err *err);
/* An array of elements of type elem_type (exactly). */
int gguf_get_arr(const struct hearth_gguf *g, const char *key, int elem_type, const struct gguf_kv **out,
		 struct hearth_err *err);
/* Element i of a numeric array, widened (caller checked the type and bound). */
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i);
double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i);

/* ---- writer -------------------------------------------------------------- */

struct gguf_writer;
int gguf_writer_new(struct gguf_writer **out, struct hearth_err *err);
void gguf_writer_free(struct gguf_writer *w);
/* Metadata; keys and strings are copied. */
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Strings with lengths (they may hold NUL bytes). */
int gguf_writer_set_arr_strn(struct gguf_writer *w, const char *key, const char *const *v, const size_t *len,
			     uint64_t n);
/* Numeric array: n elements of elem_type laid out as in the file. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n);
/* A copy of a key read by the reader, of any value type (arrays included). */
int gguf_writer_set_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* A tensor; data (qtype_row_size * rows bytes) is NOT copied: keep it alive until write. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
			   const void *data);
/* Produces tensor i_tensor's bytes (nbytes, its whole data) into dst while the
 * file is written: 0, or a negative HEARTH_E* with err filled (the write stops). */
typedef int (*gguf_tensor_fill_fn)(void *user, int64_t i_tensor, void *dst, uint64_t nbytes, struct hearth_err *err);
/* A tensor whose data fill produces at write time, into one buffer the writer
 * allocates once (the size of the largest such tensor) and reuses. */
int gguf_writer_add_tensor_fill(struct gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
				gguf_tensor_fill_fn fill, void *user);
/* Writes the file (version 3, general.alignment if set else 32). */
int gguf_writer_write(struct gguf_writer *w, const char *path, struct hearth_err *err);

#endif /* HEARTH_GGUF_H */
