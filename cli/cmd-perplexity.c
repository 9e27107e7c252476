/* cmd-perplexity.c - `hearth perplexity`: the perplexity of a model on a
 * text, computed the way llama.cpp's llama-perplexity computes it, so that the
 * two numbers can be compared:
 *
 *   - the whole text is tokenized once, BOS first when the vocabulary adds it
 *     (special-token text is not parsed);
 *   - it is cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens (the
 *     tail is dropped), and at least 2 * n_ctx tokens are required, as
 *     llama-perplexity requires;
 *   - each chunk is evaluated from an empty context, its first token replaced
 *     by BOS when the vocabulary adds BOS;
 *   - only the second half is scored: for positions j = n_ctx/2 .. n_ctx-2,
 *     nll_j = -log softmax(logits[j])[token j+1];
 *   - after each chunk the running estimate exp(sum nll / count) is printed as
 *     "[k]x.xxxx,", and at the end "Final estimate: PPL = P +/- U" where, with
 *     m the mean and v = mean(nll^2) - m^2 the variance of the per-token nll,
 *     P = exp(m) and U = P * sqrt(v / (count - 1)).
 *
 * Chunks are decoded in batches of -b tokens; a batch that reaches the scored
 * half asks for all its logits, and they are consumed before the next batch,
 * so memory holds n_batch x n_vocab logits at most. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* -log softmax(logits)[tok], in double precision. */
static double token_nll(const float *logits, int32_t n_vocab, int32_t tok)
{
	double max = logits[0], sum = 0;
	for (int32_t i = 1; i < n_vocab; i++)
		if (logits[i] > max)
			max = logits[i];
	for (int32_t i = 0; i < n_vocab; i++)
		sum += exp((double)logits[i] - max);
	return max + log(sum) - (double)logits[tok];
}

struct ppl_acc {
	double nll, nll2; /* sums of nll and nll^2 over the scored tokens */
	long long count;  /* scored tokens */
};

/* Evaluates one chunk of n_ctx tokens (chunk[0] already BOS where wanted) from
 * an empty context and adds its scored tokens to acc. */
static int ppl_chunk(struct hearth_context *c, const int32_t *chunk, int32_t n_ctx, int32_t n_batch,
		     int32_t n_vocab, struct ppl_acc *acc, struct hearth_err *err)
{
	const int32_t first = n_ctx / 2;
	int rc;
	hearth_context_truncate(c, 0);
	for (int32_t b0 = 0; b0 < n_ctx; b0 += n_batch) {
		const int32_t n = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
		const bool want = b0 + n > first;
		if ((rc = hearth_decode(c, chunk + b0, n, want, err)))
			return rc;
		if (!want)
			continue;
		/* positions j in [max(first, b0), min(b0 + n, n_ctx - 1)) predict token j+1 */
		const int32_t j1 = b0 + n < n_ctx - 1 ? b0 + n : n_ctx - 1;
		for (int32_t j = first > b0 ? first : b0; j < j1; j++) {
			const float *logits = hearth_get_logits(c, j - b0);
			if (!logits)
				return HEARTH_EINVAL;
			const double v = token_nll(logits, n_vocab, chunk[j + 1]);
			acc->nll += v;
			acc->nll2 += v * v;
			acc->count++;
		}
	}
	return 0;
}

static const char perplexity_help[] =
	"usage: hearth perplexity -m FILE -f TEXT [-c N] [-b N] [-t N]\n"
	"\n"
	"Perplexity of the model on a text file, as llama.cpp's llama-perplexity computes it:\n"
	"the text is cut into chunks of -c tokens (BOS first in each when the vocabulary adds\n"
	"it), and the second half of each chunk is scored. Prints the running estimate after\n"
	"each chunk, then 'Final estimate: PPL = X +/- Y'. Needs at least 2 x -c tokens.\n"
	"  -m, --model FILE     GGUF model\n"
	"  -f, --file TEXT      text file ('-': standard input)\n"
	"  -c, --ctx-size N     tokens per chunk [512]\n"
	"  -b, --batch-size N   most tokens per forward pass (at most -c) [-c]\n"
	"  -t, --threads N      threads (0: the physical cores) [0]\n";

