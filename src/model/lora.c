/*
 * lora.c - LoRA adapters: llama.cpp's GGUF LoRA format read, checked against
 * the base model, and bound to the products the forward pass runs.
 *
 * File layout (what llama.cpp's convert_lora_to_gguf.py writes and
 * llama_adapter_lora_init reads):
 *   general.type = "adapter", adapter.type = "lora",
 *   general.architecture = the base model's, adapter.lora.alpha (f32, optional)
 *   per adapted base tensor W "<name>" of ne [n_in, n_out]:
 *     "<name>.lora_a": ne [n_in, rank]   (rank rows of n_in)
 *     "<name>.lora_b": ne [rank, n_out]  (n_out rows of rank)
 *   the token embedding ("token_embd.weight", ne [n_embd, n_vocab]) is the
 *   other way round: lora_a ne [rank, n_vocab] (a row per token), lora_b
 *   ne [rank, n_embd]; its product is B A[token].
 *   an expert stack W "blk.N.ffn_{gate,up,down}_exps.weight" of ne [n_in,
 *   n_out, n_expert] has one pair per expert, stacked as llama.cpp's
 *   mul_mat_id reads them:
 *     "<name>.lora_a": ne [n_in, rank, n_expert]
 *     "<name>.lora_b": ne [rank, n_out, n_expert]
 *   and the rows the router sends to expert e get that expert's product.
 *   "*_norm.weight" tensors are skipped (as llama.cpp does); any other name
 *   is an error.
 * The product's scale is scale * alpha / rank (rank = lora_b's ne[0]), or
 * scale when alpha is 0 or absent.
 *
 * Every tensor is checked (pairing, shapes against the base, type, finite
 * values) before the adapter is handed out; a bad file leaves nothing behind.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/sha256.h"
#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../tensor/qtype.h"
#include "lora.h"
#include "model.h"

static const char SUFFIX_A[] = ".lora_a", SUFFIX_B[] = ".lora_b";

void lora_ref(struct hearth_lora *a)
{
	atomic_fetch_add(&a->refs, 1);
}

static void lora_destroy(struct hearth_lora *a)
{
	for (int32_t i = 0; a->pairs && i < a->n_pairs; i++) {
		free(a->pairs[i].name);
		free(a->pairs[i].a);
		free(a->pairs[i].b);
	}
	free(a->pairs);
	free(a->layer);
	free(a->exps);
	free(a);
}

void hearth_lora_free(struct hearth_lora *a)
{
	if (a && atomic_fetch_sub(&a->refs, 1) == 1)
		lora_destroy(a);
}

struct hearth_lora *hearth_lora_ref(struct hearth_lora *a)
{
	lora_ref(a);
	return a;
}

float hearth_lora_alpha(const struct hearth_lora *a) { return a->alpha; }
int32_t hearth_lora_n_pairs(const struct hearth_lora *a) { return a->n_pairs; }
const uint8_t *hearth_lora_digest(const struct hearth_lora *a) { return a->digest; }

static bool ends_with(const char *s, const char *suffix)
{
	const size_t n = strlen(s), k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Whether the string value of key is want. */
static int check_str(const struct hearth_gguf *g, const char *key, const char *want, struct hearth_err *err)
{
	struct gguf_str v;
	int rc = gguf_get_str(g, key, &v, err);
	if (rc == HEARTH_ENOTFOUND)
		return err_set(err, HEARTH_EBADGGUF, "%s: not a LoRA adapter (no %s)", g->path, key);
	if (rc)
		return rc;
	if (v.n != strlen(want) || memcmp(v.p, want, v.n) != 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: %s is '%.*s', expected '%s'", g->path, key, (int)(v.n > 64 ? 64 : v.n),
			       v.p, want);
	return 0;
}

/* The header: an adapter of type lora for m's architecture; its alpha. */
static int check_header(const struct hearth_gguf *g, const struct hearth_model *m, float *alpha, struct hearth_err *err)
{
	int rc;
	if ((rc = check_str(g, "general.type", "adapter", err)) || (rc = check_str(g, "adapter.type", "lora", err)) ||
	    (rc = check_str(g, "general.architecture", m->arch, err)))
		return rc;
	if (gguf_find_key(g, "adapter.alora.invocation_tokens") >= 0) /* applied only after those tokens */
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: an activated LoRA (adapter.alora.invocation_tokens) is not "
			       "supported", g->path);
	*alpha = 0;
	rc = gguf_get_f32(g, "adapter.lora.alpha", alpha, err);
	if (rc && rc != HEARTH_ENOTFOUND)
		return rc;
	if (!isfinite(*alpha))
		return err_set(err, HEARTH_EBADGGUF, "%s: adapter.lora.alpha is not a finite number", g->path);
	return 0;
}

