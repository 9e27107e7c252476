/* kv-state.h - copying a sequence's KV rows out of the paged cache and back
 * in, position by position, whatever the block layout (for saved state). */
#ifndef HEARTH_KV_STATE_H
#define HEARTH_KV_STATE_H

#include "kv-cache.h"

/* Bytes kv_state_get writes for n positions: n_layer * n * (row_k + row_v),
 * or 0 when that overflows a size_t. */
size_t kv_state_size(const struct kv_cache *kv, int32_t n);
/* Copies positions [0, n) of s (n <= s->n_tokens) into dst as, for each
 * layer in order, n key rows of row_k bytes then n value rows of row_v bytes
 * (keys untransposed: the same bytes whatever k_transposed is). */
void kv_state_get(const struct kv_cache *kv, const struct kv_seq *s, int32_t n, void *dst);
/* Appends positions s->n_tokens .. s->n_tokens + n to s from src, the rows
 * kv_state_get wrote for n_src positions (s->n_tokens + n <= n_src), and
 * publishes the blocks they fill as a decode would (all_tokens: s's tokens
 * from position 0). HEARTH_ECTXFULL / HEARTH_ENOMEM as kv_seq_reserve;
 * nothing changes then. */
int kv_state_put(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, const void *src, int32_t n_src,
		 int32_t n);

#endif /* HEARTH_KV_STATE_H */
