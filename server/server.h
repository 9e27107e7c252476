/*
 * server.h - `hearth serve`: an OpenAI-compatible HTTP server over the
 * library's scheduler. Uses only include/hearth.h.
 *
 *   listen.c       the listening socket and the accept loop (limits, deadlines)
 *   conns.c        connection slots: per-address and global limits, eviction, deadlines
 *   http.c         libmicrohttpd glue: requests in, replies and streams out
 *   request.c      the request path: size, host, origin and key checks, routes,
 *                  body limits, then the route's handler
 *   reply.c        JSON replies and OpenAI-shaped errors
 *   api-openai.c   /v1/chat/completions, /v1/completions, /v1/models, /tokenize,
 *                  /detokenize, over params.c, gen.c, stream.c, shapes.c (openai.h)
 *   api-score.c    /v1/score: a given completion's log-probabilities, without sampling
 *   api-attribute.c /v1/attribute: each prompt token's saliency for a completion (the trainer's pass)
 *   api-embed.c    /v1/embeddings: pooled hidden states; api-rerank.c: /v1/rerank over them
 *   api-ollama.c   Ollama's /api/chat, /api/generate, /api/tags, /api/show, /api/ps,
 *                  /api/version, /api/pull over the same machinery (ollama-wire.c: its
 *                  requests and NDJSON shapes; ollama-info.c: models described from GGUF)
 *   models.c       the models served: registered by name, loaded on first use,
 *                  unloaded when idle or to make room (--max-loaded, --idle-unload)
 *   load.c         one model's loaded state: weights, chat template, scheduler
 *   metrics.c      /metrics in Prometheus text under vLLM's metric names
 *   api-cache.c    /v1/cache: saved model state on disk (cache-store.c; cache.h)
 *   usage.h        usage per key: keys.c (names, roles, quotas), usage-store.c
 *                  (SQLite), usage-query.c and usage-api.c (the usage routes),
 *                  quota.c, price.c, usage.c (recording, counters, sampler)
 *   web.c          the web chat page at / (web/, embedded at build time; web.h)
 *   serve.c        flags, keys, TLS files, model registration, signals, draining
 *
 * Threads: one accept thread; libmicrohttpd runs one thread per connection;
 * each handler acquires the model its request names (models.c; loading it
 * on first use), submits to that model's scheduler, reads its request's
 * events and releases the model when the reply (stream included) ends. A
 * model is shared read-only; its scheduler thread owns its KV cache; a model
 * with requests in flight is never unloaded. One reaper thread unloads idle
 * models.
 */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hearth.h"

#define SRV_MAX_KEYS 64
#define SRV_MAX_NAMES 16        /* --allowed-host and --cors-origin entries */
#define SRV_MIN_KEY_BYTES 16    /* shorter keys need --allow-weak-key */
#define SRV_MAX_CVECS 16        /* --control-vector files */
#define SRV_MAX_LORAS 32        /* LoRA adapters (--lora and POST /v1/lora) */
#define LISTEN_MAX_LINGER 128   /* refused sockets drained at once */
#define KEY_NAME_MAX 64         /* bytes of an API key's name, NUL included (usage.h) */

struct metrics;
struct MHD_Daemon;

/* ---- conns.c ---- */

enum conn_state { CONN_IDLE, CONN_RECEIVING, CONN_BUSY, CONN_SENDING }; /* see conns.c */

struct conn_slot {
	bool used, started, closing;
	int fd;
	unsigned char addr[16];  /* limit key: IPv4-mapped IPv6, or an IPv6 /64 */
	int state;               /* enum conn_state */
	double t_wait;           /* when it began waiting for its current request (IDLE) */
	double t_backlog;        /* since when its client has left sent bytes unread (0: it has not) */
};

struct addr_count {
	unsigned char key[16];
	int n;                   /* open connections; 0: empty entry */
};

