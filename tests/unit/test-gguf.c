/* test-gguf.c - the GGUF writer and reader: a round trip of every value type,
 * then malformed files (cut at every byte, bad header fields, absurd counts,
 * bad tensors), each rejected with a message naming the file; values rendered
 * as JSON. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/gguf/gguf.h"
#include "../../src/tensor/qtype.h"
#include "../harness.h"

/* A small file with every metadata type and two tensors. */
static int write_sample(const char *path, struct hearth_err *err)
{
	static float t0[4 * 3];
	static struct block_q8_0 t1[2];
	struct gguf_writer *w;
	const char *strs[] = { "a", "", "日本語" };
	int32_t ints[] = { 1, -2, 3 };
	int rc;
	for (int i = 0; i < 12; i++)
		t0[i] = (float)i;
	memset(t1, 0, sizeof t1);
	if ((rc = gguf_writer_new(&w, err)))
		return rc;
	gguf_writer_set_str(w, "general.architecture", "llama");
	gguf_writer_set_u32(w, "test.u32", 7);
	gguf_writer_set_i32(w, "test.i32", -7);
	gguf_writer_set_f32(w, "test.f32", 0.5f);
	gguf_writer_set_bool(w, "test.bool", true);
	gguf_writer_set_arr_str(w, "test.strs", strs, 3);
	gguf_writer_set_arr(w, "test.ints", HEARTH_GGUF_I32, ints, 3);
	int64_t ne0[] = { 4, 3 }, ne1[] = { 64 };
	gguf_writer_add_tensor(w, "t0", HEARTH_TYPE_F32, 2, ne0, t0);
	gguf_writer_add_tensor(w, "t1", HEARTH_TYPE_Q8_0, 1, ne1, t1);
	rc = gguf_writer_write(w, path, err);
	gguf_writer_free(w);
	return rc;
}

void test_gguf_roundtrip(void)
{
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	const char *path = tmp_path("sample.gguf");
	int64_t v;
	float f;
	bool b;
	const struct gguf_kv *kv;

	T_OK(write_sample(path, &err), err);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		return;
	T_EQ_I64(hearth_gguf_version(g), 3);
	T_EQ_I64(hearth_gguf_n_kv(g), 7);
	T_EQ_I64(hearth_gguf_n_tensors(g), 2);
	T_OK(gguf_get_i64(g, "test.u32", &v, &err), err);
	T_EQ_I64(v, 7);
	T_OK(gguf_get_i64(g, "test.i32", &v, &err), err);
	T_EQ_I64(v, -7);
	T_OK(gguf_get_f32(g, "test.f32", &f, &err), err);
	T_NEAR(f, 0.5, 0);
	T_OK(gguf_get_bool(g, "test.bool", &b, &err), err);
	T_TRUE(b);
	T_EQ_I64(gguf_get_i64(g, "missing", &v, &err), HEARTH_ENOTFOUND);
	T_EQ_I64(gguf_get_i64(g, "test.f32", &v, &err), HEARTH_EBADGGUF); /* wrong type is an error */
	T_OK(gguf_get_arr(g, "test.strs", HEARTH_GGUF_STRING, &kv, &err), err);
	T_EQ_I64(kv->arr_n, 3);
	T_TRUE(((const struct gguf_str *)kv->arr)[2].n == strlen("日本語"));
	T_OK(gguf_get_arr(g, "test.ints", HEARTH_GGUF_I32, &kv, &err), err);
	T_EQ_I64(gguf_arr_i64(kv, 1), -2);
	char buf[128];
	hearth_gguf_kv_json(g, gguf_find_key(g, "test.strs"), -1, buf, sizeof buf);
	T_STR_EQ(buf, "[\"a\",\"\",\"日本語\"]");
	struct hearth_tensor_info ti;
	hearth_gguf_tensor(g, 0, &ti);
	T_STR_EQ(ti.name, "t0");
	T_EQ_I64(ti.ne[0], 4);
	T_EQ_I64(ti.ne[1], 3);
	T_EQ_I64(ti.offset % 32, 0);
	T_NEAR(((const float *)g->tensors[0].data)[5], 5.0, 0);
	hearth_gguf_tensor(g, 1, &ti);
	T_EQ_I64(ti.nbytes, 2 * sizeof(struct block_q8_0));
	hearth_gguf_close(g);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(*n);
	if (b && fread(b, 1, *n, f) != *n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

static void spit(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(b, 1, n, f);
		fclose(f);
	}
}

/* Expects path to be rejected as malformed with the path in the message. */
static void expect_bad(const char *path, const char *what, const char *needle)
{
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	int rc = hearth_gguf_open(&g, path, &err);
	if (rc == 0) {
		T_FAIL("%s: accepted", what);
		hearth_gguf_close(g);
		return;
	}
	T_TRUE(g == NULL);
	if (!strstr(err.msg, path))
		T_FAIL("%s: message '%s' does not name the file", what, err.msg);
	if (needle && !strstr(err.msg, needle))
		T_FAIL("%s: message '%s' does not say '%s'", what, err.msg, needle);
}

void test_gguf_truncated(void)
{
	struct hearth_err err = { 0 };
	const char *src = tmp_path("full.gguf"), *cut = tmp_path("cut.gguf");
	size_t n;
	T_OK(write_sample(src, &err), err);
	uint8_t *b = slurp(src, &n);
	T_TRUE(b != NULL);
	if (!b)
		return;
	/* every cut that loses a byte of the header or of a tensor: at every byte
	 * of every section (the padding after the last tensor is optional) */
	struct hearth_gguf *g = NULL;
	T_OK(hearth_gguf_open(&g, src, &err), err);
	if (!g) {
		free(b);
		return;
	}
	struct hearth_tensor_info last;
	hearth_gguf_tensor(g, hearth_gguf_n_tensors(g) - 1, &last);
	size_t end = (size_t)(last.offset + last.nbytes);
	hearth_gguf_close(g);
	T_TRUE(end <= n);
	for (size_t k = 0; k < end; k++) {
		char what[64];
		spit(cut, b, k);
		snprintf(what, sizeof what, "cut at %zu of %zu", k, n);
		expect_bad(cut, what, NULL);
	}
	free(b);
}

/* Writes b with a little-endian u32/u64 patched at off. */
static void patch_write(const char *path, const uint8_t *b, size_t n, size_t off, uint64_t v, int width)
{
	uint8_t *c = malloc(n);
	memcpy(c, b, n);
	memcpy(c + off, &v, (size_t)width);
	spit(path, c, n);
	free(c);
}

/* Offset just after the metadata key named key (at its type field). */
static size_t find_after(const uint8_t *b, size_t n, const char *s)
{
	size_t k = strlen(s);
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(b + i, s, k) == 0)
			return i + k;
	return 0;
}

