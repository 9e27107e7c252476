/* test-grammar.c - GBNF: parsing (and its error messages), matching over
 * UTF-8 bytes (partial sequences too), repetition bounds, recursion; the
 * token mask against a token-by-token check on Qwen3's vocabulary; the
 * sampler under a grammar. */
#include <stdlib.h>

#include "../../src/grammar/grammar.h"
#include "../../src/grammar/sbuf.h"
#include "../harness.h"

/* Does the grammar take the whole text (fed in chunks of `chunk` bytes)? -1 when it does not parse. */
static int matches_chunked(const char *gbnf, const char *text, size_t chunk)
{
	struct hearth_err err = { 0 };
	struct gram *g = NULL;
	struct gmatch m;
	if (gram_parse(gbnf, strlen(gbnf), NULL, &g, &err)) {
		T_FAIL("grammar did not parse: %s", err.msg);
		return -1;
	}
	int ok = 0;
	if (!gmatch_init(&m, g, &err)) {
		ok = 1;
		for (size_t i = 0, n = strlen(text); ok && i < n; i += chunk)
			ok = gmatch_feed(&m, (const uint8_t *)text + i, n - i < chunk ? n - i : chunk);
		ok = ok && gmatch_can_end(&m);
		gmatch_release(&m);
	}
	gram_free(g);
	return ok;
}

static int matches(const char *gbnf, const char *text)
{
	int a = matches_chunked(gbnf, text, 1), b = matches_chunked(gbnf, text, 1000);
	if (a != b)
		T_FAIL("byte by byte and whole differ on \"%s\"", text);
	return a;
}

/* Parses bad grammar text and checks the message holds want. */
static void parse_fails(const char *gbnf, const char *want)
{
	struct hearth_err err = { 0 };
	struct gram *g = NULL;
	int rc = gram_parse(gbnf, strlen(gbnf), NULL, &g, &err);
	if (!rc) {
		T_FAIL("grammar \"%s\" parsed", gbnf);
		gram_free(g);
		return;
	}
	if (!strstr(err.msg, want))
		T_FAIL("grammar \"%s\": message \"%s\" lacks \"%s\"", gbnf, err.msg, want);
}

