/*
 * models.c - the models a server serves: a registry of names and files,
 * each model loaded on its first request and unloaded when it has been idle
 * for its idle time (--idle-unload, or an Ollama request's keep_alive) or
 * when another model needs its room (--max-loaded: the least recently used
 * idle one goes). A model with requests in flight is never unloaded.
 *
 * States, all changed under the registry's lock (loads and unloads run
 * outside it, by the thread that set LOADING or UNLOADING):
 *
 *   UNLOADED --acquire--> LOADING --ok--> LOADED --idle / room--> UNLOADING --> UNLOADED
 *                            \--failed: UNLOADED with failed_at (retried after MODELS_RETRY_S)
 *
 * Concurrent first requests wait on the condition variable for the one load;
 * a load that failed answers every waiter with its error, and the next load
 * is tried only MODELS_RETRY_S later, so a broken file is not reloaded by
 * every request. Resident models (LOADING, LOADED, UNLOADING) count against
 * --max-loaded; a request that finds no idle model to unload waits up to its
 * wait time for one, then gets HEARTH_EBUSY (a 503 with Retry-After).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define MODELS_RETRY_S 5.0    /* a failed load is tried again after this */
#define REAPER_TICK_MS 250

static int fail(struct hearth_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct hearth_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

bool models_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > MODEL_NAME_MAX || name[0] == '.' || name[0] == '/' || name[0] == '-' || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		const char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._-:/+", c)))
			return false;
	}
	return true;
}

bool models_split_arg(const char *arg, char *buf, size_t size, const char **name, const char **file, char *why,
		      size_t why_size)
{
	struct stat st;
	size_t n = strlen(arg);
	*name = NULL;
	*file = NULL;
	if (n == 0 || n >= size) {
		snprintf(why, why_size, "-m needs a FILE or NAME=FILE of at most %zu bytes", size - 1);
		return false;
	}
	memcpy(buf, arg, n + 1);
	char *eq = strchr(buf, '=');
	if (!eq || (stat(arg, &st) == 0 && S_ISREG(st.st_mode))) {
		*file = buf;
		return true;
	}
	*eq = 0;
	if (!models_name_ok(buf) || !eq[1]) {
		snprintf(why, why_size,
			 "-m %.200s: NAME=FILE needs a name of 1 to %d letters, digits or . _ - : / + (not starting with . / -) "
			 "and a file", arg, MODEL_NAME_MAX);
		return false;
	}
	*name = buf;
	*file = eq + 1;
	return true;
}

int models_init(struct models *ms)
{
	memset(ms, 0, sizeof *ms);
	ms->idle_s = INFINITY;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca))
		return HEARTH_ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&ms->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return HEARTH_ENOMEM;
	if (pthread_mutex_init(&ms->mu, NULL)) {
		pthread_cond_destroy(&ms->cv);
		return HEARTH_ENOMEM;
	}
	return 0;
}

static struct served_model *find_exact(struct models *ms, const char *name)
{
	for (int i = 0; i < ms->n; i++)
		if (!strcmp(ms->m[i]->name, name))
			return ms->m[i];
	return NULL;
}

struct served_model *models_find(struct models *ms, const char *name)
{
	struct served_model *sm = find_exact(ms, name);
	size_t n = strlen(name);
	const char *plus = strrchr(name, '+');
	if (!sm && plus && (size_t)(plus - name) <= MODEL_NAME_MAX) { /* "BASE+ADAPTER": the base (adapters.c) */
		char base[MODEL_NAME_MAX + 1];
		memcpy(base, name, (size_t)(plus - name));
		base[plus - name] = 0;
		if ((sm = find_exact(ms, base)))
			return sm;
	}
	if (!sm && n > 7 && !strcmp(name + n - 7, ":latest")) { /* Ollama's default tag */
		char base[MODEL_NAME_MAX + 1];
		if (n - 7 <= MODEL_NAME_MAX) {
			memcpy(base, name, n - 7);
			base[n - 7] = 0;
			sm = find_exact(ms, base);
		}
	}
	return sm;
}

static void model_free(struct served_model *sm)
{
	if (!sm)
		return;
	load_free(sm);
	metrics_free(sm->metrics);
	free(sm->name);
	free(sm->path);
	free(sm);
}

