/*
 * ollama-wire.c - Ollama's requests and replies around the OpenAI path.
 *
 * A request is rewritten into the fields the OpenAI endpoints read (so that
 * params.c, chat-vars.c and constrain.c check it as they check those):
 * options.num_predict -> max_tokens, temperature, top_p, top_k, min_p, seed,
 * stop, repeat_penalty, presence_penalty, frequency_penalty as they are;
 * format "json" -> response_format json_object, a schema -> json_schema;
 * think -> the template variable enable_thinking; a message's thinking ->
 * reasoning_content, tool_name -> name; logprobs, top_logprobs (Ollama
 * 0.12), and hearth's uncertainty and steering as they are. Options that tune the runtime
 * (num_ctx, num_thread, num_gpu, ...) are the server's to set and are
 * ignored, as Ollama ignores options a runner does not use. Images are
 * refused: hearth runs no vision model.
 *
 * Replies are NDJSON: one object per line, {"model", "created_at",
 * "message": {"role", "content", "thinking"?, "tool_calls"?}, "done": false}
 * (generate: "response" instead of "message"), then a last line with
 * "done": true, "done_reason" and the counts and durations (nanoseconds).
 * With logprobs, each line carries "logprobs": [{"token", "logprob",
 * "bytes", "top_logprobs"}] for the tokens it brings (the whole reply: all).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ollama.h"

static const char *const same_options[] = { "temperature", "top_p", "top_k", "min_p", "seed", "stop",
					    "repeat_penalty", "presence_penalty", "frequency_penalty" };
/* Top-level fields read as the OpenAI chat endpoint reads them (params.c checks them). */
static const char *const same_fields[] = { "logprobs", "top_logprobs", "uncertainty", "steering" };

/* options into out; false after an error reply. */
static bool wire_options(json_t *opts, json_t *out, struct reply *rp)
{
	if (!opts || json_is_null(opts))
		return true;
	if (!json_is_object(opts)) {
		reply_error(rp, 400, "invalid_request_error", "options", "invalid_type", "'options' must be an object");
		return false;
	}
	bool ok = true;
	for (size_t i = 0; ok && i < sizeof same_options / sizeof same_options[0]; i++) {
		json_t *v = json_object_get(opts, same_options[i]);
		if (v && !json_is_null(v))
			ok = !json_object_set(out, same_options[i], v);
	}
	json_t *np = json_object_get(opts, "num_predict");
	if (ok && np && !json_is_null(np)) {
		if (!json_is_integer(np)) {
			reply_error(rp, 400, "invalid_request_error", "options.num_predict", "invalid_type",
				    "'options.num_predict' must be an integer");
			return false;
		}
		if (json_integer_value(np) > 0) /* -1 (and -2): up to the context */
			ok = !json_object_set(out, "max_tokens", np);
	}
	if (!ok)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return ok;
}

/* format: "json", a JSON schema, or "" / null for none. */
static bool wire_format(json_t *f, json_t *out, struct reply *rp)
{
	json_t *rf = NULL;
	if (!f || json_is_null(f) || (json_is_string(f) && json_string_length(f) == 0))
		return true;
	if (json_is_string(f) && !strcmp(json_string_value(f), "json"))
		rf = json_pack("{s:s}", "type", "json_object");
	else if (json_is_object(f))
		rf = json_pack("{s:s, s:{s:s, s:O}}", "type", "json_schema", "json_schema", "name", "format", "schema", f);
	else {
		reply_error(rp, 400, "invalid_request_error", "format", "invalid_value",
			    "'format' must be \"json\" or a JSON schema object");
		return false;
	}
	if (!jsonb_set(out, "response_format", rf)) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	return true;
}

/* Does a message carry images (a non-empty "images")? */
static bool has_images(json_t *m)
{
	json_t *im = json_object_get(m, "images");
	return im && !json_is_null(im) && !(json_is_array(im) && json_array_size(im) == 0);
}

/* Ollama's messages as the OpenAI path reads them (new reference), or NULL after an error reply. */
static json_t *wire_messages(json_t *msgs, struct reply *rp)
{
	size_t i;
	json_t *m, *out = json_array();
	if (!json_is_array(msgs)) {
		json_decref(out);
		reply_error(rp, 400, "invalid_request_error", "messages", "invalid_type", "'messages' must be an array");
		return NULL;
	}
	json_array_foreach(msgs, i, m) {
		json_t *c = json_is_object(m) ? json_copy(m) : json_incref(m); /* not an object: chat-vars says so */
		if (json_is_object(m) && has_images(m)) {
			json_decref(c);
			json_decref(out);
			reply_error(rp, 400, "invalid_request_error", "messages", "invalid_value",
				    "messages[%zu].images: this server runs no vision model", i);
			return NULL;
		}
		bool ok = c != NULL;
		if (ok && json_is_object(c)) {
			json_t *th = json_object_get(c, "thinking"), *tn = json_object_get(c, "tool_name");
			ok = (!th || !json_object_set(c, "reasoning_content", th)) && (!tn || !json_object_set(c, "name", tn));
			json_object_del(c, "thinking");
			json_object_del(c, "tool_name");
			json_object_del(c, "images");
		}
		if (!ok || !jsonb_add(out, c)) {
			json_decref(out);
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			return NULL;
		}
	}
	return out;
}

