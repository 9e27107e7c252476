/*
 * metrics.c - /metrics in Prometheus text, under vLLM's metric names (each with
 * a model_name label, a series per model served) so that routers and autoscalers built for vLLM read
 * hearth unchanged, plus hearth's own. Request counters and histograms are
 * guarded by their own mutex; scheduler gauges are read from its atomics:
 * a scrape never waits on the scheduler.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "usage.h"

#define MAX_BUCKETS 24

struct histogram {
	const char *name, *help;
	int n;
	double le[MAX_BUCKETS];
	uint64_t count[MAX_BUCKETS + 1]; /* cumulative at render time; +Inf last */
	double sum;
	uint64_t total;
};

struct metrics {
	pthread_mutex_t mu;
	struct histogram ttft, itl, e2e, queue;
	uint64_t finished_stop, finished_length, finished_abort;
	uint64_t prompt_tokens, generation_tokens;
};

static void hist_init(struct histogram *h, const char *name, const char *help, const double *le, int n)
{
	memset(h, 0, sizeof *h);
	h->name = name;
	h->help = help;
	h->n = n;
	memcpy(h->le, le, (size_t)n * sizeof *le);
}

static void hist_add(struct histogram *h, double v)
{
	int i = 0;
	while (i < h->n && v > h->le[i])
		i++;
	h->count[i]++;
	h->sum += v;
	h->total++;
}

int metrics_new(struct metrics **out)
{
	static const double ttft[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
				       1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0 };
	static const double itl[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
				      0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0 };
	static const double req[] = { 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
				      30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0 };
	struct metrics *m = calloc(1, sizeof *m);
	if (!m)
		return -1;
	pthread_mutex_init(&m->mu, NULL);
	hist_init(&m->ttft, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttft,
		  (int)(sizeof ttft / sizeof ttft[0]));
	hist_init(&m->itl, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itl,
		  (int)(sizeof itl / sizeof itl[0]));
	hist_init(&m->e2e, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
		  req, (int)(sizeof req / sizeof req[0]));
	hist_init(&m->queue, "vllm:request_queue_time_seconds",
		  "Histogram of time spent waiting in the queue in seconds.", req, (int)(sizeof req / sizeof req[0]));
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void metrics_request_done(struct metrics *m, const char *finish_reason, int n_prompt, int n_gen, double queue_s,
			  double ttft_s, double e2e_s)
{
	pthread_mutex_lock(&m->mu);
	if (!strcmp(finish_reason, "stop"))
		m->finished_stop++;
	else if (!strcmp(finish_reason, "length"))
		m->finished_length++;
	else
		m->finished_abort++;
	m->prompt_tokens += (uint64_t)(n_prompt > 0 ? n_prompt : 0);
	m->generation_tokens += (uint64_t)(n_gen > 0 ? n_gen : 0);
	hist_add(&m->queue, queue_s > 0 ? queue_s : 0);
	if (ttft_s >= 0)
		hist_add(&m->ttft, ttft_s);
	hist_add(&m->e2e, e2e_s);
	pthread_mutex_unlock(&m->mu);
}

void metrics_inter_token(struct metrics *m, double seconds)
{
	pthread_mutex_lock(&m->mu);
	hist_add(&m->itl, seconds);
	pthread_mutex_unlock(&m->mu);
}

struct out {
	char *p;
	size_t n, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0)
			return;
		if (o->p && o->n + (size_t)k < o->cap) {
			o->n += (size_t)k;
			return;
		}
		size_t cap = (o->cap + (size_t)k + 1) * 2;
		char *p = realloc(o->p, cap);
		if (!p)
			return;
		o->p = p;
		o->cap = cap;
	}
}

/* Label value: backslash, quote and newline escaped. */
static void label_value(char *dst, size_t size, const char *v)
{
	size_t o = 0;
	for (; *v && o + 3 < size; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			dst[o++] = '\\';
			dst[o++] = *v == '\n' ? 'n' : *v;
		} else {
			dst[o++] = *v;
		}
	}
	dst[o] = 0;
}