/* t's type and layout: an f32, f16, bf16 or q8_0 matrix (n_dims 2) or stack
 * of matrices (n_dims 3), its data 4-byte aligned. */
static int check_type(const struct hearth_gguf *g, const struct gguf_tensor *t, int n_dims, struct hearth_err *err)
{
	if (t->type != HEARTH_TYPE_F32 && t->type != HEARTH_TYPE_F16 && t->type != HEARTH_TYPE_BF16 &&
	    t->type != HEARTH_TYPE_Q8_0)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is of type %s; adapters are read in f32, f16, bf16 "
			       "or q8_0", g->path, t->name, hearth_type_name(t->type));
	if (t->n_dims != n_dims || (n_dims == 2 && t->ne[2] != 1) || t->ne[3] != 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has %d dimensions, not %d%s", g->path, t->name, t->n_dims,
			       n_dims, n_dims == 3 ? " (an expert stack's adapter)" : "");
	if ((uintptr_t)t->data % 4) /* a general.alignment below 4: the kernels read floats in place */
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' data is not 4-byte aligned", g->path, t->name);
	if (t->ne[0] % qtype_info(t->type)->blck_size)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' rows of %lld are not whole blocks of its type", g->path,
			       t->name, (long long)t->ne[0]);
	return 0;
}

/* The tensors of one pair, and its base tensor in m. */
struct pair_src {
	const struct gguf_tensor *a, *b, *base;
	char *name;
};

/* An expert stack's pair: A [n_in, rank, X], B [rank, n_out, X] for the base
 * [n_in, n_out, X]; the rank in range. */
static int pair_check_stack(const struct hearth_gguf *g, const struct pair_src *ps, struct hearth_err *err)
{
	const int64_t *A = ps->a->ne, *B = ps->b->ne, *W = ps->base->ne;
	if (A[1] != B[0] || A[0] != W[0] || B[1] != W[1] || A[2] != W[2] || B[2] != W[2])
		return err_set(err, HEARTH_EBADGGUF, "%s: tensors '%s' [%lld, %lld, %lld] and '%s' [%lld, %lld, %lld] do not "
			       "fit expert stack '%s' [%lld, %lld, %lld] (lora_a [n_in, rank, n_expert], lora_b [rank, n_out, "
			       "n_expert])", g->path, ps->a->name, (long long)A[0], (long long)A[1], (long long)A[2],
			       ps->b->name, (long long)B[0], (long long)B[1], (long long)B[2], ps->name, (long long)W[0],
			       (long long)W[1], (long long)W[2]);
	if (B[0] < 1 || B[0] > LORA_MAX_RANK)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has rank %lld, outside 1..%d", g->path, ps->b->name,
			       (long long)B[0], LORA_MAX_RANK);
	return 0;
}

/* Finds the partner and the base tensor of the lora_a tensor t, and checks
 * shapes: *ps filled (name allocated). */
static int pair_find(const struct hearth_gguf *g, const struct hearth_model *m, const struct gguf_tensor *t,
		     struct pair_src *ps, struct hearth_err *err)
{
	const size_t n = strlen(t->name) - (sizeof SUFFIX_A - 1);
	char *bname = malloc(n + sizeof SUFFIX_B);
	if (!(ps->name = malloc(n + 1)) || !bname) {
		free(bname);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", g->path);
	}
	memcpy(ps->name, t->name, n);
	ps->name[n] = 0;
	memcpy(bname, t->name, n);
	memcpy(bname + n, SUFFIX_B, sizeof SUFFIX_B);
	const int64_t ib = gguf_find_tensor(g, bname), ibase = gguf_find_tensor(m->gguf, ps->name);
	free(bname);
	if (ib < 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has no %s%s", g->path, t->name, ps->name, SUFFIX_B);
	if (ibase < 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' adapts '%s', which the base model (%s) does not have",
			       g->path, t->name, ps->name, m->gguf->path);
	ps->a = t;
	ps->b = &g->tensors[ib];
	ps->base = &m->gguf->tensors[ibase];
	int rc;
	if (ps->base->n_dims != 2 && ps->base->n_dims != 3)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' adapts '%s', of %d dimensions: hearth adapts "
			       "matrices and experts' stacks only", g->path, t->name, ps->name, ps->base->n_dims);
	if ((rc = check_type(g, ps->a, ps->base->n_dims, err)) || (rc = check_type(g, ps->b, ps->base->n_dims, err)))
		return rc;
	if (ps->base->n_dims == 3)
		return pair_check_stack(g, ps, err);
	const bool embd = strcmp(ps->name, m->tok_embd.name) == 0;
	const int64_t *A = ps->a->ne, *B = ps->b->ne, *W = ps->base->ne;
	const bool fits = embd ? A[0] == B[0] && A[1] == W[1] && B[1] == W[0] : A[1] == B[0] && A[0] == W[0] && B[1] == W[1];
	if (!fits)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] do not fit base "
			       "tensor '%s' [%lld, %lld]%s", g->path, ps->a->name, (long long)A[0], (long long)A[1], ps->b->name,
			       (long long)B[0], (long long)B[1], ps->name, (long long)W[0], (long long)W[1],
			       embd ? " (token embedding: lora_a [rank, n_vocab], lora_b [rank, n_embd])"
				    : " (lora_a [n_in, rank], lora_b [rank, n_out])");
	if (B[0] < 1 || B[0] > LORA_MAX_RANK)
		return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has rank %lld, outside 1..%d", g->path, ps->b->name,
			       (long long)B[0], LORA_MAX_RANK);
	return 0;
}

