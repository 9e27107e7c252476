/* test-kv.c - the prefix cache of the paged KV cache: a block is taken only
 * when its whole prefix matches (name, tokens and parent chain), even when a
 * naming function forced through the test seam makes names collide; salted
 * roots keep tenants apart; publish, adopt, truncate and eviction. */
#include <stdlib.h>

#include "../harness.h"
#include "../../src/kv/kv-cache.h"
#include "../../src/kv/kv-state.h"

enum { BS = 4, N_TOKENS = 64 }; /* 16 blocks of 4 tokens */

static bool init(struct kv_cache *kv)
{
	struct hearth_err err = { 0 };
	int rc = kv_cache_init(kv, 1, 4, 4, N_TOKENS, BS, HEARTH_TYPE_F32, &err);
	T_OK(rc, err);
	return rc == 0;
}

/* Writes tokens[0..n) into a fresh sequence (publishing its full blocks) and
 * releases it; the blocks stay findable. Returns the id of block b, or -1. */
static int32_t publish(struct kv_cache *kv, const struct kv_name *root, const int32_t *tokens, int32_t n, int32_t b)
{
	struct kv_seq s = { 0 };
	int32_t id = -1;
	if (root)
		s.root = *root;
	T_EQ_I64(kv_seq_reserve(kv, &s, n), 0);
	if (s.n_blocks * BS >= n) {
		kv_seq_commit(kv, &s, tokens, n);
		id = b < s.n_blocks ? s.table[b] : -1;
	}
	kv_seq_free(kv, &s);
	return id;
}

/* A name from the tokens alone, ignoring the parent: blocks with the same
 * tokens collide whatever came before them (what a forged collision does). */
static int name_tokens_only(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			    struct kv_name *out)
{
	static const struct kv_name zero;
	(void)parent;
	return kv_cache_name_block(kv, &zero, tokens, n, out);
}

/* One name for every block. */
static int name_constant(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			 struct kv_name *out)
{
	(void)kv, (void)parent, (void)tokens, (void)n;
	memset(out->b, 0xab, sizeof out->b);
	return 0;
}

/* The true name, but its first 8 bytes (the index's slot hash) the same for all. */
static int name_same_slot(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			  struct kv_name *out)
{
	int rc = kv_cache_name_block(kv, parent, tokens, n, out);
	memset(out->b, 0x5a, 8);
	return rc;
}

static int name_failing(struct kv_cache *kv, const struct kv_name *parent, const int32_t *tokens, int32_t n,
			struct kv_name *out)
{
	(void)kv, (void)parent, (void)tokens, (void)n, (void)out;
	return HEARTH_ENOMEM;
}

/* The flaw this guards against: with colliding names, a prompt whose second
 * block's tokens equal another prompt's took that block, computed after a
 * different first block (its keys and values depend on the whole prefix). */
void test_kv_parent_chain(void)
{
	struct kv_cache kv;
	struct kv_seq q = { 0 };
	const int32_t ta[] = { 1, 2, 3, 4, 5, 6, 7, 8 }, tb[] = { 9, 9, 9, 9 }, tq[] = { 9, 9, 9, 9, 5, 6, 7, 8, 11 };
	if (!init(&kv))
		return;
	kv.name_block = name_tokens_only;
	int32_t a1 = publish(&kv, NULL, ta, 8, 1), b0 = publish(&kv, NULL, tb, 4, 0);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, tq, 9, 8), 4); /* b's block, not a's second one */
	T_EQ_I64(q.n_blocks, 1);
	T_EQ_I64(q.table[0], b0);
	T_TRUE(q.n_blocks < 2 || q.table[1] != a1);
	kv_seq_free(&kv, &q);

	/* a's own prompt still finds both of its blocks */
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, ta, 8, 8), 8);
	T_EQ_I64(q.table[1], a1);
	kv_seq_free(&kv, &q);
	kv_cache_free(&kv);
}

/* Every name equal: only the first prompt's blocks are published, and a
 * different prompt takes none of them. */
void test_kv_name_collision(void)
{
	struct kv_cache kv;
	struct kv_seq q = { 0 };
	const int32_t ta[] = { 1, 2, 3, 4, 5, 6, 7, 8 }, tb[] = { 1, 2, 3, 5, 5, 6, 7, 8 };
	if (!init(&kv))
		return;
	kv.name_block = name_constant;
	publish(&kv, NULL, ta, 8, 0);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, tb, 8, 8), 0);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, ta, 8, 8), 4); /* a's second block was never published */
	kv_seq_free(&kv, &q);

	/* names that fail: nothing is published or adopted */
	kv.name_block = name_failing;
	publish(&kv, NULL, tb, 8, 0);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, tb, 8, 8), 0);
	kv_seq_free(&kv, &q);
	kv_cache_free(&kv);
}

