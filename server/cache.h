/*
 * cache.h - saved model state for `hearth serve` (internal to server/):
 *
 *   cache-store.c  the store under HEARTH_HOME/states: an SQLite index and one
 *                  file per state, owned per API key, held to a size budget
 *   api-cache.c    POST/GET/DELETE /v1/cache, and the "cache" field of completions
 */
#ifndef HEARTH_SERVER_CACHE_H
#define HEARTH_SERVER_CACHE_H

#include "server.h"

#define CACHE_OWNER_SIZE 65 /* hex SHA-256 and a NUL */

struct cache_store;

/* A saved state's row. */
struct cache_entry {
	int64_t id;
	char name[129];
	char model[MODEL_NAME_MAX + 1];
	int64_t tokens, bytes, created, last_used; /* created, last_used: unix seconds */
};

/* Is name a valid state name: 1..128 bytes of letters, digits and . _ - :, not starting with . or -. */
bool cache_name_ok(const char *name);
/* The owner of what tenant saves: hex SHA-256 of the key, "-" for no key. */
void cache_owner(const char *tenant, char out[CACHE_OWNER_SIZE]);

/* Opens (creating) the store under home/states; budget 0: no limit. */
int cache_store_open(struct cache_store **out, const char *home, uint64_t budget, struct hearth_err *err);
void cache_store_close(struct cache_store *cs);
/* Saves st as owner's name (replacing one of that name), evicting least
 * recently used states to stay in the budget (HEARTH_ETOOBIG: st alone is over it). */
int cache_store_put(struct cache_store *cs, const char *owner, const char *model, const char *name,
		    const struct hearth_state *st, struct cache_entry *e, struct hearth_err *err);
/* Reads owner's state name (checked: corrupt, truncated files refused) and
 * marks it used. HEARTH_ENOTFOUND: owner has none of that name. */
int cache_store_load(struct cache_store *cs, const char *owner, const char *name, struct hearth_state **out,
		     struct cache_entry *e, struct hearth_err *err);
int cache_store_delete(struct cache_store *cs, const char *owner, const char *name, struct hearth_err *err);
/* owner's states sorted by name (*out malloc'd). */
int cache_store_list(struct cache_store *cs, const char *owner, struct cache_entry **out, int *n,
		     struct hearth_err *err);

/* api-cache.c: the routes */
void api_cache_save(struct server *srv, const struct call *call, struct reply *rp);
void api_cache_list(struct server *srv, const struct call *call, struct reply *rp);
void api_cache_get(struct server *srv, const struct call *call, struct reply *rp);    /* GET /v1/cache/{name} */
void api_cache_delete(struct server *srv, const struct call *call, struct reply *rp); /* DELETE /v1/cache/{name} */
/* The "cache" field of a completion: tenant's state name, read and checked
 * against sm's model, the request's steering and the prompt ids (n of them)
 * into *out (to hand to the scheduler); false after an error reply (404
 * unknown, 400 another model's, steered otherwise or not a prefix of the
 * prompt, 409 a broken file). */
bool cache_seed(struct served_model *sm, const char *tenant, const char *name, const struct hearth_steering *steering,
		const int32_t *ids, int32_t n, struct hearth_state **out, struct reply *rp);

#endif /* HEARTH_SERVER_CACHE_H */
