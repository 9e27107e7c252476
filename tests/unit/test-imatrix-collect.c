/* test-imatrix.c - importance matrices: the tap sees each product's input,
 * the collected sums equal a direct computation, llama-imatrix's rules (under
 * 16 tokens skipped, q/k/v share an input), and the files read back with the
 * names, shapes, counts and keys llama-imatrix writes. */
#include <stdlib.h>
#include <string.h>

#include "../../src/gguf/gguf.h"
#include "../harness.h"

#define SPM "models/tiny-llama-spm.f32.gguf" /* llama, n_embd 256, n_ff 512, 2 layers, vocab 512 */

static int32_t tok(int i) { return (i * 37 + 5) % 512; }

/* A tap that sums ffn_down's input of layer 1 itself, over batches of 16 tokens or more. */
struct own_sums {
	double sums[512];
	int64_t count, calls;
};
static void own_tap(const char *weight, const float *x, int64_t n_in, int32_t n_tokens, void *user_data)
{
	struct own_sums *o = user_data;
	o->calls++;
	if (strcmp(weight, "blk.1.ffn_down.weight") || n_tokens < 16 || n_in != 512)
		return;
	for (int32_t t = 0; t < n_tokens; t++)
		for (int64_t j = 0; j < n_in; j++)
			o->sums[j] += (double)x[t * n_in + j] * x[t * n_in + j];
	o->count += n_tokens;
}

/* Layer 0's q/k/v input is rms_norm(token_embd[t]) * attn_norm: computed here from the file. */
static void direct_attn_in(const char *path, const int32_t *ids, int n, double *sums)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	float eps = 0;
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		return;
	T_OK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), err);
	const float *emb = g->tensors[gguf_find_tensor(g, "token_embd.weight")].data;
	const float *w = g->tensors[gguf_find_tensor(g, "blk.0.attn_norm.weight")].data;
	memset(sums, 0, 256 * sizeof *sums);
	for (int t = 0; t < n; t++) {
		const float *e = emb + (size_t)ids[t] * 256;
		double ss = 0;
		for (int j = 0; j < 256; j++)
			ss += (double)e[j] * e[j];
		const double scale = 1 / sqrt(ss / 256 + eps);
		for (int j = 0; j < 256; j++) {
			const double v = e[j] * scale * w[j];
			sums[j] += v * v;
		}
	}
	hearth_gguf_close(g);
}

void test_imatrix_collect(void)
{
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	struct hearth_imatrix *im = NULL;
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_imatrix_params ip = hearth_imatrix_default_params();
	struct hearth_err err = { 0 };
	static struct own_sums own;
	int32_t ids[40];
	double want[256];

	for (int i = 0; i < 40; i++)
		ids[i] = tok(i);
	T_OK(hearth_model_load(&m, fixture(SPM), &mp, &err), err);
	cp.n_ctx = 64;
	cp.n_batch = 16;
	cp.n_threads = 2;
	ip.chunk_size = 16;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	T_OK(hearth_imatrix_new(&im, m, &ip, &err), err);
	if (!c || !im)
		goto out;

	/* the tap alone: 40 tokens in batches of 16, 16, 8 */
	hearth_context_set_tap(c, own_tap, &own);
	T_OK(hearth_decode(c, ids, 40, false, &err), err);
	T_EQ_I64(own.count, 32);                    /* the batch of 8 left out */
	T_EQ_I64(own.calls, 3 * 2 * 7 + 1); /* 7 products a layer per batch; the output head once, for the last row */
	/* the matrix, from a fresh start: the same tokens */
	hearth_context_truncate(c, 0);
	hearth_imatrix_attach(im, c);
	T_OK(hearth_decode(c, ids, 40, false, &err), err);
	T_OK(hearth_imatrix_check(im, &err), err);

	const float *q, *k, *v, *down;
	int64_t n_in = 0, count = 0, n2 = 0, c2 = 0;
	T_OK(hearth_imatrix_get(im, "blk.0.attn_q.weight", &q, &n_in, &count), err);
	T_EQ_I64(n_in, 256);
	T_EQ_I64(count, 32);
	T_OK(hearth_imatrix_get(im, "blk.0.attn_k.weight", &k, &n2, &c2), err);
	T_OK(hearth_imatrix_get(im, "blk.0.attn_v.weight", &v, &n2, &c2), err);
	T_TRUE(memcmp(q, k, 256 * sizeof *q) == 0 && memcmp(q, v, 256 * sizeof *q) == 0);
	direct_attn_in(fixture(SPM), ids, 32, want);
	double worst = 0;
	for (int j = 0; j < 256; j++)
		worst = fmax(worst, fabs(q[j] - want[j]) / want[j]);
	T_TRUE(worst < 1e-5);
	T_OK(hearth_imatrix_get(im, "blk.1.ffn_down.weight", &down, &n2, &c2), err);
	T_EQ_I64(n2, 512);
	T_EQ_I64(c2, 32);
	worst = 0;
	for (int j = 0; j < 512; j++)
		worst = fmax(worst, fabs(down[j] - own.sums[j]) / own.sums[j]);
	T_TRUE(worst < 1e-5);
	/* the output head only when asked; token_embd never */
	T_EQ_I64(hearth_imatrix_get(im, "output.weight", &q, &n_in, &count), HEARTH_ENOTFOUND);
	T_EQ_I64(hearth_imatrix_get(im, "token_embd.weight", &q, &n_in, &count), HEARTH_ENOTFOUND);
out:
	hearth_imatrix_free(im);
	hearth_context_free(c);
	hearth_model_free(m);
}

