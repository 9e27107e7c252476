/*
 * openai.h - what the OpenAI endpoints share (internal to server/):
 *
 *   params.c   a request's JSON fields -> struct params (each error names its field)
 *   gen.c      one generation: submit, token events, stop strings, text and logprobs
 *   stream.c   the generations of a request as server-sent events
 *   shapes.c   OpenAI's JSON shapes: choices, logprobs, usage, models
 *   buf.c      a growable byte buffer (jsonb.c, checked JSON building, is in server.h)
 *
 * Every builder returns NULL (or false) when memory runs out, and callers pass
 * that on: a reply that cannot be built whole is a 500 or a cut stream, never
 * a partial answer.
 */
#ifndef HEARTH_SERVER_OPENAI_H
#define HEARTH_SERVER_OPENAI_H

#include "server.h"

#define MAX_STOPS 8
#define MAX_STOP_BYTES 1024 /* each is searched for at every token */
#define MAX_PROMPTS 16

/* hidden-http.c: the "hidden_states" field */
#define HIDDEN_MAX_LAYERS 64
enum { HIDDEN_ALL, HIDDEN_PROMPT, HIDDEN_GENERATED };
struct hidden_opts {
	int32_t layers[HIDDEN_MAX_LAYERS]; /* as asked (negative: from the end) */
	int32_t n;                         /* 0: none asked */
	bool f16;
	int tokens;                        /* HIDDEN_ALL, _PROMPT or _GENERATED */
	int32_t lens_top;                  /* "logit_lens": top tokens per layer and position (0: none) */
};

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
	bool echo;                 /* completions: the prompt leads the text (and its logprobs, with logprobs) */
	bool uncertainty;          /* each token's entropy and rank (docs/API.md) */
	bool ignore_eos;           /* llama.cpp's extension: keep going past end-of-text */
	char *salt;                /* prefix-cache tenant: the API key, then the request's cache_salt */
	size_t salt_len;
	char *gbnf;                /* the answer's grammar (constrain.c), NULL: none */
	const char *gbnf_rule;     /* its start rule */
	const char *gbnf_param;    /* the field it came from, for errors */
	bool gbnf_frame;           /* chat: still to be framed (reasoning first) */
	const char *cache_name;    /* "cache": a saved state to start from (api-cache.c), NULL: none */
	const char *tenant;        /* the API key that let the request in, NULL: none */
	struct hidden_opts hidden; /* "hidden_states" (hidden-http.c) */
	struct hearth_steering steering; /* "steering" (steer.c); the vectors are the model's */
	struct hearth_lora_use lora;     /* "lora" or "model": "BASE+NAME" (adapters.c); a reference held */
	int32_t n_lora;
};


/* A chat request's tools (chat-vars.c). */
enum tool_choice { TOOL_CHOICE_AUTO, TOOL_CHOICE_NONE, TOOL_CHOICE_REQUIRED, TOOL_CHOICE_NAMED };
struct chat_tools {
	json_t *tools;           /* the request's "tools" (borrowed), NULL when none or tool_choice is "none" */
	enum tool_choice choice;
	const char *named;       /* TOOL_CHOICE_NAMED: the function (borrowed) */
	bool parallel;           /* parallel_tool_calls */
};
/* The variables of a chat request's template (new reference in *vars):
 * messages as templates read them, tools, add_generation_prompt, and the
 * request's chat_template_kwargs / reasoning_effort; false after an error
 * reply naming the field. */
bool chat_vars_build(json_t *body, json_t **vars, struct chat_tools *tc, struct reply *rp);

/* One choice's answer read as OpenAI's message fields (chat-out.c). */
struct chat_out {
	struct hearth_chat_reader *r;
	int n_calls;       /* calls sent, numbered 0, 1, ... */
	uint64_t emitted;  /* the reader's call indices sent */
	char *pend_name;   /* a call begun, held until its arguments close */
	char pend_id[40];
	int32_t pend_index;
	bool one_call;     /* parallel_tool_calls false */
};
/* A reader for an answer to prompt; tools_json NULL: no tools (reasoning only). */
int chat_out_init(struct chat_out *o, struct served_model *sm, const struct hearth_chat_prompt *prompt, const char *tools_json,
		  size_t tools_len, bool parallel, struct hearth_err *err);
