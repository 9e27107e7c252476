/* test-fault.c - allocation failures, swept (SQLite's fault simulation):
 * the Nth allocation of a path fails, for N over every allocation the path
 * makes (each one up to FULL, then an even stride), and the path must report
 * HEARTH_ENOMEM with a message, or absorb the failure and still give the
 * right result; never crash, hang or leak. The leak check is LeakSanitizer's
 * at the end of the test's process (make test's sanitized pass); a crash or a
 * hang fails the test through the runner.
 *
 * Paths: loading a model (full and vocabulary-only, SentencePiece and
 * byte-level BPE, packed weights), tokenizing and detokenizing (whole and
 * streamed) over each kind of vocabulary, a scheduler serving two
 * requests from hearth_sched_new to the last event, and a context decoding
 * without one. */
#include <stdlib.h>

#include "../fault.h"
#include "../harness.h"

/* ---- model load ------------------------------------------------------------ */

struct load_case {
	const char *rel;
	bool vocab_only;
	int32_t n_vocab, n_layer; /* from the first run */
	int32_t ids[8], n_ids;
};

static int path_load(void *ctx, bool first, struct hearth_err *err)
{
	struct load_case *c = ctx;
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_model *m = (struct hearth_model *)&p; /* must come back NULL on failure */
	p.vocab_only = c->vocab_only;
	int rc = hearth_model_load(&m, fixture(c->rel), &p, err);
	fault_disarm();
	if (rc)
		return m == NULL ? rc : FAULT_WRONG;
	int32_t *ids = NULL, n = 0;
	struct hearth_err e2 = { 0 };
	bool ok = hearth_tokenize(m, "Once upon a time", 16, true, false, &ids, &n, &e2) == 0 && n <= 8;
	if (ok && first) {
		c->n_vocab = hearth_model_n_vocab(m);
		c->n_layer = hearth_model_n_layer(m);
		c->n_ids = n;
		memcpy(c->ids, ids, (size_t)n * sizeof *ids);
	}
	ok = ok && c->n_vocab == hearth_model_n_vocab(m) && c->n_layer == hearth_model_n_layer(m) && n == c->n_ids &&
	     memcmp(ids, c->ids, (size_t)n * sizeof *ids) == 0;
	free(ids);
	hearth_model_free(m);
	return ok ? 0 : FAULT_WRONG;
}

void test_fault_model_load(void)
{
	static struct load_case cases[] = {
		{ .rel = "models/stories260K.f32.gguf", .vocab_only = false },
		{ .rel = "models/stories260K.f32.gguf", .vocab_only = true },
		{ .rel = "models/tiny-qwen2.q8_0.gguf", .vocab_only = false }, /* BPE, packed q8_0 weights */
		{ .rel = "models/tiny-qwen3moe.q4_k_m.gguf", .vocab_only = false }, /* experts: views, packed slices */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char what[128];
		snprintf(what, sizeof what, "load %s%s", strrchr(cases[i].rel, '/') + 1,
			 cases[i].vocab_only ? " (vocab)" : "");
		fault_sweep(what, path_load, &cases[i]);
	}
}

/* ---- tokenization ----------------------------------------------------------- */

/* Special-token text, invalid UTF-8, a character NFC composes, Chinese, a
 * long word and enough words that every growing buffer grows. */
static const char tok_text[] =
	"<|im_start|>user\nHello w\xc3\xb6rld e\xcc\x81t\xc3\xa9 \xff\xfe bad \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c"
	"\xe4\xb8\x96\xe7\x95\x8c\xef\xbc\x81 Pneumonoultramicroscopicsilicovolcanoconiosis 12345 <s> \t\n"
	"The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. "
	"The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. "
	"The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.<|im_end|>";

struct tok_case {
	const char *rel;
	struct hearth_model *m;
	int32_t *ids; /* from the first run */
	int32_t n_ids;
	char *text;   /* detokenized, from the first run */
	size_t text_len;
};

static int path_tokenize(void *ctx, bool first, struct hearth_err *err)
{
	struct tok_case *c = ctx;
	int32_t *ids = (int32_t *)&c->n_ids, n = -1; /* must come back NULL, 0 on failure */
	int rc = hearth_tokenize(c->m, tok_text, sizeof tok_text - 1, true, true, &ids, &n, err);
	fault_disarm();
	if (rc)
		return ids == NULL && n == 0 ? rc : FAULT_WRONG;
	if (first) {
		c->ids = ids;
		c->n_ids = n;
		return 0;
	}
	bool ok = n == c->n_ids && memcmp(ids, c->ids, (size_t)n * sizeof *ids) == 0;
	free(ids);
	return ok ? 0 : FAULT_WRONG;
}

