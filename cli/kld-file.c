/*
 * kld-file.c - the base file of llama-perplexity's --kl-divergence-base: the
 * log-probabilities a model gave at every scored position of a text, kept so
 * that another model (a quantization of it) can be compared with it later.
 * hearth writes and reads the bytes llama.cpp does, so either tool reads the
 * other's files. All numbers are native (little-endian on the hosts both run on):
 *
 *   offset  size                      field
 *   0       8                         "_logits_"
 *   8       4    int32                n_ctx: tokens per chunk
 *   12      4    int32                n_vocab
 *   16      4    int32                n_chunk
 *   20      4 n_chunk n_ctx  int32    the tokens of the chunks, as tokenized
 *                                     (not with the first replaced by BOS)
 *   then, for each chunk, for each scored position j = n_ctx/2 .. n_ctx-2
 *   (n_ctx - 1 - n_ctx/2 rows), one row of W = 2 ((n_vocab + 1) / 2) + 4 uint16:
 *           4    float                scale
 *           4    float                min: the smallest log-probability kept
 *           2 n_vocab  uint16         q[i]: log p[i] = min + scale q[i]
 *           0 or 2                    padding (0)
 *
 * A row keeps the log-probabilities within 16 of the most likely token's, on
 * 65535 steps; the rest read as min (their q is 0).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kld.h"

#define KLD_MAGIC "_logits_"
#define KLD_HEADER_BYTES 20
#define KLD_MIN_CTX 4
#define KLD_MAX_CTX (1 << 20)

__attribute__((format(printf, 3, 4))) static int kerr(struct hearth_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

size_t kld_file_row_words(int32_t n_vocab)
{
	return 2 * (((size_t)n_vocab + 1) / 2) + 4;
}

int kld_file_write_header(FILE *f, const char *path, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk,
			  const int32_t *tokens, struct hearth_err *err)
{
	const int32_t head[3] = { n_ctx, n_vocab, n_chunk };
	const size_t n_tok = (size_t)n_chunk * (size_t)n_ctx;
	if (fwrite(KLD_MAGIC, 1, 8, f) != 8 || fwrite(head, sizeof head[0], 3, f) != 3 ||
	    fwrite(tokens, sizeof *tokens, n_tok, f) != n_tok)
		return kerr(err, HEARTH_EIO, "%s: cannot write: %s", path, strerror(errno));
	return 0;
}

/* round to nearest, ties to even: what llama-perplexity's float trick gives */
static int nearest_int(float v)
{
	return (int)lrintf(v);
}

double kld_file_row_pack(const float *logits, int32_t n_vocab, int32_t tok, uint16_t *row)
{
	float max = logits[0], min = logits[0];
	for (int32_t i = 1; i < n_vocab; i++) {
		max = logits[i] > max ? logits[i] : max;
		min = logits[i] < min ? logits[i] : min;
	}
	min = min > max - 16 ? min : max - 16;
	double sum = 0;
	for (int32_t i = 0; i < n_vocab; i++)
		sum += expf(logits[i] - max);
	const float log_sum = (float)log(sum);
	const float min_log_prob = min - max - log_sum, scale = (max - min) / 65535.f;
	memcpy(row, &scale, sizeof scale);
	memcpy(row + 2, &min_log_prob, sizeof min_log_prob);
	uint16_t *q = row + 4;
	if (scale != 0) {
		const float inv = 1 / scale;
		for (int32_t i = 0; i < n_vocab; i++)
			q[i] = logits[i] > min ? (uint16_t)nearest_int(inv * (logits[i] - min)) : 0;
	} else {
		memset(q, 0, (size_t)n_vocab * sizeof *q);
	}
	if (n_vocab % 2)
		q[n_vocab] = 0;
	return (double)(max + log_sum - logits[tok]);
}

/* Checks the header's numbers and that the file holds exactly what they
 * promise; fills k's counts. */
