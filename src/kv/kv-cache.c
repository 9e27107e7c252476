/* kv-cache.c - the paged KV cache and its prefix cache (see kv-cache.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/bigmem.h"
#include "../base/err.h"
#include "../tensor/qtype.h"
#include "kv-cache.h"

/* Hashed before a salt, so that a root is not the plain SHA-256 of the salt
 * (of an API key, say), which other code may compute or keep. */
static const char ROOT_TAG[] = "hearth kv salt";

int kv_cache_name_block(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			struct kv_name *out)
{
	sha256_begin(kv->sha);
	sha256_update(kv->sha, parent->b, sizeof parent->b);
	sha256_update(kv->sha, tokens, (size_t)n * sizeof *tokens);
	return sha256_end(kv->sha, out->b);
}

int kv_cache_root_name(const void *salt, size_t salt_size, struct kv_name *out, struct hearth_err *err)
{
	struct sha256 *h;
	int rc;
	memset(out, 0, sizeof *out);
	if (salt_size == 0)
		return 0;
	if ((rc = sha256_new(&h, err)))
		return rc;
	sha256_begin(h);
	sha256_update(h, ROOT_TAG, sizeof ROOT_TAG); /* with its NUL */
	sha256_update(h, salt, salt_size);
	if ((rc = sha256_end(h, out->b))) {
		memset(out, 0, sizeof *out);
		rc = err_set(err, rc, "kv cache: hashing a cache salt of %zu bytes failed", salt_size);
	}
	sha256_free(h);
	return rc;
}

static bool name_eq(const struct kv_name *a, const struct kv_name *b) { return memcmp(a->b, b->b, sizeof a->b) == 0; }

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
	kv->n_free_loc -= b->loc >= 0;
}

