/*
 * usage.c - the glue between requests and the usage record: a finished
 * request becomes a row (usage-store.c), the day's tokens of its key
 * (quota.c) and the counters /metrics shows per key and model; quotas are
 * checked before a metered route's handler runs; a sampler thread records
 * every loaded model's queue, KV use and prefix-cache hits every sample_s.
 *
 * Metered routes (their tokens are recorded, their quotas checked):
 * /v1/chat/completions, /v1/completions, /api/chat, /api/generate (streamed
 * or not, cancelled ones included, with what they had computed),
 * /v1/embeddings, /v1/score, /v1/rerank and /rerank (when answered); POST
 * /v1/cache's computed prompts are recorded too (route "cache"), without quotas.
 *
 * CPU seconds: the library does not attribute CPU time to requests, so a
 * request is charged the process's CPU time over its lifetime times its
 * share of the tokens its model's scheduler computed meanwhile (usage.h:
 * usage_cpu_share). Summed over requests it approximates the process's
 * CPU time spent on them; one request's figure is an estimate.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "openai.h"
#include "usage.h"

#define COUNTERS_MAX 4096       /* (key, model) pairs counted in /metrics */
#define PRICE_FILE_MAX (1 << 20)
#define QUEUE_CAP 8192          /* rows waiting for the writer */

struct counter {
	char key[KEY_NAME_MAX];
	char model[MODEL_NAME_MAX + 1];
	uint64_t requests, prompt, cached, completion;
	double cpu_s;
};

struct usage_state {
	pthread_mutex_t mu;       /* guards the counters */
	struct counter *c;        /* [COUNTERS_MAX] */
	int n_c;
	uint64_t uncounted;       /* requests past COUNTERS_MAX pairs */
	uint64_t refused_rpm, refused_tpd;
	struct price_list prices; /* n 0: no --price */
	/* the sampler */
	pthread_t sampler;
	bool sampling, stop;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	uint64_t last_q[MODELS_MAX], last_h[MODELS_MAX]; /* prefix counters at the last sample */
};

const char usage_help[] =
	"\n"
	"Usage, quotas and cost (see the README's usage section):\n"
	"      --usage-db PATH     the usage record (SQLite) [HEARTH_HOME/usage.db]\n"
	"      --usage-retention-days N  keep N days of usage rows (0: all) [90]\n"
	"      --usage-sample-s S  record queue length and KV use every S seconds [60]\n"
	"      --no-usage          record nothing (quotas still count requests per minute)\n"
	"      --quota-rpm N       requests per minute per key, for keys without rpm= (0: none) [0]\n"
	"      --quota-tpd N       tokens per UTC day per key, for keys without tpd= (0: none) [0]\n"
	"      --price FILE        API prices per million tokens: lines MODEL INPUT CACHED OUTPUT\n"
	"      --cost-core-hour X  what a CPU core-hour costs here (currency of --price)\n"
	"      --power-watts W     the machine's power draw when busy, with --kwh-price\n"
	"      --kwh-price X       what a kWh costs\n";

/* ---- flags ---------------------------------------------------------------- */

static int flag_number(const char *a, const char *val, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(val, &end);
	if (!*val || *end || errno || !isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "hearth serve: %s expects a number from %g to %g, got '%s'\n", a, lo, hi, val);
		return -1;
	}
	*out = v;
	return 1;
}

