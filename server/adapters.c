/*
 * adapters.c - LoRA adapters for `hearth serve` (docs/API.md, "LoRA adapters").
 *
 *   --lora NAME=FILE[:SCALE]   (repeatable) an adapter of the first model
 *   --lora-dir DIR             lets POST /v1/lora load files inside DIR
 *   "lora": NAME, or "model": "BASE+NAME"   a completion or chat request
 *                              (OpenAI's and Ollama's routes) uses the adapter
 *   GET /v1/lora               the adapters: name, model, scale, loaded
 *   POST /v1/lora {"name", "path", "scale", "model"}   loads path (inside --lora-dir)
 *   DELETE /v1/lora/NAME       unloads it
 *
 * The table lives in the model registry (struct models) under its lock: an
 * entry names its model and file; its hearth_lora is loaded with the model
 * (load.c) and freed when the model unloads, and entries stay for the next
 * load. A request takes its own reference to the adapter (hearth_lora_ref)
 * while the table is locked, so an adapter unloaded while requests use it is
 * freed when the last of them ends; later requests no longer find it. The
 * admin routes are behind the API key like every other route but /health;
 * POST reads a file on the server, so it is off unless the operator names
 * the folder it may read from (--lora-dir), as --allow-pull gates pulls.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

#define MAX_SCALE 1000.0

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= sizeof ((struct srv_adapter *)0)->name)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return true;
}

bool adapters_flag(struct server *srv, const char *arg, char *why, size_t why_size)
{
	struct models *ms = &srv->models;
	const char *eq = strchr(arg, '=');
	if (ms->n_adapters == SRV_MAX_LORAS) {
		snprintf(why, why_size, "--lora: at most %d adapters", SRV_MAX_LORAS);
		return false;
	}
	if (!eq || !name_ok(arg, (size_t)(eq - arg))) {
		snprintf(why, why_size, "--lora expects NAME=FILE[:SCALE], NAME of letters, digits, '-', '_', '.' (got '%.64s')",
			 arg);
		return false;
	}
	struct srv_adapter *a = &ms->adapters[ms->n_adapters];
	memset(a, 0, sizeof *a);
	memcpy(a->name, arg, (size_t)(eq - arg));
	for (int i = 0; i < ms->n_adapters; i++)
		if (!strcmp(ms->adapters[i].name, a->name)) {
			snprintf(why, why_size, "--lora: the name '%s' is given twice", a->name);
			return false;
		}
	const char *file = eq + 1, *colon = strrchr(file, ':');
	size_t n_path = strlen(file);
	a->scale = 1.0f;
	if (colon) { /* FILE:SCALE when what follows the last colon is a number */
		char *end;
		const double v = strtod(colon + 1, &end);
		if (end != colon + 1 && !*end) {
			if (!isfinite(v) || fabs(v) > MAX_SCALE) {
				snprintf(why, why_size, "--lora: scale %.32s is not a number within +-%g", colon + 1, MAX_SCALE);
				return false;
			}
			a->scale = (float)v;
			n_path = (size_t)(colon - file);
		}
	}
	if (n_path == 0 || n_path >= sizeof a->path) {
		snprintf(why, why_size, "--lora: no file, or a path longer than %zu bytes, in '%.64s'", sizeof a->path - 1, arg);
		return false;
	}
	char given[sizeof a->path];
	struct hearth_err err = { 0 };
	memcpy(given, file, n_path);
	given[n_path] = 0;
	/* a file, else an adapter in the store (pulled like a model: a REF or short name) */
	if (hearth_store_resolve(given, a->path, sizeof a->path, &err)) {
		snprintf(why, why_size, "--lora %s: %s", a->name, err.msg);
		return false;
	}
	ms->n_adapters++;
	return true;
}

/* Does entry a belong to sm (an entry without a model: the first registered)? */
static bool belongs(const struct models *ms, const struct srv_adapter *a, const struct served_model *sm)
{
	return a->sm ? a->sm == sm : ms->n > 0 && ms->m[0] == sm;
}

int adapters_load(struct served_model *sm, struct hearth_err *err)
{
	struct models *ms = &sm->srv->models;
	int rc = 0;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < ms->n_adapters && !rc; i++) {
		struct srv_adapter *a = &ms->adapters[i];
		if (!belongs(ms, a, sm) || a->lora)
			continue;
		rc = hearth_lora_load(&a->lora, sm->model, a->path, err);
		if (rc && a->sm) { /* loaded through /v1/lora once: its model still loads, without it */
			fprintf(stderr, "hearth serve: warning: adapter '%s' of '%s' is not loaded again: %s\n", a->name,
				sm->name, err->msg);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&ms->mu);
	if (rc)
		adapters_free(sm);
	return rc;
}

void adapters_free(struct served_model *sm)
{
	struct models *ms = &sm->srv->models;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < ms->n_adapters; i++)
		if (belongs(ms, &ms->adapters[i], sm)) {
			hearth_lora_free(ms->adapters[i].lora);
			ms->adapters[i].lora = NULL;
		}
	pthread_mutex_unlock(&ms->mu);
}

