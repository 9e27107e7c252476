/* tloss.c - cross-entropy of log-softmax, and its gradient (see
 * train-ops.h). Per row, with m its largest logit and Z = sum_j exp(l_j - m):
 *
 *   loss = -(l_label - m - log Z)
 *   dl_j = weight (exp(l_j - m) / Z - [j == label])
 *
 * Rows are split over the threads; each row's loss lands in its own slot
 * and the slots are summed in row order.
 */
#include <math.h>
#include <stdlib.h>

#include "train-ops.h"

#define TLOSS_SLOTS 64 /* rows whose losses one call sums at a time */

struct tloss_task {
	const float *logits;
	const int32_t *labels;
	int r0, n;
	int64_t V;
	float weight;
	float *dlogits;
	double loss[TLOSS_SLOTS];
};

static double row_loss(const float *l, int32_t label, int64_t V, float weight, float *dl)
{
	float mx = -INFINITY;
	for (int64_t j = 0; j < V; j++)
		mx = l[j] > mx ? l[j] : mx;
	double z = 0;
	for (int64_t j = 0; j < V; j++)
		z += exp((double)l[j] - mx);
	const double loss = -((double)l[label] - mx - log(z));
	if (dl) {
		for (int64_t j = 0; j < V; j++)
			dl[j] = (float)(weight * (exp((double)l[j] - mx) / z));
		dl[label] -= weight;
	}
	return loss;
}

static void loss_run(void *arg, int ith, int nth)
{
	struct tloss_task *t = arg;
	for (int k = t->n * ith / nth; k < t->n * (ith + 1) / nth; k++) {
		const size_t o = (size_t)(t->r0 + k) * (size_t)t->V;
		t->loss[k] = row_loss(t->logits + o, t->labels[t->r0 + k], t->V, t->weight, t->dlogits ? t->dlogits + o : NULL);
	}
}

double tloss_forward_backward(struct pool *p, const float *logits, const int32_t *labels, int n, int64_t n_vocab,
			      float weight, float *dlogits)
{
	struct tloss_task t = { .logits = logits, .labels = labels, .V = n_vocab, .weight = weight, .dlogits = dlogits };
	double sum = 0;
	for (int r0 = 0; r0 < n; r0 += TLOSS_SLOTS) {
		t.r0 = r0;
		t.n = n - r0 < TLOSS_SLOTS ? n - r0 : TLOSS_SLOTS;
		train_run(p, loss_run, &t, 8 * (int64_t)t.n * n_vocab);
		for (int k = 0; k < t.n; k++)
			sum += t.loss[k];
	}
	return sum;
}
