/* download.c - one file from a URL into the store: resumable, verified, and
 * never under its final name unless whole.
 *
 *   DEST.partial       the bytes so far (appended to; its SHA-256 is
 *                      recomputed from disk before a resumed transfer)
 *   DEST.partial.json  {"url","size","sha256"}: what the partial is part of;
 *                      a partial of anything else is started over
 *   DEST.json          the record of the finished file (req->record)
 *   DEST               renamed from DEST.partial once size and SHA-256 match
 *
 * A transfer with a partial asks for "Range: bytes=N-": 206 appends, 200
 * starts over. Redirects are followed (http and https only). The expected
 * size and digest come from the hub's listing, else from the headers of the
 * responses on the way (X-Linked-Size, X-Linked-Etag on Hugging Face's
 * redirect; a 64-hex-digit ETag when the caller says ETags are digests),
 * else from Content-Length. The first four bytes must be "GGUF". More bytes
 * than expected, or than the disk has free, end the transfer.
 *
 * The partial is locked while a pull writes it (a second one at the same
 * time is refused with HEARTH_EBUSY). After a failure the partial stays only
 * when the server can resume it (it answered 206 or Accept-Ranges: bytes)
 * and the transfer broke off (cut, stalled, cancelled, a 5xx); anything
 * refused is deleted.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/log.h"
#include "../base/sha256.h"
#include "store.h"

#define DL_HASH_CHUNK (1u << 20)

/* One download: its files, what is expected, and the response being read. */
struct dl {
	const struct download_req *req;
	struct hearth_err *err;
	char partial[HEARTH_STORE_PATH_MAX + 16], meta[HEARTH_STORE_PATH_MAX + 24];
	int fd;
	struct sha256 *sha;
	uint64_t offset; /* bytes in the partial when this transfer began */
	uint64_t done;   /* bytes in the partial now */
	uint64_t total;  /* the file's size, 0 while unknown */
	uint64_t room;   /* free bytes on the store's disk at the start */
	char want_sha[65];
	uint8_t head[4];
	int n_head;
	/* the response being received (reset at each status line) */
	long status;
	int64_t content_length;   /* -1: none */
	int64_t range_start, range_total; /* Content-Range, -1: none */
	char etag_sha[65];
	/* from any response on the way (Hugging Face puts them on its redirect) */
	char linked_sha[65];
	uint64_t linked_size;
	bool started;   /* the final response's body began */
	bool resumable; /* the server takes ranges */
	bool cut;       /* the transfer broke off (connection, stall, cancel, a 5xx): worth resuming */
	int rc;         /* an error a callback set (err is filled) */
};

/* ---- headers --------------------------------------------------------------- */

static void copy_hex64(char out[65], const char *s, size_t n)
{
	out[0] = 0;
	if (n != 64)
		return;
	for (size_t i = 0; i < 64; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			out[0] = 0;
			return;
		}
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[64] = 0;
}

/* An ETag's value without W/ and quotes. */
static void etag_hex(char out[65], const char *v, size_t n)
{
	if (n >= 2 && !strncmp(v, "W/", 2))
		v += 2, n -= 2;
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		v++, n -= 2;
	copy_hex64(out, v, n);
}

