/*
 * cache-store.c - saved model state kept on disk for `hearth serve`
 * (POST/GET/DELETE /v1/cache; "cache" on completions).
 *
 * Under HEARTH_HOME/states/: index.db, an SQLite database with one row per
 * saved state, and the states themselves, each in a file named by its row's
 * id (<id>.state; names never become paths). A row:
 *
 *   id, owner, name, model, tokens, bytes, created, last_used
 *
 * owner is the hex SHA-256 of the API key that saved it ("-" when the server
 * has no keys: one shared owner); the key itself is never stored. Every
 * lookup is by (owner, name), so a key sees, uses and deletes only its own
 * states: another key's name is simply not there (404, not 403, so names do
 * not leak). The files' total size is held to a budget (--cache-budget): a
 * new state evicts the least recently used others until it fits.
 *
 * One mutex serializes the store; file reads and writes happen outside it
 * where they can (a file is written under a temporary name, then indexed).
 * A file that went missing or fails its checks is reported by the reader
 * (hearth_state_read): corrupt, truncated or another model's.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

#define CACHE_NAME_MAX 128

struct cache_store {
	pthread_mutex_t mu;
	sqlite3 *db;
	char dir[3072];
	uint64_t budget; /* bytes, 0: no limit */
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS states ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL,"
	" tokens INTEGER NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL, last_used INTEGER NOT NULL,"
	" UNIQUE(owner, name));";

bool cache_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CACHE_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		const char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-' || c == ':'))
			return false;
	}
	return true;
}

