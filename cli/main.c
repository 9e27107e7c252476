/* main.c - the hearth command: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"hearth - a private, self-hosted LLM engine\n"
	"\n"
	"usage: hearth COMMAND [options]\n"
	"\n"
	"commands:\n"
	"  run         generate a continuation of a prompt\n"
	"  chat        chat with a model in the terminal\n"
	"  inspect     show a GGUF file's metadata and tensors\n"
	"  tokenize    print the token ids of a text\n"
	"  detokenize  print the text of token ids\n"
	"  serve       an OpenAI-compatible HTTP server\n"
	"  bench       prompt and generation speed\n"
	"  perplexity  a model's perplexity on a text, as llama-perplexity computes it\n"
	"  convert     convert a Hugging Face model folder (or its tokenizer) to GGUF\n"
	"  quantize    rewrite a model in a llama-quantize type (q4_k_m, q8_0, ...)\n"
	"  template    render a model's chat template with messages\n"
	"  pull        download a model into the store (Hugging Face, ModelScope, a URL)\n"
	"  list        the models in the store\n"
	"  rm          delete a model from the store\n"
	"  show        a model's architecture, size, quantization, template and metadata\n"
	"  imatrix     an importance matrix for quantizing, as llama-imatrix computes it\n"
	"  steer       a control vector from contrastive prompts (llama.cpp's format)\n"
	"  finetune    train a LoRA adapter on a JSON Lines dataset\n"
	"  export-lora merge LoRA adapters into a copy of a model\n"
	"\n"
	"'hearth COMMAND --help' describes each command.\n";

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "run", cmd_run }, { "chat", cmd_chat }, { "inspect", cmd_inspect },
		{ "tokenize", cmd_tokenize }, { "detokenize", cmd_detokenize }, { "serve", cmd_serve },
		{ "bench", cmd_bench }, { "perplexity", cmd_perplexity }, { "convert", cmd_convert }, { "quantize", cmd_quantize }, { "template", cmd_template },
		{ "pull", cmd_pull }, { "list", cmd_list }, { "rm", cmd_rm }, { "show", cmd_show },
		{ "imatrix", cmd_imatrix },
		{ "steer", cmd_steer },
		{ "finetune", cmd_finetune },
		{ "export-lora", cmd_export_lora },
	};

	hearth_log_set(cli_log, NULL);
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "hearth: unknown command '%s'\n\n%s", argv[1], usage);
	return EXIT_USAGE;
}
