/*
 * template-builtin.c - the chat formats hearth knows without a template
 * engine, recognized from marker strings in the model's chat template:
 *
 *   chatml  <|im_start|>role\ncontent<|im_end|>\n ...       (Qwen, many others)
 *   llama3  <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
 *   llama2  [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s>
 *   mistral [INST] user [/INST] assistant</s>
 *
 * BOS is not written: the tokenizer adds it when the vocabulary asks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"

const char *hearth_chat_format(const struct hearth_model *m)
{
	const char *t = hearth_model_chat_template(m);
	if (!t)
		return "chatml";
	if (strstr(t, "<|im_start|>"))
		return "chatml";
	if (strstr(t, "<|start_header_id|>"))
		return "llama3";
	if (strstr(t, "[INST]"))
		return strstr(t, "<<SYS>>") ? "llama2" : "mistral";
	return NULL;
}

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (k < 0 || b->n + (size_t)k + 1 > b->cap) {
		size_t cap = (b->n + (size_t)(k < 0 ? 0 : k) + 1) * 2;
		char *p = k < 0 ? NULL : realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)k;
}

static void render_llama2(struct sbuf *b, const struct hearth_chat_msg *msgs, int n, int mistral)
{
	const char *sys = NULL;
	int first_user = 1;
	for (int i = 0; i < n; i++) {
		const char *r = msgs[i].role, *c = msgs[i].content;
		if (strcmp(r, "system") == 0) {
			sys = c;
		} else if (strcmp(r, "user") == 0) {
			if (!first_user)
				sb_add(b, mistral ? "" : "<s>");
			if (sys && mistral)
				sb_add(b, "[INST] %s\n\n%s [/INST]", sys, c);
			else if (sys)
				sb_add(b, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]", sys, c);
			else
				sb_add(b, "[INST] %s [/INST]", c);
			sys = NULL;
			first_user = 0;
		} else {
			sb_add(b, mistral ? " %s</s>" : " %s </s>", c);
		}
	}
}

int hearth_chat_render(const struct hearth_model *m, const struct hearth_chat_msg *msgs, int n, bool add_assistant,
		       char **out, struct hearth_err *err)
{
	const char *fmt = hearth_chat_format(m);
	struct sbuf b = { 0 };

	*out = NULL;
	if (!fmt)
		return err_set(err, HEARTH_EUNSUPPORTED, "chat: the model's chat template is not one of chatml, llama2, "
			       "llama3, mistral (a template engine is not built yet)");
	for (int i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return err_set(err, HEARTH_EINVAL, "chat: message %d lacks a role or content", i);
	sb_add(&b, "%s", "");
	if (strcmp(fmt, "chatml") == 0) {
		for (int i = 0; i < n; i++)
			sb_add(&b, "<|im_start|>%s\n%s<|im_end|>\n", msgs[i].role, msgs[i].content);
		if (add_assistant)
			sb_add(&b, "<|im_start|>assistant\n");
	} else if (strcmp(fmt, "llama3") == 0) {
		for (int i = 0; i < n; i++)
			sb_add(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", msgs[i].role, msgs[i].content);
		if (add_assistant)
			sb_add(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	} else {
		render_llama2(&b, msgs, n, strcmp(fmt, "mistral") == 0);
	}
	if (b.oom) {
		free(b.p);
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory");
	}
	*out = b.p;
	return 0;
}
