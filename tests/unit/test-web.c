/* test-web.c - the web chat page's routes (server/web.c) through the request
 * path without sockets: served without a key and while the model loads,
 * with the security headers, ETag and 304; names outside the embedded
 * table, other methods and the API itself stay refused. */
#include <stdlib.h>

#include "../../server/server.h"
#include "../../server/web.h"
#include "../harness.h"

#define KEY "unit-test-key-0123456789"

struct web_in {
	const char *method, *url, *authorization, *if_none_match;
};

/* A server with a key and no model (the page needs none); phase: loading. */
static void srv_init(struct server *srv)
{
	memset(srv, 0, sizeof *srv);
	srv->max_body = 1 << 16;
	srv->check_host = true;
	srv->keys[srv->n_keys++] = KEY;
	atomic_store(&srv->phase, SRV_LOADING);
}

static void serve(struct server *srv, struct web_in in, struct reply *rp)
{
	struct http_request rq = { .method = in.method, .url = in.url, .authorization = in.authorization,
				   .if_none_match = in.if_none_match, .host = "127.0.0.1:8080", .fd = -1 };
	const struct route *rt;
	memset(rp, 0, sizeof *rp);
	if (!request_head(srv, &rq, &rt, rp))
		request_answer(srv, rt, &rq, rp);
}

static const char *header_of(const struct reply *rp, const char *name)
{
	for (int i = 0; i < rp->n_headers; i++)
		if (!strcmp(rp->headers[i].name, name))
			return rp->headers[i].value;
	return NULL;
}

static const struct web_asset *asset(const char *name)
{
	for (size_t i = 0; i < web_n_assets; i++)
		if (!strcmp(web_assets[i].name, name))
			return &web_assets[i];
	return NULL;
}

/* Status of a request (its reply freed). */
static int status_of(struct server *srv, struct web_in in)
{
	struct reply rp;
	serve(srv, in, &rp);
	free(rp.body);
	return rp.status;
}

void test_web_page(void)
{
	struct server srv;
	struct reply rp;
	srv_init(&srv);
	const struct web_asset *index = asset("index.html"), *js = asset("app.js");
	T_TRUE(index && js && asset("app.css") && asset("markdown.js") && asset("store.js") && asset("api.js"));
	if (!index || !js)
		return;
	/* GET /: the page, bytes as embedded, no key, while the model loads */
	serve(&srv, (struct web_in){ "GET", "/", NULL, NULL }, &rp);
	T_EQ_I64(rp.status, 200);
	T_EQ_I64(rp.len, index->size);
	T_TRUE(rp.body && !memcmp(rp.body, index->data, index->size));
	T_STR_EQ(rp.content_type, "text/html; charset=utf-8");
	const char *csp = header_of(&rp, "Content-Security-Policy");
	T_TRUE(csp && strstr(csp, "default-src 'none'") && strstr(csp, "script-src 'self';") &&
	       strstr(csp, "frame-ancestors 'none'") && !strstr(csp, "unsafe"));
	T_STR_EQ(header_of(&rp, "Referrer-Policy"), "no-referrer");
	T_STR_EQ(header_of(&rp, "ETag"), index->etag);
	T_STR_EQ(header_of(&rp, "Cache-Control"), "no-cache");
	free(rp.body);
	/* the page refers to its files under /ui/ */
	T_TRUE(strstr((const char *)index->data, "src=\"/ui/app.js\"") != NULL);
	serve(&srv, (struct web_in){ "HEAD", "/ui/app.js", NULL, NULL }, &rp);
	T_EQ_I64(rp.status, 200);
	T_STR_EQ(rp.content_type, "text/javascript; charset=utf-8");
	T_EQ_I64(rp.len, js->size);
	free(rp.body);
	/* If-None-Match: the same bytes are not sent again */
	char list[128];
	snprintf(list, sizeof list, "\"0000000000000000\", W/%s", js->etag);
	serve(&srv, (struct web_in){ "GET", "/ui/app.js", NULL, list }, &rp);
	T_EQ_I64(rp.status, 304);
	T_TRUE(rp.body == NULL && header_of(&rp, "ETag") && header_of(&rp, "Content-Security-Policy"));
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/ui/app.js", NULL, "*" }), 304);
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/ui/app.js", NULL, "\"0000000000000000\"" }), 200);
	snprintf(list, sizeof list, "%.*sx\"", (int)strlen(js->etag) - 1, js->etag); /* a longer tag */
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/ui/app.js", NULL, list }), 200);
	/* only the table's names: nothing else is reachable */
	static const char *const refused[] = { "/ui/../Makefile", "/ui/../../server/web.c", "/ui/%2e%2e/Makefile",
					       "/ui//etc/passwd", "/ui/app.js/", "/ui/APP.JS", "/ui/.", "/ui/app" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		T_EQ_I64(status_of(&srv, (struct web_in){ "GET", refused[i], NULL, NULL }), 404);
	/* no key opens anything else: other methods, other paths, the API */
	T_EQ_I64(status_of(&srv, (struct web_in){ "POST", "/", NULL, NULL }), 405);
	T_EQ_I64(status_of(&srv, (struct web_in){ "DELETE", "/ui/app.js", "Bearer " KEY, NULL }), 405);
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/ui/", NULL, NULL }), 401);
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/index.html", NULL, NULL }), 401);
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/v1/models", NULL, NULL }), 401);
	T_EQ_I64(status_of(&srv, (struct web_in){ "GET", "/metrics", NULL, NULL }), 401);
	/* every embedded file has a type and a tag */
	for (size_t i = 0; i < web_n_assets; i++) {
		char url[128];
		snprintf(url, sizeof url, "/ui/%s", web_assets[i].name);
		serve(&srv, (struct web_in){ "GET", url, NULL, NULL }, &rp);
		T_EQ_I64(rp.status, 200);
		T_TRUE(rp.content_type && strcmp(rp.content_type, "application/octet-stream"));
		T_TRUE(strlen(web_assets[i].etag) == 18);
		free(rp.body);
	}
}
