/* test-sched.c - continuous batching: concurrent greedy requests give exactly
 * the tokens they give alone (also when the cache is too small and requests
 * are preempted), the prefix cache is used and does not change results and
 * is shared only between requests of one cache_salt, cancellation frees the
 * cache, and bad requests are refused. */
#include <stdlib.h>
#include <time.h>

#include "../harness.h"

enum { MAX_GEN = 24 };

struct run {
	int32_t ids[MAX_GEN + 1];
	int n;
	int finish;
};

/* A greedy request, with cache_salt set to salt unless it is NULL. */
static struct hearth_request *submit_salted(struct hearth_sched *s, const int32_t *prompt, int n, int max_tokens,
					    const char *salt)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_request *r = NULL;
	p.prompt = prompt;
	p.n_prompt = n;
	p.max_tokens = max_tokens;
	p.sampling.temp = 0;
	p.cache_salt = salt;
	p.cache_salt_size = salt ? strlen(salt) : 0;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

static struct hearth_request *submit(struct hearth_sched *s, const int32_t *prompt, int n, int max_tokens)
{
	return submit_salted(s, prompt, n, max_tokens, NULL);
}

static void collect(struct hearth_request *r, struct run *out)
{
	struct hearth_token_event ev;
	out->n = 0;
	out->finish = 0;
	while (r && hearth_request_next(r, &ev, 20000) == 0) {
		if (ev.id >= 0 && out->n < MAX_GEN + 1)
			out->ids[out->n++] = ev.id;
		if (ev.finish)
			out->finish = ev.finish;
	}
	hearth_request_free(r);
}

/* The same continuation from a plain single-sequence context with a cache of
 * cache_type. */
static void reference_cache(struct hearth_model *m, const int32_t *prompt, int n, int max_tokens, int cache_type,
			    struct run *out)
{
	struct hearth_context_params cp = hearth_context_default_params();
	cp.cache_type = cache_type;
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int V = hearth_model_n_vocab(m);
	cp.n_ctx = 256;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	out->n = 0;
	if (!c)
		return;
	T_OK(hearth_decode(c, prompt, n, false, &err), err);
	while (out->n < max_tokens) {
		const float *l = hearth_get_logits(c, -1);
		int32_t best = 0;
		for (int32_t i = 1; i < V; i++)
			if (l[i] > l[best])
				best = i;
		if (hearth_token_is_eog(m, best))
			break;
		out->ids[out->n++] = best;
		T_OK(hearth_decode(c, &best, 1, false, &err), err);
	}
	hearth_context_free(c);
}

static void reference(struct hearth_model *m, const int32_t *prompt, int n, int max_tokens, struct run *out)
{
	reference_cache(m, prompt, n, max_tokens, hearth_context_default_params().cache_type, out);
}

static bool same(const struct run *a, const struct run *b)
{
	return a->n == b->n && memcmp(a->ids, b->ids, (size_t)a->n * sizeof a->ids[0]) == 0;
}

/* Runs a request to its end; its cached prompt tokens (-1 when it produced nothing). */
static int32_t cached_run(struct hearth_request *r, struct run *out)
{
	struct hearth_token_event ev;
	int32_t cached = -1;
	out->n = 0;
	out->finish = 0;
	while (r && hearth_request_next(r, &ev, 20000) == 0) {
		cached = hearth_request_cached_tokens(r);
		if (ev.id >= 0 && out->n < MAX_GEN + 1)
			out->ids[out->n++] = ev.id;
		if (ev.finish)
			out->finish = ev.finish;
	}
	hearth_request_free(r);
	return cached;
}