/* Unnamed blocks go first in line for reuse; named ones last (LRU). */
static void list_add(struct kv_cache *kv, int32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (!b->named) {
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
	kv->n_free_loc += b->loc >= 0;
}

/* ---- local blocks (sliding windows) ------------------------------------------- */

/* Block id gives its local block back to the local pool. */
static void loc_put(struct kv_cache *kv, int32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (b->loc < 0)
		return;
	kv->n_free_loc -= b->in_list;
	kv->lfree[kv->n_lfree++] = b->loc;
	b->loc = -1;
}

/* Local blocks that blocks being taken can have: unused ones, and those of
 * unreferenced blocks (each taken block uses up one). */
static int32_t loc_available(const struct kv_cache *kv)
{
	return kv->n_lfree + kv->n_free_loc;
}

/* Gives block id (referenced, out of the free list) a local block unless it
 * has one: an unused one, else that of the first unreferenced block in the
 * free list's order (never named, then least recently used). Call only when
 * loc_available() was positive. */
static void loc_get(struct kv_cache *kv, int32_t id)
{
	if (kv->blocks[id].loc >= 0)
		return;
	if (kv->n_lfree == 0) {
		int32_t v = kv->head;
		while (kv->blocks[v].loc < 0)
			v = kv->blocks[v].next;
		loc_put(kv, v);
	}
	kv->blocks[id].loc = kv->lfree[--kv->n_lfree];
}

/* The first block the window of position n touches: a sequence of n
 * tokens attends to none before it in its local layers. */
static int32_t window_block(const struct kv_cache *kv, int32_t n)
{
	const int32_t first = n - kv->n_swa + 1;
	return first > 0 ? first / kv->block_size : 0;
}

/* Leading blocks a sequence of n_tokens positions passes: those before its
 * window, less one block of slack (stepping back up to a block keeps the
 * window resident). */
static int32_t passable(const struct kv_cache *kv, int32_t n_tokens)
{
	const int32_t b = window_block(kv, n_tokens) - 1;
	return b > 0 ? b : 0;
}

/* s passes its leading blocks up to upto (capped at its table): their
 * local blocks go back to the pool when no other sequence attends to them. */
static void seq_pass_upto(struct kv_cache *kv, struct kv_seq *s, int32_t upto)
{
	upto = upto < s->n_blocks ? upto : s->n_blocks;
	for (; s->n_passed < upto; s->n_passed++) {
		const int32_t id = s->table[s->n_passed];
		if (--kv->blocks[id].lneed == 0)
			loc_put(kv, id);
	}
}

/* s passes the blocks its window has left. */
static void seq_pass(struct kv_cache *kv, struct kv_seq *s)
{
	seq_pass_upto(kv, s, passable(kv, s->n_tokens));
}

int32_t kv_cache_window_start(const struct kv_cache *kv, int32_t n)
{
	return kv->n_swa ? window_block(kv, n) * kv->block_size : 0;
}

int32_t kv_seq_local_from(const struct kv_cache *kv, const struct kv_seq *s)
{
	const int32_t from = s->n_passed * kv->block_size;
	return from < s->n_tokens ? from : s->n_tokens;
}

void kv_seq_pass(struct kv_cache *kv, struct kv_seq *s, int32_t n_blocks)
{
	assert(kv->n_swa > 0 && n_blocks <= window_block(kv, s->n_tokens));
	seq_pass_upto(kv, s, n_blocks);
}

/* Whether blocks b0 .. b1 - 1 of s all have their local blocks. */
static bool seq_resident(const struct kv_cache *kv, const struct kv_seq *s, int32_t b0, int32_t b1)
{
	for (int32_t b = b0; b < b1; b++)
		if (kv->blocks[s->table[b]].loc < 0)
			return false;
	return true;
}

/* ---- the index of published blocks (linear probing, backward-shift delete) ---- */

/* The home slot of a name: its first 8 bytes (already uniform: a digest). */
static size_t slot_of(const struct kv_cache *kv, const struct kv_name *name)
{
	uint64_t h;
	memcpy(&h, name->b, sizeof h);
	return (size_t)h & (kv->index_cap - 1);
}

/* The published block whose full name is name, or -1. */
static int32_t index_find(const struct kv_cache *kv, const struct kv_name *name)
{
	for (size_t i = slot_of(kv, name);; i = (i + 1) & (kv->index_cap - 1)) {
		int32_t id = kv->index[i];
		if (id < 0)
			return -1;
		if (name_eq(&kv->blocks[id].name, name))
			return id;
	}
}

static void index_insert(struct kv_cache *kv, int32_t id)
{
	size_t i = slot_of(kv, &kv->blocks[id].name);
	while (kv->index[i] >= 0)
		i = (i + 1) & (kv->index_cap - 1);
	kv->index[i] = id;
}

static void index_remove(struct kv_cache *kv, int32_t id)
{
	size_t i = slot_of(kv, &kv->blocks[id].name), mask = kv->index_cap - 1;
	while (kv->index[i] != id)
		i = (i + 1) & mask;
	kv->index[i] = -1;
	/* shift back the entries after the hole that probed past it */
	for (size_t j = (i + 1) & mask; kv->index[j] >= 0; j = (j + 1) & mask) {
		size_t home = slot_of(kv, &kv->blocks[kv->index[j]].name);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			kv->index[i] = kv->index[j];
			kv->index[j] = -1;
			i = j;
		}
	}
}

static void unpublish(struct kv_cache *kv, int32_t id)
{
	if (kv->blocks[id].named) {
		index_remove(kv, id);
		kv->blocks[id].named = false;
	}
}

/* ---- cache -------------------------------------------------------------------- */

/* The bytes of the K or V store, rows of row bytes. */
static size_t kv_bytes(const struct kv_cache *kv, size_t row)
{
	return (size_t)kv->n_layer_global * (size_t)kv->n_blocks * (size_t)kv->block_size * row;
}

/* The same for the local pool. */
static size_t kv_local_bytes(const struct kv_cache *kv, size_t row)
{
	return (size_t)kv->n_layer_local * (size_t)kv->n_lblocks * (size_t)kv->block_size * row;
}

int kv_cache_init(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		  int32_t block_size, int type, struct hearth_err *err)
{
	return kv_cache_init_swa(kv, n_layer, width_k, width_v, n_tokens_total, block_size, type, NULL, 0, err);
}

