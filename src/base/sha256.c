/* sha256.c - SHA-256 over libcrypto's EVP interface (see sha256.h). */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>

#include "err.h"
#include "sha256.h"

struct sha256 {
	EVP_MD *md;      /* the fetched algorithm, reused by every digest */
	EVP_MD_CTX *ctx;
	bool failed;     /* a step of the current digest failed */
};

int sha256_new(struct sha256 **out, struct hearth_err *err)
{
	struct sha256 *h;
	*out = NULL;
	if (!(h = calloc(1, sizeof *h)))
		return err_set(err, HEARTH_ENOMEM, "sha256: out of memory");
	if (!(h->md = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		char why[256];
		ERR_error_string_n(ERR_get_error(), why, sizeof why);
		sha256_free(h);
		return err_set(err, HEARTH_EUNSUPPORTED, "sha256: libcrypto has no SHA-256 (%s)", why);
	}
	if (!(h->ctx = EVP_MD_CTX_new())) {
		sha256_free(h);
		return err_set(err, HEARTH_ENOMEM, "sha256: out of memory");
	}
	*out = h;
	return 0;
}

void sha256_free(struct sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	free(h);
}

void sha256_begin(struct sha256 *h)
{
	h->failed = EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1;
}

void sha256_update(struct sha256 *h, const void *data, size_t size)
{
	if (!h->failed && size > 0)
		h->failed = EVP_DigestUpdate(h->ctx, data, size) != 1;
}

int sha256_end(struct sha256 *h, uint8_t out[SHA256_SIZE])
{
	unsigned int n = 0;
	if (!h->failed)
		h->failed = EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != SHA256_SIZE;
	if (h->failed) {
		ERR_clear_error(); /* libcrypto's queue is per thread; leave it empty */
		return HEARTH_ENOMEM;
	}
	return 0;
}
