/* strmap.h - a map from byte strings to int32 values (open addressing, FNV-1a).
 *
 * Keys are not copied: the caller keeps them alive and unchanged while the map
 * lives (they usually point into a vocabulary or an mmapped file).
 * Not thread-safe for writers; concurrent lookups are fine.
 */
#ifndef HEARTH_STRMAP_H
#define HEARTH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	const char *key; /* NULL: empty */
	uint32_t len;
	int32_t val;
};
struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

/* Sizes the table for n_expected keys. Returns 0 or HEARTH_ENOMEM. */
int strmap_init(struct strmap *m, size_t n_expected);
void strmap_free(struct strmap *m);
/* Inserts key -> val; when the key is already present, leaves it and returns 1.
 * Returns HEARTH_ENOMEM when the table cannot grow. */
int strmap_put(struct strmap *m, const char *key, size_t len, int32_t val);
/* Inserts or overwrites key -> val. Returns 0 or HEARTH_ENOMEM. */
int strmap_set(struct strmap *m, const char *key, size_t len, int32_t val);
/* Returns the value, or -1 when absent. */
int32_t strmap_get(const struct strmap *m, const char *key, size_t len);

#endif /* HEARTH_STRMAP_H */
