/*
 * api-openai.c - the OpenAI-compatible endpoints.
 *
 * A completion request is validated field by field (errors name the field),
 * its prompt is rendered (chat) and tokenized, and one scheduler request per
 * prompt is submitted. Tokens come back as events; text is decoded UTF-8
 * safely, stop strings are cut out (held back while they might still be
 * forming, so they never reach a stream), and the reply is built in
 * OpenAI's shape, streamed as server-sent events when asked.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

#define MAX_STOPS 8
#define MAX_PROMPTS 16

/* ---- small helpers ------------------------------------------------------------------ */


/* A JSON string of n bytes; invalid UTF-8 becomes U+FFFD. NULL when out of memory. */
static json_t *jstr(const char *s, size_t n)
{
	char *t = malloc(3 * n + 1);
	size_t o = 0;
	if (!t)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = hearth_utf8_valid(s + i, n - i);
		if (k == 0) {
			memcpy(t + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(t + o, s + i, k);
			o += k;
			i += k;
		}
	}
	json_t *j = json_stringn(t, o);
	free(t);
	return j;
}

/* Appends v (taken over) to arr; false when either is NULL or the append fails. */
static bool add(json_t *arr, json_t *v)
{
	if (!arr || !v) {
		json_decref(v);
		return false;
	}
	return json_array_append_new(arr, v) == 0;
}

/* Sets key of obj to v (taken over); false when either is NULL or it fails. */
static bool set(json_t *obj, const char *key, json_t *v)
{
	if (!obj || !key || !v) {
		json_decref(v);
		return false;
	}
	return json_object_set_new(obj, key, v) == 0;
}

/* obj when every step that built it succeeded (ok), else NULL (obj released). */
static json_t *built(json_t *obj, bool ok)
{
	if (ok)
		return obj;
	json_decref(obj);
	return NULL;
}

/* The reply for an error the library returned: 500 when it ran out of memory, else 400. */
static void reply_lib_error(struct reply *rp, int rc, const char *param, const struct hearth_err *err)
{
	if (rc == HEARTH_ENOMEM)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory: %s", err->msg);
	else
		reply_error(rp, 400, "invalid_request_error", param, NULL, "%s", err->msg);
}

/* Does v hold a string with a NUL character, or an array holding one? */
static bool has_nul(json_t *v)
{
	size_t i;
	json_t *e;
	if (json_is_string(v))
		return strlen(json_string_value(v)) != json_string_length(v);
	json_array_foreach(v, i, e)
		if (json_is_string(e) && strlen(json_string_value(e)) != json_string_length(e))
			return true;
	return false;
}

static void gen_id(char *buf, size_t size, const char *prefix)
{
	static atomic_uint_fast64_t counter;
	uint64_t x = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ atomic_fetch_add(&counter, 1) * 0xbf58476d1ce4e5b9ULL;
	snprintf(buf, size, "%s%016" PRIx64, prefix, x);
}

static const char *finish_name(int f)
{
	return f == HEARTH_FINISH_LENGTH || f == HEARTH_FINISH_TIMEOUT ? "length" : "stop";
}

/* ---- parameters ------------------------------------------------------------------------ */

struct params {
	struct hearth_sampler_params sp;
	int32_t max_tokens;        /* -1: up to the context */
	int n;                     /* choices per prompt */
	bool stream, include_usage;
	bool logprobs;
	int32_t top_logprobs;      /* chat: 0..20; completions: logprobs 0..5 */
	char *stops[MAX_STOPS];
	int n_stops;
	int32_t bias_ids[1024];
	float bias[1024];
	int32_t n_bias;
	bool echo;
	bool ignore_eos;           /* llama.cpp's extension: keep going past end-of-text */
	char *salt;                /* prefix-cache tenant: the API key, then the request's cache_salt */
	size_t salt_len;
};

static void params_free(struct params *p)
{
	for (int i = 0; i < p->n_stops; i++)
		free(p->stops[i]);
	p->n_stops = 0;
	free(p->salt);
	p->salt = NULL;
}

enum kind { KIND_NUMBER, KIND_INTEGER, KIND_BOOLEAN, KIND_STRING };

/* The optional field key of b: NULL when absent or null. A value of another
 * kind gets the 400 reply naming the field, and *bad is set. */
static json_t *field(json_t *b, const char *key, enum kind kind, bool *bad, struct reply *rp)
{
	static const char *const names[] = { "a number", "an integer", "a boolean", "a string" };
	json_t *v = json_object_get(b, key);
	if (!v || json_is_null(v))
		return NULL;
	const bool ok = kind == KIND_NUMBER    ? json_is_number(v)
			: kind == KIND_INTEGER ? json_is_integer(v)
			: kind == KIND_BOOLEAN ? json_is_boolean(v)
					       : json_is_string(v);
	if (!ok) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_type", "'%s' must be %s", key, names[kind]);
		*bad = true;
		return NULL;
	}
	if (kind == KIND_STRING && strlen(json_string_value(v)) != json_string_length(v)) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_value", "'%s' must not contain NUL characters", key);
		*bad = true;
		return NULL;
	}
	return v;
}

/* Reads an optional number field in [lo, hi]; false after an error reply. */
static bool get_num(json_t *b, const char *key, double lo, double hi, double *out, struct reply *rp)
{
	bool bad = false;
	json_t *v = field(b, key, KIND_NUMBER, &bad, rp);
	if (!v)
		return !bad;
	double d = json_number_value(v);
	if (!(d >= lo && d <= hi)) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_value", "'%s' must be between %g and %g, got %g",
			    key, lo, hi, d);
		return false;
	}
	*out = d;
	return true;
}

