/* toolcall-detect.c - the family table (each format's markers and parsing
 * functions), and telling a model's format from its chat template's text. */
#include <string.h>

#include "toolcall-impl.h"

#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

static const struct tc_family families[TC_FORMAT_COUNT] = {
	[TC_NONE] = { .format = TC_NONE, .name = "none" },
	[TC_THINK] = { .format = TC_THINK, .name = "think", .think_open = "<think>", .think_close = "</think>" },
	[TC_HERMES] = { .format = TC_HERMES, .name = "hermes", .opener = "<tool_call>\n",
			.think_open = "<think>", .think_close = "</think>", .block_open = "<tool_call>",
			.block_end = tc_hermes_end, .block_name = tc_hermes_name, .parse_block = tc_hermes_parse },
	[TC_QWEN3_CODER] = { .format = TC_QWEN3_CODER, .name = "qwen3-coder", .opener = "<tool_call>\n<function=",
			     .think_open = "<think>", .think_close = "</think>", .block_open = "<tool_call>",
			     .block_end = tc_hermes_end, .block_name = tc_qwen3c_name, .parse_block = tc_qwen3c_parse },
	[TC_GLM45] = { .format = TC_GLM45, .name = "glm-4.5", .opener = "<tool_call>", .think_open = "<think>",
		       .think_close = "</think>", .block_open = "<tool_call>", .block_end = tc_hermes_end,
		       .block_name = tc_glm_name, .parse_block = tc_glm_parse },
	[TC_LLAMA3] = { .format = TC_LLAMA3, .name = "llama3", .opener = "{\"name\": \"", .block_open = "<|python_tag|>",
			.json_at_start = true, .block_end = tc_llama3_end, .parse_block = tc_llama3_parse },
	[TC_MISTRAL] = { .format = TC_MISTRAL, .name = "mistral", .opener = "[TOOL_CALLS]", .block_open = "[TOOL_CALLS]",
			 .think_open = "[THINK]", .think_close = "[/THINK]", .mistral_ids = true,
			 .block_end = tc_mistral_end, .block_name = tc_mistral_name, .block_id = tc_mistral_id, .parse_block = tc_mistral_parse },
	[TC_DEEPSEEK_R1] = { .format = TC_DEEPSEEK_R1, .name = "deepseek-r1",
			     .opener = DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP, .think_open = "<think>",
			     .think_close = "</think>", .block_open = DS_CALL_BEGIN,
			     .drops = { DS_CALLS_BEGIN, DS_CALLS_END, NULL }, .block_end = tc_dsr1_end,
			     .block_name = tc_dsr1_name, .parse_block = tc_dsr1_parse },
	[TC_DEEPSEEK_V31] = { .format = TC_DEEPSEEK_V31, .name = "deepseek-v3.1", .opener = DS_CALLS_BEGIN DS_CALL_BEGIN,
			      .think_open = "<think>", .think_close = "</think>", .block_open = DS_CALL_BEGIN,
			      .drops = { DS_CALLS_BEGIN, DS_CALLS_END, NULL }, .block_end = tc_dsr1_end,
			      .block_name = tc_dsv31_name, .parse_block = tc_dsv31_parse },
	[TC_HARMONY] = { .format = TC_HARMONY, .name = "harmony", .opener = "<|channel|>commentary to=functions.",
			 .step = tc_harmony_step },
	[TC_FUNCTIONARY_V32] = { .format = TC_FUNCTIONARY_V32, .name = "functionary-v3.2", .opener = "",
				 .step = tc_functionary_step },
	[TC_GRANITE] = { .format = TC_GRANITE, .name = "granite", .opener = "<|tool_call|>", .think_open = "<think>",
			 .think_close = "</think>", .block_open = "<|tool_call|>",
			 .drops = { "<response>", "</response>", NULL }, .block_end = tc_granite_end,
			 .parse_block = tc_granite_parse },
	[TC_KIMI_K2] = { .format = TC_KIMI_K2, .name = "kimi-k2",
			 .opener = "<|tool_calls_section_begin|><|tool_call_begin|>functions.", .think_open = "<think>",
			 .think_close = "</think>", .block_open = "<|tool_call_begin|>",
			 .drops = { "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", NULL },
			 .block_end = tc_kimi_end, .block_name = tc_kimi_name, .parse_block = tc_kimi_parse },
	[TC_COMMAND_R7B] = { .format = TC_COMMAND_R7B, .name = "command-r7b", .opener = "<|START_ACTION|>",
			     .think_open = "<|START_THINKING|>", .think_close = "<|END_THINKING|>",
			     .block_open = "<|START_ACTION|>", .drops = { "<|START_RESPONSE|>", "<|END_RESPONSE|>", NULL },
			     .block_end = tc_cmdr_end, .parse_block = tc_cmdr_parse },
};

