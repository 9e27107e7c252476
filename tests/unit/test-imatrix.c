/* test-imatrix.c - reading importance matrices and quantizing with them.
 *
 * The files are written here: the legacy .dat by hand, the GGUF one with the
 * repo's GGUF writer, both in the layout llama-imatrix writes (see
 * src/quant/imatrix-read.h). The weighted quantizers are checked against
 * their definition: weights change the result and lower the weighted error,
 * only relative weights matter, and q6_K weighted by x^2 is q6_K's reference.
 * (Byte identity with llama-quantize --imatrix was checked by hand: the
 * fixtures hold no imatrix.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../../src/gguf/gguf.h"
#include "../../src/quant/imatrix-read.h"
#include "../../src/tensor/quant-ref.h"

/* ---- writing files --------------------------------------------------------- */

struct dat {
	uint8_t b[1 << 16];
	size_t n;
};

static void put(struct dat *d, const void *p, size_t n)
{
	if (d->n + n <= sizeof d->b) {
		memcpy(d->b + d->n, p, n);
		d->n += n;
	}
}

static void put_i32(struct dat *d, int32_t v) { put(d, &v, 4); }

static void put_entry(struct dat *d, const char *name, int32_t ncall, int32_t nval, float (*f)(int32_t))
{
	put_i32(d, (int32_t)strlen(name));
	put(d, name, strlen(name));
	put_i32(d, ncall);
	put_i32(d, nval);
	for (int32_t i = 0; i < nval; i++) {
		const float v = f(i);
		put(d, &v, 4);
	}
}

static const char *save(const struct dat *d, size_t n, const char *name)
{
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	T_TRUE(f && fwrite(d->b, 1, n, f) == n);
	if (f)
		fclose(f);
	return path;
}

static float ramp4(int32_t i) { return 4.0f * (float)(i + 1); }
static float ones(int32_t i) { (void)i; return 1.0f; }

/* A legacy file: two entries (the second named twice: the later wins), a trailer. */
static void legacy_file(struct dat *d)
{
	d->n = 0;
	put_i32(d, 3);
	put_entry(d, "blk.0.attn_q.weight", 4, 256, ramp4);
	put_entry(d, "x.weight", 2, 8, ramp4);
	put_entry(d, "x.weight", 0, 4, ramp4);
	put_i32(d, 7);
	put_i32(d, 3);
	put(d, "abc", 3);
}

/* A GGUF imatrix: W.in_sum2 (ne0 x n_expert) and W.counts (1 x n_expert). */
static int gguf_file(const char *path, bool keys, int n_counts, const float *counts, int counts_type)
{
	static float sums[16];
	static uint16_t counts16[4];
	struct gguf_writer *w = NULL;
	struct hearth_err err = { 0 };
	const char *ds[] = { "tiny.txt" };
	for (int i = 0; i < 16; i++)
		sums[i] = (float)(i + 1);
	for (int i = 0; i < 4; i++)
		counts16[i] = 0x4000; /* 2.0 in f16 */
	int rc = gguf_writer_new(&w, &err);
	rc = rc ? rc : gguf_writer_set_str(w, "general.type", "imatrix"); /* as llama-imatrix writes */
	if (!rc && keys) {
		rc = gguf_writer_set_arr_str(w, "imatrix.datasets", ds, 1);
		rc = rc ? rc : gguf_writer_set_u32(w, "imatrix.chunk_count", 5);
		rc = rc ? rc : gguf_writer_set_u32(w, "imatrix.chunk_size", 128);
	}
	const bool split = n_counts && 16 % n_counts == 0;
	const int64_t ne_s[2] = { split ? 16 / n_counts : 16, split ? n_counts : 1 }, ne_c[2] = { 1, n_counts };
	rc = rc ? rc : gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight.in_sum2", HEARTH_TYPE_F32, 2, ne_s, sums);
	if (n_counts)
		rc = rc ? rc : gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight.counts", counts_type, 2, ne_c,
						      counts_type == HEARTH_TYPE_F32 ? (const void *)counts : counts16);
	rc = rc ? rc : gguf_writer_write(w, path, &err);
	T_OK(rc, err);
	gguf_writer_free(w);
	return rc;
}

/* ---- reading --------------------------------------------------------------- */

