/*
 * usage-query.c - the usage record read back as JSON.
 *
 * Buckets: [b, b + width) for b = floor(start / width) * width + i * width
 * (UTC-aligned minutes, hours or days), up to end; only rows with
 * start <= t < end count. A page holds `limit` buckets from q->page (the
 * start of its first bucket; OpenAI's next_page cursor is "page_<that>"),
 * every bucket listed, empty ones with no results, as OpenAI's usage API
 * answers.
 *
 * Every query is bounded: at most one page of buckets, and the latency
 * percentiles read at most LATENCY_ROWS_MAX rows (the most recent beyond
 * that are left out, and the reply says so).
 */
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usage.h"

#define LATENCY_ROWS_MAX 200000
#define SQL_MAX 1024

/* The first bucket's start and how many buckets [start, end) spans. */
static void bucket_span(const struct usage_query *q, int64_t *b0, int64_t *n)
{
	*b0 = q->start - ((q->start % q->width) + q->width) % q->width;
	*n = q->end > *b0 ? (q->end - *b0 + q->width - 1) / q->width : 0;
}

/* The page's buckets: first index, count, and whether more follow. */
static void page_span(const struct usage_query *q, int64_t *b0, int64_t *first, int64_t *count, bool *more)
{
	int64_t n;
	bucket_span(q, b0, &n);
	*first = q->page > *b0 ? (q->page - *b0) / q->width : 0;
	if (*first > n)
		*first = n;
	*count = n - *first < q->limit ? n - *first : q->limit;
	*more = *first + *count < n;
}

/* The WHERE clause's filters after "t >= ?1 AND t < ?2" (binding from ?3). */
static int filters(const struct usage_query *q, char *sql, size_t size, int at)
{
	size_t len = strlen(sql);
	if (q->only_key)
		len += (size_t)snprintf(sql + len, size - len, " AND key = ?%d", at++);
	for (int g = 0; g < 2; g++) {
		const int n = g ? q->n_models : q->n_keys;
		if (!n)
			continue;
		len += (size_t)snprintf(sql + len, size - len, " AND %s IN (", g ? "model" : "key");
		for (int i = 0; i < n; i++)
			len += (size_t)snprintf(sql + len, size - len, "%s?%d", i ? "," : "", at++);
		len += (size_t)snprintf(sql + len, size - len, ")");
	}
	return at;
}

static void bind_filters(const struct usage_query *q, sqlite3_stmt *s, int at)
{
	if (q->only_key)
		sqlite3_bind_text(s, at++, q->only_key, -1, SQLITE_STATIC);
	for (int i = 0; i < q->n_keys; i++)
		sqlite3_bind_text(s, at++, q->keys[i], -1, SQLITE_STATIC);
	for (int i = 0; i < q->n_models; i++)
		sqlite3_bind_text(s, at++, q->models[i], -1, SQLITE_STATIC);
}

/* Prepares sql over [lo, hi) with q's filters bound; NULL with err set. */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, int64_t lo, int64_t hi, const struct usage_query *q,
			     struct hearth_err *err)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		err->code = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "usage store: %s", sqlite3_errmsg(db));
		return NULL;
	}
	sqlite3_bind_int64(s, 1, lo);
	sqlite3_bind_int64(s, 2, hi);
	bind_filters(q, s, 3);
	return s;
}

static json_t *text_or_null(sqlite3_stmt *s, int col, bool grouped)
{
	return grouped ? jsonb_str((const char *)sqlite3_column_text(s, col), (size_t)sqlite3_column_bytes(s, col))
		       : json_null();
}

/* One result row of the completions query in OpenAI's shape (+ cpu_seconds). */
static json_t *completion_result(sqlite3_stmt *s, const struct usage_query *q)
{
	json_t *r = json_pack("{s:s, s:I, s:I, s:I, s:i, s:i, s:I, s:n, s:n, s:n, s:f}", "object",
			      "organization.usage.completions.result", "input_tokens", (json_int_t)sqlite3_column_int64(s, 3),
			      "input_cached_tokens", (json_int_t)sqlite3_column_int64(s, 4), "output_tokens",
			      (json_int_t)sqlite3_column_int64(s, 5), "input_audio_tokens", 0, "output_audio_tokens", 0,
			      "num_model_requests", (json_int_t)sqlite3_column_int64(s, 6), "project_id", "user_id",
			      "batch", "cpu_seconds", sqlite3_column_double(s, 7));
	return jsonb_done(r, jsonb_set(r, "api_key_id", text_or_null(s, 1, q->by_key)) &&
				     jsonb_set(r, "model", text_or_null(s, 2, q->by_model)));
}