/* generate's prompt (and system) as one user turn. */
static json_t *wire_prompt(json_t *body, struct reply *rp)
{
	json_t *sys = json_object_get(body, "system"), *prompt = json_object_get(body, "prompt");
	if ((sys && !json_is_null(sys) && !json_is_string(sys)) || !json_is_string(prompt)) {
		reply_error(rp, 400, "invalid_request_error", json_is_string(prompt) ? "system" : "prompt", "invalid_type",
			    "'prompt' and 'system' must be strings");
		return NULL;
	}
	json_t *msgs = json_array();
	bool ok = msgs != NULL;
	if (ok && json_is_string(sys) && json_string_length(sys))
		ok = jsonb_add(msgs, json_pack("{s:s, s:O}", "role", "system", "content", sys));
	ok = ok && jsonb_add(msgs, json_pack("{s:s, s:O}", "role", "user", "content", prompt));
	if (!ok)
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
	return jsonb_done(msgs, ok);
}

bool ollama_wire_body(json_t *body, bool chat, json_t **out, struct reply *rp)
{
	json_t *o = json_object(), *think = json_object_get(body, "think"), *v;
	*out = NULL;
	if (!o) {
		reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		return false;
	}
	bool ok = wire_options(json_object_get(body, "options"), o, rp) && wire_format(json_object_get(body, "format"), o, rp);
	if (ok && (v = json_object_get(body, "stream")) && !json_is_null(v) && !json_is_boolean(v)) {
		reply_error(rp, 400, "invalid_request_error", "stream", "invalid_type", "'stream' must be a boolean");
		ok = false;
	}
	/* streaming is the default */
	ok = ok && !json_object_set_new(o, "stream", json_boolean(!json_is_false(json_object_get(body, "stream"))));
	/* the adapter, by "model": "BASE+NAME" or "lora" (adapters.c reads them) */
	for (int i = 0; ok && i < 2; i++)
		if ((v = json_object_get(body, i ? "lora" : "model")))
			ok = !json_object_set(o, i ? "lora" : "model", v);
	if (ok && think && !json_is_null(think)) {
		if (!json_is_boolean(think)) { /* "high"/"low" (gpt-oss) ride on reasoning_effort */
			ok = json_is_string(think) && !json_object_set(o, "reasoning_effort", think);
		} else {
			ok = jsonb_set(o, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", json_is_true(think)));
		}
		if (!ok)
			reply_error(rp, 400, "invalid_request_error", "think", "invalid_type",
				    "'think' must be a boolean or \"high\", \"medium\", \"low\"");
	}
	for (size_t i = 0; ok && i < sizeof same_fields / sizeof same_fields[0]; i++)
		if ((v = json_object_get(body, same_fields[i])) && !json_is_null(v) && json_object_set(o, same_fields[i], v)) {
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
			ok = false;
		}
	if (ok && chat) {
		json_t *tools = json_object_get(body, "tools");
		json_t *msgs = wire_messages(json_object_get(body, "messages"), rp);
		ok = msgs && jsonb_set(o, "messages", msgs) && (!tools || !json_object_set(o, "tools", tools));
	} else if (ok) {
		json_t *msgs = wire_prompt(body, rp);
		ok = msgs && jsonb_set(o, "messages", msgs);
	}
	if (!ok) {
		if (!rp->body)
			reply_error(rp, 500, "server_error", NULL, NULL, "out of memory");
		json_decref(o);
		return false;
	}
	*out = o;
	return true;
}

/* A Go-style duration ("300ms", "1.5h", "2h45m", "-1m"), or bare seconds ("-1", "60"), in seconds;
 * false when it is neither. */
static bool parse_duration(const char *s, double *out)
{
	double total = 0, sign = 1;
	char *end;
	if (*s && strspn(s, "+-.0123456789") == strlen(s)) {
		*out = strtod(s, &end);
		return *end == 0 && end != s && isfinite(*out);
	}
	if (*s == '-' || *s == '+')
		sign = *s++ == '-' ? -1 : 1;
	if (!*s)
		return false;
	while (*s) {
		if (!((*s >= '0' && *s <= '9') || *s == '.'))
			return false;
		double v = strtod(s, &end);
		if (end == s)
			return false;
		s = end;
		double unit = !strncmp(s, "ns", 2) ? 1e-9 : !strncmp(s, "us", 2) || !strncmp(s, "\xc2\xb5s", 3) ? 1e-6
			    : !strncmp(s, "ms", 2) ? 1e-3 : *s == 's' ? 1 : *s == 'm' ? 60 : *s == 'h' ? 3600 : 0;
		if (unit == 0)
			return false;
		s += !strncmp(s, "\xc2\xb5s", 3) ? 3 : (s[1] == 's' && s[0] != 's') ? 2 : 1;
		total += v * unit;
	}
	*out = sign * total;
	return isfinite(*out);
}

bool ollama_wire_keep_alive(json_t *body, double *keep_s, struct reply *rp)
{
	json_t *k = json_object_get(body, "keep_alive");
	double v = 0;
	*keep_s = -1;
	if (!k || json_is_null(k))
		return true;
	if (json_is_number(k))
		v = json_number_value(k);
	else if (!json_is_string(k) || !parse_duration(json_string_value(k), &v)) {
		reply_error(rp, 400, "invalid_request_error", "keep_alive", "invalid_value",
			    "'keep_alive' must be seconds or a duration such as \"5m\" (negative: forever)");
		return false;
	}
	*keep_s = v < 0 ? INFINITY : v;
	return true;
}

void ollama_wire_time(char *buf, size_t size, double unix_s)
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	char day[40];
	long ns = (long)((unix_s - (double)t) * 1e9);
	gmtime_r(&t, &tm);
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%09ldZ", day, ns < 0 ? 0 : ns > 999999999 ? 999999999 : ns);
}

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* {"model", "created_at"} to which a reply adds its fields. */
static json_t *wire_head(const char *model)
{
	char when[64];
	ollama_wire_time(when, sizeof when, unix_now());
	return json_pack("{s:s, s:s}", "model", model, "created_at", when);
}

