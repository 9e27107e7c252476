/*
 * api-cache.c - saved model state over HTTP:
 *
 *   POST   /v1/cache         {"model", "name", "prompt" | "messages", "steering"}: computes
 *                            the prompt (messages: rendered by the chat template),
 *                            steered as completions are, and saves its KV state as
 *                            name -> {name, model, tokens, bytes, created}
 *   GET    /v1/cache         the caller's states
 *   GET    /v1/cache/{name}  one of them
 *   DELETE /v1/cache/{name}
 *
 * and "cache": "NAME" on /v1/completions and /v1/chat/completions (gen.c
 * calls cache_seed): the prompt must start with the state's tokens, and the
 * request must be steered as the state was (the state records it: a steered
 * state never starts an unsteered request, nor the reverse); they are then
 * restored instead of computed, and the answer is the one without it.
 *
 * States belong to the API key that saved them (cache-store.c); another
 * key's state is answered exactly as a name that does not exist (404).
 */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "usage.h"
#include "openai.h"

/* The store, or NULL after a 503 (a server without one: tests). */
static struct cache_store *store(struct server *srv, struct reply *rp)
{
	if (!srv->cache)
		reply_error(rp, 503, "service_unavailable", NULL, "no_state_store",
			    "Saved state is not available: the server has no state store");
	return srv->cache;
}

static json_t *entry_json(const struct cache_entry *e)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "object", "cache.state", "name", e->name, "model",
			 e->model, "tokens", (json_int_t)e->tokens, "bytes", (json_int_t)e->bytes, "created",
			 (json_int_t)e->created, "last_used", (json_int_t)e->last_used);
}

/* A store error as a reply: 404 for a name the caller does not have. */
static void store_error(struct reply *rp, int rc, const char *name, const struct hearth_err *err)
{
	if (rc == HEARTH_ENOTFOUND)
		reply_error(rp, 404, "not_found_error", "cache", "cache_not_found", "No saved state is named '%.128s'",
			    name);
	else if (rc == HEARTH_ETOOBIG)
		reply_error(rp, 413, "invalid_request_error", NULL, "cache_budget_exceeded", "%s", err->msg);
	else if (rc == HEARTH_EINVAL || rc == HEARTH_EUNSUPPORTED)
		reply_error(rp, 409, "invalid_request_error", "cache", "cache_unusable", "%s", err->msg);
	else
		reply_error(rp, 500, "server_error", NULL, NULL, "%s", err->msg);
}

/* The prompt to save: "prompt" (a string or token ids) or "messages". */
static bool save_ids(struct served_model *sm, json_t *body, int32_t **ids, int32_t *n, struct reply *rp)
{
	json_t *p = json_object_get(body, "prompt");
	if (json_object_get(body, "messages") && !p) {
		struct hearth_chat_prompt pr = { 0 };
		struct chat_tools tc;
		json_t *vars = NULL;
		/* a conversation so far, to be continued: no generation prompt unless asked */
		bool ok = chat_vars_build(body, &vars, &tc, rp) &&
			  !json_object_set_new(vars, "add_generation_prompt",
					       json_boolean(json_is_true(json_object_get(body, "add_generation_prompt")))) &&
			  api_chat_prompt(sm, vars, &pr, rp);
		json_decref(vars);
		if (ok) {
			*ids = pr.ids;
			*n = pr.n_ids;
			pr.ids = NULL;
		}
		hearth_chat_prompt_free(&pr);
		return ok;
	}
	if (!json_is_string(p) && (!json_is_array(p) || json_array_size(p) == 0)) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "missing_required_parameter",
			    "Give what to save: 'prompt' (a string or token ids) or 'messages'");
		return false;
	}
	return api_prompt_ids(sm, p, ids, n, rp);
}

/* Computes ids on sm's scheduler, steered as the body's "steering" asks
 * (as completions read it), and returns their state (NULL after a reply). */
static struct hearth_state *compute(struct served_model *sm, const struct call *call, const int32_t *ids, int32_t n,
				     struct reply *rp)
{
	struct hearth_request_params rq = hearth_request_default_params();
	if (!steer_parse(sm, call->body, &rq.steering, rp))
		return NULL;
	struct hearth_err err = { 0 };
	struct hearth_request *r = NULL;
	struct hearth_token_event ev;
	char *salt = NULL;
	if (n >= sm->sp.n_ctx_seq) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "context_length_exceeded",
			    "This model's maximum context length is %d tokens; the prompt has %d.", sm->sp.n_ctx_seq, n);
		return NULL;
	}
	if (call->tenant) { /* the salt completions use (params.c): the key, a newline, no cache_salt */
		const size_t kl = strlen(call->tenant);
		if (!(salt = malloc(kl + 2))) {
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			return NULL;
		}
		memcpy(salt, call->tenant, kl);
		salt[kl] = '\n';
		salt[kl + 1] = 0;
		rq.cache_salt = salt;
		rq.cache_salt_size = kl + 1;
	}
	rq.prompt = ids;
	rq.n_prompt = n;
	rq.max_tokens = 0; /* the prompt computed, one token sampled (not computed) */
	rq.sampling.temp = 0;
	rq.save_state = true;
	rq.timeout_s = sm->srv->request_timeout_s;
	int rc = hearth_sched_submit(sm->sched, &rq, &r, &err);
	free(salt);
	if (rc == HEARTH_EBUSY) {
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "queue_full", "The server is busy. Retry shortly.");
		rp->retry_after = 1;
		return NULL;
	}
	if (rc) {
		reply_lib_error(rp, rc, "prompt", &err);
		return NULL;
	}
	while (hearth_request_next(r, &ev, 250) != HEARTH_ENOTFOUND)
		if (client_gone(call->fd))
			hearth_request_cancel(r);
	struct hearth_state *st = hearth_request_take_state(r);
	hearth_request_free(r);
	if (!st)
		reply_error(rp, 500, "server_error", NULL, NULL, "The prompt's state could not be saved");
	return st;
}

