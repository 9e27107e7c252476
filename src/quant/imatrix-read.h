/* imatrix-read.h - reading llama.cpp's importance-matrix files (llama-imatrix
 * output) for `hearth quantize --imatrix`.
 *
 * Two formats, told apart by the GGUF magic:
 *   GGUF (llama-imatrix's default): per weight matrix W, tensors
 *     "W.in_sum2" (f32, ne0 * n_expert: sums of squared activations per
 *     column) and "W.counts" (f32, n_expert: how many activations each sum
 *     holds); keys imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size.
 *   legacy .dat: i32 n_entries, then per entry i32 name length, the name,
 *     i32 ncall, i32 nval, nval f32 (means already scaled by ncall); then,
 *     optionally, i32 chunk count, i32 length and a dataset name.
 * Either way an entry's values are the mean squared activation of each
 * column (per expert), as llama-quantize computes them: GGUF sums divided by
 * their count (1 where the count is 0), legacy values divided by ncall.
 *
 * Ownership: imatrix_read() returns one allocation tree freed by
 * imatrix_read_free(). Read-only afterwards: lookups from any thread.
 */
#ifndef HEARTH_IMATRIX_READ_H
#define HEARTH_IMATRIX_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"
#include "../base/strmap.h"

struct imatrix_entry {
	char *name;     /* the weight's tensor name */
	int64_t n;      /* values: ne0 * n_expert */
	float *values;  /* mean squared activation of each column, expert by expert */
};

struct imatrix_data {
	struct imatrix_entry *entries;
	int64_t n_entries;
	struct strmap index;  /* name -> index into entries */
	char *dataset;        /* the first dataset named in the file, or NULL */
	int32_t chunk_count;  /* chunks the sums cover (0: not recorded) */
	bool legacy;          /* read from the .dat format */
};

/* Reads path in either format. Refuses (HEARTH_EINVAL, message naming the
 * file and what is wrong) truncated files, counts that do not fit the data,
 * a GGUF without the imatrix keys or with a sum lacking its counts (or the
 * other way round), non-f32 tensors, negative or non-finite counts and
 * values that are not finite. HEARTH_EIO when it cannot be read. */
int imatrix_read(struct imatrix_data **out, const char *path, struct hearth_err *err);

/* The entry for tensor `name`, or NULL. */
const struct imatrix_entry *imatrix_read_find(const struct imatrix_data *im, const char *name);

void imatrix_read_free(struct imatrix_data *im);

#endif /* HEARTH_IMATRIX_READ_H */
