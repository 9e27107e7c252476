/*
 * sampler.c - choosing the next token from logits.
 *
 * The chain, in llama.cpp's default order: repetition / frequency / presence
 * penalties over the last repeat_last_n accepted tokens, then (unless greedy)
 * top-k, top-p, min-p on the softmax of the penalized logits, then temperature
 * and a draw from the remaining distribution with a seeded generator.
 * Greedy (temp <= 0) takes the argmax after penalties (the lowest id on ties).
 *
 * Nothing sorts the vocabulary. Each filter keeps a prefix of one order (logit
 * descending, id ascending), so the tokens kept are the shortest of the three
 * prefixes: top-k is a selection by count (select.c), min-p a threshold on the
 * logit (p >= min_p * p_max is l >= l_max + ln min_p), and top-p a selection
 * by weight among what is left, wanting top_p times the weight of the top-k
 * set. The draw walks the kept tokens in the order the selection left them.
 * The weights exp(l - l_max) come from the vectorized row kernels (kern.h),
 * which give the same bits on every instruction set, so a seed gives the same
 * tokens on any CPU, alone or in a batch.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../grammar/grammar.h"
#include "../kern/attn-tile.h"
#include "../kern/kern.h"
#include "sampler.h"
#include "select.h"

#define SCALAR_EXP_MAX 512 /* candidates up to which weights are computed one by one */
#define GAP_START 4.0f     /* the first logit gap collect_best tries */
#define GAP_MIN (1.0f / 64)

struct hearth_sampler {
	struct hearth_sampler_params p;
	int32_t n_vocab;
	float *l;            /* [n_vocab] penalized or sanitized logits */
	float *w;            /* [n_vocab] weights, exp(l - max) or exp((l - max) / temp) */
	int32_t *ids[3];     /* [n_vocab] each: candidate lists */
	float gap_hint;      /* where collect_best starts */
	int32_t *count;      /* [n_vocab] occurrences in the penalty window */
	int32_t *hist;       /* accepted tokens */
	size_t n_hist, cap_hist;
	uint64_t rng;
	struct gfollow *gf;  /* the grammar followed, or NULL */
	float *gl;           /* [n_vocab] the logits of the tokens it allows, packed */
	int32_t *gid;        /* [n_vocab] their ids */
};

struct hearth_sampler_params hearth_sampler_default_params(void)
{
	return (struct hearth_sampler_params){ .temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
					       .repeat_penalty = 1.0f, .repeat_last_n = 64,
					       .frequency_penalty = 0.0f, .presence_penalty = 0.0f, .seed = 0 };
}

int hearth_sampler_new(struct hearth_sampler **out, const struct hearth_sampler_params *p, int32_t n_vocab,
		       struct hearth_err *err)
{
	struct hearth_sampler *s;
	*out = NULL;
	if (n_vocab <= 0)
		return err_set(err, HEARTH_EINVAL, "sampler: vocabulary size %d", n_vocab);
	if (!(isfinite(p->temp) && isfinite(p->top_p) && isfinite(p->min_p) && isfinite(p->repeat_penalty) &&
	      p->repeat_penalty > 0 && isfinite(p->frequency_penalty) && isfinite(p->presence_penalty)))
		return err_set(err, HEARTH_EINVAL, "sampler: temperature, top-p, min-p and penalties must be finite "
			       "(and the repeat penalty positive)");
	if (!(s = calloc(1, sizeof *s)))
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory");
	s->p = *p;
	s->n_vocab = n_vocab;
	const size_t V = (size_t)n_vocab;
	s->l = malloc(V * sizeof *s->l);
	s->w = malloc(V * sizeof *s->w);
	s->count = calloc(V, sizeof *s->count);
	bool ok = s->l && s->w && s->count;
	for (int i = 0; i < 3; i++)
		ok = (s->ids[i] = malloc(V * sizeof *s->ids[i])) && ok;
	if (!ok) {
		hearth_sampler_free(s);
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory for a vocabulary of %d", n_vocab);
	}
	s->rng = p->seed ^ 0x9e3779b97f4a7c15ULL;
	s->gap_hint = GAP_START;
	*out = s;
	return 0;
}

void hearth_sampler_free(struct hearth_sampler *s)
{
	if (!s)
		return;
	free(s->l);
	free(s->w);
	for (int i = 0; i < 3; i++)
		free(s->ids[i]);
	free(s->count);
	free(s->hist);
	gfollow_free(s->gf);
	free(s->gl);
	free(s->gid);
	free(s);
}

