/*
 * chat-vars.c - a chat request's messages, tools and template options into
 * the variables its chat template sees (hearth_chat_apply). What templates
 * get is what the OpenAI wire format means, in the shape Hugging Face's
 * templates read: content as one string (text parts joined; null as ""),
 * assistant tool calls with their arguments as objects when they are JSON
 * objects (the wire sends strings), "developer" as "system". Every error is
 * a 400 naming the field.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

#define MAX_MESSAGES 4096
#define MAX_TOOLS 128

/* Does a string value hold a NUL? (It would end the text a template sees.) */
static bool nul_in(json_t *s) { return strlen(json_string_value(s)) != json_string_length(s); }

/* messages[i].content as one string value (new reference), or NULL after a 400. */
static json_t *content_text(json_t *content, size_t i, struct reply *rp)
{
	if (!content || json_is_null(content))
		return json_string("");
	if (json_is_string(content))
		return json_incref(content);
	if (!json_is_array(content))
		goto bad;
	size_t len = 0, cap = 0, k;
	char *s = NULL;
	json_t *part;
	json_array_foreach(content, k, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *t = json_object_get(part, "text");
		if (!type || strcmp(type, "text") || !json_is_string(t)) {
			free(s);
			reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
				    "messages[%zu].content[%zu] must be a text part {\"type\":\"text\",\"text\":...}", i, k);
			return NULL;
		}
		if (buf_append(&s, &len, &cap, json_string_value(t), json_string_length(t))) {
			free(s);
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			return NULL;
		}
	}
	json_t *v = json_stringn(s ? s : "", len);
	free(s);
	return v;
bad:
	reply_error(rp, 400, "invalid_request_error", "messages", "invalid_type",
		    "messages[%zu].content must be a string, null or an array of text parts", i);
	return NULL;
}

/* One assistant tool call, checked, as the template sees it (new reference). */
static json_t *tool_call(json_t *tc, size_t i, size_t k, struct reply *rp)
{
	json_t *fn = json_object_get(tc, "function"), *id = json_object_get(tc, "id");
	json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
	if (!json_is_object(tc) || !json_is_object(fn) || !json_is_string(name) || nul_in(name) ||
	    (id && !json_is_string(id)) || (args && !json_is_string(args) && !json_is_object(args))) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
			    "messages[%zu].tool_calls[%zu] must be {\"id\", \"type\": \"function\", \"function\": {\"name\", "
			    "\"arguments\"}}",
			    i, k);
		return NULL;
	}
	json_t *a = NULL;
	if (json_is_string(args)) { /* the wire's JSON text: an object for the template when it is one */
		a = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
		if (!json_is_object(a)) {
			json_decref(a);
			a = json_incref(args);
		}
	} else {
		a = args ? json_incref(args) : json_object();
	}
	json_t *c = json_pack("{s:O?,s:s,s:{s:O,s:o}}", "id", id, "type", "function", "function", "name", name, "arguments", a);
	if (!c)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return c;
}

/* messages[i]'s tool_calls into m. */
static bool tool_calls(json_t *calls, json_t *m, size_t i, struct reply *rp)
{
	if (!calls || json_is_null(calls))
		return true;
	if (!json_is_array(calls)) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_type",
			    "messages[%zu].tool_calls must be an array", i);
		return false;
	}
	json_t *out = json_array(), *tc;
	size_t k;
	if (!out || json_object_set_new(m, "tool_calls", out))
		goto oom;
	json_array_foreach(calls, k, tc) {
		json_t *c = tool_call(tc, i, k, rp);
		if (!c)
			return false;
		if (json_array_append_new(out, c))
			goto oom;
	}
	return true;
oom:
	reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return false;
}

/* Copies the string field key of msg into m when present; false after a 400. */
static bool copy_str(json_t *msg, json_t *m, const char *key, size_t i, struct reply *rp)
{
	json_t *v = json_object_get(msg, key);
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v) || nul_in(v)) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_type", "messages[%zu].%s must be a string",
			    i, key);
		return false;
	}
	if (json_object_set(m, key, v)) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	return true;
}