void test_gguf_malformed(void)
{
	struct hearth_err err = { 0 };
	const char *src = tmp_path("ok.gguf"), *bad = tmp_path("bad.gguf");
	size_t n;
	T_OK(write_sample(src, &err), err);
	uint8_t *b = slurp(src, &n);
	if (!b)
		return;
	patch_write(bad, b, n, 0, 0x46554746, 4);
	expect_bad(bad, "bad magic", "magic");
	patch_write(bad, b, n, 4, 1, 4);
	expect_bad(bad, "version 1", "version");
	patch_write(bad, b, n, 4, 99, 4);
	expect_bad(bad, "version 99", "version");
	patch_write(bad, b, n, 8, UINT64_MAX, 8);
	expect_bad(bad, "absurd tensor count", "tensors");
	patch_write(bad, b, n, 16, 1ULL << 40, 8);
	expect_bad(bad, "absurd key count", "keys");
	/* the first key's length */
	patch_write(bad, b, n, 24, UINT64_MAX - 3, 8);
	expect_bad(bad, "absurd string length", "length");
	/* test.u32's value type: 99 */
	size_t at = find_after(b, n, "test.u32");
	patch_write(bad, b, n, at, 99, 4);
	expect_bad(bad, "unknown value type", "type");
	/* test.strs array count */
	at = find_after(b, n, "test.strs");
	patch_write(bad, b, n, at + 8, 1ULL << 60, 8);
	expect_bad(bad, "absurd array count", NULL);
	patch_write(bad, b, n, at + 4, HEARTH_GGUF_ARRAY, 4);
	expect_bad(bad, "array of arrays", NULL);
	/* duplicate key: rename test.i32 to test.u32 */
	at = find_after(b, n, "test.i32");
	if (at < 3 || find_after(b, n, "t1") < 2) {
		T_FAIL("sample file lacks its keys");
		free(b);
		return;
	}
	{
		uint8_t *c = malloc(n);
		memcpy(c, b, n);
		memcpy(c + at - 3, "u32", 3);
		spit(bad, c, n);
		expect_bad(bad, "duplicate key", "duplicate");
		/* duplicate tensor: rename t1 to t0 */
		memcpy(c, b, n);
		size_t t1 = find_after(c, n, "t1") - 2;
		c[t1 + 1] = '0';
		spit(bad, c, n);
		expect_bad(bad, "duplicate tensor", "duplicate");
		free(c);
	}
	/* tensor t1: n_dims, dims, type, offset follow its name */
	size_t t1 = find_after(b, n, "t1");
	T_TRUE(t1 > 0);
	patch_write(bad, b, n, t1, 5, 4);
	expect_bad(bad, "five dims", "dimensions");
	patch_write(bad, b, n, t1 + 4, 33, 8);
	expect_bad(bad, "row not a block multiple", "block");
	patch_write(bad, b, n, t1 + 4, 1ULL << 62, 8);
	expect_bad(bad, "absurd dimension", NULL);
	patch_write(bad, b, n, t1 + 12, 4, 4);
	expect_bad(bad, "removed type 4", "type");
	patch_write(bad, b, n, t1 + 12, 1000, 4);
	expect_bad(bad, "unknown type", "type");
	patch_write(bad, b, n, t1 + 16, 1u << 20, 8);
	expect_bad(bad, "tensor past the end", "past the end");
	patch_write(bad, b, n, t1 + 16, 0, 8);
	expect_bad(bad, "overlapping tensors", "overlap");
	patch_write(bad, b, n, t1 + 16, 48 + 4, 8);
	expect_bad(bad, "misaligned offset", "alignment");
	patch_write(bad, b, n, t1 + 16, UINT64_MAX - 31, 8);
	expect_bad(bad, "offset overflow", "past the end");

	/* general.alignment that is not a power of two */
	{
		struct gguf_writer *w;
		T_OK(gguf_writer_new(&w, &err), err);
		gguf_writer_set_u32(w, "general.alignment", 64);
		T_OK(gguf_writer_write(w, bad, &err), err);
		gguf_writer_free(w);
		uint8_t *c = slurp(bad, &n);
		size_t a = find_after(c, n, "general.alignment");
		patch_write(bad, c, n, a + 4, 48, 4);
		expect_bad(bad, "alignment 48", "alignment");
		free(c);
	}
	spit(bad, "", 0);
	expect_bad(bad, "empty file", NULL);
	struct hearth_gguf *g = NULL;
	T_EQ_I64(hearth_gguf_open(&g, tmp_path("does-not-exist.gguf"), &err), HEARTH_EIO);
	free(b);
}

