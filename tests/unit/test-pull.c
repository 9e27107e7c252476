/* test-pull.c - the model store and `hearth pull` against a mock hub that this
 * process serves on 127.0.0.1 (libmicrohttpd, a port of the kernel's
 * choosing). The mock speaks Hugging Face's endpoints (the tree listing with
 * lfs.oid digests, resolve answering 302 to a "CDN" path with X-Linked-Etag
 * and X-Linked-Size) and ModelScope's, and can be told to refuse ranges, to
 * cut the connection mid-file, to trickle, and to redirect to another host
 * name (localhost) so that the token's confinement to the hub shows.
 *
 * Every pull goes to a fresh HEARTH_HOME under the test's temporary folder. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/base/sha256.h"
#include "../../src/store/store.h"
#include "../harness.h"

#define REPO "test/Tiny-GGUF"
#define TOKEN "hf_unit_test_token"

struct mock_file {
	const char *path;
	int content;     /* 0: the model, 1: not a GGUF, 2: missing (404 on resolve), 3: listed as 1 EB */
	bool wrong_sha;  /* the listing's digest is not the content's */
};

static const struct mock_file mock_files[] = {
	{ "tiny-Q4_K_M.gguf", 0, false },
	{ "tiny-q8_0.gguf", 0, false },
	{ "tiny-F16.gguf", 0, true },
	{ "tiny-Q2_K.gguf", 1, false },
	{ "tiny-Q3_K_M.gguf", 2, false },
	{ "split/tiny-Q5_K_M-00001-of-00002.gguf", 0, false },
	{ "split/tiny-Q5_K_M-00002-of-00002.gguf", 0, false },
	{ "README.md", 1, false },
	{ "huge-Q6_K.gguf", 3, false },
};
#define N_MOCK_FILES (int)(sizeof mock_files / sizeof *mock_files)

struct hub {
	struct MHD_Daemon *d;
	unsigned port;
	char base[64];
	unsigned char *model, *other;
	size_t model_len;
	char model_sha[65], other_sha[65];
	/* knobs */
	bool ranges, cross_host, slow;
	size_t cut_at; /* > 0: the next CDN body is cut after this many bytes (once) */
	/* what the hub saw */
	int n_list, n_cdn;
	long last_range; /* -1: the last CDN request had no Range */
	bool auth_list, auth_resolve, auth_cdn;
	volatile int stopping;
};

static void sha_hex(const unsigned char *p, size_t n, char out[65])
{
	struct sha256 *h = NULL;
	unsigned char d[32];
	struct hearth_err err;
	out[0] = 0;
	if (sha256_new(&h, &err))
		return;
	sha256_begin(h);
	sha256_update(h, p, n);
	if (!sha256_end(h, d))
		for (int i = 0; i < 32; i++)
			snprintf(out + 2 * i, 3, "%02x", d[i]);
	sha256_free(h);
}

/* ---- the mock ------------------------------------------------------------------ */

struct body_src {
	struct hub *h;
	const unsigned char *data;
	size_t len, cut;
	bool slow;
};

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct body_src *s = cls;
	if (s->cut && pos >= s->cut)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = s->len - (size_t)pos;
	if (n > max)
		n = max;
	if (s->cut && n > s->cut - pos)
		n = s->cut - (size_t)pos;
	if (s->slow && pos >= 4096) {
		if (s->h->stopping)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
		n = n > 16 ? 16 : n;
	}
	memcpy(buf, s->data + pos, n);
	return (ssize_t)n;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static const struct mock_file *find_file(const char *path)
{
	for (int i = 0; i < N_MOCK_FILES; i++)
		if (!strcmp(mock_files[i].path, path))
			return &mock_files[i];
	return NULL;
}

static const char *sha_of(struct hub *h, const struct mock_file *f)
{
	return f->wrong_sha ? "0000000000000000000000000000000000000000000000000000000000000000" :
	       f->content == 1 ? h->other_sha : h->model_sha;
}