static int64_t parse_u63(const char *s, size_t n)
{
	int64_t v = 0;
	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "bytes START-END/TOTAL" */
static void parse_content_range(struct dl *d, const char *v, size_t n)
{
	const char *dash = memchr(v, '-', n), *slash = memchr(v, '/', n);
	if (n < 6 || strncasecmp(v, "bytes ", 6) || !dash || !slash || dash > slash)
		return;
	d->range_start = parse_u63(v + 6, (size_t)(dash - v - 6));
	d->range_total = parse_u63(slash + 1, (size_t)(v + n - slash - 1));
}

static void on_header_field(struct dl *d, const char *name, size_t name_len, const char *v, size_t n)
{
#define IS(s) (name_len == sizeof s - 1 && !strncasecmp(name, s, name_len))
	if (IS("content-length"))
		d->content_length = parse_u63(v, n);
	else if (IS("content-range"))
		parse_content_range(d, v, n);
	else if (IS("accept-ranges") && n == 5 && !strncasecmp(v, "bytes", 5))
		d->resumable = true;
	else if (IS("etag"))
		etag_hex(d->etag_sha, v, n);
	else if (IS("x-linked-etag"))
		etag_hex(d->linked_sha, v, n);
	else if (IS("x-linked-size")) {
		int64_t s = parse_u63(v, n);
		d->linked_size = s > 0 ? (uint64_t)s : 0;
	}
#undef IS
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
	struct dl *d = user;
	size_t n = size * nitems;
	while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
		n--;
	if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
		const char *sp = memchr(buf, ' ', n);
		d->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		d->content_length = d->range_start = d->range_total = -1;
		d->etag_sha[0] = 0;
		return size * nitems;
	}
	const char *colon = memchr(buf, ':', n);
	if (colon) {
		const char *v = colon + 1, *end = buf + n;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		on_header_field(d, buf, (size_t)(colon - buf), v, (size_t)(end - v));
	}
	return size * nitems;
}

/* ---- body ------------------------------------------------------------------ */

static int status_error(struct dl *d)
{
	const char *url = d->req->url;
	if (d->status == 404)
		return err_set(d->err, HEARTH_ENOTFOUND, "%s: not found (HTTP 404)", url);
	if (d->status == 401 || d->status == 403)
		return err_set(d->err, HEARTH_EIO, "%s: access refused (HTTP %ld): a gated or private model needs a token "
			       "(HF_TOKEN)", url, d->status);
	return err_set(d->err, HEARTH_EIO, "%s: the server answered HTTP %ld", url, d->status);
}

/* Starts the partial over (the server sent the whole file). */
static int restart(struct dl *d)
{
	if (ftruncate(d->fd, 0) || lseek(d->fd, 0, SEEK_SET) < 0)
		return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
	d->offset = d->done = 0;
	d->n_head = 0;
	sha256_begin(d->sha);
	return 0;
}

/* The final response's headers are all in: check them against what is expected. */
static int begin_body(struct dl *d)
{
	const char *url = d->req->url;
	int rc;
	if (d->status != 200 && d->status != 206)
		return status_error(d);
	if (!d->want_sha[0])
		memcpy(d->want_sha, d->linked_sha[0] || !d->req->etag_is_sha256 ? d->linked_sha : d->etag_sha, 65);
	if (!d->total)
		d->total = d->linked_size;
	if (d->status == 206) {
		if (d->range_start != (int64_t)d->offset)
			return err_set(d->err, HEARTH_EIO, "%s: asked for bytes from %" PRIu64 ", the server sent them from %" PRId64,
				       url, d->offset, d->range_start);
		d->resumable = true;
		if (!d->total && d->range_total > 0)
			d->total = (uint64_t)d->range_total;
		if (d->range_total > 0 && (uint64_t)d->range_total != d->total)
			return err_set(d->err, HEARTH_EIO, "%s: the server has %" PRId64 " bytes, %" PRIu64 " were expected", url,
				       d->range_total, d->total);
	} else {
		if (d->offset > 0 && (rc = restart(d)))
			return rc;
		if (!d->total && d->content_length > 0)
			d->total = (uint64_t)d->content_length;
		if (d->content_length >= 0 && (uint64_t)d->content_length != d->total)
			return err_set(d->err, HEARTH_EIO, "%s: the server sends %" PRId64 " bytes, %" PRIu64 " were expected", url,
				       d->content_length, d->total);
	}
	if (d->total && d->total - d->done > d->room)
		return err_set(d->err, HEARTH_ETOOBIG, "%s: needs %.2f GB more, the disk of %s has %.2f GB free", url,
			       (double)(d->total - d->done) / 1e9, d->req->dest, (double)d->room / 1e9);
	return 0;
}

