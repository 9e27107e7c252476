/* test-state-steer.c - a saved state records the steering its rows were
 * computed under (format version 3: a digest, all zero when unsteered); a
 * context or a scheduler request restores a state
 * only when steered alike, in both directions; and restoring it so gives the
 * continuation that computing the prompt steered gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

#define MODEL "models/stories260K.f32.gguf"
#define N_PROMPT 20
#define N_GEN 6

static struct hearth_cvec *make_cvec(struct hearth_model *m)
{
	struct hearth_err err = { 0 };
	struct hearth_cvec *cv = NULL;
	const int32_t E = hearth_model_n_embd(m);
	float *dir = malloc((size_t)E * sizeof *dir);
	T_OK(hearth_cvec_new(&cv, m, &err), err);
	for (int32_t il = 1; cv && dir && il < hearth_model_n_layer(m); il++) {
		for (int32_t j = 0; j < E; j++)
			dir[j] = (float)((il * 31 + j * 17) % 13) / 13.0f - 0.5f;
		T_OK(hearth_cvec_add(cv, il, dir, 1.0f, &err), err);
	}
	free(dir);
	return cv;
}

/* Runs prompt (n tokens) on a scheduler request, greedy, steered by st, seeded with seed (taken); its
 * tokens into out (*n_out), its saved state into *saved when asked. The submit's code. */
static int run(struct hearth_sched *s, const int32_t *prompt, int32_t n, const struct hearth_steering *st,
	       struct hearth_state *seed, int32_t *out, int32_t *n_out, struct hearth_state **saved, struct hearth_err *err)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_request *r = NULL;
	struct hearth_token_event ev;
	p.prompt = prompt;
	p.n_prompt = n;
	p.max_tokens = saved ? 0 : N_GEN;
	p.sampling.temp = 0;
	p.ignore_eos = true;
	p.prefix_state = seed;
	p.save_state = saved != NULL;
	if (st)
		p.steering = *st;
	*n_out = 0;
	int rc = hearth_sched_submit(s, &p, &r, err);
	if (rc) {
		hearth_state_free(seed);
		return rc;
	}
	while (hearth_request_next(r, &ev, 20000) == 0)
		if (ev.id >= 0 && *n_out < N_GEN)
			out[(*n_out)++] = ev.id;
	if (saved)
		*saved = hearth_request_take_state(r);
	hearth_request_free(r);
	return 0;
}

static int file_version(const char *path)
{
	unsigned char h[12] = { 0 };
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(h, 1, sizeof h, f) : 0;
	if (f)
		fclose(f);
	return n == sizeof h ? h[8] : -1;
}

