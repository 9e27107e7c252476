/* test-train-ops.c - every operation of the training pass (src/train/):
 * its f32 backward against central finite differences of a forward written
 * here in double precision (so the differences are accurate to ~1e-9 and a
 * wrong gradient shows), its f32 forward against the same double forward,
 * and its result with one thread against three (the same bits).
 *
 * The objective of each check is J = sum_i c_i y_i for random c, whose
 * gradient the backward gets as dy = c. Each check prints its relative
 * error: max |analytic - numeric| / max |numeric| over the input entries
 * (all of them, or FD_MAX evenly spaced). Sizes are large enough that the
 * operations run on the pool (train_run runs small work inline).
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/thread.h"
#include "../../src/kern/kern.h"
#include "../../src/model/blocks.h"
#include "../../src/tensor/qtype.h"
#include "../../src/tensor/quant-ref.h"
#include "../../src/train/train-ops.h"
#include "../harness.h"

#define FD_H 1e-4      /* finite-difference step */
#define GRAD_TOL 1e-5  /* f32 gradients against double differences (measured: at most 3e-7) */
#define FD_MAX 300      /* entries checked per gradient (evenly spaced) */
#define FWD_TOL 1e-5   /* f32 forwards against double ones, relative to the largest output */

static uint64_t rng = 12345;

static double rnd(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng >> 40) / (double)(1 << 24) * 2.0 - 1.0;
}

/* n random values in +-scale, as floats and the same values as doubles */
static void fill(float *f, double *d, size_t n, double scale)
{
	for (size_t i = 0; i < n; i++) {
		f[i] = (float)(rnd() * scale);
		if (d)
			d[i] = f[i];
	}
}

typedef double (*objective_fn)(void *ctx);

/* The relative error of the gradient g of J with respect to the n doubles at
 * x (which J reads through ctx), against central differences. */
static double grad_error(const char *what, double *x, size_t n, const float *g, objective_fn J, void *ctx)
{
	double max_num = 0, max_diff = 0;
	const size_t step = n > FD_MAX ? n / FD_MAX : 1;
	for (size_t i = (size_t)(rng >> 40) % step; i < n; i += step) {
		const double keep = x[i];
		x[i] = keep + FD_H;
		const double jp = J(ctx);
		x[i] = keep - FD_H;
		const double jm = J(ctx);
		x[i] = keep;
		const double num = (jp - jm) / (2 * FD_H);
		max_num = fabs(num) > max_num ? fabs(num) : max_num;
		max_diff = fabs(num - g[i]) > max_diff ? fabs(num - g[i]) : max_diff;
	}
	const double rel = max_diff / (max_num > 0 ? max_num : 1);
	fprintf(stderr, "    %-28s relative error %.2e (largest gradient %.3g)\n", what, rel, max_num);
	return rel;
}

/* max |a - b| / max |b| */
static double fwd_error(const float *a, const double *b, size_t n)
{
	double mb = 0, md = 0;
	for (size_t i = 0; i < n; i++) {
		mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
		md = fabs(a[i] - b[i]) > md ? fabs(a[i] - b[i]) : md;
	}
	return md / (mb > 0 ? mb : 1);
}

static double dotc(const double *c, const double *y, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += c[i] * y[i];
	return s;
}

/* ---- products with a frozen weight ---------------------------------------------- */

struct mm_ctx {
	int n, n_in, n_out;
	const double *w, *c;
	double *x;
};

static double mm_J(void *p)
{
	const struct mm_ctx *m = p;
	double s = 0;
	for (int t = 0; t < m->n; t++)
		for (int o = 0; o < m->n_out; o++) {
			double y = 0;
			for (int i = 0; i < m->n_in; i++)
				y += m->w[(size_t)o * m->n_in + i] * m->x[(size_t)t * m->n_in + i];
			s += m->c[(size_t)t * m->n_out + o] * y;
		}
	return s;
}

