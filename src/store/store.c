/* store.c - the model store on disk: where it is, what it holds, finding a
 * stored model by name, and removing one.
 *
 *   HOME/models/hf/OWNER/REPO/PATH.gguf          (HOME: $HEARTH_HOME, else $HOME/.hearth)
 *   HOME/models/modelscope/OWNER/REPO/PATH.gguf
 *   HOME/models/url/HOST/FILE.gguf
 *   ... each with PATH.gguf.json: {"ref","url","file","size","sha256"}
 *
 * Names resolve without the network: a reference is parsed as `hearth pull`
 * parses it and its tag picks among the repository's stored files by the
 * same rule (ref_pick) that picked among the hub's. Walks are bounded in
 * depth and in the number of files.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "store.h"

#define STORE_MAX_FILES 10000
#define STORE_MAX_DEPTH 12

int hearth_store_home(char *dir, size_t size, struct hearth_err *err)
{
	const char *h = getenv("HEARTH_HOME"), *home = getenv("HOME");
	int n;
	if (h && h[0])
		n = snprintf(dir, size, "%s", h);
	else if (home && home[0])
		n = snprintf(dir, size, "%s/.hearth", home);
	else
		return err_set(err, HEARTH_ENOTFOUND, "neither HEARTH_HOME nor HOME is set: no place for the model store");
	if (n < 0 || (size_t)n >= size)
		return err_set(err, HEARTH_EINVAL, "the store's home directory path is longer than %zu bytes", size - 1);
	return 0;
}

int store_models_dir(char *out, size_t size, struct hearth_err *err)
{
	char home[HEARTH_STORE_PATH_MAX];
	int rc = hearth_store_home(home, sizeof home, err);
	if (rc)
		return rc;
	if ((size_t)snprintf(out, size, "%s/models", home) >= size)
		return err_set(err, HEARTH_EINVAL, "%s/models: the path is too long", home);
	return 0;
}

int store_repo_dir(const struct ref *r, char *out, size_t size, struct hearth_err *err)
{
	char models[HEARTH_STORE_PATH_MAX], host[sizeof r->host];
	int rc = store_models_dir(models, sizeof models, err), n;
	if (rc)
		return rc;
	if (r->kind == REF_URL) {
		size_t k = 0;
		for (const char *s = r->host; *s; s++)
			if (*s != '[' && *s != ']')
				host[k++] = *s == ':' ? '_' : *s;
		host[k] = 0;
		n = snprintf(out, size, "%s/url/%s", models, host);
	} else {
		n = snprintf(out, size, "%s/%s/%s", models, r->kind == REF_MODELSCOPE ? "modelscope" : "hf", r->repo);
	}
	if (n < 0 || (size_t)n >= size)
		return err_set(err, HEARTH_EINVAL, "%s: the store path is too long", models);
	return 0;
}

int store_mkdirs(const char *file_path, struct hearth_err *err)
{
	char dir[HEARTH_STORE_PATH_MAX];
	if ((size_t)snprintf(dir, sizeof dir, "%s", file_path) >= sizeof dir)
		return err_set(err, HEARTH_EINVAL, "%.200s: the path is too long", file_path);
	for (char *s = dir + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(dir, 0755) && errno != EEXIST)
			return err_set(err, HEARTH_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
		*s = '/';
	}
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* The "sha256" and "ref" of a stored file's record (either may be NULL). */
static void read_record(const char *path, char sha[65], char *ref, size_t ref_size)
{
	char rec[HEARTH_STORE_PATH_MAX + 8];
	snprintf(rec, sizeof rec, "%s.json", path);
	json_t *j = json_load_file(rec, 0, NULL);
	const char *s = json_string_value(json_object_get(j, "sha256")), *r = json_string_value(json_object_get(j, "ref"));
	if (sha)
		snprintf(sha, 65, "%s", s && strlen(s) == 64 ? s : "");
	if (ref)
		snprintf(ref, ref_size, "%s", r ? r : "");
	json_decref(j);
}

