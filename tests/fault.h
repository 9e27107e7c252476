/* fault.h - fault injection: make the Nth allocation fail (SQLite's malloc
 * fault simulation).
 *
 * The mechanism is link-time wrapping, not a replaceable allocator in the
 * library: the test runner alone is linked with -Wl,--wrap=malloc (and
 * calloc, realloc, strdup, posix_memalign, aligned_alloc, mmap; see the
 * Makefile), so every such call that libhearth's objects and the tests make
 * goes through fault.c first. Why this way:
 *   - it covers every call site, including those added later by anyone who
 *     writes a plain malloc: a library-wide allocation function covers only
 *     the calls routed through it, and nothing would flag one that is not;
 *   - libhearth keeps plain malloc/free and no test hook or global state of
 *     its own (the shipped library has nothing to misuse or forget to reset);
 *   - mmap is counted too, so the huge-page buffers (weights repacked at load,
 *     the KV cache) and the GGUF mapping fail like any allocation.
 * What it does not reach: allocations inside shared libraries (PCRE2,
 * utf8proc, jansson, glibc's own such as qsort's or pthread_create's), whose
 * failures those libraries report through results the library checks.
 * pthread_once singletons are built by the first call in a test process,
 * before a sweep arms the counter, so their failure paths are not swept.
 *
 * Thread-safe: the scheduler thread's allocations count as well.
 */
#ifndef HEARTH_FAULT_H
#define HEARTH_FAULT_H

#include <stdbool.h>

#include "hearth.h"

/* Starts counting allocations from 0; the nth from now (n >= 1) fails, and
 * only that one, or with persistent every one from it on (n = 0: none fails,
 * only count). */
void fault_arm(long n, bool persistent);
/* Stops counting and failing; returns the allocations counted since fault_arm. */
long fault_disarm(void);
/* Did the armed allocation fail since fault_arm? */
bool fault_fired(void);
/* While paused, allocations are neither counted nor failed (a test's own
 * steps inside a swept path, or a library's that would blur the result). */
void fault_pause(bool pause);

#define FAULT_WRONG 1 /* a path claimed success with a wrong result */

/* One run of a path. Returns 0 when it succeeded and its result is right,
 * its HEARTH_E* code when it reported an error (then *err says what), or
 * FAULT_WRONG. It may call fault_disarm() itself before checking a result,
 * so that the check's own allocations are not counted. */
typedef int (*fault_path_fn)(void *ctx, bool first, struct hearth_err *err);

/* Runs fn once clean (first = true: it records the right result), then with
 * allocation k failing for every k up to 120 and about 80 more evenly spaced
 * to the last, once failing alone and once failing with every allocation
 * after it (SQLite's transient and persistent faults). A wrong result, an
 * error other than HEARTH_ENOMEM or one without a message fails the test. */
void fault_sweep(const char *what, fault_path_fn fn, void *ctx);

#endif /* HEARTH_FAULT_H */