struct conns {
	pthread_mutex_t lock;
	struct conn_slot *slot;  /* [cap], stable: libmicrohttpd holds pointers */
	int cap;                 /* 2 x max_total: open ones and those closing */
	int max_total, max_per_addr;
	double deadline_s;
	bool tls;                /* no plain-text replies written by hand */
	struct addr_count *addrs; /* [addr_cap] open addressing */
	size_t addr_cap;
	int n_open, n_closing;
	uint64_t n_evicted, n_refused, n_timed_out;
};

struct conns_stats {
	int n_open, n_closing;
	uint64_t n_evicted, n_refused, n_timed_out;
};

int conns_init(struct conns *cs, int max_total, int max_per_addr, double deadline_s, bool tls);
void conns_free(struct conns *cs);
void conns_addr_key(const struct sockaddr *sa, unsigned char key[16]);
/* Takes a slot for a new connection (evicting a waiting one if a limit is
 * reached); its index, or -1 when the connection must be refused. */
int conns_admit(struct conns *cs, int fd, const struct sockaddr *sa, double now);
/* Gives the slot back when libmicrohttpd refused the connection before starting it. */
void conns_forget(struct conns *cs, int at, int fd);
/* libmicrohttpd started / closed the connection on fd (closed: before the fd is closed). */
struct conn_slot *conns_started(struct conns *cs, int fd);
void conns_closed(struct conns *cs, struct conn_slot *s);
/* State changes from the connection's thread (s may be NULL: untracked).
 * receiving: its head is in; busy: its request is in (false for both when the
 * connection is being closed); sending: a reply or part of one was handed
 * over; waiting: its reply is done, it waits for the next request from now. */
bool conns_receiving(struct conns *cs, struct conn_slot *s);
bool conns_busy(struct conns *cs, struct conn_slot *s);
void conns_sending(struct conns *cs, struct conn_slot *s);
void conns_waiting(struct conns *cs, struct conn_slot *s, double now);
/* Notes which clients leave sent bytes unread, and closes the connections
 * past their deadlines (408 before a reply); how many. */
int conns_reap(struct conns *cs, double now);
/* Writes a 503 with Retry-After to fd without blocking (plain HTTP only). */
void conns_say_busy(const struct conns *cs, int fd);
void conns_counts(struct conns *cs, struct conns_stats *st);

/* ---- listen.c ---- */

struct listener {
	int fd, family, port;    /* port: the one bound (--port 0 picks one) */
	int wake[2];             /* a byte here stops the loop */
	int reserve;             /* a spare descriptor for refusing clients when out of them */
	pthread_t thread;
	bool running;
	struct server *srv;
	struct {
		int fd;
		double t_close;
	} linger[LISTEN_MAX_LINGER];
	int n_linger;
};

/* Binds host:port (port 0: any free one) without sharing it; -1 with why filled. */
int listener_open(struct listener *l, const char *host, int port, char *why, size_t why_size);
/* Starts the accept loop handing connections to srv->mhd. */
int listener_start(struct listener *l, struct server *srv);
void listener_close(struct listener *l);
/* Is host (an IP address or "localhost") a loopback address? */
bool host_is_loopback(const char *host);
/* Raises the soft descriptor limit to the hard one; returns the limit in force. */
int fd_limit_raise(void);

/* ---- models.c: the models served ---- */

#define MODELS_MAX 256          /* registered models */
#define MODEL_NAME_MAX 128      /* bytes of a model's name */

enum model_state { MODEL_UNLOADED, MODEL_LOADING, MODEL_LOADED, MODEL_UNLOADING };

/* One model the server serves. Fields above `mu`'s line are fixed once it is
 * registered; the loaded state is valid while the holder's acquire lasts
 * (in_use > 0 keeps it loaded); the rest is guarded by the registry's lock. */