static bool get_int(json_t *b, const char *key, long long lo, long long hi, long long *out, struct reply *rp)
{
	bool bad = false;
	json_t *v = field(b, key, KIND_INTEGER, &bad, rp);
	if (!v)
		return !bad;
	long long d = json_integer_value(v);
	if (d < lo || d > hi) {
		reply_error(rp, 400, "invalid_request_error", key, "invalid_value",
			    "'%s' must be between %lld and %lld, got %lld", key, lo, hi, d);
		return false;
	}
	*out = d;
	return true;
}

static bool get_bool(json_t *b, const char *key, bool *out, struct reply *rp)
{
	bool bad = false;
	json_t *v = field(b, key, KIND_BOOLEAN, &bad, rp);
	if (v)
		*out = json_is_true(v);
	return !bad;
}

static bool get_str(json_t *b, const char *key, const char **out, struct reply *rp)
{
	bool bad = false;
	json_t *v = field(b, key, KIND_STRING, &bad, rp);
	if (v)
		*out = json_string_value(v);
	return !bad;
}

/* Fields shared by both completion endpoints. chat: logprobs is a bool plus
 * top_logprobs; completions: logprobs is an integer 0..5. */
/* The prefix-cache salt: requests share cached prompt blocks only with
 * requests let in by the same API key and giving the same cache_salt. */
static bool set_salt(struct params *p, const char *tenant, const char *cache_salt, struct reply *rp)
{
	if (!tenant && !cache_salt)
		return true;
	size_t kl = tenant ? strlen(tenant) : 0, sl = cache_salt ? strlen(cache_salt) : 0;
	if (!(p->salt = malloc(kl + sl + 2))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	/* "key\nsalt": the key holds no newline, so no two pairs give the same bytes */
	memcpy(p->salt, tenant ? tenant : "", kl);
	p->salt[kl] = '\n';
	memcpy(p->salt + kl + 1, cache_salt ? cache_salt : "", sl + 1);
	p->salt_len = kl + 1 + sl;
	return true;
}

static bool parse_params(struct server *srv, json_t *b, bool chat, const char *tenant, struct params *p,
			 struct reply *rp)
{
	double temp = 1.0, top_p = 1.0, min_p = 0, rep = 1.0, fp = 0, pp = 0;
	long long top_k = 0, max_tokens = -1, mct = -1, seed = -1, n = 1, tl = -1;
	const char *model = NULL, *user = NULL, *cache_key = NULL, *cache_salt = NULL;

	memset(p, 0, sizeof *p);
	if (!get_str(b, "model", &model, rp))
		return false;
	if (model && strcmp(model, srv->alias)) {
		reply_error(rp, 404, "not_found_error", "model", "model_not_found",
			    "The model '%s' does not exist; this server serves '%s'", model, srv->alias);
		return false;
	}
	if (!get_num(b, "temperature", 0, 2, &temp, rp) || !get_num(b, "top_p", 0, 1, &top_p, rp) ||
	    !get_num(b, "min_p", 0, 1, &min_p, rp) || !get_num(b, "repeat_penalty", 0.01, 10, &rep, rp) ||
	    !get_num(b, "frequency_penalty", -2, 2, &fp, rp) || !get_num(b, "presence_penalty", -2, 2, &pp, rp) ||
	    !get_int(b, "top_k", -1, 1 << 30, &top_k, rp) || !get_int(b, "max_tokens", 1, INT32_MAX, &max_tokens, rp) ||
	    !get_int(b, "max_completion_tokens", 1, INT32_MAX, &mct, rp) ||
	    !get_int(b, "seed", INT64_MIN, INT64_MAX, &seed, rp) || !get_int(b, "n", 1, MAX_PROMPTS, &n, rp) ||
	    !get_bool(b, "stream", &p->stream, rp) || !get_str(b, "user", &user, rp) ||
	    !get_str(b, "prompt_cache_key", &cache_key, rp) || !get_str(b, "cache_salt", &cache_salt, rp) ||
	    !get_bool(b, "echo", &p->echo, rp) ||
	    !get_bool(b, "ignore_eos", &p->ignore_eos, rp))
		return false;
	if (chat) {
		if (!get_bool(b, "logprobs", &p->logprobs, rp) || !get_int(b, "top_logprobs", 0, 20, &tl, rp))
			return false;
		if (tl >= 0 && !p->logprobs) {
			reply_error(rp, 400, "invalid_request_error", "top_logprobs", "invalid_value",
				    "'top_logprobs' requires 'logprobs' to be true");
			return false;
		}
		p->top_logprobs = p->logprobs ? (int32_t)(tl < 0 ? 0 : tl) : -1;
	} else {
		if (!get_int(b, "logprobs", 0, 5, &tl, rp))
			return false;
		p->logprobs = tl >= 0;
		p->top_logprobs = (int32_t)tl;
	}
	json_t *so = json_object_get(b, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so)) {
			reply_error(rp, 400, "invalid_request_error", "stream_options", "invalid_type",
				    "'stream_options' must be an object");
			return false;
		}
		if (!get_bool(so, "include_usage", &p->include_usage, rp))
			return false;
	}
	json_t *stop = json_object_get(b, "stop");
	if (has_nul(stop)) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_value", "'stop' must not contain NUL characters");
		return false;
	}
	if (json_is_string(stop)) {
		if (json_string_length(stop) && !(p->stops[p->n_stops++] = strdup(json_string_value(stop))))
			p->n_stops--;
	} else if (json_is_array(stop)) {
		size_t i;
		json_t *s;
		if (json_array_size(stop) > 4) {
			reply_error(rp, 400, "invalid_request_error", "stop", "invalid_value", "'stop' allows at most 4 sequences");
			return false;
		}
		json_array_foreach(stop, i, s) {
			if (!json_is_string(s)) {
				params_free(p);
				reply_error(rp, 400, "invalid_request_error", "stop", "invalid_type",
					    "'stop' must be a string or a list of strings");
				return false;
			}
			if (json_string_length(s) && (p->stops[p->n_stops] = strdup(json_string_value(s))))
				p->n_stops++;
		}
	} else if (stop && !json_is_null(stop)) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_type",
			    "'stop' must be a string or a list of strings");
		return false;
	}
	json_t *lb = json_object_get(b, "logit_bias");
	if (lb && !json_is_null(lb)) {
		const char *k;
		json_t *v;
		if (!json_is_object(lb) || json_object_size(lb) > 1024) {
			params_free(p);
			reply_error(rp, 400, "invalid_request_error", "logit_bias", "invalid_type",
				    "'logit_bias' must be an object of at most 1024 token ids");
			return false;
		}
		json_object_foreach(lb, k, v) {
			char *end;
			long id = strtol(k, &end, 10);
			double bias = json_number_value(v);
			if (*end || end == k || id < 0 || id >= hearth_model_n_vocab(srv->model) || !json_is_number(v) ||
			    bias < -100 || bias > 100) {
				params_free(p);
				reply_error(rp, 400, "invalid_request_error", "logit_bias", "invalid_value",
					    "'logit_bias' maps token ids (0..%d) to numbers from -100 to 100; '%s' is not valid",
					    hearth_model_n_vocab(srv->model) - 1, k);
				return false;
			}
			p->bias_ids[p->n_bias] = (int32_t)id;
			p->bias[p->n_bias++] = (float)bias;
		}
	}
	p->max_tokens = mct > 0 ? (int32_t)mct : (int32_t)max_tokens;
	p->n = (int)n;
	p->sp = hearth_sampler_default_params();
	p->sp.temp = (float)temp;
	p->sp.top_p = (float)top_p;
	p->sp.top_k = (int32_t)(top_k < 0 ? 0 : top_k);
	p->sp.min_p = (float)min_p;
	p->sp.repeat_penalty = (float)rep;
	p->sp.frequency_penalty = (float)fp;
	p->sp.presence_penalty = (float)pp;
	p->sp.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20) ^ (uint64_t)(uintptr_t)p;
	(void)user;
	(void)cache_key; /* affinity keys are for proxies in front; accepted, not needed here */
	return set_salt(p, tenant, cache_salt, rp);
}