/* The page's bucket objects, empty, in *buckets; false when out of memory. */
static bool empty_buckets(int64_t b0, int64_t first, int64_t count, int64_t width, json_t **buckets)
{
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int64_t i = 0; ok && i < count; i++) {
		const int64_t bs = b0 + (first + i) * width;
		ok = jsonb_add(arr, json_pack("{s:s, s:I, s:I, s:[]}", "object", "bucket", "start_time", (json_int_t)bs,
					      "end_time", (json_int_t)(bs + width), "results"));
	}
	*buckets = jsonb_done(arr, ok);
	return *buckets != NULL;
}

/* The page object around data. */
static json_t *page_of(json_t *data, bool more, int64_t next)
{
	char cursor[40];
	snprintf(cursor, sizeof cursor, "page_%" PRId64, next);
	return data ? json_pack("{s:s, s:o, s:b, s:o}", "object", "page", "data", data, "has_more", more, "next_page",
				more ? json_string(cursor) : json_null())
		    : NULL;
}

json_t *usage_query_completions(struct usage_store *st, const struct usage_query *q, struct hearth_err *err)
{
	int64_t b0, first, count;
	bool more, ok;
	json_t *data;
	char sql[SQL_MAX];
	page_span(q, &b0, &first, &count, &more);
	const int64_t lo = b0 + first * q->width, hi = b0 + (first + count) * q->width;
	if (!empty_buckets(b0, first, count, q->width, &data))
		return NULL;
	snprintf(sql, sizeof sql,
		 "SELECT (t - %" PRId64 ") / %" PRId64 ", %s, %s, sum(prompt), sum(cached), sum(completion), count(*),"
		 " total(cpu_s) FROM requests WHERE t >= max(?1, %" PRId64 ") AND t < min(?2, %" PRId64 ")",
		 b0, q->width, q->by_key ? "key" : "''", q->by_model ? "model" : "''", q->start, q->end);
	filters(q, sql, sizeof sql, 3);
	snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
	sqlite3 *db = usage_store_read_lock(st);
	sqlite3_stmt *s = prepare(db, sql, lo, hi, q, err);
	ok = s != NULL;
	int rc = SQLITE_DONE;
	while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const int64_t i = sqlite3_column_int64(s, 0) - first;
		json_t *b = i >= 0 && i < count ? json_array_get(data, (size_t)i) : NULL;
		ok = !b || jsonb_add(json_object_get(b, "results"), completion_result(s, q));
	}
	if (ok && rc != SQLITE_DONE) {
		err->code = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "usage store: %s", sqlite3_errmsg(db));
		ok = false;
	}
	sqlite3_finalize(s);
	usage_store_read_unlock(st);
	if (!ok) {
		json_decref(data);
		return NULL;
	}
	return page_of(data, more, hi);
}

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* {"p50","p90","p99"} of v[0..n) (sorted here; nearest rank), nulls when n is 0. */
static json_t *percentiles(double *v, size_t n)
{
	if (!n)
		return json_pack("{s:n, s:n, s:n}", "p50", "p90", "p99");
	qsort(v, n, sizeof *v, cmp_double);
	const double p[3] = { 0.5, 0.9, 0.99 };
	double r[3];
	for (int i = 0; i < 3; i++) {
		size_t k = (size_t)ceil(p[i] * (double)n);
		r[i] = v[k ? k - 1 : 0];
	}
	return json_pack("{s:f, s:f, s:f}", "p50", r[0], "p90", r[1], "p99", r[2]);
}

/* The latency series of one bucket from its rows' values. */
static json_t *latency_bucket(int64_t bs, int64_t width, double *ttft, size_t n_ttft, double *itl, size_t n_itl,
			      double *queue, size_t n_queue, int64_t n_req, int64_t prompt, int64_t cached)
{
	return json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:o}", "start_time", (json_int_t)bs, "end_time",
			 (json_int_t)(bs + width), "requests", (json_int_t)n_req, "ttft_s", percentiles(ttft, n_ttft),
			 "inter_token_s", percentiles(itl, n_itl), "queue_s", percentiles(queue, n_queue), "prompt_tokens",
			 (json_int_t)prompt, "cached_tokens", (json_int_t)cached, "prefix_cache_hit_rate",
			 prompt ? json_real((double)cached / (double)prompt) : json_null());
}

