/* kv-cache.c - the paged KV cache and its prefix cache (see kv-cache.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/bigmem.h"
#include "../base/err.h"
#include "../tensor/qtype.h"
#include "kv-cache.h"

#define HASH_SEED 0x6a09e667f3bcc908ULL

static uint64_t block_hash(uint64_t parent, const int32_t *tokens, int32_t n)
{
	uint64_t h = parent ^ 0xcbf29ce484222325ULL;
	for (int32_t i = 0; i < n; i++) {
		uint32_t t = (uint32_t)tokens[i];
		for (int b = 0; b < 4; b++) {
			h ^= (t >> (8 * b)) & 0xff;
			h *= 0x100000001b3ULL;
		}
	}
	h ^= h >> 31;
	return h ? h : 1; /* 0 means "not named" */
}

/* ---- the free list ---------------------------------------------------------- */

static void list_remove(struct kv_cache *kv, int32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (!b->in_list)
		return;
	if (b->prev >= 0)
		kv->blocks[b->prev].next = b->next;
	else
		kv->head = b->next;
	if (b->next >= 0)
		kv->blocks[b->next].prev = b->prev;
	else
		kv->tail = b->prev;
	b->prev = b->next = -1;
	b->in_list = false;
	kv->n_free--;
}

/* Unnamed blocks go first in line for reuse; named ones last (LRU). */
static void list_add(struct kv_cache *kv, int32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (b->hash == 0) {
		b->prev = -1;
		b->next = kv->head;
		if (kv->head >= 0)
			kv->blocks[kv->head].prev = id;
		else
			kv->tail = id;
		kv->head = id;
	} else {
		b->next = -1;
		b->prev = kv->tail;
		if (kv->tail >= 0)
			kv->blocks[kv->tail].next = id;
		else
			kv->head = id;
		kv->tail = id;
	}
	b->in_list = true;
	kv->n_free++;
}

/* ---- the index of published blocks (linear probing, backward-shift delete) ---- */

static size_t slot_of(const struct kv_cache *kv, uint64_t h) { return (size_t)(h * 0x9e3779b97f4a7c15ULL) & (kv->index_cap - 1); }

static int32_t index_find(const struct kv_cache *kv, uint64_t h)
{
	for (size_t i = slot_of(kv, h);; i = (i + 1) & (kv->index_cap - 1)) {
		int32_t id = kv->index[i];
		if (id < 0)
			return -1;
		if (kv->blocks[id].hash == h)
			return id;
	}
}

static void index_insert(struct kv_cache *kv, int32_t id)
{
	size_t i = slot_of(kv, kv->blocks[id].hash);
	while (kv->index[i] >= 0)
		i = (i + 1) & (kv->index_cap - 1);
	kv->index[i] = id;
}

static void index_remove(struct kv_cache *kv, int32_t id)
{
	size_t i = slot_of(kv, kv->blocks[id].hash), mask = kv->index_cap - 1;
	while (kv->index[i] != id)
		i = (i + 1) & mask;
	kv->index[i] = -1;
	/* shift back the entries after the hole that probed past it */
	for (size_t j = (i + 1) & mask; kv->index[j] >= 0; j = (j + 1) & mask) {
		size_t home = slot_of(kv, kv->blocks[kv->index[j]].hash);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			kv->index[i] = kv->index[j];
			kv->index[j] = -1;
			i = j;
		}
	}
}

static void unpublish(struct kv_cache *kv, int32_t id)
{
	if (kv->blocks[id].hash) {
		index_remove(kv, id);
		kv->blocks[id].hash = 0;
	}
}

/* ---- cache -------------------------------------------------------------------- */

/* The bytes of the K or V store, rows of row bytes. */
static size_t kv_bytes(const struct kv_cache *kv, size_t row)
{
	return (size_t)kv->n_layer * (size_t)kv->n_blocks * (size_t)kv->block_size * row;
}

