/*
 * usage-api.c - the usage routes (GET, arguments in the URL's query):
 *
 *   /v1/organization/usage/completions   OpenAI's usage API: start_time (unix
 *        seconds, inclusive), end_time (exclusive, default now), bucket_width
 *        1m|1h|1d [1d], group_by api_key_id and/or model (repeated, or
 *        comma-separated), limit (buckets: 1d 7/31, 1h 24/168, 1m 60/1440
 *        default/most), page (next_page), models, api_key_ids
 *   /v1/hearth/usage/latency   per bucket: requests, TTFT, inter-token and queue
 *        percentiles, prefix-cache hit rate (same arguments)
 *   /v1/hearth/usage/samples   queue length, KV use and prefix hits over time
 *        (start_time, end_time, models, limit rows [1440, at most 100000])
 *   /v1/hearth/usage/cost      per key and model: tokens, CPU seconds, cost here
 *        and at the API's prices (--price)
 *
 * An admin key (or anyone on a server without keys) sees every key; any
 * other key sees its own usage only, whatever it asks for. Samples and the
 * latency of everyone together are the admin's: other keys get their own
 * requests' latency, and 403 for samples.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usage.h"

#define QUERY_VALUES_MAX 16

/* The values of query argument name (repeats, each split at commas) into
 * out (pointing into buf); how many, -1 when too many. */
static int query_list(const struct call *call, const char *name, char *buf, size_t size, const char **out, int max)
{
	const char *vals[QUERY_VALUES_MAX];
	int n = 0, nv = call->http && call->http->query ? call->http->query(call->http, name, vals, QUERY_VALUES_MAX) : 0;
	size_t used = 0;
	char alt[64];
	if (nv == 0) { /* name[]=... as some clients send arrays */
		snprintf(alt, sizeof alt, "%s[]", name);
		nv = call->http && call->http->query ? call->http->query(call->http, alt, vals, QUERY_VALUES_MAX) : 0;
	}
	for (int i = 0; i < nv; i++) {
		const size_t len = strlen(vals[i]);
		if (used + len + 1 > size)
			return -1;
		char *save = NULL, *s = memcpy(buf + used, vals[i], len + 1);
		used += len + 1;
		for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (n == max)
				return -1;
			out[n++] = tok;
		}
	}
	return n;
}

/* One integer argument (absent: *v untouched); false after a 400 reply. */
static bool query_int(const struct call *call, const char *name, int64_t lo, int64_t hi, int64_t *v, struct reply *rp)
{
	const char *val;
	if (!call->http || !call->http->query || call->http->query(call->http, name, &val, 1) != 1)
		return true;
	char *end;
	errno = 0;
	long long x = strtoll(val, &end, 10);
	if (!*val || *end || errno || x < lo || x > hi) {
		reply_error(rp, 400, "invalid_request_error", name, "invalid_value",
			    "%s must be a whole number from %lld to %lld, got '%.40s'", name, (long long)lo, (long long)hi, val);
		return false;
	}
	*v = x;
	return true;
}

/* bucket_width and limit's default and most for it; false after a 400 reply. */
static bool query_width(const struct call *call, struct usage_query *q, int *def, int *most, struct reply *rp)
{
	const char *w = "1d";
	if (call->http && call->http->query)
		call->http->query(call->http, "bucket_width", &w, 1);
	if (!strcmp(w, "1m"))
		q->width = 60, *def = 60, *most = 1440;
	else if (!strcmp(w, "1h"))
		q->width = 3600, *def = 24, *most = 168;
	else if (!strcmp(w, "1d"))
		q->width = 86400, *def = 7, *most = 31;
	else {
		reply_error(rp, 400, "invalid_request_error", "bucket_width", "invalid_value",
			    "bucket_width must be 1m, 1h or 1d, got '%.20s'", w);
		return false;
	}
	return true;
}

/* group_by: api_key_id, model (others OpenAI knows are answered null); false after a 400 reply. */
static bool query_group(const struct call *call, struct usage_query *q, struct reply *rp)
{
	const char *g[QUERY_VALUES_MAX];
	char store[1024];
	int n = query_list(call, "group_by", store, sizeof store, g, QUERY_VALUES_MAX);
	for (int i = 0; i < n; i++) {
		if (!strcmp(g[i], "api_key_id"))
			q->by_key = true;
		else if (!strcmp(g[i], "model"))
			q->by_model = true;
		else if (strcmp(g[i], "project_id") && strcmp(g[i], "user_id") && strcmp(g[i], "batch")) {
			reply_error(rp, 400, "invalid_request_error", "group_by", "invalid_value",
				    "group_by takes api_key_id and model (project_id, user_id, batch: null here), got '%.40s'", g[i]);
			return false;
		}
	}
	if (n < 0) {
		reply_error(rp, 400, "invalid_request_error", "group_by", "invalid_value", "group_by has too many values");
		return false;
	}
	return true;
}

/* The text q's filters point into (the caller's). */
struct query_bufs {
	char models[4096], keys[4096], page[64];
};

