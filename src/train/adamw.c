/* adamw.c - see adamw.h. */
#include "adamw.h"

#include <math.h>

struct adamw adamw_default(void) { return (struct adamw){ 0.9f, 0.999f, 1e-8f, 0.01f }; }

void adamw_step(const struct adamw *o, int64_t t, float lr, float *w, const float *g, float *m, float *v, size_t n)
{
	/* bias corrections of the moments' zero start */
	const float c1 = 1.0f / (1.0f - powf(o->beta1, (float)t));
	const float c2 = 1.0f / (1.0f - powf(o->beta2, (float)t));
	const float decay = 1.0f - lr * o->weight_decay;
	for (size_t i = 0; i < n; i++) {
		m[i] = o->beta1 * m[i] + (1.0f - o->beta1) * g[i];
		v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g[i] * g[i];
		w[i] = w[i] * decay - lr * (m[i] * c1) / (sqrtf(v[i] * c2) + o->eps);
	}
}

float lr_at(float lr, int64_t t, int64_t warmup, int64_t total, float min_ratio)
{
	if (t < 1)
		t = 1;
	if (warmup > 0 && t <= warmup)
		return lr * (float)t / (float)warmup;
	if (total <= warmup || t >= total)
		return total <= warmup ? lr : lr * min_ratio;
	const double progress = (double)(t - warmup) / (double)(total - warmup);
	const double cosine = 0.5 * (1.0 + cos(M_PI * progress));
	return lr * (float)(min_ratio + (1.0 - min_ratio) * cosine);
}
