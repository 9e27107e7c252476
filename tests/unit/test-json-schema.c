/* test-json-schema.c - JSON Schema to grammar: 100 seeded schemas covering
 * every supported keyword, sampled with a random-weight model at temperature
 * 1.0-1.5; every answer that ended because the grammar completed parses and
 * validates (json-validate.c, an independent validator), and every answer
 * cut by max_tokens is completed greedily under the same grammar into a
 * document that validates too (so it was a prefix of a valid one).
 * Unsupported keywords are refused by name. */
#include <jansson.h>
#include <stdlib.h>

#include "../harness.h"
#include "json-validate.h"

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static int pick(uint64_t *s, int n) { return (int)(rnd(s) % (uint64_t)n); }

static json_t *gen_schema(uint64_t *rng, int depth, json_t *defs, int *n_defs);

static json_t *gen_string(uint64_t *rng)
{
	static const char *const pats[] = { "^[a-z]{2,5}$", "^(ab|cd)+\\d$", "^[A-Z][a-z]*-\\d{3}$", "x.y",
					    "^\\w+@\\w+\\.(com|org)$", "^[^\\s,]{1,4}(,[^\\s,]{1,4}){0,2}$", "^\\d{2}:\\d{2}$",
					    "^(?:é|ü)+[0-9a-f]?$" };
	static const char *const fmts[] = { "date", "time", "date-time", "uuid", "email" };
	switch (pick(rng, 4)) {
	case 0: return json_pack("{s:s, s:s}", "type", "string", "description", "a plain string");
	case 1: {
		int lo = pick(rng, 4), hi = lo + pick(rng, 6);
		return json_pack("{s:s, s:i, s:i}", "type", "string", "minLength", lo, "maxLength", hi);
	}
	case 2: return json_pack("{s:s, s:s}", "type", "string", "pattern", pats[pick(rng, 8)]);
	default: return json_pack("{s:s, s:s}", "type", "string", "format", fmts[pick(rng, 5)]);
	}
}

static json_t *gen_number(uint64_t *rng)
{
	json_t *s = json_pack("{s:s}", "type", pick(rng, 3) ? "integer" : "number");
	const bool integer = !strcmp(json_string_value(json_object_get(s, "type")), "integer");
	int lo = pick(rng, 300) - 150, hi = lo + pick(rng, 400);
	switch (pick(rng, 5)) {
	case 0: break;
	case 1: json_object_set_new(s, "minimum", json_integer(lo)); break;
	case 2: json_object_set_new(s, "maximum", json_integer(hi)); break;
	default:
		json_object_set_new(s, "minimum", json_integer(lo));
		json_object_set_new(s, "maximum", json_integer(hi));
	}
	if (integer && pick(rng, 3) == 0) {
		json_object_set_new(s, "exclusiveMinimum", json_integer(lo - 1 + pick(rng, 3)));
		json_object_set_new(s, "exclusiveMaximum", json_integer(hi + 1 + pick(rng, 50)));
	}
	return s;
}

static json_t *gen_enum(uint64_t *rng)
{
	if (pick(rng, 2))
		return json_pack("{s:[s,i,n,b,s]}", "enum", "red", pick(rng, 100), pick(rng, 2), "gr\xc3\xbcn \"q\"");
	switch (pick(rng, 3)) {
	case 0: return json_pack("{s:s}", "const", "fixed");
	case 1: return json_pack("{s:f}", "const", 2.5);
	default: return json_pack("{s:{s:i,s:[b]}}", "const", "k", 1, "l", 1);
	}
}

static const char *const names[] = { "name", "id", "tags", "x", "\xc3\xa9t\xc3\xa9", "a b", "value", "kind" };