/* One weight type: forward and dx against double, 1 thread against 3. */
static void check_mm(struct pool *p1, struct pool *p3, int type)
{
	const int n = 5, n_in = 256, n_out = 64;
	float *wf = malloc((size_t)n_in * n_out * sizeof *wf), *x = malloc((size_t)n * n_in * sizeof *x);
	float *c = malloc((size_t)n * n_out * sizeof *c), *y = malloc((size_t)n * n_out * sizeof *y);
	float *y3 = malloc((size_t)n * n_out * sizeof *y3), *dx = calloc((size_t)n * n_in, sizeof *dx);
	float *dx3 = calloc((size_t)n * n_in, sizeof *dx3), *wdq = malloc((size_t)n_in * n_out * sizeof *wdq);
	double *wd = malloc((size_t)n_in * n_out * sizeof *wd), *xd = malloc((size_t)n * n_in * sizeof *xd);
	double *cd = malloc((size_t)n * n_out * sizeof *cd), *yd = malloc((size_t)n * n_out * sizeof *yd);
	const size_t row = qtype_row_size(type, n_in);
	void *wq = malloc(row * n_out);
	float *scratch = malloc(3 * (size_t)tmm_scratch_floats(n_in) * sizeof *scratch);

	fill(wf, NULL, (size_t)n_in * n_out, 0.5);
	fill(x, xd, (size_t)n * n_in, 1.0);
	fill(c, cd, (size_t)n * n_out, 1.0);
	/* the weight in its type, and its exact values (the reference dequantization) */
	if (type == HEARTH_TYPE_F32)
		memcpy(wq, wf, row * n_out);
	else
		for (int o = 0; o < n_out; o++)
			quantize_row_ref(type, wf + (size_t)o * n_in, (char *)wq + (size_t)o * row, n_in);
	for (int o = 0; o < n_out; o++)
		kern_ops_ref(type)->to_float((char *)wq + (size_t)o * row, wdq + (size_t)o * n_in, n_in);
	for (size_t i = 0; i < (size_t)n_in * n_out; i++)
		wd[i] = wdq[i];
	struct tensor w = { .name = "w", .type = type, .ne = { n_in, n_out, 1, 1 }, .data = wq };

	tmm_forward(p1, scratch, &w, x, n, y);
	tmm_forward(p3, scratch, &w, x, n, y3);
	for (int t = 0; t < n; t++)
		for (int o = 0; o < n_out; o++) {
			double s = 0;
			for (int i = 0; i < n_in; i++)
				s += wd[(size_t)o * n_in + i] * xd[(size_t)t * n_in + i];
			yd[(size_t)t * n_out + o] = s;
		}
	T_TRUE(fwd_error(y, yd, (size_t)n * n_out) < FWD_TOL);
	T_TRUE(memcmp(y, y3, (size_t)n * n_out * sizeof *y) == 0);
	tmm_backward(p1, scratch, &w, c, n, dx);
	tmm_backward(p3, scratch, &w, c, n, dx3);
	T_TRUE(memcmp(dx, dx3, (size_t)n * n_in * sizeof *dx) == 0);
	struct mm_ctx m = { n, n_in, n_out, wd, cd, xd };
	char what[64];
	snprintf(what, sizeof what, "matmul %s dx", hearth_type_name(type));
	T_TRUE(grad_error(what, xd, (size_t)n * n_in, dx, mm_J, &m) < GRAD_TOL);

	free(wf), free(x), free(c), free(y), free(y3), free(dx), free(dx3), free(wdq), free(wd), free(xd), free(cd), free(yd);
	free(wq), free(scratch);
}

void test_train_op_matmul(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1, *p3;
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p3, 3, &err), err);
	const int types[] = { HEARTH_TYPE_F32, HEARTH_TYPE_F16, HEARTH_TYPE_Q8_0, HEARTH_TYPE_Q4_0, HEARTH_TYPE_Q4_K,
			      HEARTH_TYPE_Q6_K };
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		check_mm(p1, p3, types[i]);
	pool_free(p1);
	pool_free(p3);
}

/* ---- the kernels under tmm: gemm_nt / gemm_nn (src/kern/gemm-f32.h) ----------- */

/* |got - exact| within the bound of gemm-f32.h for a recursive sum of
 * n_terms terms whose magnitudes add up to mag (and exact within half that
 * of the reference's sum, as both are such sums) */
static bool gemm_close(float got, double exact, int64_t n_terms, double mag)
{
	return fabs(got - exact) <= (double)n_terms * FLT_EPSILON * mag + 1e-30;
}

/* gemm_nt of this CPU and the reference against double sums; a token or a
 * subset of rows computed alone gives the same bits as in the whole tile */
