/* test-chat-grammar.c - forced tool calls in each family's syntax: a random-
 * weight model sampled hot under hearth_chat_calls_gbnf (framed by
 * hearth_chat_answer_gbnf) writes answers that, whenever the grammar lets
 * them end, read back (hearth_chat_reader) as calls of declared tools with
 * arguments that satisfy the tool's schema; families it cannot force yet are
 * refused by name. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../harness.h"
#include "hearth.h"

static const char tools[] =
	"[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":"
	"{\"city\":{\"type\":\"string\",\"maxLength\":8},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},"
	"\"required\":[\"city\"],\"additionalProperties\":false}}},"
	"{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\",\"properties\":"
	"{\"zone\":{\"enum\":[\"UTC\",\"CET\"]}},\"required\":[\"zone\"],\"additionalProperties\":false}}}]";

/* Does args (JSON text) fit tool name's schema above? */
static bool args_ok(const char *name, const char *args)
{
	json_t *a = json_loads(args, 0, NULL);
	bool ok = json_is_object(a);
	if (ok && !strcmp(name, "get_weather")) {
		json_t *city = json_object_get(a, "city"), *days = json_object_get(a, "days");
		ok = json_is_string(city) && json_object_size(a) == 1u + (days != NULL) &&
		     (!days || (json_is_integer(days) && json_integer_value(days) >= 1 && json_integer_value(days) <= 7));
	} else if (ok) {
		const char *z = json_string_value(json_object_get(a, "zone"));
		ok = !strcmp(name, "get_time") && z && (!strcmp(z, "UTC") || !strcmp(z, "CET")) && json_object_size(a) == 1;
	}
	json_decref(a);
	return ok;
}

/* Samples one answer under g; its text in text; true when it ended (not cut). */
static bool sample(struct hearth_model *m, struct hearth_context *ctx, const struct hearth_grammar *g, uint64_t seed,
		   char *text, size_t cap)
{
	struct hearth_err err = { 0 };
	struct hearth_sampler_params p = hearth_sampler_default_params();
	struct hearth_sampler *s = NULL;
	const int32_t start = 0;
	size_t n = 0;
	bool ended = false;
	p.temp = 1.0f;
	p.seed = seed;
	text[0] = 0;
	hearth_context_truncate(ctx, 0);
	T_OK(hearth_sampler_new(&s, &p, hearth_model_n_vocab(m), &err), err);
	T_OK(hearth_sampler_set_grammar(s, g, NULL, &err), err);
	const float *l = s && !hearth_decode(ctx, &start, 1, false, &err) ? hearth_get_logits(ctx, -1) : NULL;
	for (int t = 0; l && t < 200; t++) {
		int32_t id = hearth_sampler_sample(s, l);
		if (hearth_token_is_eog(m, id)) {
			ended = true;
			break;
		}
		hearth_sampler_accept(s, id);
		char piece[256];
		int k = hearth_token_to_piece(m, id, false, piece, sizeof piece);
		if (k > 0 && (size_t)k < sizeof piece && n + (size_t)k < cap) {
			memcpy(text + n, piece, (size_t)k);
			text[n += (size_t)k] = 0;
		}
		if (hearth_sampler_grammar_done(s)) {
			ended = true;
			break;
		}
		l = hearth_decode(ctx, &id, 1, false, &err) ? NULL : hearth_get_logits(ctx, -1);
	}
	hearth_sampler_free(s);
	return ended;
}

/* The calls an answer reads back as; false when something else came out. */
static int read_calls(const struct hearth_chat *c, const char *text, bool *all_ok)
{
	struct hearth_err err = { 0 };
	struct hearth_chat_reader *r = NULL;
	const struct hearth_chat_event *ev;
	size_t n;
	int calls = 0;
	T_OK(hearth_chat_reader_new(c, NULL, tools, strlen(tools), &r, &err), err);
	if (!r)
		return 0;
	T_OK(hearth_chat_reader_feed(r, text, strlen(text), &ev, &n, &err), err);
	T_OK(hearth_chat_reader_finish(r, &ev, &n, &err), err);
	for (size_t k = 0; k < n; k++)
		if (ev[k].kind == HEARTH_CHAT_CALL_DONE) {
			calls++;
			if (!args_ok(ev[k].name, ev[k].text)) {
				*all_ok = false;
				T_FAIL("%s: call %s(%s) does not fit its tool", hearth_chat_format_name(c), ev[k].name, ev[k].text);
			}
		}
	hearth_chat_reader_free(r);
	return calls;
}

