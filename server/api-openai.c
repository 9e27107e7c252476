/*
 * api-openai.c - the OpenAI-compatible endpoints.
 *
 * A completion request is validated field by field (params.c: errors name the
 * field), its prompt is rendered (chat) and tokenized with the per-request
 * context as a ceiling, and one scheduler request per choice is submitted
 * (gen.c). The reply is built in OpenAI's shape (shapes.c), streamed as
 * server-sent events when asked (stream.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

/* The chat request's prompt: its variables rendered through the model's chat
 * template and tokenized, the context as a ceiling. False after an error reply. */
bool api_chat_prompt(struct served_model *sm, json_t *vars, struct hearth_chat_prompt *pr, struct reply *rp)
{
	struct hearth_err err = { 0 };
	size_t len;
	char *text = reply_text(vars, &len);
	if (!text) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	while (sem_wait(&sm->renders) && errno == EINTR) /* a few at a time: each may take its arena's worth */
		;
	int rc = hearth_chat_apply(sm->chat, text, len, NULL, sm->sp.n_ctx_seq, pr, &err);
	sem_post(&sm->renders);
	free(text);
	if (rc == HEARTH_ETOOBIG && pr->text) /* rendered, then too many tokens */
		reply_error(rp, 400, "invalid_request_error", "messages", "context_length_exceeded",
			    "This model's maximum context length is %d tokens; the messages are longer.", sm->sp.n_ctx_seq);
	else if (rc && rc != HEARTH_ENOMEM && !pr->text) /* the template refused it (raise_exception, a type error ...) */
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value", "the chat template: %s", err.msg);
	else if (rc)
		reply_lib_error(rp, rc, "messages", &err);
	return rc == 0;
}

/* A reader per choice for the answers (tools: what the model may call, NULL: none). */
bool api_chat_readers(struct stream *st, const struct hearth_chat_prompt *pr, const struct chat_tools *tc,
		      struct reply *rp)
{
	struct hearth_err err = { 0 };
	size_t len = 0;
	char *tj = tc->tools ? reply_text(tc->tools, &len) : NULL;
	bool ok = !tc->tools || tj;
	for (int k = 0; ok && k < st->p.n; k++)
		ok = !chat_out_init(&st->reader[k], st->sm, pr, tj, len, tc->parallel, &err);
	free(tj);
	if (!ok)
		reply_lib_error(rp, err.code ? err.code : HEARTH_ENOMEM, "tools", &err);
	return ok;
}

void api_chat_completions(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body, *vars = NULL;
	struct hearth_chat_prompt pr = { 0 };
	struct chat_tools tc;
	struct served_model *sm = api_model_acquire(srv, body, rp, NULL);
	if (!sm)
		return;
	struct stream *st = stream_new(sm, true, call);
	if (!st) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	if (!json_object_get(body, "messages")) {
		reply_error(rp, 400, "invalid_request_error", "messages", "missing_required_parameter",
			    "Missing required parameter: 'messages'");
		goto out;
	}
	if (!params_parse(sm, body, true, call->tenant, &st->p, rp) || !chat_vars_build(body, &vars, &tc, rp) ||
	    !api_chat_prompt(sm, vars, &pr, rp) || !api_chat_readers(st, &pr, &tc, rp) ||
	    !constrain_chat(sm, &tc, &pr, &st->p, rp))
		goto out;
	if (srv->log_prompts)
		fprintf(stderr, "hearth serve: prompt: %s\n", pr.text);
	for (int k = 0; k < st->p.n; k++) {
		st->n_gen = k + 1; /* freed with the stream from here on */
		if (!gen_start(sm, &st->p, &st->g[k], pr.ids, pr.n_ids, k, "messages", rp))
			goto out;
	}
	if (st->p.stream) {
		rp->stream = st;
		rp->status = 200;
		st = NULL;
		goto out;
	}
	if (stream_run_all(st, call->fd, rp))
		reply_json(rp, 200, shape_chat_reply(st));
out:
	json_decref(vars);
	hearth_chat_prompt_free(&pr);
	stream_free(st);
}

bool api_prompt_ids(struct served_model *sm, json_t *p, int32_t **ids, int32_t *n, struct reply *rp)
{
	struct hearth_err err = { 0 };
	if (json_is_string(p)) {
		int rc = hearth_tokenize_max(sm->model, json_string_value(p), json_string_length(p), true, true,
					     sm->sp.n_ctx_seq, ids, n, &err);
		if (rc == HEARTH_ETOOBIG)
			reply_error(rp, 400, "invalid_request_error", "prompt", "context_length_exceeded",
				    "This model's maximum context length is %d tokens; the prompt is longer.", sm->sp.n_ctx_seq);
		else if (rc)
			reply_lib_error(rp, rc, "prompt", &err);
		return rc == 0;
	}
	size_t i, k = json_array_size(p);
	json_t *v;
	*ids = malloc((k ? k : 1) * sizeof **ids);
	*n = 0;
	if (!*ids) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	json_array_foreach(p, i, v) {
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 0 || id >= hearth_model_n_vocab(sm->model)) {
			free(*ids);
			*ids = NULL;
			reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value",
				    "prompt token %zu must be an integer id from 0 to %d", i, hearth_model_n_vocab(sm->model) - 1);
			return false;
		}
		(*ids)[(*n)++] = (int32_t)id;
	}
	return true;
}

