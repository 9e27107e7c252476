/* fuzz-state.c - libFuzzer target: the fuzzer's bytes as a saved state file
 * (hearth_state_parse, as hearth_state_read checks a file).
 *
 * Each input is tried twice: as it is (almost always refused by its
 * checksum), and with its trailing SHA-256 recomputed, so that the fuzzer
 * reaches the header and token checks behind the checksum.
 *
 * Checked besides the sanitizers (memory errors, leaks, undefined behaviour):
 *  - a refused input gives a negative code, recorded in err, whose message names the input;
 *  - an accepted one has the size its header implies and every token in the vocabulary.
 * Seeds: tests/fuzz/corpus/state/ (states of a tiny synthetic model, and a
 * crafted one with sliding-window layers, rows from local_from on).
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/base/sha256.h"
#include "../../src/model/state.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_parse(const uint8_t *data, size_t size)
{
	struct hearth_state *st = NULL;
	struct hearth_err err = { 0 };
	int rc = hearth_state_parse(&st, data, size, "fuzz.state", &err);
	if (rc) {
		FUZZ_CHECK(st == NULL, "a refused state was returned");
		fuzz_check_err(rc, &err, "fuzz.state");
		return;
	}
	FUZZ_CHECK(hearth_state_size(st) == size, "accepted %zu bytes as %zu", size, hearth_state_size(st));
	int32_t n = 0;
	const int32_t *t = hearth_state_tokens(st, &n);
	FUZZ_CHECK(n >= 1, "an accepted state with %d tokens", n);
	for (int32_t i = 0; i < n; i++)
		FUZZ_CHECK(t[i] >= 0 && t[i] < st->n_vocab, "token %d is %d", i, t[i]);
	hearth_state_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	try_parse(data, size);
	if (size < 32)
		return 0;
	uint8_t *fixed = malloc(size);
	struct sha256 *h = NULL;
	struct hearth_err err = { 0 };
	if (!fixed || sha256_new(&h, &err)) {
		free(fixed);
		return 0;
	}
	memcpy(fixed, data, size);
	sha256_begin(h);
	sha256_update(h, fixed, size - 32);
	if (sha256_end(h, fixed + size - 32) == 0)
		try_parse(fixed, size);
	sha256_free(h);
	free(fixed);
	return 0;
}
