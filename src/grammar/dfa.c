/* dfa.c - see dfa.h. States are interned in a chained hash table; ASCII
 * transitions are a 128-entry row per state, others an open-addressed table
 * keyed by (state, interval of code points: gram.h). */
#include <stdlib.h>
#include <string.h>

#include "dfa.h"
#include "match.h"

#define GD_UNKNOWN (-3)

struct gd_wide {
	int32_t sid; /* -1: empty slot */
	uint32_t cp; /* the interval of the code point (gram.h) */
	int32_t to;
};

struct gdfa {
	int32_t *ids;           /* the states' stack ids, one after another */
	size_t n_ids, cap_ids;
	int32_t *off, *len, *next; /* [cap_st] where each state's ids are; hash chain */
	int32_t n_st, cap_st;
	int32_t *ascii;         /* [cap_st * 128] */
	int8_t *run;            /* [cap_st] gdfa_plain_run, -1: not known yet */
	uint32_t *seen;         /* [cap_st] the last search that met each state */
	uint32_t stamp;
	int32_t head[4096];     /* state hash chains */
	struct gd_wide *wide;   /* [GD_MAX_WIDE * 2] */
	int32_t n_wide;
};

struct gdfa *gdfa_new(void)
{
	struct gdfa *d = calloc(1, sizeof *d);
	if (d)
		gdfa_clear(d);
	return d;
}

void gdfa_free(struct gdfa *d)
{
	if (!d)
		return;
	free(d->ids);
	free(d->off);
	free(d->len);
	free(d->next);
	free(d->ascii);
	free(d->run);
	free(d->seen);
	free(d->wide);
	free(d);
}

void gdfa_clear(struct gdfa *d)
{
	d->n_ids = 0;
	d->n_st = 0;
	memset(d->head, 0xff, sizeof d->head);
	if (d->wide && d->n_wide)
		for (size_t i = 0; i < 2 * (size_t)GD_MAX_WIDE; i++)
			d->wide[i].sid = -1;
	d->n_wide = 0;
}

static uint32_t hash_ids(const int32_t *ids, int32_t n)
{
	uint32_t h = 2166136261u;
	for (int32_t i = 0; i < n; i++)
		h = (h ^ (uint32_t)ids[i]) * 16777619u;
	return h;
}

int32_t gdfa_state(struct gdfa *d, const int32_t *ids, int32_t n)
{
	const uint32_t k = hash_ids(ids, n) & 4095;
	for (int32_t s = d->head[k]; s >= 0; s = d->next[s])
		if (d->len[s] == n && (n == 0 || !memcmp(d->ids + d->off[s], ids, (size_t)n * sizeof *ids)))
			return s;
	if (d->n_st >= GD_MAX_STATES)
		return GD_FAIL;
	if (d->n_st == d->cap_st) {
		int32_t cap = d->cap_st ? 2 * d->cap_st : 64;
		int32_t *o = realloc(d->off, (size_t)cap * sizeof *o);
		if (o)
			d->off = o;
		int32_t *l = realloc(d->len, (size_t)cap * sizeof *l);
		if (l)
			d->len = l;
		int32_t *x = realloc(d->next, (size_t)cap * sizeof *x);
		if (x)
			d->next = x;
		int32_t *a = realloc(d->ascii, (size_t)cap * 128 * sizeof *a);
		if (a)
			d->ascii = a;
		int8_t *r = realloc(d->run, (size_t)cap);
		if (r)
			d->run = r;
		uint32_t *sn = realloc(d->seen, (size_t)cap * sizeof *sn);
		if (sn)
			d->seen = sn;
		if (!o || !l || !x || !a || !r || !sn)
			return GD_FAIL;
		d->cap_st = cap;
	}
	if (d->n_ids + (size_t)n + 1 > d->cap_ids) {
		size_t cap = d->cap_ids ? 2 * d->cap_ids : 4096;
		while (cap < d->n_ids + (size_t)n + 1)
			cap *= 2;
		int32_t *v = realloc(d->ids, cap * sizeof *v);
		if (!v)
			return GD_FAIL;
		d->ids = v;
		d->cap_ids = cap;
	}
	const int32_t s = d->n_st++;
	if (n)
		memcpy(d->ids + d->n_ids, ids, (size_t)n * sizeof *ids);
	d->off[s] = (int32_t)d->n_ids;
	d->len[s] = n;
	d->n_ids += (size_t)n;
	d->next[s] = d->head[k];
	d->head[k] = s;
	for (int i = 0; i < 128; i++)
		d->ascii[(size_t)s * 128 + (size_t)i] = GD_UNKNOWN;
	d->run[s] = -1;
	d->seen[s] = 0;
	return s;
}

const int32_t *gdfa_ids(const struct gdfa *d, int32_t sid, int32_t *n)
{
	*n = d->len[sid];
	return d->ids + d->off[sid];
}

