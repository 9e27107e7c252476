/* test-families.c - the dense families' loaders (gemma3, phi3, glm4,
 * chatglm) on variants of the fixture models: what a file asks for that
 * hearth does not do, and what it lacks, are clear errors naming it; gemma3's
 * final logit soft-capping bounds the logits as c tanh(logits / c). */
#include <stdlib.h>

#include "../../src/gguf/gguf.h"
#include "../harness.h"

/* A change to a fixture model: a key left out or set (u32, f32 or a u32
 * array), a tensor left out or one added (a copy of another's data). */
struct variant {
	const char *drop_key, *set_key;
	enum { SET_NONE, SET_U32, SET_F32, SET_ARR } set;
	double val;
	const char *drop_tensor, *add_tensor, *add_from;
};

/* Writes fixture model file (under models/) changed by v to tmp_path(out). */
static int write_variant(const char *file, const struct variant *v, const char *out)
{
	struct hearth_err err = { 0 };
	struct hearth_gguf *g = NULL;
	struct gguf_writer *w = NULL;
	char path[256];
	snprintf(path, sizeof path, "%s", fixture("models/"));
	snprintf(path + strlen(path), sizeof path - strlen(path), "%s.gguf", file);
	int rc = hearth_gguf_open(&g, path, &err);
	if (!rc)
		rc = gguf_writer_new(&w, &err);
	for (int64_t i = 0; !rc && i < g->n_kv; i++)
		if (!(v->drop_key && !strcmp(g->kv[i].key, v->drop_key)) && !(v->set_key && !strcmp(g->kv[i].key, v->set_key)))
			rc = gguf_writer_set_kv(w, &g->kv[i]);
	const uint32_t arr[4] = { 8, 12, 12, 0 };
	if (!rc && v->set == SET_U32)
		rc = gguf_writer_set_u32(w, v->set_key, (uint32_t)v->val);
	if (!rc && v->set == SET_F32)
		rc = gguf_writer_set_f32(w, v->set_key, (float)v->val);
	if (!rc && v->set == SET_ARR)
		rc = gguf_writer_set_arr(w, v->set_key, HEARTH_GGUF_U32, arr, 4);
	for (int64_t i = 0; !rc && i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		if (!(v->drop_tensor && !strcmp(t->name, v->drop_tensor)))
			rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
		if (!rc && v->add_from && !strcmp(t->name, v->add_from))
			rc = gguf_writer_add_tensor(w, v->add_tensor, t->type, t->n_dims, t->ne, t->data);
	}
	if (!rc)
		rc = gguf_writer_write(w, tmp_path(out), &err);
	T_OK(rc, err);
	gguf_writer_free(w);
	hearth_gguf_close(g);
	return rc;
}