struct served_model {
	char *name;               /* what clients ask for in "model" */
	char *path;               /* the GGUF file (never shown to clients) */
	struct server *srv;       /* shared configuration */
	struct metrics *metrics;  /* its request metrics, kept across loads */
	long modified;            /* the file's modification time (unix) */
	uint64_t file_size;       /* bytes */
	/* loaded state (load.c) */
	struct hearth_model *model;
	struct hearth_chat *chat; /* the model's chat template, compiled */
	sem_t renders;            /* chat renders running at once (each may hold its arena, up to 256 MiB) */
	bool renders_ready;       /* renders and attributions made */
	sem_t attributions;       /* attributions running at once: one (api-attribute.c) */
	struct hearth_sched *sched;
	struct hearth_sched_params sp; /* as the scheduler uses them */
	double load_s;            /* seconds its last load took */
	struct hearth_cvec *cvecs[SRV_MAX_CVECS]; /* --control-vector files, each times its scale (steer.c) */
	struct hearth_cvec *cvec_all; /* their sum: every request's default steering; NULL: none */
	/* guarded by the registry's lock */
	int state;                /* enum model_state */
	int in_use;               /* requests holding it */
	double last_used;         /* hearth_now() of the last release (or acquire) */
	double idle_s;            /* unloaded after this long unused (INFINITY: never) */
	double failed_at;         /* hearth_now() of the last failed load, 0: none */
	long loaded_at;           /* unix time of the last load, 0: never */
	int32_t n_ctx_seq;        /* tokens per request when last loaded (or -c), 0: not known */
	uint64_t size;            /* bytes of its tensors when last loaded, else the file's */
	char failed_msg[256];     /* why it failed (for the log; may name the path) */
};

/* A LoRA adapter of a served model (adapters.c). */
struct srv_adapter {
	char name[64];            /* what requests call it ("lora", or "model": "BASE+NAME") */
	char path[4096];          /* its file (never shown to clients) */
	float scale;
	struct served_model *sm;  /* its model; NULL: the first registered (--lora) */
	struct hearth_lora *lora; /* loaded with its model, NULL while the model is not */
};

/* The registry. m[] and n are filled before the server starts and fixed
 * after, so any thread may read them without the lock. */
struct models {
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* a load or an unload ended, a model was released */
	struct served_model *m[MODELS_MAX];
	atomic_int n;             /* registered; grows at run time (pulls) under mu, read without it */
	int max_loaded;           /* models loaded at once (0: no limit) */
	double idle_s;            /* --idle-unload (INFINITY: never) */
	const char *template_src; /* --chat-template's text for every model (NULL: each model's own) */
	size_t template_len;
	pthread_t reaper;
	bool reaper_running, stopping;
	struct srv_adapter adapters[SRV_MAX_LORAS]; /* under mu (adapters.c) */
	int n_adapters;
};

/* What a model value of -m may be: "FILE", or "NAME=FILE". Sets *name (NULL
 * for a plain FILE) and *file to parts of a copy in buf; false when it does
 * not fit or NAME is not a valid name (why filled). A value naming an
 * existing file is a FILE even when it holds '='. */
bool models_split_arg(const char *arg, char *buf, size_t size, const char **name, const char **file, char *why,
		      size_t why_size);
/* Is name a valid model name: 1..MODEL_NAME_MAX bytes of letters, digits and
 * . _ - : / +, not starting with . / or -, without "..". */
bool models_name_ok(const char *name);
int models_init(struct models *ms);
/* Registers a model (name and path copied); HEARTH_EINVAL for a bad or taken
 * name or too many models, HEARTH_EIO for a path that is not a readable
 * regular file. */
int models_add(struct models *ms, struct server *srv, const char *name, const char *path, struct hearth_err *err);
/* The same while the server runs (under the registry's lock): a model pulled
 * through /api/pull. A name already registered is left as it is (0). */
int models_add_live(struct models *ms, struct server *srv, const char *name, const char *path,
		    struct hearth_err *err);