int models_add(struct models *ms, struct server *srv, const char *name, const char *path, struct hearth_err *err)
{
	struct stat st;
	if (!models_name_ok(name))
		return fail(err, HEARTH_EINVAL, "model name '%.200s': use 1 to %d letters, digits or . _ - : / + (not starting "
			    "with . / -)", name, MODEL_NAME_MAX);
	if (find_exact(ms, name))
		return fail(err, HEARTH_EINVAL, "model name '%s' is given twice", name);
	if (ms->n >= MODELS_MAX)
		return fail(err, HEARTH_EINVAL, "more than %d models", MODELS_MAX);
	if (stat(path, &st) || (S_ISREG(st.st_mode) && access(path, R_OK)))
		return fail(err, HEARTH_EIO, "model '%s': %s: %s", name, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, HEARTH_EIO, "model '%s': %s: not a regular file", name, path);
	struct served_model *sm = calloc(1, sizeof *sm);
	if (!sm || !(sm->name = strdup(name)) || !(sm->path = strdup(path)) || metrics_new(&sm->metrics)) {
		model_free(sm);
		return fail(err, HEARTH_ENOMEM, "out of memory registering model '%s'", name);
	}
	sm->srv = srv;
	sm->modified = (long)st.st_mtime;
	sm->file_size = (uint64_t)st.st_size;
	sm->sp = srv->sp;
	sm->n_ctx_seq = srv->sp.n_ctx_seq;
	sm->size = (uint64_t)st.st_size;
	sm->idle_s = ms->idle_s;
	sm->state = MODEL_UNLOADED;
	ms->m[ms->n] = sm; /* filled before n makes it visible to readers */
	atomic_fetch_add(&ms->n, 1);
	return 0;
}

int models_add_live(struct models *ms, struct server *srv, const char *name, const char *path,
		    struct hearth_err *err)
{
	pthread_mutex_lock(&ms->mu);
	int rc = find_exact(ms, name) ? 0 : models_add(ms, srv, name, path, err);
	pthread_mutex_unlock(&ms->mu);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is the *.gguf entry e of dir (real path rdir) a regular file inside dir? */
static bool dir_entry_ok(const char *dir, const char *rdir, const char *e, char *path, size_t size)
{
	struct stat st;
	char real[PATH_MAX];
	if ((size_t)snprintf(path, size, "%s/%s", dir, e) >= size || lstat(path, &st))
		return false;
	if (S_ISLNK(st.st_mode)) { /* only links that stay inside dir */
		size_t n = strlen(rdir);
		if (!realpath(path, real) || strncmp(real, rdir, n) || real[n] != '/' || stat(real, &st))
			return false;
	}
	return S_ISREG(st.st_mode);
}

int models_add_dir(struct models *ms, struct server *srv, const char *dir, struct hearth_err *err)
{
	char rdir[PATH_MAX], path[PATH_MAX], name[MODEL_NAME_MAX + 1];
	char *names[MODELS_MAX];
	int n = 0, added = 0, rc = 0;
	struct dirent *e;
	DIR *d = opendir(dir);
	if (!d || !realpath(dir, rdir)) {
		int why = errno;
		if (d)
			closedir(d);
		return fail(err, HEARTH_EIO, "--models-dir %s: %s", dir, strerror(why));
	}
	while ((e = readdir(d)) && n < MODELS_MAX) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".gguf") || e->d_name[0] == '.')
			continue;
		if (!(names[n] = strdup(e->d_name))) {
			rc = fail(err, HEARTH_ENOMEM, "out of memory reading --models-dir %s", dir);
			break;
		}
		n++;
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof *names, cmp_str); /* a stable order: the first is the default */
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]) - 5;
		if (rc == 0 && len <= MODEL_NAME_MAX) {
			memcpy(name, names[i], len);
			name[len] = 0;
		}
		if (rc || len > MODEL_NAME_MAX || !models_name_ok(name) || strchr(name, '/') ||
		    !dir_entry_ok(dir, rdir, names[i], path, sizeof path)) {
			if (!rc)
				fprintf(stderr, "hearth serve: --models-dir: skipping '%s' (not a sane name, or not a regular "
						"file inside the folder)\n", names[i]);
		} else if ((rc = models_add(ms, srv, name, path, err)) == 0) {
			added++;
		}
		free(names[i]);
	}
	return rc ? rc : added;
}

/* Models holding memory now. */
static int n_resident(const struct models *ms)
{
	int n = 0;
	for (int i = 0; i < ms->n; i++)
		n += ms->m[i]->state != MODEL_UNLOADED;
	return n;
}