static void check_gemm_nt(const struct kern_fns *f, int n, int64_t nk, int nr)
{
	float *w = malloc((size_t)nr * (size_t)nk * sizeof *w), *x = malloc((size_t)n * (size_t)nk * sizeof *x);
	float *y = malloc((size_t)n * GEMM_F32_ROWS * sizeof *y), *y1 = malloc(GEMM_F32_ROWS * sizeof *y1);
	float *scratch = malloc((size_t)GEMM_F32_NT_SCRATCH(nk) * sizeof *scratch);
	fill(w, NULL, (size_t)nr * (size_t)nk, 1.0);
	fill(x, NULL, (size_t)n * (size_t)nk, 1.0);
	f->gemm_nt(nk, nr, w, x, (size_t)nk, n, y, GEMM_F32_ROWS, scratch);
	bool close = true, same = true;
	for (int i = 0; i < n; i++)
		for (int r = 0; r < nr; r++) {
			double s = 0, mag = 0;
			for (int64_t k = 0; k < nk; k++) {
				const double t = (double)x[(size_t)i * (size_t)nk + (size_t)k] * w[(size_t)r * (size_t)nk + (size_t)k];
				s += t;
				mag += fabs(t);
			}
			close = close && gemm_close(y[i * GEMM_F32_ROWS + r], s, nk, mag);
		}
	const int i = n / 2, nr2 = nr > 1 ? nr - 1 : 1; /* one token, the first rows but one */
	f->gemm_nt(nk, nr2, w, x + (size_t)i * (size_t)nk, (size_t)nk, 1, y1, GEMM_F32_ROWS, scratch);
	same = memcmp(y1, y + i * GEMM_F32_ROWS, (size_t)nr2 * sizeof *y1) == 0;
	if (!close || !same)
		fprintf(stderr, "    gemm_nt n %d nk %lld nr %d: %s\n", n, (long long)nk, nr, !close ? "not within bound" : "bits depend on the tile");
	T_TRUE(close && same);
	free(w), free(x), free(y), free(y1), free(scratch);
}

/* gemm_nn likewise; the rows handed over in two calls give the same bits as in one */
static void check_gemm_nn(const struct kern_fns *f, int n, int64_t nc, int nr)
{
	const size_t w_ld = (size_t)nc + 3, y_ld = (size_t)nc + 5;
	float *w = malloc((size_t)nr * w_ld * sizeof *w), *a = malloc((size_t)n * (size_t)nr * sizeof *a);
	float *y = malloc((size_t)n * y_ld * sizeof *y), *y0 = malloc((size_t)n * y_ld * sizeof *y0);
	float *y2 = malloc((size_t)n * y_ld * sizeof *y2);
	fill(w, NULL, (size_t)nr * w_ld, 1.0);
	fill(a, NULL, (size_t)n * (size_t)nr, 1.0);
	fill(y0, NULL, (size_t)n * y_ld, 1.0);
	memcpy(y, y0, (size_t)n * y_ld * sizeof *y);
	memcpy(y2, y0, (size_t)n * y_ld * sizeof *y);
	f->gemm_nn(nc, nr, w, w_ld, a, (size_t)nr, n, y, y_ld);
	const int h = nr / 2;
	f->gemm_nn(nc, h, w, w_ld, a, (size_t)nr, n, y2, y_ld);
	f->gemm_nn(nc - 1, nr - h, w + (size_t)h * w_ld + 1, w_ld, a + h, (size_t)nr, n, y2 + 1, y_ld);
	f->gemm_nn(1, nr - h, w + (size_t)h * w_ld, w_ld, a + h, (size_t)nr, n, y2, y_ld);
	bool close = true, same = true;
	for (int i = 0; i < n; i++)
		for (int64_t c = 0; c < nc; c++) {
			const size_t e = (size_t)i * y_ld + (size_t)c;
			double s = y0[e], mag = fabs(y0[e]);
			for (int r = 0; r < nr; r++) {
				const double t = (double)a[(size_t)i * (size_t)nr + (size_t)r] * w[(size_t)r * w_ld + (size_t)c];
				s += t;
				mag += fabs(t);
			}
			close = close && gemm_close(y[e], s, nr + 1, mag);
			same = same && memcmp(&y[e], &y2[e], sizeof y[e]) == 0;
		}
	for (int i = 0; i < n; i++) /* the columns past nc are not touched */
		same = same && memcmp(&y[(size_t)i * y_ld + (size_t)nc], &y0[(size_t)i * y_ld + (size_t)nc], 5 * sizeof *y) == 0;
	if (!close || !same)
		fprintf(stderr, "    gemm_nn n %d nc %lld nr %d: %s\n", n, (long long)nc, nr, !close ? "not within bound" : "bits depend on the split");
	T_TRUE(close && same);
	free(w), free(a), free(y), free(y0), free(y2);
}

void test_train_op_gemm_kernels(void)
{
	const struct kern_fns *fs[2] = { kern_fns(), kern_fns_ref() };
	const int ns[] = { 1, 5, 6, 7, 13, 40 };
	const int64_t nks[] = { 1, 7, 8, 37, 300 };
	const int nrs[] = { 1, 9, 16 }, nrs_nn[] = { 2, 10, 17, 100 }; /* gemm_nn: past a kernel's chunk of rows */
	for (int v = 0; v < 2; v++)
		for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
			for (size_t b = 0; b < sizeof nks / sizeof nks[0]; b++)
				for (size_t c = 0; c < sizeof nrs / sizeof nrs[0]; c++) {
					check_gemm_nt(fs[v], ns[a], nks[b], nrs[c]);
					check_gemm_nn(fs[v], ns[a], nks[b] + 1, nrs_nn[c]);
				}
	for (int v = 0; v < 2; v++)
		for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
			check_gemm_nn(fs[v], ns[a], 300, nrs_nn[3]);
	fprintf(stderr, "    (%s kernels and the reference)\n", kern_isa());
}