/* Names that share their first 8 bytes land in one probe run: a lookup still
 * tells them apart by the full name, and eviction keeps the index whole. */
void test_kv_index(void)
{
	struct kv_cache kv;
	struct kv_seq q = { 0 };
	int32_t t[8][8];
	if (!init(&kv))
		return;
	kv.name_block = name_same_slot;
	for (int p = 0; p < 8; p++) {
		for (int i = 0; i < 8; i++)
			t[p][i] = 100 * p + i;
		publish(&kv, NULL, t[p], 8, 0);
	}
	for (int p = 0; p < 8; p++) { /* all 16 blocks named, prompt 0 least recently used */
		T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t[p], 8, 8), 8);
		kv_seq_release(&kv, &q);
	}
	/* two more prompts evict the least recently used: prompt 0, then 1 */
	int32_t u[2][8];
	for (int p = 0; p < 2; p++) {
		for (int i = 0; i < 8; i++)
			u[p][i] = 1000 + 100 * p + i;
		publish(&kv, NULL, u[p], 8, 0);
	}
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t[0], 8, 8), 0);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t[1], 8, 8), 0);
	for (int p = 2; p < 8; p++)
		T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t[p], 8, 8), 8);
	for (int p = 0; p < 2; p++)
		T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, u[p], 8, 8), 8);
	kv_seq_free(&kv, &q);
	kv_cache_free(&kv);
}

/* Salted roots: the same salt shares, another salt or none does not. */
void test_kv_salt(void)
{
	struct kv_cache kv;
	struct hearth_err err = { 0 };
	struct kv_name none, k1, k1b, k2;
	const int32_t t[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	T_OK(kv_cache_root_name(NULL, 0, &none, &err), err);
	T_OK(kv_cache_root_name("key-1", 5, &k1, &err), err);
	T_OK(kv_cache_root_name("key-1", 5, &k1b, &err), err);
	T_OK(kv_cache_root_name("key-2", 5, &k2, &err), err);
	static const struct kv_name zero;
	T_TRUE(memcmp(&none, &zero, sizeof zero) == 0); /* no salt: the zero root of an empty sequence */
	T_TRUE(memcmp(&k1, &k1b, sizeof k1) == 0);
	T_TRUE(memcmp(&k1, &k2, sizeof k1) != 0 && memcmp(&k1, &zero, sizeof k1) != 0);
	if (!init(&kv))
		return;
	publish(&kv, &k1, t, 8, 0);
	struct kv_seq q = { 0 };
	q.root = k1;
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 9, 8), 8);
	kv_seq_release(&kv, &q); /* keeps the root */
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 9, 8), 8);
	kv_seq_free(&kv, &q);
	q.root = k2;
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 9, 8), 0);
	kv_seq_free(&kv, &q);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 9, 8), 0); /* unsalted */
	kv_seq_free(&kv, &q);
	kv_cache_free(&kv);
}

/* Publish, adopt, stats, truncate: the behaviour around the names. */
void test_kv_prefix(void)
{
	struct kv_cache kv;
	struct kv_seq a = { 0 }, q = { 0 };
	const int32_t t[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
	if (!init(&kv))
		return;
	T_EQ_I64(kv_seq_reserve(&kv, &a, 11), 0);
	kv_seq_commit(&kv, &a, t, 6);
	kv_seq_commit(&kv, &a, t, 5); /* commits may end mid-block */
	T_EQ_I64(a.n_named, 2);
	/* a shared block is taken by reference while a still holds it */
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 11, 10), 8);
	T_EQ_I64(q.table[0], a.table[0]);
	T_EQ_I64(kv.blocks[a.table[1]].ref, 2);
	T_EQ_I64(kv.queries, 11);
	T_EQ_I64(kv.hits, 8);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 11, 7), 4); /* at most max_reuse */
	kv_seq_free(&kv, &q);
	/* truncating into block 1 unpublishes it (it will be overwritten) */
	kv_seq_truncate(&kv, &a, 6);
	T_EQ_I64(a.n_named, 1);
	T_TRUE(!kv.blocks[a.table[1]].named);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 11, 10), 4);
	kv_seq_free(&kv, &q);
	kv_seq_commit(&kv, &a, t, 5); /* rewrites 6..10: block 1 named again */
	T_EQ_I64(a.n_named, 2);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &q, t, 11, 10), 8);
	kv_seq_free(&kv, &q);
	kv_seq_free(&kv, &a);
	T_EQ_I64(kv_cache_used(&kv), 0);
	kv_cache_free(&kv);
}