/* One model's series: its label, scheduler stats (zero when not loaded), request metrics. */
struct row {
	char model[256];
	struct hearth_sched_stats st;
	int cache_type;
	struct metrics *m;
};

static void head(struct out *o, const char *name, const char *help, const char *type)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A gauge with one sample per model: the value of expr for row r. */
#define GAUGE(name, help, expr)                                                                           \
	do {                                                                                              \
		head(o, name, help, "gauge");                                                             \
		for (int i_ = 0; i_ < n; i_++) {                                                          \
			const struct row *r = &rows[i_];                                                  \
			put(o, "%s{model_name=\"%s\"} %.10g\n", name, r->model, (double)(expr));          \
		}                                                                                         \
	} while (0)
#define COUNTER(name, help, expr)                                                                         \
	do {                                                                                              \
		head(o, name, help, "counter");                                                           \
		for (int i_ = 0; i_ < n; i_++) {                                                          \
			const struct row *r = &rows[i_];                                                  \
			put(o, "%s{model_name=\"%s\"} %llu\n", name, r->model, (unsigned long long)(expr)); \
		}                                                                                         \
	} while (0)

static void histogram(struct out *o, const struct histogram *h, const char *model)
{
	uint64_t cum = 0;
	for (int i = 0; i < h->n; i++) {
		cum += h->count[i];
		put(o, "%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", h->name, h->le[i], model, (unsigned long long)cum);
	}
	put(o, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name, model, (unsigned long long)h->total);
	put(o, "%s_sum{model_name=\"%s\"} %.10g\n%s_count{model_name=\"%s\"} %llu\n", h->name, model, h->sum, h->name,
	    model, (unsigned long long)h->total);
}

/* Each model's histogram at offset `which` of struct metrics, under one family. */
static void histograms(struct out *o, const struct row *rows, int n, size_t which)
{
	const struct histogram *h0 = (const struct histogram *)((const char *)rows[0].m + which);
	head(o, h0->name, h0->help, "histogram");
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&rows[i].m->mu);
		histogram(o, (const struct histogram *)((const char *)rows[i].m + which), rows[i].model);
		pthread_mutex_unlock(&rows[i].m->mu);
	}
}

static const char *cache_name(int type)
{
	return type == HEARTH_TYPE_F32 ? "float32" : type == HEARTH_TYPE_Q8_0 ? "q8_0" : "float16";
}

/* The request counters of every model. */
static void request_counters(struct out *o, const struct row *rows, int n)
{
	static const char *const reasons[] = { "stop", "length", "abort" };
	uint64_t v[3];
	head(o, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", "counter");
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&rows[i].m->mu);
		put(o, "vllm:prompt_tokens_total{model_name=\"%s\"} %llu\n", rows[i].model,
		    (unsigned long long)rows[i].m->prompt_tokens);
		pthread_mutex_unlock(&rows[i].m->mu);
	}
	head(o, "vllm:generation_tokens_total", "Number of generation tokens processed.", "counter");
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&rows[i].m->mu);
		put(o, "vllm:generation_tokens_total{model_name=\"%s\"} %llu\n", rows[i].model,
		    (unsigned long long)rows[i].m->generation_tokens);
		pthread_mutex_unlock(&rows[i].m->mu);
	}
	head(o, "vllm:request_success_total", "Count of successfully processed requests.", "counter");
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&rows[i].m->mu);
		v[0] = rows[i].m->finished_stop;
		v[1] = rows[i].m->finished_length;
		v[2] = rows[i].m->finished_abort;
		pthread_mutex_unlock(&rows[i].m->mu);
		for (int k = 0; k < 3; k++)
			put(o, "vllm:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %llu\n", reasons[k],
			    rows[i].model, (unsigned long long)v[k]);
	}
}

