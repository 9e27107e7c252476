/* cmd-imatrix.c - `hearth imatrix`: an importance matrix of a model over a
 * text, computed and written as llama.cpp's llama-imatrix does, for
 * quantizers that weigh each column's rounding error by how much that input
 * matters:
 *
 *   - the text is tokenized once (BOS first when the vocabulary adds it);
 *     --chunk N drops its first N chunks; at least 2 chunks' worth is needed;
 *   - it is cut into chunks of -c tokens (--chunks N keeps the first N), each
 *     evaluated from an empty context in batches of -b tokens, its first
 *     token replaced by BOS when the vocabulary adds BOS;
 *   - every product of a block's weight matrix (and output.weight with
 *     --process-output) adds its input's squared values to that weight's
 *     sums (hearth_imatrix_* in hearth.h; batches under 16 tokens are left
 *     out, as llama-imatrix leaves them);
 *   - unless --no-ppl, the perplexity of the second half of each chunk is
 *     printed as llama-imatrix prints it ("[k]x.xxxx," then "Final estimate");
 *   - the matrix is written every 10 chunks and at the end, in GGUF
 *     (llama-imatrix's default) or with --output-format dat the legacy format.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define IMATRIX_SAVE_EVERY 10 /* chunks, as llama-imatrix's --output-frequency default */

struct imx_opts {
	const char *model, *file, *out;
	long long n_ctx, n_batch, n_chunks, from_chunk, t;
	bool process_output, ppl;
	int format;
};

struct imx_run {
	struct hearth_context *c;
	int32_t n_ctx, n_batch, n_vocab;
	bool ppl, all_logits;
	double nll, nll2;
	long long count;
};

/* A scored position: its log-likelihood joins the perplexity (chunks_eval's on_pos). */
static int imx_score(void *user, const float *logits, int32_t next, struct hearth_err *err)
{
	struct imx_run *r = user;
	(void)err;
	const double v = ppl_token_nll(logits, r->n_vocab, next);
	r->nll += v;
	r->nll2 += v * v;
	r->count++;
	return 0;
}

static const char imatrix_help[] =
	"usage: hearth imatrix -m FILE -f TEXT [-o OUT] [-c N] [-b N] [-t N] [--chunks N] [--chunk N]\n"
	"                      [--process-output] [--no-ppl] [--output-format gguf|dat]\n"
	"\n"
	"The importance matrix of the model over a text, as llama.cpp's llama-imatrix computes\n"
	"it: per weight matrix of the transformer blocks and per input column, the sum over the\n"
	"text's tokens of the squared activation entering the product, and the token count.\n"
	"The text is cut into chunks of -c tokens, each evaluated from an empty context (BOS\n"
	"first when the vocabulary adds it). Written every 10 chunks and at the end.\n"
	"  -m, --model FILE       GGUF model\n"
	"  -f, --file TEXT        text file ('-': standard input)\n"
	"  -o, --output FILE      where to write the matrix [imatrix.gguf]\n"
	"  -c, --ctx-size N       tokens per chunk [512]\n"
	"  -b, --batch-size N     most tokens per forward pass (at most -c; batches under 16\n"
	"                         tokens are not collected, as in llama-imatrix) [-c]\n"
	"  -t, --threads N        threads (0: the physical cores) [0]\n"
	"      --chunks N         process at most N chunks [all]\n"
	"      --chunk N          skip the first N chunks of the text [0]\n"
	"      --process-output   collect output.weight too\n"
	"      --no-ppl           do not compute the perplexity\n"
	"      --output-format F  gguf (llama-imatrix's default) or dat (its legacy format) [gguf]\n";

/* Parses argv into o: 0 to go on, else the exit code (help: -1 after printing it). */
static int imx_parse(int argc, char **argv, struct imx_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(imatrix_help, stdout);
			return -1;
		}
		if (!strcmp(a, "--process-output") || !strcmp(a, "--no-ppl") || !strcmp(a, "--ppl")) {
			o->process_output |= !strcmp(a, "--process-output");
			o->ppl = !strcmp(a, "--no-ppl") ? false : !strcmp(a, "--ppl") ? true : o->ppl;
			continue;
		}
		if (!(val = arg_value("imatrix", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			o->model = val;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			o->file = val;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--output-file")) {
			o->out = val;
		} else if (!strcmp(a, "--output-format")) {
			if (strcmp(val, "gguf") && strcmp(val, "dat"))
				return usage_error("imatrix", "--output-format is gguf or dat, not '%s'", val);
			o->format = strcmp(val, "dat") ? HEARTH_IMATRIX_GGUF : HEARTH_IMATRIX_DAT;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
			if (!arg_int("imatrix", a, val, 4, 1 << 20, &o->n_ctx))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			if (!arg_int("imatrix", a, val, 1, 1 << 20, &o->n_batch))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("imatrix", a, val, 0, 512, &o->t))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--chunks")) {
			if (!arg_int("imatrix", a, val, 1, INT32_MAX, &o->n_chunks))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--chunk") || !strcmp(a, "--from-chunk")) {
			if (!arg_int("imatrix", a, val, 0, INT32_MAX, &o->from_chunk))
				return EXIT_USAGE;
		} else {
			return usage_error("imatrix", "unknown option '%s'", a);
		}
	}
	if (!o->model)
		return usage_error("imatrix", "-m FILE is required");
	if (!o->file)
		return usage_error("imatrix", "-f TEXT is required");
	return 0;
}

