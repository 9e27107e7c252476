/*
 * hearth.h - the whole public API of libhearth.
 *
 * A private, self-hosted LLM engine: open a GGUF model, tokenize, run the
 * transformer on the CPU, sample, detokenize.
 *
 * Conventions
 *  - Objects are opaque and come in new/free pairs; free functions accept NULL.
 *  - Functions that can fail return 0 or a negative HEARTH_E* code and fill a
 *    caller-owned struct hearth_err whose message names the input and the problem.
 *  - The library never prints; it logs through hearth_log_set().
 *  - Thread safety: a hearth_model is read-only after load and may be shared by
 *    threads; a hearth_context, hearth_sampler or hearth_detok belongs to one thread
 *    at a time.
 */
#ifndef HEARTH_H
#define HEARTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */

/* X(name, value, description): the one table of error codes. Append only. */
#define HEARTH_ERRORS(X)                                                   \
	X(HEARTH_OK, 0, "success")                                         \
	X(HEARTH_EINVAL, -1, "invalid argument")                           \
	X(HEARTH_ENOMEM, -2, "out of memory")                              \
	X(HEARTH_EIO, -3, "input/output error")                            \
	X(HEARTH_EBADGGUF, -4, "malformed GGUF file")                      \
	X(HEARTH_EUNSUPPORTED, -5, "unsupported feature")                  \
	X(HEARTH_ECTXFULL, -6, "context is full")                          \
	X(HEARTH_ENOTFOUND, -7, "not found")                               \
	X(HEARTH_ETOOBIG, -8, "too big")                                   \
	X(HEARTH_EBUSY, -9, "busy: the queue is full")                     \
	X(HEARTH_ETIMEDOUT, -10, "timed out")                              \
	X(HEARTH_ESHUTDOWN, -11, "shutting down")

enum hearth_errcode {
#define HEARTH_X_ENUM(name, value, desc) name = value,
	HEARTH_ERRORS(HEARTH_X_ENUM)
#undef HEARTH_X_ENUM
};

struct hearth_err {
	int code;      /* 0 or a negative HEARTH_E* */
	char msg[256]; /* "model.gguf: tensor 'x' ends past the end of the file" */
};

const char *hearth_err_name(int code); /* "HEARTH_EBADGGUF" */
const char *hearth_strerror(int code); /* "malformed GGUF file" */

/* Length of the valid UTF-8 character at s (n bytes left), or 0 when the
 * bytes there are not one (truncated, overlong, surrogate, past U+10FFFF). */
size_t hearth_utf8_valid(const char *s, size_t n);

/* ---- logging ----------------------------------------------------------- */

enum hearth_log_level { HEARTH_LOG_ERROR = 0, HEARTH_LOG_WARN, HEARTH_LOG_INFO, HEARTH_LOG_DEBUG };
typedef void (*hearth_log_fn)(enum hearth_log_level level, const char *msg, void *user_data);
/* Sets the process-wide log sink (NULL: discard). Not thread-safe: call at start-up. */
void hearth_log_set(hearth_log_fn fn, void *user_data);

/* ---- tensor types (GGML's numbering, as stored in GGUF files) ---------- */

enum hearth_type {
	HEARTH_TYPE_F32 = 0,
	HEARTH_TYPE_F16 = 1,
	HEARTH_TYPE_Q4_0 = 2,
	HEARTH_TYPE_Q4_1 = 3,
	HEARTH_TYPE_Q5_0 = 6,
	HEARTH_TYPE_Q5_1 = 7,
	HEARTH_TYPE_Q8_0 = 8,
	HEARTH_TYPE_Q8_1 = 9,
	HEARTH_TYPE_Q2_K = 10,
	HEARTH_TYPE_Q3_K = 11,
	HEARTH_TYPE_Q4_K = 12,
	HEARTH_TYPE_Q5_K = 13,
	HEARTH_TYPE_Q6_K = 14,
	HEARTH_TYPE_Q8_K = 15,
	HEARTH_TYPE_BF16 = 30,
	HEARTH_TYPE_MXFP4 = 39,
	HEARTH_TYPE_COUNT = 40
};
/* "q4_K", or NULL for a type hearth does not know. */
const char *hearth_type_name(int type);

/* ---- GGUF inspection (read-only view of any GGUF file) ----------------- */

struct hearth_gguf;
enum hearth_gguf_vtype {
	HEARTH_GGUF_U8 = 0, HEARTH_GGUF_I8, HEARTH_GGUF_U16, HEARTH_GGUF_I16,
	HEARTH_GGUF_U32, HEARTH_GGUF_I32, HEARTH_GGUF_F32, HEARTH_GGUF_BOOL,
	HEARTH_GGUF_STRING, HEARTH_GGUF_ARRAY, HEARTH_GGUF_U64, HEARTH_GGUF_I64,
	HEARTH_GGUF_F64
};
struct hearth_tensor_info {
	const char *name;
	int type;        /* enum hearth_type */
	int n_dims;
	int64_t ne[4];   /* elements per dimension, ne[0] innermost */
	uint64_t offset; /* bytes from the start of the file */
	uint64_t nbytes;
};

int hearth_gguf_open(struct hearth_gguf **out, const char *path, struct hearth_err *err);
void hearth_gguf_close(struct hearth_gguf *g);
uint32_t hearth_gguf_version(const struct hearth_gguf *g);
int64_t hearth_gguf_n_kv(const struct hearth_gguf *g);
const char *hearth_gguf_key(const struct hearth_gguf *g, int64_t i);
int hearth_gguf_kv_type(const struct hearth_gguf *g, int64_t i);
/* For arrays: element type and count; -1 / 0 otherwise. */
int hearth_gguf_arr_type(const struct hearth_gguf *g, int64_t i);
uint64_t hearth_gguf_arr_n(const struct hearth_gguf *g, int64_t i);
/* Writes the value as JSON text (arrays: at most max_items elements, then an
 * ellipsis string when cut; max_items < 0 prints all) into buf. Bytes of a
 * string that are not UTF-8 become \ufffd, a NaN or infinite float null.
 * Returns the length it needed, like snprintf. */
size_t hearth_gguf_kv_json(const struct hearth_gguf *g, int64_t i, int64_t max_items, char *buf, size_t size);
int64_t hearth_gguf_n_tensors(const struct hearth_gguf *g);
void hearth_gguf_tensor(const struct hearth_gguf *g, int64_t i, struct hearth_tensor_info *info);

/* ---- models ------------------------------------------------------------ */

struct hearth_model;
struct hearth_model_params {
	bool vocab_only; /* load only the tokenizer (works on vocabulary-only GGUFs) */
	bool no_repack;  /* keep the weights as the file stores them, without the copies laid out for the
	                    decoding kernels: less memory for a model used to train (hearth_trainer reads
	                    the file's layout), slower decoding */
};
struct hearth_model_params hearth_model_default_params(void);
int hearth_model_load(struct hearth_model **out, const char *path, const struct hearth_model_params *params,
		      struct hearth_err *err);
void hearth_model_free(struct hearth_model *m);

const char *hearth_model_arch(const struct hearth_model *m);          /* "llama", "qwen2", ... */
const char *hearth_model_chat_template(const struct hearth_model *m); /* NULL when absent */
int32_t hearth_model_n_vocab(const struct hearth_model *m);
int32_t hearth_model_n_ctx_train(const struct hearth_model *m);
int32_t hearth_model_n_embd(const struct hearth_model *m);
int32_t hearth_model_n_layer(const struct hearth_model *m);
/* Pooling of per-token states into one embedding, as GGUF's {arch}.pooling_type numbers them. */
enum hearth_pooling {
	HEARTH_POOLING_NONE = 0,
	HEARTH_POOLING_MEAN = 1,
	HEARTH_POOLING_CLS = 2,  /* the first token's */
	HEARTH_POOLING_LAST = 3, /* the last token's (decoder embedding models: Qwen3-Embedding) */
};
/* The model's {arch}.pooling_type (NONE, MEAN, CLS or LAST), -1 when it gives none (or another, as RANK). */
int hearth_model_pooling(const struct hearth_model *m);
/* out = the model's final norm of x (n_embd floats each; in place allowed):
 * what the output head reads, and what llama.cpp's embeddings are made of. */
void hearth_model_final_norm(const struct hearth_model *m, const float *x, float *out);
uint64_t hearth_model_n_params(const struct hearth_model *m); /* elements of all tensors */
uint64_t hearth_model_size(const struct hearth_model *m);     /* bytes of all tensors */

/* ---- tokenizer --------------------------------------------------------- */

int32_t hearth_token_bos(const struct hearth_model *m); /* -1 when none */
int32_t hearth_token_eos(const struct hearth_model *m);
bool hearth_token_is_eog(const struct hearth_model *m, int32_t id); /* end of generation */
bool hearth_token_is_control(const struct hearth_model *m, int32_t id);
bool hearth_vocab_add_bos(const struct hearth_model *m);
/* Looks a token up by its exact text; -1 when absent. */
int32_t hearth_token_find(const struct hearth_model *m, const char *text);

/* Tokenizes len bytes of text. add_special adds BOS/EOS as the vocabulary asks;
 * parse_special turns special-token text ("<|im_start|>") into its token.
 * On success *out is a malloc'd array of *n_out ids that the caller frees. */
int hearth_tokenize(const struct hearth_model *m, const char *text, size_t len, bool add_special,
		    bool parse_special, int32_t **out, int32_t *n_out, struct hearth_err *err);
/* hearth_tokenize with a ceiling: the same ids when they number at most
 * max_tokens (BOS/EOS included), else HEARTH_ETOOBIG with a message naming
 * the limit. It gives up as soon as the text is known to be longer, so the
 * work before a refusal is bounded by max_tokens rather than by len, apart
 * from linear scans of the text: UTF-8 validation, the search for special
 * tokens, NFC's quick check (Qwen-style vocabularies), the SentencePiece
 * space escape and, for byte-level vocabularies, the pre-tokenizer regexes'
 * search for the next word and their match of the word that crosses the
 * limit (one word may be most of the text; it is refused by its length,
 * unmerged). Use it for untrusted text. */
