/*
 * chat-grammar.c - grammars for a chat's answers: a call of the request's
 * tools in the model family's own syntax (tool_choice "required" or a named
 * function), and the frame around any constrained answer: the reasoning
 * block the family writes first, left free, then the constrained part.
 *
 *   hearth-root ::= hearth-think? <rule>                     (family with <think>)
 *   hearth-root ::= hearth-think-body "</think>" hearth-ws <rule>  (prompt ended inside one)
 *
 * Reasoning text may hold anything but "</": a grammar over text with one
 * excluded word is possible but long, and "</" is where the block's end
 * starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "chat-impl.h"
#include "jinja.h"

#define THINK_RULES                                                                                       \
	"hearth-think ::= \"<think>\" hearth-think-body \"</think>\" hearth-ws\n"                            \
	"hearth-think-body ::= ( [^<] | \"<\" [^/] )*\n"                                                   \
	"hearth-ws ::= [ \\t\\n]{0,8}\n"

bool chat_prompt_in_reasoning(const struct hearth_chat_prompt *p)
{
	if (!p || !p->text)
		return false;
	const size_t tail = p->len < 64 ? p->len : 64;
	const char *open = NULL;
	for (const char *s = p->text + p->len - tail; (s = strstr(s, "<think>")) != NULL; s++)
		open = s;
	return open && !strstr(open, "</think>");
}

int hearth_chat_answer_gbnf(const struct hearth_chat *c, const struct hearth_chat_prompt *prompt, const char *rules,
			    const char *rule, char **out, struct hearth_err *err)
{
	const bool thinks = c->src && strstr(c->src, "<think>") != NULL;
	const bool inside = thinks && chat_prompt_in_reasoning(prompt);
	const char *head = inside ? "hearth-root ::= hearth-think-body \"</think>\" hearth-ws "
			   : thinks ? "hearth-root ::= hearth-think? "
				    : "hearth-root ::= ";
	const size_t n = strlen(head) + strlen(rule) + 1 + sizeof THINK_RULES + strlen(rules) + 1;
	*out = malloc(n);
	if (!*out)
		return err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	snprintf(*out, n, "%s%s\n%s%s", head, rule, thinks ? THINK_RULES : "", rules);
	return 0;
}

/* The JSON schema of one call object of tool t: {"name": <its name>, key: <its parameters>}. */
static json_t *call_schema(json_t *t, const char *key)
{
	json_t *fn = json_object_get(t, "function");
	json_t *params = json_object_get(fn, "parameters");
	json_t *p = json_is_object(params) ? json_incref(params) : json_pack("{s:s}", "type", "object");
	return json_pack("{s:s, s:{s:{s:O}, s:o}, s:[s, s], s:b}", "type", "object", "properties", "name", "const",
			 json_object_get(fn, "name"), key, p, "required", "name", key, "additionalProperties", 0);
}

/* The schema of a call of any of the tools (or the one named). */
static int calls_schema(const json_t *tools, const char *name, const char *key, json_t **out, struct hearth_err *err)
{
	json_t *any = json_array(), *t;
	size_t i;
	*out = NULL;
	if (!any)
		return err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	json_array_foreach((json_t *)tools, i, t) {
		const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		if (!n || (name && strcmp(n, name)))
			continue;
		if (json_array_append_new(any, call_schema(t, key))) {
			json_decref(any);
			return err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
		}
	}
	if (json_array_size(any) == 0) {
		json_decref(any);
		return err_set(err, HEARTH_EINVAL, "chat grammar: no tool %s%s%s among the tools", name ? "named '" : "",
			       name ? name : "", name ? "'" : "");
	}
	*out = json_array_size(any) == 1 ? json_incref(json_array_get(any, 0)) : json_pack("{s:o}", "anyOf", any);
	if (json_array_size(any) == 1)
		json_decref(any);
	return *out ? 0 : err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
}

/* How a family writes calls: before the first, between two, after the last,
 * the arguments' key, and whether several may come. */
struct call_syntax {
	const char *open, *sep, *close, *key;
	bool several;
};

static int call_syntax(enum tc_format f, struct call_syntax *cs, struct hearth_err *err)
{
	switch (f) {
	case TC_HERMES:
		*cs = (struct call_syntax){ "\"<tool_call>\\n\"", "\"\\n</tool_call>\\n<tool_call>\\n\"", "\"\\n</tool_call>\"",
					    "arguments", true };
		return 0;
	case TC_LLAMA3:
		*cs = (struct call_syntax){ "\"\"", NULL, "\"\"", "parameters", false };
		return 0;
	case TC_MISTRAL:
		*cs = (struct call_syntax){ "\"[TOOL_CALLS][\"", "\", \"", "\"]\"", "arguments", true };
		return 0;
	default:
		return err_set(err, HEARTH_EUNSUPPORTED, "tool_choice: hearth cannot force a call in the %s format yet",
			       tc_format_name(f));
	}
}

int hearth_chat_calls_gbnf(const struct hearth_chat *c, const char *tools_json, size_t len, const char *name,
			   bool parallel, const char *prefix, char **out, struct hearth_err *err)
{
	struct call_syntax cs = { 0 };
	json_error_t je;
	bool oom;
	json_t *schema = NULL;
	char *obj = NULL, obj_rule[96];
	*out = NULL;
	int rc = call_syntax(c->format, &cs, err);
	if (rc)
		return rc;
	json_t *tools = chat_json_load(tools_json, len, JSON_ALLOW_NUL, &je, &oom);
	if (!json_is_array(tools)) {
		json_decref(tools);
		return err_set(err, oom ? HEARTH_ENOMEM : HEARTH_EINVAL, "chat grammar: the tools are not a JSON array");
	}
	rc = calls_schema(tools, name, cs.key, &schema, err);
	json_decref(tools);
	char *text = rc ? NULL : json_dumps(schema, JSON_COMPACT);
	json_decref(schema);
	if (!rc && !text)
		rc = err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	snprintf(obj_rule, sizeof obj_rule, "%s-call", prefix);
	if (!rc)
		rc = hearth_json_schema_to_gbnf(text, strlen(text), obj_rule, &obj, err);
	free(text);
	if (rc)
		return rc;
	const bool several = parallel && cs.several && cs.sep;
	const size_t n = strlen(prefix) * 2 + strlen(cs.open) + strlen(cs.close) + (cs.sep ? strlen(cs.sep) : 0) +
			 strlen(obj_rule) * 2 + strlen(obj) + 64;
	if (!(*out = malloc(n))) {
		free(obj);
		return err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	}
	if (several)
		snprintf(*out, n, "%s ::= %s %s ( %s %s )* %s\n%s", prefix, cs.open, obj_rule, cs.sep, obj_rule, cs.close, obj);
	else
		snprintf(*out, n, "%s ::= %s %s %s\n%s", prefix, cs.open, obj_rule, cs.close, obj);
	free(obj);
	return 0;
}