/* Hugging Face's listing comes in two pages (Link: rel="next"), ModelScope's in one. */
static enum MHD_Result listing(struct hub *h, struct MHD_Connection *c, bool modelscope)
{
	const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
	bool second = !modelscope && cursor && !strcmp(cursor, "p2");
	int from = second ? 4 : 0, to = modelscope || second ? N_MOCK_FILES : 4;
	json_t *files = json_array();
	for (int i = from; i < to; i++) {
		const struct mock_file *f = &mock_files[i];
		size_t size = f->content == 1 ? 300 : f->content == 3 ? (size_t)1 << 60 : h->model_len;
		if (modelscope)
			json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:I, s:s}", "Name", f->path, "Path", f->path,
							       "Type", "blob", "Size", (json_int_t)size, "Sha256",
							       sha_of(h, f)));
		else
			json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:{s:s, s:I}}", "type", "file", "path",
							       f->path, "size", (json_int_t)size, "lfs", "oid",
							       sha_of(h, f), "size", (json_int_t)size));
	}
	if (!modelscope)
		json_array_append_new(files, json_pack("{s:s, s:s}", "type", "directory", "path", "split"));
	json_t *root = modelscope ? json_pack("{s:i, s:{s:o}}", "Code", 200, "Data", "Files", files) : files;
	char *s = json_dumps(root, 0), link[256];
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
	snprintf(link, sizeof link, "<%s/api/models/" REPO "/tree/main?recursive=true&cursor=p2>; rel=\"next\"", h->base);
	if (!modelscope && !second)
		MHD_add_response_header(r, "Link", link);
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	free(s);
	json_decref(root);
	h->n_list++;
	return ret;
}

static enum MHD_Result resolve(struct hub *h, struct MHD_Connection *c, const char *file)
{
	const struct mock_file *f = find_file(file);
	char loc[512], etag[80], size[32];
	if (!f || f->content == 2)
		return answer(c, 404, "Entry not found");
	snprintf(loc, sizeof loc, "http://%s:%u/cdn/%s", h->cross_host ? "localhost" : "127.0.0.1", h->port, file);
	snprintf(etag, sizeof etag, "\"%s\"", sha_of(h, f));
	snprintf(size, sizeof size, "%zu", f->content == 1 ? (size_t)300 : h->model_len);
	struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Location", loc);
	MHD_add_response_header(r, "X-Linked-Etag", etag);
	MHD_add_response_header(r, "X-Linked-Size", size);
	enum MHD_Result ret = MHD_queue_response(c, 302, r);
	MHD_destroy_response(r);
	return ret;
}

/* The file's bytes, from a Range's start when ranges are on. */
static enum MHD_Result cdn(struct hub *h, struct MHD_Connection *c, const char *file)
{
	const struct mock_file *f = find_file(file);
	const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
	unsigned long long from = 0;
	if (!f || f->content == 2)
		return answer(c, 404, "no such object");
	h->n_cdn++;
	h->last_range = range && sscanf(range, "bytes=%llu-", &from) == 1 ? (long)from : -1;
	const unsigned char *data = f->content == 1 ? h->other : h->model;
	size_t len = f->content == 1 ? 300 : h->model_len;
	if (!h->ranges || from > len)
		from = 0;
	struct body_src *s = calloc(1, sizeof *s);
	*s = (struct body_src){ h, data + from, len - from, h->cut_at, h->slow };
	h->cut_at = 0;
	struct MHD_Response *r = MHD_create_response_from_callback(len - from, 64 * 1024, read_body, s, free);
	char cr[96];
	if (h->ranges) {
		MHD_add_response_header(r, "Accept-Ranges", "bytes");
		snprintf(cr, sizeof cr, "bytes %llu-%zu/%zu", from, len - 1, len);
		if (from)
			MHD_add_response_header(r, "Content-Range", cr);
	}
	snprintf(cr, sizeof cr, "\"%s\"", sha_of(h, f));
	MHD_add_response_header(r, "ETag", cr);
	enum MHD_Result ret = MHD_queue_response(c, h->ranges && from ? 206 : 200, r);
	MHD_destroy_response(r);
	return ret;
}

static bool bearer(struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	return a && !strcmp(a, "Bearer " TOKEN);
}

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			     const char *version, const char *data, size_t *size, void **state)
{
	struct hub *h = cls;
	(void)version, (void)data, (void)size, (void)state;
	if (strcmp(method, "GET"))
		return answer(c, 405, "GET only");
	if (!strcmp(url, "/api/models/" REPO "/tree/main")) {
		h->auth_list = bearer(c);
		return listing(h, c, false);
	}
	if (!strcmp(url, "/api/v1/models/" REPO "/repo/files"))
		return listing(h, c, true);
	if (!strncmp(url, "/" REPO "/resolve/main/", strlen("/" REPO "/resolve/main/"))) {
		h->auth_resolve = bearer(c);
		return resolve(h, c, url + strlen("/" REPO "/resolve/main/"));
	}
	if (!strncmp(url, "/models/" REPO "/resolve/master/", strlen("/models/" REPO "/resolve/master/")))
		return cdn(h, c, url + strlen("/models/" REPO "/resolve/master/"));
	if (!strncmp(url, "/cdn/", 5)) {
		h->auth_cdn = bearer(c);
		return cdn(h, c, url + 5);
	}
	return answer(c, 404, "Repository not found");
}