int hearth_tokenize_max(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			bool parse_special, int32_t max_tokens, int32_t **out, int32_t *n_out, struct hearth_err *err);
/* A byte range of a text: off, len. */
struct hearth_span {
	size_t off, len;
};
/* Tokenizes a rendered chat prompt (see hearth_template_render): special-token
 * text becomes its token only where it lies wholly outside the plain ranges
 * (the bytes that came from message content and tools), so that content
 * cannot forge a turn or a control token; everything else as
 * hearth_tokenize_max with parse_special. plain: n_plain sorted, disjoint
 * ranges inside the text, else HEARTH_EINVAL. */
int hearth_tokenize_chat(const struct hearth_model *m, const char *text, size_t len, bool add_special,
			 const struct hearth_span *plain, size_t n_plain, int32_t max_tokens, int32_t **out,
			 int32_t *n_out, struct hearth_err *err);
/* The bytes of one token (control tokens give their text only when special).
 * Returns the byte count needed (may exceed size: then buf holds a prefix), or
 * a negative HEARTH_EINVAL for an id outside the vocabulary. */
int hearth_token_to_piece(const struct hearth_model *m, int32_t id, bool special, char *buf, size_t size);
/* Detokenizes ids into a malloc'd NUL-terminated string (*out, caller frees);
 * *out_len (when not NULL) gets its length: the text may hold NUL bytes. */
int hearth_detokenize(const struct hearth_model *m, const int32_t *ids, int32_t n, bool special, char **out,
		      size_t *out_len, struct hearth_err *err);

/* Converts a Hugging Face tokenizer folder (tokenizer.json, plus
 * tokenizer_config.json and config.json when present) into a vocabulary-only
 * GGUF at out_path with the tokenizer.* keys llama.cpp writes. Byte-level and
 * SentencePiece-style BPE are supported; the pre-tokenizer type is told from
 * its regexes. HEARTH_EUNSUPPORTED names any part that is not understood. */
int hearth_convert_hf_vocab(const char *hf_dir, const char *out_path, struct hearth_err *err);

/* One tensor as hearth_convert_hf() wrote it (for progress output). */
struct hearth_convert_tensor {
	const char *name;          /* GGUF name: "blk.0.attn_q.weight" */
	const char *src_name;      /* Hugging Face name, or "" for a generated tensor (rope_freqs) */
	const char *src_dtype;     /* safetensors dtype: "BF16", "F16", "F32" ("F32" when generated) */
	int n_dims;
	int64_t ne[4];             /* GGUF order: ne[0] innermost */
	int type;                  /* enum hearth_type written */
	int64_t index, n_tensors;  /* 0-based position in the output */
};

struct hearth_convert_params {
	/* HEARTH_FTYPE_ALL_F32, _F16, _BF16 or _Q8_0 (convert_hf_to_gguf.py's --outtype),
	 * or -1 for its "auto": bf16 or f16 as the first bf16/f16 weight matrix is, else f16 */
	int ftype;
	/* Called after each tensor is written (may be NULL). */
	void (*on_tensor)(const struct hearth_convert_tensor *t, void *user_data);
	void *user_data;
};
struct hearth_convert_params hearth_convert_default_params(void);

/* Converts a Hugging Face model folder (config.json; tokenizer.json with its
 * config; model.safetensors, or shards listed by model.safetensors.index.json;
 * F32, F16 or BF16 weights) of LlamaForCausalLM, MistralForCausalLM,
 * MixtralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM or Qwen3MoeForCausalLM
 * (experts stacked per layer) into a GGUF at out_path with the keys,
 * tensor names and layouts llama.cpp's convert_hf_to_gguf.py writes (llama's
 * q/k rows permuted for its rope). 1-D tensors, norms and biases are F32; the
 * weight matrices p->ftype's type (q8_0 rows that do not split into 32-blocks:
 * f16). Tensors are converted one at a time while the file is written, so
 * memory stays about one tensor; the file appears at out_path only when
 * complete. Errors name the file and the tensor. p may be NULL (the defaults). */
int hearth_convert_hf(const char *hf_dir, const char *out_path, const struct hearth_convert_params *p,
		      struct hearth_err *err);

/* ---- quantization ------------------------------------------------------ */

/* What llama-quantize calls a file type (general.file_type), by llama.cpp's
 * numbers. hearth_quantize_ftype_parse() reads the names "q4_k_m", "Q8_0", ... */
enum hearth_ftype {
	HEARTH_FTYPE_ALL_F32 = 0, HEARTH_FTYPE_F16 = 1, HEARTH_FTYPE_Q4_0 = 2, HEARTH_FTYPE_Q4_1 = 3,
	HEARTH_FTYPE_Q8_0 = 7, HEARTH_FTYPE_Q5_0 = 8, HEARTH_FTYPE_Q5_1 = 9, HEARTH_FTYPE_Q2_K = 10,
	HEARTH_FTYPE_Q3_K_S = 11, HEARTH_FTYPE_Q3_K_M = 12, HEARTH_FTYPE_Q3_K_L = 13,
	HEARTH_FTYPE_Q4_K_S = 14, HEARTH_FTYPE_Q4_K_M = 15, HEARTH_FTYPE_Q5_K_S = 16, HEARTH_FTYPE_Q5_K_M = 17,
	HEARTH_FTYPE_Q6_K = 18, HEARTH_FTYPE_BF16 = 32,
	HEARTH_FTYPE_MXFP4_MOE = 38, /* expert stacks MXFP4, the other matrices q8_0 */
};

/* One tensor as hearth_quantize() wrote it (for progress output). */
struct hearth_quantize_tensor {
	const char *name;
	int n_dims;
	int64_t ne[4];
	int type_in, type_out;     /* enum hearth_type */
	uint64_t nbytes_in, nbytes_out;
	int64_t index, n_tensors;  /* 0-based position in the output */
	bool imatrix;              /* quantized with importance weights */
};

struct hearth_quantize_params {
	int ftype;                 /* enum hearth_ftype */
	bool pure;                 /* every weight matrix in ftype's base type: no mix, no output rule */
	int output_tensor_type;    /* enum hearth_type for output.weight; -1: the recipe's */
	int token_embedding_type;  /* enum hearth_type for token_embd.weight; -1: the recipe's */
	int n_threads;             /* <= 0: the physical cores; the bytes written do not depend on it */
	/* llama-imatrix output (GGUF or legacy .dat), or NULL: weighs each column's
	 * quantization error by its mean squared activation, as llama-quantize
	 * --imatrix does (entries for tensors not in the model are ignored; one
	 * whose size does not match its tensor is an error). */
	const char *imatrix_path;
	/* Called after each tensor is converted (may be NULL); from the calling thread. */
	void (*on_tensor)(const struct hearth_quantize_tensor *t, void *user_data);
	void *user_data;
};
struct hearth_quantize_params hearth_quantize_default_params(void);
/* The file type named s ("q4_k_m", case-insensitive), or -1. */
int hearth_quantize_ftype_parse(const char *s);
/* The tensor type named s ("q6_k", "f16", case-insensitive), or -1. */
int hearth_type_parse(const char *s);

/* Writes in_path's model quantized as llama-quantize would: the same type for
 * each tensor (1-D tensors and norms kept; the _S/_M/_L mixes; the output and
 * token-embedding rules; K-quant rows that do not split into 256-blocks fall
 * back to a 32-block type), every metadata key copied, general.file_type and
 * general.quantization_version set. Tensors of another type are dequantized to
 * f32 first. The file appears at out_path only when complete (written to a
 * temporary name beside it, then renamed). HEARTH_EUNSUPPORTED names a tensor
 * whose type cannot be converted; HEARTH_EBADGGUF a file that is not GGUF;
 * HEARTH_EINVAL a malformed imatrix or one whose entry does not fit its tensor. */
int hearth_quantize(const char *in_path, const char *out_path, const struct hearth_quantize_params *p,
		    struct hearth_err *err);

/* Streaming detokenizer: feeds tokens one at a time and hands back only whole
 * UTF-8 characters, holding back a partial one until its last byte arrives.
 * Its buffers are allocated by hearth_detok_new: push and flush cannot fail. */
struct hearth_detok;
int hearth_detok_new(struct hearth_detok **out, const struct hearth_model *m, bool special, struct hearth_err *err);
void hearth_detok_free(struct hearth_detok *d);
/* Returns the text now complete (valid until the next call), length in *len. */
const char *hearth_detok_push(struct hearth_detok *d, int32_t id, size_t *len);
/* Returns what is left (an incomplete character at the end of generation). */
const char *hearth_detok_flush(struct hearth_detok *d, size_t *len);

/* ---- inference contexts ------------------------------------------------ */

struct hearth_context;
struct hearth_context_params {
	int32_t n_ctx;      /* KV cache size in tokens (0: the model's training context, capped at 4096) */
	int32_t n_batch;    /* most tokens per forward pass; longer inputs are split */
	int32_t n_threads;  /* worker threads (0: the physical cores) */
	int cache_type;     /* HEARTH_TYPE_F16 (default), HEARTH_TYPE_F32 or HEARTH_TYPE_Q8_0 */
};
struct hearth_context_params hearth_context_default_params(void);
int hearth_context_new(struct hearth_context **out, struct hearth_model *m, const struct hearth_context_params *p,
		       struct hearth_err *err);
void hearth_context_free(struct hearth_context *c);
int32_t hearth_context_n_ctx(const struct hearth_context *c);
int32_t hearth_context_n_past(const struct hearth_context *c); /* tokens in the KV cache */
/* Forgets cached tokens from position n_keep on (0: start over). A model with
 * sliding-window layers keeps only the last window's positions of those, so
 * when position n_keep's window has left the cache, it keeps nothing:
 * hearth_context_n_past says how many tokens stay. */
void hearth_context_truncate(struct hearth_context *c, int32_t n_keep);

/* Runs the model over n tokens that continue the cached sequence, as one
 * batch (split into n_batch chunks). When all_logits, logits for every
 * input position are kept; otherwise only for the last one.
 * HEARTH_ECTXFULL when the tokens do not fit; nothing changes then. */