void test_grammar_parse(void)
{
	static const char *good[] = {
		"root ::= \"a\"",
		"root ::= a b\na ::= \"x\" # comment\nb ::= [0-9]+",
		"root ::= (\"a\" | \"b\")* \"c\"?",
		"root ::=\n  \"{\" ws (\n    item\n    (\",\" ws item)*\n  )? \"}\"\nitem ::= [a-z]\nws ::= [ \\t\\n]*",
		"root ::= \"\\x41\\u00e9\\U0001F600\\n\\t\\\\\\\"\"",
		"root ::= [^\\]\\[\"] . [\\x00-\\x1f]",
		"root ::= x{3} x{2,} x{1,4} x{,2}\nx ::= \"x\"",
		"root ::= \"\"",
		"root ::= a\n  | b\na ::= \"a\"\nb ::= \"b\"",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		struct hearth_err err = { 0 };
		struct gram *g = NULL;
		T_OK(gram_parse(good[i], strlen(good[i]), NULL, &g, &err), err);
		gram_free(g);
	}
	parse_fails("root ::= foo", "line 1, column 10: undefined rule 'foo'");
	parse_fails("root ::= \"a\"\n\nx ::= \"\\q\"", "line 3, column 8: bad escape '\\q'");
	parse_fails("root = \"a\"", "line 1, column 6: expected '::='");
	parse_fails("root ::= (\"a\"", "line 1, column 10: unclosed '('");
	parse_fails("root ::= \"a", "unterminated literal");
	parse_fails("root ::= [a-", "unterminated character class");
	parse_fails("root ::= [z-a]", "out of order");
	parse_fails("root ::= \"a\"{3,2}", "n < m");
	parse_fails("root ::= \"a\"{999999}", "too large");
	parse_fails("root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]", "rule 'expr' is left-recursive");
	parse_fails("root ::= a\na ::= b? a \"x\"\nb ::= \"b\"", "rule 'a' is left-recursive");
	parse_fails("root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' defined twice");
	parse_fails("start ::= \"a\"", "no rule named 'root'");
	{ /* a start rule that matches nothing parses but does not compile */
		struct hearth_err e2 = { 0 };
		struct gram *g0 = NULL;
		struct gmatch m0;
		T_OK(gram_parse("root ::= root", 13, NULL, &g0, &e2), e2);
		T_TRUE(g0 && gmatch_init(&m0, g0, &e2) == HEARTH_EINVAL && strstr(e2.msg, "matches nothing"));
		gram_free(g0);
	}
	parse_fails("root ::= \"\\xZ1\"", "bad escape");
	parse_fails("root ::= \"\\uD800\"", "not a Unicode scalar value");
	parse_fails("root ::= \"a\" )", "unmatched ')'");
	parse_fails("root ::= \"\xff\"", "invalid UTF-8");
	/* nesting and expansion bounds */
	char deep[300];
	size_t n = 0;
	n += (size_t)snprintf(deep + n, sizeof deep - n, "root ::= ");
	for (int i = 0; i < 100; i++)
		deep[n++] = '(';
	deep[n] = 0;
	parse_fails(deep, "nested too deeply");
	char *big = malloc(64 * 16 + 32);
	n = (size_t)snprintf(big, 64, "root ::= ");
	for (int i = 0; i < 25; i++) /* 25 x 100000 elements */
		n += (size_t)snprintf(big + n, 64 * 16 + 32 - n, "\"a\"{100000} ");
	parse_fails(big, "too many elements");
	free(big);
	/* a start rule by name */
	struct hearth_err err = { 0 };
	struct gram *g = NULL;
	T_OK(gram_parse("a ::= \"x\"\nb ::= a a", 19, "b", &g, &err), err);
	gram_free(g);
}

