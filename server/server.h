/*
 * server.h - `hearth serve`: an OpenAI-compatible HTTP server over the
 * library's scheduler. Uses only include/hearth.h.
 *
 *   http.c         libmicrohttpd glue: routing, limits, API keys, errors, SSE
 *   api-openai.c   /v1/chat/completions, /v1/completions, /v1/models, /tokenize, /detokenize
 *   metrics.c      /metrics in Prometheus text under vLLM's metric names
 *   serve.c        flags, model loading, signals, draining
 *
 * Threads: libmicrohttpd runs one thread per connection; each handler submits
 * to the scheduler and reads its request's events. The model is shared
 * read-only; the scheduler thread owns the KV cache.
 */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define SRV_MAX_KEYS 64

struct metrics;

struct server {
	/* configuration */
	const char *host;
	int port;
	const char *alias;        /* model name clients use */
	const char *model_path;
	char *keys[SRV_MAX_KEYS]; /* API keys; none: open */
	int n_keys;
	size_t max_body;          /* bytes */
	int timeout_s;            /* idle connection timeout */
	double request_timeout_s; /* whole-request deadline (0: none) */
	bool log_prompts;
	/* state */
	struct hearth_model *model;
	struct hearth_sched *sched;
	struct hearth_sched_params sp;
	atomic_int phase;         /* enum srv_phase */
	atomic_int in_flight;     /* requests being served */
	struct metrics *metrics;
	long created;             /* unix time the model was loaded */
};

enum srv_phase { SRV_LOADING, SRV_READY, SRV_DRAINING };

/* An HTTP reply being built by a handler. */
struct reply {
	int status;
	char *body;               /* malloc'd */
	size_t len;
	const char *content_type;
	int retry_after;          /* seconds for 429/503; 0: none */
	/* streaming: when set, the handler hands the connection to this reader */
	struct stream *stream;
};

/* Error replies in OpenAI's shape {"error":{"message","type","param","code"}}. */
void reply_error(struct reply *rp, int status, const char *type, const char *param, const char *code,
		 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Takes ownership of j (decref'd) and serializes it as the reply body. */
void reply_json(struct reply *rp, int status, json_t *j);

/* Context a handler gets about its connection. */
struct conn_info {
	int fd;                   /* the client socket (to notice a disconnect) */
	const char *session_key;  /* x-session-id header or NULL */
};

/* api-openai.c */
void api_chat_completions(struct server *srv, json_t *body, const struct conn_info *ci, struct reply *rp);
void api_completions(struct server *srv, json_t *body, const struct conn_info *ci, struct reply *rp);
void api_models(struct server *srv, struct reply *rp);
void api_model(struct server *srv, const char *id, struct reply *rp); /* GET /v1/models/{id} */
void api_tokenize(struct server *srv, json_t *body, struct reply *rp);
void api_detokenize(struct server *srv, json_t *body, struct reply *rp);

/* Streaming: the reader fills buf with the next SSE bytes. Returns the count,
 * 0 when the stream ended; blocks while the model works. */
struct stream;
size_t stream_read(struct stream *st, char *buf, size_t max, bool *ended);
void stream_free(struct stream *st); /* cancels the request if still running */

/* metrics.c: recorded by handlers, read by /metrics; never waits on the scheduler. */
int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);
void metrics_request_done(struct metrics *m, const char *finish_reason, int n_prompt, int n_gen, double queue_s,
			  double ttft_s, double e2e_s);
void metrics_inter_token(struct metrics *m, double seconds);
/* Writes the exposition text (malloc'd) for the model name. */
char *metrics_render(struct metrics *m, const struct server *srv, size_t *len);

/* http.c: starts the daemon (NULL after printing why); stop it with MHD_stop_daemon(). */
struct MHD_Daemon;
struct MHD_Daemon *http_start(struct server *srv);

/* True when the client at fd has closed its side. */
bool client_gone(int fd);

#endif /* HEARTH_SERVER_H */