/* Splits the layers into the global and local pools (layer_swa may be NULL). */
static int layout_layers(struct kv_cache *kv, const int32_t *layer_swa, int32_t n_local_tokens, struct hearth_err *err)
{
	kv->layer_slot = malloc((size_t)kv->n_layer * sizeof *kv->layer_slot);
	kv->layer_local = calloc((size_t)kv->n_layer, sizeof *kv->layer_local);
	if (!kv->layer_slot || !kv->layer_local)
		return err_set(err, HEARTH_ENOMEM, "kv cache: out of memory");
	for (int32_t il = 0; il < kv->n_layer; il++) {
		const int32_t w = layer_swa ? layer_swa[il] : 0;
		if (w > 0 && kv->n_swa > 0 && w != kv->n_swa)
			return err_set(err, HEARTH_EUNSUPPORTED, "kv cache: sliding windows of %d and %d in one model",
				       kv->n_swa, w);
		if (w > 0)
			kv->n_swa = w;
		kv->layer_local[il] = w > 0;
		kv->layer_slot[il] = w > 0 ? kv->n_layer_local++ : kv->n_layer_global++;
	}
	if (kv->n_layer_local) {
		const int32_t n = (int32_t)(((int64_t)n_local_tokens + kv->block_size - 1) / kv->block_size);
		kv->n_lblocks = n < 1 ? 1 : n > kv->n_blocks ? kv->n_blocks : n;
	}
	return 0;
}

int kv_cache_init_swa(struct kv_cache *kv, int32_t n_layer, int64_t width_k, int64_t width_v, int32_t n_tokens_total,
		      int32_t block_size, int type, const int32_t *layer_swa, int32_t n_local_tokens,
		      struct hearth_err *err)
{
	int rc;
	memset(kv, 0, sizeof *kv);
	if (block_size < 1 || n_tokens_total < 1)
		return err_set(err, HEARTH_EINVAL, "kv cache: %d tokens in blocks of %d", n_tokens_total, block_size);
	kv->n_layer = n_layer;
	kv->block_size = block_size;
	kv->n_blocks = (n_tokens_total + block_size - 1) / block_size;
	if ((rc = layout_layers(kv, layer_swa, n_local_tokens, err))) {
		kv_cache_free(kv);
		return rc;
	}
	kv->width_k = width_k;
	kv->width_v = width_v;
	kv->type = type;
	if (type == HEARTH_TYPE_Q8_0 && (width_k % QK8_0 || width_v % QK8_0)) /* callers check each head's width */
		return err_set(err, HEARTH_EINVAL, "kv cache: q8_0 rows must be multiples of %d wide", QK8_0);
	kv->row_k = qtype_row_size(type, width_k);
	kv->row_v = qtype_row_size(type, width_v);
	kv->k_transposed = type == HEARTH_TYPE_F16 && block_size % KV_CHUNK == 0;
	kv->head = kv->tail = -1;
	kv->name_block = kv_cache_name_block;
	const size_t cells = (size_t)kv->n_layer_global * (size_t)kv->n_blocks * (size_t)block_size;
	const size_t lcells = (size_t)kv->n_layer_local * (size_t)kv->n_lblocks * (size_t)block_size;
	/* the kernel hands out more than the machine has and lets the filling fail
	 * later; refuse what cannot fit at all, up front and by name */
	const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	const double need = (double)(cells + lcells) * (double)(kv->row_k + kv->row_v), have = (double)pages * (double)page;
	if (pages > 0 && page > 0 && need > have) {
		kv_cache_free(kv);
		return err_set(err, HEARTH_ENOMEM, "kv cache: %d tokens need %.1f GiB, more than this machine's %.1f GiB",
			       n_tokens_total, need / 1073741824.0, have / 1073741824.0);
	}
	if ((rc = sha256_new(&kv->sha, err))) {
		kv_cache_free(kv);
		return rc;
	}
	bool data_ok = true;
	if (cells) {
		kv->k_data = bigmem_alloc(cells * kv->row_k);
		kv->v_data = bigmem_alloc(cells * kv->row_v);
		data_ok = kv->k_data && kv->v_data;
	}
	if (lcells) {
		kv->lk_data = bigmem_alloc(lcells * kv->row_k);
		kv->lv_data = bigmem_alloc(lcells * kv->row_v);
		kv->lfree = malloc((size_t)kv->n_lblocks * sizeof *kv->lfree);
		data_ok = data_ok && kv->lk_data && kv->lv_data && kv->lfree;
	}
	kv->blocks = calloc((size_t)kv->n_blocks, sizeof *kv->blocks);
	kv->index_cap = 16;
	while (kv->index_cap < 2 * (size_t)kv->n_blocks)
		kv->index_cap *= 2;
	kv->index = malloc(kv->index_cap * sizeof *kv->index);
	int32_t *tok = malloc((size_t)kv->n_blocks * (size_t)block_size * sizeof *tok);
	if (!data_ok || !kv->blocks || !kv->index || !tok) {
		free(tok);
		kv_cache_free(kv);
		return err_set(err, HEARTH_ENOMEM, "kv cache: out of memory for %d tokens", n_tokens_total);
	}
	/* fault the rows in now: the first tokens of every layer would otherwise
	 * each wait for the kernel to zero a fresh page */
	bigmem_prefault(kv->k_data, cells * kv->row_k);
	bigmem_prefault(kv->v_data, cells * kv->row_v);
	bigmem_prefault(kv->lk_data, lcells * kv->row_k);
	bigmem_prefault(kv->lv_data, lcells * kv->row_v);
	for (size_t i = 0; i < kv->index_cap; i++)
		kv->index[i] = -1;
	for (int32_t i = 0; i < kv->n_blocks; i++) {
		kv->blocks[i].prev = kv->blocks[i].next = -1;
		kv->blocks[i].tokens = tok + (size_t)i * (size_t)block_size;
		kv->blocks[i].loc = -1;
	}
	for (int32_t i = 0; i < kv->n_lblocks; i++)
		kv->lfree[i] = kv->n_lblocks - 1 - i;
	kv->n_lfree = kv->n_lblocks;
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
	sha256_free(kv->sha);
	bigmem_free(kv->k_data, kv_bytes(kv, kv->row_k));
	bigmem_free(kv->v_data, kv_bytes(kv, kv->row_v));
	bigmem_free(kv->lk_data, kv_local_bytes(kv, kv->row_k));
	bigmem_free(kv->lv_data, kv_local_bytes(kv, kv->row_v));
	free(kv->lfree);
	free(kv->layer_slot);
	free(kv->layer_local);
	memset(kv, 0, sizeof *kv);
}