static bool hub_start(struct hub *h)
{
	FILE *f = fopen(fixture("models/stories260K.f32.gguf"), "rb");
	memset(h, 0, sizeof *h);
	h->ranges = true;
	h->last_range = -1;
	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	h->model_len = (size_t)ftell(f);
	rewind(f);
	h->model = malloc(h->model_len);
	h->other = malloc(300);
	bool ok = h->model && h->other && fread(h->model, 1, h->model_len, f) == h->model_len;
	fclose(f);
	if (!ok)
		return false;
	memset(h->other, '<', 300); /* an HTML page, say */
	sha_hex(h->model, h->model_len, h->model_sha);
	sha_hex(h->other, 300, h->other_sha);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, route, h,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
	if (!h->d)
		return false;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	snprintf(h->base, sizeof h->base, "http://127.0.0.1:%u", h->port);
	return h->port != 0;
}

static void hub_stop(struct hub *h)
{
	h->stopping = 1;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h->model);
	free(h->other);
}

/* ---- helpers ------------------------------------------------------------------- */

/* A fresh, empty HEARTH_HOME; no HF_* from the environment. */
static void fresh_home(const char *name)
{
	const char *home = tmp_path(name);
	mkdir(home, 0700);
	setenv("HEARTH_HOME", home, 1);
	unsetenv("HF_ENDPOINT");
	unsetenv("HF_TOKEN");
	unsetenv("MODELSCOPE_ENDPOINT");
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
}

static struct hearth_pull_params quick_params(const struct hub *h)
{
	struct hearth_pull_params p = hearth_pull_default_params();
	p.endpoint = h->base;
	p.connect_timeout_s = 5;
	p.low_speed_time_s = 5;
	p.max_retries = 0;
	return p;
}

static bool exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool exists(const char *fmt, ...)
{
	char path[1024];
	struct stat st;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path, sizeof path, fmt, ap);
	va_end(ap);
	return !stat(path, &st);
}

static bool same_bytes(const char *path, const struct hub *h)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(h->model_len + 1);
	bool same = f && buf && fread(buf, 1, h->model_len + 1, f) == h->model_len && !memcmp(buf, h->model, h->model_len);
	if (f)
		fclose(f);
	free(buf);
	return same;
}

#define DIR_HF(h) "%s/models/hf/" REPO

/* ---- references and picking, without the network -------------------------------- */

