/*
 * kld-stats.c - how far a model's next-token distributions are from a base
 * model's (read from a base file, see kld-file.c), the statistics and the
 * printout of llama-perplexity --kl-divergence, computed with its float and
 * double roundings so that the numbers agree with it:
 *
 *   per scored position, with p the model's softmax, b the base's (as stored),
 *   t the token that follows:
 *     KLD     = sum over tokens with log b > -16 of b (log b - log p)
 *     nll     = -log p[t], nll_base = -log b[t], Δp = p[t] - b[t]
 *     same top: the model's most likely token is the base's
 *   over all positions: means with their uncertainty, the correlation of the
 *   two log-perplexities, ln(PPL(Q)/PPL(base)) and its ratio, the percentiles
 *   of KLD and Δp, RMS Δp and the share of same top tokens.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kld.h"

int kld_stats_init(struct kld_stats *s, size_t n, struct hearth_err *err)
{
	memset(s, 0, sizeof *s);
	s->kld_values = malloc((n ? n : 1) * sizeof *s->kld_values);
	s->p_diff_values = malloc((n ? n : 1) * sizeof *s->p_diff_values);
	if (!s->kld_values || !s->p_diff_values) {
		kld_stats_free(s);
		snprintf(err->msg, sizeof err->msg, "out of memory for the statistics of %zu positions", n);
		return err->code = HEARTH_ENOMEM;
	}
	s->cap = n;
	return 0;
}

void kld_stats_free(struct kld_stats *s)
{
	free(s->kld_values);
	free(s->p_diff_values);
	s->kld_values = s->p_diff_values = NULL;
}

void kld_stats_add(struct kld_stats *s, const float *logits, int32_t n_vocab, const uint16_t *row, int32_t tok)
{
	float max = logits[0], scale, min_log_prob;
	int32_t imax = 0;
	for (int32_t i = 1; i < n_vocab; i++)
		if (logits[i] > max) {
			max = logits[i];
			imax = i;
		}
	double sum_exp = 0;
	for (int32_t i = 0; i < n_vocab; i++)
		sum_exp += expf(logits[i] - max);
	const float log_sum = (float)log(sum_exp);
	memcpy(&scale, row, sizeof scale);
	memcpy(&min_log_prob, row + 2, sizeof min_log_prob);
	const uint16_t *q = row + 4;

	const float nll = max + log_sum - logits[tok];
	const float nll_base = -(scale * q[tok] + min_log_prob);
	s->sum_nll += nll;
	s->sum_nll2 += nll * nll;
	s->sum_nll_base += nll_base;
	s->sum_nll_base2 += nll_base * nll_base;
	s->sum_nll_nll_base += nll * nll_base;

	const float log_norm = max + log_sum; /* log p[i] = logits[i] - log_norm */
	double kld = 0;
	int32_t imax_base = 0;
	float lb_max = 0;
	for (int32_t i = 0; i < n_vocab; i++) {
		const float lb = scale * q[i] + min_log_prob;
		if (i == 0 || lb > lb_max) {
			lb_max = lb;
			imax_base = i;
		}
		if (lb > -16.f)
			kld += expf(lb) * (lb - logits[i] + log_norm);
	}
	s->sum_kld += kld;
	s->sum_kld2 += kld * kld;
	s->n_same_top += imax == imax_base;

	const float p_diff = expf(-nll) - expf(-nll_base);
	const double p_diff2 = p_diff * p_diff;
	s->sum_p_diff += p_diff;
	s->sum_p_diff2 += p_diff2;
	s->sum_p_diff4 += p_diff2 * p_diff2;
	s->max_p_diff = fabsf(p_diff) > s->max_p_diff ? fabsf(p_diff) : s->max_p_diff;
	if (s->count < s->cap) {
		s->kld_values[s->count] = (float)kld;
		s->p_diff_values[s->count] = p_diff;
	}
	s->count++;
}

/* The mean of values whose sum and sum of squares are given, and the
 * uncertainty of that mean (0 with ten values or fewer). */
struct mean_unc {
	double mean, unc;
};

static struct mean_unc mean_unc(double sum, double sum2, size_t n)
{
	if (n < 1)
		return (struct mean_unc){ 0, 0 };
	const double f = sum / (double)n, v = sum2 / (double)n - f * f;
	return (struct mean_unc){ f, v > 0 && n > 10 ? sqrt(v / (double)(n - 1)) : 0 };
}