/* t as f32 into a new buffer *out, refused when a value is not finite. */
static int read_f32(const struct hearth_gguf *g, const struct gguf_tensor *t, float **out, struct hearth_err *err)
{
	/* all dims are within the file's bytes (the reader checked), so the product fits */
	const size_t n0 = (size_t)t->ne[0], n1 = (size_t)t->ne[1] * (size_t)t->ne[2];
	const size_t row = qtype_row_size(t->type, t->ne[0]);
	float *v = malloc(n0 * n1 * sizeof *v);
	*out = NULL;
	if (!v)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory for tensor '%s'", g->path, t->name);
	const struct qtype_ops *ops = kern_ops(t->type);
	for (size_t r = 0; r < n1; r++)
		ops->to_float((const char *)t->data + r * row, v + r * n0, (int64_t)n0);
	for (size_t i = 0; i < n0 * n1; i++)
		if (!isfinite(v[i])) {
			free(v);
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' holds a non-finite value at %zu", g->path,
				       t->name, i);
		}
	*out = v;
	return 0;
}

/* The struct tensor of role at layer il. */
static const struct tensor *role_tensor(const struct hearth_model *m, int il, enum lora_role role)
{
	const struct layer *l = &m->layers[il];
	const struct tensor *t[LORA_N_LAYER_ROLE] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up, &l->ffn_down };
	return t[role];
}

/* A view of pair p for base tensor part t (rows of the base starting at
 * t's data; the whole base when it is not fused). */
static struct lora_mat pair_view(const struct hearth_lora *a, const struct lora_pair *p, const struct gguf_tensor *base,
				 const struct tensor *t)
{
	const int32_t rank = (int32_t)p->ne_b[0];
	const size_t row = qtype_row_size(base->type, base->ne[0]);
	const size_t r0 = (size_t)((const char *)t->data - (const char *)base->data) / row;
	return (struct lora_mat){ .a = p->a, .b = p->b + r0 * (size_t)rank, .rank = rank, .n_in = t->ne[0],
				  .n_out = t->ne[1], .s = a->alpha != 0 ? a->alpha / (float)rank : 1.0f };
}

/* Binds expert stack pair p to the stack of m it adapts; HEARTH_EUNSUPPORTED when none. */
static int pair_bind_stack(struct hearth_lora *a, const struct hearth_model *m, const struct lora_pair *p,
			   const char *path, struct hearth_err *err)
{
	const int32_t rank = (int32_t)p->ne_b[0];
	for (int il = 0; il < m->hp.n_layer && a->exps; il++) {
		const struct layer *l = &m->layers[il];
		const struct tensor *st[LORA_N_EXP_ROLE] = { &l->ffn_gate_exps, &l->ffn_up_exps, &l->ffn_down_exps };
		for (int r = 0; r < LORA_N_EXP_ROLE; r++) {
			if (!st[r]->data || strcmp(st[r]->name, p->name) != 0)
				continue;
			const size_t na = (size_t)p->ne_a[0] * (size_t)rank, nb = (size_t)rank * (size_t)p->ne_b[1];
			struct lora_mat *v = &a->exps[((size_t)il * LORA_N_EXP_ROLE + (size_t)r) * (size_t)a->n_expert];
			for (int64_t e = 0; e < p->n_expert; e++)
				v[e] = (struct lora_mat){ .a = p->a + (size_t)e * na, .b = p->b + (size_t)e * nb, .rank = rank,
							  .n_in = p->ne_a[0], .n_out = p->ne_b[1],
							  .s = a->alpha != 0 ? a->alpha / (float)rank : 1.0f };
			return 0;
		}
	}
	return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s%s' adapts '%s': hearth adapts the experts' gate, up and "
		       "down stacks only", path, p->name, SUFFIX_A, p->name);
}

