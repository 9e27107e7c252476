/* blocks.c - see blocks.h. Sums that set a scale (the norm) accumulate in
 * double, and rotary angles advance by repeated float multiplication, as
 * llama.cpp's CPU backend does, so logits agree to float rounding. */
#include <math.h>

#include "blocks.h"

void block_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps)
{
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)x[i] * x[i];
	const float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void block_rope_cs(int32_t pos, int n_rot, const struct hparams *hp, const float *freq_factors, float *cs)
{
	const float theta_scale = powf(hp->rope_base, -2.0f / (float)n_rot);
	float theta = (float)pos;

	for (int i0 = 0; i0 < n_rot; i0 += 2) {
		const float ff = freq_factors ? freq_factors[i0 / 2] : 1.0f;
		const float t_extrap = theta / ff;
		float t = hp->rope_freq_scale * t_extrap, ms = hp->rope_attn_factor;
		if (hp->rope_ext_factor != 0.0f) { /* YaRN: low dimensions keep their angle */
			const float y = (float)(i0 / 2) - hp->yarn_corr[0], w = hp->yarn_corr[1] - hp->yarn_corr[0];
			const float r = y / (w > 0.001f ? w : 0.001f);
			const float mix = (1.0f - (r < 0 ? 0 : r > 1 ? 1 : r)) * hp->rope_ext_factor;
			t = t * (1.0f - mix) + t_extrap * mix;
			ms *= hp->yarn_mscale;
		}
		cs[i0] = cosf(t) * ms;
		cs[i0 + 1] = sinf(t) * ms;
		theta *= theta_scale;
	}
}

void block_rope(float *x, int n_heads, int head_dim, int n_rot, int32_t pos, const struct hparams *hp,
		const float *freq_factors)
{
	float cs[2 * 2048]; /* (cos, sin) per rotated pair; n_rot <= head_dim <= 4096 */
	block_rope_cs(pos, n_rot, hp, freq_factors, cs);
	for (int h = 0; h < n_heads; h++) {
		float *v = x + (int64_t)h * head_dim;
		for (int i0 = 0; i0 < n_rot; i0 += 2) {
			const int a = hp->rope_type == ROPE_NEOX ? i0 / 2 : i0;
			const int b = hp->rope_type == ROPE_NEOX ? i0 / 2 + n_rot / 2 : i0 + 1;
			const float x0 = v[a], x1 = v[b], c = cs[i0], s = cs[i0 + 1];
			v[a] = x0 * c - x1 * s;
			v[b] = x0 * s + x1 * c;
		}
	}
}

struct hparams block_layer_rope(const struct hearth_model *m, int il)
{
	const struct layer *l = &m->layers[il];
	struct hparams hl = m->hp;
	hl.rope_base = l->rope_base;
	hl.rope_freq_scale = l->rope_freq_scale;
	hl.yarn_corr[0] = l->yarn_corr[0];
	hl.yarn_corr[1] = l->yarn_corr[1];
	hl.yarn_mscale = l->yarn_mscale;
	return hl;
}

const float *block_rope_factors(const struct hearth_model *m, int64_t n_ctx_seq)
{
	if (m->rope_freqs.data)
		return m->rope_freqs.data;
	if (m->rope_long.data && n_ctx_seq > m->hp.n_ctx_orig)
		return m->rope_long.data;
	return m->rope_short.data;
}