/* The least recently used loaded model without requests, or NULL. */
static struct served_model *lru_idle(struct models *ms)
{
	struct served_model *best = NULL;
	for (int i = 0; i < ms->n; i++) {
		struct served_model *m = ms->m[i];
		if (m->state == MODEL_LOADED && m->in_use == 0 && (!best || m->last_used < best->last_used))
			best = m;
	}
	return best;
}

/* Waits on the condition until woken or until the monotonic time `until` (seconds). */
static void wait_until(struct models *ms, double until)
{
	struct timespec now, ts;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double t = (double)now.tv_sec + now.tv_nsec * 1e-9, left = until - t;
	if (left <= 0)
		return;
	if (left > 1.0)
		left = 1.0; /* wakes at least every second to see `stopping` */
	t += left;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&ms->cv, &ms->mu, &ts);
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Loads sm (set LOADING by the caller, lock held), unloading victim first
 * (set UNLOADING, or NULL); returns with the lock held again. */
static int load_locked(struct models *ms, struct served_model *sm, struct served_model *victim, struct hearth_err *err)
{
	pthread_mutex_unlock(&ms->mu);
	if (victim) {
		fprintf(stderr, "hearth serve: unloading '%s' to make room for '%s' (--max-loaded %d)\n", victim->name,
			sm->name, ms->max_loaded);
		load_free(victim);
	}
	fprintf(stderr, "hearth serve: loading '%s'\n", sm->name);
	int rc = load_model(sm, ms->template_src, ms->template_len, err);
	if (rc == 0)
		fprintf(stderr, "hearth serve: '%s' loaded in %.2f s (%s answers, %d parallel, %d tokens per request)\n",
			sm->name, sm->load_s, hearth_chat_format_name(sm->chat), sm->sp.n_parallel, sm->sp.n_ctx_seq);
	else
		fprintf(stderr, "hearth serve: model '%s' failed to load: %s\n", sm->name, err->msg);
	pthread_mutex_lock(&ms->mu);
	if (victim)
		victim->state = MODEL_UNLOADED;
	if (rc) {
		sm->state = MODEL_UNLOADED;
		sm->failed_at = hearth_now();
		snprintf(sm->failed_msg, sizeof sm->failed_msg, "%s", err->msg);
	} else {
		sm->state = MODEL_LOADED;
		sm->failed_at = 0;
		sm->loaded_at = (long)time(NULL);
		sm->n_ctx_seq = sm->sp.n_ctx_seq;
		sm->size = hearth_model_size(sm->model);
	}
	pthread_cond_broadcast(&ms->cv);
	return rc;
}

int models_acquire(struct models *ms, const char *name, double wait_s, struct served_model **out, double *load_s,
		   struct hearth_err *err)
{
	const double deadline = mono_now() + wait_s;
	int rc = 0;
	*out = NULL;
	*load_s = 0;
	pthread_mutex_lock(&ms->mu);
	struct served_model *sm = name && *name ? models_find(ms, name) : ms->n ? ms->m[0] : NULL;
	if (!sm) {
		pthread_mutex_unlock(&ms->mu);
		return fail(err, HEARTH_ENOTFOUND, "The model '%.200s' does not exist", name ? name : "");
	}
	for (;;) {
		if (ms->stopping) {
			rc = fail(err, HEARTH_ESHUTDOWN, "the server is shutting down");
			break;
		}
		if (sm->state == MODEL_LOADED) {
			sm->in_use++;
			sm->last_used = hearth_now();
			*out = sm;
			break;
		}
		if (sm->state != MODEL_UNLOADED) { /* another request loads or unloads it */
			wait_until(ms, mono_now() + 1.0);
			continue;
		}
		if (sm->failed_at > 0 && hearth_now() - sm->failed_at < MODELS_RETRY_S) {
			rc = fail(err, HEARTH_EIO, "%s", sm->failed_msg);
			break;
		}
		struct served_model *victim = NULL;
		if (ms->max_loaded > 0 && n_resident(ms) >= ms->max_loaded) {
			if (!(victim = lru_idle(ms))) {
				if (mono_now() >= deadline) {
					rc = fail(err, HEARTH_EBUSY, "every loaded model is busy (--max-loaded %d)", ms->max_loaded);
					break;
				}
				wait_until(ms, deadline);
				continue;
			}
			victim->state = MODEL_UNLOADING;
		}
		sm->state = MODEL_LOADING;
		const double t0 = hearth_now();
		if ((rc = load_locked(ms, sm, victim, err)))
			break;
		*load_s = hearth_now() - t0;
		/* loaded: taken in the next turn (unless the server began to stop) */
	}
	pthread_mutex_unlock(&ms->mu);
	return rc;
}