/* Binds pair p to every product of m it adapts; HEARTH_EUNSUPPORTED when none. */
static int pair_bind(struct hearth_lora *a, const struct hearth_model *m, const struct lora_pair *p,
		     const struct gguf_tensor *base, const char *path, struct hearth_err *err)
{
	int n = 0;
	if (p->n_expert > 1 || base->n_dims == 3)
		return pair_bind_stack(a, m, p, path, err);
	if (strcmp(p->name, m->tok_embd.name) == 0) { /* its own orientation; a tied output head is not adapted */
		a->global[LORA_TOK_EMBD] = (struct lora_mat){ .a = p->a, .b = p->b, .rank = (int32_t)p->ne_b[0],
							      .n_in = p->ne_a[1], .n_out = p->ne_b[1],
							      .s = a->alpha != 0 ? a->alpha / (float)p->ne_b[0] : 1.0f };
		return 0;
	}
	if (m->output.data && strcmp(m->output.name, p->name) == 0) {
		a->global[LORA_OUTPUT] = pair_view(a, p, base, &m->output);
		n++;
	}
	for (int il = 0; il < m->hp.n_layer; il++)
		for (int r = 0; r < LORA_N_LAYER_ROLE; r++) {
			const struct tensor *t = role_tensor(m, il, (enum lora_role)r);
			if (t->data && strcmp(t->name, p->name) == 0) {
				a->layer[(size_t)il * LORA_N_LAYER_ROLE + (size_t)r] = pair_view(a, p, base, t);
				n++;
			}
		}
	if (!n)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s%s' adapts '%s': hearth adapts attention q, k, v, o, "
			       "FFN gate, up, down, the output head and the token embedding only", path, p->name, SUFFIX_A,
			       p->name);
	return 0;
}

/* Counts the pairs and checks every tensor name. */
static int count_pairs(const struct hearth_gguf *g, int32_t *n, struct hearth_err *err)
{
	*n = 0;
	for (int64_t i = 0; i < g->n_tensors; i++) {
		const char *name = g->tensors[i].name;
		if (ends_with(name, SUFFIX_A)) {
			(*n)++;
		} else if (ends_with(name, SUFFIX_B)) { /* its lora_a must exist */
			const size_t k = strlen(name) - (sizeof SUFFIX_B - 1);
			char *aname = malloc(k + sizeof SUFFIX_A);
			if (!aname)
				return err_set(err, HEARTH_ENOMEM, "%s: out of memory", g->path);
			memcpy(aname, name, k);
			memcpy(aname + k, SUFFIX_A, sizeof SUFFIX_A);
			const bool found = gguf_find_tensor(g, aname) >= 0;
			free(aname);
			if (!found)
				return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' has no %.*s%s", g->path, name, (int)k, name,
					       SUFFIX_A);
		} else if (!ends_with(name, "_norm.weight")) {
			return err_set(err, HEARTH_EBADGGUF, "%s: tensor '%s' is neither a lora_a nor a lora_b", g->path, name);
		}
	}
	if (*n == 0)
		return err_set(err, HEARTH_EBADGGUF, "%s: no lora_a / lora_b tensors", g->path);
	return 0;
}

/* The digest of what the adapter computes: alpha, then each pair's name,
 * shapes and values, in file order. */
static int lora_hash(struct hearth_lora *a, struct hearth_err *err)
{
	struct sha256 *h = NULL;
	int rc;
	if ((rc = sha256_new(&h, err)))
		return rc;
	sha256_begin(h);
	sha256_update(h, &a->alpha, sizeof a->alpha);
	for (int32_t i = 0; i < a->n_pairs; i++) {
		const struct lora_pair *p = &a->pairs[i];
		sha256_update(h, p->name, strlen(p->name) + 1);
		sha256_update(h, p->ne_a, sizeof p->ne_a);
		sha256_update(h, p->ne_b, sizeof p->ne_b);
		if (p->n_expert != 1) /* a matrix's digest is as before expert stacks were read */
			sha256_update(h, &p->n_expert, sizeof p->n_expert);
		const size_t X = (size_t)p->n_expert;
		sha256_update(h, p->a, (size_t)p->ne_a[0] * (size_t)p->ne_a[1] * X * sizeof *p->a);
		sha256_update(h, p->b, (size_t)p->ne_b[0] * (size_t)p->ne_b[1] * X * sizeof *p->b);
	}
	if ((rc = sha256_end(h, a->digest)))
		rc = err_set(err, rc, "LoRA: hashing the adapter failed");
	sha256_free(h);
	return rc;
}

