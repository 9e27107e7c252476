/* fuzz-safetensors.c - libFuzzer target: the fuzzer's bytes as one
 * safetensors file, parsed as hearth_convert_hf parses each shard.
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a rejected file gives a negative code, recorded in err, whose message names the file;
 *  - an accepted one has every tensor inside the file's data section, with the
 *    byte size its shape and dtype give, names unique, sorted by name.
 * Seeds: tests/fuzz/corpus/safetensors/ (small files written by hand).
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/convert/safetensors.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dtype_size(const char *d)
{
	if (!strcmp(d, "F64") || !strcmp(d, "I64") || !strcmp(d, "U64"))
		return 8;
	if (!strcmp(d, "F32") || !strcmp(d, "I32") || !strcmp(d, "U32"))
		return 4;
	if (!strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "I16") || !strcmp(d, "U16"))
		return 2;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct safetensors_set s;
	struct hearth_err err = { 0 };
	memset(&s, 0, sizeof s);
	int rc = safetensors_parse(&s, 0, "fuzz.safetensors", data, size, &err);
	if (rc) {
		fuzz_check_err(rc, &err, "fuzz.safetensors");
	} else {
		for (int64_t i = 0; i < s.n_tensors; i++) {
			const struct safetensors_tensor *t = &s.tensors[i];
			uint64_t n = 1;
			for (int d = 0; d < t->n_dims; d++)
				n *= (uint64_t)t->shape[d];
			FUZZ_CHECK(t->data >= data && t->data <= data + size && t->nbytes <= (uint64_t)(data + size - t->data),
				   "tensor '%s' outside the file", t->name);
			FUZZ_CHECK(n * (uint64_t)dtype_size(t->dtype) == t->nbytes, "tensor '%s': %llu bytes for its shape",
				   t->name, (unsigned long long)t->nbytes);
			FUZZ_CHECK(i == 0 || strcmp(s.tensors[i - 1].name, t->name) < 0, "tensors not sorted or repeated");
		}
	}
	/* the set owns nothing else here: names and the table */
	for (int64_t i = 0; i < s.n_tensors; i++)
		free((char *)s.tensors[i].name);
	free(s.tensors);
	return 0;
}
