/* select.h - the best candidates of a row of logits without sorting the row.
 *
 * Candidates are ordered best first: logit descending, then id ascending. A
 * prefix of that order is found by refining histograms of the distance to the
 * row's maximum (radix selection): each pass keeps the bucket where the
 * prefix ends and takes every bucket before it whole, so a row of 150k logits
 * costs a few linear passes, not a sort.
 */
#ifndef HEARTH_SELECT_H
#define HEARTH_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sel_row {
	const float *l; /* [n] logits, all finite */
	const float *w; /* [n] weights exp(l - max), for selection by weight; may be NULL */
	int32_t n;
	float max, min; /* of l */
};

/* The shortest prefix, in best-first order, of the candidates ids[0..n_ids)
 * (every id of the row when ids is NULL) that holds at least need candidates
 * (by_weight false) or whose weights sum to at least need (by_weight true),
 * and at least one candidate. Writes it to out in no particular order and
 * returns its length (all candidates when they do not reach need). tmp has
 * room for n_ids ids; out may not overlap ids or tmp. */
size_t sel_prefix(const struct sel_row *r, const int32_t *ids, size_t n_ids, bool by_weight, double need,
		  int32_t *out, int32_t *tmp);

/* Sorts ids[0..n) best first. */
void sel_sort(const float *l, int32_t *ids, size_t n);

#endif /* HEARTH_SELECT_H */