void test_state_steering(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_cvec *cv = NULL;
	struct hearth_sched *s = NULL;
	struct hearth_state *steered = NULL, *plain = NULL, *rd = NULL;
	int32_t q[N_PROMPT + 8], want[N_GEN], got[N_GEN], n_want = 0, n_got = 0;
	T_OK(hearth_model_load(&m, fixture(MODEL), &mp, &err), err);
	if (!m || !(cv = make_cvec(m)))
		goto out;
	const struct hearth_steering st = { .cvec = cv, .strength = 2.0f }, st2 = { .cvec = cv, .strength = 3.0f };
	for (int i = 0; i < N_PROMPT + 8; i++)
		q[i] = 1 + (i * 37 + 5) % (hearth_model_n_vocab(m) - 1);
	sp.n_ctx = 256;
	sp.n_ctx_seq = 128;
	sp.n_threads = 2;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	if (!s)
		goto out;
	/* saved steered and unsteered: versions 2 and 1, each checks against its own steering only */
	T_OK(run(s, q, N_PROMPT, &st, NULL, got, &n_got, &steered, &err), err);
	T_OK(run(s, q, N_PROMPT, NULL, NULL, got, &n_got, &plain, &err), err);
	T_TRUE(steered && plain);
	if (!steered || !plain)
		goto out;
	T_OK(hearth_state_check_steering(steered, m, &st, &err), err);
	T_EQ_I64(hearth_state_check_steering(steered, m, NULL, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "computed steered") != NULL);
	T_EQ_I64(hearth_state_check_steering(steered, m, &st2, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "other steering") != NULL);
	T_OK(hearth_state_check_steering(plain, m, NULL, &err), err);
	T_OK(hearth_state_check_steering(plain, m, &(struct hearth_steering){ .cvec = cv, .strength = 0 }, &err), err);
	T_EQ_I64(hearth_state_check_steering(plain, m, &st, &err), HEARTH_EINVAL);
	T_TRUE(strstr(err.msg, "computed unsteered") != NULL);
	T_OK(hearth_state_write(steered, tmp_path("steered.state"), &err), err);
	T_OK(hearth_state_write(plain, tmp_path("plain.state"), &err), err);
	/* one format for both: the digest's place is all zero in an unsteered state */
	T_EQ_I64(file_version(tmp_path("steered.state")), 3);
	T_EQ_I64(file_version(tmp_path("plain.state")), 3);
	T_EQ_I64(hearth_state_size(steered), hearth_state_size(plain));
	T_OK(hearth_state_read(&rd, tmp_path("steered.state"), &err), err);
	if (rd)
		T_OK(hearth_state_check_steering(rd, m, &st, &err), err);
	/* a scheduler request restores a state only when steered alike, in both directions */
	T_EQ_I64(run(s, q, N_PROMPT + 8, NULL, rd, got, &n_got, NULL, &err), HEARTH_EINVAL);
	rd = NULL;
	T_OK(hearth_state_read(&rd, tmp_path("plain.state"), &err), err);
	T_EQ_I64(run(s, q, N_PROMPT + 8, &st, rd, got, &n_got, NULL, &err), HEARTH_EINVAL);
	rd = NULL;
	/* steered alike: the continuation computing the prompt steered gives */
	T_OK(run(s, q, N_PROMPT + 8, &st, NULL, want, &n_want, NULL, &err), err);
	T_OK(hearth_state_read(&rd, tmp_path("steered.state"), &err), err);
	T_OK(run(s, q, N_PROMPT + 8, &st, rd, got, &n_got, NULL, &err), err);
	rd = NULL;
	T_EQ_I64(n_got, N_GEN);
	T_TRUE(n_got == n_want && !memcmp(got, want, sizeof want));
	/* a file cut inside its steering digest is refused */
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "head -c 130 %s > %s", tmp_path("steered.state"), tmp_path("cut2.state"));
	T_EQ_I64(system(cmd), 0);
	T_EQ_I64(hearth_state_read(&rd, tmp_path("cut2.state"), &err), HEARTH_EINVAL);
	/* a context: its state records its steering, and takes back only a state steered alike */
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_context *c = NULL;
	struct hearth_state *cs = NULL;
	cp.n_ctx = 64;
	cp.n_threads = 2;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (c) {
		T_OK(hearth_context_set_steering(c, &st, &err), err);
		T_OK(hearth_decode(c, q, N_PROMPT, false, &err), err);
		T_OK(hearth_context_state_get(c, &cs, &err), err);
		if (cs)
			T_OK(hearth_state_check_steering(cs, m, &st, &err), err);
		T_EQ_I64(hearth_context_state_set(c, plain, &err), HEARTH_EINVAL);
		T_OK(hearth_context_set_steering(c, NULL, &err), err);
		T_EQ_I64(hearth_context_state_set(c, cs, &err), HEARTH_EINVAL);
		T_OK(hearth_context_state_set(c, plain, &err), err);
	}
	hearth_state_free(cs);
	hearth_context_free(c);
out:
	hearth_state_free(rd);
	hearth_state_free(steered);
	hearth_state_free(plain);
	hearth_sched_free(s);
	hearth_cvec_free(cv);
	hearth_model_free(m);
}
