/* toolcall-args.c - tool-call arguments as JSON: parsing what the model
 * wrote, typing key/value formats' values by the tool's parameter schema,
 * checking names against the request's tools. */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "toolcall-impl.h"

json_t *tc_json_parse(const char *s, size_t n)
{
	json_error_t je;
	size_t a = tc_skip_space(s, n);
	while (n > a && tc_is_space(s[n - 1]))
		n--;
	if (a == n)
		return NULL;
	return json_loadb(s + a, n - a, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
}

json_t *tc_args_object(json_t *v)
{
	if (!v || json_is_null(v))
		return json_object();
	if (json_is_object(v))
		return json_incref(v);
	if (json_is_string(v)) {
		json_t *o = tc_json_parse(json_string_value(v), json_string_length(v));
		if (o && json_is_object(o))
			return o;
		json_decref(o);
	}
	return NULL;
}

/* The "function" object of the request's tool named name, or NULL. */
static json_t *tool_function(const struct tc_parser *p, const char *name, size_t len)
{
	size_t i;
	json_t *t;
	json_array_foreach(p->tools, i, t) {
		json_t *f = json_object_get(t, "function");
		json_t *nm = json_object_get(f ? f : t, "name");
		if (json_is_string(nm) && json_string_length(nm) == len && !memcmp(json_string_value(nm), name, len))
			return f ? f : t;
	}
	return NULL;
}

bool tc_tool_known(const struct tc_parser *p, const char *name, size_t len)
{
	if (len == 0 || len > TC_MAX_NAME || memchr(name, '\0', len))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == '<' || name[i] == '>' || name[i] == '"')
			return false;
	if (!p->tools || json_array_size(p->tools) == 0)
		return true;
	return tool_function(p, name, len) != NULL;
}

const char *tc_param_type(const struct tc_parser *p, const char *tool, const char *key)
{
	if (!p->tools)
		return NULL;
	json_t *f = tool_function(p, tool, strlen(tool));
	json_t *props = json_object_get(json_object_get(f, "parameters"), "properties");
	json_t *type = json_object_get(json_object_get(props, key), "type");
	if (json_is_array(type)) /* ["string", "null"]: the first that is not null */
		for (size_t i = 0; i < json_array_size(type); i++)
			if (json_is_string(json_array_get(type, i)) &&
			    strcmp(json_string_value(json_array_get(type, i)), "null")) {
				type = json_array_get(type, i);
				break;
			}
	return json_is_string(type) ? json_string_value(type) : NULL;
}

json_t *tc_param_value(const struct tc_parser *p, const char *tool, const char *key, const char *s, size_t n)
{
	const char *type = tc_param_type(p, tool, key);
	if (!type || strcmp(type, "string")) {
		json_t *v = tc_json_parse(s, n);
		if (v)
			return v;
		/* Python's spelling, as Qwen3-Coder's template renders booleans and None */
		if (n == 4 && !memcmp(s, "True", 4))
			return json_true();
		if (n == 5 && !memcmp(s, "False", 5))
			return json_false();
		if (n == 4 && !memcmp(s, "None", 4))
			return json_null();
	}
	return json_stringn(s, n);
}

void tc_plist_reset(struct tc_plist *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->v[i].name);
		json_decref(l->v[i].args);
	}
	l->n = 0;
}

int tc_plist_add(struct tc_plist *l, const char *name, size_t name_len, json_t *args, const char *id,
		 struct hearth_err *err)
{
	if (l->n >= TC_MAX_CALLS) {
		json_decref(args);
		return 1;
	}
	char *nm = malloc(name_len + 1);
	if (!nm) {
		json_decref(args);
		return err_set(err, HEARTH_ENOMEM, "tool call: no memory for a name of %zu bytes", name_len);
	}
	memcpy(nm, name, name_len);
	nm[name_len] = '\0';
	struct tc_pcall *c = &l->v[l->n++];
	c->name = nm;
	c->args = args;
	snprintf(c->id, sizeof c->id, "%s", id ? id : "");
	return 0;
}

int tc_read_call_object(json_t *o, const char *name_key, const char *args_key, const char *args_key2,
			struct tc_plist *out, struct hearth_err *err)
{
	json_t *name = json_object_get(o, name_key);
	if (!json_is_object(o) || !json_is_string(name))
		return 1;
	json_t *a = json_object_get(o, args_key);
	if (!a && args_key2)
		a = json_object_get(o, args_key2);
	json_t *args = tc_args_object(a);
	if (!args)
		return 1;
	json_t *id = json_object_get(o, "id");
	return tc_plist_add(out, json_string_value(name), json_string_length(name), args,
			    json_is_string(id) ? json_string_value(id) : NULL, err);
}