void test_store_refs(void)
{
	struct ref r;
	struct hearth_err err = { 0 };
	char s[600];
	T_OK(ref_parse("Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", &r, &err), err);
	T_TRUE(r.kind == REF_HF);
	T_STR_EQ(r.repo, "Qwen/Qwen2.5-0.5B-Instruct-GGUF");
	T_STR_EQ(r.tag, "Q4_K_M");
	T_OK(ref_parse("hf.co/bartowski/X-GGUF:iq4_xs", &r, &err), err);
	T_STR_EQ(r.repo, "bartowski/X-GGUF");
	T_STR_EQ(r.tag, "iq4_xs");
	T_OK(ref_parse("huggingface.co/a/b:latest", &r, &err), err);
	T_STR_EQ(r.tag, "");
	T_OK(ref_parse("modelscope:Qwen/X-GGUF", &r, &err), err);
	T_TRUE(r.kind == REF_MODELSCOPE);
	ref_format(&r, s, sizeof s);
	T_STR_EQ(s, "modelscope:Qwen/X-GGUF");
	T_OK(ref_parse("https://example.com:8443/m/x.gguf?download=1", &r, &err), err);
	T_TRUE(r.kind == REF_URL);
	T_STR_EQ(r.file, "x.gguf");
	T_STR_EQ(r.host, "example.com:8443");
	static const char *bad[] = { "noslash", "a/b/c", "../x/y", "a/.b", "a/b:", "a/b:../../etc", "a b/c",
				     "https://h/", "https://h/%2e%2e", "a/b:x//y", "" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = ref_parse(bad[i], &r, &err);
		if (rc != HEARTH_EINVAL)
			T_FAIL("'%s' parsed (rc %d)", bad[i], rc);
	}
	T_TRUE(ref_safe_path("a/b-c.gguf") && !ref_safe_path("a//b") && !ref_safe_path("/a") && !ref_safe_path("a/../b"));

	T_TRUE(ref_quant_of("qwen2.5-0.5b-instruct-q4_k_m.gguf", s, sizeof s));
	T_STR_EQ(s, "Q4_K_M");
	T_TRUE(ref_quant_of("Model.IQ4_XS.gguf", s, sizeof s));
	T_STR_EQ(s, "IQ4_XS");
	T_TRUE(ref_quant_of("x-F16.gguf", s, sizeof s));
	T_STR_EQ(s, "F16");
	T_TRUE(!ref_quant_of("qwen2-instruct.gguf", s, sizeof s));

	struct hub_file files[] = {
		{ "m-Q4_K_M.gguf", 1, "" }, { "m-Q4_K_S.gguf", 1, "" }, { "m-q8_0.gguf", 1, "" },
		{ "mmproj-m-f16.gguf", 1, "" }, { "s/m-Q6_K-00001-of-00002.gguf", 1, "" },
		{ "s/m-Q6_K-00002-of-00002.gguf", 1, "" }, { "README.md", 1, "" }, { "a-Q3_K.gguf", 1, "" },
		{ "b-Q3_K.gguf", 1, "" },
	};
	const int n = sizeof files / sizeof *files;
	int pick = -1;
	static const struct { const char *ref; int want; int rc; } cases[] = {
		{ "o/r", 0, 0 },                   /* no tag: Q4_K_M */
		{ "o/r:q4_k_m", 0, 0 },            /* case-insensitive */
		{ "o/r:Q4_K_S", 1, 0 },
		{ "o/r:Q4_K", -1, HEARTH_ENOTFOUND },  /* not inside Q4_K_M */
		{ "o/r:Q8_0", 2, 0 },
		{ "o/r:m-q8_0.gguf", 2, 0 },       /* a file by name */
		{ "o/r:m-q8_0", 2, 0 },
		{ "o/r:mmproj-m-f16", 3, 0 },      /* mmproj only by name */
		{ "o/r:F16", -1, HEARTH_ENOTFOUND },
		{ "o/r:Q6_K", -1, HEARTH_EUNSUPPORTED }, /* split */
		{ "o/r:Q3_K", -1, HEARTH_EINVAL },       /* two */
		{ "o/r:README.md", -1, HEARTH_ENOTFOUND },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		T_OK(ref_parse(cases[i].ref, &r, &err), err);
		pick = -1;
		int rc = ref_pick(&r, files, n, &pick, &err);
		if (rc != cases[i].rc || (!rc && pick != cases[i].want))
			T_FAIL("%s: rc %d pick %d, expected rc %d pick %d (%s)", cases[i].ref, rc, pick, cases[i].rc,
			       cases[i].want, rc ? err.msg : "");
		if (rc && !strstr(err.msg, "o/r"))
			T_FAIL("%s: the message does not name the repository: %s", cases[i].ref, err.msg);
	}
	struct hub_file one[] = { { "only.gguf", 1, "" }, { "mmproj-x.gguf", 1, "" } };
	T_OK(ref_parse("o/r", &r, &err), err);
	T_OK(ref_pick(&r, one, 2, &pick, &err), err);
	T_EQ_I64(pick, 0);
}

/* ---- pulls ----------------------------------------------------------------------- */

/* Listing, default pick, redirect, digests, the token's reach, the record, a
 * second pull that downloads nothing, and resolving and removing by name. */
