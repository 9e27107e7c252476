/*
 * ollama-info.c - models described as Ollama describes them, read from their
 * GGUF files' metadata (no model need be loaded): details (family,
 * parameter_size, quantization_level), /api/show's model_info (every
 * metadata key; arrays, which hold whole vocabularies, only when verbose and
 * then cut at INFO_MAX_ITEMS) and template, and capabilities told from the
 * chat template's text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ollama.h"

#define INFO_MAX_ITEMS 4096    /* array elements /api/show writes when verbose */
#define INFO_VALUE_MAX (1u << 20) /* bytes of one value as JSON (a chat template is text) */

/* The value of key i as JSON (new reference), or NULL when out of memory. */
static json_t *kv_value(const struct hearth_gguf *g, int64_t i, int64_t max_items)
{
	char small[256];
	size_t n = hearth_gguf_kv_json(g, i, max_items, small, sizeof small);
	char *buf = n < sizeof small ? small : n < INFO_VALUE_MAX ? malloc(n + 1) : NULL;
	if (!buf)
		return n < INFO_VALUE_MAX ? NULL : json_null();
	if (buf != small)
		hearth_gguf_kv_json(g, i, max_items, buf, n + 1);
	json_t *v = json_loadb(buf, n, JSON_DECODE_ANY, NULL);
	if (buf != small)
		free(buf);
	return v;
}

static int64_t find_key(const struct hearth_gguf *g, const char *key)
{
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++)
		if (!strcmp(hearth_gguf_key(g, i), key))
			return i;
	return -1;
}

/* llama-quantize's file type names, by general.file_type. */
static const char *ftype_name(json_int_t t)
{
	static const struct {
		int t;
		const char *name;
	} names[] = { { 0, "F32" },     { 1, "F16" },     { 2, "Q4_0" },    { 3, "Q4_1" },    { 7, "Q8_0" },
		      { 8, "Q5_0" },    { 9, "Q5_1" },    { 10, "Q2_K" },   { 11, "Q3_K_S" }, { 12, "Q3_K_M" },
		      { 13, "Q3_K_L" }, { 14, "Q4_K_S" }, { 15, "Q4_K_M" }, { 16, "Q5_K_S" }, { 17, "Q5_K_M" },
		      { 18, "Q6_K" },   { 32, "BF16" } };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].t == t)
			return names[i].name;
	return "unknown";
}

/* Elements of all tensors. */
static uint64_t n_params(const struct hearth_gguf *g)
{
	uint64_t n = 0;
	for (int64_t i = 0; i < hearth_gguf_n_tensors(g); i++) {
		struct hearth_tensor_info t;
		uint64_t e = 1;
		hearth_gguf_tensor(g, i, &t);
		for (int d = 0; d < t.n_dims; d++)
			e *= (uint64_t)t.ne[d];
		n += e;
	}
	return n;
}

/* Without general.file_type: the type holding most weights of the matrices ("F32", "Q8_0", ...). */
static const char *main_type(const struct hearth_gguf *g, char *buf, size_t size)
{
	uint64_t by_type[HEARTH_TYPE_COUNT] = { 0 };
	int best = -1;
	for (int64_t i = 0; i < hearth_gguf_n_tensors(g); i++) {
		struct hearth_tensor_info t;
		hearth_gguf_tensor(g, i, &t);
		if (t.n_dims >= 2 && t.type >= 0 && t.type < HEARTH_TYPE_COUNT)
			by_type[t.type] += t.nbytes;
	}
	for (int k = 0; k < HEARTH_TYPE_COUNT; k++)
		if (by_type[k] && (best < 0 || by_type[k] > by_type[best]))
			best = k;
	const char *name = best >= 0 ? hearth_type_name(best) : NULL;
	size_t n = 0;
	for (; name && name[n] && n + 1 < size; n++)
		buf[n] = (char)(name[n] >= 'a' && name[n] <= 'z' ? name[n] - 32 : name[n]);
	buf[n] = 0;
	return n ? buf : "unknown";
}