void test_imatrix_read(void)
{
	static struct dat d;
	struct imatrix_data *im = NULL;
	struct hearth_err err = { 0 };
	const struct imatrix_entry *e;

	legacy_file(&d);
	T_OK(imatrix_read(&im, save(&d, d.n, "im.dat"), &err), err);
	if (im) {
		T_EQ_I64(im->n_entries, 2);
		T_TRUE(im->legacy);
		T_EQ_I64(im->chunk_count, 7);
		T_STR_EQ(im->dataset, "abc");
		e = imatrix_read_find(im, "blk.0.attn_q.weight");
		T_TRUE(e && e->n == 256 && e->values[0] == 1.0f && e->values[255] == 256.0f); /* divided by ncall 4 */
		e = imatrix_read_find(im, "x.weight");
		T_TRUE(e && e->n == 4 && e->values[1] == 8.0f); /* the later entry; ncall 0: as stored */
		T_TRUE(imatrix_read_find(im, "blk.1.attn_q.weight") == NULL);
	}
	imatrix_read_free(im);

	/* GGUF: sums divided by each expert's count; a zero count gives 1 */
	const char *path = tmp_path("im.gguf");
	const float counts[2] = { 2.0f, 0.0f };
	im = NULL;
	if (!gguf_file(path, true, 2, counts, HEARTH_TYPE_F32)) {
		T_OK(imatrix_read(&im, path, &err), err);
		e = imatrix_read_find(im, "blk.0.ffn_up_exps.weight");
		T_TRUE(e && e->n == 16);
		if (e && e->n == 16) {
			T_NEAR(e->values[0], 0.5, 0);
			T_NEAR(e->values[7], 4.0, 0);
			T_NEAR(e->values[8], 1.0, 0);
			T_NEAR(e->values[15], 1.0, 0);
		}
		T_TRUE(im && !im->legacy && im->chunk_count == 5);
		if (im)
			T_STR_EQ(im->dataset, "tiny.txt");
	}
	imatrix_read_free(im);
}

/* path must be refused with HEARTH_EINVAL and a message holding `what`. */
static void refused(const char *path, const char *what)
{
	struct imatrix_data *im = NULL;
	struct hearth_err err = { 0 };
	const int rc = imatrix_read(&im, path, &err);
	T_EQ_I64(rc, HEARTH_EINVAL);
	T_TRUE(im == NULL);
	if (!strstr(err.msg, what) || !strstr(err.msg, path))
		T_FAIL("'%s' does not name the file and '%s'", err.msg, what);
	imatrix_read_free(im);
}

void test_imatrix_errors(void)
{
	static struct dat d;
	struct imatrix_data *im = NULL;
	struct hearth_err err = { 0 };

	/* every truncation of a legacy file inside its entries is refused */
	legacy_file(&d);
	const size_t n_entries_end = d.n - 10; /* before the trailer */
	for (size_t n = 0; n < n_entries_end; n += (n < 64 ? 1 : 97)) {
		const char *path = save(&d, n, "im-cut.dat");
		im = NULL;
		if (imatrix_read(&im, path, &err) != HEARTH_EINVAL || im)
			T_FAIL("a legacy imatrix cut at %zu bytes was not refused", n);
		imatrix_read_free(im);
	}
	refused(save(&d, 100, "im-cut.dat"), "room for");
	/* random corruptions of the header words: read or refused, never past the data (ASan) */
	uint32_t seed = 7;
	for (int k = 0; k < 200; k++) {
		legacy_file(&d);
		seed = seed * 1664525u + 1013904223u;
		static const size_t at[] = { 0, 4, 23, 27, 31, 1059, 1063 }; /* counts, lengths, ncall, nval */
		const size_t pos = at[(seed >> 8) % (sizeof at / sizeof at[0])] + (seed >> 4) % 4;
		d.b[pos] ^= (uint8_t)(1u << ((seed >> 16) % 8));
		im = NULL;
		const int rc = imatrix_read(&im, save(&d, d.n, "im-flip.dat"), &err);
		T_TRUE(rc == 0 || rc == HEARTH_EINVAL);
		T_TRUE((rc == 0) == (im != NULL));
		imatrix_read_free(im);
	}
	/* no entries; values counts that do not fit; a huge entry count */
	d.n = 0;
	put_i32(&d, 0);
	refused(save(&d, d.n, "im-bad.dat"), "no entries");
	d.n = 0;
	put_i32(&d, 1);
	put_entry(&d, "a.weight", 1, 0, ones);
	refused(save(&d, d.n, "im-bad.dat"), "claims 0 values");
	d.n = 0;
	put_i32(&d, 1);
	put_entry(&d, "a.weight", 1, 4, ones);
	memcpy(d.b + 4 + 4 + 8 + 4, &(int32_t){ 1 << 30 }, 4);
	refused(save(&d, d.n, "im-bad.dat"), "claims 1073741824 values");
	d.n = 0;
	put_i32(&d, 1 << 30);
	put_entry(&d, "a.weight", 1, 4, ones);
	refused(save(&d, d.n, "im-bad.dat"), "claims 1073741824 entries");
	/* a value that is not finite */
	d.n = 0;
	put_i32(&d, 1);
	put_entry(&d, "a.weight", 1, 4, ones);
	memcpy(d.b + d.n - 4, &(float){ NAN }, 4);
	refused(save(&d, d.n, "im-bad.dat"), "non-finite");

	/* GGUF: no imatrix keys; sums without counts; counts that do not divide the
	 * sums; a negative count; counts that are not f32 */
	const char *path = tmp_path("im-bad.gguf");
	const float c2[2] = { 1, 1 }, c3[3] = { 1, 1, 1 }, neg[2] = { 1, -3 };
	if (!gguf_file(path, false, 2, c2, HEARTH_TYPE_F32))
		refused(path, "no key imatrix.datasets");
	if (!gguf_file(path, true, 0, c2, HEARTH_TYPE_F32))
		refused(path, "has sums but no counts");
	if (!gguf_file(path, true, 3, c3, HEARTH_TYPE_F32))
		refused(path, "do not split into 3 counts");
	if (!gguf_file(path, true, 2, neg, HEARTH_TYPE_F32))
		refused(path, "count 1 is -3");
	if (!gguf_file(path, true, 2, c2, HEARTH_TYPE_F16))
		refused(path, "must be f32");
	/* not there */
	T_EQ_I64(imatrix_read(&im, "/nonexistent/im.dat", &err), HEARTH_EIO);
	T_TRUE(strstr(err.msg, "/nonexistent/im.dat") != NULL);
}