void test_sched(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	const char *texts[] = {
		"Once upon a time", "Lily and Tom went to the park.", "The sun was hot.", "One day, a little bird",
		"Tom had a red ball. He", "Sue wanted to play with her friends in the garden, but",
	};
	enum { N = 6 };
	int32_t *prompts[N], n_prompt[N];
	struct run alone[N], together[N];

	/* the documented defaults: no logprobs, no length limit, the sampler's */
	struct hearth_request_params d = hearth_request_default_params();
	struct hearth_sampler_params sd = hearth_sampler_default_params();
	T_EQ_I64(d.top_logprobs, -1);
	T_EQ_I64(d.max_tokens, -1);
	T_TRUE(!d.prompt && d.n_prompt == 0 && !d.bias_ids && !d.bias && d.n_bias == 0 && !d.ignore_eos && d.timeout_s == 0);
	T_TRUE(d.sampling.temp == sd.temp && d.sampling.top_k == sd.top_k && d.sampling.top_p == sd.top_p &&
	       d.sampling.min_p == sd.min_p && d.sampling.repeat_last_n == sd.repeat_last_n && d.sampling.seed == sd.seed);

	T_OK(hearth_model_load(&m, fixture("models/stories260K.f32.gguf"), &mp, &err), err);
	if (!m)
		return;
	for (int i = 0; i < N; i++) {
		T_OK(hearth_tokenize(m, texts[i], strlen(texts[i]), true, false, &prompts[i], &n_prompt[i], &err), err);
		reference(m, prompts[i], n_prompt[i], MAX_GEN, &alone[i]);
	}

	/* roomy cache, then a cache so small that requests must be preempted */
	for (int pass = 0; pass < 2; pass++) {
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		struct hearth_request *r[N];
		sp.n_parallel = 4;
		sp.n_ctx_seq = 128;
		sp.n_ctx = pass == 0 ? 0 : 48;
		sp.block_size = 8;
		sp.n_batch = pass == 0 ? 512 : 7; /* small batches: prompts go in chunks */
		sp.n_threads = 2;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (!s)
			continue;
		for (int i = 0; i < N; i++)
			r[i] = submit(s, prompts[i], n_prompt[i], MAX_GEN);
		for (int i = 0; i < N; i++) {
			collect(r[i], &together[i]);
			if (!same(&together[i], &alone[i]))
				T_FAIL("pass %d, prompt %d: batched result differs from the one alone (%d vs %d tokens)", pass, i,
				       together[i].n, alone[i].n);
			T_TRUE(together[i].finish == HEARTH_FINISH_LENGTH || together[i].finish == HEARTH_FINISH_STOP);
		}
		struct hearth_sched_stats st;
		hearth_sched_stats(s, &st);
		T_TRUE(st.alive);
		T_TRUE(st.generation_tokens >= (uint64_t)N);
		hearth_sched_free(s);
	}

	/* prefix cache: the same long prompt again reports cached tokens, same output */
	struct hearth_sched_params sp = hearth_sched_default_params();
	struct hearth_sched *s = NULL;
	sp.n_ctx_seq = 256;
	sp.block_size = 8;
	sp.n_threads = 2;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	if (s) {
		const char *longp = "Once upon a time, there was a little girl named Lily. She loved to play outside "
				    "in the park with her friends and her dog.";
		int32_t *ids, n;
		struct run a, b, ref;
		T_OK(hearth_tokenize(m, longp, strlen(longp), true, false, &ids, &n, &err), err);
		reference(m, ids, n, 8, &ref);
		struct hearth_request *r1 = submit(s, ids, n, 8);
		collect(r1, &a);
		struct hearth_request *r2 = submit(s, ids, n, 8);
		struct hearth_token_event ev;
		T_OK(hearth_request_next(r2, &ev, 20000), err);
		int32_t cached = hearth_request_cached_tokens(r2);
		T_TRUE(cached >= 8 && cached < n && cached % 8 == 0);
		b.n = 1;
		b.ids[0] = ev.id;
		struct run rest;
		collect(r2, &rest);
		memcpy(b.ids + 1, rest.ids, (size_t)rest.n * sizeof rest.ids[0]);
		b.n += rest.n;
		T_TRUE(same(&a, &ref));
		T_TRUE(same(&b, &ref));
		struct hearth_sched_stats st;
		hearth_sched_stats(s, &st);
		T_TRUE(st.prefix_hits >= (uint64_t)cached);

		/* cache_salt: the same salt shares blocks, another salt or none does not */
		char salt[] = "key-1";
		struct run c;
		T_EQ_I64(cached_run(submit_salted(s, ids, n, 8, "key-1"), &c), 0); /* unsalted blocks only so far */
		T_TRUE(same(&c, &ref));
		struct hearth_request *rs = submit_salted(s, ids, n, 8, salt);
		memset(salt, 'x', 5); /* read at submit only */
		cached = cached_run(rs, &c);
		T_TRUE(cached >= 8 && cached % 8 == 0);
		T_TRUE(same(&c, &ref));
		T_EQ_I64(cached_run(submit_salted(s, ids, n, 8, "key-2"), &c), 0);
		T_TRUE(cached_run(submit_salted(s, ids, n, 8, "key-2"), &c) >= 8);
		const char *other = "The sun was hot and the little dog ran to the lake to drink some cold water.";
		int32_t *ids2, n2;
		T_OK(hearth_tokenize(m, other, strlen(other), true, false, &ids2, &n2, &err), err);
		T_TRUE(n2 > 8);
		T_EQ_I64(cached_run(submit_salted(s, ids2, n2, 4, "key-1"), &c), 0);
		T_EQ_I64(cached_run(submit(s, ids2, n2, 4), &c), 0); /* salted blocks only */
		T_TRUE(cached_run(submit(s, ids2, n2, 4), &c) >= 8);
		free(ids2);

		/* cancel: a long generation stops, and its blocks are free again */
		struct hearth_request *r3 = submit(s, ids, n, -1);
		T_OK(hearth_request_next(r3, &ev, 20000), err);
		hearth_request_cancel(r3);
		int finish = 0;
		while (hearth_request_next(r3, &ev, 20000) == 0)
			finish = ev.finish ? ev.finish : finish;
		T_EQ_I64(finish, HEARTH_FINISH_CANCELLED);
		hearth_request_free(r3);
		for (int k = 0; k < 100; k++) { /* stats refresh after the step */
			hearth_sched_stats(s, &st);
			if (st.n_running == 0 && st.n_blocks_used == 0)
				break;
			struct timespec ts = { 0, 10000000 };
			nanosleep(&ts, NULL);
		}
		T_EQ_I64(st.n_blocks_used, 0);

		/* refused: empty prompt, too long a prompt, bad token */
		struct hearth_request_params p = hearth_request_default_params();
		struct hearth_request *bad = NULL;
		T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_EINVAL);
		int32_t many[300] = { 0 };
		p.prompt = many;
		p.n_prompt = 300;
		T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_ETOOBIG);
		T_TRUE(strstr(err.msg, "maximum context length") != NULL);
		many[0] = 99999;
		p.n_prompt = 3;
		T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_EINVAL);
		many[0] = 0;
		p.cache_salt_size = 5; /* with no bytes */
		T_EQ_I64(hearth_sched_submit(s, &p, &bad, &err), HEARTH_EINVAL);
		T_TRUE(strstr(err.msg, "cache_salt") != NULL);
		p.cache_salt_size = 0;

		/* a deadline ends a request that would run on */
		struct hearth_request_params tp = hearth_request_default_params();
		struct hearth_request *late = NULL;
		tp.prompt = ids;
		tp.n_prompt = n;
		tp.ignore_eos = true;
		tp.timeout_s = 1e-6; /* expired before it can start */
		T_OK(hearth_sched_submit(s, &tp, &late, &err), err);
		finish = 0;
		while (late && hearth_request_next(late, &ev, 20000) == 0)
			finish = ev.finish ? ev.finish : finish;
		T_EQ_I64(finish, HEARTH_FINISH_TIMEOUT);
		hearth_request_free(late);

		/* requests freed while still queued or running end cleanly */
		for (int i = 0; i < 8; i++)
			hearth_request_free(submit(s, ids, n, 50));
		free(ids);
		hearth_sched_free(s);
	}

	/* a full queue refuses with EBUSY */
	sp = hearth_sched_default_params();
	sp.max_queue = 2;
	sp.n_parallel = 1;
	sp.n_threads = 1;
	T_OK(hearth_sched_new(&s, m, &sp, &err), err);
	if (s) {
		struct hearth_request *q[6];
		int busy = 0;
		for (int i = 0; i < 6; i++) {
			struct hearth_request_params p = hearth_request_default_params();
			p.prompt = prompts[0];
			p.n_prompt = n_prompt[0];
			p.max_tokens = 200;
			p.top_logprobs = 5;
			q[i] = NULL;
			if (hearth_sched_submit(s, &p, &q[i], &err) == HEARTH_EBUSY)
				busy++;
		}
		T_TRUE(busy >= 1);
		struct hearth_token_event ev;
		if (q[0] && hearth_request_next(q[0], &ev, 20000) == 0) {
			T_EQ_I64(ev.n_top, 5);
			T_TRUE(ev.logprob <= 0 && ev.top_logprobs[0] >= ev.top_logprobs[4]);
		}
		for (int i = 0; i < 6; i++)
			hearth_request_free(q[i]);
		hearth_sched_free(s); /* with requests still queued */
	}
	for (int i = 0; i < N; i++)
		free(prompts[i]);
	hearth_model_free(m);
}

