/*
 * match.c - the grammar's parse stacks, advanced one byte at a time.
 *
 * Stepping a state by a code point c: every stack whose top class holds c
 * moves past that element, and the result is closed: a stack whose top is
 * a rule reference becomes one stack per alternative of the rule (the
 * caller's frame keeps the return position; a reference that ends its
 * alternative is a tail call and pushes no frame, so x* loops stay flat),
 * and a stack at the end of an alternative returns to its caller. The
 * closure visits each frame at most once per step (stamps), which also
 * ends loops through rules that derive the empty string.
 *
 * Bytes are decoded here: a lead byte leaves the stacks as they are and
 * only remembers the sequence, each continuation byte checks that some
 * stack could still take a code point that starts so (the range the
 * sequence can still reach, overlong forms and surrogates excluded), and
 * the last one steps by the code point.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "dfa.h"
#include "match.h"

static uint32_t node_hash(int32_t pos, int32_t parent)
{
	uint64_t h = ((uint64_t)(uint32_t)pos << 32 | (uint32_t)parent) * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)(h >> 32);
}

static bool rehash(struct gmatch *m, uint32_t n_head)
{
	int32_t *h = malloc((size_t)n_head * sizeof *h);
	if (!h)
		return false;
	memset(h, 0xff, (size_t)n_head * sizeof *h);
	free(m->head);
	m->head = h;
	m->head_mask = n_head - 1;
	for (int32_t i = 1; i < m->n_node; i++) { /* in creation order: the newest heads its chain */
		uint32_t k = node_hash(m->node[i].pos, m->node[i].parent) & m->head_mask;
		m->node[i].next = h[k];
		h[k] = i;
	}
	return true;
}

/* The frame (pos, parent), found or created; -1 (and overflow) past a bound. */
static int32_t intern(struct gmatch *m, int32_t pos, int32_t parent)
{
	uint32_t k = node_hash(pos, parent) & m->head_mask;
	for (int32_t i = m->head[k]; i >= 0; i = m->node[i].next)
		if (m->node[i].pos == pos && m->node[i].parent == parent)
			return i;
	const int32_t depth = m->node[parent].depth + 1;
	if (depth > GM_MAX_DEPTH || m->n_node >= GM_MAX_NODES) {
		m->overflow = true;
		return -1;
	}
	if (m->n_node == m->cap_node) {
		int32_t cap = m->cap_node * 2;
		struct gm_node *n = realloc(m->node, (size_t)cap * sizeof *n);
		if (!n) {
			m->overflow = m->oom = true;
			return -1;
		}
		m->node = n;
		m->cap_node = cap;
	}
	if ((uint32_t)m->n_node > 2 * (m->head_mask + 1)) {
		if (!rehash(m, 4 * (m->head_mask + 1))) {
			m->overflow = m->oom = true;
			return -1;
		}
		k = node_hash(pos, parent) & m->head_mask;
	}
	m->node[m->n_node] = (struct gm_node){ pos, parent, m->head[k], depth, 0 };
	m->head[k] = m->n_node;
	return m->n_node++;
}

void gmatch_rollback(struct gmatch *m, int32_t mark)
{
	while (m->n_node > mark) {
		const int32_t i = --m->n_node;
		uint32_t k = node_hash(m->node[i].pos, m->node[i].parent) & m->head_mask;
		m->head[k] = m->node[i].next; /* i, the newest, heads its chain */
	}
}

static bool push_work(struct gmatch *m, int32_t *n_work, int32_t id)
{
	if (*n_work == m->cap_work) {
		int32_t cap = m->cap_work * 2;
		int32_t *w = realloc(m->work, (size_t)cap * sizeof *w);
		if (!w) {
			m->overflow = m->oom = true;
			return false;
		}
		m->work = w;
		m->cap_work = cap;
	}
	m->work[(*n_work)++] = id;
	return true;
}

static bool append(struct gmatch *m, struct gm_state *out, int32_t id)
{
	if (out->n >= GM_MAX_STACKS) {
		m->overflow = true;
		return false;
	}
	if (m->n_buf == m->cap_buf) {
		int32_t cap = m->cap_buf * 2;
		int32_t *b = realloc(m->buf, (size_t)cap * sizeof *b);
		if (!b) {
			m->overflow = m->oom = true;
			return false;
		}
		m->buf = b;
		m->cap_buf = cap;
	}
	m->buf[m->n_buf++] = id;
	out->n++;
	return true;
}