int kv_cache_init(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		  int32_t block_size, int type, struct hearth_err *err)
{
	memset(kv, 0, sizeof *kv);
	if (block_size < 1 || n_tokens_total < 1)
		return err_set(err, HEARTH_EINVAL, "kv cache: %d tokens in blocks of %d", n_tokens_total, block_size);
	kv->n_layer = n_layer;
	kv->block_size = block_size;
	kv->n_blocks = (n_tokens_total + block_size - 1) / block_size;
	kv->width_k = width_k;
	kv->width_v = width_v;
	kv->type = type;
	if (type == HEARTH_TYPE_Q8_0 && (width_k % QK8_0 || width_v % QK8_0)) /* callers check each head's width */
		return err_set(err, HEARTH_EINVAL, "kv cache: q8_0 rows must be multiples of %d wide", QK8_0);
	kv->row_k = qtype_row_size(type, width_k);
	kv->row_v = qtype_row_size(type, width_v);
	kv->head = kv->tail = -1;
	kv->name_block = block_hash;
	const size_t cells = (size_t)n_layer * (size_t)kv->n_blocks * (size_t)block_size;
	/* the kernel hands out more than the machine has and lets the filling fail
	 * later; refuse what cannot fit at all, up front and by name */
	const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	const double need = (double)cells * (double)(kv->row_k + kv->row_v), have = (double)pages * (double)page;
	if (pages > 0 && page > 0 && need > have)
		return err_set(err, HEARTH_ENOMEM, "kv cache: %d tokens need %.1f GiB, more than this machine's %.1f GiB",
			       n_tokens_total, need / 1073741824.0, have / 1073741824.0);
	kv->k_data = bigmem_alloc(cells * kv->row_k);
	kv->v_data = bigmem_alloc(cells * kv->row_v);
	kv->blocks = calloc((size_t)kv->n_blocks, sizeof *kv->blocks);
	kv->index_cap = 16;
	while (kv->index_cap < 2 * (size_t)kv->n_blocks)
		kv->index_cap *= 2;
	kv->index = malloc(kv->index_cap * sizeof *kv->index);
	int32_t *tok = malloc((size_t)kv->n_blocks * (size_t)block_size * sizeof *tok);
	if (!kv->k_data || !kv->v_data || !kv->blocks || !kv->index || !tok) {
		free(tok);
		kv_cache_free(kv);
		return err_set(err, HEARTH_ENOMEM, "kv cache: out of memory for %d tokens", n_tokens_total);
	}
	for (size_t i = 0; i < kv->index_cap; i++)
		kv->index[i] = -1;
	for (int32_t i = 0; i < kv->n_blocks; i++) {
		kv->blocks[i].prev = kv->blocks[i].next = -1;
		kv->blocks[i].tokens = tok + (size_t)i * (size_t)block_size;
	}
	for (int32_t i = kv->n_blocks - 1; i >= 0; i--)
		list_add(kv, i);
	return 0;
}

void kv_cache_free(struct kv_cache *kv)
{
	if (kv->blocks)
		free(kv->blocks[0].tokens);
	free(kv->blocks);
	free(kv->index);
	bigmem_free(kv->k_data, kv_bytes(kv, kv->row_k));
	bigmem_free(kv->v_data, kv_bytes(kv, kv->row_v));
	memset(kv, 0, sizeof *kv);
}

static void *row(const struct kv_cache *kv, void *data, size_t row_size, const struct kv_seq *s, int il, int32_t pos)
{
	const int32_t blk = s->table[pos / kv->block_size], slot = pos % kv->block_size;
	size_t cell = ((size_t)il * (size_t)kv->n_blocks + (size_t)blk) * (size_t)kv->block_size + (size_t)slot;
	return (char *)data + cell * row_size;
}

void *kv_cache_k(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos)
{
	return row(kv, kv->k_data, kv->row_k, s, il, pos);
}

void *kv_cache_v(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos)
{
	return row(kv, kv->v_data, kv->row_v, s, il, pos);
}

int32_t kv_cache_used(const struct kv_cache *kv)
{
	int32_t used = 0;
	for (int32_t i = 0; i < kv->n_blocks; i++)
		used += kv->blocks[i].ref > 0;
	return used;
}

int32_t kv_seq_blocks_needed(const struct kv_cache *kv, const struct kv_seq *s, int32_t n)
{
	int32_t need = (s->n_tokens + n + kv->block_size - 1) / kv->block_size;
	return need > s->n_blocks ? need - s->n_blocks : 0;
}

static int table_grow(struct kv_seq *s, int32_t n)
{
	if (n <= s->cap_blocks)
		return 0;
	int32_t cap = s->cap_blocks ? s->cap_blocks : 8;
	while (cap < n)
		cap *= 2;
	int32_t *t = realloc(s->table, (size_t)cap * sizeof *t);
	if (!t)
		return HEARTH_ENOMEM;
	s->table = t;
	uint64_t *h = realloc(s->hashes, (size_t)cap * sizeof *h);
	if (!h)
		return HEARTH_ENOMEM;
	s->hashes = h;
	s->cap_blocks = cap;
	return 0;
}

static uint64_t prefix_name(const struct kv_seq *s)
{
	return s->n_hashed ? s->hashes[s->n_hashed - 1] : HASH_SEED;
}

static int32_t take_free(struct kv_cache *kv)
{
	int32_t id = kv->head;
	list_remove(kv, id);
	unpublish(kv, id); /* evict: its old contents are about to be overwritten */
	kv->blocks[id].ref = 1;
	return id;
}