static json_t *gen_object(uint64_t *rng, int depth, json_t *defs, int *n_defs)
{
	json_t *props = json_object(), *req = json_array();
	const int n = 1 + pick(rng, 4), off = pick(rng, 8);
	for (int i = 0; i < n; i++) {
		const char *k = names[(off + i) % 8];
		json_object_set_new(props, k, gen_schema(rng, depth + 1, defs, n_defs));
		if (pick(rng, 2))
			json_array_append_new(req, json_string(k));
	}
	json_t *s = json_pack("{s:s, s:o, s:o}", "type", "object", "properties", props, "required", req);
	switch (pick(rng, 4)) {
	case 0: break;
	case 1: json_object_set_new(s, "additionalProperties", json_false()); break;
	case 2: json_object_set_new(s, "additionalProperties", json_true()); break;
	default: json_object_set_new(s, "additionalProperties", json_pack("{s:s}", "type", "integer"));
	}
	return s;
}

static json_t *gen_array(uint64_t *rng, int depth, json_t *defs, int *n_defs)
{
	json_t *s = json_pack("{s:s}", "type", "array");
	const int lo = pick(rng, 3), hi = lo + pick(rng, 3);
	if (pick(rng, 3) == 0) {
		json_t *pre = json_array();
		const int k = 1 + pick(rng, 2);
		for (int i = 0; i < k; i++)
			json_array_append_new(pre, gen_schema(rng, depth + 1, defs, n_defs));
		json_object_set_new(s, "prefixItems", pre);
		json_object_set_new(s, "items", pick(rng, 2) ? json_false() : gen_schema(rng, depth + 1, defs, n_defs));
		json_object_set_new(s, "minItems", json_integer(pick(rng, 2) ? lo < k ? lo : k : 0));
	} else {
		json_object_set_new(s, "items", gen_schema(rng, depth + 1, defs, n_defs));
		json_object_set_new(s, "minItems", json_integer(lo));
		json_object_set_new(s, "maxItems", json_integer(hi));
	}
	return s;
}

static json_t *gen_combo(uint64_t *rng, int depth, json_t *defs, int *n_defs)
{
	switch (pick(rng, 4)) {
	case 0: /* oneOf of disjoint types */
		return json_pack("{s:[o,o,{s:s}]}", "oneOf", gen_string(rng), gen_number(rng), "type", "null");
	case 1:
		return json_pack("{s:[o,o]}", "anyOf", gen_enum(rng), gen_object(rng, depth + 1, defs, n_defs));
	case 2: /* allOf of two objects with disjoint properties */
		return json_pack("{s:[{s:s,s:{s:o},s:[s]},{s:{s:o}}]}", "allOf", "type", "object", "properties", "left",
				 gen_number(rng), "required", "left", "properties", "right", gen_string(rng));
	default: /* a type list */
		return json_pack("{s:[s,s],s:i}", "type", "string", "null", "maxLength", 1 + pick(rng, 6));
	}
}

static json_t *gen_ref(uint64_t *rng, int depth, json_t *defs, int *n_defs)
{
	if (pick(rng, 2) && !json_object_get(defs, "node")) { /* a recursive tree */
		json_object_set_new(defs, "node",
				    json_pack("{s:s,s:{s:{s:s},s:{s:s,s:{s:s},s:i}},s:[s],s:b}", "type", "object",
					      "properties", "v", "type", "integer", "kids", "type", "array", "items",
					      "$ref", "#/$defs/node", "maxItems", 2, "required", "v",
					      "additionalProperties", 0));
		return json_pack("{s:s}", "$ref", "#/$defs/node");
	}
	char key[16];
	snprintf(key, sizeof key, "d%d", (*n_defs)++);
	json_object_set_new(defs, key, gen_schema(rng, depth + 1, defs, n_defs));
	char ref[32];
	snprintf(ref, sizeof ref, "#/$defs/%s", key);
	return json_pack("{s:s}", "$ref", ref);
}

static json_t *gen_schema(uint64_t *rng, int depth, json_t *defs, int *n_defs)
{
	const int k = pick(rng, depth >= 2 ? 5 : 9);
	switch (k) {
	case 0: case 1: return gen_string(rng);
	case 2: return gen_number(rng);
	case 3: return pick(rng, 2) ? json_pack("{s:s}", "type", "boolean") : gen_enum(rng);
	case 4: return pick(rng, 4) ? json_pack("{s:s}", "type", "null") : json_pack("{s:s}", "title", "anything");
	case 5: case 6: return gen_object(rng, depth, defs, n_defs);
	case 7: return pick(rng, 2) ? gen_array(rng, depth, defs, n_defs) : gen_combo(rng, depth, defs, n_defs);
	default: return gen_ref(rng, depth, defs, n_defs);
	}
}

