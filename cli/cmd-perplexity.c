/* cmd-perplexity.c - `hearth perplexity`: the perplexity of a model on a
 * text, computed the way llama.cpp's llama-perplexity computes it, so that the
 * two numbers can be compared:
 *
 *   - the whole text is tokenized once, BOS first when the vocabulary adds it
 *     (special-token text is not parsed);
 *   - it is cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens (the
 *     tail is dropped; --chunks N keeps the first N), and at least 2 * n_ctx
 *     tokens are required, as llama-perplexity requires;
 *   - each chunk is evaluated from an empty context, its first token replaced
 *     by BOS when the vocabulary adds BOS;
 *   - only the second half is scored: for positions j = n_ctx/2 .. n_ctx-2,
 *     nll_j = -log softmax(logits[j])[token j+1];
 *   - after each chunk the running estimate exp(sum nll / count) is printed as
 *     "[k]x.xxxx,", and at the end "Final estimate: PPL = P +/- U" where, with
 *     m the mean and v = mean(nll^2) - m^2 the variance of the per-token nll,
 *     P = exp(m) and U = P * sqrt(v / (count - 1)).
 *
 * With --kl-divergence-base FILE it also writes the log-probabilities of every
 * scored position to FILE (llama-perplexity's format, kld-file.c); adding
 * --kl-divergence reads such a file instead, evaluates its tokens with this
 * model and prints how far this model's distributions are from the base's
 * (kld-stats.c), as llama-perplexity --kl-divergence does.
 *
 * Chunks are evaluated by chunks.c, in batches of -b tokens. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kld.h"

/* -log softmax(logits)[tok], in double precision (also used by cmd-imatrix.c). */
double ppl_token_nll(const float *logits, int32_t n_vocab, int32_t tok)
{
	double max = logits[0], sum = 0;
	for (int32_t i = 1; i < n_vocab; i++)
		if (logits[i] > max)
			max = logits[i];
	for (int32_t i = 0; i < n_vocab; i++)
		sum += exp((double)logits[i] - max);
	return max + log(sum) - (double)logits[tok];
}

struct ppl_opts {
	const char *model, *file, *kld_base;
	long long n_ctx, n_batch, n_chunks, t;
	bool ctx_set, kld;
	struct gen_opts lora; /* --lora FILE[:SCALE] (its adapters only) */
};

/* One run over the chunks: what is done with each scored position. */
struct ppl_run {
	struct hearth_context *c;
	int32_t n_ctx, n_batch, n_vocab;
	double nll, nll2;     /* sums of nll and nll^2 over the scored tokens */
	long long count;      /* scored tokens */
	FILE *save;           /* --kl-divergence-base without --kl-divergence: rows go here */
	const char *save_path;
	struct kld_file *base; /* --kl-divergence: rows come from here ... */
	struct kld_stats *kld; /* ... and are compared here */
	uint16_t *row;         /* one row of the base file */
};

/* A scored position: logits predicting the token next (chunks_eval's on_pos). */
static int ppl_score(void *user, const float *logits, int32_t next, struct hearth_err *err)
{
	struct ppl_run *r = user;
	int rc;
	if (r->kld) {
		if ((rc = kld_file_read_row(r->base, r->row, err)))
			return rc;
		kld_stats_add(r->kld, logits, r->n_vocab, r->row, next);
		return 0;
	}
	double v;
	if (r->save) {
		v = kld_file_row_pack(logits, r->n_vocab, next, r->row);
		if (fwrite(r->row, 2, kld_file_row_words(r->n_vocab), r->save) != kld_file_row_words(r->n_vocab)) {
			snprintf(err->msg, sizeof err->msg, "%s: cannot write: %s", r->save_path, strerror(errno));
			return err->code = HEARTH_EIO;
		}
	} else {
		v = ppl_token_nll(logits, r->n_vocab, next);
	}
	r->nll += v;
	r->nll2 += v * v;
	r->count++;
	return 0;
}

/* Runs the chunks of tokens (n_chunk x n_ctx), printing the running estimate
 * or the KL-divergence table after each. */
