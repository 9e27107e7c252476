/* jinja.h - internal: the Jinja2 interpreter behind hearth_template_*.
 *
 * Pipeline: jinja-lex.c turns the source into tokens (with jinja2's
 * whitespace rules: trim_blocks, lstrip_blocks, '-' modifiers), jinja-parse.c
 * builds a tree of struct jnode, jinja-eval.c walks it. Values (struct jv) are
 * Python's: None, bool, int (64-bit, overflow is an error), float, str,
 * list/tuple, dict (insertion-ordered), plus jinja2's undefined, namespace,
 * loop, cycler, joiner and callables.
 *
 * Ownership: a compiled template owns one arena (the tree and its constant
 * values; read-only after compile, shared by concurrent renders). A render
 * owns another arena from which every value it makes is carved; values are
 * immutable (but namespace, cycler and joiner state) and freely shared, and
 * the whole arena is dropped when the render ends. The render arena is capped:
 * running past the cap is an error, not an abort.
 *
 * Provenance: a str carries spans, the byte ranges of it that came from the
 * render variables other than the special tokens (content). They follow the bytes
 * through concatenation and slicing; other string functions of content give
 * content as a whole.
 */
#ifndef HEARTH_JINJA_H
#define HEARTH_JINJA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "hearth.h"

/* ---- limits ---- */
#define JINJA_MAX_SOURCE (4u << 20)  /* template bytes */
#define JINJA_MAX_NEST 200           /* parser nesting (expressions and blocks) */
#define JINJA_MAX_CALL_DEPTH 100     /* macro calls in progress */
#define JINJA_MAX_RANGE 100000       /* items of range() (jinja2's sandbox) */
#define JINJA_MAX_STEPS 10000000ull  /* evaluation steps of one render */
#define JINJA_ARENA_CAP ((size_t)256 << 20)

/* memcpy that accepts n == 0 with NULL pointers (empty lists have none) */
static inline void jmemcpy(void *dst, const void *src, size_t n)
{
	if (n)
		__builtin_memcpy(dst, src, n);
}

/* ---- arena ---- */
struct jchunk;
struct jarena {
	struct jchunk *head;
	size_t total, cap; /* bytes taken, ceiling (0: none) */
};
void *ja_alloc(struct jarena *a, size_t n); /* 16-aligned, NULL past the cap or out of memory */
void ja_free(struct jarena *a);

/* ---- values ---- */
enum jt { JT_UNDEF, JT_NONE, JT_BOOL, JT_INT, JT_FLOAT, JT_STR, JT_LIST, JT_DICT, JT_FUNC, JT_NS, JT_LOOP, JT_CYCLER };
/* flag: JT_STR: 1 = Markup; JT_LIST: 1 = tuple, 2 = groupby's (grouper, list) */
struct jstr {
	const char *p; /* len bytes of UTF-8 and a NUL */
	size_t len;
	size_t nsp;             /* spans: content ranges of p, sorted, disjoint */
	struct hearth_span *sp;
};
struct jv;
struct jlist {
	size_t n;
	struct jv *v;
};
struct jdict {
	size_t n, cap;
	struct jv *k, *v;
};
struct jundef {
	const char *msg; /* what using it says: "'x' is undefined" */
	bool security;   /* a refused attribute: using it is a SecurityError */
};
struct jfunc;
struct jloop;
struct jcycler;
struct jv {
	uint8_t t, flag;
	union {
		bool b;
		int64_t i;
		double f;
		struct jstr *s;
		struct jlist *l;
		struct jdict *d; /* JT_DICT, JT_NS (the namespace's attributes) */
		struct jundef *u;
		struct jfunc *fn;
		struct jloop *loop;
		struct jcycler *cy;
	};
};