int kv_seq_reserve(struct kv_cache *kv, struct kv_seq *s, int32_t n)
{
	int32_t need = kv_seq_blocks_needed(kv, s, n);
	if (need > kv->n_free)
		return HEARTH_ECTXFULL;
	if (table_grow(s, s->n_blocks + need))
		return HEARTH_ENOMEM;
	for (int32_t i = 0; i < need; i++)
		s->table[s->n_blocks++] = take_free(kv);
	return 0;
}

/* The block of s at index b will be written: if others share it, or it is
 * published, give s a private copy (or take the name off it). */
static void make_private(struct kv_cache *kv, struct kv_seq *s, int32_t b)
{
	int32_t id = s->table[b];
	if (kv->blocks[id].ref == 1) {
		unpublish(kv, id);
		return;
	}
	if (kv->n_free == 0)
		return; /* cannot copy. Unreachable for hearth_context, the one user of
			 * truncation: its single sequence never shares a block */
	int32_t copy = take_free(kv);
	const size_t bs = (size_t)kv->block_size;
	for (int il = 0; il < kv->n_layer; il++) {
		size_t src = ((size_t)il * (size_t)kv->n_blocks + (size_t)id) * bs;
		size_t dst = ((size_t)il * (size_t)kv->n_blocks + (size_t)copy) * bs;
		memcpy((char *)kv->k_data + dst * kv->row_k, (char *)kv->k_data + src * kv->row_k, bs * kv->row_k);
		memcpy((char *)kv->v_data + dst * kv->row_v, (char *)kv->v_data + src * kv->row_v, bs * kv->row_v);
	}
	kv->blocks[id].ref--;
	s->table[b] = copy;
}

void kv_seq_commit(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, int32_t n)
{
	const int32_t bs = kv->block_size;
	s->n_tokens += n;
	while ((s->n_hashed + 1) * bs <= s->n_tokens) {
		const int32_t b = s->n_hashed, id = s->table[b];
		uint64_t h = kv->name_block(prefix_name(s), all_tokens + (size_t)b * (size_t)bs, bs);
		struct kv_block *blk = &kv->blocks[id];
		if (blk->hash == 0 && index_find(kv, h) < 0) {
			blk->hash = h;
			memcpy(blk->tokens, all_tokens + (size_t)b * (size_t)bs, (size_t)bs * sizeof *blk->tokens);
			index_insert(kv, id);
		}
		s->hashes[b] = h;
		s->n_hashed++;
	}
}

int32_t kv_seq_adopt_prefix(struct kv_cache *kv, struct kv_seq *s, const int32_t *tokens, int32_t n, int32_t max_reuse)
{
	const int32_t bs = kv->block_size;
	int32_t got = 0;
	kv_seq_release(kv, s);
	kv->queries += (uint64_t)n;
	while (got + bs <= max_reuse && got + bs <= n) {
		uint64_t h = kv->name_block(prefix_name(s), tokens + got, bs);
		int32_t id = index_find(kv, h);
		if (id < 0 || memcmp(kv->blocks[id].tokens, tokens + got, (size_t)bs * sizeof *tokens))
			break;
		if (table_grow(s, s->n_blocks + 1))
			break;
		if (kv->blocks[id].ref++ == 0)
			list_remove(kv, id);
		s->table[s->n_blocks++] = id;
		s->hashes[s->n_hashed++] = h;
		got += bs;
	}
	s->n_tokens = got;
	kv->hits += (uint64_t)got;
	return got;
}

static void drop_block(struct kv_cache *kv, int32_t id)
{
	if (--kv->blocks[id].ref == 0)
		list_add(kv, id);
}

void kv_seq_truncate(struct kv_cache *kv, struct kv_seq *s, int32_t n_keep)
{
	const int32_t bs = kv->block_size;
	if (n_keep >= s->n_tokens)
		return;
	if (n_keep < 0)
		n_keep = 0;
	int32_t keep_blocks = (n_keep + bs - 1) / bs;
	while (s->n_blocks > keep_blocks)
		drop_block(kv, s->table[--s->n_blocks]);
	s->n_tokens = n_keep;
	if (s->n_hashed * bs > n_keep)
		s->n_hashed = n_keep / bs;
	if (n_keep % bs)
		make_private(kv, s, n_keep / bs); /* its tail will be overwritten */
}

void kv_seq_release(struct kv_cache *kv, struct kv_seq *s)
{
	while (s->n_blocks > 0)
		drop_block(kv, s->table[--s->n_blocks]);
	s->n_tokens = 0;
	s->n_hashed = 0;
}

void kv_seq_free(struct kv_cache *kv, struct kv_seq *s)
{
	kv_seq_release(kv, s);
	free(s->table);
	free(s->hashes);
	memset(s, 0, sizeof *s);
}
