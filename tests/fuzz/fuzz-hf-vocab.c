/* fuzz-hf-vocab.c - libFuzzer target: hearth_convert_hf_vocab on a Hugging
 * Face tokenizer folder made of the fuzzer's bytes.
 *
 * An input is up to three parts split at NUL bytes (which JSON text never
 * holds): tokenizer.json, then tokenizer_config.json, then config.json; a part
 * that is absent is a file that is absent. They are written into a folder of
 * this process's own under /dev/shm (or /tmp), removed at exit.
 *
 * Checked besides the sanitizers: a rejected folder gives a negative code,
 * recorded in err, whose message names the folder; a converted vocabulary
 * loads (vocab_only) and tokenizes a fixed text and the input's first bytes,
 * with and without special tokens, to ids inside it, which detokenize.
 * Seeds: tests/fuzz/corpus/hf-vocab/, small tokenizers written by hand in
 * each shape the converter knows (byte-level with each pre-tokenizer family,
 * SentencePiece-style with a normalizer or Metaspace) and some it refuses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static const char *const part_names[] = { "tokenizer.json", "tokenizer_config.json", "config.json" };
#define N_PARTS 3

static char dir[64];
static char part_path[N_PARTS][128], out_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_dir(void)
{
	for (int i = 0; i < N_PARTS; i++)
		unlink(part_path[i]);
	unlink(out_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	snprintf(dir, sizeof dir, "/dev/shm/hearth-fuzz-hf-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof dir, "/tmp/hearth-fuzz-hf-XXXXXX");
		if (!mkdtemp(dir)) {
			perror("fuzz-hf-vocab: mkdtemp");
			exit(1);
		}
	}
	for (int i = 0; i < N_PARTS; i++)
		snprintf(part_path[i], sizeof part_path[i], "%s/%s", dir, part_names[i]);
	snprintf(out_path, sizeof out_path, "%s/vocab.gguf", dir);
	atexit(remove_dir);
	return 0;
}

static void write_part(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* The parts of the input as files; absent parts removed. */
static void write_folder(const uint8_t *data, size_t size)
{
	size_t at = 0;
	for (int i = 0; i < N_PARTS; i++) {
		if (at > size) {
			unlink(part_path[i]);
			continue;
		}
		const uint8_t *nul = i < N_PARTS - 1 ? memchr(data + at, 0, size - at) : NULL;
		size_t end = nul ? (size_t)(nul - data) : size;
		write_part(part_path[i], data + at, end - at);
		at = nul ? end + 1 : size + 1;
	}
	unlink(out_path);
}

static void tokenize(const struct hearth_model *m, const char *text, size_t len)
{
	for (int ps = 0; ps < 2; ps++) {
		struct hearth_err err = { 0 };
		int32_t *ids = NULL, n = 0;
		char *back = NULL;
		int rc = hearth_tokenize(m, text, len, true, ps, &ids, &n, &err);
		FUZZ_CHECK(rc == 0, "tokenize: %s", err.msg);
		for (int32_t i = 0; i < n; i++)
			FUZZ_CHECK(ids[i] >= 0 && ids[i] < hearth_model_n_vocab(m), "id %d of %d", ids[i],
				   hearth_model_n_vocab(m));
		rc = hearth_detokenize(m, ids, n, ps, &back, NULL, &err);
		FUZZ_CHECK(rc == 0, "detokenize: %s", err.msg);
		free(back);
		free(ids);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char text[] = "Hello world! 123 ab <s> <|im_start|>\xe2\x96\x81 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd\n";
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_model *m = NULL;
	struct hearth_err err = { 0 };

	write_folder(data, size);
	int rc = hearth_convert_hf_vocab(dir, out_path, &err);
	if (rc) {
		fuzz_check_err(rc, &err, dir);
		return 0;
	}
	p.vocab_only = true;
	rc = hearth_model_load(&m, out_path, &p, &err);
	FUZZ_CHECK(rc == 0, "the converted vocabulary does not load: %s", err.msg);
	tokenize(m, text, sizeof text - 1);
	tokenize(m, (const char *)data, size < 64 ? size : 64);
	hearth_model_free(m);
	return 0;
}
