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

/* Appends n bytes of s (NULs included). */
static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_content(struct sbuf *b, const struct hearth_chat_msg *m)
{
	sb_put(b, m->content, m->content_len ? m->content_len : strlen(m->content));
}

static void render_llama2(struct sbuf *b, const struct hearth_chat_msg *msgs, int n, int mistral)
{
	const struct hearth_chat_msg *sys = NULL;
	int first_user = 1;
	for (int i = 0; i < n; i++) {
		const char *r = msgs[i].role;
		if (strcmp(r, "system") == 0) {
			sys = &msgs[i];
		} else if (strcmp(r, "user") == 0) {
			if (!first_user && !mistral)
				sb_str(b, "<s>");
			sb_str(b, "[INST] ");
			if (sys) {
				sb_str(b, mistral ? "" : "<<SYS>>\n");
				sb_content(b, sys);
				sb_str(b, mistral ? "\n\n" : "\n<</SYS>>\n\n");
			}
			sb_content(b, &msgs[i]);
			sb_str(b, " [/INST]");
			sys = NULL;
			first_user = 0;
		} else {
			sb_str(b, " ");
			sb_content(b, &msgs[i]);
			sb_str(b, mistral ? "</s>" : " </s>");
		}
	}
}

/* One turn in a format that wraps role and content in fixed markers. */
static void render_turn(struct sbuf *b, const char *open, const char *role, const char *mid,
			const struct hearth_chat_msg *m, const char *close)
{
	sb_str(b, open);
	sb_str(b, role);
	sb_str(b, mid);
	if (m) {
		sb_content(b, m);
		sb_str(b, close);
	}
}

int hearth_chat_render(const struct hearth_model *m, const struct hearth_chat_msg *msgs, int n, bool add_assistant,
		       char **out, size_t *out_len, struct hearth_err *err)
{
	const char *fmt = hearth_chat_format(m);
	struct sbuf b = { 0 };

	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!fmt)
		return err_set(err, HEARTH_EUNSUPPORTED, "chat: the model's chat template is not one of chatml, llama2, "
			       "llama3, mistral (a template engine is not built yet)");
	for (int i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return err_set(err, HEARTH_EINVAL, "chat: message %d lacks a role or content", i);
	sb_put(&b, "", 0);
	if (strcmp(fmt, "chatml") == 0) {
		for (int i = 0; i < n; i++)
			render_turn(&b, "<|im_start|>", msgs[i].role, "\n", &msgs[i], "<|im_end|>\n");
		if (add_assistant)
			render_turn(&b, "<|im_start|>", "assistant", "\n", NULL, NULL);
	} else if (strcmp(fmt, "llama3") == 0) {
		for (int i = 0; i < n; i++)
			render_turn(&b, "<|start_header_id|>", msgs[i].role, "<|end_header_id|>\n\n", &msgs[i], "<|eot_id|>");
		if (add_assistant)
			render_turn(&b, "<|start_header_id|>", "assistant", "<|end_header_id|>\n\n", NULL, NULL);
	} else {
		render_llama2(&b, msgs, n, strcmp(fmt, "mistral") == 0);
	}
	if (b.oom) {
		free(b.p);
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory");
	}
	*out = b.p;
	if (out_len)
		*out_len = b.n;
	return 0;
}