static int take_bytes(struct dl *d, const char *p, size_t n)
{
	const char *url = d->req->url;
	uint64_t cap = d->total ? d->total : d->done + d->room;
	if (n > cap - d->done)
		return err_set(d->err, HEARTH_ETOOBIG, "%s: the server sends more than the %" PRIu64 " bytes %s", url, cap,
			       d->total ? "expected" : "the disk has room for");
	for (size_t i = 0; i < n && d->n_head < 4; i++)
		d->head[d->n_head++] = (uint8_t)p[i];
	if (d->n_head == 4 && memcmp(d->head, "GGUF", 4))
		return err_set(d->err, HEARTH_EBADGGUF, "%s: not a GGUF file (it starts with %02x %02x %02x %02x)", url,
			       d->head[0], d->head[1], d->head[2], d->head[3]);
	for (size_t w = 0; w < n;) {
		ssize_t k = write(d->fd, p + w, n - w);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, k < 0 ? strerror(errno) : "short write");
		w += (size_t)k;
	}
	sha256_update(d->sha, p, n);
	d->done += n;
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *user)
{
	struct dl *d = user;
	size_t n = size * nmemb;
	if (!d->started) {
		d->started = true;
		if ((d->rc = begin_body(d)))
			return 0;
	}
	if ((d->rc = take_bytes(d, p, n)))
		return 0;
	if (d->req->p->progress)
		d->req->p->progress(d->done, d->total, d->req->p->progress_data);
	return n;
}

/* ---- the partial ----------------------------------------------------------- */

static json_t *identity(const struct download_req *req)
{
	return json_pack("{s:s, s:I, s:s}", "url", req->url, "size", (json_int_t)req->size, "sha256",
			 req->sha256 ? req->sha256 : "");
}

/* Is the partial's record the one req would write? */
static bool same_identity(const struct dl *d)
{
	json_t *had = json_load_file(d->meta, 0, NULL), *want = identity(d->req);
	bool same = had && want && json_equal(had, want);
	json_decref(had);
	json_decref(want);
	return same;
}

/* Hashes the partial's first bytes (the transfer appends to them). */
static int rehash(struct dl *d, uint64_t n)
{
	char *buf = malloc(DL_HASH_CHUNK);
	int rc = 0;
	if (!buf)
		return err_set(d->err, HEARTH_ENOMEM, "%s: out of memory to hash it", d->partial);
	for (uint64_t at = 0; at < n && !rc;) {
		size_t want = n - at < DL_HASH_CHUNK ? (size_t)(n - at) : DL_HASH_CHUNK;
		ssize_t k = pread(d->fd, buf, want, (off_t)at);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, k < 0 ? strerror(errno) : "shorter than it was");
			break;
		}
		for (ssize_t i = 0; i < k && d->n_head < 4; i++)
			d->head[d->n_head++] = (uint8_t)buf[i];
		sha256_update(d->sha, buf, (size_t)k);
		at += (uint64_t)k;
	}
	free(buf);
	return rc;
}

/* Opens the partial: kept and re-hashed when it is part of the same file, else
 * emptied. It is locked (flock) while open: a second pull of the same file
 * at the same time gets HEARTH_EBUSY and leaves it alone. */
