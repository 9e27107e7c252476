/* cli.h - shared pieces of the hearth command: argument checks, JSON output.
 * The CLI uses only the public API (include/hearth.h). */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hearth.h"

#define EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* server/serve.c */
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_show(int argc, char **argv);

/* The file -m NAME means (a file as is, else a stored model: hearth_store_resolve),
 * in a static buffer; NULL after printing why to stderr (exit 1). */
const char *cli_model_path(const char *cmd, const char *name);
int cmd_imatrix(int argc, char **argv);
int cmd_steer(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_export_lora(int argc, char **argv);

/* One chunk of a text to evaluate (chunks.c): what perplexity and imatrix share. */
struct chunk_eval {
	struct hearth_context *c;
	int32_t n_ctx, n_batch; /* tokens per chunk, per forward pass (n_batch <= n_ctx) */
	int32_t bos;            /* the chunk's first token becomes this (-1: stays) */
	bool all_logits;        /* keep every position's logits (the output head then sees every row) */
	/* called for each scored position, in order (NULL: none scored) */
	int (*on_pos)(void *user, const float *logits, int32_t next, struct hearth_err *err);
	void *user;
};
/* Evaluates chunk[0 .. n_ctx) from an empty context (chunk is restored). */
int chunks_eval(const struct chunk_eval *e, int32_t *chunk, struct hearth_err *err);

/* -log softmax(logits)[tok] in double precision (cmd-perplexity.c). */
double ppl_token_nll(const float *logits, int32_t n_vocab, int32_t tok);

/* Prints "hearth CMD: message" to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The whole file at path ("-": standard input), NUL-terminated, *len bytes; NULL on error (errno says). */
char *cli_read_file(const char *path, size_t *len);
/* The value after flag argv[*i] (advancing *i), or NULL after reporting it missing. */
const char *arg_value(const char *cmd, int argc, char **argv, int *i);
/* Parse a whole-string integer / float in [lo, hi]; false after reporting. */
bool arg_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *out);
bool arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);

/* Writes s[0..n) as a JSON string; invalid UTF-8 bytes become U+FFFD. */
void json_write_str(FILE *f, const char *s, size_t n);
void json_write_ids(FILE *f, const int32_t *ids, int32_t n);

/* Log sink that prints warnings and errors to stderr. */
void cli_log(enum hearth_log_level level, const char *msg, void *user_data);

/* --dump-layers (dump-layers.c): a comma-separated list of layers (negative:
 * from the end) of a model of n_layer layers; 0, or EXIT_USAGE after a message. */
int dump_layers_parse(const char *spec, int32_t n_layer, int32_t **layers, int32_t *n);
/* Writes c's hidden states of its last decode (n_layers kept, n_tokens inputs)
 * to path as .npy, shape (n_layers, n_tokens, n_embd) float32; 0, or 1 after a message. */
int dump_layers_write(const char *path, const struct hearth_context *c, int32_t n_layers, int32_t n_tokens,
		      int32_t n_embd);

/* --uncertainty (uncertainty.c): each generated token's entropy and rank,
 * coloured on a terminal, else one tab-separated line per token. */
enum { UNCERTAINTY_COLOUR = 1, UNCERTAINTY_LINES = 2 };
/* How to show it on f: UNCERTAINTY_COLOUR on a terminal without NO_COLOR, else UNCERTAINTY_LINES. */
int uncertainty_mode(FILE *f);
/* One generated token: its text piece (k bytes), entropy and rank. */
void uncertainty_put(FILE *f, int mode, int32_t index, const char *piece, size_t k, float entropy, int32_t rank);
/* Text left at the end of generation (an incomplete character). */
void uncertainty_rest(FILE *f, int mode, const char *piece, size_t k);

/* Sampling and context flags shared by run and chat. */
struct gen_opts {
	const char *model;
	struct hearth_sampler_params sp;
	struct hearth_context_params cp;
	bool seed_set;
	int32_t n_predict; /* -1: until end of generation or a full context */
	const char *lora_path[HEARTH_MAX_LORAS]; /* --lora FILE[:SCALE] (the FILE part, in lora_buf) */
	float lora_scale[HEARTH_MAX_LORAS];
	int n_lora;
	char lora_buf[HEARTH_MAX_LORAS][4096];
};
void gen_opts_init(struct gen_opts *o);
/* Parses argv[*i] if it is a shared flag: 1 taken, 0 not ours, -1 bad value (reported). */
int gen_opts_parse(struct gen_opts *o, const char *cmd, int argc, char **argv, int *i);
extern const char gen_opts_help[];
/* --lora FILE[:SCALE] into o's adapters; false after a usage error. */
bool gen_opts_lora(struct gen_opts *o, const char *cmd, const char *v);
/* Loads o's adapters for m and sets them on c (which keeps them); 0, or 1 after a message. */
int gen_opts_apply_lora(const struct gen_opts *o, const char *cmd, struct hearth_model *m, struct hearth_context *c);

#endif /* HEARTH_CLI_H */