/* ---- one generation ----------------------------------------------------------------------- */

struct tok_lp {
	int32_t id;
	float lp;
	int32_t n_top;
	int32_t top_ids[HEARTH_MAX_TOP_LOGPROBS];
	float top_lp[HEARTH_MAX_TOP_LOGPROBS];
	size_t text_offset;
};

struct gen {
	struct hearth_request *req;
	struct hearth_detok *dt;
	int32_t n_prompt, cached;
	char *text;               /* generated text (stop strings cut) */
	size_t len, cap, sent;    /* sent: bytes already streamed */
	int32_t n_gen;
	struct tok_lp *lps;
	size_t n_lps, cap_lps;
	int finish;               /* enum hearth_finish, 0 while running */
	bool stopped;             /* ended by a stop string */
	bool failed;              /* out of memory keeping its text: ends with HEARTH_FINISH_ERROR */
	double t_submit, t_first, t_last;
	char *prompt_text;        /* completions echo */
	size_t prompt_len;
};

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *b = realloc(*buf, c);
		if (!b)
			return -1;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = 0;
	return 0;
}

/* Bytes at the end of text that could still grow into a stop string. */
static size_t stop_holdback(const struct params *p, const char *text, size_t len)
{
	size_t hold = 0;
	for (int i = 0; i < p->n_stops; i++) {
		size_t sl = strlen(p->stops[i]);
		for (size_t k = sl - 1; k > hold; k--)
			if (k <= len && memcmp(text + len - k, p->stops[i], k) == 0) {
				hold = k;
				break;
			}
	}
	return hold;
}

/* Applies one event to g. */
/* Keeps the logprobs of ev; false when out of memory. */
static bool gen_keep_logprob(struct gen *g, const struct hearth_token_event *ev, size_t text_offset)
{
	if (g->n_lps >= 1u << 20)
		return true; /* more than a context holds: not kept */
	if (g->n_lps == g->cap_lps) {
		size_t c = g->cap_lps ? 2 * g->cap_lps : 32;
		struct tok_lp *l = realloc(g->lps, c * sizeof *l);
		if (!l)
			return false;
		g->lps = l;
		g->cap_lps = c;
	}
	struct tok_lp *l = &g->lps[g->n_lps++];
	l->id = ev->id;
	l->lp = ev->logprob;
	l->n_top = ev->n_top;
	memcpy(l->top_ids, ev->top_ids, sizeof l->top_ids);
	memcpy(l->top_lp, ev->top_logprobs, sizeof l->top_lp);
	l->text_offset = text_offset; /* echoed prompt text included */
	return true;
}

/* Where the first stop string in g's text starts, looking only where one
 * could end in the bytes from `before` on; SIZE_MAX when none. */
static size_t gen_find_stop(const struct params *p, const struct gen *g, size_t before)
{
	size_t longest = 0, cut = SIZE_MAX;
	for (int i = 0; i < p->n_stops; i++)
		longest = strlen(p->stops[i]) > longest ? strlen(p->stops[i]) : longest;
	size_t from = before > longest - 1 ? before - (longest - 1) : 0;
	for (int i = 0; i < p->n_stops; i++) {
		const size_t sl = strlen(p->stops[i]);
		for (size_t at = from; at + sl <= g->len && at < cut; at++)
			if (!memcmp(g->text + at, p->stops[i], sl))
				cut = at;
	}
	return cut;
}

/* Ends g early: it could not keep what the model produced. */
static void gen_fail(struct gen *g)
{
	g->failed = true;
	hearth_request_cancel(g->req);
}

