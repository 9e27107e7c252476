/* ref-forward.c - the tests' double-precision forward pass (see ref-forward.h).
 *
 * One layer, as llama.cpp builds it for these architectures:
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq + bq, h Wk + bk, h Wv + bv     (or one fused attn_qkv: rows q, k, v)
 *   q, k = rmsnorm per head * q_norm, k_norm       (qwen3, qwen3moe, gemma3)
 *   q, k = rope(q, k, position)                    (the first n_rot dims of each head)
 *   a = softmax(q k^T / sqrt(head_dim) [, sink], causal [, sliding window]) v   per head, GQA
 *   o = a Wo + bo  [, rmsnorm(o) * post_attention_norm]
 *   x = x + o
 *   h = rmsnorm(x) * ffn_norm                      (gpt-oss: * post_attention_norm)
 *   f = (act(h Wgate) * h Wup) Wdown               (fused ffn_up: gate rows, then up rows)
 *     or the sum over the top-k experts of weight_e * expert_e(h)
 *   [f = rmsnorm(f) * post_ffw_norm]
 *   x = x + f
 *
 * act is SiLU, GELU's tanh form for gemma3, gpt-oss's SwiGLU-OAI. Experts:
 * softmax over the router's logits, the top k renormalized to sum 1; gpt-oss:
 * the top k logits (router bias added), softmax over those, experts with
 * biases. Attention sinks (gpt-oss): one logit per head that joins the
 * softmax's sum and takes no value. Rope rotates adjacent pairs (llama, glm4,
 * chatglm) or halves (the others); pair i turns by position *
 * base^(-2i / n_rot) / factor_i (factors: rope_freqs, or phi3's short
 * LongRoPE factors), cos and sin times rope.scaling.attn_factor when given;
 * YaRN as rf_rope_scaling says. gemma3 scales the embeddings by sqrt(n_embd).
 * Sliding-window layers (gemma3, gpt-oss): il % pattern < pattern - 1, with
 * the pattern from the file or the architecture's default (6, 2), and
 * rope.freq_base_swa.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/gguf/gguf.h"
#include "../src/tensor/qtype.h"
#include "../src/tensor/quant-ref.h"
#include "ref-forward.h"

/* What each architecture does differently (only the ones listed here run). */
struct rf_arch {
	const char *name;
	bool neox;          /* rope on halves, not adjacent pairs */
	bool gemma;         /* embeddings x sqrt(n_embd), GELU */
	bool oai;           /* gpt-oss: post_attention_norm is the FFN's norm, routing by the
			     * top logits then a softmax over those, SwiGLU-OAI experts */
	int swa_pattern;    /* sliding-window layers when the file gives no pattern (0: none) */
};

static const struct rf_arch rf_archs[] = {
	{ "llama", false, false, false, 0 }, { "qwen2", true, false, false, 0 },    { "qwen3", true, false, false, 0 },
	{ "qwen3moe", true, false, false, 0 }, { "gemma3", true, true, false, 6 }, { "phi3", true, false, false, 0 },
	{ "glm4", false, false, false, 0 },  { "chatglm", false, false, false, 0 }, { "gpt-oss", true, false, true, 2 },
};

struct rf {
	struct hearth_gguf *g;
	const struct rf_arch *a;
	struct hearth_err *err;
	int rc;
	int64_t E, L, H, HKV, DK, DV, NROT, FF, NEXP, NUSED, FFEXP;
	int64_t swa, swa_pattern;
	double eps, base, base_swa, attn_factor;
	float *rope_factors; /* NROT / 2, or NULL */
	/* YaRN (rope.scaling.type "yarn"; yarn_factor 0: none): the angle of pair i
	 * is a mix of the unscaled one and it / factor, ramping from unscaled below
	 * pair yarn_lo to scaled above yarn_hi; cos and sin x yarn_mscale */
	double yarn_factor, yarn_lo, yarn_hi, yarn_mscale;
};

static int rf_fail(struct rf *r, int code, const char *fmt, const char *what)
{
	if (!r->rc) {
		r->rc = code;
		r->err->code = code;
		snprintf(r->err->msg, sizeof r->err->msg, fmt, what);
	}
	return code;
}

