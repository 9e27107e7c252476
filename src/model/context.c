/*
 * context.c - hearth_context: one sequence over its own KV cache, for the
 * CLI and for programs that run one conversation at a time.
 *
 * A decode of n tokens runs as batches of at most n_batch tokens; the logits
 * of every input (all_logits) or of the last one are kept until the next
 * decode, and so are the hidden states of every input after the layers asked
 * for (hearth_context_set_hidden: copied from the forward pass's layer hook).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/thread.h"
#include "cvec.h"
#include "forward.h"
#include "lora.h"
#include "state.h"

#define CONTEXT_BLOCK 32 /* cache block size: one sequence, so no sharing to gain */

struct hearth_context {
	struct hearth_model *m;
	struct kv_cache kv;
	struct kv_seq seq;
	struct fwd *fwd;
	int32_t n_ctx;
	int32_t *tokens;       /* [n_ctx] the tokens in the cache */
	float *logits;         /* rows of the last decode */
	int32_t n_logits, logits_first;
	int32_t logits_end;    /* n_past when the kept logits' last row was computed, -1: stale */
	size_t logits_cap;
	/* hidden states: the residual stream after layers hid_layers[k] (0-based,
	 * resolved) for every input of the last decode, [n_hid_layers][n_hidden][n_embd] */
	int32_t *hid_layers, n_hid_layers;
	float *hidden;
	int32_t n_hidden, hid_done; /* rows kept; inputs before the batch being run */
	size_t hidden_cap;          /* floats */
	/* per-batch scratch */
	struct kv_seq **seqs;
	int32_t *pos, *rows;
	struct fwd_steer steer;            /* the sequence's steering (steer.dir NULL: none) */
	const struct fwd_steer **steers;   /* [n_batch], each &steer */
	struct fwd_lora lora;              /* the sequence's adapters (references held; n 0: none) */
	const struct fwd_lora **loras;     /* [n_batch], each &lora */
};

struct hearth_context_params hearth_context_default_params(void)
{
	return (struct hearth_context_params){ .n_ctx = 0, .n_batch = 512, .n_threads = 0,
					       .cache_type = HEARTH_TYPE_F16 };
}

/* The context's cache: local layers (sliding windows) keep about a window
 * and a batch of positions, the others n_ctx (see kv-cache.h). */
static int cache_init(struct hearth_context *c, const struct hearth_model *m, const struct hearth_context_params *d,
		      struct hearth_err *err)
{
	const struct hparams *h = &m->hp;
	int32_t *swa = malloc((size_t)h->n_layer * sizeof *swa);
	if (!swa)
		return err_set(err, HEARTH_ENOMEM, "context: out of memory");
	const int32_t w = model_layer_swa(m, swa);
	/* a window, a batch, and partly filled or slack blocks at both ends */
	const int64_t local = (int64_t)w + d->n_batch + 4 * CONTEXT_BLOCK;
	const int rc = kv_cache_init_swa(&c->kv, h->n_layer, (int64_t)h->n_head_kv * h->head_dim_k,
					 (int64_t)h->n_head_kv * h->head_dim_v, d->n_ctx, CONTEXT_BLOCK, d->cache_type,
					 w ? swa : NULL, local < d->n_ctx ? (int32_t)local : d->n_ctx, err);
	free(swa);
	return rc;
}

int hearth_context_new(struct hearth_context **out, struct hearth_model *m, const struct hearth_context_params *p,
		       struct hearth_err *err)
{
	struct hearth_context_params d = p ? *p : hearth_context_default_params();
	const struct hparams *h = &m->hp;
	struct hearth_context *c;
	int rc;