static bool bad(struct reply *rp, int status, const char *param, const char *code, const char *msg)
{
	reply_error(rp, status, status == 404 ? "not_found_error" : "invalid_request_error", param, code, "%s", msg);
	return false;
}

/* The adapter a request names: "lora", else the part of "model" after the
 * served model's name and a '+'; NULL: none. */
static bool asked_name(struct served_model *sm, json_t *body, const char **name, const char **param, struct reply *rp)
{
	json_t *v = json_object_get(body, "lora");
	const char *model = json_string_value(json_object_get(body, "model"));
	const size_t n = strlen(sm->name);
	*name = NULL;
	*param = "lora";
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return bad(rp, 400, "lora", "invalid_type", "'lora' must be the name of a loaded adapter");
		*name = json_string_value(v);
	}
	if (model && strncmp(model, sm->name, n) == 0 && model[n] == '+') {
		if (*name && strcmp(*name, model + n + 1))
			return bad(rp, 400, "lora", "invalid_value", "'lora' and the adapter in 'model' differ");
		*name = model + n + 1;
		*param = "model";
	}
	return true;
}

bool adapters_parse(struct served_model *sm, json_t *body, struct hearth_lora_use *use, int32_t *n_use,
		    struct reply *rp)
{
	struct models *ms = &sm->srv->models;
	const char *name, *param;
	*n_use = 0;
	if (!asked_name(sm, body, &name, &param, rp))
		return false;
	if (!name || !*name)
		return true;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < ms->n_adapters && !*n_use; i++) {
		struct srv_adapter *a = &ms->adapters[i];
		if (belongs(ms, a, sm) && a->lora && !strcmp(a->name, name)) {
			use->lora = hearth_lora_ref(a->lora);
			use->scale = a->scale;
			*n_use = 1;
		}
	}
	pthread_mutex_unlock(&ms->mu);
	if (*n_use)
		return true;
	reply_error(rp, 404, "invalid_request_error", param, "adapter_not_found",
		    "The model '%.200s' has no LoRA adapter '%.64s' loaded", sm->name, name);
	return false;
}

bool adapters_list_models(struct server *srv, json_t *data)
{
	struct models *ms = &srv->models;
	char id[MODEL_NAME_MAX + 80];
	bool ok = true;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; ok && i < ms->n_adapters; i++) {
		const struct srv_adapter *a = &ms->adapters[i];
		const struct served_model *sm = a->sm ? a->sm : ms->n > 0 ? ms->m[0] : NULL;
		if (!sm)
			continue;
		snprintf(id, sizeof id, "%s+%s", sm->name, a->name);
		ok = jsonb_add(data, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:[], s:b}", "id", id, "object", "model",
					       "created", (json_int_t)sm->modified, "owned_by", "hearth", "root", a->name,
					       "parent", sm->name, "permission", "loaded", a->lora != NULL));
	}
	pthread_mutex_unlock(&ms->mu);
	return ok;
}

void api_lora_list(struct server *srv, const struct call *call, struct reply *rp)
{
	struct models *ms = &srv->models;
	json_t *data = json_array();
	bool ok = data != NULL;
	(void)call;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; ok && i < ms->n_adapters; i++) {
		const struct srv_adapter *a = &ms->adapters[i];
		const struct served_model *sm = a->sm ? a->sm : ms->n > 0 ? ms->m[0] : NULL;
		ok = jsonb_add(data, json_pack("{s:s, s:s, s:f, s:b, s:I}", "name", a->name, "model", sm ? sm->name : "",
					       "scale", (double)a->scale, "loaded", a->lora != NULL, "pairs",
					       (json_int_t)(a->lora ? hearth_lora_n_pairs(a->lora) : 0)));
	}
	pthread_mutex_unlock(&ms->mu);
	data = jsonb_done(data, ok);
	reply_json(rp, 200, data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL);
}

/* The real path of rel inside srv's --lora-dir into out, or false (rp filled). */
static bool inside_dir(const struct server *srv, const char *rel, char *out, struct reply *rp)
{
	char dir[PATH_MAX], joined[PATH_MAX * 2];
	if (!realpath(srv->lora_dir, dir))
		return bad(rp, 500, NULL, "server_error", "the server's --lora-dir cannot be read");
	if (rel[0] == '/' || snprintf(joined, sizeof joined, "%s/%s", dir, rel) >= (int)sizeof joined)
		return bad(rp, 400, "path", "invalid_value", "'path' must be a file name relative to the server's --lora-dir");
	if (!realpath(joined, out))
		return bad(rp, 404, "path", "file_not_found", "'path' names no file in the server's --lora-dir");
	const size_t n = strlen(dir);
	if (strncmp(out, dir, n) != 0 || out[n] != '/')
		return bad(rp, 400, "path", "invalid_value", "'path' leads outside the server's --lora-dir");
	return true;
}