void hearth_sampler_accept(struct hearth_sampler *s, int32_t id)
{
	if (id < 0 || id >= s->n_vocab)
		return;
	if (s->gf)
		gfollow_accept(s->gf, id);
	if (s->n_hist == s->cap_hist) {
		size_t cap = s->cap_hist ? 2 * s->cap_hist : 256;
		int32_t *h = realloc(s->hist, cap * sizeof *h);
		if (!h)
			return; /* penalties then see a shorter history */
		s->hist = h;
		s->cap_hist = cap;
	}
	s->hist[s->n_hist++] = id;
}

/* splitmix64: a uniform double in [0, 1). */
static double rng_uniform(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static bool penalties_on(const struct hearth_sampler_params *p)
{
	return p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* Penalizes s->l for the tokens of the window, each once. */
static void apply_penalties(struct hearth_sampler *s)
{
	const struct hearth_sampler_params *p = &s->p;
	size_t n = s->n_hist;
	if (p->repeat_last_n >= 0 && (size_t)p->repeat_last_n < n)
		n = (size_t)p->repeat_last_n;
	const int32_t *h = s->hist + (s->n_hist - n);
	for (size_t i = 0; i < n; i++)
		s->count[h[i]]++;
	for (size_t i = 0; i < n; i++) {
		int32_t id = h[i];
		int32_t c = s->count[id];
		if (c == 0)
			continue; /* already applied */
		float *l = &s->l[id];
		*l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
		*l -= (float)c * p->frequency_penalty + p->presence_penalty;
		s->count[id] = 0;
	}
}

/* The row to sample from: the logits, penalized when the penalties are on,
 * with NaN taken as the lowest logit and infinities as the largest finite
 * ones (so that every weight and gap is a number). Returns the first index
 * of the largest. */
static int32_t row_prepare(struct hearth_sampler *s, const float *logits, int32_t n, bool penalize,
			   struct sel_row *r)
{
	const struct kern_fns *k = kern_fns();
	const size_t V = (size_t)n;
	const float *l = logits;
	int64_t best;
	if (penalize) {
		memcpy(s->l, logits, V * sizeof *s->l);
		apply_penalties(s);
		l = s->l;
	}
	if (k->row_minmax(l, (int64_t)V, &r->min, &r->max, &best)) {
		for (size_t i = 0; i < V; i++) {
			const float x = l[i];
			s->l[i] = x != x ? -FLT_MAX : x > FLT_MAX ? FLT_MAX : x < -FLT_MAX ? -FLT_MAX : x;
		}
		l = s->l;
		k->row_minmax(l, (int64_t)V, &r->min, &r->max, &best);
	}
	r->l = l;
	r->w = s->w;
	r->n = n;
	return (int32_t)best;
}

/* w[id] = exp((l[id] - max) * scale) for the n ids (all when ids is NULL); returns their sum. */
static double weigh(struct hearth_sampler *s, const struct sel_row *r, const int32_t *ids, size_t n, float scale)
{
	if (!ids || n > SCALAR_EXP_MAX) {
		const float all = kern_fns()->row_exp_sum(r->l, r->n, r->max, scale, s->w);
		if (!ids)
			return all;
	} else {
		for (size_t i = 0; i < n; i++)
			s->w[ids[i]] = attn_expf((r->l[ids[i]] - r->max) * scale);
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += s->w[ids[i]];
	return sum;
}

/* Collects into out the tokens whose logit is within a gap of the best one,
 * widening the gap until there are at least min_count of them and, when
 * by_weight, their weights (then computed) sum to at least min_weight;
 * returns how many. The gap the last call needed is where the next starts
 * (it changes the work, not the result). */
static size_t collect_best(struct hearth_sampler *s, const struct sel_row *r, int32_t *out, size_t min_count,
			   bool by_weight, double min_weight)
{
	float g = s->gap_hint;
	for (;;) {
		const bool all = !(g < r->max - r->min);
		const size_t n = (size_t)kern_fns()->row_collect(r->l, r->n, all ? -INFINITY : r->max - g, out);
		const bool enough = n >= min_count && (!by_weight || weigh(s, r, out, n, 1.0f) >= min_weight);
		if (enough || all) {
			if (!enough && by_weight)
				weigh(s, r, out, n, 1.0f);
			s->gap_hint = n > SCALAR_EXP_MAX && g > GAP_MIN ? g / 2 : g;
			return n;
		}
		g *= 2;
	}
}

static void swap_lists(int32_t **a, int32_t **b)
{
	int32_t *t = *a;
	*a = *b;
	*b = t;
}

/* The tokens top-k, min-p and top-p keep, into *kept (NULL: every token);
 * returns how many. Each step reads one of s->ids[0], [1] and writes the other. */
static size_t filter(struct hearth_sampler *s, const struct sel_row *r, const int32_t **kept)
{
	const struct hearth_sampler_params *p = &s->p;
	int32_t *list = s->ids[1], *spare = s->ids[0], *tmp = s->ids[2];
	bool every = true; /* no filter has cut yet: the list is not written out */
	size_t n = (size_t)r->n;
	double z = 0;      /* the weight of the top-k set, of which top-p wants a share */
	if (p->top_k > 0 && p->top_k < r->n) {
		n = collect_best(s, r, spare, (size_t)p->top_k, false, 0);
		n = sel_prefix(r, spare, n, false, p->top_k, list, tmp);
		every = false;
	}
	if (p->top_p < 1.0f) /* over every token: the sum alone, the weights come with the candidates */
		z = every ? kern_fns()->row_exp_sum(r->l, r->n, r->max, 1.0f, NULL) : weigh(s, r, list, n, 1.0f);
	if (p->min_p > 0.0f) {
		const float cut = fminf(r->max + logf(p->min_p), r->max); /* the best token always stays */
		if (!every) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (r->l[list[i]] >= cut)
					list[k++] = list[i];
			n = k;
		} else {
			n = (size_t)kern_fns()->row_collect(r->l, r->n, cut, list);
			weigh(s, r, list, n, 1.0f);
			every = false;
		}
	}
	if (p->top_p < 1.0f) {
		const double need = (double)p->top_p * z;
		if (every) {
			n = collect_best(s, r, list, 1, true, need);
			every = false;
		}
		n = sel_prefix(r, list, n, true, need, spare, tmp);
		swap_lists(&list, &spare);
	}
	*kept = every ? NULL : list;
	return n;
}

size_t sampler_kept(struct hearth_sampler *s, const float *logits, const int32_t **kept)
{
	struct sel_row r;
	row_prepare(s, logits, s->n_vocab, penalties_on(&s->p), &r);
	return filter(s, &r, kept);
}

/* Draws from a row of n logits (penalized first when penalize): its index. */
static int32_t sample_row(struct hearth_sampler *s, const float *logits, int32_t n_row, bool penalize)
{
	const struct hearth_sampler_params *p = &s->p;
	struct sel_row r;
	const int32_t best = row_prepare(s, logits, n_row, penalize, &r);
	if (p->temp <= 0 || !(1.0f / p->temp < INFINITY))
		return best;
	const int32_t *kept;
	const size_t n = filter(s, &r, &kept);
	const double sum = weigh(s, &r, kept, n, 1.0f / p->temp);
	const double u = rng_uniform(&s->rng) * sum;
	double cum = 0;
	int32_t last = best;
	for (size_t i = 0; i < n; i++) {
		const int32_t id = kept ? kept[i] : (int32_t)i;
		if (s->w[id] > 0)
			last = id;
		cum += s->w[id];
		if (u < cum)
			return id;
	}
	return last; /* rounding left u at the very end */
}

/*
 * Under a grammar: draw as usual and keep the token when the grammar takes it
 * (one walk over its bytes); only when it does not, draw again with a fresh
 * number from the allowed tokens alone (packed into a row of their own, so
 * that the filters and the draw cost what that row costs). With no truncation (top-k, top-p,
 * min-p off) the result has exactly the masked distribution: a token t the
 * grammar allows comes with p(t) + (1 - P(allowed)) p(t) / P(allowed). With
 * truncation it is llama.cpp's rule: the filters' set when it holds an allowed
 * token, else the filters applied to the masked logits.
 */
int32_t hearth_sampler_sample(struct hearth_sampler *s, const float *logits)
{
	const bool penalize = penalties_on(&s->p);
	if (!s->gf || !gfollow_active(s->gf))
		return sample_row(s, logits, s->n_vocab, penalize);
	const int32_t id = sample_row(s, logits, s->n_vocab, penalize);
	if (gfollow_allows(s->gf, id))
		return id;
	int32_t n_allowed;
	const uint32_t *bits = gfollow_mask(s->gf, &n_allowed);
	if (!bits || n_allowed == 0) { /* the grammar is stuck: end */
		const int32_t eog = gfollow_eog(s->gf);
		return eog >= 0 ? eog : id;
	}
	/* the allowed tokens' (penalized) logits as a row of their own, in id order */
	const float *src = logits;
	if (penalize) {
		memcpy(s->l, logits, (size_t)s->n_vocab * sizeof *s->l);
		apply_penalties(s);
		src = s->l;
	}
	int32_t n = 0;
	for (int32_t w = 0; w < (s->n_vocab + 31) / 32; w++)
		for (uint32_t b = bits[w]; b; b &= b - 1) {
			const int32_t i = 32 * w + __builtin_ctz(b);
			s->gl[n] = src[i];
			s->gid[n++] = i;
		}
	return s->gid[sample_row(s, s->gl, n, false)];
}

int hearth_sampler_set_grammar(struct hearth_sampler *s, const struct hearth_grammar *g, const char *after,
			       struct hearth_err *err)
{
	struct gfollow *f = NULL;
	int rc;
	if (g && g->v->n_vocab != s->n_vocab)
		return err_set(err, HEARTH_EINVAL, "sampler: the grammar's vocabulary has %d tokens, the sampler's %d",
			       g->v->n_vocab, s->n_vocab);
	if (g && !s->gl && !(s->gl = malloc((size_t)s->n_vocab * sizeof *s->gl)))
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory for a grammar");
	if (g && !s->gid && !(s->gid = malloc((size_t)s->n_vocab * sizeof *s->gid)))
		return err_set(err, HEARTH_ENOMEM, "sampler: out of memory for a grammar");
	if (g && (rc = gfollow_new(&f, g, after, err)))
		return rc;
	gfollow_free(s->gf);
	s->gf = f;
	return 0;
}

bool hearth_sampler_grammar_done(const struct hearth_sampler *s)
{
	return s->gf && gfollow_done(s->gf);
}

int32_t hearth_sampler_logprobs(struct hearth_sampler *s, const float *logits, int32_t id, int32_t n_top,
			     float *logprob, int32_t *top_ids, float *top_logprobs)
{
	struct sel_row r;
	row_prepare(s, logits, s->n_vocab, false, &r);
	const float lse = r.max + logf(kern_fns()->row_exp_sum(r.l, r.n, r.max, 1.0f, NULL));
	if (id >= 0 && id < s->n_vocab)
		*logprob = r.l[id] - lse;
	n_top = n_top < s->n_vocab ? n_top : s->n_vocab;
	if (n_top <= 0)
		return 0;
	size_t n = collect_best(s, &r, s->ids[1], (size_t)n_top, false, 0);
	n = sel_prefix(&r, s->ids[1], n, false, n_top, s->ids[0], s->ids[2]);
	sel_sort(r.l, s->ids[0], n);
	for (size_t i = 0; i < n; i++) {
		top_ids[i] = s->ids[0][i];
		top_logprobs[i] = r.l[s->ids[0][i]] - lse;
	}
	return (int32_t)n;
}

/* H = -sum p ln p with p = w / Z, w = exp(l - max), Z = sum w:
 * H = ln Z - sum w (l - max) / Z. The weights come from the vectorized
 * exponential; the sum and the rank count share a second loop, written as
 * UNC_LANES independent lanes (float sums, combined in double) so that the
 * compiler vectorizes it. l - max is taken as 0 below -104, where a float's
 * exp is 0: clamped logits (±FLT_MAX) cannot overflow it, and a kernel's
 * tiny floor for exp there adds nothing. */
#define UNC_LANES 16
void hearth_sampler_uncertainty(struct hearth_sampler *s, const float *logits, int32_t id, float *entropy,
				int32_t *rank)
{
	struct sel_row r;
	row_prepare(s, logits, s->n_vocab, false, &r);
	const double z = kern_fns()->row_exp_sum(r.l, r.n, r.max, 1.0f, s->w);
	const float lid = id >= 0 && id < s->n_vocab ? r.l[id] : -FLT_MAX, mx = r.max;
	const float *l = r.l, *w = s->w;
	float acc[UNC_LANES] = { 0 };
	int32_t cnt[UNC_LANES] = { 0 };
	int32_t i = 0, above = 0;
	for (; i + UNC_LANES <= r.n; i += UNC_LANES)
		for (int k = 0; k < UNC_LANES; k++) {
			const float d = l[i + k] - mx;
			acc[k] += w[i + k] * (d > -104.0f ? d : 0.0f);
			cnt[k] += (l[i + k] > lid) | ((l[i + k] == lid) & (i + k < id)); /* ties: lower ids first */
		}
	double wl = 0;
	for (; i < r.n; i++) {
		const float d = l[i] - mx;
		wl += (double)(w[i] * (d > -104.0f ? d : 0.0f));
		above += (l[i] > lid) | ((l[i] == lid) & (i < id));
	}
	for (int k = 0; k < UNC_LANES; k++) {
		wl += acc[k];
		above += cnt[k];
	}
	if (entropy) {
		const double h = log(z) - wl / z;
		*entropy = h > 0 ? (float)h : 0.0f;
	}
	if (rank)
		*rank = above + 1;
}
