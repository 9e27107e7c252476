/* test-ollama.c - Ollama's requests read into the OpenAI path's fields
 * (server/ollama-wire.c): options, format, think, messages, images refused,
 * errors in Ollama's shape; and keep_alive's durations. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/ollama.h"
#include "../harness.h"

/* keep_alive of body (JSON text): the seconds, or NAN when refused. */
static double keep(const char *body)
{
	struct reply rp = { .ollama = true };
	double k;
	json_t *b = json_loads(body, 0, NULL);
	bool ok = ollama_wire_keep_alive(b, &k, &rp);
	json_decref(b);
	if (!ok) {
		T_EQ_I64(rp.status, 400);
		T_TRUE(rp.body && strstr(rp.body, "\"error\":\"'keep_alive'") != NULL);
	}
	free(rp.body);
	return ok ? k : NAN;
}

/* The OpenAI-shaped body of an Ollama body (JSON text), or NULL with the error in *status / msg. */
static json_t *wire(const char *body, bool chat, int *status, char *msg, size_t size)
{
	struct reply rp = { .ollama = true };
	json_t *out = NULL, *b = json_loads(body, 0, NULL);
	T_TRUE(b != NULL);
	bool ok = ollama_wire_body(b, chat, &out, &rp);
	json_decref(b);
	*status = rp.status;
	msg[0] = 0;
	if (!ok && rp.body) {
		json_t *e = json_loads(rp.body, 0, NULL);
		T_TRUE(json_is_string(json_object_get(e, "error")) && json_object_size(e) == 1); /* Ollama's shape */
		snprintf(msg, size, "%s", json_string_value(json_object_get(e, "error")));
		json_decref(e);
	}
	free(rp.body);
	return out;
}