/* ---- sliding windows ------------------------------------------------------------ */

enum { W = 8, LBLOCKS = 7 }; /* layer 0 global, layer 1 local with a window of 8 */

static bool init_swa(struct kv_cache *kv)
{
	struct hearth_err err = { 0 };
	const int32_t swa[2] = { 0, W };
	int rc = kv_cache_init_swa(kv, 2, 4, 4, N_TOKENS, BS, HEARTH_TYPE_F32, swa, LBLOCKS * BS, &err);
	T_OK(rc, err);
	return rc == 0;
}

/* Appends tokens[from..to) to s a few at a time, writing each position's
 * number into its K and V rows of both layers. */
static void feed(struct kv_cache *kv, struct kv_seq *s, const int32_t *tokens, int32_t from, int32_t to, int32_t step)
{
	for (int32_t p = from; p < to; p += step) {
		const int32_t n = to - p < step ? to - p : step;
		T_EQ_I64(kv_seq_reserve(kv, s, n), 0);
		for (int32_t i = p; i < p + n; i++)
			for (int il = 0; il < 2; il++) {
				((float *)kv_cache_k(kv, s, il, i))[0] = (float)(i + 1000 * il);
				((float *)kv_cache_v(kv, s, il, i))[3] = (float)(-i - 1000 * il);
			}
		kv_seq_commit(kv, s, tokens, n);
	}
}

/* Every position a next token attends to reads back what feed wrote. */
static bool window_intact(const struct kv_cache *kv, const struct kv_seq *s)
{
	const int32_t n = s->n_tokens, first = n - W + 1 > 0 ? n - W + 1 : 0;
	for (int32_t i = 0; i < n; i++)
		if (((float *)kv_cache_k(kv, s, 0, i))[0] != (float)i || ((float *)kv_cache_v(kv, s, 0, i))[3] != (float)-i)
			return false;
	for (int32_t i = first; i < n; i++)
		if (((float *)kv_cache_k(kv, s, 1, i))[0] != (float)(i + 1000) ||
		    ((float *)kv_cache_v(kv, s, 1, i))[3] != (float)(-i - 1000))
			return false;
	return true;
}

/* A long sequence holds every block of the global layer but a window's worth
 * of the local one; released, its last blocks keep theirs, so the whole
 * prefix can be adopted, not one whose window has gone; truncating within
 * the window keeps it, past it keeps nothing. */
void test_kv_swa(void)
{
	struct kv_cache kv;
	if (!init_swa(&kv))
		return;
	T_EQ_I64(kv.n_swa, W);
	T_EQ_I64(kv.n_lblocks, LBLOCKS);
	int32_t t[N_TOKENS];
	for (int i = 0; i < N_TOKENS; i++)
		t[i] = 100 + i;
	struct kv_seq a = { 0 }, b = { 0 };
	feed(&kv, &a, t, 0, 40, 3);
	T_EQ_I64(a.n_blocks, 10);
	/* window 8 from position 40: positions 33.., blocks 8..9, one of slack, the partial one */
	T_TRUE(kv_cache_local_used(&kv) <= 4);
	T_TRUE(window_intact(&kv, &a));
	/* the local pool (7 blocks) is smaller than the sequence: only passing makes this fit */
	feed(&kv, &a, t, 40, 60, 5);
	T_TRUE(window_intact(&kv, &a));
	T_TRUE(kv_cache_local_used(&kv) <= 5);

	/* truncation within the window keeps it */
	kv_seq_truncate(&kv, &a, 57);
	T_EQ_I64(a.n_tokens, 57);
	T_TRUE(window_intact(&kv, &a));
	/* past it: nothing */
	kv_seq_truncate(&kv, &a, 20);
	T_EQ_I64(a.n_tokens, 0);
	T_EQ_I64(a.n_blocks, 0);
	T_TRUE(kv_cache_local_used(&kv) <= 4); /* the released blocks' last local ones stay */

	/* publish 40 tokens, release: the whole prefix is adoptable, a short one is not */
	feed(&kv, &a, t, 0, 40, 4);
	kv_seq_release(&kv, &a);
	T_TRUE(kv_cache_local_used(&kv) > 0); /* the last blocks keep theirs */
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &b, t, 44, 44), 40);
	if (b.n_tokens != 40) {
		kv_cache_free(&kv);
		return;
	}
	T_TRUE(window_intact(&kv, &b));
	feed(&kv, &b, t, 40, 48, 4); /* and continues */
	T_TRUE(window_intact(&kv, &b));
	kv_seq_release(&kv, &b);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &b, t, 20, 20), 0); /* blocks 0..4 are there, their window is not */
	kv_seq_release(&kv, &b);

	/* two sequences on one prefix: each keeps its window, the shared blocks
	 * keep theirs while either attends to them */
	feed(&kv, &a, t, 0, 24, 4);
	T_EQ_I64(kv_seq_adopt_prefix(&kv, &b, t, 24, 24), 24);
	feed(&kv, &a, t, 24, 36, 4);
	T_TRUE(window_intact(&kv, &a));
	T_TRUE(window_intact(&kv, &b));
	kv_seq_free(&kv, &a);
	kv_seq_free(&kv, &b);

	/* a sequence whose window does not fit the local pool at once is refused, unchanged */
	T_EQ_I64(kv_seq_reserve(&kv, &a, (LBLOCKS + 1) * BS), HEARTH_ECTXFULL);
	T_EQ_I64(a.n_blocks, 0);
	kv_seq_free(&kv, &a);
	kv_cache_free(&kv);
}