json_t *usage_query_latency(struct usage_store *st, const struct usage_query *q, struct hearth_err *err)
{
	int64_t b0, first, count;
	bool more, ok = true, cut = false;
	char sql[SQL_MAX];
	page_span(q, &b0, &first, &count, &more);
	const int64_t lo = b0 + first * q->width, hi = b0 + (first + count) * q->width;
	double *v = malloc(3 * (size_t)LATENCY_ROWS_MAX * sizeof *v);
	json_t *data = json_array();
	if (!v || !data) {
		free(v);
		json_decref(data);
		return NULL;
	}
	double *ttft = v, *itl = v + LATENCY_ROWS_MAX, *queue = v + 2 * LATENCY_ROWS_MAX;
	snprintf(sql, sizeof sql,
		 "SELECT (t - %" PRId64 ") / %" PRId64 ", ttft_s, itl_s, queue_s, prompt, cached FROM requests"
		 " WHERE t >= max(?1, %" PRId64 ") AND t < min(?2, %" PRId64 ")",
		 b0, q->width, q->start, q->end);
	filters(q, sql, sizeof sql, 3);
	snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " ORDER BY 1 LIMIT %d", LATENCY_ROWS_MAX);
	sqlite3 *db = usage_store_read_lock(st);
	sqlite3_stmt *s = prepare(db, sql, lo, hi, q, err);
	ok = s != NULL;
	size_t nt = 0, ni = 0, nq = 0, rows = 0;
	int64_t cur = first, n_req = 0, prompt = 0, cached = 0;
	for (int rc = SQLITE_ROW; ok && cur < first + count;) {
		rc = s ? sqlite3_step(s) : SQLITE_DONE;
		const int64_t b = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : first + count;
		while (ok && cur < b && cur < first + count) { /* the buckets before this row are complete */
			ok = jsonb_add(data, latency_bucket(b0 + cur * q->width, q->width, ttft, nt, itl, ni, queue, nq, n_req,
							    prompt, cached));
			nt = ni = nq = 0;
			n_req = prompt = cached = 0;
			cur++;
		}
		if (rc != SQLITE_ROW)
			break;
		rows++;
		n_req++;
		prompt += sqlite3_column_int64(s, 4);
		cached += sqlite3_column_int64(s, 5);
		if (sqlite3_column_type(s, 1) != SQLITE_NULL)
			ttft[nt++] = sqlite3_column_double(s, 1);
		if (sqlite3_column_type(s, 2) != SQLITE_NULL)
			itl[ni++] = sqlite3_column_double(s, 2);
		if (sqlite3_column_type(s, 3) != SQLITE_NULL)
			queue[nq++] = sqlite3_column_double(s, 3);
	}
	cut = rows == LATENCY_ROWS_MAX;
	sqlite3_finalize(s);
	usage_store_read_unlock(st);
	free(v);
	data = jsonb_done(data, ok);
	json_t *page = page_of(data, more, hi);
	return page ? jsonb_done(page, jsonb_set(page, "truncated", json_boolean(cut))) : NULL;
}