/* With a limit half way: the refusal's early exit must unwind as cleanly. */
static int path_tokenize_refused(void *ctx, bool first, struct hearth_err *err)
{
	struct tok_case *c = ctx;
	int32_t *ids = (int32_t *)&c->n_ids, n = -1;
	(void)first;
	int rc = hearth_tokenize_max(c->m, tok_text, sizeof tok_text - 1, true, true, c->n_ids / 2, &ids, &n, err);
	fault_disarm();
	if (rc == HEARTH_ETOOBIG && ids == NULL && n == 0)
		return 0;
	if (rc == 0)
		free(ids);
	return rc == HEARTH_ENOMEM && ids == NULL && n == 0 ? rc : FAULT_WRONG;
}

static int path_detokenize(void *ctx, bool first, struct hearth_err *err)
{
	struct tok_case *c = ctx;
	char *s = (char *)c;
	size_t len = 0;
	int rc = hearth_detokenize(c->m, c->ids, c->n_ids, true, &s, &len, err);
	fault_disarm();
	if (rc)
		return s == NULL ? rc : FAULT_WRONG;
	if (first) {
		c->text = s;
		c->text_len = len;
		return 0;
	}
	bool ok = len == c->text_len && memcmp(s, c->text, len) == 0;
	free(s);
	return ok ? 0 : FAULT_WRONG;
}

/* Streamed: the pieces must add up to the whole text. */
static int path_detok_stream(void *ctx, bool first, struct hearth_err *err)
{
	struct tok_case *c = ctx;
	struct hearth_detok *d = (struct hearth_detok *)c;
	char out[4096];
	size_t o = 0, k;
	(void)first;
	int rc = hearth_detok_new(&d, c->m, true, err);
	if (rc) {
		fault_disarm();
		return d == NULL ? rc : FAULT_WRONG;
	}
	for (int32_t i = 0; i <= c->n_ids; i++) {
		const char *p = i < c->n_ids ? hearth_detok_push(d, c->ids[i], &k) : hearth_detok_flush(d, &k);
		if (o + k <= sizeof out)
			memcpy(out + o, p, k);
		o += k;
	}
	hearth_detok_free(d);
	fault_disarm();
	return o == c->text_len && memcmp(out, c->text, o) == 0 ? 0 : FAULT_WRONG;
}

void test_fault_tokenize(void)
{
	static struct tok_case cases[] = {
		{ .rel = "vocab/hf-qwen3.vocab.gguf" },          /* byte-level BPE with NFC */
		{ .rel = "vocab/hf-llama3.vocab.gguf" },         /* byte-level BPE, ignore_merges */
		{ .rel = "vocab/hf-deepseek-v3.vocab.gguf" },    /* a chain of three regexes */
		{ .rel = "vocab/ggml-vocab-llama-spm.gguf" },    /* SentencePiece, pairs from scores */
		{ .rel = "vocab/ggml-vocab-falcon.gguf" },       /* byte-level BPE, no NFC, four regexes */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tok_case *c = &cases[i];
		struct hearth_model_params p = hearth_model_default_params();
		struct hearth_err err = { 0 };
		char what[128];
		p.vocab_only = true;
		T_OK(hearth_model_load(&c->m, fixture(c->rel), &p, &err), err);
		if (!c->m)
			continue;
		const char *name = strrchr(c->rel, '/') + 1;
		snprintf(what, sizeof what, "tokenize %s", name);
		fault_sweep(what, path_tokenize, c);
		if (c->ids) {
			snprintf(what, sizeof what, "tokenize %s, refused", name);
			fault_sweep(what, path_tokenize_refused, c);
			snprintf(what, sizeof what, "detokenize %s", name);
			fault_sweep(what, path_detokenize, c);
		}
		if (c->text) {
			snprintf(what, sizeof what, "detokenize streamed %s", name);
			fault_sweep(what, path_detok_stream, c);
		}
		free(c->ids);
		free(c->text);
		hearth_model_free(c->m);
	}
}