/* ---- LoRA ------------------------------------------------------------------------- */

struct lora_ctx {
	int n, n_in, n_out, rank;
	double s;
	double *a, *b, *x;
	const double *c;
};

static double lora_J(void *p)
{
	const struct lora_ctx *l = p;
	double J = 0, u[64];
	for (int t = 0; t < l->n; t++) {
		for (int k = 0; k < l->rank; k++)
			u[k] = dotc(l->a + (size_t)k * l->n_in, l->x + (size_t)t * l->n_in, (size_t)l->n_in);
		for (int o = 0; o < l->n_out; o++)
			J += l->c[(size_t)t * l->n_out + o] * l->s * dotc(l->b + (size_t)o * l->rank, u, (size_t)l->rank);
	}
	return J;
}

void test_train_op_lora(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1, *p3;
	enum { N = 20, NI = 300, NO = 200, R = 8 };
	static float a[R * NI], b[NO * R], x[N * NI], c[N * NO], y[N * NO], u[N * R], du[N * R], dx[N * NI];
	static float ga[R * NI], gb[NO * R], ga3[R * NI], gb3[NO * R], dx3[N * NI];
	static double ad[R * NI], bd[NO * R], xd[N * NI], cd[N * NO];
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p3, 3, &err), err);
	fill(a, ad, R * NI, 0.5);
	fill(b, bd, NO * R, 0.5);
	fill(x, xd, N * NI, 1.0);
	fill(c, cd, N * NO, 1.0);
	struct tlora l = { .n_in = NI, .n_out = NO, .rank = R, .scale = 1.5f, .a = a, .b = b, .ga = ga, .gb = gb };
	tlora_forward(p1, &l, x, N, u, y);
	tlora_backward(p1, &l, x, u, c, N, du, dx);
	struct tlora l3 = l;
	l3.ga = ga3;
	l3.gb = gb3;
	tlora_backward(p3, &l3, x, u, c, N, du, dx3);
	T_TRUE(memcmp(ga, ga3, sizeof ga) == 0 && memcmp(gb, gb3, sizeof gb) == 0 && memcmp(dx, dx3, sizeof dx) == 0);
	struct lora_ctx ctx = { N, NI, NO, R, 1.5, ad, bd, xd, cd };
	T_TRUE(grad_error("lora dA", ad, R * NI, ga, lora_J, &ctx) < GRAD_TOL);
	T_TRUE(grad_error("lora dB", bd, NO * R, gb, lora_J, &ctx) < GRAD_TOL);
	T_TRUE(grad_error("lora dx", xd, N * NI, dx, lora_J, &ctx) < GRAD_TOL);
	pool_free(p1);
	pool_free(p3);
}

/* ---- RMS norm --------------------------------------------------------------------- */

struct norm_ctx {
	int n, d;
	double eps;
	const double *w, *c;
	double *x;
};

static void norm_ref(const struct norm_ctx *m, double *y)
{
	for (int t = 0; t < m->n; t++) {
		const double *x = m->x + (size_t)t * m->d;
		const double r = 1.0 / sqrt(dotc(x, x, (size_t)m->d) / m->d + m->eps);
		for (int j = 0; j < m->d; j++)
			y[(size_t)t * m->d + j] = x[j] * r * m->w[j];
	}
}

static double norm_J(void *p)
{
	const struct norm_ctx *m = p;
	double y[4 * 48];
	norm_ref(m, y);
	return dotc(m->c, y, (size_t)m->n * m->d);
}

void test_train_op_rmsnorm(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 4, D = 48 };
	float x[N * D], w[D], c[N * D], y[N * D], dx[N * D], dx2[N * D];
	double xd[N * D], wd[D], cd[N * D], yd[N * D];
	T_OK(pool_new(&p1, 2, &err), err);
	fill(x, xd, N * D, 1.0);
	fill(w, wd, D, 1.0);
	fill(c, cd, N * D, 1.0);
	const float eps = 1e-5f;
	struct norm_ctx m = { N, D, eps, wd, cd, xd };
	tnorm_forward(p1, x, w, N, D, eps, y);
	norm_ref(&m, yd);
	T_TRUE(fwd_error(y, yd, N * D) < FWD_TOL);
	tnorm_backward(p1, x, w, c, N, D, eps, false, dx);
	T_TRUE(grad_error("rms_norm dx", xd, N * D, dx, norm_J, &m) < GRAD_TOL);
	/* add: the gradient joins what is there */
	for (int i = 0; i < N * D; i++)
		dx2[i] = 1.0f;
	tnorm_backward(p1, x, w, c, N, D, eps, true, dx2);
	T_NEAR(dx2[7], dx[7] + 1.0f, 1e-6);
	pool_free(p1);
}

