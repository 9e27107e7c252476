/*
 * params.c - the fields both completion endpoints read, into struct params.
 * Each field is optional (absent or null: the default); a field of the wrong
 * kind or out of its range is a 400 that names it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "openai.h"

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

void params_free(struct params *p)
{
	for (int i = 0; i < p->n_stops; i++)
		free(p->stops[i]);
	p->n_stops = 0;
	free(p->salt);
	p->salt = NULL;
	free(p->gbnf);
	p->gbnf = NULL;
	if (p->n_lora)
		hearth_lora_free(p->lora.lora);
	p->n_lora = 0;
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

bool params_bool(json_t *b, const char *key, bool *out, struct reply *rp)
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

/* The sampling fields, max_tokens, n and the flags. */
static bool parse_sampling(json_t *b, struct params *p, struct reply *rp)
{
	double temp = 1.0, top_p = 1.0, min_p = 0, rep = 1.0, fp = 0, pp = 0;
	long long top_k = 0, max_tokens = -1, mct = -1, seed = -1, n = 1;
	if (!get_num(b, "temperature", 0, 2, &temp, rp) || !get_num(b, "top_p", 0, 1, &top_p, rp) ||
	    !get_num(b, "min_p", 0, 1, &min_p, rp) || !get_num(b, "repeat_penalty", 0.01, 10, &rep, rp) ||
	    !get_num(b, "frequency_penalty", -2, 2, &fp, rp) || !get_num(b, "presence_penalty", -2, 2, &pp, rp) ||
	    !get_int(b, "top_k", -1, 1 << 30, &top_k, rp) || !get_int(b, "max_tokens", 0, INT32_MAX, &max_tokens, rp) ||
	    !get_int(b, "max_completion_tokens", 1, INT32_MAX, &mct, rp) ||
	    !get_int(b, "seed", INT64_MIN, INT64_MAX, &seed, rp) || !get_int(b, "n", 1, MAX_PROMPTS, &n, rp) ||
	    !params_bool(b, "stream", &p->stream, rp) || !params_bool(b, "echo", &p->echo, rp) ||
	    !params_bool(b, "ignore_eos", &p->ignore_eos, rp) || !params_bool(b, "uncertainty", &p->uncertainty, rp))
		return false;
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
	return true;
}

/* chat: logprobs is a bool plus top_logprobs 0..20; completions: logprobs is an integer 0..5. */
static bool parse_logprobs(json_t *b, bool chat, struct params *p, struct reply *rp)
{
	long long tl = -1;
	if (!chat) {
		if (!get_int(b, "logprobs", 0, 5, &tl, rp))
			return false;
		p->logprobs = tl >= 0;
		p->top_logprobs = (int32_t)tl;
		return true;
	}
	if (!params_bool(b, "logprobs", &p->logprobs, rp) || !get_int(b, "top_logprobs", 0, 20, &tl, rp))
		return false;
	if (tl >= 0 && !p->logprobs) {
		reply_error(rp, 400, "invalid_request_error", "top_logprobs", "invalid_value",
			    "'top_logprobs' requires 'logprobs' to be true");
		return false;
	}
	p->top_logprobs = p->logprobs ? (int32_t)(tl < 0 ? 0 : tl) : -1;
	return true;
}

static bool parse_stream_options(json_t *b, struct params *p, struct reply *rp)
{
	json_t *so = json_object_get(b, "stream_options");
	if (!so || json_is_null(so))
		return true;
	if (!json_is_object(so)) {
		reply_error(rp, 400, "invalid_request_error", "stream_options", "invalid_type",
			    "'stream_options' must be an object");
		return false;
	}
	return params_bool(so, "include_usage", &p->include_usage, rp);
}

/* Keeps one stop string (empty ones stop nothing and are dropped). */
static bool add_stop(struct params *p, json_t *s, struct reply *rp)
{
	if (!json_string_length(s))
		return true;
	if (json_string_length(s) > MAX_STOP_BYTES) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_value",
			    "a stop sequence may hold at most %d bytes", MAX_STOP_BYTES);
		return false;
	}
	if (!(p->stops[p->n_stops] = strdup(json_string_value(s)))) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	p->n_stops++;
	return true;
}

