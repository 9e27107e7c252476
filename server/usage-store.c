/*
 * usage-store.c - the usage record in SQLite.
 *
 *   requests(t, key, model, route, prompt, cached, completion, queue_s,
 *            compute_s, cpu_s, ttft_s, itl_s, finish, status)
 *                                      one row per request; t: unix seconds at its end
 *   samples(t, model, waiting, running, kv_use, prefix_queries, prefix_hits)
 *                                      one row per loaded model per sample period
 *
 * The database is in WAL mode with synchronous=NORMAL: a transaction that
 * committed survives the process being killed at any point (it is in the
 * log before COMMIT returns); only a power loss may take the last ones.
 *
 * Writing: handlers queue rows (usage_store_put copies them into a ring of
 * queue_cap entries, under a mutex held for the copy only); one writer
 * thread takes up to WRITE_BATCH rows at a time and inserts them in one
 * transaction. A full ring drops the new row and counts it: token
 * generation never waits on the disk. Reading uses a second connection
 * (WAL readers do not block the writer) under its own mutex.
 *
 * Retention: rows older than retention_days are deleted PRUNE_BATCH at a time
 * (one transaction each, the writer's queue served between them) at start
 * and every PRUNE_EVERY_S seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usage.h"

#define WRITE_BATCH 256
#define PRUNE_BATCH 1000
#define PRUNE_EVERY_S 600
#define QUEUE_CAP_MAX (1 << 20)

enum { ITEM_REC, ITEM_SAMPLE };

struct item {
	int kind;
	union {
		struct usage_rec r;
		struct usage_sample s;
	} u;
};

struct usage_store {
	sqlite3 *db;              /* the writer's connection (its thread alone) */
	sqlite3 *rd;              /* the readers', under rd_mu */
	pthread_mutex_t rd_mu;
	pthread_mutex_t mu;       /* guards the ring and the counters below */
	pthread_cond_t cv;        /* rows queued, or stopping */
	pthread_cond_t done_cv;   /* a batch committed */
	struct item *ring;        /* [cap] */
	int cap, head, n;
	uint64_t queued, written; /* rows ever queued; rows ever taken and finished */
	uint64_t dropped, failed;
	bool stopping;
	int retention_days;
	pthread_t thread;
	sqlite3_stmt *ins_req, *ins_sample;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS requests(t INTEGER NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,"
	" route TEXT NOT NULL, prompt INTEGER NOT NULL, cached INTEGER NOT NULL, completion INTEGER NOT NULL,"
	" queue_s REAL, compute_s REAL, cpu_s REAL, ttft_s REAL, itl_s REAL, finish TEXT, status INTEGER);"
	"CREATE INDEX IF NOT EXISTS requests_t ON requests(t);"
	"CREATE INDEX IF NOT EXISTS requests_key_t ON requests(key, t);"
	"CREATE TABLE IF NOT EXISTS samples(t INTEGER NOT NULL, model TEXT NOT NULL, waiting INTEGER, running INTEGER,"
	" kv_use REAL, prefix_queries INTEGER, prefix_hits INTEGER);"
	"CREATE INDEX IF NOT EXISTS samples_t ON samples(t);";

static int db_fail(sqlite3 *db, const char *path, struct hearth_err *err)
{
	err->code = HEARTH_EIO;
	snprintf(err->msg, sizeof err->msg, "usage store %.200s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
	return HEARTH_EIO;
}

/* A bound double that is NULL when negative (not measured). */
static void bind_opt(sqlite3_stmt *s, int i, double v)
{
	if (v < 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_double(s, i, v);
}

static int insert_rec(struct usage_store *st, const struct usage_rec *r)
{
	sqlite3_stmt *s = st->ins_req;
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, r->t);
	sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->model, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->route, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, r->prompt);
	sqlite3_bind_int64(s, 6, r->cached);
	sqlite3_bind_int64(s, 7, r->completion);
	bind_opt(s, 8, r->queue_s);
	bind_opt(s, 9, r->compute_s);
	bind_opt(s, 10, r->cpu_s);
	bind_opt(s, 11, r->ttft_s);
	bind_opt(s, 12, r->itl_s);
	sqlite3_bind_text(s, 13, r->finish, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 14, r->status);
	return sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
}

static int insert_sample(struct usage_store *st, const struct usage_sample *m)
{
	sqlite3_stmt *s = st->ins_sample;
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, m->t);
	sqlite3_bind_text(s, 2, m->model, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, m->waiting);
	sqlite3_bind_int(s, 4, m->running);
	sqlite3_bind_double(s, 5, m->kv_use);
	sqlite3_bind_int64(s, 6, m->prefix_queries);
	sqlite3_bind_int64(s, 7, m->prefix_hits);
	return sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
}

