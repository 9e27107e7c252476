/*
 * state.c - saved sequence state: a sequence's tokens and KV rows in a file
 * that a later process (another run of the CLI, the server after a restart)
 * restores instead of recomputing them.
 *
 * Layout (little-endian; the rows are the cache's own bytes):
 *
 *   offset  size                     field
 *   0       8                        magic "HEARTHKV"
 *   8       4                        version (3; older files, from before sliding windows
 *                                    and steering, are refused: saved again, they are version 3)
 *   12      4                        cache type (HEARTH_TYPE_F32, F16 or Q8_0)
 *   16      32                       model identity (identity.c)
 *   48      4                        n_layer
 *   52      4                        n_vocab
 *   56      8                        width_k   floats per position per layer
 *   64      8                        width_v
 *   72      8                        row_k     bytes per position per layer
 *   80      8                        row_v
 *   88      4                        n_tokens  (>= 1)
 *   92      4                        n_logits  (0 or 1)
 *   96      4                        n_swa     the local layers' window (0: no local layers)
 *   100     4                        n_layer_local  layers with a window
 *   104     4                        local_from     the first position with local-layer rows
 *   108     4                        zero
 *   112     32                       steering digest (cvec_steer_digest): what steered
 *                                    the rows; all zero: nothing
 *   144     4 n_layer                each layer's window (0: global, else n_swa)
 *   ...     4 n_tokens               the tokens (int32)
 *   ...     4 n_logits n_vocab       logits after the last token (f32)
 *   ...     per layer: its key rows, then its value rows, of positions 0 .. n_tokens
 *           (global layers) or local_from .. n_tokens (local layers), row_k / row_v bytes each
 *   end-32  32                       SHA-256 of every byte before it
 *
 * A sliding-window layer attends only to the last n_swa positions, and the
 * cache keeps only those blocks of it (kv-cache.h): its rows before
 * local_from are gone and not needed to continue (kv-state.c).
 *
 * Reading trusts nothing: every field is checked against limits and against
 * the others (row sizes must be what the cache type gives for the widths),
 * the file's size must be exactly the size the header implies (truncated or
 * padded files are refused before anything large is allocated), the digest
 * must match (a flipped byte anywhere is refused), and every token must be in
 * the vocabulary. Whether the rows belong to a given model is a separate
 * check (state_check_fits): identity, cache type and widths; so is whether
 * they were computed under the steering of the sequence they would go into
 * (state_check_steering): no state is restored into a sequence steered
 * otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/sha256.h"
#include "cvec.h"
#include "identity.h"
#include "state.h"

#define STATE_MAGIC "HEARTHKV"
#define STATE_VERSION 3
#define STATE_HEADER 144
#define STATE_TRAILER 32
#define STATE_MAX_LAYER 4096
#define STATE_MAX_TOKENS (1 << 22)
#define STATE_MAX_VOCAB (1 << 24)
#define STATE_MAX_WIDTH (1 << 20)
#define STATE_MAX_SWA (1 << 30)

static void le_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Bytes per position per layer of width values of a cache type, 0 when the
 * type is not a cache type or the width does not fit it. */
static uint64_t row_bytes(int type, int64_t width)
{
	switch (type) {
	case HEARTH_TYPE_F32: return (uint64_t)width * 4;
	case HEARTH_TYPE_F16: return (uint64_t)width * 2;
	case HEARTH_TYPE_Q8_0: return width % 32 ? 0 : (uint64_t)width / 32 * 34;
	default: return 0;
	}
}

/* The file size a header implies: 0 when some product overflows. */
static uint64_t implied_size(const struct hearth_state *st)
{
	const uint64_t n = (uint64_t)st->n_tokens, per_pos = st->row_k + st->row_v;
	/* every factor is bounded by the limits above except the rows' product */
	const uint64_t logits = (uint64_t)st->n_logits * (uint64_t)st->n_vocab * 4;
	const uint64_t n_rows = n * (uint64_t)(st->n_layer - st->n_layer_local) +
				(n - (uint64_t)st->local_from) * (uint64_t)st->n_layer_local;
	if (n_rows && per_pos > UINT64_MAX / n_rows)
		return 0;
	const uint64_t rows = per_pos * n_rows;
	const uint64_t fixed = STATE_HEADER + 4 * (uint64_t)st->n_layer + 4 * n + logits + STATE_TRAILER;
	return rows > UINT64_MAX - fixed ? 0 : rows + fixed;
}

