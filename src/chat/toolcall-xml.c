/* toolcall-xml.c - the families that write a call's arguments as keys and
 * values between tags (each value typed by the tool's parameter schema):
 *
 *   qwen3-coder  <tool_call>\n<function=N>\n<parameter=K>\nV\n</parameter>\n...</function>\n</tool_call>
 *   glm-4.5      <tool_call>N\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n...</tool_call>
 */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "toolcall-impl.h"

/* s[*i..] starts with lit (after spaces when skip): consumes it. */
static bool take(const char *s, size_t n, size_t *i, const char *lit, bool skip)
{
	size_t j = *i + (skip ? tc_skip_space(s + *i, n - *i) : 0), m = strlen(lit);
	if (j + m > n || memcmp(s + j, lit, m))
		return false;
	*i = j + m;
	return true;
}

/* The text up to lit (consumed with it): its span in *a, *len. */
static bool upto(const char *s, size_t n, size_t *i, const char *lit, size_t *a, size_t *len)
{
	const char *f = tc_find(s + *i, n - *i, lit);
	if (!f)
		return false;
	*a = *i;
	*len = (size_t)(f - s) - *i;
	*i = (size_t)(f - s) + strlen(lit);
	return true;
}

/* Adds key = value (typed) to args; 1 when the key repeats. */
static int put(struct tc_parser *p, json_t *args, const char *tool, const char *k, size_t kn, const char *v,
	       size_t vn, struct hearth_err *err)
{
	char *key = malloc(kn + 1);
	if (!key)
		return err_set(err, HEARTH_ENOMEM, "tool call '%s': no memory for a key", tool);
	memcpy(key, k, kn);
	key[kn] = '\0';
	int rc = 1;
	if (kn && !memchr(k, '\0', kn) && !json_object_get(args, key)) {
		json_t *val = tc_param_value(p, tool, key, v, vn);
		rc = val && !json_object_set_new(args, key, val) ? 0 : err_set(err, HEARTH_ENOMEM, "tool call '%s': no memory", tool);
	}
	free(key);
	return rc;
}

/* The name, as a NUL-terminated copy in buf (1 when empty or too long). */
static int name_copy(const char *s, size_t n, char *buf)
{
	while (n && tc_is_space(s[n - 1]))
		n--;
	size_t a = tc_skip_space(s, n);
	if (n - a == 0 || n - a > TC_MAX_NAME || memchr(s + a, '\0', n - a))
		return 1;
	memcpy(buf, s + a, n - a);
	buf[n - a] = '\0';
	return 0;
}

int tc_qwen3c_name(const char *s, size_t n, size_t *off, size_t *len)
{
	size_t i = 0, a, m;
	if (!take(s, n, &i, "<function=", true)) {
		size_t j = tc_skip_space(s, n);
		return n - j < 10 && !memcmp(s + j, "<function=", n - j) ? 0 : -1;
	}
	if (!upto(s, n, &i, ">", &a, &m))
		return 0;
	*off = a;
	*len = m;
	return 1;
}

int tc_qwen3c_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	char name[TC_MAX_NAME + 1];
	size_t i = 0, a, m, ka, kn;
	if (!take(s, n, &i, "<function=", true) || !upto(s, n, &i, ">", &a, &m) || name_copy(s + a, m, name))
		return 1;
	json_t *args = json_object();
	if (!args)
		return err_set(err, HEARTH_ENOMEM, "tool call '%s': no memory", name);
	int rc = 0;
	while (!rc && !take(s, n, &i, "</function>", true)) {
		if (!take(s, n, &i, "<parameter=", true) || !upto(s, n, &i, ">", &ka, &kn) ||
		    !upto(s, n, &i, "</parameter>", &a, &m)) {
			rc = 1;
			break;
		}
		if (m && s[a] == '\n') /* the template writes the value on lines of its own */
			a++, m--;
		if (m && s[a + m - 1] == '\n')
			m--;
		rc = put(p, args, name, s + ka, kn, s + a, m, err);
	}
	if (!rc && tc_skip_space(s + i, n - i) != n - i)
		rc = 1;
	if (rc)
		json_decref(args);
	return rc ? rc : tc_plist_add(out, name, strlen(name), args, NULL, err);
}

int tc_glm_name(const char *s, size_t n, size_t *off, size_t *len)
{
	size_t a = tc_skip_space(s, n);
	for (size_t j = a; j < n; j++)
		if (s[j] == '\n' || s[j] == '<') {
			size_t e = j;
			while (e > a && tc_is_space(s[e - 1]))
				e--;
			*off = a;
			*len = e - a;
			return e > a ? 1 : -1;
		}
	return 0;
}

int tc_glm_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err)
{
	char name[TC_MAX_NAME + 1];
	size_t off, len, i, a, m, ka, kn;
	if (tc_glm_name(s, n, &off, &len) == -1)
		return 1;
	if (tc_glm_name(s, n, &off, &len) == 0) /* a name alone: a call without arguments */
		off = 0, len = n;
	if (name_copy(s + off, len, name))
		return 1;
	i = off + len;
	json_t *args = json_object();
	if (!args)
		return err_set(err, HEARTH_ENOMEM, "tool call '%s': no memory", name);
	int rc = 0;
	while (!rc && i + tc_skip_space(s + i, n - i) < n) {
		if (!take(s, n, &i, "<arg_key>", true) || !upto(s, n, &i, "</arg_key>", &ka, &kn) ||
		    !take(s, n, &i, "<arg_value>", true) || !upto(s, n, &i, "</arg_value>", &a, &m)) {
			rc = 1;
			break;
		}
		rc = put(p, args, name, s + ka, kn, s + a, m, err);
	}
	if (rc)
		json_decref(args);
	return rc ? rc : tc_plist_add(out, name, strlen(name), args, NULL, err);
}