/* The row of position pos of s in layer il, in the global pool (data) or the
 * local one (ldata). */
static void *row(const struct kv_cache *kv, void *data, void *ldata, size_t row_size, const struct kv_seq *s, int il,
		 int32_t pos)
{
	int32_t blk = s->table[pos / kv->block_size], n = kv->n_blocks;
	const int32_t slot = pos % kv->block_size;
	if (kv->layer_local[il]) {
		blk = kv->blocks[blk].loc;
		assert(blk >= 0); /* callers read only inside a window */
		n = kv->n_lblocks;
		data = ldata;
	}
	size_t cell = ((size_t)kv->layer_slot[il] * (size_t)n + (size_t)blk) * (size_t)kv->block_size + (size_t)slot;
	return (char *)data + cell * row_size;
}

void *kv_cache_k(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos)
{
	if (kv->k_transposed) { /* the block's start, then the slot's column */
		const int32_t slot = pos % kv->block_size;
		return (char *)row(kv, kv->k_data, kv->lk_data, kv->row_k, s, il, pos - slot) + (size_t)slot * sizeof(uint16_t);
	}
	return row(kv, kv->k_data, kv->lk_data, kv->row_k, s, il, pos);
}

void *kv_cache_v(const struct kv_cache *kv, const struct kv_seq *s, int il, int32_t pos)
{
	return row(kv, kv->v_data, kv->lv_data, kv->row_v, s, il, pos);
}

int32_t kv_cache_local_used(const struct kv_cache *kv)
{
	return kv->n_lblocks - kv->n_lfree;
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
	struct kv_name *names = realloc(s->names, (size_t)cap * sizeof *names);
	if (!names)
		return HEARTH_ENOMEM;
	s->names = names;
	s->cap_blocks = cap;
	return 0;
}