int hearth_decode(struct hearth_context *c, const int32_t *tokens, int32_t n, bool all_logits, struct hearth_err *err);
/* Logits (n_vocab floats) after input i of the last decode; i = -1: the last. NULL when not kept. */
const float *hearth_get_logits(const struct hearth_context *c, int32_t i);

/* ---- hidden states and the logit lens ------------------------------------
 *
 * The hidden state of an input after layer il is the residual stream x there
 * (n_embd floats, before any final norm): what the next layer reads. */
/* Keeps, for every input of later decodes, the hidden states after layers
 * layers[0 .. n_layers-1] (negative: from the end, -1 the last layer;
 * repeats allowed; at most n_layer entries). n_layers 0: none (the default;
 * nothing is spent). Costs n_layers * n_inputs * n_embd floats per decode. */
int hearth_context_set_hidden(struct hearth_context *c, const int32_t *layers, int32_t n_layers,
			      struct hearth_err *err);
/* The hidden state after layer layers[k] of input i of the last decode (i =
 * -1: the last), n_embd floats valid until the next decode or set_hidden;
 * NULL when not kept. */
const float *hearth_get_hidden(const struct hearth_context *c, int32_t k, int32_t i);
/* The logit lens: n rows x of n_embd floats through the model's final norm
 * and output head (soft-capped as its logits are) into n rows of n_vocab
 * logits. The last layer's hidden states give the model's logits, bit for
 * bit when the rows are taken the same way (hearth_decode with all_logits
 * over the same inputs, or one row and the last logits). The top-k tokens:
 * hearth_sampler_logprobs on a row. Not thread-safe with c's decodes. */
int hearth_context_logit_lens(struct hearth_context *c, const float *x, int32_t n, float *logits,
			      struct hearth_err *err);

/* ---- saved state --------------------------------------------------------
 * A hearth_state is a sequence saved for later: its tokens, the KV cache's
 * rows for them (the cache's own bytes, so restoring is exact) and, when
 * known, the logits after its last token, tagged with the identity of the
 * model that computed them (architecture, hyper-parameters, tensor layout and
 * samples of every tensor's bytes) and a checksum. Sliding-window layers
 * (gemma2/3, gpt-oss) keep only the rows their window still needs (from the
 * start of the cache block before it). Files are refused with HEARTH_EINVAL
 * and a message saying why when truncated, corrupt or of another model
 * (hearth_state_check, and every restore); files of an older format version
 * with HEARTH_EUNSUPPORTED. Immutable: any thread may read one. */
struct hearth_state;
/* Reads and checks (format, size, checksum, tokens) a state file. HEARTH_ENOTFOUND: no such file. */
int hearth_state_read(struct hearth_state **out, const char *path, struct hearth_err *err);
/* The same from size bytes at data (copied); what names them in messages. */
int hearth_state_parse(struct hearth_state **out, const void *data, size_t size, const char *what,
		       struct hearth_err *err);
/* Writes st to path (a temporary file renamed over it). */
int hearth_state_write(const struct hearth_state *st, const char *path, struct hearth_err *err);
/* 0 when st was saved by model m, else HEARTH_EINVAL. */
int hearth_state_check(const struct hearth_state *st, const struct hearth_model *m, struct hearth_err *err);
/* 0 when st's rows were computed under steering s of model m (NULL, no
 * vector or strength 0: unsteered), else HEARTH_EINVAL saying how they
 * differ. A state records the steering it was computed under (a digest of
 * the directions in force, strength and layers); a context or a request
 * restores it only when steered alike (hearth_context_state_set, and
 * prefix_state at submit, refuse it otherwise). */
struct hearth_steering; /* below, with steering */
int hearth_state_check_steering(const struct hearth_state *st, const struct hearth_model *m,
				const struct hearth_steering *s, struct hearth_err *err);
/* The saved tokens (*n of them); valid while st lives. */
const int32_t *hearth_state_tokens(const struct hearth_state *st, int32_t *n);
size_t hearth_state_size(const struct hearth_state *st); /* bytes, as in the file */
void hearth_state_free(struct hearth_state *st);
/* Saves c's whole sequence (and the logits after its last token when the
 * last decode kept them and nothing was truncated since). HEARTH_EINVAL when empty. */
int hearth_context_state_get(struct hearth_context *c, struct hearth_state **out, struct hearth_err *err);
/* Replaces c's sequence by st's (of c's model and cache type, else
 * HEARTH_EINVAL; HEARTH_ECTXFULL when it does not fit n_ctx). Afterwards
 * hearth_get_logits(c, -1) gives the saved logits when st has them (NULL when
 * not: decode the last token again). */
int hearth_context_state_set(struct hearth_context *c, const struct hearth_state *st, struct hearth_err *err);
/* The tokens in c's cache (hearth_context_n_past of them). */
const int32_t *hearth_context_tokens(const struct hearth_context *c);

/* ---- activation taps ---------------------------------------------------
 *
 * A tap sees what enters every product with a weight matrix during
 * hearth_decode, right before the product: weight is the tensor's GGUF name
 * ("blk.0.attn_q.weight", "blk.3.ffn_down.weight", "output.weight"; a tied
 * output head is "token_embd.weight"), x holds n_tokens rows of n_in floats,
 * valid only during the call (products that share an input, as q, k and v
 * do, each get a call). The output head sees only the rows whose logits are
 * kept. Called on the decoding thread; with no tap, nothing is spent.
 */
typedef void (*hearth_matmul_tap_fn)(const char *weight, const float *x, int64_t n_in, int32_t n_tokens,
				     void *user_data);
/* Sets c's tap (fn NULL: none, the default). */
void hearth_context_set_tap(struct hearth_context *c, hearth_matmul_tap_fn fn, void *user_data);
/* An expert tap sees what enters the experts' products of a mixture of
 * experts, which the matmul tap does not: for each expert that some token of
 * the decode is routed to, and each of its stacked matrices ("blk.0.
 * ffn_gate_exps.weight", "..._up_exps...", "..._down_exps..."), one call with
 * the rows routed to it: expert (0 .. n_expert - 1), x holding n_rows rows of
 * n_in floats (valid only during the call), row r the input of token
 * tokens[r] of the decode (0-based, ascending), which chose the expert in
 * slot slots[r] of its n_expert_used choices (0: the router's best). Gate and
 * up see each token's normed input, down the gated activation of that (token,
 * slot). Called on the decoding thread; with no tap, nothing is spent. */
typedef void (*hearth_expert_tap_fn)(const char *weight, int32_t expert, int32_t n_expert, const float *x,
				     int64_t n_in, int32_t n_rows, const int32_t *tokens, const int32_t *slots,
				     void *user_data);
/* Sets c's expert tap (fn NULL: none, the default). */
void hearth_context_set_expert_tap(struct hearth_context *c, hearth_expert_tap_fn fn, void *user_data);

/* ---- steering (control vectors) -----------------------------------------
 *
 * A control vector is one direction of n_embd floats per layer, added to the
 * residual stream after a transformer block, in llama.cpp's GGUF format:
 * tensors "direction.N" (f32, 1-D, n_embd) and "controlvector.*" keys. As
 * llama.cpp applies them, direction.N is added to the output of block N
 * (0-based), N from 1 to n_layer - 1 (block 0's output is never steered).
 * Several files load into one vector as a sum, each times its scale. A
 * vector is read-only once loaded: any thread may read it while requests use
 * it; it must outlive every request and context that steers with it.
 */
struct hearth_cvec;
/* An all-zero vector shaped for m (n_layer rows of n_embd). */
int hearth_cvec_new(struct hearth_cvec **out, const struct hearth_model *m, struct hearth_err *err);
void hearth_cvec_free(struct hearth_cvec *cv);
/* Adds scale times path's directions to cv. HEARTH_EBADGGUF names the file
 * and the problem (not GGUF, a tensor not named direction.N with 1 <= N <
 * n_layer, not f32, not 1-D of the model's n_embd, non-finite values); cv is
 * unchanged then. */
int hearth_cvec_add_file(struct hearth_cvec *cv, const char *path, float scale, struct hearth_err *err);
/* Adds scale times dir (n_embd floats) to direction il (1 <= il < n_layer, else HEARTH_EINVAL). */
int hearth_cvec_add(struct hearth_cvec *cv, int32_t il, const float *dir, float scale, struct hearth_err *err);
/* Direction il (n_embd floats), or NULL when il is out of range. */
const float *hearth_cvec_direction(const struct hearth_cvec *cv, int32_t il);
/* Writes cv as llama.cpp's cvector-generator does: direction.1 .. direction.(n_layer - 1),
 * general.architecture "controlvector", controlvector.model_hint (model_hint, may be NULL:
 * "") and controlvector.layer_count. The file appears at path only when complete. */
int hearth_cvec_write(const struct hearth_cvec *cv, const char *path, const char *model_hint, struct hearth_err *err);

/* Computes a control vector from contrastive prompts (llama.cpp's
 * cvector-generator, in its numbering): for each prompt (its tokens after
 * BOS), the mean over its tokens of the hidden state after each block N, as
 * the residual stream's direction x / rms(x) (read where the next block's
 * attention, or for the last block the output head, takes it: the normed
 * residual with the norm's gain divided out); then per N the positive
 * prompts' mean minus the negative prompts' (HEARTH_CVEC_MEAN), or the first
 * principal component of the pairs' differences, signed along the mean
 * (HEARTH_CVEC_PCA: n_pos == n_neg, the i-th of each paired); each direction
 * scaled to unit length, as llama.cpp's does. n_threads 0: the cores. */
enum hearth_cvec_method { HEARTH_CVEC_MEAN = 0, HEARTH_CVEC_PCA = 1 };
int hearth_cvec_compute(struct hearth_cvec **out, struct hearth_model *m, const char *const *pos, int32_t n_pos,
			const char *const *neg, int32_t n_neg, int method, int32_t n_threads, struct hearth_err *err);

/* Steering a sequence: strength times cv's directions layer_start ..
 * layer_end (inclusive, llama.cpp's numbering above; layer_start <= 0: 1,
 * layer_end <= 0: n_layer - 1). cvec NULL or strength 0: none, and the pass
 * is exactly the unsteered one. */