void test_ollama_wire(void)
{
	T_TRUE(keep("{}") == -1);
	T_TRUE(keep("{\"keep_alive\": null}") == -1);
	T_TRUE(keep("{\"keep_alive\": 0}") == 0);
	T_TRUE(keep("{\"keep_alive\": 90}") == 90);
	T_TRUE(isinf(keep("{\"keep_alive\": -1}")));
	T_TRUE(isinf(keep("{\"keep_alive\": \"-1\"}")));
	T_TRUE(isinf(keep("{\"keep_alive\": \"-5m\"}")));
	T_TRUE(keep("{\"keep_alive\": \"0\"}") == 0);
	T_TRUE(keep("{\"keep_alive\": \"5m\"}") == 300);
	T_TRUE(keep("{\"keep_alive\": \"1h30m\"}") == 5400);
	T_NEAR(keep("{\"keep_alive\": \"1.5s\"}"), 1.5, 1e-12);
	T_NEAR(keep("{\"keep_alive\": \"250ms\"}"), 0.25, 1e-12);
	T_TRUE(isnan(keep("{\"keep_alive\": \"5 minutes\"}")));
	T_TRUE(isnan(keep("{\"keep_alive\": \"m\"}")));
	T_TRUE(isnan(keep("{\"keep_alive\": \"\"}")));
	T_TRUE(isnan(keep("{\"keep_alive\": \"1e999h\"}")));
	T_TRUE(isnan(keep("{\"keep_alive\": true}")));

	int status;
	char msg[300];
	json_t *o = wire("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"thinking\":\"t\"},"
			 "{\"role\":\"tool\",\"content\":\"1\",\"tool_name\":\"f\"}],\"format\":\"json\",\"think\":false,"
			 "\"options\":{\"temperature\":0.5,\"num_predict\":7,\"top_k\":3,\"stop\":[\"\\n\"],\"num_ctx\":99}}",
			 true, &status, msg, sizeof msg);
	T_TRUE(o != NULL);
	T_TRUE(json_is_true(json_object_get(o, "stream")));          /* streaming is Ollama's default */
	T_EQ_I64(json_integer_value(json_object_get(o, "max_tokens")), 7);
	T_EQ_I64(json_integer_value(json_object_get(o, "top_k")), 3);
	T_NEAR(json_number_value(json_object_get(o, "temperature")), 0.5, 0);
	T_TRUE(json_object_get(o, "num_ctx") == NULL);                /* the server's, not a request's */
	T_STR_EQ(json_string_value(json_object_get(json_object_get(o, "response_format"), "type")), "json_object");
	T_TRUE(json_is_false(json_object_get(json_object_get(o, "chat_template_kwargs"), "enable_thinking")));
	json_t *m0 = json_array_get(json_object_get(o, "messages"), 0), *m1 = json_array_get(json_object_get(o, "messages"), 1);
	T_STR_EQ(json_string_value(json_object_get(m0, "reasoning_content")), "t");
	T_TRUE(json_object_get(m0, "thinking") == NULL);
	T_STR_EQ(json_string_value(json_object_get(m1, "name")), "f");
	json_decref(o);

	o = wire("{\"prompt\":\"hi\",\"system\":\"be brief\",\"stream\":false,\"format\":{\"type\":\"string\"},"
		 "\"options\":{\"num_predict\":-1}}", false, &status, msg, sizeof msg);
	T_TRUE(o != NULL);
	T_TRUE(json_is_false(json_object_get(o, "stream")));
	T_TRUE(json_object_get(o, "max_tokens") == NULL); /* -1: up to the context */
	T_EQ_I64(json_array_size(json_object_get(o, "messages")), 2);
	T_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(o, "messages"), 1), "content")), "hi");
	json_t *schema = json_object_get(json_object_get(json_object_get(o, "response_format"), "json_schema"), "schema");
	T_STR_EQ(json_string_value(json_object_get(schema, "type")), "string");
	json_decref(o);

	/* refused, each naming its field */
	static const char *const bad[][2] = {
		{ "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"images\":[\"aGk=\"]}]}", "images" },
		{ "{\"messages\":[],\"format\":\"yaml\"}", "'format'" },
		{ "{\"messages\":[],\"options\":[1]}", "'options'" },
		{ "{\"messages\":[],\"options\":{\"num_predict\":\"9\"}}", "num_predict" },
		{ "{\"messages\":[],\"think\":3}", "'think'" },
		{ "{\"messages\":[],\"stream\":\"yes\"}", "'stream'" },
		{ "{\"messages\":\"hi\"}", "'messages'" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		T_TRUE(wire(bad[i][0], true, &status, msg, sizeof msg) == NULL);
		T_EQ_I64(status, 400);
		T_TRUE(strstr(msg, bad[i][1]) != NULL);
	}
	T_TRUE(wire("{\"prompt\":7}", false, &status, msg, sizeof msg) == NULL);
	T_EQ_I64(status, 400);
}

/* A finished answer of tiny-qwen3 (its Hermes-style calls, <think> reasoning)
 * as Ollama's reply: whole, and streamed as NDJSON lines. */
static struct stream *answer_stream(struct server *srv, const char *answer, bool chat)
{
	static const char tools[] = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
				    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";
	struct hearth_err err = { 0 };
	struct served_model *sm;
	double load_s;
	struct call call = { .fd = -1 };
	T_OK(models_acquire(&srv->models, NULL, 0, &sm, &load_s, &err), err);
	struct stream *st = stream_new(sm, chat, &call);
	T_TRUE(st != NULL);
	ollama_wire_stream(st, chat);
	T_OK(chat_out_init(&st->reader[0], sm, NULL, tools, strlen(tools), true, &err), err);
	st->n_gen = 1;
	st->g[0].text = strdup(answer);
	st->g[0].len = strlen(answer);
	st->g[0].n_gen = 9;
	st->g[0].n_prompt = 5;
	st->g[0].finish = HEARTH_FINISH_STOP;
	return st;
}

