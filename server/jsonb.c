/*
 * jsonb.c - JSON built with every step checked: a value that could not be
 * made, added or set makes the whole NULL, so no reply goes out with a part
 * silently missing.
 */
#include <stdlib.h>
#include <string.h>

#include "openai.h"

/* A JSON string of n bytes; invalid UTF-8 becomes U+FFFD. NULL when out of memory. */
json_t *jsonb_str(const char *s, size_t n)
{
	char *t = malloc(3 * n + 1);
	size_t o = 0;
	if (!t)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = hearth_utf8_valid(s + i, n - i);
		if (k == 0) {
			memcpy(t + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(t + o, s + i, k);
			o += k;
			i += k;
		}
	}
	json_t *j = json_stringn(t, o);
	free(t);
	return j;
}

/* Appends v (taken over) to arr; false when either is NULL or the append fails. */
bool jsonb_add(json_t *arr, json_t *v)
{
	if (!arr || !v) {
		json_decref(v);
		return false;
	}
	return json_array_append_new(arr, v) == 0;
}

/* Sets key of obj to v (taken over); false when either is NULL or it fails. */
bool jsonb_set(json_t *obj, const char *key, json_t *v)
{
	if (!obj || !key || !v) {
		json_decref(v);
		return false;
	}
	return json_object_set_new(obj, key, v) == 0;
}

/* obj when every step that built it succeeded (ok), else NULL (obj released). */
json_t *jsonb_done(json_t *obj, bool ok)
{
	if (ok)
		return obj;
	json_decref(obj);
	return NULL;
}


json_t *jsonb_base64(const void *data, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *b = data;
	if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
		return NULL;
	char *s = malloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		const uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) |
				   (i + 2 < n ? b[i + 2] : 0);
		s[o++] = tab[v >> 18 & 63];
		s[o++] = tab[v >> 12 & 63];
		s[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		s[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	json_t *j = json_stringn(s, o);
	free(s);
	return j;
}