struct hearth_steering {
	const struct hearth_cvec *cvec;
	float strength;
	int32_t layer_start, layer_end;
};
/* Steers c's later decodes (s NULL: none). HEARTH_EINVAL for a vector of
 * another shape, a non-finite strength or a bad layer range. */
int hearth_context_set_steering(struct hearth_context *c, const struct hearth_steering *s, struct hearth_err *err);

/* ---- LoRA adapters --------------------------------------------------------
 *
 * An adapter in llama.cpp's GGUF LoRA format (general.type "adapter",
 * adapter.type "lora", general.architecture the base model's, optional
 * adapter.lora.alpha): for a base matrix W named "<name>" ([n_in] x n_out),
 * tensors "<name>.lora_a" ([n_in] x rank) and "<name>.lora_b" ([rank] x
 * n_out); the product becomes y = x W^T + s * (x A^T) B^T with s = scale *
 * alpha / rank (alpha 0: s = scale), as llama.cpp applies them. Matrices that
 * may carry adapters: attention q, k, v, o (or a fused attn_qkv), FFN gate,
 * up, down (or a fused up), the output head, and the token embedding (there
 * lora_a is [rank] x n_vocab and lora_b [rank] x n_embd, added to the looked-
 * up row). A mixture of experts' stacks (ffn_gate_exps, ffn_up_exps,
 * ffn_down_exps, [n_in] x n_out x n_expert) carry one adapter per expert:
 * "<name>.lora_a" is [n_in] x rank x n_expert and "<name>.lora_b" [rank] x
 * n_out x n_expert (llama.cpp's layout), and each row the router sends to
 * expert e gets s * (x A_e^T) B_e^T before the experts' biases, as llama.cpp
 * adds them. Norm tensors in the file are skipped, as llama.cpp does. A and B
 * are kept as f32 copies.
 *
 * An adapter is reference-counted: every request and context that uses it
 * holds a reference, so hearth_lora_free (dropping the loader's) may be called
 * while requests still run; it is freed when the last of them ends. Read-only
 * once loaded: any thread may use it.
 */
struct hearth_lora;
/* Reads path's adapter for m. HEARTH_EBADGGUF names the file, the tensor and
 * the problem (not an adapter, another architecture, an unpaired lora_a or
 * lora_b, shapes that do not fit the base tensor, a rank above 4096, non-finite
 * values, a type other than f32, f16, bf16 or q8_0); HEARTH_EUNSUPPORTED a
 * base tensor hearth does not adapt, or an activated LoRA (aLoRA). */
int hearth_lora_load(struct hearth_lora **out, const struct hearth_model *m, const char *path, struct hearth_err *err);
/* Drops the caller's reference (NULL: nothing). */
void hearth_lora_free(struct hearth_lora *a);
/* Takes another reference to a (dropped by hearth_lora_free); returns a. Any thread. */
struct hearth_lora *hearth_lora_ref(struct hearth_lora *a);
float hearth_lora_alpha(const struct hearth_lora *a);  /* adapter.lora.alpha (0: none given) */
int32_t hearth_lora_n_pairs(const struct hearth_lora *a); /* adapted base matrices (an expert stack: one) */
/* A SHA-256 digest of the adapter's tensors (names, shapes and values as
 * loaded): equal adapters share cached prompt blocks. */
const uint8_t *hearth_lora_digest(const struct hearth_lora *a);

/* An adapter in use with its scale (scale 0 changes nothing; the pass is
 * then exactly the base's). Several add up, in order. */
#define HEARTH_MAX_LORAS 8
struct hearth_lora_use {
	struct hearth_lora *lora;
	float scale;
};
/* c's later decodes use these n adapters (n 0: none); c holds references to
 * them until replaced or freed. HEARTH_EINVAL for more than HEARTH_MAX_LORAS,
 * an adapter of another model or a non-finite scale. */
int hearth_context_set_lora(struct hearth_context *c, const struct hearth_lora_use *use, int32_t n,
			    struct hearth_err *err);
/* Writes m's GGUF with the n adapters merged into its matrices (llama.cpp's
 * export-lora): W + scale * alpha / rank * B A, in f32 from the base
 * dequantized, stored as f32 where the base tensor is f32 and as f16
 * otherwise (quantized bases are not requantized). Keys and the other tensors
 * are copied. The file appears at path only when complete. */
int hearth_lora_export(const struct hearth_model *m, const struct hearth_lora_use *use, int32_t n, const char *path,
		       struct hearth_err *err);

/* ---- importance matrices (llama-imatrix) --------------------------------
 *
 * For every weight matrix of the transformer blocks, per input column j, the
 * sum over the tokens of x_j^2 (x: the activation entering the product) and
 * the number of tokens: what llama.cpp's llama-imatrix collects, and what
 * quantizers weigh their rounding errors by. As llama-imatrix does, products
 * over fewer than 16 tokens are left out (single-token decodes), and the
 * output head only when process_output is set; the sums are float.
 */
struct hearth_imatrix;
struct hearth_imatrix_params {
	int32_t chunk_size;  /* tokens per chunk of the text: imatrix.chunk_size [512] */
	bool process_output; /* collect output.weight too [false] */
};
struct hearth_imatrix_params hearth_imatrix_default_params(void);
/* An empty matrix for the weights of m (which must outlive it). */
int hearth_imatrix_new(struct hearth_imatrix **out, const struct hearth_model *m,
		       const struct hearth_imatrix_params *p, struct hearth_err *err);
void hearth_imatrix_free(struct hearth_imatrix *im);
/* Makes c (a context of im's model) add what its decodes see to im; it
 * replaces c's tap and expert tap. hearth_context_set_tap(c, NULL, NULL) and
 * hearth_context_set_expert_tap(c, NULL, NULL) detach. */
void hearth_imatrix_attach(struct hearth_imatrix *im, struct hearth_context *c);
/* The sums of weight (n_in floats) and its token count; HEARTH_ENOTFOUND
 * when the weight is not collected. For the stacked experts of a mixture
 * (ffn_*_exps), expert 0's: see hearth_imatrix_get_expert. */
int hearth_imatrix_get(const struct hearth_imatrix *im, const char *weight, const float **sums, int64_t *n_in,
		       int64_t *count);
/* The same for one expert of a stacked expert weight: each expert has its
 * own sums and count, as llama-imatrix keeps them (the rows routed to it;
 * unlike other weights, collected from products of any size, as
 * llama-imatrix collects every expert product). *n_expert: the weight's
 * experts (1 for a plain matrix, whose only "expert" is 0). HEARTH_ENOTFOUND
 * when the weight is not collected, HEARTH_EINVAL for an expert out of range. */
int hearth_imatrix_get_expert(const struct hearth_imatrix *im, const char *weight, int32_t expert,
			      const float **sums, int64_t *n_in, int64_t *count, int32_t *n_expert);
/* 0 when every sum is a finite number, else HEARTH_EINVAL naming the weight. */
int hearth_imatrix_check(const struct hearth_imatrix *im, struct hearth_err *err);

enum hearth_imatrix_format {
	HEARTH_IMATRIX_GGUF = 0, /* llama-imatrix's default: <weight>.in_sum2 / <weight>.counts, imatrix.* keys */
	HEARTH_IMATRIX_DAT = 1,  /* its legacy imatrix.dat (--output-format dat) */
};
/* Writes the weights seen so far (sorted by name; never-seen ones left out)
 * with the dataset names given (n_datasets, may be 0), as llama-imatrix
 * writes them. The file appears at path only when complete. */
int hearth_imatrix_write(const struct hearth_imatrix *im, const char *path, int format,
			 const char *const *datasets, size_t n_datasets, struct hearth_err *err);

/* ---- sampling ---------------------------------------------------------- */

struct hearth_sampler;
struct hearth_sampler_params {
	float temp;              /* <= 0: greedy */
	int32_t top_k;           /* <= 0: off */
	float top_p;             /* >= 1: off */
	float min_p;             /* <= 0: off */
	float repeat_penalty;    /* 1: off */
	int32_t repeat_last_n;   /* how many recent tokens the penalties look at (-1: all) */
	float frequency_penalty; /* 0: off */
	float presence_penalty;  /* 0: off */
	uint64_t seed;
};
struct hearth_sampler_params hearth_sampler_default_params(void);
int hearth_sampler_new(struct hearth_sampler **out, const struct hearth_sampler_params *p, int32_t n_vocab,
		       struct hearth_err *err);
void hearth_sampler_free(struct hearth_sampler *s);
/* Picks a token from logits (n_vocab floats, not modified). Costs a few
 * linear passes over the logits, never a sort of the vocabulary. */
int32_t hearth_sampler_sample(struct hearth_sampler *s, const float *logits);
/* Log-probabilities under the softmax of logits (as given: no penalties, no
 * temperature): *logprob gets id's, and top_ids / top_logprobs the n_top
 * most likely tokens, best first (ties by lower id). Returns how many of
 * those it wrote (n_top, or the vocabulary size when smaller). */
int32_t hearth_sampler_logprobs(struct hearth_sampler *s, const float *logits, int32_t id, int32_t n_top,
			     float *logprob, int32_t *top_ids, float *top_logprobs);
/* Uncertainty of the same distribution hearth_sampler_logprobs reports (the
 * softmax of logits as given: no penalties, no temperature), in one pass over
 * the vocabulary: *entropy gets -sum p ln p (nats, >= 0) and *rank id's place
 * in it (1: the most likely; ties by lower id, as top_logprobs orders them).
 * Either pointer may be NULL. */
void hearth_sampler_uncertainty(struct hearth_sampler *s, const float *logits, int32_t id, float *entropy,
				int32_t *rank);
/* Records a token (prompt or generated) for the penalties. Cannot fail: when
 * the history cannot grow (out of memory) the token is left out of it, and the
 * penalties see a shorter history. */
void hearth_sampler_accept(struct hearth_sampler *s, int32_t id);