void test_chat_forced_calls(void)
{
	static const struct {
		const char *tmpl, *format;
	} cases[] = {
		{ "Qwen-Qwen2.5-7B-Instruct", "hermes" },
		{ "meta-llama-Llama-3.1-8B-Instruct", "llama3" },
		{ "mistralai-Mistral-Nemo-Instruct-2407", "mistral" },
		{ "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1" },
		{ "deepseek-ai-DeepSeek-V3.1", "deepseek-v3.1" },
		{ "moonshotai-Kimi-K2", "kimi-k2" },
		{ "openai-gpt-oss-120b", "harmony" },
		{ "ibm-granite-granite-3.3-2B-Instruct", "granite" },
	};
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *ctx = NULL;
	struct hearth_context_params cp = hearth_context_default_params();
	cp.n_ctx = 256;
	cp.n_threads = 1;
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen3.f32.gguf"), NULL, &err), err);
	if (!m || hearth_context_new(&ctx, m, &cp, &err)) {
		hearth_model_free(m);
		return;
	}
	const int seeds = t_sanitized() ? 2 : 4;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[256], *gbnf = NULL, *whole = NULL, text[4096];
		size_t len = 0;
		snprintf(path, sizeof path, "templates/templates/%s.jinja", cases[i].tmpl);
		FILE *f = fopen(fixture(path), "rb");
		char *src = malloc(1 << 20);
		if (f && src)
			len = fread(src, 1, (1 << 20) - 1, f);
		if (f)
			fclose(f);
		struct hearth_chat_params p = hearth_chat_default_params();
		struct hearth_chat *c = NULL;
		struct hearth_grammar *g = NULL;
		p.template_src = src;
		p.template_len = len;
		T_OK(hearth_chat_new(m, &p, &c, &err), err);
		free(src);
		if (!c)
			continue;
		T_STR_EQ(hearth_chat_format_name(c), cases[i].format);
		/* the whole frame compiles (parallel calls, the reasoning block first where the family has one) */
		T_OK(hearth_chat_calls_gbnf(c, tools, strlen(tools), NULL, true, "calls", &gbnf, &err), err);
		if (gbnf)
			T_OK(hearth_chat_answer_gbnf(c, NULL, gbnf, "calls", &whole, &err), err);
		if (whole)
			T_OK(hearth_grammar_new(m, whole, strlen(whole), "hearth-root", &g, &err), err);
		hearth_grammar_free(g);
		g = NULL;
		free(gbnf);
		gbnf = NULL;
		/* sampled: one call (a random model thinks and calls forever otherwise) */
		T_OK(hearth_chat_calls_gbnf(c, tools, strlen(tools), NULL, false, "calls", &gbnf, &err), err);
		if (gbnf)
			T_OK(hearth_grammar_new(m, gbnf, strlen(gbnf), "calls", &g, &err), err);
		int ended = 0;
		bool all_ok = true;
		for (int seed = 0; g && seed < seeds; seed++) {
			if (!sample(m, ctx, g, (uint64_t)seed * 7919u + i, text, sizeof text))
				continue;
			ended++;
			if (read_calls(c, text, &all_ok) < 1)
				T_FAIL("%s, seed %d: the answer reads as no call: %.300s", cases[i].format, seed, text);
		}
		if (g && ended == 0)
			T_FAIL("%s: no answer ended in %d tries", cases[i].format, seeds);
		hearth_grammar_free(g);
		free(gbnf);
		free(whole);
		hearth_chat_free(c);
	}
	/* a family whose calls cannot be forced yet is refused by name */
	struct hearth_chat_params p = hearth_chat_default_params();
	struct hearth_chat *c = NULL;
	char *gbnf = NULL;
	p.template_src = "{{ '<tool_call>\\n<function=get_time>\\n<parameter=zone>' }}";
	p.template_len = strlen(p.template_src);
	T_OK(hearth_chat_new(m, &p, &c, &err), err);
	if (c)
		T_TRUE(hearth_chat_calls_gbnf(c, tools, strlen(tools), NULL, true, "calls", &gbnf, &err) == HEARTH_EUNSUPPORTED &&
		       strstr(err.msg, "qwen3-coder"));
	hearth_chat_free(c);
	hearth_context_free(ctx);
	hearth_model_free(m);
}