static int ppl_chunks(struct ppl_run *r, int32_t *tokens, int32_t n_chunk, bool add_bos, int32_t bos,
		      struct hearth_err *err)
{
	const struct chunk_eval ev = { .c = r->c, .n_ctx = r->n_ctx, .n_batch = r->n_batch, .bos = add_bos ? bos : -1,
				       .on_pos = ppl_score, .user = r };
	if (r->kld)
		kld_stats_print_head(stdout);
	for (int32_t k = 0; k < n_chunk; k++) {
		int rc = chunks_eval(&ev, tokens + (size_t)k * (size_t)r->n_ctx, err);
		if (rc) {
			char msg[sizeof err->msg];
			memcpy(msg, err->msg, sizeof msg);
			snprintf(err->msg, sizeof err->msg, "chunk %d: %.200s", k + 1, msg);
			return rc;
		}
		if (r->kld)
			kld_stats_print_chunk(r->kld, stdout, k + 1);
		else
			printf("[%d]%.4f,", k + 1, exp(r->nll / (double)r->count));
		fflush(stdout);
	}
	printf("\n");
	return 0;
}

/* The closing line of a perplexity run; false when there is none to print. */
static bool ppl_final(const struct ppl_run *r)
{
	const double mean = r->nll / (double)r->count, var = r->nll2 / (double)r->count - mean * mean;
	const double ppl = exp(mean);
	if (!(var > 0) || r->count < 2) {
		fprintf(stderr, "hearth perplexity: the per-token log-likelihood has no positive variance (PPL = %.4f)\n",
			ppl);
		return false;
	}
	printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(r->count - 1)) * ppl);
	return true;
}

static const char perplexity_help[] =
	"usage: hearth perplexity -m FILE -f TEXT [-c N] [-b N] [-t N] [--chunks N] [--kl-divergence-base FILE]\n"
	"       hearth perplexity -m FILE --kl-divergence-base FILE --kl-divergence [-f TEXT] [-b N] [-t N]\n"
	"\n"
	"Perplexity of the model on a text file, as llama.cpp's llama-perplexity computes it:\n"
	"the text is cut into chunks of -c tokens (BOS first in each when the vocabulary adds\n"
	"it), and the second half of each chunk is scored. Prints the running estimate after\n"
	"each chunk, then 'Final estimate: PPL = X +/- Y'. Needs at least 2 x -c tokens.\n"
	"With --kl-divergence-base FILE the log-probabilities of the scored positions are saved\n"
	"to FILE (llama-perplexity's format); with --kl-divergence too, FILE is read instead and\n"
	"this model is compared with the one that wrote it on the same tokens: KL divergence,\n"
	"top-token agreement, ln(PPL(Q)/PPL(base)), token probability differences.\n"
	"  -m, --model FILE     GGUF model\n"
	"  -f, --file TEXT      text file ('-': standard input); with --kl-divergence optional,\n"
	"                       and then checked to give the base file's tokens\n"
	"  -c, --ctx-size N     tokens per chunk [512; with --kl-divergence, the base file's]\n"
	"  -b, --batch-size N   most tokens per forward pass (at most -c) [-c]\n"
	"  -t, --threads N      threads (0: the physical cores) [0]\n"
	"      --chunks N       evaluate at most the first N chunks [all]\n"
	"      --kl-divergence-base FILE   base log-probabilities: written, or read with --kl-divergence\n"
	"      --kl-divergence  compare with the base file's model\n"
	"      --lora FILE[:SCALE]  a LoRA adapter (llama.cpp's GGUF) times SCALE [1]; repeatable\n";

/* Parses argv into o: 0 to go on, else the exit code (help: 0 after printing it, -1). */
static int ppl_parse(int argc, char **argv, struct ppl_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(perplexity_help, stdout);
			return -1;
		}
		if (!strcmp(a, "--kl-divergence")) {
			o->kld = true;
			continue;
		}
		if (!(val = arg_value("perplexity", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			o->model = val;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			o->file = val;
		} else if (!strcmp(a, "--kl-divergence-base")) {
			o->kld_base = val;
		} else if (!strcmp(a, "--lora")) {
			if (!gen_opts_lora(&o->lora, "perplexity", val))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
			if (!arg_int("perplexity", a, val, 4, 1 << 20, &o->n_ctx))
				return EXIT_USAGE;
			o->ctx_set = true;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			if (!arg_int("perplexity", a, val, 1, 1 << 20, &o->n_batch))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("perplexity", a, val, 0, 512, &o->t))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--chunks")) {
			if (!arg_int("perplexity", a, val, 1, INT32_MAX, &o->n_chunks))
				return EXIT_USAGE;
		} else {
			return usage_error("perplexity", "unknown option '%s'", a);
		}
	}
	if (!o->model)
		return usage_error("perplexity", "-m FILE is required");
	if (!(o->model = cli_model_path("perplexity", o->model)))
		return 1;
	if (o->kld && !o->kld_base)
		return usage_error("perplexity", "--kl-divergence needs --kl-divergence-base FILE");
	if (!o->file && !o->kld)
		return usage_error("perplexity", "-f TEXT is required");
	return 0;
}