/* Reads, checks and binds every pair of g into a. */
static int load_pairs(struct hearth_lora *a, const struct hearth_gguf *g, const struct hearth_model *m,
		      struct hearth_err *err)
{
	int32_t n;
	int rc;
	if ((rc = count_pairs(g, &n, err)))
		return rc;
	if (!(a->pairs = calloc((size_t)n, sizeof *a->pairs)))
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", g->path);
	for (int64_t i = 0; i < g->n_tensors; i++) {
		if (!ends_with(g->tensors[i].name, SUFFIX_A))
			continue;
		struct pair_src ps = { 0 };
		struct lora_pair *p = &a->pairs[a->n_pairs++];
		rc = pair_find(g, m, &g->tensors[i], &ps, err);
		p->name = ps.name; /* freed with a, even on failure */
		if (rc)
			return rc;
		memcpy(p->ne_a, ps.a->ne, sizeof p->ne_a);
		memcpy(p->ne_b, ps.b->ne, sizeof p->ne_b);
		p->n_expert = ps.base->n_dims == 3 ? ps.base->ne[2] : 1;
		if ((rc = read_f32(g, ps.a, &p->a, err)) || (rc = read_f32(g, ps.b, &p->b, err)) ||
		    (rc = pair_bind(a, m, p, ps.base, g->path, err)))
			return rc;
	}
	return 0;
}

int hearth_lora_load(struct hearth_lora **out, const struct hearth_model *m, const char *path, struct hearth_err *err)
{
	struct hearth_gguf *g = NULL;
	struct hearth_lora *a;
	int rc;

	*out = NULL;
	if (m->vocab_only)
		return err_set(err, HEARTH_EINVAL, "%s: the model was loaded without its weights", path);
	if (!(a = calloc(1, sizeof *a)) ||
	    !(a->layer = calloc((size_t)m->hp.n_layer * LORA_N_LAYER_ROLE, sizeof *a->layer))) {
		free(a);
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
	}
	if (m->hp.n_expert > 0) {
		a->n_expert = m->hp.n_expert;
		a->exps = calloc((size_t)m->hp.n_layer * LORA_N_EXP_ROLE * (size_t)m->hp.n_expert, sizeof *a->exps);
		if (!a->exps) {
			free(a->layer);
			free(a);
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory", path);
		}
	}
	atomic_init(&a->refs, 1);
	a->m = m;
	if ((rc = hearth_gguf_open(&g, path, err)))
		goto out_free;
	if ((rc = check_header(g, m, &a->alpha, err)) || (rc = load_pairs(a, g, m, err)) || (rc = lora_hash(a, err)))
		goto out_free;
	hearth_gguf_close(g);
	*out = a;
	return 0;
out_free:
	hearth_gguf_close(g);
	lora_destroy(a);
	return rc;
}

int lora_use_resolve(const struct hearth_lora_use *use, int32_t n, const struct hearth_model *m,
		     struct fwd_lora *out, struct hearth_err *err)
{
	*out = (struct fwd_lora){ 0 };
	if (n < 0 || n > HEARTH_MAX_LORAS || (n && !use))
		return err_set(err, HEARTH_EINVAL, "LoRA: %d adapters asked for (at most %d)", n, HEARTH_MAX_LORAS);
	for (int32_t k = 0; k < n; k++) {
		if (!use[k].lora)
			return err_set(err, HEARTH_EINVAL, "LoRA: adapter %d is NULL", k);
		if (use[k].lora->m != m)
			return err_set(err, HEARTH_EINVAL, "LoRA: adapter %d was loaded for another model", k);
		if (!isfinite(use[k].scale))
			return err_set(err, HEARTH_EINVAL, "LoRA: the scale of adapter %d is not a finite number", k);
	}
	for (int32_t k = 0; k < n; k++)
		if (use[k].scale != 0.0f) {
			lora_ref(use[k].lora);
			out->ad[out->n] = use[k].lora;
			out->scale[out->n++] = use[k].scale;
		}
	return 0;
}

void lora_use_release(struct fwd_lora *l)
{
	for (int32_t k = 0; k < l->n; k++)
		hearth_lora_free(l->ad[k]);
	*l = (struct fwd_lora){ 0 };
}