/* ---- grammars: constrained sampling ------------------------------------
 *
 * A grammar in llama.cpp's GBNF (rules `name ::= ...`, "literals", [classes],
 * `.`, groups, | * + ? {m,n}, # comments), compiled once against a model's
 * vocabulary. A sampler that follows it only returns tokens whose bytes
 * continue a text the grammar can still complete (a token may end inside a
 * UTF-8 character), end-of-generation tokens only where the grammar may
 * end, and control tokens never. Errors name the line, the column and the
 * problem (undefined rule, bad escape, left recursion, ...). Bounded: the
 * text, rules, nesting, expanded repetitions and the set of parse stacks a
 * state may hold (a grammar whose state set explodes is refused, or its
 * text stops matching, instead of growing without end).
 */
struct hearth_grammar; /* a compiled grammar bound to a model's vocabulary: immutable, shareable by threads */
/* GBNF text (len bytes); root: the start rule ("root" when NULL). */
int hearth_grammar_new(const struct hearth_model *m, const char *gbnf, size_t len, const char *root,
		       struct hearth_grammar **out, struct hearth_err *err);
void hearth_grammar_free(struct hearth_grammar *g);
/* A JSON Schema (JSON text, len bytes) as GBNF text (*out malloc'd, NUL-terminated;
 * the caller frees). Every rule's name starts with prefix and the start rule is
 * named exactly prefix (so that several outputs can be concatenated under one
 * root). A keyword hearth cannot enforce is an error that names it
 * (HEARTH_EUNSUPPORTED); annotations (title, description, ...) are ignored.
 * The schema "{}" (or true) is any JSON value, {"type":"object"} any JSON object
 * (OpenAI's json_object). See src/grammar/json-schema.c for what is covered and
 * how exactly. */
int hearth_json_schema_to_gbnf(const char *schema, size_t len, const char *prefix, char **out,
			       struct hearth_err *err);
/* The sampler follows g from now on (NULL: no grammar); tokens accepted before
 * this call are not seen by it (set it after the prompt's tokens). With after !=
 * NULL the grammar applies only once the generated text contains after (e.g.
 * "</think>": the answer after a reasoning block; the bytes of that token after
 * the trigger go to the grammar when it takes them); before that sampling is
 * free. g must outlive the sampler's use of it; its vocabulary must be the
 * sampler's size (HEARTH_EINVAL). A token the grammar refuses that is accepted
 * anyway (forced) ends it: only end of generation is allowed after. */
int hearth_sampler_set_grammar(struct hearth_sampler *s, const struct hearth_grammar *g, const char *after,
			       struct hearth_err *err);
/* Whether the grammar (if any) has reached an end where nothing more may follow (the caller stops). */
bool hearth_sampler_grammar_done(const struct hearth_sampler *s);

/* ---- serving: continuous batching over many requests --------------------
 *
 * A scheduler owns the model's KV cache and one thread that runs every step
 * as one forward pass over all active requests (a token each for those
 * decoding, chunks of prompts for those starting). Requests sharing a prompt
 * prefix reuse its cached KV blocks. Any thread may submit, read events,
 * cancel and free requests; the scheduler thread alone touches the model
 * and the cache.
 */

struct hearth_sched;
struct hearth_request;

struct hearth_sched_params {
	int32_t n_ctx;      /* KV cache tokens shared by all requests (0: n_parallel x n_ctx_seq) */
	int32_t n_ctx_seq;  /* most tokens (prompt + output) per request (0: the model's, at most 4096) */
	int32_t n_parallel; /* requests decoded together [4] */
	int32_t n_batch;    /* most tokens per forward pass [512] */
	int32_t n_threads;  /* 0: the physical cores */
	int32_t max_queue;  /* waiting requests beyond which submits get HEARTH_EBUSY [256] */
	int32_t block_size; /* KV cache block, in tokens [16] */
	int cache_type;     /* HEARTH_TYPE_F16, HEARTH_TYPE_F32 or HEARTH_TYPE_Q8_0 */
};
struct hearth_sched_params hearth_sched_default_params(void);
int hearth_sched_new(struct hearth_sched **out, struct hearth_model *m, const struct hearth_sched_params *p,
		     struct hearth_err *err);
/* The parameters in force, defaults filled in. */
struct hearth_sched_params hearth_sched_params_used(const struct hearth_sched *s);
/* Cancels whatever is left, stops the thread, frees the cache. Requests not
 * yet freed by their owners stay valid until hearth_request_free(). */
void hearth_sched_free(struct hearth_sched *s);

#define HEARTH_MAX_TOP_LOGPROBS 20

/* A request. Start from hearth_request_default_params() and set the prompt:
 * a zero-filled struct is not the defaults (top_logprobs 0 asks for the
 * chosen token's log-probability, a pass over the whole vocabulary per token;
 * max_tokens 0 stops after one token; sampling 0s mean greedy). */
struct hearth_request_params {
	const int32_t *prompt;   /* copied */
	int32_t n_prompt;
	int32_t max_tokens;      /* -1: until end of generation or n_ctx_seq [-1] */
	struct hearth_sampler_params sampling; /* [hearth_sampler_default_params()] */
	const int32_t *bias_ids; /* logit_bias: added to these tokens' logits (copied) [none] */
	const float *bias;
	int32_t n_bias;
	int32_t top_logprobs;    /* -1: no logprobs; 0..20: the chosen token's and this many best [-1] */
	bool ignore_eos;         /* [false] */
	double timeout_s;        /* give up after this long in total (0: never) [0] */
	/* cache_salt (vLLM's name): opaque bytes naming the prefix cache's tenant.
	 * Requests share cached prompt blocks only with requests of the same salt
	 * (a server sets it from the API key). Read during submit only; NULL or
	 * 0 bytes: no salt, shared with every other unsalted request [none]. */
	const void *cache_salt;
	size_t cache_salt_size;
	/* The answer follows this grammar (from the first generated token);
	 * taken over by the request when the submit succeeds (freed with it),
	 * still the caller's when it fails [NULL: none]. */
	struct hearth_grammar *grammar;
	/* Saved state whose tokens are a prefix of the prompt (of this model and
	 * cache type, computed under the same steering as this request's, else
	 * the submit fails with HEARTH_EINVAL): its rows are
	 * restored into the cache, under the request's cache salt, instead of
	 * computed; the continuation is the one without it. Taken over when the
	 * submit succeeds, still the caller's when it fails [NULL: none]. */
	struct hearth_state *prefix_state;
	/* On a normal finish (stop or length), save the sequence the cache holds
	 * (the prompt, and the generated tokens that were computed: all but the
	 * last) for hearth_request_take_state [false]. */
	bool save_state;
	/* Each event also carries the entropy and rank of its token
	 * (hearth_sampler_uncertainty), a pass over the vocabulary [false]. */
	bool uncertainty;
	/* Scoring: 0, or k >= 1: before any generated token, one event (prompt
	 * set) for each prompt token from index k on, with its log-probability
	 * given the tokens before it (top_logprobs and uncertainty as asked;
	 * the logit bias does not apply) [0]. */
	int32_t score_from;
	/* Generate nothing: the request ends (HEARTH_FINISH_LENGTH, no token)
	 * after its scored prompt tokens [false]. */
	bool score_only;	/* Hidden states: keep the residual stream after these layers (negative:
	 * from the end; copied) of every computed position, prompt and
	 * generated, for hearth_request_hidden. The prompt is then computed in
	 * full (no prefix cache, no restored state). Costs n_hidden_layers *
	 * n_embd floats per position, at most n_ctx_seq positions [none]. */
	const int32_t *hidden_layers;
	int32_t n_hidden_layers;
	/* Activation steering for this request alone (see hearth_steering; the
	 * vector must outlive the request). Requests with different steering
	 * share batches; they share cached prompt blocks only with requests of
	 * the same steering [cvec NULL: none]. */
	struct hearth_steering steering;
	/* LoRA adapters for this request alone (copied; the request holds a
	 * reference to each until it ends). Requests with different adapters,
	 * or none, share batches; they share cached prompt blocks only with
	 * requests of the same adapters and scales [n_lora 0: none]. */
	const struct hearth_lora_use *lora;
	int32_t n_lora;
};
/* The defaults shown in brackets above; no prompt. */
struct hearth_request_params hearth_request_default_params(void);

enum hearth_finish {
	HEARTH_FINISH_NONE = 0,  /* more to come */
	HEARTH_FINISH_STOP,      /* end-of-generation token (not reported as a token) */
	HEARTH_FINISH_LENGTH,    /* max_tokens or the context */
	HEARTH_FINISH_CANCELLED,
	HEARTH_FINISH_TIMEOUT,
	HEARTH_FINISH_ERROR,      /* could not go on (out of memory); the tokens before stand */
};

struct hearth_token_event {
	int32_t id;            /* the token, or -1 on a final event that carries none */
	float logprob;         /* of id, when asked */
	int32_t n_top;
	int32_t top_ids[HEARTH_MAX_TOP_LOGPROBS];
	float top_logprobs[HEARTH_MAX_TOP_LOGPROBS];
	int finish;            /* enum hearth_finish; set on the last event */
	double t;              /* when it was produced (seconds, monotonic clock) */
	float entropy;         /* when asked: of the distribution logprob is from, nats */
	int32_t rank;          /* when asked: id's rank in it, 1: the most likely */
	bool prompt;           /* a scored prompt token (score_from), not a generated one */
};

/* Queues a request. HEARTH_EBUSY when the queue is full, HEARTH_ETOOBIG when
 * the prompt does not fit n_ctx_seq, HEARTH_ESHUTDOWN when stopping. */
int hearth_sched_submit(struct hearth_sched *s, const struct hearth_request_params *p, struct hearth_request **out,
			struct hearth_err *err);
/* Waits up to timeout_ms (-1: forever) for the next event. 0: *ev filled;
 * HEARTH_ETIMEDOUT: nothing yet; HEARTH_ENOTFOUND: the final event was read. */