/* Applies one event to g. */
static void gen_event(struct server *srv, const struct params *p, struct gen *g, const struct hearth_token_event *ev)
{
	if (ev->id >= 0 && !g->stopped && !g->failed) {
		size_t k;
		const char *piece = hearth_detok_push(g->dt, ev->id, &k);
		const size_t before = g->len;
		if (g->t_first == 0)
			g->t_first = ev->t;
		else
			metrics_inter_token(srv->metrics, ev->t - g->t_last);
		g->t_last = ev->t;
		g->n_gen++;
		if ((p->logprobs && !gen_keep_logprob(g, ev, before)) || append(&g->text, &g->len, &g->cap, piece, k)) {
			gen_fail(g);
		} else if (p->n_stops) {
			size_t cut = gen_find_stop(p, g, before);
			if (cut != SIZE_MAX) {
				g->len = cut;
				g->text[cut] = 0;
				g->stopped = true;
				hearth_request_cancel(g->req);
			}
		}
	}
	if (ev->finish) {
		if (!g->stopped && !g->failed) {
			size_t k;
			const char *rest = hearth_detok_flush(g->dt, &k);
			if (append(&g->text, &g->len, &g->cap, rest, k))
				g->failed = true;
		}
		g->finish = g->failed ? HEARTH_FINISH_ERROR : g->stopped ? HEARTH_FINISH_STOP : ev->finish;
	}
}

/* Bytes of g's text safe to send now. */
static size_t gen_sendable(const struct params *p, const struct gen *g)
{
	if (g->finish)
		return g->len;
	size_t hold = stop_holdback(p, g->text ? g->text : "", g->len);
	return g->len - hold;
}

static void gen_free(struct server *srv, struct gen *g)
{
	if (g->req && !g->finish) /* the client left before the end */
		metrics_request_done(srv->metrics, "abort", g->n_prompt, g->n_gen, 0, -1, hearth_now() - g->t_submit);
	hearth_request_free(g->req);
	hearth_detok_free(g->dt);
	free(g->text);
	free(g->lps);
	free(g->prompt_text);
	memset(g, 0, sizeof *g);
}

/* Submits prompt ids; false after an error reply. */
static bool gen_start(struct server *srv, const struct params *p, struct gen *g, const int32_t *ids, int32_t n,
		      int choice, const char *what, struct reply *rp)
{
	struct hearth_request_params rq = hearth_request_default_params();
	struct hearth_err err = { 0 };
	const int32_t max_len = srv->sp.n_ctx_seq;

	if (n < 1) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value", "The prompt is empty");
		return false;
	}
	if (n >= max_len || (p->max_tokens > 0 && (int64_t)n + p->max_tokens > max_len)) {
		reply_error(rp, 400, "invalid_request_error", what, "context_length_exceeded",
			    "This model's maximum context length is %d tokens. However, you requested %lld tokens "
			    "(%d in the %s, %d in the completion). Please reduce the length of the %s or completion.",
			    max_len, (long long)n + (p->max_tokens > 0 ? p->max_tokens : 0), n, what,
			    p->max_tokens > 0 ? p->max_tokens : 0, what);
		return false;
	}
	rq.prompt = ids;
	rq.n_prompt = n;
	rq.max_tokens = p->max_tokens;
	rq.sampling = p->sp;
	rq.sampling.seed += (uint64_t)choice; /* n choices: n different draws */
	rq.bias_ids = p->bias_ids;
	rq.bias = p->bias;
	rq.n_bias = p->n_bias;
	rq.top_logprobs = p->logprobs ? p->top_logprobs : -1;
	rq.timeout_s = srv->request_timeout_s;
	rq.ignore_eos = p->ignore_eos;
	rq.cache_salt = p->salt;
	rq.cache_salt_size = p->salt_len;
	g->n_prompt = n;
	g->t_submit = hearth_now();
	if (hearth_detok_new(&g->dt, srv->model, false, &err)) {
		reply_error(rp, 500, "server_error", NULL, NULL, "%s", err.msg);
		return false;
	}
	int rc = hearth_sched_submit(srv->sched, &rq, &g->req, &err);
	if (rc == HEARTH_EBUSY) {
		reply_error(rp, 429, "rate_limit_exceeded", NULL, "queue_full",
			    "The server is busy: too many requests are waiting. Retry shortly.");
		rp->retry_after = 1;
	} else if (rc == HEARTH_ESHUTDOWN) {
		reply_error(rp, 503, "service_unavailable", NULL, "draining", "The server is shutting down");
	} else if (rc == HEARTH_ETOOBIG) {
		reply_error(rp, 400, "invalid_request_error", what, "context_length_exceeded", "%s", err.msg);
	} else if (rc) {
		reply_lib_error(rp, rc, NULL, &err);
	}
	return rc == 0;
}

/* Waits for g's next event (checking that the client is still there);
 * false when the request is over. */
static bool gen_wait(struct server *srv, const struct params *p, struct gen *g, int fd)
{
	struct hearth_token_event ev;
	for (;;) {
		int rc = hearth_request_next(g->req, &ev, 250);
		if (rc == 0) {
			gen_event(srv, p, g, &ev);
			if (ev.finish) {
				g->cached = hearth_request_cached_tokens(g->req);
				double t0 = hearth_request_t_start(g->req);
				const char *why = g->finish == HEARTH_FINISH_CANCELLED && !g->stopped ? "abort" : finish_name(g->finish);
				metrics_request_done(srv->metrics, why, g->n_prompt, g->n_gen,
						     (t0 > 0 ? t0 : hearth_now()) - g->t_submit,
						     g->t_first > 0 ? g->t_first - g->t_submit : -1, hearth_now() - g->t_submit);
			}
			return !ev.finish;
		}
		if (rc == HEARTH_ENOTFOUND)
			return false;
		if (client_gone(fd))
			hearth_request_cancel(g->req); /* the final event follows */
	}
}

/* ---- logprobs in both shapes ---------------------------------------------------------------------- */

