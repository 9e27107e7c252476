/*
 * kv-cache.h - the paged KV cache shared by every sequence of a model.
 *
 * Keys and values live in fixed-size blocks of block_size token positions
 * (PagedAttention's idea). A sequence owns a table of block ids; position p of
 * a sequence is slot p % block_size of block table[p / block_size]:
 *
 *   k_data: [n_layer][n_blocks][block_size][n_head_kv * head_dim_k]   f16, f32 or q8_0
 *   v_data: [n_layer][n_blocks][block_size][n_head_kv * head_dim_v]
 *
 *   seq A: table [7, 2, 9]   positions 0..47 (block size 16)
 *   seq B: table [7, 4]      shares block 7 (the same 16-token prefix)
 *
 * Automatic prefix caching: a full block is named by the hash of its tokens
 * chained with the previous block's hash, so a name stands for the whole
 * prefix up to the block's end. Full blocks are published under their name;
 * a new sequence whose prompt starts with published blocks takes them (one
 * more reference) instead of recomputing them. A block nobody references
 * keeps its contents and stays findable until it is needed for new data:
 * free blocks are reused never-named first, then least recently used.
 *
 * Not thread-safe: one thread (a context's or the scheduler's) owns it.
 */
#ifndef HEARTH_KV_CACHE_H
#define HEARTH_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

struct kv_block {
	int32_t ref;          /* sequences using it */
	uint64_t hash;        /* name when published (full and hashed), else 0 */
	int32_t prev, next;   /* LRU / free list links (-1: none) */
	bool in_list;
	int32_t *tokens;      /* [block_size] the tokens it holds, to verify a hash hit */
};

/* A sequence; zero-initialized is empty. Free its table with kv_seq_free(). */
struct kv_seq {
	int32_t *table;       /* block ids */
	uint64_t *hashes;     /* [b]: name of the prefix through block b, for b < n_hashed */
	int32_t n_blocks, cap_blocks;
	int32_t n_tokens;     /* positions filled */
	int32_t n_hashed;     /* leading full blocks whose names are known */
};

struct kv_cache {
	int32_t n_layer, block_size, n_blocks;
	int64_t width_k, width_v;    /* floats per position per layer */
	int type;                    /* HEARTH_TYPE_F16, HEARTH_TYPE_F32 or HEARTH_TYPE_Q8_0 */
	size_t row_k, row_v;         /* bytes per position per layer */
	void *k_data, *v_data;
	struct kv_block *blocks;
	int32_t n_free;              /* blocks with ref 0 (in the list) */
	int32_t head, tail;          /* the free list: never-named first, then LRU named */
	/* published blocks: open addressing, hash -> block id */
	int32_t *index;
	size_t index_cap;
	uint64_t queries, hits;      /* prefix-cache lookups and hits, in tokens */
	/* names a full block from its parent's name and its tokens; set by
	 * kv_cache_init, replaced only by tests (to force collisions) */
	uint64_t (*name_block)(uint64_t parent, const int32_t *tokens, int32_t n);
};

/* Sizes the cache for n_tokens_total positions in blocks of block_size. */
int kv_cache_init(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		  int32_t block_size, int type, struct hearth_err *err);
void kv_cache_free(struct kv_cache *kv);

/* Row of position pos of seq in layer il (K or V). Call only for pos < n_tokens
 * or the position being written. */
void *kv_cache_k(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos);
void *kv_cache_v(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos);

/* Makes room for n more positions in seq (allocating blocks). HEARTH_ECTXFULL
 * when the cache has too few free blocks; nothing changes then. */
int kv_seq_reserve(struct kv_cache *kv, struct kv_seq *s, int32_t n);
/* Records that tokens[0..n) were written at positions n_tokens.. and publishes
 * the blocks they filled. tokens are the sequence's tokens from position 0. */
void kv_seq_commit(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, int32_t n);
/* Starts seq on a prompt: takes the longest published prefix of whole blocks
 * (at most max_reuse tokens) and returns how many tokens it covers. */
int32_t kv_seq_adopt_prefix(struct kv_cache *kv, struct kv_seq *s, const int32_t *tokens, int32_t n, int32_t max_reuse);
/* Drops positions from n_keep on; whole blocks past it go back to the cache. */
void kv_seq_truncate(struct kv_cache *kv, struct kv_seq *s, int32_t n_keep);
/* Releases all of seq's blocks (they stay findable when published). */
void kv_seq_release(struct kv_cache *kv, struct kv_seq *s);
/* Releases seq's blocks and frees its table. */
void kv_seq_free(struct kv_cache *kv, struct kv_seq *s);
/* Blocks needed for n more tokens of seq. */
int32_t kv_seq_blocks_needed(const struct kv_cache *kv, const struct kv_seq *s, int32_t n);
/* Blocks in use by some sequence. */
int32_t kv_cache_used(const struct kv_cache *kv);

#endif /* HEARTH_KV_CACHE_H */
