/* toolcall-deepseek.c - DeepSeek's and Kimi-K2's calls, each between its own
 * begin and end markers (the section markers around them are dropped):
 *
 *   deepseek-r1    <｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json\n{...}\n```<｜tool▁call▁end｜>
 *   deepseek-v3.1  <｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
 *   kimi-k2        <|tool_call_begin|>functions.N:0<|tool_call_argument_begin|>{...}<|tool_call_end|>
 */
#include <string.h>

#include "toolcall-impl.h"

#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"
#define KIMI_ARGS "<|tool_call_argument_begin|>"

/* The arguments: a JSON object (or a string holding one), optionally fenced as ```json ... ```. */
static json_t *args_text(const char *s, size_t n)
{
	size_t a = tc_skip_space(s, n);
	while (n > a && tc_is_space(s[n - 1]))
		n--;
	if (n - a >= 6 && !memcmp(s + a, "```", 3) && !memcmp(s + n - 3, "```", 3)) {
		const char *nl = memchr(s + a, '\n', n - a - 3);
		if (!nl)
			return NULL;
		a = (size_t)(nl - s) + 1;
		n -= 3;
	}
	json_t *v = tc_json_parse(s + a, n - a);
	json_t *o = v ? tc_args_object(v) : NULL;
	json_decref(v);
	return o;
}

int tc_dsr1_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	return tc_end_at(p, s, n, eof, DS_CALL_END, body_len, close_len);
}

int tc_dsr1_name(const char *s, size_t n, size_t *off, size_t *len)
{
	const char *f = tc_find(s, n, DS_SEP);
	if (!f)
		return 0;
	size_t a = (size_t)(f - s) + strlen(DS_SEP);
	const char *nl = memchr(s + a, '\n', n - a);
	if (!nl)
		return 0;
	*off = a;
	*len = (size_t)(nl - s) - a;
	return *len ? 1 : -1;
}

int tc_dsr1_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	size_t off, len;
	if (tc_dsr1_name(s, n, &off, &len) != 1)
		return 1;
	json_t *args = args_text(s + off + len, n - off - len);
	return args ? tc_plist_add(out, s + off, len, args, NULL, err) : 1;
}

int tc_dsv31_name(const char *s, size_t n, size_t *off, size_t *len)
{
	const char *f = tc_find(s, n, DS_SEP);
	if (!f)
		return 0;
	*off = tc_skip_space(s, (size_t)(f - s));
	*len = (size_t)(f - s) - *off;
	return *len ? 1 : -1;
}

int tc_dsv31_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	size_t off, len;
	if (tc_dsv31_name(s, n, &off, &len) != 1)
		return 1;
	size_t a = off + len + strlen(DS_SEP);
	json_t *args = args_text(s + a, n - a);
	return args ? tc_plist_add(out, s + off, len, args, NULL, err) : 1;
}

int tc_kimi_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	return tc_end_at(p, s, n, eof, "<|tool_call_end|>", body_len, close_len);
}

/* functions.N:i -> N */
int tc_kimi_name(const char *s, size_t n, size_t *off, size_t *len)
{
	const char *f = tc_find(s, n, KIMI_ARGS);
	if (!f)
		return 0;
	size_t a = tc_skip_space(s, (size_t)(f - s)), e = (size_t)(f - s);
	while (e > a && tc_is_space(s[e - 1]))
		e--;
	if (e - a > 10 && !memcmp(s + a, "functions.", 10))
		a += 10;
	const char *colon = NULL;
	for (size_t j = a; j < e; j++)
		if (s[j] == ':')
			colon = s + j;
	if (colon)
		e = (size_t)(colon - s);
	*off = a;
	*len = e - a;
	return *len ? 1 : -1;
}

int tc_kimi_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	size_t off, len;
	if (tc_kimi_name(s, n, &off, &len) != 1)
		return 1;
	size_t a = (size_t)(tc_find(s, n, KIMI_ARGS) - s) + strlen(KIMI_ARGS);
	json_t *args = args_text(s + a, n - a);
	return args ? tc_plist_add(out, s + off, len, args, NULL, err) : 1;
}
