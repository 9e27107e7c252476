/* test-imatrix-moe.c - importance matrices of mixtures of experts: the
 * expert tap sees each expert's rows, the stacked expert weights get sums and
 * counts per expert equal to a hand computation (the router's choices redone
 * here from its input and weights, the sums added in llama-imatrix's order),
 * the router is an ordinary entry, and the file holds [n_in, n_expert] sums
 * and [1, n_expert] counts, as llama-imatrix writes them, which hearth's
 * quantizer reads expert by expert. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gguf/gguf.h"
#include "../../src/model/model.h"
#include "../harness.h"

enum { N_TOK = 40, E = 256, X = 8, K = 2, F = 128 };

/* The router's input of layer 0 (the normed residual the experts' gate and up see). */
struct router_in {
	float x[N_TOK][E];
	int32_t n;
};
static void router_tap(const char *weight, const float *x, int64_t n_in, int32_t n_tokens, void *user_data)
{
	struct router_in *r = user_data;
	if (strcmp(weight, "blk.0.ffn_gate_inp.weight") || n_in != E || r->n + n_tokens > N_TOK)
		return;
	memcpy(r->x[r->n], x, (size_t)n_tokens * E * sizeof(float));
	r->n += n_tokens;
}

/* Each token's K experts, best first (ties: the lower index), from its router
 * logits computed in double: every family here ranks by the logits. */
static void route(const struct hearth_model *m, const struct router_in *r, int32_t choice[N_TOK][K])
{
	const float *w = m->layers[0].ffn_gate_inp.data; /* f32 [X][E] */
	for (int t = 0; t < N_TOK; t++) {
		double l[X];
		for (int e = 0; e < X; e++) {
			l[e] = 0;
			for (int j = 0; j < E; j++)
				l[e] += (double)r->x[t][j] * w[(size_t)e * E + j];
		}
		for (int k = 0; k < K; k++) {
			int best = -1;
			for (int e = 0; e < X; e++) {
				bool taken = false;
				for (int q = 0; q < k; q++)
					taken |= choice[t][q] == e;
				if (!taken && (best < 0 || l[e] > l[best]))
					best = e;
			}
			choice[t][k] = best;
		}
	}
}

