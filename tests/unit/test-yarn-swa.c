/* test-yarn-swa.c - YaRN with a local rope base of its own (gpt-oss's
 * rope.freq_base_swa), as llama.cpp's rope computes it per layer: the ramp
 * between extrapolated and interpolated angles follows the layer's base, the
 * frequency scale and magnitude are the global ones. The model is
 * tiny-gpt-oss with rope.freq_base_swa 10000 added (global base 150000);
 * the oracle recomputes layer 0 (local) from its input: q, k, v, the rotation
 * as llama.cpp's rope_yarn defines it, attention with sinks, and compares
 * with what enters attn_output. With the global base's ramp on the local
 * angles (what a shared ramp would give), the oracle differs by far more:
 * the test tells the two apart. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gguf/gguf.h"
#include "../../src/model/model.h"
#include "../harness.h"

enum { N = 12, E = 256, NH = 6, NKV = 2, D = 64, QD = NH * D, KD = NKV * D };
#define BASE_SWA 10000.0f

/* A copy of src with "gpt-oss.rope.freq_base_swa" = base. */
static int write_with_base_swa(const char *src, const char *dst, float base, struct hearth_err *err)
{
	struct hearth_gguf *g = NULL;
	struct gguf_writer *w = NULL;
	int rc;
	if ((rc = hearth_gguf_open(&g, src, err)))
		return rc;
	if ((rc = gguf_writer_new(&w, err)))
		goto out;
	for (int64_t i = 0; !rc && i < g->n_kv; i++)
		rc = gguf_writer_set_kv(w, &g->kv[i]);
	rc = rc ? rc : gguf_writer_set_f32(w, "gpt-oss.rope.freq_base_swa", base);
	for (int64_t i = 0; !rc && i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
	}
	if (rc) {
		err->code = rc;
		snprintf(err->msg, sizeof err->msg, "%s: building the copy failed", dst);
	} else {
		rc = gguf_writer_write(w, dst, err);
	}
out:
	gguf_writer_free(w);
	hearth_gguf_close(g);
	return rc;
}

/* What the tap saw of layer 0: the attention's input and its output (what enters attn_output). */
struct seen {
	float in[N][E], out[N][QD];
	int n_in, n_out;
};
static void tap(const char *weight, const float *x, int64_t n_in, int32_t n_tokens, void *user_data)
{
	struct seen *s = user_data;
	if (!strcmp(weight, "blk.0.attn_q.weight") && n_in == E && s->n_in + n_tokens <= N) {
		memcpy(s->in[s->n_in], x, (size_t)n_tokens * E * sizeof(float));
		s->n_in += n_tokens;
	} else if (!strcmp(weight, "blk.0.attn_output.weight") && n_in == QD && s->n_out + n_tokens <= N) {
		memcpy(s->out[s->n_out], x, (size_t)n_tokens * QD * sizeof(float));
		s->n_out += n_tokens;
	}
}

static const float *tensor(const struct hearth_gguf *g, const char *name)
{
	const int64_t i = gguf_find_tensor(g, name);
	return i >= 0 && g->tensors[i].type == HEARTH_TYPE_F32 ? g->tensors[i].data : NULL;
}

/* y[n_out] = W x + b, W [n_out][E] (GGUF ne0 = E). */
static void affine(const float *w, const float *b, const float *x, int n_out, double *y)
{
	for (int r = 0; r < n_out; r++) {
		double a = b[r];
		for (int j = 0; j < E; j++)
			a += (double)w[(size_t)r * E + j] * x[j];
		y[r] = a;
	}
}

/* llama.cpp's YaRN rope (ggml's rope_yarn, neox pairs i and i + D/2) of
 * n_heads heads at pos: angles of base, the ramp of ramp_base (llama.cpp:
 * the same). */
static void rope(double *x, int n_heads, int pos, double base, double ramp_base, double freq_scale, int n_ctx_orig)
{
	const double pi = 3.14159265358979323846;
	const double lo = floor(D * log(n_ctx_orig / (32 * 2 * pi)) / (2 * log(ramp_base)));
	const double hi = ceil(D * log(n_ctx_orig / (1 * 2 * pi)) / (2 * log(ramp_base)));
	const double c0 = lo > 0 ? lo : 0, c1 = hi < D - 1 ? hi : D - 1;
	const double mscale = 1 + 0.1 * log(1 / freq_scale);
	for (int h = 0; h < n_heads; h++)
		for (int i = 0; i < D / 2; i++) {
			const double extrap = pos * pow(base, -2.0 * i / D), interp = freq_scale * extrap;
			const double y = (i - c0) / fmax(0.001, c1 - c0), mix = 1 - fmin(1, fmax(0, y));
			const double t = interp * (1 - mix) + extrap * mix;
			double *a = x + h * D + i, *b = x + h * D + i + D / 2;
			const double x0 = *a, x1 = *b;
			*a = (x0 * cos(t) - x1 * sin(t)) * mscale;
			*b = (x0 * sin(t) + x1 * cos(t)) * mscale;
		}
}

/* Layer 0's attention output for every token (window 16 > N: all earlier
 * positions), with the rope of base and the ramp of ramp_base; out [N][QD]. */
