/*
 * safetensors.c - the safetensors reader (layout and rules in safetensors.h).
 *
 * The JSON header is parsed by jansson (duplicate names rejected) only after
 * its length is checked against SAFETENSORS_MAX_HEADER and the file size;
 * every tensor's byte range is then checked against the data section and its
 * shape before anything points into the mapping.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "safetensors.h"

#define INDEX_NAME "model.safetensors.index.json"
#define INDEX_MAX_BYTES (256u << 20)

static const struct {
	const char *name;
	int size, type;
} dtypes[] = {
	{ "F32", 4, HEARTH_TYPE_F32 }, { "F16", 2, HEARTH_TYPE_F16 }, { "BF16", 2, HEARTH_TYPE_BF16 },
	{ "F64", 8, -1 },  { "I64", 8, -1 }, { "U64", 8, -1 }, { "I32", 4, -1 }, { "U32", 4, -1 },
	{ "I16", 2, -1 },  { "U16", 2, -1 }, { "I8", 1, -1 },  { "U8", 1, -1 },  { "BOOL", 1, -1 },
	{ "F8_E4M3", 1, -1 }, { "F8_E5M2", 1, -1 }, { "F8_E8M0", 1, -1 },
};

static int grow(struct safetensors_set *s, size_t n_more)
{
	size_t n = (size_t)s->n_tensors + n_more;
	struct safetensors_tensor *t = realloc(s->tensors, (n ? n : 1) * sizeof *t);
	if (!t)
		return HEARTH_ENOMEM;
	s->tensors = t;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct safetensors_tensor *)a)->name, ((const struct safetensors_tensor *)b)->name);
}

/* One entry of the header: dtype, shape, data_offsets, checked against the data section. */
static int parse_tensor(struct safetensors_tensor *t, const char *path, const json_t *v, uint64_t data_size,
			uint64_t *begin_out, struct hearth_err *err)
{
	const char *dt = json_string_value(json_object_get(v, "dtype"));
	json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets"), *x;
	int elsize = 0;
	size_t i;

	if (!json_is_object(v) || !dt || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' needs dtype, shape and data_offsets [begin, end]",
			       path, t->name);
	for (i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (!strcmp(dt, dtypes[i].name)) {
			elsize = dtypes[i].size;
			t->type = dtypes[i].type;
			snprintf(t->dtype, sizeof t->dtype, "%s", dtypes[i].name);
		}
	if (!elsize)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has an unknown dtype '%.16s'", path, t->name, dt);
	if (json_array_size(shape) > SAFETENSORS_MAX_DIMS)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has %zu dims (at most %d)", path, t->name,
			       json_array_size(shape), SAFETENSORS_MAX_DIMS);
	uint64_t count = 1;
	bool empty = false;
	t->n_dims = (int)json_array_size(shape);
	json_array_foreach(shape, i, x) {
		json_int_t d = json_integer_value(x);
		if (!json_is_integer(x) || d < 0)
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has a bad shape", path, t->name);
		t->shape[i] = d;
		if (d == 0)
			empty = true;
		else if (!empty && count > data_size / (uint64_t)d) /* more elements than the data holds bytes */
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s': its shape needs more bytes than the file has",
				       path, t->name);
		else if (!empty)
			count *= (uint64_t)d;
	}
	if (empty)
		count = 0;
	json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
	if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
	    json_integer_value(e) < json_integer_value(b))
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has bad data_offsets", path, t->name);
	uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
	if (end > data_size)
		return err_set(err, HEARTH_EBADGGUF,
			       "%s: tensor '%s' ends past the end of the file (data_offsets end %llu > %llu bytes of data)",
			       path, t->name, (unsigned long long)end, (unsigned long long)data_size);
	if (end - begin != count * (uint64_t)elsize) /* count <= data_size: no overflow */
		return err_set(err, HEARTH_EBADGGUF,
			       "%s: tensor '%s' holds %llu bytes but its shape and dtype %s need %llu", path, t->name,
			       (unsigned long long)(end - begin), t->dtype, (unsigned long long)(count * (uint64_t)elsize));
	t->nbytes = end - begin;
	*begin_out = begin;
	return 0;
}

int safetensors_parse(struct safetensors_set *s, int i_file, const char *path, const uint8_t *map, size_t size,
		      struct hearth_err *err)
{
	uint64_t n_head = 0;
	json_error_t je;
	const char *key;
	json_t *v;
	int rc = 0;

