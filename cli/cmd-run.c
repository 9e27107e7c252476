/* cmd-run.c - `hearth run` (one continuation) and `hearth chat` (a multi-turn
 * conversation in the terminal, reusing the KV cache across turns). */
#include <errno.h>
#include <jansson.h>
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

struct session {
	struct hearth_model *model;
	struct hearth_context *ctx;
	struct hearth_sampler *smpl;
	int32_t *cached;      /* tokens now in the KV cache */
	int32_t n_cached;
	bool restored;        /* the cache was just restored with the logits after its last token */
	int unc;              /* --uncertainty: how it is shown (UNCERTAINTY_*), 0: not asked */
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
	return gen_opts_apply_lora(o, cmd, s->model, s->ctx);
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
	const bool restored = s->restored;
	s->restored = false;
	while (common < n && common < s->n_cached && s->cached[common] == ids[common])
		common++;
	if (restored && common == n && n == s->n_cached)
		return 0; /* a restored state ends with these logits */
	if (common == n && common > 0)
		common--; /* re-run the last token to get its logits */
	hearth_context_truncate(s->ctx, common);
	common = hearth_context_n_past(s->ctx); /* less when a sliding window could not step back */
	s->n_cached = common;
	int rc = hearth_decode(s->ctx, ids + common, n - common, false, err);
	if (rc == 0) {
		memcpy(s->cached + common, ids + common, (size_t)(n - common) * sizeof *ids);
		s->n_cached = n;
	}
	return rc;
}

/* --prompt-cache: restores FILE's state when it exists (refusing one that is
 * corrupt or of another model). session_feed then keeps what the prompt shares with it. */
static int prompt_cache_load(struct session *s, const char *path, struct hearth_err *err)
{
	struct hearth_state *st = NULL;
	int32_t n = 0;
	int rc = hearth_state_read(&st, path, err);
	if (rc == HEARTH_ENOTFOUND)
		return 0;
	if (!rc && (rc = hearth_context_state_set(s->ctx, st, err))) {
		char msg[640];
		const int k = snprintf(msg, sizeof msg, "--prompt-cache %s: %s", path, err->msg);
		const size_t len = k < 0 ? 0 : (size_t)k < sizeof err->msg ? (size_t)k : sizeof err->msg - 1;
		memcpy(err->msg, msg, len);
		err->msg[len] = 0;
	}
	if (!rc) {
		const int32_t *t = hearth_state_tokens(st, &n);
		memcpy(s->cached, t, (size_t)n * sizeof *t);
		s->n_cached = n;
		s->restored = hearth_get_logits(s->ctx, -1) != NULL;
	}
	hearth_state_free(st);
	return rc;
}

static int prompt_cache_save(struct session *s, const char *path, struct hearth_err *err)
{
	struct hearth_state *st = NULL;
	int rc = hearth_context_state_get(s->ctx, &st, err);
	if (!rc)
		rc = hearth_state_write(st, path, err);
	hearth_state_free(st);
	return rc;
}

struct gen_result {
	int32_t *ids;
	int32_t n;
	char *text;
	size_t text_len;
	double t_gen;
	double t_sample; /* of t_gen, in the sampler */
	float *entropy;  /* [n] with --uncertainty (else NULL) */
	int32_t *rank;   /* [n] */
};

/* Keeps token id (and with s->unc its entropy and rank) as r's next; HEARTH_ENOMEM when it cannot. */
static int keep_token(const struct session *s, struct gen_result *r, int32_t id, float entropy, int32_t rank)
{
	int32_t *ni = realloc(r->ids, (size_t)(r->n + 1) * sizeof *ni);
	if (ni)
		r->ids = ni;
	if (ni && s->unc) {
		float *ne = realloc(r->entropy, (size_t)(r->n + 1) * sizeof *ne);
		if (ne)
			r->entropy = ne;
		int32_t *nr = ne ? realloc(r->rank, (size_t)(r->n + 1) * sizeof *nr) : NULL;
		if (!nr)
			return HEARTH_ENOMEM;
		r->rank = nr;
		r->entropy[r->n] = entropy;
		r->rank[r->n] = rank;
	}
	if (!ni)
		return HEARTH_ENOMEM;
	r->ids[r->n++] = id;
	return 0;
}

