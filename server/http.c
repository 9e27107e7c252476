/*
 * http.c - libmicrohttpd glue: one thread per connection (poll(), so
 * descriptors past FD_SETSIZE work) on sockets the accept loop (listen.c)
 * hands it. Each request's head and body go to the request path
 * (request.c); its connection's state goes to conns.c (receiving, busy,
 * sending, idle). A body refused from its head is still read, up to twice
 * --max-body, so that a client sending it at once sees the answer; bodies
 * held at once share the --max-body-total budget. libmicrohttpd answers by
 * itself (in HTML) only requests whose head outgrows HEADER_MEMORY or breaks
 * HTTP's syntax.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server.h"

#define HEADER_MEMORY (128 * 1024)  /* libmicrohttpd's per-connection pool: room for request.c's limits */
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
		MHD_add_response_header(resp, "Content-Type", stream_content_type(rp->stream));
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		rp->status = 200;
		return resp;
	}
	if (rp->preflight) {
		free(rp->body);
		rp->body = NULL;
		rp->len = 0;
	} else if (!rp->body && rp->status != 304) {
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
	for (int i = 0; i < rp->n_headers; i++)
		MHD_add_response_header(resp, rp->headers[i].name, rp->headers[i].value);
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

struct query_find {
	const char *name;
	const char **vals;
	int n, max;
};

static enum MHD_Result query_value(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query_find *q = cls;
	(void)kind;
	if (q->n < q->max && key && !strcmp(key, q->name))
		q->vals[q->n++] = value ? value : "";
	return MHD_YES;
}

/* Up to max values of the URL's query argument name (repeats kept in order). */
static int query_values(const struct http_request *rq, const char *name, const char **vals, int max)
{
	struct query_find q = { name, vals, 0, max };
	if (rq->conn)
		MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, query_value, &q);
	return q.n;
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
	rq->if_none_match = header(c, "If-None-Match");
	rq->fd = fd ? fd->connect_fd : -1;
	rq->conn = c;
	rq->query = query_values;
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
static enum MHD_Result head_in(struct server *srv, struct MHD_Connection *c, const char *url, const char *method,
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
	if (!request_head(srv, &cs->rq, &cs->rt, &rp))
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
	const size_t max = request_max_body(srv, cs->rt);
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
static enum MHD_Result body_in(struct server *srv, struct MHD_Connection *c, struct conn *cs)
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
	request_answer(srv, cs->rt, &cs->rq, &rp);
	return send_reply(srv, c, cs, &rp);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct conn *cs = *con_cls;
	(void)version;

	if (!cs)
		return head_in(srv, c, url, method, con_cls);
	if (!*upload_size)
		return body_in(srv, c, cs);
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
