/* safetensors.h - bounded reader of Hugging Face safetensors files, single or
 * sharded (model.safetensors.index.json), over read-only mmaps.
 *
 * A file is: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin,
 * end]}, ..., "__metadata__": {...}}), then the data; offsets count from the
 * end of the header. Every tensor is checked: a known dtype, at most
 * SAFETENSORS_MAX_DIMS dims, begin <= end within the data, and end - begin
 * equal to the element count times the dtype's size.
 *
 * Ownership: struct safetensors_set owns the mappings, names and tensor
 * table; data pointers point into the mappings and live as long as the set.
 * Read-only after open.
 */
#ifndef HEARTH_SAFETENSORS_H
#define HEARTH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "../base/strmap.h"

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER (100u << 20) /* the safetensors library's own limit: 100 MB */
#define SAFETENSORS_MAX_FILES 65536         /* shards named by one index */

struct safetensors_tensor {
	const char *name;  /* NUL-terminated, owned by the set */
	const char *file;  /* the shard's path, for messages */
	char dtype[12];    /* as written: "BF16", "F32", "I64", ... */
	int type;          /* HEARTH_TYPE_F32 / F16 / BF16, or -1 for any other dtype */
	int n_dims;
	int64_t shape[SAFETENSORS_MAX_DIMS]; /* outermost first, as in the file */
	const uint8_t *data;                 /* into the mapping */
	uint64_t nbytes;
	int i_file;                          /* which shard (files are sorted by name) */
};

struct safetensors_file {
	char *path;
	const uint8_t *map;
	size_t size;
};

struct safetensors_set {
	int n_files;
	struct safetensors_file *files;
	int64_t n_tensors;
	struct safetensors_tensor *tensors; /* shard by shard (sorted file names), by name within a shard */
	struct strmap index;                /* name -> index into tensors */
};

/* Opens the weights of a Hugging Face folder: the shards model.safetensors.index.json's
 * weight_map names (every one must exist and hold exactly the tensors the map gives it),
 * else every model*.safetensors file. Errors name the file and the tensor. */
int safetensors_open_dir(struct safetensors_set *s, const char *dir, struct hearth_err *err);
void safetensors_close(struct safetensors_set *s);
/* The tensor named name, or NULL. */
const struct safetensors_tensor *safetensors_find(const struct safetensors_set *s, const char *name);
/* Parses one file's header (the bytes of a whole file, size bytes) into tensors
 * appended to s (i_file, path for messages). Exposed for the fuzzer. */
int safetensors_parse(struct safetensors_set *s, int i_file, const char *path, const uint8_t *map, size_t size,
		      struct hearth_err *err);
/* Tells the kernel a tensor's pages are no longer needed (after it was converted). */
void safetensors_release(const struct safetensors_tensor *t);

#endif /* HEARTH_SAFETENSORS_H */
