/* test-train-moe.c - the training pass's mixture of experts (src/train/tmoe.c)
 * against central finite differences of a double-precision reference
 * (tests/ref-moe.c):
 *
 *  - the routing weights' backward for each gating kind (softmax over all,
 *    with and without renormalization and scale; sigmoid, incl. a sum below
 *    the renormalization's floor; softmax over the chosen);
 *  - the activations: silu and gpt-oss's clamped SwiGLU on both sides of
 *    its clamps;
 *  - the whole block (router, experts grouped by expert, biases, weighted
 *    sum) on fixture layers: gpt-oss (f32 and MXFP4 experts, biased router
 *    and experts, softmax over the chosen, clamped SwiGLU), qwen3moe and
 *    Mixtral (q4_k_m); its forward against the reference's, its backward
 *    against differences, and one thread against four (the same bits).
 *
 *  - the block with LoRA adapters on its gate, up and down stacks (an A and a
 *    B per expert): its forward against the reference's, the gradients of
 *    every expert's A and B against differences, one thread against four.
 *
 * The objective is J = sum c . output for random c. A difference whose
 * perturbation changes a token's choice of experts (the reference checks)
 * is skipped, and counted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/thread.h"
#include "../../src/model/moe.h"
#include "../../src/train/train-ops.h"
#include "../harness.h"
#include "../ref-moe.h"

#define ROUTE_TOL 1e-5 /* f32 routing gradients against double differences, relative */
#define ACT_TOL 1e-5
#define BLOCK_TOL 1e-4 /* the block's f32 input gradient against double differences, relative */

static uint64_t rng = 777;
static double rnd(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng >> 40) / (double)(1 << 24) * 2.0 - 1.0;
}

/* ---- routing ---------------------------------------------------------------- */

/* J(logits) = sum_k c_k w_k with the experts ids held; NAN when the choice changes. */
static double route_j(const struct hparams *h, const double *lg, const int32_t *ids, const float *c)
{
	int32_t id2[16];
	double w[16], j = 0;
	ref_moe_route(h, lg, id2, w);
	for (int k = 0; k < h->n_expert_used; k++) {
		if (id2[k] != ids[k])
			return NAN;
		j += c[k] * w[k];
	}
	return j;
}

void test_train_moe_route(void)
{
	enum { X = 8, K = 3 };
	const struct { enum moe_gating g; bool norm; float scale, shift; const char *what; } cases[] = {
		{ MOE_GATING_SOFTMAX, true, 1.0f, 0, "softmax, renormalized" },
		{ MOE_GATING_SOFTMAX, false, 2.5f, 0, "softmax, scaled" },
		{ MOE_GATING_SIGMOID, true, 1.0f, 0, "sigmoid, renormalized" },
		{ MOE_GATING_SIGMOID, false, 1.0f, 0, "sigmoid" },
		{ MOE_GATING_SIGMOID, true, 1.0f, -14, "sigmoid, sum below the floor" },
		{ MOE_GATING_SOFTMAX_CHOSEN, false, 1.0f, 0, "softmax over the chosen" },
	};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		const struct hparams h = { .n_expert = X, .n_expert_used = K, .moe_gating = cases[ci].g,
					   .moe_norm_w = cases[ci].norm, .moe_w_scale = cases[ci].scale };
		double max_d = 0, max_n = 0;
		int skipped = 0;
		for (int trial = 0; trial < 20; trial++) {
			float lf[X], scratch[X], w[K], c[K], dl[X];
			double ld[X], wd[K];
			int32_t ids[K], idd[K];
			for (int e = 0; e < X; e++)
				lf[e] = (float)(2 * rnd() + cases[ci].shift), ld[e] = lf[e];
			for (int k = 0; k < K; k++)
				c[k] = (float)rnd();
			moe_route(&h, lf, scratch, ids, w);
			ref_moe_route(&h, ld, idd, wd);
			for (int k = 0; k < K; k++) {
				T_EQ_I64(ids[k], idd[k]);
				T_NEAR(w[k], wd[k], 1e-6 * fabs(wd[k]) + 1e-9);
			}
			tmoe_route_backward(&h, lf, ids, c, scratch, dl);
			for (int e = 0; e < X; e++) {
				const double keep = ld[e], hh = 1e-6;
				ld[e] = keep + hh;
				const double up = route_j(&h, ld, ids, c);
				ld[e] = keep - hh;
				const double dn = route_j(&h, ld, ids, c);
				ld[e] = keep;
				if (isnan(up) || isnan(dn)) {
					skipped++;
					continue;
				}
				const double num = (up - dn) / (2 * hh);
				max_n = fmax(max_n, fabs(num));
				max_d = fmax(max_d, fabs(num - dl[e]));
			}
		}
		fprintf(stderr, "    %-30s relative error %.2e (largest %.3g, %d skipped: a choice changed)\n", cases[ci].what,
			max_d / max_n, max_n, skipped);
		T_TRUE(max_n > 0 && max_d < ROUTE_TOL * max_n);
	}
}