/* ---- a scheduler's request, start to end --------------------------------- */

enum { N_REQ = 2, MAX_GEN = 12 };

struct sched_case {
	struct hearth_model *m;
	int32_t *prompt[N_REQ], n_prompt[N_REQ];
	int32_t want[N_REQ][MAX_GEN + 1], n_want[N_REQ]; /* from the first run */
};

/* A request that ended with HEARTH_FINISH_ERROR: the scheduler's report of
 * an allocation that failed on its thread. */
static int finish_error(struct hearth_err *err)
{
	err->code = HEARTH_ENOMEM;
	snprintf(err->msg, sizeof err->msg, "a request ended with HEARTH_FINISH_ERROR");
	return HEARTH_ENOMEM;
}

/* Reads r's events to the end into ids; the finish reason, or -1 when no
 * event came for 30 s. */
static int read_all(struct hearth_request *r, int32_t *ids, int32_t *n)
{
	struct hearth_token_event ev;
	int finish = 0, rc;
	*n = 0;
	while ((rc = hearth_request_next(r, &ev, 30000)) == 0) {
		if (ev.id >= 0 && *n <= MAX_GEN)
			ids[(*n)++] = ev.id;
		if (ev.finish)
			finish = ev.finish;
	}
	return rc == HEARTH_ETIMEDOUT ? -1 : finish;
}

static int path_sched(void *ctx, bool first, struct hearth_err *err)
{
	struct sched_case *c = ctx;
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_sched *s = (struct hearth_sched *)c;
	struct hearth_request *r[N_REQ] = { NULL };
	int rc, result = 0;
	sp.n_parallel = 2;
	sp.n_ctx_seq = 64;
	sp.n_batch = 8; /* prompts in chunks */
	sp.block_size = 8;
	sp.n_threads = 1;
	if ((rc = hearth_sched_new(&s, c->m, &sp, err))) {
		fault_disarm();
		return s == NULL ? rc : FAULT_WRONG;
	}
	for (int i = 0; i < N_REQ && !result; i++) {
		struct hearth_request_params p = hearth_request_default_params();
		p.prompt = c->prompt[i];
		p.n_prompt = c->n_prompt[i];
		p.max_tokens = MAX_GEN;
		p.sampling.temp = 0;
		p.top_logprobs = i; /* the second asks for logprobs */
		r[i] = (struct hearth_request *)c;
		if ((rc = hearth_sched_submit(s, &p, &r[i], err)))
			result = r[i] == NULL ? rc : FAULT_WRONG;
	}
	for (int i = 0; i < N_REQ; i++) {
		int32_t ids[MAX_GEN + 1], n;
		if (!r[i] || result)
			continue;
		int finish = read_all(r[i], ids, &n);
		if (finish == HEARTH_FINISH_ERROR) {
			result = finish_error(err);
			continue;
		}
		if (first) {
			memcpy(c->want[i], ids, sizeof ids);
			c->n_want[i] = n;
		}
		if (finish != HEARTH_FINISH_LENGTH || n != c->n_want[i] || memcmp(ids, c->want[i], (size_t)n * sizeof *ids))
			result = FAULT_WRONG;
	}
	for (int i = 0; i < N_REQ; i++)
		hearth_request_free(r[i] == (struct hearth_request *)c ? NULL : r[i]);
	hearth_sched_free(s);
	fault_disarm();
	return result;
}

/* A context, without the scheduler: a prompt, then greedy tokens one by one. */
static int path_context(void *ctx, bool first, struct hearth_err *err)
{
	struct sched_case *c = ctx;
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *x = (struct hearth_context *)c;
	int32_t ids[MAX_GEN], n = 0;
	int rc;
	cp.n_ctx = 64;
	cp.n_batch = 8;
	cp.n_threads = 2; /* a worker thread too */
	if ((rc = hearth_context_new(&x, c->m, &cp, err))) {
		fault_disarm();
		return x == NULL ? rc : FAULT_WRONG;
	}
	rc = hearth_decode(x, c->prompt[0], c->n_prompt[0], false, err);
	while (!rc && n < MAX_GEN) {
		const float *l = hearth_get_logits(x, -1);
		int32_t best = 0;
		for (int32_t i = 1; i < hearth_model_n_vocab(c->m); i++)
			best = l[i] > l[best] ? i : best;
		ids[n++] = best;
		rc = hearth_decode(x, &best, 1, false, err);
	}
	hearth_context_free(x);
	fault_disarm();
	if (rc)
		return rc;
	if (first)
		memcpy(c->want[0], ids, sizeof ids);
	return memcmp(ids, c->want[0], sizeof ids) ? FAULT_WRONG : 0;
}

