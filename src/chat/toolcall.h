/* toolcall.h - model output (generated text) into OpenAI tool calls and
 * reasoning, for each model family's own syntax, whole or streamed.
 *
 * A parser reads the text a model generates, in pieces of any size, and
 * turns it into events shaped like OpenAI's streaming deltas:
 *
 *   TC_EV_CONTENT     text for message.content
 *   TC_EV_REASONING   text for message.reasoning_content (<think>, harmony's analysis channel ...)
 *   TC_EV_CALL_BEGIN  a tool call starts: index, id, name (sent with empty arguments)
 *   TC_EV_CALL_ARGS   a piece of the call's function.arguments (index, text)
 *   TC_EV_CALL_FAIL   a call that had begun turned out malformed (index); its raw
 *                     text follows as content and it is not among the final calls
 *   TC_EV_CALL_DONE   at finish, once per final call, in order: index, id, name,
 *                     and the whole arguments (a JSON object's text) in text
 *
 * Rules the events keep, whatever the pieces the text arrives in (byte by
 * byte, tokens, whole):
 *  1. The same text gives the same events once consecutive deltas of one kind
 *     are joined: the concatenation of the content deltas is the content, of a
 *     call's argument deltas its final arguments.
 *  2. Text that may still be the start of a marker is held back until it is
 *     told apart (then released exactly as it was); at most a marker's length
 *     in content, TC_MAX_BLOCK bytes inside a call.
 *  3. Malformed output (JSON that does not parse, a tool name not among the
 *     request's tools, a call that never closes or outgrows TC_MAX_BLOCK, a
 *     call beyond TC_MAX_CALLS) is content: its raw text, never an invented call.
 *
 * Arguments are emitted as one delta when a call's text closes, normalized to
 * compact JSON (jansson, key order kept, UTF-8 unescaped); the name comes as
 * soon as the family's syntax gives it. Ids are "call_" and 24 alphanumerics
 * (Mistral: 9 alphanumerics, or the model's own [CALL_ID]), drawn from the
 * parser's random source (tc_parser_set_random; by default seeded from the
 * system's random bytes).
 *
 * Thread-safety: a parser is used by one thread at a time; distinct parsers
 * share nothing. Ownership: the caller owns the parser, the events structure
 * and the tools (the parser takes its own reference).
 */
#ifndef HEARTH_TOOLCALL_H
#define HEARTH_TOOLCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define TC_MAX_BLOCK (256 * 1024) /* bytes of one call's text (after its opener) */
#define TC_MAX_CALLS 64           /* calls in one answer; later ones are content */
#define TC_MAX_NAME 256           /* bytes of a tool name */

enum tc_format { /* append only */
	TC_NONE = 0,        /* plain content: no tool calls, no reasoning */
	TC_HERMES,          /* Hermes 2/3, Qwen2.5, Qwen3, QwQ, SmolLM3: <tool_call>{json}</tool_call> */
	TC_QWEN3_CODER,     /* <tool_call><function=N><parameter=K>V</parameter></function></tool_call> */
	TC_LLAMA3,          /* Llama 3.1-3.3: a bare {"name", "parameters"} answer, <|python_tag|> */
	TC_MISTRAL,         /* [TOOL_CALLS][{...}] (Nemo) and [TOOL_CALLS]N[CALL_ID]id[ARGS]{...} (Small 3.x, Devstral) */
	TC_DEEPSEEK_R1,     /* R1 distills, V3: <｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json ...``` */
	TC_DEEPSEEK_V31,    /* V3.1: <｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}<｜tool▁call▁end｜> */
	TC_GLM45,           /* GLM-4.5/4.6: <tool_call>N<arg_key>K</arg_key><arg_value>V</arg_value></tool_call> */
	TC_HARMONY,         /* gpt-oss: <|channel|>analysis|final|commentary to=functions.N ... */
	TC_FUNCTIONARY_V32, /* >>>N\n{...} and >>>all\ntext (the prompt ends with ">>>") */
	TC_GRANITE,         /* Granite 3.x: <|tool_call|>[{"name", "arguments"}, ...] */
	TC_KIMI_K2,         /* <|tool_call_begin|>functions.N:i<|tool_call_argument_begin|>{...}<|tool_call_end|> */
	TC_COMMAND_R7B,     /* <|START_THINKING|>..<|END_THINKING|> <|START_ACTION|>[...]<|END_ACTION|> */
	TC_THINK,           /* no call syntax known, but <think>...</think> reasoning (MiniCPM5 ...) */
	TC_FORMAT_COUNT
};

