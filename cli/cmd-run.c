/* cmd-run.c - `hearth run` (one continuation) and `hearth chat` (a multi-turn
 * conversation in the terminal, reusing the KV cache across turns). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, k;
	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			char *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = b;
		}
		k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
	} while (k > 0);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

struct session {
	struct hearth_model *model;
	struct hearth_context *ctx;
	struct hearth_sampler *smpl;
	int32_t *cached;      /* tokens now in the KV cache */
	int32_t n_cached;
};

static int session_open(struct session *s, struct gen_opts *o, const char *cmd)
{
	struct hearth_err err = { 0 };
	struct hearth_model_params mp = hearth_model_default_params();
	memset(s, 0, sizeof *s);
	if (hearth_model_load(&s->model, o->model, &mp, &err) ||
	    hearth_context_new(&s->ctx, s->model, &o->cp, &err) ||
	    hearth_sampler_new(&s->smpl, &o->sp, hearth_model_n_vocab(s->model), &err) ||
	    !(s->cached = malloc((size_t)hearth_context_n_ctx(s->ctx) * sizeof *s->cached))) {
		fprintf(stderr, "hearth %s: %s\n", cmd, err.code ? err.msg : "out of memory");
		return 1;
	}
	return 0;
}

static void session_close(struct session *s)
{
	hearth_sampler_free(s->smpl);
	hearth_context_free(s->ctx);
	hearth_model_free(s->model);
	free(s->cached);
}

/* Brings the KV cache to hold exactly ids[0..n): keeps the common prefix and
 * decodes the rest. */
static int session_feed(struct session *s, const int32_t *ids, int32_t n, struct hearth_err *err)
{
	int32_t common = 0;
	while (common < n && common < s->n_cached && s->cached[common] == ids[common])
		common++;
	if (common == n && common > 0)
		common--; /* re-run the last token to get its logits */
	hearth_context_truncate(s->ctx, common);
	s->n_cached = common;
	int rc = hearth_decode(s->ctx, ids + common, n - common, false, err);
	if (rc == 0) {
		memcpy(s->cached + common, ids + common, (size_t)(n - common) * sizeof *ids);
		s->n_cached = n;
	}
	return rc;
}

struct gen_result {
	int32_t *ids;
	int32_t n;
	char *text;
	size_t text_len;
	double t_gen;
};

static int append_text(struct gen_result *r, size_t *cap, const char *piece, size_t k, FILE *out)
{
	if (r->text_len + k + 1 > *cap) {
		size_t nc = (r->text_len + k + 1) * 2;
		char *t = realloc(r->text, nc);
		if (!t)
			return HEARTH_ENOMEM;
		r->text = t;
		*cap = nc;
	}
	memcpy(r->text + r->text_len, piece, k);
	r->text_len += k;
	r->text[r->text_len] = 0;
	if (out && k) {
		fwrite(piece, 1, k, out);
		fflush(out);
	}
	return 0;
}

/* Samples up to n_predict tokens after the cached ones; streams text to out
 * when out is not NULL. Stops at an end-of-generation token (not kept). */
static int generate(struct session *s, int32_t n_predict, FILE *out, struct gen_result *r, struct hearth_err *err)
{
	struct hearth_detok *dt;
	size_t cap = 0, k;
	const char *piece;
	double t0 = now_s();
	int rc;

	memset(r, 0, sizeof *r);
	if ((rc = hearth_detok_new(&dt, s->model, false, err)) || (rc = append_text(r, &cap, "", 0, NULL)))
		goto out;
	while (n_predict < 0 || r->n < n_predict) {
		int32_t id = hearth_sampler_sample(s->smpl, hearth_get_logits(s->ctx, -1));
		hearth_sampler_accept(s->smpl, id);
		if (hearth_token_is_eog(s->model, id))
			break;
		int32_t *ni = realloc(r->ids, (size_t)(r->n + 1) * sizeof *ni);
		if (!ni) {
			rc = HEARTH_ENOMEM;
			goto out;
		}
		r->ids = ni;
		r->ids[r->n++] = id;
		piece = hearth_detok_push(dt, id, &k);
		if ((rc = append_text(r, &cap, piece, k, out)))
			goto out;
		if (n_predict >= 0 && r->n >= n_predict)
			break;
		if (hearth_context_n_past(s->ctx) >= hearth_context_n_ctx(s->ctx)) {
			fprintf(stderr, "\n[context full: %d tokens]\n", hearth_context_n_ctx(s->ctx));
			break;
		}
		if ((rc = hearth_decode(s->ctx, &id, 1, false, err)))
			goto out;
		s->cached[s->n_cached++] = id;
	}
	piece = hearth_detok_flush(dt, &k); /* an incomplete character at the very end */
	rc = append_text(r, &cap, piece, k, out);
out:
	r->t_gen = now_s() - t0;
	hearth_detok_free(dt);
	return rc;
}