/* The text's tokens, its first --chunk chunks dropped. */
static int imx_tokens(const struct imx_opts *o, const struct hearth_model *m, int32_t **ids, int32_t *n_ids)
{
	struct hearth_err err = { 0 };
	size_t len;
	char *text = cli_read_file(o->file, &len);
	if (!text) {
		fprintf(stderr, "hearth imatrix: cannot read '%s': %s\n", o->file, strerror(errno));
		return 1;
	}
	int rc = hearth_tokenize(m, text, len, true, false, ids, n_ids, &err);
	free(text);
	if (rc) {
		fprintf(stderr, "hearth imatrix: %s\n", err.msg);
		return 1;
	}
	if (o->from_chunk > 0) {
		const long long skip = o->from_chunk * o->n_ctx;
		if ((o->from_chunk + 2) * o->n_ctx >= *n_ids) {
			fprintf(stderr, "hearth imatrix: %s: %d tokens leave too few after dropping %lld chunks\n", o->file,
				*n_ids, o->from_chunk);
			return 1;
		}
		memmove(*ids, *ids + skip, (size_t)(*n_ids - skip) * sizeof **ids);
		*n_ids -= (int32_t)skip;
	}
	if ((long long)*n_ids < 2 * o->n_ctx) {
		fprintf(stderr, "hearth imatrix: %s tokenizes to only %d tokens; a context of %lld needs at least %lld\n",
			o->file, *n_ids, o->n_ctx, 2 * o->n_ctx);
		return 1;
	}
	return 0;
}

/* Runs the chunks, collecting into im and saving it every few chunks. */
static int imx_chunks(const struct imx_opts *o, struct imx_run *r, struct hearth_imatrix *im, int32_t *ids,
		      int32_t n_chunk, bool add_bos, int32_t bos, struct hearth_err *err)
{
	const struct chunk_eval ev = { .c = r->c, .n_ctx = r->n_ctx, .n_batch = r->n_batch, .bos = add_bos ? bos : -1,
				       .all_logits = r->all_logits, .on_pos = r->ppl ? imx_score : NULL, .user = r };
	for (int32_t k = 0; k < n_chunk; k++) {
		int rc = chunks_eval(&ev, ids + (size_t)k * (size_t)r->n_ctx, err);
		if (rc || (rc = hearth_imatrix_check(im, err)))
			return rc;
		if (r->ppl) {
			printf("[%d]%.4f,", k + 1, exp(r->nll / (double)r->count));
			fflush(stdout);
		}
		if ((k + 1) % IMATRIX_SAVE_EVERY == 0 && k + 1 < n_chunk &&
		    (rc = hearth_imatrix_write(im, o->out, o->format, &o->file, 1, err)))
			return rc;
	}
	if (r->ppl)
		printf("\n");
	return 0;
}

int cmd_imatrix(int argc, char **argv)
{
	struct imx_opts o = { .n_ctx = 512, .ppl = true, .out = "imatrix.gguf", .format = HEARTH_IMATRIX_GGUF };
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_imatrix_params ip = hearth_imatrix_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_imatrix *im = NULL;
	struct imx_run r = { 0 };
	int32_t *ids = NULL, n_ids = 0;
	int ret = 1, rc = imx_parse(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (hearth_model_load(&m, o.model, &mp, &err))
		goto out_err;
	if (imx_tokens(&o, m, &ids, &n_ids))
		goto out;
	int32_t n_chunk = n_ids / (int32_t)o.n_ctx;
	if (o.n_chunks && o.n_chunks < n_chunk)
		n_chunk = (int32_t)o.n_chunks;
	r.n_ctx = (int32_t)o.n_ctx;
	r.n_batch = !o.n_batch || o.n_batch > o.n_ctx ? (int32_t)o.n_ctx : (int32_t)o.n_batch;
	r.n_vocab = hearth_model_n_vocab(m);
	r.ppl = o.ppl;
	r.all_logits = o.process_output; /* the output head sees only the rows whose logits are kept */
	cp.n_ctx = r.n_ctx;
	cp.n_batch = r.n_batch;
	cp.n_threads = (int32_t)o.t;
	ip.chunk_size = r.n_ctx;
	ip.process_output = o.process_output;
	if (hearth_context_new(&r.c, m, &cp, &err) || hearth_imatrix_new(&im, m, &ip, &err))
		goto out_err;
	hearth_imatrix_attach(im, r.c);
	fprintf(stderr, "hearth imatrix: %d tokens, %d chunks of %d, batch %d\n", n_ids, n_chunk, r.n_ctx, r.n_batch);
	if (imx_chunks(&o, &r, im, ids, n_chunk, hearth_vocab_add_bos(m), hearth_token_bos(m), &err) ||
	    hearth_imatrix_write(im, o.out, o.format, &o.file, 1, &err))
		goto out_err;
	if (r.ppl) {
		const double mean = r.nll / (double)r.count, var = r.nll2 / (double)r.count - mean * mean;
		if (var > 0 && r.count > 1)
			printf("Final estimate: PPL = %.4f +/- %.5f\n", exp(mean), sqrt(var / (double)(r.count - 1)) * exp(mean));
		else
			fprintf(stderr, "hearth imatrix: the per-token log-likelihood has no positive variance\n");
	}
	fprintf(stderr, "hearth imatrix: wrote %s\n", o.out);
	ret = 0;
	goto out;

out_err:
	fprintf(stderr, "hearth imatrix: %s\n", err.msg);
out:
	hearth_imatrix_free(im);
	hearth_context_free(r.c);
	hearth_model_free(m);
	free(ids);
	return ret;
}