/* Registers every *.gguf of dir (not its sub-folders; symlinks only to
 * regular files inside dir), named by file name without ".gguf"; how many,
 * or a negative HEARTH_E* when dir cannot be read. */
int models_add_dir(struct models *ms, struct server *srv, const char *dir, struct hearth_err *err);
/* The registered model called name (also "name:latest" for name), or NULL. */
struct served_model *models_find(struct models *ms, const char *name);
/* Holds the model called name (NULL or "": the first registered), loading it
 * first when it is not loaded; concurrent first requests wait for one load.
 * To make room under max_loaded it unloads the least recently used idle
 * model, and waits up to wait_s for one to become idle. HEARTH_ENOTFOUND: no
 * such model; HEARTH_EBUSY: no room (every loaded model busy); another code:
 * the load failed (err says why; it is retried after a few seconds);
 * *load_s: seconds this call spent loading (0 when it was loaded). */
int models_acquire(struct models *ms, const char *name, double wait_s, struct served_model **out, double *load_s,
		   struct hearth_err *err);
/* Releases a hold; keep_s >= 0 sets how long the model stays loaded idle
 * (Ollama's keep_alive; 0: unloaded as soon as it is idle), < 0 keeps it. */
void models_release(struct models *ms, struct served_model *sm, double keep_s);
/* Holds sm only when it is loaded, leaving its use time alone (/metrics,
 * /health, /api/ps read its scheduler); false when it is not loaded. */
bool models_peek(struct models *ms, struct served_model *sm);
void models_unpeek(struct models *ms, struct served_model *sm);
/* Unloads models idle past their idle_s; how many (the reaper calls it). */
int models_reap(struct models *ms, double now);
/* Starts the reaper thread (checks twice a second). */
int models_start_reaper(struct models *ms);
/* What a model's listing shows, copied under the registry's lock. */
struct model_view {
	int state, in_use;
	double last_used, idle_s;
	long created;             /* unix time it was last loaded, 0: never */
	int32_t n_ctx_seq;        /* tokens per request, 0: not known yet (never loaded, no -c) */
	uint64_t size;            /* bytes of its tensors when last loaded, else the file's size */
};
void models_view(struct models *ms, const struct served_model *sm, struct model_view *v);
/* Stops the reaper and unloads and frees every model (none may be held). */
void models_free(struct models *ms);

/* load.c: a model's weights, chat (the registry's --chat-template, else the
 * model's own) and scheduler, loaded together and released together. */
int load_model(struct served_model *sm, const char *template_src, size_t template_len, struct hearth_err *err);
void load_free(struct served_model *sm);

/* steer.c: control vectors. Reads --control-vector's FILE[:SCALE] into srv
 * (false with why when malformed or too many). */
bool steer_flag(struct server *srv, const char *arg, char *why, size_t why_size);
/* Loads srv's control vectors for sm's model (freed by steer_free). */
int steer_load(struct served_model *sm, struct hearth_err *err);
void steer_free(struct served_model *sm);

/* adapters.c: LoRA adapters. Reads --lora's NAME=FILE[:SCALE] into srv's
 * registry (false with why when malformed or too many). */
bool adapters_flag(struct server *srv, const char *arg, char *why, size_t why_size);
/* Loads the adapters of sm's model (freed by adapters_free; entries stay). */
int adapters_load(struct served_model *sm, struct hearth_err *err);
void adapters_free(struct served_model *sm);
/* Adds a /v1/models entry "BASE+NAME" per adapter to data; false when out of memory. */
bool adapters_list_models(struct server *srv, json_t *data);

/* ---- the server ---- */

