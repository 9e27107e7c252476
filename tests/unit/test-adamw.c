/* test-adamw.c - AdamW against a double-precision transcription of its
 * definition (Loshchilov & Hutter, PyTorch's torch.optim.AdamW), and the
 * warm-up + cosine learning-rate schedule at its landmarks. */
#include <math.h>

#include "../../src/train/adamw.h"
#include "../harness.h"

void test_adamw_step(void)
{
	const struct adamw o = adamw_default();
	float w[3] = { 0.5f, -1.0f, 2.0f }, m[3] = { 0 }, v[3] = { 0 };
	double wd[3] = { 0.5, -1.0, 2.0 }, md[3] = { 0 }, vd[3] = { 0 };
	for (int t = 1; t <= 5; t++) {
		const float g[3] = { 0.1f * (float)t, -0.3f, 1e-3f / (float)t };
		const float lr = 0.01f;
		adamw_step(&o, t, lr, w, g, m, v, 3);
		for (int i = 0; i < 3; i++) {
			wd[i] -= lr * o.weight_decay * wd[i];
			md[i] = o.beta1 * md[i] + (1 - o.beta1) * (double)g[i];
			vd[i] = o.beta2 * vd[i] + (1 - o.beta2) * (double)g[i] * g[i];
			const double mh = md[i] / (1 - pow(o.beta1, t)), vh = vd[i] / (1 - pow(o.beta2, t));
			wd[i] -= lr * mh / (sqrt(vh) + o.eps);
		}
	}
	for (int i = 0; i < 3; i++)
		T_TRUE(fabs(w[i] - wd[i]) < 1e-6);
	/* the first step moves each weight by about lr against its gradient's sign */
	float x = 1.0f, mx = 0, vx = 0, gx = 5.0f;
	struct adamw plain = o;
	plain.weight_decay = 0;
	adamw_step(&plain, 1, 0.1f, &x, &gx, &mx, &vx, 1);
	T_TRUE(fabs(x - 0.9) < 1e-6);
}

void test_adamw_schedule(void)
{
	T_TRUE(fabsf(lr_at(1.0f, 1, 10, 100, 0.1f) - 0.1f) < 1e-7f);
	T_TRUE(fabsf(lr_at(1.0f, 10, 10, 100, 0.1f) - 1.0f) < 1e-7f);
	T_TRUE(fabsf(lr_at(1.0f, 55, 10, 100, 0.1f) - 0.55f) < 1e-6f); /* half-way down the cosine */
	T_TRUE(fabsf(lr_at(1.0f, 100, 10, 100, 0.1f) - 0.1f) < 1e-7f);
	T_TRUE(fabsf(lr_at(1.0f, 200, 10, 100, 0.1f) - 0.1f) < 1e-7f);
	T_TRUE(fabsf(lr_at(2.0f, 5, 0, 0, 0.0f) - 2.0f) < 1e-7f); /* no schedule: constant */
	for (int t = 11; t < 100; t++)
		T_TRUE(lr_at(1.0f, t + 1, 10, 100, 0.0f) <= lr_at(1.0f, t, 10, 100, 0.0f));
}