/* One document under schema text st: sampled (max_tokens), then, when cut, finished greedily. */
struct run {
	struct hearth_model *m;
	struct hearth_context *ctx;
	int32_t *prompt;
	int32_t n_prompt;
	float *favor; /* [n_vocab] logits that close things: for finishing cut answers */
};

static const float *prompt_logits(struct run *r, struct hearth_err *err)
{
	hearth_context_truncate(r->ctx, r->n_prompt - 1);
	if (hearth_decode(r->ctx, r->prompt + r->n_prompt - 1, 1, false, err))
		return NULL;
	return hearth_get_logits(r->ctx, -1);
}

static void append_piece(struct run *r, int32_t id, char *text, size_t *n, size_t cap)
{
	char piece[256];
	int k = hearth_token_to_piece(r->m, id, false, piece, sizeof piece);
	if (k > 0 && (size_t)k < sizeof piece && *n + (size_t)k < cap) {
		memcpy(text + *n, piece, (size_t)k);
		*n += (size_t)k;
	}
	text[*n] = 0;
}

/* Returns 0: ended by the grammar; 1: cut, then finished; 2: cut and not finished. */
static int sample_one(struct run *r, const struct hearth_grammar *g, uint64_t seed, float temp, int max_tokens,
		      char *text, size_t cap)
{
	struct hearth_err err = { 0 };
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_sampler *s = NULL, *fin = NULL;
	int32_t ids[512];
	int n_ids = 0, ended = 2;
	size_t n = 0;
	p.temp = temp;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0;
	p.seed = seed;
	text[0] = 0;
	T_OK(hearth_sampler_new(&s, &p, hearth_model_n_vocab(r->m), &err), err);
	T_OK(hearth_sampler_set_grammar(s, g, NULL, &err), err);
	const float *l = prompt_logits(r, &err);
	for (int t = 0; s && l && t < max_tokens; t++) {
		int32_t id = hearth_sampler_sample(s, l);
		if (hearth_token_is_eog(r->m, id)) {
			T_TRUE(hearth_sampler_grammar_done(s) || n > 0);
			ended = 0;
			break;
		}
		hearth_sampler_accept(s, id);
		ids[n_ids++] = id;
		append_piece(r, id, text, &n, cap);
		l = hearth_decode(r->ctx, &id, 1, false, &err) ? NULL : hearth_get_logits(r->ctx, -1);
	}
	if (ended == 2) { /* finish greedily from the same grammar state, rebuilt by accepting the tokens */
		p.temp = 0;
		T_OK(hearth_sampler_new(&fin, &p, hearth_model_n_vocab(r->m), &err), err);
		T_OK(hearth_sampler_set_grammar(fin, g, NULL, &err), err);
		for (int i = 0; fin && i < n_ids; i++)
			hearth_sampler_accept(fin, ids[i]);
		for (int t = 0; fin && t < 400; t++) {
			int32_t id = hearth_sampler_sample(fin, r->favor);
			if (hearth_token_is_eog(r->m, id)) {
				ended = 1;
				break;
			}
			hearth_sampler_accept(fin, id);
			append_piece(r, id, text, &n, cap);
		}
	}
	hearth_sampler_free(s);
	hearth_sampler_free(fin);
	return ended;
}

