/*
 * ollama-pull.c - Ollama's POST /api/pull {"model" (or "name"), "stream"}:
 * downloads a hub model into the store (hearth_pull) and registers it under
 * the name asked for, so the next request may use it.
 *
 * Off unless the operator starts the server with --allow-pull (403): a pull
 * writes gigabytes to the operator's disk. URLs are refused (only Hugging
 * Face and ModelScope references): the server must not fetch addresses a
 * client chooses. One pull runs at a time (429 for a second). The pull runs
 * in the connection's thread and the answer comes when it ends: with
 * "stream" (Ollama's default) as NDJSON status lines, else one object.
 * Progress is not streamed while the download runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define PULL_REF_MAX 1024

/* The model reference of the body ("model", else Ollama's older "name"); NULL after answering. */
static const char *pull_ref(json_t *body, struct reply *rp)
{
	json_t *v = json_object_get(body, "model");
	if (!v || json_is_null(v))
		v = json_object_get(body, "name");
	if (!json_is_string(v) || !json_string_length(v)) {
		reply_error(rp, 400, "invalid_request_error", "model", NULL, "'model' must be a model reference string");
		return NULL;
	}
	const char *ref = json_string_value(v);
	if (json_string_length(v) > PULL_REF_MAX || strlen(ref) != json_string_length(v)) {
		reply_error(rp, 400, "invalid_request_error", "model", NULL, "'model' is not a plausible model reference");
		return NULL;
	}
	if (strstr(ref, "://")) {
		reply_error(rp, 400, "invalid_request_error", "model", NULL,
			    "pulling a URL through the API is refused: give a Hugging Face (OWNER/REPO[:QUANT]) or "
			    "modelscope: reference, or pull it on the server with `hearth pull`");
		return NULL;
	}
	return ref;
}

/* The success answer: NDJSON status lines when streaming, else one object. */
static void pull_done(struct reply *rp, bool stream)
{
	static const char lines[] = "{\"status\":\"pulling manifest\"}\n{\"status\":\"verifying sha256 digest\"}\n"
				    "{\"status\":\"success\"}\n";
	static const char one[] = "{\"status\":\"success\"}";
	const char *text = stream ? lines : one;
	size_t n = strlen(text);
	char *body = malloc(n + 1);
	if (!body)
		return; /* no body: the HTTP layer answers 500 */
	memcpy(body, text, n + 1);
	rp->status = 200;
	rp->body = body;
	rp->len = n;
	rp->content_type = stream ? "application/x-ndjson" : "application/json";
}

/* The HTTP status for a failed pull. */
static int pull_status(int rc)
{
	switch (rc) {
	case HEARTH_EINVAL: return 400;
	case HEARTH_ENOTFOUND: return 404;
	case HEARTH_EBUSY: return 409;
	case HEARTH_ETIMEDOUT: return 504;
	case HEARTH_EUNSUPPORTED: return 422;
	default: return 502;
	}
}

void api_ollama_pull(struct server *srv, const struct call *call, struct reply *rp)
{
	if (!srv->allow_pull) {
		reply_error(rp, 403, "permission_error", NULL, "pull_disabled",
			    "pulling models is switched off on this server (the operator may start it with --allow-pull)");
		return;
	}
	const char *ref = pull_ref(call->body, rp);
	json_t *st = json_object_get(call->body, "stream");
	if (!ref)
		return;
	if (st && !json_is_boolean(st)) {
		reply_error(rp, 400, "invalid_request_error", "stream", NULL, "'stream' must be true or false");
		return;
	}
	bool stream = !st || json_is_true(st);
	if (!models_name_ok(ref)) {
		reply_error(rp, 400, "invalid_request_error", "model", NULL, "'%.200s' cannot name a served model", ref);
		return;
	}
	if (atomic_exchange(&srv->pulling, true)) {
		rp->retry_after = 30;
		reply_error(rp, 429, "rate_limit_error", NULL, NULL, "another pull is running; try again when it ends");
		return;
	}
	struct hearth_pull_params pp = hearth_pull_default_params();
	struct hearth_err err = { 0 };
	char path[4096];
	int rc = hearth_pull(ref, &pp, path, sizeof path, &err);
	if (!rc)
		rc = models_add_live(&srv->models, srv, ref, path, &err);
	atomic_store(&srv->pulling, false);
	if (rc) {
		fprintf(stderr, "hearth serve: pull %s: %s\n", ref, err.msg);
		if (rc == HEARTH_EINVAL || rc == HEARTH_ENOTFOUND || rc == HEARTH_EUNSUPPORTED)
			reply_error(rp, pull_status(rc), "invalid_request_error", "model", NULL, "pull %.200s: %s", ref,
				    err.msg); /* about the reference and the hub's files */
		else /* the rest may name the store's paths: those stay in the log */
			reply_error(rp, rc == HEARTH_ENOMEM ? 500 : pull_status(rc), "server_error", "model", NULL,
				    "pull %.200s failed (%s); the server's log says why", ref, hearth_strerror(rc));
		return;
	}
	fprintf(stderr, "hearth serve: pulled %s into %s\n", ref, path);
	pull_done(rp, stream);
}
