/* imatrix.h - an importance matrix being collected (imatrix.c) and written
 * (imatrix-write.c); the public face is hearth_imatrix_* in hearth.h.
 *
 * Ownership: struct hearth_imatrix owns the entries and their sums (one
 * allocation); entry names point into the model's GGUF, which outlives it.
 * One thread at a time (the decoding thread adds, then the owner writes).
 */
#ifndef HEARTH_IMATRIX_H
#define HEARTH_IMATRIX_H

#include <stdint.h>

#include "../base/strmap.h"
#include "hearth.h"

struct imatrix_entry {
	const char *name; /* the weight's GGUF name */
	int64_t n_in;     /* input columns */
	int32_t n_mat;    /* matrices: n_expert for stacked experts, else 1 */
	float *sums;      /* [n_mat][n_in] sum over the rows of x_j^2 (per expert) */
	int64_t *counts;  /* [n_mat] rows summed (per expert) */
};

struct hearth_imatrix {
	struct hearth_imatrix_params p;
	struct imatrix_entry *e; /* [n], in the model's order */
	int32_t n;
	struct strmap index;     /* name -> index into e */
	float *mem;              /* every entry's sums */
	int64_t *counts;         /* every entry's counts */
	const char *bad;         /* a weight whose input had another width than its own (NULL: none) */
};

#endif /* HEARTH_IMATRIX_H */