static int cmp_id(const void *a, const void *b)
{
	const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

/* Asks the matcher: sid's stacks stepped by cp, interned. */
static int32_t compute(struct gdfa *d, struct gmatch *m, int32_t sid, uint32_t cp)
{
	const int32_t n_buf = m->n_buf;
	struct gm_state in = { .off = m->n_buf, .n = d->len[sid] }, out;
	for (int32_t i = 0; i < d->len[sid]; i++) { /* copy the ids into the matcher's buffer */
		if (m->n_buf == m->cap_buf) {
			int32_t cap = 2 * m->cap_buf;
			int32_t *b = realloc(m->buf, (size_t)cap * sizeof *b);
			if (!b)
				return GD_FAIL;
			m->buf = b;
			m->cap_buf = cap;
		}
		m->buf[m->n_buf++] = d->ids[d->off[sid] + i];
	}
	int32_t to = GD_DEAD;
	if (gmatch_step_cp(m, &in, cp, &out)) {
		qsort(m->buf + out.off, (size_t)out.n, sizeof *m->buf, cmp_id);
		to = gdfa_state(d, m->buf + out.off, out.n);
	} else if (m->overflow) {
		to = GD_FAIL;
	}
	m->n_buf = n_buf;
	return to;
}

int32_t gdfa_next(struct gdfa *d, struct gmatch *m, int32_t sid, uint32_t cp)
{
	if (cp < 128) {
		const size_t at = (size_t)sid * 128 + cp;
		if (d->ascii[at] == GD_UNKNOWN) {
			const int32_t to = compute(d, m, sid, cp); /* may move d->ascii */
			d->ascii[at] = to;
		}
		return d->ascii[at];
	}
	if (!d->wide) {
		d->wide = malloc(2 * (size_t)GD_MAX_WIDE * sizeof *d->wide);
		if (!d->wide)
			return GD_FAIL;
		for (size_t i = 0; i < 2 * (size_t)GD_MAX_WIDE; i++)
			d->wide[i].sid = -1;
	}
	const uint32_t ivl = (uint32_t)gram_interval(m->g, cp); /* the same step for its whole interval */
	uint32_t k = (((uint32_t)sid * 0x9e3779b1u) ^ (ivl * 0x85ebca6bu)) & (2 * GD_MAX_WIDE - 1);
	while (d->wide[k].sid >= 0) {
		if (d->wide[k].sid == sid && d->wide[k].cp == ivl)
			return d->wide[k].to;
		k = (k + 1) & (2 * GD_MAX_WIDE - 1);
	}
	if (d->n_wide >= GD_MAX_WIDE)
		return GD_FAIL;
	const int32_t to = compute(d, m, sid, cp);
	if (to == GD_FAIL)
		return to;
	k = (((uint32_t)sid * 0x9e3779b1u) ^ (ivl * 0x85ebca6bu)) & (2 * GD_MAX_WIDE - 1);
	while (d->wide[k].sid >= 0) /* compute() does not touch the table, but find the slot again to be plain */
		k = (k + 1) & (2 * GD_MAX_WIDE - 1);
	d->wide[k] = (struct gd_wide){ sid, ivl, to };
	d->n_wide++;
	return to;
}

/* The length of the shortest run of plain characters from sid to a state
 * that refuses one (breadth first, up to GD_MAX_RUN): any run shorter than
 * that is taken, whichever characters it has. The search looks at
 * GD_RUN_STATES states at most (and stops when the matcher has spent its
 * limit): stopped at a state of distance k, every state nearer was looked
 * at, so k is still a run surely taken. */
int32_t gdfa_plain_run(struct gdfa *d, struct gmatch *m, int32_t sid, uint64_t limit)
{
	if (d->run[sid] >= 0)
		return d->run[sid];
	int32_t result = GD_MAX_RUN, n_q = 0, head = 0, cap_q = 64;
	int32_t *q = malloc((size_t)cap_q * 2 * sizeof *q);
	if (!q)
		return 0;
	d->stamp++;
	q[n_q * 2] = sid;
	q[n_q++ * 2 + 1] = 0;
	d->seen[sid] = d->stamp;
	while (head < n_q) {
		const int32_t x = q[head * 2], dist = q[head * 2 + 1];
		if (dist >= result)
			break;
		if (head >= GD_RUN_STATES || m->spent > limit) { /* every state closer than x was seen: sound */
			result = dist;
			break;
		}
		head++;
		for (uint32_t c = 0x20; c < 0x80 + (uint32_t)m->g->n_cut; c++) {
			if (c == '"' || c == '\\')
				continue;
			const uint32_t cp = c < 0x80 ? c : m->g->cut[c - 0x80]; /* then one code point per interval */
			const int32_t t = gdfa_next(d, m, x, cp);
			if (t < 0) { /* x refuses a plain character */
				result = dist;
				break;
			}
			if (d->seen[t] == d->stamp || dist + 1 >= GD_MAX_RUN)
				continue;
			d->seen[t] = d->stamp;
			if (n_q == cap_q) {
				int32_t *nq = realloc(q, (size_t)cap_q * 4 * sizeof *q);
				if (!nq) {
					result = 0;
					break;
				}
				q = nq;
				cap_q *= 2;
			}
			q[n_q * 2] = t;
			q[n_q++ * 2 + 1] = dist + 1;
		}
	}
	free(q);
	d->run[sid] = (int8_t)result;
	return result;
}