void test_pull_hub(void)
{
	struct hub h;
	struct hearth_err err = { 0 };
	char path[HEARTH_STORE_PATH_MAX], got[HEARTH_STORE_PATH_MAX];
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-hub");
	const char *home = getenv("HEARTH_HOME");
	struct hearth_pull_params p = quick_params(&h);
	p.endpoint = NULL; /* HF_ENDPOINT */
	setenv("HF_ENDPOINT", h.base, 1);
	setenv("HF_TOKEN", TOKEN, 1);
	h.cross_host = true; /* the CDN is "localhost": another host */
	T_OK(hearth_pull("hf.co/" REPO, &p, path, sizeof path, &err), err);
	T_TRUE(strstr(path, "/models/hf/" REPO "/tiny-Q4_K_M.gguf") != NULL);
	T_TRUE(same_bytes(path, &h));
	T_TRUE(h.auth_list && h.auth_resolve);
	T_EQ_I64(h.n_list, 2); /* both pages */
	T_TRUE(!h.auth_cdn); /* never to the redirect's host */
	T_TRUE(!exists("%s.partial", path) && !exists("%s.partial.json", path));
	char rec_path[HEARTH_STORE_PATH_MAX + 8];
	snprintf(rec_path, sizeof rec_path, "%s.json", path);
	json_t *rec = json_load_file(rec_path, 0, NULL);
	T_STR_EQ(json_string_value(json_object_get(rec, "sha256")), h.model_sha);
	T_STR_EQ(json_string_value(json_object_get(rec, "ref")), REPO);
	json_decref(rec);

	/* there already: listed again, not downloaded again */
	int n_cdn = h.n_cdn;
	T_OK(hearth_pull(REPO ":Q4_K_M", &p, path, sizeof path, &err), err);
	T_EQ_I64(h.n_cdn, n_cdn);

	/* the same host after the redirect: the token goes along */
	h.cross_host = false;
	T_OK(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), err);
	T_TRUE(h.auth_cdn);

	/* names: every spelling, the list, a file as is, an unknown one */
	static const char *names[] = { REPO ":Q4_K_M", "hf.co/" REPO ":q4_k_m", REPO, "tiny-Q4_K_M", "tiny-q4_k_m.gguf" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		if (hearth_store_resolve(names[i], got, sizeof got, &err) || !strstr(got, "tiny-Q4_K_M.gguf"))
			T_FAIL("%s resolved to '%s' (%s)", names[i], got, err.msg);
	}
	T_OK(hearth_store_resolve(REPO ":Q8_0", got, sizeof got, &err), err);
	T_STR_EQ(got, path);
	T_OK(hearth_store_resolve(fixture("models/stories260K.f32.gguf"), got, sizeof got, &err), err);
	T_STR_EQ(got, fixture("models/stories260K.f32.gguf"));
	T_EQ_I64(hearth_store_resolve("other/Repo:Q4_K_M", got, sizeof got, &err), HEARTH_ENOTFOUND);
	T_TRUE(strstr(err.msg, "other/Repo:Q4_K_M") && strstr(err.msg, "hearth pull"));

	struct hearth_store_entry *e = NULL;
	int n = 0;
	T_OK(hearth_store_list(&e, &n, &err), err);
	T_EQ_I64(n, 2);
	if (n == 2) {
		T_STR_EQ(e[0].name, REPO ":Q4_K_M");
		T_STR_EQ(e[1].name, REPO ":Q8_0");
		T_STR_EQ(e[0].short_name, "tiny-Q4_K_M");
		T_EQ_I64(e[0].size, h.model_len);
		T_STR_EQ(e[0].source, REPO);
		T_OK(hearth_store_resolve(e[1].name, got, sizeof got, &err), err);
		T_STR_EQ(got, e[1].path);
	}
	free(e);
	/* a model loads by its name */
	struct hearth_model *m = NULL;
	struct hearth_model_params mp = hearth_model_default_params();
	T_OK(hearth_store_resolve(REPO ":Q8_0", got, sizeof got, &err), err);
	T_OK(hearth_model_load(&m, got, &mp, &err), err);
	hearth_model_free(m);

	T_OK(hearth_store_remove(REPO ":Q4_K_M", &err), err);
	T_TRUE(!exists(DIR_HF() "/tiny-Q4_K_M.gguf", home) && !exists(DIR_HF() "/tiny-Q4_K_M.gguf.json", home));
	T_TRUE(exists(DIR_HF() "/tiny-q8_0.gguf", home));
	T_OK(hearth_store_remove("tiny-q8_0", &err), err);
	T_TRUE(!exists(DIR_HF(), home)); /* empty directories go too */
	T_EQ_I64(hearth_store_remove("tiny-q8_0", &err), HEARTH_ENOTFOUND);
	T_EQ_I64(hearth_store_remove(fixture("models/stories260K.f32.gguf"), &err), HEARTH_ENOTFOUND);
	T_TRUE(exists("%s", fixture("models/stories260K.f32.gguf")));
	T_OK(hearth_store_list(&e, &n, &err), err);
	T_EQ_I64(n, 0);
	free(e);
	hub_stop(&h);
}

