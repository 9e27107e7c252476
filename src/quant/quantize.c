/* quantize.c - hearth_quantize(): a GGUF model rewritten in a llama-quantize
 * file type.
 *
 * Flow: open the input (read-only mmap); visit its tensors in llama-quantize's
 * order (tensors outside the blocks by name, then block by block, by name
 * within a block), asking the recipe (recipe.c) for each one's type; check
 * every conversion (and every imatrix entry's size) before doing any;
 * convert row by row (dequantize to f32, quantize with the reference
 * quantizers, or with an imatrix the weighted ones, each row with its
 * expert's importance values; rows split over the threads, each converted on
 * its own, so the bytes do not depend on the thread count); write every
 * metadata key as read plus general.quantization_version, general.file_type
 * (and quantize.imatrix.*), then the tensors, to a temporary file renamed
 * over the output at the end.
 *
 * Memory: tensors that keep their type are written from the input mapping;
 * converted ones are held in memory until the file is written (the output's
 * size of converted data).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/thread.h"
#include "../gguf/gguf.h"
#include "../tensor/quant-ref.h"
#include "imatrix-read.h"
#include "quant.h"

#define QUANT_VERSION 2 /* general.quantization_version llama.cpp writes */

struct hearth_quantize_params hearth_quantize_default_params(void)
{
	return (struct hearth_quantize_params){ .ftype = HEARTH_FTYPE_Q8_0, .output_tensor_type = -1,
						.token_embedding_type = -1 };
}

static bool name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return false;
	return *a == *b;
}