json_t *usage_query_samples(struct usage_store *st, const struct usage_query *q, struct hearth_err *err)
{
	char sql[SQL_MAX];
	bool ok;
	snprintf(sql, sizeof sql,
		 "SELECT t, model, waiting, running, kv_use, prefix_queries, prefix_hits FROM samples WHERE t >= ?1 AND "
		 "t < ?2");
	struct usage_query only = { .n_models = q->n_models }; /* samples have no key */
	memcpy(only.models, q->models, sizeof only.models);
	filters(&only, sql, sizeof sql, 3);
	snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " ORDER BY t LIMIT %d", q->limit);
	json_t *data = json_array();
	if (!data)
		return NULL;
	sqlite3 *db = usage_store_read_lock(st);
	sqlite3_stmt *s = prepare(db, sql, q->start, q->end, &only, err);
	ok = s != NULL;
	while (ok && sqlite3_step(s) == SQLITE_ROW) {
		const int64_t pq = sqlite3_column_int64(s, 5), ph = sqlite3_column_int64(s, 6);
		ok = jsonb_add(data, json_pack("{s:I, s:o, s:i, s:i, s:f, s:I, s:I, s:o}", "t",
					       (json_int_t)sqlite3_column_int64(s, 0), "model",
					       jsonb_str((const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1)),
					       "waiting", sqlite3_column_int(s, 2), "running", sqlite3_column_int(s, 3),
					       "kv_use", sqlite3_column_double(s, 4), "prefix_queries", (json_int_t)pq,
					       "prefix_hits", (json_int_t)ph,
					       "prefix_cache_hit_rate", pq ? json_real((double)ph / (double)pq) : json_null()));
	}
	sqlite3_finalize(s);
	usage_store_read_unlock(st);
	data = jsonb_done(data, ok);
	return data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL;
}

/* One key and model's cost row. */
static json_t *cost_row(const struct server *srv, sqlite3_stmt *s, double *api_total, double *here_total, bool *priced)
{
	const char *model = (const char *)sqlite3_column_text(s, 1);
	const int64_t prompt = sqlite3_column_int64(s, 2), cached = sqlite3_column_int64(s, 3),
		      completion = sqlite3_column_int64(s, 4);
	const double cpu = sqlite3_column_double(s, 6);
	const struct price_list *pl = usage_prices(srv);
	const struct price *p = pl ? price_find(pl, model ? model : "") : NULL;
	const double api = p ? price_cost(p, prompt, cached, completion) : 0, here = usage_cost_here(srv, cpu);
	*api_total += api;
	*here_total += here;
	*priced = *priced && p;
	return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:f, s:o, s:f}", "api_key_id",
			 jsonb_str((const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0)), "model",
			 jsonb_str(model ? model : "", model ? (size_t)sqlite3_column_bytes(s, 1) : 0), "input_tokens",
			 (json_int_t)prompt, "input_cached_tokens", (json_int_t)cached, "output_tokens",
			 (json_int_t)completion, "num_model_requests", (json_int_t)sqlite3_column_int64(s, 5), "cpu_seconds",
			 cpu, "api_cost", p ? json_real(api) : json_null(), "here_cost", here);
}

json_t *usage_query_cost(struct server *srv, const struct usage_query *q, struct hearth_err *err)
{
	char sql[SQL_MAX];
	double api = 0, here = 0;
	bool ok, priced = true;
	snprintf(sql, sizeof sql,
		 "SELECT key, model, sum(prompt), sum(cached), sum(completion), count(*), total(cpu_s) FROM requests "
		 "WHERE t >= ?1 AND t < ?2");
	filters(q, sql, sizeof sql, 3);
	snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " GROUP BY 1, 2 ORDER BY 1, 2");
	json_t *data = json_array();
	if (!data)
		return NULL;
	sqlite3 *db = usage_store_read_lock(srv->usage);
	sqlite3_stmt *s = prepare(db, sql, q->start, q->end, q, err);
	ok = s != NULL;
	while (ok && sqlite3_step(s) == SQLITE_ROW)
		ok = jsonb_add(data, cost_row(srv, s, &api, &here, &priced));
	sqlite3_finalize(s);
	usage_store_read_unlock(srv->usage);
	data = jsonb_done(data, ok);
	const struct usage_conf *c = srv->usage_conf;
	const char *basis = c->cost_core_hour > 0 ? "cpu_core_hour" : c->power_watts > 0 && c->kwh_price > 0 ? "power" : "none";
	const struct price_list *pl = usage_prices(srv);
	return data ? json_pack("{s:s, s:I, s:I, s:o, s:o, s:b, s:f, s:s, s:f, s:f, s:f, s:f}", "object", "list",
				"start_time", (json_int_t)q->start, "end_time", (json_int_t)q->end, "data", data,
				"api_cost", pl && pl->n ? json_real(api) : json_null(), "api_priced_all", pl && pl->n && priced,
				"here_cost", here, "here_basis", basis, "cost_core_hour", c->cost_core_hour, "power_watts",
				c->power_watts, "kwh_price", c->kwh_price, "saved", api - here)
		    : NULL;
}
