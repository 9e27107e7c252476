/* trainer.h - what the library's other training files read of a trainer
 * (the object itself: trainer.c; its API: hearth.h). */
#ifndef HEARTH_TRAINER_H
#define HEARTH_TRAINER_H

#include "hearth.h"

const struct hearth_model *trainer_model(const struct hearth_trainer *t);
int32_t trainer_n_ctx(const struct hearth_trainer *t); /* most tokens of a pass */

#endif /* HEARTH_TRAINER_H */
