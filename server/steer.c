/*
 * steer.c - activation steering for `hearth serve`: the --control-vector
 * files (llama.cpp's control-vector GGUF), loaded with each model, and a
 * request's "steering" field choosing among them (docs/API.md).
 *
 *   --control-vector FILE[:SCALE]   (repeatable) each file times its scale;
 *                                   by default every request is steered by
 *                                   their sum at strength 1, as llama.cpp does
 *   "steering": {"vector": NAME or index, "strength": S, "layers": [from, to]}
 *       vector:   one loaded file (its name without .gguf, or its place in
 *                 the flags from 0) [all of them, summed]
 *       strength: times the vector; 0 is the unsteered model bit for bit [1]
 *       layers:   blocks whose output is steered, llama.cpp's numbering:
 *                 1 .. n_layer - 1 [all]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

#define MAX_STRENGTH 1000.0 /* |strength| above this only breaks the model */

bool steer_flag(struct server *srv, const char *arg, char *why, size_t why_size)
{
	if (srv->n_cvecs == SRV_MAX_CVECS) {
		snprintf(why, why_size, "--control-vector: at most %d files", SRV_MAX_CVECS);
		return false;
	}
	struct srv_cvec *c = &srv->cvecs[srv->n_cvecs];
	const char *colon = strrchr(arg, ':');
	size_t n_path = strlen(arg);
	c->scale = 1.0f;
	if (colon) { /* FILE:SCALE when what follows the last colon is a number */
		char *end;
		const double v = strtod(colon + 1, &end);
		if (end != colon + 1 && !*end) {
			if (!isfinite(v) || fabs(v) > MAX_STRENGTH) {
				snprintf(why, why_size, "--control-vector: scale %.32s is not a number within +-%g",
					 colon + 1, MAX_STRENGTH);
				return false;
			}
			c->scale = (float)v;
			n_path = (size_t)(colon - arg);
		}
	}
	if (n_path >= sizeof c->path) {
		snprintf(why, why_size, "--control-vector: the path is longer than %zu bytes", sizeof c->path - 1);
		return false;
	}
	memcpy(c->path, arg, n_path);
	c->path[n_path] = '\0';
	if (!*c->path) {
		snprintf(why, why_size, "--control-vector: no file in '%.64s'", arg);
		return false;
	}
	const char *base = strrchr(c->path, '/');
	base = base ? base + 1 : c->path;
	size_t n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".gguf"))
		n -= 5;
	if (n >= sizeof c->name)
		n = sizeof c->name - 1;
	memcpy(c->name, base, n);
	c->name[n] = '\0';
	srv->n_cvecs++;
	return true;
}

void steer_free(struct served_model *sm)
{
	for (int i = 0; i < SRV_MAX_CVECS; i++) {
		hearth_cvec_free(sm->cvecs[i]);
		sm->cvecs[i] = NULL;
	}
	hearth_cvec_free(sm->cvec_all);
	sm->cvec_all = NULL;
}

int steer_load(struct served_model *sm, struct hearth_err *err)
{
	const struct server *srv = sm->srv;
	int rc = 0;
	if (srv->n_cvecs == 0)
		return 0;
	if ((rc = hearth_cvec_new(&sm->cvec_all, sm->model, err)))
		return rc;
	for (int i = 0; i < srv->n_cvecs && !rc; i++)
		if (!(rc = hearth_cvec_new(&sm->cvecs[i], sm->model, err)) &&
		    !(rc = hearth_cvec_add_file(sm->cvecs[i], srv->cvecs[i].path, srv->cvecs[i].scale, err)))
			rc = hearth_cvec_add_file(sm->cvec_all, srv->cvecs[i].path, srv->cvecs[i].scale, err);
	if (rc)
		steer_free(sm);
	return rc;
}

static bool bad(struct reply *rp, const char *param, const char *msg)
{
	reply_error(rp, 400, "invalid_request_error", param, "invalid_value", "%s", msg);
	return false;
}

/* "vector": a name or an index of the loaded files. */
static bool pick_vector(struct served_model *sm, json_t *v, const struct hearth_cvec **out, struct reply *rp)
{
	const struct server *srv = sm->srv;
	char msg[160];
	if (json_is_integer(v)) {
		const json_int_t i = json_integer_value(v);
		if (i >= 0 && i < srv->n_cvecs) {
			*out = sm->cvecs[i];
			return true;
		}
		snprintf(msg, sizeof msg, "'steering.vector' %lld is not one of the %d loaded control vectors",
			 (long long)i, srv->n_cvecs);
		return bad(rp, "steering.vector", msg);
	}
	if (!json_is_string(v))
		return bad(rp, "steering.vector", "'steering.vector' must be a name or an index of a loaded control vector");
	for (int i = 0; i < srv->n_cvecs; i++)
		if (!strcmp(json_string_value(v), srv->cvecs[i].name)) {
			*out = sm->cvecs[i];
			return true;
		}
	snprintf(msg, sizeof msg, "'steering.vector': no control vector named '%.64s' is loaded", json_string_value(v));
	return bad(rp, "steering.vector", msg);
}

/* "layers": [from, to] within 1 .. n_layer - 1. */
static bool pick_layers(struct served_model *sm, json_t *v, struct hearth_steering *out, struct reply *rp)
{
	const int32_t L = hearth_model_n_layer(sm->model);
	json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
	char msg[160];
	snprintf(msg, sizeof msg, "'steering.layers' must be [from, to] with 1 <= from <= to <= %d", L - 1);
	if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(a) || !json_is_integer(b))
		return bad(rp, "steering.layers", msg);
	const json_int_t from = json_integer_value(a), to = json_integer_value(b);
	if (from < 1 || from > to || to > L - 1)
		return bad(rp, "steering.layers", msg);
	out->layer_start = (int32_t)from;
	out->layer_end = (int32_t)to;
	return true;
}

bool steer_parse(struct served_model *sm, json_t *body, struct hearth_steering *out, struct reply *rp)
{
	json_t *st = json_object_get(body, "steering"), *v;
	*out = (struct hearth_steering){ .cvec = sm->cvec_all, .strength = 1.0f };
	if (!st || json_is_null(st))
		return true;
	if (!json_is_object(st))
		return bad(rp, "steering", "'steering' must be an object: {\"vector\", \"strength\", \"layers\"}");
	const char *k;
	json_object_foreach(st, k, v)
		if (strcmp(k, "vector") && strcmp(k, "strength") && strcmp(k, "layers"))
			return bad(rp, "steering", "'steering' takes only \"vector\", \"strength\" and \"layers\"");
	if ((v = json_object_get(st, "strength")) && !json_is_null(v)) {
		const double s = json_number_value(v);
		if (!json_is_number(v) || !(fabs(s) <= MAX_STRENGTH))
			return bad(rp, "steering.strength", "'steering.strength' must be a number from -1000 to 1000");
		out->strength = (float)s;
	}
	if (out->strength != 0.0f && !sm->cvec_all)
		return bad(rp, "steering", "no control vectors are loaded (hearth serve --control-vector FILE[:SCALE])");
	if ((v = json_object_get(st, "vector")) && !json_is_null(v) && sm->cvec_all && !pick_vector(sm, v, &out->cvec, rp))
		return false;
	if ((v = json_object_get(st, "layers")) && !json_is_null(v) && !pick_layers(sm, v, out, rp))
		return false;
	return true;
}
