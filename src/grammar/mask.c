/*
 * mask.c - the allowed tokens of a matcher state, by one walk over the
 * sorted pieces (vocab.h).
 *
 * frame[d] is the state after the first d bytes of the piece being looked
 * at; a piece that shares lcp bytes with the one before starts from
 * frame[lcp] (the frames past it are dropped, and the parse frames they
 * created rolled back), so each byte of the implicit trie is stepped once.
 * When byte d of a piece is refused, every following piece that shares
 * those d + 1 bytes is refused without a step.
 *
 * Steps go through the matcher's DFA (dfa.h): a frame is a state number
 * plus the bytes of an incomplete character, and a step is a table read
 * unless that transition was never met. Should the DFA pass its bounds,
 * it is cleared and the walk is done again with the matcher itself.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dfa.h"
#include "grammar.h"

struct mframe {
	struct gm_state st;
	int32_t mark, n_buf; /* the pool and buffer sizes once st was made */
};

/* What one mask may spend (gmatch.spent): GMASK_WORK per byte of the vocabulary's pieces. */
#define GMASK_WORK 64

static int32_t walk_plain(struct gmatch *m, const struct gvocab *v, uint32_t *bits, uint64_t limit)
{
	const int32_t words = (v->n_vocab + 31) / 32;
	struct mframe stack_frames[64];
	struct mframe *fr = v->max_len < 64 ? stack_frames : malloc(((size_t)v->max_len + 1) * sizeof *fr);
	int32_t n_allowed = 0;
	memset(bits, 0, (size_t)words * sizeof *bits);
	if (!fr)
		return 0; /* out of memory: nothing allowed (but the end) */
	const int32_t mark0 = m->n_node, n_buf0 = m->n_buf;
	fr[0] = (struct mframe){ m->cur, mark0, n_buf0 };
	uint32_t depth = 0, dead_at = UINT32_MAX;
	for (int32_t i = 0; i < v->n_sorted && n_allowed >= 0; i++) {
		const int32_t id = v->sorted[i];
		const uint32_t l = v->lcp[i], len = v->len[id];
		const uint8_t *p = v->bytes + v->off[id];
		if (l < depth)
			depth = l;
		if (l >= dead_at)
			continue;
		if (m->spent > limit) {
			n_allowed = -1;
			break;
		}
		dead_at = UINT32_MAX;
		gmatch_rollback(m, fr[depth].mark);
		m->n_buf = fr[depth].n_buf;
		bool ok = true;
		for (; depth < len; depth++) {
			if (!gmatch_step(m, &fr[depth].st, p[depth], &fr[depth + 1].st)) {
				dead_at = depth + 1;
				ok = false;
				break;
			}
			fr[depth + 1].mark = m->n_node;
			fr[depth + 1].n_buf = m->n_buf;
		}
		if (ok) {
			bits[id >> 5] |= 1u << (id & 31);
			n_allowed++;
		}
	}
	gmatch_rollback(m, mark0);
	m->n_buf = n_buf0;
	if (fr != stack_frames)
		free(fr);
	return n_allowed;
}

struct dframe {
	int32_t sid;
	uint32_t acc;
	uint8_t need, seq;
};

/* One byte from f into *t through the DFA: 1 taken, 0 refused, -1 the DFA is full. */
static int dstep(struct gmatch *m, const struct dframe *f, uint8_t b, struct dframe *t)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	int32_t n;
	const int32_t *ids;
	*t = *f;
	if (f->need == 0) {
		if (b < 0x80) {
			t->sid = gdfa_next(m->dfa, m, f->sid, b);
			return t->sid >= 0 ? 1 : t->sid == GD_DEAD ? 0 : -1;
		}
		const int seq = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
		if (!seq)
			return 0;
		t->seq = (uint8_t)seq;
		t->need = (uint8_t)(seq - 1);
		t->acc = b & (0x7fu >> seq);
		ids = gdfa_ids(m->dfa, f->sid, &n);
		return gmatch_feasible(m, ids, n, t->acc, t->need, t->seq);
	}
	if ((b & 0xc0) != 0x80)
		return 0;
	t->acc = f->acc << 6 | (b & 0x3fu);
	t->need--;
	if (t->need > 0) {
		ids = gdfa_ids(m->dfa, f->sid, &n);
		return gmatch_feasible(m, ids, n, t->acc, t->need, t->seq);
	}
	if (t->acc < min_cp[t->seq] || t->acc > 0x10ffff || (t->acc >= 0xd800 && t->acc <= 0xdfff))
		return 0;
	t->sid = gdfa_next(m->dfa, m, f->sid, t->acc);
	t->acc = 0;
	t->seq = 0;
	return t->sid >= 0 ? 1 : t->sid == GD_DEAD ? 0 : -1;
}

