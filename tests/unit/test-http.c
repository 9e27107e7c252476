/* test-http.c - the server's request path without sockets: request_head and
 * request_answer on a real model and scheduler, for every route and the
 * refusals of the hardening issue, then the same requests with their Nth
 * allocation failing (the server's own and jansson's): each must end in a
 * JSON reply, an error or the right answer, never a crash, a hang or a leak. */
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "../../server/server.h"
#include "../fault.h"
#include "../harness.h"

#define KEY "unit-test-key-0123456789"

struct call_in {
	const char *method, *url, *body;
	const char *content_type, *authorization, *host, *origin;
};

/* A server over tiny-qwen2 with one key; false when it cannot be built. */
static bool srv_open(struct server *srv)
{
	struct hearth_err err = { 0 };
	memset(srv, 0, sizeof *srv);
	srv->host = "127.0.0.1";
	srv->alias = "tiny";
	srv->model_path = fixture("models/tiny-qwen2.f32.gguf");
	srv->max_body = 1 << 16;
	srv->timeout_s = 30;
	srv->request_timeout_s = 60;
	srv->check_host = true;
	srv->keys[srv->n_keys++] = strdup(KEY);
	srv->sp = hearth_sched_default_params();
	srv->sp.n_parallel = 2;
	srv->sp.n_ctx_seq = 128;
	srv->sp.n_threads = 1;
	if (!srv->keys[0] || conns_init(&srv->conns, 8, 8, 30, false))
		return false;
	if (server_load(srv, NULL, 0, &err)) {
		T_FAIL("%s", err.msg);
		return false;
	}
	atomic_store(&srv->phase, SRV_READY);
	struct hearth_sched_stats st = { 0 };
	for (int i = 0; i < 1000 && !st.alive; i++) { /* its thread's first turn */
		hearth_sched_stats(srv->models.m[0]->sched, &st);
		if (!st.alive) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	return true;
}

static void srv_close(struct server *srv)
{
	server_unload(srv);
	conns_free(&srv->conns);
	free(srv->keys[0]);
}

/* Runs one request through both stages; a stream is read to its end. The
 * reply's body (or the stream's bytes) is left in rp->body, rp->len. */
static void serve(struct server *srv, const struct call_in *in, struct reply *rp)
{
	struct http_request rq = { .method = in->method, .url = in->url, .content_type = in->content_type,
				   .authorization = in->authorization, .host = in->host, .origin = in->origin, .fd = -1 };
	const struct route *rt;
	memset(rp, 0, sizeof *rp);
	if (in->body) {
		rq.body = in->body;
		rq.body_len = strlen(in->body);
		rq.has_length = true;
		rq.content_length = rq.body_len;
	}
	if (request_head(srv, &rq, &rt, rp))
		return;
	rq.body_too_big = rq.body_len > request_max_body(srv, rt);
	/* jansson's parser reports running out of memory in its lexer as a syntax
	 * error, so its allocations are left out of the sweeps */
	json_t *body = NULL;
	if (request_max_body(srv, rt) > 0 && rq.body && !rq.body_too_big) {
		fault_pause(true);
		body = json_loadb(rq.body, rq.body_len, JSON_ALLOW_NUL, NULL);
		fault_pause(false);
	}
	if (json_is_object(body))
		request_answer_json(srv, rt, &rq, body, rp);
	else
		request_answer(srv, rt, &rq, rp); /* no JSON object: request_answer's own reply */
	json_decref(body);
	if (!rp->stream)
		return;
	struct stream *st = rp->stream;
	char buf[4096];
	bool ended = false;
	rp->stream = NULL;
	rp->status = 200;
	while (!ended) {
		ssize_t n = stream_read(st, buf, sizeof buf, &ended);
		if (n < 0) { /* broken: the connection would be cut; a 500 here */
			free(rp->body);
			memset(rp, 0, sizeof *rp);
			rp->status = 500;
			break;
		}
		fault_pause(true); /* the test's own buffer */
		char *b = realloc(rp->body, rp->len + (size_t)n + 1);
		fault_pause(false);
		if (!b)
			break;
		rp->body = b;
		memcpy(rp->body + rp->len, buf, (size_t)n);
		rp->len += (size_t)n;
		rp->body[rp->len] = 0;
	}
	stream_free(st);
}

static struct call_in post(const char *url, const char *body)
{
	return (struct call_in){ "POST", url, body, "application/json", "Bearer " KEY, "127.0.0.1:8080", NULL };
}

static struct call_in get(const char *url)
{
	return (struct call_in){ "GET", url, NULL, NULL, "Bearer " KEY, "localhost", NULL };
}

/* Status of a request, and its error code ("" when none) in code. */
static int status_of(struct server *srv, struct call_in in, char *code, size_t size)
{
	struct reply rp;
	serve(srv, &in, &rp);
	json_t *j = rp.body ? json_loadb(rp.body, rp.len, 0, NULL) : NULL;
	const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	snprintf(code, size, "%s", c ? c : "");
	json_decref(j);
	free(rp.body);
	return rp.status;
}

#define T_STATUS(in, want, want_code)                                           \
	do {                                                                    \
		char code_[64];                                                 \
		T_EQ_I64(status_of(&srv, (in), code_, sizeof code_), (want));  \
		T_STR_EQ(code_, (want_code));                                   \
	} while (0)

void test_http_routes(void)
{
	struct server srv;
	if (!srv_open(&srv))
		return;
	struct call_in in;
	T_STATUS(get("/health"), 200, "");
	T_STATUS(post("/v1/completions", "{\"prompt\":\"Hello\",\"max_tokens\":3}"), 200, "");
	T_STATUS(post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}],\"max_tokens\":2}"),
		 200, "");
	T_STATUS(post("/v1/completions", "{\"prompt\":\"Hello\",\"max_tokens\":3,\"stream\":true}"), 200, "");
	T_STATUS(post("/tokenize", "{\"content\":\"x\"}"), 200, "");
	T_STATUS(post("/detokenize", "{\"tokens\":[1,2]}"), 200, "");
	T_STATUS(get("/v1/models"), 200, "");
	T_STATUS(get("/v1/models/tiny"), 200, "");
	T_STATUS(get("/v1/models/other"), 404, "model_not_found");
	T_STATUS(get("/metrics"), 200, "");
	/* refusals, in the order the head is checked */
	in = get("/x");
	in.url = "/aaaaaaaa";
	T_STATUS(in, 404, "not_found");
	in.url = "/\xff\xfe:[\xbb"; /* quoted in the error: made valid UTF-8, still JSON */
	T_STATUS(in, 404, "not_found");
	in.authorization = NULL;
	T_STATUS(in, 401, "invalid_api_key");
	in = get("/health");
	in.authorization = NULL;
	T_STATUS(in, 200, "");
	in.host = "evil.example";
	T_STATUS(in, 403, "host_not_allowed");
	in = get("/health");
	in.origin = "https://evil.example";
	T_STATUS(in, 403, "origin_not_allowed");
	in.origin = "http://localhost";
	T_STATUS(in, 200, "");
	T_STATUS(get("/v1/completions"), 405, "method_not_allowed");
	in = post("/v1/completions", "{\"prompt\":\"x\"}");
	in.content_type = "text/plain";
	T_STATUS(in, 415, "unsupported_media_type");
	static char big[70000];
	memset(big, 'x', sizeof big - 1);
	memcpy(big, "{\"prompt\":\"", 11);
	T_STATUS(post("/v1/completions", big), 413, "request_too_large");
	T_STATUS(post("/v1/completions", "{\"prompt\":"), 400, "invalid_json");
	T_STATUS(post("/v1/completions", "{\"prompt\":\"x\",\"stop\":\"\\u0000\"}"), 400, "invalid_value");
	atomic_store(&srv.phase, SRV_DRAINING);
	T_STATUS(post("/v1/completions", "{\"prompt\":\"x\"}"), 503, "draining");
	T_STATUS(get("/health"), 503, "");
	srv_close(&srv);
}

