/* fuzz-http.c - libFuzzer target: the server's request path (server/request.c,
 * api-openai.c, api-ollama.c) on requests made of the fuzzer's bytes, against a real model
 * and scheduler, without sockets.
 *
 * An input is one flag byte, then fields separated by 0x1e: URL, Host,
 * Authorization, Content-Type, Origin, Access-Control-Request-Headers, then
 * the body (the rest). Flag bits:
 *   0-2  the method: GET POST HEAD OPTIONS DELETE PUT PATCH, or a fuzzed one (7: the URL field's first word)
 *   3    Authorization is the server's key instead of the field
 *   4    Content-Type is application/json instead of the field
 *   5    Host is "localhost" instead of the field     6  no Origin header
 *   7    send Access-Control-Request-Method: POST
 *
 * Properties checked, besides the sanitizers (memory errors, leaks, undefined
 * behaviour, hangs):
 *  - every reply has a status from 200 to 599 and a body, and every error body
 *    is JSON in OpenAI's shape (error.message non-empty, type, param, code),
 *    or on Ollama's routes (/api/) in Ollama's ({"error": "message"});
 *  - a JSON reply parses; a stream is server-sent events that end with
 *    "data: [DONE]" (Ollama's: JSON lines, the last with "done": true), or
 *    breaks without it (only when memory runs out);
 *  - without the key, nothing but /health (and CORS preflights of listed
 *    origins, which the server has none of) is ever answered with a 2xx.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/server.h"
#include "common.h"

#define KEY "fuzz-key-0123456789abcdef"

static struct server srv;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_err err = { 0 };
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	srv.host = "127.0.0.1";
	srv.alias = "tiny";
	srv.model_path = strdup(fuzz_fixture("models/tiny-qwen2.f32.gguf"));
	srv.max_body = 1 << 16;
	srv.timeout_s = 30;
	srv.request_timeout_s = 10;
	srv.check_host = true;
	srv.keys[srv.n_keys++] = strdup(KEY);
	srv.sp = hearth_sched_default_params();
	srv.sp.n_parallel = 2;
	srv.sp.n_ctx_seq = 32; /* bounds the work of one request */
	srv.sp.n_threads = 1;
	if (!srv.model_path || !srv.keys[0] || conns_init(&srv.conns, 8, 8, 30, false) ||
	    server_load(&srv, NULL, 0, &err)) {
		fprintf(stderr, "fuzz-http: cannot set up the server: %s\n", err.msg);
		abort();
	}
	atomic_store(&srv.phase, SRV_READY);
	return 0;
}

/* The next field of the input (NUL-terminated copy in a fresh buffer), or NULL when none is left. */
static char *field(const uint8_t **p, const uint8_t *end, bool rest)
{
	if (*p > end)
		return NULL;
	const uint8_t *stop = rest ? end : memchr(*p, 0x1e, (size_t)(end - *p));
	if (!stop)
		stop = end;
	size_t n = (size_t)(stop - *p);
	char *s = malloc(n + 1);
	FUZZ_CHECK(s != NULL, "out of memory");
	memcpy(s, *p, n);
	s[n] = 0;
	*p = stop + 1;
	return s;
}

/* A stream read to its end: SSE events, ending with [DONE] unless it broke
 * (ollama: JSON lines, the last one "done"). */
static void check_stream(struct stream *st, bool ollama)
{
	char buf[4096], *all = NULL;
	size_t len = 0;
	bool ended = false;
	ssize_t n = 0;
	while (!ended && (n = stream_read(st, buf, sizeof buf, &ended)) >= 0) {
		char *b = realloc(all, len + (size_t)n + 1);
		FUZZ_CHECK(b != NULL, "out of memory");
		all = b;
		memcpy(all + len, buf, (size_t)n);
		len += (size_t)n;
		all[len] = 0;
	}
	stream_free(st);
	if (n >= 0 && ollama) {
		const char *last = len >= 2 ? all + len - 2 : "";
		while (last > all && last[-1] != '\n')
			last--;
		FUZZ_CHECK(len >= 2 && all[len - 1] == '\n' && strstr(last, "\"done\":true"),
			   "an Ollama stream ended without its done line: %.300s", all ? all : "");
	} else if (n >= 0) {
		FUZZ_CHECK(len >= 14 && !strcmp(all + len - 14, "data: [DONE]\n\n"), "a stream ended without [DONE]: %.300s",
			   all ? all : "");
		FUZZ_CHECK(!strncmp(all, "data: ", 6), "a stream that is not server-sent events: %.200s", all);
	}
	free(all);
}

