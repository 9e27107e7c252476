/* cmd-show.c - `hearth show NAME`: what a model is, for people: architecture,
 * parameters, quantization, size, context length, chat template and the rest
 * of its metadata (long arrays summarized; `hearth inspect` prints them). */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* llama.cpp's general.file_type numbers (LLAMA_FTYPE_*). */
static const char *ftype_name(long long t)
{
	static const char *n[] = {
		[0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1",
		[10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
		[16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S",
		[22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M",
		[28] = "IQ2_S", [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16", [36] = "TQ1_0",
		[37] = "TQ2_0",
	};
	return t >= 0 && t < (long long)(sizeof n / sizeof *n) && n[t] ? n[t] : "?";
}

/* The value of key as JSON (NULL when absent); arrays cut at max_items. */
static json_t *kv(const struct hearth_gguf *g, const char *key, int64_t max_items)
{
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++) {
		if (strcmp(hearth_gguf_key(g, i), key))
			continue;
		size_t need = hearth_gguf_kv_json(g, i, max_items, NULL, 0) + 1;
		char *buf = malloc(need);
		json_t *v = NULL;
		if (buf) {
			hearth_gguf_kv_json(g, i, max_items, buf, need);
			v = json_loads(buf, JSON_DECODE_ANY, NULL);
		}
		free(buf);
		return v;
	}
	return NULL;
}

static const char *str_kv(const struct hearth_gguf *g, const char *key, char *buf, size_t size)
{
	json_t *v = kv(g, key, 0);
	snprintf(buf, size, "%s", json_is_string(v) ? json_string_value(v) : "");
	json_decref(v);
	return buf[0] ? buf : NULL;
}

static long long int_kv(const struct hearth_gguf *g, const char *key)
{
	json_t *v = kv(g, key, 0);
	long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
	json_decref(v);
	return n;
}

static void print_arch_keys(const struct hearth_gguf *g, const char *arch)
{
	static const struct { const char *suffix, *label; } keys[] = {
		{ "context_length", "context length" }, { "embedding_length", "embedding" },
		{ "block_count", "layers" }, { "attention.head_count", "heads" },
		{ "attention.head_count_kv", "kv heads" }, { "expert_count", "experts" },
	};
	char key[256];
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		snprintf(key, sizeof key, "%s.%s", arch, keys[i].suffix);
		long long v = int_kv(g, key);
		if (v >= 0)
			printf("  %-16s %lld\n", keys[i].label, v);
	}
}

/* Parameters and the tensor types (count of each). */
static void print_tensors(const struct hearth_gguf *g)
{
	uint64_t n_params = 0, bytes = 0;
	int64_t count[HEARTH_TYPE_COUNT] = { 0 };
	for (int64_t i = 0; i < hearth_gguf_n_tensors(g); i++) {
		struct hearth_tensor_info t;
		uint64_t ne = 1;
		hearth_gguf_tensor(g, i, &t);
		for (int d = 0; d < t.n_dims; d++)
			ne *= (uint64_t)t.ne[d];
		n_params += ne;
		bytes += t.nbytes;
		if (t.type >= 0 && t.type < HEARTH_TYPE_COUNT)
			count[t.type]++;
	}
	printf("  %-16s %.2f M (%.1f MB of weights)\n", "parameters", (double)n_params / 1e6, (double)bytes / 1e6);
	printf("  %-16s", "tensor types");
	for (int t = 0; t < HEARTH_TYPE_COUNT; t++)
		if (count[t])
			printf(" %s x %" PRId64, hearth_type_name(t) ? hearth_type_name(t) : "?", count[t]);
	putchar('\n');
}

/* Every other key, one line each, long values cut. */
static void print_other(const struct hearth_gguf *g)
{
	printf("metadata:\n");
	for (int64_t i = 0; i < hearth_gguf_n_kv(g); i++) {
		const char *key = hearth_gguf_key(g, i);
		if (!strcmp(key, "tokenizer.chat_template"))
			continue;
		size_t need = hearth_gguf_kv_json(g, i, 4, NULL, 0) + 1;
		char *buf = malloc(need);
		if (!buf)
			continue;
		hearth_gguf_kv_json(g, i, 4, buf, need);
		if (hearth_gguf_kv_type(g, i) == HEARTH_GGUF_ARRAY)
			printf("  %-44s [%" PRIu64 " items] %.100s%s\n", key, hearth_gguf_arr_n(g, i), buf,
			       strlen(buf) > 100 ? "..." : "");
		else
			printf("  %-44s %.120s%s\n", key, buf, strlen(buf) > 120 ? "..." : "");
		free(buf);
	}
}

static const char show_help[] =
	"usage: hearth show NAME|FILE\n"
	"\n"
	"Describes a stored model (or a GGUF file): architecture, parameters, quantization, size,\n"
	"context length, chat template and its other metadata.\n";

int cmd_show(int argc, char **argv)
{
	const char *name = NULL, *path;
	struct hearth_err err = { 0 };
	struct hearth_gguf *g;
	char buf[512];
	struct stat st;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(show_help, stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage_error("show", "unknown option '%s'", argv[i]);
		} else if (name) {
			return usage_error("show", "one model at a time");
		}
		name = argv[i];
	}
	if (!name)
		return usage_error("show", "NAME is required");
	if (!(path = cli_model_path("show", name)))
		return 1;
	if (hearth_gguf_open(&g, path, &err)) {
		fprintf(stderr, "hearth show: %s\n", err.msg);
		return 1;
	}
	const char *arch = str_kv(g, "general.architecture", buf, sizeof buf);
	char arch_copy[128];
	snprintf(arch_copy, sizeof arch_copy, "%s", arch ? arch : "?");
	printf("%s\n  %-16s %s\n", name, "file", path);
	if (!stat(path, &st))
		printf("  %-16s %.1f MB\n", "size", (double)st.st_size / 1e6);
	printf("  %-16s %s\n", "architecture", arch_copy);
	if (str_kv(g, "general.name", buf, sizeof buf))
		printf("  %-16s %s\n", "name", buf);
	long long ft = int_kv(g, "general.file_type");
	if (ft >= 0)
		printf("  %-16s %s (general.file_type %lld)\n", "quantization", ftype_name(ft), ft);
	print_tensors(g);
	print_arch_keys(g, arch_copy);
	json_t *tmpl = kv(g, "tokenizer.chat_template", 0);
	if (json_is_string(tmpl))
		printf("chat template:\n%s\n", json_string_value(tmpl));
	else
		printf("chat template: none\n");
	json_decref(tmpl);
	print_other(g);
	hearth_gguf_close(g);
	return 0;
}