/* The family of a chat template's text (the markers it contains), else of the
 * model architecture (GGUF general.architecture; either may be NULL); TC_NONE
 * when neither says. */
enum tc_format tc_format_detect(const char *template_src, const char *arch);
/* "hermes", "qwen3-coder", ... ("none" for TC_NONE, "?" out of range). */
const char *tc_format_name(enum tc_format format);
/* The literal text that starts a call in this format (for a grammar that forces
 * one), or NULL for formats without calls. Functionary's prompt already ends
 * with ">>>": a call there starts with the tool's name. */
const char *tc_call_opener(enum tc_format format);

enum tc_event_kind {
	TC_EV_CONTENT,
	TC_EV_REASONING,
	TC_EV_CALL_BEGIN,
	TC_EV_CALL_ARGS,
	TC_EV_CALL_FAIL,
	TC_EV_CALL_DONE,
};

struct tc_event {
	enum tc_event_kind kind;
	int32_t index; /* the call's index (CALL_*); -1 for content and reasoning */
	char *text;    /* CONTENT, REASONING, CALL_ARGS, CALL_DONE (arguments); NUL-terminated, else NULL */
	size_t len;    /* bytes of text */
	char *name;    /* CALL_BEGIN, CALL_DONE; else NULL */
	char id[32];   /* CALL_BEGIN, CALL_DONE; else "" */
};

/* Events the caller drains. Zero-initialize; tc_events_clear() empties it for
 * reuse (freeing the texts), tc_events_free() releases everything. Adjacent
 * content (or reasoning) deltas of one feed are merged into one event. */
struct tc_events {
	struct tc_event *v;
	size_t n, cap;
};
void tc_events_clear(struct tc_events *ev);
void tc_events_free(struct tc_events *ev);

/* A final call (tc_parser_calls, tc_parse). */
struct tc_call {
	int32_t index;   /* as streamed (a failed call leaves its index unused) */
	char id[32];     /* "call_..." or Mistral's 9 characters */
	char *name;      /* owned by the parser (or the tc_result) */
	char *arguments; /* a JSON object's text, compact */
};

struct tc_parser;

/* A new parser for format. tools: the request's "tools" array (OpenAI shape;
 * NULL or empty: any well-formed name is accepted), referenced while the
 * parser lives; tool names are checked against it and parameter schemas
 * decide the types of Qwen3-Coder's and GLM's values. starts_in_reasoning:
 * the prompt ended inside the reasoning block (the template wrote the opening
 * <think>), so the output starts as reasoning. HEARTH_EINVAL for a format out
 * of range or tools that are not an array; HEARTH_ENOMEM. */
int tc_parser_new(enum tc_format format, const json_t *tools, bool starts_in_reasoning, struct tc_parser **out,
		  struct hearth_err *err);
void tc_parser_free(struct tc_parser *p);

/* Where ids come from: fn(ud) returns 64 random bits each call (tests pass a
 * seeded generator for repeatable ids). */
typedef uint64_t (*tc_random_fn)(void *ud);
void tc_parser_set_random(struct tc_parser *p, tc_random_fn fn, void *ud);

/* Reads len more bytes of output and appends the events they settle to ev.
 * HEARTH_EINVAL after tc_parser_finish; HEARTH_ENOMEM (the parser is then
 * unusable but may be freed). */
int tc_parser_feed(struct tc_parser *p, const char *text, size_t len, struct tc_events *ev, struct hearth_err *err);
/* The output has ended: settles everything held back (an unclosed call
 * becomes content; unclosed reasoning stays reasoning) and appends one
 * TC_EV_CALL_DONE per final call. Further feeds are refused. */
int tc_parser_finish(struct tc_parser *p, struct tc_events *ev, struct hearth_err *err);
/* The calls completed so far (all of them after finish), owned by the parser. */
const struct tc_call *tc_parser_calls(const struct tc_parser *p, int32_t *n_calls);

/* The non-streaming result: everything at once. */
struct tc_result {
	char *content;   /* never NULL ("" when none) */
	char *reasoning; /* never NULL */
	struct tc_call *calls;
	int32_t n_calls;
};
/* Parses a whole output (one feed, then finish) into out, which the caller
 * releases with tc_result_free. */
int tc_parse(enum tc_format format, const json_t *tools, bool starts_in_reasoning, const char *text, size_t len,
	     tc_random_fn rnd, void *rnd_ud, struct tc_result *out, struct hearth_err *err);
void tc_result_free(struct tc_result *r);

#endif /* HEARTH_TOOLCALL_H */