/* A sampled request's tokens and logprobs. */
struct sampled {
	int32_t ids[MAX_GEN];
	float lp[MAX_GEN], top_lp[MAX_GEN][3];
	int32_t top[MAX_GEN][3];
	int n;
};

static struct hearth_request *submit_sampled(struct hearth_sched *s, const int32_t *prompt, int n, uint64_t seed)
{
	struct hearth_request_params p = hearth_request_default_params();
	struct hearth_err err = { 0 };
	struct hearth_request *r = NULL;
	p.prompt = prompt;
	p.n_prompt = n;
	p.max_tokens = MAX_GEN;
	p.sampling.temp = 1.1f;
	p.sampling.top_k = 0;
	p.sampling.top_p = 0.95f;
	p.sampling.min_p = 0;
	p.sampling.frequency_penalty = 0.3f;
	p.sampling.seed = seed;
	p.top_logprobs = 3;
	p.ignore_eos = true;
	T_OK(hearth_sched_submit(s, &p, &r, &err), err);
	return r;
}

static void collect_sampled(struct hearth_request *r, struct sampled *out)
{
	struct hearth_token_event ev;
	memset(out, 0, sizeof *out);
	while (r && hearth_request_next(r, &ev, 20000) == 0) {
		if (ev.id >= 0 && out->n < MAX_GEN) {
			out->ids[out->n] = ev.id;
			out->lp[out->n] = ev.logprob;
			for (int k = 0; k < 3 && k < ev.n_top; k++) {
				out->top[out->n][k] = ev.top_ids[k];
				out->top_lp[out->n][k] = ev.top_logprobs[k];
			}
			out->n++;
		}
		if (ev.finish)
			break;
	}
	hearth_request_free(r);
}