/* OpenAI message fields (delta or message) as Ollama's message (new reference). */
static json_t *wire_message(json_t *m)
{
	json_t *content = json_object_get(m, "content"), *reasoning = json_object_get(m, "reasoning_content");
	json_t *calls = json_object_get(m, "tool_calls"), *c;
	size_t i;
	json_t *out = json_pack("{s:s, s:o}", "role", "assistant", "content",
				json_is_string(content) ? json_incref(content) : json_string(""));
	bool ok = out != NULL;
	if (ok && json_is_string(reasoning))
		ok = !json_object_set(out, "thinking", reasoning);
	if (ok && json_array_size(calls)) {
		json_t *oc = json_array();
		ok = oc != NULL;
		json_array_foreach(calls, i, c) {
			json_t *fn = json_object_get(c, "function"), *args = json_object_get(fn, "arguments");
			json_t *a = json_is_string(args) ? json_loadb(json_string_value(args), json_string_length(args), 0, NULL) : NULL;
			if (!ok)
				break;
			ok = jsonb_add(oc, json_pack("{s:{s:O, s:o}}", "function", "name", json_object_get(fn, "name"),
						     "arguments", a ? a : json_object()));
		}
		ok = ok && jsonb_set(out, "tool_calls", oc);
	}
	return jsonb_done(out, ok);
}

static long long ns(double s)
{
	return s > 0 ? (long long)(s * 1e9) : 0;
}

/* The last fields: done, done_reason, counts and durations. */
static bool wire_stats(json_t *j, struct stream *st, const char *done_reason)
{
	const struct gen *g = &st->g[0];
	const double end = g->t_last > 0 ? g->t_last : hearth_now();
	const double first = g->t_first > 0 ? g->t_first : end;
	json_t *s = json_pack("{s:b, s:s, s:I, s:I, s:i, s:I, s:i, s:I}", "done", 1, "done_reason", done_reason,
			      "total_duration", ns(hearth_now() - st->t_start), "load_duration", ns(st->load_s),
			      "prompt_eval_count", g->n_prompt, "prompt_eval_duration", ns(first - g->t_submit), "eval_count",
			      g->n_gen, "eval_duration", ns(end - first));
	const bool ok = s && !json_object_update(j, s);
	json_decref(s);
	return ok;
}

static const char *done_reason(const struct gen *g)
{
	return g->finish == HEARTH_FINISH_LENGTH || g->finish == HEARTH_FINISH_TIMEOUT ? "length" : "stop";
}

/* One line of a chat (a message) or generate ("response", "thinking") reply. */
static json_t *wire_line(struct stream *st, json_t *fields)
{
	json_t *j = wire_head(st->sm->name);
	bool ok = j && fields;
	if (ok && st->chat) {
		ok = jsonb_set(j, "message", wire_message(fields));
	} else if (ok) {
		json_t *c = json_object_get(fields, "content"), *r = json_object_get(fields, "reasoning_content");
		ok = !json_object_set_new(j, "response", json_is_string(c) ? json_incref(c) : json_string("")) &&
		     (!json_is_string(r) || !json_object_set(j, "thinking", r));
	}
	return jsonb_done(j, ok);
}

