/* fault.c - the allocation wrappers behind fault.h.
 *
 * With -Wl,--wrap=malloc the linker sends every call to malloc in the test
 * runner's own objects (libhearth.a's included) to __wrap_malloc, and
 * __real_malloc names the C library's. The double-underscore names are the
 * linker's convention, not ours to choose. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "fault.h"
#include "harness.h"

static atomic_bool armed;
static atomic_long seen;   /* allocations since fault_arm */
static atomic_long target; /* the one that fails (0: none) */
static atomic_bool persist; /* and every one after it */
static atomic_bool fired;
static atomic_bool paused; /* allocations neither counted nor failed */

void fault_arm(long n, bool persistent)
{
	atomic_store(&seen, 0);
	atomic_store(&target, n);
	atomic_store(&persist, persistent);
	atomic_store(&fired, false);
	atomic_store(&armed, true);
}

long fault_disarm(void)
{
	atomic_store(&armed, false);
	return atomic_load(&seen);
}

bool fault_fired(void) { return atomic_load(&fired); }

void fault_pause(bool pause) { atomic_store(&paused, pause); }

/* Counts one allocation; true when it is the one to fail. */
static bool fail_now(void)
{
	if (!atomic_load(&armed) || atomic_load(&paused))
		return false;
	long k = atomic_fetch_add(&seen, 1) + 1, t = atomic_load(&target);
	if (t == 0 || k < t || (k > t && !atomic_load(&persist)))
		return false;
	atomic_store(&fired, true);
	return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

/* A failed realloc leaves the old block as it was, as the real one does. */
void *__wrap_realloc(void *p, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
	if (fail_now())
		return ENOMEM;
	return __real_posix_memalign(p, align, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_aligned_alloc(align, n);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fail_now()) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

/* ---- sweeps ---- */

enum {
	FULL = 120,  /* every allocation up to this one fails in turn */
	SPREAD = 80, /* then about this many more runs, evenly spaced to the last */
};

static long next_k(long k, long n)
{
	if (k < FULL)
		return k + 1;
	long stride = (n - FULL + SPREAD - 1) / SPREAD;
	if (stride < 1)
		stride = 1;
	return k < n && k + stride > n ? n : k + stride;
}

void fault_sweep(const char *what, fault_path_fn fn, void *ctx)
{
	struct hearth_err err = { 0 };
	fault_arm(0, false);
	int rc = fn(ctx, true, &err);
	const long n = fault_disarm();
	if (rc) {
		T_FAIL("%s: fails with no fault injected: %s", what, err.msg);
		return;
	}
	long runs = 0, errors = 0, absorbed = 0;
	for (int persistent = 0; persistent < 2; persistent++)
		for (long k = 1; k <= n; k = next_k(k, n)) {
			const char *mode = persistent ? " and every one after" : "";
			memset(&err, 0, sizeof err);
			fault_arm(k, persistent);
			rc = fn(ctx, false, &err);
			fault_disarm();
			runs++;
			if (rc == FAULT_WRONG)
				T_FAIL("%s: allocation %ld of %ld%s failed and it went on to a wrong result", what, k, n, mode);
			else if (rc && rc != HEARTH_ENOMEM)
				T_FAIL("%s: allocation %ld of %ld%s failed, reported as %s (%s)", what, k, n, mode,
				       hearth_err_name(rc), err.msg);
			else if (rc && !err.msg[0])
				T_FAIL("%s: allocation %ld of %ld%s failed, reported with no message", what, k, n, mode);
			else if (rc)
				errors++;
			else
				absorbed += fault_fired();
		}
	printf("     %-48s %6ld allocations, %3ld runs: %3ld errors, %3ld absorbed\n", what, n, runs, errors, absorbed);
}