/* A context of another model whose weights have the same names, other widths. */
void test_imatrix_other_model(void)
{
	struct hearth_model *m = NULL, *other = NULL;
	struct hearth_context *c = NULL;
	struct hearth_imatrix *im = NULL;
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	int32_t ids[16];
	for (int i = 0; i < 16; i++)
		ids[i] = tok(i);
	T_OK(hearth_model_load(&m, fixture(SPM), &mp, &err), err);
	T_OK(hearth_model_load(&other, fixture("models/stories260K.f32.gguf"), &mp, &err), err);
	cp.n_ctx = 16;
	cp.n_threads = 1;
	T_OK(hearth_imatrix_new(&im, m, NULL, &err), err);
	T_OK(hearth_context_new(&c, other, &cp, &err), err);
	if (c && im) {
		hearth_imatrix_attach(im, c);
		T_OK(hearth_decode(c, ids, 16, false, &err), err);
		T_EQ_I64(hearth_imatrix_check(im, &err), HEARTH_EINVAL);
		T_TRUE(strstr(err.msg, "blk.0.attn_q.weight") != NULL);
	}
	hearth_imatrix_free(im);
	hearth_context_free(c);
	hearth_model_free(m);
	hearth_model_free(other);
}

/* The GGUF file: llama-imatrix's keys, then <weight>.in_sum2 / .counts in name order. */
void test_imatrix_write(void)
{
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	struct hearth_imatrix *im = NULL, *empty = NULL;
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_imatrix_params ip = hearth_imatrix_default_params();
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	const char *datasets[] = { "first.txt", "wiki.train.raw" };
	char path[512], dat[512];
	int32_t ids[48];

	snprintf(path, sizeof path, "%s", tmp_path("im.gguf"));
	snprintf(dat, sizeof dat, "%s", tmp_path("im.dat"));
	for (int i = 0; i < 48; i++)
		ids[i] = tok(i);
	T_OK(hearth_model_load(&m, fixture(SPM), &mp, &err), err);
	cp.n_ctx = 48;
	cp.n_threads = 2;
	ip.chunk_size = 20;
	ip.process_output = true;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	T_OK(hearth_imatrix_new(&im, m, &ip, &err), err);
	T_OK(hearth_imatrix_new(&empty, m, &ip, &err), err);
	if (!c || !im || !empty)
		goto out;
	hearth_imatrix_attach(im, c);
	T_OK(hearth_decode(c, ids, 48, true, &err), err); /* all logits: the output head sees 48 rows */
	T_OK(hearth_imatrix_write(im, path, HEARTH_IMATRIX_GGUF, datasets, 2, &err), err);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		goto out;
	T_EQ_I64(hearth_gguf_n_kv(g), 4);
	T_STR_EQ(hearth_gguf_key(g, 0), "general.type");
	T_STR_EQ(hearth_gguf_key(g, 1), "imatrix.datasets");
	int64_t v = 0;
	T_OK(gguf_get_i64(g, "imatrix.chunk_count", &v, &err), err);
	T_EQ_I64(v, 2); /* 48 tokens in chunks of 20 */
	T_OK(gguf_get_i64(g, "imatrix.chunk_size", &v, &err), err);
	T_EQ_I64(v, 20);
	char json[256];
	hearth_gguf_kv_json(g, 1, -1, json, sizeof json);
	T_STR_EQ(json, "[\"first.txt\",\"wiki.train.raw\"]");
	T_EQ_I64(hearth_gguf_n_tensors(g), 2 * (2 * 7 + 1));
	struct hearth_tensor_info t, prev = { 0 };
	for (int64_t i = 0; i < hearth_gguf_n_tensors(g); i++) {
		hearth_gguf_tensor(g, i, &t);
		T_EQ_I64(t.type, HEARTH_TYPE_F32);
		T_EQ_I64(t.n_dims, 1);
		const char *suffix = i % 2 ? ".counts" : ".in_sum2";
		T_TRUE(strlen(t.name) > strlen(suffix) && !strcmp(t.name + strlen(t.name) - strlen(suffix), suffix));
		if (i % 2) { /* the counts follow their sums, one float: the tokens */
			T_EQ_I64(t.ne[0], 1);
			T_TRUE(!strncmp(t.name, prev.name, strlen(t.name) - strlen(suffix)));
			T_TRUE(*(const float *)g->tensors[i].data == 48.0f);
		} else {
			const bool down = strstr(t.name, "ffn_down") != NULL;
			T_EQ_I64(t.ne[0], down ? 512 : 256);
			T_TRUE(i == 0 || strcmp(prev.name, t.name) < 0);
		}
		prev = t;
	}
	hearth_gguf_tensor(g, 0, &t);
	T_STR_EQ(t.name, "blk.0.attn_k.weight.in_sum2");
	hearth_gguf_tensor(g, hearth_gguf_n_tensors(g) - 2, &t);
	T_STR_EQ(t.name, "output.weight.in_sum2");
	const float *sums;
	int64_t n_in, count;
	T_OK(hearth_imatrix_get(im, "output.weight", &sums, &n_in, &count), err);
	T_EQ_I64(count, 48);
	T_TRUE(memcmp(sums, g->tensors[hearth_gguf_n_tensors(g) - 2].data, 256 * sizeof *sums) == 0);
	hearth_gguf_close(g);
	g = NULL;

	/* nothing seen: no tensors, chunk count 0 */
	T_OK(hearth_imatrix_write(empty, path, HEARTH_IMATRIX_GGUF, NULL, 0, &err), err);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (g) {
		T_EQ_I64(hearth_gguf_n_tensors(g), 0);
		T_OK(gguf_get_i64(g, "imatrix.chunk_count", &v, &err), err);
		T_EQ_I64(v, 0);
	}

	/* the legacy format: entries of sums / count * ncall, the chunks, the last dataset */
	T_OK(hearth_imatrix_write(im, dat, HEARTH_IMATRIX_DAT, datasets, 2, &err), err);
	FILE *f = fopen(dat, "rb");
	static char buf[1 << 16];
	const size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (f)
		fclose(f);
	int32_t n_entries, len, ncall, nval;
	memcpy(&n_entries, buf, 4);
	memcpy(&len, buf + 4, 4);
	T_EQ_I64(n_entries, 15);
	T_EQ_I64(len, (int32_t)strlen("blk.0.attn_k.weight"));
	T_TRUE(!memcmp(buf + 8, "blk.0.attn_k.weight", (size_t)len));
	memcpy(&ncall, buf + 8 + len, 4);
	memcpy(&nval, buf + 12 + len, 4);
	T_EQ_I64(ncall, 3); /* 48 tokens: 3 chunks of 20, rounded up */
	T_EQ_I64(nval, 256);
	float x0;
	T_OK(hearth_imatrix_get(im, "blk.0.attn_k.weight", &sums, &n_in, &count), err);
	memcpy(&x0, buf + 16 + len, 4);
	T_TRUE(x0 == sums[0] / 48.0f * 3.0f);
	T_TRUE(n > 16 && !memcmp(buf + n - strlen("wiki.train.raw"), "wiki.train.raw", strlen("wiki.train.raw")));
	int32_t tail[2];
	memcpy(tail, buf + n - strlen("wiki.train.raw") - 8, 8);
	T_EQ_I64(tail[0], 2);
	T_EQ_I64(tail[1], (int32_t)strlen("wiki.train.raw"));
	/* unwritable: an error, no file */
	T_EQ_I64(hearth_imatrix_write(im, "/nonexistent/dir/im.gguf", HEARTH_IMATRIX_GGUF, NULL, 0, &err), HEARTH_EIO);
	T_EQ_I64(hearth_imatrix_write(im, path, 7, NULL, 0, &err), HEARTH_EINVAL);
out:
	hearth_gguf_close(g);
	hearth_imatrix_free(im);
	hearth_imatrix_free(empty);
	hearth_context_free(c);
	hearth_model_free(m);
}
