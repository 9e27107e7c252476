/* toolcall-json.c - the families whose calls are JSON objects between
 * markers:
 *
 *   hermes       <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>
 *   granite      <|tool_call|>[{"name": N, "arguments": {...}}, ...]
 *   command-r7b  <|START_ACTION|>[{"tool_call_id": "0", "tool_name": N, "parameters": {...}}, ...]<|END_ACTION|>
 */
#include <string.h>

#include "toolcall-impl.h"

/* The string value of key when the object's text starts with it: {"key": "value". */
static int peek_first_string(const char *s, size_t n, const char *key, size_t *off, size_t *len)
{
	size_t i = tc_skip_space(s, n), k = strlen(key);
	const char *steps[] = { "{", "\"", key, "\"", ":", "\"" };
	for (int st = 0; st < 6; st++) {
		const char *want = steps[st];
		size_t m = st == 2 ? k : 1;
		if (st != 2 && st != 3)
			i += tc_skip_space(s + i, n - i);
		if (i + m > n)
			return memcmp(s + i, want, n - i) ? -1 : 0;
		if (memcmp(s + i, want, m))
			return -1;
		i += m;
	}
	for (size_t j = i; j < n; j++) {
		if (s[j] == '\\')
			return -1; /* an escaped name: left to the full parse */
		if (s[j] == '"') {
			*off = i;
			*len = j - i;
			return 1;
		}
	}
	return 0;
}

int tc_hermes_name(const char *s, size_t n, size_t *off, size_t *len)
{
	return peek_first_string(s, n, "name", off, len);
}

int tc_hermes_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	return tc_end_at(p, s, n, eof, "</tool_call>", body_len, close_len);
}

int tc_hermes_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	json_t *o = tc_json_parse(s, n);
	int rc = o ? tc_read_call_object(o, "name", "arguments", "parameters", out, err) : 1;
	json_decref(o);
	return rc;
}

/* A JSON array of call objects. */
static int parse_list(const char *s, size_t n, const char *name_key, const char *args_key, struct tc_plist *out,
		      struct hearth_err *err)
{
	json_t *a = tc_json_parse(s, n), *o;
	size_t i;
	int rc = json_is_array(a) && json_array_size(a) ? 0 : 1;
	json_array_foreach(a, i, o) {
		if (rc)
			break;
		rc = tc_read_call_object(o, name_key, args_key, NULL, out, err);
	}
	json_decref(a);
	return rc;
}

int tc_granite_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	return tc_end_json(p, s, n, eof, body_len, close_len);
}

int tc_granite_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	return parse_list(s, n, "name", "arguments", out, err);
}

int tc_cmdr_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	return tc_end_at(p, s, n, eof, "<|END_ACTION|>", body_len, close_len);
}

int tc_cmdr_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	return parse_list(s, n, "tool_name", "parameters", out, err);
}
