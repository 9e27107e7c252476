/*
 * web.c - the web chat page: GET / answers web/index.html, GET /ui/NAME the
 * page's other files, from the table embedded at build time (web.h). A name
 * is looked up in that fixed table, never on disk, so no path leads
 * anywhere else. The page holds no data: it is served without an API key
 * (its API calls carry the key the user enters). Every answer carries a
 * strict Content-Security-Policy (scripts and styles only from this server,
 * no inline script, no remote image, no framing), an ETag (If-None-Match:
 * 304) and no-cache, so a new binary's page replaces the old one at once.
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "web.h"

#define WEB_CSP                                                                                                  \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "   \
	"font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct {
	const char *ext, *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *web_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

static const struct web_asset *web_find(const char *name)
{
	for (size_t i = 0; i < web_n_assets; i++)
		if (!strcmp(web_assets[i].name, name))
			return &web_assets[i];
	return NULL;
}

/* Does an If-None-Match value list etag (or "*")? */
static bool etag_listed(const char *inm, const char *etag)
{
	const size_t n = strlen(etag);
	for (const char *s = inm; s && *s;) {
		s += strspn(s, " \t,");
		if (!strncmp(s, "W/", 2))
			s += 2;
		if (*s == '*' || (!strncmp(s, etag, n) && (s[n] == 0 || s[n] == ',' || s[n] == ' ' || s[n] == '\t')))
			return true;
		s = strchr(s, ',');
	}
	return false;
}

static void web_answer(const struct web_asset *a, const struct call *call, struct reply *rp)
{
	rp->headers[rp->n_headers++] = (struct reply_header){ "Content-Security-Policy", WEB_CSP };
	rp->headers[rp->n_headers++] = (struct reply_header){ "Referrer-Policy", "no-referrer" };
	rp->headers[rp->n_headers++] = (struct reply_header){ "Cache-Control", "no-cache" };
	rp->headers[rp->n_headers++] = (struct reply_header){ "ETag", a->etag };
	const char *inm = call->http ? call->http->if_none_match : NULL;
	if (inm && etag_listed(inm, a->etag)) {
		rp->status = 304;
		return;
	}
	rp->body = malloc(a->size ? a->size : 1);
	if (!rp->body) {
		rp->n_headers = 0;
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	memcpy(rp->body, a->data, a->size);
	rp->len = a->size;
	rp->status = 200;
	rp->content_type = web_type(a->name);
}

void web_index(struct server *srv, const struct call *call, struct reply *rp)
{
	const struct web_asset *a = web_find("index.html");
	(void)srv;
	if (!a) {
		reply_error(rp, 404, "not_found_error", NULL, "not_found", "This server was built without the web page");
		return;
	}
	web_answer(a, call, rp);
}

void web_file(struct server *srv, const struct call *call, struct reply *rp)
{
	const struct web_asset *a = call->arg ? web_find(call->arg) : NULL;
	(void)srv;
	if (!a) {
		reply_error(rp, 404, "not_found_error", NULL, "not_found", "Unknown request URL: GET /ui/%.200s",
			    call->arg ? call->arg : "");
		return;
	}
	web_answer(a, call, rp);
}
