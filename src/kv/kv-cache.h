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
 * except that an f16 cache whose block size is a multiple of KV_CHUNK keeps
 * each block's keys transposed, [n_head_kv * head_dim_k][block_size]
 * (k_transposed): attention then reads KV_CHUNK positions of one key
 * dimension as one vector, straight from the cache.
 *
 *   seq A: table [7, 2, 9]   positions 0..47 (block size 16)
 *   seq B: table [7, 4]      shares block 7 (the same 16-token prefix)
 *
 * Automatic prefix caching: every full block has a name that stands for the
 * whole prefix up to its end:
 *
 *   name(block b) = SHA-256( name(block b-1) || tokens of block b )
 *   name(block -1) = the sequence's root: 32 zero bytes, or, for a request
 *                    with a cache salt, SHA-256("hearth kv salt" NUL || salt)
 *
 * (tokens as the host's int32 bytes: names never leave the process). Full
 * blocks are published under their name; a new sequence whose prompt starts
 * with published blocks takes them (one more reference) instead of
 * recomputing them. A published block records its name, its tokens and its
 * parent's name, and a lookup takes it only when all three match the
 * adopting sequence: the full 32-byte name, the block's tokens, and the
 * sequence's name for the prefix before it. A forged hash collision can then
 * reuse nothing that a different prefix computed, and sequences with
 * different roots (different salts: different API keys) never share a block.
 * A block nobody references keeps its contents and stays findable until it
 * is needed for new data: free blocks are reused never-named first, then
 * least recently used.
 *
 * Sliding windows (kv_cache_init_swa): the layers with a window (local
 * layers, all of one width W) keep their K and V apart, in a second, smaller
 * pool of local blocks. A block of the table has a local block (loc) only
 * while some sequence may still attend to it: a sequence passes block b once
 * every position it will compute sees nothing of b or of the block after it,
 * (b + 2) * block_size <= n_tokens - W + 1 (the slack block: stepping back up
 * to a block keeps the window), and the local block of a passed block that no other
 * sequence needs (lneed 0) goes back to the local pool at once. A released
 * sequence's last blocks keep theirs (a follow-up request adopting the whole
 * prefix finds its window), until the pool needs them. A prefix is adopted
 * only as far as its window is resident; truncating past a released window
 * keeps nothing. So a long sequence holds all positions of the global
 * layers but only about W + block_size of the local ones.
 *
 * Not thread-safe: one thread (a context's or the scheduler's) owns it;
 * kv_cache_root_name alone may run on any thread.
 */
#ifndef HEARTH_KV_CACHE_H
#define HEARTH_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/sha256.h"
#include "hearth.h"

#define KV_NAME_SIZE SHA256_SIZE
#define KV_CHUNK 16 /* positions of a transposed key block read as one vector */

/* The name of a prefix of whole blocks (see above). */
struct kv_name {
	uint8_t b[KV_NAME_SIZE];
};

struct kv_block {
	int32_t ref;            /* sequences using it */
	bool named;             /* published: full, named, in the index */
	struct kv_name name;    /* when named: the name of the prefix through this block */
	struct kv_name parent;  /* when named: the name of the prefix before it */
	int32_t prev, next;     /* LRU / free list links (-1: none) */
	bool in_list;
	int32_t *tokens;        /* [block_size] the tokens it holds, to verify a hit */
	int32_t loc;            /* its local block (local layers' K and V), or -1 */
	int32_t lneed;          /* sequences holding it that still attend to it in local layers */
};

/* A sequence; zero-initialized is empty, with the unsalted root. Free its
 * table with kv_seq_free(). */
struct kv_seq {
	int32_t *table;         /* block ids */
	struct kv_name *names;  /* [b]: name of the prefix through block b, for b < n_named */
	struct kv_name root;    /* the chain's start: zero, or kv_cache_root_name(salt); set
				 * only while the sequence is empty */
	int32_t n_blocks, cap_blocks;
	int32_t n_tokens;       /* positions filled */
	int32_t n_named;        /* leading full blocks whose names are known */
	int32_t n_passed;       /* leading blocks its local layers no longer attend to */
};

struct kv_cache {
	int32_t n_layer, block_size, n_blocks;
	int64_t width_k, width_v;    /* floats per position per layer */
	int type;                    /* HEARTH_TYPE_F16, HEARTH_TYPE_F32 or HEARTH_TYPE_Q8_0 */
	size_t row_k, row_v;         /* bytes per position per layer */
	bool k_transposed;           /* keys [width_k][block_size] within a block (see above) */
	void *k_data, *v_data;       /* the global layers': [n_layer_global][n_blocks][block_size] rows */
	/* sliding windows (n_swa 0: none, every layer global) */
	int32_t n_swa;               /* the local layers' window */
	int32_t n_layer_global, n_layer_local;
	int32_t *layer_slot;         /* [n_layer] the layer's index in its pool, ... */
	bool *layer_local;           /* ... the local one when set */
	int32_t n_lblocks;           /* local blocks */
	void *lk_data, *lv_data;     /* [n_layer_local][n_lblocks][block_size] rows */
	int32_t *lfree, n_lfree;     /* unused local blocks (a stack) */
	int32_t n_free_loc;          /* blocks in the free list that hold a local block */
	struct kv_block *blocks;
	int32_t n_free;              /* blocks with ref 0 (in the list) */
	int32_t head, tail;          /* the free list: never-named first, then LRU named */
	/* published blocks: open addressing on the name's first 8 bytes, name -> block id */
	int32_t *index;
	size_t index_cap;
	uint64_t queries, hits;      /* prefix-cache lookups and hits, in tokens */
	struct sha256 *sha;          /* the hashing state name_block uses */
	/* Names a full block: *out = name(parent || tokens[0..n)); 0, or an error
	 * after which *out is not a name. kv_cache_init sets kv_cache_name_block;
	 * only tests replace it (to force collisions). */
	int (*name_block)(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			  struct kv_name *out);
};