	if (size < 8)
		return err_set(err, HEARTH_EBADGGUF, "%s: %zu bytes: too short for a safetensors file", path, size);
	for (int i = 7; i >= 0; i--)
		n_head = n_head << 8 | map[i];
	if (n_head > SAFETENSORS_MAX_HEADER)
		return err_set(err, HEARTH_EBADGGUF, "%s: header of %llu bytes (more than the %u allowed)", path,
			       (unsigned long long)n_head, SAFETENSORS_MAX_HEADER);
	if (n_head > size - 8)
		return err_set(err, HEARTH_EBADGGUF, "%s: header of %llu bytes runs past the end of the file (%zu bytes)",
			       path, (unsigned long long)n_head, size);
	json_t *h = json_loadb((const char *)map + 8, (size_t)n_head, JSON_REJECT_DUPLICATES, &je);
	if (!h)
		return err_set(err, HEARTH_EBADGGUF, "%s: header: %s (at byte %d)", path, je.text, je.position);
	if (!json_is_object(h)) {
		rc = err_set(err, HEARTH_EBADGGUF, "%s: header is not a JSON object", path);
		goto out;
	}
	const uint64_t data_size = size - 8 - n_head;
	const uint8_t *data = map + 8 + n_head;
	const int64_t first = s->n_tensors;
	if ((rc = grow(s, json_object_size(h)))) {
		rc = err_set(err, rc, "%s: out of memory", path);
		goto out;
	}
	json_object_foreach(h, key, v) {
		if (!strcmp(key, "__metadata__"))
			continue;
		struct safetensors_tensor *t = &s->tensors[s->n_tensors];
		memset(t, 0, sizeof *t);
		if (!(t->name = strdup(key))) {
			rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
			goto out;
		}
		s->n_tensors++;
		t->file = path;
		t->i_file = i_file;
		uint64_t begin = 0;
		if ((rc = parse_tensor(t, path, v, data_size, &begin, err)))
			goto out;
		t->data = data + begin;
	}
	qsort(s->tensors + first, (size_t)(s->n_tensors - first), sizeof *s->tensors, by_name);
out:
	json_decref(h);
	return rc;
}

static int map_file(struct safetensors_set *s, const char *path, struct hearth_err *err)
{
	struct safetensors_file *f = &s->files[s->n_files];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	memset(f, 0, sizeof *f);
	if (fd < 0)
		return err_set(err, HEARTH_EIO, "%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 0) {
		close(fd);
		return err_set(err, HEARTH_EIO, "%s: not a regular file", path);
	}
	if (!(f->path = strdup(path))) {
		close(fd);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	}
	f->size = (size_t)st.st_size;
	if (f->size) {
		void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			close(fd);
			free(f->path);
			return err_set(err, errno == ENOMEM ? HEARTH_ENOMEM : HEARTH_EIO, "%s: cannot map: %s", path,
				       strerror(errno));
		}
		f->map = m;
	}
	close(fd);
	s->n_files++;
	return safetensors_parse(s, s->n_files - 1, f->path, f->map, f->size, err);
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int open_files(struct safetensors_set *s, const char *dir, const char **names, size_t n, struct hearth_err *err)
{
	size_t n_unique = 0;
	int rc = 0;
	qsort(names, n, sizeof *names, by_str);
	for (size_t i = 0; i < n; i++)
		n_unique += i == 0 || strcmp(names[i], names[i - 1]);
	if (n_unique > SAFETENSORS_MAX_FILES)
		return err_set(err, HEARTH_ETOOBIG, "%s: %zu weight files (at most %d)", dir, n_unique, SAFETENSORS_MAX_FILES);
	if (!(s->files = calloc(n_unique ? n_unique : 1, sizeof *s->files)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", dir);
	for (size_t i = 0; i < n && !rc; i++) {
		char p[4096];
		if (i > 0 && !strcmp(names[i], names[i - 1]))
			continue;
		if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= sizeof p)
			return err_set(err, HEARTH_EINVAL, "%s: path too long", dir);
		rc = map_file(s, p, err);
	}
	return rc;
}

static int build_index(struct safetensors_set *s, struct hearth_err *err)
{
	if (strmap_init(&s->index, (size_t)s->n_tensors))
		return err_set(err, HEARTH_ENOMEM, "out of memory");
	for (int64_t i = 0; i < s->n_tensors; i++) {
		const struct safetensors_tensor *t = &s->tensors[i];
		int rc = strmap_put(&s->index, t->name, strlen(t->name), (int32_t)i);
		if (rc == 1)
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is also in %s", t->file, t->name,
				       s->files[s->tensors[strmap_get(&s->index, t->name, strlen(t->name))].i_file].path);
		if (rc < 0)
			return err_set(err, HEARTH_ENOMEM, "out of memory");
	}
	return 0;
}