/* Saved rows with sliding windows: the local layer's from the first block
 * the sequence still holds; restored into a cache of another block size,
 * every position a next token attends to is back (and the blocks holding
 * positions without rows are passed at once); rows that do not reach the
 * window are refused, and nothing changes. */
void test_kv_state_swa(void)
{
	struct hearth_err err = { 0 };
	struct kv_cache kv, kv2;
	const int32_t swa[2] = { 0, W };
	if (!init_swa(&kv))
		return;
	int rc = kv_cache_init_swa(&kv2, 2, 4, 4, N_TOKENS, 2 * BS, HEARTH_TYPE_F32, swa, LBLOCKS * 2 * BS, &err);
	T_OK(rc, err);
	if (rc) {
		kv_cache_free(&kv);
		return;
	}
	int32_t t[N_TOKENS];
	for (int i = 0; i < N_TOKENS; i++)
		t[i] = 100 + i;
	struct kv_seq a = { 0 }, b = { 0 }, c = { 0 };
	feed(&kv, &a, t, 0, 60, 5);
	const int32_t from = kv_seq_local_from(&kv, &a);
	T_TRUE(from > 0 && from <= 60 - W + 1);
	const size_t size = kv_state_size(&kv, 60, from);
	T_EQ_I64(size, (size_t)(60 + 60 - from) * (kv.row_k + kv.row_v));
	T_EQ_I64(kv_state_size(&kv, 60, 61), 0);
	uint8_t *rows = malloc(size);
	if (!rows)
		goto out;
	kv_state_get(&kv, &a, 60, from, rows);

	T_EQ_I64(kv_state_put(&kv2, &b, t, rows, 60, from, 60), 0);
	T_EQ_I64(b.n_tokens, 60);
	T_TRUE(window_intact(&kv2, &b));
	T_TRUE(kv_seq_local_from(&kv2, &b) >= from);
	feed(&kv2, &b, t, 60, 64, 1);
	T_TRUE(window_intact(&kv2, &b));

	/* no local rows at all: refused, c untouched */
	const int32_t used = kv_cache_used(&kv2);
	T_EQ_I64(kv_state_put(&kv2, &c, t, rows, 60, 60, 60), HEARTH_EINVAL);
	T_EQ_I64(c.n_tokens, 0);
	T_EQ_I64(c.n_blocks, 0);
	T_EQ_I64(kv_cache_used(&kv2), used);
	/* a prefix whose window starts before the rows: refused too; one after: restored */
	T_EQ_I64(kv_state_put(&kv2, &c, t, rows, 60, from, from), HEARTH_EINVAL);
	T_EQ_I64(c.n_tokens, 0);
	kv_seq_free(&kv2, &b);
	T_EQ_I64(kv_state_put(&kv2, &c, t, rows, 60, from, 58), 0);
	T_EQ_I64(c.n_tokens, 58);
	T_TRUE(window_intact(&kv2, &c));
out:
	free(rows);
	kv_seq_free(&kv, &a);
	kv_seq_free(&kv2, &b);
	kv_seq_free(&kv2, &c);
	kv_cache_free(&kv);
	kv_cache_free(&kv2);
}
