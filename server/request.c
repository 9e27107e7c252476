/*
 * request.c - the request path, as plain functions of a struct http_request
 * (so tests and fuzzers drive it without sockets). A request goes through two
 * stages:
 *
 *   request_head    once its headers are in: URL and header sizes (414, 431),
 *                   the Host name (403: DNS rebinding), the Origin (403 unless
 *                   allowed; CORS preflights), the API key (401, before routes
 *                   are revealed; the open routes, /health and the web page's
 *                   GET / and /ui/NAME, need none), the route and method (404, 405), the
 *                   server's state (503), the content type (415), and the
 *                   length (413, or 503 while request bodies hold --max-body-total);
 *   request_answer  once its body is in: the body limits (413, 503), the JSON
 *                   (400), then the route's handler.
 *
 * Every reply, errors included, is JSON in OpenAI's shape.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache.h"
#include "server.h"
#include "usage.h"

#define URL_MAX (8 * 1024)          /* longer: 414 */
#define HEADERS_MAX (32 * 1024)     /* more header bytes: 431 */
#define SMALL_BODY_MAX (1u << 20)   /* /tokenize, /detokenize */

typedef void (*route_fn)(struct server *srv, const struct call *call, struct reply *rp);

struct route {
	const char *path;
	const char *method;       /* GET routes answer HEAD too */
	route_fn fn;              /* NULL: answered in this file */
	bool prefix;              /* path is a prefix; the rest is call->arg */
	bool open;                /* answered without an API key, and while models load */
	bool json_body;           /* takes a JSON object */
	bool small_body;          /* at most SMALL_BODY_MAX bytes */
};