void test_grammar_match(void)
{
	T_EQ_I64(matches("root ::= \"ab\" | \"cd\"", "ab"), 1);
	T_EQ_I64(matches("root ::= \"ab\" | \"cd\"", "cd"), 1);
	T_EQ_I64(matches("root ::= \"ab\" | \"cd\"", "ad"), 0);
	T_EQ_I64(matches("root ::= \"ab\" | \"cd\"", "a"), 0); /* a prefix is not the end */
	T_EQ_I64(matches("root ::= \"ab\" | \"cd\"", "abc"), 0);
	/* classes, negation, any */
	T_EQ_I64(matches("root ::= [a-c0-9_]+", "a0_c9"), 1);
	T_EQ_I64(matches("root ::= [a-c0-9_]+", "a0d"), 0);
	T_EQ_I64(matches("root ::= [^\"\\\\]*", "no quotes \xc3\xa9 here"), 1);
	T_EQ_I64(matches("root ::= [^\"\\\\]*", "a\"b"), 0);
	T_EQ_I64(matches("root ::= ...", "x\xe2\x82\xac\xf0\x9f\x98\x80"), 1); /* three code points, 8 bytes */
	T_EQ_I64(matches("root ::= ...", "xy"), 0);
	/* UTF-8 in literals and classes */
	T_EQ_I64(matches("root ::= \"\xc3\xa9t\xc3\xa9\"", "\xc3\xa9t\xc3\xa9"), 1);
	T_EQ_I64(matches("root ::= [\xce\xb1-\xcf\x89]+", "\xce\xbb\xcf\x80"), 1); /* Greek lowercase */
	T_EQ_I64(matches("root ::= [\xce\xb1-\xcf\x89]+", "\xce\x91"), 0);          /* capital alpha */
	T_EQ_I64(matches("root ::= [\\u4e00-\\u9fff]", "\xe4\xb8\xad"), 1);
	T_EQ_I64(matches("root ::= .", "\xc0\x80"), 0);     /* overlong */
	T_EQ_I64(matches("root ::= .", "\xed\xa0\x80"), 0); /* surrogate */
	T_EQ_I64(matches("root ::= .", "\xe4\xb8"), 0);     /* incomplete at the end */
	/* repetition bounds */
	const char *rep = "root ::= \"a\"{2,4} \"b\"{3} \"c\"{1,} \"d\"{,2}";
	T_EQ_I64(matches(rep, "aabbbc"), 1);
	T_EQ_I64(matches(rep, "aaaabbbcccdd"), 1);
	T_EQ_I64(matches(rep, "abbbc"), 0);
	T_EQ_I64(matches(rep, "aaaaabbbc"), 0);
	T_EQ_I64(matches(rep, "aabbc"), 0);
	T_EQ_I64(matches(rep, "aabbb"), 0);
	T_EQ_I64(matches(rep, "aabbbcddd"), 0);
	T_EQ_I64(matches("root ::= (\"ab\" \"c\"?){2}", "abcab"), 1);
	T_EQ_I64(matches("root ::= \"ab\"+", "ababab"), 1);
	T_EQ_I64(matches("root ::= \"ab\"+", "aba"), 0);
	/* recursion, references before definitions, nullable loops */
	const char *par = "root ::= p\np ::= \"(\" p* \")\"";
	T_EQ_I64(matches(par, "(()(()))"), 1);
	T_EQ_I64(matches(par, "(()(())"), 0);
	T_EQ_I64(matches(par, "())"), 0);
	T_EQ_I64(matches("root ::= (\"a\"*)*", "aaaa"), 1);
	T_EQ_I64(matches("root ::= (\"a\"?)* \"b\"", "aab"), 1);
	T_EQ_I64(matches("root ::= (\"a\" | \"\")+ \"b\"", "b"), 1);
	/* ambiguity: both readings kept until one fails */
	const char *amb = "root ::= \"a\"* \"a\" \"b\" | \"a\"+ \"c\"";
	T_EQ_I64(matches(amb, "aaab"), 1);
	T_EQ_I64(matches(amb, "aaac"), 1);
	T_EQ_I64(matches(amb, "b"), 0);
	/* a JSON grammar, as llama.cpp's json.gbnf is laid out */
	const char *json =
		"root   ::= object\n"
		"value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
		"object ::=\n  \"{\" ws (\n            string \":\" ws value\n"
		"    (\",\" ws string \":\" ws value)*\n  )? \"}\" ws\n"
		"array  ::=\n  \"[\" ws (\n            value\n    (\",\" ws value)*\n  )? \"]\" ws\n"
		"string ::=\n  \"\\\"\" (\n    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
		"    \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n  )* \"\\\"\" ws\n"
		"number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
		"ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";
	T_EQ_I64(matches(json, "{\"a\": [1, 2.5, {\"b\": null}], \"c\": \"\\u00e9\xe2\x82\xac\"}"), 1);
	T_EQ_I64(matches(json, "{\"a\": [1, 2.5,]}"), 0);
	T_EQ_I64(matches(json, "{\"a\" 1}"), 0);
}

