/* grammar-mask - what following a grammar costs per generated token, on
 * Qwen3's 151k-token vocabulary.
 *
 *   build/grammar-mask [VOCAB.gguf] [STEPS]
 *
 * For each grammar (any JSON object, a nested schema with enums and arrays,
 * a string-heavy schema, a GBNF tool call) it generates valid documents
 * token by token (restarting when one completes) and times, per token:
 *   sample: hearth_sampler_sample + hearth_sampler_accept under the grammar,
 *           minus the same sampler without a grammar on the same logits,
 *           with random logits ("random") and with logits that put every
 *           token the grammar refuses above every token it allows ("worst":
 *           the first draw is always refused, so every token needs the mask,
 *           served by the per-state cache when the state was seen before);
 *   mask:   the full mask of the state, uncached (gmask_compute).
 * Prints the median and p99 next to the 12.8 ms a Qwen2.5-0.5B token takes
 * on this machine (the budget is 10% of it). Not run in CI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/grammar/grammar.h"
#include "hearth.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n ? v[(int)((n - 1) * p)] : 0;
}

static uint64_t rng_state = 88172645463325252ULL;
static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)(rng_state >> 40) / (float)(1 << 24);
}

static const char *const schemas[] = {
	"{\"type\":\"object\"}",
	"{\"type\":\"object\",\"properties\":{\"user\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\","
	"\"minimum\":1,\"maximum\":100000},\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\"]},\"tags\":{\"type\":"
	"\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"maxItems\":4}},\"required\":[\"id\",\"role\"],"
	"\"additionalProperties\":false},\"events\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
	"\"kind\":{\"enum\":[\"click\",\"view\"]},\"at\":{\"type\":\"string\",\"format\":\"date-time\"},\"score\":{"
	"\"type\":\"number\"}},\"required\":[\"kind\",\"at\"],\"additionalProperties\":false},\"maxItems\":3}},"
	"\"required\":[\"user\",\"events\"],\"additionalProperties\":false}",
	"{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\",\"maxLength\":80},\"summary\":{\"type\":"
	"\"string\",\"maxLength\":400},\"body\":{\"type\":\"string\"},\"notes\":{\"type\":\"array\",\"items\":{\"type\":"
	"\"string\"},\"maxItems\":3}},\"required\":[\"title\",\"summary\",\"body\",\"notes\"],\"additionalProperties\":false}",
};
static const char *const names[] = { "json_object", "nested schema (enums, arrays)", "string-heavy schema",
				     "tool call (GBNF)" };
static const char tool_gbnf[] =
	"root ::= \"<tool_call>\\n{\\\"name\\\": \\\"\" name \"\\\", \\\"arguments\\\": \" args \"}\\n</tool_call>\"\n"
	"name ::= \"get_weather\" | \"search_web\" | \"send_email\"\n"
	"args ::= \"{\" ws (pair (\",\" ws pair)*)? ws \"}\"\n"
	"pair ::= str ws \":\" ws val\n"
	"val ::= str | num | \"true\" | \"false\" | \"null\" | args | \"[\" ws (val (\",\" ws val)*)? ws \"]\"\n"
	"str ::= \"\\\"\" ([^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\nt])* \"\\\"\"\n"
	"num ::= \"-\"? [0-9]{1,12} (\".\" [0-9]{1,6})?\n"
	"ws ::= \" \"?\n";

struct stats {
	double *v;
	int n;
};

/* Runs steps tokens under g; worst: logits prefer refused tokens. */
static void run(const struct hearth_model *m, const struct hearth_grammar *g, int steps, bool worst, struct stats *cost,
		struct stats *base, struct stats *mask)
{
	struct hearth_err err = { 0 };
	const int32_t V = hearth_model_n_vocab(m);
	float *l = malloc((size_t)V * sizeof *l);
	uint32_t *bits = malloc((size_t)(V + 31) / 32 * sizeof *bits);
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_sampler *s = NULL, *plain = NULL;
	struct gmatch mt;
	hearth_sampler_new(&s, &p, V, &err);
	hearth_sampler_new(&plain, &p, V, &err);
	hearth_sampler_set_grammar(s, g, NULL, &err);
	gmatch_init(&mt, g->g, &err);
	for (int t = 0; t < steps; t++) {
		double t0 = now();
		gmask_compute(&mt, g->v, bits);
		if (mask)
			mask->v[mask->n++] = now() - t0;
		for (int32_t i = 0; i < V; i++) {
			const bool ok = (bits[i >> 5] >> (i & 31)) & 1;
			l[i] = 4 * frand() + (worst && !ok ? 10 : 0);
		}
		t0 = now();
		(void)hearth_sampler_sample(plain, l);
		const double tb = now() - t0;
		t0 = now();
		const int32_t id = hearth_sampler_sample(s, l);
		hearth_sampler_accept(s, id);
		const double tg = now() - t0;
		cost->v[cost->n++] = tg - tb;
		base->v[base->n++] = tb;
		if (hearth_token_is_eog(m, id) || hearth_sampler_grammar_done(s) || g->v->kind[id] != GV_TEXT ||
		    !gmatch_feed(&mt, g->v->bytes + g->v->off[id], g->v->len[id])) {
			/* a document ended (or could not go on): start the next */
			hearth_sampler_set_grammar(s, g, NULL, &err);
			gmatch_release(&mt);
			gmatch_init(&mt, g->g, &err);
		}
	}
	gmatch_release(&mt);
	hearth_sampler_free(s);
	hearth_sampler_free(plain);
	free(l);
	free(bits);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "../shared/fixtures/vocab/hf-qwen3.vocab.gguf";
	const int steps = argc > 2 ? atoi(argv[2]) : 150;
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_model *m = NULL;
	struct hearth_err err = { 0 };
	mp.vocab_only = true;
	if (hearth_model_load(&m, path, &mp, &err)) {
		fprintf(stderr, "grammar-mask: %s\n", err.msg);
		return 1;
	}
	printf("vocabulary: %s, %d tokens; %d tokens per grammar and case; ms per token (median / p99)\n", path,
	       hearth_model_n_vocab(m), steps);
	printf("%-30s %8s %17s %17s %17s %17s\n", "grammar", "compile", "sample, random", "sample, worst",
	       "mask, uncached", "plain sampler");
	for (int k = 0; k < 4; k++) {
		char *gbnf = NULL;
		struct hearth_grammar *g = NULL;
		double t0 = now();
		if ((k < 3 && hearth_json_schema_to_gbnf(schemas[k], strlen(schemas[k]), "root", &gbnf, &err)) ||
		    hearth_grammar_new(m, k < 3 ? gbnf : tool_gbnf, strlen(k < 3 ? gbnf : tool_gbnf), NULL, &g, &err)) {
			fprintf(stderr, "grammar-mask: %s: %s\n", names[k], err.msg);
			return 1;
		}
		const double t_compile = now() - t0;
		struct stats c1 = { calloc((size_t)steps, sizeof(double)), 0 }, c2 = { calloc((size_t)steps, sizeof(double)), 0 };
		struct stats b1 = { calloc((size_t)steps, sizeof(double)), 0 }, b2 = { calloc((size_t)steps, sizeof(double)), 0 };
		struct stats mk = { calloc((size_t)steps, sizeof(double)), 0 };
		run(m, g, steps, false, &c1, &b1, NULL);
		run(m, g, steps, true, &c2, &b2, &mk);
		printf("%-30s %6.1fms %7.3f / %7.3f %7.3f / %7.3f %7.3f / %7.3f %7.3f / %7.3f\n", names[k], 1e3 * t_compile,
		       1e3 * pct(c1.v, c1.n, 0.5), 1e3 * pct(c1.v, c1.n, 0.99), 1e3 * pct(c2.v, c2.n, 0.5),
		       1e3 * pct(c2.v, c2.n, 0.99), 1e3 * pct(mk.v, mk.n, 0.5), 1e3 * pct(mk.v, mk.n, 0.99),
		       1e3 * pct(b1.v, b1.n, 0.5), 1e3 * pct(b1.v, b1.n, 0.99));
		double m1 = 0, m2 = 0;
		for (int i = 0; i < c1.n; i++)
			m1 += c1.v[i] / c1.n;
		for (int i = 0; i < c2.n; i++)
			m2 += c2.v[i] / c2.n;
		printf("%-30s %8s mean: random %.3f ms = %.1f%%, worst %.3f ms = %.1f%% of a 12.8 ms token\n", "", "",
		       1e3 * m1, 100 * 1e3 * m1 / 12.8, 1e3 * m2, 100 * 1e3 * m2 / 12.8);
		free(c1.v);
		free(c2.v);
		free(b1.v);
		free(b2.v);
		free(mk.v);
		free(gbnf);
		hearth_grammar_free(g);
	}
	hearth_model_free(m);
	return 0;
}