static json_t *piece_json(struct server *srv, int32_t id, json_t **bytes)
{
	char buf[256];
	int n = hearth_token_to_piece(srv->model, id, true, buf, sizeof buf);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof buf)
		n = sizeof buf;
	if (bytes) {
		bool ok = (*bytes = json_array()) != NULL;
		for (int i = 0; ok && i < n; i++)
			ok = add(*bytes, json_integer((unsigned char)buf[i]));
		*bytes = built(*bytes, ok);
	}
	return jstr(buf, (size_t)n);
}

/* The logprobs of tokens l[0..n) in the chat shape; NULL when out of memory. */
static json_t *chat_logprobs(struct server *srv, const struct tok_lp *l, size_t n)
{
	json_t *content = json_array();
	bool ok = content != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		json_t *bytes, *top = json_array();
		json_t *tok = piece_json(srv, l[i].id, &bytes);
		ok = top != NULL;
		for (int32_t k = 0; ok && k < l[i].n_top; k++) {
			json_t *tb, *tt = piece_json(srv, l[i].top_ids[k], &tb);
			ok = add(top, json_pack("{s:o, s:f, s:o}", "token", tt, "logprob", (double)l[i].top_lp[k], "bytes", tb));
		}
		if (!ok) {
			json_decref(top);
			json_decref(tok);
			json_decref(bytes);
			break;
		}
		ok = add(content, json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob", (double)l[i].lp, "bytes", bytes,
					    "top_logprobs", top));
	}
	return ok ? json_pack("{s:o}", "content", content) : built(content, false);
}

/* The logprobs of tokens l[0..n) in the completions shape; NULL when out of memory. */
static json_t *completion_logprobs(struct server *srv, const struct tok_lp *l, size_t n)
{
	json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
	bool ok = toks && lps && tops && offs;
	for (size_t i = 0; ok && i < n; i++) {
		json_t *t = json_object();
		ok = add(toks, piece_json(srv, l[i].id, NULL)) && add(lps, json_real(l[i].lp)) && t;
		for (int32_t k = 0; ok && k < l[i].n_top; k++) {
			json_t *name = piece_json(srv, l[i].top_ids[k], NULL);
			ok = set(t, json_string_value(name), json_real(l[i].top_lp[k]));
			json_decref(name);
		}
		ok = add(tops, built(t, ok)) && add(offs, json_integer((json_int_t)l[i].text_offset));
	}
	if (ok)
		return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
				 "text_offset", offs);
	json_decref(toks);
	json_decref(lps);
	json_decref(tops);
	json_decref(offs);
	return NULL;
}

static json_t *usage_json(const struct gen *g, int n)
{
	long long prompt = 0, completion = 0, cached = 0;
	for (int i = 0; i < n; i++) {
		prompt += g[i].n_prompt;
		completion += g[i].n_gen;
		cached += g[i].cached;
	}
	return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", prompt, "completion_tokens", completion,
			 "total_tokens", prompt + completion, "prompt_tokens_details", "cached_tokens", cached);
}

/* ---- streaming ------------------------------------------------------------------------------------ */

struct stream {
	struct server *srv;
	struct params p;
	bool chat;
	struct gen g[MAX_PROMPTS];
	int n_gen, cur;       /* choices, the one being streamed */
	char id[48];
	long created;
	int fd;
	char *out;            /* SSE bytes ready to send */
	size_t out_len, out_cap, out_sent;
	bool role_sent[MAX_PROMPTS];
	bool done;            /* [DONE] queued */
	bool broken;          /* a chunk could not be built: the stream ends cut, never with [DONE] */
};

/* Queues j (taken over) as one event; a failure breaks the stream. */
static void sse_push(struct stream *st, json_t *j)
{
	size_t n = 0;
	char *s = j ? json_text(j, &n) : NULL;
	json_decref(j);
	if (!s || append(&st->out, &st->out_len, &st->out_cap, "data: ", 6) ||
	    append(&st->out, &st->out_len, &st->out_cap, s, n) || append(&st->out, &st->out_len, &st->out_cap, "\n\n", 2))
		st->broken = true;
	free(s);
}

static json_t *chunk(struct stream *st, json_t *choices)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", st->id, "object",
			 st->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)st->created,
			 "model", st->srv->alias, "choices", choices);
}

/* Queues what choice i has ready; its final chunk when it finished. */
static void stream_emit(struct stream *st, int i, size_t lp_from)
{
	struct gen *g = &st->g[i];
	size_t upto = gen_sendable(&st->p, g);
	bool fin = g->finish != 0;
	if (upto <= g->sent && !fin && !(st->chat && !st->role_sent[i]))
		return;
	json_t *text = jstr(g->text ? g->text + g->sent : "", upto > g->sent ? upto - g->sent : 0);
	g->sent = upto > g->sent ? upto : g->sent;
	json_t *choice;
	if (!text) {
		st->broken = true;
		return;
	}
	if (st->chat) {
		json_t *delta = json_object();
		bool ok = delta != NULL;
		if (ok && !st->role_sent[i]) {
			ok = set(delta, "role", json_string("assistant"));
			st->role_sent[i] = true;
		}
		if (ok && (json_string_length(text) || !fin))
			ok = set(delta, "content", json_incref(text));
		delta = built(delta, ok);
		choice = !delta ? NULL : json_pack("{s:i, s:o, s:o, s:o}", "index", i, "delta", delta, "logprobs",
				   st->p.logprobs && g->n_lps > lp_from ? chat_logprobs(st->srv, g->lps + lp_from, g->n_lps - lp_from)
									: json_null(),
				   "finish_reason", fin ? json_string(finish_name(g->finish)) : json_null());
	} else {
		choice = json_pack("{s:i, s:O, s:o, s:o}", "index", i, "text", text, "logprobs",
				   st->p.logprobs && g->n_lps > lp_from ? completion_logprobs(st->srv, g->lps + lp_from, g->n_lps - lp_from)
									: json_null(),
				   "finish_reason", fin ? json_string(finish_name(g->finish)) : json_null());
	}
	json_decref(text);
	sse_push(st, choice ? chunk(st, json_pack("[o]", choice)) : NULL);
}