int hearth_request_next(struct hearth_request *r, struct hearth_token_event *ev, int timeout_ms);
/* Asks the scheduler to stop the request and free its cache blocks; any thread. */
void hearth_request_cancel(struct hearth_request *r);
/* Cancels if still running and releases the caller's hold. */
void hearth_request_free(struct hearth_request *r);
/* Prompt tokens whose KV came from the prefix cache (known once it started). */
int32_t hearth_request_cached_tokens(const struct hearth_request *r);
/* After the final event: the state saved for save_state (the caller frees
 * it), or NULL (not asked, not finished normally, or out of memory). */
struct hearth_state *hearth_request_take_state(struct hearth_request *r);
/* After the final event: the positions whose hidden states were kept
 * (hidden_layers): the prompt and every generated token but the last (whose
 * state no pass computed). */
int32_t hearth_request_n_hidden(const struct hearth_request *r);
/* After the final event: the state (n_embd floats) after layer
 * hidden_layers[k] at position pos, valid while r lives; NULL when not kept. */
const float *hearth_request_hidden(const struct hearth_request *r, int32_t k, int32_t pos);
/* Any thread, while the request runs too: copies the hidden states of
 * positions pos .. pos+n-1 that are kept so far (every layer asked:
 * out[i][k][n_embd]) and returns how many positions it copied (fewer when
 * not all are computed yet, 0 outside). When the event of the g-th
 * generated token (g >= 1) has been read, positions up to n_prompt + g - 2
 * are kept: the prompt with the first, then the token before each. */
int32_t hearth_request_hidden_read(struct hearth_request *r, int32_t pos, int32_t n, float *out);
/* When the request was submitted and when it started (0 before), monotonic seconds. */
double hearth_request_t_submit(const struct hearth_request *r);
double hearth_request_t_start(const struct hearth_request *r);

/* Counters read without waiting on the scheduler. */
struct hearth_sched_stats {
	int32_t n_waiting, n_running;
	int32_t n_blocks, n_blocks_used, block_size;
	int32_t last_batch_tokens, last_batch_seqs;
	uint64_t prefix_queries, prefix_hits;       /* prompt tokens looked up / found in the cache */
	uint64_t prompt_tokens, generation_tokens;  /* processed (prompt, excluding cached) / generated */
	uint64_t steps;
	double t_heartbeat;                         /* last time the loop ran (monotonic seconds) */
	bool alive;
};
void hearth_sched_stats(const struct hearth_sched *s, struct hearth_sched_stats *st);
/* Monotonic clock, seconds. */
double hearth_now(void);

/* ---- chat templates ---------------------------------------------------- */

/* A chat template (a Hugging Face tokenizer.chat_template, Jinja2), compiled.
 * It renders byte for byte as Python's jinja2 does inside transformers'
 * apply_chat_template (ImmutableSandboxedEnvironment, trim_blocks,
 * lstrip_blocks, loopcontrols, transformers' tojson, raise_exception,
 * strftime_now). A compiled template is read-only: concurrent renders of one
 * template from several threads are safe. */
struct hearth_template;
struct hearth_template_opts {
	const char *date;  /* "YYYY-MM-DD": the day strftime_now sees (at 00:00:00, C locale); NULL: now, local time */
	size_t max_output; /* bytes a render may produce; 0: 16 MiB */
};
/* Compiles src (len bytes of UTF-8). A syntax error or an unsupported construct is HEARTH_EINVAL (or
 * HEARTH_EUNSUPPORTED) with a message naming the line and column. */
int hearth_template_new(const char *src, size_t len, struct hearth_template **out, struct hearth_err *err);
void hearth_template_free(struct hearth_template *t);
/* Renders t with the variables of vars_json (a JSON object: messages, tools, documents,
 * add_generation_prompt, bos_token, eos_token and any extra keyword such as enable_thinking; JSON null is
 * Python None, an absent key is undefined). *out (malloc'd, NUL-terminated, *len bytes) is the render;
 * *spans (malloc'd, *n_spans entries; NULL when none) are where content landed: the strings of every
 * variable but the special tokens (bos_token, eos_token, ..._token, additional_special_tokens), which are
 * markup (sorted, disjoint, adjacent ones merged: pass them to hearth_tokenize_chat as its plain ranges).
 * o may be NULL. A template's raise_exception(msg) fails with HEARTH_EINVAL and exactly msg as the message;
 * other render errors (undefined calls, type errors, limits) fail with a message naming line and column.
 * Thread-safe for concurrent renders of one template. */
int hearth_template_render(const struct hearth_template *t, const char *vars_json, size_t vars_len,
			   const struct hearth_template_opts *o, char **out, size_t *len, struct hearth_span **spans,
			   size_t *n_spans, struct hearth_err *err);

/* ---- chat prompts ------------------------------------------------------ */

/* How a model's conversations become prompts: a chat template (Jinja2; see
 * hearth_template_new) compiled once: the one given, else the GGUF's
 * tokenizer.chat_template, else ChatML for a model without one. Immutable:
 * threads may share it. */
struct hearth_chat;
struct hearth_chat_params {
	const char *template_src;      /* NULL: the model's (see above) */
	size_t template_len;           /* bytes of template_src */
	bool allow_special_in_content; /* control-token text in content becomes control tokens (Hugging Face's
					* behaviour); by default it stays text */
};
struct hearth_chat_params hearth_chat_default_params(void);
int hearth_chat_new(const struct hearth_model *m, const struct hearth_chat_params *p, struct hearth_chat **out,
		    struct hearth_err *err);
void hearth_chat_free(struct hearth_chat *c);
/* The template's source, and whether it is the built-in ChatML (the model has none). */
const char *hearth_chat_template_src(const struct hearth_chat *c, bool *builtin);

/* A rendered conversation: the text, where content landed in it, and its tokens. */
struct hearth_chat_prompt {
	char *text;                  /* NUL-terminated, len bytes */
	size_t len;
	struct hearth_span *content; /* the bytes that came from the variables (messages, tools, kwargs ...) (NULL when none) */
	size_t n_content;
	int32_t *ids;                /* the tokens (NULL unless asked) */
	int32_t n_ids;
};
/* Renders vars_json, a JSON object with "messages" (OpenAI's shape) and any
 * other variable the template reads ("tools", "add_generation_prompt", the
 * request's chat_template_kwargs ...). As transformers' apply_chat_template
 * passes them, "tools" and "documents" are null and "add_generation_prompt"
 * false when absent, and "bos_token" / "eos_token" are the model's tokens'
 * text. date: what strftime_now sees ("YYYY-MM-DD"; NULL: now). With
 * max_tokens >= 0 the text is also tokenized (hearth_tokenize_chat, BOS first
 * when the vocabulary asks for one and the template did not write it),
 * HEARTH_ETOOBIG past max_tokens. Free *out with hearth_chat_prompt_free
 * (also after an error). */
int hearth_chat_apply(const struct hearth_chat *c, const char *vars_json, size_t len, const char *date,
		      int32_t max_tokens, struct hearth_chat_prompt *out, struct hearth_err *err);
void hearth_chat_prompt_free(struct hearth_chat_prompt *p);


/* ---- chat output: reasoning and tool calls ------------------------------ */

/* What a model generates, read in its family's syntax (known from the chat
 * template: Hermes/Qwen, Llama 3, Mistral, DeepSeek, GLM, gpt-oss ...): its
 * reasoning, its content and its tool calls, as events shaped like OpenAI's
 * streaming deltas. The same text gives the same events whatever pieces it
 * is fed in (text that may still start a marker is held back). Malformed
 * calls become content, never invented calls. */
enum hearth_chat_event_kind {
	HEARTH_CHAT_CONTENT,    /* text for message.content */
	HEARTH_CHAT_REASONING,  /* text for message.reasoning_content */
	HEARTH_CHAT_CALL_BEGIN, /* a call starts: index, id, name */
	HEARTH_CHAT_CALL_ARGS,  /* a piece of call index's arguments (text) */
	HEARTH_CHAT_CALL_FAIL,  /* call index turned out malformed: its raw text follows as content */
	HEARTH_CHAT_CALL_DONE,  /* at the end, once per call: index, id, name, arguments (a JSON object's text) */
};
struct hearth_chat_event {
	enum hearth_chat_event_kind kind;
	int32_t index;    /* the call's (-1 for content and reasoning) */
	const char *text; /* NUL-terminated (NULL when none), len bytes */
	size_t len;
	const char *name; /* CALL_BEGIN, CALL_DONE */
	const char *id;   /* CALL_BEGIN, CALL_DONE: "call_..." */
};
struct hearth_chat_reader;
/* A reader for one answer to prompt (rendered by c; it tells whether the
 * answer starts inside a reasoning block). tools_json: the request's "tools"
 * (OpenAI's shape, JSON text; NULL: none, and then only reasoning is read,
 * never calls). */
int hearth_chat_reader_new(const struct hearth_chat *c, const struct hearth_chat_prompt *prompt, const char *tools_json,
			   size_t tools_len, struct hearth_chat_reader **out, struct hearth_err *err);
void hearth_chat_reader_free(struct hearth_chat_reader *r);
/* Reads len more bytes of the answer; finish: the answer has ended. The
 * events they settled are in *ev (n of them, valid until the next call). */
int hearth_chat_reader_feed(struct hearth_chat_reader *r, const char *text, size_t len,
			    const struct hearth_chat_event **ev, size_t *n, struct hearth_err *err);
int hearth_chat_reader_finish(struct hearth_chat_reader *r, const struct hearth_chat_event **ev, size_t *n,
			      struct hearth_err *err);
/* The family's name ("hermes", "llama3", ... "none"), and the text that opens
 * a call in it (NULL when it has none): what a grammar forcing a call starts with. */
const char *hearth_chat_format_name(const struct hearth_chat *c);
const char *hearth_chat_call_opener(const struct hearth_chat *c);

/* ---- chat grammars: constrained answers ---------------------------------- */

/* GBNF rules (*out, malloc'd) named prefix (and prefix-...) for a call of the
 * tools (tools_json: OpenAI's "tools"), of the one named name when not NULL,
 * several in a row when parallel and the family allows it, in the family's
 * syntax (Hermes/Qwen <tool_call>, Llama 3 JSON, Mistral [TOOL_CALLS]);
 * arguments follow each tool's parameter schema (hearth_json_schema_to_gbnf:
 * HEARTH_EUNSUPPORTED names a keyword it cannot enforce). HEARTH_EUNSUPPORTED
 * for a family whose calls it cannot force yet. */