void test_ollama_reply(void)
{
	struct server srv;
	struct hearth_err err = { 0 };
	const char *answer = "<think>Cold?</think>\n\nLet me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
			     "{\"city\": \"Oslo\"}}\n</tool_call>";
	memset(&srv, 0, sizeof srv);
	srv.alias = "q3";
	srv.model_path = fixture("models/tiny-qwen3.f32.gguf");
	srv.sp = hearth_sched_default_params();
	srv.sp.n_parallel = 1;
	srv.sp.n_ctx_seq = 64;
	srv.sp.n_threads = 1;
	if (server_load(&srv, NULL, 0, &err)) {
		T_FAIL("%s", err.msg);
		return;
	}
	struct stream *st = answer_stream(&srv, answer, true);
	json_t *j = ollama_wire_reply(st);
	json_t *msg = json_object_get(j, "message"), *call = json_array_get(json_object_get(msg, "tool_calls"), 0);
	T_STR_EQ(json_string_value(json_object_get(j, "model")), "q3");
	T_TRUE(json_is_true(json_object_get(j, "done")));
	T_STR_EQ(json_string_value(json_object_get(j, "done_reason")), "stop");
	T_EQ_I64(json_integer_value(json_object_get(j, "eval_count")), 9);
	T_EQ_I64(json_integer_value(json_object_get(j, "prompt_eval_count")), 5);
	T_STR_EQ(json_string_value(json_object_get(msg, "role")), "assistant");
	T_STR_EQ(json_string_value(json_object_get(msg, "content")), "Let me check.");
	T_STR_EQ(json_string_value(json_object_get(msg, "thinking")), "Cold?");
	T_STR_EQ(json_string_value(json_object_get(json_object_get(call, "function"), "name")), "get_weather");
	/* Ollama's arguments are an object, not OpenAI's JSON text */
	T_STR_EQ(json_string_value(json_object_get(json_object_get(json_object_get(call, "function"), "arguments"), "city")),
		 "Oslo");
	json_decref(j);
	stream_free(st);

	/* streamed: JSON lines adding up to the same, the last one done with the counts */
	st = answer_stream(&srv, answer, true);
	char buf[8192];
	size_t len = 0;
	bool ended = false;
	ssize_t n;
	while (!ended && (n = stream_read(st, buf + len, sizeof buf - 1 - len, &ended)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	stream_free(st);
	T_TRUE(!strstr(buf, "data: "));
	char content[256] = "", thinking[256] = "";
	int calls = 0, lines = 0;
	json_t *last = NULL;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		json_decref(last);
		last = json_loads(line, 0, NULL);
		T_TRUE(json_is_object(last));
		json_t *m = json_object_get(last, "message");
		const char *c = json_string_value(json_object_get(m, "content")), *t = json_string_value(json_object_get(m, "thinking"));
		strncat(content, c ? c : "", sizeof content - strlen(content) - 1);
		strncat(thinking, t ? t : "", sizeof thinking - strlen(thinking) - 1);
		calls += (int)json_array_size(json_object_get(m, "tool_calls"));
		lines++;
	}
	T_TRUE(lines >= 2);
	T_STR_EQ(content, "Let me check.");
	T_STR_EQ(thinking, "Cold?");
	T_EQ_I64(calls, 1);
	T_TRUE(json_is_true(json_object_get(last, "done")));
	T_EQ_I64(json_integer_value(json_object_get(last, "eval_count")), 9);
	json_decref(last);

	/* generate: "response" and "thinking" instead of a message */
	st = answer_stream(&srv, "<think>Hm.</think>\n\nOnce upon a time", false);
	j = ollama_wire_reply(st);
	T_STR_EQ(json_string_value(json_object_get(j, "response")), "Once upon a time");
	T_STR_EQ(json_string_value(json_object_get(j, "thinking")), "Hm.");
	T_TRUE(json_object_get(j, "message") == NULL);
	json_decref(j);
	stream_free(st);
	server_unload(&srv);
}