void test_json_schema_sampled(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct run r = { 0 };
	cp.n_ctx = 640;
	cp.n_threads = 1;
	T_OK(hearth_model_load(&r.m, fixture("models/tiny-qwen2.f32.gguf"), &mp, &err), err);
	if (!r.m)
		return;
	T_OK(hearth_context_new(&r.ctx, r.m, &cp, &err), err);
	T_OK(hearth_tokenize(r.m, "JSON:", 5, true, false, &r.prompt, &r.n_prompt, &err), err);
	const int32_t V = hearth_model_n_vocab(r.m);
	r.favor = malloc((size_t)V * sizeof *r.favor);
	for (int32_t id = 0; r.favor && id < V; id++) {
		char piece[64];
		int k = hearth_token_to_piece(r.m, id, false, piece, sizeof piece);
		bool closes = k > 0 && k < 64 && (memchr(piece, '"', (size_t)k) || memchr(piece, '}', (size_t)k) ||
						  memchr(piece, ']', (size_t)k));
		r.favor[id] = hearth_token_is_eog(r.m, id) ? 100.0f : (closes ? 10.0f : 0.0f) - (float)k;
	}
	const int n_schemas = t_sanitized() ? 30 : 100, max_tokens = t_sanitized() ? 24 : 40;
	int n_ended = 0, n_finished = 0, n_unfinished = 0, n_bad = 0;
	uint64_t rng = 12345;
	char *text = malloc(1 << 16);
	for (int i = 0; r.ctx && text && r.favor && i < n_schemas; i++) {
		json_t *defs = json_object();
		int n_defs = 0;
		json_t *sch = gen_schema(&rng, 0, defs, &n_defs);
		if (json_object_size(defs) && json_is_object(sch))
			json_object_set(sch, "$defs", defs);
		else if (json_object_size(defs)) /* a boolean-free schema always: wrap */
			sch = json_pack("{s:[o],s:O}", "allOf", sch, "$defs", defs);
		json_decref(defs);
		char *st = json_dumps(sch, JSON_COMPACT), *gbnf = NULL;
		if (st && i % 3 == 0 && strstr(st, "$defs")) { /* the older name of the same keyword */
			json_t *old = json_object_get(sch, "$defs");
			json_object_set(sch, "definitions", old);
			json_object_del(sch, "$defs");
			free(st);
			st = json_dumps(sch, JSON_COMPACT);
			for (char *p = st; p && (p = strstr(p, "#/$defs/"));) { /* "#/$defs/" -> "#/definitions/" needs room */
				size_t off = (size_t)(p - st), n = strlen(st);
				char *bigger = realloc(st, n + 8);
				if (!bigger)
					break;
				st = bigger;
				memmove(st + off + 14, st + off + 8, n - off - 8 + 1);
				memcpy(st + off, "#/definitions/", 14);
				p = st + off + 14;
			}
			json_decref(sch);
			sch = json_loads(st, 0, NULL);
		}
		struct hearth_grammar *g = NULL;
		int rc = hearth_json_schema_to_gbnf(st, strlen(st), "root", &gbnf, &err);
		if (rc || (rc = hearth_grammar_new(r.m, gbnf, strlen(gbnf), NULL, &g, &err))) {
			T_FAIL("schema %d %s: %s", i, st, err.msg);
		} else {
			const float temp = 1.0f + 0.5f * (float)pick(&rng, 100) / 100.0f;
			int how = sample_one(&r, g, (uint64_t)i + 1, temp, max_tokens, text, 1 << 16);
			n_ended += how == 0;
			n_finished += how == 1;
			n_unfinished += how == 2;
			if (how != 2) {
				json_error_t je;
				char why[200];
				json_t *doc = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
				if (!doc) {
					if (n_bad++ < 5)
						T_FAIL("schema %d %s: answer (%s) does not parse: %s\n%s", i, st,
						       how ? "finished" : "ended", je.text, text);
				} else if (!jv_valid(sch, sch, doc, why, sizeof why)) {
					if (n_bad++ < 5)
						T_FAIL("schema %d %s: answer (%s) does not validate (%s): %s", i, st,
						       how ? "finished" : "ended", why, text);
				}
				json_decref(doc);
			}
		}
		hearth_grammar_free(g);
		free(gbnf);
		free(st);
		json_decref(sch);
	}
	fprintf(stderr, "  %d schemas: %d ended by the grammar, %d cut and finished, %d cut and not finished\n",
		n_schemas, n_ended, n_finished, n_unfinished);
	T_EQ_I64(n_bad, 0);
	T_TRUE(n_unfinished <= n_schemas / 20);
	T_TRUE(n_ended >= n_schemas / 10);
	free(text);
	free(r.favor);
	free(r.prompt);
	hearth_context_free(r.ctx);
	hearth_model_free(r.m);
}