static bool plain_name(const char *n)
{
	return *n && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

/* Sharded: the files the weight map names, each holding exactly its tensors. */
static int open_indexed(struct safetensors_set *s, const char *dir, const char *index_path, struct hearth_err *err)
{
	json_error_t je;
	const char *key, **names = NULL;
	json_t *v;
	size_t n = 0;
	int rc;

	json_t *idx = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
	if (!idx)
		return err_set(err, HEARTH_EINVAL, "%s: line %d: %s", index_path, je.line, je.text);
	json_t *map = json_object_get(idx, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0) {
		rc = err_set(err, HEARTH_EINVAL, "%s: no weight_map object", index_path);
		goto out;
	}
	if (!(names = malloc(json_object_size(map) * sizeof *names))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", index_path);
		goto out;
	}
	json_object_foreach(map, key, v) {
		const char *f = json_string_value(v);
		if (!f || !plain_name(f)) {
			rc = err_set(err, HEARTH_EINVAL, "%s: weight_map['%s'] is not a file name in the folder", index_path,
				     key);
			goto out;
		}
		names[n++] = f;
	}
	if ((rc = open_files(s, dir, names, n, err)) || (rc = build_index(s, err)))
		goto out;
	json_object_foreach(map, key, v) {
		const struct safetensors_tensor *t = safetensors_find(s, key);
		const char *want = json_string_value(v);
		const char *got = t ? strrchr(s->files[t->i_file].path, '/') + 1 : NULL;
		if (!t || strcmp(got, want)) {
			rc = err_set(err, HEARTH_EBADGGUF, "%s/%s: tensor '%s' that %s puts there is missing", dir, want,
				     key, INDEX_NAME);
			goto out;
		}
	}
	if ((size_t)s->n_tensors != json_object_size(map)) {
		for (int64_t i = 0; i < s->n_tensors; i++)
			if (!json_object_get(map, s->tensors[i].name)) {
				rc = err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is not in %s's weight_map",
					     s->tensors[i].file, s->tensors[i].name, INDEX_NAME);
				goto out;
			}
	}
out:
	free(names);
	json_decref(idx);
	return rc;
}

/* Unsharded: every model*.safetensors in the folder. */
static int open_listed(struct safetensors_set *s, const char *dir, struct hearth_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d)
		return err_set(err, HEARTH_EIO, "%s: cannot open the folder: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, "model", 5) || len < 12 || strcmp(e->d_name + len - 12, ".safetensors"))
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *p);
			if (!p) {
				rc = HEARTH_ENOMEM;
				break;
			}
			names = p;
		}
		if (!(names[n] = strdup(e->d_name))) {
			rc = HEARTH_ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc)
		rc = err_set(err, rc, "%s: out of memory", dir);
	else if (n == 0)
		rc = err_set(err, HEARTH_ENOTFOUND, "%s: no model*.safetensors file (and no %s)", dir, INDEX_NAME);
	else if (!(rc = open_files(s, dir, (const char **)names, n, err)))
		rc = build_index(s, err);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int safetensors_open_dir(struct safetensors_set *s, const char *dir, struct hearth_err *err)
{
	char p[4096];
	struct stat st;
	int rc;

	memset(s, 0, sizeof *s);
	if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, INDEX_NAME) >= sizeof p)
		return err_set(err, HEARTH_EINVAL, "%s: path too long", dir);
	if (stat(p, &st) == 0) {
		if (st.st_size > INDEX_MAX_BYTES)
			rc = err_set(err, HEARTH_ETOOBIG, "%s: %lld bytes", p, (long long)st.st_size);
		else
			rc = open_indexed(s, dir, p, err);
	} else {
		rc = open_listed(s, dir, err);
	}
	if (rc)
		safetensors_close(s);
	return rc;
}

void safetensors_close(struct safetensors_set *s)
{
	for (int64_t i = 0; i < s->n_tensors; i++)
		free((char *)s->tensors[i].name);
	for (int i = 0; i < s->n_files; i++) {
		if (s->files[i].map)
			munmap((void *)s->files[i].map, s->files[i].size);
		free(s->files[i].path);
	}
	free(s->tensors);
	free(s->files);
	strmap_free(&s->index);
	memset(s, 0, sizeof *s);
}

const struct safetensors_tensor *safetensors_find(const struct safetensors_set *s, const char *name)
{
	int32_t i = s->index.slots ? strmap_get(&s->index, name, strlen(name)) : -1;
	return i < 0 ? NULL : &s->tensors[i];
}

void safetensors_release(const struct safetensors_tensor *t)
{
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t b = ((uintptr_t)t->data + page - 1) / page * page, e = ((uintptr_t)t->data + t->nbytes) / page * page;
	if (e > b)
		madvise((void *)b, e - b, MADV_DONTNEED);
}
