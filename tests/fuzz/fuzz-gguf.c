/* fuzz-gguf.c - libFuzzer target: the fuzzer's bytes as a GGUF file.
 *
 * Each input is read the way `hearth inspect --json` reads a file (every key's
 * value rendered as JSON, every tensor's info), then loaded as a model with
 * vocab_only (and a short text tokenized and detokenized), then loaded whole
 * and, when that works, run for one decode step of two tokens.
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a rejected file gives a negative code, recorded in err, whose message names the file;
 *  - each value's JSON parses as JSON (jansson), holds as many elements as the
 *    array (or the cut plus the ellipsis), and kv_json's returned length is what
 *    it writes when there is room and what it would write when there is not;
 *  - every tensor lies inside the file, aligned, with the byte size its type and shape give;
 *  - a loaded vocabulary gives ids inside it.
 * Seeds: small models and vocabularies that mkseeds.c writes with hearth's own writer.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/tensor/qtype.h"
#include "common.h"

static struct fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	fuzz_file_init(&file, "fuzz.gguf");
	return 0;
}

/* Element count of a value's JSON: array elements, else 1. */
static size_t json_count(const json_t *j)
{
	return json_is_array(j) ? json_array_size(j) : 1;
}

/* Value i as JSON with at most max_items array elements; checks it parses and
 * has the elements it should. */
static void check_kv_json(const struct hearth_gguf *g, int64_t i, int64_t max_items)
{
	const size_t need = hearth_gguf_kv_json(g, i, max_items, NULL, 0);
	char *buf = malloc(need + 1), small[8];
	json_error_t je;
	FUZZ_CHECK(buf != NULL, "out of memory for %zu bytes", need + 1);
	FUZZ_CHECK(hearth_gguf_kv_json(g, i, max_items, buf, need + 1) == need, "key %s: length differs", hearth_gguf_key(g, i));
	FUZZ_CHECK(strlen(buf) == need, "key %s: %zu bytes written, %zu reported", hearth_gguf_key(g, i), strlen(buf), need);
	FUZZ_CHECK(hearth_gguf_kv_json(g, i, max_items, small, sizeof small) == need, "key %s: cut length differs",
		   hearth_gguf_key(g, i));
	FUZZ_CHECK(memchr(small, 0, sizeof small) && strncmp(small, buf, strlen(small)) == 0 &&
		   strlen(small) == (need < sizeof small ? need : sizeof small - 1), "key %s: cut output is not a prefix",
		   hearth_gguf_key(g, i));
	json_t *j = json_loads(buf, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je); /* u64 past int64 */
	FUZZ_CHECK(j != NULL, "key %s: not JSON (%s at %d): %.200s", hearth_gguf_key(g, i), je.text, je.position, buf);
	if (hearth_gguf_kv_type(g, i) == HEARTH_GGUF_ARRAY) {
		uint64_t n = hearth_gguf_arr_n(g, i);
		bool cut = max_items >= 0 && n > (uint64_t)max_items;
		FUZZ_CHECK(json_is_array(j) && json_count(j) == (cut ? (size_t)max_items + 1 : n),
			   "key %s: %zu JSON elements for %llu", hearth_gguf_key(g, i), json_count(j), (unsigned long long)n);
	}
	json_decref(j);
	free(buf);
}

/* general.alignment as the file gives it (the reader refuses any but a u32 power of two), else 32. */
static uint64_t alignment_of(const struct hearth_gguf *g)
{
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++) {
		char buf[32];
		if (strcmp(hearth_gguf_key(g, i), "general.alignment") == 0) {
			hearth_gguf_kv_json(g, i, -1, buf, sizeof buf);
			return strtoull(buf, NULL, 10);
		}
	}
	return 32;
}

