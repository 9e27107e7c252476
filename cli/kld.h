/* kld.h - comparing a model with a base model, as llama-perplexity's
 * --kl-divergence-base / --kl-divergence do: the base file (kld-file.c) and
 * the statistics over it (kld-stats.c). Used by cmd-perplexity.c. */
#ifndef HEARTH_KLD_H
#define HEARTH_KLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hearth.h"

/* uint16 words per scored position in a base file: the scale and the
 * minimum log-probability as two native floats, then one word per token,
 * padded to an even count. */
size_t kld_file_row_words(int32_t n_vocab);

/* Writes the header and the tokens (n_chunk x n_ctx ids) of a base file. */
int kld_file_write_header(FILE *f, const char *path, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk,
			  const int32_t *tokens, struct hearth_err *err);
/* Packs the log-softmax of logits into row (kld_file_row_words words) as
 * llama-perplexity does: values within 16 of the largest logit on a uint16
 * scale, the rest 0. Returns the negative log-likelihood of tok, computed
 * with llama-perplexity's float rounding. */
double kld_file_row_pack(const float *logits, int32_t n_vocab, int32_t tok, uint16_t *row);

/* A base file opened for reading. The header is checked against the model's
 * vocabulary and the file's size against what the header promises, before
 * anything is allocated from it. */
struct kld_file {
	FILE *f;
	const char *path;
	int32_t n_ctx, n_vocab, n_chunk;
	int32_t *tokens; /* [n_chunk * n_ctx], each inside the vocabulary */
	size_t row_words;
};
int kld_file_open(struct kld_file *k, const char *path, int32_t n_vocab, struct hearth_err *err);
/* Reads the next scored position's row (row_words words); a row whose scale
 * or minimum is not a finite number (or the scale negative) is refused. */
int kld_file_read_row(struct kld_file *k, uint16_t *row, struct hearth_err *err);
void kld_file_close(struct kld_file *k);

/* Sums over the scored positions, and each position's KL divergence and Δp
 * (for the percentiles). */
struct kld_stats {
	double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
	double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
	float max_p_diff;
	size_t n_same_top, count, cap;
	float *kld_values, *p_diff_values; /* [cap] */
};
/* Room for n positions. */
int kld_stats_init(struct kld_stats *s, size_t n, struct hearth_err *err);
void kld_stats_free(struct kld_stats *s);
/* Adds one position: the model's logits against the base's row, tok the
 * token that follows. Call at most cap times. */
void kld_stats_add(struct kld_stats *s, const float *logits, int32_t n_vocab, const uint16_t *row, int32_t tok);
/* The table's header line, and its line after chunk k (1-based). */
void kld_stats_print_head(FILE *out);
void kld_stats_print_chunk(const struct kld_stats *s, FILE *out, int k);
/* The final statistics (sorts the per-position values). Returns false, printing
 * nothing, with fewer than 100 positions, as llama-perplexity does. */
bool kld_stats_print(struct kld_stats *s, FILE *out);

#endif /* HEARTH_KLD_H */