const struct tc_family *tc_family_of(enum tc_format format)
{
	if ((int)format < 0 || format >= TC_FORMAT_COUNT)
		return NULL;
	return &families[format];
}

const char *tc_format_name(enum tc_format format)
{
	const struct tc_family *f = tc_family_of(format);
	return f ? f->name : "?";
}

const char *tc_call_opener(enum tc_format format)
{
	const struct tc_family *f = tc_family_of(format);
	return f ? f->opener : NULL;
}

static bool has(const char *s, const char *lit)
{
	return strstr(s, lit) != NULL;
}

/* Markers first: the most specific ones before those they contain. */
static enum tc_format from_template(const char *t)
{
	if (has(t, "<|channel|>") && has(t, "<|message|>"))
		return TC_HARMONY;
	if (has(t, DS_CALL_BEGIN))
		return has(t, "```json") ? TC_DEEPSEEK_R1 : TC_DEEPSEEK_V31;
	if (has(t, "<function=") && has(t, "<parameter="))
		return TC_QWEN3_CODER;
	if (has(t, "<arg_key>"))
		return TC_GLM45;
	if (has(t, "<|tool_call_begin|>"))
		return TC_KIMI_K2;
	if (has(t, "[TOOL_CALLS]"))
		return TC_MISTRAL;
	if (has(t, "<|START_ACTION|>"))
		return TC_COMMAND_R7B;
	if (has(t, "<|tool_call|>"))
		return TC_GRANITE;
	if (has(t, ">>>all"))
		return TC_FUNCTIONARY_V32;
	if (has(t, "<tool_call>"))
		return TC_HERMES;
	if (has(t, "<|python_tag|>") || (has(t, "<|start_header_id|>") && has(t, "\"parameters\"")))
		return TC_LLAMA3;
	if (has(t, "<function name="))
		return TC_THINK; /* MiniCPM5's XML calls: not parsed yet, its reasoning is */
	if (has(t, "<|im_start|>") && has(t, "<think>"))
		return TC_HERMES; /* SmolLM3: ChatML with reasoning, Hermes calls */
	if (has(t, "<think>"))
		return TC_THINK;
	return TC_NONE;
}

static const struct {
	const char *arch;
	enum tc_format format;
} arch_formats[] = {
	{ "gpt-oss", TC_HARMONY }, { "qwen3", TC_HERMES }, { "qwen2", TC_HERMES }, { "glm4moe", TC_GLM45 },
	{ "cohere2", TC_COMMAND_R7B }, { "granite", TC_GRANITE },
};

enum tc_format tc_format_detect(const char *template_src, const char *arch)
{
	enum tc_format f = template_src ? from_template(template_src) : TC_NONE;
	for (size_t i = 0; f == TC_NONE && arch && i < sizeof arch_formats / sizeof arch_formats[0]; i++)
		if (!strcmp(arch, arch_formats[i].arch))
			f = arch_formats[i].format;
	return f;
}
