/* sampler.h - what the library and its tests see of the sampler beyond hearth.h. */
#ifndef HEARTH_SAMPLER_H
#define HEARTH_SAMPLER_H

#include <stddef.h>

#include "hearth.h"

/* The tokens s's top-k, min-p and top-p keep from logits (after its
 * penalties), in no particular order, into *kept (NULL: every token of the
 * vocabulary); returns how many. Valid until s is used again. */
size_t sampler_kept(struct hearth_sampler *s, const float *logits, const int32_t **kept);

#endif /* HEARTH_SAMPLER_H */