static int check_header(struct kld_file *k, const char *path, uint64_t size, int32_t n_vocab, struct hearth_err *err)
{
	char magic[8];
	int32_t head[3];
	if (size < KLD_HEADER_BYTES || fread(magic, 1, 8, k->f) != 8 || fread(head, sizeof head[0], 3, k->f) != 3)
		return kerr(err, HEARTH_EINVAL, "%s: too short for a base file (%llu bytes)", path, (unsigned long long)size);
	if (memcmp(magic, KLD_MAGIC, 8))
		return kerr(err, HEARTH_EINVAL, "%s: not a base file of log-probabilities (no '_logits_' at the start)", path);
	k->n_ctx = head[0];
	k->n_vocab = head[1];
	k->n_chunk = head[2];
	if (k->n_ctx < KLD_MIN_CTX || k->n_ctx > KLD_MAX_CTX)
		return kerr(err, HEARTH_EINVAL, "%s: context of %d tokens (expected %d to %d)", path, k->n_ctx, KLD_MIN_CTX,
			    KLD_MAX_CTX);
	if (k->n_vocab != n_vocab)
		return kerr(err, HEARTH_EINVAL, "%s: computed with a vocabulary of %d tokens; this model has %d", path,
			    k->n_vocab, n_vocab);
	if (k->n_chunk < 1)
		return kerr(err, HEARTH_EINVAL, "%s: %d chunks", path, k->n_chunk);
	/* each count is bounded by what the file can hold before it is multiplied further */
	const uint64_t body = size - KLD_HEADER_BYTES, tok_bytes = (uint64_t)k->n_ctx * 4;
	if ((uint64_t)k->n_chunk > body / tok_bytes)
		return kerr(err, HEARTH_EINVAL, "%s: truncated: %d chunks of %d tokens do not fit in %llu bytes", path,
			    k->n_chunk, k->n_ctx, (unsigned long long)size);
	k->row_words = kld_file_row_words(n_vocab);
	const uint64_t rows = (uint64_t)k->n_chunk * (uint64_t)(k->n_ctx - 1 - k->n_ctx / 2);
	const uint64_t left = body - (uint64_t)k->n_chunk * tok_bytes, row_bytes = k->row_words * 2;
	if (rows > left / row_bytes)
		return kerr(err, HEARTH_EINVAL, "%s: truncated: %llu bytes, but %d chunks of %d tokens over %d tokens take "
			    "%llu more than that", path, (unsigned long long)size, k->n_chunk, k->n_ctx, n_vocab,
			    (unsigned long long)(rows * row_bytes - left));
	if (left != rows * row_bytes)
		return kerr(err, HEARTH_EINVAL, "%s: %llu bytes after the last chunk's log-probabilities", path,
			    (unsigned long long)(left - rows * row_bytes));
	return 0;
}

int kld_file_open(struct kld_file *k, const char *path, int32_t n_vocab, struct hearth_err *err)
{
	struct stat st;
	int rc;
	memset(k, 0, sizeof *k);
	k->path = path;
	if (!(k->f = fopen(path, "rb")))
		return kerr(err, HEARTH_EIO, "%s: cannot open: %s", path, strerror(errno));
	if (fstat(fileno(k->f), &st) || !S_ISREG(st.st_mode)) {
		rc = kerr(err, HEARTH_EIO, "%s: not a regular file", path);
		goto fail;
	}
	if ((rc = check_header(k, path, (uint64_t)st.st_size, n_vocab, err)))
		goto fail;
	const size_t n_tok = (size_t)k->n_chunk * (size_t)k->n_ctx;
	if (!(k->tokens = malloc(n_tok * sizeof *k->tokens))) {
		rc = kerr(err, HEARTH_ENOMEM, "%s: out of memory for %zu tokens", path, n_tok);
		goto fail;
	}
	if (fread(k->tokens, sizeof *k->tokens, n_tok, k->f) != n_tok) {
		rc = kerr(err, HEARTH_EIO, "%s: cannot read the tokens", path);
		goto fail;
	}
	for (size_t i = 0; i < n_tok; i++)
		if (k->tokens[i] < 0 || k->tokens[i] >= n_vocab) {
			rc = kerr(err, HEARTH_EINVAL, "%s: token %zu is %d, outside the vocabulary (0..%d)", path, i,
				  k->tokens[i], n_vocab - 1);
			goto fail;
		}
	return 0;
fail:
	kld_file_close(k);
	return rc;
}

int kld_file_read_row(struct kld_file *k, uint16_t *row, struct hearth_err *err)
{
	float scale, min;
	if (fread(row, 2, k->row_words, k->f) != k->row_words)
		return kerr(err, HEARTH_EIO, "%s: cannot read a row of log-probabilities", k->path);
	memcpy(&scale, row, sizeof scale);
	memcpy(&min, row + 2, sizeof min);
	if (!isfinite(scale) || !isfinite(min) || scale < 0)
		return kerr(err, HEARTH_EINVAL, "%s: a row at offset %ld has scale %g and minimum %g", k->path,
			    ftell(k->f) - (long)(k->row_words * 2), (double)scale, (double)min);
	return 0;
}

void kld_file_close(struct kld_file *k)
{
	if (k->f)
		fclose(k->f);
	free(k->tokens);
	k->f = NULL;
	k->tokens = NULL;
}