static void refused(const char *schema, const char *want)
{
	struct hearth_err err = { 0 };
	char *out = NULL;
	int rc = hearth_json_schema_to_gbnf(schema, strlen(schema), "s", &out, &err);
	if (!rc) {
		T_FAIL("schema %s was accepted:\n%s", schema, out);
		free(out);
	} else if (!strstr(err.msg, want)) {
		T_FAIL("schema %s: message \"%s\" lacks \"%s\"", schema, err.msg, want);
	}
}

void test_json_schema_errors(void)
{
	refused("{\"type\":\"string\",\"contentEncoding\":\"base64\"}", "unsupported keyword: contentEncoding");
	refused("{\"not\":{\"type\":\"string\"}}", "unsupported keyword: not");
	refused("{\"type\":\"object\",\"patternProperties\":{\"^a\":{}}}", "unsupported keyword: patternProperties");
	refused("{\"type\":\"array\",\"uniqueItems\":true}", "unsupported keyword: uniqueItems");
	refused("{\"type\":\"number\",\"multipleOf\":2}", "unsupported keyword: multipleOf");
	refused("{\"if\":{},\"then\":{}}", "unsupported keyword: if");
	refused("{\"properties\":{\"a\":{\"type\":\"object\",\"minProperties\":1}}}",
		"unsupported keyword: minProperties (at /properties/a)");
	refused("{\"type\":\"string\",\"format\":\"ipv4\"}", "unsupported format: ipv4");
	refused("{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", "(?...)");
	refused("{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "the escape '\\1'");
	refused("{\"type\":\"string\",\"pattern\":\"\\\\bword\"}", "the escape '\\b'");
	refused("{\"type\":\"string\",\"pattern\":\"a^b\"}", "anchor inside the pattern");
	refused("{\"$ref\":\"http://example.com/s.json\"}", "not a local reference");
	refused("{\"$ref\":\"#/$defs/missing\"}", "not a local reference that resolves");
	refused("{\"type\":\"number\",\"minimum\":0.5}", "not whole numbers");
	refused("{\"type\":\"number\",\"exclusiveMinimum\":0}", "exclusiveMinimum/exclusiveMaximum on a number");
	refused("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "empty");
	refused("{\"allOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"string\",\"pattern\":\"a\"}]}",
		"more than one of format, pattern");
	refused("{\"allOf\":[{\"const\":1},{\"const\":2}]}", "allOf cannot be merged: the branches differ in const");
	refused("{\"type\":\"strin\"}", "unknown type strin");
	refused("false", "allows nothing");
	refused("{\"type\":", "not JSON: line 1");
	/* nesting past the bound is refused, not followed */
	char deep[4096];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\":\"array\",\"items\":");
	n += (size_t)snprintf(deep + n, sizeof deep - n, "{}");
	for (int i = 0; i < 100; i++)
		deep[n++] = '}';
	deep[n] = 0;
	refused(deep, "nests too deeply");
	/* annotations are ignored; a bad prefix is refused */
	struct hearth_err err = { 0 };
	char *out = NULL;
	const char *ok = "{\"title\":\"t\",\"description\":\"d\",\"$schema\":\"x\",\"$id\":\"y\",\"$comment\":\"c\","
			 "\"examples\":[1],\"default\":1,\"readOnly\":true,\"type\":\"integer\"}";
	T_OK(hearth_json_schema_to_gbnf(ok, strlen(ok), "p_1", &out, &err), err);
	T_TRUE(out && !strncmp(out, "p_1 ::= ", 8));
	free(out);
	T_TRUE(hearth_json_schema_to_gbnf(ok, strlen(ok), "bad name", &out, &err) == HEARTH_EINVAL);
}
