/* test-train-stop.c - a trainer's stop check (hearth_trainer_set_stop):
 * the pass ends with HEARTH_ESHUTDOWN at the layer the check asks, in the
 * forward or the backward, and the trainer then runs as before (the same
 * loss and gradients bit for bit); hearth_attribute passes the stop on. */
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

struct stop_count {
	int calls, stop_at; /* the check returns 1 on call stop_at (1-based), and after */
};

static int stop_after(void *data)
{
	struct stop_count *c = data;
	return ++c->calls >= c->stop_at;
}

/* A pass's loss and the first adapter's A gradient (n floats into ga). */
static int pass(struct hearth_trainer *t, const struct hearth_train_batch *b, double *loss, float *ga, size_t n,
		struct hearth_err *err)
{
	hearth_trainer_zero_grad(t);
	int rc = hearth_trainer_run(t, b, true, loss, NULL, err);
	struct hearth_lora_tensor lt;
	hearth_trainer_lora(t, 0, &lt);
	memcpy(ga, lt.grad_a, n * sizeof *ga);
	return rc;
}

void test_train_stop(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_trainer_params tp = hearth_trainer_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_trainer *t = NULL;
	T_OK(hearth_model_load(&m, fixture("models/tiny-qwen2.f32.gguf"), &mp, &err), err);
	tp.n_ctx = 16;
	tp.n_threads = 1;
	T_OK(hearth_trainer_new(&t, m, &tp, &err), err);
	if (!t) {
		hearth_model_free(m);
		return;
	}
	const int32_t L = hearth_model_n_layer(m);
	const int32_t toks[6] = { 1925, 346, 705, 263, 264, 882 }, labels[6] = { 346, 705, 263, 264, 882, 1052 };
	const struct hearth_train_batch b = { .n = 6, .tokens = toks, .labels = labels };
	struct hearth_lora_tensor lt;
	hearth_trainer_lora(t, 0, &lt);
	const size_t n = (size_t)lt.rank * (size_t)lt.n_in;
	float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1);
	double l0 = 0, l1 = 0;
	T_OK(pass(t, &b, &l0, g0, n, &err), err);

	/* stop before the second layer of the forward, then before the last layer of the backward */
	const int at[2] = { 2, L + 1 };
	for (int k = 0; k < 2; k++) {
		struct stop_count c = { 0, at[k] };
		hearth_trainer_set_stop(t, stop_after, &c);
		T_EQ_I64(pass(t, &b, &l1, g1, n, &err), HEARTH_ESHUTDOWN);
		T_EQ_I64(c.calls, at[k]);
		T_TRUE(strstr(err.msg, k ? "backward" : "forward") != NULL);
		hearth_trainer_set_stop(t, NULL, NULL);
		T_OK(pass(t, &b, &l1, g1, n, &err), err);
		T_TRUE(l1 == l0);
		T_TRUE(memcmp(g0, g1, n * sizeof *g0) == 0);
	}
	/* a check that never stops: every layer asked, twice (forward, backward) */
	struct stop_count never = { 0, 1 << 30 };
	hearth_trainer_set_stop(t, stop_after, &never);
	T_OK(pass(t, &b, &l1, g1, n, &err), err);
	T_EQ_I64(never.calls, 2 * L);
	T_TRUE(l1 == l0);

	/* attribution: integrated gradients of 8 steps stop in their third pass */
	float scores[4];
	struct stop_count c = { 0, 2 * (2 * L) + 1 };
	hearth_trainer_set_stop(t, stop_after, &c);
	T_EQ_I64(hearth_attribute(t, toks, 4, toks + 4, 2, 8, scores, NULL, &err), HEARTH_ESHUTDOWN);
	T_EQ_I64(c.calls, 4 * L + 1);
	free(g0);
	free(g1);
	hearth_trainer_free(t);
	hearth_model_free(m);
}