/* Writes batch[0..n) in one transaction; how many failed. */
static int write_batch(struct usage_store *st, const struct item *batch, int n)
{
	int bad = 0;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return n;
	for (int i = 0; i < n; i++)
		bad += (batch[i].kind == ITEM_REC ? insert_rec(st, &batch[i].u.r) : insert_sample(st, &batch[i].u.s)) != 0;
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return n;
	}
	return bad;
}

/* Deletes at most batch rows of table older than cutoff; how many. */
static int64_t prune_table(sqlite3 *db, const char *table, int64_t cutoff, int batch)
{
	char sql[200];
	sqlite3_stmt *s;
	snprintf(sql, sizeof sql, "DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE t < ?1 LIMIT ?2)", table,
		 table);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(s, 1, cutoff);
	sqlite3_bind_int(s, 2, batch);
	int64_t n = sqlite3_step(s) == SQLITE_DONE ? sqlite3_changes(db) : 0;
	sqlite3_finalize(s);
	return n;
}

int64_t usage_store_prune(struct usage_store *st, int64_t cutoff, int batch)
{
	int64_t total = 0, n;
	for (const char *const *t = (const char *const[]){ "requests", "samples", NULL }; *t; t++)
		do {
			total += n = prune_table(st->db, *t, cutoff, batch);
		} while (n == batch);
	return total;
}

static void *writer(void *arg)
{
	struct usage_store *st = arg;
	struct item *batch = malloc(WRITE_BATCH * sizeof *batch);
	time_t last_prune = 0;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->n && !st->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 5;
			if (pthread_cond_timedwait(&st->cv, &st->mu, &ts) == ETIMEDOUT)
				break;
		}
		if (!st->n && st->stopping)
			break;
		int n = 0;
		while (batch && st->n && n < WRITE_BATCH) {
			batch[n++] = st->ring[st->head];
			st->head = (st->head + 1) % st->cap;
			st->n--;
		}
		pthread_mutex_unlock(&st->mu);
		const int bad = n ? write_batch(st, batch, n) : 0;
		const time_t now = time(NULL);
		if (st->retention_days > 0 && now - last_prune >= PRUNE_EVERY_S) {
			last_prune = now;
			usage_store_prune(st, (int64_t)now - (int64_t)st->retention_days * 86400, PRUNE_BATCH);
		}
		pthread_mutex_lock(&st->mu);
		if (!batch) { /* out of memory: drop what is queued rather than spin */
			st->failed += (uint64_t)st->n;
			n = st->n;
			st->n = 0;
		}
		st->written += (uint64_t)n;
		st->failed += (uint64_t)bad;
		pthread_cond_broadcast(&st->done_cv);
	}
	pthread_mutex_unlock(&st->mu);
	free(batch);
	return NULL;
}

static int open_conn(const char *path, sqlite3 **db, struct hearth_err *err)
{
	if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		return db_fail(*db, path, err);
	sqlite3_busy_timeout(*db, 5000);
	return 0;
}

