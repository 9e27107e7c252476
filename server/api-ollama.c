/*
 * api-ollama.c - the part of Ollama's API that its clients use, so tools
 * built for Ollama work against hearth unchanged: /api/version, /api/tags
 * (the models registered), /api/ps (those loaded), /api/show, /api/chat and
 * /api/generate (NDJSON streams by default, or one object with "stream":
 * false). Chat and generate go through the OpenAI path's machinery (the
 * request rewritten by ollama-wire.c, then params.c, chat-vars.c, the chat
 * template, constrain.c, gen.c and the answer readers of chat-out.c), only
 * the reply's shape differs. /api/pull is ollama-pull.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ollama.h"

void api_ollama_version(struct server *srv, const struct call *call, struct reply *rp)
{
	(void)srv;
	(void)call;
	reply_json(rp, 200, json_pack("{s:s}", "version", OLLAMA_API_VERSION));
}

/* One model as /api/tags and /api/ps list it. */
static json_t *tag(struct served_model *sm, const struct model_view *v, bool ps)
{
	char when[64];
	ollama_wire_time(when, sizeof when, ps ? (isfinite(v->idle_s) ? (double)time(NULL) + v->idle_s : 253402300799.0)
					     : (double)sm->modified);
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:o}", "name", sm->name, "model", sm->name, "size",
			      (json_int_t)(ps ? v->size : sm->file_size), "digest", "", "details", ollama_info_details(sm));
	bool ok = j && jsonb_set(j, ps ? "expires_at" : "modified_at", json_string(when));
	if (ok && ps) /* idle_s counts from the last use */
		ok = jsonb_set(j, "size_vram", json_integer(0)) && jsonb_set(j, "context_length", json_integer(v->n_ctx_seq));
	return jsonb_done(j, ok);
}

static void list(struct server *srv, bool ps, struct reply *rp)
{
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int i = 0; ok && i < srv->models.n; i++) {
		struct served_model *sm = srv->models.m[i];
		struct model_view v;
		models_view(&srv->models, sm, &v);
		if (ps && v.state != MODEL_LOADED)
			continue;
		if (ps && isfinite(v.idle_s)) /* expires idle_s after its last use */
			v.idle_s -= hearth_now() - v.last_used;
		ok = jsonb_add(arr, tag(sm, &v, ps));
	}
	arr = jsonb_done(arr, ok);
	reply_json(rp, 200, arr ? json_pack("{s:o}", "models", arr) : NULL);
}

void api_ollama_tags(struct server *srv, const struct call *call, struct reply *rp)
{
	(void)call;
	list(srv, false, rp);
}

void api_ollama_ps(struct server *srv, const struct call *call, struct reply *rp)
{
	(void)call;
	list(srv, true, rp);
}

/* The "model" (or older "name") field's registered model, or NULL after a 400 or 404. */
static struct served_model *named(struct server *srv, json_t *body, struct reply *rp)
{
	json_t *m = json_object_get(body, "model");
	if (!m || json_is_null(m))
		m = json_object_get(body, "name");
	const char *name = json_string_value(m);
	if (!name || strlen(name) != json_string_length(m)) {
		reply_error(rp, 400, "invalid_request_error", "model", "invalid_type", "'model' must be a string");
		return NULL;
	}
	struct served_model *sm = models_find(&srv->models, name);
	if (!sm)
		reply_error(rp, 404, "invalid_request_error", "model", "model_not_found", "model '%.200s' not found", name);
	return sm;
}

void api_ollama_show(struct server *srv, const struct call *call, struct reply *rp)
{
	bool verbose = false;
	struct served_model *sm = named(srv, call->body, rp);
	if (!sm || !params_bool(call->body, "verbose", &verbose, rp))
		return;
	json_t *j = ollama_info_show(sm, verbose, rp);
	if (j)
		reply_json(rp, 200, j);
}

/* A request that asks only to load (no messages, no prompt) or to unload (keep_alive 0). */
static void load_only(struct server *srv, struct served_model *sm, bool chat, double keep_s, struct reply *rp)
{
	reply_json(rp, 200, ollama_wire_done(sm, chat, keep_s == 0 ? "unload" : "load"));
	models_release(&srv->models, sm, keep_s);
}

