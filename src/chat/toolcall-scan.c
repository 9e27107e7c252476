/* toolcall-scan.c - finding markers in held text, and where a JSON value
 * ends, without parsing it, resumable as more text arrives. Pure functions of
 * the bytes given: nothing here depends on how the text was split. */
#include <string.h>

#include "toolcall-impl.h"

const char *tc_find(const char *s, size_t n, const char *lit)
{
	size_t m = strlen(lit);
	if (m == 0 || m > n)
		return NULL;
	for (const char *e = s + n - m + 1, *f = s; (f = memchr(f, lit[0], (size_t)(e - f))); f++)
		if (!memcmp(f, lit, m))
			return f;
	return NULL;
}

const char *tc_find_any(const char *s, size_t n, const char *const *lits, int *which)
{
	const char *best = NULL;
	for (int i = 0; lits[i]; i++) {
		const char *f = tc_find(s, best ? (size_t)(best - s) + strlen(lits[i]) : n, lits[i]);
		if (f && (!best || f < best)) {
			best = f;
			*which = i;
		}
	}
	return best;
}

size_t tc_partial(const char *s, size_t n, const char *const *lits)
{
	size_t best = 0;
	for (int i = 0; lits[i]; i++) {
		size_t m = strlen(lits[i]);
		for (size_t k = m - 1 < n ? m - 1 : n; k > best; k--)
			if (!memcmp(s + n - k, lits[i], k)) {
				best = k;
				break;
			}
	}
	return best;
}

bool tc_is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

size_t tc_skip_space(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && tc_is_space(s[i]))
		i++;
	return i;
}

void tc_jscan_reset(struct tc_jscan *j)
{
	memset(j, 0, sizeof *j);
}

/* One byte inside the value; true when it closes the value. */
static bool jscan_byte(struct tc_jscan *j, char c)
{
	if (j->in_str) {
		if (j->esc)
			j->esc = false;
		else if (c == '\\')
			j->esc = true;
		else if (c == '"') {
			j->in_str = false;
			return j->depth == 0;
		}
		return false;
	}
	if (c == '"')
		j->in_str = true;
	else if (c == '{' || c == '[')
		j->depth++;
	else if ((c == '}' || c == ']') && --j->depth == 0)
		return true;
	return false;
}

int tc_jscan_run(struct tc_jscan *j, const char *s, size_t n, size_t *end)
{
	while (!j->started && j->pos < n) {
		char c = s[j->pos];
		if (tc_is_space(c)) {
			j->pos++;
			continue;
		}
		if (c != '{' && c != '[' && c != '"')
			return -1;
		j->started = true;
	}
	while (j->pos < n) {
		if (jscan_byte(j, s[j->pos++])) {
			*end = j->pos;
			return 1;
		}
		if (j->depth < 0)
			return -1;
	}
	return 0;
}

/* The block ends at close (searched from where the last search stopped), or
 * at the end of the output. */
int tc_end_at(struct tc_parser *p, const char *s, size_t n, bool eof, const char *close, size_t *body_len,
	      size_t *close_len)
{
	size_t m = strlen(close);
	const char *f = tc_find(s + p->scan, n - p->scan, close);
	if (f) {
		*body_len = (size_t)(f - s);
		*close_len = m;
		return 1;
	}
	if (eof) {
		*body_len = n;
		*close_len = 0;
		return 1;
	}
	p->scan = n >= m ? n - m + 1 : 0;
	return 0;
}

/* The block is one JSON value (after optional spaces) and ends where it closes. */
int tc_end_json(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len)
{
	size_t end;
	int r = tc_jscan_run(&p->js, s, n, &end);
	if (r < 0)
		return -1;
	if (r == 0 && !eof)
		return 0;
	*body_len = r ? end : n;
	*close_len = 0;
	return 1;
}
