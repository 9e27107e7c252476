/* thread.c - see thread.h. A task is posted by bumping a generation counter;
 * workers and the owner spin a short while on the counters (most tasks in a
 * forward pass follow each other within microseconds) and only then sleep on
 * a condition variable, so a pass's hundreds of tasks do not each pay for a
 * futex wake-up. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "thread.h"

#define SPIN_ROUNDS 20000 /* about a millisecond of polite spinning */

struct pool {
	int n;                   /* threads including the owner */
	pthread_t *threads;      /* n - 1 workers */
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	atomic_ulong gen;        /* bumped per task */
	atomic_int n_done;       /* workers finished with the current task */
	int n_sleeping;          /* workers waiting on wake (under mu) */
	bool owner_sleeping;     /* the owner waits on done (under mu) */
	atomic_bool quit;
	pool_task_fn fn;         /* written before gen is bumped */
	void *arg;
};

struct worker_start {
	struct pool *p;
	int ith;
};

#if defined(__x86_64__) || defined(__i386__)
static inline void cpu_relax(void) { __builtin_ia32_pause(); }
#else
static inline void cpu_relax(void) { }
#endif

static void *worker(void *a)
{
	struct worker_start *ws = a;
	struct pool *p = ws->p;
	const int ith = ws->ith;
	unsigned long seen = 0;
	free(ws);

	for (;;) {
		for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
				!atomic_load(&p->quit); i++)
			cpu_relax();
		if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->quit)) {
			pthread_mutex_lock(&p->mu);
			p->n_sleeping++;
			while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
				pthread_cond_wait(&p->wake, &p->mu);
			p->n_sleeping--;
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->quit))
			break;
		seen = atomic_load_explicit(&p->gen, memory_order_acquire);
		p->fn(p->arg, ith, p->n);
		if (atomic_fetch_add_explicit(&p->n_done, 1, memory_order_acq_rel) + 1 == p->n - 1) {
			pthread_mutex_lock(&p->mu);
			if (p->owner_sleeping)
				pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

int pool_new(struct pool **out, int n_threads, struct hearth_err *err)
{
	struct pool *p = calloc(1, sizeof *p);
	*out = NULL;
	if (n_threads < 1)
		n_threads = 1;
	if (!p || !(p->threads = calloc((size_t)n_threads, sizeof *p->threads))) {
		free(p);
		return err_set(err, HEARTH_ENOMEM, "thread pool: out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->n = 1;
	for (int i = 1; i < n_threads; i++) {
		struct worker_start *ws = malloc(sizeof *ws);
		if (!ws)
			break;
		ws->p = p;
		ws->ith = i;
		if (pthread_create(&p->threads[i - 1], NULL, worker, ws)) {
			free(ws);
			break;
		}
		p->n++;
	}
	if (p->n != n_threads) {
		pool_free(p);
		return err_set(err, HEARTH_ENOMEM, "thread pool: cannot start %d threads", n_threads);
	}
	*out = p;
	return 0;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, true);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n - 1; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	free(p->threads);
	free(p);
}

int pool_size(const struct pool *p) { return p->n; }

void pool_run(struct pool *p, pool_task_fn fn, void *arg)
{
	if (p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_mutex_lock(&p->mu);
	if (p->n_sleeping)
		pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	fn(arg, 0, p->n);
	for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&p->n_done, memory_order_acquire) < p->n - 1; i++)
		cpu_relax();
	if (atomic_load_explicit(&p->n_done, memory_order_acquire) < p->n - 1) {
		pthread_mutex_lock(&p->mu);
		p->owner_sleeping = true;
		while (atomic_load(&p->n_done) < p->n - 1)
			pthread_cond_wait(&p->done, &p->mu);
		p->owner_sleeping = false;
		pthread_mutex_unlock(&p->mu);
	}
}

/* Physical cores: online CPUs whose (package, core) pair is new; hyper-threads
 * share a core's arithmetic units and only add contention to these kernels.
 * Falls back to the online CPU count where the topology is not readable. */
int cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int online = n > 0 ? (int)n : 1, cores = 0;
	long seen[1024];
	for (int cpu = 0; cpu < online && cpu < 1024; cpu++) {
		char path[128];
		long pkg = 0, core = -1;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
		FILE *f = fopen(path, "r");
		if (!f || fscanf(f, "%ld", &core) != 1) {
			if (f)
				fclose(f);
			return online;
		}
		fclose(f);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%ld", &pkg) != 1)
				pkg = 0;
			fclose(f);
		}
		const long key = pkg * 100000 + core;
		int dup = 0;
		for (int i = 0; i < cores && !dup; i++)
			dup = seen[i] == key;
		if (!dup)
			seen[cores++] = key;
	}
	return cores > 0 ? cores : online;
}