/* Adds the logprobs of tokens lps[from..] to an Ollama reply line j:
 * "logprobs": [{"token", "logprob", "bytes", "top_logprobs"}] (Ollama 0.12's
 * shape: OpenAI chat's entry, top_logprobs left out when not asked), with
 * "entropy" and "rank" in each
 * when uncertainty is asked; uncertainty alone: "uncertainty": [{"token",
 * "entropy", "rank"}]. Nothing when neither is asked or no token is new. */
static bool wire_logprobs(struct stream *st, const struct gen *g, size_t from, json_t *j)
{
	if ((!st->p.logprobs && !st->p.uncertainty) || g->n_lps <= from)
		return true;
	json_t *lp = st->p.logprobs ? shape_chat_logprobs(st->sm, g->lps + from, g->n_lps - from, st->p.uncertainty)
				    : shape_uncertainty(st->sm, g->lps + from, g->n_lps - from);
	json_t *content = json_object_get(lp, "content"), *e;
	size_t i;
	json_array_foreach(content, i, e) /* Ollama leaves an empty list out */
		if (json_is_array(json_object_get(e, "top_logprobs")) && !json_array_size(json_object_get(e, "top_logprobs")))
			json_object_del(e, "top_logprobs");
	const bool ok = content && !json_object_set(j, st->p.logprobs ? "logprobs" : "uncertainty", content);
	json_decref(lp);
	return ok;
}

static void ndjson_emit(struct stream *st, int i, size_t lp_from)
{
	struct gen *g = &st->g[i];
	size_t upto = gen_sendable(&st->p, g);
	const bool fin = g->finish != 0;
	const bool lps = (st->p.logprobs || st->p.uncertainty) && g->n_lps > lp_from;
	if (upto <= g->sent && !fin && !lps)
		return;
	json_t *delta = json_object();
	bool ok = delta != NULL;
	const char *text = g->text ? g->text + g->sent : "";
	const size_t n = upto > g->sent ? upto - g->sent : 0;
	g->sent = upto > g->sent ? upto : g->sent;
	if (ok && st->reader[i].r)
		ok = chat_out_delta(&st->reader[i], text, n, fin, delta);
	else if (ok && n)
		ok = jsonb_set(delta, "content", jsonb_str(text, n));
	delta = jsonb_done(delta, ok);
	if (delta && json_object_size(delta) == 0 && !lps) {
		json_decref(delta); /* held back (a marker may be starting), or nothing new */
		return;
	}
	json_t *line = delta ? wire_line(st, delta) : NULL;
	json_decref(delta);
	if (line && (!jsonb_set(line, "done", json_false()) || !wire_logprobs(st, g, lp_from, line))) {
		json_decref(line);
		line = NULL;
	}
	stream_push_json(st, NULL, line, "\n");
}

static void ndjson_end(struct stream *st)
{
	json_t *empty = json_object();
	json_t *j = empty ? wire_line(st, empty) : NULL;
	json_decref(empty);
	if (j && !wire_stats(j, st, done_reason(&st->g[0]))) {
		json_decref(j);
		j = NULL;
	}
	stream_push_json(st, NULL, j, "\n");
	st->done = true;
}

static const struct stream_wire ndjson_wire = { "application/x-ndjson", ndjson_emit, ndjson_end };

void ollama_wire_stream(struct stream *st, bool chat)
{
	st->wire = &ndjson_wire;
	st->chat = chat;
}

json_t *ollama_wire_reply(struct stream *st)
{
	struct gen *g = &st->g[0];
	json_t *msg = json_object(), *j = NULL;
	bool ok = msg != NULL;
	if (ok && st->reader[0].r)
		ok = chat_out_message(&st->reader[0], g->text ? g->text : "", g->len, msg);
	else if (ok)
		ok = jsonb_set(msg, "content", jsonb_str(g->text ? g->text : "", g->len));
	msg = jsonb_done(msg, ok);
	j = msg ? wire_line(st, msg) : NULL;
	json_decref(msg);
	if (j && (!wire_stats(j, st, done_reason(g)) || !wire_logprobs(st, g, 0, j))) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

json_t *ollama_wire_done(struct served_model *sm, bool chat, const char *reason)
{
	json_t *j = wire_head(sm->name);
	bool ok = j && jsonb_set(j, "done", json_true()) && jsonb_set(j, "done_reason", json_string(reason));
	if (ok && chat)
		ok = jsonb_set(j, "message", json_pack("{s:s, s:s}", "role", "assistant", "content", ""));
	else if (ok)
		ok = jsonb_set(j, "response", json_string(""));
	return jsonb_done(j, ok);
}
