/*
 * constrain.c - what a request's answer must match: OpenAI's response_format
 * (json_object, json_schema), llama.cpp's "grammar" (GBNF, from the first
 * token), and for chat a forced tool call (tool_choice "required" or a named
 * function), as one GBNF text compiled for each choice when it starts. A
 * chat answer's frame lets the model's reasoning block come first, free.
 * Errors are 400s naming the field (an unsupported schema keyword by name).
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

/* An error of the library's grammar functions as a reply naming param. */
static bool refuse(int rc, const char *param, const struct hearth_err *err, struct reply *rp)
{
	if (rc == HEARTH_ENOMEM)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	else
		reply_error(rp, 400, "invalid_request_error", param, "invalid_value", "%s", err->msg);
	return false;
}

/* p->gbnf = the rules of a JSON schema (text) under the rule "hearth-answer". */
static bool schema_rules(const char *schema, size_t len, const char *param, struct params *p, struct reply *rp)
{
	struct hearth_err err = { 0 };
	int rc = hearth_json_schema_to_gbnf(schema, len, "hearth-answer", &p->gbnf, &err);
	if (rc)
		return refuse(rc, param, &err, rp);
	p->gbnf_rule = "hearth-answer";
	p->gbnf_frame = true;
	p->gbnf_param = param;
	return true;
}

/* response_format: {"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema", "strict"}}. */
static bool response_format(json_t *rf, struct params *p, struct reply *rp)
{
	const char *type = json_string_value(json_object_get(rf, "type"));
	if (!json_is_object(rf) || !type) {
		reply_error(rp, 400, "invalid_request_error", "response_format", "invalid_type",
			    "'response_format' must be an object with a 'type'");
		return false;
	}
	if (!strcmp(type, "text"))
		return true;
	if (!strcmp(type, "json_object"))
		return schema_rules("{\"type\":\"object\"}", 17, "response_format", p, rp);
	json_t *js = json_object_get(rf, "json_schema"), *schema = json_object_get(js, "schema");
	if (strcmp(type, "json_schema") || !json_is_object(js) || (schema && !json_is_object(schema) && !json_is_boolean(schema))) {
		reply_error(rp, 400, "invalid_request_error", "response_format", "invalid_value",
			    "'response_format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": "
			    "\"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}");
		return false;
	}
	if (json_is_false(schema)) {
		reply_error(rp, 400, "invalid_request_error", "response_format", "invalid_value",
			    "the schema false allows no answer at all");
		return false;
	}
	size_t len = 0;
	char *text = schema && !json_is_true(schema) ? reply_text(schema, &len) : strdup("{}");
	if (!text) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	bool ok = schema_rules(text, strlen(text), "response_format", p, rp);
	free(text);
	return ok;
}

bool constrain_parse(json_t *b, struct params *p, struct reply *rp)
{
	json_t *rf = json_object_get(b, "response_format"), *g = json_object_get(b, "grammar");
	const char *rft = json_string_value(json_object_get(rf, "type"));
	if (json_is_null(rf) || (rft && !strcmp(rft, "text")))
		rf = NULL; /* the default: no constraint */
	if (g && !json_is_null(g)) {
		if (!json_is_string(g) || rf) {
			reply_error(rp, 400, "invalid_request_error", "grammar", "invalid_value",
				    "'grammar' must be a GBNF string, and not given with 'response_format'");
			return false;
		}
		if (!(p->gbnf = strndup(json_string_value(g), json_string_length(g)))) {
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			return false;
		}
		p->gbnf_rule = "root";
		p->gbnf_param = "grammar";
		return true;
	}
	return !rf || response_format(rf, p, rp);
}

/* A forced call's rules into p (tool_choice "required" or a named function). */
static bool forced_call(struct served_model *sm, const struct chat_tools *tc, struct params *p, struct reply *rp)
{
	struct hearth_err err = { 0 };
	size_t len;
	if (p->gbnf) {
		reply_error(rp, 400, "invalid_request_error", "tool_choice", "invalid_value",
			    "a forced tool call ('tool_choice' \"required\" or a function) cannot have 'response_format' or "
			    "'grammar' too");
		return false;
	}
	char *tools = reply_text(tc->tools, &len);
	if (!tools) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	int rc = hearth_chat_calls_gbnf(sm->chat, tools, len, tc->choice == TOOL_CHOICE_NAMED ? tc->named : NULL,
					tc->parallel, "hearth-answer", &p->gbnf, &err);
	free(tools);
	if (rc)
		return refuse(rc, "tool_choice", &err, rp);
	p->gbnf_rule = "hearth-answer";
	p->gbnf_frame = true;
	p->gbnf_param = "tool_choice";
	return true;
}

bool constrain_chat(struct served_model *sm, const struct chat_tools *tc, const struct hearth_chat_prompt *pr,
		    struct params *p, struct reply *rp)
{
	struct hearth_err err = { 0 };
	if ((tc->choice == TOOL_CHOICE_REQUIRED || tc->choice == TOOL_CHOICE_NAMED) && tc->tools &&
	    !forced_call(sm, tc, p, rp))
		return false;
	if (!p->gbnf || !p->gbnf_frame)
		return true;
	char *whole = NULL;
	int rc = hearth_chat_answer_gbnf(sm->chat, pr, p->gbnf, p->gbnf_rule, &whole, &err);
	if (rc)
		return refuse(rc, p->gbnf_param, &err, rp);
	free(p->gbnf);
	p->gbnf = whole;
	p->gbnf_rule = "hearth-root";
	return true;
}

bool constrain_grammar(struct served_model *sm, const struct params *p, struct hearth_grammar **g, struct reply *rp)
{
	struct hearth_err err = { 0 };
	*g = NULL;
	if (!p->gbnf)
		return true;
	int rc = hearth_grammar_new(sm->model, p->gbnf, strlen(p->gbnf), p->gbnf_rule, g, &err);
	return rc ? refuse(rc, p->gbnf_param, &err, rp) : true;
}