int hearth_chat_calls_gbnf(const struct hearth_chat *c, const char *tools_json, size_t len, const char *name,
			   bool parallel, const char *prefix, char **out, struct hearth_err *err);
/* The whole grammar (*out, malloc'd; start rule "hearth-root") of an answer to
 * prompt whose constrained part is rule among rules: the family's reasoning
 * block first and free (optional, or its rest when the prompt opened it),
 * then rule. */
int hearth_chat_answer_gbnf(const struct hearth_chat *c, const struct hearth_chat_prompt *prompt, const char *rules,
			    const char *rule, char **out, struct hearth_err *err);

/* ---- model store and pull ------------------------------------------------ */

/* Models live under the store's home: $HEARTH_HOME, else $HOME/.hearth, in
 * models/hf/OWNER/REPO/FILE, models/modelscope/OWNER/REPO/FILE and
 * models/url/HOST/FILE, each with FILE.json beside it (where it came from,
 * size, sha256). A download in progress is FILE.partial (and
 * FILE.partial.json); a model is only ever under its final name whole and
 * verified. A reference (REF) is one of:
 *   OWNER/REPO[:TAG]              Hugging Face (also hf.co/..., huggingface.co/..., hf:...)
 *   modelscope:OWNER/REPO[:TAG]   ModelScope
 *   https://HOST/PATH/FILE.gguf   a URL, downloaded as is
 * TAG is a quantization (Q4_K_M, case-insensitive, matched in file names) or a
 * file's name; without one (or with "latest") the repository's only GGUF, else
 * its Q4_K_M one. A stored model's short name is its file name without .gguf. */

#define HEARTH_STORE_PATH_MAX 4096
struct hearth_store_entry {
	char name[512];                   /* "Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M" (a REF that resolves to it) */
	char short_name[256];             /* "qwen2.5-0.5b-instruct-q4_k_m" */
	char path[HEARTH_STORE_PATH_MAX]; /* the file */
	char source[2048];                /* the REF it was pulled with ("" when not recorded) */
	uint64_t size;                    /* bytes */
};

/* The store's home directory into dir (not created). */
int hearth_store_home(char *dir, size_t size, struct hearth_err *err);
/* Every stored model, sorted by name, into *out (free with free()), *n of
 * them. A store that does not exist yet is empty. */
int hearth_store_list(struct hearth_store_entry **out, int *n, struct hearth_err *err);
/* Deletes a stored model (a REF or a short name; never a file outside the
 * store) with its record. HEARTH_ENOTFOUND when none matches. */
int hearth_store_remove(const char *name, struct hearth_err *err);
/* The file to load for name_or_path: an existing file as is, else the stored
 * model a REF or short name names. HEARTH_ENOTFOUND names the input and says
 * to `hearth pull` it; HEARTH_EINVAL when a name matches several models. */
int hearth_store_resolve(const char *name_or_path, char *path, size_t size, struct hearth_err *err);

/* Bytes received so far and the total (0 when not known yet). */
typedef void (*hearth_pull_progress_fn)(uint64_t done, uint64_t total, void *user_data);
struct hearth_pull_params {
	const char *endpoint;            /* the hub's base URL; NULL: $HF_ENDPOINT else https://huggingface.co
	                                    ($MODELSCOPE_ENDPOINT else https://www.modelscope.cn for modelscope:) */
	const char *token;               /* sent as a Bearer token to the hub's own host only; NULL: $HF_TOKEN
	                                    ($MODELSCOPE_API_TOKEN for modelscope:) */
	hearth_pull_progress_fn progress; /* NULL: none; called from the pulling thread */
	void *progress_data;
	const volatile int *cancel;      /* when it points at a nonzero int, the pull stops (HEARTH_ESHUTDOWN) */
	long connect_timeout_s;          /* to open a connection [15] */
	long low_speed_time_s;           /* a transfer slower than low_speed_bytes per second */
	long low_speed_bytes;            /*   for this long ends (HEARTH_ETIMEDOUT) [30 s, 1024 B/s] */
	int max_retries;                 /* resumptions after a cut connection within one call [3] */
};
struct hearth_pull_params hearth_pull_default_params(void);
/* Downloads the model ref names into the store (unless it is there already,
 * whole) and writes its path into path_out. Resumes a partial download of the
 * same file; verifies its size and SHA-256 when the hub gives them; refuses a
 * file that does not start as GGUF (HEARTH_EBADGGUF). On failure nothing is
 * under the final name; the partial file stays when the server can resume it.
 * Proxies: libcurl's variables (http_proxy, https_proxy, no_proxy). */
int hearth_pull(const char *ref, const struct hearth_pull_params *p, char *path_out, size_t size, struct hearth_err *err);


/* ---- fine-tuning data --------------------------------------------------- */

/* Training examples read from a JSON Lines file, tokenized for one model.
 * Each line is one example in OpenAI's fine-tuning formats:
 *   {"messages": [...], "tools": [...]?}  a conversation, rendered through the
 *       chat template; the loss is on the assistant turns (their content and
 *       the markup that closes them) except those with "weight": 0;
 *   {"prompt": "...", "completion": "..."}  plain text; the loss is on the
 *       completion and the end-of-sequence token appended to it.
 * Every token carries a loss flag: 1 when the model is trained to predict it
 * from the tokens before it. A bad line fails the load with its line number. */
struct hearth_dataset;
enum hearth_split { HEARTH_SPLIT_TRAIN, HEARTH_SPLIT_VALID };
struct hearth_dataset_params {
	float valid_fraction;     /* share of the examples held out for validation, 0..0.5 [0] */
	uint64_t seed;            /* which examples are held out [0] */
	int32_t max_tokens;       /* an example is cut to this many tokens (0: the model's training context) */
	const char *template_src; /* the chat template; NULL: the model's (see hearth_chat_new) */
	size_t template_len;
};
struct hearth_dataset_params hearth_dataset_default_params(void);
/* Reads and tokenizes path. Conversations whose template rewrites earlier
 * turns (e.g. drops past reasoning) become one example per trained turn.
 * Examples left with no trained token (cut away) are dropped and counted. */
int hearth_dataset_load(struct hearth_dataset **out, const struct hearth_model *m, const char *path,
			const struct hearth_dataset_params *p, struct hearth_err *err);
void hearth_dataset_free(struct hearth_dataset *d);
struct hearth_dataset_stats {
	int32_t lines;       /* examples read (blank lines not counted) */
	int32_t n_train, n_valid;
	int32_t n_split;     /* conversations split into one example per trained turn */
	int32_t n_cut;       /* examples cut to max_tokens */
	int32_t n_dropped;   /* examples with no trained token left */
	int64_t tokens, loss_tokens; /* over both splits */
};
void hearth_dataset_stats(const struct hearth_dataset *d, struct hearth_dataset_stats *out);
/* Example i (0 <= i < the split's count, else NULL): its n tokens and their
 * loss flags, owned by d. The line it came from in *line (may be NULL). */
const int32_t *hearth_dataset_example(const struct hearth_dataset *d, enum hearth_split s, int32_t i,
				      const uint8_t **loss, int32_t *n, int32_t *line);
/* Sequence packing: fills one row of n_ctx slots with whole examples of split
 * s taken in the order order[*next], order[*next + 1] ... (indices into the
 * split), advancing *next past those used. ids, loss and pos receive the
 * tokens, their loss flags and their positions (0 where each example starts:
 * attention must not cross an example). An example longer than n_ctx fills a
 * row of its own, cut to n_ctx. *n_out: the slots filled (0 when *next ==
 * n_order). HEARTH_EINVAL for an index outside the split. */
int hearth_dataset_pack(const struct hearth_dataset *d, enum hearth_split s, const int32_t *order, int32_t n_order,
			int32_t *next, int32_t n_ctx, int32_t *ids, uint8_t *loss, int32_t *pos, int32_t *n_out,
			struct hearth_err *err);
/* ---- gradients: a training pass through the model (src/train/) ----------- */

/* A trainer runs a model forward over a token sequence keeping what the
 * backward needs, then backward: the loss (cross-entropy on chosen
 * positions), its gradients with respect to LoRA adapters on chosen weight
 * matrices of every layer, and with respect to the input embeddings. The
 * base weights stay frozen and may be of any type (read dequantized; the
 * activations stay f32). Architectures: the dense ones (llama, qwen2,
 * qwen3, gemma2, gemma3, phi3, chatglm, glm4) and the mixtures of experts
 * (qwen3moe, llama with experts: Mixtral, gpt-oss): gradients through the chosen
 * experts and their routing weights; there the FFN targets (gate, up,
 * down) train an adapter per expert on each stack (see struct
 * hearth_lora_tensor); other models are refused (HEARTH_EUNSUPPORTED).
 * Where the model stores q, k and v as one fused attn_qkv (or gate and up as
 * one ffn_up), a target bit of any of its parts trains ONE adapter on the
 * fused matrix, over all its rows (the adapter llama.cpp's format names by
 * the fused tensor). A trainer is used by one thread at a time; it runs its
 * passes on a thread pool of its own. */
struct hearth_trainer;
enum hearth_train_target { /* the matrices that get an adapter: bits */
	HEARTH_TRAIN_ATTN_Q = 1 << 0, HEARTH_TRAIN_ATTN_K = 1 << 1, HEARTH_TRAIN_ATTN_V = 1 << 2,
	HEARTH_TRAIN_ATTN_OUT = 1 << 3, HEARTH_TRAIN_FFN_GATE = 1 << 4, HEARTH_TRAIN_FFN_UP = 1 << 5,
	HEARTH_TRAIN_FFN_DOWN = 1 << 6,
	HEARTH_TRAIN_OUTPUT = 1 << 7, /* the output head (not when it is the token embedding matrix) */
};
struct hearth_trainer_params {
	uint32_t targets; /* HEARTH_TRAIN_* bits [q|k|v|out]; 0: no adapter (input gradients only) */
	int32_t rank;     /* of every adapter, 1..1024 [8] */
	float alpha;      /* delta W = alpha / rank * B A [16] */
	int32_t n_ctx;    /* most tokens of one pass, 1..65536 [512]; memory grows with n_ctx^2 * heads */
	int32_t n_threads; /* 0: the physical cores */
	uint64_t seed;    /* A's random start (B starts at zero, so the adapters start as no change) */
};
struct hearth_trainer_params hearth_trainer_default_params(void);
int hearth_trainer_new(struct hearth_trainer **out, const struct hearth_model *m, const struct hearth_trainer_params *p,
		       struct hearth_err *err);