static void check_model(const char *path)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_imatrix_params ip = hearth_imatrix_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *a = NULL, *b = NULL;
	struct hearth_imatrix *im = NULL;
	static struct router_in r;
	static int32_t choice[N_TOK][K];
	int32_t ids[N_TOK + 1];
	for (int i = 0; i <= N_TOK; i++)
		ids[i] = (i * 37 + 5) % 500;
	memset(&r, 0, sizeof r);

	T_OK(hearth_model_load(&m, fixture(path), &mp, &err), err);
	if (!m)
		return;
	T_EQ_I64(m->hp.n_expert, X);
	T_EQ_I64(m->hp.n_expert_used, K);
	T_EQ_I64(m->layers[0].ffn_gate_inp.type, HEARTH_TYPE_F32);
	cp.n_ctx = 64;
	cp.n_threads = 2;
	ip.chunk_size = 16;
	T_OK(hearth_context_new(&a, m, &cp, &err), err);
	T_OK(hearth_context_new(&b, m, &cp, &err), err);
	T_OK(hearth_imatrix_new(&im, m, &ip, &err), err);
	if (!a || !b || !im)
		goto out;
	hearth_context_set_tap(a, router_tap, &r);
	T_OK(hearth_decode(a, ids, N_TOK, false, &err), err);
	T_EQ_I64(r.n, N_TOK);
	hearth_imatrix_attach(im, b);
	T_OK(hearth_decode(b, ids, N_TOK, false, &err), err);
	T_OK(hearth_imatrix_check(im, &err), err);
	route(m, &r, choice);

	/* gate and up of layer 0, every expert: llama-imatrix's sums, bit for bit */
	const char *names[] = { "blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight" };
	int64_t total = 0;
	for (int e = 0; e < X; e++) {
		float want[E] = { 0 };
		int64_t want_count = 0;
		for (int k = 0; k < K; k++) /* by slot, then by token */
			for (int t = 0; t < N_TOK; t++)
				if (choice[t][k] == e) {
					for (int j = 0; j < E; j++)
						want[j] += r.x[t][j] * r.x[t][j];
					want_count++;
				}
		for (int w = 0; w < 2; w++) {
			const float *sums = NULL;
			int64_t n_in = 0, count = -1;
			int32_t n_expert = 0;
			T_OK(hearth_imatrix_get_expert(im, names[w], e, &sums, &n_in, &count, &n_expert), err);
			T_EQ_I64(n_in, E);
			T_EQ_I64(n_expert, X);
			T_EQ_I64(count, want_count);
			T_TRUE(sums && !memcmp(sums, want, sizeof want));
		}
		total += want_count;
	}
	T_EQ_I64(total, (int64_t)N_TOK * K);
	/* down: the activations of the same rows */
	int64_t down_total = 0;
	for (int e = 0; e < X; e++) {
		const float *sums = NULL;
		int64_t n_in = 0, count = 0, gate_count = 0;
		int32_t n_expert = 0;
		T_OK(hearth_imatrix_get_expert(im, "blk.1.ffn_down_exps.weight", e, &sums, &n_in, &count, &n_expert), err);
		T_EQ_I64(n_in, F);
		T_OK(hearth_imatrix_get_expert(im, "blk.1.ffn_gate_exps.weight", e, &sums, &n_in, &gate_count, &n_expert),
		     err);
		T_EQ_I64(count, gate_count);
		down_total += count;
	}
	T_EQ_I64(down_total, (int64_t)N_TOK * K);
	const float *s = NULL;
	int64_t n_in = 0, count = 0;
	int32_t n_expert = 0;
	T_EQ_I64(hearth_imatrix_get_expert(im, "blk.0.ffn_up_exps.weight", X, &s, &n_in, &count, &n_expert),
		 HEARTH_EINVAL);
	/* the router: an ordinary weight, its input the experts' */
	T_OK(hearth_imatrix_get(im, "blk.0.ffn_gate_inp.weight", &s, &n_in, &count), err);
	T_EQ_I64(count, N_TOK);
	float router[E] = { 0 };
	for (int t = 0; t < N_TOK; t++)
		for (int j = 0; j < E; j++)
			router[j] += r.x[t][j] * r.x[t][j];
	T_TRUE(s && !memcmp(s, router, sizeof router));

	/* one token more: experts are collected from any product, the others from 16 tokens on */
	T_OK(hearth_decode(b, ids + N_TOK, 1, false, &err), err);
	T_OK(hearth_imatrix_get(im, "blk.0.ffn_gate_inp.weight", &s, &n_in, &count), err);
	T_EQ_I64(count, N_TOK);
	total = 0;
	for (int e = 0; e < X; e++) {
		T_OK(hearth_imatrix_get_expert(im, "blk.0.ffn_up_exps.weight", e, &s, &n_in, &count, &n_expert), err);
		total += count;
	}
	T_EQ_I64(total, (int64_t)(N_TOK + 1) * K);

	/* the file: [E, X] sums and [1, X] counts; the quantizer takes it */
	T_OK(hearth_imatrix_write(im, tmp_path("moe-imatrix.gguf"), HEARTH_IMATRIX_GGUF, NULL, 0, &err), err);
	struct hearth_gguf *g = NULL;
	T_OK(hearth_gguf_open(&g, tmp_path("moe-imatrix.gguf"), &err), err);
	if (g) {
		const int64_t is = gguf_find_tensor(g, "blk.0.ffn_up_exps.weight.in_sum2");
		const int64_t ic = gguf_find_tensor(g, "blk.0.ffn_up_exps.weight.counts");
		T_TRUE(is >= 0 && ic >= 0);
		if (is >= 0 && ic >= 0) {
			const struct gguf_tensor *ts = &g->tensors[is], *tc = &g->tensors[ic];
			T_EQ_I64(ts->n_dims, 2);
			T_EQ_I64(ts->ne[0], E);
			T_EQ_I64(ts->ne[1], X);
			T_EQ_I64(tc->ne[0], 1);
			T_EQ_I64(tc->ne[1], X);
			T_OK(hearth_imatrix_get_expert(im, "blk.0.ffn_up_exps.weight", 3, &s, &n_in, &count, &n_expert), err);
			T_TRUE(!memcmp((const float *)ts->data + 3 * E, s, E * sizeof *s));
			T_TRUE(((const float *)tc->data)[3] == (float)count);
		}
		T_TRUE(gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight.in_sum2") >= 0);
		hearth_gguf_close(g);
	}
	struct hearth_quantize_params qp = hearth_quantize_default_params();
	char im_path[512];
	snprintf(im_path, sizeof im_path, "%s", tmp_path("moe-imatrix.gguf"));
	qp.ftype = HEARTH_FTYPE_Q4_K_M;
	qp.n_threads = 2;
	qp.imatrix_path = im_path;
	T_OK(hearth_quantize(fixture(path), tmp_path("moe-q4_k_m.gguf"), &qp, &err), err);
out:
	hearth_imatrix_free(im);
	hearth_context_free(a);
	hearth_context_free(b);
	hearth_model_free(m);
}

void test_imatrix_moe(void)
{
	check_model("models/tiny-qwen3moe.f32.gguf");
	check_model("models/tiny-mixtral.f32.gguf");
}
