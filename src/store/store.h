/* store.h - the model store's pieces inside the library: references (ref.c),
 * hub file listings (hub.c), resumable downloads (download.c) and the store's
 * layout on disk (store.c). hearth_pull (pull.c) puts them together.
 *
 * Not thread-safe beyond what each function says: a pull is one thread's work.
 */
#ifndef HEARTH_STORE_H
#define HEARTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define REF_REPO_MAX 256  /* OWNER/REPO */
#define REF_TAG_MAX 512   /* a quantization or a file path in the repository */
#define REF_URL_MAX 2048

enum ref_kind { REF_HF, REF_MODELSCOPE, REF_URL };

/* A parsed reference (see include/hearth.h for the spellings). */
struct ref {
	enum ref_kind kind;
	char repo[REF_REPO_MAX]; /* "Qwen/Qwen2.5-0.5B-Instruct-GGUF" (hub kinds) */
	char tag[REF_TAG_MAX];   /* "Q4_K_M", a file name, or "" for the default choice */
	char url[REF_URL_MAX];   /* REF_URL: the whole URL */
	char host[256];          /* REF_URL: its host (and port) */
	char file[256];          /* REF_URL: the file name it is stored under */
};

/* One file of a repository as the hub lists it. */
struct hub_file {
	char *path;        /* "sub/dir/name.gguf" (checked: see ref_safe_path) */
	uint64_t size;     /* 0 when not listed */
	char sha256[65];   /* lowercase hex, "" when the hub gives none */
};
struct hub_list {
	struct hub_file *files;
	int n;
};

/* Parses s into *r. HEARTH_EINVAL names what is wrong with it. */
int ref_parse(const char *s, struct ref *r, struct hearth_err *err);
/* The canonical spelling of r with its tag ("Qwen/X-GGUF:Q4_K_M",
 * "modelscope:Qwen/X-GGUF:Q4_K_M", or the URL) into out. */
void ref_format(const struct ref *r, char *out, size_t size);
/* Is path a relative path of plain names ([A-Za-z0-9._+-], none starting with
 * '.', '/' between, at most 8 deep)? Only such paths are used on disk. */
bool ref_safe_path(const char *path);
/* The file among files[0..n) that r's tag chooses, in *pick. Only .gguf files
 * count (mmproj files only when named); shards of a split GGUF are refused.
 * HEARTH_ENOTFOUND / HEARTH_EINVAL (several match) / HEARTH_EUNSUPPORTED
 * (split) with a message naming the repository and the candidates. */
int ref_pick(const struct ref *r, const struct hub_file *files, int n, int *pick, struct hearth_err *err);
/* The quantization named in a file name ("Q4_K_M", "F16", "IQ4_XS"), upper
 * case, into out; false when none. */
bool ref_quant_of(const char *file, char *out, size_t size);

/* The hub's base URL for kind (without a trailing '/') into out: p->endpoint,
 * else the environment's, else the default. */
void hub_endpoint(enum ref_kind kind, const struct hearth_pull_params *p, char *out, size_t size);
/* Lists the repository's files (hub kinds only). */
int hub_list_files(const struct ref *r, const char *endpoint, const char *token, const struct hearth_pull_params *p,
		   struct hub_list *out, struct hearth_err *err);
void hub_list_free(struct hub_list *l);
/* The download URL of file in r's repository into out. */
void hub_file_url(const struct ref *r, const char *endpoint, const char *file, char *out, size_t size);
/* Applies the shared transfer options of p (timeouts, protocols, user agent,
 * cancel) to a libcurl easy handle; token (may be NULL) goes to the first
 * host only. */
void hub_curl_setup(void *curl, const struct hearth_pull_params *p, const char *token);

struct json_t;
/* What download_file fetches and how it is checked. */
struct download_req {
	const char *url;
	const char *dest;       /* the final path; the transfer goes to dest.partial */
	const char *token;      /* NULL: none */
	uint64_t size;          /* expected bytes, 0: unknown (then headers may tell) */
	const char *sha256;     /* expected digest (hex), NULL or "": unknown (then headers may tell) */
	bool etag_is_sha256;    /* a 64-hex-digit ETag is the file's SHA-256 (hubs) */
	const struct json_t *record; /* a JSON object written to dest.json (with "size" and "sha256" set) */
	const struct hearth_pull_params *p;
};
/* Downloads (or resumes) req->url into req->dest, verified; see hearth_pull. */
int download_file(const struct download_req *req, struct hearth_err *err);

/* The store's models directory (HOME/models) into out. */
int store_models_dir(char *out, size_t size, struct hearth_err *err);
/* The directory a repository's (or a URL host's) files are stored in. */
int store_repo_dir(const struct ref *r, char *out, size_t size, struct hearth_err *err);
/* Creates every missing directory above the file path. */
int store_mkdirs(const char *file_path, struct hearth_err *err);
/* The stored files (paths relative to dir, .gguf only, no partials) under dir,
 * as hub_files with size set and sha256 from their records. */
int store_scan(const char *dir, struct hub_list *out, struct hearth_err *err);

#endif /* HEARTH_STORE_H */