/* messages[i] as the template sees it (new reference), or NULL after an error reply. */
static json_t *message(json_t *msg, size_t i, struct reply *rp)
{
	json_t *jrole = json_object_get(msg, "role");
	const char *role = json_string_value(jrole);
	if (!json_is_object(msg) || !role || nul_in(jrole)) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
			    "messages[%zu] must be an object with a string 'role'", i);
		return NULL;
	}
	if (!strcmp(role, "developer"))
		role = "system";
	if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool")) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
			    "messages[%zu].role '%.64s' is not one of system, developer, user, assistant, tool", i, role);
		return NULL;
	}
	json_t *content = content_text(json_object_get(msg, "content"), i, rp);
	if (!content)
		return NULL;
	json_t *m = json_pack("{s:s,s:o}", "role", role, "content", content);
	if (!m) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return NULL;
	}
	const bool ok = copy_str(msg, m, "name", i, rp) &&
			(strcmp(role, "assistant") ||
			 (copy_str(msg, m, "reasoning_content", i, rp) && tool_calls(json_object_get(msg, "tool_calls"), m, i, rp))) &&
			(strcmp(role, "tool") || copy_str(msg, m, "tool_call_id", i, rp));
	if (!ok) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* The request's messages (new reference), or NULL after an error reply. */
static json_t *messages(json_t *msgs, struct reply *rp)
{
	size_t n = json_array_size(msgs), i;
	json_t *msg, *out;
	if (!json_is_array(msgs) || n == 0) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value", "'messages' must be a non-empty array");
		return NULL;
	}
	if (n > MAX_MESSAGES) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value", "at most %d messages", MAX_MESSAGES);
		return NULL;
	}
	if (!(out = json_array())) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return NULL;
	}
	json_array_foreach(msgs, i, msg) {
		json_t *m = message(msg, i, rp);
		if (!m || json_array_append_new(out, m)) {
			if (m)
				reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* Is name a function name OpenAI accepts: 1-64 of [A-Za-z0-9_.-]? */
static bool good_name(json_t *name)
{
	const char *s = json_string_value(name);
	size_t n = json_string_length(name);
	if (!s || n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]) || !s[i])
			return false;
	return true;
}

/* The request's tools, checked: tc->tools holds them (a reference), NULL when none. */
static bool tools(json_t *b, struct chat_tools *tc, struct reply *rp)
{
	json_t *t = json_object_get(b, "tools"), *tool;
	size_t k;
	if (!t || json_is_null(t))
		return true;
	if (!json_is_array(t) || json_array_size(t) > MAX_TOOLS) {
		reply_error(rp, 400, "invalid_request_error", "tools", "invalid_type", "'tools' must be an array of at most %d tools",
			    MAX_TOOLS);
		return false;
	}
	json_array_foreach(t, k, tool) {
		json_t *fn = json_object_get(tool, "function"), *params = json_object_get(fn, "parameters");
		json_t *desc = json_object_get(fn, "description");
		if (json_is_null(params)) /* null: as if absent */
			params = NULL;
		if (json_is_null(desc))
			desc = NULL;
		const char *type = json_string_value(json_object_get(tool, "type"));
		if (!type || strcmp(type, "function") || !json_is_object(fn) || !good_name(json_object_get(fn, "name")) ||
		    (params && !json_is_object(params)) || (desc && !json_is_string(desc))) {
			reply_error(rp, 400, "invalid_request_error", "tools", "invalid_value",
				    "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\" (1-64 of a-z A-Z 0-9 _ . -), "
				    "\"description\", \"parameters\" (an object)}}",
				    k);
			return false;
		}
		for (size_t j = 0; j < k; j++)
			if (json_equal(json_object_get(json_object_get(json_array_get(t, j), "function"), "name"),
				       json_object_get(fn, "name"))) {
				reply_error(rp, 400, "invalid_request_error", "tools", "invalid_value",
					    "tools[%zu] and tools[%zu] have the same name", j, k);
				return false;
			}
	}
	tc->tools = t;
	return true;
}