/* Sizes the cache for n_tokens_total positions in blocks of block_size. */
int kv_cache_init(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		  int32_t block_size, int type, struct hearth_err *err);
/* The same with sliding windows: layer_swa[il] > 0 makes layer il local with
 * that window (all local layers' windows must be equal), and the local pool
 * holds n_local_tokens positions (rounded up to blocks; at most the global
 * one's). layer_swa NULL, or all zero: kv_cache_init. */
int kv_cache_init_swa(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		      int32_t block_size, int type, const int32_t *layer_swa, int32_t n_local_tokens,
		      struct hearth_err *err);
void kv_cache_free(struct kv_cache *kv);
/* The default name_block: SHA-256 of parent's 32 bytes, then the tokens. */
int kv_cache_name_block(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			struct kv_name *out);
/* The root name for a cache salt of salt_size bytes: all zero when salt_size
 * is 0 (no salt), else the salted root above. Any thread (its own hashing
 * state); salt is read during the call only. */
int kv_cache_root_name(const void *salt, size_t salt_size, struct kv_name *out, struct hearth_err *err);

/* Row of position pos of seq in layer il (K or V). Call only for pos < n_tokens
 * or the position being written. With k_transposed, kv_cache_k gives the
 * row's first element, and element i lies i * block_size elements after it. */
void *kv_cache_k(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos);
void *kv_cache_v(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos);

/* Makes room for n more positions in seq (allocating blocks, and local ones
 * for them). HEARTH_ECTXFULL when the cache has too few free blocks (global
 * or local), HEARTH_ENOMEM when seq's block table cannot grow; nothing
 * changes then. */
int kv_seq_reserve(struct kv_cache *kv, struct kv_seq *s, int32_t n);
/* Records that tokens[0..n) were written at positions n_tokens.. and publishes
 * the blocks they filled. tokens are the sequence's tokens from position 0.
 * A block that cannot be named (hashing failed) stays unpublished, and so do
 * the ones after it until a later commit names it. */
void kv_seq_commit(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, int32_t n);
/* Starts seq on a prompt: releases what it holds, then takes the longest
 * published prefix of whole blocks (at most max_reuse tokens) whose names,
 * tokens and parents match, from seq's root on, and returns how many tokens
 * it covers. */
int32_t kv_seq_adopt_prefix(struct kv_cache *kv, struct kv_seq *s, const int32_t *tokens, int32_t n, int32_t max_reuse);
/* Drops positions from n_keep on; whole blocks past it go back to the cache.
 * With sliding windows, keeps nothing when the window of position n_keep is
 * no longer resident (see above): read n_tokens after. */
void kv_seq_truncate(struct kv_cache *kv, struct kv_seq *s, int32_t n_keep);
/* Releases all of seq's blocks (they stay findable when published); seq keeps its root. */
void kv_seq_release(struct kv_cache *kv, struct kv_seq *s);
/* Releases seq's blocks and frees its table; seq is zero again (unsalted root). */
void kv_seq_free(struct kv_cache *kv, struct kv_seq *s);
/* The first position of the first block that the local layers of a
 * sequence of n tokens must hold (its window, from the start of the block
 * the window starts in); 0 without sliding windows. */
int32_t kv_cache_window_start(const struct kv_cache *kv, int32_t n);
/* The first position of seq whose local-layer rows the cache still holds
 * (every position from it to n_tokens): the start of its first block not
 * passed; 0 without sliding windows. */
int32_t kv_seq_local_from(const struct kv_cache *kv, const struct kv_seq *s);
/* Passes seq's leading blocks up to n_blocks (their local rows are given up)
 * before its window would: for rows known not to be worth keeping. Call
 * only with sliding windows and n_blocks <= the block its window starts in. */
void kv_seq_pass(struct kv_cache *kv, struct kv_seq *s, int32_t n_blocks);
/* Blocks needed for n more tokens of seq. */
int32_t kv_seq_blocks_needed(const struct kv_cache *kv, const struct kv_seq *s, int32_t n);
/* Blocks in use by some sequence. */
int32_t kv_cache_used(const struct kv_cache *kv);
/* Local blocks in use (holding some block's local layers). */
int32_t kv_cache_local_used(const struct kv_cache *kv);

#endif /* HEARTH_KV_CACHE_H */
