/* kv-state.h - copying a sequence's KV rows out of the paged cache and back
 * in, position by position, whatever the block layout (for saved state). */
#ifndef HEARTH_KV_STATE_H
#define HEARTH_KV_STATE_H

#include "kv-cache.h"

/* Bytes kv_state_get writes for n positions with local rows from local_from
 * (0 <= local_from <= n): for each layer (n - its first row) * (row_k +
 * row_v), its first row being local_from for a local layer and 0 for the
 * others; 0 when that overflows a size_t or the arguments are out of range. */
size_t kv_state_size(const struct kv_cache *kv, int32_t n, int32_t local_from);
/* Copies positions [0, n) of s (n <= s->n_tokens) into dst as, for each
 * layer in order, its key rows from its first row to n (row_k bytes each),
 * then its value rows (keys untransposed: the same bytes whatever
 * k_transposed is). local_from: kv_seq_local_from(s) or more (n: no local
 * rows at all). */
void kv_state_get(const struct kv_cache *kv, const struct kv_seq *s, int32_t n, int32_t local_from, void *dst);
/* Appends positions s->n_tokens .. s->n_tokens + n to s from src, the rows
 * kv_state_get wrote for n_src positions from local_from (s->n_tokens + n <=
 * n_src), and publishes the blocks they fill as a decode would (all_tokens:
 * s's tokens from position 0). HEARTH_EINVAL when the window after them
 * needs local rows from before local_from (the state cannot continue there),
 * HEARTH_ECTXFULL / HEARTH_ENOMEM as kv_seq_reserve: nothing changes then,
 * except that with sliding windows a reservation failing half way truncates
 * s back to its length (as kv_seq_truncate, which may empty it). */
int kv_state_put(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, const void *src, int32_t n_src,
		 int32_t local_from, int32_t n);

#endif /* HEARTH_KV_STATE_H */