/* Sampled requests: for a seed, the same tokens and logprobs alone and in a
 * batch (where the rows are sampled in parallel), on the model at path. */
static void sched_sampled(const char *path)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	enum { N = 6 };
	const char *texts[N] = { "Once upon a time", "The dog", "Lily and Tom went to the park.", "One day",
				 "Sue wanted to play", "The sun was hot." };
	int32_t *prompts[N], n_prompt[N];
	struct sampled alone[N], together[N];
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	if (!m)
		return;
	for (int i = 0; i < N; i++)
		T_OK(hearth_tokenize(m, texts[i], strlen(texts[i]), true, false, &prompts[i], &n_prompt[i], &err), err);
	for (int pass = 0; pass < 2; pass++) {
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		sp.n_parallel = pass == 0 ? 1 : 4;
		sp.n_ctx_seq = 128;
		sp.n_threads = 2;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (!s)
			break;
		struct hearth_request *r[N];
		for (int i = 0; i < N; i++) {
			r[i] = submit_sampled(s, prompts[i], n_prompt[i], 1000 + (uint64_t)i);
			if (pass == 0)
				collect_sampled(r[i], &alone[i]);
		}
		for (int i = 0; pass == 1 && i < N; i++) {
			collect_sampled(r[i], &together[i]);
			T_EQ_I64(together[i].n, MAX_GEN);
			if (memcmp(&together[i], &alone[i], sizeof alone[i]))
				T_FAIL("%s prompt %d: sampled tokens or logprobs differ alone and batched", path, i);
		}
		hearth_sched_free(s);
	}
	for (int i = 0; i < N; i++)
		free(prompts[i]);
	hearth_model_free(m);
}

/* One model of a family: greedy requests batched four at a time, prompts in
 * chunks of 7 tokens, give the tokens a plain context gives each alone, and
 * sampled requests the same tokens and logprobs (bit for bit) alone and
 * batched; on an f16 cache with keys transposed (block 16) and on an f32 one.
 * The prompts outrun gemma3's 16-position window and its 64-position
 * attention tiles. */