int hearth_quantize_ftype_parse(const char *s)
{
	static const struct { const char *name; int ftype; } names[] = {
		{ "f32", HEARTH_FTYPE_ALL_F32 }, { "f16", HEARTH_FTYPE_F16 }, { "bf16", HEARTH_FTYPE_BF16 },
		{ "q4_0", HEARTH_FTYPE_Q4_0 }, { "q4_1", HEARTH_FTYPE_Q4_1 }, { "q5_0", HEARTH_FTYPE_Q5_0 },
		{ "q5_1", HEARTH_FTYPE_Q5_1 }, { "q8_0", HEARTH_FTYPE_Q8_0 }, { "q4_k_s", HEARTH_FTYPE_Q4_K_S },
		{ "q4_k_m", HEARTH_FTYPE_Q4_K_M }, { "q4_k", HEARTH_FTYPE_Q4_K_M }, { "q5_k_s", HEARTH_FTYPE_Q5_K_S },
		{ "q5_k_m", HEARTH_FTYPE_Q5_K_M }, { "q5_k", HEARTH_FTYPE_Q5_K_M }, { "q6_k", HEARTH_FTYPE_Q6_K },
		{ "q2_k", HEARTH_FTYPE_Q2_K }, { "q3_k_s", HEARTH_FTYPE_Q3_K_S }, { "q3_k_m", HEARTH_FTYPE_Q3_K_M },
		{ "q3_k", HEARTH_FTYPE_Q3_K_M }, { "q3_k_l", HEARTH_FTYPE_Q3_K_L }, { "mxfp4_moe", HEARTH_FTYPE_MXFP4_MOE },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (name_eq(s, names[i].name))
			return names[i].ftype;
	return -1;
}

int hearth_type_parse(const char *s)
{
	for (int t = 0; t < HEARTH_TYPE_COUNT; t++) {
		const struct qtype_info *q = qtype_info(t);
		if (q && !q->internal && name_eq(s, q->name))
			return t;
	}
	return -1;
}

/* ---- the visiting order ------------------------------------------------- */

static int layer_of(const char *name)
{
	int il = -1;
	if (sscanf(name, "blk.%d.", &il) != 1)
		il = -1;
	return il;
}

static const struct hearth_gguf *sort_g; /* qsort has no context argument; set under the caller */

static int cmp_llama_order(const void *a, const void *b)
{
	const char *na = sort_g->tensors[*(const int64_t *)a].name, *nb = sort_g->tensors[*(const int64_t *)b].name;
	const int la = layer_of(na), lb = layer_of(nb);
	return la != lb ? (la < lb ? -1 : 1) : strcmp(na, nb);
}

/* ---- conversion ---------------------------------------------------------- */

struct conv_task {
	const uint8_t *src;
	uint8_t *dst;
	int type_in, type_out;
	int64_t ne0, ne1, ne2, n_rows;
	size_t row_in, row_out;
	const float *qw; /* importance of each column, ne0 per expert (ne2), or NULL */
	float *scratch;  /* ne0 floats per thread */
	int rc;          /* first failure (any thread) */
};

/* Rows [per*ith, per*(ith+1)): each row is converted on its own, so the bytes
 * do not depend on the thread count. */
static void conv_rows(void *arg, int ith, int nth)
{
	struct conv_task *t = arg;
	const int64_t per = (t->n_rows + nth - 1) / nth, r0 = per * ith;
	const int64_t r1 = r0 + per < t->n_rows ? r0 + per : t->n_rows;
	float *f = t->scratch + (size_t)ith * (size_t)t->ne0;
	for (int64_t r = r0; r < r1; r++) {
		const float *qw = t->qw ? t->qw + (r / t->ne1) % t->ne2 * t->ne0 : NULL;
		int rc = dequantize_row_ref(t->type_in, t->src + (size_t)r * t->row_in, f, t->ne0);
		rc = rc ? rc : quantize_row_imat(t->type_out, f, t->dst + (size_t)r * t->row_out, t->ne0, qw);
		if (rc) {
			t->rc = rc;
			return;
		}
	}
}

static bool can_dequantize(int type)
{
	switch (type) {
	case HEARTH_TYPE_F32: case HEARTH_TYPE_F16: case HEARTH_TYPE_BF16: case HEARTH_TYPE_Q4_0:
	case HEARTH_TYPE_Q4_1: case HEARTH_TYPE_Q5_0: case HEARTH_TYPE_Q5_1: case HEARTH_TYPE_Q8_0:
	case HEARTH_TYPE_Q8_1: case HEARTH_TYPE_Q8_K: case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K:
	case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
		return true;
	}
	return false;
}

/* True when type's quantizer uses importance weights (q8_0 and the float
 * types ignore them, as in llama.cpp). */
static bool weighed(int type)
{
	switch (type) {
	case HEARTH_TYPE_Q4_0: case HEARTH_TYPE_Q4_1: case HEARTH_TYPE_Q5_0: case HEARTH_TYPE_Q5_1:
	case HEARTH_TYPE_Q2_K: case HEARTH_TYPE_Q3_K: case HEARTH_TYPE_Q4_K: case HEARTH_TYPE_Q5_K: case HEARTH_TYPE_Q6_K:
		return true;
	}
	return false;
}

/* A type the caller may ask for explicitly: a file type hearth can write. */
static bool writable(int type)
{
	const struct qtype_info *q = qtype_info(type);
	return q && !q->internal && quantize_supported(type) && type != HEARTH_TYPE_Q8_1 && type != HEARTH_TYPE_Q8_K;
}

/* {arch}.<what>: a scalar, or layer 0's entry of a per-layer array; -1 when absent. */
static int64_t arch_int(const struct hearth_gguf *g, const struct gguf_str *arch, const char *what)
{
	char key[160];
	int64_t v = -1;
	snprintf(key, sizeof key, "%.*s.%s", (int)arch->n, arch->p, what);
	const int64_t ik = gguf_find_key(g, key);
	if (ik < 0)
		return -1;
	const struct gguf_kv *kv = &g->kv[ik];
	if (kv->type == HEARTH_GGUF_ARRAY) {
		if (kv->arr_n == 0 || kv->arr_type == HEARTH_GGUF_STRING || kv->arr_type == HEARTH_GGUF_ARRAY ||
		    kv->arr_type == HEARTH_GGUF_F32 || kv->arr_type == HEARTH_GGUF_F64 || kv->arr_type == HEARTH_GGUF_BOOL)
			return -1;
		v = gguf_arr_i64(kv, 0);
	} else if (gguf_get_i64(g, key, &v, NULL)) {
		return -1;
	}
	return v >= 0 && v < 1000000 ? v : -1;
}

static void recipe_init(struct quant_recipe *r, const struct hearth_gguf *g, const struct hearth_quantize_params *p,
			bool has_imatrix)
{
	struct gguf_str arch = { 0 };

	memset(r, 0, sizeof *r);
	r->ftype = p->ftype;
	r->pure = p->pure;
	r->output_type = p->output_tensor_type;
	r->embd_type = p->token_embedding_type;
	r->has_imatrix = has_imatrix;
	r->tied = gguf_find_tensor(g, "output.weight") < 0;
	for (int64_t i = 0; i < g->n_tensors; i++)
		r->n_attn_v += quant_is_attn_v(g->tensors[i].name);
	if (gguf_get_str(g, "general.architecture", &arch, NULL) || arch.n > 100)
		return;
	r->falcon = arch.n == 6 && !memcmp(arch.p, "falcon", 6);
	const int64_t n_layer = arch_int(g, &arch, "block_count"), n_expert = arch_int(g, &arch, "expert_count");
	const int64_t n_head = arch_int(g, &arch, "attention.head_count");
	int64_t n_head_kv = arch_int(g, &arch, "attention.head_count_kv");
	n_head_kv = n_head_kv < 0 ? n_head : n_head_kv; /* llama.cpp's default: no GQA */
	r->n_layer = n_layer > 0 ? (int)n_layer : 0;
	r->n_expert = n_expert > 0 ? (int)n_expert : 0;
	r->n_gqa = n_head > 0 && n_head_kv > 0 ? (int)(n_head / n_head_kv) : 0;
	r->is_70b = arch.n == 5 && !memcmp(arch.p, "llama", 5) && r->n_layer == 80 && n_head_kv > 0 && n_head != n_head_kv;
}

/* ---- the driver ------------------------------------------------------------ */

struct job {
	const char *in_path, *out_path;
	const struct hearth_quantize_params *p;
	struct hearth_gguf *g;
	struct imatrix_data *im;   /* NULL without --imatrix (or with an empty one) */
	int64_t *order;            /* tensor indices in llama-quantize's order */
	int *types;                /* output type, by position in order */
	const float **qw;          /* importance values, by position in order (NULL: none) */
	void **bufs;               /* converted data, by position in order */
	int64_t ne0_max;           /* longest row converted */
};

/* The imatrix values for tensor t (converted to another type), or NULL; an
 * entry of the wrong size is an error, except for token_embd (llama.cpp
 * ignores it there: embeddings are looked up, not multiplied). */
static int plan_imatrix(struct job *j, const struct gguf_tensor *t, const float **qw, struct hearth_err *err)
{
	const struct imatrix_entry *e = imatrix_read_find(j->im, t->name);
	*qw = NULL;
	if (!e)
		return 0;
	if (e->n == t->ne[0] * t->ne[2]) {
		*qw = e->values;
		return 0;
	}
	if (!strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "per_layer_token_embd.weight"))
		return 0;
	return err_set(err, HEARTH_EINVAL, "%s: entry '%s' has %" PRId64 " values, the tensor needs %" PRId64
		       " (%" PRId64 " columns x %" PRId64 " experts)", j->p->imatrix_path, t->name, e->n,
		       t->ne[0] * t->ne[2], t->ne[0], t->ne[2]);
}

