/* cvec.h - control vectors inside the library (see hearth_cvec in hearth.h).
 *
 * struct hearth_cvec owns one allocation of n_layer rows of n_embd floats:
 * row il is the direction added after block il; row 0 stays zero.
 */
#ifndef HEARTH_CVEC_H
#define HEARTH_CVEC_H

#include <stdint.h>

#include "hearth.h"
#include "forward.h"

struct hearth_cvec {
	int32_t n_layer;
	int64_t n_embd;
	float *dir; /* [n_layer][n_embd] */
};

/* Checks s against m and fills *out (out->dir NULL: no steering, for s NULL,
 * no vector or strength 0). HEARTH_EINVAL names the problem. */
int cvec_steer_resolve(const struct hearth_steering *s, const struct hearth_model *m, struct fwd_steer *out,
		       struct hearth_err *err);

/* What steers a sequence as 32 bytes (SHA-256 over strength, layer range
 * and the directions in force): equal for equal steering, all zero for
 * none (st->dir NULL). Names cached blocks and saved states by it. */
int cvec_steer_digest(const struct fwd_steer *st, const struct hparams *hp, uint8_t out[32], struct hearth_err *err);

#endif /* HEARTH_CVEC_H */