/* "<arch>.suffix" as an integer (def when absent). */
static int64_t rf_i64(struct rf *r, const char *suffix, int64_t def)
{
	char key[128];
	int64_t v = def;
	snprintf(key, sizeof key, "%s.%s", r->a->name, suffix);
	if (gguf_get_i64(r->g, key, &v, r->err) == HEARTH_EBADGGUF)
		rf_fail(r, HEARTH_EBADGGUF, "ref_forward: key %s has a bad type", key);
	return v;
}

static double rf_f64(struct rf *r, const char *suffix, double def)
{
	char key[128];
	float v = (float)def;
	snprintf(key, sizeof key, "%s.%s", r->a->name, suffix);
	if (gguf_get_f32(r->g, key, &v, r->err) == HEARTH_EBADGGUF)
		rf_fail(r, HEARTH_EBADGGUF, "ref_forward: key %s has a bad type", key);
	return v;
}

static bool rf_has(struct rf *r, const char *suffix)
{
	char key[128];
	snprintf(key, sizeof key, "%s.%s", r->a->name, suffix);
	return gguf_find_key(r->g, key) >= 0;
}

/* Rows r0 .. r0 + nrows - 1 of tensor name as floats (ne0 each); NULL when
 * the tensor is absent (an error unless optional) or its rows are not ne0 wide. */
static float *rf_rows(struct rf *r, const char *name, int64_t ne0, int64_t r0, int64_t nrows, bool optional)
{
	const int64_t it = gguf_find_tensor(r->g, name);
	if (it < 0) {
		if (!optional)
			rf_fail(r, HEARTH_EBADGGUF, "ref_forward: no tensor %s", name);
		return NULL;
	}
	const struct gguf_tensor *t = &r->g->tensors[it];
	const int64_t all = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	if (t->ne[0] != ne0 || r0 < 0 || nrows < 0 || (r0 + nrows) * ne0 > all) {
		rf_fail(r, HEARTH_EBADGGUF, "ref_forward: tensor %s has another shape", name);
		return NULL;
	}
	float *y = malloc((size_t)(nrows * ne0 + 1) * sizeof *y);
	const size_t row_size = qtype_row_size(t->type, ne0);
	for (int64_t i = 0; y && i < nrows; i++)
		if (dequantize_row_ref(t->type, (const char *)t->data + (size_t)(r0 + i) * row_size, y + i * ne0, ne0)) {
			rf_fail(r, HEARTH_EUNSUPPORTED, "ref_forward: cannot dequantize %s", name);
			free(y);
			return NULL;
		}
	if (!y)
		rf_fail(r, HEARTH_ENOMEM, "ref_forward: out of memory for %s", name);
	return y;
}

/* The whole tensor fmt (%d: il) of ne0 x rows. */
static float *rf_tensor(struct rf *r, const char *fmt, int il, int64_t ne0, int64_t rows, bool optional)
{
	char name[128];
	snprintf(name, sizeof name, fmt, il);
	if (r->rc)
		return NULL;
	const int64_t it = gguf_find_tensor(r->g, name);
	if (it >= 0 && r->g->tensors[it].ne[0] * r->g->tensors[it].ne[1] * r->g->tensors[it].ne[2] != ne0 * rows) {
		rf_fail(r, HEARTH_EBADGGUF, "ref_forward: tensor %s has another shape", name);
		return NULL;
	}
	return rf_rows(r, name, ne0, 0, rows, optional);
}

/* ---- the operations, in double ---------------------------------------------- */

/* y[o] = sum_i w[o][i] x[i] (+ b[o]); w is n_out rows of n_in. */
static void mat_vec(const float *w, const float *b, int64_t n_in, int64_t n_out, const double *x, double *y)
{
	for (int64_t o = 0; o < n_out; o++) {
		double s = b ? b[o] : 0;
		for (int64_t i = 0; i < n_in; i++)
			s += (double)w[o * n_in + i] * x[i];
		y[o] = s;
	}
}

/* y = x / sqrt(mean(x^2) + eps) * w (in place allowed). */
static void rms_norm(const double *x, const float *w, int64_t n, double eps, double *y)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	const double k = 1.0 / sqrt(ss / (double)n + eps);
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] * k * w[i];
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