/* The walk through the DFA; -1 when it filled up, -2 past the limit of work. */
static int32_t walk_dfa(struct gmatch *m, const struct gvocab *v, uint32_t *bits, uint64_t limit)
{
	struct dframe stack_frames[64];
	struct dframe *fr = v->max_len < 64 ? stack_frames : malloc(((size_t)v->max_len + 1) * sizeof *fr);
	int32_t n_allowed = 0;
	if (!fr)
		return -1;
	const int32_t root = gdfa_state(m->dfa, m->buf + m->cur.off, m->cur.n);
	if (root < 0) {
		if (fr != stack_frames)
			free(fr);
		return -1;
	}
	fr[0] = (struct dframe){ root, m->cur.acc, m->cur.need, m->cur.seq };
	/* pieces of at most `run` plain characters are taken without a walk (dfa.h) */
	const int32_t run = m->cur.need ? 0 : gdfa_plain_run(m->dfa, m, root, limit);
	uint32_t depth = 0, dead_at = UINT32_MAX;
	for (int32_t i = 0; i < v->n_sorted && n_allowed >= 0; i++) {
		const int32_t id = v->sorted[i];
		const uint32_t l = v->lcp[i], len = v->len[id];
		const uint8_t *p = v->bytes + v->off[id];
		if (l < depth)
			depth = l;
		if (l >= dead_at)
			continue;
		if (m->spent > limit) {
			n_allowed = -2;
			break;
		}
		dead_at = UINT32_MAX;
		if (v->plain[id] && v->plain[id] <= run) {
			bits[id >> 5] |= 1u << (id & 31);
			n_allowed++;
			continue;
		}
		int ok = 1;
		for (; depth < len; depth++) {
			ok = dstep(m, &fr[depth], p[depth], &fr[depth + 1]);
			if (ok <= 0) {
				dead_at = depth + 1;
				break;
			}
		}
		if (ok < 0)
			n_allowed = -1;
		else if (ok) {
			bits[id >> 5] |= 1u << (id & 31);
			n_allowed++;
		}
	}
	if (fr != stack_frames)
		free(fr);
	return n_allowed;
}

int32_t gmask_compute(struct gmatch *m, const struct gvocab *v, uint32_t *bits)
{
	const int32_t words = (v->n_vocab + 31) / 32;
	const uint64_t limit = m->spent + GMASK_WORK * (v->n_bytes + 4096);
	int32_t n_allowed = -1;
	if (!m->dfa)
		m->dfa = gdfa_new();
	if (m->dfa) {
		memset(bits, 0, (size_t)words * sizeof *bits);
		if ((n_allowed = walk_dfa(m, v, bits, limit)) == -1)
			gdfa_clear(m->dfa);
	}
	if (n_allowed == -1)
		n_allowed = walk_plain(m, v, bits, limit);
	if (n_allowed < 0) { /* too much work: refused (see grammar.h) */
		memset(bits, 0, (size_t)words * sizeof *bits);
		return -1;
	}
	if (gmatch_can_end(m))
		for (int32_t id = 0; id < v->n_vocab; id++)
			if (v->kind[id] == GV_EOG) {
				bits[id >> 5] |= 1u << (id & 31);
				n_allowed++;
			}
	return n_allowed;
}