	*out = NULL;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "context: the model was loaded vocabulary-only");
	if (d.cache_type != HEARTH_TYPE_F16 && d.cache_type != HEARTH_TYPE_F32 && d.cache_type != HEARTH_TYPE_Q8_0)
		return err_set(err, HEARTH_EINVAL, "context: cache type must be f16, f32 or q8_0");
	if (d.cache_type == HEARTH_TYPE_Q8_0 && (h->head_dim_k % 32 || h->head_dim_v % 32))
		return err_set(err, HEARTH_EINVAL, "context: a q8_0 cache needs head sizes in multiples of 32 (this model's "
			       "are %d and %d)", h->head_dim_k, h->head_dim_v);
	if (d.n_ctx < 0 || d.n_batch < 0 || d.n_threads < 0 || d.n_threads > 512)
		return err_set(err, HEARTH_EINVAL, "context: negative n_ctx, n_batch or n_threads");
	if (d.n_ctx == 0)
		d.n_ctx = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
	if (d.n_ctx > (1 << 22))
		return err_set(err, HEARTH_EINVAL, "context: n_ctx %d is too large", d.n_ctx);
	if (d.n_batch == 0)
		d.n_batch = 512;
	if (d.n_batch > d.n_ctx)
		d.n_batch = d.n_ctx;
	if (d.n_threads == 0)
		d.n_threads = cpu_count();

	if (!(c = calloc(1, sizeof *c)))
		return err_set(err, HEARTH_ENOMEM, "context: out of memory");
	c->m = m;
	c->n_ctx = d.n_ctx;
	if ((rc = cache_init(c, m, &d, err)))
		goto fail;
	if ((rc = fwd_new(&c->fwd, m, &c->kv, d.n_batch, d.n_threads, err)))
		goto fail;
	fwd_set_n_ctx_seq(c->fwd, d.n_ctx);
	c->tokens = malloc((size_t)d.n_ctx * sizeof *c->tokens);
	c->seqs = malloc((size_t)d.n_batch * sizeof *c->seqs);
	c->steers = malloc((size_t)d.n_batch * sizeof *c->steers);
	c->loras = malloc((size_t)d.n_batch * sizeof *c->loras);
	c->pos = malloc((size_t)d.n_batch * sizeof *c->pos);
	c->rows = malloc((size_t)d.n_batch * sizeof *c->rows);
	if (!c->tokens || !c->seqs || !c->steers || !c->loras || !c->pos || !c->rows) {
		rc = err_set(err, HEARTH_ENOMEM, "context: out of memory for a %d-token context", d.n_ctx);
		goto fail;
	}
	for (int32_t i = 0; i < d.n_batch; i++) {
		c->seqs[i] = &c->seq;
		c->steers[i] = &c->steer;
		c->loras[i] = &c->lora;
	}
	*out = c;
	return 0;
fail:
	hearth_context_free(c);
	return rc;
}

void hearth_context_free(struct hearth_context *c)
{
	if (!c)
		return;
	fwd_free(c->fwd);
	if (c->kv.blocks)
		kv_seq_free(&c->kv, &c->seq);
	kv_cache_free(&c->kv);
	free(c->tokens);
	free(c->logits);
	free(c->hid_layers);
	free(c->hidden);
	free(c->seqs);
	free(c->steers);
	free(c->loras);
	lora_use_release(&c->lora);
	free(c->pos);
	free(c->rows);
	free(c);
}

int32_t hearth_context_n_ctx(const struct hearth_context *c) { return c->n_ctx; }
int32_t hearth_context_n_past(const struct hearth_context *c) { return c->seq.n_tokens; }

int hearth_context_set_steering(struct hearth_context *c, const struct hearth_steering *s, struct hearth_err *err)
{
	struct fwd_steer st;
	const int rc = cvec_steer_resolve(s, c->m, &st, err);
	if (!rc)
		c->steer = st;
	return rc;
}

int hearth_context_set_lora(struct hearth_context *c, const struct hearth_lora_use *use, int32_t n,
			    struct hearth_err *err)
{
	struct fwd_lora l;
	const int rc = lora_use_resolve(use, n, c->m, &l, err);
	if (!rc) {
		lora_use_release(&c->lora);
		c->lora = l;
	}
	return rc;
}

void hearth_context_set_tap(struct hearth_context *c, hearth_matmul_tap_fn fn, void *user_data)
{
	fwd_set_tap(c->fwd, fn, user_data);
}

void hearth_context_set_expert_tap(struct hearth_context *c, hearth_expert_tap_fn fn, void *user_data)
{
	fwd_set_expert_tap(c->fwd, fn, user_data);
}

void hearth_context_truncate(struct hearth_context *c, int32_t n_keep)
{
	if (n_keep < c->seq.n_tokens)
		c->logits_end = -1;
	kv_seq_truncate(&c->kv, &c->seq, n_keep);
}

/* ---- hidden states and the logit lens ---------------------------------------------- */

/* Room for the hidden states of a decode of n inputs; nothing changes on failure. */
static int hidden_reserve(struct hearth_context *c, int32_t n, struct hearth_err *err)
{
	if (!c->n_hid_layers)
		return 0;
	const size_t E = (size_t)c->m->hp.n_embd, L = (size_t)c->n_hid_layers;
	if ((size_t)n > SIZE_MAX / sizeof(float) / E / L)
		return err_set(err, HEARTH_ETOOBIG, "decode: hidden states of %d inputs over %zu layers overflow", n, L);
	const size_t need = (size_t)n * E * L;
	if (need > c->hidden_cap) {
		float *h = realloc(c->hidden, need * sizeof *h);
		if (!h)
			return err_set(err, HEARTH_ENOMEM, "decode: out of memory for hidden states of %d inputs over %zu layers",
				       n, L);
		c->hidden = h;
		c->hidden_cap = need;
	}
	return 0;
}