/* ---- allocation faults ---------------------------------------------------------- */

struct fault_case {
	struct server *srv;
	struct call_in in;
	int want_status; /* the clean run's status */
	char *want;      /* and what of its reply must not change */
};

/* What of a reply must not change under faults: the choices (or the error)
 * of a JSON reply; for a stream, that it ended with [DONE]. */
static char *essence(const char *body, size_t len)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	if (!j)
		return strdup(strstr(body, "data: [DONE]") ? "a whole stream" : "a stream without its end");
	json_t *c = json_object_get(j, "choices");
	char *t = json_dumps(c ? c : j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return t;
}

static int path_request(void *ctx, bool first, struct hearth_err *err)
{
	struct fault_case *fc = ctx;
	struct reply rp;
	serve(fc->srv, &fc->in, &rp);
	fault_disarm();
	int rc = 0;
	char *t = rp.body ? essence(rp.body, rp.len) : NULL;
	if (first) {
		fc->want_status = rp.status;
		fc->want = t;
		t = NULL;
	} else if (rp.status == fc->want_status && t) {
		rc = fc->want && strcmp(t, fc->want) ? FAULT_WRONG : 0;
		if (rc)
			fprintf(stderr, "  got  %.300s\n  want %.300s\n", t, fc->want);
	} else if (rp.status == 500 || rp.status == 503 || !rp.body) {
		/* refused for memory: a JSON error, or no body (the HTTP layer then sends its own 500) */
		rc = err->code = HEARTH_ENOMEM;
		snprintf(err->msg, sizeof err->msg, "status %d", rp.status);
	} else {
		rc = err->code = HEARTH_EINVAL;
		snprintf(err->msg, sizeof err->msg, "status %d instead of %d: %.150s", rp.status, fc->want_status,
			 rp.body ? rp.body : "");
	}
	free(t);
	free(rp.body);
	return rc;
}

static void *fault_malloc(size_t n) { return malloc(n); }
static void fault_free(void *p) { free(p); }

void test_fault_http(void)
{
	struct server srv;
	/* jansson's allocations go through the wrapped malloc too (set before any JSON exists) */
	json_set_alloc_funcs(fault_malloc, fault_free);
	if (!srv_open(&srv))
		return;
	static const struct {
		const char *what, *url, *body;
	} cases[] = {
		{ "http: a chat completion", "/v1/chat/completions",
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":3,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":2}" },
		{ "http: a streamed completion", "/v1/completions",
		  "{\"prompt\":\"Once\",\"max_tokens\":3,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" },
		{ "http: completions of two prompts", "/v1/completions",
		  "{\"prompt\":[\"a\",\"b\"],\"max_tokens\":2,\"temperature\":0,\"stop\":[\"zz\"],\"echo\":true}" },
		{ "http: tokenize", "/tokenize", "{\"content\":\"Hello world\"}" },
		{ "http: a bad request", "/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\"}]}" },
		{ "http: an attribution", "/v1/attribute", "{\"prompt\":\"Once upon\",\"completion\":[264,882]}" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fault_case fc = { &srv, post(cases[i].url, cases[i].body), 0, NULL };
		fault_sweep(cases[i].what, path_request, &fc);
		free(fc.want);
	}
	srv_close(&srv);
}