/* The name of the prefix of s before its first unnamed block. */
static const struct kv_name *prefix_name(const struct kv_seq *s)
{
	return s->n_named ? &s->names[s->n_named - 1] : &s->root;
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
	if (need > kv->n_free || (kv->n_swa && need > loc_available(kv)))
		return HEARTH_ECTXFULL;
	if (table_grow(s, s->n_blocks + need))
		return HEARTH_ENOMEM;
	for (int32_t i = 0; i < need; i++) {
		const int32_t id = take_free(kv);
		if (kv->n_swa) {
			loc_get(kv, id);
			kv->blocks[id].lneed = 1;
		}
		s->table[s->n_blocks++] = id;
	}
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
	const bool local = kv->n_swa && b >= s->n_passed; /* s attends to its local layers' part */
	if (kv->n_free == 0 || (local && loc_available(kv) == 0))
		return; /* cannot copy. Unreachable for hearth_context, the one user of
			 * truncation: its single sequence never shares a block */
	int32_t copy = take_free(kv);
	const size_t bs = (size_t)kv->block_size;
	for (int il = 0; il < kv->n_layer_global; il++) {
		size_t src = ((size_t)il * (size_t)kv->n_blocks + (size_t)id) * bs;
		size_t dst = ((size_t)il * (size_t)kv->n_blocks + (size_t)copy) * bs;
		memcpy((char *)kv->k_data + dst * kv->row_k, (char *)kv->k_data + src * kv->row_k, bs * kv->row_k);
		memcpy((char *)kv->v_data + dst * kv->row_v, (char *)kv->v_data + src * kv->row_v, bs * kv->row_v);
	}
	if (local) {
		loc_get(kv, copy);
		kv->blocks[copy].lneed = 1;
		const int32_t from = kv->blocks[id].loc, to = kv->blocks[copy].loc;
		for (int il = 0; il < kv->n_layer_local; il++) {
			size_t src = ((size_t)il * (size_t)kv->n_lblocks + (size_t)from) * bs;
			size_t dst = ((size_t)il * (size_t)kv->n_lblocks + (size_t)to) * bs;
			memcpy((char *)kv->lk_data + dst * kv->row_k, (char *)kv->lk_data + src * kv->row_k, bs * kv->row_k);
			memcpy((char *)kv->lv_data + dst * kv->row_v, (char *)kv->lv_data + src * kv->row_v, bs * kv->row_v);
		}
		if (--kv->blocks[id].lneed == 0)
			loc_put(kv, id); /* referenced by others, who have passed it */
	}
	kv->blocks[id].ref--;
	s->table[b] = copy;
}

void kv_seq_commit(struct kv_cache *kv, struct kv_seq *s, const int32_t *all_tokens, int32_t n)
{
	const int32_t bs = kv->block_size;
	s->n_tokens += n;
	while ((s->n_named + 1) * bs <= s->n_tokens) {
		const int32_t b = s->n_named, id = s->table[b];
		const int32_t *tokens = all_tokens + (size_t)b * (size_t)bs;
		const struct kv_name *parent = prefix_name(s);
		struct kv_name name;
		if (kv->name_block(kv, parent, tokens, bs, &name))
			break; /* stays unnamed: shared with nobody */
		struct kv_block *blk = &kv->blocks[id];
		const int32_t other = blk->named ? -1 : index_find(kv, &name);
		if (other >= 0 && kv->n_swa && kv->blocks[other].loc < 0 && blk->loc >= 0)
			unpublish(kv, other); /* the same prefix, its window gone: findable as this one now */
		if (!blk->named && index_find(kv, &name) < 0) {
			blk->named = true;
			blk->name = name;
			blk->parent = *parent;
			memcpy(blk->tokens, tokens, (size_t)bs * sizeof *blk->tokens);
			index_insert(kv, id);
		}
		s->names[b] = name;
		s->n_named++;
	}
	if (kv->n_swa)
		seq_pass(kv, s);
}

/* Cuts an adopted prefix back to the longest one whose window is resident,
 * and takes the local blocks of that window; returns its blocks. */
