/*
 * usage.h - who used how much, what it would have cost at an API, and the
 * limits per key (internal to server/):
 *
 *   keys.c         the API keys: names, roles and quotas from --api-key-file
 *                  lines "NAME KEY [admin] [rpm=N] [tpd=N]" or a bare "KEY"
 *   usage-store.c  the record in SQLite (HEARTH_HOME/usage.db, WAL): one row
 *                  per request and periodic samples, written by one thread
 *                  from a bounded queue in batched transactions, read back
 *                  on a connection of its own; old rows deleted in batches
 *   usage-query.c  the rows summed into time buckets (OpenAI's usage API),
 *                  latency percentiles, samples and cost, as JSON
 *   usage-api.c    the routes: /v1/organization/usage/completions and
 *                  /v1/hearth/usage/{latency,samples,cost}
 *   quota.c        requests per minute (a sliding 60 s window) and tokens
 *                  per UTC day, per key; 429 with Retry-After beyond them
 *   price.c        --price FILE: per-model API prices per million tokens
 *   usage.c        the glue: a finished request into a row, the in-memory
 *                  counters /metrics shows per key and model, the sampler
 *
 * Threads: handlers call usage_note_* and quota_* from any thread; they never
 * wait on SQLite (a full queue drops the row and counts it). Queries run on
 * the HTTP thread that asked, on the store's read connection.
 */
#ifndef HEARTH_SERVER_USAGE_H
#define HEARTH_SERVER_USAGE_H

#include <stdint.h>

#include "openai.h"

/* ---- keys.c ---- */

/* One parsed key-file line. */
struct key_line {
	char name[KEY_NAME_MAX];
	char key[512];
	bool admin;
	int64_t rpm, tpd;          /* 0: the server's default (--quota-rpm, --quota-tpd) */
	bool blank;                /* a blank or comment line: nothing else set */
};
/* Reads one line of a key file (its newline may remain). False with why (not
 * naming the line: the caller adds where) when it is malformed. */
bool keys_parse_line(const char *line, struct key_line *out, char *why, size_t why_size);
/* The name of a key given without one: "key-" and the first 8 hex digits of
 * its SHA-256. */
void keys_hash_name(const char *key, char out[KEY_NAME_MAX]);
/* Is name a valid key name: 1..63 of letters, digits and . _ - @, not starting with - or .? */
bool keys_name_ok(const char *name);
/* Adds a key with its name and role to srv (a bare key: name NULL); false
 * with why when the key is malformed or short, the name taken, or too many. */
bool keys_add(struct server *srv, const char *key, const char *name, bool admin, int64_t rpm, int64_t tpd,
	      bool allow_weak, char *why, size_t why_size);
/* Reads a key file into srv; false after printing why (naming the file and
 * line). A file without any key is an error. */
bool keys_read_file(struct server *srv, const char *path, bool allow_weak);
/* The index of the key tenant (call->tenant: a pointer into srv->keys), -1: none. */
int keys_index(const struct server *srv, const char *tenant);
/* The name usage records for tenant: its key's name, "" without keys. */
const char *keys_name(const struct server *srv, const char *tenant);
/* May tenant read every key's usage? (An admin key; anyone on a server
 * without keys.) */
bool keys_is_admin(const struct server *srv, const char *tenant);

/* ---- usage-store.c ---- */

#define USAGE_ROUTE_MAX 32
#define USAGE_FINISH_MAX 16

/* One request as recorded. */
struct usage_rec {
	int64_t t;                 /* unix seconds when it ended */
	char key[KEY_NAME_MAX];    /* the key's name, "" without keys */
	char model[MODEL_NAME_MAX + 1];
	char route[USAGE_ROUTE_MAX]; /* "chat.completions", "completions", "embeddings", "score", "rerank",
					"ollama.chat", "ollama.generate" */
	int64_t prompt, cached, completion; /* as the client's "usage" said them */
	double queue_s;            /* submitted until first scheduled */
	double compute_s;          /* first scheduled until it ended */
	double cpu_s;              /* CPU seconds charged to it (usage.c: a share of the process's) */
	double ttft_s;             /* to the first generated token, < 0: none */
	double itl_s;              /* mean time between generated tokens, < 0: fewer than two */
	char finish[USAGE_FINISH_MAX]; /* stop, length, abort, error, ... */
	int status;                /* the HTTP status answered (200, or an error after tokens were spent) */
};