int usage_flag(struct usage_conf *c, const char *a, const char *val)
{
	double v = 0;
	int rc;
	if (!strcmp(a, "--no-usage")) {
		c->off = true;
		return 1;
	}
	if (!val)
		return 0;
	if (!strcmp(a, "--usage-db")) {
		c->db_path = val;
		return 1;
	}
	if (!strcmp(a, "--price")) {
		c->price_file = val;
		return 1;
	}
	static const struct {
		const char *flag;
		double lo, hi;
		bool whole;
	} nums[] = {
		{ "--usage-retention-days", 0, 36500, true }, { "--usage-sample-s", 0.05, 86400, false },
		{ "--quota-rpm", 0, QUOTA_RPM_MAX, true },    { "--quota-tpd", 0, 1e15, true },
		{ "--cost-core-hour", 0, 1e6, false },        { "--power-watts", 0, 1e7, false },
		{ "--kwh-price", 0, 1e6, false },
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if (strcmp(a, nums[i].flag))
			continue;
		if ((rc = flag_number(a, val, nums[i].lo, nums[i].hi, &v)) < 0)
			return rc;
		if (nums[i].whole && v != floor(v)) {
			fprintf(stderr, "hearth serve: %s expects a whole number, got '%s'\n", a, val);
			return -1;
		}
		switch (i) {
		case 0: c->retention_days = (int)v; break;
		case 1: c->sample_s = v; break;
		case 2: c->quota_rpm = (int64_t)v; break;
		case 3: c->quota_tpd = (int64_t)v; break;
		case 4: c->cost_core_hour = v; break;
		case 5: c->power_watts = v; break;
		default: c->kwh_price = v; break;
		}
		return 1;
	}
	return 0;
}

/* ---- CPU time ------------------------------------------------------------- */