/* Closes the n_work frames on the work list into out (appended at the end of buf). */
static void closure(struct gmatch *m, int32_t n_work, struct gm_state *out)
{
	const struct gram *g = m->g;
	while (n_work > 0) {
		const int32_t id = m->work[--n_work];
		m->spent++;
		struct gm_node *nd = &m->node[id];
		if (nd->stamp == m->stamp)
			continue;
		nd->stamp = m->stamp;
		if (id == GM_ACCEPT) {
			if (!append(m, out, id))
				return;
			continue;
		}
		const int32_t pos = nd->pos, parent = nd->parent;
		const struct gel *e = &g->el[pos];
		if (e->type == GEL_CHAR) {
			if (!append(m, out, id))
				return;
		} else if (e->type != GEL_RULE) { /* end of an alternative: back to the caller */
			if (!push_work(m, &n_work, parent))
				return;
		} else {
			const int32_t ret = pos + 1;
			const int32_t t = g->el[ret].type;
			const int32_t caller = t == GEL_END || t == GEL_ALT ? parent : intern(m, ret, parent);
			if (caller < 0)
				continue;
			for (int32_t a = g->rule_alt[e->val]; a < g->rule_alt[e->val + 1]; a++) {
				const int32_t f = intern(m, g->alt[a], caller);
				if (f >= 0 && !push_work(m, &n_work, f))
					return;
			}
		}
	}
}

bool gmatch_step_cp(struct gmatch *m, const struct gm_state *in, uint32_t c, struct gm_state *out)
{
	const struct gram *g = m->g;
	int32_t n_work = 0;
	m->stamp++;
	*out = (struct gm_state){ .off = m->n_buf };
	m->spent += (uint64_t)in->n;
	for (int32_t i = 0; i < in->n; i++) {
		const int32_t id = m->buf[in->off + i];
		if (id == GM_ACCEPT)
			continue;
		const struct gm_node *nd = &m->node[id];
		if (!gram_class_has(g, g->el[nd->pos].val, c))
			continue;
		const int32_t f = intern(m, nd->pos + 1, nd->parent);
		if (f >= 0 && push_work(m, &n_work, f))
			closure(m, n_work, out);
		n_work = 0;
	}
	return out->n > 0;
}

bool gmatch_feasible(const struct gmatch *m, const int32_t *ids, int32_t n, uint32_t acc, int need, int seq)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t lo = acc << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
	if (lo < min_cp[seq])
		lo = min_cp[seq];
	if (hi > 0x10ffff)
		hi = 0x10ffff;
	if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff))
		return false;
	for (int32_t i = 0; i < n; i++)
		if (ids[i] != GM_ACCEPT && gram_class_meets(m->g, m->g->el[m->node[ids[i]].pos].val, lo, hi))
			return true;
	return false;
}

static bool feasible(const struct gmatch *m, const struct gm_state *s)
{
	return gmatch_feasible(m, m->buf + s->off, s->n, s->acc, s->need, s->seq);
}

bool gmatch_step(struct gmatch *m, const struct gm_state *in, uint8_t b, struct gm_state *out)
{
	if (in->need == 0) {
		if (b < 0x80)
			return gmatch_step_cp(m, in, b, out);
		const int seq = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
		if (!seq)
			return false;
		*out = *in;
		out->seq = (uint8_t)seq;
		out->need = (uint8_t)(seq - 1);
		out->acc = b & (0x7fu >> seq);
		return feasible(m, out);
	}
	if ((b & 0xc0) != 0x80)
		return false;
	const uint32_t acc = in->acc << 6 | (b & 0x3fu);
	if (in->need > 1) {
		*out = *in;
		out->acc = acc;
		out->need--;
		return feasible(m, out);
	}
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (acc < min_cp[in->seq] || acc > 0x10ffff || (acc >= 0xd800 && acc <= 0xdfff))
		return false;
	return gmatch_step_cp(m, in, acc, out);
}

