/* quantize.c - hearth_quantize(): a GGUF model rewritten in a llama-quantize
 * file type.
 *
 * Flow: open the input (read-only mmap); visit its tensors in llama-quantize's
 * order (tensors outside the blocks by name, then block by block, by name
 * within a block), asking the recipe (recipe.c) for each one's type; check
 * every conversion before doing any; convert row by row (dequantize to f32,
 * quantize with the reference quantizers; rows split over the threads);
 * write every metadata key as read plus general.quantization_version and
 * general.file_type, then the tensors, to a temporary file renamed over the
 * output at the end.
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
		{ "q3_k", HEARTH_FTYPE_Q3_K_M }, { "q3_k_l", HEARTH_FTYPE_Q3_K_L },
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
	int64_t ne0, n_rows;
	size_t row_in, row_out;
	float *scratch; /* ne0 floats per thread */
	int rc;         /* first failure (any thread) */
};

static void conv_rows(void *arg, int ith, int nth)
{
	struct conv_task *t = arg;
	const int64_t per = (t->n_rows + nth - 1) / nth, r0 = per * ith;
	const int64_t r1 = r0 + per < t->n_rows ? r0 + per : t->n_rows;
	float *f = t->scratch + (size_t)ith * (size_t)t->ne0;
	for (int64_t r = r0; r < r1; r++) {
		int rc = dequantize_row_ref(t->type_in, t->src + (size_t)r * t->row_in, f, t->ne0);
		rc = rc ? rc : quantize_row_ref(t->type_out, f, t->dst + (size_t)r * t->row_out, t->ne0);
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

int hearth_quantize(const char *in_path, const char *out_path, const struct hearth_quantize_params *p,
		    struct hearth_err *err)
{
	struct hearth_gguf *g = NULL;
	struct gguf_writer *w = NULL;
	struct pool *pool = NULL;
	struct quant_recipe r;
	int64_t *order = NULL;
	int *types = NULL;
	void **bufs = NULL;
	float *scratch = NULL;
	char *tmp = NULL;
	int rc;

	if (quant_ftype_base_type(p->ftype) < 0)
		return err_set(err, HEARTH_EINVAL, "quantize: unknown file type %d", p->ftype);
	if (p->output_tensor_type >= 0 && !writable(p->output_tensor_type))
		return err_set(err, HEARTH_EUNSUPPORTED, "quantize: cannot write output tensors as type %d (%s)",
			       p->output_tensor_type, hearth_type_name(p->output_tensor_type) ? hearth_type_name(p->output_tensor_type) : "unknown");
	if (p->token_embedding_type >= 0 && !writable(p->token_embedding_type))
		return err_set(err, HEARTH_EUNSUPPORTED, "quantize: cannot write token embeddings as type %d (%s)",
			       p->token_embedding_type, hearth_type_name(p->token_embedding_type) ? hearth_type_name(p->token_embedding_type) : "unknown");
	if ((rc = hearth_gguf_open(&g, in_path, err)))
		return rc;
	const int64_t n = g->n_tensors;
	order = malloc((size_t)(n ? n : 1) * sizeof *order);
	types = malloc((size_t)(n ? n : 1) * sizeof *types);
	bufs = calloc((size_t)(n ? n : 1), sizeof *bufs);
	if (!order || !types || !bufs) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", in_path);
		goto out;
	}
	for (int64_t i = 0; i < n; i++)
		order[i] = i;
	sort_g = g;
	qsort(order, (size_t)n, sizeof *order, cmp_llama_order);
	sort_g = NULL;

	/* every type first, every conversion checked before any work */
	recipe_init(&r, g, p, false);
	int64_t ne0_max = 1;
	for (int64_t k = 0; k < n; k++) {
		const struct gguf_tensor *t = &g->tensors[order[k]];
		const int to = quant_tensor_type(&r, t->name, t->n_dims, t->ne, t->type);
		if (to < 0) {
			rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s': rows of %" PRId64
				     " elements do not split into %s blocks, and there is no fallback type",
				     in_path, t->name, t->ne[0], hearth_type_name(quant_ftype_base_type(p->ftype)));
			goto out;
		}
		types[k] = to;
		if (to == t->type)
			continue;
		if (!can_dequantize(t->type) || !writable(to) || t->ne[0] % qtype_info(to)->blck_size) {
			rc = err_set(err, HEARTH_EUNSUPPORTED, "%s: tensor '%s' cannot be converted from %s to %s", in_path,
				     t->name, hearth_type_name(t->type), hearth_type_name(to));
			goto out;
		}
		ne0_max = t->ne[0] > ne0_max ? t->ne[0] : ne0_max;
	}

	const int nth = p->n_threads > 0 ? p->n_threads : cpu_count();
	if ((rc = pool_new(&pool, nth, err)) || (rc = gguf_writer_new(&w, err)))
		goto out;
	if (!(scratch = malloc((size_t)pool_size(pool) * (size_t)ne0_max * sizeof *scratch))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", in_path);
		goto out;
	}

	/* metadata: every key as read, then the two llama-quantize sets (last, as it
	 * sets them); split keys dropped, as it does */
	for (int64_t i = 0; i < g->n_kv && !rc; i++) {
		const char *key = g->kv[i].key;
		if (!strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type") ||
		    !strcmp(key, "split.no") || !strcmp(key, "split.count") || !strcmp(key, "split.tensors.count"))
			continue;
		rc = gguf_writer_set_kv(w, &g->kv[i]);
	}
	rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION);
	rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype);
	if (rc) {
		rc = err_set(err, rc, "%s: cannot copy the metadata (%s)", out_path, hearth_strerror(rc));
		goto out;
	}

	for (int64_t k = 0; k < n; k++) {
		const struct gguf_tensor *t = &g->tensors[order[k]];
		const int to = types[k];
		const void *data = t->data;
		int64_t n_rows = 1;
		for (int d = 1; d < GGUF_MAX_DIMS; d++)
			n_rows *= t->ne[d];
		const uint64_t nbytes_out = qtype_row_size(to, t->ne[0]) * (uint64_t)n_rows;
		if (to != t->type) {
			struct conv_task c = { .src = t->data, .type_in = t->type, .type_out = to, .ne0 = t->ne[0],
					       .n_rows = n_rows, .row_in = qtype_row_size(t->type, t->ne[0]),
					       .row_out = qtype_row_size(to, t->ne[0]), .scratch = scratch };
			if (!(bufs[k] = malloc(nbytes_out ? nbytes_out : 1))) {
				rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory for tensor '%s'", in_path, t->name);
				goto out;
			}
			c.dst = bufs[k];
			pool_run(pool, conv_rows, &c);
			if (c.rc) {
				rc = err_set(err, c.rc, "%s: tensor '%s': converting %s to %s failed", in_path, t->name,
					     hearth_type_name(t->type), hearth_type_name(to));
				goto out;
			}
			data = bufs[k];
		}
		if ((rc = gguf_writer_add_tensor(w, t->name, to, t->n_dims, t->ne, data))) {
			rc = err_set(err, rc, "%s: cannot add tensor '%s'", out_path, t->name);
			goto out;
		}
		if (p->on_tensor) {
			struct hearth_quantize_tensor info = { .name = t->name, .n_dims = t->n_dims, .type_in = t->type,
							       .type_out = to, .nbytes_in = t->nbytes,
							       .nbytes_out = nbytes_out, .index = k, .n_tensors = n };
			memcpy(info.ne, t->ne, sizeof info.ne);
			p->on_tensor(&info, p->user_data);
		}
	}

	/* the output appears whole or not at all */
	const size_t tmp_len = strlen(out_path) + 32;
	if (!(tmp = malloc(tmp_len))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory", out_path);
		goto out;
	}
	snprintf(tmp, tmp_len, "%s.tmp-%ld", out_path, (long)getpid());
	if ((rc = gguf_writer_write(w, tmp, err))) {
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, out_path)) {
		rc = err_set(err, HEARTH_EIO, "%s: cannot rename %s over it", out_path, tmp);
		unlink(tmp);
	}
out:
	if (bufs)
		for (int64_t k = 0; k < n; k++)
			free(bufs[k]);
	free(bufs);
	free(tmp);
	free(scratch);
	free(types);
	free(order);
	gguf_writer_free(w);
	pool_free(pool);
	hearth_gguf_close(g);
	return rc;
}