/* Points st's views into st->buf (its header already parsed). */
static void set_views(struct hearth_state *st)
{
	const size_t tokens = STATE_HEADER + 4 * (size_t)st->n_layer;
	st->layer_swa = (const int32_t *)(st->buf + STATE_HEADER);
	st->tokens = (const int32_t *)(st->buf + tokens);
	st->logits = st->n_logits ? (const float *)(st->buf + tokens + 4 * (size_t)st->n_tokens) : NULL;
	st->rows = st->buf + tokens + 4 * (size_t)st->n_tokens + 4 * (size_t)st->n_logits * (size_t)st->n_vocab;
}

static int digest(const uint8_t *data, size_t size, uint8_t out[32], struct hearth_err *err)
{
	struct sha256 *h;
	int rc;
	if ((rc = sha256_new(&h, err)))
		return rc;
	sha256_begin(h);
	sha256_update(h, data, size);
	rc = sha256_end(h, out);
	sha256_free(h);
	return rc ? err_set(err, rc, "state: hashing failed (out of memory)") : 0;
}

int state_build(struct hearth_state **out, const struct hearth_model *m, const struct kv_cache *kv,
		const struct kv_seq *s, const int32_t *tokens, int32_t n, const float *logits, const uint8_t *steering,
		struct hearth_err *err)
{
	struct hearth_state *st;
	int rc;
	*out = NULL;
	if (n <= 0 || n > s->n_tokens)
		return err_set(err, HEARTH_EINVAL, "state: nothing to save (%d tokens of %d)", n, s->n_tokens);
	if (!(st = calloc(1, sizeof *st)))
		return err_set(err, HEARTH_ENOMEM, "state: out of memory");
	st->type = kv->type;
	st->n_layer = kv->n_layer;
	st->n_vocab = m->hp.n_vocab;
	st->n_tokens = n;
	st->n_logits = logits ? 1 : 0;
	st->width_k = kv->width_k;
	st->width_v = kv->width_v;
	st->row_k = kv->row_k;
	st->row_v = kv->row_v;
	if (steering)
		memcpy(st->steering, steering, STATE_STEER_SIZE);
	st->n_swa = kv->n_swa;
	st->n_layer_local = kv->n_layer_local;
	st->local_from = kv->n_swa ? kv_seq_local_from(kv, s) : 0;
	if (st->local_from > n)
		st->local_from = n;
	const uint64_t size = implied_size(st);
	if (!size || size > SIZE_MAX || kv_state_size(kv, n, st->local_from) == 0) {
		rc = err_set(err, HEARTH_ETOOBIG, "state: %d tokens of this model are too large to save", n);
		goto fail;
	}
	if ((rc = identity_of_model(m, st->identity, err)))
		goto fail;
	st->size = (size_t)size;
	if (!(st->buf = malloc(st->size))) {
		rc = err_set(err, HEARTH_ENOMEM, "state: out of memory for %zu bytes", st->size);
		goto fail;
	}
	uint8_t *h = st->buf;
	memcpy(h, STATE_MAGIC, 8);
	le_put(h + 8, STATE_VERSION, 4);
	le_put(h + 12, (uint32_t)st->type, 4);
	memcpy(h + 16, st->identity, 32);
	le_put(h + 48, (uint32_t)st->n_layer, 4);
	le_put(h + 52, (uint32_t)st->n_vocab, 4);
	le_put(h + 56, (uint64_t)st->width_k, 8);
	le_put(h + 64, (uint64_t)st->width_v, 8);
	le_put(h + 72, st->row_k, 8);
	le_put(h + 80, st->row_v, 8);
	le_put(h + 88, (uint32_t)n, 4);
	le_put(h + 92, (uint32_t)st->n_logits, 4);
	le_put(h + 96, (uint32_t)st->n_swa, 4);
	le_put(h + 100, (uint32_t)st->n_layer_local, 4);
	le_put(h + 104, (uint32_t)st->local_from, 4);
	le_put(h + 108, 0, 4);
	memcpy(h + 112, st->steering, STATE_STEER_SIZE);
	for (int32_t il = 0; il < st->n_layer; il++)
		le_put(h + STATE_HEADER + 4 * (size_t)il, kv->layer_local[il] ? (uint32_t)kv->n_swa : 0, 4);
	set_views(st);
	memcpy((void *)st->tokens, tokens, 4 * (size_t)n);
	if (logits)
		memcpy((void *)st->logits, logits, 4 * (size_t)st->n_vocab);
	kv_state_get(kv, s, n, st->local_from, (void *)st->rows);
	if ((rc = digest(st->buf, st->size - STATE_TRAILER, st->buf + st->size - STATE_TRAILER, err)))
		goto fail;
	*out = st;
	return 0;
fail:
	hearth_state_free(st);
	return rc;
}