static int cmp_id(const void *a, const void *b)
{
	const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

/* Makes s (somewhere in buf) the current state, first in buf, its ids sorted. */
static void make_current(struct gmatch *m, const struct gm_state *s)
{
	memmove(m->buf, m->buf + s->off, (size_t)s->n * sizeof *m->buf);
	m->cur = *s;
	m->cur.off = 0;
	m->n_buf = s->n;
	qsort(m->buf, (size_t)s->n, sizeof *m->buf, cmp_id);
}

static bool walk(struct gmatch *m, const uint8_t *s, size_t n, struct gm_state *out)
{
	struct gm_state st = m->cur;
	for (size_t i = 0; i < n; i++) {
		struct gm_state nx;
		if (!gmatch_step(m, &st, s[i], &nx))
			return false;
		st = nx;
	}
	*out = st;
	return true;
}

bool gmatch_feed(struct gmatch *m, const uint8_t *s, size_t n)
{
	const int32_t mark = m->n_node, n_buf = m->n_buf;
	struct gm_state st;
	if (!walk(m, s, n, &st)) {
		gmatch_rollback(m, mark);
		m->n_buf = n_buf;
		return false;
	}
	make_current(m, &st);
	return true;
}

bool gmatch_allows(struct gmatch *m, const uint8_t *s, size_t n)
{
	const int32_t mark = m->n_node, n_buf = m->n_buf;
	struct gm_state st;
	const bool ok = walk(m, s, n, &st);
	gmatch_rollback(m, mark);
	m->n_buf = n_buf;
	return ok;
}

bool gmatch_can_end(const struct gmatch *m)
{
	return m->cur.need == 0 && m->cur.n > 0 && m->buf[m->cur.off] == GM_ACCEPT;
}

bool gmatch_done(const struct gmatch *m)
{
	return gmatch_can_end(m) && m->cur.n == 1;
}

int gmatch_reset(struct gmatch *m, struct hearth_err *err)
{
	const struct gram *g = m->g;
	int32_t n_work = 0;
	gmatch_rollback(m, 1);
	if (m->dfa)
		gdfa_clear(m->dfa);
	m->n_buf = 0;
	m->overflow = m->oom = false;
	m->stamp++;
	struct gm_state st = { .off = 0 };
	for (int32_t a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1]; a++) {
		const int32_t f = intern(m, g->alt[a], GM_ACCEPT);
		if (f >= 0)
			push_work(m, &n_work, f);
	}
	closure(m, n_work, &st);
	if (m->oom)
		return err_set(err, HEARTH_ENOMEM, "grammar: out of memory for the start state");
	if (m->overflow)
		return err_set(err, HEARTH_ETOOBIG, "grammar: the start state has more than %d parse stacks "
			       "(or nests deeper than %d)", GM_MAX_STACKS, GM_MAX_DEPTH);
	if (st.n == 0)
		return err_set(err, HEARTH_EINVAL, "grammar: the start rule matches nothing (it only refers to itself)");
	make_current(m, &st);
	return 0;
}

int gmatch_init(struct gmatch *m, const struct gram *g, struct hearth_err *err)
{
	memset(m, 0, sizeof *m);
	m->g = g;
	m->cap_node = 1024;
	m->cap_work = 256;
	m->cap_buf = 1024;
	m->node = malloc((size_t)m->cap_node * sizeof *m->node);
	m->work = malloc((size_t)m->cap_work * sizeof *m->work);
	m->buf = malloc((size_t)m->cap_buf * sizeof *m->buf);
	if (!m->node || !m->work || !m->buf || !rehash(m, 1024)) {
		gmatch_release(m);
		return err_set(err, HEARTH_ENOMEM, "grammar: out of memory for a matcher");
	}
	m->node[0] = (struct gm_node){ -1, -1, -1, 0, 0 };
	m->n_node = 1;
	int rc = gmatch_reset(m, err);
	if (rc)
		gmatch_release(m);
	return rc;
}

void gmatch_release(struct gmatch *m)
{
	gdfa_free(m->dfa);
	free(m->node);
	free(m->head);
	free(m->work);
	free(m->buf);
	memset(m, 0, sizeof *m);
}

bool gmatch_compact(struct gmatch *m)
{
	const int32_t n = m->cur.n;
	int32_t total = 0;
	for (int32_t i = 0; i < n; i++)
		total += m->node[m->buf[i]].depth;
	int32_t *pos = malloc(((size_t)total + 1) * sizeof *pos), *len = malloc(((size_t)n + 1) * sizeof *len);
	bool ok = pos && len;
	for (int32_t i = 0, k = 0; ok && i < n; i++) { /* each stack's positions, top first */
		len[i] = 0;
		for (int32_t id = m->buf[i]; id != GM_ACCEPT; id = m->node[id].parent)
			pos[k + len[i]++] = m->node[id].pos;
		k += len[i];
	}
	if (ok) {
		if (m->dfa)
			gdfa_clear(m->dfa);
		gmatch_rollback(m, 1);
		for (int32_t i = 0, k = 0; i < n; i++) { /* built again from the bottom */
			int32_t id = GM_ACCEPT;
			for (int32_t j = len[i] - 1; j >= 0 && id >= 0; j--)
				id = intern(m, pos[k + j], id);
			m->buf[i] = id; /* cannot fail: fewer frames than before */
			k += len[i];
		}
		qsort(m->buf, (size_t)n, sizeof *m->buf, cmp_id);
	}
	free(pos);
	free(len);
	return ok;
}