/* The matcher's refusal of a state set that explodes: every prefix of a's doubles the readings. */
void test_grammar_bounds(void)
{
	struct hearth_err err = { 0 };
	struct gram *g = NULL;
	struct gmatch m;
	/* each "a" can end any of 2000 alternatives: more stacks than the bound */
	char *text = malloc(200000);
	size_t n = (size_t)snprintf(text, 200000, "root ::= x\nx ::= ");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(text + n, 200000 - n, "%s\"a\" [b-z]{%d}", i ? " | " : "", i % 7);
	T_OK(gram_parse(text, n, NULL, &g, &err), err);
	T_TRUE(gmatch_init(&m, g, &err) == HEARTH_ETOOBIG);
	T_TRUE(strstr(err.msg, "parse stacks") != NULL);
	gram_free(g);
	/* an enum of 3000 values stays within the bound: its texts are factored by prefix */
	struct sbuf sch;
	sbuf_init(&sch, 1 << 20);
	sbuf_puts(&sch, "{\"enum\":[");
	for (int i = 0; i < 3000; i++)
		sbuf_printf(&sch, "%s\"v%d\",%d", i ? "," : "", i * 7, i);
	sbuf_puts(&sch, "]}");
	char *gbnf = NULL;
	T_OK(hearth_json_schema_to_gbnf(sch.s, sch.n, "root", &gbnf, &err), err);
	T_OK(gram_parse(gbnf, strlen(gbnf), NULL, &g, &err), err);
	T_OK(gmatch_init(&m, g, &err), err);
	T_TRUE(gmatch_feed(&m, (const uint8_t *)"\"v20993\"", 8) && gmatch_can_end(&m));
	T_TRUE(!gmatch_feed(&m, (const uint8_t *)"1", 1));
	gmatch_release(&m);
	T_OK(gmatch_init(&m, g, &err), err);
	T_TRUE(gmatch_feed(&m, (const uint8_t *)"2999", 4) && gmatch_done(&m));
	gmatch_release(&m);
	T_OK(gmatch_init(&m, g, &err), err);
	T_TRUE(!gmatch_feed(&m, (const uint8_t *)"\"v20994\"", 8)); /* not a member */
	gmatch_release(&m);
	gram_free(g);
	free(gbnf);
	sbuf_free(&sch);
	/* deep recursion stops at the depth bound instead of growing */
	const char *deep = "root ::= p\np ::= \"(\" p? \")\"";
	T_OK(gram_parse(deep, strlen(deep), NULL, &g, &err), err);
	T_OK(gmatch_init(&m, g, &err), err);
	int fed = 0;
	for (int i = 0; i < GM_MAX_DEPTH + 10; i++)
		fed += gmatch_feed(&m, (const uint8_t *)"(", 1);
	T_TRUE(fed < GM_MAX_DEPTH + 10);
	T_TRUE(m.overflow);
	gmatch_release(&m);
	gram_free(g);
	free(text);
}

static const char *json_gbnf =
	"root   ::= object\n"
	"value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
	"object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
	"array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
	"string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
	"number ::= \"-\"? ([0-9] | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,10})? ws\n"
	"ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

/* Walks n_steps random allowed tokens from the start of gbnf, checking at each
 * state the mask against every token's bytes fed to the state one by one. */
static void mask_vs_brute(const struct hearth_model *m, const char *gbnf, int n_steps, int stride, uint64_t seed)
{
	struct hearth_err err = { 0 };
	struct hearth_grammar *g = NULL;
	struct gmatch mt;
	T_OK(hearth_grammar_new(m, gbnf, strlen(gbnf), NULL, &g, &err), err);
	if (!g || gmatch_init(&mt, g->g, &err))
		goto out;
	const struct gvocab *v = g->v;
	uint32_t *bits = calloc((size_t)(v->n_vocab + 31) / 32, sizeof *bits);
	int32_t *allowed = malloc((size_t)v->n_vocab * sizeof *allowed);
	int n_bad = 0;
	for (int step = 0; step < n_steps && bits && allowed; step++) {
		const int32_t n = gmask_compute(&mt, v, bits);
		int32_t n_list = 0;
		for (int32_t id = (int32_t)(lcg(&seed) % (uint64_t)stride); id < v->n_vocab; id += stride) {
			bool want = v->kind[id] == GV_TEXT ? gmatch_allows(&mt, v->bytes + v->off[id], v->len[id])
				    : v->kind[id] == GV_EOG ? gmatch_can_end(&mt) : false;
			bool got = (bits[id >> 5] >> (id & 31)) & 1;
			if (want != got && n_bad++ < 5)
				T_FAIL("step %d: token %d: mask says %d, its bytes say %d", step, id, got, want);
		}
		for (int32_t id = 0; id < v->n_vocab; id++)
			if ((bits[id >> 5] >> (id & 31)) & 1 && v->kind[id] == GV_TEXT)
				allowed[n_list++] = id;
		T_TRUE(n >= n_list);
		if (!n_list)
			break;
		/* prefer short tokens sometimes so that the walk meets partial UTF-8 and many states */
		int32_t pick = allowed[lcg(&seed) % (uint64_t)n_list];
		for (int t = 0; t < 3 && v->len[pick] > 2; t++)
			pick = allowed[lcg(&seed) % (uint64_t)n_list];
		T_TRUE(gmatch_feed(&mt, v->bytes + v->off[pick], v->len[pick]));
	}
	T_EQ_I64(n_bad, 0);
	free(bits);
	free(allowed);
	gmatch_release(&mt);
out:
	hearth_grammar_free(g);
}