static int32_t adopt_window(struct kv_cache *kv, struct kv_seq *s)
{
	int32_t k = s->n_blocks;
	while (k > 0 && !seq_resident(kv, s, window_block(kv, k * kv->block_size), k))
		k--;
	while (s->n_blocks > k) {
		const int32_t id = s->table[--s->n_blocks];
		if (--kv->blocks[id].ref == 0)
			list_add(kv, id);
	}
	s->n_named = k;
	const int32_t from = window_block(kv, k * kv->block_size);
	s->n_passed = from < k ? from : k;
	for (int32_t b = 0; b < k; b++) {
		const int32_t id = s->table[b];
		if (b >= s->n_passed)
			kv->blocks[id].lneed++;
		else if (kv->blocks[id].lneed == 0)
			loc_put(kv, id); /* referenced, attended to by no one */
	}
	return k;
}

/* Is block id the one s may take next for tokens? Its full name, its tokens
 * and its parent must all be s's: a name alone could be a forged collision. */
static bool block_matches(const struct kv_cache *kv, int32_t id, const struct kv_name *name,
			  const struct kv_name *parent, const int32_t *tokens)
{
	const struct kv_block *blk = &kv->blocks[id];
	return blk->named && name_eq(&blk->name, name) && name_eq(&blk->parent, parent) &&
	       memcmp(blk->tokens, tokens, (size_t)kv->block_size * sizeof *tokens) == 0;
}

int32_t kv_seq_adopt_prefix(struct kv_cache *kv, struct kv_seq *s, const int32_t *tokens, int32_t n, int32_t max_reuse)
{
	const int32_t bs = kv->block_size;
	int32_t got = 0;
	kv_seq_release(kv, s);
	kv->queries += (uint64_t)n;
	while (got + bs <= max_reuse && got + bs <= n) {
		const struct kv_name *parent = prefix_name(s);
		struct kv_name name;
		if (kv->name_block(kv, parent, tokens + got, bs, &name))
			break;
		int32_t id = index_find(kv, &name);
		if (id < 0 || !block_matches(kv, id, &name, parent, tokens + got))
			break;
		if (table_grow(s, s->n_blocks + 1))
			break;
		if (kv->blocks[id].ref++ == 0)
			list_remove(kv, id);
		s->table[s->n_blocks++] = id;
		s->names[s->n_named++] = name;
		got += bs;
	}
	if (kv->n_swa)
		got = adopt_window(kv, s) * bs;
	s->n_tokens = got;
	kv->hits += (uint64_t)got;
	return got;
}

/* s gives up its last block. A block that goes unreferenced keeps its local
 * block (a later request may adopt the prefix it ends); one that others
 * still hold but none attends to gives it back. */
static void drop_last(struct kv_cache *kv, struct kv_seq *s)
{
	const int32_t b = --s->n_blocks, id = s->table[b];
	struct kv_block *blk = &kv->blocks[id];
	if (kv->n_swa && b >= s->n_passed)
		blk->lneed--;
	if (--blk->ref == 0)
		list_add(kv, id);
	else if (kv->n_swa && blk->lneed == 0)
		loc_put(kv, id);
	if (s->n_passed > s->n_blocks)
		s->n_passed = s->n_blocks;
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
		drop_last(kv, s);
	if (kv->n_swa) { /* the window of position n_keep must be resident again */
		const int32_t from = window_block(kv, n_keep) < s->n_blocks ? window_block(kv, n_keep) : s->n_blocks;
		if (from < s->n_passed && !seq_resident(kv, s, from, s->n_passed)) {
			kv_seq_release(kv, s);
			return;
		}
		for (; from < s->n_passed; s->n_passed--)
			kv->blocks[s->table[s->n_passed - 1]].lneed++;
	}
	s->n_tokens = n_keep;
	if (s->n_named * bs > n_keep)
		s->n_named = n_keep / bs;
	if (n_keep % bs)
		make_private(kv, s, n_keep / bs); /* its tail will be overwritten */
}

void kv_seq_release(struct kv_cache *kv, struct kv_seq *s)
{
	while (s->n_blocks > 0)
		drop_last(kv, s);
	s->n_tokens = 0;
	s->n_named = 0;
	s->n_passed = 0;
}

void kv_seq_free(struct kv_cache *kv, struct kv_seq *s)
{
	kv_seq_release(kv, s);
	free(s->table);
	free(s->names);
	memset(s, 0, sizeof *s);
}
