/* cmd-convert.c - `hearth convert --vocab-only HF_DIR -o FILE.gguf`. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char convert_help[] =
	"usage: hearth convert --vocab-only HF_DIR -o FILE.gguf\n"
	"\n"
	"Writes the tokenizer of a Hugging Face model folder (tokenizer.json, with\n"
	"tokenizer_config.json and config.json when present) as a vocabulary-only GGUF\n"
	"that 'hearth tokenize' and llama.cpp read. The pre-tokenizer type is told from\n"
	"the tokenizer's own split rules. Converting weights is not supported yet.\n";

int cmd_convert(int argc, char **argv)
{
	const char *dir = NULL, *out = NULL;
	bool vocab_only = false;
	struct hearth_err err = { 0 };

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
	if (!vocab_only)
		return usage_error("convert", "only --vocab-only is supported: converting weights is not implemented yet");
	if (hearth_convert_hf_vocab(dir, out, &err)) {
		fprintf(stderr, "hearth convert: %s\n", err.msg);
		return 1;
	}
	return 0;
}