static int open_partial(struct dl *d)
{
	struct stat st;
	d->fd = open(d->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->fd < 0)
		return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
	if (flock(d->fd, LOCK_EX | LOCK_NB))
		return err_set(d->err, HEARTH_EBUSY, "%s: another pull is downloading it now", d->req->dest);
	if (fstat(d->fd, &st))
		return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
	bool keep = S_ISREG(st.st_mode) && st.st_size >= 4 && same_identity(d) &&
		    (!d->req->size || (uint64_t)st.st_size <= d->req->size);
	if (!keep && ftruncate(d->fd, 0))
		return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
	sha256_begin(d->sha);
	d->n_head = 0;
	d->offset = d->done = 0;
	if (keep) {
		int rc = rehash(d, (uint64_t)st.st_size);
		if (rc)
			return rc;
		if (memcmp(d->head, "GGUF", 4))
			return restart(d);
		d->offset = d->done = (uint64_t)st.st_size;
		if (lseek(d->fd, 0, SEEK_END) < 0)
			return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
		HLOG_INFO("%s: resuming after %" PRIu64 " bytes", d->req->dest, d->offset);
		return 0;
	}
	json_t *id = identity(d->req);
	int bad = !id || json_dump_file(id, d->meta, 0);
	json_decref(id);
	return bad ? err_set(d->err, HEARTH_EIO, "%s: cannot write it", d->meta) : 0;
}

/* ---- one transfer ------------------------------------------------------------ */

static int transfer_error(struct dl *d, CURLcode cc)
{
	const char *url = d->req->url;
	const struct hearth_pull_params *p = d->req->p;
	char total[32] = "?";
	if (d->total)
		snprintf(total, sizeof total, "%" PRIu64, d->total);
	d->cut = (cc != CURLE_OK && !d->rc) || d->status >= 500;
	if (d->rc)
		return d->rc;
	if (cc == CURLE_OPERATION_TIMEDOUT && !d->status)
		return err_set(d->err, HEARTH_ETIMEDOUT, "%s: no answer within %ld s", url, p->connect_timeout_s);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return err_set(d->err, HEARTH_ESHUTDOWN, "%s: cancelled after %" PRIu64 " bytes", url, d->done);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return err_set(d->err, HEARTH_ETIMEDOUT,
			       "%s: the transfer stalled (under %ld bytes/s for %ld s) after %" PRIu64 " of %s bytes", url,
			       p->low_speed_bytes, p->low_speed_time_s, d->done, total);
	if (cc != CURLE_OK)
		return err_set(d->err, HEARTH_EIO, "%s: %s after %" PRIu64 " of %s bytes", url, curl_easy_strerror(cc),
			       d->done, total);
	if (!d->started && d->status != 200 && d->status != 206)
		return status_error(d);
	if (!d->started && (d->rc = begin_body(d)))
		return d->rc;
	if (d->total && d->done != d->total) {
		d->cut = true;
		return err_set(d->err, HEARTH_EIO, "%s: the connection ended after %" PRIu64 " of %s bytes", url, d->done,
			       total);
	}
	return 0;
}

