/* attribute.c - per-prompt-token attribution of a completion's
 * log-probability (hearth_attribute in hearth.h), on the trainer's pass.
 *
 * The pass reads prompt ++ completion without its last token; position i
 * (n_prompt - 1 <= i) is labelled with token i + 1, so the pass's mean loss
 * times the completion's length is -log p(completion | prompt), and its
 * embedding gradient times -n_completion is the gradient of the
 * log-probability. Gradient x input is one pass; integrated gradients are
 * n_steps passes along the path a * prompt from the zero embedding (a = 0)
 * to the prompt's (a = 1), at the midpoints of n_steps equal steps, each
 * scaling only the prompt's rows (the Riemann sum of Sundararajan et al.).
 *
 * How close the scores' sum comes to log p - log p(zero prompt) depends on
 * the steps resolving the path's start: a row a e keeps e's RMS norm until
 * a |e| nears the norm's epsilon, so much of the change can happen for a
 * below a few thousandths (a synthetic llama: 2.07 of 3.43 below a = 0.005),
 * where equal steps are too coarse. The sum is then not the change; each
 * step's gradient is exact (tests: test-train-model.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../kern/kern.h"
#include "../model/model.h"
#include "../tensor/qtype.h"
#include "trainer.h"

#define ATTR_MAX_STEPS 1024

struct attr_pass {
	struct hearth_trainer *t;
	struct hearth_train_batch b;
	float *embd, *x, *grad; /* [n][E]: the inputs as looked up, scaled, their gradient */
	int64_t E;
	int32_t n_prompt, n_completion;
};

/* One pass with the prompt's rows scaled by alpha: *logprob, and the
 * log-probability's gradient in p->grad. */
static int attr_run(struct attr_pass *p, float alpha, double *logprob, struct hearth_err *err)
{
	const size_t np = (size_t)p->n_prompt * (size_t)p->E, all = (size_t)p->b.n * (size_t)p->E;
	double loss = 0;
	for (size_t j = 0; j < all; j++)
		p->x[j] = j < np ? alpha * p->embd[j] : p->embd[j];
	int rc = hearth_trainer_run(p->t, &p->b, true, &loss, p->grad, err);
	if (rc)
		return rc;
	for (size_t j = 0; j < np; j++)
		p->grad[j] *= -(float)p->n_completion;
	*logprob = -loss * p->n_completion;
	return 0;
}

static int check_args(const struct hearth_model *m, const int32_t *prompt, int32_t n_prompt, const int32_t *completion,
		      int32_t n_completion, int32_t n_steps, struct hearth_err *err)
{
	if (!prompt || !completion || n_prompt < 1 || n_completion < 1 || n_prompt > INT32_MAX - n_completion)
		return err_set(err, HEARTH_EINVAL, "attribute: %d prompt and %d completion tokens (at least one each)", n_prompt,
			       n_completion);
	if (n_steps < 0 || n_steps > ATTR_MAX_STEPS)
		return err_set(err, HEARTH_EINVAL, "attribute: n_steps %d is outside 0..%d", n_steps, ATTR_MAX_STEPS);
	for (int32_t i = 0; i < n_prompt + n_completion; i++) {
		const int32_t id = i < n_prompt ? prompt[i] : completion[i - n_prompt];
		if (id < 0 || id >= m->hp.n_vocab)
			return err_set(err, HEARTH_EINVAL, "attribute: token %d is outside the vocabulary (%d)", id, m->hp.n_vocab);
	}
	return 0;
}

int hearth_attribute(struct hearth_trainer *t, const int32_t *prompt, int32_t n_prompt, const int32_t *completion,
		     int32_t n_completion, int32_t n_steps, float *scores, double *logprob, struct hearth_err *err)
{
	const struct hearth_model *m = trainer_model(t);
	int rc = check_args(m, prompt, n_prompt, completion, n_completion, n_steps, err);
	if (rc)
		return rc;
	const int32_t n = n_prompt + n_completion - 1;
	if (n > trainer_n_ctx(t))
		return err_set(err, HEARTH_EINVAL, "attribute: %d tokens exceed the trainer's n_ctx %d", n, trainer_n_ctx(t));
	struct attr_pass p = { .t = t, .E = m->hp.n_embd, .n_prompt = n_prompt, .n_completion = n_completion };
	const size_t all = (size_t)n * (size_t)p.E;
	int32_t *ids = malloc(2 * (size_t)n * sizeof *ids);
	p.embd = malloc(3 * all * sizeof(float));
	double *acc = calloc((size_t)n_prompt * (size_t)p.E, sizeof *acc);
	if (!ids || !p.embd || !acc) {
		rc = err_set(err, HEARTH_ENOMEM, "attribute: out of memory for %d tokens", n);
		goto out;
	}
	p.x = p.embd + all;
	p.grad = p.x + all;
	for (int32_t i = 0; i < n; i++) {
		ids[i] = i < n_prompt ? prompt[i] : completion[i - n_prompt];
		ids[n + i] = i >= n_prompt - 1 ? completion[i - n_prompt + 1] : -1;
		kern_ops(m->tok_embd.type)->to_float((const char *)m->tok_embd.data +
							     (size_t)ids[i] * qtype_row_size(m->tok_embd.type, p.E),
						     p.embd + (size_t)i * (size_t)p.E, p.E);
	}
	p.b = (struct hearth_train_batch){ .n = n, .tokens = ids, .labels = ids + n, .embd = p.x };
	double lp = 0, lp_k;
	if ((rc = attr_run(&p, 1.0f, &lp, err)))
		goto out;
	for (int32_t k = 1; k <= n_steps; k++) { /* the midpoints of n_steps equal steps */
		if ((rc = attr_run(&p, (float)(((double)k - 0.5) / n_steps), &lp_k, err)))
			goto out;
		for (size_t j = 0; j < (size_t)n_prompt * (size_t)p.E; j++)
			acc[j] += p.grad[j];
	}
	for (int32_t i = 0; i < n_prompt; i++) {
		double s = 0;
		for (int64_t j = 0; j < p.E; j++) {
			const size_t at = (size_t)i * (size_t)p.E + (size_t)j;
			s += (double)p.embd[at] * (n_steps ? acc[at] / n_steps : p.grad[at]);
		}
		scores[i] = (float)s;
	}
	if (logprob)
		*logprob = lp;
out:
	free(ids);
	free(p.embd);
	free(acc);
	return rc;
}
