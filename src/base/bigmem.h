/* bigmem.h - large, long-lived buffers (repacked weights, the KV cache) on
 * their own anonymous pages, 2 MiB aligned and marked for transparent huge
 * pages.
 *
 * Streaming hundreds of MiB per token through 4 KiB pages costs a TLB miss
 * every 4 KiB (a two-level walk under a hypervisor), and prefetches into a
 * page the TLB does not hold yet may be dropped; 2 MiB pages remove both.
 * Where the kernel has no transparent huge pages the advice is ignored and
 * the buffer is an ordinary one. The memory comes back zeroed.
 */
#ifndef HEARTH_BIGMEM_H
#define HEARTH_BIGMEM_H

#include <stddef.h>

/* size bytes, zeroed and 2 MiB aligned, or NULL when out of memory. */
void *bigmem_alloc(size_t size);
/* Faults in every page of [p, p + size) (p from bigmem_alloc) now, so that
 * the first writes into it later do not each stop for the kernel to find and
 * zero a page. */
void bigmem_prefault(void *p, size_t size);
/* Frees what bigmem_alloc(size) returned (NULL is ignored). */
void bigmem_free(void *p, size_t size);

#endif /* HEARTH_BIGMEM_H */