static void check_tensor(const struct hearth_gguf *g, int64_t i, size_t file_size)
{
	struct hearth_tensor_info t;
	hearth_gguf_tensor(g, i, &t);
	const struct qtype_info *q = qtype_info(t.type);
	FUZZ_CHECK(t.name && t.name[0] && hearth_type_name(t.type) && q, "tensor %lld", (long long)i);
	FUZZ_CHECK(t.n_dims >= 1 && t.n_dims <= 4, "tensor %s: %d dims", t.name, t.n_dims);
	FUZZ_CHECK(t.offset <= file_size && t.nbytes <= file_size - t.offset, "tensor %s outside the file", t.name);
	FUZZ_CHECK(t.offset % alignment_of(g) == 0, "tensor %s at %llu", t.name, (unsigned long long)t.offset);
	uint64_t nb = qtype_row_size(t.type, t.ne[0]);
	for (int d = 1; d < 4; d++)
		nb *= (uint64_t)t.ne[d];
	FUZZ_CHECK(nb == t.nbytes, "tensor %s: %llu bytes for its shape, %llu given", t.name, (unsigned long long)nb,
		   (unsigned long long)t.nbytes);
}

static void inspect(size_t size)
{
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	int rc = hearth_gguf_open(&g, file.path, &err);
	if (rc) {
		fuzz_check_err(rc, &err, file.path);
		FUZZ_CHECK(g == NULL, "a failed open left an object");
		return;
	}
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++) {
		FUZZ_CHECK(hearth_gguf_key(g, i) != NULL, "key %lld", (long long)i);
		check_kv_json(g, i, -1);
		check_kv_json(g, i, 1);
	}
	for (int64_t i = 0; i < hearth_gguf_n_tensors(g); i++)
		check_tensor(g, i, size);
	hearth_gguf_close(g);
}

static void tokenize(const struct hearth_model *m)
{
	static const char text[] = "Hello <s> wörld\xe2\x96\x81 <|im_start|>\n\t12345 \xff!";
	struct hearth_err err = { 0 };
	int32_t *ids = NULL, n = 0;
	char *back = NULL;
	int rc = hearth_tokenize(m, text, sizeof text - 1, true, true, &ids, &n, &err);
	FUZZ_CHECK(rc == 0, "tokenize: %s", err.msg);
	for (int32_t i = 0; i < n; i++)
		FUZZ_CHECK(ids[i] >= 0 && ids[i] < hearth_model_n_vocab(m), "id %d of %d", ids[i], hearth_model_n_vocab(m));
	rc = hearth_detokenize(m, ids, n, true, &back, NULL, &err);
	FUZZ_CHECK(rc == 0, "detokenize: %s", err.msg);
	free(back);
	free(ids);
}

/* One decode step of two tokens on a model that loaded. */
static void decode(struct hearth_model *m)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_err err = { 0 };
	cp.n_ctx = 8;
	cp.n_batch = 8;
	cp.n_threads = 1;
	int rc = hearth_context_new(&c, m, &cp, &err);
	if (rc) {
		fuzz_check_err(rc, &err, NULL);
		return;
	}
	int32_t toks[2] = { 0, hearth_model_n_vocab(m) - 1 };
	rc = hearth_decode(c, toks, 2, false, &err);
	FUZZ_CHECK(rc == 0, "decode: %s", err.msg);
	FUZZ_CHECK(hearth_get_logits(c, -1) != NULL, "no logits");
	hearth_context_free(c);
}

static void load(bool vocab_only)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_model *m = NULL;
	struct hearth_err err = { 0 };
	p.vocab_only = vocab_only;
	int rc = hearth_model_load(&m, file.path, &p, &err);
	if (rc) {
		fuzz_check_err(rc, &err, file.path);
		FUZZ_CHECK(m == NULL, "a failed load left an object");
		return;
	}
	FUZZ_CHECK(hearth_model_n_vocab(m) > 0, "empty vocabulary");
	if (vocab_only)
		tokenize(m);
	else
		decode(m);
	hearth_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_set(&file, data, size);
	inspect(size);
	load(true);
	load(false);
	return 0;
}