static void family_case(const char *file)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	enum { N = 4 };
	const char *texts[N] = {
		"Once upon a time",
		"Lily and Tom went to the park. They played on the swings and the slide, and then they sat on the grass "
		"and ate their lunch. The sun was warm and the birds were singing in the trees.",
		"The dog ran after the ball, but the ball rolled into the pond.",
		"Sue wanted to play with her friends in the garden, but it was raining, so she stayed inside and read a "
		"book about a brave little fox who lived in the forest.",
	};
	int32_t *prompts[N], n_prompt[N];
	struct run alone[2][N], together[N];
	char path[256];
	snprintf(path, sizeof path, "%s", fixture("models/"));
	snprintf(path + strlen(path), sizeof path - strlen(path), "%s.gguf", file);
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	if (!m)
		return;
	for (int i = 0; i < N; i++) {
		T_OK(hearth_tokenize(m, texts[i], strlen(texts[i]), true, false, &prompts[i], &n_prompt[i], &err), err);
		reference_cache(m, prompts[i], n_prompt[i], MAX_GEN, HEARTH_TYPE_F16, &alone[0][i]);
		reference_cache(m, prompts[i], n_prompt[i], MAX_GEN, HEARTH_TYPE_F32, &alone[1][i]);
	}
	T_TRUE(n_prompt[1] + MAX_GEN > 64 + 16);
	for (int pass = 0; pass < 2; pass++) {
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		sp.n_parallel = 4;
		sp.n_ctx_seq = 160;
		sp.n_batch = 7;
		sp.n_threads = 2;
		sp.cache_type = pass == 0 ? HEARTH_TYPE_F16 : HEARTH_TYPE_F32;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (!s)
			break;
		struct hearth_request *r[N];
		for (int i = 0; i < N; i++)
			r[i] = submit(s, prompts[i], n_prompt[i], MAX_GEN);
		for (int i = 0; i < N; i++) {
			collect(r[i], &together[i]);
			if (!same(&together[i], &alone[pass][i]))
				T_FAIL("%s: prompt %d, %s cache: batched greedy tokens differ from the ones alone", file, i,
				       pass == 0 ? "f16" : "f32");
		}
		hearth_sched_free(s);
	}
	/* a conversation's next turn (the prompt, the reply, more) adopts the
	 * cached prefix (with windows: their last blocks stayed) and gives the
	 * tokens it gives from scratch */
	{
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		sp.n_ctx_seq = 160;
		sp.n_threads = 2;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (s) {
			struct run first, next, ref;
			int32_t turn[256], n = 0;
			cached_run(submit(s, prompts[1], n_prompt[1], MAX_GEN), &first);
			memcpy(turn, prompts[1], (size_t)n_prompt[1] * sizeof *turn);
			n = n_prompt[1];
			memcpy(turn + n, first.ids, (size_t)first.n * sizeof *turn);
			n += first.n;
			memcpy(turn + n, prompts[2] + 1, 8 * sizeof *turn);
			n += 8;
			const int32_t cached = cached_run(submit(s, turn, n, 8), &next);
			reference(m, turn, n, 8, &ref);
			T_TRUE(cached >= n_prompt[1]);
			if (!same(&next, &ref))
				T_FAIL("%s: the next turn on the cached prefix differs from a fresh run", file);
			hearth_sched_free(s);
		}
	}
	struct sampled sa[N], sb[N];
	for (int pass = 0; pass < 2; pass++) {
		struct hearth_sched_params sp = hearth_sched_default_params();
		struct hearth_sched *s = NULL;
		sp.n_parallel = pass == 0 ? 1 : 4;
		sp.n_ctx_seq = 160;
		sp.n_threads = 2;
		T_OK(hearth_sched_new(&s, m, &sp, &err), err);
		if (!s)
			break;
		struct hearth_request *r[N];
		for (int i = 0; i < N; i++) {
			r[i] = submit_sampled(s, prompts[i], n_prompt[i], 77 + (uint64_t)i);
			if (pass == 0)
				collect_sampled(r[i], &sa[i]);
		}
		for (int i = 0; pass == 1 && i < N; i++) {
			collect_sampled(r[i], &sb[i]);
			T_EQ_I64(sb[i].n, MAX_GEN);
			if (memcmp(&sa[i], &sb[i], sizeof sa[i]))
				T_FAIL("%s: prompt %d: sampled tokens or logprobs differ alone and batched", file, i);
		}
		hearth_sched_free(s);
	}
	for (int i = 0; i < N; i++)
		free(prompts[i]);
	hearth_model_free(m);
}

void test_sched_families(void)
{
	static const char *const files[] = {
		"tiny-gemma3.f32", "tiny-gemma3.q4_k_m", "tiny-phi3.f32", "tiny-phi3.q4_k_m",
		"tiny-glm4.f32", "tiny-glm4.q4_k_m", "tiny-chatglm.f32", "tiny-chatglm.q4_k_m",
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (!t_sanitized() || i == 0) /* under the sanitizers: gemma3 f32 (windows) only */
			family_case(files[i]);
}

void test_sched_sampled(void)
{
	sched_sampled(fixture("models/stories260K.f32.gguf"));
}

/* Mixtures of experts as the families above: a batch's tokens grouped by
 * expert change no bit. */
void test_sched_sampled_moe(void)
{
	static const char *const files[] = { "tiny-qwen3moe.q4_k_m", "tiny-mixtral.q4_k_m", "tiny-gpt-oss.mxfp4_moe",
					     "tiny-qwen3moe.f32", "tiny-mixtral.f32", "tiny-gpt-oss.f32" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (!t_sanitized() || i == 0)
			family_case(files[i]);
}