void models_release(struct models *ms, struct served_model *sm, double keep_s)
{
	if (!sm)
		return;
	pthread_mutex_lock(&ms->mu);
	assert(sm->in_use > 0);
	sm->in_use--;
	sm->last_used = hearth_now();
	sm->idle_s = keep_s < 0 ? ms->idle_s : keep_s;
	pthread_cond_broadcast(&ms->cv);
	pthread_mutex_unlock(&ms->mu);
}

bool models_peek(struct models *ms, struct served_model *sm)
{
	pthread_mutex_lock(&ms->mu);
	const bool ok = sm->state == MODEL_LOADED;
	sm->in_use += ok;
	pthread_mutex_unlock(&ms->mu);
	return ok;
}

void models_unpeek(struct models *ms, struct served_model *sm)
{
	pthread_mutex_lock(&ms->mu);
	assert(sm->in_use > 0);
	sm->in_use--;
	pthread_cond_broadcast(&ms->cv);
	pthread_mutex_unlock(&ms->mu);
}

int models_reap(struct models *ms, double now)
{
	int n = 0;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < ms->n; i++) {
		struct served_model *sm = ms->m[i];
		if (sm->state != MODEL_LOADED || sm->in_use > 0 || !(now - sm->last_used >= sm->idle_s))
			continue;
		sm->state = MODEL_UNLOADING;
		pthread_mutex_unlock(&ms->mu);
		fprintf(stderr, "hearth serve: unloading '%s' (idle %.0f s)\n", sm->name, now - sm->last_used);
		load_free(sm);
		pthread_mutex_lock(&ms->mu);
		sm->state = MODEL_UNLOADED;
		pthread_cond_broadcast(&ms->cv);
		n++;
	}
	pthread_mutex_unlock(&ms->mu);
	return n;
}

static void *reaper(void *arg)
{
	struct models *ms = arg;
	for (;;) {
		pthread_mutex_lock(&ms->mu);
		if (!ms->stopping)
			wait_until(ms, mono_now() + REAPER_TICK_MS / 1000.0);
		const bool stop = ms->stopping;
		pthread_mutex_unlock(&ms->mu);
		if (stop)
			return NULL;
		models_reap(ms, hearth_now());
	}
}

int models_start_reaper(struct models *ms)
{
	if (pthread_create(&ms->reaper, NULL, reaper, ms))
		return HEARTH_ENOMEM;
	ms->reaper_running = true;
	return 0;
}

void models_view(struct models *ms, const struct served_model *sm, struct model_view *v)
{
	pthread_mutex_lock(&ms->mu);
	v->state = sm->state;
	v->in_use = sm->in_use;
	v->last_used = sm->last_used;
	v->idle_s = sm->idle_s;
	v->created = sm->loaded_at;
	v->n_ctx_seq = sm->n_ctx_seq;
	v->size = sm->size;
	pthread_mutex_unlock(&ms->mu);
}

void models_free(struct models *ms)
{
	pthread_mutex_lock(&ms->mu);
	ms->stopping = true;
	pthread_cond_broadcast(&ms->cv);
	pthread_mutex_unlock(&ms->mu);
	if (ms->reaper_running)
		pthread_join(ms->reaper, NULL);
	ms->reaper_running = false;
	for (int i = 0; i < ms->n; i++)
		model_free(ms->m[i]);
	ms->n = 0;
	pthread_cond_destroy(&ms->cv);
	pthread_mutex_destroy(&ms->mu);
}

int server_load(struct server *srv, const char *template_src, size_t template_len, struct hearth_err *err)
{
	struct served_model *sm;
	double load_s;
	int rc = models_init(&srv->models);
	if (rc)
		return fail(err, rc, "out of memory");
	srv->models.template_src = template_src;
	srv->models.template_len = template_len;
	if ((rc = models_add(&srv->models, srv, srv->alias ? srv->alias : "model", srv->model_path, err)) ||
	    (rc = models_acquire(&srv->models, NULL, 0, &sm, &load_s, err))) {
		models_free(&srv->models);
		return rc;
	}
	models_release(&srv->models, sm, -1);
	return 0;
}

void server_unload(struct server *srv)
{
	models_free(&srv->models);
}