void chat_out_free(struct chat_out *o);
/* Reads len more bytes of the answer (final: it ended) and adds what they
 * settle to delta: "content", "reasoning_content", "tool_calls". False when
 * out of memory. */
bool chat_out_delta(struct chat_out *o, const char *text, size_t len, bool final, json_t *delta);
/* The whole answer into msg's "content" (null when only calls), "reasoning_content", "tool_calls". */
bool chat_out_message(struct chat_out *o, const char *text, size_t len, json_t *msg);

struct tok_lp {
	int32_t id;
	float lp;
	int32_t n_top;
	int32_t top_ids[HEARTH_MAX_TOP_LOGPROBS];
	float top_lp[HEARTH_MAX_TOP_LOGPROBS];
	size_t text_offset;
	float entropy;             /* with uncertainty */
	int32_t rank;
	bool no_lp;                /* an echoed first prompt token: nothing before it to score it (null) */
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
	size_t lp_sent;           /* streaming: entries of lps already sent */
	int32_t hid_sent;         /* streaming: hidden-state positions already sent (up to this one) */
	int finish;               /* enum hearth_finish, 0 while running */
	bool stopped;             /* ended by a stop string */
	bool failed;              /* out of memory keeping its text: ends with HEARTH_FINISH_ERROR */
	double t_submit, t_first, t_last;
	char *prompt_text;        /* completions echo */
	size_t prompt_len;
	struct hearth_detok *echo_dt; /* echo with logprobs: the prompt's tokens' text offsets */
	size_t echo_off;          /* the next prompt token's offset, in the pieces' bytes */
	size_t echo_lead;         /* bytes the echoed text drops at its start (SentencePiece's leading space) */
};


/* How a stream's events are written: OpenAI's server-sent events (stream.c),
 * or Ollama's NDJSON lines (ollama-wire.c). */
struct stream_wire {
	const char *content_type;
	/* queues what choice i has ready (lp_from: its first logprob not yet sent) */
	void (*emit)(struct stream *st, int i, size_t lp_from);
	void (*end)(struct stream *st); /* queues the end (sets st->done) */
};

struct stream {
	struct server *srv;
	struct served_model *sm;  /* held: released by stream_free */
	const struct stream_wire *wire;
	double t_start;       /* hearth_now() when the request came */
	double load_s;        /* seconds it waited for its model to load */
	double keep_s;        /* models_release's keep_s (Ollama's keep_alive; -1: the default) */
	bool think;           /* Ollama: reasoning goes to "thinking" (else it is dropped) */
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
	struct chat_out reader[MAX_PROMPTS]; /* chat: each choice's answer reader (r NULL: none) */
	bool done;            /* [DONE] queued */
	bool broken;          /* a chunk could not be built: the stream ends cut, never with [DONE] */
	const char *route;    /* its usage name (usage.h), NULL: not recorded */
	struct usage_mark {   /* where its CPU share is measured from (usage.c) */
		double t, cpu;
		uint64_t tokens;
	} mark;
};


/* constrain.c: response_format / grammar into p (params_parse calls it);
 * for chat, a forced tool call and the frame around the answer (after the
 * prompt is rendered); each choice's compiled grammar (*g NULL: none). Each
 * false after an error reply. */
bool constrain_parse(json_t *b, struct params *p, struct reply *rp);
bool constrain_chat(struct served_model *sm, const struct chat_tools *tc, const struct hearth_chat_prompt *pr,
		    struct params *p, struct reply *rp);
bool constrain_grammar(struct served_model *sm, const struct params *p, struct hearth_grammar **g, struct reply *rp);