static void gen_result_free(struct gen_result *r)
{
	free(r->ids);
	free(r->text);
	free(r->entropy);
	free(r->rank);
}

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
		const double ts = now_s();
		const float *logits = hearth_get_logits(s->ctx, -1);
		int32_t id = hearth_sampler_sample(s->smpl, logits), rank = 0;
		float entropy = 0;
		r->t_sample += now_s() - ts;
		hearth_sampler_accept(s->smpl, id);
		if (hearth_token_is_eog(s->model, id))
			break;
		if (s->unc)
			hearth_sampler_uncertainty(s->smpl, logits, id, &entropy, &rank);
		if ((rc = keep_token(s, r, id, entropy, rank)))
			goto out;
		piece = hearth_detok_push(dt, id, &k);
		if ((rc = append_text(r, &cap, piece, k, s->unc ? NULL : out)))
			goto out;
		if (s->unc && out)
			uncertainty_put(out, s->unc, r->n - 1, piece, k, entropy, rank);
		if (n_predict >= 0 && r->n >= n_predict)
			break;
		if (hearth_sampler_grammar_done(s->smpl)) /* the grammar allows nothing more */
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
	rc = append_text(r, &cap, piece, k, s->unc ? NULL : out);
	if (s->unc && out)
		uncertainty_rest(out, s->unc, piece, k);
out:
	r->t_gen = now_s() - t0;
	hearth_detok_free(dt);
	return rc;
}

static const char run_help[] =
	"usage: hearth run -m FILE (-p PROMPT | -f FILE) [options]\n"
	"\n"
	"Streams the model's continuation of the prompt to stdout and a timing line to stderr.\n"
	"\n"
	"  -p, --prompt TEXT       the prompt\n"
	"  -f, --file FILE         read the prompt from a file (-: standard input)\n"
	"      --no-bos            do not add the BOS token the vocabulary asks for\n"
	"      --prompt-cache FILE restore the KV state of the prompt's longest saved prefix from FILE\n"
	"                          and evaluate only the rest; save the prompt's state there after\n"
	"      --dump-layers L1,L2 with --dump-file FILE: write the prompt's hidden states after these\n"
	"                          layers (negative: from the end) to FILE as .npy, shape (layers, tokens, n_embd)\n"
	"      --json              print {\"prompt_ids\":[...],\"ids\":[...],\"text\":\"...\"} instead\n"
	"      --uncertainty       how sure the model was of each token (entropy of its distribution at\n"
	"                          temperature 1, in nats; rank of the token in it, 1: the most likely).\n"
	"                          On a terminal the text is coloured: yellow from 1 nat, red from 2.5,\n"
	"                          underlined when not the most likely token (NO_COLOR=1: no colours).\n"
	"                          Otherwise one line per token: index<TAB>entropy<TAB>rank<TAB>\"text\"\n"
	"                          (JSON string); with --json: \"entropy\":[...],\"rank\":[...] too\n"
	"      --grammar-file FILE the output follows this GBNF grammar (start rule: root)\n"
	"      --json-schema FILE  the output is JSON valid under this JSON Schema\n";

/* The grammar of --grammar-file or --json-schema (path; schema: JSON Schema), or NULL after a message. */
static struct hearth_grammar *load_grammar(const struct hearth_model *m, const char *path, bool schema)
{
	struct hearth_err err = { 0 };
	struct hearth_grammar *g = NULL;
	size_t len = 0;
	char *text = cli_read_file(path, &len), *gbnf = NULL;
	if (!text) {
		fprintf(stderr, "hearth run: %s: cannot read the file\n", path);
		return NULL;
	}
	if (schema && hearth_json_schema_to_gbnf(text, len, "root", &gbnf, &err))
		goto out;
	if (hearth_grammar_new(m, gbnf ? gbnf : text, gbnf ? strlen(gbnf) : len, NULL, &g, &err))
		g = NULL;
out:
	if (!g)
		fprintf(stderr, "hearth run: %s: %s\n", path, err.msg);
	free(gbnf);
	free(text);
	return g;
}