/* ---- rope ------------------------------------------------------------------------- */

struct rope_ctx {
	int n, nh, hd, n_rot;
	enum rope_type type;
	const float *cs;
	const int32_t *pos;
	const double *c;
	double *x;
};

static void rope_ref(const struct rope_ctx *r, double *y)
{
	memcpy(y, r->x, (size_t)r->n * r->nh * r->hd * sizeof *y);
	for (int i = 0; i < r->n; i++)
		for (int h = 0; h < r->nh; h++) {
			double *v = y + ((size_t)i * r->nh + h) * r->hd;
			const float *cs = r->cs + (size_t)r->pos[i] * r->n_rot;
			for (int i0 = 0; i0 < r->n_rot; i0 += 2) {
				const int a = r->type == ROPE_NEOX ? i0 / 2 : i0, b = r->type == ROPE_NEOX ? i0 / 2 + r->n_rot / 2 : i0 + 1;
				const double x0 = v[a], x1 = v[b];
				v[a] = x0 * cs[i0] - x1 * cs[i0 + 1];
				v[b] = x0 * cs[i0 + 1] + x1 * cs[i0];
			}
		}
}

static double rope_J(void *p)
{
	const struct rope_ctx *r = p;
	double y[3 * 2 * 16];
	rope_ref(r, y);
	return dotc(r->c, y, (size_t)r->n * r->nh * r->hd);
}

void test_train_op_rope(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 3, NH = 2, HD = 16, NR = 12 };
	float x[N * NH * HD], c[N * NH * HD], y[N * NH * HD], cs[8 * NR], ref[NH * HD];
	double xd[N * NH * HD], cd[N * NH * HD], yd[N * NH * HD];
	const int32_t pos[N] = { 0, 5, 7 };
	struct hparams hp = { .rope_base = 10000, .rope_freq_scale = 1, .rope_attn_factor = 1 };
	T_OK(pool_new(&p1, 2, &err), err);
	for (int pp = 0; pp < 8; pp++)
		block_rope_cs(pp, NR, &hp, NULL, cs + pp * NR);
	for (int type = ROPE_NORM; type <= ROPE_NEOX; type++) {
		hp.rope_type = (enum rope_type)type;
		fill(x, xd, N * NH * HD, 1.0);
		fill(c, cd, N * NH * HD, 1.0);
		memcpy(y, x, sizeof y);
		trope_apply(p1, y, N, NH, HD, NR, (enum rope_type)type, cs, pos, false);
		/* the same bits as the inference's rope */
		memcpy(ref, x + NH * HD, sizeof ref);
		block_rope(ref, NH, HD, NR, pos[1], &hp, NULL);
		T_TRUE(memcmp(ref, y + NH * HD, sizeof ref) == 0);
		struct rope_ctx r = { N, NH, HD, NR, (enum rope_type)type, cs, pos, cd, xd };
		rope_ref(&r, yd);
		T_TRUE(fwd_error(y, yd, N * NH * HD) < FWD_TOL);
		/* the backward of J = c . rope(x) is rope's transpose applied to c */
		float g[N * NH * HD];
		memcpy(g, c, sizeof g);
		trope_apply(p1, g, N, NH, HD, NR, (enum rope_type)type, cs, pos, true);
		T_TRUE(grad_error(type == ROPE_NORM ? "rope (normal) dx" : "rope (neox) dx", xd, N * NH * HD, g, rope_J, &r) <
		       GRAD_TOL);
	}
	pool_free(p1);
}

/* ---- SwiGLU ------------------------------------------------------------------------- */

struct swiglu_ctx {
	int n;
	double *g, *u;
	const double *c;
};

static double swiglu_J(void *p)
{
	const struct swiglu_ctx *s = p;
	double J = 0;
	for (int i = 0; i < s->n; i++)
		J += s->c[i] * s->g[i] / (1 + exp(-s->g[i])) * s->u[i];
	return J;
}