void test_fault_sched(void)
{
	static const char *const texts[N_REQ] = { "Once upon a time", "Tom had a red ball. He" };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	static struct sched_case c;
	T_OK(hearth_model_load(&c.m, fixture("models/stories260K.f32.gguf"), &mp, &err), err);
	if (!c.m)
		return;
	for (int i = 0; i < N_REQ; i++)
		T_OK(hearth_tokenize(c.m, texts[i], strlen(texts[i]), true, false, &c.prompt[i], &c.n_prompt[i], &err), err);
	fault_sweep("scheduler: two requests to their end", path_sched, &c);
	fault_sweep("context: a prompt and greedy tokens", path_context, &c);
	for (int i = 0; i < N_REQ; i++)
		free(c.prompt[i]);
	hearth_model_free(c.m);
}

/* ---- a grammar: a JSON Schema converted, compiled and given to a sampler ---- */

struct grammar_case {
	struct hearth_model *m;
	char *gbnf; /* from the first run */
};

static const char fault_schema[] =
	"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},\"n\":{\"type\":\"integer\","
	"\"minimum\":-3,\"maximum\":250},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]},\"maxItems\":3},"
	"\"when\":{\"type\":\"string\",\"format\":\"date\"},\"code\":{\"type\":\"string\",\"pattern\":\"^[a-z]{2}\\\\d$\"},"
	"\"tree\":{\"$ref\":\"#/$defs/node\"}},\"required\":[\"name\",\"n\"],"
	"\"$defs\":{\"node\":{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}]}}}";

static int path_grammar(void *ctx, bool first, struct hearth_err *err)
{
	struct grammar_case *c = ctx;
	char *gbnf = NULL;
	struct hearth_grammar *g = NULL;
	struct hearth_sampler *s = NULL;
	struct hearth_sampler_params p = hearth_sampler_default_params();
	int rc = hearth_json_schema_to_gbnf(fault_schema, strlen(fault_schema), "root", &gbnf, err);
	if (!rc)
		rc = hearth_grammar_new(c->m, gbnf, strlen(gbnf), NULL, &g, err);
	if (!rc)
		rc = hearth_sampler_new(&s, &p, hearth_model_n_vocab(c->m), err);
	if (!rc)
		rc = hearth_sampler_set_grammar(s, g, "</think>", err);
	fault_disarm();
	if (!rc && first)
		c->gbnf = strdup(gbnf);
	else if (!rc && (!c->gbnf || strcmp(c->gbnf, gbnf)))
		rc = FAULT_WRONG;
	hearth_sampler_free(s);
	hearth_grammar_free(g);
	free(gbnf);
	return rc;
}

void test_fault_grammar(void)
{
	struct hearth_model_params p = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct grammar_case c = { 0 };
	p.vocab_only = true;
	T_OK(hearth_model_load(&c.m, fixture("models/tiny-qwen2.f32.gguf"), &p, &err), err);
	if (c.m)
		fault_sweep("json schema, grammar, sampler", path_grammar, &c);
	free(c.gbnf);
	hearth_model_free(c.m);
}

/* The same two paths on a model with sliding windows (tiny-gemma3: the
 * cache's local pool, per-batch block reservation). */
void test_fault_swa(void)
{
	static const char *const texts[N_REQ] = { "Once upon a time", "Tom had a red ball. He" };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	static struct sched_case c;
	T_OK(hearth_model_load(&c.m, fixture("models/tiny-gemma3.f32.gguf"), &mp, &err), err);
	if (!c.m)
		return;
	for (int i = 0; i < N_REQ; i++)
		T_OK(hearth_tokenize(c.m, texts[i], strlen(texts[i]), true, false, &c.prompt[i], &c.n_prompt[i], &err), err);
	fault_sweep("scheduler, sliding windows: two requests", path_sched, &c);
	fault_sweep("context, sliding windows: prompt and tokens", path_context, &c);
	for (int i = 0; i < N_REQ; i++)
		free(c.prompt[i]);
	hearth_model_free(c.m);
}
