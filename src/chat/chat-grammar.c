/*
 * chat-grammar.c - grammars for a chat's answers: a call of the request's
 * tools in the model family's own syntax (tool_choice "required" or a named
 * function), and the frame around any constrained answer: the reasoning
 * block the family writes first, left free, then the constrained part.
 *
 *   hearth-root ::= hearth-think? <rule>                     (family with <think>)
 *   hearth-root ::= hearth-think-body "</think>" hearth-ws <rule>  (prompt ended inside one)
 *   hearth-root ::= <rule>                                   (no <think>, or the prompt closed it)
 *
 * Only the template's own markup in the generation prompt counts: a user
 * who writes <think> at the end of a message changes nothing.
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

/* Is [at, at + n) of the prompt's text wholly outside its content? */
static bool markup_at(const struct hearth_chat_prompt *p, size_t at, size_t n)
{
	for (size_t i = 0; i < p->n_content; i++)
		if (p->content[i].off < at + n && at < p->content[i].off + p->content[i].len)
			return false;
	return true;
}

/* The last place of the template's own (not content's) word in the prompt's
 * last 64 bytes (the generation prompt), or -1. */
static long last_markup(const struct hearth_chat_prompt *p, const char *word)
{
	const size_t tail = p->len < 64 ? p->len : 64, n = strlen(word);
	long at = -1;
	for (size_t i = p->len - tail; i + n <= p->len; i++)
		if (!memcmp(p->text + i, word, n) && markup_at(p, i, n))
			at = (long)i;
	return at;
}

enum think_state chat_prompt_think(const struct hearth_chat_prompt *p)
{
	if (!p || !p->text)
		return THINK_UNKNOWN;
	const long open = last_markup(p, "<think>"), close = last_markup(p, "</think>");
	return open > close ? THINK_OPEN : close >= 0 ? THINK_CLOSED : THINK_UNKNOWN;
}

int hearth_chat_answer_gbnf(const struct hearth_chat *c, const struct hearth_chat_prompt *prompt, const char *rules,
			    const char *rule, char **out, struct hearth_err *err)
{
	const enum think_state st = chat_prompt_think(prompt);
	const bool thinks = c->src && strstr(c->src, "<think>") != NULL && st != THINK_CLOSED;
	const bool inside = thinks && st == THINK_OPEN;
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

/* How a family writes calls, as GBNF fragments: before the first, between
 * two, after the last; then either the arguments' key of a {"name", key}
 * object (JSON families), or what comes before the name, between the name
 * and the arguments, and after them (split families). */
struct call_syntax {
	const char *open, *sep, *close;
	const char *key;
	const char *pre, *mid, *post;
	bool several;
};

#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

static const struct {
	enum tc_format format;
	struct call_syntax cs;
} syntaxes[] = {
	{ TC_HERMES, { "\"<tool_call>\\n\"", "\"\\n</tool_call>\\n<tool_call>\\n\"", "\"\\n</tool_call>\"", "arguments", NULL,
		       NULL, NULL, true } },
	{ TC_LLAMA3, { "\"\"", "\"\"", "\"\"", "parameters", NULL, NULL, NULL, false } },
	{ TC_MISTRAL, { "\"[TOOL_CALLS][\"", "\", \"", "\"]\"", "arguments", NULL, NULL, NULL, true } },
	{ TC_GRANITE, { "\"<|tool_call|>[\"", "\", \"", "\"]\"", "arguments", NULL, NULL, NULL, true } },
	{ TC_DEEPSEEK_R1, { "\"" DS_CALLS_BEGIN "\"", "\"\\n\"", "\"" DS_CALLS_END "\"", NULL,
			    "\"" DS_CALL_BEGIN "function" DS_SEP "\"", "\"\\n```json\\n\"", "\"\\n```" DS_CALL_END "\"", true } },
	{ TC_DEEPSEEK_V31, { "\"" DS_CALLS_BEGIN "\"", "\"\"", "\"" DS_CALLS_END "\"", NULL, "\"" DS_CALL_BEGIN "\"",
			     "\"" DS_SEP "\"", "\"" DS_CALL_END "\"", true } },
	{ TC_KIMI_K2, { "\"<|tool_calls_section_begin|>\"", "\"\"", "\"<|tool_calls_section_end|>\"", NULL,
			"\"<|tool_call_begin|>functions.\"", "\":\" [0-9] \"<|tool_call_argument_begin|>\"",
			"\"<|tool_call_end|>\"", true } },
	{ TC_HARMONY, { "\"\"", "\"\"", "\"\"", NULL, "\"<|channel|>commentary to=functions.\"",
			"\" <|constrain|>json<|message|>\"", "\"<|call|>\"", false } },
};

static int call_syntax(enum tc_format f, struct call_syntax *cs, struct hearth_err *err)
{
	for (size_t i = 0; i < sizeof syntaxes / sizeof syntaxes[0]; i++)
		if (syntaxes[i].format == f) {
			*cs = syntaxes[i].cs;
			return 0;
		}
	return err_set(err, HEARTH_EUNSUPPORTED, "tool_choice: hearth cannot force a call in the %s format yet",
		       tc_format_name(f));
}

/* Appends text to *buf (len, cap); false when out of memory. */
static bool put(char **buf, size_t *len, size_t *cap, const char *text)
{
	const size_t n = strlen(text);
	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *b = realloc(*buf, c);
		if (!b)
			return false;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, text, n + 1);
	*len += n;
	return true;
}