void test_train_op_swiglu(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 67 };
	float g[N], u[N], c[N], h[N], dg[N], du[N];
	double gd[N], ud[N], cd[N], hd[N];
	T_OK(pool_new(&p1, 3, &err), err);
	fill(g, gd, N, 6.0);
	fill(u, ud, N, 2.0);
	fill(c, cd, N, 1.0);
	tswiglu_forward(p1, g, u, N, h);
	for (int i = 0; i < N; i++)
		hd[i] = gd[i] / (1 + exp(-gd[i])) * ud[i];
	T_TRUE(fwd_error(h, hd, N) < FWD_TOL);
	tswiglu_backward(p1, g, u, c, N, dg, du);
	struct swiglu_ctx s = { N, gd, ud, cd };
	T_TRUE(grad_error("swiglu dgate", gd, N, dg, swiglu_J, &s) < GRAD_TOL);
	T_TRUE(grad_error("swiglu dup", ud, N, du, swiglu_J, &s) < GRAD_TOL);
	pool_free(p1);
}

/* ---- attention ---------------------------------------------------------------------- */

struct attn_ctx {
	int n, nh, nkv, dk, dv;
	double scale;
	const int32_t *lo;
	double *q, *k, *v;
	const double *c;
	double softcap;      /* > 0: scores c tanh(s / c) */
	const float *sinks;  /* [nh] or NULL */
};

static void attn_ref(const struct attn_ctx *a, double *o)
{
	const int G = a->nh / a->nkv;
	for (int i = 0; i < a->n; i++)
		for (int h = 0; h < a->nh; h++) {
			double s[64], mx = a->sinks ? a->sinks[h] : -INFINITY, z;
			const double *q = a->q + ((size_t)i * a->nh + h) * a->dk;
			for (int j = a->lo[i]; j <= i; j++) {
				s[j] = dotc(q, a->k + ((size_t)j * a->nkv + h / G) * a->dk, (size_t)a->dk) * a->scale;
				if (a->softcap > 0)
					s[j] = a->softcap * tanh(s[j] / a->softcap);
				mx = s[j] > mx ? s[j] : mx;
			}
			z = a->sinks ? exp(a->sinks[h] - mx) : 0; /* the sink's term */
			for (int j = a->lo[i]; j <= i; j++) {
				s[j] = exp(s[j] - mx);
				z += s[j];
			}
			double *out = o + ((size_t)i * a->nh + h) * a->dv;
			for (int d = 0; d < a->dv; d++) {
				out[d] = 0;
				for (int j = a->lo[i]; j <= i; j++)
					out[d] += s[j] / z * a->v[((size_t)j * a->nkv + h / G) * a->dv + d];
			}
		}
}

static double attn_J(void *p)
{
	const struct attn_ctx *a = p;
	static double o[64 * 4 * 12];
	attn_ref(a, o);
	return dotc(a->c, o, (size_t)a->n * a->nh * a->dv);
}

void test_train_op_attention(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1, *p3;
	/* two packed sequences (rows 0-39 and 40-63), 4 query heads over 2 key heads */
	enum { N = 64, NH = 4, NKV = 2, DK = 16, DV = 12, S2 = 40 };
	int32_t lo[N];
	static float q[N * NH * DK], k[N * NKV * DK], v[N * NKV * DV], c[N * NH * DV], o[N * NH * DV], o2[N * NH * DV];
	static float dq[N * NH * DK], dk[N * NKV * DK], dv[N * NKV * DV], dq3[N * NH * DK], dk3[N * NKV * DK], dv3[N * NKV * DV];
	static double qd[N * NH * DK], kd[N * NKV * DK], vd[N * NKV * DV], cd[N * NH * DV], od[N * NH * DV];
	for (int i = 0; i < N; i++)
		lo[i] = i < S2 ? 0 : S2;
	float *pbuf = malloc(2 * NH * N * N * sizeof *pbuf);
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p3, 3, &err), err);
	fill(q, qd, N * NH * DK, 1.0);
	fill(k, kd, N * NKV * DK, 1.0);
	fill(v, vd, N * NKV * DV, 1.0);
	fill(c, cd, N * NH * DV, 1.0);
	const float scale = 1.0f / sqrtf(DK);
	struct tattn a = { .n = N, .n_head = NH, .n_kv = NKV, .dk = DK, .dv = DV, .scale = scale, .lo = lo, .p = pbuf,
			   .ds = pbuf + NH * N * N };
	tattn_forward(p3, &a, q, k, v, o);
	struct attn_ctx r = { N, NH, NKV, DK, DV, scale, lo, qd, kd, vd, cd, 0, NULL };
	attn_ref(&r, od);
	T_TRUE(fwd_error(o, od, N * NH * DV) < FWD_TOL);
	tattn_backward(p1, &a, q, k, v, c, dq, dk, dv);
	tattn_backward(p3, &a, q, k, v, c, dq3, dk3, dv3);
	T_TRUE(memcmp(dq, dq3, sizeof dq) == 0 && memcmp(dk, dk3, sizeof dk) == 0 && memcmp(dv, dv3, sizeof dv) == 0);
	T_TRUE(grad_error("attention dq", qd, N * NH * DK, dq, attn_J, &r) < GRAD_TOL);
	T_TRUE(grad_error("attention dk", kd, N * NKV * DK, dk, attn_J, &r) < GRAD_TOL);
	T_TRUE(grad_error("attention dv", vd, N * NKV * DV, dv, attn_J, &r) < GRAD_TOL);
	/* the second sequence does not see the first: its outputs ignore k of row 0 */
	k[3] += 1.0f;
	tattn_forward(p1, &a, q, k, v, o2);
	T_TRUE(memcmp(o + S2 * NH * DV, o2 + S2 * NH * DV, (N - S2) * NH * DV * sizeof *o) == 0);
	T_TRUE(memcmp(o + NH * DV, o2 + NH * DV, (S2 - 1) * NH * DV * sizeof *o) != 0); /* row 0 sees itself alone: p = 1 */
	free(pbuf);
	pool_free(p1);
	pool_free(p3);
}