struct progress_seen {
	uint64_t last_done, last_total;
	int calls;
};

static void on_progress(uint64_t done, uint64_t total, void *user)
{
	struct progress_seen *s = user;
	s->last_done = done;
	s->last_total = total;
	s->calls++;
}

/* A connection cut mid-file leaves a partial the next pull resumes from (a
 * Range from where it stopped), with the digest still checked. */
void test_pull_resume(void)
{
	struct hub h;
	struct hearth_err err = { 0 };
	char path[HEARTH_STORE_PATH_MAX];
	struct progress_seen seen = { 0 };
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-resume");
	const char *home = getenv("HEARTH_HOME");
	struct hearth_pull_params p = quick_params(&h);
	p.progress = on_progress;
	p.progress_data = &seen;
	const size_t cut = 400000;
	h.cut_at = cut;
	T_EQ_I64(hearth_pull(REPO ":Q4_K_M", &p, path, sizeof path, &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "400000") != NULL);
	T_TRUE(!exists(DIR_HF() "/tiny-Q4_K_M.gguf", home));
	T_TRUE(exists(DIR_HF() "/tiny-Q4_K_M.gguf.partial", home));
	T_OK(hearth_pull(REPO ":Q4_K_M", &p, path, sizeof path, &err), err);
	T_EQ_I64(h.last_range, cut);
	T_TRUE(same_bytes(path, &h));
	T_EQ_I64(seen.last_done, h.model_len);
	T_EQ_I64(seen.last_total, h.model_len);
	T_TRUE(!exists(DIR_HF() "/tiny-Q4_K_M.gguf.partial", home));

	/* within one call: cut, then resumed by the retry */
	h.cut_at = 100000;
	p.max_retries = 2;
	int n_cdn = h.n_cdn;
	T_OK(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), err);
	T_EQ_I64(h.n_cdn, n_cdn + 2);
	T_EQ_I64(h.last_range, 100000);
	T_TRUE(same_bytes(path, &h));

	/* a server without ranges: the cut partial is not kept, and the next pull starts over */
	h.ranges = false;
	h.cut_at = cut;
	p.max_retries = 0;
	T_EQ_I64(hearth_pull(REPO ":q4_k_s", &p, path, sizeof path, &err), HEARTH_ENOTFOUND);
	fresh_home("home-resume-2");
	home = getenv("HEARTH_HOME");
	T_EQ_I64(hearth_pull(REPO, &p, path, sizeof path, &err), HEARTH_EIO);
	T_TRUE(!exists(DIR_HF() "/tiny-Q4_K_M.gguf.partial", home) && !exists(DIR_HF() "/tiny-Q4_K_M.gguf", home));
	T_OK(hearth_pull(REPO, &p, path, sizeof path, &err), err);
	T_EQ_I64(h.last_range, -1);
	T_TRUE(same_bytes(path, &h));

	/* a pull of the same file already under way: refused, its partial untouched */
	char partial[1024];
	snprintf(partial, sizeof partial, DIR_HF() "/tiny-q8_0.gguf.partial", home);
	h.ranges = true;
	h.cut_at = cut;
	T_EQ_I64(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), HEARTH_EIO);
	int fd = open(partial, O_RDWR);
	T_TRUE(fd >= 0 && !flock(fd, LOCK_EX | LOCK_NB));
	T_EQ_I64(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), HEARTH_EBUSY);
	struct stat st;
	T_TRUE(!stat(partial, &st) && st.st_size == (off_t)cut);
	if (fd >= 0)
		close(fd);
	T_OK(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), err);
	T_TRUE(same_bytes(path, &h));
	T_OK(hearth_store_remove(REPO ":Q8_0", &err), err);

	/* a partial whose server now ignores the Range: 200 starts it over, still right */
	h.ranges = true;
	h.cut_at = cut;
	T_EQ_I64(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), HEARTH_EIO);
	h.ranges = false;
	T_OK(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), err);
	T_EQ_I64(h.last_range, cut); /* asked for the rest, got everything */
	T_TRUE(same_bytes(path, &h));
	hub_stop(&h);
}

/* Refusals: a wrong digest, a file that is not GGUF, a 404, an unknown
 * repository, a split GGUF; nothing is ever left under the final name. */
