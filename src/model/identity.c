/*
 * identity.c - a model's identity, for saved state.
 *
 * Saved KV rows are only meaningful to the very model that computed them: the
 * same architecture, hyper-parameters, tensor layout and weights. Hashing all
 * the weights would cost a full read of the file on every load, so the
 * digest covers everything but the bulk of the weights exactly and samples
 * the weights themselves: the first and last IDENTITY_SAMPLE bytes of every
 * tensor. Two files that differ only in the middle of a tensor (and nowhere
 * else) share an identity; a fine-tune, a requantization or a different
 * vocabulary does not. The digest depends only on the file, so it is stable
 * across restarts and machines.
 *
 * Tensor data is read from the GGUF mapping; a matrix whose pages were given
 * back after repacking is read again from the file (a few pages per tensor).
 */
#include <string.h>

#include "../base/err.h"
#include "../base/sha256.h"
#include "identity.h"

#define IDENTITY_SAMPLE 4096
#define IDENTITY_DOMAIN "hearth model identity v1"

static void put_i64(struct sha256 *h, int64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (8 * i));
	sha256_update(h, b, sizeof b);
}

static void put_f32(struct sha256 *h, float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof u);
	put_i64(h, (int64_t)u);
}

static void put_str(struct sha256 *h, const char *s)
{
	const size_t n = strlen(s);
	put_i64(h, (int64_t)n);
	sha256_update(h, s, n);
}

static void put_hparams(struct sha256 *h, const struct hparams *hp)
{
	const int32_t ints[] = { hp->n_vocab, hp->n_ctx_train, hp->n_embd,    hp->n_layer,    hp->n_ff,
				 hp->n_head,  hp->n_head_kv,   hp->head_dim_k, hp->head_dim_v, hp->n_rot,
				 (int32_t)hp->rope_type };
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		put_i64(h, ints[i]);
	put_f32(h, hp->rms_eps);
	put_f32(h, hp->rope_base);
	put_f32(h, hp->rope_freq_scale);
}

static void put_tensor(struct sha256 *h, const struct gguf_tensor *t)
{
	put_str(h, t->name);
	put_i64(h, t->type);
	put_i64(h, t->n_dims);
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		put_i64(h, t->ne[d]);
	put_i64(h, (int64_t)t->nbytes);
	if (!t->data)
		return;
	const uint64_t head = t->nbytes < IDENTITY_SAMPLE ? t->nbytes : IDENTITY_SAMPLE;
	sha256_update(h, t->data, (size_t)head);
	if (t->nbytes > IDENTITY_SAMPLE) {
		const uint64_t from = t->nbytes - IDENTITY_SAMPLE > IDENTITY_SAMPLE ? t->nbytes - IDENTITY_SAMPLE
										   : IDENTITY_SAMPLE;
		sha256_update(h, (const uint8_t *)t->data + from, (size_t)(t->nbytes - from));
	}
}

int identity_of_model(const struct hearth_model *m, uint8_t out[IDENTITY_SIZE], struct hearth_err *err)
{
	struct sha256 *h;
	int rc;
	if ((rc = sha256_new(&h, err)))
		return rc;
	sha256_begin(h);
	sha256_update(h, IDENTITY_DOMAIN, sizeof IDENTITY_DOMAIN);
	put_str(h, m->arch);
	put_hparams(h, &m->hp);
	put_i64(h, m->gguf->n_tensors);
	for (int64_t i = 0; i < m->gguf->n_tensors; i++)
		put_tensor(h, &m->gguf->tensors[i]);
	rc = sha256_end(h, out);
	sha256_free(h);
	if (rc)
		return err_set(err, rc, "model identity: hashing failed (out of memory)");
	return 0;
}
