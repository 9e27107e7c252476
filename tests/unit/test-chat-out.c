/* test-chat-out.c - a chat answer as OpenAI's message fields (server/chat-out.c):
 * streamed deltas in any split add up to the non-streamed message; a call
 * goes out whole, once, numbered from 0; a malformed call stays content. */
#include <stdlib.h>
#include <string.h>

#include "../../server/openai.h"
#include "../harness.h"

static const char tools[] = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
			    "\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";

/* Concatenates a string field of delta into *acc. */
static void take(json_t *delta, const char *key, char *acc, size_t size)
{
	const char *s = json_string_value(json_object_get(delta, key));
	if (s)
		strncat(acc, s, size - strlen(acc) - 1);
}

static void check_answer(struct server *srv, const char *answer, const char *want_content, const char *want_reasoning,
			 int want_calls)
{
	struct hearth_err err = { 0 };
	struct chat_out whole, part;
	T_OK(chat_out_init(&whole, srv->models.m[0], NULL, tools, strlen(tools), true, &err), err);
	json_t *msg = json_object();
	T_TRUE(chat_out_message(&whole, answer, strlen(answer), msg));
	const char *content = json_string_value(json_object_get(msg, "content"));
	T_STR_EQ(content ? content : "", want_content);
	T_STR_EQ(json_string_value(json_object_get(msg, "reasoning_content")) ? json_string_value(json_object_get(msg, "reasoning_content")) : "",
		 want_reasoning);
	T_EQ_I64(json_array_size(json_object_get(msg, "tool_calls")), want_calls);
	if (want_calls && !*want_content)
		T_TRUE(json_is_null(json_object_get(msg, "content")));
	for (size_t step = 1; step <= 7; step += 3) { /* streamed in pieces of 1, 4, 7 bytes */
		char c[512] = "", r[512] = "";
		int calls = 0;
		T_OK(chat_out_init(&part, srv->models.m[0], NULL, tools, strlen(tools), true, &err), err);
		for (size_t i = 0; i <= strlen(answer); i += step) {
			const size_t n = strlen(answer) - i < step ? strlen(answer) - i : step;
			json_t *delta = json_object();
			T_TRUE(chat_out_delta(&part, answer + i, n, i + n == strlen(answer), delta));
			take(delta, "content", c, sizeof c);
			take(delta, "reasoning_content", r, sizeof r);
			json_t *tc = json_object_get(delta, "tool_calls"), *call;
			size_t k;
			json_array_foreach(tc, k, call) {
				json_t *want = json_array_get(json_object_get(msg, "tool_calls"), (size_t)calls);
				T_EQ_I64(json_integer_value(json_object_get(call, "index")), calls);
				T_TRUE(json_equal(json_object_get(call, "function"), json_object_get(want, "function")));
				calls++;
			}
			json_decref(delta);
			if (i + n == strlen(answer))
				break;
		}
		T_STR_EQ(c, want_content);
		T_STR_EQ(r, want_reasoning);
		T_EQ_I64(calls, want_calls);
		chat_out_free(&part);
	}
	json_decref(msg);
	chat_out_free(&whole);
}

void test_chat_out(void)
{
	struct server srv;
	struct hearth_err err = { 0 };
	memset(&srv, 0, sizeof srv);
	srv.model_path = fixture("models/tiny-qwen3.f32.gguf");
	srv.sp = hearth_sched_default_params();
	srv.sp.n_parallel = 1;
	srv.sp.n_ctx_seq = 64;
	srv.sp.n_threads = 1;
	if (server_load(&srv, NULL, 0, &err)) {
		T_FAIL("%s", err.msg);
		return;
	}
	check_answer(&srv, "<think>Is it cold?</think>\n\nLet me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
			   "{\"city\": \"北京\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
		     "Let me check.", "Is it cold?", 2);
	check_answer(&srv, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>", "", "", 1);
	check_answer(&srv, "Plain text, no call.", "Plain text, no call.", "", 0);
	/* a call of no declared tool, and broken JSON: content, never a call */
	check_answer(&srv, "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>",
		     "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>", "", 0);
	check_answer(&srv, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",
		     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>", "", 0);
	/* parallel_tool_calls false: the first call only */
	struct chat_out one;
	json_t *msg = json_object();
	const char *two = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n"
			  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}\n</tool_call>";
	T_OK(chat_out_init(&one, srv.models.m[0], NULL, tools, strlen(tools), false, &err), err);
	T_TRUE(chat_out_message(&one, two, strlen(two), msg));
	T_EQ_I64(json_array_size(json_object_get(msg, "tool_calls")), 1);
	json_decref(msg);
	chat_out_free(&one);
	server_unload(&srv);
}