/* fwd_layer_fn: copies the batch's rows after each layer asked for. */
static void hidden_take(int il, const float *x, const struct fwd_batch *b, void *data)
{
	struct hearth_context *c = data;
	const size_t E = (size_t)c->m->hp.n_embd;
	for (int32_t k = 0; k < c->n_hid_layers; k++)
		if (c->hid_layers[k] == il)
			memcpy(c->hidden + ((size_t)k * (size_t)c->n_hidden + (size_t)c->hid_done) * E, x,
			       (size_t)b->n * E * sizeof *x);
}

int hearth_context_state_get(struct hearth_context *c, struct hearth_state **out, struct hearth_err *err)
{
	const bool fresh = c->logits && c->n_logits > 0 && c->logits_end == c->seq.n_tokens;
	const float *logits = fresh ? hearth_get_logits(c, -1) : NULL;
	uint8_t steer[STATE_STEER_SIZE];
	int rc;
	*out = NULL;
	if ((rc = cvec_steer_digest(&c->steer, &c->m->hp, steer, err)))
		return rc;
	return state_build(out, c->m, &c->kv, &c->seq, c->tokens, c->seq.n_tokens, logits, steer, err);
}

int hearth_context_state_set(struct hearth_context *c, const struct hearth_state *st, struct hearth_err *err)
{
	const size_t V = (size_t)c->m->hp.n_vocab;
	uint8_t steer[STATE_STEER_SIZE];
	int rc;
	if ((rc = state_check_fits(st, c->m, &c->kv, err)) || (rc = cvec_steer_digest(&c->steer, &c->m->hp, steer, err)) ||
	    (rc = state_check_steering(st, steer, err)))
		return rc;
	if (st->n_tokens > c->n_ctx)
		return err_set(err, HEARTH_ECTXFULL, "state: its %d tokens do not fit the context's %d", st->n_tokens,
			       c->n_ctx);
	if (st->n_logits && V > c->logits_cap) {
		float *l = realloc(c->logits, V * sizeof *l);
		if (!l)
			return err_set(err, HEARTH_ENOMEM, "state: out of memory for logits");
		c->logits = l;
		c->logits_cap = V;
	}
	hearth_context_truncate(c, 0);
	memcpy(c->tokens, st->tokens, (size_t)st->n_tokens * sizeof *c->tokens);
	if ((rc = kv_state_put(&c->kv, &c->seq, c->tokens, st->rows, st->n_tokens, st->local_from, st->n_tokens)))
		return rc == HEARTH_EINVAL
			       ? err_set(err, rc, "state: its sliding-window layers keep positions from %d, which does "
					 "not cover the window after its %d tokens", st->local_from, st->n_tokens)
			       : err_set(err, rc, "state: the KV cache has no room for %d tokens", st->n_tokens);
	c->n_logits = st->n_logits;
	c->logits_first = 0;
	c->logits_end = st->n_logits ? st->n_tokens : -1;
	if (st->n_logits)
		memcpy(c->logits, st->logits, V * sizeof *c->logits);
	return 0;
}