/* ---- cross-entropy ------------------------------------------------------------------- */

struct loss_ctx {
	int n, V;
	const int32_t *lab;
	double *l;
};

static double loss_J(void *p)
{
	const struct loss_ctx *c = p;
	double J = 0;
	for (int i = 0; i < c->n; i++) {
		const double *l = c->l + (size_t)i * c->V;
		double z = 0;
		for (int j = 0; j < c->V; j++)
			z += exp(l[j]);
		J -= l[c->lab[i]] - log(z);
	}
	return J;
}

void test_train_op_loss(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 3, V = 50 };
	const int32_t lab[N] = { 4, 49, 0 };
	float l[N * V], dl[N * V];
	double ld[N * V];
	T_OK(pool_new(&p1, 2, &err), err);
	fill(l, ld, N * V, 8.0);
	const double loss = tloss_forward_backward(p1, l, lab, N, V, 1.0f, dl);
	struct loss_ctx c = { N, V, lab, ld };
	T_NEAR(loss, loss_J(&c), 1e-9 * fabs(loss_J(&c)));
	T_TRUE(grad_error("cross-entropy dlogits", ld, N * V, dl, loss_J, &c) < GRAD_TOL);
	/* the weight scales the gradient; in place works */
	float l2[N * V];
	memcpy(l2, l, sizeof l2);
	tloss_forward_backward(p1, l2, lab, N, V, 0.25f, l2);
	T_NEAR(l2[5], dl[5] * 0.25f, 1e-7);
	pool_free(p1);
}

/* Attention with gemma2's soft-capped scores, gpt-oss's sinks and a sliding
 * window (rows see at most the last W rows of their sequence), each alone and
 * together: forward against the double reference, gradients against its
 * differences, one thread against three. */
