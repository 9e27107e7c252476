/* cmd-export-lora.c - `hearth export-lora`: LoRA adapters merged into a copy
 * of the base model's GGUF (as llama.cpp's llama-export-lora does), so that
 * the result runs anywhere without them (hearth_lora_export in hearth.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char export_lora_help[] =
	"usage: hearth export-lora -m BASE.gguf --lora FILE[:SCALE] [--lora ...] -o OUT.gguf\n"
	"\n"
	"Merges LoRA adapters (llama.cpp's GGUF LoRA format) into a copy of the base model:\n"
	"W + SCALE * alpha / rank * B A for every matrix an adapter adapts. Merged matrices are\n"
	"stored as f32 when the base's are f32, else as f16 (quantized bases are not requantized:\n"
	"requantize the output with `hearth quantize`). Everything else is copied as it is.\n"
	"\n"
	"  -m FILE             the base model\n"
	"  --lora FILE[:SCALE] an adapter times SCALE [1]; repeatable (summed)\n"
	"  -o FILE             the merged model to write\n";

int cmd_export_lora(int argc, char **argv)
{
	struct gen_opts o;
	const char *out = NULL, *val;
	gen_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(export_lora_help, stdout);
			return 0;
		}
		if (!(val = arg_value("export-lora", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model"))
			o.model = val;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			out = val;
		else if (!strcmp(a, "--lora")) {
			if (!gen_opts_lora(&o, "export-lora", val))
				return EXIT_USAGE;
		} else
			return usage_error("export-lora", "unknown option '%s'", a);
	}
	if (!o.model || !out || o.n_lora == 0)
		return usage_error("export-lora", "-m, at least one --lora and -o are required");

	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_lora_use use[HEARTH_MAX_LORAS] = { { 0 } };
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	const char *path = cli_model_path("export-lora", o.model);
	if (!path)
		return 1;
	int rc = hearth_model_load(&m, path, &mp, &err);
	for (int k = 0; k < o.n_lora && !rc; k++) {
		use[k].scale = o.lora_scale[k];
		rc = hearth_lora_load(&use[k].lora, m, o.lora_path[k], &err);
	}
	if (!rc)
		rc = hearth_lora_export(m, use, o.n_lora, out, &err);
	if (rc)
		fprintf(stderr, "hearth export-lora: %s\n", err.msg);
	else
		fprintf(stderr, "hearth export-lora: merged %d adapter%s into %s\n", o.n_lora, o.n_lora > 1 ? "s" : "", out);
	for (int k = 0; k < o.n_lora; k++)
		hearth_lora_free(use[k].lora);
	hearth_model_free(m);
	return rc ? 1 : 0;
}