static void oracle(const struct hearth_gguf *g, const struct seen *s, double base, double ramp_base, double freq_scale,
		   int n_ctx_orig, double (*out)[QD])
{
	static double q[N][QD], k[N][KD], v[N][KD];
	const float *sinks = tensor(g, "blk.0.attn_sinks.weight");
	for (int t = 0; t < N; t++) {
		affine(tensor(g, "blk.0.attn_q.weight"), tensor(g, "blk.0.attn_q.bias"), s->in[t], QD, q[t]);
		affine(tensor(g, "blk.0.attn_k.weight"), tensor(g, "blk.0.attn_k.bias"), s->in[t], KD, k[t]);
		affine(tensor(g, "blk.0.attn_v.weight"), tensor(g, "blk.0.attn_v.bias"), s->in[t], KD, v[t]);
		rope(q[t], NH, t, base, ramp_base, freq_scale, n_ctx_orig);
		rope(k[t], NKV, t, base, ramp_base, freq_scale, n_ctx_orig);
	}
	for (int t = 0; t < N; t++)
		for (int h = 0; h < NH; h++) {
			const int kh = h / (NH / NKV);
			double sc[N], mx = sinks[h], sum = 0;
			for (int j = 0; j <= t; j++) {
				double d = 0;
				for (int i = 0; i < D; i++)
					d += q[t][h * D + i] * k[j][kh * D + i];
				sc[j] = d / sqrt((double)D);
				mx = fmax(mx, sc[j]);
			}
			for (int j = 0; j <= t; j++)
				sum += exp(sc[j] - mx);
			sum += exp(sinks[h] - mx);
			for (int i = 0; i < D; i++) {
				double o = 0;
				for (int j = 0; j <= t; j++)
					o += exp(sc[j] - mx) / sum * v[j][kh * D + i];
				out[t][h * D + i] = o;
			}
		}
}

/* The largest difference between what hearth computed and an oracle's, relative to the largest value. */
static double worst(const struct seen *s, double (*want)[QD])
{
	double d = 0, m = 0;
	for (int t = 0; t < N; t++)
		for (int i = 0; i < QD; i++) {
			d = fmax(d, fabs(s->out[t][i] - want[t][i]));
			m = fmax(m, fabs(want[t][i]));
		}
	return d / m;
}

void test_yarn_swa(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	struct hearth_gguf *g = NULL;
	static struct seen s;
	static double right[N][QD], wrong[N][QD];
	int32_t ids[N];
	memset(&s, 0, sizeof s);
	for (int i = 0; i < N; i++)
		ids[i] = (i * 37 + 5) % 2000;

	T_OK(write_with_base_swa(fixture("models/tiny-gpt-oss.f32.gguf"), tmp_path("yarn-swa.gguf"), BASE_SWA, &err), err);
	T_OK(hearth_model_load(&m, tmp_path("yarn-swa.gguf"), &mp, &err), err); /* was refused */
	T_OK(hearth_gguf_open(&g, tmp_path("yarn-swa.gguf"), &err), err);
	if (!m || !g)
		goto out;
	const struct hparams *h = &m->hp;
	T_TRUE(h->rope_ext_factor != 0 && h->rope_base == 150000.0f);
	T_EQ_I64(m->layers[0].n_swa, 16);
	T_TRUE(m->layers[0].rope_base == BASE_SWA && m->layers[1].rope_base == 150000.0f);
	T_TRUE(m->layers[0].rope_freq_scale == h->rope_freq_scale && m->layers[1].rope_freq_scale == h->rope_freq_scale);
	/* the local layer's ramp is its own; the global one keeps the model's */
	T_TRUE(m->layers[0].yarn_corr[0] == 10.0f && m->layers[0].yarn_corr[1] == 23.0f);
	T_TRUE(m->layers[1].yarn_corr[0] == h->yarn_corr[0] && m->layers[1].yarn_corr[1] == h->yarn_corr[1]);
	T_TRUE(h->yarn_corr[0] == 8.0f && h->yarn_corr[1] == 18.0f);
	T_TRUE(m->layers[0].yarn_mscale == h->yarn_mscale);

	cp.n_ctx = 64;
	cp.n_threads = 1;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (!c)
		goto out;
	hearth_context_set_tap(c, tap, &s);
	T_OK(hearth_decode(c, ids, N, false, &err), err);
	T_EQ_I64(s.n_in, N);
	T_EQ_I64(s.n_out, N);
	if (s.n_in != N || s.n_out != N)
		goto out;
	oracle(g, &s, BASE_SWA, BASE_SWA, h->rope_freq_scale, 4096, right);
	oracle(g, &s, BASE_SWA, 150000.0, h->rope_freq_scale, 4096, wrong); /* the global base's ramp */
	const double w_right = worst(&s, right), w_wrong = worst(&s, wrong);
	if (!(w_right < 1e-5) || !(w_wrong > 1e-3))
		T_FAIL("layer 0 against the oracle: %.3g with the local base, %.3g with the global one", w_right, w_wrong);
out:
	hearth_context_free(c);
	hearth_gguf_close(g);
	hearth_model_free(m);
}