/* ---- activations ------------------------------------------------------------- */

void test_train_moe_act(void)
{
	/* gate and up on both sides of the clamps (g < 7; -7 <= u <= 7), and ordinary values */
	const float gs[] = { -3.0f, -0.4f, 0.5f, 2.0f, 6.99f, 7.01f, 9.0f };
	const float us[] = { -9.0f, -7.01f, -6.99f, -1.5f, 0.3f, 6.99f, 7.01f, 12.0f };
	enum { NG = sizeof gs / sizeof gs[0], NU = sizeof us / sizeof us[0], N = NG * NU };
	float g[N], u[N], hf[N], dh[N], dg[N], du[N];
	for (int i = 0; i < N; i++)
		g[i] = gs[i / NU], u[i] = us[i % NU], dh[i] = (float)rnd();
	for (enum moe_act act = MOE_ACT_SILU; act <= MOE_ACT_SWIGLU_OAI; act++) {
		tmoe_act_forward(act, g, u, N, hf);
		tmoe_act_backward(NULL, act, g, u, dh, N, dg, du);
		double max_f = 0, max_y = 0, max_d = 0, max_n = 0;
		int zeros = 0;
		for (int i = 0; i < N; i++) {
			const double y = ref_moe_act(act, g[i], u[i]), hh = 1e-6;
			max_y = fmax(max_y, fabs(y));
			max_f = fmax(max_f, fabs(y - hf[i]));
			const double ng = dh[i] * (ref_moe_act(act, g[i] + hh, u[i]) - ref_moe_act(act, g[i] - hh, u[i])) / (2 * hh);
			const double nu = dh[i] * (ref_moe_act(act, g[i], u[i] + hh) - ref_moe_act(act, g[i], u[i] - hh)) / (2 * hh);
			max_n = fmax(max_n, fmax(fabs(ng), fabs(nu)));
			max_d = fmax(max_d, fmax(fabs(ng - dg[i]), fabs(nu - du[i])));
			zeros += (ng == 0 && dg[i] == 0) + (nu == 0 && du[i] == 0);
		}
		fprintf(stderr, "    %-14s forward relative error %.2e, gradients %.2e (largest %.3g; %d clamped zeros)\n",
			act == MOE_ACT_SILU ? "silu" : "clamped swiglu", max_f / max_y, max_d / max_n, max_n, zeros);
		T_TRUE(max_f < 1e-6 * max_y);
		T_TRUE(max_n > 0 && max_d < ACT_TOL * max_n);
		/* the clamps pass nothing: g >= 7 (3 values x NU), u outside [-7, 7] (4 values x NG) */
		T_EQ_I64(zeros, act == MOE_ACT_SILU ? 0 : 2 * NU + 4 * NG);
	}
}

/* ---- the block ------------------------------------------------------------------ */

/* One layer's activations and the scratch, for n tokens. */
struct block {
	struct tmoe_acts a;
	struct tmoe_scratch s;
	float *mm;
	void *mem[32];
	int n_mem;
};

/* n 4-byte slots, freed by block_free */
static void *take(struct block *b, size_t n)
{
	return b->mem[b->n_mem++] = malloc(n * 4);
}

static void block_alloc(struct block *b, const struct hparams *h, int n, int n_threads)
{
	const size_t X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, F = (size_t)h->n_ff_exp, E = (size_t)h->n_embd;
	const size_t R = (size_t)n * K, wide = E > F ? E : F;
	b->n_mem = 0;
	b->a = (struct tmoe_acts){ .logits = take(b, n * X), .ids = take(b, R), .w = take(b, R), .row = take(b, R),
				   .tok = take(b, R), .off = take(b, X), .count = take(b, X), .g = take(b, R * F),
				   .u = take(b, R * F), .act = take(b, R * F), .y = take(b, R * E) };
	b->s = (struct tmoe_scratch){ .rows = take(b, R * E), .dact = take(b, R * F), .dg = take(b, R * F),
				      .du = take(b, R * F), .dw = take(b, R), .dlogits = take(b, n * X), .route = take(b, X),
				      .next = take(b, X) };
	b->mm = take(b, (size_t)n_threads * (size_t)tmm_scratch_floats((int64_t)wide));
}