/* Queues the end: the usage chunk when asked, then [DONE]. */
static void stream_end(struct stream *st)
{
	if (st->p.include_usage) {
		json_t *c = chunk(st, json_array());
		sse_push(st, built(c, set(c, "usage", usage_json(st->g, st->n_gen))));
	}
	if (!st->broken && append(&st->out, &st->out_len, &st->out_cap, "data: [DONE]\n\n", 14))
		st->broken = true;
	st->done = true;
}

ssize_t stream_read(struct stream *st, char *buf, size_t max, bool *ended)
{
	while (st->out_sent == st->out_len) {
		st->out_len = st->out_sent = 0;
		if (st->broken)
			return -1;
		if (st->done) {
			*ended = true;
			return 0;
		}
		if (st->cur >= st->n_gen) {
			stream_end(st);
			continue;
		}
		struct gen *g = &st->g[st->cur];
		size_t lp_from = g->n_lps;
		bool more = g->finish == 0 && gen_wait(st->srv, &st->p, g, st->fd);
		if (g->finish == HEARTH_FINISH_ERROR) {
			st->broken = true; /* the model could not finish it: the client sees the stream cut */
			continue;
		}
		stream_emit(st, st->cur, lp_from);
		if (!more || g->finish)
			st->cur++;
	}
	size_t n = st->out_len - st->out_sent < max ? st->out_len - st->out_sent : max;
	memcpy(buf, st->out + st->out_sent, n);
	st->out_sent += n;
	return (ssize_t)n;
}

void stream_free(struct stream *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->n_gen; i++)
		gen_free(st->srv, &st->g[i]);
	params_free(&st->p);
	free(st->out);
	free(st);
}

/* ---- the endpoints ---------------------------------------------------------------------------------- */

/* Runs the started generations to the end (non-streaming); false after a
 * 500 reply when one could not be finished for lack of memory. */
static bool run_all(struct server *srv, struct stream *st, int fd, struct reply *rp)
{
	bool ok = true;
	for (int i = 0; i < st->n_gen; i++) {
		while (gen_wait(srv, &st->p, &st->g[i], fd))
			;
		ok = ok && st->g[i].finish != HEARTH_FINISH_ERROR;
	}
	if (!ok)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory: the model could not finish the request");
	return ok;
}

/* The chat.completion reply of finished generations; NULL when out of memory. */
static json_t *chat_reply(struct server *srv, struct stream *st)
{
	json_t *choices = json_array();
	bool ok = choices != NULL;
	for (int k = 0; ok && k < st->n_gen; k++) {
		struct gen *g = &st->g[k];
		ok = add(choices, json_pack("{s:i, s:{s:s, s:o}, s:o, s:s}", "index", k, "message", "role", "assistant",
					    "content", jstr(g->text ? g->text : "", g->len), "logprobs",
					    st->p.logprobs ? chat_logprobs(srv, g->lps, g->n_lps) : json_null(),
					    "finish_reason", finish_name(g->finish)));
	}
	if (!ok)
		return built(choices, false);
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s}", "id", st->id, "object", "chat.completion", "created",
			 (json_int_t)st->created, "model", srv->alias, "choices", choices, "usage",
			 usage_json(st->g, st->n_gen), "system_fingerprint", "hearth");
}

/* The text_completion reply of finished generations; NULL when out of memory. */
static json_t *completion_reply(struct server *srv, struct stream *st)
{
	json_t *choices = json_array();
	bool ok = choices != NULL;
	for (int i = 0; ok && i < st->n_gen; i++) {
		struct gen *g = &st->g[i];
		ok = add(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", i, "text", jstr(g->text ? g->text : "", g->len),
					    "logprobs", st->p.logprobs ? completion_logprobs(srv, g->lps, g->n_lps) : json_null(),
					    "finish_reason", finish_name(g->finish)));
	}
	if (!ok)
		return built(choices, false);
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", st->id, "object", "text_completion", "created",
			 (json_int_t)st->created, "model", srv->alias, "choices", choices, "usage",
			 usage_json(st->g, st->n_gen));
}

/* The text of messages[i].content (a string, or text parts joined) into
 * m->content / m->content_len; *owned gets what must be freed. False after an
 * error reply. */
static bool message_content(json_t *content, const char *role, size_t i, struct hearth_chat_msg *m, char **owned,
			    struct reply *rp)
{
	size_t len = 0, cap = 0, k;
	json_t *part;
	if (json_is_string(content)) {
		m->content = json_string_value(content);
		m->content_len = json_string_length(content);
		return true;
	}
	if (json_is_null(content) && !strcmp(role, "assistant")) {
		m->content = "";
		return true;
	}
	if (!json_is_array(content)) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_type",
			    "messages[%zu].content must be a string or an array of text parts", i);
		return false;
	}
	if (append(owned, &len, &cap, "", 0))
		goto out_oom;
	json_array_foreach(content, k, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *t = json_object_get(part, "text");
		if (!type || strcmp(type, "text") || !json_is_string(t)) {
			reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
				    "messages[%zu].content[%zu] must be a text part {\"type\":\"text\",\"text\":...}", i, k);
			return false;
		}
		if (append(owned, &len, &cap, json_string_value(t), json_string_length(t)))
			goto out_oom;
	}
	m->content = *owned;
	m->content_len = len;
	return true;
out_oom:
	reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return false;
}