double usage_cpu_now(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static uint64_t sched_tokens(struct served_model *sm)
{
	struct hearth_sched_stats s = { 0 };
	if (!sm || !sm->sched)
		return 0;
	hearth_sched_stats(sm->sched, &s);
	return s.prompt_tokens + s.generation_tokens;
}

void usage_mark_now(struct usage_mark *m, struct served_model *sm)
{
	m->t = hearth_now();
	m->cpu = usage_cpu_now();
	m->tokens = sched_tokens(sm);
}

double usage_cpu_share(const struct usage_mark *m, struct served_model *sm, int64_t my_tokens)
{
	const double cpu = usage_cpu_now() - m->cpu;
	const uint64_t all = sched_tokens(sm) - m->tokens;
	if (cpu <= 0 || my_tokens <= 0)
		return 0;
	if (all == 0 || (uint64_t)my_tokens >= all)
		return cpu;
	return cpu * (double)my_tokens / (double)all;
}

double usage_cost_here(const struct server *srv, double cpu_s)
{
	const struct usage_conf *c = srv->usage_conf;
	if (!c)
		return 0;
	if (c->cost_core_hour > 0)
		return cpu_s / 3600.0 * c->cost_core_hour;
	if (c->power_watts > 0 && c->kwh_price > 0) { /* the machine's draw over the share of its cores used */
		const long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
		return cpu_s / (double)(n_cpu > 0 ? n_cpu : 1) / 3600.0 * c->power_watts / 1000.0 * c->kwh_price;
	}
	return 0;
}

/* ---- recording ------------------------------------------------------------- */

const char *usage_route_name(const char *path)
{
	static const char *const map[][2] = {
		{ "/v1/chat/completions", "chat.completions" }, { "/v1/completions", "completions" },
		{ "/api/chat", "ollama.chat" },                 { "/api/generate", "ollama.generate" },
		{ "/v1/embeddings", "embeddings" },             { "/v1/score", "score" },
		{ "/v1/rerank", "rerank" },                     { "/rerank", "rerank" },
		{ "/v1/attribute", "attribute" },
	};
	for (size_t i = 0; path && i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(path, map[i][0]))
			return map[i][1];
	return NULL;
}

static void count(struct usage_state *us, const struct usage_rec *r)
{
	pthread_mutex_lock(&us->mu);
	struct counter *c = NULL;
	for (int i = 0; i < us->n_c && !c; i++)
		if (!strcmp(us->c[i].key, r->key) && !strcmp(us->c[i].model, r->model))
			c = &us->c[i];
	if (!c && us->n_c < COUNTERS_MAX) {
		c = &us->c[us->n_c++];
		memset(c, 0, sizeof *c);
		memcpy(c->key, r->key, sizeof c->key);
		memcpy(c->model, r->model, sizeof c->model);
	}
	if (c) {
		c->requests++;
		c->prompt += (uint64_t)r->prompt;
		c->cached += (uint64_t)r->cached;
		c->completion += (uint64_t)r->completion;
		c->cpu_s += r->cpu_s > 0 ? r->cpu_s : 0;
	} else {
		us->uncounted++;
	}
	pthread_mutex_unlock(&us->mu);
}

void usage_note(struct server *srv, const struct usage_done *d)
{
	struct usage_rec r = { 0 };
	const double now = (double)time(NULL);
	r.t = (int64_t)now;
	snprintf(r.key, sizeof r.key, "%s", keys_name(srv, d->tenant));
	snprintf(r.model, sizeof r.model, "%s", d->model ? d->model : "");
	snprintf(r.route, sizeof r.route, "%s", d->route ? d->route : "");
	snprintf(r.finish, sizeof r.finish, "%s", d->finish ? d->finish : "");
	r.prompt = d->prompt;
	r.cached = d->cached;
	r.completion = d->completion;
	r.queue_s = d->t_start > 0 && d->t_submit > 0 ? d->t_start - d->t_submit : -1;
	r.compute_s = d->t_start > 0 ? d->t_end - d->t_start : -1;
	r.ttft_s = d->t_first > 0 && d->t_submit > 0 ? d->t_first - d->t_submit : -1;
	r.itl_s = d->n_gen > 1 && d->t_last > d->t_first ? (d->t_last - d->t_first) / (double)(d->n_gen - 1) : -1;
	r.cpu_s = d->cpu_s;
	r.status = d->status;
	if (srv->usage_state)
		count(srv->usage_state, &r);
	if (srv->quota)
		quota_spent(srv->quota, keys_index(srv, d->tenant), r.prompt + r.completion, now, srv->usage, r.key);
	if (srv->usage)
		usage_store_put(srv->usage, &r);
}

void usage_note_simple(struct server *srv, const struct call *call, struct served_model *sm, const char *route,
		       int64_t prompt, int64_t completion, const struct usage_mark *m)
{
	const double end = hearth_now();
	struct usage_done d = { .tenant = call->tenant, .model = sm->name, .route = route, .prompt = prompt,
				.completion = completion, .t_submit = m->t, .t_start = m->t, .t_end = end,
				.cpu_s = usage_cpu_share(m, sm, prompt + completion), .finish = "stop", .status = 200 };
	usage_note(srv, &d);
}

/* A stream's finish reason as its row says it: "abort" when the client left
 * (or any choice never finished), else the first choice's. */
static const char *stream_finish(const struct stream *st)
{
	for (int i = 0; i < st->n_gen; i++) {
		const struct gen *g = &st->g[i];
		if (!g->finish || (g->finish == HEARTH_FINISH_CANCELLED && !g->stopped))
			return "abort";
	}
	return shape_finish_name(st->g[0].finish);
}

void usage_note_stream(struct stream *st)
{
	struct usage_done d = { .tenant = st->p.tenant, .model = st->sm->name, .route = st->route,
				.t_submit = INFINITY, .status = 200 };
	int64_t computed = 0;
	bool any = false;
	for (int i = 0; i < st->n_gen; i++) {
		const struct gen *g = &st->g[i];
		if (!g->req)
			continue;
		any = true;
		const int32_t cached = g->finish ? g->cached : hearth_request_cached_tokens(g->req);
		d.prompt += g->n_prompt;
		d.cached += cached;
		d.completion += g->n_gen;
		d.n_gen += g->n_gen;
		computed += (g->n_prompt - cached) + g->n_gen;
		const double t0 = hearth_request_t_start(g->req);
		d.t_submit = g->t_submit < d.t_submit ? g->t_submit : d.t_submit;
		if (t0 > 0 && (d.t_start == 0 || t0 < d.t_start))
			d.t_start = t0;
		if (g->t_first > 0 && (d.t_first == 0 || g->t_first < d.t_first))
			d.t_first = g->t_first;
		d.t_last = g->t_last > d.t_last ? g->t_last : d.t_last;
		if (g->failed)
			d.status = 500;
	}
	if (!any)
		return;
	if (st->n_gen > 1) /* several choices: the inter-token mean of the first alone */
		d.n_gen = st->g[0].n_gen, d.t_first = st->g[0].t_first, d.t_last = st->g[0].t_last;
	d.t_end = hearth_now();
	d.finish = stream_finish(st);
	d.cpu_s = usage_cpu_share(&st->mark, st->sm, computed);
	usage_note(st->srv, &d);
}

/* ---- quotas ----------------------------------------------------------------- */

bool usage_admit(struct server *srv, const char *tenant, const char *path, struct reply *rp)
{
	const struct usage_conf *c = srv->usage_conf;
	if (!srv->quota || !c || !usage_route_name(path))
		return true;
	const int k = keys_index(srv, tenant);
	const int64_t rpm = k >= 0 && srv->key_info[k].rpm ? srv->key_info[k].rpm : c->quota_rpm;
	const int64_t tpd = k >= 0 && srv->key_info[k].tpd ? srv->key_info[k].tpd : c->quota_tpd;
	int retry = 0;
	const char *which = NULL, *name = keys_name(srv, tenant);
	if ((!rpm && !tpd) ||
	    quota_admit(srv->quota, k, rpm, tpd, (double)time(NULL), srv->usage, name, &retry, &which))
		return true;
	const bool by_rpm = !strcmp(which, "rpm");
	if (srv->usage_state) {
		pthread_mutex_lock(&srv->usage_state->mu);
		if (by_rpm)
			srv->usage_state->refused_rpm++;
		else
			srv->usage_state->refused_tpd++;
		pthread_mutex_unlock(&srv->usage_state->mu);
	}
	if (by_rpm)
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "rate_limit_exceeded",
			    "Rate limit reached for key '%s': %lld requests per minute (rpm). Retry in %d s.",
			    name[0] ? name : "(none)", (long long)rpm, retry);
	else
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "tokens_per_day_exceeded",
			    "Token limit reached for key '%s': %lld tokens per day (tpd, UTC). Retry in %d s.",
			    name[0] ? name : "(none)", (long long)tpd, retry);
	rp->retry_after = retry;
	return false;
}