/* ---- quantizing with weights ------------------------------------------------ */

static uint32_t rng = 12345;
static float rnd(void)
{
	rng = rng * 1664525u + 1013904223u;
	return (float)((rng >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* sum(w * (x - dequantized)^2) over n values. */
static double weighted_err(int type, const float *x, const void *q, const float *w, int64_t n)
{
	float y[1024];
	double e = 0;
	dequantize_row_ref(type, q, y, n);
	for (int64_t i = 0; i < n; i++)
		e += (double)w[i] * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
	return e;
}

void test_imatrix_weighted(void)
{
	static const int types[] = { HEARTH_TYPE_Q4_0, HEARTH_TYPE_Q4_1, HEARTH_TYPE_Q5_0, HEARTH_TYPE_Q5_1,
				     HEARTH_TYPE_Q2_K, HEARTH_TYPE_Q3_K, HEARTH_TYPE_Q4_K, HEARTH_TYPE_Q5_K,
				     HEARTH_TYPE_Q6_K };
	enum { N = 1024 };
	static float x[N], flat[N], spiky[N], spiky4[N], x2[N];
	static uint8_t a[N * 2], b[N * 2], c[N * 2];
	for (int i = 0; i < N; i++) {
		x[i] = rnd() * (i % 7 == 0 ? 6.0f : 1.0f);
		flat[i] = 1.0f;
		spiky[i] = i % 16 < 2 ? 100.0f : 0.01f; /* two columns of every 16 matter */
		spiky4[i] = 4 * spiky[i];
		x2[i] = x[i] * x[i];
	}
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		const int type = types[t];
		const char *name = hearth_type_name(type);
		T_EQ_I64(quantize_row_imat(type, x, a, N, flat), 0);
		T_EQ_I64(quantize_row_imat(type, x, b, N, spiky), 0);
		T_EQ_I64(quantize_row_imat(type, x, c, N, spiky4), 0);
		const size_t nb = qtype_row_size(type, N);
		if (!memcmp(a, b, nb))
			T_FAIL("%s: the weights did not change the result", name);
		if (memcmp(b, c, nb))
			T_FAIL("%s: weights scaled by 4 changed the result", name);
		/* the weighted error is what the spiky weights minimize */
		const double e_flat = weighted_err(type, x, a, spiky, N), e_spiky = weighted_err(type, x, b, spiky, N);
		printf("     %-5s error on the heavy columns: %.4g with flat weights, %.4g weighted\n", name, e_flat,
		       e_spiky);
		T_TRUE(e_spiky < e_flat);
		/* no weights: the reference quantizer */
		T_EQ_I64(quantize_row_imat(type, x, a, N, NULL), 0);
		T_EQ_I64(quantize_row_ref(type, x, b, N), 0);
		if (memcmp(a, b, nb))
			T_FAIL("%s: no weights is not the reference quantizer", name);
	}
	/* q6_K's reference weighs each value by x^2: the weighted path with qw = x^2 is the same */
	T_EQ_I64(quantize_row_imat(HEARTH_TYPE_Q6_K, x, a, N, x2), 0);
	T_EQ_I64(quantize_row_ref(HEARTH_TYPE_Q6_K, x, b, N), 0);
	T_TRUE(!memcmp(a, b, qtype_row_size(HEARTH_TYPE_Q6_K, N)));
	/* q8_0 ignores weights, as llama.cpp's does */
	T_EQ_I64(quantize_row_imat(HEARTH_TYPE_Q8_0, x, a, N, spiky), 0);
	T_EQ_I64(quantize_row_ref(HEARTH_TYPE_Q8_0, x, b, N), 0);
	T_TRUE(!memcmp(a, b, qtype_row_size(HEARTH_TYPE_Q8_0, N)));
}

/* The bytes of tensor `name` in the GGUF at path (malloc'd), NULL when absent. */
static void *tensor_bytes(const char *path, const char *name, size_t *n)
{
	struct hearth_gguf *g = NULL;
	struct hearth_err err = { 0 };
	void *out = NULL;
	T_OK(hearth_gguf_open(&g, path, &err), err);
	const int64_t i = g ? gguf_find_tensor(g, name) : -1;
	if (i >= 0 && (out = malloc(g->tensors[i].nbytes))) {
		memcpy(out, g->tensors[i].data, g->tensors[i].nbytes);
		*n = g->tensors[i].nbytes;
	}
	hearth_gguf_close(g);
	return out;
}

void test_imatrix_quantize(void)
{
	static struct dat d;
	struct hearth_quantize_params p = hearth_quantize_default_params();
	struct hearth_err err = { 0 };
	char plain[512], weighed[512], model[512], im_path[512];
	snprintf(plain, sizeof plain, "%s", tmp_path("imq-plain.gguf")); /* tmp_path keeps two */
	snprintf(weighed, sizeof weighed, "%s", tmp_path("imq-w.gguf"));
	snprintf(model, sizeof model, "%s", fixture("models/tiny-llama-spm.f32.gguf"));

	/* entries for attn_q (n_embd 256 columns), a name not in the model, and a
	 * wrong-sized token_embd (ignored, as llama-quantize does) */
	d.n = 0;
	put_i32(&d, 3);
	put_entry(&d, "blk.0.attn_q.weight", 1, 256, ramp4);
	put_entry(&d, "blk.9.not_in_model.weight", 1, 32, ones);
	put_entry(&d, "token_embd.weight", 1, 7, ones);
	p.ftype = HEARTH_FTYPE_Q4_K_M;
	p.n_threads = 2;
	T_OK(hearth_quantize(model, plain, &p, &err), err);
	snprintf(im_path, sizeof im_path, "%s", save(&d, d.n, "imq.dat"));
	p.imatrix_path = im_path;
	T_OK(hearth_quantize(model, weighed, &p, &err), err);
	size_t na = 0, nb = 0;
	void *a = tensor_bytes(plain, "blk.0.attn_q.weight", &na), *b = tensor_bytes(weighed, "blk.0.attn_q.weight", &nb);
	T_TRUE(a && b && na == nb && memcmp(a, b, na)); /* weighted */
	free(a);
	free(b);
	a = tensor_bytes(plain, "blk.0.attn_k.weight", &na);
	b = tensor_bytes(weighed, "blk.0.attn_k.weight", &nb);
	T_TRUE(a && b && na == nb && !memcmp(a, b, na)); /* no entry: as without */
	free(a);
	free(b);
	struct hearth_gguf *g = NULL;
	T_OK(hearth_gguf_open(&g, weighed, &err), err);
	if (g) {
		int64_t v = -1;
		struct gguf_str s = { 0 };
		T_OK(gguf_get_i64(g, "quantize.imatrix.entries_count", &v, &err), err);
		T_EQ_I64(v, 3);
		T_OK(gguf_get_str(g, "quantize.imatrix.file", &s, &err), err);
		T_TRUE(s.n == strlen(p.imatrix_path) && !memcmp(s.p, p.imatrix_path, s.n));
		T_TRUE(gguf_find_key(g, "quantize.imatrix.dataset") < 0); /* the file names none */
	}
	hearth_gguf_close(g);
	unlink(plain);
	unlink(weighed);

	/* an entry whose size does not match its tensor: refused, naming both, no output */
	d.n = 0;
	put_i32(&d, 1);
	put_entry(&d, "blk.1.ffn_down.weight", 1, 256, ones); /* ffn_down has 512 columns */
	snprintf(im_path, sizeof im_path, "%s", save(&d, d.n, "imq-bad.dat"));
	T_EQ_I64(hearth_quantize(model, weighed, &p, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "blk.1.ffn_down.weight") && strstr(err.msg, "512") && strstr(err.msg, "imq-bad.dat"));
	T_TRUE(access(weighed, F_OK) != 0);
	/* a bad imatrix file: refused before any work */
	d.n = 0;
	put_i32(&d, 0);
	snprintf(im_path, sizeof im_path, "%s", save(&d, d.n, "imq-bad.dat"));
	T_EQ_I64(hearth_quantize(model, weighed, &p, &err), HEARTH_EINVAL);
	T_TRUE(access(weighed, F_OK) != 0);
}