void test_pull_refused(void)
{
	struct hub h;
	struct hearth_err err = { 0 };
	char path[HEARTH_STORE_PATH_MAX];
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-refused");
	const char *home = getenv("HEARTH_HOME");
	struct hearth_pull_params p = quick_params(&h);

	T_EQ_I64(hearth_pull(REPO ":F16", &p, path, sizeof path, &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "SHA-256") != NULL);
	T_TRUE(!exists(DIR_HF() "/tiny-F16.gguf", home) && !exists(DIR_HF() "/tiny-F16.gguf.partial", home) &&
	       !exists(DIR_HF() "/tiny-F16.gguf.partial.json", home));

	T_EQ_I64(hearth_pull(REPO ":Q2_K", &p, path, sizeof path, &err), HEARTH_EBADGGUF);
	T_TRUE(strstr(err.msg, "not a GGUF") != NULL);
	T_TRUE(!exists(DIR_HF() "/tiny-Q2_K.gguf", home) && !exists(DIR_HF() "/tiny-Q2_K.gguf.partial", home));

	T_EQ_I64(hearth_pull(REPO ":Q3_K_M", &p, path, sizeof path, &err), HEARTH_ENOTFOUND);
	T_TRUE(strstr(err.msg, "404") != NULL);
	T_TRUE(!exists(DIR_HF() "/tiny-Q3_K_M.gguf", home) && !exists(DIR_HF() "/tiny-Q3_K_M.gguf.partial", home));

	T_EQ_I64(hearth_pull("test/Nothing-GGUF", &p, path, sizeof path, &err), HEARTH_ENOTFOUND);
	T_TRUE(strstr(err.msg, "test/Nothing-GGUF") != NULL);
	T_EQ_I64(hearth_pull(REPO ":Q5_K_M", &p, path, sizeof path, &err), HEARTH_EUNSUPPORTED);
	T_TRUE(strstr(err.msg, "split") != NULL);
	T_EQ_I64(hearth_pull(REPO ":IQ1_S", &p, path, sizeof path, &err), HEARTH_ENOTFOUND);
	T_TRUE(strstr(err.msg, "tiny-Q4_K_M.gguf") != NULL); /* says what there is */
	int n_cdn = h.n_cdn;
	T_EQ_I64(hearth_pull(REPO ":Q6_K", &p, path, sizeof path, &err), HEARTH_ETOOBIG); /* more than the disk has */
	T_TRUE(strstr(err.msg, "GB free") != NULL);
	T_EQ_I64(h.n_cdn, n_cdn); /* refused before asking */
	T_TRUE(!exists(DIR_HF() "/huge-Q6_K.gguf.partial", home));

	/* a URL that is not a GGUF; a URL on a port nobody listens on */
	char url[256];
	snprintf(url, sizeof url, "%s/cdn/tiny-Q2_K.gguf", h.base);
	T_EQ_I64(hearth_pull(url, &p, path, sizeof path, &err), HEARTH_EBADGGUF);
	snprintf(url, sizeof url, "%s/" REPO "/resolve/main/tiny-F16.gguf", h.base); /* X-Linked-Etag is wrong */
	T_EQ_I64(hearth_pull(url, &p, path, sizeof path, &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "SHA-256") != NULL);
	T_TRUE(!exists("%s/models/url/127.0.0.1_%u/tiny-F16.gguf.partial", home, h.port) &&
	       !exists("%s/models/url/127.0.0.1_%u/tiny-F16.gguf", home, h.port));
	snprintf(url, sizeof url, "%s/cdn/tiny-q8_0.gguf", h.base);
	T_OK(hearth_pull(url, &p, path, sizeof path, &err), err);
	T_TRUE(same_bytes(path, &h));
	T_TRUE(strstr(path, "/models/url/127.0.0.1_") != NULL);
	hub_stop(&h);
	T_EQ_I64(hearth_pull(REPO, &p, path, sizeof path, &err), HEARTH_EIO); /* the hub is gone */
	T_TRUE(strstr(err.msg, "127.0.0.1") != NULL);
}

/* A trickling server ends in HEARTH_ETIMEDOUT within the stall limit, and a
 * cancel flag stops a pull. */
