/*
 * follow.c - one sampler's grammar state: the matcher, the trigger text
 * before which sampling is free, and a cache of masks.
 *
 * Masks are cached by state: the matcher interns its parse stacks, so a
 * state met again (the inside of a string, the next element of an array)
 * has the same sorted stack ids and the same pending UTF-8 bytes, and its
 * mask is reused. The cache changes the work, never the result. The pool of
 * frames grows with the text and the DFA (dfa.h); past GF_COMPACT_NODES it is
 * rebuilt from the current state's stacks (and the caches start over).
 */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "grammar.h"

#define GF_CACHE 8
#define GF_MAX_AFTER 256
#define GF_COMPACT_NODES (1 << 20) /* frames in the pool beyond which it is rebuilt */

struct gf_entry {
	int32_t *ids, n; /* NULL: empty slot */
	uint32_t acc;
	uint8_t need, seq;
	int32_t n_allowed;
	uint32_t *bits;
};

struct gfollow {
	const struct hearth_grammar *hg;
	struct gmatch m;
	char after[GF_MAX_AFTER]; /* the trigger, n_after bytes (0: none) */
	size_t n_after;
	char seen[GF_MAX_AFTER];  /* the last bytes of text before the trigger was found */
	size_t n_seen;
	bool active, dead;
	int32_t words;
	struct gf_entry cache[GF_CACHE];
	int next_slot;
};

int gfollow_new(struct gfollow **out, const struct hearth_grammar *g, const char *after, struct hearth_err *err)
{
	struct gfollow *f = calloc(1, sizeof *f);
	int rc;
	*out = NULL;
	if (!f)
		return err_set(err, HEARTH_ENOMEM, "grammar: out of memory");
	f->hg = g;
	f->words = (g->v->n_vocab + 31) / 32;
	if (after && *after) {
		f->n_after = strlen(after);
		if (f->n_after >= GF_MAX_AFTER) {
			free(f);
			return err_set(err, HEARTH_EINVAL, "grammar: the trigger text is %zu bytes (at most %d)",
				       strlen(after), GF_MAX_AFTER - 1);
		}
		memcpy(f->after, after, f->n_after);
	}
	f->active = f->n_after == 0;
	if ((rc = gmatch_init(&f->m, g->g, err))) {
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void gfollow_free(struct gfollow *f)
{
	if (!f)
		return;
	for (int i = 0; i < GF_CACHE; i++) {
		free(f->cache[i].ids);
		free(f->cache[i].bits);
	}
	gmatch_release(&f->m);
	free(f);
}

bool gfollow_active(const struct gfollow *f) { return f->active; }

bool gfollow_done(const struct gfollow *f) { return f->active && (f->dead || gmatch_done(&f->m)); }

int32_t gfollow_eog(const struct gfollow *f) { return f->hg->v->eog; }

bool gfollow_allows(struct gfollow *f, int32_t id)
{
	const struct gvocab *v = f->hg->v;
	if (!f->active)
		return true;
	if (f->dead || id < 0 || id >= v->n_vocab)
		return false;
	if (v->kind[id] == GV_EOG)
		return gmatch_can_end(&f->m);
	if (v->kind[id] != GV_TEXT)
		return false;
	return gmatch_allows(&f->m, v->bytes + v->off[id], v->len[id]);
}

static bool entry_matches(const struct gf_entry *e, const struct gmatch *m)
{
	const struct gm_state *s = &m->cur;
	return e->ids && e->n == s->n && e->acc == s->acc && e->need == s->need && e->seq == s->seq &&
	       !memcmp(e->ids, m->buf + s->off, (size_t)s->n * sizeof *e->ids);
}

const uint32_t *gfollow_mask(struct gfollow *f, int32_t *n_allowed)
{
	for (int i = 0; i < GF_CACHE; i++)
		if (entry_matches(&f->cache[i], &f->m)) {
			*n_allowed = f->cache[i].n_allowed;
			f->dead = f->dead || !*n_allowed; /* stuck: nothing can follow */
			return f->cache[i].bits;
		}
	struct gf_entry *e = &f->cache[f->next_slot];
	f->next_slot = (f->next_slot + 1) % GF_CACHE;
	const struct gm_state *s = &f->m.cur;
	int32_t *ids = realloc(e->ids, (size_t)(s->n ? s->n : 1) * sizeof *ids);
	if (ids)
		e->ids = ids;
	if (!e->bits)
		e->bits = malloc((size_t)f->words * sizeof *e->bits);
	if (!ids || !e->bits) { /* out of memory: allow nothing (the sampler then ends) */
		free(e->ids);
		e->ids = NULL;
		*n_allowed = 0;
		f->dead = true;
		return NULL;
	}
	e->n = s->n;
	memcpy(e->ids, f->m.buf + s->off, (size_t)s->n * sizeof *ids);
	e->acc = s->acc;
	e->need = s->need;
	e->seq = s->seq;
	e->n_allowed = f->dead ? 0 : gmask_compute(&f->m, f->hg->v, e->bits);
	if (e->n_allowed < 0) { /* too costly: the grammar ends here */
		f->dead = true;
		e->n_allowed = 0;
	}
	if (f->dead)
		memset(e->bits, 0, (size_t)f->words * sizeof *e->bits);
	*n_allowed = e->n_allowed;
	f->dead = f->dead || !e->n_allowed; /* stuck: nothing can follow */
	return e->bits;
}

/* Before the trigger: looks for it in the text so far (the piece's bytes after it go to the grammar). */
static void watch(struct gfollow *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f->n_seen == f->n_after) {
			memmove(f->seen, f->seen + 1, f->n_after - 1);
			f->n_seen--;
		}
		f->seen[f->n_seen++] = (char)p[i];
		if (f->n_seen == f->n_after && !memcmp(f->seen, f->after, f->n_after)) {
			f->active = true;
			if (i + 1 < n && !gmatch_feed(&f->m, p + i + 1, n - i - 1))
				(void)0; /* the rest of the piece does not fit the grammar: it starts after it */
			return;
		}
	}
}

void gfollow_accept(struct gfollow *f, int32_t id)
{
	const struct gvocab *v = f->hg->v;
	if (id < 0 || id >= v->n_vocab)
		return;
	if (!f->active) {
		if (v->kind[id] == GV_TEXT)
			watch(f, v->bytes + v->off[id], v->len[id]);
		return;
	}
	if (f->dead)
		return;
	if (v->kind[id] == GV_EOG) {
		if (!gmatch_can_end(&f->m))
			f->dead = true;
		return;
	}
	if (v->kind[id] != GV_TEXT || !gmatch_feed(&f->m, v->bytes + v->off[id], v->len[id])) {
		f->dead = true;
		return;
	}
	if (f->m.n_node > GF_COMPACT_NODES && gmatch_compact(&f->m))
		for (int i = 0; i < GF_CACHE; i++) { /* the stack ids changed: the cached masks are unreachable */
			free(f->cache[i].ids);
			f->cache[i].ids = NULL;
		}
}