/* Every tensor's type (and importance values) first: every conversion is
 * checked before any work. */
static int plan(struct job *j, struct hearth_err *err)
{
	const struct hearth_gguf *g = j->g;
	struct quant_recipe r;
	int rc;
	recipe_init(&r, g, j->p, j->im != NULL);
	j->ne0_max = 1;
	for (int64_t k = 0; k < g->n_tensors; k++) {
		const struct gguf_tensor *t = &g->tensors[j->order[k]];
		const int to = quant_tensor_type(&r, t->name, t->n_dims, t->ne, t->type);
		if (to < 0)
			return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s': rows of %" PRId64
				       " elements do not split into %s blocks, and there is no fallback type",
				       j->in_path, t->name, t->ne[0], hearth_type_name(quant_ftype_base_type(j->p->ftype)));
		j->types[k] = to;
		if (to == t->type)
			continue;
		if (!can_dequantize(t->type) || !writable(to) || t->ne[0] % qtype_info(to)->blck_size)
			return err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' cannot be converted from %s to %s",
				       j->in_path, t->name, hearth_type_name(t->type), hearth_type_name(to));
		if ((rc = plan_imatrix(j, t, &j->qw[k], err)))
			return rc;
		j->ne0_max = t->ne[0] > j->ne0_max ? t->ne[0] : j->ne0_max;
	}
	return 0;
}

