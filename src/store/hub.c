/* hub.c - talking to model hubs: where they are, what a repository holds,
 * where its files download from, and the transfer options every request
 * shares.
 *
 * Hugging Face (HF_ENDPOINT, default https://huggingface.co; mirrors such as
 * hf-mirror.com speak the same API):
 *   GET  /api/models/OWNER/REPO/tree/main?recursive=true
 *        [{"type":"file","path":"x.gguf","size":N,"lfs":{"oid":"<sha256>","size":N}}, ...]
 *   GET  /OWNER/REPO/resolve/main/PATH   (302 to a CDN; X-Linked-Etag, X-Linked-Size)
 * ModelScope (MODELSCOPE_ENDPOINT, default https://www.modelscope.cn):
 *   GET  /api/v1/models/OWNER/REPO/repo/files?Revision=master&Recursive=true
 *        {"Code":200,"Data":{"Files":[{"Path":"x.gguf","Type":"blob","Size":N,"Sha256":"..."}]}}
 *   GET  /models/OWNER/REPO/resolve/master/PATH
 *
 * A listing page is read into a buffer capped at HUB_LIST_MAX_BYTES; a
 * listing holds at most HUB_LIST_MAX_FILES files over HUB_LIST_MAX_PAGES pages
 * (followed only on the same endpoint); all far above real repositories.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/err.h"
#include "store.h"

#define HUB_LIST_MAX_BYTES (16u << 20)
#define HUB_LIST_MAX_FILES 100000
#define HUB_LIST_MAX_PAGES 100 /* Hugging Face pages long listings (Link: <...>; rel="next") */

void hub_endpoint(enum ref_kind kind, const struct hearth_pull_params *p, char *out, size_t size)
{
	const char *ep = p && p->endpoint && p->endpoint[0] ? p->endpoint : NULL;
	if (!ep)
		ep = getenv(kind == REF_MODELSCOPE ? "MODELSCOPE_ENDPOINT" : "HF_ENDPOINT");
	if (!ep || !ep[0])
		ep = kind == REF_MODELSCOPE ? "https://www.modelscope.cn" : "https://huggingface.co";
	size_t n = strlen(ep);
	while (n > 0 && ep[n - 1] == '/')
		n--;
	snprintf(out, size, "%.*s", (int)n, ep);
}

void hub_file_url(const struct ref *r, const char *endpoint, const char *file, char *out, size_t size)
{
	if (r->kind == REF_MODELSCOPE)
		snprintf(out, size, "%s/models/%s/resolve/master/%s", endpoint, r->repo, file);
	else
		snprintf(out, size, "%s/%s/resolve/main/%s", endpoint, r->repo, file);
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const struct hearth_pull_params *p = user;
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return p->cancel && *p->cancel ? 1 : 0;
}

void hub_curl_setup(void *curl, const struct hearth_pull_params *p, const char *token)
{
	CURL *c = curl;
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, p->connect_timeout_s > 0 ? p->connect_timeout_s : 15L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, p->low_speed_bytes > 0 ? p->low_speed_bytes : 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, p->low_speed_time_s > 0 ? p->low_speed_time_s : 30L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)p);
	/* libcurl sends these credentials to the first host only, never to the
	 * host of a redirect (CURLOPT_UNRESTRICTED_AUTH stays off) */
	if (token && token[0]) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
	}
}

struct body {
	char *data;
	size_t len, cap;
	bool too_big;
	char next[REF_URL_MAX + 256]; /* the Link header's rel="next" URL, "" when none */
};

/* Link: <URL>; rel="next" */
static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
	struct body *b = user;
	size_t n = size * nitems;
	if (n > 5 && !strncasecmp(buf, "link:", 5)) {
		const char *lt = memchr(buf, '<', n), *gt = lt ? memchr(lt, '>', (size_t)(buf + n - lt)) : NULL;
		size_t len = gt ? (size_t)(gt - lt - 1) : 0;
		char rest[64];
		snprintf(rest, sizeof rest, "%.*s", gt ? (int)(buf + n - gt - 1 < 63 ? buf + n - gt - 1 : 63) : 0,
			 gt ? gt + 1 : "");
		if (gt && strstr(rest, "rel=\"next\"") && len < sizeof b->next) {
			memcpy(b->next, lt + 1, len);
			b->next[len] = 0;
		}
	}
	return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct body *b = user;
	size_t n = size * nmemb;
	if (n > HUB_LIST_MAX_BYTES - b->len) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return 0;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = 0;
	return n;
}

/* GET url into *b; 0 only for a 200. */
static int get_json(const char *url, const char *what, const char *token, const struct hearth_pull_params *p,
		    struct body *b, struct hearth_err *err)
{
	CURL *c = curl_easy_init();
	long status = 0;
	if (!c)
		return err_set(err, HEARTH_ENOMEM, "%s: cannot start a transfer", url);
	hub_curl_setup(c, p, token);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, b);
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return err_set(err, HEARTH_ESHUTDOWN, "%s: cancelled", what);
	if (b->too_big)
		return err_set(err, HEARTH_ETOOBIG, "%s: the file listing is larger than %u MiB", url,
			       HUB_LIST_MAX_BYTES >> 20);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return err_set(err, HEARTH_ETIMEDOUT, "%s: %s", url, curl_easy_strerror(cc));
	if (cc != CURLE_OK)
		return err_set(err, cc == CURLE_WRITE_ERROR ? HEARTH_ENOMEM : HEARTH_EIO, "%s: %s", url,
			       curl_easy_strerror(cc));
	if (status == 401 || status == 403)
		return err_set(err, HEARTH_EIO, "%s: access refused (HTTP %ld): a gated or private repository needs a token "
			       "(HF_TOKEN)", what, status);
	if (status == 404)
		return err_set(err, HEARTH_ENOTFOUND, "%s: no such repository at %s (HTTP 404)", what, url);
	if (status != 200)
		return err_set(err, HEARTH_EIO, "%s: %s answered HTTP %ld", what, url, status);
	return 0;
}