void api_completions(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	json_t *prompt = json_object_get(body, "prompt"), *list[MAX_PROMPTS];
	int n_list = 0;
	struct served_model *sm = api_model_acquire(srv, body, rp, NULL);
	if (!sm)
		return;
	struct stream *st = stream_new(sm, false, call);

	if (!st) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	if (!prompt) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "missing_required_parameter",
			    "Missing required parameter: 'prompt'");
		goto out;
	}
	/* a string, a list of ids, a list of strings, or a list of lists of ids */
	if (json_is_string(prompt) || (json_is_array(prompt) && json_array_size(prompt) > 0 &&
				       json_is_integer(json_array_get(prompt, 0)))) {
		list[n_list++] = prompt;
	} else if (json_is_array(prompt) && json_array_size(prompt) > 0) {
		size_t i;
		json_t *v;
		if (json_array_size(prompt) > MAX_PROMPTS) {
			reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value", "at most %d prompts per request",
				    MAX_PROMPTS);
			goto out;
		}
		json_array_foreach(prompt, i, v) {
			if (!json_is_string(v) && !json_is_array(v)) {
				reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_type",
					    "'prompt' must be a string, a list of token ids, or a list of either");
				goto out;
			}
			list[n_list++] = v;
		}
	} else {
		reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_type",
			    "'prompt' must be a non-empty string, a list of token ids, or a list of either");
		goto out;
	}
	if (!params_parse(sm, body, false, call->tenant, &st->p, rp))
		goto out;
	if (n_list * st->p.n > MAX_PROMPTS) {
		reply_error(rp, 400, "invalid_request_error", "n", "invalid_value",
			    "prompts x n must be at most %d, got %d", MAX_PROMPTS, n_list * st->p.n);
		goto out;
	}
	/* choice index = prompt * n + k, as OpenAI numbers them */
	for (int i = 0; i < n_list; i++) {
		int32_t *ids = NULL, n = 0;
		if (!api_prompt_ids(sm, list[i], &ids, &n, rp))
			goto out;
		for (int k = 0; k < st->p.n; k++) {
			struct gen *g = &st->g[st->n_gen];
			struct hearth_err err = { 0 };
			int rc = st->p.echo ? hearth_detokenize(sm->model, ids, n, false, &g->prompt_text, &g->prompt_len, &err) : 0;
			st->n_gen++; /* freed with the stream from here on */
			if (rc) {
				reply_lib_error(rp, rc, "prompt", &err);
				free(ids);
				goto out;
			}
			if (!gen_start(sm, &st->p, g, ids, n, k, "prompt", rp)) {
				free(ids);
				goto out;
			}
			/* echoed text leads the completion */
			if (st->p.echo && buf_append(&g->text, &g->len, &g->cap, g->prompt_text, g->prompt_len))
				gen_fail(g);
		}
		free(ids);
	}
	if (st->p.stream) {
		rp->stream = st;
		rp->status = 200;
		st = NULL;
		goto out;
	}
	if (stream_run_all(st, call->fd, rp))
		reply_json(rp, 200, shape_completion_reply(st));
out:
	stream_free(st);
}

void api_models(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *data = json_array();
	bool ok = data != NULL;
	(void)call;
	for (int i = 0; ok && i < srv->models.n; i++)
		ok = jsonb_add(data, shape_model(&srv->models, srv->models.m[i]));
	ok = ok && adapters_list_models(srv, data);
	data = jsonb_done(data, ok);
	reply_json(rp, 200, data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL);
}

void api_model(struct server *srv, const struct call *call, struct reply *rp)
{
	struct served_model *sm = models_find(&srv->models, call->arg);
	if (!sm) {
		reply_error(rp, 404, "invalid_request_error", "model", "model_not_found", "The model '%.200s' does not exist",
			    call->arg);
		return;
	}
	reply_json(rp, 200, shape_model(&srv->models, sm));
}