/* Parses and checks the header in h (STATE_HEADER bytes) into st; what names
 * the input in messages. */
static int parse_header(struct hearth_state *st, const uint8_t *h, const char *what, struct hearth_err *err)
{
	if (memcmp(h, STATE_MAGIC, 8))
		return err_set(err, HEARTH_EINVAL, "%s: not a hearth state file (bad magic)", what);
	const uint32_t version = (uint32_t)le_get(h + 8, 4);
	if (version != STATE_VERSION)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: state format version %u is not supported (this build reads "
			       "version %d; save the state again)", what, version, STATE_VERSION);
	const uint64_t type = le_get(h + 12, 4), n_layer = le_get(h + 48, 4), n_vocab = le_get(h + 52, 4);
	const uint64_t wk = le_get(h + 56, 8), wv = le_get(h + 64, 8), n = le_get(h + 88, 4),
		       n_logits = le_get(h + 92, 4);
	if (type != HEARTH_TYPE_F32 && type != HEARTH_TYPE_F16 && type != HEARTH_TYPE_Q8_0)
		return err_set(err, HEARTH_EINVAL, "%s: cache type %" PRIu64 " is not f32, f16 or q8_0", what, type);
	if (n_layer < 1 || n_layer > STATE_MAX_LAYER || n_vocab < 1 || n_vocab > STATE_MAX_VOCAB)
		return err_set(err, HEARTH_EINVAL, "%s: %" PRIu64 " layers or a vocabulary of %" PRIu64 " is out of range",
			       what, n_layer, n_vocab);
	if (wk < 1 || wk > STATE_MAX_WIDTH || wv < 1 || wv > STATE_MAX_WIDTH)
		return err_set(err, HEARTH_EINVAL, "%s: row widths %" PRIu64 " / %" PRIu64 " are out of range", what, wk, wv);
	if (n < 1 || n > STATE_MAX_TOKENS || n_logits > 1)
		return err_set(err, HEARTH_EINVAL, "%s: %" PRIu64 " tokens (with %" PRIu64 " logit rows) is out of range",
			       what, n, n_logits);
	st->type = (int)type;
	st->n_layer = (int32_t)n_layer;
	st->n_vocab = (int32_t)n_vocab;
	st->width_k = (int64_t)wk;
	st->width_v = (int64_t)wv;
	st->row_k = le_get(h + 72, 8);
	st->row_v = le_get(h + 80, 8);
	st->n_tokens = (int32_t)n;
	st->n_logits = (int32_t)n_logits;
	memcpy(st->identity, h + 16, 32);
	const uint64_t n_swa = le_get(h + 96, 4), n_local = le_get(h + 100, 4), local_from = le_get(h + 104, 4);
	if (n_swa > STATE_MAX_SWA || n_local > n_layer || (n_swa == 0) != (n_local == 0) || local_from > n ||
	    (n_local == 0 && local_from) || le_get(h + 108, 4))
		return err_set(err, HEARTH_EINVAL, "%s: sliding window %" PRIu64 " over %" PRIu64 " layers from position %"
			       PRIu64 " is out of range", what, n_swa, n_local, local_from);
	st->n_swa = (int32_t)n_swa;
	st->n_layer_local = (int32_t)n_local;
	st->local_from = (int32_t)local_from;
	memcpy(st->steering, h + 112, STATE_STEER_SIZE);
	if (!st->row_k || st->row_k != row_bytes(st->type, st->width_k) || st->row_v != row_bytes(st->type, st->width_v))
		return err_set(err, HEARTH_EINVAL, "%s: row sizes %" PRIu64 " / %" PRIu64 " do not match the cache type and widths",
			       what, st->row_k, st->row_v);
	return 0;
}