static void human_count(char *buf, size_t size, uint64_t n)
{
	if (n >= 1000000000ull)
		snprintf(buf, size, "%.1fB", n / 1e9);
	else if (n >= 1000000ull)
		snprintf(buf, size, "%.2fM", n / 1e6);
	else
		snprintf(buf, size, "%.2fK", n / 1e3);
}

static json_t *details(const struct hearth_gguf *g)
{
	char size[32], type[32];
	int64_t ia = find_key(g, "general.architecture"), ift = find_key(g, "general.file_type");
	json_t *arch = ia >= 0 ? kv_value(g, ia, 0) : NULL, *ft = ift >= 0 ? kv_value(g, ift, 0) : NULL;
	const char *family = json_is_string(arch) ? json_string_value(arch) : "unknown";
	human_count(size, sizeof size, n_params(g));
	json_t *d = json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format", "gguf", "family", family,
			      "families", family, "parameter_size", size, "quantization_level",
			      json_is_integer(ft) ? ftype_name(json_integer_value(ft)) : main_type(g, type, sizeof type));
	json_decref(arch);
	json_decref(ft);
	return d;
}

json_t *ollama_info_details(struct served_model *sm)
{
	struct hearth_gguf *g;
	struct hearth_err err = { 0 };
	if (hearth_gguf_open(&g, sm->path, &err))
		return json_pack("{s:s, s:s}", "format", "gguf", "family", "unknown");
	json_t *d = details(g);
	hearth_gguf_close(g);
	return d;
}

/* Every metadata key (arrays: null, or cut at INFO_MAX_ITEMS when verbose), general.parameter_count. */
static json_t *model_info(const struct hearth_gguf *g, bool verbose)
{
	json_t *info = json_object();
	bool ok = info != NULL;
	for (int64_t i = 0; ok && i < hearth_gguf_n_kv(g); i++) {
		const bool arr = hearth_gguf_kv_type(g, i) == HEARTH_GGUF_ARRAY;
		ok = jsonb_set(info, hearth_gguf_key(g, i), arr && !verbose ? json_null() : kv_value(g, i, INFO_MAX_ITEMS));
	}
	ok = ok && jsonb_set(info, "general.parameter_count", json_integer((json_int_t)n_params(g)));
	return jsonb_done(info, ok);
}

/* What the model can do, told from its chat template's text. */
static json_t *capabilities(const char *tpl)
{
	json_t *c = json_pack("[s]", "completion");
	bool ok = c != NULL;
	if (ok && tpl && strstr(tpl, "tools"))
		ok = jsonb_add(c, json_string("tools"));
	if (ok && tpl && (strstr(tpl, "<think>") || strstr(tpl, "enable_thinking") || strstr(tpl, "reasoning_content")))
		ok = jsonb_add(c, json_string("thinking"));
	return jsonb_done(c, ok);
}

json_t *ollama_info_show(struct served_model *sm, bool verbose, struct reply *rp)
{
	struct hearth_gguf *g;
	struct hearth_err err = { 0 };
	char when[64];
	if (hearth_gguf_open(&g, sm->path, &err)) {
		fprintf(stderr, "hearth serve: model '%s': %s\n", sm->name, err.msg);
		reply_error(rp, err.code == HEARTH_ENOMEM ? 500 : 503, "server_error", "model", NULL,
			    "model '%.200s' cannot be read (the server's log says why)", sm->name);
		return NULL;
	}
	int64_t it = find_key(g, "tokenizer.chat_template");
	json_t *tpl = it >= 0 ? kv_value(g, it, 0) : NULL;
	const char *t = json_is_string(tpl) ? json_string_value(tpl) : NULL;
	ollama_wire_time(when, sizeof when, (double)sm->modified);
	json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "modelfile", "", "parameters", "", "template",
			      t ? t : "", "details", details(g), "model_info", model_info(g, verbose), "capabilities",
			      capabilities(t), "modified_at", when);
	json_decref(tpl);
	hearth_gguf_close(g);
	if (!j)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return j;
}