int cmd_perplexity(int argc, char **argv)
{
	const char *model = NULL, *file = NULL;
	long long n_ctx = 512, n_batch = 0, t = 0;
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	int32_t *ids = NULL, n_ids = 0;
	char *text;
	size_t len;
	int ret = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(perplexity_help, stdout);
			return 0;
		}
		if (!(val = arg_value("perplexity", argc, argv, &i)))
			return EXIT_USAGE;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			model = val;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			file = val;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
			if (!arg_int("perplexity", a, val, 4, 1 << 20, &n_ctx))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			if (!arg_int("perplexity", a, val, 1, 1 << 20, &n_batch))
				return EXIT_USAGE;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!arg_int("perplexity", a, val, 0, 512, &t))
				return EXIT_USAGE;
		} else {
			return usage_error("perplexity", "unknown option '%s'", a);
		}
	}
	if (!model)
		return usage_error("perplexity", "-m FILE is required");
	if (!(model = cli_model_path("perplexity", model)))
		return 1;
	if (!file)
		return usage_error("perplexity", "-f TEXT is required");
	if (!n_batch || n_batch > n_ctx) /* as llama-perplexity: a batch never spans two chunks here */
		n_batch = n_ctx;

	if (!(text = cli_read_file(file, &len))) {
		fprintf(stderr, "hearth perplexity: cannot read '%s': %s\n", file, strerror(errno));
		return 1;
	}
	if (hearth_model_load(&m, model, &mp, &err))
		goto out_err;
	const int32_t n_vocab = hearth_model_n_vocab(m);
	const bool add_bos = hearth_vocab_add_bos(m);
	const int32_t bos = hearth_token_bos(m);
	/* llama-perplexity refuses vocabularies that append EOS: the chunks would
	 * not be plain text. Tokenizing "" shows whether this one does. */
	if (hearth_tokenize(m, "", 0, true, false, &ids, &n_ids, &err))
		goto out_err;
	free(ids);
	ids = NULL;
	if (n_ids > (add_bos ? 1 : 0)) {
		fprintf(stderr, "hearth perplexity: %s: the vocabulary appends EOS to texts; perplexity needs one that "
			"does not\n", model);
		goto out;
	}
	if (hearth_tokenize(m, text, len, true, false, &ids, &n_ids, &err))
		goto out_err;
	if ((long long)n_ids < 2 * n_ctx) {
		fprintf(stderr, "hearth perplexity: %s tokenizes to only %d tokens; a context of %lld needs at least "
			"%lld\n", file, n_ids, n_ctx, 2 * n_ctx);
		goto out;
	}
	cp.n_ctx = (int32_t)n_ctx;
	cp.n_batch = (int32_t)n_batch;
	cp.n_threads = (int32_t)t;
	if (hearth_context_new(&c, m, &cp, &err))
		goto out_err;

	const int32_t n_chunk = n_ids / (int32_t)n_ctx;
	fprintf(stderr, "hearth perplexity: %d tokens, %d chunks of %lld, batch %lld\n", n_ids, n_chunk, n_ctx,
		n_batch);
	struct ppl_acc acc = { 0 };
	for (int32_t k = 0; k < n_chunk; k++) {
		int32_t *chunk = ids + (size_t)k * (size_t)n_ctx;
		const int32_t saved = chunk[0];
		if (add_bos && bos >= 0)
			chunk[0] = bos;
		int rc = ppl_chunk(c, chunk, (int32_t)n_ctx, (int32_t)n_batch, n_vocab, &acc, &err);
		chunk[0] = saved;
		if (rc) {
			if (!err.msg[0])
				snprintf(err.msg, sizeof err.msg, "chunk %d: no logits kept", k + 1);
			goto out_err;
		}
		printf("[%d]%.4f,", k + 1, exp(acc.nll / (double)acc.count));
		fflush(stdout);
	}
	printf("\n");

	const double mean = acc.nll / (double)acc.count, var = acc.nll2 / (double)acc.count - mean * mean;
	const double ppl = exp(mean);
	if (!(var > 0) || acc.count < 2) {
		fprintf(stderr, "hearth perplexity: the per-token log-likelihood has no positive variance (PPL = %.4f)\n",
			ppl);
		goto out;
	}
	printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(acc.count - 1)) * ppl);
	ret = 0;
	goto out;

out_err:
	fprintf(stderr, "hearth perplexity: %s\n", err.msg);
out:
	hearth_context_free(c);
	hearth_model_free(m);
	free(ids);
	free(text);
	return ret;
}
