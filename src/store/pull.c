/* pull.c - hearth_pull: a reference to a verified file in the store.
 *
 * For a hub reference: list the repository, pick the file the tag names
 * (ref.c), and download it from the hub's resolve URL unless the store has
 * it already with the listed size and digest. For a URL: download it unless
 * stored. The token goes to the hub's host only (a URL gets it only when it
 * is on the hub's endpoint), never to the host a redirect leads to.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/err.h"
#include "../base/log.h"
#include "store.h"

struct hearth_pull_params hearth_pull_default_params(void)
{
	return (struct hearth_pull_params){
		.connect_timeout_s = 15,
		.low_speed_time_s = 30,
		.low_speed_bytes = 1024,
		.max_retries = 3,
	};
}

static const char *token_for(enum ref_kind kind, const struct hearth_pull_params *p)
{
	const char *t = p->token && p->token[0] ? p->token : getenv(kind == REF_MODELSCOPE ? "MODELSCOPE_API_TOKEN" : "HF_TOKEN");
	return t && t[0] ? t : NULL;
}

/* Is the stored file at path the listed one (same size; same digest when both are known)? */
static bool have_already(const char *path, const struct hub_file *f)
{
	struct stat st;
	char rec[HEARTH_STORE_PATH_MAX + 8];
	if (stat(path, &st) || !S_ISREG(st.st_mode) || (f->size && (uint64_t)st.st_size != f->size))
		return false;
	if (!f->sha256[0])
		return true;
	snprintf(rec, sizeof rec, "%s.json", path);
	json_t *j = json_load_file(rec, 0, NULL);
	const char *sha = json_string_value(json_object_get(j, "sha256"));
	bool same = !sha || !strcmp(sha, f->sha256);
	json_decref(j);
	return same;
}

static int copy_out(const char *path, char *out, size_t size, struct hearth_err *err)
{
	if ((size_t)snprintf(out, size, "%s", path) >= size)
		return err_set(err, HEARTH_EINVAL, "%.200s: the path is longer than %zu bytes", path, size - 1);
	return 0;
}

static int fetch(const struct ref *r, const char *url, const char *dest, const char *token, const struct hub_file *f,
		 const struct hearth_pull_params *p, struct hearth_err *err)
{
	char name[REF_URL_MAX + REF_REPO_MAX + 16];
	ref_format(r, name, sizeof name);
	json_t *rec = json_pack("{s:s, s:s, s:s}", "ref", name, "url", url, "file", f ? f->path : r->file);
	struct download_req req = {
		.url = url, .dest = dest, .token = token, .size = f ? f->size : 0, .sha256 = f ? f->sha256 : NULL,
		.etag_is_sha256 = r->kind != REF_URL, .record = rec, .p = p,
	};
	int rc = rec ? store_mkdirs(dest, err) : err_set(err, HEARTH_ENOMEM, "out of memory");
	if (!rc)
		rc = download_file(&req, err);
	json_decref(rec);
	return rc;
}

static int pull_url(const struct ref *r, const struct hearth_pull_params *p, char *out, size_t size,
		    struct hearth_err *err)
{
	char dir[HEARTH_STORE_PATH_MAX], dest[HEARTH_STORE_PATH_MAX], hf[REF_URL_MAX];
	struct stat st;
	int rc = store_repo_dir(r, dir, sizeof dir, err);
	if (rc)
		return rc;
	if ((size_t)snprintf(dest, sizeof dest, "%s/%s", dir, r->file) >= sizeof dest)
		return err_set(err, HEARTH_EINVAL, "%s: the path is too long", dir);
	if (!stat(dest, &st) && S_ISREG(st.st_mode))
		return copy_out(dest, out, size, err);
	hub_endpoint(REF_HF, p, hf, sizeof hf);
	size_t n = strlen(hf);
	const char *token = !strncmp(r->url, hf, n) && r->url[n] == '/' ? token_for(REF_HF, p) : NULL;
	if (!(rc = fetch(r, r->url, dest, token, NULL, p, err)))
		rc = copy_out(dest, out, size, err);
	return rc;
}

static int pull_hub(const struct ref *r, const struct hearth_pull_params *p, char *out, size_t size,
		    struct hearth_err *err)
{
	char endpoint[REF_URL_MAX], dir[HEARTH_STORE_PATH_MAX], dest[HEARTH_STORE_PATH_MAX], url[2 * REF_URL_MAX];
	const char *token = token_for(r->kind, p);
	struct hub_list l;
	int pick, rc;
	hub_endpoint(r->kind, p, endpoint, sizeof endpoint);
	if ((rc = store_repo_dir(r, dir, sizeof dir, err)) || (rc = hub_list_files(r, endpoint, token, p, &l, err)))
		return rc;
	if ((rc = ref_pick(r, l.files, l.n, &pick, err)))
		goto out;
	const struct hub_file *f = &l.files[pick];
	if ((size_t)snprintf(dest, sizeof dest, "%s/%s", dir, f->path) >= sizeof dest) {
		rc = err_set(err, HEARTH_EINVAL, "%s/%s: the path is too long", dir, f->path);
		goto out;
	}
	if (have_already(dest, f)) {
		if (p->progress)
			p->progress(f->size, f->size, p->progress_data);
		rc = copy_out(dest, out, size, err);
		goto out;
	}
	hub_file_url(r, endpoint, f->path, url, sizeof url);
	HLOG_INFO("pulling %s from %s", f->path, url);
	if (!(rc = fetch(r, url, dest, token, f, p, err)))
		rc = copy_out(dest, out, size, err);
out:
	hub_list_free(&l);
	return rc;
}

int hearth_pull(const char *ref, const struct hearth_pull_params *p, char *path_out, size_t size,
		struct hearth_err *err)
{
	struct hearth_pull_params dp = hearth_pull_default_params();
	struct ref *r = malloc(sizeof *r);
	int rc;
	if (!r)
		return err_set(err, HEARTH_ENOMEM, "out of memory");
	if (!p)
		p = &dp;
	if (!(rc = ref_parse(ref, r, err)))
		rc = r->kind == REF_URL ? pull_url(r, p, path_out, size, err) : pull_hub(r, p, path_out, size, err);
	free(r);
	return rc;
}