void test_families_errors(void)
{
	static const struct {
		const char *file;
		struct variant v;
		int code;
		const char *says; /* in the message, besides the path */
	} cases[] = {
		{ "tiny-glm4.f32", { .set_key = "glm4.nextn_predict_layers", .set = SET_U32, .val = 1 }, HEARTH_EUNSUPPORTED,
		  "next-token-prediction" },
		{ "tiny-glm4.f32", { .set_key = "glm4.rope.dimension_sections", .set = SET_ARR }, HEARTH_EUNSUPPORTED,
		  "glm4.rope.dimension_sections" },
		{ "tiny-glm4.f32", { .drop_tensor = "blk.1.post_ffw_norm.weight" }, HEARTH_EBADGGUF, "layer 1 lacks its post norms" },
		{ "tiny-gemma3.f32", { .drop_tensor = "blk.2.attn_k_norm.weight" }, HEARTH_EBADGGUF, "gemma3 layer 2 lacks" },
		{ "tiny-gemma3.f32", { .set_key = "gemma3.final_logit_softcapping", .set = SET_F32, .val = -3 },
		  HEARTH_EBADGGUF, "final_logit_softcapping" },
		{ "tiny-gemma3.f32", { .set_key = "gemma3.attention.sliding_window_pattern", .set = SET_ARR },
		  HEARTH_EUNSUPPORTED, "per-layer values for 'gemma3.attention.sliding_window_pattern'" },
		{ "tiny-phi3.f32", { .drop_tensor = "rope_factors_long.weight" }, HEARTH_EBADGGUF, "rope_factors_short" },
		{ "tiny-phi3.f32", { .add_tensor = "blk.0.ffn_gate_inp.weight", .add_from = "blk.0.ffn_norm.weight" },
		  HEARTH_EUNSUPPORTED, "experts" },
		{ "tiny-phi3.f32", { .set_key = "phi3.rope.scaling.attn_factor", .set = SET_F32, .val = 0 }, HEARTH_EBADGGUF,
		  "attn_factor" },
		{ "tiny-chatglm.f32", { .drop_tensor = "blk.1.ffn_up.weight" }, HEARTH_EBADGGUF,
		  "neither blk.1.ffn_gate.weight nor a fused blk.1.ffn_up.weight" },
		{ "tiny-chatglm.f32", { .drop_tensor = "blk.0.attn_qkv.weight" }, HEARTH_EBADGGUF, "'blk.0.attn_q.weight' is missing" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hearth_model_params mp = hearth_model_default_params();
		struct hearth_err err = { 0 };
		struct hearth_model *m = NULL;
		if (write_variant(cases[i].file, &cases[i].v, "variant.gguf"))
			continue;
		T_EQ_I64(hearth_model_load(&m, tmp_path("variant.gguf"), &mp, &err), cases[i].code);
		T_TRUE(m == NULL);
		if (!strstr(err.msg, cases[i].says) || !strstr(err.msg, "variant.gguf"))
			T_FAIL("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
		hearth_model_free(m);
	}
}

/* The last logits of a prompt through model file path. */
static float *logits_of(const char *path, const int32_t *ids, int n, int *n_vocab)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_context *c = NULL;
	float *out = NULL;
	T_OK(hearth_model_load(&m, path, &mp, &err), err);
	if (m) {
		cp.n_ctx = 64;
		cp.cache_type = HEARTH_TYPE_F32;
		T_OK(hearth_context_new(&c, m, &cp, &err), err);
	}
	if (c) {
		T_OK(hearth_decode(c, ids, n, false, &err), err);
		*n_vocab = hearth_model_n_vocab(m);
		out = malloc((size_t)*n_vocab * sizeof *out);
		if (out)
			memcpy(out, hearth_get_logits(c, -1), (size_t)*n_vocab * sizeof *out);
	}
	hearth_context_free(c);
	hearth_model_free(m);
	return out;
}

void test_families_softcap(void)
{
	const int32_t ids[] = { 1, 40, 41, 300, 7, 99, 250 };
	const struct variant v = { .set_key = "gemma3.final_logit_softcapping", .set = SET_F32, .val = 2.0 };
	int V = 0, V2 = 0;
	char path[256];
	snprintf(path, sizeof path, "%s", fixture("models/tiny-gemma3.f32.gguf"));
	if (write_variant("tiny-gemma3.f32", &v, "capped.gguf"))
		return;
	float *plain = logits_of(path, ids, 7, &V), *capped = logits_of(tmp_path("capped.gguf"), ids, 7, &V2);
	T_TRUE(plain && capped && V == V2);
	double worst = 0, top = 0;
	for (int i = 0; plain && capped && i < V; i++) {
		worst = fmax(worst, fabs(capped[i] - 2.0 * tanh(plain[i] / 2.0)));
		top = fmax(top, fabs(plain[i]));
	}
	T_TRUE(top > 2.5);       /* the cap changes something */
	T_TRUE(worst < 1e-5);
	free(plain);
	free(capped);
}

/* The last logits of ids through a context of n_ctx positions. */
static float *logits_ctx(struct hearth_model *m, const int32_t *ids, int n, int n_ctx)
{
	struct hearth_context_params cp = hearth_context_default_params();
	struct hearth_err err = { 0 };
	struct hearth_context *c = NULL;
	const int V = hearth_model_n_vocab(m);
	float *out = malloc((size_t)V * sizeof *out);
	cp.n_ctx = n_ctx;
	cp.n_batch = 64;
	cp.cache_type = HEARTH_TYPE_F32;
	T_OK(hearth_context_new(&c, m, &cp, &err), err);
	if (c && out) {
		T_OK(hearth_decode(c, ids, n, false, &err), err);
		memcpy(out, hearth_get_logits(c, -1), (size_t)V * sizeof *out);
	}
	hearth_context_free(c);
	return out;
}

/* phi3's LongRoPE: contexts up to rope.scaling.original_context_length (4096)
 * use the short factors, longer ones the long factors (as llama.cpp decides
 * by its context size; both checked against llama.cpp at 1024 and 8192). */
void test_families_longrope(void)
{
	struct hearth_model_params mp = hearth_model_default_params();
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	T_OK(hearth_model_load(&m, fixture("models/tiny-phi3.f32.gguf"), &mp, &err), err);
	if (!m)
		return;
	const int32_t ids[] = { 1, 40, 41, 300, 7, 99, 250, 12, 13, 480, 77 };
	const int n = (int)(sizeof ids / sizeof ids[0]), V = hearth_model_n_vocab(m);
	float *a = logits_ctx(m, ids, n, 1024), *b = logits_ctx(m, ids, n, 4096), *c = logits_ctx(m, ids, n, 4097);
	T_TRUE(a && b && c);
	if (a && b && c) {
		T_TRUE(memcmp(a, b, (size_t)V * sizeof *a) == 0);
		T_TRUE(memcmp(b, c, (size_t)V * sizeof *b) != 0);
	}
	free(a);
	free(b);
	free(c);
	hearth_model_free(m);
}