/* Value i rendered by hearth_gguf_kv_json (all elements) into buf. */
static const char *kv_json(const struct hearth_gguf *g, const char *key, char *buf, size_t size)
{
	int64_t i = gguf_find_key(g, key);
	if (i < 0)
		return "(missing)";
	hearth_gguf_kv_json(g, i, -1, buf, size);
	return buf;
}

/* Values that JSON cannot hold as they are: bytes that are not UTF-8 become
 * \ufffd (one per byte, as `hearth inspect` writes keys), NaN and infinities null. */
void test_gguf_kv_json(void)
{
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	struct gguf_writer *w;
	const char *path = tmp_path("json.gguf");
	const char *strs[] = { "ok", "cut \xe6\x97", "\xc0\xaf" };
	const float fs[] = { 1.5f, INFINITY, -INFINITY, NAN };
	char buf[256];

	T_OK(gguf_writer_new(&w, &err), err);
	gguf_writer_set_str(w, "s", "a\xff" "b \xe2\x96\x81 \xed\xa0\x80");
	gguf_writer_set_arr_str(w, "strs", strs, 3);
	gguf_writer_set_f32(w, "nan", NAN);
	gguf_writer_set_arr(w, "fs", HEARTH_GGUF_F32, fs, 4);
	T_OK(gguf_writer_write(w, path, &err), err);
	gguf_writer_free(w);
	T_OK(hearth_gguf_open(&g, path, &err), err);
	if (!g)
		return;
	T_STR_EQ(kv_json(g, "s", buf, sizeof buf), "\"a\\ufffdb \xe2\x96\x81 \\ufffd\\ufffd\\ufffd\"");
	T_STR_EQ(kv_json(g, "strs", buf, sizeof buf), "[\"ok\",\"cut \\ufffd\\ufffd\",\"\\ufffd\\ufffd\"]");
	T_STR_EQ(kv_json(g, "nan", buf, sizeof buf), "null");
	T_STR_EQ(kv_json(g, "fs", buf, sizeof buf), "[1.5,null,null,null]");
	hearth_gguf_close(g);
}