static void block_free(struct block *b)
{
	for (int i = 0; i < b->n_mem; i++)
		free(b->mem[i]);
}

/* J = sum c . ref_moe(x); NAN when the choice differs from *choice0. */
static double block_j(const struct ref_moe *r, const double *x, int n, const float *c, uint64_t choice0)
{
	const int64_t E = r->h->n_embd;
	double *out = malloc((size_t)(n * E) * sizeof *out), j = 0;
	uint64_t choice = 0;
	ref_moe_run(r, x, n, out, &choice);
	for (int64_t i = 0; i < n * E; i++)
		j += c[i] * out[i];
	free(out);
	return choice == choice0 ? j : NAN;
}

/* Forward, backward and threads of layer il's block of the model at path. */
static void check_block(const char *file, int il)
{
	enum { N = 6, PICK = 24 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct pool *p1 = NULL, *p4 = NULL;
	T_OK(hearth_model_load(&m, fixture(file), &mp, &err), err);
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p4, 4, &err), err);
	if (!m || !p1 || !p4)
		goto out;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	const int64_t E = h->n_embd;
	float *x = malloc((size_t)(N * E) * sizeof *x), *c = malloc((size_t)(N * E) * sizeof *c);
	float *y1 = malloc((size_t)(N * E) * sizeof *y1), *y4 = malloc((size_t)(N * E) * sizeof *y4);
	float *d1 = malloc((size_t)(N * E) * sizeof *d1), *d4 = malloc((size_t)(N * E) * sizeof *d4);
	double *xd = malloc((size_t)(N * E) * sizeof *xd), *yd = malloc((size_t)(N * E) * sizeof *yd);
	for (int64_t i = 0; i < N * E; i++)
		x[i] = (float)(1.5 * rnd()), xd[i] = x[i], c[i] = (float)rnd();
	struct block b1, b4;
	block_alloc(&b1, h, N, 1);
	block_alloc(&b4, h, N, 4);
	tmoe_forward(p1, b1.mm, h, l, x, N, &b1.a, &b1.s, y1);
	tmoe_backward(p1, b1.mm, h, l, &b1.a, c, N, &b1.s, d1);
	tmoe_forward(p4, b4.mm, h, l, x, N, &b4.a, &b4.s, y4);
	tmoe_backward(p4, b4.mm, h, l, &b4.a, c, N, &b4.s, d4);
	T_TRUE(memcmp(y1, y4, (size_t)(N * E) * sizeof *y1) == 0);
	T_TRUE(memcmp(d1, d4, (size_t)(N * E) * sizeof *d1) == 0);
	struct ref_moe r;
	ref_moe_init(&r, m, il);
	uint64_t choice0 = 0;
	ref_moe_run(&r, xd, N, yd, &choice0);
	double max_y = 0, max_f = 0, max_n = 0, max_d = 0;
	for (int64_t i = 0; i < N * E; i++)
		max_y = fmax(max_y, fabs(yd[i])), max_f = fmax(max_f, fabs(yd[i] - y1[i]));
	int skipped = 0, used = 0;
	for (int k = 0; k < PICK; k++) {
		const int64_t i = (int64_t)((rnd() + 1) / 2 * (double)(N * E)) % (N * E);
		const double keep = xd[i], hh = 1e-4;
		xd[i] = keep + hh;
		const double up = block_j(&r, xd, N, c, choice0);
		xd[i] = keep - hh;
		const double dn = block_j(&r, xd, N, c, choice0);
		xd[i] = keep;
		if (isnan(up) || isnan(dn)) {
			skipped++;
			continue;
		}
		const double num = (up - dn) / (2 * hh);
		max_n = fmax(max_n, fabs(num));
		max_d = fmax(max_d, fabs(num - d1[i]));
		used++;
	}
	fprintf(stderr, "    %-30s layer %d: forward %.2e, d input %.2e (largest %.3g; %d checked, %d skipped)\n", file + 7,
		il, max_f / max_y, max_d / max_n, max_n, used, skipped);
	T_TRUE(max_f < 1e-5 * max_y);
	T_TRUE(used >= PICK / 2 && max_n > 0 && max_d < BLOCK_TOL * max_n);
	ref_moe_free(&r);
	block_free(&b1);
	block_free(&b4);
	free(x), free(c), free(y1), free(y4), free(d1), free(d4), free(xd), free(yd);
out:
	pool_free(p1);
	pool_free(p4);
	hearth_model_free(m);
}

