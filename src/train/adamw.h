/* adamw.h - the AdamW optimizer (decoupled weight decay) and the learning-rate
 * schedule fine-tuning uses: linear warm-up, then cosine decay to a floor.
 *
 * Moments live beside the parameters (m, v: same length, zero at step 0);
 * step counts from 1. The update is element-wise, so callers may split the
 * parameters among threads. */
#ifndef HEARTH_ADAMW_H
#define HEARTH_ADAMW_H

#include <stddef.h>
#include <stdint.h>

struct adamw {
	float beta1, beta2, eps, weight_decay;
};

/* Defaults: beta1 0.9, beta2 0.999, eps 1e-8, weight decay 0.01 (PyTorch's AdamW). */
struct adamw adamw_default(void);

/* One step t >= 1 at learning rate lr over n parameters w with gradients g. */
void adamw_step(const struct adamw *o, int64_t t, float lr, float *w, const float *g, float *m, float *v, size_t n);

/* The learning rate of step t (1-based) of total: lr * t / warmup during the
 * warm-up, then cosine from lr down to lr * min_ratio at step total. */
float lr_at(float lr, int64_t t, int64_t warmup, int64_t total, float min_ratio);

#endif /* HEARTH_ADAMW_H */