/* ---- /metrics ---------------------------------------------------------------- */

/* Appends printf-style text to *p; false when out of memory. */
static bool put(char **p, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool put(char **p, size_t *len, size_t *cap, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof line && !buf_append(p, len, cap, line, (size_t)n);
}

char *usage_metrics_text(struct server *srv)
{
	struct usage_state *us = srv->usage_state;
	char *p = NULL;
	size_t len = 0, cap = 0;
	bool ok = buf_append(&p, &len, &cap, "", 0) == 0;
	if (!us)
		return p;
	static const struct {
		const char *name, *help;
	} fam[] = {
		{ "hearth_usage_requests_total", "Requests accounted, by API key name and model." },
		{ "hearth_usage_prompt_tokens_total", "Prompt tokens accounted (cached included), by key and model." },
		{ "hearth_usage_cached_tokens_total", "Prompt tokens found in the prefix cache, by key and model." },
		{ "hearth_usage_completion_tokens_total", "Completion tokens accounted, by key and model." },
		{ "hearth_usage_cpu_seconds_total", "CPU seconds charged to requests, by key and model." },
	};
	pthread_mutex_lock(&us->mu);
	for (size_t f = 0; ok && f < sizeof fam / sizeof fam[0]; f++) {
		ok = put(&p, &len, &cap, "# HELP %s %s\n# TYPE %s counter\n", fam[f].name, fam[f].help, fam[f].name);
		for (int i = 0; ok && i < us->n_c; i++) {
			const struct counter *c = &us->c[i];
			const double v = f == 0 ? (double)c->requests : f == 1 ? (double)c->prompt : f == 2 ? (double)c->cached
				       : f == 3 ? (double)c->completion : c->cpu_s;
			ok = put(&p, &len, &cap, "%s{key=\"%s\",model=\"%s\"} %.10g\n", fam[f].name, c->key, c->model, v);
		}
	}
	const uint64_t rpm = us->refused_rpm, tpd = us->refused_tpd;
	pthread_mutex_unlock(&us->mu);
	ok = ok && put(&p, &len, &cap,
		       "# HELP hearth_usage_quota_refusals_total Requests answered 429 for a key's quota, by limit.\n"
		       "# TYPE hearth_usage_quota_refusals_total counter\n"
		       "hearth_usage_quota_refusals_total{limit=\"rpm\"} %llu\n"
		       "hearth_usage_quota_refusals_total{limit=\"tpd\"} %llu\n",
		       (unsigned long long)rpm, (unsigned long long)tpd);
	if (ok && srv->usage)
		ok = put(&p, &len, &cap,
			 "# HELP hearth_usage_rows_dropped_total Usage rows not recorded: the writer's queue was full.\n"
			 "# TYPE hearth_usage_rows_dropped_total counter\nhearth_usage_rows_dropped_total %llu\n"
			 "# HELP hearth_usage_rows_failed_total Usage rows the database refused.\n"
			 "# TYPE hearth_usage_rows_failed_total counter\nhearth_usage_rows_failed_total %llu\n",
			 (unsigned long long)usage_store_dropped(srv->usage),
			 (unsigned long long)usage_store_failed(srv->usage));
	if (!ok) {
		free(p);
		return NULL;
	}
	return p;
}

/* ---- the sampler ---------------------------------------------------------------- */

static void sample_models(struct server *srv, struct usage_state *us)
{
	const int n = atomic_load(&srv->models.n);
	for (int i = 0; i < n && i < MODELS_MAX; i++) {
		struct served_model *sm = srv->models.m[i];
		struct hearth_sched_stats s = { 0 };
		if (!models_peek(&srv->models, sm))
			continue;
		hearth_sched_stats(sm->sched, &s);
		models_unpeek(&srv->models, sm);
		struct usage_sample m = { .t = (int64_t)time(NULL), .waiting = s.n_waiting, .running = s.n_running,
					  .kv_use = s.n_blocks ? (double)s.n_blocks_used / s.n_blocks : 0 };
		snprintf(m.model, sizeof m.model, "%s", sm->name);
		/* counters restart when a model is reloaded */
		m.prefix_queries = (int64_t)(s.prefix_queries >= us->last_q[i] ? s.prefix_queries - us->last_q[i] : s.prefix_queries);
		m.prefix_hits = (int64_t)(s.prefix_hits >= us->last_h[i] ? s.prefix_hits - us->last_h[i] : s.prefix_hits);
		us->last_q[i] = s.prefix_queries;
		us->last_h[i] = s.prefix_hits;
		usage_store_put_sample(srv->usage, &m);
	}
}

static void *sampler(void *arg)
{
	struct server *srv = arg;
	struct usage_state *us = srv->usage_state;
	const double period = srv->usage_conf->sample_s;
	pthread_mutex_lock(&us->smu);
	while (!us->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		const double at = (double)ts.tv_sec + ts.tv_nsec / 1e9 + period;
		ts.tv_sec = (time_t)at;
		ts.tv_nsec = (long)((at - floor(at)) * 1e9);
		if (pthread_cond_timedwait(&us->scv, &us->smu, &ts) != ETIMEDOUT || us->stop)
			continue;
		pthread_mutex_unlock(&us->smu);
		sample_models(srv, us);
		pthread_mutex_lock(&us->smu);
	}
	pthread_mutex_unlock(&us->smu);
	return NULL;
}

/* ---- open and close -------------------------------------------------------------- */

static bool read_prices(const char *path, struct price_list *pl)
{
	FILE *f = fopen(path, "rb");
	char why[200];
	if (!f) {
		fprintf(stderr, "hearth serve: --price %s: %s\n", path, strerror(errno));
		return false;
	}
	char *buf = malloc(PRICE_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, PRICE_FILE_MAX + 1, f) : 0;
	bool ok = buf && !ferror(f) && n <= PRICE_FILE_MAX;
	if (!ok)
		fprintf(stderr, "hearth serve: --price %s: %s\n", path, !buf ? "out of memory" : n > PRICE_FILE_MAX ? "larger than 1 MiB" : strerror(errno));
	else if (!(ok = price_parse(buf, n, pl, why, sizeof why)))
		fprintf(stderr, "hearth serve: --price %s: %s\n", path, why);
	fclose(f);
	free(buf);
	return ok;
}

/* The store's path: --usage-db, else HEARTH_HOME/usage.db (the folder made). */
static bool db_path(const struct usage_conf *c, char *path, size_t size)
{
	struct hearth_err err = { 0 };
	char home[2048];
	if (c->db_path)
		return snprintf(path, size, "%s", c->db_path) < (int)size;
	if (hearth_store_home(home, sizeof home, &err)) {
		fprintf(stderr, "hearth serve: warning: usage is not recorded: %s\n", err.msg);
		return false;
	}
	if (mkdir(home, 0700) && errno != EEXIST) {
		fprintf(stderr, "hearth serve: warning: usage is not recorded: cannot create %s: %s\n", home, strerror(errno));
		return false;
	}
	return snprintf(path, size, "%s/usage.db", home) < (int)size;
}

bool usage_open(struct server *srv)
{
	struct usage_conf *c = srv->usage_conf;
	struct usage_state *us = calloc(1, sizeof *us);
	struct hearth_err err = { 0 };
	char path[4096];
	if (!us || !(us->c = calloc(COUNTERS_MAX, sizeof *us->c)) || quota_new(&srv->quota, srv->n_keys)) {
		fprintf(stderr, "hearth serve: out of memory\n");
		if (us)
			free(us->c);
		free(us);
		return false;
	}
	pthread_mutex_init(&us->mu, NULL);
	pthread_mutex_init(&us->smu, NULL);
	pthread_cond_init(&us->scv, NULL);
	srv->usage_state = us;
	if (c->price_file && !read_prices(c->price_file, &us->prices))
		return false;
	if (c->off || !db_path(c, path, sizeof path))
		return true;
	if (usage_store_open(&srv->usage, path, c->retention_days, QUEUE_CAP, &err)) {
		fprintf(stderr, "hearth serve: warning: usage is not recorded: %s\n", err.msg);
		return true;
	}
	us->sampling = c->sample_s > 0 && !pthread_create(&us->sampler, NULL, sampler, srv);
	return true;
}

void usage_close(struct server *srv)
{
	struct usage_state *us = srv->usage_state;
	if (us && us->sampling) {
		pthread_mutex_lock(&us->smu);
		us->stop = true;
		pthread_cond_signal(&us->scv);
		pthread_mutex_unlock(&us->smu);
		pthread_join(us->sampler, NULL);
	}
	usage_store_close(srv->usage);
	srv->usage = NULL;
	quota_free(srv->quota);
	srv->quota = NULL;
	if (us) {
		pthread_mutex_destroy(&us->mu);
		pthread_mutex_destroy(&us->smu);
		pthread_cond_destroy(&us->scv);
		free(us->c);
		free(us);
	}
	srv->usage_state = NULL;
}

const struct price_list *usage_prices(const struct server *srv)
{
	return srv->usage_state ? &srv->usage_state->prices : NULL;
}