/* tool_choice and parallel_tool_calls. */
static bool tool_choice(json_t *b, struct chat_tools *tc, struct reply *rp)
{
	json_t *c = json_object_get(b, "tool_choice"), *par = json_object_get(b, "parallel_tool_calls");
	tc->choice = TOOL_CHOICE_AUTO;
	tc->parallel = true;
	if (par && !json_is_null(par)) {
		if (!json_is_boolean(par)) {
			reply_error(rp, 400, "invalid_request_error", "parallel_tool_calls", "invalid_type",
				    "'parallel_tool_calls' must be a boolean");
			return false;
		}
		tc->parallel = json_is_true(par);
	}
	if (!c || json_is_null(c))
		return true;
	const char *s = json_string_value(c);
	if (s && !strcmp(s, "none"))
		tc->choice = TOOL_CHOICE_NONE;
	else if (s && !strcmp(s, "auto"))
		tc->choice = TOOL_CHOICE_AUTO;
	else if (s && !strcmp(s, "required"))
		tc->choice = TOOL_CHOICE_REQUIRED;
	else if (json_is_object(c) && json_is_string(json_object_get(json_object_get(c, "function"), "name"))) {
		tc->choice = TOOL_CHOICE_NAMED;
		tc->named = json_string_value(json_object_get(json_object_get(c, "function"), "name"));
	} else {
		reply_error(rp, 400, "invalid_request_error", "tool_choice", "invalid_value",
			    "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": "
			    "{\"name\": ...}}");
		return false;
	}
	if (tc->choice == TOOL_CHOICE_AUTO || tc->choice == TOOL_CHOICE_NONE)
		return true;
	size_t k;
	json_t *tool;
	bool found = tc->choice == TOOL_CHOICE_REQUIRED && json_array_size(tc->tools) > 0;
	json_array_foreach(tc->tools, k, tool) {
		const char *name = json_string_value(json_object_get(json_object_get(tool, "function"), "name"));
		found = found || (tc->named && name && !strcmp(name, tc->named));
	}
	if (!found) {
		reply_error(rp, 400, "invalid_request_error", "tool_choice", "invalid_value",
			    tc->named ? "'tool_choice' names the function '%.64s', which is not among 'tools'"
				      : "'tool_choice' \"required\" needs 'tools'%.0s",
			    tc->named ? tc->named : "");
		return false;
	}
	return true;
}

/* chat_template_kwargs (and OpenAI's reasoning_effort) into vars. */
static bool template_kwargs(json_t *b, json_t *vars, struct reply *rp)
{
	json_t *kw = json_object_get(b, "chat_template_kwargs"), *effort = json_object_get(b, "reasoning_effort");
	if (effort && !json_is_null(effort)) {
		if (!json_is_string(effort) || nul_in(effort)) {
			reply_error(rp, 400, "invalid_request_error", "reasoning_effort", "invalid_type",
				    "'reasoning_effort' must be a string");
			return false;
		}
		if (json_object_set(vars, "reasoning_effort", effort))
			goto oom;
	}
	if (!kw || json_is_null(kw))
		return true;
	const char *k;
	json_t *v;
	bool special = false;
	json_object_foreach(kw, k, v) { /* the model's special tokens are the template's markup: not the client's */
		const size_t n = strlen(k);
		special = special || (n > 6 && !strcmp(k + n - 6, "_token")) || !strcmp(k, "additional_special_tokens");
	}
	if (!json_is_object(kw) || json_object_get(kw, "messages") || json_object_get(kw, "tools") || special) {
		reply_error(rp, 400, "invalid_request_error", "chat_template_kwargs", "invalid_value",
			    "'chat_template_kwargs' must be an object of template variables (not messages, tools or the "
			    "model's special tokens)");
		return false;
	}
	if (json_object_update(vars, kw))
		goto oom;
	return true;
oom:
	reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return false;
}

bool chat_vars_build(json_t *b, json_t **vars, struct chat_tools *tc, struct reply *rp)
{
	memset(tc, 0, sizeof *tc);
	*vars = NULL;
	json_t *msgs = messages(json_object_get(b, "messages"), rp);
	if (!msgs || !tools(b, tc, rp) || !tool_choice(b, tc, rp)) {
		json_decref(msgs);
		return false;
	}
	if (tc->choice == TOOL_CHOICE_NONE)
		tc->tools = NULL; /* the model is not to call any: it is not shown them */
	json_t *v = json_pack("{s:o,s:O?,s:b}", "messages", msgs, "tools", tc->tools, "add_generation_prompt", 1);
	if (!v) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	if (!template_kwargs(b, v, rp)) {
		json_decref(v);
		return false;
	}
	*vars = v;
	return true;
}
