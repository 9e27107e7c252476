/* thread.c - see thread.h. A generation counter tells parked workers that a
 * new task is posted; a count of finished workers tells the owner it is done. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "thread.h"

struct pool {
	int n;                /* threads including the owner */
	pthread_t *threads;   /* n - 1 workers */
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	unsigned long gen;    /* bumped per task */
	int n_done;
	int quit;
	pool_task_fn fn;
	void *arg;
};

struct worker_start {
	struct pool *p;
	int ith;
};

static void *worker(void *a)
{
	struct worker_start *ws = a;
	struct pool *p = ws->p;
	const int ith = ws->ith;
	unsigned long seen = 0;
	free(ws);

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->wake, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		pool_task_fn fn = p->fn;
		void *arg = p->arg;
		pthread_mutex_unlock(&p->mu);
		fn(arg, ith, p->n);
		pthread_mutex_lock(&p->mu);
		if (++p->n_done == p->n - 1)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
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
	p->quit = 1;
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
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->arg = arg;
	p->n_done = 0;
	p->gen++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	fn(arg, 0, p->n);
	pthread_mutex_lock(&p->mu);
	while (p->n_done < p->n - 1)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}