/* Adapters of rank R on the three stacks of a layer: f32 parameters and
 * per-expert views for tmoe, double copies for the reference. */
struct stack_lora {
	float *p;                     /* a, b, ga, gb of the three stacks */
	struct tlora *views;          /* [3][X] */
	struct ref_moe_lora ref[3];
	double *dp;                   /* the reference's a, b of the three stacks */
	size_t na[3], nb[3];          /* per expert */
};

static void stack_lora_init(struct stack_lora *sl, const struct hparams *h, int R)
{
	const int X = h->n_expert;
	const int64_t n_in[3] = { h->n_embd, h->n_embd, h->n_ff_exp }, n_out[3] = { h->n_ff_exp, h->n_ff_exp, h->n_embd };
	size_t total = 0;
	for (int j = 0; j < 3; j++) {
		sl->na[j] = (size_t)R * (size_t)n_in[j];
		sl->nb[j] = (size_t)R * (size_t)n_out[j];
		total += (sl->na[j] + sl->nb[j]) * (size_t)X;
	}
	sl->p = calloc(2 * total, sizeof *sl->p);
	sl->dp = calloc(total, sizeof *sl->dp);
	sl->views = calloc(3 * (size_t)X, sizeof *sl->views);
	float *at = sl->p;
	double *dat = sl->dp;
	for (int j = 0; j < 3; j++) {
		const size_t na = sl->na[j] * (size_t)X, nb = sl->nb[j] * (size_t)X;
		float *a = at, *b = at + na, *ga = at + na + nb, *gb = at + 2 * na + nb;
		at += 2 * (na + nb);
		for (size_t i = 0; i < na; i++)
			dat[i] = a[i] = (float)(0.2 * rnd());
		for (size_t i = 0; i < nb; i++)
			dat[na + i] = b[i] = (float)(0.3 * rnd());
		sl->ref[j] = (struct ref_moe_lora){ .rank = R, .scale = 0.75, .a = dat, .b = dat + na };
		dat += na + nb;
		for (int e = 0; e < X; e++)
			sl->views[j * X + e] = (struct tlora){ .n_in = n_in[j], .n_out = n_out[j], .rank = R, .scale = 0.75f,
							       .a = a + e * sl->na[j], .b = b + e * sl->nb[j],
							       .ga = ga + e * sl->na[j], .gb = gb + e * sl->nb[j], .n_expert = 1 };
	}
}

/* Layer il's block with adapters on its three stacks: forward against the
 * reference, A's and B's gradients against differences, 1 thread against 4. */
