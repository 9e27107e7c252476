/*
 * quota.c - per-key limits: requests per minute and tokens per day.
 *
 * Requests per minute is a sliding window: a request is admitted when fewer
 * than rpm requests of its key were admitted in the 60 seconds before it;
 * the one that would be the (rpm+1)th is refused until the oldest of them is
 * a minute old (Retry-After: the seconds until then, rounded up). Refused
 * requests do not count.
 *
 * Tokens per day counts prompt + completion tokens per UTC day: the day's
 * total is read from the store the first time a key is seen that day, then
 * kept up to date as requests end. A request is refused once the day's
 * total has reached tpd (Retry-After: the seconds to the next UTC midnight);
 * the request that crosses the limit runs to its end, since its size is not
 * known when it starts.
 *
 * Key k is an index into the server's keys; n_keys (one past the last) is
 * the server without keys (the defaults apply to everyone together).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "usage.h"

struct key_quota {
	double *times;           /* [cap] admission times in the window, a ring */
	int cap, head, n;
	int64_t day;             /* the UTC day of `used` (unix seconds / 86400), -1: not read */
	int64_t used;            /* tokens that day */
};

struct quota {
	pthread_mutex_t mu;
	struct key_quota *k;     /* [n] */
	int n;
};

int quota_new(struct quota **out, int n_keys)
{
	struct quota *q = calloc(1, sizeof *q);
	*out = NULL;
	if (!q || !(q->k = calloc((size_t)n_keys + 1, sizeof *q->k))) {
		free(q);
		return HEARTH_ENOMEM;
	}
	q->n = n_keys + 1;
	for (int i = 0; i < q->n; i++)
		q->k[i].day = -1;
	pthread_mutex_init(&q->mu, NULL);
	*out = q;
	return 0;
}

void quota_free(struct quota *q)
{
	if (!q)
		return;
	for (int i = 0; i < q->n; i++)
		free(q->k[i].times);
	free(q->k);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Brings kq's day count to the day of now (read from st when it changed). */
static void day_sync(struct key_quota *kq, double now, struct usage_store *st, const char *key_name)
{
	const int64_t day = (int64_t)floor(now / 86400);
	if (kq->day == day)
		return;
	kq->day = day;
	kq->used = st ? usage_store_tokens_since(st, key_name, day * 86400) : 0;
}

/* The minute's window of kq at now, room for rpm entries; false when out of memory. */
static bool window_sync(struct key_quota *kq, int64_t rpm, double now)
{
	if (kq->cap != rpm) { /* first use (the limit of a key does not change while it runs) */
		double *t = realloc(kq->times, (size_t)rpm * sizeof *t);
		if (!t)
			return false;
		kq->times = t;
		kq->cap = (int)rpm;
		kq->head = kq->n = 0;
	}
	while (kq->n && kq->times[kq->head] <= now - 60.0) {
		kq->head = (kq->head + 1) % kq->cap;
		kq->n--;
	}
	return true;
}

bool quota_admit(struct quota *q, int k, int64_t rpm, int64_t tpd, double now, struct usage_store *st,
		 const char *key_name, int *retry_after, const char **which)
{
	bool ok = true;
	if (k < 0 || k >= q->n)
		k = q->n - 1;
	if (rpm > QUOTA_RPM_MAX)
		rpm = QUOTA_RPM_MAX;
	struct key_quota *kq = &q->k[k];
	pthread_mutex_lock(&q->mu);
	if (tpd > 0) {
		day_sync(kq, now, st, key_name);
		if (kq->used >= tpd) {
			*which = "tpd";
			*retry_after = (int)((kq->day + 1) * 86400 - (int64_t)floor(now));
			ok = false;
		}
	}
	if (ok && rpm > 0) {
		if (!window_sync(kq, rpm, now)) {
			*which = "rpm";
			*retry_after = 1;
			ok = false;
		} else if (kq->n >= rpm) {
			*which = "rpm";
			*retry_after = (int)ceil(kq->times[kq->head] + 60.0 - now);
			ok = false;
		} else {
			kq->times[(kq->head + kq->n) % kq->cap] = now;
			kq->n++;
		}
	}
	pthread_mutex_unlock(&q->mu);
	if (!ok && *retry_after < 1)
		*retry_after = 1;
	return ok;
}

void quota_spent(struct quota *q, int k, int64_t tokens, double now, struct usage_store *st, const char *key_name)
{
	if (k < 0 || k >= q->n)
		k = q->n - 1;
	pthread_mutex_lock(&q->mu);
	day_sync(&q->k[k], now, st, key_name);
	q->k[k].used += tokens;
	pthread_mutex_unlock(&q->mu);
}
