/* toolcall-llama3.c - Llama 3.1-3.3's calls:
 *
 *   {"name": N, "parameters": {...}}            the whole answer, a custom tool ("arguments" also read)
 *   <|python_tag|>brave_search.call(query="x")  a built-in tool, Python call syntax
 *   <|python_tag|>print(1 + 1)                  code for the code interpreter: "python" {"code": ...}
 *                                               ("code_interpreter" when the tools name that)
 *   <|python_tag|>{"name": N, "parameters": {...}}  (Llama 3.2's custom tools after the tag)
 *
 * A python-tag block ends at <|eom_id|> or the end of the output.
 */
#include <string.h>

#include "../base/err.h"
#include "toolcall-impl.h"

int tc_llama3_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	if (p->blk_open == 0) /* the answer started with '{' */
		return tc_end_json(p, s, n, eof, body_len, close_len);
	return tc_end_at(p, s, n, eof, "<|eom_id|>", body_len, close_len);
}

static bool ident_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* A Python string literal at s[*i] ('...' or "...", backslash escapes) as a JSON string. */
static json_t *py_string(const char *s, size_t n, size_t *i)
{
	char q = s[*i], tmp[4096];
	size_t k = 0;
	for (size_t j = *i + 1; j < n; j++) {
		char c = s[j];
		if (c == q) {
			*i = j + 1;
			return json_stringn(tmp, k);
		}
		if (c == '\\' && j + 1 < n) {
			c = s[++j];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
		}
		if (k == sizeof tmp)
			return NULL;
		tmp[k++] = c;
	}
	return NULL;
}

/* The arguments of name.call(k=v, ...): an object, or NULL when not that syntax. */
static json_t *py_kwargs(const char *s, size_t n)
{
	json_t *o = json_object();
	size_t i = 0;
	while (o && (i += tc_skip_space(s + i, n - i)) < n) {
		size_t k0 = i;
		while (i < n && ident_char(s[i], i == k0))
			i++;
		size_t kn = i - k0;
		i += tc_skip_space(s + i, n - i);
		if (kn == 0 || kn > 64 || i >= n || s[i] != '=')
			goto bad;
		i += 1 + tc_skip_space(s + i + 1, n - i - 1);
		json_t *v = NULL;
		if (i < n && (s[i] == '"' || s[i] == '\'')) {
			v = py_string(s, n, &i);
		} else {
			size_t v0 = i;
			while (i < n && s[i] != ',')
				i++;
			size_t vn = i;
			while (vn > v0 && tc_is_space(s[vn - 1]))
				vn--;
			v = vn - v0 == 4 && !memcmp(s + v0, "True", 4)    ? json_true()
			    : vn - v0 == 5 && !memcmp(s + v0, "False", 5) ? json_false()
			    : vn - v0 == 4 && !memcmp(s + v0, "None", 4)  ? json_null()
									  : tc_json_parse(s + v0, vn - v0);
		}
		char key[65];
		memcpy(key, s + k0, kn);
		key[kn] = '\0';
		if (!v || json_object_set_new(o, key, v))
			goto bad;
		i += tc_skip_space(s + i, n - i);
		if (i < n && s[i] != ',')
			goto bad;
		i++;
	}
	return o;
bad:
	json_decref(o);
	return NULL;
}

/* name.call(...) with a known name, or 1 when the text is not that. */
static int builtin_call(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	size_t i = 0;
	while (i < n && ident_char(s[i], i == 0))
		i++;
	if (i == 0 || n < i + 7 || memcmp(s + i, ".call(", 6) || s[n - 1] != ')')
		return 1;
	json_t *args = py_kwargs(s + i + 6, n - i - 7);
	if (!args)
		return 1;
	if (!tc_tool_known(p, s, i)) {
		json_decref(args);
		return 1;
	}
	return tc_plist_add(out, s, i, args, NULL, err);
}

/* Code for the interpreter, under the name the request's tools use. */
static int code_call(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	bool listed = p->tools && json_array_size(p->tools) && tc_tool_known(p, "code_interpreter", 16);
	const char *name = listed ? "code_interpreter" : "python";
	json_t *args = json_object();
	if (!args || json_object_set_new(args, "code", json_stringn(s, n))) {
		json_decref(args);
		return err_set(err, HEARTH_ENOMEM, "tool call '%s': no memory for the code", name);
	}
	return tc_plist_add(out, name, strlen(name), args, NULL, err);
}

int tc_llama3_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	size_t a = tc_skip_space(s, n);
	while (n > a && tc_is_space(s[n - 1]))
		n--;
	if (a == n)
		return 1;
	if (s[a] == '{') {
		json_t *o = tc_json_parse(s + a, n - a);
		int rc = o ? tc_read_call_object(o, "name", "parameters", "arguments", out, err) : 1;
		json_decref(o);
		if (rc <= 0 || p->blk_open == 0)
			return rc;
	}
	if (p->blk_open == 0)
		return 1;
	int rc = builtin_call(p, s + a, n - a, out, err);
	return rc == 1 ? code_call(p, s + a, n - a, out, err) : rc;
}
