/* toolcall-mistral.c - Mistral's calls, after [TOOL_CALLS]:
 *
 *   [{"name": N, "arguments": {...}, "id": "a1B2c3D4e"}, ...]   Nemo: a JSON list
 *   N[ARGS]{...}                                             Devstral, Small 3.x
 *   N[CALL_ID]a1B2c3D4e[ARGS]{...}                           Small 3.2, with the model's id
 *
 * A block ends where its JSON closes; ids are Mistral's 9 alphanumerics.
 */
#include <string.h>

#include "toolcall-impl.h"

#define NAME_WINDOW (TC_MAX_NAME + 64)

int tc_mistral_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	size_t a = tc_skip_space(s, n), end;
	if (a == n)
		return eof ? -1 : 0;
	if (s[a] == '[')
		return tc_end_json(p, s, n, eof, body_len, close_len);
	const char *f = tc_find(s, n < NAME_WINDOW ? n : NAME_WINDOW, "[ARGS]");
	if (!f)
		return eof || n >= NAME_WINDOW ? -1 : 0;
	size_t j = (size_t)(f - s) + 6;
	int r = tc_jscan_run(&p->js, s + j, n - j, &end);
	if (r < 0)
		return -1;
	if (r == 0 && !eof)
		return 0;
	*body_len = r ? j + end : n;
	*close_len = 0;
	return 1;
}

int tc_mistral_name(const char *s, size_t n, size_t *off, size_t *len)
{
	size_t a = tc_skip_space(s, n);
	if (a < n && s[a] == '[')
		return -1;
	const char *f = memchr(s + a, '[', n - a);
	if (!f || !tc_find(f, n - (size_t)(f - s), "[ARGS]"))
		return 0;
	*off = a;
	*len = (size_t)(f - s) - a;
	return *len ? 1 : -1;
}

/* N[CALL_ID]id[ARGS]: the id, else "". */
void tc_mistral_id(const char *s, size_t n, char *id)
{
	size_t off, len;
	id[0] = '\0';
	if (tc_mistral_name(s, n, &off, &len) != 1 || n - off - len < 9 || memcmp(s + off + len, "[CALL_ID]", 9))
		return;
	const char *a = s + off + len + 9, *f = tc_find(a, n - (size_t)(a - s), "[ARGS]");
	if (f && f - a < 32) {
		memcpy(id, a, (size_t)(f - a));
		id[f - a] = '\0';
	}
}

int tc_mistral_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	(void)p;
	size_t a = tc_skip_space(s, n), off, len;
	if (a < n && s[a] == '[') {
		json_t *l = tc_json_parse(s, n), *o;
		size_t i;
		int rc = json_is_array(l) && json_array_size(l) ? 0 : 1;
		json_array_foreach(l, i, o) {
			if (rc)
				break;
			rc = tc_read_call_object(o, "name", "arguments", NULL, out, err);
		}
		json_decref(l);
		return rc;
	}
	if (tc_mistral_name(s, n, &off, &len) != 1)
		return 1;
	size_t i = off + len;
	char id[32] = "";
	if (n - i >= 9 && !memcmp(s + i, "[CALL_ID]", 9)) {
		const char *f = tc_find(s + i + 9, n - i - 9, "[ARGS]");
		size_t idn = f ? (size_t)(f - s) - i - 9 : 0;
		if (!f || idn >= sizeof id)
			return 1;
		memcpy(id, s + i + 9, idn);
		id[idn] = '\0';
		i += 9 + idn;
	}
	if (n - i < 6 || memcmp(s + i, "[ARGS]", 6))
		return 1;
	json_t *v = tc_json_parse(s + i + 6, n - i - 6);
	json_t *args = v ? tc_args_object(v) : NULL;
	json_decref(v);
	if (!args)
		return 1;
	return tc_plist_add(out, s + off, len, args, id, err);
}