/* Chat messages -> the model's prompt text (*len bytes: it may hold NULs). */
static char *render_messages(struct server *srv, json_t *msgs, size_t *len, struct reply *rp)
{
	struct hearth_chat_msg m[256];
	char *owned[256] = { 0 };
	struct hearth_err err = { 0 };
	char *out = NULL;
	size_t n = json_array_size(msgs), i;
	json_t *msg;

	if (!json_is_array(msgs) || n == 0) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
			    "'messages' must be a non-empty array");
		return NULL;
	}
	if (n > 256) {
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value", "at most 256 messages");
		return NULL;
	}
	memset(m, 0, sizeof m);
	json_array_foreach(msgs, i, msg) {
		json_t *jrole = json_object_get(msg, "role");
		const char *role = json_string_value(jrole);
		if (!json_is_object(msg) || !role || strlen(role) != json_string_length(jrole)) {
			reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
				    "messages[%zu] must be an object with a string 'role'", i);
			goto out;
		}
		if (!strcmp(role, "developer"))
			role = "system";
		if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
			reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
				    "messages[%zu].role '%.64s' is not one of system, developer, user, assistant", i, role);
			goto out;
		}
		m[i].role = role;
		if (!message_content(json_object_get(msg, "content"), role, i, &m[i], &owned[i], rp))
			goto out;
	}
	int rc = hearth_chat_render(srv->model, m, (int)n, true, &out, len, &err);
	if (rc)
		reply_lib_error(rp, rc, "messages", &err);
out:
	for (i = 0; i < n && i < 256; i++)
		free(owned[i]);
	return out;
}

static struct stream *stream_new(struct server *srv, bool chat, const struct call *call)
{
	struct stream *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->srv = srv;
	st->chat = chat;
	st->fd = call->fd;
	st->created = (long)time(NULL);
	gen_id(st->id, sizeof st->id, chat ? "chatcmpl-" : "cmpl-");
	return st;
}

void api_chat_completions(struct server *srv, const struct call *call, struct reply *rp)
{
	struct hearth_err err = { 0 };
	struct stream *st = stream_new(srv, true, call);
	json_t *body = call->body;
	int32_t *ids = NULL, n_ids = 0;
	char *prompt = NULL;
	size_t prompt_len = 0;

	if (!st) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	if (!json_object_get(body, "messages")) {
		reply_error(rp, 400, "invalid_request_error", "messages", "missing_required_parameter",
			    "Missing required parameter: 'messages'");
		goto out;
	}
	if (!parse_params(srv, body, true, call->tenant, &st->p, rp) ||
	    !(prompt = render_messages(srv, json_object_get(body, "messages"), &prompt_len, rp)))
		goto out;
	if (srv->log_prompts)
		fprintf(stderr, "hearth serve: prompt: %s\n", prompt);
	int rc = hearth_tokenize_max(srv->model, prompt, prompt_len, true, true, srv->sp.n_ctx_seq, &ids, &n_ids, &err);
	if (rc == HEARTH_ETOOBIG) {
		reply_error(rp, 400, "invalid_request_error", "messages", "context_length_exceeded",
			    "This model's maximum context length is %d tokens; the messages are longer.", srv->sp.n_ctx_seq);
		goto out;
	}
	if (rc) {
		reply_lib_error(rp, rc, "messages", &err);
		goto out;
	}
	for (int k = 0; k < st->p.n; k++) {
		st->n_gen = k + 1; /* freed with the stream from here on */
		if (!gen_start(srv, &st->p, &st->g[k], ids, n_ids, k, "messages", rp))
			goto out;
	}
	if (st->p.stream) {
		rp->stream = st;
		st = NULL;
		goto out;
	}
	if (run_all(srv, st, call->fd, rp))
		reply_json(rp, 200, chat_reply(srv, st));
out:
	free(prompt);
	free(ids);
	stream_free(st);
}

/* One prompt of /v1/completions: a string or an array of token ids. */
static bool prompt_ids(struct server *srv, json_t *p, int32_t **ids, int32_t *n, struct reply *rp)
{
	struct hearth_err err = { 0 };
	if (json_is_string(p)) {
		int rc = hearth_tokenize_max(srv->model, json_string_value(p), json_string_length(p), true, true,
					     srv->sp.n_ctx_seq, ids, n, &err);
		if (rc == HEARTH_ETOOBIG)
			reply_error(rp, 400, "invalid_request_error", "prompt", "context_length_exceeded",
				    "This model's maximum context length is %d tokens; the prompt is longer.", srv->sp.n_ctx_seq);
		else if (rc)
			reply_lib_error(rp, rc, "prompt", &err);
		return rc == 0;
	}
	size_t i, k = json_array_size(p);
	json_t *v;
	*ids = malloc((k ? k : 1) * sizeof **ids);
	*n = 0;
	if (!*ids) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	json_array_foreach(p, i, v) {
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 0 || id >= hearth_model_n_vocab(srv->model)) {
			free(*ids);
			*ids = NULL;
			reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value",
				    "prompt token %zu must be an integer id from 0 to %d", i, hearth_model_n_vocab(srv->model) - 1);
			return false;
		}
		(*ids)[(*n)++] = (int32_t)id;
	}
	return true;
}