static int run_transfer(struct dl *d)
{
	char range[48];
	CURL *c = curl_easy_init();
	if (!c)
		return err_set(d->err, HEARTH_ENOMEM, "%s: cannot start a transfer", d->req->url);
	hub_curl_setup(c, d->req->p, d->req->token);
	curl_easy_setopt(c, CURLOPT_URL, d->req->url);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
	if (d->offset) {
		snprintf(range, sizeof range, "%" PRIu64 "-", d->offset);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	CURLcode cc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	return transfer_error(d, cc);
}

/* ---- finishing ------------------------------------------------------------------ */

static void hex(const uint8_t *b, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* DEST.json: the caller's record with the verified size and digest. */
static int write_record(const struct dl *d, const char *sha)
{
	char path[HEARTH_STORE_PATH_MAX + 16], tmp[HEARTH_STORE_PATH_MAX + 32];
	json_t *rec = d->req->record ? json_deep_copy(d->req->record) : json_object();
	snprintf(path, sizeof path, "%s.json", d->req->dest);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int bad = !rec || json_object_set_new(rec, "size", json_integer((json_int_t)d->done)) ||
		  json_object_set_new(rec, "sha256", json_string(sha)) || json_dump_file(rec, tmp, JSON_INDENT(2));
	json_decref(rec);
	if (bad || rename(tmp, path)) {
		unlink(tmp);
		return err_set(d->err, HEARTH_EIO, "%s: cannot write it", path);
	}
	return 0;
}

/* Checks the whole partial and renames it into place. */
static int finish(struct dl *d)
{
	uint8_t digest[SHA256_SIZE];
	char got[65];
	int rc;
	if (d->n_head < 4 || memcmp(d->head, "GGUF", 4))
		return err_set(d->err, HEARTH_EBADGGUF, "%s: not a GGUF file (%" PRIu64 " bytes)", d->req->url, d->done);
	if ((rc = sha256_end(d->sha, digest)))
		return err_set(d->err, rc, "%s: hashing failed", d->partial);
	hex(digest, got);
	if (d->want_sha[0] && strcmp(got, d->want_sha))
		return err_set(d->err, HEARTH_EIO, "%s: SHA-256 mismatch (got %.16s..., expected %.16s...): discarded",
			       d->req->url, got, d->want_sha);
	if (fsync(d->fd))
		return err_set(d->err, HEARTH_EIO, "%s: %s", d->partial, strerror(errno));
	if ((rc = write_record(d, got)))
		return rc;
	if (rename(d->partial, d->req->dest))
		return err_set(d->err, HEARTH_EIO, "%s: cannot rename it into place: %s", d->req->dest, strerror(errno));
	unlink(d->meta);
	return 0;
}

/* Keep the partial for a later resumption? Only when the transfer broke off,
 * never when what came was refused. */
static bool keep_partial(const struct dl *d)
{
	return d->cut && d->done > 0 && d->resumable;
}

static uint64_t free_bytes(const char *dest)
{
	char dir[HEARTH_STORE_PATH_MAX];
	struct statvfs vs;
	snprintf(dir, sizeof dir, "%s", dest);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (statvfs(slash ? dir : ".", &vs))
		return UINT64_MAX;
	return (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
}

/* One attempt; *again when a retry may get further. */
static int attempt(struct dl *d, bool *again)
{
	int rc;
	*again = false;
	d->started = d->cut = false;
	d->rc = 0;
	d->status = 0;
	d->total = d->req->size;
	snprintf(d->want_sha, sizeof d->want_sha, "%s", d->req->sha256 ? d->req->sha256 : "");
	d->room = free_bytes(d->req->dest);
	if ((rc = open_partial(d)))
		goto out;
	if (d->total && d->total - d->done > d->room) {
		rc = err_set(d->err, HEARTH_ETOOBIG, "%s: needs %.2f GB, the disk of %s has %.2f GB free", d->req->url,
			     (double)(d->total - d->done) / 1e9, d->req->dest, (double)d->room / 1e9);
		goto out;
	}
	if (!(d->total && d->done == d->total) && (rc = run_transfer(d)))
		goto out;
	rc = finish(d);
out:
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	if (rc == HEARTH_EBUSY) {
		/* the other pull's files: not ours to touch */
	} else if (rc && keep_partial(d)) {
		*again = rc != HEARTH_ESHUTDOWN && d->done > d->offset;
	} else if (rc) {
		unlink(d->partial);
		unlink(d->meta);
	}
	return rc;
}

int download_file(const struct download_req *req, struct hearth_err *err)
{
	struct dl d = { .req = req, .err = err, .fd = -1 };
	bool again = true;
	int rc = 0;
	if ((size_t)snprintf(d.partial, sizeof d.partial, "%s.partial", req->dest) >= sizeof d.partial ||
	    (size_t)snprintf(d.meta, sizeof d.meta, "%s.partial.json", req->dest) >= sizeof d.meta)
		return err_set(err, HEARTH_EINVAL, "%.200s: the path is too long", req->dest);
	if ((rc = sha256_new(&d.sha, err)))
		return rc;
	for (int i = 0; again && i <= (req->p->max_retries > 0 ? req->p->max_retries : 0); i++) {
		if (i)
			HLOG_WARN("%s; resuming", err->msg);
		rc = attempt(&d, &again);
	}
	sha256_free(d.sha);
	return rc;
}