struct served_model *api_model_acquire(struct server *srv, json_t *body, struct reply *rp, double *load_s)
{
	struct hearth_err err = { 0 };
	struct served_model *sm = NULL;
	json_t *m = json_object_get(body, "model");
	const char *name = json_string_value(m);
	double waited;
	if (m && !json_is_null(m) && (!name || strlen(name) != json_string_length(m))) {
		reply_error(rp, 400, "invalid_request_error", "model", "invalid_type", "'model' must be a string");
		return NULL;
	}
	int rc = models_acquire(&srv->models, name, MODELS_WAIT_S, &sm, &waited, &err);
	const char *shown = name && *name ? name : srv->models.n ? srv->models.m[0]->name : "";
	if (load_s)
		*load_s = waited;
	if (rc == HEARTH_ENOTFOUND) {
		if (rp->ollama)
			reply_error(rp, 404, "invalid_request_error", "model", "model_not_found",
				    "model '%.200s' not found", name);
		else
			reply_error(rp, 404, "invalid_request_error", "model", "model_not_found",
				    "The model '%.200s' does not exist", name);
	} else if (rc == HEARTH_EBUSY) {
		reply_error(rp, 503, "service_unavailable", "model", "model_busy",
			    "The model '%.200s' is not loaded and every loaded model is busy; retry shortly", shown);
		rp->retry_after = 2;
	} else if (rc == HEARTH_ESHUTDOWN) {
		reply_error(rp, 503, "service_unavailable", NULL, "draining", "The server is shutting down");
	} else if (rc) { /* the message may name the file: it went to the log, not to the client */
		reply_error(rp, 503, "service_unavailable", "model", "model_load_failed",
			    "The model '%.200s' could not be loaded (the server's log says why); it is tried again shortly",
			    shown);
		rp->retry_after = 5;
	}
	return sm;
}

static void tokenize(struct served_model *sm, json_t *body, struct reply *rp);
static void detokenize(struct served_model *sm, json_t *body, struct reply *rp);

void api_tokenize(struct server *srv, const struct call *call, struct reply *rp)
{
	struct served_model *sm = api_model_acquire(srv, call->body, rp, NULL);
	if (sm)
		tokenize(sm, call->body, rp);
	models_release(&srv->models, sm, -1);
}

void api_detokenize(struct server *srv, const struct call *call, struct reply *rp)
{
	struct served_model *sm = api_model_acquire(srv, call->body, rp, NULL);
	if (sm)
		detokenize(sm, call->body, rp);
	models_release(&srv->models, sm, -1);
}

static void tokenize(struct served_model *sm, json_t *body, struct reply *rp)
{
	struct hearth_err err = { 0 };
	json_t *t = json_object_get(body, "content");
	bool add_special = true, parse_special = true;
	int32_t *ids;
	int32_t n;
	if (!t)
		t = json_object_get(body, "prompt");
	if (!json_is_string(t)) {
		reply_error(rp, 400, "invalid_request_error", "content", t ? "invalid_type" : "missing_required_parameter",
			    "'content' (or 'prompt') must be a string");
		return;
	}
	if (!params_bool(body, "add_special", &add_special, rp) || !params_bool(body, "add_special_tokens", &add_special, rp) ||
	    !params_bool(body, "parse_special", &parse_special, rp))
		return;
	int rc = hearth_tokenize(sm->model, json_string_value(t), json_string_length(t), add_special, parse_special, &ids,
				 &n, &err);
	if (rc) {
		reply_lib_error(rp, rc, "content", &err);
		return;
	}
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t i = 0; ok && i < n; i++)
		ok = jsonb_add(arr, json_integer(ids[i]));
	free(ids);
	arr = jsonb_done(arr, ok);
	reply_json(rp, 200, arr ? json_pack("{s:o, s:i, s:i}", "tokens", arr, "count", n, "max_model_len", sm->sp.n_ctx_seq)
				: NULL);
}

static void detokenize(struct served_model *sm, json_t *body, struct reply *rp)
{
	struct hearth_err err = { 0 };
	json_t *t = json_object_get(body, "tokens"), *v;
	size_t i;
	char *text;
	if (!json_is_array(t)) {
		reply_error(rp, 400, "invalid_request_error", "tokens", t ? "invalid_type" : "missing_required_parameter",
			    "'tokens' must be an array of token ids");
		return;
	}
	int32_t *ids = malloc((json_array_size(t) + 1) * sizeof *ids);
	if (!ids) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	json_array_foreach(t, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= hearth_model_n_vocab(sm->model)) {
			free(ids);
			reply_error(rp, 400, "invalid_request_error", "tokens", "invalid_value",
				    "tokens[%zu] must be an integer id from 0 to %d", i, hearth_model_n_vocab(sm->model) - 1);
			return;
		}
		ids[i] = (int32_t)json_integer_value(v);
	}
	size_t len = 0;
	int rc = hearth_detokenize(sm->model, ids, (int32_t)json_array_size(t), false, &text, &len, &err);
	free(ids);
	if (rc) {
		reply_lib_error(rp, rc, "tokens", &err);
		return;
	}
	json_t *s = jsonb_str(text, len);
	free(text);
	reply_json(rp, 200, json_pack("{s:O, s:o}", "content", s, "prompt", s));
}