void test_train_op_attention_variants(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1, *p3;
	enum { N = 48, NH = 4, NKV = 2, DK = 16, DV = 12, S2 = 30, W = 7 };
	int32_t lo[N];
	static float q[N * NH * DK], k[N * NKV * DK], v[N * NKV * DV], c[N * NH * DV], o[N * NH * DV];
	static float dq[N * NH * DK], dk[N * NKV * DK], dv[N * NKV * DV], dq3[N * NH * DK], dk3[N * NKV * DK], dv3[N * NKV * DV];
	static double qd[N * NH * DK], kd[N * NKV * DK], vd[N * NKV * DV], cd[N * NH * DV], od[N * NH * DV];
	const float sinks[NH] = { 0.5f, -1.0f, 2.0f, 0.0f };
	float *pbuf = malloc(2 * NH * N * N * sizeof *pbuf);
	T_OK(pool_new(&p1, 1, &err), err);
	T_OK(pool_new(&p3, 3, &err), err);
	/* scores large enough that the cap bends them */
	fill(q, qd, N * NH * DK, 2.0);
	fill(k, kd, N * NKV * DK, 2.0);
	fill(v, vd, N * NKV * DV, 1.0);
	fill(c, cd, N * NH * DV, 1.0);
	const float scale = 1.0f / sqrtf(DK);
	const struct { const char *what; float cap; bool sinks, window; } cases[] = {
		{ "capped", 2.0f, false, false },
		{ "sinks", 0, true, false },
		{ "window", 0, false, true },
		{ "capped+sinks+window", 3.0f, true, true },
	};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		for (int i = 0; i < N; i++) {
			lo[i] = i < S2 ? 0 : S2;
			if (cases[ci].window && i - W + 1 > lo[i])
				lo[i] = i - W + 1;
		}
		struct tattn a = { .n = N, .n_head = NH, .n_kv = NKV, .dk = DK, .dv = DV, .scale = scale, .lo = lo,
				   .softcap = cases[ci].cap, .sinks = cases[ci].sinks ? sinks : NULL, .p = pbuf,
				   .ds = pbuf + NH * N * N };
		struct attn_ctx r = { N, NH, NKV, DK, DV, scale, lo, qd, kd, vd, cd, cases[ci].cap, a.sinks };
		tattn_forward(p3, &a, q, k, v, o);
		attn_ref(&r, od);
		T_TRUE(fwd_error(o, od, N * NH * DV) < FWD_TOL);
		tattn_backward(p1, &a, q, k, v, c, dq, dk, dv);
		tattn_backward(p3, &a, q, k, v, c, dq3, dk3, dv3);
		T_TRUE(memcmp(dq, dq3, sizeof dq) == 0 && memcmp(dk, dk3, sizeof dk) == 0 && memcmp(dv, dv3, sizeof dv) == 0);
		char what[64];
		snprintf(what, sizeof what, "%s dq", cases[ci].what);
		T_TRUE(grad_error(what, qd, N * NH * DK, dq, attn_J, &r) < GRAD_TOL);
		snprintf(what, sizeof what, "%s dk", cases[ci].what);
		T_TRUE(grad_error(what, kd, N * NKV * DK, dk, attn_J, &r) < GRAD_TOL);
		snprintf(what, sizeof what, "%s dv", cases[ci].what);
		T_TRUE(grad_error(what, vd, N * NKV * DV, dv, attn_J, &r) < GRAD_TOL);
	}
	/* the cap changes the output (the check above is not of a plain attention) */
	struct tattn a0 = { .n = N, .n_head = NH, .n_kv = NKV, .dk = DK, .dv = DV, .scale = scale, .lo = lo, .p = pbuf,
			    .ds = pbuf + NH * N * N };
	static float o0[N * NH * DV];
	tattn_forward(p1, &a0, q, k, v, o0);
	T_TRUE(fwd_error(o0, od, N * NH * DV) > 1e-3);
	free(pbuf);
	pool_free(p1);
	pool_free(p3);
}

/* ---- GeGLU and soft-capping ----------------------------------------------------------- */

static double gelu_ref(double g)
{
	return 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
}

static double geglu_J(void *p)
{
	const struct swiglu_ctx *s = p;
	double J = 0;
	for (int i = 0; i < s->n; i++)
		J += s->c[i] * gelu_ref(s->g[i]) * s->u[i];
	return J;
}

void test_train_op_geglu(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 67 };
	float g[N], u[N], c[N], h[N], dg[N], du[N];
	double gd[N], ud[N], cd[N], hd[N];
	T_OK(pool_new(&p1, 3, &err), err);
	fill(g, gd, N, 5.0);
	fill(u, ud, N, 2.0);
	fill(c, cd, N, 1.0);
	tgeglu_forward(p1, g, u, N, h);
	for (int i = 0; i < N; i++)
		hd[i] = gelu_ref(gd[i]) * ud[i];
	T_TRUE(fwd_error(h, hd, N) < FWD_TOL);
	tgeglu_backward(p1, g, u, c, N, dg, du);
	struct swiglu_ctx s = { N, gd, ud, cd };
	T_TRUE(grad_error("geglu dgate", gd, N, dg, geglu_J, &s) < GRAD_TOL);
	T_TRUE(grad_error("geglu dup", ud, N, du, geglu_J, &s) < GRAD_TOL);
	pool_free(p1);
}

struct softcap_ctx {
	int n;
	double cap, *x;
	const double *c;
};

static double softcap_J(void *p)
{
	const struct softcap_ctx *s = p;
	double J = 0;
	for (int i = 0; i < s->n; i++)
		J += s->c[i] * s->cap * tanh(s->x[i] / s->cap);
	return J;
}

void test_train_op_softcap(void)
{
	struct hearth_err err = { 0 };
	struct pool *p1;
	enum { N = 101 };
	float x[N], c[N];
	double xd[N], cd[N], yd[N];
	T_OK(pool_new(&p1, 3, &err), err);
	fill(x, xd, N, 60.0);
	fill(c, cd, N, 1.0);
	const float cap = 30.0f;
	tsoftcap_forward(p1, x, N, cap);
	for (int i = 0; i < N; i++)
		yd[i] = cap * tanh(xd[i] / cap);
	T_TRUE(fwd_error(x, yd, N) < FWD_TOL);
	tsoftcap_backward(p1, x, c, N, cap);
	struct softcap_ctx s = { N, cap, xd, cd };
	T_TRUE(grad_error("softcap dx", xd, N, c, softcap_J, &s) < GRAD_TOL);
	pool_free(p1);
}