/* api-openai.c: what Ollama's chat shares with OpenAI's */
#define MODELS_WAIT_S 30.0 /* a request waits this long for room to load its model */
/* The chat request's prompt: vars rendered through sm's chat template and
 * tokenized, the context as a ceiling; false after an error reply. */
bool api_chat_prompt(struct served_model *sm, json_t *vars, struct hearth_chat_prompt *pr, struct reply *rp);
/* A reader per choice of st for the answers (tc->tools: what the model may call). */
bool api_chat_readers(struct stream *st, const struct hearth_chat_prompt *pr, const struct chat_tools *tc,
		      struct reply *rp);

/* params.c */
/* Reads the fields both completion endpoints share into p (zeroed first).
 * chat: logprobs is a bool plus top_logprobs; completions: an integer 0..5.
 * tenant: the API key that let the request in (NULL: none). False after a
 * 400 reply naming the field; p is then freed with params_free. */
bool params_parse(struct served_model *sm, json_t *b, bool chat, const char *tenant, struct params *p, struct reply *rp);
void params_free(struct params *p);
/* A request's "steering" field (absent or null: every loaded vector, strength 1)
 * into *out; false after a 400 reply naming the problem (steer.c). */
bool steer_parse(struct served_model *sm, json_t *body, struct hearth_steering *out, struct reply *rp);
/* A request's adapter ("lora": NAME, or "model": "BASE+NAME") into *use with
 * a reference taken (*n_use 1), or none (*n_use 0); false after the reply
 * (404 for an adapter that is not loaded). */
bool adapters_parse(struct served_model *sm, json_t *body, struct hearth_lora_use *use, int32_t *n_use,
		    struct reply *rp);
/* Reads the optional boolean field key of b into *out; false after a 400 reply. */
bool params_bool(json_t *b, const char *key, bool *out, struct reply *rp);

/* gen.c */
/* Submits prompt ids as choice number `choice`; false after an error reply
 * (what: "messages" or "prompt", for the over-length error). */
bool gen_start(struct served_model *sm, const struct params *p, struct gen *g, const int32_t *ids, int32_t n, int choice,
	       const char *what, struct reply *rp);
/* Waits for g's next event (cancelling when the client at fd left); false when the request is over. */
bool gen_wait(struct served_model *sm, const struct params *p, struct gen *g, int fd);
/* Bytes of g's text safe to send now (a stop string may still be forming after them). */
size_t gen_sendable(const struct params *p, const struct gen *g);
/* Ends g early: it could not keep what the model produced (HEARTH_FINISH_ERROR). */
void gen_fail(struct gen *g);
void gen_free(struct served_model *sm, struct gen *g);

/* stream.c: a request's generations (streamed or not) and their SSE output.
 * stream_new takes over the hold on sm (released by stream_free, or at
 * once when it returns NULL). */
struct stream *stream_new(struct served_model *sm, bool chat, const struct call *call);
/* Queues text as it is (a failure breaks the stream). */
void stream_put(struct stream *st, const char *s, size_t n);
/* Queues j (taken over) as one JSON text followed by suffix ("\n" or "\n\n"), after prefix (or NULL). */
void stream_push_json(struct stream *st, const char *prefix, json_t *j, const char *suffix);
/* Runs the started generations to the end (not streaming); false after a
 * 500 reply when one could not be finished for lack of memory. */
bool stream_run_all(struct stream *st, int fd, struct reply *rp);

/* shapes.c: NULL when out of memory */
const char *shape_finish_name(int finish);
/* unc: with each token's entropy and rank (the request's uncertainty) */
json_t *shape_chat_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n, bool unc);
json_t *shape_completion_logprobs(struct served_model *sm, const struct tok_lp *l, size_t n, bool unc);
/* Uncertainty without logprobs: {"content": [{"token", "entropy", "rank"}]}. */
json_t *shape_uncertainty(struct served_model *sm, const struct tok_lp *l, size_t n);
/* What a choice carries beside its text: "logprobs" (null when not asked) and,
 * with uncertainty but no logprobs, "uncertainty"; false when out of memory. */