/* The text's tokens (*ids, *n_ids), refusing vocabularies that append EOS as
 * llama-perplexity does: the chunks would not be plain text. */
static int ppl_tokenize(const struct hearth_model *m, const char *file, int32_t **ids, int32_t *n_ids)
{
	struct hearth_err err = { 0 };
	size_t len;
	char *text = cli_read_file(file, &len);
	if (!text) {
		fprintf(stderr, "hearth perplexity: cannot read '%s': %s\n", file, strerror(errno));
		return 1;
	}
	/* tokenizing "" shows whether the vocabulary appends EOS */
	int rc = hearth_tokenize(m, "", 0, true, false, ids, n_ids, &err);
	if (!rc) {
		free(*ids);
		*ids = NULL;
		if (*n_ids > (hearth_vocab_add_bos(m) ? 1 : 0)) {
			fprintf(stderr, "hearth perplexity: the vocabulary appends EOS to texts; perplexity needs one that "
				"does not\n");
			free(text);
			return 1;
		}
		rc = hearth_tokenize(m, text, len, true, false, ids, n_ids, &err);
	}
	free(text);
	if (rc) {
		fprintf(stderr, "hearth perplexity: %s\n", err.msg);
		return 1;
	}
	return 0;
}

/* A context for chunks of n_ctx tokens, and the run's fields that follow from it. */
static int ppl_start(struct ppl_run *r, struct hearth_model *m, const struct ppl_opts *o, int32_t n_ctx,
		     struct hearth_err *err)
{
	struct hearth_context_params cp = hearth_context_default_params();
	r->n_ctx = n_ctx;
	/* as llama-perplexity: a batch never spans two chunks here */
	r->n_batch = !o->n_batch || o->n_batch > n_ctx ? n_ctx : (int32_t)o->n_batch;
	r->n_vocab = hearth_model_n_vocab(m);
	cp.n_ctx = n_ctx;
	cp.n_batch = r->n_batch;
	cp.n_threads = (int32_t)o->t;
	if (o->kld_base && !(r->row = calloc(kld_file_row_words(r->n_vocab), sizeof *r->row))) {
		snprintf(err->msg, sizeof err->msg, "out of memory for a row of %d log-probabilities", r->n_vocab);
		return err->code = HEARTH_ENOMEM;
	}
	int rc = hearth_context_new(&r->c, m, &cp, err);
	if (!rc && o->lora.n_lora && gen_opts_apply_lora(&o->lora, "perplexity", m, r->c)) {
		snprintf(err->msg, sizeof err->msg, "a --lora adapter was refused");
		return err->code = HEARTH_EINVAL;
	}
	return rc;
}

/* Perplexity on the text, saving the base file when asked. */
static int ppl_text(const struct ppl_opts *o, struct hearth_model *m)
{
	struct hearth_err err = { 0 };
	struct ppl_run r = { 0 };
	int32_t *ids = NULL, n_ids = 0;
	int ret = 1;

	if (ppl_tokenize(m, o->file, &ids, &n_ids))
		return 1;
	if ((long long)n_ids < 2 * o->n_ctx) {
		fprintf(stderr, "hearth perplexity: %s tokenizes to only %d tokens; a context of %lld needs at least "
			"%lld\n", o->file, n_ids, o->n_ctx, 2 * o->n_ctx);
		goto out;
	}
	int32_t n_chunk = n_ids / (int32_t)o->n_ctx;
	if (o->n_chunks && o->n_chunks < n_chunk)
		n_chunk = (int32_t)o->n_chunks;
	if (ppl_start(&r, m, o, (int32_t)o->n_ctx, &err))
		goto out_err;
	if (o->kld_base) {
		r.save_path = o->kld_base;
		if (!(r.save = fopen(o->kld_base, "wb"))) {
			fprintf(stderr, "hearth perplexity: cannot create '%s': %s\n", o->kld_base, strerror(errno));
			goto out;
		}
		if (kld_file_write_header(r.save, o->kld_base, r.n_ctx, r.n_vocab, n_chunk, ids, &err))
			goto out_err;
	}
	fprintf(stderr, "hearth perplexity: %d tokens, %d chunks of %d, batch %d%s%s\n", n_ids, n_chunk, r.n_ctx,
		r.n_batch, o->kld_base ? "; log-probabilities to " : "", o->kld_base ? o->kld_base : "");
	if (ppl_chunks(&r, ids, n_chunk, hearth_vocab_add_bos(m), hearth_token_bos(m), &err))
		goto out_err;
	if (r.save) {
		FILE *f = r.save;
		r.save = NULL;
		if (fclose(f)) {
			fprintf(stderr, "hearth perplexity: cannot write '%s': %s\n", o->kld_base, strerror(errno));
			goto out;
		}
	}
	ret = ppl_final(&r) ? 0 : 1;
	goto out;

out_err:
	fprintf(stderr, "hearth perplexity: %s\n", err.msg);
out:
	if (r.save) { /* a partial base file would only be refused later */
		fclose(r.save);
		unlink(o->kld_base);
	}
	hearth_context_free(r.c);
	free(r.row);
	free(ids);
	return ret;
}