static double gelu_tanh(double x)
{
	return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* Rotates the first n_rot dims of one head at position pos. */
static void rope(const struct rf *r, double *x, int64_t pos, double base)
{
	const int64_t half = r->NROT / 2;
	for (int64_t i = 0; i < half; i++) {
		double theta = (double)pos * pow(base, -2.0 * (double)i / (double)r->NROT), m = r->attn_factor;
		if (r->rope_factors)
			theta /= r->rope_factors[i];
		if (r->yarn_factor > 0) {
			const double ramp = 1 - fmin(1, fmax(0, ((double)i - r->yarn_lo) / fmax(0.001, r->yarn_hi - r->yarn_lo)));
			theta = theta / r->yarn_factor * (1 - ramp) + theta * ramp;
			m *= r->yarn_mscale;
		}
		const double c = cos(theta) * m, s = sin(theta) * m;
		const int64_t i0 = r->a->neox ? i : 2 * i, i1 = r->a->neox ? i + half : 2 * i + 1;
		const double x0 = x[i0], x1 = x[i1];
		x[i0] = x0 * c - x1 * s;
		x[i1] = x0 * s + x1 * c;
	}
}

/* ---- one layer ------------------------------------------------------------------ */

/* q (T x H x DK), k (T x HKV x DK), v (T x HKV x DV) of layer il from the normed h. */
static void attn_qkv(struct rf *r, int il, const double *h, int64_t T, double *q, double *k, double *v)
{
	const int64_t nq = r->H * r->DK, nk = r->HKV * r->DK, nv = r->HKV * r->DV;
	float *wqkv = rf_tensor(r, "blk.%d.attn_qkv.weight", il, r->E, nq + nk + nv, true);
	if (wqkv) {
		float *b = rf_tensor(r, "blk.%d.attn_qkv.bias", il, nq + nk + nv, 1, true);
		double *tmp = malloc((size_t)(nq + nk + nv) * sizeof *tmp);
		for (int64_t t = 0; tmp && t < T; t++) {
			mat_vec(wqkv, b, r->E, nq + nk + nv, h + t * r->E, tmp);
			memcpy(q + t * nq, tmp, (size_t)nq * sizeof *tmp);
			memcpy(k + t * nk, tmp + nq, (size_t)nk * sizeof *tmp);
			memcpy(v + t * nv, tmp + nq + nk, (size_t)nv * sizeof *tmp);
		}
		if (!tmp)
			rf_fail(r, HEARTH_ENOMEM, "ref_forward: out of memory%s", "");
		free(tmp);
		free(b);
		free(wqkv);
		return;
	}
	float *wq = rf_tensor(r, "blk.%d.attn_q.weight", il, r->E, nq, false);
	float *wk = rf_tensor(r, "blk.%d.attn_k.weight", il, r->E, nk, false);
	float *wv = rf_tensor(r, "blk.%d.attn_v.weight", il, r->E, nv, false);
	float *bq = rf_tensor(r, "blk.%d.attn_q.bias", il, nq, 1, true);
	float *bk = rf_tensor(r, "blk.%d.attn_k.bias", il, nk, 1, true);
	float *bv = rf_tensor(r, "blk.%d.attn_v.bias", il, nv, 1, true);
	for (int64_t t = 0; !r->rc && t < T; t++) {
		mat_vec(wq, bq, r->E, nq, h + t * r->E, q + t * nq);
		mat_vec(wk, bk, r->E, nk, h + t * r->E, k + t * nk);
		mat_vec(wv, bv, r->E, nv, h + t * r->E, v + t * nv);
	}
	free(wq), free(wk), free(wv), free(bq), free(bk), free(bv);
}

/* The per-head q/k norms (when the layer has them) and rope, in place. */
static void attn_pos(struct rf *r, int il, int64_t T, double *q, double *k, double base)
{
	float *qn = rf_tensor(r, "blk.%d.attn_q_norm.weight", il, r->DK, 1, true);
	float *kn = rf_tensor(r, "blk.%d.attn_k_norm.weight", il, r->DK, 1, true);
	for (int64_t t = 0; !r->rc && t < T; t++) {
		for (int64_t hh = 0; hh < r->H; hh++) {
			double *x = q + (t * r->H + hh) * r->DK;
			if (qn)
				rms_norm(x, qn, r->DK, r->eps, x);
			rope(r, x, t, base);
		}
		for (int64_t hh = 0; hh < r->HKV; hh++) {
			double *x = k + (t * r->HKV + hh) * r->DK;
			if (kn)
				rms_norm(x, kn, r->DK, r->eps, x);
			rope(r, x, t, base);
		}
	}
	free(qn);
	free(kn);
}

/* a (T x H x DV) = causal softmax attention; position t sees t - swa + 1 .. t (swa 0: 0 .. t). */
static void attn_softmax(const struct rf *r, int64_t T, const double *q, const double *k, const double *v,
			 int64_t swa, const float *sinks, double *a)
{
	const double scale = 1.0 / sqrt((double)r->DK);
	double *s = malloc((size_t)T * sizeof *s);
	for (int64_t t = 0; s && t < T; t++)
		for (int64_t hh = 0; hh < r->H; hh++) {
			const int64_t kh = hh / (r->H / r->HKV), j0 = swa > 0 && t - swa + 1 > 0 ? t - swa + 1 : 0;
			const double *qt = q + (t * r->H + hh) * r->DK;
			double mx = -INFINITY, sum = 0;
			for (int64_t j = j0; j <= t; j++) {
				const double *kj = k + (j * r->HKV + kh) * r->DK;
				double d = 0;
				for (int64_t i = 0; i < r->DK; i++)
					d += qt[i] * kj[i];
				s[j] = d * scale;
				mx = fmax(mx, s[j]);
			}
			if (sinks) /* a logit of its own per head that takes part in the softmax */
				mx = fmax(mx, sinks[hh]);
			for (int64_t j = j0; j <= t; j++)
				sum += (s[j] = exp(s[j] - mx));
			if (sinks)
				sum += exp(sinks[hh] - mx);
			double *at = a + (t * r->H + hh) * r->DV;
			for (int64_t i = 0; i < r->DV; i++) {
				double o = 0;
				for (int64_t j = j0; j <= t; j++)
					o += s[j] * v[(j * r->HKV + kh) * r->DV + i];
				at[i] = o / sum;
			}
		}
	free(s);
}

/* x += the attention block of layer il (h: scratch of T x E). */
static void layer_attn(struct rf *r, int il, int64_t T, double *x, double *h)
{
	const bool local = r->a->swa_pattern > 0 && r->swa > 0 && il % r->swa_pattern < r->swa_pattern - 1;
	const double base = local ? r->base_swa : r->base;
	float *norm = rf_tensor(r, "blk.%d.attn_norm.weight", il, r->E, 1, false);
	float *sinks = rf_tensor(r, "blk.%d.attn_sinks.weight", il, r->H, 1, true);
	float *wo = rf_tensor(r, "blk.%d.attn_output.weight", il, r->H * r->DV, r->E, false);
	float *bo = rf_tensor(r, "blk.%d.attn_output.bias", il, r->E, 1, true);
	float *post = r->a->oai ? NULL : rf_tensor(r, "blk.%d.post_attention_norm.weight", il, r->E, 1, true);
	double *q = malloc((size_t)(T * r->H * r->DK) * sizeof *q), *k = malloc((size_t)(T * r->HKV * r->DK) * sizeof *k);
	double *v = malloc((size_t)(T * r->HKV * r->DV) * sizeof *v), *a = malloc((size_t)(T * r->H * r->DV) * sizeof *a);
	double *o = malloc((size_t)r->E * sizeof *o);
	if (!q || !k || !v || !a || !o)
		rf_fail(r, HEARTH_ENOMEM, "ref_forward: out of memory%s", "");
	for (int64_t t = 0; !r->rc && t < T; t++)
		rms_norm(x + t * r->E, norm, r->E, r->eps, h + t * r->E);
	if (!r->rc)
		attn_qkv(r, il, h, T, q, k, v);
	if (!r->rc)
		attn_pos(r, il, T, q, k, base);
	if (!r->rc)
		attn_softmax(r, T, q, k, v, local ? r->swa : 0, sinks, a);
	for (int64_t t = 0; !r->rc && t < T; t++) {
		mat_vec(wo, bo, r->H * r->DV, r->E, a + t * r->H * r->DV, o);
		if (post)
			rms_norm(o, post, r->E, r->eps, o);
		for (int64_t i = 0; i < r->E; i++)
			x[t * r->E + i] += o[i];
	}
	free(q), free(k), free(v), free(a), free(o);
	free(norm), free(sinks), free(wo), free(bo), free(post);
}

/* gpt-oss's gated unit: gate capped at 7, up clamped to +-7. */
static double swiglu_oai(double g, double u)
{
	g = fmin(g, 7.0);
	u = fmin(fmax(u, -7.0), 7.0);
	return g / (1.0 + exp(-1.702 * g)) * (u + 1.0);
}

/* The weights of one FFN (or expert): gate and up n_ff rows of E, down E rows
 * of n_ff, and their optional biases. */
struct ffn_w {
	const float *gate, *up, *down, *bgate, *bup, *bdown;
};

/* out (E) = act(h Wgate + b) * (h Wup + b) then Wdown + b, for one token. */
static void ffn_one(const struct rf *r, const struct ffn_w *w, int64_t n_ff, const double *h, double *g, double *u,
		    double *out)
{
	mat_vec(w->gate, w->bgate, r->E, n_ff, h, g);
	mat_vec(w->up, w->bup, r->E, n_ff, h, u);
	for (int64_t i = 0; i < n_ff; i++)
		g[i] = r->a->oai ? swiglu_oai(g[i], u[i]) : (r->a->gemma ? gelu_tanh(g[i]) : silu(g[i])) * u[i];
	mat_vec(w->down, w->bdown, n_ff, r->E, g, out);
}

/* Each token's f: the dense FFN of layer il. */
static void ffn_dense(struct rf *r, int il, int64_t T, const double *h, double *f)
{
	float *gate = rf_tensor(r, "blk.%d.ffn_gate.weight", il, r->E, r->FF, true), *up = NULL;
	const bool fused = !gate;
	if (fused) { /* ffn_up holds the gate rows, then the up rows */
		gate = rf_tensor(r, "blk.%d.ffn_up.weight", il, r->E, 2 * r->FF, false);
		up = gate ? gate + r->E * r->FF : NULL;
	} else {
		up = rf_tensor(r, "blk.%d.ffn_up.weight", il, r->E, r->FF, false);
	}
	float *down = rf_tensor(r, "blk.%d.ffn_down.weight", il, r->FF, r->E, false);
	double *g = malloc((size_t)r->FF * sizeof *g), *u = malloc((size_t)r->FF * sizeof *u);
	if (!g || !u)
		rf_fail(r, HEARTH_ENOMEM, "ref_forward: out of memory%s", "");
	const struct ffn_w w = { gate, up, down, NULL, NULL, NULL };
	for (int64_t t = 0; !r->rc && t < T; t++)
		ffn_one(r, &w, r->FF, h + t * r->E, g, u, f + t * r->E);
	if (!fused)
		free(up);
	free(gate), free(down), free(g), free(u);
}

/* The experts of token's router probabilities p (X of them, softmax over
 * all): the NUSED best, marked in used, with weights w renormalized to sum 1;
 * gpt-oss: the NUSED best logits (p holds logits), softmax over those. */
static void moe_route(const struct rf *r, double *p, bool *used, double *w)
{
	const int64_t X = r->NEXP;
	double mx = -INFINITY, sum = 0;
	memset(used, 0, (size_t)X * sizeof *used);
	for (int64_t n = 0; n < r->NUSED; n++) { /* the best not yet taken */
		int64_t best = -1;
		for (int64_t e = 0; e < X; e++)
			if (!used[e] && (best < 0 || p[e] > p[best]))
				best = e;
		used[best] = true;
	}
	for (int64_t e = 0; e < X; e++)
		if (r->a->oai ? used[e] : true)
			mx = fmax(mx, p[e]);
	for (int64_t e = 0; e < X; e++)
		w[e] = r->a->oai && !used[e] ? 0 : exp(p[e] - mx);
	for (int64_t e = 0; e < X; e++)
		sum += used[e] ? w[e] : 0; /* softmax over all, then renormalized: the same as over the chosen */
	for (int64_t e = 0; e < X; e++)
		w[e] = used[e] ? w[e] / sum : 0;
}

/* Each token's f: the mixture of experts of layer il. */
static void ffn_moe(struct rf *r, int il, int64_t T, const double *h, double *f)
{
	const int64_t X = r->NEXP, FX = r->FFEXP;
	float *router = rf_tensor(r, "blk.%d.ffn_gate_inp.weight", il, r->E, X, false);
	float *brouter = rf_tensor(r, "blk.%d.ffn_gate_inp.bias", il, X, 1, true);
	float *gate = rf_tensor(r, "blk.%d.ffn_gate_exps.weight", il, r->E, FX * X, false);
	float *up = rf_tensor(r, "blk.%d.ffn_up_exps.weight", il, r->E, FX * X, false);
	float *down = rf_tensor(r, "blk.%d.ffn_down_exps.weight", il, FX, r->E * X, false);
	float *bgate = rf_tensor(r, "blk.%d.ffn_gate_exps.bias", il, FX, X, true);
	float *bup = rf_tensor(r, "blk.%d.ffn_up_exps.bias", il, FX, X, true);
	float *bdown = rf_tensor(r, "blk.%d.ffn_down_exps.bias", il, r->E, X, true);
	double *p = malloc((size_t)X * sizeof *p), *w = malloc((size_t)X * sizeof *w), *g = malloc((size_t)FX * sizeof *g);
	double *u = malloc((size_t)FX * sizeof *u), *o = malloc((size_t)r->E * sizeof *o);
	bool *used = malloc((size_t)X * sizeof *used);
	if (!p || !w || !g || !u || !o || !used)
		rf_fail(r, HEARTH_ENOMEM, "ref_forward: out of memory%s", "");
	for (int64_t t = 0; !r->rc && t < T; t++) {
		mat_vec(router, brouter, r->E, X, h + t * r->E, p);
		moe_route(r, p, used, w);
		double *ft = f + t * r->E;
		memset(ft, 0, (size_t)r->E * sizeof *ft);
		for (int64_t e = 0; e < X; e++) {
			if (!used[e])
				continue;
			const struct ffn_w we = { gate + e * FX * r->E, up + e * FX * r->E, down + e * r->E * FX,
						  bgate ? bgate + e * FX : NULL, bup ? bup + e * FX : NULL,
						  bdown ? bdown + e * r->E : NULL };
			ffn_one(r, &we, FX, h + t * r->E, g, u, o);
			for (int64_t i = 0; i < r->E; i++)
				ft[i] += w[e] * o[i];
		}
	}
	free(router), free(brouter), free(gate), free(up), free(down), free(bgate), free(bup), free(bdown);
	free(p), free(w), free(g), free(u), free(o), free(used);
}

/* x += the FFN block of layer il (h, f: scratch of T x E). */
static void layer_ffn(struct rf *r, int il, int64_t T, double *x, double *h, double *f)
{
	float *norm = rf_tensor(r, r->a->oai ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", il, r->E, 1,
				false);
	float *post = rf_tensor(r, "blk.%d.post_ffw_norm.weight", il, r->E, 1, true);
	for (int64_t t = 0; !r->rc && t < T; t++)
		rms_norm(x + t * r->E, norm, r->E, r->eps, h + t * r->E);
	if (!r->rc && r->NEXP > 0)
		ffn_moe(r, il, T, h, f);
	else if (!r->rc)
		ffn_dense(r, il, T, h, f);
	for (int64_t t = 0; !r->rc && t < T; t++) {
		if (post)
			rms_norm(f + t * r->E, post, r->E, r->eps, f + t * r->E);
		for (int64_t i = 0; i < r->E; i++)
			x[t * r->E + i] += f[t * r->E + i];
	}
	free(norm);
	free(post);
}

/* ---- the model ------------------------------------------------------------------- */

/* Reads the hyper-parameters; refuses what this reference does not do. */
/* rope.scaling.type: none, or YaRN as ggml's rope computes it (the ramp
 * between the pairs whose wavelength fits yarn_beta_fast and yarn_beta_slow
 * times in the original context; llama.cpp's attention factor cancels the
 * magnitude correction's own, so cos and sin are scaled by 1 + 0.1 ln factor). */
static int rf_rope_scaling(struct rf *r)
{
	char key[128];
	struct gguf_str type = { 0 };
	snprintf(key, sizeof key, "%s.rope.scaling.type", r->a->name);
	if (gguf_get_str(r->g, key, &type, r->err) == HEARTH_ENOTFOUND || (type.n == 4 && !memcmp(type.p, "none", 4)))
		return rf_has(r, "rope.scaling.factor") ? rf_fail(r, HEARTH_EUNSUPPORTED, "ref_forward: %s is not done here",
								  "rope.scaling.factor without a type") : 0;
	if (type.n != 4 || memcmp(type.p, "yarn", 4) || rf_has(r, "rope.scaling.yarn_log_multiplier"))
		return rf_fail(r, HEARTH_EUNSUPPORTED, "ref_forward: %s is not done here", "this rope scaling");
	const double factor = rf_f64(r, "rope.scaling.factor", 0), n_orig = (double)rf_i64(r, "rope.scaling.original_context_length", 0);
	const double fast = rf_f64(r, "rope.scaling.yarn_beta_fast", 32), slow = rf_f64(r, "rope.scaling.yarn_beta_slow", 1);
	if (r->rc || !(factor > 1) || !(n_orig > 0))
		return rf_fail(r, HEARTH_EBADGGUF, "ref_forward: %s out of range", "YaRN parameters");
	const double n = (double)r->NROT, two_ln_base = 2 * log(r->base);
	r->yarn_factor = factor;
	r->yarn_lo = fmax(0, floor(n * log(n_orig / (fast * 2 * M_PI)) / two_ln_base));
	r->yarn_hi = fmin(n - 1, ceil(n * log(n_orig / (slow * 2 * M_PI)) / two_ln_base));
	r->yarn_mscale = 1 + 0.1 * log(factor);
	return 0;
}

static int rf_hparams(struct rf *r)
{
	static const char *const refused[] = { "final_logit_softcapping", "attn_logit_softcapping", "expert_gating_func",
					       "expert_weights_scale", "expert_shared_count" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (rf_has(r, refused[i]))
			return rf_fail(r, HEARTH_EUNSUPPORTED, "ref_forward: %s is not done here", refused[i]);
	r->E = rf_i64(r, "embedding_length", 0);
	r->L = rf_i64(r, "block_count", 0);
	r->H = rf_i64(r, "attention.head_count", 0);
	r->HKV = rf_i64(r, "attention.head_count_kv", r->H);
	r->DK = rf_i64(r, "attention.key_length", r->H > 0 ? r->E / r->H : 0);
	r->DV = rf_i64(r, "attention.value_length", r->DK);
	r->NROT = rf_i64(r, "rope.dimension_count", r->DK);
	r->FF = rf_i64(r, "feed_forward_length", 0);
	r->NEXP = rf_i64(r, "expert_count", 0);
	r->NUSED = rf_i64(r, "expert_used_count", 0);
	r->FFEXP = rf_i64(r, "expert_feed_forward_length", r->FF);
	r->eps = rf_f64(r, "attention.layer_norm_rms_epsilon", 1e-5);
	r->base = rf_f64(r, "rope.freq_base", 10000);
	r->base_swa = rf_f64(r, "rope.freq_base_swa", r->a->gemma ? 10000 : r->base);
	r->attn_factor = rf_f64(r, "rope.scaling.attn_factor", 1);
	r->swa = rf_i64(r, "attention.sliding_window", 0);
	r->swa_pattern = rf_i64(r, "attention.sliding_window_pattern", r->a->swa_pattern > 0 ? r->a->swa_pattern : 1);
	if (r->rc)
		return r->rc;
	if (r->E <= 0 || r->L <= 0 || r->H <= 0 || r->HKV <= 0 || r->H % r->HKV || r->DK <= 0 || r->DV <= 0 ||
	    r->NROT <= 0 || r->NROT > r->DK || r->NROT % 2 || r->swa_pattern <= 0 ||
	    (r->NEXP > 0 && (r->NUSED <= 0 || r->NUSED > r->NEXP || r->FFEXP <= 0)) || (r->NEXP == 0 && r->FF <= 0))
		return rf_fail(r, HEARTH_EBADGGUF, "ref_forward: %s: hyper-parameters out of range", r->a->name);
	if (rf_rope_scaling(r))
		return r->rc;
	/* LongRoPE: the short factors, as for a context within the original one */
	r->rope_factors = rf_tensor(r, "rope_freqs.weight", 0, r->NROT / 2, 1, true);
	if (!r->rope_factors)
		r->rope_factors = rf_tensor(r, "rope_factors_short.weight", 0, r->NROT / 2, 1, true);
	return r->rc;
}

/* x (T x E) = the (scaled) embeddings of ids. */
static void rf_embed(struct rf *r, const int32_t *ids, int64_t T, double *x)
{
	const int64_t it = gguf_find_tensor(r->g, "token_embd.weight");
	const int64_t n_vocab = it >= 0 ? r->g->tensors[it].ne[1] : 0;
	const double scale = r->a->gemma ? sqrt((double)r->E) : 1.0;
	for (int64_t t = 0; !r->rc && t < T; t++) {
		if (ids[t] < 0 || ids[t] >= n_vocab) {
			rf_fail(r, HEARTH_EINVAL, "ref_forward: token id out of range in %s", "token_embd.weight");
			return;
		}
		float *row = rf_rows(r, "token_embd.weight", r->E, ids[t], 1, false);
		for (int64_t i = 0; row && i < r->E; i++)
			x[t * r->E + i] = row[i] * scale;
		free(row);
	}
}

int ref_forward(const char *path, const int32_t *ids, int32_t n, double **out, int32_t *n_layer, int32_t *n_embd,
		struct hearth_err *err)
{
	struct rf r = { .err = err };
	struct gguf_str arch = { 0 };
	*out = NULL;
	int rc = hearth_gguf_open(&r.g, path, err);
	if (rc)
		return rc;
	if ((rc = gguf_get_str(r.g, "general.architecture", &arch, err)))
		goto out_close;
	for (size_t i = 0; i < sizeof rf_archs / sizeof rf_archs[0]; i++)
		if (strlen(rf_archs[i].name) == arch.n && !memcmp(rf_archs[i].name, arch.p, arch.n))
			r.a = &rf_archs[i];
	if (!r.a) {
		char name[32];
		snprintf(name, sizeof name, "%.*s", (int)(arch.n < 31 ? arch.n : 31), arch.p);
		rc = rf_fail(&r, HEARTH_EUNSUPPORTED, "ref_forward: architecture %s is not done here", name);
		goto out_close;
	}
	if ((rc = rf_hparams(&r)))
		goto out_free;
	const int64_t T = n, E = r.E;
	double *x = calloc((size_t)(T * E), sizeof *x), *h = calloc((size_t)(T * E), sizeof *h);
	double *f = calloc((size_t)(T * E), sizeof *f), *all = calloc((size_t)(r.L * T * E), sizeof *all);
	if (!x || !h || !f || !all)
		rf_fail(&r, HEARTH_ENOMEM, "ref_forward: out of memory%s", "");
	if (!r.rc)
		rf_embed(&r, ids, T, x);
	for (int il = 0; !r.rc && il < r.L; il++) {
		layer_attn(&r, il, T, x, h);
		layer_ffn(&r, il, T, x, h, f);
		memcpy(all + il * T * E, x, (size_t)(T * E) * sizeof *x);
	}
	rc = r.rc;
	if (!rc) {
		*out = all;
		all = NULL;
		*n_layer = (int32_t)r.L;
		*n_embd = (int32_t)E;
	}
	free(x), free(h), free(f), free(all);
out_free:
	free(r.rope_factors);
out_close:
	hearth_gguf_close(r.g);
	return rc ? rc : r.rc;
}