struct server {
	/* configuration */
	const char *host;
	int port;
	const char *alias;        /* server_load: the model name clients use */
	const char *model_path;   /* server_load: its file */
	char *keys[SRV_MAX_KEYS]; /* API keys; none: open */
	int n_keys;
	struct srv_key {          /* keys[k]'s name, role and quotas (keys.c) */
		char name[KEY_NAME_MAX];
		bool admin;
		int64_t rpm, tpd; /* 0: the defaults of usage_conf */
	} key_info[SRV_MAX_KEYS];
	struct usage_conf *usage_conf; /* usage.h: flags of usage, quotas, cost */
	struct usage_store *usage; /* the record (usage.h); NULL: not recorded */
	struct quota *quota;      /* per-key limits (usage.h); NULL: none */
	struct usage_state *usage_state; /* counters, prices, sampler (usage.c) */
	const char *allowed_hosts[SRV_MAX_NAMES]; /* Host names answered besides loopback ones */
	int n_allowed_hosts;
	bool check_host;          /* answer only loopback and allowed Host names */
	const char *cors_origins[SRV_MAX_NAMES];  /* origins given CORS headers ("*": any) */
	int n_cors_origins;
	size_t max_body;          /* bytes, completions; other routes less */
	size_t max_body_total;    /* bytes all request bodies being received may hold (0: no limit) */
	int timeout_s;            /* a request must be in this long after the connection waits for it */
	double request_timeout_s; /* whole-request deadline (0: none) */
	int max_conns, max_conns_per_addr;
	char *tls_cert, *tls_key; /* PEM text; NULL: plain HTTP */
	bool log_prompts;
	bool allow_special_in_content; /* control-token text in messages becomes control tokens */
	bool allow_pull;          /* /api/pull may download models into the store (--allow-pull) */
	atomic_bool pulling;      /* a pull runs now (one at a time) */
	struct hearth_sched_params sp; /* each model's scheduler's, as the flags give them */
	struct srv_cvec {
		char path[4096];
		float scale;
		char name[64];    /* what requests call it: the file name without .gguf */
	} cvecs[SRV_MAX_CVECS];   /* --control-vector FILE[:SCALE] */
	int n_cvecs;
	const char *lora_dir;     /* POST /v1/lora may load files inside it (--lora-dir); NULL: off */
	uint64_t cache_budget;    /* bytes saved state may take on disk (--cache-budget; 0: no limit) */
	struct cache_store *cache; /* saved state (cache.h), NULL: none (the routes answer 503) */
	/* state */
	struct models models;     /* the models served */
	atomic_int phase;         /* enum srv_phase */
	atomic_int in_flight;     /* requests being served */
	atomic_size_t body_held;  /* bytes of request bodies held now */
	struct MHD_Daemon *mhd;
	struct listener listener;
	struct conns conns;
};

enum srv_phase { SRV_LOADING, SRV_READY, SRV_DRAINING };

/* models.c, for a server of one model (tests, fuzzers): the registry set up
 * with srv->model_path under srv->alias, and that model loaded now (its chat
 * from template_src, NULL: the model's). server_unload frees the registry. */
int server_load(struct server *srv, const char *template_src, size_t template_len, struct hearth_err *err);
void server_unload(struct server *srv);

#define REPLY_MAX_HEADERS 6

/* A header a handler adds to its reply (static strings). */
struct reply_header {
	const char *name, *value;
};

/* An HTTP reply being built by a handler. */
struct reply {
	int status;
	char *body;               /* malloc'd */
	size_t len;
	const char *content_type;
	int retry_after;          /* seconds for 429/503; 0: none */
	const char *allow;        /* Allow header (405) */
	const char *cors_origin;  /* Access-Control-Allow-Origin value, or NULL */
	bool preflight;           /* a CORS preflight answer (204, no body) */
	const char *allow_headers; /* preflight: Access-Control-Allow-Headers */
	/* streaming: when set, the handler hands the connection to this reader */
	struct stream *stream;
	bool ollama;              /* errors in Ollama's shape {"error": "..."} (an /api/ route) */
	struct reply_header headers[REPLY_MAX_HEADERS]; /* more headers (web.c) */
	int n_headers;
};

