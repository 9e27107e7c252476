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
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

struct mframe {
	struct gm_state st;
	int32_t mark, n_buf; /* the pool and buffer sizes once st was made */
};

int32_t gmask_compute(struct gmatch *m, const struct gvocab *v, uint32_t *bits)
{
	const int32_t words = (v->n_vocab + 31) / 32;
	struct mframe stack_frames[64];
	struct mframe *fr = v->max_len < 64 ? stack_frames : malloc(((size_t)v->max_len + 1) * sizeof *fr);
	int32_t n_allowed = 0;
	memset(bits, 0, (size_t)words * sizeof *bits);
	if (!fr)
		return 0; /* out of memory: nothing but the end (below) */
	const int32_t mark0 = m->n_node, n_buf0 = m->n_buf;
	fr[0] = (struct mframe){ m->cur, mark0, n_buf0 };
	uint32_t depth = 0, dead_at = UINT32_MAX;
	for (int32_t i = 0; i < v->n_sorted; i++) {
		const int32_t id = v->sorted[i];
		const uint32_t l = v->lcp[i], len = v->len[id];
		const uint8_t *p = v->bytes + v->off[id];
		if (l < depth)
			depth = l;
		if (l >= dead_at)
			continue;
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
	if (gmatch_can_end(m))
		for (int32_t id = 0; id < v->n_vocab; id++)
			if (v->kind[id] == GV_EOG) {
				bits[id >> 5] |= 1u << (id & 31);
				n_allowed++;
			}
	return n_allowed;
}
