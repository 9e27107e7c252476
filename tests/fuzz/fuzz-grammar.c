/* fuzz-grammar.c - libFuzzer target: GBNF text and JSON schemas from arbitrary bytes.
 *
 * An input is one flag byte, then the text:
 *   bit 0  the text is a JSON Schema (converted to GBNF first), else GBNF
 *   bits 1-7  the seed of the logits of the sampling steps
 * A grammar that compiles (against the vocabulary of tiny-qwen2: 2051 tokens)
 * is followed by a sampler for a few tokens with logits drawn from the seed,
 * and the text itself is fed to a matcher byte by byte.
 *
 * Properties checked, besides the sanitizers and libFuzzer's time and memory
 * limits (bounded work):
 *  - every error is a negative code with a message;
 *  - a schema that converts gives GBNF that compiles (or is refused only for
 *    its size: HEARTH_ETOOBIG), with its start rule named by the prefix;
 *  - the sampler returns only tokens the grammar takes (checked by feeding
 *    each token's bytes to a matcher of its own), and an end-of-generation
 *    token only where the grammar may end (or gave up on a state too costly
 *    to mask).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/grammar/grammar.h"
#include "common.h"

#define MAX_TEXT 4096
#define STEPS 8

static struct hearth_model *model;
static float *logits;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_err err = { 0 };
	(void)argc;
	(void)argv;
	hearth_log_set(NULL, NULL);
	p.vocab_only = true;
	if (hearth_model_load(&model, fuzz_fixture("models/tiny-qwen2.f32.gguf"), &p, &err)) {
		fprintf(stderr, "fuzz-grammar: %s\n", err.msg);
		abort();
	}
	logits = malloc((size_t)hearth_model_n_vocab(model) * sizeof *logits);
	if (!logits)
		abort();
	return 0;
}

static void follow(const struct hearth_grammar *g, uint64_t seed)
{
	struct hearth_err err = { 0 };
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_sampler *s = NULL;
	struct gmatch check;
	const int32_t V = hearth_model_n_vocab(model);
	p.seed = seed;
	p.temp = (seed & 1) ? 0 : 1.2f;
	if (hearth_sampler_new(&s, &p, V, &err) || gmatch_init(&check, g->g, &err)) {
		hearth_sampler_free(s);
		return;
	}
	FUZZ_CHECK(!hearth_sampler_set_grammar(s, g, NULL, &err), "set_grammar: %s", err.msg);
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (int t = 0; t < STEPS && !hearth_sampler_grammar_done(s); t++) {
		for (int32_t i = 0; i < V; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			logits[i] = (float)(x >> 40) / (float)(1 << 22);
		}
		const int32_t id = hearth_sampler_sample(s, logits);
		if (hearth_token_is_eog(model, id)) {
			/* the grammar may also have ended because a state was too costly to mask (grammar.h) */
			FUZZ_CHECK(gmatch_can_end(&check) || check.overflow || hearth_sampler_grammar_done(s),
				   "end of generation where the grammar cannot end");
			break;
		}
		FUZZ_CHECK(g->v->kind[id] == GV_TEXT, "token %d is not text", id);
		const bool ok = gmatch_feed(&check, g->v->bytes + g->v->off[id], g->v->len[id]);
		FUZZ_CHECK(ok || check.overflow, "the sampler returned token %d, which the grammar refuses", id);
		if (!ok)
			break;
		hearth_sampler_accept(s, id);
	}
	gmatch_release(&check);
	hearth_sampler_free(s);
}

static void match_text(const struct hearth_grammar *g, const uint8_t *s, size_t n)
{
	struct hearth_err err = { 0 };
	struct gmatch m;
	if (gmatch_init(&m, g->g, &err))
		return;
	for (size_t i = 0; i < n && gmatch_feed(&m, s + i, 1); i++)
		;
	(void)gmatch_can_end(&m);
	gmatch_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_err err = { 0 };
	if (size < 1 || size > MAX_TEXT)
		return 0;
	const bool schema = data[0] & 1;
	const char *text = (const char *)data + 1;
	const size_t len = size - 1;
	char *gbnf = NULL;
	struct hearth_grammar *g = NULL;
	int rc;
	if (schema) {
		rc = hearth_json_schema_to_gbnf(text, len, "s", &gbnf, &err);
		if (rc) {
			fuzz_check_err(rc, &err, NULL);
			return 0;
		}
		FUZZ_CHECK(!strncmp(gbnf, "s ::= ", 6) || strstr(gbnf, "\ns ::= "), "no start rule named s:\n%s", gbnf);
		rc = hearth_grammar_new(model, gbnf, strlen(gbnf), "s", &g, &err);
		FUZZ_CHECK(!rc || rc == HEARTH_ETOOBIG, "converted GBNF does not compile: %s\n%s", err.msg, gbnf);
	} else {
		rc = hearth_grammar_new(model, text, len, NULL, &g, &err);
	}
	if (rc) {
		fuzz_check_err(rc, &err, NULL);
	} else {
		follow(g, data[0] >> 1);
		match_text(g, (const uint8_t *)text, len < 1024 ? len : 1024);
	}
	hearth_grammar_free(g);
	free(gbnf);
	return 0;
}
