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

static atomic_bool armed;
static atomic_long seen;   /* allocations since fault_arm */
static atomic_long target; /* the one that fails (0: none) */
static atomic_bool persist; /* and every one after it */
static atomic_bool fired;

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

/* Counts one allocation; true when it is the one to fail. */
static bool fail_now(void)
{
	if (!atomic_load(&armed))
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
