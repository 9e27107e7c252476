/* test-toolcall.c - tool calls and reasoning out of model output, for every
 * format: what the whole text gives (content, reasoning, calls with
 * normalized arguments), and that every split of the same text (byte by byte,
 * random pieces from fixed seeds, 3-byte pieces) gives the same events once
 * adjacent deltas of one kind are joined. The calls are shaped as each
 * family's chat template renders past calls (tests/../shared/fixtures/templates). */
#include <stdlib.h>

#include "../../src/chat/toolcall.h"
#include "../harness.h"

#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

/* The tools of the fixture's tool cases (shortened descriptions). */
static const char tools_json[] =
	"[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "
	"\"properties\": {\"location\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", "
	"\"fahrenheit\"]}, \"days\": {\"type\": \"integer\"}, \"include_hourly\": {\"type\": \"boolean\"}}, "
	"\"required\": [\"location\"]}}},"
	" {\"type\": \"function\", \"function\": {\"name\": \"search_flights\", \"parameters\": {\"type\": \"object\", "
	"\"properties\": {\"origin\": {\"type\": \"string\"}, \"destination\": {\"type\": \"string\"}, \"dates\": "
	"{\"type\": \"array\", \"items\": {\"type\": \"string\"}}, \"passengers\": {\"type\": \"object\", "
	"\"properties\": {\"adults\": {\"type\": \"integer\"}, \"children\": {\"type\": \"integer\"}}}, \"max_price\": "
	"{\"type\": \"number\"}}}}}]";

#define PARIS "{\"location\":\"Paris, France\",\"unit\":\"celsius\"}"
#define TOKYO "{\"location\":\"Tokyo, Japan\",\"unit\":\"celsius\",\"days\":3,\"include_hourly\":false}"
#define BEIJING "{\"location\":\"北京市\",\"note\":\"明天会下雨吗？\"}"
#define FLIGHT                                                                                                   \
	"{\"origin\":\"CDG\",\"destination\":\"NRT\",\"dates\":[\"2026-12-01\",\"2026-12-15\"],\"passengers\":{\"adults\":2," \
	"\"children\":1},\"max_price\":2500.5}"
/* the same as the model writes them (Python json.dumps spacing) */
#define PARIS_W "{\"location\": \"Paris, France\", \"unit\": \"celsius\"}"
#define TOKYO_W "{\"location\": \"Tokyo, Japan\", \"unit\": \"celsius\", \"days\": 3, \"include_hourly\": false}"
#define BEIJING_W "{\"location\": \"北京市\", \"note\": \"明天会下雨吗？\"}"
#define FLIGHT_W                                                                                                  \
	"{\"origin\": \"CDG\", \"destination\": \"NRT\", \"dates\": [\"2026-12-01\", \"2026-12-15\"], \"passengers\": " \
	"{\"adults\": 2, \"children\": 1}, \"max_price\": 2500.5}"

struct tc_case {
	enum tc_format fmt;
	bool tools, sir; /* with the tools above; starts in reasoning */
	const char *text, *content, *reasoning;
	int n_calls;
	const char *names[3], *args[3], *ids[3];
};