static void check_block_lora(const char *file, int il)
{
	enum { N = 6, PICK = 24, R = 3 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct pool *p1 = NULL, *p4 = NULL;
	T_OK(hearth_model_load(&m, fixture(file), &mp, &err), err);
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p4, 4, &err), err);
	if (!m || !p1 || !p4)
		goto out;
	const struct hparams *h = &m->hp;
	const struct layer *l = &m->layers[il];
	const int X = h->n_expert;
	const int64_t E = h->n_embd, F = h->n_ff_exp;
	const size_t rows = (size_t)N * (size_t)h->n_expert_used;
	struct stack_lora s1, s4;
	const uint64_t seed = rng;
	stack_lora_init(&s1, h, R);
	rng = seed;
	stack_lora_init(&s4, h, R);
	float *x = malloc((size_t)(N * E) * sizeof *x), *c = malloc((size_t)(N * E) * sizeof *c);
	float *y1 = malloc((size_t)(N * E) * sizeof *y1), *y4 = malloc((size_t)(N * E) * sizeof *y4);
	float *d1 = malloc((size_t)(N * E) * sizeof *d1), *d4 = malloc((size_t)(N * E) * sizeof *d4);
	double *xd = malloc((size_t)(N * E) * sizeof *xd), *yd = malloc((size_t)(N * E) * sizeof *yd);
	for (int64_t i = 0; i < N * E; i++)
		x[i] = (float)(1.5 * rnd()), xd[i] = x[i], c[i] = (float)rnd();
	struct block b1, b4;
	block_alloc(&b1, h, N, 1);
	block_alloc(&b4, h, N, 4);
	struct block *bb[2] = { &b1, &b4 };
	for (int k = 0; k < 2; k++) {
		bb[k]->a.xr = take(bb[k], rows * (size_t)E);
		for (int j = 0; j < 3; j++)
			bb[k]->a.lu[j] = take(bb[k], rows * R);
		bb[k]->s.ldu = take(bb[k], rows * R);
	}
	const struct tmoe_lora lo1 = { { s1.views, s1.views + X, s1.views + 2 * X } };
	const struct tmoe_lora lo4 = { { s4.views, s4.views + X, s4.views + 2 * X } };
	tmoe_forward_lora(p1, b1.mm, h, l, &lo1, x, N, &b1.a, &b1.s, y1);
	tmoe_backward_lora(p1, b1.mm, h, l, &lo1, &b1.a, c, N, &b1.s, d1);
	tmoe_forward_lora(p4, b4.mm, h, l, &lo4, x, N, &b4.a, &b4.s, y4);
	tmoe_backward_lora(p4, b4.mm, h, l, &lo4, &b4.a, c, N, &b4.s, d4);
	T_TRUE(memcmp(y1, y4, (size_t)(N * E) * sizeof *y1) == 0);
	T_TRUE(memcmp(d1, d4, (size_t)(N * E) * sizeof *d1) == 0);
	size_t n_par = 0;
	for (int j = 0; j < 3; j++)
		n_par += 2 * (s1.na[j] + s1.nb[j]) * (size_t)X;
	T_TRUE(memcmp(s1.p, s4.p, n_par * sizeof *s1.p) == 0); /* the gradients too */
	struct ref_moe r;
	ref_moe_init(&r, m, il);
	for (int j = 0; j < 3; j++)
		r.lo[j] = &s1.ref[j];
	uint64_t choice0 = 0;
	ref_moe_run(&r, xd, N, yd, &choice0);
	double max_y = 0, max_f = 0, max_n = 0, max_d = 0;
	for (int64_t i = 0; i < N * E; i++)
		max_y = fmax(max_y, fabs(yd[i])), max_f = fmax(max_f, fabs(yd[i] - y1[i]));
	int skipped = 0, used = 0, nonzero = 0;
	for (int k = 0; k < PICK; k++) { /* an entry of one stack's A or B, of an expert some token chose */
		const int j = k % 3, kind = (k / 3) % 2, e = b1.a.ids[(size_t)(k % (int)rows)];
		const struct tlora *v = &s1.views[j * X + e];
		const size_t n = kind ? s1.nb[j] : s1.na[j], at = (size_t)((rnd() + 1) / 2 * (double)n) % n;
		double *pd = kind ? (double *)s1.ref[j].b + (size_t)e * n + at : (double *)s1.ref[j].a + (size_t)e * n + at;
		const float an = kind ? v->gb[at] : v->ga[at];
		const double keep = *pd, hh = 1e-4;
		*pd = keep + hh;
		const double up = block_j(&r, xd, N, c, choice0);
		*pd = keep - hh;
		const double dn = block_j(&r, xd, N, c, choice0);
		*pd = keep;
		if (isnan(up) || isnan(dn)) {
			skipped++;
			continue;
		}
		const double num = (up - dn) / (2 * hh);
		max_n = fmax(max_n, fabs(num));
		max_d = fmax(max_d, fabs(num - an));
		nonzero += num != 0;
		used++;
	}
	(void)F;
	fprintf(stderr, "    %-30s layer %d with adapters: forward %.2e, dA dB %.2e (largest %.3g; %d checked, %d skipped)\n",
		file + 7, il, max_f / max_y, max_d / max_n, max_n, used, skipped);
	T_TRUE(max_f < 1e-5 * max_y);
	T_TRUE(used >= PICK / 2 && nonzero > 0 && max_d < BLOCK_TOL * max_n);
	ref_moe_free(&r);
	block_free(&b1);
	block_free(&b4);
	free(s1.p), free(s1.dp), free(s1.views), free(s4.p), free(s4.dp), free(s4.views);
	free(x), free(c), free(y1), free(y4), free(d1), free(d4), free(xd), free(yd);
out:
	pool_free(p1);
	pool_free(p4);
	hearth_model_free(m);
}

void test_train_moe_block_lora(void)
{
	check_block_lora("models/tiny-gpt-oss.f32.gguf", 0);
	check_block_lora("models/tiny-gpt-oss.mxfp4_moe.gguf", 1);
	check_block_lora("models/tiny-qwen3moe.q4_k_m.gguf", 0);
	check_block_lora("models/tiny-mixtral.f32.gguf", 1);
}

void test_train_moe_block(void)
{
	check_block("models/tiny-gpt-oss.f32.gguf", 0);
	check_block("models/tiny-gpt-oss.mxfp4_moe.gguf", 1);
	check_block("models/tiny-qwen3moe.q4_k_m.gguf", 0);
	check_block("models/tiny-mixtral.f32.gguf", 1);
}
