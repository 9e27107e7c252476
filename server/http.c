/*
 * http.c - libmicrohttpd glue and the request path.
 *
 * libmicrohttpd runs one thread per connection (poll(), so descriptors past
 * FD_SETSIZE work) on sockets the accept loop (listen.c) hands it. A request
 * goes through two stages:
 *
 *   http_head    once its headers are in: URL and header sizes (414, 431),
 *                the Host name (403: DNS rebinding), the Origin (403 unless
 *                allowed, CORS preflights), the API key (401, before routes are
 *                revealed), the route and method (404, 405), the server's state
 *                (503), the content type (415) and length (413);
 *   http_answer  once its body is in: the body limit (413), the JSON (400),
 *                then the route's handler.
 *
 * Both are plain functions of a struct http_request, so tests and fuzzers
 * drive them without sockets. Every reply, errors included, is JSON in
 * OpenAI's shape, except libmicrohttpd's own answers to requests whose head
 * outgrows HEADER_MEMORY or breaks HTTP's syntax.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "server.h"

#define URL_MAX (8 * 1024)          /* longer: 414 */
#define HEADERS_MAX (32 * 1024)     /* more header bytes: 431 */
#define HEADER_MEMORY (128 * 1024)  /* libmicrohttpd's per-connection pool: room for the above */
#define SMALL_BODY_MAX (1u << 20)   /* /tokenize, /detokenize */
/* a body refused from the head is still read, up to this, so that its client sees the answer */
#define DRAIN_MAX(srv) (2 * (uint64_t)(srv)->max_body)

/* One request in progress (libmicrohttpd's per-request pointer). */
struct conn {
	struct http_request rq;
	const struct route *rt;
	char *body;
	size_t len, cap;          /* cap bytes are held in srv->body_held */
	struct reply early;       /* an answer the head got, sent once the body is read and dropped */
	bool has_early;
	uint64_t dropped;         /* body bytes read and dropped */
	bool counted;             /* in srv->in_flight */
	struct conn_slot *slot;   /* the connection's, from conns.c */
};

/* A stream handed to libmicrohttpd, and whose connection it paces. */
struct sse {
	struct stream *st;
	struct server *srv;
	struct conn_slot *slot;
};

typedef void (*route_fn)(struct server *srv, const struct call *call, struct reply *rp);

struct route {
	const char *path;
	const char *method;       /* GET routes answer HEAD too */
	route_fn fn;              /* NULL: answered in this file */
	bool prefix;              /* path is a prefix; the rest is call->arg */
	bool open;                /* answered without an API key */
	bool json_body;           /* takes a JSON object */
	bool small_body;          /* at most SMALL_BODY_MAX bytes */
};

static const struct route routes[] = {
	{ "/health", "GET", NULL, false, true, false, false },
	{ "/metrics", "GET", NULL, false, false, false, false },
	{ "/v1/models", "GET", api_models, false, false, false, false },
	{ "/v1/models/", "GET", api_model, true, false, false, false },
	{ "/v1/chat/completions", "POST", api_chat_completions, false, false, true, false },
	{ "/v1/completions", "POST", api_completions, false, false, true, false },
	{ "/tokenize", "POST", api_tokenize, false, false, true, true },
	{ "/detokenize", "POST", api_detokenize, false, false, true, true },
	{ "/v1/tokenize", "POST", api_tokenize, false, false, true, true },
	{ "/v1/detokenize", "POST", api_detokenize, false, false, true, true },
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

bool client_gone(int fd)
{
	char c;
	if (fd < 0)
		return false;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return true;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* ---- the head checks ---------------------------------------------------------- */

/* The API key that authorization presents, or NULL. Each configured key is
 * compared in full whatever the others give, in time independent of where
 * they differ. The scheme name is case-insensitive (RFC 9110). */
static const char *key_match(const struct server *srv, const char *authorization)
{
	const char *given = "", *found = NULL;
	if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0)
		given = authorization + 7;
	while (*given == ' ')
		given++;
	size_t gl = strlen(given);
	while (gl && (given[gl - 1] == ' ' || given[gl - 1] == '\t'))
		gl--;
	for (int k = 0; k < srv->n_keys; k++) {
		const char *key = srv->keys[k];
		size_t kl = strlen(key);
		unsigned diff = gl != kl;
		for (size_t i = 0; i < kl; i++)
			diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < gl ? given[i] : 0);
		if (!diff)
			found = key;
	}
	return found;
}