static const char run_help[] =
	"usage: hearth run -m FILE [-p PROMPT | -f FILE] [options]\n"
	"\n"
	"Streams the model's continuation of the prompt to stdout and a timing line to stderr.\n"
	"\n"
	"  -p, --prompt TEXT       the prompt\n"
	"  -f, --file FILE         read the prompt from a file\n"
	"      --no-bos            do not add the BOS token the vocabulary asks for\n"
	"      --json              print {\"prompt_ids\":[...],\"ids\":[...],\"text\":\"...\"} instead\n";

int cmd_run(int argc, char **argv)
{
	struct gen_opts o;
	const char *prompt = NULL, *file = NULL;
	bool no_bos = false, json = false;
	struct hearth_err err = { 0 };
	struct session s = { 0 };
	char *text = NULL;
	size_t len = 0;
	int32_t *ids = NULL, n_ids = 0;
	int rc = 1;

	gen_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = gen_opts_parse(&o, "run", argc, argv, &i);
		if (t < 0)
			return EXIT_USAGE;
		if (t)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s%s", run_help, gen_opts_help);
			return 0;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
			if (!(prompt = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			if (!(file = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--no-bos")) {
			no_bos = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else {
			return usage_error("run", "unknown option '%s'", a);
		}
	}
	if (!o.model)
		return usage_error("run", "-m FILE is required");
	if (prompt && file)
		return usage_error("run", "give -p or -f, not both");
	if (!o.seed_set)
		o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	if (file) {
		if (!(text = read_file(file, &len))) {
			fprintf(stderr, "hearth run: %s: cannot read the prompt file\n", file);
			return 1;
		}
	} else {
		text = strdup(prompt ? prompt : "");
		len = text ? strlen(text) : 0;
	}
	if (!text)
		goto out_free;
	if (session_open(&s, &o, "run"))
		goto out_close;
	if (hearth_tokenize(s.model, text, len, true, true, &ids, &n_ids, &err))
		goto out_err;
	if (no_bos && n_ids > 0 && ids[0] == hearth_token_bos(s.model) && hearth_vocab_add_bos(s.model))
		memmove(ids, ids + 1, (size_t)--n_ids * sizeof *ids);
	if (n_ids == 0) {
		int32_t bos = hearth_token_bos(s.model);
		if (bos < 0) {
			fprintf(stderr, "hearth run: the prompt is empty and the model has no BOS token to start from\n");
			goto out_close;
		}
		ids[n_ids++] = bos;
	}
	double t0 = now_s();
	if (session_feed(&s, ids, n_ids, &err))
		goto out_err;
	double t_prompt = now_s() - t0;
	for (int32_t i = 0; i < n_ids; i++)
		hearth_sampler_accept(s.smpl, ids[i]);
	struct gen_result r;
	int grc = generate(&s, o.n_predict, json ? NULL : stdout, &r, &err);
	if (json) {
		fputs("{\"prompt_ids\":", stdout);
		json_write_ids(stdout, ids, n_ids);
		fputs(",\"ids\":", stdout);
		json_write_ids(stdout, r.ids, r.n);
		fputs(",\"text\":", stdout);
		json_write_str(stdout, r.text ? r.text : "", r.text_len);
		fputs("}\n", stdout);
	} else {
		fputc('\n', stdout);
	}
	fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generation: %d tokens in %.3f s (%.1f tok/s)\n",
		n_ids, t_prompt, n_ids / (t_prompt > 0 ? t_prompt : 1e-9), r.n, r.t_gen,
		r.n / (r.t_gen > 0 ? r.t_gen : 1e-9));
	free(r.ids);
	free(r.text);
	if (grc) {
		fprintf(stderr, "hearth run: %s\n", err.code ? err.msg : hearth_strerror(grc));
		goto out_close;
	}
	rc = 0;
	goto out_close;
out_err:
	fprintf(stderr, "hearth run: %s\n", err.msg);
out_close:
	session_close(&s);
out_free:
	free(ids);
	free(text);
	return rc;
}

static const char chat_help[] =
	"usage: hearth chat -m FILE [--system TEXT] [options]\n"
	"\n"
	"Chats with the model in its own chat format (ChatML/Qwen, Llama-2, Llama-3, Mistral).\n"
	"Type a message and press enter; an empty line or end of input (Ctrl-D) quits,\n"
	"/reset starts over.\n"
	"\n"
	"      --system TEXT       a system message at the start of the conversation\n";

int cmd_chat(int argc, char **argv)
{
	struct gen_opts o;
	const char *system_msg = NULL;
	struct hearth_err err = { 0 };
	struct hearth_chat_msg *msgs = NULL;
	char **owned = NULL;
	int n_msgs = 0, rc = 1;
	struct session s = { 0 };
	char line[16384];

	gen_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = gen_opts_parse(&o, "chat", argc, argv, &i);
		if (t < 0)
			return EXIT_USAGE;
		if (t)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s%s", chat_help, gen_opts_help);
			return 0;
		} else if (!strcmp(a, "--system")) {
			if (!(system_msg = arg_value("chat", argc, argv, &i)))
				return EXIT_USAGE;
		} else {
			return usage_error("chat", "unknown option '%s'", a);
		}
	}
	if (!o.model)
		return usage_error("chat", "-m FILE is required");
	if (!o.seed_set)
		o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	if (session_open(&s, &o, "chat"))
		goto out;
	if (!hearth_chat_format(s.model)) {
		fprintf(stderr, "hearth chat: %s: the chat template is not one hearth knows yet\n", o.model);
		goto out;
	}
	msgs = calloc(2, sizeof *msgs);
	owned = calloc(2, sizeof *owned);
	if (!msgs || !owned)
		goto out;
	if (system_msg)
		msgs[n_msgs++] = (struct hearth_chat_msg){ "system", system_msg };
	fprintf(stderr, "chatting with %s (%s format); empty line to quit\n", o.model, hearth_chat_format(s.model));
	for (;;) {
		fputs("> ", stdout);
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			break;
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			break;
		if (!strcmp(line, "/reset")) {
			for (int i = 0; i < n_msgs; i++)
				free(owned[i]);
			n_msgs = 0;
			if (system_msg)
				msgs[n_msgs++] = (struct hearth_chat_msg){ "system", system_msg };
			continue;
		}
		struct hearth_chat_msg *nm = realloc(msgs, (size_t)(n_msgs + 2) * sizeof *nm);
		char **no = nm ? realloc(owned, (size_t)(n_msgs + 2) * sizeof *no) : NULL;
		if (nm)
			msgs = nm;
		if (!no)
			goto out;
		owned = no;
		owned[n_msgs] = strdup(line);
		if (!owned[n_msgs])
			goto out;
		msgs[n_msgs] = (struct hearth_chat_msg){ "user", owned[n_msgs] };
		n_msgs++;
		char *rendered = NULL;
		int32_t *ids = NULL, n_ids = 0;
		if (hearth_chat_render(s.model, msgs, n_msgs, true, &rendered, &err) ||
		    hearth_tokenize(s.model, rendered, strlen(rendered), true, true, &ids, &n_ids, &err) ||
		    session_feed(&s, ids, n_ids, &err)) {
			fprintf(stderr, "hearth chat: %s\n", err.msg);
			free(rendered);
			free(ids);
			goto out;
		}
		free(rendered);
		free(ids);
		struct gen_result r;
		int grc = generate(&s, o.n_predict, stdout, &r, &err);
		fputc('\n', stdout);
		free(r.ids);
		if (grc) {
			free(r.text);
			fprintf(stderr, "hearth chat: %s\n", err.code ? err.msg : hearth_strerror(grc));
			goto out;
		}
		owned[n_msgs] = r.text;
		msgs[n_msgs] = (struct hearth_chat_msg){ "assistant", r.text };
		n_msgs++;
	}
	rc = 0;
out:
	for (int i = 0; owned && i < n_msgs; i++)
		free(owned[i]);
	free(owned);
	free(msgs);
	session_close(&s);
	return rc;
}
