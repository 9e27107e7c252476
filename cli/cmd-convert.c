/* cmd-convert.c - `hearth convert HF_DIR -o FILE.gguf [--outtype T]` and
 * `hearth convert --vocab-only HF_DIR -o FILE.gguf`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char convert_help[] =
	"usage: hearth convert HF_DIR -o FILE.gguf [--outtype f32|f16|bf16|q8_0|auto]\n"
	"       hearth convert --vocab-only HF_DIR -o FILE.gguf\n"
	"\n"
	"Converts a Hugging Face model folder (config.json, tokenizer.json,\n"
	"model.safetensors or shards listed by model.safetensors.index.json; F32, F16\n"
	"or BF16 weights) of LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM,\n"
	"Qwen2ForCausalLM, Qwen3ForCausalLM or Qwen3MoeForCausalLM into a GGUF that\n"
	"hearth and llama.cpp load, with the keys and tensor names llama.cpp's\n"
	"convert_hf_to_gguf.py writes. Tensors are converted one at a time: memory\n"
	"stays about the largest tensor.\n"
	"  --outtype T   type of the weight matrices (norms and biases stay f32);\n"
	"                auto (default): bf16 or f16 as the model's weights are, else f16\n"
	"  --vocab-only  write only the tokenizer (the pre-tokenizer type is told from\n"
	"                the tokenizer's own split rules)\n";

static void on_tensor(const struct hearth_convert_tensor *t, void *user_data)
{
	char shape[96];
	int k = snprintf(shape, sizeof shape, "%" PRId64, t->ne[0]);
	(void)user_data;
	for (int d = 1; d < t->n_dims && k < (int)sizeof shape; d++)
		k += snprintf(shape + k, sizeof shape - (size_t)k, ", %" PRId64, t->ne[d]);
	printf("[%4" PRId64 "/%4" PRId64 "] %-32s {%s} %s -> %s\n", t->index + 1, t->n_tensors, t->name, shape,
	       t->src_dtype, hearth_type_name(t->type));
	fflush(stdout);
}

static int parse_outtype(const char *v)
{
	static const struct { const char *name; int ftype; } names[] = {
		{ "f32", HEARTH_FTYPE_ALL_F32 }, { "f16", HEARTH_FTYPE_F16 }, { "bf16", HEARTH_FTYPE_BF16 },
		{ "q8_0", HEARTH_FTYPE_Q8_0 },   { "auto", -1 },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(v, names[i].name))
			return names[i].ftype;
	return -2;
}

int cmd_convert(int argc, char **argv)
{
	const char *dir = NULL, *out = NULL, *v;
	bool vocab_only = false, typed = false;
	struct hearth_convert_params p = hearth_convert_default_params();
	struct hearth_err err = { 0 };
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(convert_help, stdout);
			return 0;
		} else if (!strcmp(a, "--vocab-only")) {
			vocab_only = true;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--outfile")) {
			if (!(out = arg_value("convert", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--outtype")) {
			if (!(v = arg_value("convert", argc, argv, &i)))
				return EXIT_USAGE;
			if ((p.ftype = parse_outtype(v)) == -2)
				return usage_error("convert", "unknown --outtype '%s' (f32, f16, bf16, q8_0, auto)", v);
			typed = true;
		} else if (a[0] == '-') {
			return usage_error("convert", "unknown option '%s'", a);
		} else if (dir) {
			return usage_error("convert", "one folder only ('%s' and '%s' given)", dir, a);
		} else {
			dir = a;
		}
	}
	if (!dir || !out)
		return usage_error("convert", "needs HF_DIR and -o FILE.gguf (see --help)");
	if (vocab_only && typed)
		return usage_error("convert", "--outtype has no meaning with --vocab-only");
	if (vocab_only) {
		rc = hearth_convert_hf_vocab(dir, out, &err);
	} else {
		p.on_tensor = on_tensor;
		rc = hearth_convert_hf(dir, out, &p, &err);
	}
	if (rc) {
		fprintf(stderr, "hearth convert: %s\n", err.msg);
		return 1;
	}
	if (!vocab_only)
		printf("wrote %s\n", out);
	return 0;
}
