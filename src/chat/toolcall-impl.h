/* toolcall-impl.h - what the tool-call parser's files share: the parser
 * object, the family table, and the helpers family files call.
 *
 * The parser keeps the text it has not settled yet in buf (what arrived and
 * is neither emitted nor dropped). A family either uses the generic engine
 * (toolcall.c): reasoning at the start, content scanned for its markers, a
 * call "block" from its opener to where block_end says it ends, parsed whole
 * by parse_block; or drives buf itself with step (harmony, functionary).
 * Every decision looks only at the text (never at how it was split): a step
 * that cannot decide yet returns 0 and waits for more.
 */
#ifndef HEARTH_TOOLCALL_IMPL_H
#define HEARTH_TOOLCALL_IMPL_H

#include "toolcall.h"

struct tc_parser;

/* A call as a family's parser read it, before it is checked and committed. */
struct tc_pcall {
	char *name;
	json_t *args; /* an object (owned) */
	char id[32];  /* the model's own id when the syntax carries one, else "" */
};
struct tc_plist {
	struct tc_pcall v[TC_MAX_CALLS];
	int n;
};
void tc_plist_reset(struct tc_plist *l);
/* Appends a call (takes args; copies name). 1 when the list is full; <0 on ENOMEM. */
int tc_plist_add(struct tc_plist *l, const char *name, size_t name_len, json_t *args, const char *id,
		 struct hearth_err *err);