/* Checks what follows the header: digest, then tokens. */
static int check_body(const struct hearth_state *st, const char *what, struct hearth_err *err)
{
	uint8_t d[32];
	int rc;
	if ((rc = digest(st->buf, st->size - STATE_TRAILER, d, err)))
		return rc;
	if (memcmp(d, st->buf + st->size - STATE_TRAILER, 32))
		return err_set(err, HEARTH_EINVAL, "%s: the state is corrupt (its checksum does not match)", what);
	int32_t n_local = 0;
	for (int32_t il = 0; il < st->n_layer; il++) {
		if (st->layer_swa[il] != 0 && st->layer_swa[il] != st->n_swa)
			return err_set(err, HEARTH_EINVAL, "%s: layer %d has window %d, not 0 or %d", what, il,
				       st->layer_swa[il], st->n_swa);
		n_local += st->layer_swa[il] != 0;
	}
	if (n_local != st->n_layer_local)
		return err_set(err, HEARTH_EINVAL, "%s: %d layers have a window, the header says %d", what, n_local,
			       st->n_layer_local);
	for (int32_t i = 0; i < st->n_tokens; i++)
		if (st->tokens[i] < 0 || st->tokens[i] >= st->n_vocab)
			return err_set(err, HEARTH_EINVAL, "%s: token %d (id %d) is outside the vocabulary", what, i,
				       st->tokens[i]);
	return 0;
}

int hearth_state_parse(struct hearth_state **out, const void *data, size_t size, const char *what,
		       struct hearth_err *err)
{
	struct hearth_state *st;
	int rc;
	*out = NULL;
	if (size < STATE_HEADER + STATE_TRAILER)
		return err_set(err, HEARTH_EINVAL, "%s: too short for a hearth state file (%zu bytes)", what, size);
	if (!(st = calloc(1, sizeof *st)))
		return err_set(err, HEARTH_ENOMEM, "state: out of memory");
	if ((rc = parse_header(st, data, what, err)))
		goto fail;
	const uint64_t want = implied_size(st);
	if (want != size) {
		rc = err_set(err, HEARTH_EINVAL, "%s: the file is %zu bytes but its header describes %" PRIu64
			     " (truncated or padded)", what, size, want);
		goto fail;
	}
	st->size = size;
	if (!(st->buf = malloc(size))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory for %zu bytes", what, size);
		goto fail;
	}
	memcpy(st->buf, data, size);
	set_views(st);
	if ((rc = check_body(st, what, err)))
		goto fail;
	*out = st;
	return 0;
fail:
	hearth_state_free(st);
	return rc;
}

static int read_all(int fd, uint8_t *dst, size_t n)
{
	while (n) {
		const ssize_t r = read(fd, dst, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		dst += r;
		n -= (size_t)r;
	}
	return 0;
}

int hearth_state_read(struct hearth_state **out, const char *path, struct hearth_err *err)
{
	struct hearth_state *st = NULL;
	uint8_t h[STATE_HEADER];
	struct stat sb;
	int rc, fd;
	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_set(err, errno == ENOENT ? HEARTH_ENOTFOUND : HEARTH_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		rc = err_set(err, HEARTH_EIO, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)sb.st_size < STATE_HEADER + STATE_TRAILER || read_all(fd, h, sizeof h)) {
		rc = err_set(err, HEARTH_EINVAL, "%s: too short for a hearth state file (%lld bytes)", path,
			     (long long)sb.st_size);
		goto out;
	}
	if (!(st = calloc(1, sizeof *st))) {
		rc = err_set(err, HEARTH_ENOMEM, "state: out of memory");
		goto out;
	}
	if ((rc = parse_header(st, h, path, err)))
		goto out;
	const uint64_t want = implied_size(st);
	if (want != (uint64_t)sb.st_size || want > SIZE_MAX) {
		rc = err_set(err, HEARTH_EINVAL, "%s: the file is %lld bytes but its header describes %" PRIu64
			     " (truncated or padded)", path, (long long)sb.st_size, want);
		goto out;
	}
	st->size = (size_t)want;
	if (!(st->buf = malloc(st->size))) {
		rc = err_set(err, HEARTH_ENOMEM, "%s: out of memory for %zu bytes", path, st->size);
		goto out;
	}
	memcpy(st->buf, h, sizeof h);
	if (read_all(fd, st->buf + sizeof h, st->size - sizeof h)) {
		rc = err_set(err, HEARTH_EIO, "%s: read failed (the file shrank?)", path);
		goto out;
	}
	set_views(st);
	if ((rc = check_body(st, path, err)))
		goto out;
	*out = st;
	st = NULL;
out:
	hearth_state_free(st);
	close(fd);
	return rc;
}

int hearth_state_write(const struct hearth_state *st, const char *path, struct hearth_err *err)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return err_set(err, HEARTH_EINVAL, "%s: path too long", path);
	/* only the owner reads it: the rows encode the text they were computed from */
	const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
	if (!f) {
		if (fd >= 0)
			close(fd);
		return err_set(err, HEARTH_EIO, "%s: %s", tmp, strerror(errno));
	}
	const bool ok = fwrite(st->buf, 1, st->size, f) == st->size;
	if (fclose(f) || !ok) {
		unlink(tmp);
		return err_set(err, HEARTH_EIO, "%s: write failed (disk full?)", tmp);
	}
	if (rename(tmp, path)) {
		const int e = errno;
		unlink(tmp);
		return err_set(err, HEARTH_EIO, "%s: %s", path, strerror(e));
	}
	return 0;
}