/* name as a GBNF literal ("..." with " and \ escaped); false when out of memory. */
static bool put_literal(char **buf, size_t *len, size_t *cap, const char *name)
{
	bool ok = put(buf, len, cap, "\"");
	for (const char *c = name; ok && *c; c++) {
		char one[3] = { *c, 0, 0 };
		if (*c == '"' || *c == '\\')
			one[0] = '\\', one[1] = *c;
		ok = put(buf, len, cap, one);
	}
	return ok && put(buf, len, cap, "\"");
}

/* The rules of one call (prefix-call) for a split family: an alternative per
 * tool, its name literal, then its arguments under its parameter schema. */
static int split_rules(const struct call_syntax *cs, const json_t *tools, const char *name, const char *prefix,
		       char **buf, size_t *len, size_t *cap, struct hearth_err *err)
{
	char rule[96], *text = NULL, *args = NULL;
	size_t i, n_alt = 0;
	json_t *t;
	bool ok = put(buf, len, cap, prefix) && put(buf, len, cap, "-call ::= ");
	json_array_foreach((json_t *)tools, i, t) {
		const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		if (!ok || !n || (name && strcmp(n, name)))
			continue;
		snprintf(rule, sizeof rule, "%s-args%zu", prefix, i);
		ok = (!n_alt++ || put(buf, len, cap, " | ")) && put(buf, len, cap, cs->pre) && put(buf, len, cap, " ") &&
		     put_literal(buf, len, cap, n) && put(buf, len, cap, " ") && put(buf, len, cap, cs->mid) &&
		     put(buf, len, cap, " ") && put(buf, len, cap, rule) && put(buf, len, cap, " ") && put(buf, len, cap, cs->post);
	}
	if (!ok)
		return err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	if (n_alt == 0)
		return err_set(err, HEARTH_EINVAL, "chat grammar: no tool %s%s%s among the tools", name ? "named '" : "",
			       name ? name : "", name ? "'" : "");
	ok = put(buf, len, cap, "\n");
	json_array_foreach((json_t *)tools, i, t) {
		json_t *fn = json_object_get(t, "function"), *params = json_object_get(fn, "parameters");
		const char *n = json_string_value(json_object_get(fn, "name"));
		if (!ok || !n || (name && strcmp(n, name)))
			continue;
		snprintf(rule, sizeof rule, "%s-args%zu", prefix, i);
		text = json_is_object(params) ? json_dumps(params, JSON_COMPACT) : strdup("{\"type\":\"object\"}");
		int rc = text ? hearth_json_schema_to_gbnf(text, strlen(text), rule, &args, err)
			      : err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
		free(text);
		if (rc)
			return rc;
		ok = put(buf, len, cap, args);
		free(args);
	}
	return ok ? 0 : err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
}

/* The rules of one call (prefix-call) for a JSON family: {"name": N, key: arguments}. */
static int object_rules(const struct call_syntax *cs, const json_t *tools, const char *name, const char *prefix,
			char **buf, size_t *len, size_t *cap, struct hearth_err *err)
{
	json_t *schema = NULL;
	char rule[96], *obj = NULL;
	int rc = calls_schema(tools, name, cs->key, &schema, err);
	char *text = rc ? NULL : json_dumps(schema, JSON_COMPACT);
	json_decref(schema);
	if (!rc && !text)
		rc = err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	snprintf(rule, sizeof rule, "%s-call", prefix);
	if (!rc)
		rc = hearth_json_schema_to_gbnf(text, strlen(text), rule, &obj, err);
	free(text);
	if (!rc && !put(buf, len, cap, obj))
		rc = err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	free(obj);
	return rc;
}

int hearth_chat_calls_gbnf(const struct hearth_chat *c, const char *tools_json, size_t len, const char *name,
			   bool parallel, const char *prefix, char **out, struct hearth_err *err)
{
	struct call_syntax cs = { 0 };
	json_error_t je;
	bool oom;
	char *buf = NULL, head[512];
	size_t n = 0, cap = 0;
	*out = NULL;
	int rc = call_syntax(c->format, &cs, err);
	if (rc)
		return rc;
	json_t *tools = chat_json_load(tools_json, len, JSON_ALLOW_NUL, &je, &oom);
	if (!json_is_array(tools)) {
		json_decref(tools);
		return err_set(err, oom ? HEARTH_ENOMEM : HEARTH_EINVAL, "chat grammar: the tools are not a JSON array");
	}
	if (parallel && cs.several)
		snprintf(head, sizeof head, "%s ::= %s %s-call ( %s %s-call )* %s\n", prefix, cs.open, prefix, cs.sep, prefix,
			 cs.close);
	else
		snprintf(head, sizeof head, "%s ::= %s %s-call %s\n", prefix, cs.open, prefix, cs.close);
	if (!put(&buf, &n, &cap, head))
		rc = err_set(err, HEARTH_ENOMEM, "chat grammar: out of memory");
	else if (cs.key)
		rc = object_rules(&cs, tools, name, prefix, &buf, &n, &cap, err);
	else
		rc = split_rules(&cs, tools, name, prefix, &buf, &n, &cap, err);
	json_decref(tools);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}