struct tc_family {
	enum tc_format format;
	const char *name;
	const char *opener;      /* tc_call_opener */
	const char *think_open;  /* reasoning block at the start of the output, or NULL */
	const char *think_close;
	const char *block_open;  /* marker that opens a call block in content, or NULL */
	const char *drops[4];    /* markers dropped from content (sections around calls), NULL-ended */
	bool json_at_start;      /* an answer that starts with '{' is a call block (Llama 3) */
	bool mistral_ids;        /* 9-character ids */
	/* Where a block ends. s, n: the block's text after its opener. 1 and
	 * *body_len, *close_len when it ends (body_len + close_len <= n); 0 when
	 * more text is needed (never when eof); -1 when it is not a call. */
	int (*block_end)(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
	/* The call's name as soon as it is known: 1 and *off, *len; 0 need more; -1 none. Optional. */
	int (*block_name)(const char *s, size_t n, size_t *off, size_t *len);
	/* The model's own id for the call once block_name found the name (into id[32]). Optional. */
	void (*block_id)(const char *s, size_t n, char *id);
	/* Parses a block's body into calls: 0, 1 when malformed, <0 on error. */
	int (*parse_block)(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
	/* A family that drives the text itself: >0 progress, 0 needs more (never when eof), <0 error. */
	int (*step)(struct tc_parser *p, bool eof, struct hearth_err *err);
};

const struct tc_family *tc_family_of(enum tc_format format);

enum tc_mode { TC_M_START, TC_M_REASONING, TC_M_CONTENT, TC_M_BLOCK, TC_M_CUSTOM };

/* Incremental scan for where a JSON value ends (strings, escapes, nesting). */
struct tc_jscan {
	size_t pos;  /* bytes of the text scanned so far */
	int depth;
	bool in_str, esc, started;
};

struct tc_parser {
	const struct tc_family *fam;
	json_t *tools; /* a reference, or NULL */
	tc_random_fn rnd;
	void *rnd_ud;
	uint64_t rng; /* the default generator's state */

	char *buf; /* held text: buf[0, len) */
	size_t len, cap;
	struct tc_events *ev; /* the sink of the feed in progress */

	enum tc_mode mode;
	bool skip_ws;   /* content starts after reasoning or a call: leading whitespace dropped */
	bool r_skip_ws; /* reasoning just opened: leading whitespace dropped */
	bool finished, broken;

	/* the block in progress: buf[0, blk_open) is its opener */
	size_t blk_open;
	bool name_tried, begun;
	int32_t cur_index;
	char cur_id[32];
	struct tc_jscan js;
	size_t scan; /* family scan progress within the block */

	int fstate; /* custom families' state */
	int fsub;

	struct tc_call *calls;
	int32_t n_calls, n_indexes;
	struct tc_plist plist;
};

/* -- emitting (toolcall.c) -- */
int tc_emit(struct tc_parser *p, enum tc_event_kind kind, const char *s, size_t n, struct hearth_err *err);
void tc_consume(struct tc_parser *p, size_t n);
/* Starts a call: checks the name (1 when unknown or too many calls), emits CALL_BEGIN. */
int tc_call_begin(struct tc_parser *p, const char *name, size_t name_len, const char *model_id,
		  struct hearth_err *err);
/* Commits the plist's calls (the first one continues a begun call); 1 when
 * one is refused (nothing committed then), <0 on error. Empties the plist. */
int tc_commit(struct tc_parser *p, struct hearth_err *err);
/* A begun call failed: CALL_FAIL, then raw as content. */
int tc_fail(struct tc_parser *p, const char *raw, size_t n, struct hearth_err *err);
/* The generic engine's content step with the family's markers (used by custom steps too). */
int tc_step_content(struct tc_parser *p, bool eof, struct hearth_err *err);

/* -- scanning (toolcall-scan.c) -- */
const char *tc_find(const char *s, size_t n, const char *lit);
/* Earliest occurrence of any of lits (NULL-ended); *which its index. */
const char *tc_find_any(const char *s, size_t n, const char *const *lits, int *which);
/* Length of the longest suffix of s that is a proper prefix of one of lits. */
size_t tc_partial(const char *s, size_t n, const char *const *lits);
bool tc_is_space(char c);
size_t tc_skip_space(const char *s, size_t n);
void tc_jscan_reset(struct tc_jscan *j);
/* 1 and *end (offset after the value) when the value starting at s's first
 * non-space byte has closed; 0 need more; -1 when it does not start with { [ or ". */
int tc_jscan_run(struct tc_jscan *j, const char *s, size_t n, size_t *end);
/* Generic block ends. */
int tc_end_at(struct tc_parser *p, const char *s, size_t n, bool eof, const char *close, size_t *body_len,
	      size_t *close_len);
int tc_end_json(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);

/* -- arguments (toolcall-args.c) -- */
/* Parses exactly s[0,n) (spaces around allowed) as JSON; NULL when it is not. */
json_t *tc_json_parse(const char *s, size_t n);
/* An arguments value as the object it stands for (an object, or a string that
 * holds one's JSON; null or absent: {}); a new reference, NULL when neither. */
json_t *tc_args_object(json_t *v);
/* The tool's parameter schema's type of key ("string", "integer" ...) or NULL. */
const char *tc_param_type(const struct tc_parser *p, const char *tool, const char *key);
/* A parameter value from text: a string when the schema says string, else
 * JSON when it parses (True/False/None too), else the string. New reference. */
json_t *tc_param_value(const struct tc_parser *p, const char *tool, const char *key, const char *s, size_t n);
/* Does the request list this tool (or list none)? */
bool tc_tool_known(const struct tc_parser *p, const char *name, size_t len);
/* Reads {name, arguments|parameters} objects (Hermes, Llama, Mistral, Granite): 0, 1 when malformed. */
int tc_read_call_object(json_t *o, const char *name_key, const char *args_key, const char *args_key2,
			struct tc_plist *out, struct hearth_err *err);

/* -- families -- */
int tc_hermes_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_hermes_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_hermes_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_granite_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_granite_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_cmdr_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_cmdr_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_qwen3c_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_qwen3c_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_glm_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_glm_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_llama3_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_llama3_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_mistral_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_mistral_name(const char *s, size_t n, size_t *off, size_t *len);
void tc_mistral_id(const char *s, size_t n, char *id);
int tc_mistral_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_dsr1_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_dsr1_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_dsr1_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_dsv31_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_dsv31_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_kimi_end(struct tc_parser *p, const char *s, size_t n, bool eof, size_t *body_len, size_t *close_len);
int tc_kimi_name(const char *s, size_t n, size_t *off, size_t *len);
int tc_kimi_parse(struct tc_parser *p, const char *s, size_t n, struct tc_plist *out, struct hearth_err *err);
int tc_harmony_step(struct tc_parser *p, bool eof, struct hearth_err *err);
int tc_functionary_step(struct tc_parser *p, bool eof, struct hearth_err *err);

#endif /* HEARTH_TOOLCALL_IMPL_H */