/* A periodic sample of one loaded model. */
struct usage_sample {
	int64_t t;                 /* unix seconds */
	char model[MODEL_NAME_MAX + 1];
	int32_t waiting, running;  /* requests queued, decoding */
	double kv_use;             /* KV blocks used / all, 0..1 */
	int64_t prefix_queries, prefix_hits; /* tokens looked up / found since the last sample */
};

struct usage_store;
/* Opens (creating) the store at path; retention_days > 0 deletes older rows
 * (checked at start and every few minutes, 1000 rows per transaction);
 * queue_cap: rows waiting to be written before new ones are dropped. */
int usage_store_open(struct usage_store **out, const char *path, int retention_days, int queue_cap,
		     struct hearth_err *err);
/* Writes what is queued and closes. */
void usage_store_close(struct usage_store *st);
/* Queues a row (copied) for the writer; false when the queue is full (the
 * row is dropped and counted). Never waits on SQLite. */
bool usage_store_put(struct usage_store *st, const struct usage_rec *r);
bool usage_store_put_sample(struct usage_store *st, const struct usage_sample *s);
/* Waits until every row queued before the call is committed. */
void usage_store_flush(struct usage_store *st);
/* Rows dropped for a full queue, and rows the writer failed to write. */
uint64_t usage_store_dropped(struct usage_store *st);
uint64_t usage_store_failed(struct usage_store *st);
/* Deletes rows older than cutoff (unix seconds), at most `batch` per
 * transaction until none are left; how many (the writer calls it too). */
int64_t usage_store_prune(struct usage_store *st, int64_t cutoff, int batch);
/* The read connection, locked (sqlite3 *), and its release. */
void *usage_store_read_lock(struct usage_store *st);
void usage_store_read_unlock(struct usage_store *st);
/* Tokens (prompt + completion) key used since `since` (unix seconds). */
int64_t usage_store_tokens_since(struct usage_store *st, const char *key, int64_t since);

/* ---- price.c ---- */

#define PRICE_MAX 256

struct price {
	char model[MODEL_NAME_MAX + 1]; /* a served model's name, or "*": any other */
	double input, cached, output;   /* currency units per million tokens */
};
struct price_list {
	struct price p[PRICE_MAX];
	int n;
};
/* Reads a price file: lines "MODEL INPUT CACHED OUTPUT" (per million tokens;
 * '#' comments; CACHED "-" = INPUT). False with why naming the line. */
bool price_parse(const char *text, size_t len, struct price_list *pl, char *why, size_t why_size);
/* The price of model (its own line, else "*"), NULL: none. */
const struct price *price_find(const struct price_list *pl, const char *model);
/* What prompt/cached/completion tokens cost at p (cached are part of prompt). */
double price_cost(const struct price *p, int64_t prompt, int64_t cached, int64_t completion);

/* ---- quota.c ---- */

#define QUOTA_RPM_MAX 100000

struct quota;
int quota_new(struct quota **out, int n_keys);
void quota_free(struct quota *q);
/* Admits a request of key k with limits rpm and tpd (0: none) at unix time
 * now, given the tokens k used today (used_today, for the day of now).
 * True: admitted (counted in the minute's window). False: *retry_after
 * (seconds) and *which ("rpm" or "tpd") say why. */
bool quota_admit(struct quota *q, int k, int64_t rpm, int64_t tpd, double now, struct usage_store *st,
		 const char *key_name, int *retry_after, const char **which);
/* Adds tokens key k spent, at unix time now (the day's count; read from st
 * first when the day is new to it: call it before queuing the request's row). */
void quota_spent(struct quota *q, int k, int64_t tokens, double now, struct usage_store *st, const char *key_name);

/* ---- usage.c ---- */

/* What hearth serve's usage flags set. */
struct usage_conf {
	int retention_days;        /* --usage-retention-days (0: keep all) [90] */
	bool off;                  /* --no-usage: nothing recorded */
	double sample_s;           /* --usage-sample-s: queue and KV samples [60] */
	int64_t quota_rpm, quota_tpd; /* --quota-rpm, --quota-tpd defaults (0: none) */
	double cost_core_hour;     /* --cost-core-hour: currency per CPU core-hour here */
	double power_watts, kwh_price; /* --power-watts, --kwh-price: the machine's draw and energy price */
	const char *price_file;    /* --price FILE */
	const char *db_path;       /* --usage-db PATH [HEARTH_HOME/usage.db] */
};

