/*
 * kv-state.c - a sequence's KV rows, out of the cache and back.
 *
 * Saved state holds each position's key and value rows exactly as the cache
 * stores them (f32, f16 or q8_0 bytes), so restoring them is a copy and the
 * restored cache is bit for bit the one that was saved: attention over it
 * gives the same numbers as over the original. Only the position order is
 * fixed by the format, not the block size: rows are gathered from (and
 * scattered to) whatever blocks hold them, and an f16 cache with transposed
 * key blocks (kv-cache.h) is untransposed on the way out and transposed
 * again on the way in.
 */
#include <assert.h>
#include <string.h>

#include "kv-state.h"

size_t kv_state_size(const struct kv_cache *kv, int32_t n)
{
	const size_t per_pos = kv->row_k + kv->row_v;
	if (n <= 0)
		return 0;
	if (per_pos > SIZE_MAX / (size_t)n || per_pos * (size_t)n > SIZE_MAX / (size_t)kv->n_layer)
		return 0;
	return per_pos * (size_t)n * (size_t)kv->n_layer;
}

/* Copies the key row of pos in layer il to or from row (to_cache). */
static void key_row(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos, uint8_t *row,
		    bool to_cache)
{
	uint8_t *k = kv_cache_k(kv, s, il, pos);
	if (!kv->k_transposed) {
		if (to_cache)
			memcpy(k, row, kv->row_k);
		else
			memcpy(row, k, kv->row_k);
		return;
	}
	/* f16 keys, element i at i * block_size elements from the first */
	const size_t stride = (size_t)kv->block_size * 2;
	for (int64_t i = 0; i < kv->width_k; i++) {
		if (to_cache)
			memcpy(k + (size_t)i * stride, row + 2 * i, 2);
		else
			memcpy(row + 2 * i, k + (size_t)i * stride, 2);
	}
}

void kv_state_get(const struct kv_cache *kv, const struct kv_seq *s, int32_t n, void *dst)
{
	assert(n >= 0 && n <= s->n_tokens);
	uint8_t *p = dst;
	for (int il = 0; il < kv->n_layer; il++) {
		for (int32_t pos = 0; pos < n; pos++, p += kv->row_k)
			key_row(kv, s, il, pos, p, false);
		for (int32_t pos = 0; pos < n; pos++, p += kv->row_v)
			memcpy(p, kv_cache_v(kv, s, il, pos), kv->row_v);
	}
}

int kv_state_put(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, const void *src, int32_t n_src,
		 int32_t n)
{
	int rc;
	const int32_t from = s->n_tokens;
	assert(n >= 0 && from + n <= n_src);
	if (n == 0)
		return 0;
	if ((rc = kv_seq_reserve(kv, s, n)))
		return rc;
	const uint8_t *p = src;
	for (int il = 0; il < kv->n_layer; il++) {
		const uint8_t *k = p + (size_t)from * kv->row_k;
		for (int32_t i = 0; i < n; i++, k += kv->row_k)
			key_row(kv, s, il, from + i, (uint8_t *)k, true);
		p += (size_t)n_src * kv->row_k;
		const uint8_t *v = p + (size_t)from * kv->row_v;
		for (int32_t i = 0; i < n; i++, v += kv->row_v)
			memcpy(kv_cache_v(kv, s, il, from + i), v, kv->row_v);
		p += (size_t)n_src * kv->row_v;
	}
	kv_seq_commit(kv, s, all_tokens, n);
	return 0;
}