#define W true
#define NOTOOLS false
static const struct tc_case cases[] = {
	/* ---- hermes (Hermes 2/3, Qwen2.5, Qwen3, QwQ, SmolLM3) ---- */
	{ TC_HERMES, W, 0, "Paris is the capital of France.", "Paris is the capital of France.", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, W, 0, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " PARIS_W "}\n</tool_call>", "", "", 1,
	  { "get_weather" }, { PARIS }, { 0 } },
	{ TC_HERMES, W, 0,
	  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " PARIS_W "}\n</tool_call>\n<tool_call>\n{\"name\": "
	  "\"get_weather\", \"arguments\": " TOKYO_W "}\n</tool_call>",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_HERMES, W, 0, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " PARIS_W "}\n</tool_call>",
	  "Let me check.\n", "", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_HERMES, W, 0,
	  "<think>\nThe user wants the weather in Paris.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
	  "\"arguments\": " PARIS_W "}\n</tool_call>",
	  "", "The user wants the weather in Paris.\n", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_HERMES, W, 1, "Simple question.\n</think>\n\nThe answer is 4.", "The answer is 4.", "Simple question.\n", 0,
	  { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, NOTOOLS, 0, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " BEIJING_W "}\n</tool_call>", "",
	  "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_HERMES, W, 0, "<tool_call>\n{\"name\": \"search_flights\", \"arguments\": " FLIGHT_W "}\n</tool_call>", "", "",
	  1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_HERMES, W, 0, /* Qwen2.5's template renders string arguments */
	  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"location\\\": \\\"Paris, France\\\", "
	  "\\\"unit\\\": \\\"celsius\\\"}\"}\n</tool_call>",
	  "", "", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_HERMES, W, 0, "a < b, and <tool_ca", "a < b, and <tool_ca", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, W, 0, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": }}\n</tool_call>",
	  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": }}\n</tool_call>", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, W, 0, "<tool_call>\n{\"name\": \"launch_rocket\", \"arguments\": {}}\n</tool_call>",
	  "<tool_call>\n{\"name\": \"launch_rocket\", \"arguments\": {}}\n</tool_call>", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, W, 0, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc",
	  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HERMES, W, 0, "<think>\nunfinished thought", "", "unfinished thought", 0, { 0 }, { 0 }, { 0 } },

	/* ---- qwen3-coder ---- */
	{ TC_QWEN3_CODER, W, 0,
	  "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis, France\n</parameter>\n<parameter=unit>\n"
	  "celsius\n</parameter>\n</function>\n</tool_call>",
	  "", "", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_QWEN3_CODER, W, 0,
	  "I'll look both up.\n<tool_call>\n<function=get_weather>\n<parameter=location>\nParis, France\n</parameter>\n"
	  "<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n"
	  "<parameter=location>\nTokyo, Japan\n</parameter>\n<parameter=unit>\ncelsius\n</parameter>\n<parameter=days>\n3\n"
	  "</parameter>\n<parameter=include_hourly>\nFalse\n</parameter>\n</function>\n</tool_call>",
	  "I'll look both up.\n", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_QWEN3_CODER, W, 0,
	  "<tool_call>\n<function=search_flights>\n<parameter=origin>\nCDG\n</parameter>\n<parameter=destination>\nNRT\n"
	  "</parameter>\n<parameter=dates>\n[\"2026-12-01\", \"2026-12-15\"]\n</parameter>\n<parameter=passengers>\n"
	  "{\"adults\": 2, \"children\": 1}\n</parameter>\n<parameter=max_price>\n2500.5\n</parameter>\n</function>\n"
	  "</tool_call>",
	  "", "", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_QWEN3_CODER, NOTOOLS, 0,
	  "<tool_call>\n<function=get_weather>\n<parameter=location>\n北京市\n</parameter>\n<parameter=note>\n明天会下雨吗？\n"
	  "</parameter>\n</function>\n</tool_call>",
	  "", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_QWEN3_CODER, W, 0, /* a string parameter stays a string even when it reads as JSON */
	  "<tool_call>\n<function=get_weather>\n<parameter=location>\n12345\n</parameter>\n</function>\n</tool_call>", "",
	  "", 1, { "get_weather" }, { "{\"location\":\"12345\"}" }, { 0 } },
	{ TC_QWEN3_CODER, W, 0,
	  "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</function>\n</tool_call>",
	  "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</function>\n</tool_call>", "", 0, { 0 },
	  { 0 }, { 0 } },
	{ TC_QWEN3_CODER, W, 0, "Hello! How can I help?", "Hello! How can I help?", "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- glm-4.5 / 4.6 ---- */
	{ TC_GLM45, W, 0,
	  "\n<think>The user asks about Paris.</think>\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>"
	  "Paris, France</arg_value>\n<arg_key>unit</arg_key>\n<arg_value>celsius</arg_value>\n</tool_call>",
	  "", "The user asks about Paris.", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_GLM45, W, 0,
	  "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris, France</arg_value>\n<arg_key>unit"
	  "</arg_key>\n<arg_value>celsius</arg_value>\n</tool_call>\n<tool_call>get_weather\n<arg_key>location</arg_key>\n"
	  "<arg_value>Tokyo, Japan</arg_value>\n<arg_key>unit</arg_key>\n<arg_value>celsius</arg_value>\n<arg_key>days"
	  "</arg_key>\n<arg_value>3</arg_value>\n<arg_key>include_hourly</arg_key>\n<arg_value>false</arg_value>\n"
	  "</tool_call>",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_GLM45, W, 0,
	  "Checking flights.<tool_call>search_flights\n<arg_key>origin</arg_key>\n<arg_value>CDG</arg_value>\n<arg_key>"
	  "destination</arg_key>\n<arg_value>NRT</arg_value>\n<arg_key>dates</arg_key>\n<arg_value>[\"2026-12-01\", "
	  "\"2026-12-15\"]</arg_value>\n<arg_key>passengers</arg_key>\n<arg_value>{\"adults\": 2, \"children\": 1}"
	  "</arg_value>\n<arg_key>max_price</arg_key>\n<arg_value>2500.5</arg_value>\n</tool_call>",
	  "Checking flights.", "", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_GLM45, NOTOOLS, 0,
	  "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>北京市</arg_value>\n<arg_key>note</arg_key>\n"
	  "<arg_value>明天会下雨吗？</arg_value>\n</tool_call>",
	  "", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_GLM45, W, 0, "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</tool_call>",
	  "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</tool_call>", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_GLM45, W, 1, "Thinking.</think>\nHi there.", "Hi there.", "Thinking.", 0, { 0 }, { 0 }, { 0 } },

	/* ---- llama 3.x ---- */
	{ TC_LLAMA3, W, 0, "{\"name\": \"get_weather\", \"parameters\": " PARIS_W "}", "", "", 1, { "get_weather" },
	  { PARIS }, { 0 } },
	{ TC_LLAMA3, W, 0, "The weather in Paris is mild.", "The weather in Paris is mild.", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_LLAMA3, W, 0, "{\"answer\": 42}", "{\"answer\": 42}", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_LLAMA3, NOTOOLS, 0, "{\"name\": \"get_weather\", \"parameters\": " BEIJING_W "}", "", "", 1, { "get_weather" },
	  { BEIJING }, { 0 } },
	{ TC_LLAMA3, W, 0, "{\"name\": \"search_flights\", \"parameters\": " FLIGHT_W "}", "", "", 1, { "search_flights" },
	  { FLIGHT }, { 0 } },
	{ TC_LLAMA3, NOTOOLS, 0, "<|python_tag|>brave_search.call(query=\"weather in Paris\")", "", "", 1,
	  { "brave_search" }, { "{\"query\":\"weather in Paris\"}" }, { 0 } },
	{ TC_LLAMA3, NOTOOLS, 0, "Let me compute.<|python_tag|>print(sum(range(10)))<|eom_id|>", "Let me compute.", "", 1,
	  { "python" }, { "{\"code\":\"print(sum(range(10)))\"}" }, { 0 } },
	{ TC_LLAMA3, W, 0, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": " TOKYO_W "}", "", "", 1,
	  { "get_weather" }, { TOKYO }, { 0 } },
	{ TC_LLAMA3, W, 0, "{\"name\": \"get_weather\", \"parameters\": {\"location\": ",
	  "{\"name\": \"get_weather\", \"parameters\": {\"location\": ", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_LLAMA3, W, 0, "<|python_tag|>print(1)", "<|python_tag|>print(1)", "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- mistral ---- */
	{ TC_MISTRAL, W, 0,
	  "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " PARIS_W ", \"id\": \"a1B2c3D4e\"}, {\"name\": "
	  "\"get_weather\", \"arguments\": " TOKYO_W ", \"id\": \"f5G6h7I8j\"}]",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { "a1B2c3D4e", "f5G6h7I8j" } },
	{ TC_MISTRAL, W, 0,
	  "[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]" PARIS_W "[TOOL_CALLS]get_weather[CALL_ID]f5G6h7I8j[ARGS]" TOKYO_W,
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { "a1B2c3D4e", "f5G6h7I8j" } },
	{ TC_MISTRAL, W, 0, "Sure, checking.[TOOL_CALLS]search_flights[ARGS]" FLIGHT_W, "Sure, checking.", "", 1,
	  { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_MISTRAL, NOTOOLS, 0, "[TOOL_CALLS]get_weather[ARGS]" BEIJING_W, "", "", 1, { "get_weather" }, { BEIJING },
	  { 0 } },
	{ TC_MISTRAL, W, 0, "[THINK]Paris, so get_weather.[/THINK][TOOL_CALLS]get_weather[ARGS]" PARIS_W, "",
	  "Paris, so get_weather.", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_MISTRAL, W, 0, "Bonjour ! Comment puis-je aider ?", "Bonjour ! Comment puis-je aider ?", "", 0, { 0 }, { 0 },
	  { 0 } },
	{ TC_MISTRAL, W, 0, "[TOOL_CALLS]get_weather[ARGS]{\"location\": oops}",
	  "[TOOL_CALLS]get_weather[ARGS]{\"location\": oops}", "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- deepseek r1 (distills, V3) ---- */
	{ TC_DEEPSEEK_R1, W, 1,
	  "The user wants Paris and Tokyo.\n</think>\n\n" DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP
	  "get_weather\n```json\n" PARIS_W "\n```" DS_CALL_END "\n" DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" TOKYO_W
	  "\n```" DS_CALL_END DS_CALLS_END,
	  "", "The user wants Paris and Tokyo.\n", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_DEEPSEEK_R1, W, 0,
	  "Searching now." DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "search_flights\n```json\n" FLIGHT_W "\n```" DS_CALL_END
	  DS_CALLS_END,
	  "Searching now.", "", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_DEEPSEEK_R1, NOTOOLS, 0,
	  DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n" BEIJING_W "\n```" DS_CALL_END DS_CALLS_END, "",
	  "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_DEEPSEEK_R1, W, 1, "Easy.\n</think>\n\n42", "42", "Easy.\n", 0, { 0 }, { 0 }, { 0 } },
	{ TC_DEEPSEEK_R1, W, 0,
	  DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"location\": \n```" DS_CALL_END DS_CALLS_END,
	  DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"location\": \n```" DS_CALL_END, "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- deepseek v3.1 ---- */
	{ TC_DEEPSEEK_V31, W, 0,
	  DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP PARIS_W DS_CALL_END DS_CALL_BEGIN "get_weather" DS_SEP TOKYO_W
	  DS_CALL_END DS_CALLS_END,
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_DEEPSEEK_V31, W, 1,
	  "Need flights.</think>Let me search." DS_CALLS_BEGIN DS_CALL_BEGIN "search_flights" DS_SEP FLIGHT_W DS_CALL_END
	  DS_CALLS_END,
	  "Let me search.", "Need flights.", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_DEEPSEEK_V31, NOTOOLS, 0, DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP BEIJING_W DS_CALL_END DS_CALLS_END,
	  "", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_DEEPSEEK_V31, W, 0, DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP "{\"location\"" DS_CALL_END DS_CALLS_END,
	  DS_CALL_BEGIN "get_weather" DS_SEP "{\"location\"" DS_CALL_END, "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- gpt-oss harmony ---- */
	{ TC_HARMONY, W, 0,
	  "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
	  "to=functions.get_weather <|constrain|>json<|message|>" PARIS_W "<|call|>",
	  "", "Need the weather.", 1, { "get_weather" }, { PARIS }, { 0 } },
	{ TC_HARMONY, W, 0,
	  " to=functions.get_weather<|channel|>commentary json<|message|>" PARIS_W "<|call|><|start|>assistant "
	  "to=functions.get_weather<|channel|>commentary json<|message|>" TOKYO_W "<|call|>",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_HARMONY, W, 0,
	  "<|channel|>analysis<|message|>Simple greeting.<|end|><|start|>assistant<|channel|>final<|message|>Hello! "
	  "你好！<|return|>",
	  "Hello! 你好！", "Simple greeting.", 0, { 0 }, { 0 }, { 0 } },
	{ TC_HARMONY, NOTOOLS, 0,
	  "<|channel|>commentary to=functions.search_flights <|constrain|>json<|message|>" FLIGHT_W "<|call|>", "", "", 1,
	  { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_HARMONY, NOTOOLS, 0, "<|channel|>commentary to=functions.get_weather json<|message|>" BEIJING_W "<|call|>", "",
	  "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_HARMONY, W, 0, "<|channel|>commentary to=functions.get_weather json<|message|>{\"location\"<|call|>",
	  "<|channel|>commentary to=functions.get_weather json<|message|>{\"location\"<|call|>", "", 0, { 0 }, { 0 },
	  { 0 } },
	{ TC_HARMONY, W, 0, "Plain text without any channel.", "Plain text without any channel.", "", 0, { 0 }, { 0 },
	  { 0 } },

	/* ---- functionary v3.2 (the prompt ends with ">>>") ---- */
	{ TC_FUNCTIONARY_V32, W, 0, "all\nHello! How can I help?", "Hello! How can I help?", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_FUNCTIONARY_V32, W, 0, "get_weather\n" PARIS_W ">>>get_weather\n" TOKYO_W, "", "", 2,
	  { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_FUNCTIONARY_V32, W, 0, "all\nLet me search.>>>search_flights\n" FLIGHT_W, "Let me search.", "", 1,
	  { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_FUNCTIONARY_V32, NOTOOLS, 0, "get_weather\n" BEIJING_W, "", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_FUNCTIONARY_V32, NOTOOLS, 0, "python\nprint(2 + 2)", "", "", 1, { "python" }, { "{\"code\":\"print(2 + 2)\"}" },
	  { 0 } },
	{ TC_FUNCTIONARY_V32, W, 0, "get_weather\n{\"location\": }", "get_weather\n{\"location\": }", "", 0, { 0 }, { 0 },
	  { 0 } },

	/* ---- granite ---- */
	{ TC_GRANITE, W, 0,
	  "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": " PARIS_W "}, {\"name\": \"get_weather\", "
	  "\"arguments\": " TOKYO_W "}]",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_GRANITE, W, 0, "<think>Easy.</think><response>Hello!</response>", "Hello!", "Easy.", 0, { 0 }, { 0 }, { 0 } },
	{ TC_GRANITE, NOTOOLS, 0, "Checking.<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": " BEIJING_W "}]",
	  "Checking.", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_GRANITE, W, 0, "<|tool_call|>[{\"name\": \"search_flights\", \"arguments\": " FLIGHT_W "}]", "", "", 1,
	  { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_GRANITE, W, 0, "<|tool_call|>[{\"name\": \"get_weather\"}, 5]", "<|tool_call|>[{\"name\": \"get_weather\"}, 5]",
	  "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- kimi-k2 ---- */
	{ TC_KIMI_K2, W, 0,
	  "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" PARIS_W
	  "<|tool_call_end|><|tool_call_begin|>functions.get_weather:1<|tool_call_argument_begin|>" TOKYO_W
	  "<|tool_call_end|><|tool_calls_section_end|>",
	  "", "", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_KIMI_K2, NOTOOLS, 0,
	  "I'll check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
	  BEIJING_W "<|tool_call_end|><|tool_calls_section_end|>",
	  "I'll check.", "", 1, { "get_weather" }, { BEIJING }, { 0 } },
	{ TC_KIMI_K2, W, 0,
	  "<|tool_calls_section_begin|><|tool_call_begin|>functions.search_flights:0<|tool_call_argument_begin|>" FLIGHT_W
	  "<|tool_call_end|><|tool_calls_section_end|>",
	  "", "", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_KIMI_K2, W, 0, "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"a\"<|tool_call_end|>",
	  "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"a\"<|tool_call_end|>", "", 0, { 0 },
	  { 0 }, { 0 } },

	/* ---- command-r7b ---- */
	{ TC_COMMAND_R7B, W, 0,
	  "<|START_THINKING|>I will look up both cities.<|END_THINKING|><|START_ACTION|>[\n    {\"tool_call_id\": \"0\", "
	  "\"tool_name\": \"get_weather\", \"parameters\": " PARIS_W "},\n    {\"tool_call_id\": \"1\", \"tool_name\": "
	  "\"get_weather\", \"parameters\": " TOKYO_W "}\n]<|END_ACTION|>",
	  "", "I will look up both cities.", 2, { "get_weather", "get_weather" }, { PARIS, TOKYO }, { 0 } },
	{ TC_COMMAND_R7B, W, 0, "<|START_RESPONSE|>Hello! 你好<|END_RESPONSE|>", "Hello! 你好", "", 0, { 0 }, { 0 }, { 0 } },
	{ TC_COMMAND_R7B, NOTOOLS, 0,
	  "<|START_ACTION|>[{\"tool_call_id\": \"0\", \"tool_name\": \"search_flights\", \"parameters\": " FLIGHT_W
	  "}]<|END_ACTION|>",
	  "", "", 1, { "search_flights" }, { FLIGHT }, { 0 } },
	{ TC_COMMAND_R7B, W, 0, "<|START_ACTION|>[{\"tool_name\": \"get_weather\"<|END_ACTION|>",
	  "<|START_ACTION|>[{\"tool_name\": \"get_weather\"<|END_ACTION|>", "", 0, { 0 }, { 0 }, { 0 } },

	/* ---- reasoning only, none ---- */
	{ TC_THINK, W, 0, "<think>\nA thought.\n</think>\n\nAn answer.", "An answer.", "A thought.\n", 0, { 0 }, { 0 },
	  { 0 } },
	{ TC_NONE, W, 0, "<think>x</think><tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>",
	  "<think>x</think><tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>", "", 0, { 0 }, { 0 }, { 0 } },
};

/* ---- helpers ---- */

static uint64_t test_random(void *ud)
{
	uint64_t *s = ud;
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct log {
	char *s;
	size_t n;
	int last; /* kind of the last record, -1 none */
};

static void log_add(struct log *l, int kind, const char *txt, size_t n, bool merge)
{
	char head[300];
	int h = 0;
	if (!(merge && l->last == kind))
		h = snprintf(head, sizeof head, "\n%d|", kind);
	l->s = realloc(l->s, l->n + (size_t)h + n + 1);
	memcpy(l->s + l->n, head, (size_t)h);
	memcpy(l->s + l->n + h, txt, n);
	l->n += (size_t)h + n;
	l->s[l->n] = '\0';
	l->last = kind;
}

/* Appends ev's events to the log (adjacent content/reasoning joined), checks
 * the per-call order (begin, then arguments) and collects argument deltas. */
static void log_events(struct log *l, const struct tc_events *ev, char **args_acc, const char *what)
{
	for (size_t i = 0; i < ev->n; i++) {
		const struct tc_event *e = &ev->v[i];
		char rec[400];
		switch (e->kind) {
		case TC_EV_CONTENT:
		case TC_EV_REASONING:
			log_add(l, e->kind, e->text, e->len, true);
			break;
		case TC_EV_CALL_BEGIN:
		case TC_EV_CALL_DONE:
		case TC_EV_CALL_FAIL:
			snprintf(rec, sizeof rec, "%d %s %s", e->index, e->name ? e->name : "", e->id);
			log_add(l, e->kind, rec, strlen(rec), false);
			if (e->kind == TC_EV_CALL_DONE)
				log_add(l, 99, e->text, e->len, false);
			if (e->kind == TC_EV_CALL_BEGIN && args_acc[e->index])
				T_FAIL("%s: call %d begun twice", what, e->index);
			if (e->kind == TC_EV_CALL_BEGIN)
				args_acc[e->index] = strdup("");
			break;
		case TC_EV_CALL_ARGS: {
			log_add(l, 100 + e->index, e->text, e->len, true);
			if (e->index < 0 || e->index >= TC_MAX_CALLS || !args_acc[e->index]) {
				T_FAIL("%s: arguments for call %d before its begin", what, e->index);
				break;
			}
			char *a = args_acc[e->index];
			size_t an = strlen(a);
			a = realloc(a, an + e->len + 1);
			memcpy(a + an, e->text, e->len + 1);
			args_acc[e->index] = a;
			break;
		}
		}
	}
}

/* Runs text through a parser in pieces (piece(k) gives the k-th size); the
 * joined event log, and checks that each final call's arguments are the
 * concatenation of its deltas. */
static char *run_split(const struct tc_case *c, const json_t *tools, size_t (*piece)(void *, size_t), void *ud,
		       const char *what)
{
	struct tc_parser *p = NULL;
	struct hearth_err err = { 0 };
	struct tc_events ev = { 0 };
	struct log l = { NULL, 0, -1 };
	char *acc[TC_MAX_CALLS] = { 0 };
	uint64_t seed = 0x1234567;
	T_OK(tc_parser_new(c->fmt, tools, c->sir, &p, &err), err);
	if (!p)
		return strdup("");
	tc_parser_set_random(p, test_random, &seed);
	size_t len = strlen(c->text);
	for (size_t at = 0, k = 0; at < len; k++) {
		size_t n = piece(ud, k);
		if (n > len - at)
			n = len - at;
		T_OK(tc_parser_feed(p, c->text + at, n, &ev, &err), err);
		log_events(&l, &ev, acc, what);
		tc_events_clear(&ev);
		at += n;
	}
	T_OK(tc_parser_finish(p, &ev, &err), err);
	log_events(&l, &ev, acc, what);
	for (size_t i = 0; i < ev.n; i++)
		if (ev.v[i].kind == TC_EV_CALL_DONE) {
			const char *a = acc[ev.v[i].index];
			if (!a || strcmp(a, ev.v[i].text))
				T_FAIL("%s: call %d: deltas '%s' != final '%s'", what, ev.v[i].index, a ? a : "(none)",
				       ev.v[i].text);
		}
	tc_events_free(&ev);
	tc_parser_free(p);
	for (int i = 0; i < TC_MAX_CALLS; i++)
		free(acc[i]);
	return l.s ? l.s : strdup("");
}

static size_t piece_whole(void *ud, size_t k)
{
	(void)ud, (void)k;
	return SIZE_MAX;
}
static size_t piece_byte(void *ud, size_t k)
{
	(void)ud, (void)k;
	return 1;
}
static size_t piece_three(void *ud, size_t k)
{
	(void)ud, (void)k;
	return 3;
}
static size_t piece_random(void *ud, size_t k)
{
	(void)k;
	return 1 + test_random(ud) % 9;
}

static bool id_ok(const char *id, bool mistral)
{
	size_t n = strlen(id), a = mistral ? 0 : 5;
	if (mistral ? n != 9 : (n != 29 || strncmp(id, "call_", 5)))
		return false;
	for (size_t i = a; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

static void check_whole(int ci, const struct tc_case *c, const json_t *tools)
{
	struct tc_result r;
	struct hearth_err err = { 0 };
	uint64_t seed = 0x1234567;
	int rc = tc_parse(c->fmt, tools, c->sir, c->text, strlen(c->text), test_random, &seed, &r, &err);
	T_OK(rc, err);
	if (rc)
		return;
	const char *fmt = tc_format_name(c->fmt);
	if (strcmp(r.content, c->content))
		T_FAIL("case %d (%s): content \"%s\", expected \"%s\"", ci, fmt, r.content, c->content);
	if (strcmp(r.reasoning, c->reasoning))
		T_FAIL("case %d (%s): reasoning \"%s\", expected \"%s\"", ci, fmt, r.reasoning, c->reasoning);
	if (r.n_calls != c->n_calls)
		T_FAIL("case %d (%s): %d calls, expected %d", ci, fmt, (int)r.n_calls, c->n_calls);
	for (int i = 0; i < r.n_calls && i < c->n_calls; i++) {
		if (strcmp(r.calls[i].name, c->names[i]) || strcmp(r.calls[i].arguments, c->args[i]))
			T_FAIL("case %d (%s): call %d is %s %s, expected %s %s", ci, fmt, i, r.calls[i].name,
			       r.calls[i].arguments, c->names[i], c->args[i]);
		if (c->ids[i] ? strcmp(r.calls[i].id, c->ids[i]) : !id_ok(r.calls[i].id, c->fmt == TC_MISTRAL))
			T_FAIL("case %d (%s): call %d has id '%s'", ci, fmt, i, r.calls[i].id);
	}
	tc_result_free(&r);
}

void test_toolcall_formats(void)
{
	json_error_t je;
	json_t *tools = json_loads(tools_json, 0, &je);
	T_TRUE(tools != NULL);
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		const struct tc_case *c = &cases[ci];
		check_whole((int)ci, c, c->tools ? tools : NULL);
	}
	json_decref(tools);
}

void test_toolcall_streaming(void)
{
	json_error_t je;
	json_t *tools = json_loads(tools_json, 0, &je);
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		const struct tc_case *c = &cases[ci];
		const json_t *t = c->tools ? tools : NULL;
		char what[64];
		snprintf(what, sizeof what, "case %zu (%s)", ci, tc_format_name(c->fmt));
		char *whole = run_split(c, t, piece_whole, NULL, what);
		char *others[10];
		int n_others = 0;
		others[n_others++] = run_split(c, t, piece_byte, NULL, what);
		others[n_others++] = run_split(c, t, piece_three, NULL, what);
		for (uint64_t s = 1; s <= 8; s++) {
			uint64_t seed = s * 0x9e3779b97f4a7c15ull;
			others[n_others++] = run_split(c, t, piece_random, &seed, what);
		}
		for (int k = 0; k < n_others; k++) {
			if (strcmp(whole, others[k]))
				T_FAIL("%s: split %d gives other events:\n--- whole:%s\n--- split:%s", what, k, whole, others[k]);
			free(others[k]);
		}
		free(whole);
	}
	json_decref(tools);
}

/* Each fixture template's family, from its text. */
void test_toolcall_detect(void)
{
	static const struct {
		const char *file;
		enum tc_format fmt;
	} want[] = {
		{ "CohereForAI-c4ai-command-r7b-12-2024-tool_use", TC_COMMAND_R7B },
		{ "GLM-4.6", TC_GLM45 },
		{ "HuggingFaceTB-SmolLM3-3B", TC_HERMES },
		{ "Mistral-Small-3.2-24B-Instruct-2506", TC_MISTRAL },
		{ "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", TC_HERMES },
		{ "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", TC_HERMES },
		{ "Qwen-QwQ-32B", TC_HERMES },
		{ "Qwen-Qwen2.5-7B-Instruct", TC_HERMES },
		{ "Qwen-Qwen3-0.6B", TC_HERMES },
		{ "Qwen3-Coder", TC_QWEN3_CODER },
		{ "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", TC_DEEPSEEK_R1 },
		{ "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", TC_DEEPSEEK_R1 },
		{ "deepseek-ai-DeepSeek-V3.1", TC_DEEPSEEK_V31 },
		{ "google-gemma-2-2b-it", TC_NONE },
		{ "google-gemma-3-it", TC_NONE },
		{ "ibm-granite-granite-3.3-2B-Instruct", TC_GRANITE },
		{ "meetkai-functionary-medium-v3.2", TC_FUNCTIONARY_V32 },
		{ "meta-llama-Llama-3.1-8B-Instruct", TC_LLAMA3 },
		{ "meta-llama-Llama-3.2-3B-Instruct", TC_LLAMA3 },
		{ "meta-llama-Llama-3.3-70B-Instruct", TC_LLAMA3 },
		{ "microsoft-Phi-3.5-mini-instruct", TC_NONE },
		{ "mistralai-Mistral-Nemo-Instruct-2407", TC_MISTRAL },
		{ "moonshotai-Kimi-K2", TC_KIMI_K2 },
		{ "openai-gpt-oss-120b", TC_HARMONY },
		{ "openbmb-MiniCPM5-1B", TC_THINK },
		{ "unsloth-mistral-Devstral-Small-2507", TC_MISTRAL },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char rel[256];
		snprintf(rel, sizeof rel, "templates/templates/%s.jinja", want[i].file);
		FILE *f = fopen(fixture(rel), "rb");
		T_TRUE(f != NULL);
		if (!f)
			continue;
		static char src[256 * 1024];
		size_t n = fread(src, 1, sizeof src - 1, f);
		fclose(f);
		src[n] = '\0';
		enum tc_format got = tc_format_detect(src, NULL);
		if (got != want[i].fmt)
			T_FAIL("%s: detected %s, expected %s", want[i].file, tc_format_name(got), tc_format_name(want[i].fmt));
	}
	T_EQ_I64(tc_format_detect(NULL, "gpt-oss"), TC_HARMONY);
	T_EQ_I64(tc_format_detect(NULL, "qwen3"), TC_HERMES);
	T_EQ_I64(tc_format_detect("plain {{ messages }}", "llama"), TC_NONE);
	T_EQ_I64(tc_format_detect(NULL, NULL), TC_NONE);
	T_STR_EQ(tc_format_name(TC_HERMES), "hermes");
	T_STR_EQ(tc_format_name((enum tc_format)99), "?");
	T_STR_EQ(tc_call_opener(TC_HERMES), "<tool_call>\n");
	T_STR_EQ(tc_call_opener(TC_MISTRAL), "[TOOL_CALLS]");
	T_TRUE(tc_call_opener(TC_NONE) == NULL);
	/* every opener, followed by a call, parses as one */
	for (int fmt = 1; fmt < TC_FORMAT_COUNT; fmt++)
		T_TRUE(fmt == TC_THINK || tc_call_opener((enum tc_format)fmt) != NULL);
}

/* Early names, limits, bad arguments to the API. */
void test_toolcall_limits(void)
{
	struct tc_parser *p = NULL;
	struct hearth_err err = { 0 };
	struct tc_events ev = { 0 };
	json_error_t je;
	json_t *tools = json_loads(tools_json, 0, &je);

	T_EQ_I64(tc_parser_new((enum tc_format)99, NULL, false, &p, &err), HEARTH_EINVAL);
	json_t *obj = json_object();
	T_EQ_I64(tc_parser_new(TC_HERMES, obj, false, &p, &err), HEARTH_EINVAL);
	json_decref(obj);

	/* the name is sent as soon as it is known, before the arguments arrive */
	T_OK(tc_parser_new(TC_HERMES, tools, false, &p, &err), err);
	const char *head = "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"argu";
	T_OK(tc_parser_feed(p, head, strlen(head), &ev, &err), err);
	bool begun = false;
	for (size_t i = 0; i < ev.n; i++)
		if (ev.v[i].kind == TC_EV_CALL_BEGIN && !strcmp(ev.v[i].name, "get_weather") && ev.v[i].index == 0)
			begun = true;
	T_TRUE(begun);
	/* ... and when the call then turns out malformed it fails and its text is content */
	tc_events_clear(&ev);
	const char *tail = "ments\": {\"location\" \"Paris\"}}\n</tool_call>";
	T_OK(tc_parser_feed(p, tail, strlen(tail), &ev, &err), err);
	T_OK(tc_parser_finish(p, &ev, &err), err);
	T_TRUE(ev.n == 2 && ev.v[0].kind == TC_EV_CALL_FAIL && ev.v[1].kind == TC_EV_CONTENT);
	if (ev.n == 2)
		T_TRUE(!strncmp(ev.v[1].text, "<tool_call>\n{\"name\"", 19));
	T_EQ_I64(tc_parser_feed(p, "x", 1, &ev, &err), HEARTH_EINVAL);
	tc_events_free(&ev);
	tc_parser_free(p);

	/* a call that never closes: held at most TC_MAX_BLOCK bytes, then content */
	size_t big = TC_MAX_BLOCK + 5000;
	char *s = malloc(big + 1);
	const char *open = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"a\": \"";
	memcpy(s, open, strlen(open));
	memset(s + strlen(open), 'x', big - strlen(open));
	s[big] = '\0';
	struct tc_result r;
	T_OK(tc_parse(TC_HERMES, tools, false, s, big, NULL, NULL, &r, &err), err);
	T_EQ_I64(r.n_calls, 0);
	T_TRUE(r.content && !strcmp(r.content, s));
	tc_result_free(&r);

	/* more calls than TC_MAX_CALLS: the rest is content */
	const char *one = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n";
	size_t on = strlen(one), n_one = TC_MAX_CALLS + 3;
	char *many = malloc(on * n_one + 1);
	for (size_t i = 0; i < n_one; i++)
		memcpy(many + i * on, one, on);
	many[on * n_one] = '\0';
	T_OK(tc_parse(TC_HERMES, tools, false, many, on * n_one, NULL, NULL, &r, &err), err);
	T_EQ_I64(r.n_calls, TC_MAX_CALLS);
	T_TRUE(r.content && strlen(r.content) >= 3 * (on - 1));
	tc_result_free(&r);

	/* content with no markers at all passes through exactly, NUL bytes included */
	T_OK(tc_parse(TC_HERMES, NULL, false, "a\0b", 3, NULL, NULL, &r, &err), err);
	T_TRUE(r.content && r.content[0] == 'a' && r.content[1] == '\0' && r.content[2] == 'b');
	tc_result_free(&r);
	free(many);
	free(s);
	json_decref(tools);
}