int hearth_decode(struct hearth_context *c, const int32_t *tokens, int32_t n, bool all_logits, struct hearth_err *err)
{
	const int32_t V = c->m->hp.n_vocab, B = fwd_n_batch(c->fwd);
	if (n <= 0)
		return err_set(err, HEARTH_EINVAL, "decode: no tokens");
	if (n > c->n_ctx - c->seq.n_tokens)
		return err_set(err, HEARTH_ECTXFULL, "decode: %d tokens do not fit: %d of the context's %d are used", n,
			       c->seq.n_tokens, c->n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= V)
			return err_set(err, HEARTH_EINVAL, "decode: token id %d is outside the vocabulary (0..%d)", tokens[i],
				       V - 1);
	const int32_t keep = all_logits ? n : 1;
	const size_t need = (size_t)keep * (size_t)V;
	if (need > c->logits_cap) {
		float *l = realloc(c->logits, need * sizeof *l);
		if (!l)
			return err_set(err, HEARTH_ENOMEM, "decode: out of memory for %d rows of logits", keep);
		c->logits = l;
		c->logits_cap = need;
	}
	/* with sliding windows, blocks are taken a batch at a time (the local
	 * ones of each batch come back as the window moves on) */
	const bool per_batch = c->kv.n_swa > 0;
	if (per_batch && kv_seq_blocks_needed(&c->kv, &c->seq, n) > c->kv.n_free)
		return err_set(err, HEARTH_ECTXFULL, "decode: the KV cache is full");
	int rc = hidden_reserve(c, n, err);
	if (rc)
		return rc;
	rc = per_batch ? 0 : kv_seq_reserve(&c->kv, &c->seq, n);
	if (rc == HEARTH_ENOMEM)
		return err_set(err, rc, "decode: out of memory for the KV cache's block table");
	if (rc)
		return err_set(err, rc, "decode: the KV cache is full");
	c->n_logits = keep;
	c->logits_first = n - keep;
	c->n_hidden = c->n_hid_layers ? n : 0;
	for (int32_t done = 0; done < n;) {
		const int32_t nb = n - done < B ? n - done : B;
		const int32_t start = c->seq.n_tokens;
		if (per_batch && (rc = kv_seq_reserve(&c->kv, &c->seq, nb)))
			return err_set(err, rc, "decode: the KV cache's %s is full after %d of %d tokens",
				       rc == HEARTH_ECTXFULL ? "window" : "block table", done, n);
		struct fwd_batch b = { .n = nb, .tokens = tokens + done, .seq = c->seqs, .pos = c->pos, .out_rows = c->rows,
				       .steer = c->steer.dir ? c->steers : NULL, .lora = c->lora.n ? c->loras : NULL };
		for (int32_t i = 0; i < nb; i++) {
			c->pos[i] = start + i;
			c->tokens[start + i] = tokens[done + i];
			if (done + i >= c->logits_first)
				c->rows[b.n_out++] = i;
		}
		c->hid_done = done;
		float *out = b.n_out ? c->logits + (size_t)(done + c->rows[0] - c->logits_first) * (size_t)V : NULL;
		fwd_run(c->fwd, &b, out);
		kv_seq_commit(&c->kv, &c->seq, c->tokens, nb);
		done += nb;
	}
	c->logits_end = c->seq.n_tokens;
	return 0;
}

const float *hearth_get_logits(const struct hearth_context *c, int32_t i)
{
	if (i < 0)
		i = c->logits_first + c->n_logits - 1;
	if (!c->logits || i < c->logits_first || i >= c->logits_first + c->n_logits)
		return NULL;
	return c->logits + (size_t)(i - c->logits_first) * (size_t)c->m->hp.n_vocab;
}

const int32_t *hearth_context_tokens(const struct hearth_context *c) { return c->tokens; }


int hearth_context_set_hidden(struct hearth_context *c, const int32_t *layers, int32_t n_layers,
			      struct hearth_err *err)
{
	const int32_t L = c->m->hp.n_layer;
	if (n_layers < 0 || n_layers > L)
		return err_set(err, HEARTH_EINVAL, "hidden states: %d layers asked for, the model has %d", n_layers, L);
	int32_t *keep = NULL;
	if (n_layers > 0) {
		keep = malloc((size_t)n_layers * sizeof *keep);
		if (!keep)
			return err_set(err, HEARTH_ENOMEM, "hidden states: out of memory");
	}
	for (int32_t k = 0; k < n_layers; k++) {
		if (layers[k] < -L || layers[k] >= L) {
			free(keep);
			return err_set(err, HEARTH_EINVAL, "hidden states: layer %d is outside %d..%d", layers[k], -L, L - 1);
		}
		keep[k] = layers[k] < 0 ? L + layers[k] : layers[k];
	}
	free(c->hid_layers);
	c->hid_layers = keep;
	c->n_hid_layers = n_layers;
	c->n_hidden = 0;
	fwd_set_layer_fn(c->fwd, n_layers ? hidden_take : NULL, c);
	return 0;
}

const float *hearth_get_hidden(const struct hearth_context *c, int32_t k, int32_t i)
{
	if (i < 0)
		i = c->n_hidden - 1;
	if (k < 0 || k >= c->n_hid_layers || i < 0 || i >= c->n_hidden)
		return NULL;
	return c->hidden + ((size_t)k * (size_t)c->n_hidden + (size_t)i) * (size_t)c->m->hp.n_embd;
}

int hearth_context_logit_lens(struct hearth_context *c, const float *x, int32_t n, float *logits,
			      struct hearth_err *err)
{
	if (n <= 0)
		return err_set(err, HEARTH_EINVAL, "logit lens: no rows");
	const size_t E = (size_t)c->m->hp.n_embd, V = (size_t)c->m->hp.n_vocab;
	const int32_t B = fwd_n_batch(c->fwd);
	for (int32_t done = 0; done < n;) {
		const int32_t nb = n - done < B ? n - done : B;
		fwd_head(c->fwd, x + (size_t)done * E, nb, c->lora.n ? c->loras : NULL, logits + (size_t)done * V);
		done += nb;
	}
	return 0;
}