/* What a generating request hands over when it ends. */
struct usage_done {
	const char *tenant;        /* call->tenant */
	const char *model;
	const char *route;
	int64_t prompt, cached, completion;
	double t_submit, t_start, t_first, t_last, t_end; /* hearth_now(); 0: did not happen */
	int64_t n_gen;             /* tokens generated (for the inter-token mean) */
	double cpu_s;              /* < 0: charged by usage.c from the process's CPU time */
	const char *finish;
	int status;
};

/* Where a request's CPU share is measured from: the process's CPU seconds
 * and the tokens its model's scheduler had processed when it began. */
/* struct usage_mark (openai.h): t (hearth_now()), cpu (usage_cpu_now()), tokens
 * (prompt, uncached, and generated tokens of the scheduler so far). */
void usage_mark_now(struct usage_mark *m, struct served_model *sm);
/* The CPU seconds charged to a request that began at m and had its model
 * compute my_tokens: the process's CPU time since m times my_tokens over
 * the tokens the scheduler processed meanwhile (at most all of it). */
double usage_cpu_share(const struct usage_mark *m, struct served_model *sm, int64_t my_tokens);
/* A request without generated tokens (embeddings, score, rerank) answered 200. */
void usage_note_simple(struct server *srv, const struct call *call, struct served_model *sm, const char *route,
		       int64_t prompt, int64_t completion, const struct usage_mark *m);
/* A stream's generations (OpenAI and Ollama completions, streamed or not),
 * at stream_free; nothing when none was submitted. */
struct stream;
void usage_note_stream(struct stream *st);
/* One of hearth serve's usage flags (a: the flag, val: its value); 1: taken,
 * 0: not a usage flag, -1: a bad value (printed). --no-usage has no value:
 * call with val NULL first. */
int usage_flag(struct usage_conf *c, const char *a, const char *val);
/* The help lines of those flags. */
extern const char usage_help[];

/* Opens the store (and reads --price) as srv->usage_conf says; false after printing why. */
bool usage_open(struct server *srv);
void usage_close(struct server *srv);
/* Records a finished request: its row, the counters, the day's tokens. */
void usage_note(struct server *srv, const struct usage_done *d);
/* The route's usage name, NULL for routes not metered. */
const char *usage_route_name(const char *path);
/* Quotas for a metered route; false after a 429 reply. */
bool usage_admit(struct server *srv, const char *tenant, const char *path, struct reply *rp);
/* Per-key and per-model counters in Prometheus text (malloc'd; NULL when out of memory). */
char *usage_metrics_text(struct server *srv);
/* The process's CPU seconds so far (user + system). */
double usage_cpu_now(void);

/* The --price list (n 0: none), NULL when usage is not set up. */
const struct price_list *usage_prices(const struct server *srv);
/* The cost here of cpu_s CPU seconds (0 without --cost-core-hour / --power-watts). */
double usage_cost_here(const struct server *srv, double cpu_s);

/* ---- usage-query.c ---- */

struct usage_query {
	int64_t start, end;        /* unix seconds, [start, end) */
	int64_t width;             /* bucket seconds: 60, 3600, 86400 */
	int limit;                 /* buckets (samples: rows) */
	int64_t page;              /* the first bucket's start (a next_page cursor), 0: the first */
	bool by_key, by_model;
	const char *only_key;      /* NULL: every key */
	const char *models[16];    /* models=: only these (n_models 0: all) */
	int n_models;
	const char *keys[16];      /* api_key_ids=: only these */
	int n_keys;
};
/* The page of buckets in OpenAI's usage shape ({"object":"page",...}); NULL
 * when out of memory or the database failed (err says). */
json_t *usage_query_completions(struct usage_store *st, const struct usage_query *q, struct hearth_err *err);
/* Per bucket: requests, TTFT and inter-token percentiles (p50, p90, p99). */
json_t *usage_query_latency(struct usage_store *st, const struct usage_query *q, struct hearth_err *err);
/* The samples in [start, end) in time order, at most limit rows. */
json_t *usage_query_samples(struct usage_store *st, const struct usage_query *q, struct hearth_err *err);
/* Per key and model: tokens, CPU seconds, what they cost here and at the API. */
json_t *usage_query_cost(struct server *srv, const struct usage_query *q, struct hearth_err *err);

/* ---- usage-api.c: the routes ---- */
void api_usage_completions(struct server *srv, const struct call *call, struct reply *rp);
void api_usage_latency(struct server *srv, const struct call *call, struct reply *rp);
void api_usage_samples(struct server *srv, const struct call *call, struct reply *rp);
void api_usage_cost(struct server *srv, const struct call *call, struct reply *rp);

#endif /* HEARTH_SERVER_USAGE_H */
