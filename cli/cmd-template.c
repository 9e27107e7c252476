/* cmd-template.c - `hearth template`: renders a chat template (the model's
 * tokenizer.chat_template, or a file) with messages as transformers'
 * apply_chat_template passes them, and prints the prompt exactly. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char template_help[] =
	"usage: hearth template (-m MODEL | --chat-template FILE) --messages FILE.json [--tools FILE.json]\n"
	"                       [--add-generation-prompt] [--var NAME=JSON]... [--date YYYY-MM-DD]\n"
	"\n"
	"Prints the prompt the chat template renders (nothing added, no newline).\n"
	"  -m MODEL                 the GGUF's tokenizer.chat_template; its BOS/EOS are bos_token/eos_token\n"
	"  --chat-template FILE     a Jinja2 chat template file instead\n"
	"  --messages FILE          a JSON array of messages, or an object with \"messages\"\n"
	"                           (and then \"tools\" and \"add_generation_prompt\" too)\n"
	"  --tools FILE             a JSON array of tools (default: null)\n"
	"  --add-generation-prompt  end with the assistant's turn opening\n"
	"  --var NAME=JSON          one more template variable (repeatable; overrides)\n"
	"  --date YYYY-MM-DD        the day strftime_now sees (default: today)\n";

static json_t *load_json(const char *what, const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
	if (!j)
		fprintf(stderr, "hearth template: %s %s: line %d: %s\n", what, path, je.line, je.text);
	return j;
}

/* sets key to the text of token id (special), when the model has it */
static int set_token(json_t *vars, const char *key, const struct hearth_model *m, int32_t id)
{
	if (id < 0)
		return 0;
	char buf[256];
	int n = hearth_token_to_piece(m, id, true, buf, sizeof buf);
	if (n < 0 || (size_t)n >= sizeof buf)
		return 0;
	return json_object_set_new(vars, key, json_stringn(buf, (size_t)n));
}

struct template_args {
	const char *model, *tmpl_file, *messages, *tools, *date;
	bool gen_prompt;
	const char *vars[64];
	int n_vars;
};

static int parse_args(int argc, char **argv, struct template_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst = !strcmp(s, "-m") || !strcmp(s, "--model") ? &a->model :
				   !strcmp(s, "--chat-template") ? &a->tmpl_file :
				   !strcmp(s, "--messages") ? &a->messages : !strcmp(s, "--tools") ? &a->tools :
				   !strcmp(s, "--date") ? &a->date : NULL;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(template_help, stdout);
			return -1;
		} else if (dst) {
			if (!(*dst = arg_value("template", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(s, "--add-generation-prompt")) {
			a->gen_prompt = true;
		} else if (!strcmp(s, "--var")) {
			const char *v = arg_value("template", argc, argv, &i);
			if (!v)
				return EXIT_USAGE;
			if (a->n_vars == 64)
				return usage_error("template", "at most 64 --var");
			if (!strchr(v, '=') || v[0] == '=')
				return usage_error("template", "--var wants NAME=JSON, not '%s'", v);
			a->vars[a->n_vars++] = v;
		} else {
			return usage_error("template", "unknown argument '%s'", s);
		}
	}
	if (!a->model == !a->tmpl_file)
		return usage_error("template", "give -m MODEL or --chat-template FILE (one of them)");
	if (!a->messages)
		return usage_error("template", "--messages FILE is required");
	if (a->model && !(a->model = cli_model_path("template", a->model)))
		return 1;
	return 0;
}

/* the variables, in apply_chat_template's order */
static json_t *build_vars(const struct template_args *a, const struct hearth_model *m)
{
	json_t *msgs = load_json("--messages", a->messages), *tools = json_null(), *vars = json_object();
	json_t *gen = json_boolean(a->gen_prompt);
	if (!msgs || !vars)
		goto fail;
	if (json_is_object(msgs)) {
		json_t *inner = json_object_get(msgs, "messages"), *t = json_object_get(msgs, "tools"),
		       *g = json_object_get(msgs, "add_generation_prompt");
		if (!inner) {
			fprintf(stderr, "hearth template: %s: an object without \"messages\"\n", a->messages);
			goto fail;
		}
		if (t)
			tools = json_incref(t);
		if (g && json_is_boolean(g) && !a->gen_prompt)
			gen = json_incref(g);
		json_t *keep = json_incref(inner);
		json_decref(msgs);
		msgs = keep;
	}
	if (a->tools) {
		json_decref(tools);
		if (!(tools = load_json("--tools", a->tools)))
			goto fail;
	}
	json_object_set(vars, "messages", msgs);
	json_object_set(vars, "tools", tools);
	json_object_set_new(vars, "documents", json_null());
	json_object_set(vars, "add_generation_prompt", gen);
	if (m) {
		set_token(vars, "bos_token", m, hearth_token_bos(m));
		set_token(vars, "eos_token", m, hearth_token_eos(m));
	}
	for (int k = 0; k < a->n_vars; k++) {
		const char *eq = strchr(a->vars[k], '=');
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)(eq - a->vars[k] < 127 ? eq - a->vars[k] : 127), a->vars[k]);
		json_error_t je;
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!v) {
			fprintf(stderr, "hearth template: --var %s: %s\n", name, je.text);
			goto fail;
		}
		json_object_set_new(vars, name, v);
	}
	json_decref(msgs);
	json_decref(tools);
	json_decref(gen);
	return vars;
fail:
	json_decref(msgs);
	json_decref(tools);
	json_decref(gen);
	json_decref(vars);
	return NULL;
}

static int render(const char *src, size_t len, const char *what, json_t *vars, const char *date)
{
	struct hearth_err err = { 0 };
	struct hearth_template *t = NULL;
	char *js = json_dumps(vars, JSON_COMPACT | JSON_ENSURE_ASCII), *out = NULL;
	size_t n = 0;
	struct hearth_template_opts o = { .date = date };
	int rc = 1;
	if (!js) {
		fprintf(stderr, "hearth template: out of memory\n");
	} else if (hearth_template_new(src, len, &t, &err)) {
		fprintf(stderr, "hearth template: %s: %s\n", what, err.msg);
	} else if (hearth_template_render(t, js, strlen(js), &o, &out, &n, NULL, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
	} else {
		fwrite(out, 1, n, stdout);
		rc = fflush(stdout) ? 1 : 0;
	}
	free(out);
	free(js);
	hearth_template_free(t);
	return rc;
}

int cmd_template(int argc, char **argv)
{
	struct template_args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct hearth_model *m = NULL;
	char *src = NULL;
	size_t len = 0;
	if (a.model) {
		struct hearth_model_params p = hearth_model_default_params();
		struct hearth_err err = { 0 };
		p.vocab_only = true;
		if (hearth_model_load(&m, a.model, &p, &err)) {
			fprintf(stderr, "hearth template: %s\n", err.msg);
			return 1;
		}
		const char *t = hearth_model_chat_template(m);
		if (!t) {
			fprintf(stderr, "hearth template: %s has no tokenizer.chat_template\n", a.model);
			hearth_model_free(m);
			return 1;
		}
		len = strlen(t);
		src = malloc(len + 1);
		if (src)
			memcpy(src, t, len + 1);
	} else if (!(src = cli_read_file(a.tmpl_file, &len))) {
		fprintf(stderr, "hearth template: cannot read %s\n", a.tmpl_file);
		return 1;
	}
	json_t *vars = src ? build_vars(&a, m) : NULL;
	rc = vars ? render(src, len, a.model ? a.model : a.tmpl_file, vars, a.date) : 1;
	json_decref(vars);
	free(src);
	hearth_model_free(m);
	return rc;
}