void api_completions(struct server *srv, const struct call *call, struct reply *rp)
{
	struct stream *st = stream_new(srv, false, call);
	json_t *body = call->body;
	json_t *prompt = json_object_get(body, "prompt"), *list[MAX_PROMPTS];
	int n_list = 0;

	if (!st) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	if (!prompt) {
		reply_error(rp, 400, "invalid_request_error", "prompt", "missing_required_parameter",
			    "Missing required parameter: 'prompt'");
		goto out;
	}
	/* a string, a list of ids, a list of strings, or a list of lists of ids */
	if (json_is_string(prompt) || (json_is_array(prompt) && json_array_size(prompt) > 0 &&
				       json_is_integer(json_array_get(prompt, 0)))) {
		list[n_list++] = prompt;
	} else if (json_is_array(prompt) && json_array_size(prompt) > 0) {
		size_t i;
		json_t *v;
		if (json_array_size(prompt) > MAX_PROMPTS) {
			reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_value", "at most %d prompts per request",
				    MAX_PROMPTS);
			goto out;
		}
		json_array_foreach(prompt, i, v) {
			if (!json_is_string(v) && !json_is_array(v)) {
				reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_type",
					    "'prompt' must be a string, a list of token ids, or a list of either");
				goto out;
			}
			list[n_list++] = v;
		}
	} else {
		reply_error(rp, 400, "invalid_request_error", "prompt", "invalid_type",
			    "'prompt' must be a non-empty string, a list of token ids, or a list of either");
		goto out;
	}
	if (!parse_params(srv, body, false, call->tenant, &st->p, rp))
		goto out;
	if (n_list * st->p.n > MAX_PROMPTS) {
		reply_error(rp, 400, "invalid_request_error", "n", "invalid_value",
			    "prompts x n must be at most %d, got %d", MAX_PROMPTS, n_list * st->p.n);
		goto out;
	}
	/* choice index = prompt * n + k, as OpenAI numbers them */
	for (int i = 0; i < n_list; i++) {
		int32_t *ids = NULL, n = 0;
		if (!prompt_ids(srv, list[i], &ids, &n, rp))
			goto out;
		for (int k = 0; k < st->p.n; k++) {
			struct gen *g = &st->g[st->n_gen];
			struct hearth_err err = { 0 };
			int rc = st->p.echo ? hearth_detokenize(srv->model, ids, n, false, &g->prompt_text, &g->prompt_len, &err) : 0;
			st->n_gen++; /* freed with the stream from here on */
			if (rc) {
				reply_lib_error(rp, rc, "prompt", &err);
				free(ids);
				goto out;
			}
			if (!gen_start(srv, &st->p, g, ids, n, k, "prompt", rp)) {
				free(ids);
				goto out;
			}
			/* echoed text leads the completion */
			if (st->p.echo && append(&g->text, &g->len, &g->cap, g->prompt_text, g->prompt_len))
				gen_fail(g);
		}
		free(ids);
	}
	if (st->p.stream) {
		rp->stream = st;
		st = NULL;
		goto out;
	}
	if (run_all(srv, st, call->fd, rp))
		reply_json(rp, 200, completion_reply(srv, st));
out:
	stream_free(st);
}

/* The model as /v1/models lists it: its file name only, never where it lies. */
static json_t *model_json(struct server *srv)
{
	const char *slash = strrchr(srv->model_path, '/');
	return json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:i, s:[]}", "id", srv->alias, "object", "model", "created",
			 (json_int_t)srv->created, "owned_by", "hearth", "root", slash ? slash + 1 : srv->model_path,
			 "parent", "max_model_len", srv->sp.n_ctx_seq, "permission");
}

void api_models(struct server *srv, const struct call *call, struct reply *rp)
{
	(void)call;
	reply_json(rp, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", model_json(srv)));
}

void api_model(struct server *srv, const struct call *call, struct reply *rp)
{
	if (strcmp(call->arg, srv->alias)) {
		reply_error(rp, 404, "not_found_error", "model", "model_not_found", "The model '%.200s' does not exist",
			    call->arg);
		return;
	}
	reply_json(rp, 200, model_json(srv));
}

void api_tokenize(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	struct hearth_err err = { 0 };
	json_t *t = json_object_get(body, "content");
	bool add_special = true, parse_special = true;
	int32_t *ids;
	int32_t n;
	if (!t)
		t = json_object_get(body, "prompt");
	if (!json_is_string(t)) {
		reply_error(rp, 400, "invalid_request_error", "content", t ? "invalid_type" : "missing_required_parameter",
			    "'content' (or 'prompt') must be a string");
		return;
	}
	if (!get_bool(body, "add_special", &add_special, rp) || !get_bool(body, "add_special_tokens", &add_special, rp) ||
	    !get_bool(body, "parse_special", &parse_special, rp))
		return;
	int rc = hearth_tokenize(srv->model, json_string_value(t), json_string_length(t), add_special, parse_special, &ids,
				 &n, &err);
	if (rc) {
		reply_lib_error(rp, rc, "content", &err);
		return;
	}
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (int32_t i = 0; ok && i < n; i++)
		ok = add(arr, json_integer(ids[i]));
	free(ids);
	arr = built(arr, ok);
	reply_json(rp, 200, arr ? json_pack("{s:o, s:i, s:i}", "tokens", arr, "count", n, "max_model_len", srv->sp.n_ctx_seq)
				: NULL);
}

void api_detokenize(struct server *srv, const struct call *call, struct reply *rp)
{
	json_t *body = call->body;
	struct hearth_err err = { 0 };
	json_t *t = json_object_get(body, "tokens"), *v;
	size_t i;
	char *text;
	if (!json_is_array(t)) {
		reply_error(rp, 400, "invalid_request_error", "tokens", t ? "invalid_type" : "missing_required_parameter",
			    "'tokens' must be an array of token ids");
		return;
	}
	int32_t *ids = malloc((json_array_size(t) + 1) * sizeof *ids);
	if (!ids) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return;
	}
	json_array_foreach(t, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= hearth_model_n_vocab(srv->model)) {
			free(ids);
			reply_error(rp, 400, "invalid_request_error", "tokens", "invalid_value",
				    "tokens[%zu] must be an integer id from 0 to %d", i, hearth_model_n_vocab(srv->model) - 1);
			return;
		}
		ids[i] = (int32_t)json_integer_value(v);
	}
	size_t len = 0;
	int rc = hearth_detokenize(srv->model, ids, (int32_t)json_array_size(t), false, &text, &len, &err);
	free(ids);
	if (rc) {
		reply_lib_error(rp, rc, "tokens", &err);
		return;
	}
	json_t *s = jstr(text, len);
	free(text);
	reply_json(rp, 200, json_pack("{s:O, s:o}", "content", s, "prompt", s));
}