/* The host part of a Host header value (no port, no brackets) into out;
 * false when it does not fit or is malformed (a port must be digits). */
static bool host_name(const char *host, char *out, size_t size)
{
	const char *end, *port;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return false;
		port = end[1] ? end + 1 : NULL;
		host++;
	} else {
		end = strchr(host, ':');
		if (end && strchr(end + 1, ':'))
			return false; /* an IPv6 address must be bracketed */
		port = end;
		if (!end)
			end = host + strlen(host);
	}
	if (port && (port[0] != ':' || !port[1] || strspn(port + 1, "0123456789") != strlen(port + 1)))
		return false;
	size_t n = (size_t)(end - host);
	if (n == 0 || n >= size)
		return false;
	memcpy(out, host, n);
	out[n] = 0;
	return true;
}

/* Is name an IP address literal (IPv4 dotted quad, or IPv6)? */
static bool is_ip_literal(const char *name)
{
	unsigned char a[16];
	return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* Is the Host header one this server answers to? A DNS-rebinding page can only
 * reach the server under a name it controls, so with check_host only IP
 * addresses, "localhost" and --allowed-host names are answered. A request
 * without Host (HTTP/1.0 tools) does not come from a browser and passes. */
static bool host_allowed(const struct server *srv, const char *host)
{
	char name[256];
	if (!srv->check_host || !host)
		return true;
	if (!host_name(host, name, sizeof name))
		return false;
	if (!strcasecmp(name, "localhost") || is_ip_literal(name))
		return true;
	for (int i = 0; i < srv->n_allowed_hosts; i++)
		if (!strcasecmp(srv->allowed_hosts[i], name))
			return true;
	return false;
}

static bool origin_listed(const struct server *srv, const char *origin)
{
	for (int i = 0; i < srv->n_cors_origins; i++)
		if (!strcmp(srv->cors_origins[i], "*") || !strcasecmp(srv->cors_origins[i], origin))
			return true;
	return false;
}

/* Does origin name this server itself (a page it served)? */
static bool origin_same(const char *origin, const char *host)
{
	const char *rest = !strncasecmp(origin, "http://", 7) ? origin + 7 : !strncasecmp(origin, "https://", 8) ? origin + 8 : NULL;
	return rest && host && !strcasecmp(rest, host);
}

/* Are the headers a preflight asks for plain header names? (They are echoed back.) */
static bool header_list_ok(const char *s)
{
	size_t n = 0;
	for (; *s; s++, n++)
		if (!(*s == '-' || *s == '_' || *s == ',' || *s == ' ' || (*s >= '0' && *s <= '9') ||
		      ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')))
			return false;
	return n < 1024;
}

/* Is the content type JSON ("application/json", parameters allowed)? */
static bool is_json_type(const char *ct)
{
	if (!ct || strncasecmp(ct, "application/json", 16))
		return false;
	ct += 16;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == 0 || *ct == ';';
}

static const struct route *route_find(const char *url, bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < N_ROUTES; i++) {
		const struct route *r = &routes[i];
		bool hit = r->prefix ? !strncmp(url, r->path, strlen(r->path)) && url[strlen(r->path)] : !strcmp(url, r->path);
		if (hit) {
			*path_known = true;
			return r;
		}
	}
	return NULL;
}

size_t http_max_body(const struct server *srv, const struct route *rt)
{
	if (!rt->json_body)
		return 0;
	return rt->small_body && srv->max_body > SMALL_BODY_MAX ? SMALL_BODY_MAX : srv->max_body;
}

/* Origin and CORS; true when they answered. */
static bool check_origin(struct server *srv, const struct http_request *rq, struct reply *rp)
{
	if (!rq->origin)
		return false;
	if (origin_listed(srv, rq->origin)) {
		rp->cors_origin = rq->origin;
		if (!strcmp(rq->method, "OPTIONS") && rq->preflight_method) {
			rp->status = 204;
			rp->preflight = true;
			if (rq->preflight_headers && header_list_ok(rq->preflight_headers))
				rp->allow_headers = rq->preflight_headers;
			return true;
		}
		return false;
	}
	if (origin_same(rq->origin, rq->host))
		return false;
	reply_error(rp, 403, "invalid_request_error", NULL, "origin_not_allowed",
		    "Requests from web pages at %.200s are not allowed; start the server with --cors-origin %.200s to allow "
		    "them", rq->origin, rq->origin);
	return true;
}

/* Route, method and state; true when they answered. */
static bool check_route(struct server *srv, const struct http_request *rq, const struct route **out, struct reply *rp)
{
	bool known;
	const struct route *rt = route_find(rq->url, &known);
	if (!rt) {
		reply_error(rp, 404, "not_found_error", NULL, "not_found", "Unknown request URL: %.16s %.512s", rq->method,
			    rq->url);
		return true;
	}
	bool method_ok = !strcmp(rq->method, rt->method) || (!strcmp(rt->method, "GET") && !strcmp(rq->method, "HEAD"));
	if (!method_ok) {
		/* the same path may have another route with this method: none do today */
		rp->allow = !strcmp(rt->method, "GET") ? "GET, HEAD" : rt->method;
		reply_error(rp, 405, "invalid_request_error", NULL, "method_not_allowed", "Method %.16s is not allowed for %.512s",
			    rq->method, rq->url);
		return true;
	}
	const int phase = atomic_load(&srv->phase);
	if (rt->fn && phase != SRV_READY) {
		reply_error(rp, 503, "service_unavailable", NULL, phase == SRV_LOADING ? "model_loading" : "draining",
			    phase == SRV_LOADING ? "The model is still loading" : "The server is shutting down");
		rp->retry_after = phase == SRV_LOADING ? 2 : 0;
		return true;
	}
	*out = rt;
	return false;
}

/* Content type and length; true when they answered. */
static bool check_body_head(const struct server *srv, const struct route *rt, const struct http_request *rq,
			    struct reply *rp)
{
	if (rt->json_body && !is_json_type(rq->content_type)) {
		reply_error(rp, 415, "invalid_request_error", NULL, "unsupported_media_type",
			    "%s takes a JSON body: send 'Content-Type: application/json' (got %.100s)", rt->path,
			    rq->content_type ? rq->content_type : "none");
		return true;
	}
	const size_t max = http_max_body(srv, rt);
	if (rq->has_length && rq->content_length <= max && srv->max_body_total &&
	    rq->content_length > srv->max_body_total - atomic_load(&srv->body_held)) {
		reply_error(rp, 503, "service_unavailable", NULL, "server_busy",
			    "The server holds as many request bodies as it may now. Retry shortly.");
		rp->retry_after = 1;
		return true;
	}
	if (rq->has_length && rq->content_length > max) {
		if (max == 0)
			reply_error(rp, 413, "invalid_request_error", NULL, "request_too_large", "%s takes no request body",
				    rt->path);
		else
			reply_error(rp, 413, "invalid_request_error", NULL, "request_too_large",
				    "The request body exceeds the limit of %zu bytes for %s", max, rt->path);
		return true;
	}
	return false;
}

bool http_head(struct server *srv, const struct http_request *rq, const struct route **rt, struct reply *rp)
{
	*rt = NULL;
	if (strlen(rq->url) > URL_MAX) {
		reply_error(rp, 414, "invalid_request_error", NULL, "uri_too_long", "The request URL is longer than %d bytes",
			    URL_MAX);
		return true;
	}
	if (rq->header_bytes > HEADERS_MAX) {
		reply_error(rp, 431, "invalid_request_error", NULL, "headers_too_large",
			    "The request headers exceed %d bytes", HEADERS_MAX);
		return true;
	}
	if (!host_allowed(srv, rq->host)) {
		reply_error(rp, 403, "invalid_request_error", NULL, "host_not_allowed",
			    "This server does not answer to the host name '%.200s'; start it with --allowed-host NAME to add one",
			    rq->host);
		return true;
	}
	if (check_origin(srv, rq, rp))
		return true;
	const bool is_health = !strcmp(rq->url, "/health");
	if (srv->n_keys && !is_health && !key_match(srv, rq->authorization)) {
		reply_error(rp, 401, "authentication_error", NULL, "invalid_api_key",
			    "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.");
		return true;
	}
	return check_route(srv, rq, rt, rp) || check_body_head(srv, *rt, rq, rp);
}

/* ---- the answers ------------------------------------------------------------------ */

static void answer_health(struct server *srv, struct reply *rp)
{
	const int phase = atomic_load(&srv->phase);
	struct hearth_sched_stats st = { 0 };
	if (phase == SRV_READY)
		hearth_sched_stats(srv->sched, &st);
	/* a step over long prompts of a big model can take a while: only a stalled loop fails */
	bool ok = phase == SRV_READY && st.alive && hearth_now() - st.t_heartbeat < 120.0;
	const char *state = phase == SRV_LOADING ? "loading" : phase == SRV_DRAINING ? "draining" : ok ? "ok" : "scheduler stopped";
	reply_json(rp, ok ? 200 : 503, json_pack("{s:s}", "status", state));
	if (!ok)
		rp->retry_after = 1;
}

/* The JSON object of the body; NULL after an error reply. */
static json_t *parse_body(const struct http_request *rq, struct reply *rp)
{
	json_error_t je;
	/* JSON_ALLOW_NUL: "\u0000" is a valid character of a text; handlers read lengths */
	json_t *body = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_ALLOW_NUL, &je);
	if (!body && json_error_code(&je) == json_error_out_of_memory) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory reading the request");
		return NULL;
	}
	if (!body) {
		reply_error(rp, 400, "invalid_request_error", NULL, "invalid_json",
			    "The request body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		reply_error(rp, 400, "invalid_request_error", NULL, "invalid_json", "The request body must be a JSON object");
		return NULL;
	}
	return body;
}

void http_answer_json(struct server *srv, const struct route *rt, const struct http_request *rq, json_t *body,
		      struct reply *rp)
{
	if (!rt->fn) {
		if (!strcmp(rt->path, "/health")) {
			answer_health(srv, rp);
		} else { /* /metrics */
			rp->status = 200;
			rp->body = metrics_render(srv->metrics, srv, &rp->len);
			rp->content_type = "text/plain; version=0.0.4; charset=utf-8";
		}
		return;
	}
	struct call call = { .body = body, .fd = rq->fd, .session_key = rq->session_id,
			     .tenant = srv->n_keys ? key_match(srv, rq->authorization) : NULL };
	if (rt->prefix)
		call.arg = rq->url + strlen(rt->path);
	rt->fn(srv, &call, rp);
}

void http_answer(struct server *srv, const struct route *rt, const struct http_request *rq, struct reply *rp)
{
	json_t *body = NULL;
	if (rq->body_no_room) {
		reply_error(rp, 503, "service_unavailable", NULL, "server_busy",
			    "The server holds as many request bodies as it may now (%zu bytes). Retry shortly.",
			    srv->max_body_total);
		rp->retry_after = 1;
		return;
	}
	if (rq->body_too_big) {
		reply_error(rp, 413, "invalid_request_error", NULL, "request_too_large",
			    "The request body exceeds the limit of %zu bytes for %s", http_max_body(srv, rt), rt->path);
		return;
	}
	if (rt->json_body && !(body = parse_body(rq, rp)))
		return;
	http_answer_json(srv, rt, rq, body, rp);
	json_decref(body);
}

/* ---- libmicrohttpd ------------------------------------------------------------------ */

/* libmicrohttpd asks for the stream's next bytes when it has room for them:
 * the connection is BUSY while the model works on them and SENDING once they
 * are handed over (conns.c watches whether the client reads them). */
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *x = cls;
	bool ended = false;
	(void)pos;
	if (!conns_busy(&x->srv->conns, x->slot))
		return MHD_CONTENT_READER_END_WITH_ERROR; /* cut for its deadline */
	ssize_t n = stream_read(x->st, buf, max, &ended);
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees the stream cut, never a false end */
	if (n == 0 && ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	conns_sending(&x->srv->conns, x->slot);
	return n;
}

static void sse_free(void *cls)
{
	struct sse *x = cls;
	stream_free(x->st);
	free(x);
}

static struct MHD_Response *make_response(struct server *srv, struct conn_slot *slot, struct reply *rp)
{
	struct MHD_Response *resp;
	if (rp->stream) {
		struct sse *x = malloc(sizeof *x);
		resp = x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, x, sse_free) : NULL;
		if (!resp) {
			stream_free(rp->stream);
			free(x);
			return NULL;
		}
		*x = (struct sse){ rp->stream, srv, slot };
		MHD_add_response_header(resp, "Content-Type", "text/event-stream");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		rp->status = 200;
		return resp;
	}
	if (rp->preflight) {
		free(rp->body);
		rp->body = NULL;
		rp->len = 0;
	} else if (!rp->body) {
		reply_error(rp, 500, "server_error", NULL, NULL, "the reply could not be built");
	}
	resp = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(rp->body);
		return NULL;
	}
	if (rp->body)
		MHD_add_response_header(resp, "Content-Type", rp->content_type ? rp->content_type : "application/json");
	return resp;
}

