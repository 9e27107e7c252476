/* test-bigmem.c - the huge-page buffers of repacked weights and the KV cache:
 * 2 MiB aligned, zeroed, every byte writable, refusals by NULL; prefaulted
 * buffers take no page faults when written. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include "../../src/base/bigmem.h"
#include "../harness.h"

void test_bigmem(void)
{
	const size_t sizes[] = { 1, 4096, (size_t)2 << 20, ((size_t)3 << 20) + 5 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		const size_t n = sizes[i];
		uint8_t *p = bigmem_alloc(n);
		T_TRUE(p != NULL);
		if (!p)
			continue;
		T_EQ_I64((int64_t)((uintptr_t)p % ((uintptr_t)2 << 20)), 0);
		size_t nonzero = 0;
		for (size_t k = 0; k < n; k += 4093)
			nonzero += p[k] != 0;
		nonzero += p[n - 1] != 0;
		T_EQ_I64((int64_t)nonzero, 0);
		memset(p, 0xa5, n); /* the whole size is ours */
		T_EQ_I64(p[n - 1], 0xa5);
		bigmem_free(p, n);
	}
	T_TRUE(bigmem_alloc(0) == NULL);
	T_TRUE(bigmem_alloc(SIZE_MAX) == NULL);
	bigmem_free(NULL, 0);
}

static long minor_faults(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_minflt;
}

/* Page faults taken writing one byte per 4 KiB into a fresh n-byte buffer,
 * prefaulted first or not. */
static long faults_writing(size_t n, bool prefault)
{
	uint8_t *p = bigmem_alloc(n);
	T_TRUE(p != NULL);
	if (!p)
		return -1;
	if (prefault)
		bigmem_prefault(p, n);
	const long before = minor_faults();
	for (size_t k = 0; k < n; k += 4096)
		p[k] = 1;
	p[n - 1] = 1;
	const long taken = minor_faults() - before;
	T_EQ_I64(p[4096], 1);
	bigmem_free(p, n);
	return taken;
}

void test_bigmem_prefault(void)
{
	/* 5 huge pages' worth: unprefaulted, writing faults at least once per
	 * 2 MiB page (2049 times without transparent huge pages); prefaulted,
	 * not at all (a sanitizer's shadow pages fault alike in both runs) */
	const size_t n = ((size_t)8 << 20) + 100;
	const long cold = faults_writing(n, false), warm = faults_writing(n, true);
	T_TRUE(cold >= 5);
	T_TRUE(warm <= cold - 5);
	bigmem_prefault(NULL, 0);
}