/* POST /v1/lora: checks the body into *a (path resolved). */
static bool load_args(struct server *srv, json_t *b, struct srv_adapter *a, struct reply *rp)
{
	json_t *name = json_object_get(b, "name"), *path = json_object_get(b, "path"), *scale = json_object_get(b, "scale");
	char real[PATH_MAX];
	if (!json_is_string(name) || !name_ok(json_string_value(name), json_string_length(name)))
		return bad(rp, 400, "name", "invalid_value", "'name' must be 1 to 63 letters, digits, '-', '_' or '.'");
	if (!json_is_string(path) || strlen(json_string_value(path)) != json_string_length(path))
		return bad(rp, 400, "path", "invalid_type", "'path' must be a string");
	a->scale = 1.0f;
	if (scale && !json_is_null(scale)) {
		if (!json_is_number(scale) || !(fabs(json_number_value(scale)) <= MAX_SCALE))
			return bad(rp, 400, "scale", "invalid_value", "'scale' must be a number from -1000 to 1000");
		a->scale = (float)json_number_value(scale);
	}
	if (!inside_dir(srv, json_string_value(path), real, rp))
		return false;
	if (strlen(real) >= sizeof a->path)
		return bad(rp, 400, "path", "invalid_value", "'path' is too long");
	snprintf(a->name, sizeof a->name, "%s", json_string_value(name));
	snprintf(a->path, sizeof a->path, "%s", real);
	return true;
}

/* Adds a (loaded for sm) to the table unless its name is taken or it is full. */
static void table_add(struct models *ms, struct srv_adapter *a, struct reply *rp)
{
	pthread_mutex_lock(&ms->mu);
	bool taken = false;
	for (int i = 0; i < ms->n_adapters; i++)
		taken |= !strcmp(ms->adapters[i].name, a->name);
	if (taken || ms->n_adapters == SRV_MAX_LORAS) {
		pthread_mutex_unlock(&ms->mu);
		hearth_lora_free(a->lora);
		if (taken)
			reply_error(rp, 409, "invalid_request_error", "name", "adapter_exists",
				    "An adapter named '%s' is loaded already (DELETE /v1/lora/%s first)", a->name, a->name);
		else
			reply_error(rp, 409, "invalid_request_error", NULL, "too_many_adapters", "At most %d adapters",
				    SRV_MAX_LORAS);
		return;
	}
	ms->adapters[ms->n_adapters++] = *a;
	pthread_mutex_unlock(&ms->mu);
	reply_json(rp, 200, json_pack("{s:s, s:s, s:f, s:I}", "name", a->name, "model", a->sm->name, "scale",
				      (double)a->scale, "pairs", (json_int_t)hearth_lora_n_pairs(a->lora)));
}

void api_lora_load(struct server *srv, const struct call *call, struct reply *rp)
{
	struct srv_adapter a = { 0 };
	struct hearth_err err = { 0 };
	if (!srv->lora_dir) {
		reply_error(rp, 403, "permission_error", NULL, "lora_load_disabled",
			    "loading adapters at run time is switched off on this server (the operator may start it with "
			    "--lora-dir DIR)");
		return;
	}
	if (!load_args(srv, call->body, &a, rp))
		return;
	struct served_model *sm = api_model_acquire(srv, call->body, rp, NULL);
	if (!sm)
		return;
	a.sm = sm;
	const int rc = hearth_lora_load(&a.lora, sm->model, a.path, &err);
	if (rc) { /* the message names the server's path: the log has it, the client gets the problem */
		fprintf(stderr, "hearth serve: POST /v1/lora: %s\n", err.msg);
		const char *why = strstr(err.msg, ": ");
		reply_error(rp, rc == HEARTH_ENOMEM ? 500 : 400, "invalid_request_error", "path", "invalid_adapter",
			    "The adapter could not be loaded: %s", why ? why + 2 : hearth_strerror(rc));
	} else {
		table_add(&srv->models, &a, rp);
	}
	models_release(&srv->models, sm, -1);
}

void api_lora_unload(struct server *srv, const struct call *call, struct reply *rp)
{
	struct models *ms = &srv->models;
	struct hearth_lora *gone = NULL;
	bool found = false;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < ms->n_adapters && !found; i++)
		if (!strcmp(ms->adapters[i].name, call->arg)) {
			gone = ms->adapters[i].lora;
			memmove(&ms->adapters[i], &ms->adapters[i + 1], (size_t)(ms->n_adapters - i - 1) * sizeof ms->adapters[i]);
			ms->n_adapters--;
			found = true;
		}
	pthread_mutex_unlock(&ms->mu);
	hearth_lora_free(gone); /* requests using it hold their own references */
	if (!found) {
		reply_error(rp, 404, "not_found_error", NULL, "adapter_not_found", "No adapter named '%.64s'", call->arg);
		return;
	}
	reply_json(rp, 200, json_pack("{s:s, s:b}", "name", call->arg, "deleted", true));
}