/* Covariance of the means of a and b (0 under ten values). */
static double covariance(double sa, double sb, double sab, size_t n)
{
	if (n < 10)
		return 0;
	return (sab / (double)n - (sa / (double)n) * (sb / (double)n)) / (double)(n - 1);
}

/* The root of a variance that rounding may have made slightly negative (two
 * almost identical models): llama-perplexity prints -nan there, hearth 0. */
static double sqrt_pos(double v)
{
	return v > 0 ? sqrt(v) : 0;
}

/* ln(PPL(Q)/PPL(base)) and its uncertainty, given both log-perplexities. */
static struct mean_unc log_ratio(const struct kld_stats *s, struct mean_unc q, struct mean_unc b)
{
	const double cov = covariance(s->sum_nll, s->sum_nll_base, s->sum_nll_nll_base, s->count);
	return (struct mean_unc){ q.mean - b.mean, sqrt_pos(q.unc * q.unc + b.unc * b.unc - 2.0 * cov) };
}

void kld_stats_print_head(FILE *out)
{
	fprintf(out, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              "
		     "\xce\x94p RMS            Same top p\n");
}

void kld_stats_print_chunk(const struct kld_stats *s, FILE *out, int k)
{
	const struct mean_unc q = mean_unc(s->sum_nll, s->sum_nll2, s->count);
	const struct mean_unc b = mean_unc(s->sum_nll_base, s->sum_nll_base2, s->count);
	const struct mean_unc r = log_ratio(s, q, b), kl = mean_unc(s->sum_kld, s->sum_kld2, s->count);
	const struct mean_unc mse = mean_unc(s->sum_p_diff2, s->sum_p_diff4, s->count);
	const double rms = sqrt(mse.mean), top = (double)s->n_same_top / (double)s->count;
	fprintf(out, "%4d", k);
	fprintf(out, "    %9.4f \xc2\xb1 %9.4f", exp(q.mean), exp(q.mean) * q.unc);
	fprintf(out, "    %10.5f \xc2\xb1 %10.5f", r.mean, r.unc);
	fprintf(out, "    %10.5f \xc2\xb1 %10.5f", kl.mean, kl.unc);
	fprintf(out, "    %6.3f \xc2\xb1 %6.3f %%", 100.0 * rms, 100.0 * (0.5 / rms * mse.unc));
	fprintf(out, "    %6.3f \xc2\xb1 %6.3f %%\n", 100.0 * top, 100.0 * sqrt(top * (1 - top) / (double)(s->count - 1)));
}