/* ---- tree ---- */
enum jnk {
	/* statements */
	N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_WITH, N_BREAK,
	N_CONTINUE, N_BODY,
	/* expressions */
	E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_BIN, E_NEG, E_POS, E_AND, E_OR,
	E_NOT, E_CMP, E_COND, E_LIST, E_TUPLE, E_DICT, E_CONCAT
};
enum jop { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_POW, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };
struct jnode {
	uint8_t kind;
	uint8_t flag;   /* E_TEST: negated; N_FOR: has loop var use; N_SET target: tuple */
	uint32_t line, col;
	const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_MACRO, N_SET target, N_FOR target */
	struct jv val;    /* E_CONST */
	struct jnode *a, *b, *c, *d; /* children (see the parser for each kind) */
	struct jnode **kids;          /* args, items, body */
	size_t nkids;
	struct jnode **kids2;         /* else body, kwarg values, dict values */
	size_t nkids2;
	const char **names;           /* kwarg names, params, targets */
	size_t nnames;
	uint8_t *ops;                 /* E_CMP: the operators */
};

/* ---- lexer ---- */
enum jtok { T_EOF, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END, T_NAME, T_STRING, T_INT, T_FLOAT, T_OP };
struct jtoken {
	uint8_t type;
	uint32_t line, col;
	const char *p; /* T_DATA, T_NAME, T_OP: the bytes; T_STRING: the decoded value */
	size_t len;
	int64_t i;
	double f;
};
struct jtokens {
	struct jtoken *v;
	size_t n;
};
/* Tokenizes src; tokens and decoded strings are carved from a. */
int jinja_lex(const char *src, size_t len, struct jarena *a, struct jtokens *out, struct hearth_err *err);

/* ---- compiled template ---- */
struct hearth_template {
	struct jarena ar;
	struct jnode *root; /* N_BODY */
};
int jinja_parse(const struct jtokens *toks, struct jarena *a, struct jnode **root, struct hearth_err *err);

/* ---- render state ---- */
struct jsb { /* a string builder with content spans, carved from the arena */
	char *p;
	size_t len, cap;
	struct hearth_span *sp;
	size_t nsp, spcap;
};
struct jframe {
	struct jframe *parent;
	struct jdict vars; /* name (str) -> value */
};
struct jctx {
	struct jarena ar;
	struct hearth_err *err;
	struct jframe *globals;
	struct jsb *out;       /* where output goes now */
	size_t max_output;
	uint64_t steps;
	int depth;             /* macro calls in progress */
	int nest;              /* evaluation recursion */
	struct tm date;
	int ctl;               /* 1: break, 2: continue pending */
	bool raised;           /* raise_exception: err holds exactly its message */
};

