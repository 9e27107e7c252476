/* fuzz-jinja.c - libFuzzer target: the chat-template interpreter on the
 * fuzzer's bytes. The input is a template source; it is compiled and, when it
 * compiles, rendered with a small fixed set of variables (messages with
 * content parts and tool calls, tools, tokens, a flag).
 *
 * Properties checked, besides the sanitizers (no crash, no leak) and
 * libFuzzer's time and memory limits (work is bounded by the interpreter's
 * step, nesting, output and arena limits):
 *  - every failure is a negative code with a message;
 *  - a render's spans are sorted, disjoint, not adjacent, non-empty and inside
 *    the output; the output holds *len bytes and a NUL after them;
 *  - rendering twice gives the same bytes (no hidden state between renders).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char vars[] =
	"{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
	" {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi <|im_start|>\"}]},"
	" {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"a1\", \"type\": \"function\","
	" \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5, \"y\": [true, null]}}}]},"
	" {\"role\": \"tool\", \"content\": \"{\\\"ok\\\": 1}\"}, {\"role\": \"user\", \"content\": \"  \\u00e9\\u4e2d\\ud83d\\ude00 \"}],"
	" \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
	" \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
	" \"enable_thinking\": false}";

static void check_render(const char *out, size_t len, const struct hearth_span *sp, size_t n)
{
	FUZZ_CHECK(out && out[len] == 0, "the output is not NUL-terminated at %zu", len);
	FUZZ_CHECK(n == 0 || sp != NULL, "%zu spans but no array", n);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(sp[i].len > 0 && sp[i].off + sp[i].len <= len, "span %zu (%zu, %zu) outside %zu bytes", i,
			   sp[i].off, sp[i].len, len);
		FUZZ_CHECK(i == 0 || sp[i].off > sp[i - 1].off + sp[i - 1].len, "span %zu overlaps or touches span %zu",
			   i, i - 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_template *t = NULL;
	struct hearth_err err = { 0 };
	struct hearth_template_opts o = { .date = "2026-11-28", .max_output = 1 << 20 };
	int rc = hearth_template_new((const char *)data, size, &t, &err);
	if (rc) {
		fuzz_check_err(rc, &err, NULL);
		FUZZ_CHECK(t == NULL, "a failed compile returned a template%s", "");
		return 0;
	}
	char *out[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 }, n[2] = { 0, 0 };
	struct hearth_span *sp[2] = { NULL, NULL };
	int r[2];
	for (int k = 0; k < 2; k++) {
		r[k] = hearth_template_render(t, vars, sizeof vars - 1, &o, &out[k], &len[k], &sp[k], &n[k], &err);
		if (r[k]) {
			FUZZ_CHECK(r[k] < 0 && err.msg[0], "render failed with %d and no message", r[k]);
			FUZZ_CHECK(out[k] == NULL && sp[k] == NULL, "a failed render returned output%s", "");
		} else {
			check_render(out[k], len[k], sp[k], n[k]);
		}
	}
	FUZZ_CHECK(r[0] == r[1], "two renders disagree: %d then %d", r[0], r[1]);
	if (!r[0])
		FUZZ_CHECK(len[0] == len[1] && !memcmp(out[0], out[1], len[0]) && n[0] == n[1],
			   "two renders gave different output%s", "");
	for (int k = 0; k < 2; k++) {
		free(out[k]);
		free(sp[k]);
	}
	hearth_template_free(t);
	return 0;
}