void cache_owner(const char *tenant, char out[CACHE_OWNER_SIZE])
{
	unsigned char d[32];
	unsigned int n = 0;
	if (!tenant || !EVP_Digest(tenant, strlen(tenant), d, &n, EVP_sha256(), NULL) || n != 32) {
		snprintf(out, CACHE_OWNER_SIZE, "-");
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int db_error(struct cache_store *cs, struct hearth_err *err, const char *what)
{
	snprintf(err->msg, sizeof err->msg, "state index: %.120s: %.100s", what, sqlite3_errmsg(cs->db));
	err->code = HEARTH_EIO;
	return HEARTH_EIO;
}

int cache_store_open(struct cache_store **out, const char *home, uint64_t budget, struct hearth_err *err)
{
	struct cache_store *cs = calloc(1, sizeof *cs);
	char path[3200];
	*out = NULL;
	if (!cs) {
		err->code = HEARTH_ENOMEM;
		snprintf(err->msg, sizeof err->msg, "state store: out of memory");
		return HEARTH_ENOMEM;
	}
	cs->budget = budget;
	if (snprintf(cs->dir, sizeof cs->dir, "%s/states", home) >= (int)sizeof cs->dir)
		goto fail_path;
	if ((mkdir(home, 0700) && errno != EEXIST) || (mkdir(cs->dir, 0700) && errno != EEXIST)) {
		err->code = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "state store: cannot create %.200s: %s", cs->dir, strerror(errno));
		free(cs);
		return HEARTH_EIO;
	}
	snprintf(path, sizeof path, "%s/index.db", cs->dir);
	if (sqlite3_open_v2(path, &cs->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
		    SQLITE_OK ||
	    sqlite3_exec(cs->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		int rc = db_error(cs, err, path);
		sqlite3_close(cs->db);
		free(cs);
		return rc;
	}
	sqlite3_busy_timeout(cs->db, 5000);
	pthread_mutex_init(&cs->mu, NULL);
	*out = cs;
	return 0;
fail_path:
	free(cs);
	err->code = HEARTH_EINVAL;
	snprintf(err->msg, sizeof err->msg, "state store: HEARTH_HOME is too long");
	return HEARTH_EINVAL;
}

void cache_store_close(struct cache_store *cs)
{
	if (!cs)
		return;
	sqlite3_close(cs->db);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

static void file_of(const struct cache_store *cs, int64_t id, char *path, size_t size)
{
	snprintf(path, size, "%s/%" PRId64 ".state", cs->dir, id);
}

/* Reads the row of one statement step into e. */
static void row_entry(sqlite3_stmt *q, struct cache_entry *e)
{
	e->id = sqlite3_column_int64(q, 0);
	snprintf(e->name, sizeof e->name, "%s", (const char *)sqlite3_column_text(q, 1));
	snprintf(e->model, sizeof e->model, "%s", (const char *)sqlite3_column_text(q, 2));
	e->tokens = sqlite3_column_int64(q, 3);
	e->bytes = sqlite3_column_int64(q, 4);
	e->created = sqlite3_column_int64(q, 5);
	e->last_used = sqlite3_column_int64(q, 6);
}

#define COLS "id, name, model, tokens, bytes, created, last_used"

/* The row of (owner, name); HEARTH_ENOTFOUND when none. Under cs->mu. */
static int find(struct cache_store *cs, const char *owner, const char *name, struct cache_entry *e,
		struct hearth_err *err)
{
	sqlite3_stmt *q = NULL;
	int rc;
	if (sqlite3_prepare_v2(cs->db, "SELECT " COLS " FROM states WHERE owner = ?1 AND name = ?2", -1, &q, NULL))
		return db_error(cs, err, "select");
	sqlite3_bind_text(q, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		row_entry(q, e);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		err->code = rc = HEARTH_ENOTFOUND;
		snprintf(err->msg, sizeof err->msg, "no saved state is named '%s'", name);
	} else {
		rc = db_error(cs, err, "select");
	}
	sqlite3_finalize(q);
	return rc;
}

/* Deletes row id and its file. Under cs->mu. */
static int drop(struct cache_store *cs, int64_t id, struct hearth_err *err)
{
	sqlite3_stmt *q = NULL;
	char path[3200];
	if (sqlite3_prepare_v2(cs->db, "DELETE FROM states WHERE id = ?1", -1, &q, NULL))
		return db_error(cs, err, "delete");
	sqlite3_bind_int64(q, 1, id);
	const int rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_error(cs, err, "delete");
	file_of(cs, id, path, sizeof path);
	unlink(path);
	return 0;
}

/* Evicts least recently used rows (other than keep) until the total plus
 * extra bytes fits the budget. Under cs->mu. */
static int evict(struct cache_store *cs, int64_t keep, uint64_t extra, struct hearth_err *err)
{
	for (;;) {
		sqlite3_stmt *q = NULL;
		uint64_t total = 0;
		int64_t victim = -1;
		if (sqlite3_prepare_v2(cs->db, "SELECT COALESCE(SUM(bytes), 0) FROM states WHERE id != ?1", -1, &q, NULL))
			return db_error(cs, err, "sum");
		sqlite3_bind_int64(q, 1, keep);
		if (sqlite3_step(q) == SQLITE_ROW)
			total = (uint64_t)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (total + extra <= cs->budget)
			return 0;
		if (sqlite3_prepare_v2(cs->db, "SELECT id FROM states WHERE id != ?1 ORDER BY last_used, id LIMIT 1", -1, &q,
				       NULL))
			return db_error(cs, err, "select");
		sqlite3_bind_int64(q, 1, keep);
		if (sqlite3_step(q) == SQLITE_ROW)
			victim = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (victim < 0)
			return 0;
		int rc = drop(cs, victim, err);
		if (rc)
			return rc;
	}
}

int cache_store_put(struct cache_store *cs, const char *owner, const char *model, const char *name,
		    const struct hearth_state *st, struct cache_entry *e, struct hearth_err *err)
{
	const uint64_t bytes = hearth_state_size(st);
	char tmp[3200], path[3200];
	sqlite3_stmt *q = NULL;
	int32_t n = 0;
	int rc;
	hearth_state_tokens(st, &n);
	if (cs->budget && bytes > cs->budget) {
		err->code = HEARTH_ETOOBIG;
		snprintf(err->msg, sizeof err->msg, "the state takes %" PRIu64 " bytes, more than the store's budget of %" PRIu64,
			 bytes, cs->budget);
		return HEARTH_ETOOBIG;
	}
	/* written beside the store first, so that a failed write leaves the old state */
	snprintf(tmp, sizeof tmp, "%s/new-%ld-%p.state", cs->dir, (long)getpid(), (void *)st);
	if ((rc = hearth_state_write(st, tmp, err)))
		return rc;
	pthread_mutex_lock(&cs->mu);
	struct cache_entry old;
	struct hearth_err e2 = { 0 };
	if (find(cs, owner, name, &old, &e2) == 0 && (rc = drop(cs, old.id, err)))
		goto out;
	if (cs->budget && (rc = evict(cs, -1, bytes, err)))
		goto out;
	const int64_t now = (int64_t)time(NULL);
	if (sqlite3_prepare_v2(cs->db,
			       "INSERT INTO states (owner, name, model, tokens, bytes, created, last_used) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)", -1, &q, NULL)) {
		rc = db_error(cs, err, "insert");
		goto out;
	}
	sqlite3_bind_text(q, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, model, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, n);
	sqlite3_bind_int64(q, 5, (int64_t)bytes);
	sqlite3_bind_int64(q, 6, now);
	if (sqlite3_step(q) != SQLITE_DONE) {
		rc = db_error(cs, err, "insert");
		goto out;
	}
	const int64_t id = sqlite3_last_insert_rowid(cs->db);
	file_of(cs, id, path, sizeof path);
	if (rename(tmp, path)) {
		err->code = rc = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "state store: %s", strerror(errno));
		drop(cs, id, &e2);
		goto out;
	}
	*e = (struct cache_entry){ .id = id, .tokens = n, .bytes = (int64_t)bytes, .created = now, .last_used = now };
	snprintf(e->name, sizeof e->name, "%s", name);
	snprintf(e->model, sizeof e->model, "%s", model);
	rc = 0;
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&cs->mu);
	unlink(tmp); /* gone after the rename */
	return rc;
}

int cache_store_load(struct cache_store *cs, const char *owner, const char *name, struct hearth_state **out,
		     struct cache_entry *e, struct hearth_err *err)
{
	char path[3200];
	sqlite3_stmt *q = NULL;
	int rc;
	*out = NULL;
	pthread_mutex_lock(&cs->mu);
	if ((rc = find(cs, owner, name, e, err)) == 0 &&
	    sqlite3_prepare_v2(cs->db, "UPDATE states SET last_used = ?2 WHERE id = ?1", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, e->id);
		sqlite3_bind_int64(q, 2, (int64_t)time(NULL));
		sqlite3_step(q);
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&cs->mu);
	if (rc)
		return rc;
	file_of(cs, e->id, path, sizeof path);
	rc = hearth_state_read(out, path, err);
	if (rc == HEARTH_ENOTFOUND) { /* indexed, but its file is gone */
		err->code = rc = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "the saved state '%s' lost its file; delete it and save it again", name);
	} else if (rc) {
		char why[sizeof err->msg];
		memcpy(why, err->msg, sizeof why);
		const char *colon = strstr(why, ".state: ");
		snprintf(err->msg, sizeof err->msg, "the saved state '%s' cannot be used: %.180s", name,
			 colon ? colon + 8 : why); /* the message without the file's path */
	}
	return rc;
}

int cache_store_delete(struct cache_store *cs, const char *owner, const char *name, struct hearth_err *err)
{
	struct cache_entry e;
	pthread_mutex_lock(&cs->mu);
	int rc = find(cs, owner, name, &e, err);
	if (!rc)
		rc = drop(cs, e.id, err);
	pthread_mutex_unlock(&cs->mu);
	return rc;
}

int cache_store_list(struct cache_store *cs, const char *owner, struct cache_entry **out, int *n,
		     struct hearth_err *err)
{
	sqlite3_stmt *q = NULL;
	struct cache_entry *v = NULL;
	int cap = 0, rc = 0;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&cs->mu);
	if (sqlite3_prepare_v2(cs->db, "SELECT " COLS " FROM states WHERE owner = ?1 ORDER BY name", -1, &q, NULL)) {
		rc = db_error(cs, err, "list");
		goto out;
	}
	sqlite3_bind_text(q, 1, owner, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			struct cache_entry *g = realloc(v, (size_t)(cap ? 2 * cap : 16) * sizeof *g);
			if (!g) {
				err->code = rc = HEARTH_ENOMEM;
				snprintf(err->msg, sizeof err->msg, "out of memory");
				goto out;
			}
			v = g;
			cap = cap ? 2 * cap : 16;
		}
		row_entry(q, &v[(*n)++]);
	}
	rc = rc == SQLITE_DONE ? 0 : db_error(cs, err, "list");
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&cs->mu);
	if (rc) {
		free(v);
		*n = 0;
	} else {
		*out = v;
	}
	return rc;
}