int state_check_fits(const struct hearth_state *st, const struct hearth_model *m, const struct kv_cache *kv,
		     struct hearth_err *err)
{
	uint8_t id[IDENTITY_SIZE];
	int rc;
	if ((rc = identity_of_model(m, id, err)))
		return rc;
	if (memcmp(id, st->identity, IDENTITY_SIZE) || st->n_vocab != m->hp.n_vocab || st->n_layer != kv->n_layer ||
	    st->width_k != kv->width_k || st->width_v != kv->width_v)
		return err_set(err, HEARTH_EINVAL, "state: it was saved by another model (its identity does not match "
			       "this model's)");
	if (st->type != kv->type || st->row_k != kv->row_k || st->row_v != kv->row_v)
		return err_set(err, HEARTH_EINVAL, "state: it holds a %s cache, this one is %s",
			       st->type == HEARTH_TYPE_F32 ? "f32" : st->type == HEARTH_TYPE_F16 ? "f16" : "q8_0",
			       kv->type == HEARTH_TYPE_F32 ? "f32" : kv->type == HEARTH_TYPE_F16 ? "f16" : "q8_0");
	bool same = st->n_swa == kv->n_swa;
	for (int32_t il = 0; same && il < st->n_layer; il++)
		same = (st->layer_swa[il] != 0) == kv->layer_local[il];
	if (!same)
		return err_set(err, HEARTH_EINVAL, "state: its sliding-window layers (window %d) are not this model's "
			       "(window %d)", st->n_swa, kv->n_swa);
	return 0;
}

static bool steered(const uint8_t d[STATE_STEER_SIZE])
{
	for (int i = 0; i < STATE_STEER_SIZE; i++)
		if (d[i])
			return true;
	return false;
}

int state_check_steering(const struct hearth_state *st, const uint8_t steering[STATE_STEER_SIZE],
			 struct hearth_err *err)
{
	if (!memcmp(st->steering, steering, STATE_STEER_SIZE))
		return 0;
	if (!steered(st->steering))
		return err_set(err, HEARTH_EINVAL, "state: it was computed unsteered; this sequence is steered");
	if (!steered(steering))
		return err_set(err, HEARTH_EINVAL, "state: it was computed steered; this sequence is not");
	return err_set(err, HEARTH_EINVAL, "state: it was computed under other steering (another vector, strength "
		       "or layers)");
}

int hearth_state_check_steering(const struct hearth_state *st, const struct hearth_model *m,
				const struct hearth_steering *s, struct hearth_err *err)
{
	struct fwd_steer fs;
	uint8_t d[STATE_STEER_SIZE];
	int rc;
	if ((rc = cvec_steer_resolve(s, m, &fs, err)) || (rc = cvec_steer_digest(&fs, &m->hp, d, err)))
		return rc;
	return state_check_steering(st, d, err);
}

int hearth_state_check(const struct hearth_state *st, const struct hearth_model *m, struct hearth_err *err)
{
	uint8_t id[IDENTITY_SIZE];
	int rc;
	if ((rc = identity_of_model(m, id, err)))
		return rc;
	if (memcmp(id, st->identity, IDENTITY_SIZE))
		return err_set(err, HEARTH_EINVAL, "state: it was saved by another model (its identity does not match "
			       "this model's)");
	return 0;
}

const int32_t *hearth_state_tokens(const struct hearth_state *st, int32_t *n)
{
	*n = st->n_tokens;
	return st->tokens;
}

size_t hearth_state_size(const struct hearth_state *st) { return st->size; }

void hearth_state_free(struct hearth_state *st)
{
	if (!st)
		return;
	free(st->buf);
	free(st);
}