/* A reply that is not a stream: a JSON body; an error in OpenAI's shape. */
static void check_body(const struct http_request *rq, const struct reply *rp)
{
	if (rp->preflight)
		return;
	FUZZ_CHECK(rp->body != NULL || rp->status == 0, "%s %s: status %d without a body", rq->method, rq->url, rp->status);
	if (!rp->body)
		return; /* out of memory building it: the HTTP layer answers 500 */
	if (rp->content_type && strncmp(rp->content_type, "application/json", 16))
		return; /* /metrics */
	json_error_t je;
	json_t *j = json_loadb(rp->body, rp->len, JSON_ALLOW_NUL, &je); /* \u0000 is valid JSON */
	FUZZ_CHECK(json_is_object(j), "%s %s: reply is not a JSON object (%s): %.200s", rq->method, rq->url, je.text,
		   rp->body);
	if (rp->status >= 400 && rp->ollama) {
		const char *msg = json_string_value(json_object_get(j, "error"));
		FUZZ_CHECK(msg && *msg && json_object_size(j) == 1, "%s %s: error %d not in Ollama's shape: %.200s",
			   rq->method, rq->url, rp->status, rp->body);
	} else if (rp->status >= 400) {
		json_t *e = json_object_get(j, "error");
		const char *msg = json_string_value(json_object_get(e, "message"));
		FUZZ_CHECK(msg && *msg && json_object_get(e, "type") && json_object_get(e, "param") &&
				   json_object_get(e, "code"),
			   "%s %s: error %d not in OpenAI's shape: %.200s", rq->method, rq->url, rp->status, rp->body);
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "HEAD", "OPTIONS", "DELETE", "PUT", "PATCH" };
	if (size < 1)
		return 0;
	const uint8_t flags = data[0], *p = data + 1, *end = data + size;
	char *url = field(&p, end, false), *host = field(&p, end, false), *auth = field(&p, end, false);
	char *ctype = field(&p, end, false), *origin = field(&p, end, false), *pre = field(&p, end, false);
	char *body = field(&p, end, true);
	struct http_request rq = { .fd = -1 };
	struct reply rp = { 0 };
	const struct route *rt;

	rq.method = (flags & 7) < 7 ? methods[flags & 7] : (url && *url ? url : "GET");
	rq.url = url ? url : "/";
	rq.host = flags & 0x20 ? "localhost" : host;
	rq.authorization = flags & 0x08 ? "Bearer " KEY : auth;
	rq.content_type = flags & 0x10 ? "application/json" : ctype;
	rq.origin = flags & 0x40 ? NULL : origin;
	rq.preflight_headers = pre;
	rq.preflight_method = flags & 0x80 ? "POST" : NULL;
	if (body) {
		rq.body = body;
		rq.body_len = strlen(body);
		rq.has_length = true;
		rq.content_length = rq.body_len;
	}
	const bool keyed = rq.authorization && !strcmp(rq.authorization, "Bearer " KEY);
	if (!request_head(&srv, &rq, &rt, &rp)) {
		rq.body_too_big = rq.body_len > request_max_body(&srv, rt);
		request_answer(&srv, rt, &rq, &rp);
	}
	FUZZ_CHECK(rp.status >= 200 && rp.status <= 599, "%s %s: status %d", rq.method, rq.url, rp.status);
	/* only the open routes (/health, the web pages: no data in them) answer without the key */
	FUZZ_CHECK(keyed || rp.status >= 300 || request_open(rq.url, rq.method),
		   "%s %s answered %d without the API key", rq.method, rq.url, rp.status);
	FUZZ_CHECK(keyed || rp.status >= 300 || !strcmp(rq.url, "/health") ||
			   (rp.content_type && strncmp(rp.content_type, "application/json", 16)),
		   "%s %s answered JSON without the API key", rq.method, rq.url);
	if (rp.stream)
		check_stream(rp.stream, rp.ollama);
	else
		check_body(&rq, &rp);
	free(rp.body);
	free(url);
	free(host);
	free(auth);
	free(ctype);
	free(origin);
	free(pre);
	free(body);
	return 0;
}
