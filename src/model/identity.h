/* identity.h - a model's identity: a digest that says whether saved state
 * (KV rows) computed by one model may be used by another. */
#ifndef HEARTH_IDENTITY_H
#define HEARTH_IDENTITY_H

#include <stdint.h>

#include "model.h"

#define IDENTITY_SIZE 32

/* SHA-256 over the architecture, the hyper-parameters, every tensor's name,
 * type and shape, and the first and last IDENTITY_SAMPLE bytes of every
 * tensor's data. HEARTH_ENOMEM or HEARTH_EUNSUPPORTED (no SHA-256). */
int identity_of_model(const struct hearth_model *m, uint8_t out[IDENTITY_SIZE], struct hearth_err *err);

#endif /* HEARTH_IDENTITY_H */