/* Metadata: every key as read, then the ones llama-quantize sets, in its
 * order (general.quantization_version, general.file_type, and with an
 * imatrix quantize.imatrix.*); split keys dropped, as it does. */
static int write_meta(struct job *j, struct gguf_writer *w)
{
	const struct imatrix_data *im = j->im;
	static const char *const drop[] = { "general.quantization_version", "general.file_type", "split.no",
					    "split.count", "split.tensors.count" };
	char file[128];
	int rc = 0;
	for (int64_t i = 0; i < j->g->n_kv && !rc; i++) {
		const char *key = j->g->kv[i].key;
		bool skip = false;
		for (size_t d = 0; d < sizeof drop / sizeof drop[0]; d++)
			skip |= !strcmp(key, drop[d]);
		if (im) /* the keys set below replace the input's */
			skip |= !strcmp(key, "quantize.imatrix.file") || !strcmp(key, "quantize.imatrix.entries_count") ||
				(im->dataset && !strcmp(key, "quantize.imatrix.dataset")) ||
				(im->chunk_count > 0 && !strcmp(key, "quantize.imatrix.chunks_count"));
		if (!skip)
			rc = gguf_writer_set_kv(w, &j->g->kv[i]);
	}
	rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION);
	rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", (uint32_t)j->p->ftype);
	if (rc || !im)
		return rc;
	snprintf(file, sizeof file, "%s", j->p->imatrix_path); /* llama-quantize keeps 127 bytes */
	rc = gguf_writer_set_str(w, "quantize.imatrix.file", file);
	if (!rc && im->dataset) {
		snprintf(file, sizeof file, "%s", im->dataset);
		rc = gguf_writer_set_str(w, "quantize.imatrix.dataset", file);
	}
	rc = rc ? rc : gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n_entries);
	if (!rc && im->chunk_count > 0)
		rc = gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", (uint32_t)im->chunk_count);
	return rc;
}

/* Converts (or passes through) the k-th tensor and adds it to w. */
static int convert_one(struct job *j, int64_t k, struct pool *pool, float *scratch, struct gguf_writer *w,
		       struct hearth_err *err)
{
	const struct gguf_tensor *t = &j->g->tensors[j->order[k]];
	const int to = j->types[k];
	const void *data = t->data;
	const int64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
	const uint64_t nbytes_out = qtype_row_size(to, t->ne[0]) * (uint64_t)n_rows;
	int rc;
	if (to != t->type) {
		struct conv_task c = { .src = t->data, .type_in = t->type, .type_out = to, .ne0 = t->ne[0],
				       .ne1 = t->ne[1], .ne2 = t->ne[2], .n_rows = n_rows,
				       .row_in = qtype_row_size(t->type, t->ne[0]), .row_out = qtype_row_size(to, t->ne[0]),
				       .qw = j->qw[k], .scratch = scratch };
		if (!(j->bufs[k] = malloc(nbytes_out ? nbytes_out : 1)))
			return err_set(err, HEARTH_ENOMEM, "%s: out of memory for tensor '%s'", j->in_path, t->name);
		c.dst = j->bufs[k];
		pool_run(pool, conv_rows, &c);
		if (c.rc)
			return err_set(err, c.rc, "%s: tensor '%s': converting %s to %s failed", j->in_path, t->name,
				       hearth_type_name(t->type), hearth_type_name(to));
		data = j->bufs[k];
	}
	if ((rc = gguf_writer_add_tensor(w, t->name, to, t->n_dims, t->ne, data)))
		return err_set(err, rc, "%s: cannot add tensor '%s'", j->out_path, t->name);
	if (j->p->on_tensor) {
		struct hearth_quantize_tensor info = { .name = t->name, .n_dims = t->n_dims, .type_in = t->type,
						       .type_out = to, .nbytes_in = t->nbytes, .nbytes_out = nbytes_out,
						       .index = k, .n_tensors = j->g->n_tensors,
						       .imatrix = j->qw[k] && weighed(to) };
		memcpy(info.ne, t->ne, sizeof info.ne);
		j->p->on_tensor(&info, j->p->user_data);
	}
	return 0;
}

/* Writes w to a temporary name beside out_path, then renames it: the output
 * appears whole or not at all. */
