/* bigmem.c - see bigmem.h. */
#include "bigmem.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t round_up(size_t n) { return (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE; }

void *bigmem_alloc(size_t size)
{
	if (size == 0 || size > SIZE_MAX - 2 * HUGE_PAGE)
		return NULL;
	const size_t len = round_up(size);
	/* map a huge page more than needed, then unmap the unaligned ends */
	uint8_t *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (raw + len + HUGE_PAGE > p + len)
		munmap(p + len, (size_t)(raw + len + HUGE_PAGE - (p + len)));
#ifdef MADV_HUGEPAGE
	madvise(p, len, MADV_HUGEPAGE); /* advice: refused (no THP) leaves ordinary pages */
#endif
	return p;
}

void bigmem_prefault(void *p, size_t size)
{
	if (!p || !size)
		return;
#ifdef MADV_POPULATE_WRITE
	if (!madvise(p, round_up(size), MADV_POPULATE_WRITE))
		return;
#endif
	/* older kernels: one write per base page (the memory is zero already) */
	volatile uint8_t *b = p;
	for (size_t i = 0; i < size; i += 4096)
		b[i] = 0;
}

void bigmem_free(void *p, size_t size)
{
	if (p)
		munmap(p, round_up(size));
}