static const struct route routes[] = {
	{ "/health", "GET", NULL, false, true, false, false },
	{ "/metrics", "GET", NULL, false, false, false, false },
	{ "/v1/models", "GET", api_models, false, false, false, false },
	{ "/v1/models/", "GET", api_model, true, false, false, false },
	/* LoRA adapters (adapters.c) */
	{ "/v1/lora", "GET", api_lora_list, false, false, false, false },
	{ "/v1/lora", "POST", api_lora_load, false, false, true, true },
	{ "/v1/lora/", "DELETE", api_lora_unload, true, false, false, false },
	{ "/v1/chat/completions", "POST", api_chat_completions, false, false, true, false },
	{ "/v1/completions", "POST", api_completions, false, false, true, false },
	{ "/v1/score", "POST", api_score, false, false, true, false },
	{ "/v1/attribute", "POST", api_attribute, false, false, true, false },
	{ "/v1/embeddings", "POST", api_embeddings, false, false, true, false },
	{ "/v1/rerank", "POST", api_rerank, false, false, true, false },
	{ "/rerank", "POST", api_rerank, false, false, true, false },
	{ "/tokenize", "POST", api_tokenize, false, false, true, true },
	{ "/detokenize", "POST", api_detokenize, false, false, true, true },
	{ "/v1/tokenize", "POST", api_tokenize, false, false, true, true },
	{ "/v1/detokenize", "POST", api_detokenize, false, false, true, true },
	/* saved state (api-cache.c) */
	{ "/v1/cache", "POST", api_cache_save, false, false, true, false },
	{ "/v1/cache", "GET", api_cache_list, false, false, false, false },
	{ "/v1/cache/", "GET", api_cache_get, true, false, false, false },
	{ "/v1/cache/", "DELETE", api_cache_delete, true, false, false, false },
	/* Ollama's API */
	{ "/api/version", "GET", api_ollama_version, false, false, false, false },
	{ "/api/tags", "GET", api_ollama_tags, false, false, false, false },
	{ "/api/ps", "GET", api_ollama_ps, false, false, false, false },
	{ "/api/show", "POST", api_ollama_show, false, false, true, true },
	{ "/api/chat", "POST", api_ollama_chat, false, false, true, false },
	{ "/api/generate", "POST", api_ollama_generate, false, false, true, false },
	{ "/api/pull", "POST", api_ollama_pull, false, false, true, true },
	/* usage (usage-api.c) */
	{ "/v1/organization/usage/completions", "GET", api_usage_completions, false, false, false, false },
	{ "/v1/hearth/usage/latency", "GET", api_usage_latency, false, false, false, false },
	{ "/v1/hearth/usage/samples", "GET", api_usage_samples, false, false, false, false },
	{ "/v1/hearth/usage/cost", "GET", api_usage_cost, false, false, false, false },
	/* the web chat page (web.c): no data in it, so no key */
	{ "/", "GET", web_index, false, true, false, false },
	{ "/admin", "GET", web_admin, false, true, false, false },
	{ "/ui/", "GET", web_file, true, true, false, false },
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

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

/* The route for url and method; when only other methods have one, the first
 * of them (answered 405). */
static const struct route *route_find(const char *url, const char *method, bool *path_known)
{
	const struct route *first = NULL;
	*path_known = false;
	for (size_t i = 0; i < N_ROUTES; i++) {
		const struct route *r = &routes[i];
		bool hit = r->prefix ? !strncmp(url, r->path, strlen(r->path)) && url[strlen(r->path)] : !strcmp(url, r->path);
		if (hit) {
			*path_known = true;
			if (!strcmp(method, r->method) || (!strcmp(r->method, "GET") && !strcmp(method, "HEAD")))
				return r;
			if (!first)
				first = r;
		}
	}
	return first;
}

/* Is url a route answered without a key (/health, the web page)? (Its other
 * methods then get 405 without a key too: the path is public anyway.) */
bool request_open(const char *url, const char *method)
{
	bool known;
	const struct route *rt = route_find(url, method, &known);
	return rt && rt->open;
}

size_t request_max_body(const struct server *srv, const struct route *rt)
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
	const struct route *rt = route_find(rq->url, rq->method, &known);
	if (!rt) {
		reply_error(rp, 404, "not_found_error", NULL, "not_found", "Unknown request URL: %.16s %.512s", rq->method,
			    rq->url);
		return true;
	}
	bool method_ok = !strcmp(rq->method, rt->method) || (!strcmp(rt->method, "GET") && !strcmp(rq->method, "HEAD"));
	if (!method_ok) {
		rp->allow = !strncmp(rt->path, "/v1/cache", 9)   ? (rt->prefix ? "GET, HEAD, DELETE" : "GET, HEAD, POST")
			    : !strcmp(rt->method, "GET") ? "GET, HEAD"
							 : rt->method;
		reply_error(rp, 405, "invalid_request_error", NULL, "method_not_allowed", "Method %.16s is not allowed for %.512s",
			    rq->method, rq->url);
		return true;
	}
	const int phase = atomic_load(&srv->phase);
	if (rt->fn && !rt->open && phase != SRV_READY) {
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
	const size_t max = request_max_body(srv, rt);
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

/* Ollama's routes answer errors in Ollama's shape (told from the URL alone). */
static void reply_shape(const struct http_request *rq, struct reply *rp)
{
	rp->ollama = !strncmp(rq->url, "/api/", 5);
}

bool request_head(struct server *srv, const struct http_request *rq, const struct route **rt, struct reply *rp)
{
	*rt = NULL;
	reply_shape(rq, rp);
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
	if (srv->n_keys && !request_open(rq->url, rq->method) && !key_match(srv, rq->authorization)) {
		reply_error(rp, 401, "authentication_error", NULL, "invalid_api_key",
			    "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.");
		return true;
	}
	return check_route(srv, rq, rt, rp) || check_body_head(srv, *rt, rq, rp);
}

/* ---- the answers ------------------------------------------------------------------ */

/* Is every loaded model's scheduler alive? (A step over long prompts of a
 * big model can take a while: only a stalled loop fails.) Models not loaded
 * are loaded on demand and do not count. */
static bool schedulers_alive(struct server *srv)
{
	bool ok = true;
	for (int i = 0; ok && i < srv->models.n; i++) {
		struct served_model *sm = srv->models.m[i];
		struct hearth_sched_stats st = { 0 };
		if (!models_peek(&srv->models, sm))
			continue;
		hearth_sched_stats(sm->sched, &st);
		models_unpeek(&srv->models, sm);
		ok = st.alive && hearth_now() - st.t_heartbeat < 120.0;
	}
	return ok;
}

static void answer_health(struct server *srv, struct reply *rp)
{
	const int phase = atomic_load(&srv->phase);
	bool ok = phase == SRV_READY && schedulers_alive(srv);
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

void request_answer_json(struct server *srv, const struct route *rt, const struct http_request *rq, json_t *body,
			 struct reply *rp)
{
	if (rq->origin && origin_listed(srv, rq->origin))
		rp->cors_origin = rq->origin;
	if (!rt->fn) {
		if (!strcmp(rt->path, "/health")) {
			answer_health(srv, rp);
		} else { /* /metrics */
			rp->status = 200;
			rp->body = metrics_render(srv, &rp->len);
			rp->content_type = "text/plain; version=0.0.4; charset=utf-8";
		}
		return;
	}
	struct call call = { .body = body, .fd = rq->fd, .session_key = rq->session_id,
			     .tenant = srv->n_keys ? key_match(srv, rq->authorization) : NULL, .http = rq };
	if (rt->prefix)
		call.arg = rq->url + strlen(rt->path);
	if (!usage_admit(srv, call.tenant, rt->path, rp))
		return;
	rt->fn(srv, &call, rp);
}

void request_answer(struct server *srv, const struct route *rt, const struct http_request *rq, struct reply *rp)
{
	json_t *body = NULL;
	reply_shape(rq, rp);
	if (rq->origin && origin_listed(srv, rq->origin))
		rp->cors_origin = rq->origin;
	if (rq->body_no_room) {
		reply_error(rp, 503, "service_unavailable", NULL, "server_busy",
			    "The server holds as many request bodies as it may now (%zu bytes). Retry shortly.",
			    srv->max_body_total);
		rp->retry_after = 1;
		return;
	}
	if (rq->body_too_big) {
		reply_error(rp, 413, "invalid_request_error", NULL, "request_too_large",
			    "The request body exceeds the limit of %zu bytes for %s", request_max_body(srv, rt), rt->path);
		return;
	}
	if (rt->json_body && !(body = parse_body(rq, rp)))
		return;
	request_answer_json(srv, rt, rq, body, rp);
	json_decref(body);
}