/* generate with "raw": the prompt tokenized as it is (special-token text read as such). */
static bool raw_prompt(struct served_model *sm, json_t *body, struct hearth_chat_prompt *pr, struct reply *rp)
{
	struct hearth_err err = { 0 };
	json_t *p = json_object_get(body, "prompt");
	int rc = hearth_tokenize_max(sm->model, json_string_value(p), json_string_length(p), true, true, sm->sp.n_ctx_seq,
				     &pr->ids, &pr->n_ids, &err);
	if (rc == HEARTH_ETOOBIG)
		reply_error(rp, 400, "invalid_request_error", "prompt", "context_length_exceeded",
			    "This model's maximum context length is %d tokens; the prompt is longer.", sm->sp.n_ctx_seq);
	else if (rc)
		reply_lib_error(rp, rc, "prompt", &err);
	return rc == 0;
}

/* Fields of generate hearth does not do, refused by name rather than ignored. */
static bool generate_refused(json_t *body, struct reply *rp)
{
	static const char *const fields[] = { "images", "suffix", "template", "context" };
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		json_t *v = json_object_get(body, fields[i]);
		if (v && !json_is_null(v) && !(json_is_array(v) && !json_array_size(v)) &&
		    !(json_is_string(v) && !json_string_length(v))) {
			reply_error(rp, 400, "invalid_request_error", fields[i], "unsupported",
				    "'%s' is not supported by this server%s", fields[i],
				    !strcmp(fields[i], "context") ? ": send the conversation to /api/chat" : "");
			return false;
		}
	}
	return true;
}

/* Does the request ask for nothing but its model loaded (or unloaded)? */
static bool asks_load_only(json_t *body, bool chat)
{
	json_t *v = json_object_get(body, chat ? "messages" : "prompt");
	return !v || json_is_null(v) || (chat ? json_is_array(v) && json_array_size(v) == 0 : json_is_string(v) && json_string_length(v) == 0);
}

/* The prompt of a chat or generate request into pr, with st's reader and constraint. */
static bool prompt_of(struct stream *st, json_t *body, json_t *ob, bool chat, struct hearth_chat_prompt *pr,
		      struct reply *rp)
{
	struct chat_tools tc;
	json_t *vars = NULL;
	bool ok;
	if (!chat && json_is_true(json_object_get(body, "raw")))
		return raw_prompt(st->sm, body, pr, rp);
	ok = chat_vars_build(ob, &vars, &tc, rp) && api_chat_prompt(st->sm, vars, pr, rp) &&
	     api_chat_readers(st, pr, &tc, rp) && constrain_chat(st->sm, &tc, pr, &st->p, rp);
	json_decref(vars);
	return ok;
}

/* /api/chat and /api/generate. */
static void answer(struct server *srv, const struct call *call, bool chat, struct reply *rp)
{
	json_t *body = call->body, *ob = NULL;
	struct hearth_chat_prompt pr = { 0 };
	double keep_s, load_s;
	if (!ollama_wire_keep_alive(body, &keep_s, rp) || (!chat && !generate_refused(body, rp)))
		return;
	struct served_model *sm = api_model_acquire(srv, body, rp, &load_s);
	if (!sm)
		return;
	if (asks_load_only(body, chat)) {
		load_only(srv, sm, chat, keep_s, rp);
		return;
	}
	struct stream *st = stream_new(sm, chat, call);
	if (!st) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	st->keep_s = keep_s;
	st->load_s = load_s;
	ollama_wire_stream(st, chat);
	if (!ollama_wire_body(body, chat, &ob, rp) || !params_parse(sm, ob, true, call->tenant, &st->p, rp) ||
	    !prompt_of(st, body, ob, chat, &pr, rp))
		goto out;
	st->p.n = 1;
	if (srv->log_prompts)
		fprintf(stderr, "hearth serve: prompt: %s\n", pr.text ? pr.text : json_string_value(json_object_get(body, "prompt")));
	st->n_gen = 1; /* freed with the stream from here on */
	if (!gen_start(sm, &st->p, &st->g[0], pr.ids, pr.n_ids, 0, chat ? "messages" : "prompt", rp))
		goto out;
	if (st->p.stream) {
		rp->stream = st;
		rp->status = 200;
		st = NULL;
		goto out;
	}
	if (stream_run_all(st, call->fd, rp))
		reply_json(rp, 200, ollama_wire_reply(st));
out:
	json_decref(ob);
	hearth_chat_prompt_free(&pr);
	stream_free(st);
}

void api_ollama_chat(struct server *srv, const struct call *call, struct reply *rp)
{
	answer(srv, call, true, rp);
}

void api_ollama_generate(struct server *srv, const struct call *call, struct reply *rp)
{
	answer(srv, call, false, rp);
}