/* stop: a string or at most 4 of them. */
static bool parse_stop(json_t *b, struct params *p, struct reply *rp)
{
	json_t *stop = json_object_get(b, "stop"), *s;
	size_t i;
	if (!stop || json_is_null(stop))
		return true;
	if (has_nul(stop)) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_value", "'stop' must not contain NUL characters");
		return false;
	}
	if (json_is_string(stop))
		return add_stop(p, stop, rp);
	if (json_is_array(stop) && json_array_size(stop) > 4) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_value", "'stop' allows at most 4 sequences");
		return false;
	}
	bool ok = json_is_array(stop);
	json_array_foreach(stop, i, s)
		ok = ok && json_is_string(s);
	if (!ok) {
		reply_error(rp, 400, "invalid_request_error", "stop", "invalid_type",
			    "'stop' must be a string or a list of strings");
		return false;
	}
	json_array_foreach(stop, i, s)
		if (!add_stop(p, s, rp))
			return false;
	return true;
}

/* logit_bias: token id (as a string) -> a number from -100 to 100. */
static bool parse_logit_bias(struct served_model *sm, json_t *b, struct params *p, struct reply *rp)
{
	json_t *lb = json_object_get(b, "logit_bias"), *v;
	const char *k;
	if (!lb || json_is_null(lb))
		return true;
	if (!json_is_object(lb) || json_object_size(lb) > 1024) {
		reply_error(rp, 400, "invalid_request_error", "logit_bias", "invalid_type",
			    "'logit_bias' must be an object of at most 1024 token ids");
		return false;
	}
	json_object_foreach(lb, k, v) {
		char *end;
		long id = strtol(k, &end, 10);
		double bias = json_number_value(v);
		if (*end || end == k || !(*k >= '0' && *k <= '9') || id < 0 || id >= hearth_model_n_vocab(sm->model) || !json_is_number(v) ||
		    !(bias >= -100 && bias <= 100)) {
			reply_error(rp, 400, "invalid_request_error", "logit_bias", "invalid_value",
				    "'logit_bias' maps token ids (0..%d) to numbers from -100 to 100; '%.32s' is not valid",
				    hearth_model_n_vocab(sm->model) - 1, k);
			return false;
		}
		p->bias_ids[p->n_bias] = (int32_t)id;
		p->bias[p->n_bias++] = (float)bias;
	}
	return true;
}

bool params_parse(struct served_model *sm, json_t *b, bool chat, const char *tenant, struct params *p, struct reply *rp)
{
	const char *model = NULL, *user = NULL, *cache_key = NULL, *cache_salt = NULL;
	memset(p, 0, sizeof *p);
	if (!get_str(b, "model", &model, rp) || !get_str(b, "user", &user, rp) ||
	    !get_str(b, "prompt_cache_key", &cache_key, rp) || !get_str(b, "cache_salt", &cache_salt, rp) ||
	    !get_str(b, "cache", &p->cache_name, rp))
		return false;
	p->tenant = tenant;
	(void)model; /* read (its type checked) when the model was chosen: api_model_acquire */
	/* user and prompt_cache_key are affinity keys for proxies in front: accepted, not needed here */
	if (!parse_sampling(b, p, rp))
		return false;
	p->echo = p->echo && !chat; /* a completions field */
	if (p->max_tokens == 0 && !p->echo) { /* OpenAI's legacy API: 0 with echo generates nothing */
		reply_error(rp, 400, "invalid_request_error", "max_tokens", "invalid_value",
			    "'max_tokens' must be at least 1 (0 only with 'echo' on /v1/completions)");
		return false;
	}
	return parse_logprobs(b, chat, p, rp) && parse_stream_options(b, p, rp) &&
	       parse_stop(b, p, rp) && parse_logit_bias(sm, b, p, rp) && set_salt(p, tenant, cache_salt, rp) &&
	       constrain_parse(b, p, rp) && hidden_parse(sm, b, p, rp) && steer_parse(sm, b, &p->steering, rp) &&
	       adapters_parse(sm, b, &p->lora, &p->n_lora, rp);
}