/* Queues rp on c; the connection is SENDING (a stream: once it has bytes). */
static enum MHD_Result send_reply(struct server *srv, struct MHD_Connection *c, struct conn *cs, struct reply *rp)
{
	struct MHD_Response *resp = make_response(srv, cs->slot, rp);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (rp->retry_after > 0) {
		char v[16];
		snprintf(v, sizeof v, "%d", rp->retry_after);
		MHD_add_response_header(resp, "Retry-After", v);
	}
	if (rp->allow)
		MHD_add_response_header(resp, "Allow", rp->allow);
	if (rp->cors_origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", rp->cors_origin);
		MHD_add_response_header(resp, "Vary", "Origin");
	}
	if (rp->preflight) {
		MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
		MHD_add_response_header(resp, "Access-Control-Allow-Headers",
					rp->allow_headers ? rp->allow_headers : "Authorization, Content-Type");
		MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
	}
	enum MHD_Result r = MHD_queue_response(c, (unsigned)rp->status, resp);
	MHD_destroy_response(resp);
	if (!rp->stream)
		conns_sending(&srv->conns, cs->slot);
	return r;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	*(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Does a body follow the head that the client sends without waiting to be asked? */
static bool body_follows(struct MHD_Connection *c, const struct http_request *rq)
{
	const char *te = header(c, "Transfer-Encoding");
	if (header(c, "Expect")) /* 100-continue: it waits, and sees the answer instead */
		return false;
	return (rq->has_length && rq->content_length > 0) || (te && strcasestr(te, "chunked"));
}

/* The request fields the request path reads, from c's headers. */
static void read_head(struct MHD_Connection *c, const char *url, const char *method, struct http_request *rq)
{
	const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	rq->method = method;
	rq->url = url;
	rq->host = header(c, "Host");
	rq->authorization = header(c, "Authorization");
	rq->content_type = header(c, "Content-Type");
	rq->origin = header(c, "Origin");
	rq->session_id = header(c, "x-session-id");
	rq->preflight_method = header(c, "Access-Control-Request-Method");
	rq->preflight_headers = header(c, "Access-Control-Request-Headers");
	rq->fd = fd ? fd->connect_fd : -1;
	MHD_get_connection_values(c, MHD_HEADER_KIND, sum_header, &rq->header_bytes);
	const char *cl = header(c, "Content-Length");
	if (cl) {
		char *end;
		errno = 0;
		rq->content_length = strtoull(cl, &end, 10);
		rq->has_length = true;
		if (errno)
			rq->content_length = UINT64_MAX;
	}
}

/* The first call of a request: its head is in. */
static enum MHD_Result request_begin(struct server *srv, struct MHD_Connection *c, const char *url, const char *method,
				     void **con_cls)
{
	struct conn *cs = calloc(1, sizeof *cs);
	struct reply rp = { 0 };
	if (!cs)
		return MHD_NO;
	*con_cls = cs;
	const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	cs->slot = sc ? sc->socket_context : NULL;
	read_head(c, url, method, &cs->rq);
	if (!http_head(srv, &cs->rq, &cs->rt, &rp))
		return conns_receiving(&srv->conns, cs->slot) ? MHD_YES : MHD_NO; /* the body may come */
	if (body_follows(c, &cs->rq) && cs->rq.content_length <= DRAIN_MAX(srv)) {
		/* answered already, but a client still sending its body would miss the
		 * answer if the connection closed under it: read the body, then answer */
		cs->early = rp;
		cs->has_early = true;
		return conns_receiving(&srv->conns, cs->slot) ? MHD_YES : MHD_NO;
	}
	if (!conns_busy(&srv->conns, cs->slot)) {
		free(rp.body);
		return MHD_NO;
	}
	return send_reply(srv, c, cs, &rp);
}

/* Reserves n more bytes of the budget all request bodies share; false when it is spent. */
static bool body_reserve(struct server *srv, size_t n)
{
	if (!srv->max_body_total)
		return true;
	if (atomic_fetch_add(&srv->body_held, n) + n <= srv->max_body_total)
		return true;
	atomic_fetch_sub(&srv->body_held, n);
	return false;
}

/* Body bytes: kept up to the route's limit and the shared budget, counted beyond. */
static void body_append(struct server *srv, struct conn *cs, const char *data, size_t n)
{
	const size_t max = http_max_body(srv, cs->rt);
	if (cs->rq.body_too_big || cs->rq.body_no_room)
		return;
	if (cs->len + n > max) {
		cs->rq.body_too_big = true;
		return;
	}
	if (cs->len + n + 1 > cs->cap) {
		size_t cap = (cs->len + n + 1) * 2;
		if (cap > max + 1)
			cap = max + 1;
		if (!body_reserve(srv, cap - cs->cap)) {
			cs->rq.body_no_room = true;
			return;
		}
		char *b = realloc(cs->body, cap);
		if (!b) {
			atomic_fetch_sub(&srv->body_held, cap - cs->cap);
			cs->rq.body_no_room = true;
			return;
		}
		cs->body = b;
		cs->cap = cap;
	}
	memcpy(cs->body + cs->len, data, n);
	cs->len += n;
}

/* The whole request is in: its answer. */
static enum MHD_Result request_end(struct server *srv, struct MHD_Connection *c, struct conn *cs)
{
	struct reply rp = { 0 };
	if (!conns_busy(&srv->conns, cs->slot)) { /* closed for its deadline meanwhile */
		if (cs->has_early)
			free(cs->early.body);
		cs->has_early = false;
		return MHD_NO;
	}
	if (cs->has_early) {
		cs->has_early = false;
		return send_reply(srv, c, cs, &cs->early);
	}
	cs->rq.body = cs->body;
	cs->rq.body_len = cs->len;
	atomic_fetch_add(&srv->in_flight, 1);
	cs->counted = true;
	http_answer(srv, cs->rt, &cs->rq, &rp);
	if (srv->n_cors_origins && cs->rq.origin && origin_listed(srv, cs->rq.origin))
		rp.cors_origin = cs->rq.origin;
	return send_reply(srv, c, cs, &rp);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct conn *cs = *con_cls;
	(void)version;

	if (!cs)
		return request_begin(srv, c, url, method, con_cls);
	if (!*upload_size)
		return request_end(srv, c, cs);
	const size_t n = *upload_size;
	*upload_size = 0;
	if (!cs->has_early) {
		body_append(srv, cs, upload, n);
		return MHD_YES;
	}
	cs->dropped += n; /* answered from the head: read, up to a bound, and dropped */
	return cs->dropped <= DRAIN_MAX(srv) ? MHD_YES : MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct conn *cs = *con_cls;
	(void)c;
	(void)toe;
	if (!cs)
		return;
	if (cs->counted)
		atomic_fetch_sub(&srv->in_flight, 1);
	if (srv->max_body_total)
		atomic_fetch_sub(&srv->body_held, cs->cap);
	conns_waiting(&srv->conns, cs->slot, hearth_now());
	if (cs->has_early)
		free(cs->early.body);
	free(cs->body);
	free(cs);
	*con_cls = NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	struct server *srv = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = fd ? conns_started(&srv->conns, fd->connect_fd) : NULL;
	} else {
		conns_closed(&srv->conns, *socket_context);
		*socket_context = NULL;
	}
}

/* libmicrohttpd's messages; clients that hang up, stall or are cut off are routine, not news. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char *const routine[] = { "closed by remote", "timed out", "Failed to send data", "Failed to receive",
					       "Connection reset", "Error processing request" };
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	for (size_t i = 0; i < sizeof routine / sizeof routine[0]; i++)
		if (strstr(msg, routine[i]))
			return;
	fprintf(stderr, "hearth serve: http: %s", msg);
}

bool http_start(struct server *srv)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_NO_LISTEN_SOCKET |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (srv->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		fprintf(stderr, "hearth serve: this libmicrohttpd was built without TLS: --ssl-cert cannot be used\n");
		return false;
	}
	if (srv->tls_cert)
		flags |= MHD_USE_TLS;
	struct MHD_OptionItem tls[] = {
		{ srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	srv->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED,
		completed, srv, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)srv->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->conns.cap + 64u, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	if (!srv->mhd)
		fprintf(stderr, "hearth serve: cannot start the HTTP server%s\n",
			srv->tls_cert ? " (is the TLS certificate and key pair valid?)" : "");
	return srv->mhd != NULL;
}

void http_stop(struct server *srv)
{
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	srv->mhd = NULL;
}