/* errors: fill ctx->err with "line L, column C: ..." and return HEARTH_EINVAL (or code) */
int jerr(struct jctx *c, const struct jnode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int jerr_code(struct jctx *c, const struct jnode *n, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int joom(struct jctx *c, const struct jnode *n);

/* value construction (arena) */
static inline struct jv jv_none(void) { struct jv v = { .t = JT_NONE }; return v; }
static inline struct jv jv_bool(bool b) { struct jv v = { .t = JT_BOOL, .b = b }; return v; }
static inline struct jv jv_int(int64_t i) { struct jv v = { .t = JT_INT, .i = i }; return v; }
static inline struct jv jv_float(double f) { struct jv v = { .t = JT_FLOAT, .f = f }; return v; }
struct jv jv_undef(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct jv jv_undef_name(struct jctx *c, const char *name);
struct jv jv_undef_attr(struct jctx *c, struct jv obj, struct jv key);
int jv_str(struct jctx *c, const char *p, size_t len, struct jv *out);  /* copies */
int jv_cstr(struct jctx *c, const char *s, struct jv *out);
int jv_list(struct jctx *c, size_t n, struct jv *out);                 /* n slots, zeroed (undef) */
int jv_dict(struct jctx *c, struct jv *out);
int jv_func(struct jctx *c, int kind, const char *name, struct jv self, struct jv *out);
struct jstr *jstr_new(struct jarena *a, const char *p, size_t len);
bool jv_is_content(struct jv v); /* a str holding any content */

/* string builder */
int jsb_init(struct jctx *c, struct jsb *b, size_t cap);
int jsb_put(struct jctx *c, struct jsb *b, const char *p, size_t n);
int jsb_puts(struct jctx *c, struct jsb *b, const char *s);
int jsb_putc(struct jctx *c, struct jsb *b, char ch);
int jsb_putcp(struct jctx *c, struct jsb *b, uint32_t cp); /* a code point as UTF-8 */
int jsb_printf(struct jctx *c, struct jsb *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* appends s[off, off+n) with the spans that fall inside it */
int jsb_put_str(struct jctx *c, struct jsb *b, const struct jstr *s, size_t off, size_t n);
/* marks [from, b->len) as content */
int jsb_mark(struct jctx *c, struct jsb *b, size_t from);
/* the built string as a value (the builder is spent) */
int jsb_finish(struct jctx *c, struct jsb *b, struct jv *out);

/* Python semantics (jinja-value.c) */
const char *jv_type_name(struct jv v);      /* "str", "NoneType", "list" ... */
bool jv_truthy(struct jv v);
int jv_to_str(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out); /* str(v) */
int jv_repr_into(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, int depth);
int jv_str_into(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v); /* str(v) appended */
void fmt_float_repr(double f, char buf[40]);
bool jv_eq(struct jv a, struct jv b);
/* Python ordering: -1/0/1 in *r, or an error for unorderable types (op: "<") */
int jv_cmp(struct jctx *c, const struct jnode *n, struct jv a, struct jv b, const char *op, int *r);
int jv_len(struct jv v, size_t *n); /* -1 when it has none */
size_t utf8_count(const char *p, size_t len);
const void *jmemmem(const void *hay, size_t hn, const void *needle, size_t nn); /* memmem */
size_t utf8_offset(const char *p, size_t len, size_t cp); /* byte offset of code point cp (clamped) */
bool py_isspace(uint32_t cp);
/* list of the items an iteration over v yields (dict: keys, str: chars) */
int jv_iter(struct jctx *c, const struct jnode *n, struct jv v, struct jlist **out);
int jdict_set(struct jctx *c, struct jdict *d, struct jv k, struct jv v);
bool jdict_get(const struct jdict *d, struct jv k, struct jv *out);
bool jdict_gets(const struct jdict *d, const char *k, struct jv *out);
/* substring of a str value by byte range, keeping the spans inside it */
int jv_substr(struct jctx *c, struct jv s, size_t off, size_t n, struct jv *out);
/* a derived string: content as a whole when any of src is content */
int jv_derived(struct jctx *c, struct jv src, const char *p, size_t n, struct jv *out);

/* evaluation (jinja-eval.c) */
int jinja_render(struct jctx *c, const struct jnode *root);
int jv_getattr(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key, struct jv *out);
int jv_getitem(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key, struct jv *out);
/* calls f with positional args and keyword args (names[i] = kw[i]) */
int jv_call(struct jctx *c, const struct jnode *n, struct jv f, struct jv *args, size_t nargs, const char **names,
	    struct jv *kw, size_t nkw, struct jv *out);
int jv_binop(struct jctx *c, const struct jnode *n, int op, struct jv a, struct jv b, struct jv *out);
int jv_check_undef(struct jctx *c, const struct jnode *n, struct jv v); /* error when v is undefined */
int jv_concat(struct jctx *c, struct jv a, struct jv b, struct jv *out); /* two strs */
int jv_in(struct jctx *c, const struct jnode *n, struct jv item, struct jv seq, bool *r);
int jstep(struct jctx *c, const struct jnode *n);

/* call arguments: a binder for builtins with Python-style parameters */
struct jargs {
	struct jv *args;
	size_t nargs;
	const char **names;
	struct jv *kw;
	size_t nkw;
};
/* Binds params ("name" or "name=" for optional; NULL-terminated) to out[] (undef when absent). */
int jargs_bind(struct jctx *c, const struct jnode *n, const char *fname, const struct jargs *a,
	       const char *const *params, struct jv *out);

/* filters, tests, methods, globals */
int jinja_filter(struct jctx *c, const struct jnode *n, const char *name, struct jv v, const struct jargs *a,
		 struct jv *out);
bool jinja_has_filter(const char *name);
int jinja_test(struct jctx *c, const struct jnode *n, const char *name, struct jv v, const struct jargs *a,
	       bool *out);
bool jinja_has_test(const char *name);
/* attribute lookup of methods: true when obj has a method called name (*unsafe: a mutating one) */
bool jinja_method_exists(struct jv obj, const char *name, bool *unsafe);
int jinja_method_call(struct jctx *c, const struct jnode *n, struct jv self, const char *name,
		      const struct jargs *a, struct jv *out);
int jinja_global(struct jctx *c, const char *name, struct jv *out); /* 0 found, 1 not */
int jinja_global_call(struct jctx *c, const struct jnode *n, const char *name, const struct jargs *a,
		      struct jv *out);
int jinja_percent_format(struct jctx *c, const struct jnode *n, struct jv fmt, struct jv args, struct jv *out);
int jinja_str_format(struct jctx *c, const struct jnode *n, struct jv fmt, const struct jargs *a, struct jv *out);

/* string helpers (jinja-methods.c) */
int jinja_list_push(struct jctx *c, struct jv *list, struct jv item); /* a list built from jv_list(c, 0) */
int jinja_strip(struct jctx *c, struct jv s, struct jv chars, int which, struct jv *out); /* 1 l, 2 r, 3 both */
int jinja_split(struct jctx *c, const struct jnode *n, struct jv s, struct jv sep, int64_t maxsplit, bool right,
		struct jv *out);
int jinja_case(struct jctx *c, struct jv s, int mode, struct jv *out); /* 0 lower 1 upper 2 title 3 capitalize */
int jinja_replace(struct jctx *c, struct jv s, struct jv old, struct jv new, int64_t count, struct jv *out);
int jinja_center(struct jctx *c, const struct jnode *n, struct jv s, struct jv width, struct jv *out);
int jinja_join_strs(struct jctx *c, const struct jnode *n, struct jv sep, struct jlist *items, bool convert,
		    struct jv *out);
/* obj's Python attribute name only (no item fallback): as jv_getattr otherwise */
int jv_attr_only(struct jctx *c, const struct jnode *n, struct jv obj, const char *name, struct jv *out);

/* JSON (jinja-json.c) */
struct json_t;
int jinja_from_json(struct jctx *c, const struct json_t *j, bool content, struct jv *out);
struct jdumps {
	bool ensure_ascii, sort_keys;
	const char *indent; /* NULL: none */
	const char *item_sep, *key_sep;
};
int jinja_dumps(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, const struct jdumps *o, int depth);

/* function kinds */
enum jfk { JF_GLOBAL, JF_MACRO, JF_METHOD, JF_JOINER };
struct jfunc {
	int kind;
	const char *name;
	struct jv self;              /* JF_METHOD: the object */
	const struct jnode *macro;   /* JF_MACRO: N_MACRO (or N_CALLBLOCK for caller) */
	struct jframe *closure;      /* JF_MACRO: where it was defined */
	struct jv caller;            /* JF_MACRO: the caller of a call block, else undef */
	int state;                   /* JF_JOINER: called before */
	const char *sep;
	size_t seplen;
};
struct jloop {
	struct jlist *items;
	size_t i;
	int depth;
	struct jv last_changed; /* loop.changed() */
	bool changed_used;
};
struct jcycler {
	struct jlist *items;
	size_t pos;
};

/* json-load.c: json_loadb, tried twice (see there); *oom: a failure that was
 * out of memory rather than bad text. */
json_t *chat_json_load(const char *s, size_t n, size_t flags, json_error_t *je, bool *oom);

/* template.c: hearth_template_render over variables already parsed (vars: a
 * JSON object; strings of every variable but the *_token ones are content). */
int template_render_json(const struct hearth_template *t, const struct json_t *vars, const struct hearth_template_opts *o,
			 char **out, size_t *len, struct hearth_span **spans, size_t *n_spans, struct hearth_err *err);

#endif /* HEARTH_JINJA_H */