bool shape_choice_extras(struct stream *st, struct gen *g, size_t from, json_t *choice);
json_t *shape_usage(const struct gen *g, int n);
json_t *shape_chat_reply(struct stream *st);
json_t *shape_completion_reply(struct stream *st);
json_t *shape_model(struct models *ms, struct served_model *sm);

/* buf.c */
/* Appends s[0..n) to the growable buffer *buf (NUL-terminated); -1 when out of memory (nothing changes). */
int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

/* ---- api-embed.c: pooled vectors of inputs (/v1/embeddings, /v1/rerank) ---- */

/* One prompt of /v1/completions (and what /v1/cache saves): a string, tokenized
 * with the context as a ceiling, or an array of token ids checked against the
 * vocabulary; *ids malloc'd. False after an error reply. */
bool api_prompt_ids(struct served_model *sm, json_t *p, int32_t **ids, int32_t *n, struct reply *rp);

/* api-score.c: what /v1/attribute shares with /v1/score. One side ("prompt"
 * or "completion") of body: a string (tokenized, bos as asked, at most max
 * tokens) or an array of ids; *ids malloc'd; false after an error reply. */
bool score_ids(struct served_model *sm, json_t *body, const char *key, bool bos, int32_t max, int32_t **ids, int32_t *n,
	       struct reply *rp);
/* body's "prompt" and "completion" as /v1/score reads them (two strings:
 * the joined text's tokens split where they leave the prompt's), at least
 * one token each; both malloc'd; false after an error reply. */
bool score_read(struct served_model *sm, json_t *body, int32_t max, int32_t **p_ids, int32_t *n_p, int32_t **c_ids,
		int32_t *n_c, struct reply *rp);

#define EMBED_MAX_INPUTS 2048 /* inputs of one embeddings or rerank request, as OpenAI's limit */

struct embed_inputs {
	int32_t **ids;    /* [n] each input's tokens */
	int32_t *n_ids;   /* [n] */
	int32_t n;
};
struct embed_opts {
	int pooling;      /* HEARTH_POOLING_MEAN, _CLS, _LAST or (none_ok) _NONE: every token's */
	bool none_ok;     /* set before parsing: "none" is allowed */
	int32_t layer;    /* the layer (negative: from the end) */
	bool final_norm;  /* through the final norm first (no "layer" given) */
	bool normalize;   /* L2-normalized vectors ("normalize", default true) */
};
/* key's value: a string, an array of strings, ids, or arrays of ids; false after an error reply. */
bool embed_inputs_parse(struct served_model *sm, json_t *v, const char *key, struct embed_inputs *in,
			struct reply *rp);
void embed_inputs_free(struct embed_inputs *in);
/* "pooling", "layer" and "normalize" of body; false after an error reply. */
bool embed_opts_parse(struct served_model *sm, json_t *body, struct embed_opts *o, struct reply *rp);
/* The pooled (not yet normalized) vectors of in into out[i]: n_embd floats
 * (HEARTH_POOLING_NONE: n_ids[i] rows of them) each; one scheduler request
 * per input; false after an error reply. */
bool embed_run(struct served_model *sm, const struct call *call, const struct embed_inputs *in,
	       const struct embed_opts *o, float *const *out, struct reply *rp);
/* v /= |v| (a zero vector stays zero). */
void embed_normalize(float *v, int32_t n);

/* hidden-http.c: "hidden_states" of b into p->hidden (after the stream flag
 * is read); false after an error reply. */
bool hidden_parse(struct served_model *sm, json_t *b, struct params *p, struct reply *rp);
/* A choice's "hidden_states" object: when finished, or streamed, the
 * positions not sent yet (g->hid_sent advances); NULL when out of memory. */
json_t *hidden_shape(struct served_model *sm, const struct params *p, struct gen *g);
/* Has a streamed choice hidden states to send? */
bool hidden_pending(const struct params *p, const struct gen *g);

#endif /* HEARTH_SERVER_OPENAI_H */
