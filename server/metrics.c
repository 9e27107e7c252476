/*
 * metrics.c - /metrics in Prometheus text, under vLLM's metric names (each with
 * a model_name label) so that routers and autoscalers built for vLLM read
 * hearth unchanged, plus hearth's own. Request counters and histograms are
 * guarded by their own mutex; scheduler gauges are read from its atomics:
 * a scrape never waits on the scheduler.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

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

static void gauge(struct out *o, const char *name, const char *help, const char *model, double v)
{
	put(o, "# HELP %s %s\n# TYPE %s gauge\n%s{model_name=\"%s\"} %.10g\n", name, help, name, name, model, v);
}

static void counter(struct out *o, const char *name, const char *help, const char *model, uint64_t v)
{
	put(o, "# HELP %s %s\n# TYPE %s counter\n%s{model_name=\"%s\"} %llu\n", name, help, name, name, model,
	    (unsigned long long)v);
}

static void histogram(struct out *o, const struct histogram *h, const char *model)
{
	uint64_t cum = 0;
	put(o, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
	for (int i = 0; i < h->n; i++) {
		cum += h->count[i];
		put(o, "%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", h->name, h->le[i], model, (unsigned long long)cum);
	}
	put(o, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name, model, (unsigned long long)h->total);
	put(o, "%s_sum{model_name=\"%s\"} %.10g\n%s_count{model_name=\"%s\"} %llu\n", h->name, model, h->sum, h->name,
	    model, (unsigned long long)h->total);
}

char *metrics_render(struct metrics *m, struct server *srv, size_t *len)
{
	struct hearth_sched_stats st = { 0 };
	struct out o = { 0 };
	char model[256];
	label_value(model, sizeof model, srv->alias);
	hearth_sched_stats(srv->sched, &st);
	const double usage = st.n_blocks ? (double)st.n_blocks_used / st.n_blocks : 0;

	gauge(&o, "vllm:num_requests_running", "Number of requests in model execution batches.", model, st.n_running);
	gauge(&o, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", model, st.n_waiting);
	gauge(&o, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", model, usage);
	gauge(&o, "vllm:gpu_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage (older name).", model, usage);
	put(&o, "# HELP vllm:cache_config_info Information of the KV cache configuration.\n"
		"# TYPE vllm:cache_config_info gauge\n"
		"vllm:cache_config_info{block_size=\"%d\",cache_dtype=\"%s\",model_name=\"%s\",num_gpu_blocks=\"%d\"} 1\n",
	    st.block_size, srv->sp.cache_type == HEARTH_TYPE_F32 ? "float32" : srv->sp.cache_type == HEARTH_TYPE_Q8_0 ? "q8_0" : "float16", model, st.n_blocks);
	counter(&o, "vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
		model, st.prefix_queries);
	counter(&o, "vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", model,
		st.prefix_hits);

	pthread_mutex_lock(&m->mu);
	counter(&o, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", model, m->prompt_tokens);
	counter(&o, "vllm:generation_tokens_total", "Number of generation tokens processed.", model, m->generation_tokens);
	put(&o, "# HELP vllm:request_success_total Count of successfully processed requests.\n"
		"# TYPE vllm:request_success_total counter\n");
	put(&o, "vllm:request_success_total{finished_reason=\"stop\",model_name=\"%s\"} %llu\n", model,
	    (unsigned long long)m->finished_stop);
	put(&o, "vllm:request_success_total{finished_reason=\"length\",model_name=\"%s\"} %llu\n", model,
	    (unsigned long long)m->finished_length);
	put(&o, "vllm:request_success_total{finished_reason=\"abort\",model_name=\"%s\"} %llu\n", model,
	    (unsigned long long)m->finished_abort);
	histogram(&o, &m->ttft, model);
	histogram(&o, &m->itl, model);
	histogram(&o, &m->e2e, model);
	histogram(&o, &m->queue, model);
	pthread_mutex_unlock(&m->mu);

	gauge(&o, "hearth_batch_tokens", "Tokens in the last forward pass.", model, st.last_batch_tokens);
	gauge(&o, "hearth_batch_sequences", "Sequences sampled in the last forward pass.", model, st.last_batch_seqs);
	gauge(&o, "hearth_kv_blocks", "KV cache blocks in all.", model, st.n_blocks);
	gauge(&o, "hearth_kv_blocks_used", "KV cache blocks held by running requests.", model, st.n_blocks_used);
	gauge(&o, "hearth_requests_in_flight", "HTTP requests being served.", model, atomic_load(&srv->in_flight));
	counter(&o, "hearth_scheduler_steps_total", "Forward passes run by the scheduler.", model, st.steps);
	struct conns_stats cst;
	conns_counts(&srv->conns, &cst);
	gauge(&o, "hearth_http_connections", "Open client connections.", model, cst.n_open);
	counter(&o, "hearth_http_connections_evicted_total",
		"Waiting connections closed to make room for new ones beyond a connection limit.", model, cst.n_evicted);
	counter(&o, "hearth_http_connections_refused_total",
		"New connections answered 503 because every candidate connection was busy.", model, cst.n_refused);
	counter(&o, "hearth_http_request_timeouts_total",
		"Connections closed because their request was not in within --timeout.", model, cst.n_timed_out);
	*len = o.n;
	return o.p;
}