static int cmp_float(const void *a, const void *b)
{
	const float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* The value at fraction f of sorted values, interpolated linearly. */
static float percentile(const float *v, size_t n, float f)
{
	if (f <= 0)
		return v[0];
	if (f >= 1)
		return v[n - 1];
	float p = f * (float)(n - 1);
	const size_t ip = (size_t)p;
	p -= (float)ip;
	return (1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1];
}

static float median(const float *v, size_t n)
{
	return n % 2 == 0 ? 0.5f * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

static void print_ppl(const struct kld_stats *s, FILE *out)
{
	const struct mean_unc q = mean_unc(s->sum_nll, s->sum_nll2, s->count);
	const struct mean_unc b = mean_unc(s->sum_nll_base, s->sum_nll_base2, s->count);
	const double cov = covariance(s->sum_nll, s->sum_nll_base, s->sum_nll_nll_base, s->count);
	const double ppl = exp(q.mean), ppl_unc = ppl * q.unc, base = exp(b.mean), base_unc = base * b.unc;
	const struct mean_unc r = log_ratio(s, q, b);
	fprintf(out, "====== Perplexity statistics ======\n");
	fprintf(out, "Mean PPL(Q)                   : %10.6f \xc2\xb1 %10.6f\n", ppl, ppl_unc);
	fprintf(out, "Mean PPL(base)                : %10.6f \xc2\xb1 %10.6f\n", base, base_unc);
	fprintf(out, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * (cov / (q.unc * b.unc)));
	fprintf(out, "Mean ln(PPL(Q)/PPL(base))     : %10.6f \xc2\xb1 %10.6f\n", r.mean, r.unc);
	fprintf(out, "Mean PPL(Q)/PPL(base)         : %10.6f \xc2\xb1 %10.6f\n", exp(r.mean), exp(r.mean) * r.unc);
	fprintf(out, "Mean PPL(Q)-PPL(base)         : %10.6f \xc2\xb1 %10.6f\n", ppl - base,
		sqrt_pos(ppl_unc * ppl_unc + base_unc * base_unc - 2.0 * (ppl * base * cov)));
	fprintf(out, "\n");
}

static void print_kld(const struct kld_stats *s, FILE *out)
{
	static const struct {
		const char *label;
		float f;
	} pct[] = { { "99.9%  ", 0.999f }, { "99.0%  ", 0.990f }, { "95.0%  ", 0.950f }, { "90.0%  ", 0.900f },
		    { "Median ", -1 },     { "10.0%  ", 0.100f }, { " 5.0%  ", 0.050f }, { " 1.0%  ", 0.010f },
		    { " 0.1%  ", 0.001f } };
	const float *v = s->kld_values;
	const size_t n = s->count;
	const struct mean_unc kl = mean_unc(s->sum_kld, s->sum_kld2, n);
	fprintf(out, "====== KL divergence statistics ======\n");
	fprintf(out, "Mean    KLD: %10.6f \xc2\xb1 %10.6f\n", kl.mean, kl.unc);
	fprintf(out, "Maximum KLD: %10.6f\n", (double)v[n - 1]);
	for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++)
		fprintf(out, "%s KLD: %10.6f\n", pct[i].label,
			(double)(pct[i].f < 0 ? median(v, n) : percentile(v, n, pct[i].f)));
	fprintf(out, "Minimum KLD: %10.6f\n", (double)v[0]);
	fprintf(out, "\n");
}

static void print_p_diff(const struct kld_stats *s, FILE *out)
{
	static const struct {
		const char *label;
		float f;
	} pct[] = { { "99.9%  ", 0.999f }, { "99.0%  ", 0.990f }, { "95.0%  ", 0.950f }, { "90.0%  ", 0.900f },
		    { "75.0%  ", 0.750f }, { "Median ", -1 },     { "25.0%  ", 0.250f }, { "10.0%  ", 0.100f },
		    { " 5.0%  ", 0.050f }, { " 1.0%  ", 0.010f }, { " 0.1%  ", 0.001f } };
	const float *v = s->p_diff_values;
	const size_t n = s->count;
	const struct mean_unc d = mean_unc(s->sum_p_diff, s->sum_p_diff2, n);
	const struct mean_unc mse = mean_unc(s->sum_p_diff2, s->sum_p_diff4, n);
	const double rms = sqrt(mse.mean), top = (double)s->n_same_top / (double)n;
	fprintf(out, "====== Token probability statistics ======\n");
	fprintf(out, "Mean    \xce\x94p: %6.3f \xc2\xb1 %5.3f %%\n", 100.0 * d.mean, 100.0 * d.unc);
	fprintf(out, "Maximum \xce\x94p: %6.3f%%\n", 100.0 * v[n - 1]);
	for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++)
		fprintf(out, "%s \xce\x94p: %6.3f%%\n", pct[i].label,
			100.0 * (pct[i].f < 0 ? median(v, n) : percentile(v, n, pct[i].f)));
	fprintf(out, "Minimum \xce\x94p: %6.3f%%\n", 100.0 * v[0]);
	fprintf(out, "RMS \xce\x94p    : %6.3f \xc2\xb1 %5.3f %%\n", 100.0 * rms, 100.0 * (0.5 / rms * mse.unc));
	fprintf(out, "Same top p: %6.3f \xc2\xb1 %5.3f %%\n", 100.0 * top, 100.0 * sqrt(top * (1.0 - top) / (double)(n - 1)));
}

bool kld_stats_print(struct kld_stats *s, FILE *out)
{
	if (s->count < 100 || s->count > s->cap) /* too few to say much, as llama-perplexity judges */
		return false;
	qsort(s->kld_values, s->count, sizeof *s->kld_values, cmp_float);
	qsort(s->p_diff_values, s->count, sizeof *s->p_diff_values, cmp_float);
	print_ppl(s, out);
	print_kld(s, out);
	print_p_diff(s, out);
	return true;
}