void test_grammar_mask(void)
{
	struct hearth_model *m = t_load_vocab("vocab/hf-qwen3.vocab.gguf");
	if (!m)
		return;
	const int stride = t_sanitized() ? 13 : 1;
	mask_vs_brute(m, json_gbnf, t_sanitized() ? 6 : 16, stride, 1);
	/* Chinese and Greek letters: tokens that end inside a character */
	mask_vs_brute(m, "root ::= ([\\u4e00-\\u9fff] | [\xce\xb1-\xcf\x89] | \" \"){1,40} \"!\"", t_sanitized() ? 6 : 16,
		      stride, 2);
	/* bounded strings from a schema: each position its own state (the DFA, the runs of plain characters) */
	const char *schema = "{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"string\",\"maxLength\":10},"
			     "\"u\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":5},\"n\":{\"type\":\"integer\","
			     "\"minimum\":-20,\"maximum\":300}},\"required\":[\"t\",\"u\",\"n\"]}";
	char *gbnf = NULL;
	struct hearth_err err = { 0 };
	T_OK(hearth_json_schema_to_gbnf(schema, strlen(schema), "root", &gbnf, &err), err);
	if (gbnf)
		mask_vs_brute(m, gbnf, t_sanitized() ? 8 : 24, stride, 4);
	free(gbnf);
	/* a literal-heavy grammar with an ending: EOS only at the end */
	mask_vs_brute(m, "root ::= (\"hello\" | \"help\" | \"\xe4\xbd\xa0\xe5\xa5\xbd\") (\", \" (\"world\" | \"there\"))?",
		      6, stride, 3);
	hearth_model_free(m);
}

/* The sampler under a grammar: only allowed tokens, EOS only at the end,
 * the same tokens for the same seed, the masked distribution, a trigger. */