int usage_store_open(struct usage_store **out, const char *path, int retention_days, int queue_cap,
		     struct hearth_err *err)
{
	struct usage_store *st = calloc(1, sizeof *st);
	int rc = HEARTH_ENOMEM;
	*out = NULL;
	if (queue_cap < 1 || queue_cap > QUEUE_CAP_MAX)
		queue_cap = queue_cap < 1 ? 1 : QUEUE_CAP_MAX;
	if (!st || !(st->ring = calloc((size_t)queue_cap, sizeof *st->ring))) {
		snprintf(err->msg, sizeof err->msg, "usage store: out of memory");
		err->code = rc;
		goto out_free;
	}
	st->cap = queue_cap;
	st->retention_days = retention_days;
	if ((rc = open_conn(path, &st->db, err)))
		goto out_close;
	if (sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "INSERT INTO requests VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)", -1,
			       &st->ins_req, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "INSERT INTO samples VALUES(?1,?2,?3,?4,?5,?6,?7)", -1, &st->ins_sample, NULL) !=
		    SQLITE_OK) {
		rc = db_fail(st->db, path, err);
		goto out_close;
	}
	if ((rc = open_conn(path, &st->rd, err)))
		goto out_close;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->rd_mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	pthread_cond_init(&st->done_cv, NULL);
	if (pthread_create(&st->thread, NULL, writer, st)) {
		snprintf(err->msg, sizeof err->msg, "usage store: cannot start its writer thread");
		err->code = rc = HEARTH_ENOMEM;
		pthread_mutex_destroy(&st->mu);
		pthread_mutex_destroy(&st->rd_mu);
		pthread_cond_destroy(&st->cv);
		pthread_cond_destroy(&st->done_cv);
		goto out_close;
	}
	*out = st;
	return 0;
out_close:
	sqlite3_finalize(st->ins_req);
	sqlite3_finalize(st->ins_sample);
	sqlite3_close(st->db);
	sqlite3_close(st->rd);
out_free:
	if (st)
		free(st->ring);
	free(st);
	return rc;
}

void usage_store_close(struct usage_store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	sqlite3_finalize(st->ins_req);
	sqlite3_finalize(st->ins_sample);
	sqlite3_close(st->db);
	sqlite3_close(st->rd);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->rd_mu);
	pthread_cond_destroy(&st->cv);
	pthread_cond_destroy(&st->done_cv);
	free(st->ring);
	free(st);
}

static bool put_item(struct usage_store *st, const struct item *it)
{
	bool ok;
	pthread_mutex_lock(&st->mu);
	ok = st->n < st->cap && !st->stopping;
	if (ok) {
		st->ring[(st->head + st->n) % st->cap] = *it;
		st->n++;
		st->queued++;
		pthread_cond_signal(&st->cv);
	} else {
		st->dropped++;
	}
	pthread_mutex_unlock(&st->mu);
	return ok;
}

bool usage_store_put(struct usage_store *st, const struct usage_rec *r)
{
	struct item it = { .kind = ITEM_REC };
	it.u.r = *r;
	return put_item(st, &it);
}

bool usage_store_put_sample(struct usage_store *st, const struct usage_sample *s)
{
	struct item it = { .kind = ITEM_SAMPLE };
	it.u.s = *s;
	return put_item(st, &it);
}

void usage_store_flush(struct usage_store *st)
{
	pthread_mutex_lock(&st->mu);
	const uint64_t want = st->queued;
	while (st->written < want)
		pthread_cond_wait(&st->done_cv, &st->mu);
	pthread_mutex_unlock(&st->mu);
}

uint64_t usage_store_dropped(struct usage_store *st)
{
	pthread_mutex_lock(&st->mu);
	uint64_t n = st->dropped;
	pthread_mutex_unlock(&st->mu);
	return n;
}

uint64_t usage_store_failed(struct usage_store *st)
{
	pthread_mutex_lock(&st->mu);
	uint64_t n = st->failed;
	pthread_mutex_unlock(&st->mu);
	return n;
}

void *usage_store_read_lock(struct usage_store *st)
{
	pthread_mutex_lock(&st->rd_mu);
	return st->rd;
}

void usage_store_read_unlock(struct usage_store *st)
{
	pthread_mutex_unlock(&st->rd_mu);
}

int64_t usage_store_tokens_since(struct usage_store *st, const char *key, int64_t since)
{
	sqlite3 *db = usage_store_read_lock(st);
	sqlite3_stmt *s;
	int64_t n = 0;
	if (sqlite3_prepare_v2(db, "SELECT total(prompt + completion) FROM requests WHERE key = ?1 AND t >= ?2", -1, &s,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, since);
		if (sqlite3_step(s) == SQLITE_ROW)
			n = (int64_t)sqlite3_column_double(s, 0);
		sqlite3_finalize(s);
	}
	usage_store_read_unlock(st);
	return n;
}