int cmd_run(int argc, char **argv)
{
	struct gen_opts o;
	const char *prompt = NULL, *file = NULL, *grammar_file = NULL, *schema_file = NULL, *cache_file = NULL;
	const char *dump_spec = NULL, *dump_file = NULL;
	int32_t *dump = NULL, n_dump = 0;
	bool no_bos = false, json = false, unc = false;
	struct hearth_grammar *grammar = NULL;
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
		} else if (!strcmp(a, "--prompt-cache")) {
			if (!(cache_file = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--dump-layers")) {
			if (!(dump_spec = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--dump-file")) {
			if (!(dump_file = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--no-bos")) {
			no_bos = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--uncertainty")) {
			unc = true;
		} else if (!strcmp(a, "--grammar-file")) {
			if (!(grammar_file = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--json-schema")) {
			if (!(schema_file = arg_value("run", argc, argv, &i)))
				return EXIT_USAGE;
		} else {
			return usage_error("run", "unknown option '%s'", a);
		}
	}
	if (!o.model)
		return usage_error("run", "-m FILE is required");
	if (!(o.model = cli_model_path("run", o.model)))
		return 1;
	if (prompt && file)
		return usage_error("run", "give -p or -f, not both");
	if (!prompt && !file)
		return usage_error("run", "give the prompt with -p TEXT or -f FILE (-f - reads standard input)");
	if (grammar_file && schema_file)
		return usage_error("run", "give --grammar-file or --json-schema, not both");
	if (!dump_spec != !dump_file)
		return usage_error("run", "--dump-layers and --dump-file go together");
	if (dump_spec && cache_file) /* a restored prefix would have no hidden states */
		return usage_error("run", "--dump-layers cannot be used with --prompt-cache");
	if (!o.seed_set)
		o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	if (file) {
		if (!(text = cli_read_file(file, &len))) {
			fprintf(stderr, "hearth run: %s: cannot read the prompt file\n", file);
			return 1;
		}
	} else {
		text = strdup(prompt);
		len = text ? strlen(text) : 0;
	}
	if (!text)
		goto out_free;
	if (session_open(&s, &o, "run"))
		goto out_close;
	s.unc = unc ? json ? UNCERTAINTY_LINES : uncertainty_mode(stdout) : 0;
	if (dump_spec && (dump_layers_parse(dump_spec, hearth_model_n_layer(s.model), &dump, &n_dump) ||
			  hearth_context_set_hidden(s.ctx, dump, n_dump, &err))) {
		rc = err.code ? 1 : EXIT_USAGE;
		if (err.code)
			fprintf(stderr, "hearth run: %s\n", err.msg);
		goto out_close;
	}
	if (hearth_tokenize(s.model, text, len, true, true, &ids, &n_ids, &err))
		goto out_err;
	if (no_bos && n_ids > 0 && ids[0] == hearth_token_bos(s.model) && hearth_vocab_add_bos(s.model))
		memmove(ids, ids + 1, (size_t)--n_ids * sizeof *ids);
	if (n_ids == 0) { /* an empty prompt starts from BOS */
		int32_t bos = hearth_token_bos(s.model);
		free(ids);
		ids = NULL;
		if (bos < 0 || !(ids = malloc(sizeof *ids))) {
			fprintf(stderr, "hearth run: the prompt is empty and the model has no BOS token to start from\n");
			goto out_close;
		}
		ids[n_ids++] = bos;
	}
	double t0 = now_s();
	if (cache_file && prompt_cache_load(&s, cache_file, &err))
		goto out_err;
	const int32_t n_saved = s.n_cached;
	int32_t same = 0;
	while (same < n_saved && same < n_ids && s.cached[same] == ids[same])
		same++;
	if (cache_file && n_saved > 0)
		fprintf(stderr, "prompt cache: restored %d tokens of the prompt's %d from %s\n", same, n_ids, cache_file);
	if (session_feed(&s, ids, n_ids, &err))
		goto out_err;
	if (dump_spec) {
		if (dump_layers_write(dump_file, s.ctx, n_dump, n_ids, hearth_model_n_embd(s.model)))
			goto out_close;
		hearth_context_set_hidden(s.ctx, NULL, 0, &err); /* generation keeps none */
	}
	/* the file then holds this prompt's state, unless it held exactly that already */
	if (cache_file && !(n_saved == n_ids && same == n_ids) && prompt_cache_save(&s, cache_file, &err))
		goto out_err;
	double t_prompt = now_s() - t0;
	for (int32_t i = 0; i < n_ids; i++)
		hearth_sampler_accept(s.smpl, ids[i]);
	if ((grammar_file || schema_file) &&
	    !(grammar = load_grammar(s.model, grammar_file ? grammar_file : schema_file, schema_file != NULL)))
		goto out_close;
	if (grammar && hearth_sampler_set_grammar(s.smpl, grammar, NULL, &err))
		goto out_err;
	struct gen_result r;
	int grc = generate(&s, o.n_predict, json ? NULL : stdout, &r, &err);
	if (json) {
		fputs("{\"prompt_ids\":", stdout);
		json_write_ids(stdout, ids, n_ids);
		fputs(",\"ids\":", stdout);
		json_write_ids(stdout, r.ids, r.n);
		fputs(",\"text\":", stdout);
		json_write_str(stdout, r.text ? r.text : "", r.text_len);
		if (unc) {
			fputs(",\"entropy\":[", stdout);
			for (int32_t i = 0; i < r.n; i++)
				printf("%s%.9g", i ? "," : "", (double)r.entropy[i]);
			fputs("],\"rank\":", stdout);
			json_write_ids(stdout, r.rank, r.n);
		}
		fputs("}\n", stdout);
	} else if (s.unc != UNCERTAINTY_LINES) {
		fputc('\n', stdout);
	}
	fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generation: %d tokens in %.3f s (%.1f tok/s); "
		"sampling: %.3f ms a token (%.1f%%)\n",
		n_ids, t_prompt, n_ids / (t_prompt > 0 ? t_prompt : 1e-9), r.n, r.t_gen,
		r.n / (r.t_gen > 0 ? r.t_gen : 1e-9), 1e3 * r.t_sample / (r.n > 0 ? r.n : 1),
		100 * r.t_sample / (r.t_gen > 0 ? r.t_gen : 1e-9));
	gen_result_free(&r);
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
	hearth_grammar_free(grammar);
out_free:
	free(dump);
	free(ids);
	free(text);
	return rc;
}

static const char chat_help[] =
	"usage: hearth chat -m FILE [--system TEXT] [--chat-template FILE] [options]\n"
	"\n"
	"Chats with the model through its chat template (Jinja2, as Hugging Face renders it;\n"
	"ChatML for a model without one). Type a message and press enter; an empty line or end\n"
	"of input (Ctrl-D) quits, /reset starts over.\n"
	"\n"
	"      --system TEXT       a system message at the start of the conversation\n"
	"      --chat-template FILE  a Jinja2 chat template instead of the model's\n"
	"      --allow-special-in-content  control-token text you type becomes control tokens\n"
	"      --prompt-cache FILE restore the conversation's longest saved prefix from FILE (as run does:\n"
	"                          the KV state of the tokens it shares with the first prompt is not\n"
	"                          computed again), and save the conversation's state there after each turn\n"
	"      --uncertainty       how sure the model was of each token of the answers, as run shows it\n";

/* A conversation: its messages in OpenAI's shape. */
struct chat {
	struct hearth_chat *tmpl;
	json_t *msgs; /* array of {"role", "content"} */
	size_t n_keep; /* leading messages never dropped (the system message) */
};

/* Appends a message of len bytes of text; HEARTH_ENOMEM when it cannot. */
static int chat_add(struct chat *c, const char *role, const char *text, size_t len)
{
	json_t *m = json_pack("{s:s, s:s%}", "role", role, "content", text, len);
	return m && !json_array_append_new(c->msgs, m) ? 0 : HEARTH_ENOMEM;
}

/* Drops the oldest turn after the kept messages: a user message with its answer. */
static void chat_drop_oldest(struct chat *c)
{
	const char *role = json_string_value(json_object_get(json_array_get(c->msgs, c->n_keep), "role"));
	size_t k = c->n_keep + 2 < json_array_size(c->msgs) && role && !strcmp(role, "user") ? 2 : 1;
	while (k--)
		json_array_remove(c->msgs, c->n_keep);
}

/* The conversation rendered and tokenized (at most max tokens). */
static int chat_render(struct chat *c, int32_t max, struct hearth_chat_prompt *pr, struct hearth_err *err)
{
	json_t *vars = json_pack("{s:O, s:b}", "messages", c->msgs, "add_generation_prompt", 1);
	char *text = vars ? json_dumps(vars, JSON_COMPACT) : NULL;
	json_decref(vars);
	if (!text) {
		err->code = HEARTH_ENOMEM;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return HEARTH_ENOMEM;
	}
	int rc = hearth_chat_apply(c->tmpl, text, strlen(text), NULL, max, pr, err);
	free(text);
	return rc;
}

/* The conversation's prompt, leaving room for an answer of `room` tokens:
 * the oldest turns are dropped (and the user told) until it fits. HEARTH_ETOOBIG
 * when the newest message alone does not. */
static int chat_prompt(struct session *s, struct chat *c, int32_t room, struct hearth_chat_prompt *pr,
		       struct hearth_err *err)
{
	const int32_t n_ctx = hearth_context_n_ctx(s->ctx);
	int dropped = 0, rc;
	while ((rc = chat_render(c, n_ctx - room, pr, err)) == HEARTH_ETOOBIG && pr->text) {
		hearth_chat_prompt_free(pr);
		if (json_array_size(c->msgs) - c->n_keep <= 1) {
			err->code = HEARTH_ETOOBIG;
			snprintf(err->msg, sizeof err->msg, "the message and an answer of %d tokens do not fit the context of %d",
				 room, n_ctx);
			return HEARTH_ETOOBIG;
		}
		chat_drop_oldest(c);
		dropped++;
	}
	if (!rc && dropped)
		fprintf(stderr, "[context full: the %d oldest turn%s left the conversation]\n", dropped, dropped > 1 ? "s" : "");
	return rc;
}

/* One exchange: the user's line in, the model's answer out (kept in the chat). */
static int chat_turn(struct session *s, struct chat *c, const struct gen_opts *o, const char *line,
		     struct hearth_err *err)
{
	const int32_t n_ctx = hearth_context_n_ctx(s->ctx);
	const int32_t room = o->n_predict > 0 && o->n_predict < n_ctx / 2 ? o->n_predict : n_ctx / 4;
	struct hearth_chat_prompt pr = { 0 };
	int rc;
	if (chat_add(c, "user", line, strlen(line)))
		return HEARTH_ENOMEM;
	rc = chat_prompt(s, c, room, &pr, err);
	if (rc == HEARTH_ETOOBIG || (rc && rc != HEARTH_ENOMEM)) { /* too long, or the template refused it */
		fprintf(stderr, "[not sent: %s]\n", err->msg);
		json_array_remove(c->msgs, json_array_size(c->msgs) - 1);
		hearth_chat_prompt_free(&pr);
		return 0;
	}
	if (!rc)
		rc = session_feed(s, pr.ids, pr.n_ids, err);
	hearth_chat_prompt_free(&pr);
	if (rc)
		return rc;
	struct gen_result r;
	rc = generate(s, o->n_predict, stdout, &r, err);
	if (s->unc != UNCERTAINTY_LINES)
		fputc('\n', stdout);
	if (!rc)
		rc = chat_add(c, "assistant", r.text, r.text_len);
	gen_result_free(&r);
	return rc;
}

/* The chat's template: the file given, else the model's. */
static int chat_template(struct session *s, const char *file, bool allow_special, struct chat *c, struct hearth_err *err)
{
	struct hearth_chat_params p = hearth_chat_default_params();
	char *src = NULL;
	p.allow_special_in_content = allow_special;
	if (file && !(src = cli_read_file(file, &p.template_len))) {
		err->code = HEARTH_EIO;
		snprintf(err->msg, sizeof err->msg, "--chat-template %s: %s", file, strerror(errno));
		return HEARTH_EIO;
	}
	p.template_src = src;
	int rc = hearth_chat_new(s->model, &p, &c->tmpl, err);
	free(src);
	return rc;
}

int cmd_chat(int argc, char **argv)
{
	struct gen_opts o;
	const char *system_msg = NULL, *tmpl_file = NULL, *cache_file = NULL;
	bool allow_special = false, unc = false;
	struct hearth_err err = { 0 };
	struct chat c = { 0 };
	int rc = 1;
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
		} else if (!strcmp(a, "--chat-template")) {
			if (!(tmpl_file = arg_value("chat", argc, argv, &i)))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--allow-special-in-content")) {
			allow_special = true;
		} else if (!strcmp(a, "--uncertainty")) {
			unc = true;
		} else if (!strcmp(a, "--prompt-cache")) {
			if (!(cache_file = arg_value("chat", argc, argv, &i)))
				return EXIT_USAGE;
		} else {
			return usage_error("chat", "unknown option '%s'", a);
		}
	}
	if (!o.model)
		return usage_error("chat", "-m FILE is required");
	if (!(o.model = cli_model_path("chat", o.model)))
		return 1;
	if (!o.seed_set)
		o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	if (!(c.msgs = json_array()) || session_open(&s, &o, "chat"))
		goto out;
	s.unc = unc ? uncertainty_mode(stdout) : 0;
	if (cache_file && prompt_cache_load(&s, cache_file, &err)) {
		fprintf(stderr, "hearth chat: %s\n", err.msg);
		goto out;
	}
	if (cache_file && s.n_cached > 0)
		fprintf(stderr, "prompt cache: restored %d tokens from %s\n", s.n_cached, cache_file);
	if (chat_template(&s, tmpl_file, allow_special, &c, &err)) {
		fprintf(stderr, "hearth chat: %s\n", err.msg);
		goto out;
	}
	if (system_msg && chat_add(&c, "system", system_msg, strlen(system_msg)))
		goto out;
	c.n_keep = json_array_size(c.msgs);
	bool builtin = false;
	hearth_chat_template_src(c.tmpl, &builtin);
	fprintf(stderr, "chatting with %s (%s); empty line to quit\n", o.model,
		tmpl_file ? tmpl_file : builtin ? "built-in ChatML: the model has no template" : "its chat template");
	for (;;) {
		fputs("> ", stdout);
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			break;
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			break;
		if (!strcmp(line, "/reset")) {
			while (json_array_size(c.msgs) > c.n_keep)
				json_array_remove(c.msgs, c.n_keep);
			continue;
		}
		int trc = chat_turn(&s, &c, &o, line, &err);
		if (!trc && cache_file && s.n_cached > 0) /* the conversation so far, for the next start */
			trc = prompt_cache_save(&s, cache_file, &err);
		if (trc) {
			fprintf(stderr, "hearth chat: %s\n", err.code ? err.msg : hearth_strerror(trc));
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(c.msgs);
	hearth_chat_free(c.tmpl);
	session_close(&s);
	return rc;
}
