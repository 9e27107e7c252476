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
 *
 * Sliding windows: a local layer keeps only the blocks its window still
 * needs, so its rows are saved from local_from on (the first position the
 * cache still holds for it) and the others' from 0:
 *
 *   positions       0 ........ local_from ........ n
 *   global layer    [=============================]
 *   local layer                [==================]
 *
 * Restoring n positions then needs the local rows of the blocks the window
 * of position n starts in and after (kv_cache_window_start); positions
 * before local_from get none and their blocks are passed at once, so no
 * sequence ever attends to a row that was not restored.
 */
#include <assert.h>
#include <string.h>

#include "kv-state.h"

/* The first position of layer il with rows in a state. */
static int32_t first_row(const struct kv_cache *kv, int il, int32_t local_from)
{
	return kv->layer_local[il] ? local_from : 0;
}

size_t kv_state_size(const struct kv_cache *kv, int32_t n, int32_t local_from)
{
	const size_t per_pos = kv->row_k + kv->row_v;
	size_t total = 0;
	if (n <= 0 || local_from < 0 || local_from > n)
		return 0;
	for (int il = 0; il < kv->n_layer; il++) {
		const size_t rows = (size_t)(n - first_row(kv, il, local_from));
		if (rows && per_pos > (SIZE_MAX - total) / rows)
			return 0;
		total += per_pos * rows;
	}
	return total;
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

void kv_state_get(const struct kv_cache *kv, const struct kv_seq *s, int32_t n, int32_t local_from, void *dst)
{
	assert(n >= 0 && n <= s->n_tokens);
	assert(local_from >= kv_seq_local_from(kv, s) || local_from == n);
	uint8_t *p = dst;
	for (int il = 0; il < kv->n_layer; il++) {
		const int32_t first = first_row(kv, il, local_from);
		for (int32_t pos = first; pos < n; pos++, p += kv->row_k)
			key_row(kv, s, il, pos, p, false);
		for (int32_t pos = first; pos < n; pos++, p += kv->row_v)
			memcpy(p, kv_cache_v(kv, s, il, pos), kv->row_v);
	}
}

/* Whether n positions from local_from's rows can be appended to s: the
 * local rows of the blocks the window after them starts in and after are
 * there (or were there already). Always without sliding windows. */
static bool can_put(const struct kv_cache *kv, const struct kv_seq *s, int32_t local_from, int32_t n)
{
	const int32_t from = s->n_tokens, keep = kv_cache_window_start(kv, from + n);
	return n <= 0 || !kv->n_swa || (keep > from ? keep : from) >= local_from;
}

/* Writes positions [pos, end) of every layer from src (kv_state_get's
 * layout for n_src positions); local rows only from local_from on. */
static void put_rows(struct kv_cache *kv, struct kv_seq *s, const uint8_t *src, int32_t n_src, int32_t local_from,
		     int32_t pos, int32_t end)
{
	const uint8_t *p = src;
	for (int il = 0; il < kv->n_layer; il++) {
		const int32_t first = first_row(kv, il, local_from), n_rows = n_src - first;
		for (int32_t i = pos > first ? pos : first; i < end; i++) {
			key_row(kv, s, il, i, (uint8_t *)p + (size_t)(i - first) * kv->row_k, true);
			memcpy(kv_cache_v(kv, s, il, i), p + (size_t)n_rows * kv->row_k + (size_t)(i - first) * kv->row_v,
			       kv->row_v);
		}
		p += (size_t)n_rows * (kv->row_k + kv->row_v);
	}
}

int kv_state_put(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, const void *src, int32_t n_src,
		 int32_t local_from, int32_t n)
{
	const int32_t from = s->n_tokens, end = from + n, bs = kv->block_size;
	int rc;
	assert(n >= 0 && end <= n_src && local_from >= 0 && local_from <= n_src);
	if (n == 0)
		return 0;
	if (!can_put(kv, s, local_from, n))
		return HEARTH_EINVAL;
	if (kv_seq_blocks_needed(kv, s, n) > kv->n_free)
		return HEARTH_ECTXFULL;
	/* with sliding windows a block at a time, so that the blocks the window
	 * leaves give their local blocks back as a decode's would */
	for (int32_t pos = from, next; pos < end; pos = next) {
		next = kv->n_swa ? (pos / bs + 1) * bs : end;
		next = next < end ? next : end;
		if ((rc = kv_seq_reserve(kv, s, next - pos))) {
			kv_seq_truncate(kv, s, from);
			return rc;
		}
		put_rows(kv, s, src, n_src, local_from, pos, next);
		kv_seq_commit(kv, s, all_tokens, next - pos);
	}
	if (kv->n_swa && local_from > from) /* blocks with positions not restored: nobody attends to them */
		kv_seq_pass(kv, s, (local_from + bs - 1) / bs);
	return 0;
}