/* Copies a 64-hex-digit digest in lower case, else leaves out empty. */
static void copy_sha(char out[65], const char *s)
{
	out[0] = 0;
	if (!s || strlen(s) != 64)
		return;
	for (int i = 0; i < 64; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			out[0] = 0;
			return;
		}
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[64] = 0;
}

static int add_file(struct hub_list *l, const char *path, json_int_t size, const char *sha, struct hearth_err *err)
{
	if (!path || !ref_safe_path(path))
		return 0; /* never stored on disk: skipped (a pick naming it finds nothing) */
	if (l->n >= HUB_LIST_MAX_FILES)
		return err_set(err, HEARTH_ETOOBIG, "the repository lists more than %d files", HUB_LIST_MAX_FILES);
	struct hub_file *f = &l->files[l->n];
	if (!(f->path = strdup(path)))
		return err_set(err, HEARTH_ENOMEM, "out of memory listing files");
	f->size = size > 0 ? (uint64_t)size : 0;
	copy_sha(f->sha256, sha);
	l->n++;
	return 0;
}

static int parse_hf(json_t *root, struct hub_list *l, struct hearth_err *err)
{
	size_t i;
	json_t *e;
	json_array_foreach(root, i, e) {
		const char *type = json_string_value(json_object_get(e, "type"));
		json_t *lfs = json_object_get(e, "lfs");
		if (type && strcmp(type, "file"))
			continue;
		json_int_t size = json_integer_value(json_object_get(lfs ? lfs : e, "size"));
		int rc = add_file(l, json_string_value(json_object_get(e, "path")), size,
				  json_string_value(json_object_get(lfs, "oid")), err);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_modelscope(json_t *files, struct hub_list *l, struct hearth_err *err)
{
	size_t i;
	json_t *e;
	json_array_foreach(files, i, e) {
		const char *type = json_string_value(json_object_get(e, "Type"));
		if (type && !strcmp(type, "tree"))
			continue;
		int rc = add_file(l, json_string_value(json_object_get(e, "Path")),
				  json_integer_value(json_object_get(e, "Size")),
				  json_string_value(json_object_get(e, "Sha256")), err);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_listing(const struct ref *r, const char *url, const struct body *b, struct hub_list *out,
			 struct hearth_err *err)
{
	json_error_t je;
	json_t *root = json_loadb(b->data ? b->data : "", b->len, 0, &je);
	json_t *arr = r->kind == REF_MODELSCOPE ? json_object_get(json_object_get(root, "Data"), "Files") : root;
	int rc = 0;
	if (!json_is_array(arr)) {
		rc = err_set(err, HEARTH_EIO, "%s: the file listing is not what the hub sends (%s)", url,
			     root ? "no file array" : je.text);
		goto out;
	}
	size_t n = json_array_size(arr);
	if (n > (size_t)(HUB_LIST_MAX_FILES - out->n)) {
		rc = err_set(err, HEARTH_ETOOBIG, "%s: lists more than %d files", url, HUB_LIST_MAX_FILES);
		goto out;
	}
	struct hub_file *files = realloc(out->files, ((size_t)out->n + n + 1) * sizeof *files);
	if (!files) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory for %zu files", url, n);
		goto out;
	}
	out->files = files;
	rc = r->kind == REF_MODELSCOPE ? parse_modelscope(arr, out, err) : parse_hf(arr, out, err);
out:
	json_decref(root);
	return rc;
}

int hub_list_files(const struct ref *r, const char *endpoint, const char *token, const struct hearth_pull_params *p,
		   struct hub_list *out, struct hearth_err *err)
{
	char url[REF_URL_MAX + 256], what[REF_REPO_MAX + 16];
	struct body b = { 0 };
	memset(out, 0, sizeof *out);
	if (r->kind == REF_MODELSCOPE)
		snprintf(url, sizeof url, "%s/api/v1/models/%s/repo/files?Revision=master&Recursive=true", endpoint,
			 r->repo);
	else
		snprintf(url, sizeof url, "%s/api/models/%s/tree/main?recursive=true", endpoint, r->repo);
	snprintf(what, sizeof what, "%s%s", r->kind == REF_MODELSCOPE ? "modelscope:" : "", r->repo);
	int rc = 0;
	for (int page = 0; !rc && url[0]; page++) {
		if (page == HUB_LIST_MAX_PAGES) {
			rc = err_set(err, HEARTH_ETOOBIG, "%s: the file listing has more than %d pages", what,
				     HUB_LIST_MAX_PAGES);
			break;
		}
		b.len = 0;
		b.next[0] = 0;
		if (!(rc = get_json(url, what, token, p, &b, err)))
			rc = parse_listing(r, url, &b, out, err);
		/* the next page only from the same hub (the token goes there) */
		size_t k = strlen(endpoint);
		bool same = !strncmp(b.next, endpoint, k) && b.next[k] == '/';
		snprintf(url, sizeof url, "%s", same ? b.next : "");
	}
	free(b.data);
	if (rc)
		hub_list_free(out);
	return rc;
}

void hub_list_free(struct hub_list *l)
{
	for (int i = 0; l && i < l->n; i++)
		free(l->files[i].path);
	if (l) {
		free(l->files);
		l->files = NULL;
		l->n = 0;
	}
}
