/* strmap.c - see strmap.h. strmap_init sizes the table for the expected
 * count at most half full; a put past that doubles it and rehashes every key. */
#include <stdlib.h>
#include <string.h>

#include "hearth.h"
#include "strmap.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int strmap_init(struct strmap *m, size_t n_expected)
{
	size_t cap = 16;
	while (cap < n_expected * 2 + 1)
		cap *= 2;
	m->slots = calloc(cap, sizeof *m->slots);
	m->cap = cap;
	m->n = 0;
	return m->slots ? 0 : HEARTH_ENOMEM;
}

void strmap_free(struct strmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

static struct strmap_slot *find(const struct strmap *m, const char *key, size_t len)
{
	size_t i = hash_bytes(key, len) & (m->cap - 1);
	for (;;) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key || (s->len == len && memcmp(s->key, key, len) == 0))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

int strmap_put(struct strmap *m, const char *key, size_t len, int32_t val)
{
	/* sized by strmap_init for the expected count; grow if a caller exceeds it */
	if ((m->n + 1) * 2 > m->cap) {
		struct strmap bigger;
		if (strmap_init(&bigger, m->cap))
			return HEARTH_ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				*find(&bigger, m->slots[i].key, m->slots[i].len) = m->slots[i];
		bigger.n = m->n;
		free(m->slots);
		*m = bigger;
	}
	struct strmap_slot *s = find(m, key, len);
	if (s->key)
		return 1;
	s->key = key ? key : "";
	s->len = (uint32_t)len;
	s->val = val;
	m->n++;
	return 0;
}

int strmap_set(struct strmap *m, const char *key, size_t len, int32_t val)
{
	int rc = strmap_put(m, key, len, val);
	if (rc == 1) {
		find(m, key, len)->val = val;
		rc = 0;
	}
	return rc;
}

int32_t strmap_get(const struct strmap *m, const char *key, size_t len)
{
	if (!m->cap)
		return -1;
	const struct strmap_slot *s = find(m, key, len);
	return s->key ? s->val : -1;
}