void test_grammar_sampler(void)
{
	struct hearth_model *m = t_load_vocab("vocab/hf-qwen3.vocab.gguf");
	struct hearth_err err = { 0 };
	struct hearth_grammar *g = NULL, *ab = NULL, *x = NULL;
	if (!m)
		return;
	const int32_t V = hearth_model_n_vocab(m);
	float *l = malloc((size_t)V * sizeof *l);
	T_OK(hearth_grammar_new(m, json_gbnf, strlen(json_gbnf), NULL, &g, &err), err);
	struct hearth_sampler_params p = hearth_sampler_default_params();
	p.temp = 1.3f;
	p.seed = 42;
	int32_t seq[2][64];
	int n_seq[2] = { 0, 0 };
	uint64_t rng = 7;
	for (int run = 0; g && l && run < 2; run++) {
		struct hearth_sampler *s = NULL;
		struct gmatch mt;
		T_OK(hearth_sampler_new(&s, &p, V, &err), err);
		T_OK(hearth_sampler_set_grammar(s, g, NULL, &err), err);
		T_OK(gmatch_init(&mt, g->g, &err), err);
		rng = 7;
		for (int t = 0; s && t < 64; t++) {
			for (int32_t i = 0; i < V; i++) /* random logits, some steps pushing toward refused tokens */
				l[i] = (float)(lcg(&rng) % 1000) / 100.0f;
			const int32_t id = hearth_sampler_sample(s, l);
			seq[run][n_seq[run]++] = id;
			if (hearth_token_is_eog(m, id)) {
				T_TRUE(gmatch_can_end(&mt));
				break;
			}
			T_TRUE(g->v->kind[id] == GV_TEXT && gmatch_feed(&mt, g->v->bytes + g->v->off[id], g->v->len[id]));
			hearth_sampler_accept(s, id);
		}
		gmatch_release(&mt);
		hearth_sampler_free(s);
	}
	T_EQ_I64(n_seq[0], n_seq[1]);
	T_TRUE(!memcmp(seq[0], seq[1], (size_t)n_seq[0] * sizeof seq[0][0]));

	/* two allowed tokens: the masked distribution is theirs renormalized */
	const int32_t ta = hearth_token_find(m, "a"), tb = hearth_token_find(m, "b");
	T_OK(hearth_grammar_new(m, "root ::= \"a\" | \"b\"", 18, NULL, &ab, &err), err);
	for (int32_t i = 0; l && i < V; i++)
		l[i] = (float)(lcg(&rng) % 1000) / 250.0f;
	if (l && ta >= 0 && tb >= 0) {
		l[ta] = 1.0f;
		l[tb] = 0.0f;
	}
	p.temp = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0;
	const int n_draw = t_sanitized() ? 300 : 1000;
	int n_a = 0, n_other = 0;
	struct hearth_sampler *s = NULL;
	T_OK(hearth_sampler_new(&s, &p, V, &err), err);
	T_OK(hearth_sampler_set_grammar(s, ab, NULL, &err), err);
	for (int i = 0; s && ab && i < n_draw; i++) {
		int32_t id = hearth_sampler_sample(s, l);
		n_a += id == ta;
		n_other += id != ta && id != tb;
	}
	T_EQ_I64(n_other, 0);
	T_NEAR((double)n_a / n_draw, exp(1.0) / (exp(1.0) + 1.0), t_sanitized() ? 0.09 : 0.05);
	/* after "a" only the end may follow */
	hearth_sampler_accept(s, ta);
	T_TRUE(hearth_sampler_grammar_done(s));
	T_TRUE(hearth_token_is_eog(m, hearth_sampler_sample(s, l)));
	hearth_sampler_free(s);

	/* a trigger: free before "</think>", then the grammar; the rest of the trigger's token goes to it */
	T_OK(hearth_grammar_new(m, "root ::= \"xyz\"", 14, NULL, &x, &err), err);
	s = NULL;
	p.temp = 0;
	T_OK(hearth_sampler_new(&s, &p, V, &err), err);
	T_OK(hearth_sampler_set_grammar(s, x, "</think>", &err), err);
	const int32_t tq = hearth_token_find(m, "q");
	for (int32_t i = 0; l && i < V; i++)
		l[i] = 0;
	if (l && tq >= 0)
		l[tq] = 5;
	T_EQ_I64(hearth_sampler_sample(s, l), tq); /* free */
	int32_t *ids = NULL, n_ids = 0;
	T_OK(hearth_tokenize(m, "<think>ok</think>x", 18, false, false, &ids, &n_ids, &err), err);
	for (int32_t i = 0; s && i < n_ids; i++)
		hearth_sampler_accept(s, ids[i]);
	T_TRUE(!hearth_sampler_grammar_done(s));
	const int32_t next = hearth_sampler_sample(s, l); /* now constrained: "yz" or "y" */
	char piece[16] = { 0 };
	hearth_token_to_piece(m, next, false, piece, sizeof piece - 1);
	T_TRUE(!strcmp(piece, "yz") || !strcmp(piece, "y"));
	free(ids);
	/* a vocabulary of another size is refused */
	struct hearth_sampler *small = NULL;
	T_OK(hearth_sampler_new(&small, &p, 100, &err), err);
	T_TRUE(small && hearth_sampler_set_grammar(small, x, NULL, &err) == HEARTH_EINVAL);
	hearth_sampler_free(small);
	hearth_sampler_free(s);
	hearth_grammar_free(g);
	hearth_grammar_free(ab);
	hearth_grammar_free(x);
	free(l);
	hearth_model_free(m);
}
