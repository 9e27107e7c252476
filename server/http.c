/*
 * http.c - libmicrohttpd glue: one thread per connection, HTTP/1.1 keep-alive,
 * routing, API keys (constant-time), body and header ceilings, slow-client
 * timeouts, OpenAI-shaped errors, and server-sent events for streams.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server.h"

#define HEADER_MEMORY (64 * 1024) /* per-connection memory for headers */

struct conn {
	char *body;
	size_t len, cap;
	bool too_big;
	bool counted; /* in srv->in_flight */
	struct server *srv;
};

void reply_json(struct reply *rp, int status, json_t *j)
{
	rp->status = status;
	rp->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	rp->len = rp->body ? strlen(rp->body) : 0;
	rp->content_type = "application/json";
	json_decref(j);
}

void reply_error(struct reply *rp, int status, const char *type, const char *param, const char *code,
		 const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type", type, "param",
			      param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
	free(rp->body);
	rp->body = NULL;
	reply_json(rp, status, e);
}

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

/* Compares a presented key with every configured one without leaking where they differ. */
static bool key_ok(const struct server *srv, const char *auth)
{
	const char *given = "";
	unsigned ok = 0;
	if (auth && strncmp(auth, "Bearer ", 7) == 0)
		given = auth + 7;
	size_t gl = strlen(given);
	for (int k = 0; k < srv->n_keys; k++) {
		const char *key = srv->keys[k];
		size_t kl = strlen(key);
		unsigned diff = (unsigned)(gl ^ kl);
		for (size_t i = 0; i < kl; i++)
			diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < gl ? given[i] : 0);
		ok |= diff == 0;
	}
	return ok != 0;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	bool ended = false;
	size_t n = stream_read(cls, buf, max, &ended);
	if (n == 0 && ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void sse_free(void *cls) { stream_free(cls); }

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *rp, const char *allow)
{
	struct MHD_Response *resp;
	if (rp->stream) {
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, rp->stream, sse_free);
		if (!resp) {
			stream_free(rp->stream);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "text/event-stream");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		rp->status = 200;
	} else {
		if (!rp->body)
			reply_error(rp, 500, "server_error", NULL, NULL, "the reply could not be built");
		resp = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(rp->body);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", rp->content_type ? rp->content_type : "application/json");
	}
	if (rp->retry_after > 0) {
		char v[16];
		snprintf(v, sizeof v, "%d", rp->retry_after);
		MHD_add_response_header(resp, "Retry-After", v);
	}
	if (allow)
		MHD_add_response_header(resp, "Allow", allow);
	enum MHD_Result r = MHD_queue_response(c, (unsigned)rp->status, resp);
	MHD_destroy_response(resp);
	return r;
}

struct route {
	const char *path;
	const char *method;
	bool needs_body;
};

static const struct route routes[] = {
	{ "/health", "GET", false },
	{ "/metrics", "GET", false },
	{ "/v1/models", "GET", false },
	{ "/v1/chat/completions", "POST", true },
	{ "/v1/completions", "POST", true },
	{ "/tokenize", "POST", true },
	{ "/detokenize", "POST", true },
	{ "/v1/tokenize", "POST", true },
	{ "/v1/detokenize", "POST", true },
};

static void dispatch(struct server *srv, const struct route *rt, json_t *body, const struct conn_info *ci,
		     struct reply *rp)
{
	const char *p = rt->path;
	if (!strcmp(p, "/v1/chat/completions"))
		api_chat_completions(srv, body, ci, rp);
	else if (!strcmp(p, "/v1/completions"))
		api_completions(srv, body, ci, rp);
	else if (!strcmp(p, "/v1/models"))
		api_models(srv, rp);
	else if (!strcmp(p, "/tokenize") || !strcmp(p, "/v1/tokenize"))
		api_tokenize(srv, body, rp);
	else if (!strcmp(p, "/detokenize") || !strcmp(p, "/v1/detokenize"))
		api_detokenize(srv, body, rp);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct conn *cs = *con_cls;
	struct reply rp = { 0 };
	(void)version;

