/* reply.c - replies in JSON: bodies, and errors in OpenAI's shape
 * {"error":{"message","type","param","code"}} (Ollama's {"error":"message"}
 * on its routes). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

char *reply_text(const json_t *j, size_t *len)
{
	/* measured, then written into one buffer: json_dumps can return broken text when one of
	 * its allocations fails and a later one succeeds (jansson 2.14 ignores a failed key) */
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
	char *s = n ? malloc(n + 1) : NULL;
	if (s && json_dumpb(j, s, n, JSON_COMPACT) != n) {
		free(s);
		s = NULL;
	}
	if (s)
		s[n] = 0;
	*len = s ? n : 0;
	return s;
}

void reply_json(struct reply *rp, int status, json_t *j)
{
	rp->status = status;
	rp->body = j ? reply_text(j, &rp->len) : NULL;
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
	/* the message may quote the client's bytes (a URL, a name): made valid UTF-8 */
	json_t *e = rp->ollama ? json_pack("{s:o}", "error", jsonb_str(msg, strlen(msg))) : json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", jsonb_str(msg, strlen(msg)), "type", type,
			      "param", param ? jsonb_str(param, strlen(param)) : json_null(), "code",
			      code ? json_string(code) : json_null());
	free(rp->body);
	rp->body = NULL;
	reply_json(rp, status, e);
}

/* The reply for an error the library returned: 500 when it ran out of memory, else 400. */
void reply_lib_error(struct reply *rp, int rc, const char *param, const struct hearth_err *err)
{
	if (rc == HEARTH_ENOMEM)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory: %s", err->msg);
	else
		reply_error(rp, 400, "invalid_request_error", param, NULL, "%s", err->msg);
}