void test_pull_slow(void)
{
	struct hub h;
	struct hearth_err err = { 0 };
	char path[HEARTH_STORE_PATH_MAX];
	struct timespec t0, t1;
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-slow");
	const char *home = getenv("HEARTH_HOME");
	struct hearth_pull_params p = quick_params(&h);
	p.low_speed_time_s = 1;
	p.low_speed_bytes = 1000;
	h.slow = true;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	T_EQ_I64(hearth_pull(REPO ":Q4_K_M", &p, path, sizeof path, &err), HEARTH_ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	T_TRUE(t1.tv_sec - t0.tv_sec < 5);
	T_TRUE(strstr(err.msg, "stalled") != NULL);
	T_TRUE(!exists(DIR_HF() "/tiny-Q4_K_M.gguf", home));
	T_TRUE(exists(DIR_HF() "/tiny-Q4_K_M.gguf.partial", home)); /* resumable */

	static volatile int stop = 1;
	p.cancel = &stop;
	p.low_speed_time_s = 30;
	T_EQ_I64(hearth_pull(REPO ":Q8_0", &p, path, sizeof path, &err), HEARTH_ESHUTDOWN);
	T_TRUE(!exists(DIR_HF() "/tiny-q8_0.gguf", home));
	h.slow = false;
	p.cancel = NULL;
	T_OK(hearth_pull(REPO ":Q4_K_M", &p, path, sizeof path, &err), err);
	T_TRUE(h.last_range >= 4096); /* resumed from wherever it stalled */
	T_TRUE(same_bytes(path, &h));
	hub_stop(&h);
}

/* ModelScope's listing and download paths, MODELSCOPE_ENDPOINT. */
void test_pull_modelscope(void)
{
	struct hub h;
	struct hearth_err err = { 0 };
	char path[HEARTH_STORE_PATH_MAX], got[HEARTH_STORE_PATH_MAX];
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-ms");
	struct hearth_pull_params p = quick_params(&h);
	p.endpoint = NULL;
	setenv("MODELSCOPE_ENDPOINT", h.base, 1);
	T_OK(hearth_pull("modelscope:" REPO ":q8_0", &p, path, sizeof path, &err), err);
	T_TRUE(strstr(path, "/models/modelscope/" REPO "/tiny-q8_0.gguf") != NULL);
	T_TRUE(same_bytes(path, &h));
	T_OK(hearth_store_resolve("modelscope:" REPO ":Q8_0", got, sizeof got, &err), err);
	T_STR_EQ(got, path);
	T_EQ_I64(hearth_store_resolve(REPO ":Q8_0", got, sizeof got, &err), HEARTH_ENOTFOUND); /* not from HF */
	T_EQ_I64(hearth_pull("modelscope:" REPO ":F16", &p, path, sizeof path, &err), HEARTH_EIO); /* wrong Sha256 */
	hub_stop(&h);
}

/* The commands: pull, list, show, run -m NAME, rm. */
void test_pull_cli(void)
{
	struct hub h;
	char cmd[1024], out[8192];
	const char *bin = getenv("HEARTH_BIN") ? getenv("HEARTH_BIN") : "build/hearth";
	if (!hub_start(&h)) {
		T_FAIL("the mock hub did not start");
		hub_stop(&h);
		return;
	}
	fresh_home("home-cli");
	static const struct { const char *args; int rc; const char *has; } steps[] = {
		{ "pull --endpoint %s " REPO ":Q8_0 2>&1", 0, "pull: 100%" },
		{ "list", 0, REPO ":Q8_0" },
		{ "show " REPO ":Q8_0", 0, "architecture     llama" },
		{ "run -m tiny-q8_0 -p Once -n 4 --temp 0 2>/dev/null", 0, "upon" },
		{ "pull --endpoint %s " REPO ":F16 2>&1", 1, "SHA-256 mismatch" },
		{ "run -m nobody/nothing:Q4_K_M -p x 2>&1", 1, "hearth pull nobody/nothing:Q4_K_M" },
		{ "run -m /nonexistent.gguf -p x 2>&1", 1, "no such file" },
		{ "rm " REPO ":Q8_0", 0, "removed" },
		{ "list", 0, "no models" },
		{ "pull 2>&1", 2, "REF is required" },
	};
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		char args[512];
		snprintf(args, sizeof args, steps[i].args, h.base);
		snprintf(cmd, sizeof cmd, "%s %s", bin, args);
		FILE *f = popen(cmd, "r");
		size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
		out[n] = 0;
		int st = f ? pclose(f) : -1;
		int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (rc != steps[i].rc || !strstr(out, steps[i].has))
			T_FAIL("hearth %s: exit %d (expected %d), output lacks '%s':\n%s", args, rc, steps[i].rc,
			       steps[i].has, out);
	}
	hub_stop(&h);
}