/* Checks that the text gives the base file's tokens. */
static int ppl_check_text(const struct ppl_opts *o, const struct hearth_model *m, const struct kld_file *base)
{
	int32_t *ids = NULL, n_ids = 0;
	const size_t n = (size_t)base->n_chunk * (size_t)base->n_ctx;
	if (ppl_tokenize(m, o->file, &ids, &n_ids))
		return 1;
	size_t i = 0;
	while (i < n && i < (size_t)n_ids && ids[i] == base->tokens[i])
		i++;
	free(ids);
	if (i < n) {
		fprintf(stderr, "hearth perplexity: %s does not give the tokens of %s: %s at token %zu\n", o->file,
			o->kld_base, i < (size_t)n_ids ? "they differ" : "the text ends", i);
		return 1;
	}
	return 0;
}

/* --kl-divergence: this model on the base file's tokens, compared with the base's log-probabilities. */
static int ppl_kld(const struct ppl_opts *o, struct hearth_model *m)
{
	struct hearth_err err = { 0 };
	struct kld_file base;
	struct kld_stats st = { 0 };
	struct ppl_run r = { 0 };
	int ret = 1;

	if (kld_file_open(&base, o->kld_base, hearth_model_n_vocab(m), &err)) {
		fprintf(stderr, "hearth perplexity: %s\n", err.msg);
		return 1;
	}
	if (o->ctx_set && o->n_ctx != base.n_ctx) {
		fprintf(stderr, "hearth perplexity: %s was computed with chunks of %d tokens, not -c %lld\n", o->kld_base,
			base.n_ctx, o->n_ctx);
		goto out;
	}
	if (o->file && ppl_check_text(o, m, &base))
		goto out;
	int32_t n_chunk = base.n_chunk;
	if (o->n_chunks && o->n_chunks < n_chunk)
		n_chunk = (int32_t)o->n_chunks;
	if (ppl_start(&r, m, o, base.n_ctx, &err) ||
	    kld_stats_init(&st, (size_t)n_chunk * (size_t)(base.n_ctx - 1 - base.n_ctx / 2), &err))
		goto out_err;
	r.base = &base;
	r.kld = &st;
	fprintf(stderr, "hearth perplexity: KL divergence from %s over %d chunks of %d, batch %d\n", o->kld_base,
		n_chunk, r.n_ctx, r.n_batch);
	if (ppl_chunks(&r, base.tokens, n_chunk, hearth_vocab_add_bos(m), hearth_token_bos(m), &err))
		goto out_err;
	if (!kld_stats_print(&st, stdout))
		fprintf(stderr, "hearth perplexity: %zu positions are too few for the statistics (at least 100)\n",
			st.count);
	ret = 0;
	goto out;

out_err:
	fprintf(stderr, "hearth perplexity: %s\n", err.msg);
out:
	hearth_context_free(r.c);
	free(r.row);
	kld_stats_free(&st);
	kld_file_close(&base);
	return ret;
}

int cmd_perplexity(int argc, char **argv)
{
	struct ppl_opts o = { .n_ctx = 512 };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	int rc = ppl_parse(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (hearth_model_load(&m, o.model, &mp, &err)) {
		fprintf(stderr, "hearth perplexity: %s\n", err.msg);
		return 1;
	}
	rc = o.kld ? ppl_kld(&o, m) : ppl_text(&o, m);
	hearth_model_free(m);
	return rc;
}