void hearth_trainer_free(struct hearth_trainer *t);

/* An adapter of llama.cpp's GGUF LoRA format: tensors "<weight>.lora_a"
 * (ne0 = n_in, ne1 = rank) and "<weight>.lora_b" (ne0 = rank, ne1 = n_out);
 * y = W x + scale B A x. a and b are the trainer's parameters (the caller
 * may write them: an optimizer, a loaded adapter); grad_a and grad_b hold
 * the gradients the passes added since hearth_trainer_zero_grad.
 * A mixture of experts' stack ("blk.N.ffn_gate_exps.weight", up, down) is
 * one entry with n_expert > 1: a, b, grad_a and grad_b hold one matrix per
 * expert, expert after expert ([n_expert][rank][n_in], [n_expert][n_out]
 * [rank]: lora_a ne [n_in, rank, n_expert], lora_b ne [rank, n_out,
 * n_expert], llama.cpp's layout), expert e's applied to the rows the router
 * sends to e. Every other entry has n_expert 1. */
struct hearth_lora_tensor {
	const char *weight; /* the base matrix: "blk.0.attn_q.weight" */
	int64_t n_in, n_out;
	int32_t rank;
	float scale;        /* alpha / rank */
	float *a, *b;       /* [n_expert][rank][n_in], [n_expert][n_out][rank] */
	float *grad_a, *grad_b;
	int32_t n_expert;   /* 1: a matrix; else the experts of a stack */
};
int32_t hearth_trainer_n_lora(const struct hearth_trainer *t);
/* Adapter i (0 .. n_lora - 1), in layer order, q k v out gate up down within a layer, then the output head's. */
void hearth_trainer_lora(struct hearth_trainer *t, int32_t i, struct hearth_lora_tensor *out);
void hearth_trainer_zero_grad(struct hearth_trainer *t);

struct hearth_train_batch {
	int32_t n;              /* tokens, 1..n_ctx */
	const int32_t *tokens;  /* [n] */
	const int32_t *labels;  /* [n]: the token position i is to predict, or -1: no loss there */
	const int32_t *pos;     /* [n] positions, or NULL: 0 .. n-1. Several sequences packed: each
	                           starts at position 0 and counts up by one; a token attends to its
	                           own sequence only */
	const float *embd;      /* [n][n_embd]: the input embeddings, used instead of the tokens' rows
	                           of the embedding matrix (NULL: those rows) */
};
/* The training pass: *loss = the mean over the labelled positions of
 * -log p(label). With backward, adds the gradients of *loss to the adapters'
 * grad_a and grad_b and, when grad_embd is not NULL, writes there
 * d loss / d (input embeddings) [n][n_embd] (the rows before any
 * embedding scale). Without backward, only the loss (grad_embd unused).
 * A batch without a label: HEARTH_EINVAL. */
int hearth_trainer_run(struct hearth_trainer *t, const struct hearth_train_batch *b, bool backward, double *loss,
		       float *grad_embd, struct hearth_err *err);
/* A stop check for long passes: fn(data) is called on the caller's thread
 * before each layer of the forward and of the backward; when it returns
 * nonzero the pass ends there with HEARTH_ESHUTDOWN ("the pass was
 * stopped"), its loss unset and the adapters' gradients partly added (zero
 * them before the next step). fn NULL: no check (the default). */
typedef int (*hearth_trainer_stop_fn)(void *data);
void hearth_trainer_set_stop(struct hearth_trainer *t, hearth_trainer_stop_fn fn, void *data);

/* Attribution: how much each prompt token drives the log-probability of a
 * completion, log p(completion | prompt) = sum of the log-probabilities of
 * the completion's tokens after the prompt. scores[i] (i < n_prompt) is, with
 * e_i the prompt token's embedding row and g_i the gradient of that
 * log-probability with respect to it:
 *   n_steps 0: gradient x input, sum_j g_ij e_ij;
 *   n_steps > 0: integrated gradients from the zero embedding, sum_j e_ij
 *   times the mean of g_ij over the prompt's embeddings scaled by
 *   (k - 1/2) / n_steps, k = 1 .. n_steps (the completion's inputs stay as
 *   they are). Their sum approaches log p(completion | prompt) minus the
 *   same with every prompt embedding zero only when the steps resolve the
 *   path's start, where RMS norms can make the pass change fast (see
 *   src/train/attribute.c).
 * *logprob (may be NULL) gets log p(completion | prompt). Runs on t's pass
 * (its adapters apply) and adds to its adapters' gradients; a stop check set
 * on t (hearth_trainer_set_stop) ends it with HEARTH_ESHUTDOWN. n_prompt >= 1,
 * n_completion >= 1, n_prompt + n_completion - 1 <= the trainer's n_ctx. */
int hearth_attribute(struct hearth_trainer *t, const int32_t *prompt, int32_t n_prompt, const int32_t *completion,
		     int32_t n_completion, int32_t n_steps, float *scores, double *logprob, struct hearth_err *err);

/* ---- fine-tuning: LoRA adapters trained on a dataset (src/train/) -------- */

/* A fine-tuning run: a trainer's adapters (hearth_trainer_*) fitted to the
 * training split of a dataset by AdamW with a linear warm-up and a cosine
 * schedule. Each epoch visits the training examples in an order shuffled
 * from the seed and the epoch's number, packed whole into rows of n_ctx
 * slots (hearth_dataset_pack); a step runs batch_rows * grad_accum rows (the
 * epoch's last step may run fewer; steps do not cross epochs) and applies
 * the gradient of the mean loss over all their trained tokens. With the same
 * model, dataset, params and threads a run is reproducible bit for bit, also
 * across a checkpoint and resume. Used by one thread at a time; it keeps
 * pointers to the model and the dataset, which must outlive it. */
struct hearth_finetune;
struct hearth_finetune_params {
	struct hearth_trainer_params trainer; /* targets, rank, alpha, n_ctx (slots of a row), threads, seed
	                                          (A's start and each epoch's order) */
	float lr;            /* the peak learning rate [1e-4] */
	float min_lr_ratio;  /* the cosine ends at lr * this, 0..1 [0.1] */
	int32_t warmup;      /* steps of linear warm-up [0] */
	int32_t epochs;      /* passes over the training split [1]; 0 with max_steps: as many as it takes */
	int64_t max_steps;   /* 0: the epochs decide; else at most this many steps */
	int32_t batch_rows;  /* rows of a micro-batch [1] */
	int32_t grad_accum;  /* micro-batches of a step [1] */
	float weight_decay;  /* AdamW's decoupled decay [0] */
};
struct hearth_finetune_params hearth_finetune_default_params(void);
/* A run at step 0 over d's training split. HEARTH_EINVAL for params out of
 * range or a dataset without training examples; the trainer's errors. */
int hearth_finetune_new(struct hearth_finetune **out, const struct hearth_model *m, const struct hearth_dataset *d,
			const struct hearth_finetune_params *p, struct hearth_err *err);
void hearth_finetune_free(struct hearth_finetune *ft);
struct hearth_finetune_report {
	int64_t step, n_steps;   /* the step just taken (1-based), of n_steps */
	int32_t epoch;           /* its epoch (0-based) */
	double loss;             /* the mean loss of its trained tokens, before the update */
	float lr;                /* the learning rate it used */
	int64_t n_tokens;        /* slots it ran (packed tokens) */
	int64_t n_loss_tokens;   /* of which trained */
	int64_t tokens_total;    /* slots run since step 0 (across resumes) */
	double seconds;          /* wall time of the step */
};
/* Takes one optimizer step. HEARTH_EINVAL when the run is done. After a
 * failed step the run's place may have moved: continue from a checkpoint. */
int hearth_finetune_step(struct hearth_finetune *ft, struct hearth_finetune_report *r, struct hearth_err *err);
bool hearth_finetune_done(const struct hearth_finetune *ft);
int64_t hearth_finetune_n_steps(const struct hearth_finetune *ft);
int64_t hearth_finetune_step_index(const struct hearth_finetune *ft); /* steps taken */
/* The mean loss over the validation split's trained tokens (forward only;
 * the adapters' gradients are left zero). HEARTH_EINVAL when it is empty. */
int hearth_finetune_validate(struct hearth_finetune *ft, double *loss, struct hearth_err *err);
/* The trainer holding the adapters (owned by ft): its forward applies them. */
struct hearth_trainer *hearth_finetune_trainer(struct hearth_finetune *ft);
/* Writes the adapters as a llama.cpp GGUF LoRA adapter (general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha, the base's
 * general.architecture; f32 "<weight>.lora_a" [n_in x rank] and
 * "<weight>.lora_b" [rank x n_out]), through a temporary file renamed over path. */
int hearth_finetune_save(struct hearth_finetune *ft, const char *path, struct hearth_err *err);
/* A checkpoint: the adapters, AdamW's moments, the step, the place in the
 * epoch's order, the params and digests of the model and dataset (written
 * like hearth_finetune_save). */
int hearth_finetune_checkpoint(struct hearth_finetune *ft, const char *path, struct hearth_err *err);
/* Continues from a checkpoint: ft must be new (step 0) and made with the same
 * model, dataset and params; otherwise HEARTH_EINVAL naming what differs.
 * A malformed file (also one with a non-finite weight or moment, or a
 * negative second moment): HEARTH_EBADGGUF. A refused file leaves ft as it was. */
int hearth_finetune_resume(struct hearth_finetune *ft, const char *path, struct hearth_err *err);

#ifdef __cplusplus
}
#endif
#endif /* HEARTH_H */