static bool query_filters(const struct call *call, struct usage_query *q, struct query_bufs *b, struct reply *rp)
{
	q->n_models = query_list(call, "models", b->models, sizeof b->models, q->models, 16);
	q->n_keys = query_list(call, "api_key_ids", b->keys, sizeof b->keys, q->keys, 16);
	if (q->n_models < 0 || q->n_keys < 0) {
		reply_error(rp, 400, "invalid_request_error", q->n_models < 0 ? "models" : "api_key_ids", "invalid_value",
			    "at most 16 values of %s", q->n_models < 0 ? "models" : "api_key_ids");
		return false;
	}
	const char *page = NULL;
	if (call->http && call->http->query && call->http->query(call->http, "page", &page, 1) == 1) {
		char *end;
		errno = 0;
		long long x = strncmp(page, "page_", 5) ? -1 : strtoll(page + 5, &end, 10);
		if (x < 0 || errno || *end) {
			reply_error(rp, 400, "invalid_request_error", "page", "invalid_value",
				    "page must be a next_page value of an earlier reply, got '%.40s'", page);
			return false;
		}
		q->page = x;
	}
	return true;
}

static bool parse_with(const struct call *call, struct usage_query *q, struct query_bufs *b, int64_t now,
		       struct reply *rp)
{
	int def, most;
	int64_t limit = -1, start = -1, end = now;
	memset(q, 0, sizeof *q);
	if (!query_width(call, q, &def, &most, rp) || !query_int(call, "end_time", 0, (int64_t)1 << 40, &end, rp) ||
	    !query_int(call, "start_time", 0, (int64_t)1 << 40, &start, rp) ||
	    !query_int(call, "limit", 1, most, &limit, rp) || !query_group(call, q, rp) || !query_filters(call, q, b, rp))
		return false;
	q->limit = limit > 0 ? (int)limit : def;
	q->end = end;
	/* no start_time: the last `limit` buckets, the one holding end_time last */
	q->start = start >= 0 ? start : end - end % q->width - (int64_t)(q->limit - 1) * q->width;
	if (q->start < 0)
		q->start = 0;
	if (q->end < q->start) {
		reply_error(rp, 400, "invalid_request_error", "end_time", "invalid_value",
			    "end_time (%lld) is before start_time (%lld)", (long long)q->end, (long long)q->start);
		return false;
	}
	return true;
}

/* The store, or NULL after a 503 reply. */
static struct usage_store *store_or_503(struct server *srv, struct reply *rp)
{
	if (!srv->usage)
		reply_error(rp, 503, "service_unavailable", NULL, "usage_not_recorded",
			    "Usage is not recorded by this server (--no-usage, or its database could not be opened)");
	return srv->usage;
}

/* The query, limited to the caller's own key unless it is an admin; false after a reply. */
static bool caller_query(struct server *srv, const struct call *call, struct usage_query *q, struct query_bufs *b,
			 struct reply *rp)
{
	if (!store_or_503(srv, rp) || !parse_with(call, q, b, (int64_t)time(NULL), rp))
		return false;
	if (!keys_is_admin(srv, call->tenant))
		q->only_key = keys_name(srv, call->tenant);
	return true;
}

static void answer(struct reply *rp, json_t *j, const struct hearth_err *err)
{
	if (j)
		reply_json(rp, 200, j);
	else
		reply_error(rp, 500, "server_error", NULL, NULL, "%s", err->msg[0] ? err->msg : "out of memory");
}

void api_usage_completions(struct server *srv, const struct call *call, struct reply *rp)
{
	struct usage_query q;
	struct query_bufs b;
	struct hearth_err err = { 0 };
	if (caller_query(srv, call, &q, &b, rp))
		answer(rp, usage_query_completions(srv->usage, &q, &err), &err);
}

void api_usage_latency(struct server *srv, const struct call *call, struct reply *rp)
{
	struct usage_query q;
	struct query_bufs b;
	struct hearth_err err = { 0 };
	if (caller_query(srv, call, &q, &b, rp))
		answer(rp, usage_query_latency(srv->usage, &q, &err), &err);
}

void api_usage_cost(struct server *srv, const struct call *call, struct reply *rp)
{
	struct usage_query q;
	struct query_bufs b;
	struct hearth_err err = { 0 };
	if (caller_query(srv, call, &q, &b, rp))
		answer(rp, usage_query_cost(srv, &q, &err), &err);
}

void api_usage_samples(struct server *srv, const struct call *call, struct reply *rp)
{
	struct usage_query q;
	struct query_bufs b;
	struct hearth_err err = { 0 };
	int64_t rows = 1440;
	if (!store_or_503(srv, rp))
		return;
	if (!keys_is_admin(srv, call->tenant)) {
		reply_error(rp, 403, "permission_error", NULL, "admin_key_required",
			    "The server's samples need an admin key (a key file line 'NAME KEY admin')");
		return;
	}
	memset(&q, 0, sizeof q);
	q.end = (int64_t)time(NULL);
	q.start = -1;
	if (!query_int(call, "end_time", 0, (int64_t)1 << 40, &q.end, rp) ||
	    !query_int(call, "start_time", 0, (int64_t)1 << 40, &q.start, rp) ||
	    !query_int(call, "limit", 1, 100000, &rows, rp) || !query_filters(call, &q, &b, rp))
		return;
	q.start = q.start >= 0 ? q.start : q.end - 86400;
	q.limit = (int)rows;
	answer(rp, usage_query_samples(srv->usage, &q, &err), &err);
}