static int write_out(const char *out_path, struct gguf_writer *w, struct hearth_err *err)
{
	const size_t tmp_len = strlen(out_path) + 32;
	char *tmp = malloc(tmp_len);
	int rc;
	if (!tmp)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", out_path);
	snprintf(tmp, tmp_len, "%s.tmp-%ld", out_path, (long)getpid());
	if ((rc = gguf_writer_write(w, tmp, err))) {
		unlink(tmp);
	} else if (rename(tmp, out_path)) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it", out_path, tmp);
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

/* Opens the input and the imatrix, and allocates the per-tensor tables. */
static int job_open(struct job *j, struct hearth_err *err)
{
	int rc;
	if (j->p->imatrix_path) {
		if ((rc = imatrix_read(&j->im, j->p->imatrix_path, err)))
			return rc;
		if (!j->im->n_entries) { /* nothing to use: as without one, as llama-quantize does */
			imatrix_read_free(j->im);
			j->im = NULL;
		}
	}
	if ((rc = hearth_gguf_open(&j->g, j->in_path, err)))
		return rc;
	const size_t n = (size_t)(j->g->n_tensors ? j->g->n_tensors : 1);
	j->order = malloc(n * sizeof *j->order);
	j->types = malloc(n * sizeof *j->types);
	j->qw = calloc(n, sizeof *j->qw);
	j->bufs = calloc(n, sizeof *j->bufs);
	if (!j->order || !j->types || !j->qw || !j->bufs)
		return err_set(err, HEARTH_ENOMEM, "%s: out of memory", j->in_path);
	for (int64_t i = 0; i < j->g->n_tensors; i++)
		j->order[i] = i;
	sort_g = j->g;
	qsort(j->order, (size_t)j->g->n_tensors, sizeof *j->order, cmp_llama_order);
	sort_g = NULL;
	return 0;
}

static void job_close(struct job *j)
{
	if (j->bufs && j->g)
		for (int64_t k = 0; k < j->g->n_tensors; k++)
			free(j->bufs[k]);
	free(j->bufs);
	free(j->qw);
	free(j->types);
	free(j->order);
	hearth_gguf_close(j->g);
	imatrix_read_free(j->im);
}

static int check_params(const struct hearth_quantize_params *p, struct hearth_err *err)
{
	if (quant_ftype_base_type(p->ftype) < 0)
		return err_set(err, HEARTH_EINVAL, "quantize: unknown file type %d", p->ftype);
	if (p->output_tensor_type >= 0 && !writable(p->output_tensor_type))
		return err_set(err, HEARTH_EUNSUPPORTED, "quantize: cannot write output tensors as type %d (%s)",
			       p->output_tensor_type, hearth_type_name(p->output_tensor_type) ? hearth_type_name(p->output_tensor_type) : "unknown");
	if (p->token_embedding_type >= 0 && !writable(p->token_embedding_type))
		return err_set(err, HEARTH_EUNSUPPORTED, "quantize: cannot write token embeddings as type %d (%s)",
			       p->token_embedding_type, hearth_type_name(p->token_embedding_type) ? hearth_type_name(p->token_embedding_type) : "unknown");
	return 0;
}

int hearth_quantize(const char *in_path, const char *out_path, const struct hearth_quantize_params *p,
		    struct hearth_err *err)
{
	struct job j = { .in_path = in_path, .out_path = out_path, .p = p };
	struct gguf_writer *w = NULL;
	struct pool *pool = NULL;
	float *scratch = NULL;
	int rc;

	if ((rc = check_params(p, err)) || (rc = job_open(&j, err)) || (rc = plan(&j, err)))
		goto out;
	const int nth = p->n_threads > 0 ? p->n_threads : cpu_count();
	if ((rc = pool_new(&pool, nth, err)) || (rc = gguf_writer_new(&w, err)))
		goto out;
	if (!(scratch = malloc((size_t)pool_size(pool) * (size_t)j.ne0_max * sizeof *scratch))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", in_path);
		goto out;
	}
	if ((rc = write_meta(&j, w))) {
		rc = err_set(err, rc, "%s: cannot copy the metadata (%s)", out_path, hearth_strerror(rc));
		goto out;
	}
	for (int64_t k = 0; k < j.g->n_tensors && !rc; k++)
		rc = convert_one(&j, k, pool, scratch, w, err);
	rc = rc ? rc : write_out(out_path, w, err);
out:
	free(scratch);
	gguf_writer_free(w);
	pool_free(pool);
	job_close(&j);
	return rc;
}