/* Error replies in OpenAI's shape {"error":{"message","type","param","code"}},
 * or Ollama's {"error":"message"} when rp->ollama. */
void reply_error(struct reply *rp, int status, const char *type, const char *param, const char *code,
		 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Takes ownership of j (decref'd) and serializes it as the reply body (NULL
 * body when j is NULL or out of memory: the HTTP layer then answers 500). */
void reply_json(struct reply *rp, int status, json_t *j);
/* j as compact JSON text (malloc'd, *len bytes), or NULL when out of memory. */
char *reply_text(const json_t *j, size_t *len);
/* The reply for an error the library returned: 500 when it ran out of memory,
 * else 400 naming param (may be NULL) with the library's message. */
void reply_lib_error(struct reply *rp, int rc, const char *param, const struct hearth_err *err);

/* jsonb.c: JSON built with every step checked */
/* A JSON string of n bytes; invalid UTF-8 becomes U+FFFD. */
json_t *jsonb_str(const char *s, size_t n);
/* Appends v (taken over) to arr; false when either is NULL or the append fails. */
bool jsonb_add(json_t *arr, json_t *v);
/* Sets key of obj to v (taken over); false when any is NULL or it fails. */
bool jsonb_set(json_t *obj, const char *key, json_t *v);
/* obj when every step that built it succeeded (ok), else NULL (obj released). */
json_t *jsonb_done(json_t *obj, bool ok);
/* n bytes as a base64 string (RFC 4648, padded); NULL when out of memory. */
json_t *jsonb_base64(const void *data, size_t n);

/* One HTTP request as the request path sees it (the headers it reads). */
struct http_request {
	const char *method, *url;
	const char *host, *authorization, *content_type, *origin, *session_id;
	const char *preflight_method, *preflight_headers; /* Access-Control-Request-* */
	const char *if_none_match; /* If-None-Match (web.c) */
	size_t header_bytes;      /* names and values of all headers */
	bool has_length;
	uint64_t content_length;
	const char *body;
	size_t body_len;
	bool body_too_big;        /* more arrived than the route allows */
	bool body_no_room;        /* the bodies of all requests would outgrow --max-body-total */
	int fd;                   /* the client socket (to notice a disconnect), -1: none */
	/* the URL's query arguments (decoded): up to max values of name into
	 * vals, how many; NULL: none (tests) */
	int (*query)(const struct http_request *rq, const char *name, const char **vals, int max);
	void *conn;               /* for query: the connection */
};

/* What a handler gets. */
struct call {
	json_t *body;             /* the JSON object posted, or NULL */
	const char *arg;          /* the rest of the path after a prefix route */
	int fd;                   /* the client socket, -1: none */
	const char *session_key;  /* x-session-id header or NULL */
	const char *tenant;       /* the API key that let the request in, or NULL */
	const struct http_request *http; /* the request (query arguments), or NULL */
};

struct route;
/* The checks that need only the request head: size, Host, Origin, key,
 * route and method, state, content type and length. True when they answered
 * (rp filled); else *rt is the route and the body may come. */
/* Is url a route answered without an API key (/health, the web pages)? */
bool request_open(const char *url, const char *method);
bool request_head(struct server *srv, const struct http_request *rq, const struct route **rt, struct reply *rp);
/* Answers a request whose head passed request_head, its body now complete. */
void request_answer(struct server *srv, const struct route *rt, const struct http_request *rq, struct reply *rp);
/* The same once the body is parsed (body: the JSON object for routes that take one, else NULL). */
void request_answer_json(struct server *srv, const struct route *rt, const struct http_request *rq, json_t *body,
		      struct reply *rp);
/* The most body bytes rt accepts. */
size_t request_max_body(const struct server *srv, const struct route *rt);

/* api-openai.c (openai.h: what its helpers share) */
void api_chat_completions(struct server *srv, const struct call *call, struct reply *rp);
void api_completions(struct server *srv, const struct call *call, struct reply *rp);
void api_models(struct server *srv, const struct call *call, struct reply *rp);
void api_lora_list(struct server *srv, const struct call *call, struct reply *rp);   /* adapters.c */
void api_lora_load(struct server *srv, const struct call *call, struct reply *rp);
void api_lora_unload(struct server *srv, const struct call *call, struct reply *rp);
void api_model(struct server *srv, const struct call *call, struct reply *rp); /* GET /v1/models/{id} */
void api_tokenize(struct server *srv, const struct call *call, struct reply *rp);
void api_detokenize(struct server *srv, const struct call *call, struct reply *rp);
/* api-score.c: POST /v1/score, a completion's log-probabilities after a prompt */
void api_score(struct server *srv, const struct call *call, struct reply *rp);
/* api-attribute.c: POST /v1/attribute, each prompt token's saliency for a completion's log-probability */
void api_attribute(struct server *srv, const struct call *call, struct reply *rp);
/* api-embed.c: POST /v1/embeddings, pooled hidden states in OpenAI's shape */
void api_embeddings(struct server *srv, const struct call *call, struct reply *rp);
/* api-rerank.c: POST /v1/rerank, documents ordered by similarity to a query */
void api_rerank(struct server *srv, const struct call *call, struct reply *rp);
/* The model the request's "model" field names (absent or "": the default),
 * held until models_release (a stream releases it when freed); NULL after an
 * error reply: 404 unknown, 503 with Retry-After when it cannot be loaded
 * now. *load_s: seconds spent loading it (may be NULL). */
struct served_model *api_model_acquire(struct server *srv, json_t *body, struct reply *rp, double *load_s);
/* api_model_acquire for the routes that do not apply LoRA adapters (score,
 * embeddings, rerank, saved states, attribution): an adapter's model id
 * ("BASE+NAME") or a "lora" field is refused (400) rather than silently
 * answered by the base model. */
struct served_model *api_model_acquire_base(struct server *srv, json_t *body, struct reply *rp);

/* api-ollama.c: Ollama's API (errors {"error": "..."}) */
void api_ollama_version(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_tags(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_ps(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_show(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_chat(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_generate(struct server *srv, const struct call *call, struct reply *rp);
void api_ollama_pull(struct server *srv, const struct call *call, struct reply *rp);

/* web.c: the web chat page (web.h): GET /, GET /admin and GET /ui/NAME, without a key */
void web_index(struct server *srv, const struct call *call, struct reply *rp);
void web_admin(struct server *srv, const struct call *call, struct reply *rp);
void web_file(struct server *srv, const struct call *call, struct reply *rp);

/* Streaming: the reader fills buf with the next SSE bytes. Returns the count,
 * 0 with *ended when the stream ended, -1 when it broke (out of memory: the
 * connection is then cut, so the client never sees a false end); blocks
 * while the model works. */
struct stream;
ssize_t stream_read(struct stream *st, char *buf, size_t max, bool *ended);
void stream_free(struct stream *st); /* cancels the request if still running */
const char *stream_content_type(const struct stream *st);

/* metrics.c: recorded by handlers (one struct metrics per model), read by
 * /metrics; never waits on a scheduler. */
int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);
void metrics_request_done(struct metrics *m, const char *finish_reason, int n_prompt, int n_gen, double queue_s,
			  double ttft_s, double e2e_s);
void metrics_inter_token(struct metrics *m, double seconds);
/* Writes the exposition text (malloc'd): every registered model's series
 * under its model_name label (a model not loaded has empty scheduler gauges). */
char *metrics_render(struct server *srv, size_t *len);

/* http.c: starts libmicrohttpd (no listening socket of its own: the accept
 * loop hands it connections); false after printing why. */
bool http_start(struct server *srv);
void http_stop(struct server *srv);

/* True when the client at fd has closed its side. */
bool client_gone(int fd);

#endif /* HEARTH_SERVER_H */