static int walk(const char *root, const char *rel, int depth, struct hub_list *out, struct hearth_err *err)
{
	char dir[HEARTH_STORE_PATH_MAX], sub[HEARTH_STORE_PATH_MAX];
	snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : err_set(err, HEARTH_EIO, "%s: %s", dir, strerror(errno));
	while (!rc && (e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' ||
		    (size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= sizeof sub)
			continue;
		char full[2 * HEARTH_STORE_PATH_MAX + 2];
		snprintf(full, sizeof full, "%s/%s", root, sub);
		if (lstat(full, &st))
			continue;
		if (S_ISDIR(st.st_mode) && depth < STORE_MAX_DEPTH) {
			rc = walk(root, sub, depth + 1, out, err);
		} else if (S_ISREG(st.st_mode) && has_suffix(e->d_name, ".gguf")) {
			if (out->n >= STORE_MAX_FILES) {
				rc = err_set(err, HEARTH_ETOOBIG, "%s: more than %d models", root, STORE_MAX_FILES);
				break;
			}
			struct hub_file *f = &out->files[out->n];
			if (!(f->path = strdup(sub))) {
				rc = err_set(err, HEARTH_ENOMEM, "out of memory listing %s", root);
				break;
			}
			f->size = (uint64_t)st.st_size;
			read_record(full, f->sha256, NULL, 0);
			out->n++;
		}
	}
	closedir(d);
	return rc;
}

int store_scan(const char *dir, struct hub_list *out, struct hearth_err *err)
{
	memset(out, 0, sizeof *out);
	if (!(out->files = calloc(STORE_MAX_FILES, sizeof *out->files)))
		return err_set(err, HEARTH_ENOMEM, "out of memory listing %s", dir);
	int rc = walk(dir, "", 0, out, err);
	if (rc)
		hub_list_free(out);
	return rc;
}

/* ---- entries ------------------------------------------------------------------ */

/* The ref that names rel (a path under models/) into e->name: its quantization
 * as the tag when that picks it among its repository's files, else its path. */
static void entry_name(struct hearth_store_entry *e, const char *rel, const struct hub_list *all)
{
	const char *b = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	snprintf(e->short_name, sizeof e->short_name, "%.*s", (int)(strlen(b) - 5), b);
	snprintf(e->name, sizeof e->name, "%s", e->short_name);
	int skip = !strncmp(rel, "hf/", 3) ? 3 : !strncmp(rel, "modelscope/", 11) ? 11 : -1;
	const char *s1 = skip > 0 ? strchr(rel + skip, '/') : NULL, *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (!s2)
		return; /* a URL's file, or something else in the store: its short name */
	struct ref r = { .kind = skip == 3 ? REF_HF : REF_MODELSCOPE };
	size_t prefix = (size_t)(s2 - rel) + 1;
	snprintf(r.repo, sizeof r.repo, "%.*s", (int)(s2 - rel - skip), rel + skip);
	struct hub_list mine = { calloc((size_t)all->n, sizeof(struct hub_file)), 0 };
	int at = -1, pick = -1;
	for (int i = 0; mine.files && i < all->n; i++)
		if (!strncmp(all->files[i].path, rel, prefix)) {
			if (!strcmp(all->files[i].path, rel))
				at = mine.n;
			mine.files[mine.n] = all->files[i];
			mine.files[mine.n++].path += prefix;
		}
	if (!ref_quant_of(rel, r.tag, sizeof r.tag) || ref_pick(&r, mine.files, mine.n, &pick, NULL) || pick != at)
		snprintf(r.tag, sizeof r.tag, "%.*s", (int)(strlen(rel + prefix) - 5), rel + prefix);
	ref_format(&r, e->name, sizeof e->name);
	free(mine.files);
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct hearth_store_entry *)a)->name, ((const struct hearth_store_entry *)b)->name);
}

int hearth_store_list(struct hearth_store_entry **out, int *n, struct hearth_err *err)
{
	char models[HEARTH_STORE_PATH_MAX];
	struct hub_list all;
	int rc;
	*out = NULL;
	*n = 0;
	if ((rc = store_models_dir(models, sizeof models, err)) || (rc = store_scan(models, &all, err)))
		return rc;
	struct hearth_store_entry *e = calloc(all.n ? (size_t)all.n : 1, sizeof *e);
	if (!e) {
		hub_list_free(&all);
		return err_set(err, HEARTH_ENOMEM, "out of memory listing %d models", all.n);
	}
	int k = 0;
	for (int i = 0; i < all.n; i++) {
		int w = snprintf(e[k].path, sizeof e[k].path, "%s/%s", models, all.files[i].path);
		if (w < 0 || (size_t)w >= sizeof e[k].path)
			continue; /* cannot be opened by its path anyway */
		e[k].size = all.files[i].size;
		read_record(e[k].path, NULL, e[k].source, sizeof e[k].source);
		entry_name(&e[k++], all.files[i].path, &all);
	}
	qsort(e, (size_t)k, sizeof *e, cmp_entry);
	*out = e;
	*n = k;
	hub_list_free(&all);
	return 0;
}

