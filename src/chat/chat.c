/*
 * chat.c - conversations into prompts: the variables a chat template sees,
 * filled in as transformers' apply_chat_template fills them, the render
 * (template engine: jinja-*.c), and its tokens, with the content the
 * request supplied kept as plain text (hearth_tokenize_chat).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../base/err.h"
#include "chat-impl.h"
#include "jinja.h"

/* The template of a model that has none: ChatML, as llama.cpp also assumes. */
static const char chatml_src[] =
	"{%- for message in messages -%}\n"
	"{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '')"
	" + '<|im_end|>\\n' -}}\n"
	"{%- endfor -%}\n"
	"{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

struct hearth_chat_params hearth_chat_default_params(void)
{
	return (struct hearth_chat_params){ 0 };
}

/* The text of token id as special text, malloc'd; NULL with *rc = 0 when id < 0. */
static char *token_text(const struct hearth_model *m, int32_t id, int *rc)
{
	*rc = 0;
	if (id < 0)
		return NULL;
	int n = hearth_token_to_piece(m, id, true, NULL, 0);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!s) {
		*rc = n < 0 ? n : HEARTH_ENOMEM;
		return NULL;
	}
	hearth_token_to_piece(m, id, true, s, (size_t)n + 1);
	s[n] = 0;
	return s;
}

int hearth_chat_new(const struct hearth_model *m, const struct hearth_chat_params *p, struct hearth_chat **out,
		    struct hearth_err *err)
{
	struct hearth_chat_params d = p ? *p : hearth_chat_default_params();
	struct hearth_chat *c = calloc(1, sizeof *c);
	int rc;

	*out = NULL;
	if (!c)
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory");
	c->m = m;
	c->allow_special = d.allow_special_in_content;
	const char *src = d.template_src;
	size_t len = d.template_len;
	if (!src && (src = hearth_model_chat_template(m)))
		len = strlen(src);
	if (!src) {
		src = chatml_src;
		len = sizeof chatml_src - 1;
		c->builtin = true;
	}
	if (!(c->src = malloc(len + 1))) {
		hearth_chat_free(c);
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory for a %zu-byte template", len);
	}
	memcpy(c->src, src, len);
	c->src[len] = 0;
	int rb = 0, re = 0;
	c->bos = token_text(m, hearth_token_bos(m), &rb);
	c->eos = token_text(m, hearth_token_eos(m), &re);
	if (rb || re) {
		hearth_chat_free(c);
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory for the BOS/EOS text");
	}
	c->format = tc_format_detect(c->builtin ? NULL : c->src, hearth_model_arch(m));
	if ((rc = hearth_template_new(c->src, len, &c->t, err))) {
		hearth_chat_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void hearth_chat_free(struct hearth_chat *c)
{
	if (!c)
		return;
	hearth_template_free(c->t);
	free(c->src);
	free(c->bos);
	free(c->eos);
	free(c);
}

const char *hearth_chat_template_src(const struct hearth_chat *c, bool *builtin)
{
	if (builtin)
		*builtin = c->builtin;
	return c->src;
}

void hearth_chat_prompt_free(struct hearth_chat_prompt *p)
{
	free(p->text);
	free(p->content);
	free(p->ids);
	memset(p, 0, sizeof *p);
}

/* *out = the template's variables: transformers' defaults, then the
 * request's own (which win). */
static int chat_vars(const struct hearth_chat *c, const char *vars_json, size_t len, json_t **out,
		     struct hearth_err *err)
{
	json_error_t je;
	bool oom;
	json_t *given = chat_json_load(vars_json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je, &oom);
	*out = NULL;
	if (oom)
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory for the template's variables");
	if (!json_is_object(given)) {
		json_decref(given);
		return err_set(err, HEARTH_EINVAL, "chat: the variables are not a JSON object (%s, line %d column %d)",
			       given ? "not an object" : je.text, je.line, je.column);
	}
	if (!json_is_array(json_object_get(given, "messages"))) {
		json_decref(given);
		return err_set(err, HEARTH_EINVAL, "chat: the variables have no \"messages\" array");
	}
	json_t *v = json_object();
	bool ok = v && !json_object_set(v, "messages", json_object_get(given, "messages")) &&
		  !json_object_set_new(v, "tools", json_null()) && !json_object_set_new(v, "documents", json_null()) &&
		  !json_object_set_new(v, "add_generation_prompt", json_false()) &&
		  (!c->bos || !json_object_set_new(v, "bos_token", json_string(c->bos))) &&
		  (!c->eos || !json_object_set_new(v, "eos_token", json_string(c->eos))) && !json_object_update(v, given);
	json_decref(given);
	if (!ok) {
		json_decref(v);
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory for the template's variables");
	}
	*out = v;
	return 0;
}

/* The render's tokens: content as plain text unless allowed, and BOS first
 * when the vocabulary asks for it and the template did not write it. */
static int chat_tokenize(const struct hearth_chat *c, int32_t max_tokens, struct hearth_chat_prompt *p,
			 struct hearth_err *err)
{
	const struct hearth_span *plain = c->allow_special ? NULL : p->content;
	const size_t n_plain = c->allow_special ? 0 : p->n_content;
	int rc = hearth_tokenize_chat(c->m, p->text, p->len, false, plain, n_plain, max_tokens, &p->ids, &p->n_ids, err);
	if (rc)
		return rc;
	const int32_t bos = hearth_token_bos(c->m);
	if (!hearth_vocab_add_bos(c->m) || bos < 0 || (p->n_ids > 0 && p->ids[0] == bos))
		return 0;
	if (p->n_ids >= max_tokens)
		return err_set(err, HEARTH_ETOOBIG, "tokenize: the text is longer than the limit of %d tokens", max_tokens);
	int32_t *ids = realloc(p->ids, ((size_t)p->n_ids + 1) * sizeof *ids);
	if (!ids)
		return err_set(err, HEARTH_ENOMEM, "chat: out of memory for %d tokens", p->n_ids + 1);
	memmove(ids + 1, ids, (size_t)p->n_ids * sizeof *ids);
	ids[0] = bos;
	p->ids = ids;
	p->n_ids++;
	return 0;
}

int hearth_chat_apply(const struct hearth_chat *c, const char *vars_json, size_t len, const char *date,
		      int32_t max_tokens, struct hearth_chat_prompt *out, struct hearth_err *err)
{
	json_t *vars;
	memset(out, 0, sizeof *out);
	int rc = chat_vars(c, vars_json, len, &vars, err);
	if (rc)
		return rc;
	const struct hearth_template_opts o = { .date = date };
	rc = template_render_json(c->t, vars, &o, &out->text, &out->len, &out->content, &out->n_content, err);
	json_decref(vars);
	if (!rc && max_tokens >= 0)
		rc = chat_tokenize(c, max_tokens, out, err);
	return rc;
}