/* Every model's row: stats read while it is held (a model not loaded has none). */
static struct row *rows_read(struct server *srv, int *n_rows)
{
	struct models *ms = &srv->models;
	const int n = ms->n;
	struct row *rows = calloc(n ? (size_t)n : 1, sizeof *rows);
	*n_rows = n;
	for (int i = 0; rows && i < n; i++) {
		struct served_model *sm = ms->m[i];
		label_value(rows[i].model, sizeof rows[i].model, sm->name);
		rows[i].m = sm->metrics;
		rows[i].cache_type = srv->sp.cache_type;
		if (models_peek(ms, sm)) {
			hearth_sched_stats(sm->sched, &rows[i].st);
			rows[i].cache_type = sm->sp.cache_type;
			models_unpeek(ms, sm);
		}
	}
	return rows;
}

char *metrics_render(struct server *srv, size_t *len)
{
	struct out o_ = { 0 }, *o = &o_;
	int n;
	struct row *rows = rows_read(srv, &n);
	*len = 0;
	if (!rows || n == 0) {
		free(rows);
		return calloc(1, 1);
	}
#define USAGE (r->st.n_blocks ? (double)r->st.n_blocks_used / r->st.n_blocks : 0)
	GAUGE("vllm:num_requests_running", "Number of requests in model execution batches.", r->st.n_running);
	GAUGE("vllm:num_requests_waiting", "Number of requests waiting to be processed.", r->st.n_waiting);
	GAUGE("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", USAGE);
	GAUGE("vllm:gpu_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage (older name).", USAGE);
#undef USAGE
	head(o, "vllm:cache_config_info", "Information of the KV cache configuration.", "gauge");
	for (int i = 0; i < n; i++)
		put(o, "vllm:cache_config_info{block_size=\"%d\",cache_dtype=\"%s\",model_name=\"%s\",num_gpu_blocks=\"%d\"} 1\n",
		    rows[i].st.block_size, cache_name(rows[i].cache_type), rows[i].model, rows[i].st.n_blocks);
	COUNTER("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
		r->st.prefix_queries);
	COUNTER("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", r->st.prefix_hits);
	request_counters(o, rows, n);
	histograms(o, rows, n, offsetof(struct metrics, ttft));
	histograms(o, rows, n, offsetof(struct metrics, itl));
	histograms(o, rows, n, offsetof(struct metrics, e2e));
	histograms(o, rows, n, offsetof(struct metrics, queue));
	GAUGE("hearth_batch_tokens", "Tokens in the last forward pass.", r->st.last_batch_tokens);
	GAUGE("hearth_batch_sequences", "Sequences sampled in the last forward pass.", r->st.last_batch_seqs);
	GAUGE("hearth_kv_blocks", "KV cache blocks in all.", r->st.n_blocks);
	GAUGE("hearth_kv_blocks_used", "KV cache blocks held by running requests.", r->st.n_blocks_used);
	COUNTER("hearth_scheduler_steps_total", "Forward passes run by the scheduler.", r->st.steps);

	/* the server's own series carry the default model's name (one row) */
	struct model_view v;
	int n_loaded = 0;
	for (int i = 0; i < n; i++) {
		models_view(&srv->models, srv->models.m[i], &v);
		n_loaded += v.state == MODEL_LOADED;
	}
	struct conns_stats cst;
	conns_counts(&srv->conns, &cst);
	n = 1;
	GAUGE("hearth_models_loaded", "Models loaded now.", n_loaded);
	GAUGE("hearth_requests_in_flight", "HTTP requests being served.", atomic_load(&srv->in_flight));
	GAUGE("hearth_http_connections", "Open client connections.", cst.n_open);
	COUNTER("hearth_http_connections_evicted_total",
		"Waiting connections closed to make room for new ones beyond a connection limit.", cst.n_evicted);
	COUNTER("hearth_http_connections_refused_total",
		"New connections answered 503 because every candidate connection was busy.", cst.n_refused);
	COUNTER("hearth_http_request_timeouts_total",
		"Connections closed because their request was not in within --timeout.", cst.n_timed_out);
	free(rows);
	char *per_key = usage_metrics_text(srv); /* per key and model (usage.c) */
	if (per_key)
		put(o, "%s", per_key);
	free(per_key);
	*len = o->n;
	return o->p;
}