	if (!cs) { /* first call: headers only */
		if (!(cs = calloc(1, sizeof *cs)))
			return MHD_NO;
		cs->srv = srv;
		*con_cls = cs;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > srv->max_body) {
			reply_error(&rp, 413, "invalid_request_error", NULL, "request_too_large",
				    "The request body exceeds the limit of %zu bytes", srv->max_body);
			return send_reply(c, &rp, NULL);
		}
		return MHD_YES;
	}
	if (*upload_size) { /* body data */
		size_t n = *upload_size;
		*upload_size = 0;
		if (cs->too_big || cs->len + n > srv->max_body) {
			cs->too_big = true;
			return MHD_YES;
		}
		if (cs->len + n + 1 > cs->cap) {
			size_t cap = (cs->len + n + 1) * 2;
			if (cap > srv->max_body + 1)
				cap = srv->max_body + 1;
			char *b = realloc(cs->body, cap);
			if (!b) {
				cs->too_big = true;
				return MHD_YES;
			}
			cs->body = b;
			cs->cap = cap;
		}
		memcpy(cs->body + cs->len, upload, n);
		cs->len += n;
		return MHD_YES;
	}

	/* the whole request is in */
	if (cs->too_big) {
		reply_error(&rp, 413, "invalid_request_error", NULL, "request_too_large",
			    "The request body exceeds the limit of %zu bytes", srv->max_body);
		return send_reply(c, &rp, NULL);
	}
	/* GET /v1/models/{id}: one model, or 404 */
	if (!strncmp(url, "/v1/models/", 11) && !strcmp(method, "GET") && atomic_load(&srv->phase) == SRV_READY &&
	    (!srv->n_keys || key_ok(srv, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))) {
		api_model(srv, url + 11, &rp);
		return send_reply(c, &rp, NULL);
	}
	const struct route *rt = NULL;
	bool path_known = false;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (!strcmp(url, routes[i].path)) {
			path_known = true;
			if (!strcmp(method, routes[i].method))
				rt = &routes[i];
		}
	if (!rt) {
		if (path_known) {
			const char *allow = "GET";
			for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
				if (!strcmp(url, routes[i].path))
					allow = routes[i].method;
			reply_error(&rp, 405, "invalid_request_error", NULL, "method_not_allowed",
				    "Method %s is not allowed for %s", method, url);
			return send_reply(c, &rp, allow);
		}
		reply_error(&rp, 404, "not_found_error", NULL, "not_found", "Unknown request URL: %s %s", method, url);
		return send_reply(c, &rp, NULL);
	}
	const int phase = atomic_load(&srv->phase);
	if (!strcmp(rt->path, "/health")) {
		struct hearth_sched_stats st = { 0 };
		if (phase == SRV_READY)
			hearth_sched_stats(srv->sched, &st);
		/* a step over long prompts of a big model can take a while: only a stalled loop fails */
		bool ok = phase == SRV_READY && st.alive && hearth_now() - st.t_heartbeat < 120.0;
		const char *state = phase == SRV_LOADING ? "loading" : phase == SRV_DRAINING ? "draining" :
			ok ? "ok" : "scheduler stopped";
		reply_json(&rp, ok ? 200 : 503, json_pack("{s:s}", "status", state));
		if (!ok)
			rp.retry_after = 1;
		return send_reply(c, &rp, NULL);
	}
	if (srv->n_keys && !key_ok(srv, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
		reply_error(&rp, 401, "authentication_error", NULL, "invalid_api_key",
			    "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.");
		return send_reply(c, &rp, NULL);
	}
	if (phase != SRV_READY) {
		reply_error(&rp, 503, "service_unavailable", NULL, phase == SRV_LOADING ? "model_loading" : "draining",
			    phase == SRV_LOADING ? "The model is still loading" : "The server is shutting down");
		rp.retry_after = phase == SRV_LOADING ? 2 : 0;
		return send_reply(c, &rp, NULL);
	}
	if (!strcmp(rt->path, "/metrics")) {
		rp.status = 200;
		rp.body = metrics_render(srv->metrics, srv, &rp.len);
		rp.content_type = "text/plain; version=0.0.4; charset=utf-8";
		return send_reply(c, &rp, NULL);
	}

	json_t *body = NULL;
	if (rt->needs_body) {
		json_error_t je;
		body = json_loadb(cs->body ? cs->body : "", cs->len, 0, &je);
		if (!body) {
			reply_error(&rp, 400, "invalid_request_error", NULL, "invalid_json",
				    "The request body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
			return send_reply(c, &rp, NULL);
		}
		if (!json_is_object(body)) {
			json_decref(body);
			reply_error(&rp, 400, "invalid_request_error", NULL, "invalid_json",
				    "The request body must be a JSON object");
			return send_reply(c, &rp, NULL);
		}
	}
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct conn_info ci = { .fd = info ? info->connect_fd : -1,
				.session_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-session-id") };
	atomic_fetch_add(&srv->in_flight, 1);
	cs->counted = true;
	dispatch(srv, rt, body, &ci, &rp);
	json_decref(body);
	return send_reply(c, &rp, NULL);
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
	free(cs->body);
	free(cs);
	*con_cls = NULL;
}

/* libmicrohttpd's messages; clients that hang up or stall are routine, not news. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (strstr(msg, "closed by remote") || strstr(msg, "timed out") || strstr(msg, "Failed to send data"))
		return;
	fprintf(stderr, "hearth serve: http: %s", msg);
}

struct MHD_Daemon *http_start(struct server *srv)
{
	struct sockaddr_in6 a6 = { 0 };
	struct sockaddr_in a4 = { 0 };
	struct sockaddr *sa;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (inet_pton(AF_INET, srv->host, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)srv->port);
		sa = (struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, srv->host, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)srv->port);
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else if (!strcmp(srv->host, "localhost")) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)srv->port);
		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa = (struct sockaddr *)&a4;
	} else {
		fprintf(stderr, "hearth serve: --host %s is not an IP address\n", srv->host);
		return NULL;
	}
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, (uint16_t)srv->port, NULL, NULL, handle, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, sa,
		MHD_OPTION_NOTIFY_COMPLETED, completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY, MHD_OPTION_CONNECTION_LIMIT, 1024u,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!d)
		fprintf(stderr, "hearth serve: cannot listen on %s:%d: %s\n", srv->host, srv->port, strerror(errno));
	return d;
}
