/* sha256.h - SHA-256 digests, computed by OpenSSL's libcrypto.
 *
 * A struct sha256 is a reusable hashing state: the algorithm is looked up
 * once, at sha256_new, and each digest after that allocates nothing, so that
 * hashing many short inputs (the KV cache names every full block) stays
 * cheap. A digest is sha256_begin, any number of sha256_update, sha256_end.
 *
 * Not thread-safe: one thread uses a state at a time; separate states are
 * independent.
 */
#ifndef HEARTH_SHA256_H
#define HEARTH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define SHA256_SIZE 32 /* bytes in a digest */

struct sha256;

/* A new hashing state in *out. HEARTH_EUNSUPPORTED when libcrypto offers no
 * SHA-256 (a provider configuration without it), HEARTH_ENOMEM. */
int sha256_new(struct sha256 **out, struct hearth_err *err);
/* Frees h (NULL is ignored). */
void sha256_free(struct sha256 *h);
/* Starts a digest, forgetting any unfinished one. */
void sha256_begin(struct sha256 *h);
/* Adds size bytes at data to the digest. */
void sha256_update(struct sha256 *h, const void *data, size_t size);
/* Finishes the digest into out: 0, or HEARTH_ENOMEM when libcrypto failed a
 * step since sha256_begin (it fails only for want of memory); out is then
 * not a digest and must not be used. */
int sha256_end(struct sha256 *h, uint8_t out[SHA256_SIZE]);

#endif /* HEARTH_SHA256_H */