void api_cache_save(struct server *srv, const struct call *call, struct reply *rp)
{
	struct cache_store *cs = store(srv, rp);
	json_t *jn = json_object_get(call->body, "name");
	const char *name = json_string_value(jn);
	struct hearth_err err = { 0 };
	char owner[CACHE_OWNER_SIZE];
	int32_t *ids = NULL, n = 0;
	if (!cs)
		return;
	if (!name || !cache_name_ok(name)) {
		reply_error(rp, 400, "invalid_request_error", "name", "invalid_value",
			    "'name' must be 1 to 128 letters, digits, '.', '_', '-' or ':' (not starting with '.' or '-')");
		return;
	}
	struct served_model *sm = api_model_acquire(srv, call->body, rp, NULL);
	struct usage_mark mark;
	if (!sm)
		return;
	usage_mark_now(&mark, sm);
	struct hearth_state *st = NULL;
	if (save_ids(sm, call->body, &ids, &n, rp) && (st = compute(sm, call, ids, n, rp))) {
		struct cache_entry e;
		usage_note_simple(srv, call, sm, "cache", n, 0, &mark); /* computed, saved or not */
		cache_owner(call->tenant, owner);
		int rc = cache_store_put(cs, owner, sm->name, name, st, &e, &err);
		if (rc)
			store_error(rp, rc, name, &err);
		else
			reply_json(rp, 200, entry_json(&e));
	}
	hearth_state_free(st);
	free(ids);
	models_release(&srv->models, sm, -1);
}

void api_cache_list(struct server *srv, const struct call *call, struct reply *rp)
{
	struct cache_store *cs = store(srv, rp);
	struct cache_entry *v = NULL;
	struct hearth_err err = { 0 };
	char owner[CACHE_OWNER_SIZE];
	int n = 0;
	if (!cs)
		return;
	cache_owner(call->tenant, owner);
	int rc = cache_store_list(cs, owner, &v, &n, &err);
	if (rc) {
		store_error(rp, rc, "", &err);
		return;
	}
	json_t *data = json_array();
	bool ok = data != NULL;
	for (int i = 0; i < n && ok; i++)
		ok = jsonb_add(data, entry_json(&v[i]));
	free(v);
	json_t *j = json_pack("{s:s}", "object", "list");
	ok = jsonb_set(j, "data", ok ? data : NULL) && ok;
	if (!ok && !j)
		json_decref(data);
	reply_json(rp, 200, jsonb_done(j, ok));
}

void api_cache_get(struct server *srv, const struct call *call, struct reply *rp)
{
	struct cache_store *cs = store(srv, rp);
	struct hearth_state *st = NULL;
	struct hearth_err err = { 0 };
	struct cache_entry e;
	char owner[CACHE_OWNER_SIZE];
	if (!cs)
		return;
	cache_owner(call->tenant, owner);
	int rc = cache_store_load(cs, owner, call->arg, &st, &e, &err); /* reads it: a broken file shows here */
	hearth_state_free(st);
	if (rc)
		store_error(rp, rc, call->arg, &err);
	else
		reply_json(rp, 200, entry_json(&e));
}

void api_cache_delete(struct server *srv, const struct call *call, struct reply *rp)
{
	struct cache_store *cs = store(srv, rp);
	struct hearth_err err = { 0 };
	char owner[CACHE_OWNER_SIZE];
	if (!cs)
		return;
	cache_owner(call->tenant, owner);
	int rc = cache_store_delete(cs, owner, call->arg, &err);
	if (rc)
		store_error(rp, rc, call->arg, &err);
	else
		reply_json(rp, 200, json_pack("{s:s, s:s, s:b}", "object", "cache.state.deleted", "name", call->arg,
					      "deleted", 1));
}

bool cache_seed(struct served_model *sm, const char *tenant, const char *name, const struct hearth_steering *steering,
		const int32_t *ids, int32_t n, struct hearth_state **out, struct reply *rp)
{
	struct cache_store *cs = store(sm->srv, rp);
	struct hearth_err err = { 0 };
	struct cache_entry e;
	char owner[CACHE_OWNER_SIZE];
	*out = NULL;
	if (!cs)
		return false;
	cache_owner(tenant, owner);
	int rc = cache_store_load(cs, owner, name, out, &e, &err);
	if (rc) {
		store_error(rp, rc, name, &err);
		return false;
	}
	if ((rc = hearth_state_check(*out, sm->model, &err))) {
		reply_error(rp, 400, "invalid_request_error", "cache", "cache_model_mismatch",
			    "The saved state '%.128s' was saved with the model '%.128s', not '%.128s'", name, e.model, sm->name);
		goto fail;
	}
	if (hearth_state_check_steering(*out, sm->model, steering, &err)) { /* its rows would not be this request's */
		reply_error(rp, 400, "invalid_request_error", "cache", "cache_steering_mismatch",
			    "The saved state '%.128s' cannot start this request: %s. Save it with the request's 'steering'",
			    name, err.msg);
		goto fail;
	}
	int32_t k = 0;
	const int32_t *t = hearth_state_tokens(*out, &k);
	int32_t same = 0;
	while (same < k && same < n && t[same] == ids[same])
		same++;
	if (same < k) {
		reply_error(rp, 400, "invalid_request_error", "cache", "cache_prefix_mismatch",
			    "The prompt does not start with the saved state '%.128s': it has %d tokens and differs from it "
			    "at token %d (the state holds %d)", name, n, same, k);
		goto fail;
	}
	return true;
fail:
	hearth_state_free(*out);
	*out = NULL;
	return false;
}