/* ---- finding one --------------------------------------------------------------- */

/* The stored file a REF names into path: 1 found, 0 none, < 0 error. */
static int find_by_ref(const char *name, char *path, size_t size, struct hearth_err *err)
{
	struct ref r;
	char dir[HEARTH_STORE_PATH_MAX];
	struct hub_list l;
	struct stat st;
	int rc, pick;
	if (ref_parse(name, &r, NULL) || (rc = store_repo_dir(&r, dir, sizeof dir, err)) < 0)
		return 0;
	if (r.kind == REF_URL) {
		if ((size_t)snprintf(path, size, "%s/%s", dir, r.file) >= size)
			return err_set(err, HEARTH_EINVAL, "%s: the path is too long", dir);
		return !stat(path, &st) && S_ISREG(st.st_mode);
	}
	if ((rc = store_scan(dir, &l, err)))
		return rc;
	rc = l.n ? ref_pick(&r, l.files, l.n, &pick, err) : HEARTH_ENOTFOUND;
	if (!rc && (size_t)snprintf(path, size, "%s/%s", dir, l.files[pick].path) >= size)
		rc = err_set(err, HEARTH_EINVAL, "%s: the path is too long", dir);
	hub_list_free(&l);
	return rc == HEARTH_ENOTFOUND ? 0 : rc ? rc : 1;
}

/* The stored file whose name or short name is name: 1 found, 0 none, < 0 error. */
static int find_by_short(const char *name, char *path, size_t size, struct hearth_err *err)
{
	struct hearth_store_entry *e;
	int n, hits = 0, rc = hearth_store_list(&e, &n, err);
	if (rc)
		return rc;
	for (int i = 0; i < n; i++) {
		const char *b = strrchr(e[i].path, '/') + 1;
		if (strcasecmp(e[i].short_name, name) && strcasecmp(b, name) && strcmp(e[i].name, name))
			continue;
		if (hits++)
			rc = err_set(err, HEARTH_EINVAL, "'%s' names several stored models (%s, ...): use the full name "
				     "`hearth list` shows", name, e[i].name);
		else
			snprintf(path, size, "%s", e[i].path);
	}
	free(e);
	return rc ? rc : hits > 0;
}

static int find_stored(const char *name, char *path, size_t size, struct hearth_err *err)
{
	int rc = find_by_ref(name, path, size, err);
	if (rc == 0)
		rc = find_by_short(name, path, size, err);
	struct ref r;
	if (rc == 0 && !ref_parse(name, &r, NULL))
		rc = err_set(err, HEARTH_ENOTFOUND,
			     "'%.200s': no such file, and no such model in the store: `hearth pull %.200s` downloads it",
			     name, name);
	else if (rc == 0)
		rc = err_set(err, HEARTH_ENOTFOUND, "%.200s: no such file (nor a stored model's name: `hearth list` "
			     "shows them)", name);
	return rc < 0 ? rc : 0;
}

int hearth_store_resolve(const char *name_or_path, char *path, size_t size, struct hearth_err *err)
{
	struct stat st;
	if (!stat(name_or_path, &st) && !S_ISDIR(st.st_mode)) {
		if ((size_t)snprintf(path, size, "%s", name_or_path) >= size)
			return err_set(err, HEARTH_EINVAL, "%.200s: the path is longer than %zu bytes", name_or_path, size - 1);
		return 0;
	}
	return find_stored(name_or_path, path, size, err);
}

/* Removes the directories above path that are empty, up to models/. */
static void prune_dirs(const char *path, const char *models)
{
	char dir[HEARTH_STORE_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	for (char *slash; (slash = strrchr(dir, '/')) && slash > dir + strlen(models);) {
		*slash = 0;
		if (rmdir(dir))
			break;
	}
}

int hearth_store_remove(const char *name, struct hearth_err *err)
{
	char path[HEARTH_STORE_PATH_MAX], models[HEARTH_STORE_PATH_MAX], rec[HEARTH_STORE_PATH_MAX + 8];
	int rc;
	if ((rc = store_models_dir(models, sizeof models, err)) || (rc = find_stored(name, path, sizeof path, err)))
		return rc;
	snprintf(rec, sizeof rec, "%s.json", path);
	if (unlink(path))
		return err_set(err, HEARTH_EIO, "%s: cannot remove it: %s", path, strerror(errno));
	unlink(rec);
	prune_dirs(path, models);
	return 0;
}
