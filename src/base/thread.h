/* thread.h - a persistent worker pool: n threads (the caller's included) run
 * one task together and meet at its end.
 *
 * pool_run() is called by one thread at a time (the owner); the task function
 * receives (arg, ith, nth) and splits its work by ith. Threads are created once
 * by pool_new() and parked on a condition variable between tasks.
 */
#ifndef HEARTH_THREAD_H
#define HEARTH_THREAD_H

#include "hearth.h"

struct pool;
typedef void (*pool_task_fn)(void *arg, int ith, int nth);

int pool_new(struct pool **out, int n_threads, struct hearth_err *err);
void pool_free(struct pool *p);
int pool_size(const struct pool *p);
/* Runs fn on every thread of the pool and returns when all are done. */
void pool_run(struct pool *p, pool_task_fn fn, void *arg);
/* The number of physical cores (online CPUs when the topology is unknown; at least 1). */
int cpu_count(void);

#endif /* HEARTH_THREAD_H */
