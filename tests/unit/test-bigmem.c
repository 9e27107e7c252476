/* test-bigmem.c - the huge-page buffers of repacked weights and the KV cache:
 * 2 MiB aligned, zeroed, every byte writable, refusals by NULL. */
#include <stdint.h>
#include <string.h>

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
